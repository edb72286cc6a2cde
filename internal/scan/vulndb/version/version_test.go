package version_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/version"
)

func TestOrders(t *testing.T) {
	for _, c := range []struct {
		order version.Order
		a, b  string
		want  int
	}{
		// Alpine: apk-tools' rules (suffixes, letters, revisions).
		{version.Alpine, "1.2.3-r0", "1.2.3-r1", -1},
		{version.Alpine, "1.2.3_rc1", "1.2.3", -1},
		{version.Alpine, "1.2.3_alpha", "1.2.3_beta", -1},
		{version.Alpine, "1.2.3_p1", "1.2.3", 1},
		{version.Alpine, "1.2.3a", "1.2.3", 1},
		{version.Alpine, "1.2.3a", "1.2.3b", -1},
		{version.Alpine, "1.10", "1.9", 1},
		{version.Alpine, "3.0.13-r0", "3.0.8-r0", 1},
		{version.Alpine, "1.36.1-r2", "1.36.1-r15", -1},
		{version.Alpine, "2.0_git20240101", "2.0", 1},
		// Semantic versions (npm, crates.io, OSV SEMVER).
		{version.SemVer, "1.0.0-alpha", "1.0.0-alpha.1", -1},
		{version.SemVer, "1.0.0-alpha.beta", "1.0.0-beta", -1},
		{version.SemVer, "1.0.0-rc.1", "1.0.0", -1},
		{version.SemVer, "1.0.0+build.1", "1.0.0", 0},
		{version.SemVer, "1.10.0", "1.9.0", 1},
		{version.SemVer, "v2.0.0", "2.0.0", 0},
		// Go modules and toolchains.
		{version.Go, "v0.3.7", "0.3.8", -1},
		{version.Go, "v2.0.0+incompatible", "2.0.0", 0},
		{version.Go, "v0.0.0-20250721152936-fe86ceb2c3fa", "0.0.0-20260626085133-7cb96ac80a6d", -1},
		{version.Go, "go1.21.3", "1.21.8", -1},
		{version.Go, "go1.22rc1", "1.22.0-0", 1},
		{version.Go, "go1.22rc1", "1.22.0", -1},
		{version.Go, "go1.21", "1.21.0", 0},
		{version.Go, "go1.20", "1.20.0", 0},
		{version.Go, "go1.9beta2", "1.9.0-beta.2", 0},
		{version.Go, "go1.26.11 X:boringcrypto", "1.26.11", 0},
		{version.Go, "go1.24.4-bigcorp", "1.24.4", 0},
		// PyPI: PEP 440.
		{version.PyPI, "1.0", "1.0.0", 0},
		{version.PyPI, "1.0a1", "1.0", -1},
		{version.PyPI, "1.0.dev1", "1.0a1", -1},
		{version.PyPI, "1.0.post1", "1.0", 1},
		{version.PyPI, "1!0.1", "2.0", 1},
		{version.PyPI, "1.0rc1", "1.0c2", -1},
		{version.PyPI, "2.31.0", "2.4.0", 1},
		{version.PyPI, "1.0+local.1", "1.0", 1},
	} {
		a, err := c.order.Parse(c.a)
		if err != nil {
			t.Fatalf("%s Parse(%q): %v", c.order.Name(), c.a, err)
		}
		b, err := c.order.Parse(c.b)
		if err != nil {
			t.Fatalf("%s Parse(%q): %v", c.order.Name(), c.b, err)
		}
		if got := a.Compare(b); got != c.want {
			t.Errorf("%s: %q vs %q = %d, want %d", c.order.Name(), c.a, c.b, got, c.want)
		}
		if got := b.Compare(a); got != -c.want {
			t.Errorf("%s: %q vs %q = %d, want %d", c.order.Name(), c.b, c.a, got, -c.want)
		}
	}
}

func TestInvalidVersions(t *testing.T) {
	long := strings.Repeat("1", version.MaxLen+1)
	for _, c := range []struct {
		order version.Order
		s     string
	}{
		{version.Alpine, ""}, {version.Alpine, "abc"}, {version.Alpine, "1.2.3_foo"}, {version.Alpine, long},
		{version.SemVer, "1.2"}, {version.SemVer, "01.2.3"}, {version.SemVer, "1.2.3-"}, {version.SemVer, "latest"},
		{version.Go, "go1"}, {version.Go, "go1.x"}, {version.Go, "gox"}, {version.Go, "1.2.3.4"}, {version.Go, "go1.22rc"},
		{version.PyPI, "not a version"}, {version.PyPI, "1.0\n"},
		{version.Debian, "1.0\t"},
	} {
		if _, err := c.order.Parse(c.s); err == nil {
			t.Errorf("%s Parse(%q) accepted", c.order.Name(), c.s)
		} else if !errors.Is(err, version.ErrInvalid) {
			t.Errorf("%s Parse(%q): %v does not wrap ErrInvalid", c.order.Name(), c.s, err)
		}
	}
}

func TestForEcosystem(t *testing.T) {
	for eco, want := range map[string]string{
		"Debian:12": "debian", "Debian": "debian", "Ubuntu:22.04:LTS": "debian", "Alpine:v3.20": "alpine",
		"Go": "go", "npm": "semver", "crates.io": "semver", "PyPI": "pypi",
	} {
		o, ok := version.ForEcosystem(eco)
		if !ok || o.Name() != want {
			t.Errorf("ForEcosystem(%q) = %v, %v; want %s", eco, o, ok, want)
		}
	}
	if _, ok := version.ForEcosystem("Maven"); ok {
		t.Error("Maven has no order here")
	}
	if o, ok := version.ForRange("SEMVER", "Go"); !ok || o.Name() != "go" {
		t.Errorf("SEMVER range in Go = %v", o)
	}
	if o, ok := version.ForRange("SEMVER", "npm"); !ok || o.Name() != "semver" {
		t.Errorf("SEMVER range in npm = %v", o)
	}
	if _, ok := version.ForRange("GIT", "Go"); ok {
		t.Error("GIT ranges cannot be evaluated")
	}
}

// FuzzParse checks that no order panics or violates antisymmetry on
// arbitrary input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"1:2.36-9+deb12u4", "1.2.3_rc1-r0", "go1.22rc1", "v0.0.0-20250721152936-fe86ceb2c3fa", "1!2.0.post1.dev3+local", "1.0+git123456789012345678901"} {
		f.Add(s, "1.0")
	}
	orders := []version.Order{version.Debian, version.Alpine, version.Go, version.SemVer, version.PyPI}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, o := range orders {
			va, errA := o.Parse(a)
			vb, errB := o.Parse(b)
			if errA != nil || errB != nil {
				continue
			}
			if x, y := va.Compare(vb), vb.Compare(va); x != -y || x < -1 || x > 1 {
				t.Fatalf("%s: %q vs %q: %d and %d", o.Name(), a, b, x, y)
			}
			if va.Compare(va) != 0 {
				t.Fatalf("%s: %q not equal to itself", o.Name(), a)
			}
		}
	})
}
