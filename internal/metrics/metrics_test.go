package metrics

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func text(t testing.TB, r *Registry) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestGoldenMatchesClientGolang drives the metrics through the scenario
// whose output client_golang v1.25.0 wrote into testdata/golden.txt (with
// the same names, labels, buckets and operations): the text must be
// byte-for-byte the same, so dashboards and alerts see no change.
func TestGoldenMatchesClientGolang(t *testing.T) {
	want, err := os.ReadFile("testdata/golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	r := NewRegistry()
	cv := NewCounterVec(Opts{Name: "t_requests_total", Help: "Help with a \\ backslash, a \"quote\" and a\nnewline."}, []string{"route", "method", "status"})
	hv := NewHistogramVec(HistogramOpts{Name: "t_duration_seconds", Help: "Latency.", Buckets: buckets}, []string{"route", "method"})
	h := NewHistogram(HistogramOpts{Name: "t_upload_seconds", Help: "Upload.", Buckets: ExponentialBuckets(0.001, 4, 10)})
	c := NewCounter(Opts{Name: "t_plain_total", Help: "Plain."})
	g := NewGauge(Opts{Name: "t_gauge", Help: "Gauge."})
	empty := NewCounterVec(Opts{Name: "t_empty_total", Help: "Empty."}, []string{"x"})
	r.MustRegister(cv, hv, h, c, g, empty)

	vals := [][]string{
		{"upload", "POST", "201"},
		{"blob", "GET", "200"},
		{"blob", "GET", "404"},
		{`a"b`, `back\slash`, "new\nline"},
		{"", "ü", "x"},
		{"blob", "HEAD", "200"},
	}
	for i, v := range vals {
		for j := 0; j <= i; j++ {
			cv.WithLabelValues(v...).Inc()
		}
	}
	cv.WithLabelValues("big", "PUT", "200").Add(1e6)
	cv.WithLabelValues("frac", "PUT", "200").Add(0.5)
	cv.WithLabelValues("frac", "PUT", "200").Add(2)
	for _, o := range []float64{0.0005, 0.0004, 0.001, 0.3, 30, 31, 0, -1, 1e-9, 12345} {
		hv.WithLabelValues("blob", "GET").Observe(o)
	}
	hv.WithLabelValues(`q"`, "x\\y").Observe(0.02)
	for _, o := range []float64{0.001, 0.004, 0.005, 0.016, 1.024, 262.144, 1000} {
		h.Observe(o)
	}
	c.Add(3)
	c.Inc()
	g.Set(1.5)
	g.Add(-2.75)

	got := text(t, r)
	if got != string(want) {
		t.Errorf("output differs from client_golang's\n--- want\n%s\n--- got\n%s", want, got)
	}
	if _, err := parseExposition(got); err != nil {
		t.Error(err)
	}
}

func TestExposition(t *testing.T) {
	tests := []struct {
		name  string
		setup func(r *Registry)
		want  string
	}{
		{
			name: "label values escaped, invalid UTF-8 replaced",
			setup: func(r *Registry) {
				cv := NewCounterVec(Opts{Name: "c_total", Help: "h"}, []string{"v"})
				r.MustRegister(cv)
				cv.WithLabelValues("a\\b\"c\nd").Inc()
				cv.WithLabelValues("x\xffy").Inc()
				cv.WithLabelValues("tab\tcr\r").Inc()
			},
			want: "# HELP c_total h\n# TYPE c_total counter\n" +
				`c_total{v="a\\b\"c\nd"} 1` + "\n" +
				"c_total{v=\"tab\tcr\r\"} 1\n" +
				"c_total{v=\"x\uFFFDy\"} 1\n",
		},
		{
			name: "help escapes backslash and newline, not quotes",
			setup: func(r *Registry) {
				r.MustRegister(NewGauge(Opts{Name: "g", Help: "a\\b\n\"c\""}))
			},
			want: "# HELP g a\\\\b\\n\"c\"\n# TYPE g gauge\ng 0\n",
		},
		{
			name: "families sorted by name, labels by name, series by values",
			setup: func(r *Registry) {
				b := NewCounterVec(Opts{Name: "b_total", Help: "b"}, []string{"zeta", "alpha", "mid"})
				a := NewGauge(Opts{Name: "a", Help: "a"})
				r.MustRegister(b, a)
				b.WithLabelValues("1", "y", "m").Inc()
				b.WithLabelValues("2", "x", "m").Inc()
				b.WithLabelValues("0", "y", "a").Inc()
				a.Set(2)
			},
			want: "# HELP a a\n# TYPE a gauge\na 2\n" +
				"# HELP b_total b\n# TYPE b_total counter\n" +
				`b_total{alpha="x",mid="m",zeta="2"} 1` + "\n" +
				`b_total{alpha="y",mid="a",zeta="0"} 1` + "\n" +
				`b_total{alpha="y",mid="m",zeta="1"} 1` + "\n",
		},
		{
			name: "histogram buckets cumulative, boundaries inclusive, +Inf last",
			setup: func(r *Registry) {
				h := NewHistogram(HistogramOpts{Name: "h", Help: "h", Buckets: []float64{1, 2.5, math.Inf(+1)}})
				r.MustRegister(h)
				for _, v := range []float64{0.5, 1, 1.5, 2.5, 3, 100} {
					h.Observe(v)
				}
			},
			want: "# HELP h h\n# TYPE h histogram\n" +
				"h_bucket{le=\"1\"} 2\nh_bucket{le=\"2.5\"} 4\nh_bucket{le=\"+Inf\"} 6\nh_sum 108.5\nh_count 6\n",
		},
		{
			name: "labelled histogram puts le after the sorted labels",
			setup: func(r *Registry) {
				hv := NewHistogramVec(HistogramOpts{Name: "hv", Help: "h", Buckets: []float64{0.005}}, []string{"route", "method"})
				r.MustRegister(hv)
				hv.WithLabelValues("blob", "GET").Observe(0.001)
			},
			want: "# HELP hv h\n# TYPE hv histogram\n" +
				`hv_bucket{method="GET",route="blob",le="0.005"} 1` + "\n" +
				`hv_bucket{method="GET",route="blob",le="+Inf"} 1` + "\n" +
				`hv_sum{method="GET",route="blob"} 0.001` + "\n" +
				`hv_count{method="GET",route="blob"} 1` + "\n",
		},
		{
			name: "values formatted like client_golang",
			setup: func(r *Registry) {
				gv := []*Gauge{}
				for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"} {
					g := NewGauge(Opts{Name: n, Help: ""})
					r.MustRegister(g)
					gv = append(gv, g)
				}
				for i, v := range []float64{0, -1, 0.1, 1e6, 123456789, 1e-9, math.NaN(), math.Inf(+1), math.Inf(-1)} {
					gv[i].Set(v)
				}
			},
			want: "# HELP a \n# TYPE a gauge\na 0\n# HELP b \n# TYPE b gauge\nb -1\n# HELP c \n# TYPE c gauge\nc 0.1\n" +
				"# HELP d \n# TYPE d gauge\nd 1e+06\n# HELP e \n# TYPE e gauge\ne 1.23456789e+08\n# HELP f \n# TYPE f gauge\nf 1e-09\n" +
				"# HELP g \n# TYPE g gauge\ng NaN\n# HELP h \n# TYPE h gauge\nh +Inf\n# HELP i \n# TYPE i gauge\ni -Inf\n",
		},
		{
			name: "an empty vector writes nothing",
			setup: func(r *Registry) {
				r.MustRegister(NewCounterVec(Opts{Name: "e_total", Help: "e"}, []string{"x"}))
			},
			want: "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			tc.setup(r)
			got := text(t, r)
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			if _, err := parseExposition(got); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestPanics(t *testing.T) {
	cv := NewCounterVec(Opts{Name: "c_total"}, []string{"a", "b"})
	tests := []struct {
		name string
		f    func()
	}{
		{"too few label values", func() { cv.WithLabelValues("x") }},
		{"too many label values", func() { cv.WithLabelValues("x", "y", "z") }},
		{"negative counter add", func() { NewCounter(Opts{Name: "c"}).Add(-1) }},
		{"empty metric name", func() { NewGauge(Opts{}) }},
		{"metric name with a dash", func() { NewGauge(Opts{Name: "a-b"}) }},
		{"metric name starting with a digit", func() { NewGauge(Opts{Name: "1a"}) }},
		{"label name with a colon", func() { NewCounterVec(Opts{Name: "c"}, []string{"a:b"}) }},
		{"reserved label name", func() { NewCounterVec(Opts{Name: "c"}, []string{"__name"}) }},
		{"repeated label name", func() { NewCounterVec(Opts{Name: "c"}, []string{"a", "a"}) }},
		{"le on a histogram", func() { NewHistogramVec(HistogramOpts{Name: "h"}, []string{"le"}) }},
		{"buckets not increasing", func() { NewHistogram(HistogramOpts{Name: "h", Buckets: []float64{1, 1}}) }},
		{"NaN bucket", func() { NewHistogram(HistogramOpts{Name: "h", Buckets: []float64{math.NaN()}}) }},
		{"exponential buckets factor 1", func() { ExponentialBuckets(1, 1, 3) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			tc.f()
		})
	}
}

func TestRegister(t *testing.T) {
	r := NewRegistry()
	a := NewCounter(Opts{Name: "a_total", Help: "a"})
	if err := r.Register(a); err != nil {
		t.Fatal(err)
	}
	b := NewGauge(Opts{Name: "b", Help: "b"})
	dup := NewGauge(Opts{Name: "a_total", Help: "again"})
	if err := r.Register(b, dup); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("duplicate: err = %v, want ErrAlreadyRegistered", err)
	}
	// Nothing of a failed Register is kept: b can still be registered.
	if err := r.Register(b); err != nil {
		t.Fatalf("b after a failed batch: %v", err)
	}
	if err := r.Register(NewGauge(Opts{Name: "c"}), NewGauge(Opts{Name: "c"})); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("duplicate within one call: %v", err)
	}
	child := NewCounterVec(Opts{Name: "v_total"}, []string{"x"}).WithLabelValues("1")
	if err := r.Register(child); err == nil {
		t.Fatal("registering a vector's child succeeded")
	}
	if err := NewRegistry().Register(NewGoCollector(), NewGoCollector()); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("two Go collectors: %v", err)
	}
	got := text(t, r)
	if got != "# HELP a_total a\n# TYPE a_total counter\na_total 0\n# HELP b b\n# TYPE b gauge\nb 0\n" {
		t.Errorf("got %q", got)
	}
}

