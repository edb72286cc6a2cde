// Package sqlite implements store.Meta on an embedded SQLite database
// (pure Go, WAL mode), so a single data directory is a complete registry.
//
// Writes go through one connection: SQLite serialises writers anyway, and
// queueing them in Go avoids busy-wait retries under load. Reads use a pool
// that WAL lets proceed alongside the writer. synchronous=FULL makes every
// commit durable before the client is told it succeeded.
package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	"time"

	"github.com/opencontainers/go-digest"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/bulwark-dev/bulwark/internal/store"
)

//go:embed schema.sql
var schema string

//go:embed uploads.sql
var uploadsSchema string

// DB is a SQLite-backed store.Meta.
type DB struct {
	w   *sql.DB // single writer connection, used only by committer
	r   *sql.DB // reader pool
	up  *sql.DB // upload sessions (see uploads.sql)
	now func() time.Time

	// Prepared on the reader pool: the pure-Go driver spends more time
	// parsing and planning a statement than running a point lookup, so the
	// lookups every pull makes are prepared once.
	blobAccess, manifestQuarantine, tag, manifest, repoBlob *sql.Stmt

	writes  chan write
	closing chan struct{}
	stopped chan struct{}
	close   sync.Once
}

var errClosed = errors.New("metadata database is closed")

var _ store.Meta = (*DB)(nil)

// Options tune Open. The zero value is right for production.
type Options struct {
	// Readers is the size of the read connection pool (default 8).
	Readers int
	// Now overrides the clock, for tests of time-based behaviour.
	Now func() time.Time
}

// Open opens or creates the database file at path and migrates its schema.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if opts.Readers <= 0 {
		opts.Readers = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pragmas := []string{"journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "busy_timeout(10000)"}
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open metadata database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("create metadata schema in %s: %w", path, err)
	}
	rq := url.Values{}
	for _, p := range []string{"foreign_keys(1)", "busy_timeout(10000)", "query_only(1)"} {
		rq.Add("_pragma", p)
	}
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open metadata database: %w", err)
	}
	upq := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(OFF)", "busy_timeout(10000)"} {
		upq.Add("_pragma", p)
	}
	up, err := sql.Open("sqlite", "file:"+uploadsPath(path)+"?"+upq.Encode())
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open upload database: %w", err)
	}
	up.SetMaxOpenConns(1)
	up.SetMaxIdleConns(1)
	up.SetConnMaxIdleTime(0)
	if _, err := up.ExecContext(ctx, uploadsSchema); err != nil {
		w.Close()
		r.Close()
		up.Close()
		return nil, fmt.Errorf("create upload schema: %w", err)
	}
	r.SetMaxOpenConns(opts.Readers)
	r.SetMaxIdleConns(opts.Readers)
	r.SetConnMaxIdleTime(0)
	db := &DB{w: w, r: r, up: up, now: opts.Now}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&db.blobAccess, blobAccessQuery},
		{&db.manifestQuarantine, manifestQuarantineQuery},
		{&db.tag, tagQuery},
		{&db.manifest, manifestQuery},
		{&db.repoBlob, repoBlobQuery},
	} {
		if *p.stmt, err = r.PrepareContext(ctx, p.query); err != nil {
			db.closeStatements()
			w.Close()
			r.Close()
			up.Close()
			return nil, fmt.Errorf("prepare %q: %w", p.query, err)
		}
	}
	db.writes = make(chan write)
	db.closing = make(chan struct{})
	db.stopped = make(chan struct{})
	go db.committer()
	return db, nil
}

// Close implements store.Meta.
func (db *DB) Close() error {
	db.close.Do(func() { close(db.closing) })
	<-db.stopped
	return errors.Join(db.closeStatements(), db.r.Close(), db.w.Close(), db.up.Close())
}

func (db *DB) closeStatements() error {
	var errs []error
	for _, st := range []*sql.Stmt{db.blobAccess, db.manifestQuarantine, db.tag, db.manifest, db.repoBlob} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// uploadsPath names the upload-session database beside the main one.
func uploadsPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + "-uploads.db"
}

func (db *DB) nowNano() int64 { return db.now().UnixNano() }

// repoID returns the id of repo, creating it when create is set.
func (db *DB) repoID(ctx context.Context, tx *sql.Tx, repo string, create bool) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = ?`, repo).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	if !create {
		return 0, fmt.Errorf("%w: %s", store.ErrRepoUnknown, repo)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO repositories(name, created) VALUES (?, ?)`, repo, db.nowNano())
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// PutBlob implements store.Meta.
func (db *DB) PutBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return db.tx(ctx, func(tx *sql.Tx) error { return db.putBlob(ctx, tx, repo, d, size) })
}

