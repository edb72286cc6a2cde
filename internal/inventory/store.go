package inventory

import (
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/bulwark-dev/bulwark/internal/sqlitedb"
)

//go:embed schema.sql
var schema string

// schemaVersion is the PRAGMA user_version schema.sql sets.
const schemaVersion = 1

// ErrNotOwner refuses a report about a running container that another
// account reported: one host's robot cannot stop or replace what another
// runs.
var ErrNotOwner = errors.New("the container was reported by another account")

// MaxRunning bounds what Running returns: far more containers than one
// registry's fleet runs; a query beyond it is truncated (Running says so).
const MaxRunning = 100000

// Path is where a data directory keeps the inventory.
func Path(dataDir string) string { return filepath.Join(dataDir, "inventory.db") }

// Store keeps inventory events and the current state of every container in
// one SQLite file. Several processes may open it (the server writes,
// bulwark report reads); nothing is cached in memory.
type Store struct {
	w *sql.DB // one connection: writes queue here, not in SQLite
	r *sql.DB
}

// Open opens or creates the store at path.
func Open(ctx context.Context, path string) (*Store, error) {
	// _txlock=immediate (sqlitedb) takes the write lock at BEGIN, so the
	// ownership check and the write cannot interleave with another writer.
	p, err := sqlitedb.OpenPair(ctx, path, sqlitedb.PairOptions{What: "inventory database", Schema: schema, Version: schemaVersion,
		Synchronous: "FULL", ForeignKeys: true})
	if err != nil {
		return nil, err
	}
	return &Store{w: p.W, r: p.R}, nil
}

// Close closes the store.
func (s *Store) Close() error { return (&sqlitedb.Pair{W: s.w, R: s.r}).Close() }

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return sqlitedb.Tx(ctx, s.w, "inventory database", fn)
}

// Append stores a validated record (Seq is assigned) and makes it the
// container's current state. A record about a container that runs under
// another reporter's start is refused with ErrNotOwner unless override
// (an administrator) is set.
func (s *Store) Append(ctx context.Context, rec Record, override bool) (Record, error) {
	if rec.Repository == "" {
		rec.Repository = rec.Event.Repository()
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var owner string
		err := tx.QueryRowContext(ctx, `SELECT e.reporter FROM containers c JOIN events e ON e.seq = c.seq
			WHERE c.host = ? AND c.container = ? AND c.running = 1`, rec.Host, rec.Container).Scan(&owner)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("inventory: %w", err)
		case owner != rec.Reporter && !override:
			return fmt.Errorf("%w: %s on %s runs under %s's report, not %s's", ErrNotOwner, rec.Container, rec.Host, owner, rec.Reporter)
		}
		// The sequence number goes into the body too: insert, then fill.
		res, err := tx.ExecContext(ctx, `INSERT INTO events (kind, time, received, host, container, repository, digest, environment, reporter, body)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '')`, string(rec.Kind), rec.Time.UnixNano(), rec.Received.UnixNano(),
			rec.Host, rec.Container, rec.Repository, rec.Digest, rec.Environment, rec.Reporter)
		if err != nil {
			return fmt.Errorf("inventory: %w", err)
		}
		if rec.Seq, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("inventory: %w", err)
		}
		body, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE events SET body = ? WHERE seq = ?`, string(body), rec.Seq); err != nil {
			return fmt.Errorf("inventory: %w", err)
		}
		running := 0
		if rec.Kind == KindStart {
			running = 1
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO containers (host, container, seq, running) VALUES (?, ?, ?, ?)
			ON CONFLICT (host, container) DO UPDATE SET seq = excluded.seq, running = excluded.running`,
			rec.Host, rec.Container, rec.Seq, running); err != nil {
			return fmt.Errorf("inventory: %w", err)
		}
		return nil
	})
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

// Query filters Running and Events; zero fields match everything.
type Query struct {
	Host        string
	Container   string
	Repository  string
	Digest      string
	Environment string
}

func (q Query) where(prefix string) (string, []any) {
	var conds []string
	var args []any
	for _, f := range []struct{ col, v string }{{"host", q.Host}, {"container", q.Container}, {"repository", q.Repository},
		{"digest", q.Digest}, {"environment", q.Environment}} {
		if f.v != "" {
			conds = append(conds, prefix+f.col+" = ?")
			args = append(args, f.v)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " AND " + strings.Join(conds, " AND "), args
}

// Running returns the start event of every container that runs (its last
// event is a start) and matches q, ordered by host and container, at most
// MaxRunning of them; truncated says there were more.
func (s *Store) Running(ctx context.Context, q Query) (recs []Record, truncated bool, err error) {
	where, args := q.where("e.")
	rows, err := s.r.QueryContext(ctx, `SELECT e.body FROM containers c JOIN events e ON e.seq = c.seq
		WHERE c.running = 1`+where+` ORDER BY c.host, c.container LIMIT ?`, append(args, MaxRunning+1)...)
	if err != nil {
		return nil, false, fmt.Errorf("inventory: %w", err)
	}
	recs, err = scanRecords(rows)
	if len(recs) > MaxRunning {
		recs, truncated = recs[:MaxRunning], true
	}
	return recs, truncated, err
}

// Events returns the events matching q, newest first, at most limit
// (1 to 10000; other values mean 100).
func (s *Store) Events(ctx context.Context, q Query, limit int) ([]Record, error) {
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	where, args := q.where("")
	rows, err := s.r.QueryContext(ctx, `SELECT body FROM events WHERE 1 = 1`+where+` ORDER BY seq DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return scanRecords(rows)
}

func scanRecords(rows *sql.Rows) ([]Record, error) {
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		var r Record
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return nil, fmt.Errorf("inventory: stored record: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return out, nil
}

// NewRecord makes the record the server stores for e from caller
// reporter of kind reporterKind, received now from remote.
func NewRecord(e Event, reporter, reporterKind, remote string, now time.Time) Record {
	return Record{Event: e, Repository: e.Repository(), Received: now.UTC(), Reporter: reporter, ReporterKind: reporterKind, Remote: remote}
}
