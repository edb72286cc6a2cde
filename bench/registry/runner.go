package main

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"
)

// runCells measures every cell against every target and appends the judged
// cells to rep. Each cell is measured in rounds slices per target, in
// alternating order (A B, B A, …). A cell that cannot be set up on a server
// is recorded as an error for that server rather than aborting the run.
func runCells(ctx context.Context, cells []cell, targets []*target, rounds int, rep *report, progress io.Writer) error {
	blobs := newBlobFactory(0xb01a)
	for ci := range cells {
		c := &cells[ci]
		cr := &cellReport{ID: c.id, Title: c.title, Unit: c.unit, Conc: c.conc, MinRatio: c.minRatio, Results: map[string]*result{}}
		runs := make([]*cellRun, 0, len(targets))
		for ti, t := range targets {
			env := cellEnv{c: t.c, repo: "bench/" + c.id, blobs: blobs, salt: uint64(ci)<<8 | uint64(ti+1)}
			r, err := c.prepare(ctx, t.srv, env)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				cr.Results[t.srv.name] = &result{Errors: 1, FirstErr: "setup: " + err.Error()}
				continue
			}
			runs = append(runs, r)
		}
		if err := measureRounds(ctx, runs, rounds); err != nil {
			return err
		}
		for _, r := range runs {
			cr.Results[r.srv.name] = r.result()
		}
		for _, t := range targets {
			fmt.Fprintf(progress, "%-16s %-12s %s\n", c.id, t.srv.name, progressLine(c, cr.Results[t.srv.name]))
		}
		cr.judge()
		rep.Cells = append(rep.Cells, cr)
	}
	return nil
}

// measureRounds runs rounds slices of every run, reversing the order of the
// runs on every other round.
func measureRounds(ctx context.Context, runs []*cellRun, rounds int) error {
	for round := range rounds {
		for k := range runs {
			r := runs[k]
			if round%2 == 1 {
				r = runs[len(runs)-1-k]
			}
			if err := r.srv.alive(); err != nil {
				return err
			}
			// Start every slice with no dirty pages left over from the one
			// before, so one server's writeback does not slow the other.
			syscall.Sync()
			if err := r.slice(ctx, rounds); err != nil {
				return fmt.Errorf("%s on %s: %w", r.cell.id, r.srv.name, err)
			}
		}
	}
	return nil
}

func progressLine(c *cell, r *result) string {
	s := fmt.Sprintf("%10.1f %-6s %6d ops in %5.2fs  p50 %6.2fms  p99 %7.2fms", r.value(c.unit), c.unit, r.Ops, r.ElapsedS, r.P50Ms, r.P99Ms)
	if n := r.Errors + r.WarmupErr; n > 0 {
		s += fmt.Sprintf("  %d ERRORS: %s", n, oneLine(r.FirstErr))
	}
	return s
}

// readRSS touches each server once, lets them all sit idle, then reads their
// memory and hands it to set.
func readRSS(ctx context.Context, targets []*target, idle time.Duration, set func(*serverInfo, int64, int64)) error {
	for _, t := range targets {
		if err := t.c.ping(ctx, t.srv.health); err != nil {
			return fmt.Errorf("%s: %w", t.srv.name, err)
		}
	}
	if err := sleep(ctx, idle); err != nil {
		return err
	}
	for _, t := range targets {
		rss, hwm, err := t.srv.memKiB()
		if err != nil {
			return fmt.Errorf("%s memory: %w", t.srv.name, err)
		}
		set(t.info, rss, hwm)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
