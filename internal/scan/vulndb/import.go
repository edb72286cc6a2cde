package vulndb

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
)

// MaxZipEntries bounds the entries of one zip export (osv.dev's largest
// ecosystems hold a few hundred thousand records).
const MaxZipEntries = 5_000_000

// maxErrors is how many rejection messages an import keeps.
const maxErrors = 20

// ImportOptions tune an import.
type ImportOptions struct {
	// Strict fails the import (nothing is stored) at the first invalid
	// record; otherwise invalid records are counted, reported and skipped.
	Strict bool
	Logger *slog.Logger
}

// ImportResult says what an import did.
type ImportResult struct {
	Source string `json:"source"`
	// Files is the number of JSON documents read.
	Files int `json:"files"`
	// Records is the number of valid records read.
	Records int `json:"records"`
	// Added and Updated records changed the database; Unchanged were
	// already there with the same content; Older were not stored because
	// the database holds a newer version (by "modified") of the record.
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Older     int `json:"older"`
	// Withdrawn records were removed (or never stored).
	Withdrawn int `json:"withdrawn"`
	// Rejected records or documents were invalid; Errors has the first few
	// reasons.
	Rejected int      `json:"rejected"`
	Errors   []string `json:"errors,omitempty"`
	// Ecosystems counts affected packages read per ecosystem.
	Ecosystems map[string]int `json:"ecosystems"`
	// Generation is the database generation after the import.
	Generation int64         `json:"generation"`
	Duration   time.Duration `json:"durationNs"`
}

// ErrRejected is returned by a strict import that met an invalid record.
var ErrRejected = errors.New("invalid OSV record")

// Import reads OSV records from path — a JSON file (one record or an
// array), a directory (searched recursively for *.json and *.zip), or a
// zip export such as osv.dev's per-ecosystem all.zip — and stores them in
// one transaction: concurrent readers see the whole import or none of it.
// A record replaces a stored one with the same id unless the stored one is
// newer; withdrawn records are removed.
func (db *DB) Import(ctx context.Context, path string, opts ImportOptions) (*ImportResult, error) {
	if db.w == nil {
		return nil, errors.New("vulnerability database is open read-only")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin import: %w", err)
	}
	defer tx.Rollback()
	imp, err := newImporter(ctx, tx)
	if err != nil {
		return nil, err
	}
	defer imp.close()
	res := &ImportResult{Source: abs, Ecosystems: map[string]int{}}
	imp.res, imp.strict, imp.log = res, opts.Strict, opts.Logger

	if imp.sourceID, err = upsertSource(ctx, tx, abs, db.now()); err != nil {
		return nil, err
	}
	switch {
	case st.IsDir():
		err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".json":
				return imp.file(p)
			case ".zip":
				return imp.zip(p)
			}
			return nil
		})
	case strings.EqualFold(filepath.Ext(abs), ".zip"):
		err = imp.zip(abs)
	default:
		err = imp.file(abs)
	}
	if err != nil {
		return nil, err
	}
	if res.Files == 0 {
		return nil, fmt.Errorf("import %s: no OSV JSON documents found", path)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sources SET records = ?, rejected = ? WHERE id = ?`, res.Records, res.Rejected, imp.sourceID); err != nil {
		return nil, err
	}
	gen, err := generation(ctx, tx)
	if err != nil {
		return nil, err
	}
	if res.Added+res.Updated+imp.removed > 0 {
		gen++
		for k, v := range map[string]string{"generation": strconv.FormatInt(gen, 10), "updated_at": db.now().UTC().Format(time.RFC3339Nano)} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
				return nil, err
			}
		}
	}
	res.Generation = gen
	imp.close()
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit import: %w", err)
	}
	// Fold the import's WAL back into the database now rather than at a
	// reader's expense later.
	db.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	res.Duration = time.Since(start)
	opts.Logger.Info("vulndb import", "source", abs, "records", res.Records, "added", res.Added, "updated", res.Updated, "rejected", res.Rejected, "generation", gen, "duration", res.Duration)
	return res, nil
}

func generation(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int64, error) {
	var g int64
	err := q.QueryRowContext(ctx, `SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'`).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return g, err
}

