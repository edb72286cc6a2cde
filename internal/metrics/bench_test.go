package metrics

import (
	"strconv"
	"testing"
)

// The request path does, per request, one CounterVec Inc on three labels,
// one HistogramVec Observe on two, and two CounterVec Adds on one.

func BenchmarkCounterVecInc(b *testing.B) {
	cv := NewCounterVec(Opts{Name: "c_total"}, []string{"route", "method", "status"})
	statuses := []string{"200", "201", "202", "404"}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			cv.WithLabelValues("blob", "GET", statuses[i&3]).Inc()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				cv.WithLabelValues("blob", "GET", statuses[i&3]).Inc()
			}
		})
	})
}

func BenchmarkHistogramVecObserve(b *testing.B) {
	hv := NewHistogramVec(HistogramOpts{Name: "h_seconds", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"route", "method"})
	values := []float64{0.0003, 0.004, 0.07, 2}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			hv.WithLabelValues("blob", "GET").Observe(values[i&3])
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				hv.WithLabelValues("blob", "GET").Observe(values[i&3])
			}
		})
	})
}

// BenchmarkScrape writes a registry like a busy bulwark's: 40 request
// series, 10 latency histograms and the Go and process collectors.
func BenchmarkScrape(b *testing.B) {
	r := NewRegistry()
	cv := NewCounterVec(Opts{Name: "c_total", Help: "c"}, []string{"route", "method", "status"})
	hv := NewHistogramVec(HistogramOpts{Name: "h_seconds", Help: "h", Buckets: DefBuckets}, []string{"route", "method"})
	r.MustRegister(cv, hv, NewGoCollector(), NewProcessCollector())
	for i := range 40 {
		cv.WithLabelValues("r"+strconv.Itoa(i%10), "GET", strconv.Itoa(200+i/10)).Inc()
		hv.WithLabelValues("r"+strconv.Itoa(i%10), "GET").Observe(0.01)
	}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = r.AppendText(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
