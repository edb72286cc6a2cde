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
	// An older file opened read-only is read as it is (it cannot be
	// upgraded without writing); the next import upgrades it.
	p, err := sqlitedb.OpenPair(ctx, path, sqlitedb.PairOptions{What: "vulnerability database", Schema: schema, Version: schemaVersion,
		Upgrade: upgrade, Synchronous: "NORMAL", BusyTimeout: 30 * time.Second, ReadPragmas: []string{"cache_size(-16000)"},
		ReadOnly: opts.ReadOnly, Missing: ErrNoDatabase})
	if err != nil {
		return nil, err
	}
	return &DB{path: path, now: opts.Now, w: p.W, r: p.R, version: p.Version}, nil
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
func (db *DB) Close() error { return (&sqlitedb.Pair{W: db.w, R: db.r}).Close() }

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
