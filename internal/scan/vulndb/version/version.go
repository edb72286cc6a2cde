// Package version holds the version orders vulnerability matching needs:
// Debian (dpkg), Alpine (apk), Go modules and toolchains, semantic versions
// (npm, crates.io, OSV SEMVER ranges) and PyPI (PEP 440). Each order parses
// a version once; parsed versions of one order compare with each other.
package version

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is returned (wrapped) for a version an order cannot parse.
var ErrInvalid = errors.New("invalid version")

// MaxLen bounds a version string. Real versions are far shorter; the bound
// keeps hostile advisories from making comparisons expensive.
const MaxLen = 256

// A Version is a parsed version. Compare is only meaningful between versions
// parsed by the same Order.
type Version interface {
	// Compare returns -1, 0 or +1 as v is older than, equal to or newer
	// than w.
	Compare(w Version) int
	String() string
}

// An Order parses the versions of one ecosystem.
type Order interface {
	// Name names the order in messages ("debian", "semver", …).
	Name() string
	Parse(s string) (Version, error)
}

// Orders, one value each; they hold no state.
var (
	Debian Order = debianOrder{}
	Alpine Order = alpineOrder{}
	Go     Order = goOrder{}
	SemVer Order = semverOrder{}
	PyPI   Order = pypiOrder{}
)

// ForEcosystem returns the order of an OSV ecosystem ("Debian:12",
// "Alpine:v3.20", "Go", "npm", "PyPI", "crates.io", "Ubuntu:22.04", …), and
// false for ecosystems bulwark cannot order (their advisories still match
// through explicit version lists).
func ForEcosystem(ecosystem string) (Order, bool) {
	base, _, _ := strings.Cut(ecosystem, ":")
	switch base {
	case "Debian", "Ubuntu":
		return Debian, true
	case "Alpine", "Wolfi", "Chainguard":
		return Alpine, true
	case "Go":
		return Go, true
	case "npm", "crates.io":
		return SemVer, true
	case "PyPI":
		return PyPI, true
	}
	return nil, false
}

// ForRange returns the order of an OSV range: SEMVER ranges use semantic
// versioning whatever the ecosystem (except Go, whose module versions are
// semantic versions with Go's own spelling), ECOSYSTEM ranges the
// ecosystem's order. GIT ranges cannot be evaluated on package versions.
func ForRange(rangeType, ecosystem string) (Order, bool) {
	switch rangeType {
	case "SEMVER":
		if base, _, _ := strings.Cut(ecosystem, ":"); base == "Go" {
			return Go, true
		}
		return SemVer, true
	case "ECOSYSTEM":
		return ForEcosystem(ecosystem)
	}
	return nil, false
}

func invalid(order, s, why string) error {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Errorf("%w: %s version %q: %s", ErrInvalid, order, s, why)
}

// checkCommon rejects what no order accepts: empty, overlong, non-ASCII,
// control characters and whitespace.
func checkCommon(order, s string) error {
	if s == "" {
		return invalid(order, s, "empty")
	}
	if len(s) > MaxLen {
		return invalid(order, s, fmt.Sprintf("longer than %d bytes", MaxLen))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return invalid(order, s, fmt.Sprintf("byte 0x%02x at %d", c, i))
		}
	}
	return nil
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