// CompleteUpload implements store.Meta. The blob record commits durably
// first; a crash before the session row is deleted leaves a stale session,
// which expires like any abandoned one.
func (db *DB) CompleteUpload(ctx context.Context, uploadID, repo string, d digest.Digest, size int64) error {
	if err := db.PutBlob(ctx, repo, d, size); err != nil {
		return err
	}
	return db.DeleteUpload(ctx, uploadID)
}

func (db *DB) putBlob(ctx context.Context, tx *sql.Tx, repo string, d digest.Digest, size int64) error {
	id, err := db.repoID(ctx, tx, repo, true)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO blobs(digest, size, touched) VALUES (?, ?, ?)
		 ON CONFLICT(digest) DO UPDATE SET touched = excluded.touched`,
		d.String(), size, db.nowNano()); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO repo_blobs(repo_id, digest) VALUES (?, ?)`, id, d.String())
	return err
}

// LinkBlob implements store.Meta.
func (db *DB) LinkBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT size FROM blobs WHERE digest = ?`, d.String()).Scan(&size)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", store.ErrBlobUnknown, d)
		}
		if err != nil {
			return err
		}
		id, err := db.repoID(ctx, tx, repo, true)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE blobs SET touched = ? WHERE digest = ?`, db.nowNano(), d.String()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO repo_blobs(repo_id, digest) VALUES (?, ?)`, id, d.String())
		return err
	})
	return size, err
}

// RepoBlob implements store.Meta.
func (db *DB) RepoBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := db.repoBlob.QueryRowContext(ctx, repo, d.String()).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s in %s", store.ErrBlobUnknown, d, repo)
	}
	return size, err
}

// BlobRepositories implements store.Meta.
func (db *DB) BlobRepositories(ctx context.Context, d digest.Digest) ([]string, error) {
	return db.strings(ctx,
		`SELECT r.name FROM repo_blobs rb JOIN repositories r ON r.id = rb.repo_id
		 WHERE rb.digest = ? ORDER BY r.name`, d.String())
}

// UnlinkBlob implements store.Meta.
func (db *DB) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM repo_blobs WHERE digest = ? AND repo_id = (SELECT id FROM repositories WHERE name = ?)`,
			d.String(), repo)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s in %s", store.ErrBlobUnknown, d, repo)
		}
		return nil
	})
}

// PutManifest implements store.Meta.
func (db *DB) PutManifest(ctx context.Context, repo string, m *store.ManifestRecord, tags []string, sparse bool) error {
	return db.putManifest(ctx, repo, m, tags, sparse, nil)
}

// PutQuarantinedManifest implements store.Meta.
func (db *DB) PutQuarantinedManifest(ctx context.Context, repo string, m *store.ManifestRecord, tags []string, sparse bool, q *store.QuarantineRecord) error {
	if q == nil {
		return errors.New("PutQuarantinedManifest: no quarantine record")
	}
	return db.putManifest(ctx, repo, m, tags, sparse, q)
}

