// Package metrics is a small Prometheus instrumentation library: counters,
// gauges and histograms (plain and labelled), a Registry that writes them in
// the Prometheus text exposition format 0.0.4, and Go runtime and process
// collectors that read their values only when scraped.
//
// It exists instead of client_golang because that library registers
// collectors in a global registry at package initialisation, a cost every
// bulwark command paid (2–5 ms of start-up) whether or not it served
// /metrics. This package has no global state and does no work at init.
//
// Hot-path operations (Inc, Add, Observe, Set, WithLabelValues on an existing
// label combination) take no locks and do not allocate: values are atomics,
// and label combinations live in a copy-on-write map read through an atomic
// pointer.
//
// Programming errors panic, as in client_golang: invalid metric or label
// names and bad buckets when a metric is created, a wrong number of label
// values in WithLabelValues, and a negative Counter.Add.
package metrics

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Opts names a counter or gauge.
type Opts struct {
	Name string
	Help string
}

// HistogramOpts names a histogram and sets its bucket upper bounds, which
// must be strictly increasing; a final +Inf bucket is always added. Nil
// Buckets means DefBuckets.
type HistogramOpts struct {
	Name    string
	Help    string
	Buckets []float64
}

// DefBuckets are client_golang's default buckets, for request latencies in
// seconds.
var DefBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// ExponentialBuckets returns count buckets starting at start, each factor
// times the previous one. It computes them exactly as client_golang does, so
// the le labels of existing series keep their form.
func ExponentialBuckets(start, factor float64, count int) []float64 {
	if count < 1 || start <= 0 || factor <= 1 {
		panic(fmt.Sprintf("metrics: ExponentialBuckets(%v, %v, %d): need start > 0, factor > 1, count >= 1", start, factor, count))
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// desc is what a family needs for its header and its samples' labels.
type desc struct {
	name, help string
	labels     []string // in the order WithLabelValues takes values
	order      []int    // indices into labels, sorted by label name: the output order
}

func newDesc(name, help string, labels []string, reserved string) *desc {
	if !validMetricName(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	d := &desc{name: name, help: help, labels: slices.Clone(labels), order: make([]int, len(labels))}
	seen := make(map[string]bool, len(labels))
	for i, l := range labels {
		if !validLabelName(l) || l == reserved || seen[l] {
			panic(fmt.Sprintf("metrics: %s: invalid, reserved or repeated label name %q", name, l))
		}
		seen[l] = true
		d.order[i] = i
	}
	// client_golang writes labels sorted by name; so do we, so existing
	// series keep their exact text form.
	slices.SortFunc(d.order, func(a, b int) int {
		switch {
		case labels[a] < labels[b]:
			return -1
		case labels[a] > labels[b]:
			return 1
		}
		return 0
	})
	return d
}

func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func validLabelName(s string) bool {
	if s == "" || len(s) >= 2 && s[:2] == "__" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// addFloat adds v to the float64 stored as bits in u.
func addFloat(u *atomic.Uint64, v float64) {
	for {
		old := u.Load()
		if u.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Counter is a monotonically increasing value. The zero value is not usable:
// make one with NewCounter or CounterVec.WithLabelValues.
type Counter struct {
	d *desc // nil for a vector's child: the vector writes the family
	// Integral increments (Inc, Add(3)) go to n so that concurrent
	// increments sum exactly and cost one atomic add; fractional ones go
	// to the float in bits.
	n    atomic.Uint64
	bits atomic.Uint64
}

// NewCounter returns a counter without labels, to be registered on a Registry.
func NewCounter(o Opts) *Counter {
	return &Counter{d: newDesc(o.Name, o.Help, nil, "")}
}

// Inc adds 1.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds v, which must not be negative (it panics otherwise: a counter
// that goes down breaks every rate() over it).
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic(fmt.Sprintf("metrics: counter cannot decrease (Add(%v))", v))
	}
	if v < 1<<63 {
		if u := uint64(v); float64(u) == v {
			c.n.Add(u)
			return
		}
	}
	addFloat(&c.bits, v)
}

// Value returns the current value.
func (c *Counter) Value() float64 {
	return float64(c.n.Load()) + math.Float64frombits(c.bits.Load())
}

func (c *Counter) appendSamples(b []byte, d *desc, values []string) []byte {
	return appendSample(b, d, "", values, "", "", c.Value())
}

// Gauge is a value that goes up and down. The zero value is not usable: make
// one with NewGauge.
type Gauge struct {
	d    *desc
	bits atomic.Uint64
}

// NewGauge returns a gauge without labels, to be registered on a Registry.
func NewGauge(o Opts) *Gauge {
	return &Gauge{d: newDesc(o.Name, o.Help, nil, "")}
}

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds v, which may be negative.
func (g *Gauge) Add(v float64) { addFloat(&g.bits, v) }

// SetToCurrentTime sets the gauge to the current Unix time in seconds.
func (g *Gauge) SetToCurrentTime() { g.Set(float64(time.Now().UnixNano()) / 1e9) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

func (g *Gauge) appendSamples(b []byte, d *desc, values []string) []byte {
	return appendSample(b, d, "", values, "", "", g.Value())
}

// Histogram counts observations in fixed buckets and sums them. The zero
// value is not usable: make one with NewHistogram or
// HistogramVec.WithLabelValues.
//
// Each observation is two atomic operations (its bucket's count, then the
// sum), so a scrape racing an Observe may see the count without the sum of
// that one observation; the next scrape sees both. The written _count is the
// sum of the bucket counts, so it always equals the +Inf bucket.
type Histogram struct {
	d      *desc
	b      *buckets
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // float64 bits
}

// buckets are a histogram family's upper bounds and their le label values,
// formatted once.
type buckets struct {
	upper []float64
	le    []string // len(upper)+1, ending in "+Inf"
}

func newBuckets(name string, upper []float64) *buckets {
	if upper == nil {
		upper = DefBuckets
	}
	if n := len(upper); n > 0 && math.IsInf(upper[n-1], +1) {
		upper = upper[:n-1]
	}
	b := &buckets{upper: slices.Clone(upper), le: make([]string, 0, len(upper)+1)}
	for i, u := range b.upper {
		if math.IsNaN(u) || i > 0 && u <= b.upper[i-1] {
			panic(fmt.Sprintf("metrics: %s: buckets must be strictly increasing, got %v", name, upper))
		}
		b.le = append(b.le, string(appendFloat(nil, u)))
	}
	b.le = append(b.le, "+Inf")
	return b
}

// NewHistogram returns a histogram without labels, to be registered on a
// Registry.
func NewHistogram(o HistogramOpts) *Histogram {
	return newHistogram(newDesc(o.Name, o.Help, nil, "le"), newBuckets(o.Name, o.Buckets))
}

func newHistogram(d *desc, b *buckets) *Histogram {
	return &Histogram{d: d, b: b, counts: make([]atomic.Uint64, len(b.upper)+1)}
}

// Observe records v: it lands in the first bucket whose upper bound is >= v
// (NaN and values above every bound land in +Inf).
func (h *Histogram) Observe(v float64) {
	upper := h.b.upper
	i := len(upper)
	if len(upper) < 32 {
		// A short linear scan beats a binary search here, as in client_golang.
		for j, u := range upper {
			if v <= u {
				i = j
				break
			}
		}
	} else {
		i, _ = slices.BinarySearch(upper, v)
		if math.IsNaN(v) {
			i = len(upper)
		}
	}
	h.counts[i].Add(1)
	addFloat(&h.sum, v)
}

func (h *Histogram) appendSamples(b []byte, d *desc, values []string) []byte {
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		b = appendSample(b, d, "_bucket", values, "le", h.b.le[i], float64(cum))
	}
	b = appendSample(b, d, "_sum", values, "", "", math.Float64frombits(h.sum.Load()))
	return appendSample(b, d, "_count", values, "", "", float64(cum))
}

// sampler is a metric that can write its samples; the vector's children and
// the unlabelled metrics are all samplers.
type sampler interface {
	appendSamples(b []byte, d *desc, values []string) []byte
}

// vec maps label values to child metrics. Lookups of an existing
// combination read an immutable map through an atomic pointer: no lock, no
// allocation. Adding a combination copies the map under a mutex, which is
// cheap because label sets are small and bounded (a label set that is not
// bounded is a bug in the caller whatever the library).
type vec[M sampler] struct {
	d        *desc
	typ      string
	newChild func() M
	mu       sync.Mutex // serialises writers of children
	children atomic.Pointer[map[uint64][]child[M]]
}

type child[M sampler] struct {
	values []string
	m      M
}

func (v *vec[M]) init(d *desc, typ string, newChild func() M) {
	v.d, v.typ, v.newChild = d, typ, newChild
	m := map[uint64][]child[M]{}
	v.children.Store(&m)
}

// hashValues is FNV-1a over the values, each followed by a 0xff byte (which
// UTF-8 never contains) so that ("ab","c") and ("a","bc") differ.
func hashValues(values []string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for _, s := range values {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= prime
		}
		h ^= 0xff
		h *= prime
	}
	return h
}

func (v *vec[M]) get(values []string) M {
	if len(values) != len(v.d.labels) {
		panic(fmt.Sprintf("metrics: %s: got %d label values, want %d (%v)", v.d.name, len(values), len(v.d.labels), v.d.labels))
	}
	h := hashValues(values)
	for _, c := range (*v.children.Load())[h] {
		if slices.Equal(c.values, values) {
			return c.m
		}
	}
	return v.add(h, values)
}

func (v *vec[M]) add(h uint64, values []string) M {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := *v.children.Load()
	for _, c := range old[h] {
		if slices.Equal(c.values, values) {
			return c.m
		}
	}
	next := make(map[uint64][]child[M], len(old)+1)
	for k, cs := range old {
		next[k] = cs
	}
	c := child[M]{values: slices.Clone(values), m: v.newChild()}
	// A fresh slice: readers may hold the old one.
	next[h] = append(slices.Clip(old[h]), c)
	v.children.Store(&next)
	return c.m
}

func (v *vec[M]) names() []string { return []string{v.d.name} }

func (v *vec[M]) collect(fams []family) []family {
	m := *v.children.Load()
	if len(m) == 0 {
		return fams // client_golang writes nothing for an empty vector either
	}
	cs := make([]child[M], 0, len(m))
	for _, list := range m {
		cs = append(cs, list...)
	}
	// Series in the order client_golang writes them: by label values,
	// compared in label-name order.
	slices.SortFunc(cs, func(a, b child[M]) int {
		for _, i := range v.d.order {
			if a.values[i] != b.values[i] {
				if a.values[i] < b.values[i] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	var b []byte
	for _, c := range cs {
		b = c.m.appendSamples(b, v.d, c.values)
	}
	return append(fams, family{name: v.d.name, help: v.d.help, typ: v.typ, samples: b})
}

// CounterVec is a family of counters with the same label names.
type CounterVec struct{ v vec[*Counter] }

// NewCounterVec returns a counter family with the given label names.
func NewCounterVec(o Opts, labelNames []string) *CounterVec {
	cv := &CounterVec{}
	cv.v.init(newDesc(o.Name, o.Help, labelNames, ""), "counter", func() *Counter { return &Counter{} })
	return cv
}

// WithLabelValues returns the counter for these label values, in the order
// of the label names given to NewCounterVec, creating it on first use. It
// panics if the number of values is wrong.
func (cv *CounterVec) WithLabelValues(values ...string) *Counter { return cv.v.get(values) }

func (cv *CounterVec) names() []string                { return cv.v.names() }
func (cv *CounterVec) collect(fams []family) []family { return cv.v.collect(fams) }

// HistogramVec is a family of histograms with the same label names and
// buckets.
type HistogramVec struct{ v vec[*Histogram] }

// NewHistogramVec returns a histogram family with the given label names.
func NewHistogramVec(o HistogramOpts, labelNames []string) *HistogramVec {
	hv := &HistogramVec{}
	b := newBuckets(o.Name, o.Buckets)
	hv.v.init(newDesc(o.Name, o.Help, labelNames, "le"), "histogram", func() *Histogram { return newHistogram(nil, b) })
	return hv
}

// WithLabelValues returns the histogram for these label values, in the
// order of the label names given to NewHistogramVec, creating it on first
// use. It panics if the number of values is wrong.
func (hv *HistogramVec) WithLabelValues(values ...string) *Histogram { return hv.v.get(values) }

func (hv *HistogramVec) names() []string                { return hv.v.names() }
func (hv *HistogramVec) collect(fams []family) []family { return hv.v.collect(fams) }

// The unlabelled metrics are collectors of one series each.

func (c *Counter) names() []string   { return descNames(c.d) }
func (g *Gauge) names() []string     { return descNames(g.d) }
func (h *Histogram) names() []string { return descNames(h.d) }

func descNames(d *desc) []string {
	if d == nil {
		return nil // a vector's child: registering it is refused
	}
	return []string{d.name}
}

func (c *Counter) collect(fams []family) []family {
	return append(fams, family{name: c.d.name, help: c.d.help, typ: "counter", samples: c.appendSamples(nil, c.d, nil)})
}

func (g *Gauge) collect(fams []family) []family {
	return append(fams, family{name: g.d.name, help: g.d.help, typ: "gauge", samples: g.appendSamples(nil, g.d, nil)})
}

func (h *Histogram) collect(fams []family) []family {
	return append(fams, family{name: h.d.name, help: h.d.help, typ: "histogram", samples: h.appendSamples(nil, h.d, nil)})
}
