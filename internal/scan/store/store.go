// Package store keeps what the registry's scanner found per image
// manifest digest, in DATA/scan.db: the SBOM, the image lint's findings
// and the vulnerability report, with the report's findings also in rows of
// their own (what policy facts and the running-container view read
// without decoding reports). Handler and Client serve stored results over
// HTTP (/scan/v1/).
//
// Results are per digest, not per repository: the same content scanned
// once is the same result wherever it was pushed. Who may read a result
// is decided by the caller of this package (the registry's permissions on
// a repository that holds the digest).
//
// Several processes may open the file: the server writes, `bulwark
// report --data` reads (WAL; readers never wait for the writer).
package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/bulwark-dev/bulwark/internal/scan/lint"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/sqlitedb"
)

//go:embed schema.sql
var schema string

// schemaVersion is the PRAGMA user_version schema.sql sets.
const schemaVersion = 1

// FileName is the store's file in the data directory.
const FileName = "scan.db"

// Path is where a data directory keeps scan results.
func Path(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Errors callers branch on.
var (
	// ErrNotFound: the image has no stored result (not scanned yet, not
	// an image, or unknown).
	ErrNotFound = errors.New("no scan result for this image")
	// ErrNoStore: a read-only Open found no store file.
	ErrNoStore = errors.New("no scan results in this data directory (bulwark serve scans pushed images and keeps them in DATA/scan.db)")
)

// States of a stored image.
const (
	// StateScanned: the SBOM and lint are stored; the report is there
	// once a vulnerability database was (Image.Generation >= 0).
	StateScanned = "scanned"
	// StateFailed: the scan failed (Image.Error, Image.Attempts).
	StateFailed = "failed"
)

// Store is an open scan.db.
type Store struct {
	path string
	w    *sql.DB // one connection; nil when read-only
	r    *sql.DB
	now  func() time.Time
}

// Options tune Open.
type Options struct {
	// ReadOnly opens an existing store for reading; a missing file is
	// ErrNoStore.
	ReadOnly bool
	// Now is the clock (tests).
	Now func() time.Time
}

// Open opens (creating unless ReadOnly) the store at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Scan results can be recomputed: synchronous=NORMAL (a power failure
	// may lose the last results, never corrupt the file).
	p, err := sqlitedb.OpenPair(ctx, path, sqlitedb.PairOptions{What: "scan store", Schema: schema, Version: schemaVersion,
		Synchronous: "NORMAL", ForeignKeys: true, ReadOnly: opts.ReadOnly, Missing: ErrNoStore})
	if err != nil {
		return nil, err
	}
	return &Store{path: path, now: opts.Now, w: p.W, r: p.R}, nil
}

// Close closes the store.
func (s *Store) Close() error { return (&sqlitedb.Pair{W: s.w, R: s.r}).Close() }

var errReadOnly = errors.New("scan store: opened read-only")

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.w == nil {
		return errReadOnly
	}
	return sqlitedb.Tx(ctx, s.w, "scan store", fn)
}

// Image is the bookkeeping of one stored image.
type Image struct {
	Digest   digest.Digest `json:"digest"`
	State    string        `json:"state"`
	Error    string        `json:"error,omitempty"`
	Attempts int           `json:"attempts,omitempty"`
	// Scanned is when the SBOM was made; Matched when the report was
	// (zero: never, for lack of a vulnerability database).
	Scanned time.Time `json:"scanned,omitzero"`
	Matched time.Time `json:"matched,omitzero"`
	// Generation is the vulnerability database generation the report
	// answers for; -1 when there is no report.
	Generation int64 `json:"generation"`
	// DatabaseUpdated is when that generation was imported.
	DatabaseUpdated time.Time `json:"databaseUpdated,omitzero"`
	Updated         time.Time `json:"updated"`
}

// HasReport reports whether the image has a vulnerability report.
func (im *Image) HasReport() bool { return im.State == StateScanned && im.Generation >= 0 }

