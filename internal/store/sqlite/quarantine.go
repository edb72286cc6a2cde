package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/store"
)

// quarantineArgs are the column values of q for upsertQuarantine, after
// repo_id and the time: digest, pusher, pusher_kind, reason, violations,
// decision_id.
func quarantineArgs(q *store.QuarantineRecord, d digest.Digest) ([]any, error) {
	var violations any
	if len(q.Violations) > 0 {
		b, err := json.Marshal(q.Violations)
		if err != nil {
			return nil, err
		}
		violations = string(b)
	}
	return []any{d.String(), q.Pusher, q.PusherKind, q.Reason, violations, q.DecisionID}, nil
}

// upsertQuarantine writes a quarantine record for repository id, keeping the
// created time of an earlier record of the same manifest.
func upsertQuarantine(ctx context.Context, tx *sql.Tx, id, now int64, args []any) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO quarantine(repo_id, created, decided, digest, pusher, pusher_kind, reason, violations, decision_id)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT(repo_id, digest) DO UPDATE SET decided = excluded.decided, pusher = excluded.pusher,
		   pusher_kind = excluded.pusher_kind, reason = excluded.reason, violations = excluded.violations,
		   decision_id = excluded.decision_id`,
		append([]any{id, now, now}, args...)...)
	return err
}

// Quarantine implements store.Meta.
func (db *DB) Quarantine(ctx context.Context, q *store.QuarantineRecord) error {
	args, err := quarantineArgs(q, q.Digest)
	if err != nil {
		return err
	}
	now := db.nowNano()
	return db.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx,
			`SELECT m.repo_id FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE r.name = ? AND m.digest = ?`,
			q.Repository, q.Digest.String()).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s in %s", store.ErrManifestUnknown, q.Digest, q.Repository)
		}
		if err != nil {
			return err
		}
		return upsertQuarantine(ctx, tx, id, now, args)
	})
}

// Release implements store.Meta.
func (db *DB) Release(ctx context.Context, repo string, d digest.Digest) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM quarantine WHERE digest = ? AND repo_id = (SELECT id FROM repositories WHERE name = ?)`,
			d.String(), repo)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s in %s", store.ErrNotQuarantined, d, repo)
		}
		return nil
	})
}

const quarantineColumns = `r.name, q.digest, q.pusher, q.pusher_kind, q.created, q.decided, q.reason, q.violations, q.decision_id`

func scanQuarantine(row interface{ Scan(...any) error }) (*store.QuarantineRecord, error) {
	var (
		q                store.QuarantineRecord
		d                string
		created, decided int64
		violations       sql.NullString
	)
	if err := row.Scan(&q.Repository, &d, &q.Pusher, &q.PusherKind, &created, &decided, &q.Reason, &violations, &q.DecisionID); err != nil {
		return nil, err
	}
	q.Digest = digest.Digest(d)
	q.Created, q.Decided = time.Unix(0, created), time.Unix(0, decided)
	if violations.Valid {
		if err := json.Unmarshal([]byte(violations.String), &q.Violations); err != nil {
			return nil, fmt.Errorf("quarantine of %s: stored violations: %w", d, err)
		}
	}
	return &q, nil
}