// TestConcurrent updates, creates label combinations and scrapes at once;
// under -race it checks the hot path's synchronisation, and the totals must
// come out exact.
func TestConcurrent(t *testing.T) {
	const workers, perWorker = 8, 5000
	r := NewRegistry()
	cv := NewCounterVec(Opts{Name: "c_total", Help: "c"}, []string{"route", "method"})
	hv := NewHistogramVec(HistogramOpts{Name: "h_seconds", Help: "h", Buckets: []float64{1, 2}}, []string{"route"})
	c := NewCounter(Opts{Name: "plain_total", Help: "p"})
	g := NewGauge(Opts{Name: "g", Help: "g"})
	r.MustRegister(cv, hv, c, g)
	routes := []string{"blob", "manifest", "upload", "tags"}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	scrapes := 0
	var scrapeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := parseExposition(string(r.AppendText(nil))); err != nil && scrapeErr == nil {
				scrapeErr = err
			}
			scrapes++
		}
	}()
	var workersWG sync.WaitGroup
	for w := range workers {
		workersWG.Add(1)
		go func() {
			defer workersWG.Done()
			for i := range perWorker {
				rt := routes[(i+w)%len(routes)]
				cv.WithLabelValues(rt, "GET").Inc()
				cv.WithLabelValues(rt, "PUT").Add(2)
				hv.WithLabelValues(rt).Observe(float64(i % 3)) // 0, 1, 2: buckets 1, 1, 2
				c.Add(0.5)
				g.Add(1)
			}
		}()
	}
	workersWG.Wait()
	close(stop)
	wg.Wait()
	if scrapeErr != nil {
		t.Fatalf("a scrape during updates: %v", scrapeErr)
	}
	if scrapes == 0 {
		t.Fatal("no scrape ran")
	}

	total := float64(workers * perWorker)
	var get, put float64
	for _, rt := range routes {
		get += cv.WithLabelValues(rt, "GET").Value()
		put += cv.WithLabelValues(rt, "PUT").Value()
	}
	if get != total || put != 2*total {
		t.Errorf("counter vec: GET %v PUT %v, want %v and %v", get, put, total, 2*total)
	}
	if c.Value() != total/2 || g.Value() != total {
		t.Errorf("counter %v gauge %v, want %v and %v", c.Value(), g.Value(), total/2, total)
	}
	samples, err := parseExposition(text(t, r))
	if err != nil {
		t.Fatal(err)
	}
	var count, sum, le1 float64
	for _, s := range samples {
		le, _ := s.label("le")
		switch {
		case s.name == "h_seconds_count":
			count += s.value
		case s.name == "h_seconds_sum":
			sum += s.value
		case s.name == "h_seconds_bucket" && le == "1":
			le1 += s.value
		}
	}
	// i%3 over 0..perWorker-1 per worker: 0 and 1 go to le=1, 2 to le=2.
	var wantLE1, wantSum float64
	for i := range perWorker {
		if i%3 < 2 {
			wantLE1++
		}
		wantSum += float64(i % 3)
	}
	if count != total || le1 != wantLE1*workers || sum != wantSum*workers {
		t.Errorf("histogram: count %v le1 %v sum %v, want %v %v %v", count, le1, sum, total, wantLE1*workers, wantSum*workers)
	}
}

