package version_test

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/aptindex"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/version"
)

// realDebianVersions reads every version this machine knows: installed
// packages (dpkg status) and the APT indexes (bookworm, -updates,
// -security), keyed by package.
func realDebianVersions(t testing.TB) (byPkg map[string][]string, sources []string) {
	t.Helper()
	files := []string{"/var/lib/dpkg/status"}
	lists, _ := filepath.Glob("/var/lib/apt/lists/*_Packages*")
	files = append(files, lists...)
	byPkg = map[string][]string{}
	for _, f := range files {
		rc, err := aptindex.Open(f)
		if err != nil {
			t.Logf("skip %s: %v", f, err)
			continue
		}
		err = aptindex.Parse(rc, func(e aptindex.Entry) error {
			if e.Version == "" {
				return nil
			}
			if !slices.Contains(byPkg[e.Package], e.Version) {
				byPkg[e.Package] = append(byPkg[e.Package], e.Version)
			}
			if e.SourceVersion != "" && !slices.Contains(byPkg["src:"+e.Source], e.SourceVersion) {
				byPkg["src:"+e.Source] = append(byPkg["src:"+e.Source], e.SourceVersion)
			}
			return nil
		})
		rc.Close()
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		sources = append(sources, f)
	}
	return byPkg, sources
}

// dpkgConfirms asks dpkg --compare-versions whether a rel b holds, rel being
// -1, 0 or +1: one process per pair, so ~1,000 pairs stay affordable on a
// busy machine. The three relations exclude each other, so dpkg confirming
// bulwark's answer is agreement.
func dpkgConfirms(t testing.TB, a string, rel int, b string) bool {
	t.Helper()
	return dpkgRun(t, a, map[int]string{-1: "lt", 0: "eq", 1: "gt"}[rel], b)
}

func dpkgRun(t testing.TB, a, op, b string) bool {
	t.Helper()
	err := exec.Command("dpkg", "--compare-versions", a, op, b).Run()
	if err == nil {
		return true
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return false
	}
	t.Fatalf("dpkg --compare-versions %q %s %q: %v", a, op, b, err)
	return false
}

// dpkgCompare asks dpkg --compare-versions for the order of a and b.
func dpkgCompare(t testing.TB, a, b string) int {
	t.Helper()
	run := func(op string) bool {
		err := exec.Command("dpkg", "--compare-versions", a, op, b).Run()
		if err == nil {
			return true
		}
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return false
		}
		t.Fatalf("dpkg --compare-versions %q %s %q: %v", a, op, b, err)
		return false
	}
	switch {
	case run("lt"):
		return -1
	case run("eq"):
		return 0
	}
	return 1
}