// Scan is a completed scan to store.
type Scan struct {
	Digest       digest.Digest
	Repositories []string
	SBOM         *sbom.SBOM
	Lint         []lint.Finding
	// Problems are the files the walk could not read.
	Problems []string
	// Report is the vulnerability report; nil when there was no database
	// to match against.
	Report *vulndb.Report
}

// Matched is a re-matched SBOM's new report.
type Matched struct {
	Digest digest.Digest
	Report *vulndb.Report
}

// Change is what storing a report changed for one image.
type Change struct {
	Digest digest.Digest
	// Added and Removed are the findings (advisory, package) the report
	// has that the previous one had not, and the reverse (vulndb.Diff).
	Added, Removed []vulndb.Finding
	// First says the image had no report before: every finding is new to
	// the store, though not necessarily a new advisory.
	First bool
}

// Changed reports whether the findings changed.
func (c *Change) Changed() bool { return len(c.Added)+len(c.Removed) > 0 }

// Finding is one stored finding: an advisory affecting a package of the
// image.
type Finding struct {
	ID string `json:"id"`
	// Severity is the rating's name (CRITICAL, HIGH, MEDIUM, LOW,
	// UNKNOWN).
	Severity string `json:"severity"`
	Package  string `json:"package"`
	Version  string `json:"version"`
	PURL     string `json:"purl"`
	// Fixed is the first version that fixes it; "" when none is known.
	Fixed string `json:"fixed,omitempty"`
	// FirstSeen is when this image's report first had the finding.
	FirstSeen time.Time `json:"firstSeen"`
	// FixSince is since when the fix is known to be available: the
	// advisory's publication date when its record has one, else when this
	// registry first saw the advisory with this fixed version (any
	// image), whichever is earlier. Zero without a fix.
	FixSince time.Time `json:"fixSince,omitzero"`
}

// Facts are what a policy decision reads about an image.
type Facts struct {
	Image Image
	// Findings are the report's (nil when there is none).
	Findings []Finding
	Lint     []lint.Finding
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encodeReport encodes a report for storage without its database
// reference (kept in columns), and returns the encoding's SHA-256: the
// same findings, notes and packages give the same sum whatever the
// generation, so a re-match that changes nothing rewrites nothing.
func encodeReport(r *vulndb.Report) ([]byte, string, error) {
	c := *r
	c.Database = vulndb.DatabaseRef{}
	b, err := encode(&c)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// PutScan stores a completed scan, replacing what the image had, and
// returns what its report changed.
func (s *Store) PutScan(ctx context.Context, sc *Scan) (Change, error) {
	ch := Change{Digest: sc.Digest}
	if err := sc.Digest.Validate(); err != nil {
		return ch, fmt.Errorf("scan store: %w", err)
	}
	if sc.SBOM == nil {
		return ch, errors.New("scan store: a scan without an SBOM")
	}
	// Compact, not sbom.Encode's indented form: a re-match decodes
	// every stored SBOM.
	sb, err := encode(sc.SBOM)
	if err != nil {
		return ch, err
	}
	lintJSON, err := encode(nonNilLint(sc.Lint))
	if err != nil {
		return ch, err
	}
	var problems []byte
	if len(sc.Problems) > 0 {
		if problems, err = encode(sc.Problems); err != nil {
			return ch, err
		}
	}
	var (
		report    []byte
		reportSum string
	)
	gen, matched, dbUpdated := int64(-1), int64(0), int64(0)
	now := s.now()
	if sc.Report != nil {
		if report, reportSum, err = encodeReport(sc.Report); err != nil {
			return ch, err
		}
		gen, matched, dbUpdated = sc.Report.Database.Generation, nanos(now), nanos(sc.Report.Database.UpdatedAt)
	}
	scanned := sc.SBOM.Created
	if scanned.IsZero() {
		scanned = now
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		prevGen := int64(-1)
		if err := tx.QueryRowContext(ctx, `SELECT generation FROM images WHERE digest = ? AND state = 'scanned'`, sc.Digest.String()).Scan(&prevGen); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("scan store: %w", err)
		}
		var id int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO images (digest, state, error, attempts, scanned, matched, generation, db_updated, report_sum, updated)
			VALUES (?, 'scanned', '', 0, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (digest) DO UPDATE SET state = 'scanned', error = '', attempts = 0, scanned = excluded.scanned,
				matched = excluded.matched, generation = excluded.generation, db_updated = excluded.db_updated,
				report_sum = excluded.report_sum, updated = excluded.updated
			RETURNING id`, sc.Digest.String(), nanos(scanned), matched, gen, dbUpdated, reportSum, nanos(now)).Scan(&id); err != nil {
			return fmt.Errorf("scan store: store %s: %w", sc.Digest, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO documents (image, sbom, lint, report, problems) VALUES (?, ?, ?, ?, ?)`,
			id, sb, lintJSON, nullBytes(report), nullBytes(problems)); err != nil {
			return fmt.Errorf("scan store: store %s: %w", sc.Digest, err)
		}
		if err := addRepos(ctx, tx, sc.Digest, sc.Repositories); err != nil {
			return err
		}
		if sc.Report == nil {
			_, err := tx.ExecContext(ctx, `DELETE FROM findings WHERE image = ?`, id)
			return err
		}
		w, err := newFindingWriter(ctx, tx, now)
		if err != nil {
			return err
		}
		defer w.close()
		ch, err = w.replace(id, sc.Digest, sc.Report, prevGen < 0)
		return err
	})
	return ch, err
}