// putManifest stores m and, if q is set, quarantines it in the same
// transaction.
func (db *DB) putManifest(ctx context.Context, repo string, m *store.ManifestRecord, tags []string, sparse bool, q *store.QuarantineRecord) error {
	var qargs []any
	if q != nil {
		var err error
		if qargs, err = quarantineArgs(q, m.Digest); err != nil {
			return err
		}
	}
	var annotations any
	if len(m.Annotations) > 0 {
		b, err := json.Marshal(m.Annotations)
		if err != nil {
			return err
		}
		annotations = string(b)
	}
	var subject any
	if m.Subject != "" {
		subject = m.Subject.String()
	}
	now := db.nowNano()
	return db.tx(ctx, func(tx *sql.Tx) error {
		id, err := db.repoID(ctx, tx, repo, true)
		if err != nil {
			return err
		}
		for _, b := range m.Blobs {
			if sparse && b != m.Config {
				continue
			}
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM repo_blobs WHERE repo_id = ? AND digest = ?`, id, b.String()).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return &store.BlobUnknownError{Digest: b}
			}
			if err != nil {
				return err
			}
		}
		for _, c := range m.Children {
			if sparse {
				break
			}
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM manifests WHERE repo_id = ? AND digest = ?`, id, c.String()).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return &store.ManifestUnknownError{Digest: c}
			}
			if err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO manifests(repo_id, digest, media_type, artifact_type, subject, annotations, content, created)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			id, m.Digest.String(), m.MediaType, m.ArtifactType, subject, annotations, m.Content, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			for _, b := range m.Blobs {
				if _, err := tx.ExecContext(ctx,
					`INSERT OR IGNORE INTO manifest_refs(repo_id, manifest, kind, digest) VALUES (?, ?, 'b', ?)`,
					id, m.Digest.String(), b.String()); err != nil {
					return err
				}
			}
			for _, c := range m.Children {
				if _, err := tx.ExecContext(ctx,
					`INSERT OR IGNORE INTO manifest_refs(repo_id, manifest, kind, digest) VALUES (?, ?, 'm', ?)`,
					id, m.Digest.String(), c.String()); err != nil {
					return err
				}
			}
		}
		for _, tag := range tags {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO tags(repo_id, name, digest, updated) VALUES (?, ?, ?, ?)
				 ON CONFLICT(repo_id, name) DO UPDATE SET digest = excluded.digest, updated = excluded.updated`,
				id, tag, m.Digest.String(), now); err != nil {
				return err
			}
		}
		if q != nil {
			return upsertQuarantine(ctx, tx, id, now, qargs)
		}
		return nil
	})
}

const manifestColumns = `m.digest, m.media_type, m.artifact_type, m.subject, m.annotations, m.content, m.created`

func scanManifest(row interface{ Scan(...any) error }) (*store.ManifestRecord, error) {
	var (
		m           store.ManifestRecord
		d           string
		subject     sql.NullString
		annotations sql.NullString
		created     int64
	)
	if err := row.Scan(&d, &m.MediaType, &m.ArtifactType, &subject, &annotations, &m.Content, &created); err != nil {
		return nil, err
	}
	m.Digest = digest.Digest(d)
	m.Subject = digest.Digest(subject.String)
	m.Created = time.Unix(0, created)
	if annotations.Valid {
		if err := json.Unmarshal([]byte(annotations.String), &m.Annotations); err != nil {
			return nil, fmt.Errorf("manifest %s: stored annotations: %w", d, err)
		}
	}
	return &m, nil
}

// Manifest implements store.Meta.
func (db *DB) Manifest(ctx context.Context, repo string, d digest.Digest) (*store.ManifestRecord, error) {
	m, err := scanManifest(db.manifest.QueryRowContext(ctx, repo, d.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s in %s", store.ErrManifestUnknown, d, repo)
	}
	return m, err
}

// The point lookups of every pull, prepared at Open.
const (
	tagQuery      = `SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repo_id WHERE r.name = ? AND t.name = ?`
	manifestQuery = `SELECT ` + manifestColumns + ` FROM manifests m JOIN repositories r ON r.id = m.repo_id
		 WHERE r.name = ? AND m.digest = ?`
	repoBlobQuery = `SELECT b.size FROM repo_blobs rb
		 JOIN repositories r ON r.id = rb.repo_id
		 JOIN blobs b ON b.digest = rb.digest
		 WHERE r.name = ? AND rb.digest = ?`
)

// Tag implements store.Meta.
func (db *DB) Tag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	var d string
	err := db.tag.QueryRowContext(ctx, repo, tag).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: %s:%s", store.ErrTagUnknown, repo, tag)
	}
	return digest.Digest(d), err
}

// DeleteManifest implements store.Meta.
func (db *DB) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM manifests WHERE digest = ? AND repo_id = (SELECT id FROM repositories WHERE name = ?)`,
			d.String(), repo)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s in %s", store.ErrManifestUnknown, d, repo)
		}
		return nil
	})
}

