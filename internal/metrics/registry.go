package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// ErrAlreadyRegistered is returned by Register for a collector whose metric
// family name is already taken on the registry.
var ErrAlreadyRegistered = errors.New("metrics: family already registered")

// Collector is what a Registry writes: the metrics of this package and the
// Go and process collectors.
type Collector interface {
	// names lists the families the collector may write, for the duplicate
	// check at registration.
	names() []string
	// collect appends the collector's current families. It runs at scrape
	// time, concurrently with updates, and must not fail: a value that
	// cannot be read is left out.
	collect(fams []family) []family
}

// family is one metric family ready to write: the header's parts and its
// sample lines, already in text form.
type family struct {
	name, help, typ string
	samples         []byte
}

// Registry holds collectors and writes them in the Prometheus text format.
// Its zero value is not usable; use NewRegistry.
type Registry struct {
	mu         sync.RWMutex
	collectors []Collector
	taken      map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{taken: map[string]bool{}}
}

// Register adds collectors. It fails, registering none of them, if a family
// name is already taken (ErrAlreadyRegistered) or a collector has no name
// (a vector's child).
func (r *Registry) Register(cs ...Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	add := map[string]bool{}
	for _, c := range cs {
		names := c.names()
		if len(names) == 0 {
			return fmt.Errorf("metrics: cannot register %T: it has no family name (a vector's child?)", c)
		}
		for _, n := range names {
			if r.taken[n] || add[n] {
				return fmt.Errorf("%w: %s", ErrAlreadyRegistered, n)
			}
			add[n] = true
		}
	}
	for n := range add {
		r.taken[n] = true
	}
	r.collectors = append(r.collectors, cs...)
	return nil
}

// MustRegister is Register that panics on error, for set-up code where a
// duplicate is a programming error.
func (r *Registry) MustRegister(cs ...Collector) {
	if err := r.Register(cs...); err != nil {
		panic(err)
	}
}

// AppendText appends the registry's current state in the text exposition
// format 0.0.4 to b: families sorted by name, each with # HELP and # TYPE
// lines, families without samples left out.
func (r *Registry) AppendText(b []byte) []byte {
	r.mu.RLock()
	cs := slices.Clone(r.collectors)
	r.mu.RUnlock()
	var fams []family
	for _, c := range cs {
		fams = c.collect(fams)
	}
	slices.SortFunc(fams, func(a, b family) int { return strings.Compare(a.name, b.name) })
	for _, f := range fams {
		if len(f.samples) == 0 {
			continue
		}
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.typ...)
		b = append(b, '\n')
		b = append(b, f.samples...)
	}
	return b
}

// WriteText writes the registry's current state in the text exposition
// format 0.0.4.
func (r *Registry) WriteText(w io.Writer) error {
	_, err := w.Write(r.AppendText(nil))
	return err
}

// ContentType is the media type of WriteText's output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the registry for Prometheus to scrape.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b := r.AppendText(nil)
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		// A failed write means the scraper went away; nothing to tell it.
		_, _ = w.Write(b)
	})
}