func upsertSource(ctx context.Context, tx *sql.Tx, path string, now time.Time) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO sources(path, imported_at, records, rejected) VALUES (?, ?, 0, 0)
		ON CONFLICT(path) DO UPDATE SET imported_at = excluded.imported_at RETURNING id`, path, now.UTC().Format(time.RFC3339Nano)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record import source: %w", err)
	}
	return id, nil
}

type importer struct {
	ctx      context.Context
	res      *ImportResult
	strict   bool
	log      *slog.Logger
	sourceID int64
	removed  int // withdrawn records that were stored

	getDigest, delAffected, delAliases, delVuln, putVuln, putAffected, putAlias *sql.Stmt
}

func newImporter(ctx context.Context, tx *sql.Tx) (*importer, error) {
	imp := &importer{ctx: ctx}
	for _, s := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&imp.getDigest, `SELECT modified, digest FROM vulns WHERE id = ?`},
		{&imp.delAffected, `DELETE FROM affected WHERE vuln = ?`},
		{&imp.delAliases, `DELETE FROM aliases WHERE vuln = ?`},
		{&imp.delVuln, `DELETE FROM vulns WHERE id = ?`},
		{&imp.putVuln, `INSERT OR REPLACE INTO vulns(id, modified, published, digest, aliases, summary, url, severity, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&imp.putAffected, `INSERT INTO affected(ecosystem, name, vuln, data) VALUES (?, ?, ?, ?)`},
		{&imp.putAlias, `INSERT OR IGNORE INTO aliases(alias, vuln) VALUES (?, ?)`},
	} {
		st, err := tx.PrepareContext(ctx, s.sql)
		if err != nil {
			imp.close()
			return nil, fmt.Errorf("prepare import: %w", err)
		}
		*s.stmt = st
	}
	return imp, nil
}

func (imp *importer) close() {
	for _, st := range []*sql.Stmt{imp.getDigest, imp.delAffected, imp.delAliases, imp.delVuln, imp.putVuln, imp.putAffected, imp.putAlias} {
		if st != nil {
			st.Close()
		}
	}
}

// reject counts an invalid document or record; in strict mode it is fatal.
func (imp *importer) reject(name string, err error) error {
	imp.res.Rejected++
	msg := name + ": " + err.Error()
	if imp.strict {
		return fmt.Errorf("%w: %s", ErrRejected, msg)
	}
	if len(imp.res.Errors) < maxErrors {
		imp.res.Errors = append(imp.res.Errors, msg)
	}
	imp.log.Warn("vulndb import: record rejected", "record", name, "err", err)
	return nil
}

func (imp *importer) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return imp.read(path, f)
}

// read reads one document of at most osv.MaxRecordSize bytes.
func (imp *importer) read(name string, r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, osv.MaxRecordSize+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	imp.res.Files++
	if len(data) > osv.MaxRecordSize {
		return imp.reject(name, fmt.Errorf("%w: larger than %d bytes", osv.ErrInvalid, osv.MaxRecordSize))
	}
	return imp.document(name, data)
}

func (imp *importer) zip(path string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("open zip %s: %w", path, err)
	}
	defer zr.Close()
	if len(zr.File) > MaxZipEntries {
		return fmt.Errorf("zip %s: more than %d entries", path, MaxZipEntries)
	}
	for _, f := range zr.File {
		if err := imp.ctx.Err(); err != nil {
			return err
		}
		if f.FileInfo().IsDir() || !strings.EqualFold(filepath.Ext(f.Name), ".json") {
			continue
		}
		name := path + "!" + f.Name
		// The header's size is checked first to skip a bomb without
		// inflating it; read() re-checks what is actually inflated.
		if f.UncompressedSize64 > osv.MaxRecordSize {
			imp.res.Files++
			if err := imp.reject(name, fmt.Errorf("%w: larger than %d bytes", osv.ErrInvalid, osv.MaxRecordSize)); err != nil {
				return err
			}
			continue
		}
		rc, err := f.Open()
		if err != nil {
			imp.res.Files++
			if err := imp.reject(name, err); err != nil {
				return err
			}
			continue
		}
		err = imp.read(name, rc)
		rc.Close()
		if err != nil {
			if errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrAlgorithm) {
				if err := imp.reject(name, err); err != nil {
					return err
				}
				continue
			}
			return err
		}
	}
	return nil
}

func (imp *importer) document(name string, data []byte) error {
	vs, err := osv.Parse(data)
	if err != nil {
		return imp.reject(name, err)
	}
	for i := range vs {
		if err := imp.record(&vs[i], data, len(vs) == 1); err != nil {
			return err
		}
	}
	return nil
}

// storedAffected is one affected package as the matcher reads it.
type storedAffected struct {
	Ranges   []osv.Range `json:"r,omitempty"`
	Versions []string    `json:"v,omitempty"`
	Severity osv.Score   `json:"s"`
}