func TestHandler(t *testing.T) {
	r := NewRegistry()
	cv := NewCounterVec(Opts{Name: "bulwark_http_requests_total", Help: "Registry HTTP requests by route, method and status code."}, []string{"route", "method", "status"})
	r.MustRegister(cv, NewGoCollector(), NewProcessCollector())
	cv.WithLabelValues("upload", "POST", "201").Inc()
	ts := httptest.NewServer(r.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("%s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	samples, err := parseExposition(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "\n"+`bulwark_http_requests_total{method="POST",route="upload",status="201"} 1`+"\n") {
		t.Errorf("request counter missing:\n%s", body)
	}
	if len(samples) < 40 {
		t.Errorf("only %d samples", len(samples))
	}
}

// TestGoAndProcessCollectors checks the families a dashboard built for
// client_golang's collectors expects, and that the values are plausible.
func TestGoAndProcessCollectors(t *testing.T) {
	r := NewRegistry()
	r.MustRegister(NewGoCollector(), NewProcessCollector())
	out := text(t, r)
	samples, err := parseExposition(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range samples {
		key := s.name
		if q, ok := s.label("quantile"); ok {
			key += "/" + q
		}
		got[key] = s.value
	}
	now := float64(time.Now().Unix())
	tests := []struct {
		name string
		typ  string
		min  float64
		max  float64
	}{
		{"go_goroutines", "gauge", 1, 1e6},
		{"go_threads", "gauge", 1, 1e5},
		{"go_info", "gauge", 1, 1},
		{"go_sched_gomaxprocs_threads", "gauge", 1, 1e4},
		{"go_gc_gomemlimit_bytes", "gauge", 1, math.MaxInt64},
		{"go_gc_duration_seconds/0", "summary", 0, 10},
		{"go_gc_duration_seconds/1", "summary", 0, 10},
		{"go_gc_duration_seconds_count", "summary", 0, 1e9},
		{"go_memstats_heap_alloc_bytes", "gauge", 1, 1 << 40},
		{"go_memstats_sys_bytes", "gauge", 1, 1 << 40},
		{"go_memstats_alloc_bytes_total", "counter", 1, math.Inf(+1)},
		{"go_memstats_last_gc_time_seconds", "gauge", 0, now + 1},
		{"process_cpu_seconds_total", "counter", 0, 1e6},
		{"process_resident_memory_bytes", "gauge", 1 << 20, 1 << 40},
		{"process_virtual_memory_bytes", "gauge", 1 << 20, math.Inf(+1)},
		{"process_virtual_memory_max_bytes", "gauge", 1, math.Inf(+1)},
		{"process_open_fds", "gauge", 3, 1 << 20},
		{"process_max_fds", "gauge", 3, math.Inf(+1)},
		{"process_start_time_seconds", "gauge", now - 3600, now + 1},
	}
	for _, tc := range tests {
		v, ok := got[tc.name]
		if !ok {
			t.Errorf("%s missing", tc.name)
			continue
		}
		if v < tc.min || v > tc.max {
			t.Errorf("%s = %v, want within [%v, %v]", tc.name, v, tc.min, tc.max)
		}
		fam, _, _ := strings.Cut(tc.name, "/")
		fam = strings.TrimSuffix(fam, "_count")
		if !strings.Contains(out, "# TYPE "+fam+" "+tc.typ+"\n") {
			t.Errorf("%s is not a %s", fam, tc.typ)
		}
	}
	if !strings.Contains(out, `go_info{version="go`) {
		t.Errorf("go_info has no version label")
	}
}

func TestProcessCollectorWithoutProc(t *testing.T) {
	// Without procfs (another OS, a sandbox) the process collector writes
	// nothing, and the scrape still succeeds.
	p := newProcessCollector(t.TempDir()+"/nope", t.TempDir()+"/nope")
	r := NewRegistry()
	r.MustRegister(p)
	if got := text(t, r); got != "" {
		t.Errorf("got %q", got)
	}
}