// Quarantined implements store.Meta.
func (db *DB) Quarantined(ctx context.Context, repo string, d digest.Digest) (*store.QuarantineRecord, error) {
	q, err := scanQuarantine(db.r.QueryRowContext(ctx,
		`SELECT `+quarantineColumns+` FROM quarantine q JOIN repositories r ON r.id = q.repo_id
		 WHERE r.name = ? AND q.digest = ?`, repo, d.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return q, err
}

// ListQuarantined implements store.Meta.
func (db *DB) ListQuarantined(ctx context.Context, repo string, p store.Page) ([]*store.QuarantineRecord, error) {
	lastRepo, lastDigest := "", ""
	if p.Last != "" {
		i := strings.LastIndexByte(p.Last, '@')
		if i < 0 {
			return nil, fmt.Errorf("page after %q: want repository@digest", p.Last)
		}
		lastRepo, lastDigest = p.Last[:i], p.Last[i+1:]
	}
	q := `SELECT ` + quarantineColumns + ` FROM quarantine q JOIN repositories r ON r.id = q.repo_id
	      WHERE (r.name > ? OR (r.name = ? AND q.digest > ?))`
	args := []any{lastRepo, lastRepo, lastDigest}
	if repo != "" {
		q += ` AND r.name = ?`
		args = append(args, repo)
	}
	q += ` ORDER BY r.name, q.digest LIMIT ?`
	return db.quarantines(ctx, q, append(args, limit(p))...)
}

func (db *DB) quarantines(ctx context.Context, q string, args ...any) ([]*store.QuarantineRecord, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.QuarantineRecord
	for rows.Next() {
		rec, err := scanQuarantine(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

// blobAccessQuery: the blob's size in the repository, and whether a
// manifest there that is not quarantined references it.
const blobAccessQuery = `SELECT b.size, EXISTS (SELECT 1 FROM manifest_refs mr
	   WHERE mr.repo_id = rb.repo_id AND mr.digest = rb.digest AND mr.kind = 'b'
	   AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.repo_id = mr.repo_id AND q.digest = mr.manifest))
	 FROM repo_blobs rb
	 JOIN repositories r ON r.id = rb.repo_id
	 JOIN blobs b ON b.digest = rb.digest
	 WHERE r.name = ? AND rb.digest = ?`

// BlobAccess implements store.Meta. The common case, a blob some visible
// manifest references, is one query on the repository link and the
// (repo_id, digest) index of manifest_refs.
func (db *DB) BlobAccess(ctx context.Context, repo string, d digest.Digest) (store.BlobAccess, error) {
	var a store.BlobAccess
	err := db.blobAccess.QueryRowContext(ctx, repo, d.String()).Scan(&a.Size, &a.Public)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("%w: %s in %s", store.ErrBlobUnknown, d, repo)
	}
	if err != nil || a.Public {
		return a, err
	}
	a.Quarantined, err = db.quarantines(ctx,
		`SELECT `+quarantineColumns+` FROM manifest_refs mr
		 JOIN repositories r ON r.id = mr.repo_id
		 JOIN quarantine q ON q.repo_id = mr.repo_id AND q.digest = mr.manifest
		 WHERE r.name = ? AND mr.digest = ? AND mr.kind = 'b'
		 ORDER BY q.digest LIMIT 100`, repo, d.String())
	return a, err
}

const manifestQuarantineQuery = `SELECT ` + manifestColumns + `, q.digest, q.pusher, q.pusher_kind, q.created, q.decided, q.reason, q.violations, q.decision_id
	 FROM manifests m JOIN repositories r ON r.id = m.repo_id
	 LEFT JOIN quarantine q ON q.repo_id = m.repo_id AND q.digest = m.digest
	 WHERE r.name = ? AND m.digest = ?`

// ManifestWithQuarantine implements store.Meta.
func (db *DB) ManifestWithQuarantine(ctx context.Context, repo string, d digest.Digest) (*store.ManifestRecord, *store.QuarantineRecord, error) {
	var (
		m                store.ManifestRecord
		md               string
		subject, annots  sql.NullString
		created          int64
		qd, qpusher      sql.NullString
		qkind, qreason   sql.NullString
		qviolations, qid sql.NullString
		qcreated, qdec   sql.NullInt64
	)
	err := db.manifestQuarantine.QueryRowContext(ctx, repo, d.String()).Scan(
		&md, &m.MediaType, &m.ArtifactType, &subject, &annots, &m.Content, &created,
		&qd, &qpusher, &qkind, &qcreated, &qdec, &qreason, &qviolations, &qid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("%w: %s in %s", store.ErrManifestUnknown, d, repo)
	}
	if err != nil {
		return nil, nil, err
	}
	m.Digest, m.Subject, m.Created = digest.Digest(md), digest.Digest(subject.String), time.Unix(0, created)
	if annots.Valid {
		if err := json.Unmarshal([]byte(annots.String), &m.Annotations); err != nil {
			return nil, nil, fmt.Errorf("manifest %s: stored annotations: %w", md, err)
		}
	}
	if !qd.Valid {
		return &m, nil, nil
	}
	q := &store.QuarantineRecord{Repository: repo, Digest: m.Digest, Pusher: qpusher.String, PusherKind: qkind.String,
		Created: time.Unix(0, qcreated.Int64), Decided: time.Unix(0, qdec.Int64), Reason: qreason.String, DecisionID: qid.String}
	if qviolations.Valid {
		if err := json.Unmarshal([]byte(qviolations.String), &q.Violations); err != nil {
			return nil, nil, fmt.Errorf("quarantine of %s: stored violations: %w", md, err)
		}
	}
	return &m, q, nil
}

// BlobManifests implements store.Meta.
func (db *DB) BlobManifests(ctx context.Context, repo string, d digest.Digest, limit int) ([]digest.Digest, error) {
	names, err := db.strings(ctx,
		`SELECT mr.manifest FROM manifest_refs mr
		 JOIN repositories r ON r.id = mr.repo_id
		 WHERE r.name = ? AND mr.digest = ? AND mr.kind = 'b'
		   AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.repo_id = mr.repo_id AND q.digest = mr.manifest)
		 ORDER BY mr.manifest LIMIT ?`, repo, d.String(), limit)
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, len(names))
	for i, n := range names {
		out[i] = digest.Digest(n)
	}
	return out, nil
}
