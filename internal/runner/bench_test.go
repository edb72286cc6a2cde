package runner

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// BenchmarkRunTrue measures the start-up cost of a hardened container
// running /bin/true two ways, alternating within each iteration so that
// load from other processes hits both alike:
//
//	runc     `runc run` of one generated bundle, again and again: the
//	         floor any runner pays.
//	runner   Manager.Run: name reservation, init layer, overlay mount,
//	         spec generation (seccomp conversion included), runc run,
//	         cleanup.
//
// It reports the medians (runc-p50-ms, runner-p50-ms) and the median of
// the per-iteration difference (overhead-p50-ms). Run with
//
//	go test ./internal/runner/ -run '^$' -bench RunTrue -benchtime 40x
func BenchmarkRunTrue(b *testing.B) {
	e := newTestEnv(b)
	req := e.request(b, "")
	req.Options.Name = "bench-bundle"
	req.Options.Image.Cmd = []string{"/bin/true"}
	c, err := e.m.Prepare(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.m.Remove(c) })
	rt := e.m.Runtime
	var runcDs, runnerDs, diffs []time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		cmd := exec.Command(rt.path(), "--root", rt.Root, "run", "--bundle", c.BundleDir(), fmt.Sprintf("bench-runc-%d", i))
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		runc := time.Since(start)

		start = time.Now()
		req := e.request(b, "")
		req.Options.Name = fmt.Sprintf("bench-%d", i)
		req.Options.Image.Cmd = []string{"/bin/true"}
		req.IO = IO{Stdout: io.Discard, Stderr: io.Discard}
		if code, err := e.m.Run(context.Background(), req); err != nil || code != 0 {
			b.Fatalf("run: %d, %v", code, err)
		}
		full := time.Since(start)
		runcDs, runnerDs, diffs = append(runcDs, runc), append(runnerDs, full), append(diffs, full-runc)
	}
	b.ReportMetric(p50ms(runcDs), "runc-p50-ms")
	b.ReportMetric(p50ms(runnerDs), "runner-p50-ms")
	b.ReportMetric(p50ms(diffs), "overhead-p50-ms")
}

func p50ms(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}

func timed(b *testing.B, run func() error) {
	b.Helper()
	var ds []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := run(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(p50ms(ds), "p50-ms")
}

// BenchmarkPrepare is the runner's own work without the runtime: what
// Manager.Run adds to `runc run` (plus one removal).
func BenchmarkPrepare(b *testing.B) {
	e := newTestEnv(b)
	i := 0
	timed(b, func() error {
		i++
		req := e.request(b, "")
		req.Options.Name = fmt.Sprintf("bench-%d", i)
		req.Options.Image.Cmd = []string{"/bin/true"}
		c, err := e.m.Prepare(context.Background(), req)
		if err != nil {
			return err
		}
		return e.m.Remove(c)
	})
}
