package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// maxBatch bounds how many writes share one transaction, so one commit never
// holds the writer for long.
const maxBatch = 128

// write is one queued write transaction.
type write struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	done chan error
}

// committer owns the writer connection. Writes that arrive while a commit
// is being made durable queue up and are committed together by the next
// transaction, each inside its own savepoint: a failing write is rolled
// back alone, and N concurrent writers pay for one fsync instead of N. At
// concurrency 1 a write costs one channel hand-off more than a plain
// transaction.
func (db *DB) committer() {
	defer close(db.stopped)
	for {
		var first write
		select {
		case first = <-db.writes:
		case <-db.closing:
			return
		}
		batch := []write{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case w := <-db.writes:
				batch = append(batch, w)
			default:
				break drain
			}
		}
		db.commitBatch(batch)
	}
}

func (db *DB) commitBatch(batch []write) {
	errs := make([]error, len(batch))
	tx, err := db.w.BeginTx(context.Background(), nil)
	if err != nil {
		for _, w := range batch {
			w.done <- fmt.Errorf("begin: %w", err)
		}
		return
	}
	for i, w := range batch {
		if err := w.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := tx.Exec(`SAVEPOINT w`); err != nil {
			errs[i] = err
			continue
		}
		if err := w.fn(tx); err != nil {
			errs[i] = err
			if _, rerr := tx.Exec(`ROLLBACK TO w`); rerr != nil {
				// The transaction is unusable; fail the whole batch.
				tx.Rollback()
				for _, w := range batch {
					w.done <- fmt.Errorf("rollback to savepoint: %w", rerr)
				}
				return
			}
		}
		if _, err := tx.Exec(`RELEASE w`); err != nil && errs[i] == nil {
			errs[i] = err
		}
	}
	if err := tx.Commit(); err != nil {
		for _, w := range batch {
			w.done <- fmt.Errorf("commit: %w", err)
		}
		return
	}
	for i, w := range batch {
		w.done <- errs[i]
	}
}

// tx runs fn in a write transaction (shared with concurrent writes, see
// committer) and returns once it is durable.
func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	w := write{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case db.writes <- w:
	case <-db.closing:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the write may
	// already be committed, and the caller must not assume otherwise.
	return <-w.done
}
