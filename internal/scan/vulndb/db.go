// Package vulndb is bulwark's offline vulnerability database and matcher:
// OSV records imported from files, directories or osv.dev's per-ecosystem
// zip exports into an SQLite file in the data directory, matched against
// SBOMs with each ecosystem's own version order (Debian advisories by
// source package), filtered by OpenVEX statements, and re-matched against
// stored SBOMs whenever the database changes.
package vulndb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/bulwark-dev/bulwark/internal/sqlitedb"
)

// FileName is the database's name in the data directory.
const FileName = "vulndb.db"

// PathIn returns the database path in a data directory.
func PathIn(dataDir string) string { return filepath.Join(dataDir, FileName) }

// ErrNoDatabase is returned by Open with ReadOnly when no database exists.
var ErrNoDatabase = errors.New("no vulnerability database (run 'bulwark vulndb import PATH' first)")

// schemaVersion 2 added vulns.published (the advisory's publication time).
const schemaVersion = 2

// The schema keeps what matching reads in one indexed table (affected, by
// ecosystem and name) and what reports print in another (vulns), so a
// scan reads only the advisories of its own packages.
const schema = `
CREATE TABLE IF NOT EXISTS sources (
	id          INTEGER PRIMARY KEY,
	path        TEXT NOT NULL UNIQUE,
	imported_at TEXT NOT NULL,
	records     INTEGER NOT NULL,
	rejected    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vulns (
	id        TEXT PRIMARY KEY,
	modified  TEXT NOT NULL,
	published TEXT NOT NULL DEFAULT '', -- RFC 3339, '' when the record has none
	digest    TEXT NOT NULL,
	aliases   TEXT NOT NULL,
	summary   TEXT NOT NULL,
	url       TEXT NOT NULL,
	severity  TEXT NOT NULL,
	source    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS affected (
	ecosystem TEXT NOT NULL,
	name      TEXT NOT NULL,
	vuln      TEXT NOT NULL,
	data      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS affected_by_package ON affected(name, ecosystem);
CREATE INDEX IF NOT EXISTS affected_by_vuln ON affected(vuln);
CREATE TABLE IF NOT EXISTS aliases (
	alias TEXT NOT NULL,
	vuln  TEXT NOT NULL,
	PRIMARY KEY (alias, vuln)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aliases_by_vuln ON aliases(vuln);
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
`

// DB is an open vulnerability database. Several processes may use one
// file: imports are single transactions (readers see all of an import or
// none of it), and readers never block them (WAL).
type DB struct {
	path    string
	version int     // the file's schema version
	w       *sql.DB // nil when read-only
	r       *sql.DB
	now     func() time.Time
}

// Options tune Open.
type Options struct {
	// ReadOnly opens an existing database for matching only; a missing
	// file is ErrNoDatabase.
	ReadOnly bool
	// Now is the clock (tests).
	Now func() time.Time
}

// Open opens (creating unless ReadOnly) the database at path.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db := &DB{path: path, now: opts.Now}
	if opts.ReadOnly {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNoDatabase, path)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("create vulnerability database directory: %w", err)
		}
		w, err := sqlitedb.Open("vulnerability database", path, []string{"busy_timeout(30000)", "journal_mode(WAL)", "synchronous(NORMAL)"}, true)
		if err != nil {
			return nil, err
		}
		w.SetMaxOpenConns(1)
		db.w = w
		if err := db.migrate(ctx); err != nil {
			w.Close()
			return nil, err
		}
	}
	r, err := sqlitedb.Open("vulnerability database", path, []string{"busy_timeout(30000)", "query_only(1)", "cache_size(-16000)"}, false)
	if err != nil {
		db.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	db.r = r
	if opts.ReadOnly {
		var v int
		if err := r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			db.Close()
			return nil, fmt.Errorf("open vulnerability database %s: %w", path, err)
		}
		if v == 0 {
			db.Close()
			return nil, fmt.Errorf("%w: %s is empty", ErrNoDatabase, path)
		}
		if v > schemaVersion {
			db.Close()
			return nil, fmt.Errorf("vulnerability database %s has schema version %d; this bulwark knows up to %d", path, v, schemaVersion)
		}
		// An older file is read as it is (a read-only open cannot
		// upgrade it); the next import does.
		db.version = v
	} else {
		db.version = schemaVersion
	}
	return db, nil
}

func (db *DB) migrate(ctx context.Context) error {
	return sqlitedb.MigrateFrom(ctx, db.w, "vulnerability database", db.path, schema, schemaVersion, upgrade)
}

// upgrade brings an older schema to the current one, in the migration's
// transaction.
func upgrade(ctx context.Context, tx *sql.Tx, from int) error {
	if from == 1 {
		// Version 1 did not keep publication dates. Clearing the digests
		// makes the next import of the same files rewrite every record
		// (with its date) instead of counting it unchanged.
		for _, q := range []string{
			`ALTER TABLE vulns ADD COLUMN published TEXT NOT NULL DEFAULT ''`,
			`UPDATE vulns SET digest = ''`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("upgrade from schema 1: %w", err)
			}
		}
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
	var errs []error
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	return errors.Join(errs...)
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Generation counts the imports that changed the database. A matcher
// built at one generation answers for it; the maintenance loop re-matches
// stored SBOMs when the generation moves.
func (db *DB) Generation(ctx context.Context) (int64, error) {
	var g int64
	err := db.r.QueryRowContext(ctx, `SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'`).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return g, err
}
