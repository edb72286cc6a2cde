package version

import (
	"strings"

	pep440 "github.com/aquasecurity/go-pep440-version"
	apkversion "github.com/knqyf263/go-apk-version"
	"golang.org/x/mod/semver"
)

type alpineOrder struct{}

func (alpineOrder) Name() string { return "alpine" }

type alpineVersion struct{ v apkversion.Version }

func (alpineOrder) Parse(s string) (Version, error) {
	if err := checkCommon("alpine", s); err != nil {
		return nil, err
	}
	v, err := apkversion.NewVersion(s)
	if err != nil {
		return nil, invalid("alpine", s, err.Error())
	}
	return alpineVersion{v}, nil
}

func (a alpineVersion) Compare(w Version) int { return sign(a.v.Compare(w.(alpineVersion).v)) }
func (a alpineVersion) String() string        { return string(a.v) }

// semverVersion keeps the canonical "v"-prefixed form golang.org/x/mod/semver
// compares.
type semverVersion struct{ canon, orig string }

func (s semverVersion) Compare(w Version) int {
	return semver.Compare(s.canon, w.(semverVersion).canon)
}
func (s semverVersion) String() string { return s.orig }

type semverOrder struct{}

func (semverOrder) Name() string { return "semver" }

// Parse accepts semantic versions 2.0.0 with or without a leading "v".
// golang.org/x/mod/semver also takes the shorthands "v1" and "v1.2"; npm
// and OSV never write them, so they are refused here.
func (semverOrder) Parse(s string) (Version, error) {
	if err := checkCommon("semver", s); err != nil {
		return nil, err
	}
	v := s
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) || strings.Count(strings.SplitN(strings.SplitN(v, "-", 2)[0], "+", 2)[0], ".") != 2 {
		return nil, invalid("semver", s, "not a semantic version")
	}
	return semverVersion{canon: v, orig: s}, nil
}

type goOrder struct{}

func (goOrder) Name() string { return "go" }

// Parse accepts Go module versions ("v1.2.3", pseudo-versions,
// "+incompatible"), the same without "v" as OSV writes them, and Go
// toolchain versions ("go1.21.3", "go1.22rc1", "go1.20"), which become the
// semantic versions the Go vulnerability database uses for the standard
// library ("1.21.3", "1.22.0-rc.1", "1.20.0").
func (goOrder) Parse(s string) (Version, error) {
	if strings.HasPrefix(s, "go") {
		// Build info writes experiments after a space.
		s, _, _ = strings.Cut(s, " ")
	}
	if err := checkCommon("go", s); err != nil {
		return nil, err
	}
	v := s
	if strings.HasPrefix(v, "go") {
		t, ok := goTagToSemver(v)
		if !ok {
			return nil, invalid("go", s, "not a Go toolchain version")
		}
		v = t
	} else if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return nil, invalid("go", s, "not a semantic version")
	}
	return semverVersion{canon: v, orig: s}, nil
}

// goTagToSemver converts a Go release tag: go1.21 → v1.21.0, go1.21.3 →
// v1.21.3, go1.22rc1 → v1.22.0-rc.1, go1.9beta2 → v1.9.0-beta.2. A build
// suffix after a space or hyphen ("go1.21.3 X:boringcrypto",
// "go1.22.1-bigcorp") is ignored, as the go command does for release
// comparisons.
func goTagToSemver(tag string) (string, bool) {
	tag = strings.TrimPrefix(tag, "go")
	if i := strings.IndexAny(tag, " -+"); i >= 0 {
		tag = tag[:i]
	}
	pre := ""
	for _, p := range []string{"rc", "beta", "alpha"} {
		if i := strings.Index(tag, p); i >= 0 {
			n := tag[i+len(p):]
			if n == "" || strings.TrimLeft(n, "0123456789") != "" {
				return "", false
			}
			pre = "-" + p + "." + n
			tag = tag[:i]
			break
		}
	}
	parts := strings.Split(tag, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return "", false
	}
	for _, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return "", false
		}
	}
	if len(parts) == 2 {
		parts = append(parts, "0")
	}
	v := "v" + strings.Join(parts, ".") + pre
	return v, semver.IsValid(v)
}

type pypiOrder struct{}

func (pypiOrder) Name() string { return "pypi" }

type pypiVersion struct {
	v    pep440.Version
	orig string
}

func (pypiOrder) Parse(s string) (Version, error) {
	if err := checkCommon("pypi", s); err != nil {
		return nil, err
	}
	v, err := pep440.Parse(s)
	if err != nil {
		return nil, invalid("pypi", s, err.Error())
	}
	return pypiVersion{v: v, orig: s}, nil
}

func (p pypiVersion) Compare(w Version) int { return sign(p.v.Compare(w.(pypiVersion).v)) }
func (p pypiVersion) String() string        { return p.orig }