func (imp *importer) record(v *osv.Vulnerability, doc []byte, wholeDoc bool) error {
	ctx := imp.ctx
	imp.res.Records++
	for _, a := range v.Affected {
		if a.Package.Ecosystem != "" {
			imp.res.Ecosystems[a.Package.Ecosystem]++
		}
	}
	var oldModified, oldDigest string
	err := imp.getDigest.QueryRowContext(ctx, v.ID).Scan(&oldModified, &oldDigest)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if v.Withdrawn != nil {
		imp.res.Withdrawn++
		if exists {
			imp.removed++
			return imp.delete(v.ID)
		}
		return nil
	}
	raw := doc
	if !wholeDoc {
		raw, _ = json.Marshal(v)
	}
	sum := sha256.Sum256(raw)
	digest := hex.EncodeToString(sum[:])
	modified := v.Modified.UTC().Format(time.RFC3339Nano)
	if exists {
		old, _ := time.Parse(time.RFC3339Nano, oldModified)
		switch {
		case oldDigest == digest:
			imp.res.Unchanged++
			return nil
		case old.After(v.Modified):
			imp.res.Older++
			return nil
		}
		if err := imp.delete(v.ID); err != nil {
			return err
		}
		imp.res.Updated++
	} else {
		imp.res.Added++
	}
	aliases := append([]string{}, v.Aliases...)
	sort.Strings(aliases)
	aliasJSON, _ := json.Marshal(aliases)
	sev, _ := json.Marshal(v.SeverityOf(nil))
	summary := v.Summary
	if len(summary) > 1024 {
		summary = summary[:1024]
	}
	published := ""
	if v.Published != nil && !v.Published.IsZero() {
		published = v.Published.UTC().Format(time.RFC3339Nano)
	}
	if _, err := imp.putVuln.ExecContext(ctx, v.ID, modified, published, digest, string(aliasJSON), summary, advisoryURL(v), string(sev), imp.sourceID); err != nil {
		return fmt.Errorf("store %s: %w", v.ID, err)
	}
	for _, a := range aliases {
		if _, err := imp.putAlias.ExecContext(ctx, a, v.ID); err != nil {
			return fmt.Errorf("store %s: %w", v.ID, err)
		}
	}
	for i := range v.Affected {
		a := &v.Affected[i]
		if a.Package.Ecosystem == "" || a.Package.Name == "" {
			continue // GIT-only: nothing to match packages against
		}
		data, err := json.Marshal(storedAffected{Ranges: a.Ranges, Versions: a.Versions, Severity: v.SeverityOf(a)})
		if err != nil {
			return err
		}
		if _, err := imp.putAffected.ExecContext(ctx, a.Package.Ecosystem, lookupName(a.Package.Ecosystem, a.Package.Name), v.ID, data); err != nil {
			return fmt.Errorf("store %s: %w", v.ID, err)
		}
	}
	return nil
}

func (imp *importer) delete(id string) error {
	for _, st := range []*sql.Stmt{imp.delAffected, imp.delAliases, imp.delVuln} {
		if _, err := st.ExecContext(imp.ctx, id); err != nil {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	return nil
}

// advisoryURL picks the link a report shows: the database's own page
// (database_specific.url, e.g. pkg.go.dev/vuln/GO-…), else the ADVISORY
// reference, else the first web reference.
func advisoryURL(v *osv.Vulnerability) string {
	if len(v.DatabaseSpecific) > 0 && v.DatabaseSpecific[0] == '{' {
		var ds struct {
			URL any `json:"url"`
		}
		if json.Unmarshal(v.DatabaseSpecific, &ds) == nil {
			if u, ok := ds.URL.(string); ok && strings.HasPrefix(u, "https://") && len(u) < 2048 {
				return u
			}
		}
	}
	for _, typ := range []string{"ADVISORY", "WEB"} {
		for _, r := range v.References {
			if r.Type == typ && strings.HasPrefix(r.URL, "https://") && len(r.URL) < 2048 {
				return r.URL
			}
		}
	}
	return ""
}

// lookupName is the name affected packages are stored and looked up by:
// PyPI names are compared in PEP 503 normal form (case-insensitive, runs of
// "-", "_", "." equal); other ecosystems compare names exactly.
func lookupName(ecosystem, name string) string {
	if ecosystem != "PyPI" {
		return name
	}
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(name) {
		if r == '-' || r == '_' || r == '.' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteRune(r)
	}
	return b.String()
}
