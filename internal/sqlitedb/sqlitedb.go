// Package sqlitedb holds the conventions bulwark's small embedded SQLite
// databases share (accounts, inventory, the vulnerability DB, stored scan
// results): opening a file with pragmas, a schema applied under a version
// check, and short write transactions. The registry's metadata store has
// its own, batched writer (internal/store/sqlite) and does not use it.
package sqlitedb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

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

// Pair is a database file opened twice: one writer connection, so that
// writes queue in Go rather than in SQLite's busy loop, and a small pool of
// read-only connections that WAL lets read while the writer writes (also
// in another process: `bulwark report --data` beside a running server).
type Pair struct {
	// W is the writer; nil when opened ReadOnly.
	W *sql.DB
	R *sql.DB
	// Version is the file's schema version: the current one after a
	// migration, the file's own when opened ReadOnly (possibly older).
	Version int
}

// PairOptions configure OpenPair.
type PairOptions struct {
	// What names the database in errors ("inventory database").
	What string
	// Schema and Version are applied by MigrateFrom (with Upgrade) when
	// the file is opened for writing.
	Schema  string
	Version int
	Upgrade func(ctx context.Context, tx *sql.Tx, from int) error
	// Synchronous is the writer's synchronous pragma: FULL for what
	// cannot be recomputed (accounts, inventory), NORMAL for what can (a
	// power cut may lose the last transactions, never corrupt the file).
	Synchronous string
	// BusyTimeout is how long a connection waits for another process's
	// lock; 10 s when zero.
	BusyTimeout time.Duration
	// ForeignKeys turns on foreign key checks.
	ForeignKeys bool
	// ReadPragmas are added to the readers' (e.g. "cache_size(-16000)").
	ReadPragmas []string
	// Private creates the file with mode 0600 before SQLite does (its
	// -wal and -shm files copy the database's mode): for secrets.
	Private bool
	// ReadOnly opens an existing, initialised file for reading only; a
	// missing or empty file is an error wrapping Missing, and a file of a
	// newer schema is refused.
	ReadOnly bool
	Missing  error
}

// OpenPair opens (creating unless ReadOnly) the database at path.
func OpenPair(ctx context.Context, path string, o PairOptions) (*Pair, error) {
	busy := fmt.Sprintf("busy_timeout(%d)", cmp.Or(o.BusyTimeout, 10*time.Second).Milliseconds())
	common := []string{busy}
	if o.ForeignKeys {
		common = append(common, "foreign_keys(1)")
	}
	p := &Pair{}
	if o.ReadOnly {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", o.Missing, path)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("%s: %w", o.What, err)
		}
		if o.Private {
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", o.What, err)
			}
			f.Close()
		}
		// busy_timeout comes first so that switching to WAL waits for
		// another process instead of failing; Open's immediate takes the
		// write lock at BEGIN.
		w, err := Open(o.What, path, append(slices.Clone(common), "journal_mode(WAL)", "synchronous("+cmp.Or(o.Synchronous, "FULL")+")"), true)
		if err != nil {
			return nil, err
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxIdleTime(0)
		w.SetConnMaxLifetime(0)
		p.W = w
		if err := MigrateFrom(ctx, w, o.What, path, o.Schema, o.Version, o.Upgrade); err != nil {
			w.Close()
			return nil, err
		}
		p.Version = o.Version
	}
	r, err := Open(o.What, path, append(append(common, "query_only(1)"), o.ReadPragmas...), false)
	if err != nil {
		p.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	r.SetConnMaxIdleTime(0)
	p.R = r
	if o.ReadOnly {
		if err := r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&p.Version); err != nil {
			p.Close()
			return nil, fmt.Errorf("open %s %s: %w", o.What, path, err)
		}
		switch {
		case p.Version == 0:
			p.Close()
			return nil, fmt.Errorf("%w: %s is empty", o.Missing, path)
		case p.Version > o.Version:
			p.Close()
			return nil, fmt.Errorf("%s %s has schema version %d; this bulwark knows up to %d", o.What, path, p.Version, o.Version)
		}
	}
	return p, nil
}

// Close closes both.
func (p *Pair) Close() error {
	var errs []error
	if p.R != nil {
		errs = append(errs, p.R.Close())
	}
	if p.W != nil {
		errs = append(errs, p.W.Close())
	}
	return errors.Join(errs...)
}