// TestDebianOrderAgreesWithDpkg compares bulwark's Debian order with dpkg's
// on real version pairs from this machine: every pair of versions of the
// same package across the installed set and the APT indexes (what a
// security update compares), adjacent versions of a sorted sample (which
// checks the order is the same total order), and random pairs.
func TestDebianOrderAgreesWithDpkg(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Fatal("dpkg is required as the test oracle: ", err)
	}
	byPkg, sources := realDebianVersions(t)
	t.Logf("versions from %d files, %d packages", len(sources), len(byPkg))

	type pair struct{ a, b, kind string }
	var pairs []pair
	names := make([]string, 0, len(byPkg))
	var all []string
	for n, vs := range byPkg {
		names = append(names, n)
		all = append(all, vs...)
	}
	sort.Strings(names)
	sort.Strings(all)
	all = slices.Compact(all)
	rng := rand.New(rand.NewPCG(7, 11))
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })

	// Same package, different versions (installed vs bookworm vs
	// -updates vs -security: the comparison "behind" and matching make).
	same := 0
	for _, n := range names {
		vs := byPkg[n]
		for i := 0; i < len(vs) && same < 600; i++ {
			for j := i + 1; j < len(vs); j++ {
				pairs = append(pairs, pair{vs[i], vs[j], "same-package"})
				same++
			}
		}
	}
	// Adjacent versions in a sorted sample of all versions.
	sample := make([]string, 0, 300)
	for _, i := range rng.Perm(len(all))[:min(300, len(all))] {
		sample = append(sample, all[i])
	}
	parsed := make([]version.Version, len(sample))
	for i, s := range sample {
		v, err := version.Debian.Parse(s)
		if err != nil {
			t.Fatalf("real version %q does not parse: %v", s, err)
		}
		parsed[i] = v
	}
	slices.SortStableFunc(parsed, func(a, b version.Version) int { return a.Compare(b) })
	for i := 1; i < len(parsed); i++ {
		pairs = append(pairs, pair{parsed[i-1].String(), parsed[i].String(), "sorted-adjacent"})
	}
	// Random pairs.
	for range 200 {
		pairs = append(pairs, pair{all[rng.IntN(len(all))], all[rng.IntN(len(all))], "random"})
	}
	if len(pairs) < 1000 {
		t.Fatalf("only %d real version pairs on this machine (need ≥ 1000): is /var/lib/apt/lists populated (apt-get update)?", len(pairs))
	}

	counts := map[string]int{}
	disagree := 0
	for _, p := range pairs {
		va, err := version.Debian.Parse(p.a)
		if err != nil {
			t.Fatalf("real version %q does not parse: %v", p.a, err)
		}
		vb, err := version.Debian.Parse(p.b)
		if err != nil {
			t.Fatalf("real version %q does not parse: %v", p.b, err)
		}
		got := va.Compare(vb)
		counts[p.kind]++
		if !dpkgConfirms(t, p.a, got, p.b) {
			disagree++
			t.Errorf("%s: bulwark says %q %s %q, dpkg says %s", p.kind, p.a, rel(got), p.b, rel(dpkgCompare(t, p.a, p.b)))
		}
	}
	t.Logf("compared %d real pairs with dpkg (%v): %d disagreements", len(pairs), counts, disagree)
}

func rel(c int) string {
	return map[int]string{-1: "<", 0: "=", 1: ">"}[c]
}

// TestDebianOrderEdgeCases covers what real indexes rarely contain, each
// checked against dpkg too.
func TestDebianOrderEdgeCases(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Fatal("dpkg is required as the test oracle: ", err)
	}
	for _, c := range []struct{ a, b string }{
		{"1.0", "1.0-0"},
		{"1.0~rc1", "1.0"},
		{"1.0~rc1-1", "1.0-1"},
		{"1.0-1", "1.0-1~bpo12+1"},
		{"1.0+b1", "1.0"},
		{"2.36-9+deb12u4", "2.36-9+b1"},
		{"2.36-9+deb12u10", "2.36-9+deb12u9"},
		{"1:1.0", "2.0"},
		{"0:1.0", "1.0"},
		{"1.0a", "1.0"},
		{"1.0a", "1.0+"},
		{"1.0.", "1.0"},
		{"1.001", "1.1"},
		{"1.0-a", "1.0-1"},
		{"7.88.1-10+deb12u5", "7.88.1-10+deb12u12"},
		// Digit runs beyond int64: go-deb-version saturates, bulwark
		// falls back to dpkg's algorithm.
		{"1.0+git123456789012345678901", "1.0+git123456789012345678902"},
		{"1.0+git99999999999999999999", "1.0+git100000000000000000000"},
		{"1.0-0.20240101000000000000001", "1.0-0.20240101000000000000000"},
	} {
		va, err := version.Debian.Parse(c.a)
		if err != nil {
			t.Fatalf("parse %q: %v", c.a, err)
		}
		vb, err := version.Debian.Parse(c.b)
		if err != nil {
			t.Fatalf("parse %q: %v", c.b, err)
		}
		got, want := va.Compare(vb), dpkgCompare(t, c.a, c.b)
		if got != want {
			t.Errorf("%q vs %q: bulwark %s, dpkg %s", c.a, c.b, rel(got), rel(want))
		}
		if back := vb.Compare(va); back != -got {
			t.Errorf("%q vs %q not antisymmetric: %d and %d", c.a, c.b, got, back)
		}
	}
}

func TestDebianInvalid(t *testing.T) {
	for _, s := range []string{"", " 1.0", "1.0 ", "a1.0", "1.0é", "+1:1.0", ":1.0", "x:1.0", "1.0-", "1.0-1$", "1\x00", fmt.Sprintf("%0300d", 1)} {
		if _, err := version.Debian.Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}