func nonNilLint(fs []lint.Finding) []lint.Finding {
	if fs == nil {
		return []lint.Finding{}
	}
	return fs
}

// nullBytes stores nil as SQL NULL, not as an empty blob.
func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// PutReports stores re-matched reports (vulndb.Rematch) in one
// transaction and returns, per image, what changed. A report equal to the
// stored one but for its database generation only moves the generation;
// an image deleted meanwhile is skipped.
func (s *Store) PutReports(ctx context.Context, ms []Matched) ([]Change, error) {
	type encoded struct {
		b   []byte
		sum string
	}
	enc := make([]encoded, len(ms))
	for i, m := range ms {
		b, sum, err := encodeReport(m.Report)
		if err != nil {
			return nil, err
		}
		enc[i] = encoded{b, sum}
	}
	var out []Change
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		w, err := newFindingWriter(ctx, tx, now)
		if err != nil {
			return err
		}
		defer w.close()
		for i, m := range ms {
			var (
				id, prevGen int64
				prevSum     string
			)
			err = tx.QueryRowContext(ctx, `SELECT id, generation, report_sum FROM images WHERE digest = ? AND state = 'scanned'`,
				m.Digest.String()).Scan(&id, &prevGen, &prevSum)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("scan store: %w", err)
			}
			db := m.Report.Database
			if _, err := tx.ExecContext(ctx, `UPDATE images SET matched = ?, generation = ?, db_updated = ?, report_sum = ?, updated = ? WHERE id = ?`,
				nanos(now), db.Generation, nanos(db.UpdatedAt), enc[i].sum, nanos(now), id); err != nil {
				return fmt.Errorf("scan store: %w", err)
			}
			if prevGen >= 0 && prevSum == enc[i].sum {
				out = append(out, Change{Digest: m.Digest})
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE documents SET report = ? WHERE image = ?`, enc[i].b, id); err != nil {
				return fmt.Errorf("scan store: %w", err)
			}
			ch, err := w.replace(id, m.Digest, m.Report, prevGen < 0)
			if err != nil {
				return err
			}
			out = append(out, ch)
		}
		return nil
	})
	return out, err
}

// findingWriter brings an image's finding rows in line with a new
// report within one transaction: rows of findings that stay are kept as
// they are (with their first_seen), so a re-match that changes a few
// findings writes a few rows; fixes are recorded when first seen.
type findingWriter struct {
	ctx                     context.Context
	tx                      *sql.Tx
	now                     int64
	old, del, ins, upd, fix *sql.Stmt
	fixesSeen               map[string]bool
}

func newFindingWriter(ctx context.Context, tx *sql.Tx, now time.Time) (*findingWriter, error) {
	w := &findingWriter{ctx: ctx, tx: tx, now: nanos(now), fixesSeen: map[string]bool{}}
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{
		{&w.old, `SELECT vuln, purl, package, version, severity, fixed FROM findings WHERE image = ?`},
		{&w.del, `DELETE FROM findings WHERE image = ? AND vuln = ? AND purl = ?`},
		{&w.ins, `INSERT INTO findings (image, vuln, purl, package, version, severity, fixed, first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.upd, `UPDATE findings SET package = ?, version = ?, severity = ?, fixed = ? WHERE image = ? AND vuln = ? AND purl = ?`},
		{&w.fix, `INSERT INTO fixes (vuln, fixed, first_seen) VALUES (?, ?, ?)
			ON CONFLICT (vuln, fixed) DO UPDATE SET first_seen = excluded.first_seen WHERE excluded.first_seen < fixes.first_seen`},
	} {
		st, err := tx.PrepareContext(ctx, p.q)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("scan store: %w", err)
		}
		*p.st = st
	}
	return w, nil
}

