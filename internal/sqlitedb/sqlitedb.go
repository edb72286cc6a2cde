// Package sqlitedb holds the conventions bulwark's small embedded SQLite
// databases share (accounts, inventory, the vulnerability DB, stored scan
// results): opening a file with pragmas, a schema applied under a version
// check, and short write transactions. The registry's metadata store has
// its own, batched writer (internal/store/sqlite) and does not use it.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // the pure-Go driver, registered as "sqlite"
)

// Open opens the database file at path with the given pragmas (e.g.
// "journal_mode(WAL)", "busy_timeout(10000)"). immediate makes every
// transaction BEGIN IMMEDIATE, which a writer connection wants: the write
// lock is taken at the start, so two processes never deadlock upgrading
// read locks. what names the database in errors ("accounts database").
func Open(what, path string, pragmas []string, immediate bool) (*sql.DB, error) {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if immediate {
		q.Set("_txlock", "immediate")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s %s: %w", what, path, err)
	}
	return db, nil
}

// Migrate applies schema (idempotent statements: CREATE … IF NOT EXISTS)
// in one transaction on the writer w and records version as the file's
// user_version. A file whose user_version is newer than version was
// written by a newer bulwark and is refused rather than half understood.
func Migrate(ctx context.Context, w *sql.DB, what, path, schema string, version int) error {
	return MigrateFrom(ctx, w, what, path, schema, version, nil)
}

// MigrateFrom is Migrate with an upgrade step: when the file holds an
// older schema (0 < its version < version), upgrade runs first, in the
// same transaction, with the file's version (to add columns that the
// CREATE ... IF NOT EXISTS statements of schema cannot).
func MigrateFrom(ctx context.Context, w *sql.DB, what, path, schema string, version int,
	upgrade func(ctx context.Context, tx *sql.Tx, from int) error) error {
	return Tx(ctx, w, what, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			return fmt.Errorf("read schema version of %s %s: %w", what, path, err)
		}
		if v > version {
			return fmt.Errorf("%s %s has schema version %d; this bulwark knows only up to %d (downgrade?)", what, path, v, version)
		}
		if v > 0 && v < version && upgrade != nil {
			if err := upgrade(ctx, tx, v); err != nil {
				return fmt.Errorf("%s %s: %w", what, path, err)
			}
		}
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("create %s schema in %s: %w", what, path, err)
		}
		if v != version {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, version)); err != nil {
				return fmt.Errorf("set schema version of %s %s: %w", what, path, err)
			}
		}
		return nil
	})
}

// Tx runs fn in one transaction on db and commits it, or rolls it back if
// fn fails. Callers do slow work before, never inside, so another
// process's writer waits at most milliseconds.
func Tx(ctx context.Context, db *sql.DB, what string, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}