// DeleteTag implements store.Meta.
func (db *DB) DeleteTag(ctx context.Context, repo, tag string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM tags WHERE name = ? AND repo_id = (SELECT id FROM repositories WHERE name = ?)`, tag, repo)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s:%s", store.ErrTagUnknown, repo, tag)
		}
		return nil
	})
}

// ManifestTags implements store.Meta.
func (db *DB) ManifestTags(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	return db.strings(ctx,
		`SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repo_id
		 WHERE r.name = ? AND t.digest = ? ORDER BY t.name`, repo, d.String())
}

func (db *DB) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func limit(p store.Page) int {
	if p.N < 0 {
		return -1 // SQLite: no limit
	}
	return p.N
}

// Tags implements store.Meta. Ordering is by byte value, which is the
// lexical order the spec asks for.
func (db *DB) Tags(ctx context.Context, repo string, p store.Page) ([]string, error) {
	var exists int
	err := db.r.QueryRowContext(ctx, `SELECT 1 FROM repositories WHERE name = ?`, repo).Scan(&exists)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", store.ErrRepoUnknown, repo)
	}
	if err != nil {
		return nil, err
	}
	return db.strings(ctx,
		`SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repo_id
		 WHERE r.name = ? AND t.name > ? ORDER BY t.name LIMIT ?`, repo, p.Last, limit(p))
}

// Repositories implements store.Meta.
func (db *DB) Repositories(ctx context.Context, p store.Page) ([]string, error) {
	return db.strings(ctx, `SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?`, p.Last, limit(p))
}

// Referrers implements store.Meta.
func (db *DB) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]*store.ManifestRecord, error) {
	q := `SELECT ` + manifestColumns + ` FROM manifests m JOIN repositories r ON r.id = m.repo_id
	      WHERE r.name = ? AND m.subject = ?`
	args := []any{repo, d.String()}
	if artifactType != "" {
		q += ` AND m.artifact_type = ?`
		args = append(args, artifactType)
	}
	q += ` ORDER BY m.digest`
	return db.manifests(ctx, q, args...)
}

func (db *DB) manifests(ctx context.Context, q string, args ...any) ([]*store.ManifestRecord, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.ManifestRecord
	for rows.Next() {
		m, err := scanManifest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// WalkManifests implements store.Meta. It loads one repository at a time so
// memory stays bounded by the largest repository, not the registry.
func (db *DB) WalkManifests(ctx context.Context, fn func(string, *store.ManifestRecord) error) error {
	repos, err := db.Repositories(ctx, store.Page{N: -1})
	if err != nil {
		return err
	}
	for _, repo := range repos {
		ms, err := db.manifests(ctx,
			`SELECT `+manifestColumns+` FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE r.name = ? ORDER BY m.digest`, repo)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := db.loadRefs(ctx, repo, m); err != nil {
				return err
			}
			if err := fn(repo, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (db *DB) loadRefs(ctx context.Context, repo string, m *store.ManifestRecord) error {
	rows, err := db.r.QueryContext(ctx,
		`SELECT mr.kind, mr.digest FROM manifest_refs mr JOIN repositories r ON r.id = mr.repo_id
		 WHERE r.name = ? AND mr.manifest = ? ORDER BY mr.kind, mr.digest`, repo, m.Digest.String())
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var kind, d string
		if err := rows.Scan(&kind, &d); err != nil {
			return err
		}
		if kind == "b" {
			m.Blobs = append(m.Blobs, digest.Digest(d))
		} else {
			m.Children = append(m.Children, digest.Digest(d))
		}
	}
	return rows.Err()
}

// Blob implements store.Meta.
func (db *DB) Blob(ctx context.Context, d digest.Digest) (store.BlobRecord, error) {
	b := store.BlobRecord{Digest: d}
	var touched int64
	err := db.r.QueryRowContext(ctx, `SELECT size, touched FROM blobs WHERE digest = ?`, d.String()).Scan(&b.Size, &touched)
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("%w: %s", store.ErrBlobUnknown, d)
	}
	b.Touched = time.Unix(0, touched)
	return b, err
}

// Blobs implements store.Meta.
func (db *DB) Blobs(ctx context.Context) ([]store.BlobRecord, error) {
	return db.blobRecords(ctx, `SELECT digest, size, touched FROM blobs ORDER BY digest`)
}

// UnusedBlobs implements store.Meta.
func (db *DB) UnusedBlobs(ctx context.Context, before time.Time) ([]store.BlobRecord, error) {
	return db.blobRecords(ctx,
		`SELECT digest, size, touched FROM blobs b WHERE touched < ?
		 AND NOT EXISTS (SELECT 1 FROM manifest_refs mr WHERE mr.digest = b.digest AND mr.kind = 'b')
		 ORDER BY digest`, before.UnixNano())
}

func (db *DB) blobRecords(ctx context.Context, q string, args ...any) ([]store.BlobRecord, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.BlobRecord
	for rows.Next() {
		var (
			b       store.BlobRecord
			d       string
			touched int64
		)
		if err := rows.Scan(&d, &b.Size, &touched); err != nil {
			return nil, err
		}
		b.Digest, b.Touched = digest.Digest(d), time.Unix(0, touched)
		out = append(out, b)
	}
	return out, rows.Err()
}

// DeleteBlobIfUnused implements store.Meta.
func (db *DB) DeleteBlobIfUnused(ctx context.Context, d digest.Digest, before time.Time) (bool, error) {
	var deleted bool
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM blobs WHERE digest = ? AND touched < ?
			 AND NOT EXISTS (SELECT 1 FROM manifest_refs WHERE digest = ? AND kind = 'b')`,
			d.String(), before.UnixNano(), d.String())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		deleted = n > 0
		return nil
	})
	return deleted, err
}