func (w *findingWriter) close() {
	for _, st := range []*sql.Stmt{w.old, w.del, w.ins, w.upd, w.fix} {
		if st != nil {
			st.Close()
		}
	}
}

func findingKey(id, purl string) string { return id + "\x00" + purl }

// row is a finding's stored columns but first_seen.
type row struct{ pkg, version, severity, fixed string }

func (w *findingWriter) replace(id int64, d digest.Digest, r *vulndb.Report, first bool) (Change, error) {
	ch := Change{Digest: d, First: first}
	rows, err := w.old.QueryContext(w.ctx, id)
	if err != nil {
		return ch, fmt.Errorf("scan store: %w", err)
	}
	old := map[string]row{}
	prev := &vulndb.Report{}
	for rows.Next() {
		var f vulndb.Finding
		var o row
		if err := rows.Scan(&f.ID, &f.Package.PURL, &o.pkg, &o.version, &o.severity, &o.fixed); err != nil {
			rows.Close()
			return ch, fmt.Errorf("scan store: %w", err)
		}
		old[findingKey(f.ID, f.Package.PURL)] = o
		prev.Findings = append(prev.Findings, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ch, fmt.Errorf("scan store: %w", err)
	}
	if first {
		prev = nil
	}
	ch.Added, ch.Removed = vulndb.Diff(prev, r)
	for _, f := range ch.Removed {
		if _, err := w.del.ExecContext(w.ctx, id, f.ID, f.Package.PURL); err != nil {
			return ch, fmt.Errorf("scan store: %w", err)
		}
	}
	done := make(map[string]bool, len(r.Findings))
	for _, f := range r.Findings {
		k := findingKey(f.ID, f.Package.PURL)
		if done[k] {
			continue // the same advisory for the same package twice (two ecosystems)
		}
		done[k] = true
		n := row{f.Package.Name, f.Package.Version, f.Severity.Rating.String(), f.Fixed}
		o, had := old[k]
		switch {
		case !had:
			_, err = w.ins.ExecContext(w.ctx, id, f.ID, f.Package.PURL, n.pkg, n.version, n.severity, n.fixed, w.now)
		case o != n:
			_, err = w.upd.ExecContext(w.ctx, n.pkg, n.version, n.severity, n.fixed, id, f.ID, f.Package.PURL)
		default:
			// Unchanged: its fix was recorded when it was written, but
			// an advisory may have gained a publication date since (a
			// database upgraded from schema 1, a corrected record).
			if f.Published.IsZero() {
				continue
			}
		}
		if err != nil {
			return ch, fmt.Errorf("scan store: %w", err)
		}
		if err := w.recordFix(f); err != nil {
			return ch, err
		}
	}
	return ch, nil
}

// earliestAdvisory bounds publication dates taken from records: an
// earlier one is a mistake (or hostile), and would not fit in UnixNano.
var earliestAdvisory = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)

