package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bulwark-dev/bulwark/internal/config"
)

// Filter selects events. Zero fields match everything.
type Filter struct {
	Since time.Time // events at or after
	Until time.Time // events before
	// Repository, Who, Action, Digest and Outcome match exactly.
	Repository string
	Who        string
	Action     string
	Digest     string
	Outcome    string
	// Limit keeps only the last Limit matching events (the most recent in
	// log order); 0 keeps all.
	Limit int
}

func (f Filter) match(e *Event) bool {
	return (f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until)) &&
		(f.Repository == "" || e.Repository == f.Repository) &&
		(f.Who == "" || e.Who == f.Who) &&
		(f.Action == "" || e.Action == f.Action) &&
		(f.Digest == "" || e.Digest == f.Digest) &&
		(f.Outcome == "" || e.Outcome == f.Outcome)
}

// Query returns the events matching f, in log order. It streams the file,
// so memory is bounded by the results (at most Limit events). It does not
// verify the chain (Verify does) but fails on a line that is not an
// entry; an incomplete last line (a crash during a write) is skipped. A
// missing file has no events.
func Query(ctx context.Context, path string, f Filter) ([]Event, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("limit %d is negative", f.Limit)
	}
	r, closeFn, err := openSnapshot(ctx, path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	return queryStream(ctx, r, f)
}

// queryStream is Query on the log's bytes.
func queryStream(ctx context.Context, r io.Reader, f Filter) ([]Event, error) {
	lr := newLineReader(r)
	// With a limit, the results are a ring of the last Limit matches.
	out := []Event{}
	start := 0
	for {
		if lr.n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		line, terminated, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("audit log line %d: %w", lr.n, err)
		}
		if !terminated {
			break
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil || e.Seq <= 0 {
			if err == nil {
				err = errors.New("no seq")
			}
			return nil, fmt.Errorf("audit log line %d is not an entry (bulwark audit verify tells more): %w", lr.n, err)
		}
		if !f.match(&e) {
			continue
		}
		if f.Limit == 0 || len(out) < f.Limit {
			out = append(out, e)
			continue
		}
		out[start] = e
		start = (start + 1) % f.Limit
	}
	if start > 0 {
		out = append(append(make([]Event, 0, len(out)), out[start:]...), out[:start]...)
	}
	return out, nil
}

// ParseTime reads a --since/--until value: an RFC 3339 time, a date
// (2006-01-02, UTC midnight), or a duration back from now ("90m", "24h",
// "7d").
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 (2006-01-02T15:04:05Z), a date (2006-01-02) nor a duration back from now (24h, 7d)", s)
	}
	return now.Add(-d), nil
}
