package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// phase bounds one stretch of load: no operation starts after dur has
// passed or once ops operations have been started (ops 0: no count limit).
// Operations already running when the limit hits are completed and counted.
type phase struct {
	dur time.Duration
	ops int64
}

// unit says how a cell's throughput is expressed.
type unit string

const (
	unitOps unit = "ops/s"
	unitMiB unit = "MiB/s"
)

// worker is the per-goroutine state an operation may use.
type worker struct {
	id  int
	buf []byte // scratch buffer for reading bodies
}

// opFunc performs operation number i (unique within a cell run) and returns
// the payload bytes it moved.
type opFunc func(ctx context.Context, w *worker, i int64) (int64, error)

// cellEnv is what a cell's setup gets to prepare one server for the cell.
type cellEnv struct {
	c     *regClient
	repo  string // repository private to this cell and server
	blobs *blobFactory
	salt  uint64 // distinct per cell and server, to keep blob sets disjoint
}

// cell is one row of the results table: a workload at one concurrency,
// measured the same way against every server.
type cell struct {
	id       string  // short stable name, also the repository suffix
	title    string  // table label
	unit     unit    // throughput unit
	conc     int     // concurrent workers
	warmup   phase   // untimed load before the measurement
	measure  phase   // the measurement
	minRatio float64 // target: bulwark/distribution throughput ratio
	// setup prepares a server (untimed) and returns the operation to load it with.
	setup func(ctx context.Context, env cellEnv) (opFunc, error)
}

// result is one cell measured against one server.
type result struct {
	Ops       int64   `json:"ops"`
	Errors    int64   `json:"errors"`
	Bytes     int64   `json:"bytes"`
	ElapsedS  float64 `json:"elapsed_s"`
	OpsPerS   float64 `json:"ops_per_s"`
	MiBPerS   float64 `json:"mib_per_s"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	CPUUsOp   float64 `json:"server_cpu_us_per_op"` // server CPU per successful op
	CPUCores  float64 `json:"server_cpu_cores"`     // server CPU time / wall time
	FirstErr  string  `json:"first_error,omitempty"`
	WarmupErr int64   `json:"warmup_errors,omitempty"`
}

// value is the throughput in the cell's unit.
func (r *result) value(u unit) float64 {
	if u == unitMiB {
		return r.MiBPerS
	}
	return r.OpsPerS
}

// tally accumulates what one worker saw.
type tally struct {
	ops, errs, bytes int64
	lat              []time.Duration
	firstErr         error
}

func (t *tally) add(n int64, err error, d time.Duration) {
	if err != nil {
		t.errs++
		if t.firstErr == nil {
			t.firstErr = err
		}
		return
	}
	t.ops++
	t.bytes += n
	t.lat = append(t.lat, d)
}

func (t *tally) merge(o *tally) {
	t.ops += o.ops
	t.errs += o.errs
	t.bytes += o.bytes
	t.lat = append(t.lat, o.lat...)
	if t.firstErr == nil {
		t.firstErr = o.firstErr
	}
}

// runPhase runs op on conc workers within the limits of p. next hands out
// operation numbers and carries on across phases so that every operation of
// a cell run gets a distinct number.
func runPhase(ctx context.Context, conc int, p phase, next *atomic.Int64, workers []*worker, op opFunc) (*tally, time.Duration) {
	start := time.Now()
	deadline := start.Add(p.dur)
	limit := next.Load() + p.ops
	tallies := make([]tally, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			t := &tallies[w]
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if p.ops > 0 && i >= limit {
					return
				}
				t0 := time.Now()
				n, err := op(ctx, workers[w], i)
				t.add(n, err, time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Workers that hit the count limit drew a number they did not use;
	// hand those numbers to the next phase.
	if p.ops > 0 && next.Load() > limit {
		next.Store(limit)
	}
	total := &tally{}
	for i := range tallies {
		total.merge(&tallies[i])
	}
	return total, elapsed
}

// split returns the share of p for one of n slices.
func (p phase) split(n int) phase {
	if n <= 1 {
		return p
	}
	return phase{dur: p.dur / time.Duration(n), ops: (p.ops + int64(n) - 1) / int64(n)}
}

// cellRun is a cell being measured against one server: prepared once, then
// measured in one or more slices whose figures add up. Slicing lets the
// runner alternate servers (A B B A …) so drifting background load on the
// machine falls on both alike.
type cellRun struct {
	cell    *cell
	srv     *server
	op      opFunc
	workers []*worker
	next    atomic.Int64 // operation numbers, unique across slices
	warm    tally
	meas    tally
	elapsed time.Duration
	cpu     time.Duration // server CPU during measurement
}

// prepare runs the cell's (untimed) setup against a server.
func (c *cell) prepare(ctx context.Context, s *server, env cellEnv) (*cellRun, error) {
	op, err := c.setup(ctx, env)
	if err != nil {
		return nil, err
	}
	r := &cellRun{cell: c, srv: s, op: op, workers: make([]*worker, c.conc)}
	for i := range r.workers {
		r.workers[i] = &worker{id: i, buf: make([]byte, 256<<10)}
	}
	return r, nil
}

// slice runs one of n slices: its share of the warm-up, then of the
// measurement.
func (r *cellRun) slice(ctx context.Context, n int) error {
	c := r.cell
	warm, _ := runPhase(ctx, c.conc, c.warmup.split(n), &r.next, r.workers, r.op)
	r.warm.merge(warm)
	cpu0, err := r.srv.cpuTime()
	if err != nil {
		return err
	}
	meas, elapsed := runPhase(ctx, c.conc, c.measure.split(n), &r.next, r.workers, r.op)
	cpu1, err := r.srv.cpuTime()
	if err != nil {
		return err
	}
	r.meas.merge(meas)
	r.elapsed += elapsed
	r.cpu += cpu1 - cpu0
	return ctx.Err()
}

// result summarizes all slices run so far.
func (r *cellRun) result() *result {
	res := summarize(&r.meas, r.elapsed, r.cpu)
	res.WarmupErr = r.warm.errs
	if res.FirstErr == "" && r.warm.firstErr != nil {
		res.FirstErr = "warm-up: " + r.warm.firstErr.Error()
	}
	return res
}

func summarize(t *tally, elapsed, cpu time.Duration) *result {
	secs := max(elapsed.Seconds(), 1e-9)
	r := &result{
		Ops:      t.ops,
		Errors:   t.errs,
		Bytes:    t.bytes,
		ElapsedS: secs,
		OpsPerS:  float64(t.ops) / secs,
		MiBPerS:  float64(t.bytes) / (1 << 20) / secs,
		CPUCores: cpu.Seconds() / secs,
	}
	if t.ops > 0 {
		r.CPUUsOp = float64(cpu.Microseconds()) / float64(t.ops)
	}
	if t.firstErr != nil {
		r.FirstErr = t.firstErr.Error()
	}
	slices.Sort(t.lat)
	r.P50Ms = percentileMs(t.lat, 0.50)
	r.P99Ms = percentileMs(t.lat, 0.99)
	return r
}

func percentileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return float64(sorted[i].Microseconds()) / 1000
}