// recordFix notes since when a fix of f's advisory is known: its
// publication date when the record has one (and it is not in the future),
// else now; an earlier date already stored stays. Once per (advisory,
// fixed version) per transaction.
func (w *findingWriter) recordFix(f vulndb.Finding) error {
	if f.Fixed == "" {
		return nil
	}
	fk := findingKey(f.ID, f.Fixed)
	if w.fixesSeen[fk] {
		return nil
	}
	w.fixesSeen[fk] = true
	since := w.now
	if f.Published.After(earliestAdvisory) {
		if p := f.Published.UnixNano(); p < since {
			since = p
		}
	}
	if _, err := w.fix.ExecContext(w.ctx, f.ID, f.Fixed, since); err != nil {
		return fmt.Errorf("scan store: %w", err)
	}
	return nil
}

// PutFailure records a failed scan and returns how many times the image
// has failed.
func (s *Store) PutFailure(ctx context.Context, d digest.Digest, repos []string, reason string) (int, error) {
	if len(reason) > 2048 {
		reason = strings.ToValidUTF8(reason[:2048], "") + "…"
	}
	attempts := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `INSERT INTO images (digest, state, error, attempts, updated) VALUES (?, 'failed', ?, 1, ?)
			ON CONFLICT (digest) DO UPDATE SET state = 'failed', error = excluded.error, attempts = attempts + 1, updated = excluded.updated
			RETURNING attempts`, d.String(), reason, nanos(s.now())).Scan(&attempts); err != nil {
			return fmt.Errorf("scan store: %w", err)
		}
		return addRepos(ctx, tx, d, repos)
	})
	return attempts, err
}

