package audit

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

var benchEvent = Event{Who: "ci-robot", Kind: KindRobot, Action: ActionPull, Repository: "team/app",
	Reference: "v1.2.3", Digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	Remote: "192.0.2.10:53122", Outcome: OutcomeOK}

// BenchmarkRecord is what recording costs the caller (a pull handler).
//
// steady: the normal case, the writer keeps up (the timer stops while the
// buffer is flushed every 4096 events), so Record is an enqueue.
// saturated: callers on every CPU record as fast as they can, faster than
// any disk: the buffer fills and Record waits for the writer
// (back-pressure), so ns/op is the writer's cost per durable event.
func BenchmarkRecord(b *testing.B) {
	b.Run("steady", func(b *testing.B) {
		l, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			l.Record(benchEvent)
			if i%4096 == 4095 {
				b.StopTimer()
				if err := l.Sync(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		}
		b.StopTimer()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(l.Stats().Blocked)/float64(b.N), "blocked/op")
	})
	b.Run("saturated", func(b *testing.B) {
		l, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Record(benchEvent)
			}
		})
		b.StopTimer()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(l.Stats().Blocked)/float64(b.N), "blocked/op")
	})
}

// BenchmarkRecordThroughput is how many events per second become durable
// (recorded, written, fsynced) with many concurrent recorders.
func BenchmarkRecordThroughput(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Record(benchEvent)
		}
	})
	if err := l.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	st := l.Stats()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(max(st.Batches, 1)), "events/batch")
}

// BenchmarkVerify is how fast a log is checked, in entries per second.
func BenchmarkVerify(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	const n = 100000
	l, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		l.Record(benchEvent)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := Verify(context.Background(), path, VerifyOptions{})
		if err != nil || !rep.OK {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
