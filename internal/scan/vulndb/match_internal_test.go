package vulndb

import (
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/version"
)

// FuzzAffects evaluates arbitrary OSV records against versions of every
// order: parsing, sorting and evaluating ranges must not panic (a mixed-
// order comparison would), and a range's answer must not depend on the
// order its events were written in.
func FuzzAffects(f *testing.F) {
	f.Add([]byte(`{"id":"GO-1","modified":"2025-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.21.8"},{"introduced":"1.22.0-0"},{"fixed":"1.22.1"}]}]}]}`), "v1.22.0")
	f.Add([]byte(`{"id":"D-1","modified":"2025-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"glibc"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.36-9+deb12u4"}]}],"versions":["2.36-9"]}]}`), "2.36-9+deb12u3")
	f.Add([]byte(`{"id":"P-1","modified":"2025-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"last_affected":"1.4.0"},{"limit":"2.0.0"}]}]}]}`), "1.2")
	f.Fuzz(func(t *testing.T, doc []byte, raw string) {
		vs, err := osv.Parse(doc)
		if err != nil {
			return
		}
		for _, v := range vs {
			for _, a := range v.Affected {
				if a.Package.Ecosystem == "" {
					continue
				}
				c := newCandidate(v.ID, a.Package.Ecosystem, a.Package.Name, storedAffected{Ranges: a.Ranges, Versions: a.Versions}, func(string) {})
				// The same ranges with events reversed.
				rev := storedAffected{Versions: a.Versions}
				for _, r := range a.Ranges {
					ev := append([]osv.Event{}, r.Events...)
					for i, j := 0, len(ev)-1; i < j; i, j = i+1, j-1 {
						ev[i], ev[j] = ev[j], ev[i]
					}
					r.Events = ev
					rev.Ranges = append(rev.Ranges, r)
				}
				cr := newCandidate(v.ID, a.Package.Ecosystem, a.Package.Name, rev, func(string) {})
				for _, o := range []version.Order{version.Debian, version.Alpine, version.Go, version.SemVer, version.PyPI} {
					pv, err := o.Parse(raw)
					if err != nil {
						pv = nil
					}
					aff, fix := c.affects(pv, o, raw)
					aff2, fix2 := cr.affects(pv, o, raw)
					if !hasTies(c) && (aff != aff2 || fix != fix2) {
						t.Fatalf("%s %q: event order changed the verdict: %v %q vs %v %q", o.Name(), raw, aff, fix, aff2, fix2)
					}
				}
			}
		}
	})
}

// hasTies reports events at equal versions, whose written order OSV leaves
// meaningful.
func hasTies(c *candidate) bool {
	for _, r := range c.ranges {
		for i := 1; i < len(r.events); i++ {
			a, b := r.events[i-1].v, r.events[i].v
			if (a == nil && b == nil) || (a != nil && b != nil && a.Compare(b) == 0) {
				return true
			}
		}
	}
	return false
}
