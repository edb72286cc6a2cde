package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// MaxGlobLength bounds a repository glob. A glob never needs to be longer
// than the longest name it could match literally.
const MaxGlobLength = oci.MaxRepositoryLength

// ErrInvalidGlob reports a repository glob outside the grammar ValidateGlob
// accepts.
var ErrInvalidGlob = errors.New("invalid repository glob")

// ValidateGlob checks a repository glob. A glob is a repository name whose
// "/"-separated components may also be:
//
//   - "*": exactly one component, any name;
//   - "**": any number of whole components (see MatchGlob for where that
//     includes none);
//   - a component with "*" mixed into valid characters ("app-*", "*-test",
//     "v*.x"), where each "*" stands for any run of characters inside that
//     one component.
//
// A component containing "*" is valid when replacing every "*" with a
// letter yields a valid repository component, so "app-*" is valid and "-*"
// or "*." are not. "**" must be a whole component: "a**" is refused because
// it would read as "crosses '/'" to some and "within the component" to others.
func ValidateGlob(g string) error {
	if g == "" {
		return fmt.Errorf("%w: empty", ErrInvalidGlob)
	}
	if len(g) > MaxGlobLength {
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidGlob, MaxGlobLength)
	}
	for i, comp := range strings.Split(g, "/") {
		if err := validateGlobComponent(comp); err != nil {
			return fmt.Errorf("%w: component %d %q: %v", ErrInvalidGlob, i+1, comp, err)
		}
	}
	return nil
}

func validateGlobComponent(c string) error {
	switch {
	case c == "":
		return errors.New("empty")
	case c == "*" || c == "**":
		return nil
	case strings.Contains(c, "**"):
		return errors.New(`"**" must be a whole component`)
	}
	// Replacing each "*" with a letter turns a component template into a
	// sample name: the template is valid when the sample is. That keeps the
	// glob grammar defined by the one repository grammar in package oci.
	sample := strings.ReplaceAll(c, "*", "a")
	if err := oci.ValidateRepository(sample); err != nil {
		return errors.New("not a repository name component with '*' wildcards")
	}
	return nil
}

// MatchGlob reports whether repo matches the glob g.
//
// Semantics:
//   - a literal glob matches exactly that name;
//   - "*" inside a component matches any run of characters within that
//     component, never "/": "team/*" matches "team/app", not "team/a/b";
//   - a "**" component matches any number of components, including none:
//     "a/**/b" matches "a/b" and "a/x/y/b", "**/cache" matches "cache";
//   - except that a trailing "**" after other components needs at least
//     one: "team/**" matches "team/a" and "team/a/b" but NOT "team". A
//     grant on everything under a namespace should not silently cover a
//     repository named like the namespace itself; grant "team" too if that
//     is wanted. "**" alone matches every repository.
//
// An invalid glob or repository name matches nothing, so a corrupt grant
// can never widen access.
//
// The matcher is the classic greedy wildcard algorithm applied twice (over
// components, and over characters inside a component): it backtracks only
// to the most recent "**" or "*", so its cost is bounded by
// O(len(g)·len(repo)) — at most 255×255 steps — whatever the pattern. No
// exponential blow-up on hostile globs such as "*a*a*a*a*b".
func MatchGlob(g, repo string) bool {
	if ValidateGlob(g) != nil || oci.ValidateRepository(repo) != nil {
		return false
	}
	pat := strings.Split(g, "/")
	if n := len(pat); n > 1 && pat[n-1] == "**" {
		// "x/**" means "x/*/**": one or more components.
		pat = append(pat[:n-1], "*", "**")
	}
	return matchComponents(pat, strings.Split(repo, "/"))
}

// matchComponents matches component patterns against components, "**"
// standing for any run of components.
func matchComponents(pat, name []string) bool {
	p, n := 0, 0
	star, mark := -1, 0 // last "**" seen in pat, and where in name it resumed
	for n < len(name) {
		switch {
		case p < len(pat) && pat[p] == "**":
			star, mark = p, n
			p++
		case p < len(pat) && matchComponent(pat[p], name[n]):
			p++
			n++
		case star >= 0:
			// Let the last "**" absorb one more component and retry.
			mark++
			p, n = star+1, mark
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == "**" {
		p++
	}
	return p == len(pat)
}

// matchComponent matches one component pattern, where "*" stands for any
// run of bytes (the component has no "/" to cross).
func matchComponent(pat, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pat) && pat[p] == '*':
			star, mark = p, i
			p++
		case p < len(pat) && pat[p] == s[i]:
			p++
			i++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}