func addRepos(ctx context.Context, tx *sql.Tx, d digest.Digest, repos []string) error {
	for _, r := range repos {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO image_repos (digest, repository) VALUES (?, ?)`, d.String(), r); err != nil {
			return fmt.Errorf("scan store: %w", err)
		}
	}
	return nil
}

// AddRepositories records more repositories an image was pushed to.
func (s *Store) AddRepositories(ctx context.Context, d digest.Digest, repos []string) error {
	if len(repos) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error { return addRepos(ctx, tx, d, repos) })
}

// Repositories lists the repositories an image was pushed to, sorted.
func (s *Store) Repositories(ctx context.Context, d digest.Digest) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT repository FROM image_repos WHERE digest = ? ORDER BY repository`, d.String())
	if err != nil {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("scan store: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RepoDigest names a manifest in a repository.
type RepoDigest struct {
	Repository string
	Digest     digest.Digest
}

// SetIndex records the platform manifests an index in repo lists.
func (s *Store) SetIndex(ctx context.Context, repo string, index digest.Digest, children []digest.Digest) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, c := range children {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO index_children (child, repository, idx) VALUES (?, ?, ?)`,
				c.String(), repo, index.String()); err != nil {
				return fmt.Errorf("scan store: %w", err)
			}
		}
		return nil
	})
}

// Indexes lists the indexes (and their repositories) that list child.
func (s *Store) Indexes(ctx context.Context, child digest.Digest) ([]RepoDigest, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT repository, idx FROM index_children WHERE child = ? ORDER BY repository, idx`, child.String())
	if err != nil {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	defer rows.Close()
	var out []RepoDigest
	for rows.Next() {
		var rd RepoDigest
		var d string
		if err := rows.Scan(&rd.Repository, &d); err != nil {
			return nil, fmt.Errorf("scan store: %w", err)
		}
		rd.Digest = digest.Digest(d)
		out = append(out, rd)
	}
	return out, rows.Err()
}

const imageColumns = `digest, state, error, attempts, scanned, matched, generation, db_updated, updated`

func scanImage(row interface{ Scan(...any) error }) (Image, error) {
	var im Image
	var d string
	var scanned, matched, dbUpdated, updated int64
	if err := row.Scan(&d, &im.State, &im.Error, &im.Attempts, &scanned, &matched, &im.Generation, &dbUpdated, &updated); err != nil {
		return im, err
	}
	im.Digest = digest.Digest(d)
	im.Scanned, im.Matched, im.Updated = fromNanos(scanned), fromNanos(matched), fromNanos(updated)
	im.DatabaseUpdated = fromNanos(dbUpdated)
	return im, nil
}

// Image returns an image's bookkeeping, ErrNotFound when none.
func (s *Store) Image(ctx context.Context, d digest.Digest) (Image, error) {
	im, err := scanImage(s.r.QueryRowContext(ctx, `SELECT `+imageColumns+` FROM images WHERE digest = ?`, d.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return im, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return im, fmt.Errorf("scan store: %w", err)
	}
	return im, nil
}

// Images lists every stored image's bookkeeping.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+imageColumns+` FROM images ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	defer rows.Close()
	var out []Image
	for rows.Next() {
		im, err := scanImage(rows)
		if err != nil {
			return nil, fmt.Errorf("scan store: %w", err)
		}
		out = append(out, im)
	}
	return out, rows.Err()
}

// Stale lists the scanned images whose report does not answer for
// database generation gen (all scanned images when all is set), in the
// order they were first stored.
func (s *Store) Stale(ctx context.Context, gen int64, all bool) ([]digest.Digest, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT digest FROM images WHERE state = 'scanned' AND (? OR generation != ?) ORDER BY id`, all, gen)
	if err != nil {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	defer rows.Close()
	var out []digest.Digest
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("scan store: %w", err)
		}
		out = append(out, digest.Digest(d))
	}
	return out, rows.Err()
}

// SBOMs returns the stored SBOMs of ds, in the order of ds; an image
// without one (deleted meanwhile) is left out.
func (s *Store) SBOMs(ctx context.Context, ds []digest.Digest) ([]*sbom.SBOM, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	args := make([]any, len(ds))
	for i, d := range ds {
		args[i] = d.String()
	}
	rows, err := s.r.QueryContext(ctx, `SELECT i.digest, d.sbom FROM images i JOIN documents d ON d.image = i.id
		WHERE d.sbom IS NOT NULL AND i.digest IN (?`+strings.Repeat(", ?", len(ds)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	defer rows.Close()
	byDigest := make(map[string]*sbom.SBOM, len(ds))
	for rows.Next() {
		var d string
		var b []byte
		if err := rows.Scan(&d, &b); err != nil {
			return nil, fmt.Errorf("scan store: %w", err)
		}
		sb, err := sbom.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("scan store: stored SBOM of %s: %w", d, err)
		}
		byDigest[d] = sb
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	out := make([]*sbom.SBOM, 0, len(ds))
	for _, d := range ds {
		if sb, ok := byDigest[d.String()]; ok {
			out = append(out, sb)
		}
	}
	return out, nil
}

// SBOM returns an image's stored SBOM.
func (s *Store) SBOM(ctx context.Context, d digest.Digest) (*sbom.SBOM, error) {
	out, err := s.SBOMs(ctx, []digest.Digest{d})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	return out[0], nil
}

// Findings returns an image's stored findings, by severity (highest
// first), then advisory and package.
func (s *Store) Findings(ctx context.Context, d digest.Digest) ([]Finding, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT f.vuln, f.severity, f.package, f.version, f.purl, f.fixed, f.first_seen, COALESCE(x.first_seen, 0)
		FROM images i JOIN findings f ON f.image = i.id LEFT JOIN fixes x ON x.vuln = f.vuln AND x.fixed = f.fixed AND f.fixed != ''
		WHERE i.digest = ?`, d.String())
	if err != nil {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	defer rows.Close()
	out := []Finding{}
	for rows.Next() {
		var f Finding
		var first, fix int64
		if err := rows.Scan(&f.ID, &f.Severity, &f.Package, &f.Version, &f.PURL, &f.Fixed, &first, &fix); err != nil {
			return nil, fmt.Errorf("scan store: %w", err)
		}
		f.FirstSeen, f.FixSince = fromNanos(first), fromNanos(fix)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	SortFindings(out)
	return out, nil
}

// Facts returns what a policy decision reads about an image: ErrNotFound
// when it has no stored result.
func (s *Store) Facts(ctx context.Context, d digest.Digest) (*Facts, error) {
	im, err := s.Image(ctx, d)
	if err != nil {
		return nil, err
	}
	f := &Facts{Image: im}
	if im.State != StateScanned {
		return f, nil
	}
	var lintJSON []byte
	if err := s.r.QueryRowContext(ctx, `SELECT d.lint FROM documents d JOIN images i ON i.id = d.image WHERE i.digest = ?`,
		d.String()).Scan(&lintJSON); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	if len(lintJSON) > 0 {
		if err := json.Unmarshal(lintJSON, &f.Lint); err != nil {
			return nil, fmt.Errorf("scan store: stored lint of %s: %w", d, err)
		}
	}
	if im.HasReport() {
		if f.Findings, err = s.Findings(ctx, d); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Result is an image's stored scan as the API returns it.
type Result struct {
	Image
	// Findings are the report's, one per (advisory, package); empty
	// without a report (Generation -1).
	Findings []Finding      `json:"findings"`
	Lint     []lint.Finding `json:"lint"`
	// Report is the whole vulnerability report (aliases, summaries,
	// layers, notes); absent without a database.
	Report   *vulndb.Report `json:"report,omitempty"`
	Problems []string       `json:"problems,omitempty"`
}

// Result returns an image's stored result.
func (s *Store) Result(ctx context.Context, d digest.Digest) (*Result, error) {
	f, err := s.Facts(ctx, d)
	if err != nil {
		return nil, err
	}
	res := &Result{Image: f.Image, Findings: f.Findings, Lint: nonNilLint(f.Lint)}
	if res.Findings == nil {
		res.Findings = []Finding{}
	}
	var report, problems []byte
	if err := s.r.QueryRowContext(ctx, `SELECT d.report, d.problems FROM documents d JOIN images i ON i.id = d.image WHERE i.digest = ?`,
		d.String()).Scan(&report, &problems); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	if len(report) > 0 {
		res.Report = &vulndb.Report{}
		if err := json.Unmarshal(report, res.Report); err != nil {
			return nil, fmt.Errorf("scan store: stored report of %s: %w", d, err)
		}
		res.Report.Database = vulndb.DatabaseRef{Generation: f.Image.Generation, UpdatedAt: f.Image.DatabaseUpdated}
	}
	if len(problems) > 0 {
		if err := json.Unmarshal(problems, &res.Problems); err != nil {
			return nil, fmt.Errorf("scan store: stored problems of %s: %w", d, err)
		}
	}
	return res, nil
}

// Delete forgets images (content the registry no longer holds).
func (s *Store) Delete(ctx context.Context, ds []digest.Digest) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, d := range ds {
			for _, q := range []string{
				`DELETE FROM findings WHERE image = (SELECT id FROM images WHERE digest = ?)`,
				`DELETE FROM images WHERE digest = ?`, // documents cascade
				`DELETE FROM image_repos WHERE digest = ?`,
				`DELETE FROM index_children WHERE child = ? OR idx = ?1`,
			} {
				if _, err := tx.ExecContext(ctx, q, d.String()); err != nil {
					return fmt.Errorf("scan store: %w", err)
				}
			}
		}
		return nil
	})
}

// Stats counts stored images.
type Stats struct {
	Scanned  int `json:"scanned"`
	Failed   int `json:"failed"`
	Reported int `json:"reported"` // with a vulnerability report
	Findings int `json:"findings"`
}

// Stats counts what is stored.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM images WHERE state = 'scanned'),
		(SELECT COUNT(*) FROM images WHERE state = 'failed'),
		(SELECT COUNT(*) FROM images WHERE state = 'scanned' AND generation >= 0),
		(SELECT COUNT(*) FROM findings)`).Scan(&st.Scanned, &st.Failed, &st.Reported, &st.Findings)
	if err != nil {
		return st, fmt.Errorf("scan store: %w", err)
	}
	return st, nil
}
