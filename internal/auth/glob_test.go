package auth

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

func TestValidateGlob(t *testing.T) {
	tests := []struct {
		glob string
		ok   bool
	}{
		{"team/app", true},
		{"team/*", true},
		{"team/**", true},
		{"**", true},
		{"*", true},
		{"**/cache", true},
		{"a/**/b", true},
		{"team/app-*", true},
		{"team/*-test", true},
		{"team/v*.x", true},
		{"team/a*b*c", true},
		{"team/app__*", true},
		{"", false},
		{"/team", false},
		{"team/", false},
		{"team//app", false},
		{"Team/*", false},        // upper case
		{"team/a**", false},      // ** only as a whole component
		{"team/***", false},      // likewise
		{"team/-*", false},       // would start with a separator
		{"team/*.", false},       // would end with a separator
		{"team/../prod", false},  // traversal
		{"team/%2e%2e/*", false}, // escapes are not names
		{"team/?", false},        // no other wildcard syntax
		{"team/[ab]", false},     // no character classes
		{"team:*", false},        // no tags
		{"team/a b", false},      // no spaces
		{strings.Repeat("a", MaxGlobLength), true},
		{strings.Repeat("a", MaxGlobLength+1), false},
	}
	for _, tc := range tests {
		err := ValidateGlob(tc.glob)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateGlob(%q) = %v, want ok=%v", tc.glob, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidGlob) {
			t.Errorf("ValidateGlob(%q) error %v does not wrap ErrInvalidGlob", tc.glob, err)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		glob, repo string
		want       bool
	}{
		{"team/app", "team/app", true},
		{"team/app", "team/app2", false},
		{"team/app", "team", false},
		{"team/*", "team/app", true},
		{"team/*", "team/a/b", false}, // * stays within one component
		{"team/*", "team", false},
		{"team/*", "other/app", false},
		{"team/**", "team/a", true},
		{"team/**", "team/a/b/c", true},
		{"team/**", "team", false}, // documented: trailing ** needs a component
		{"team/**", "teams/a", false},
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"*", "a", true},
		{"*", "a/b", false},
		{"**/cache", "cache", true}, // ** may match no components
		{"**/cache", "a/b/cache", true},
		{"**/cache", "a/cache/b", false},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/x/y/c", false},
		{"a/**/b/**", "a/x/b/y", true},
		{"a/**/b/**", "a/b", false},
		{"team/app-*", "team/app-web", true},
		{"team/app-*", "team/app", false},
		{"team/app-*", "team/app-web/x", false},
		{"team/*-test", "team/web-test", true},
		{"team/a*b*c", "team/axxbyyc", true},
		{"team/a*b*c", "team/axxbyy", false},
		{"*/*", "a/b", true},
		{"*/*", "a/b/c", false},
		// Invalid globs and names match nothing, even when they look alike.
		{"team//app", "team//app", false},
		{"Team/*", "Team/app", false},
		{"team/*", "team/App", false},
		{"team/*", "team/../prod", false},
		{"team/*", "team/", false},
		{"", "", false},
	}
	for _, tc := range tests {
		if got := MatchGlob(tc.glob, tc.repo); got != tc.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tc.glob, tc.repo, got, tc.want)
		}
		if ValidateGlob(tc.glob) == nil && oci.ValidateRepository(tc.repo) == nil {
			if ref := refMatchGlob(tc.glob, tc.repo); ref != tc.want {
				t.Errorf("reference matcher disagrees with the table for (%q, %q): %v", tc.glob, tc.repo, ref)
			}
		}
	}
}

// TestMatchGlobPathological guards against exponential backtracking: globs
// built to make a naive recursive matcher explore every split, against
// names that almost match. A naive matcher takes longer than the age of the
// universe on these; ours must answer the whole set in well under a second
// even under -race.
func TestMatchGlobPathological(t *testing.T) {
	name := strings.Repeat("a", 254) // one component, no final "b"
	var sb strings.Builder
	for sb.Len() < MaxGlobLength-3 {
		sb.WriteString("a*")
	}
	charGlob := sb.String() + "b"
	if err := ValidateGlob(charGlob); err != nil {
		t.Fatal(err)
	}

	comps := strings.TrimSuffix(strings.Repeat("a/", 127), "/") // 127 components
	var gb strings.Builder
	for gb.Len() < MaxGlobLength-6 {
		gb.WriteString("**/a/")
	}
	compGlob := gb.String() + "b"
	if err := ValidateGlob(compGlob); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	for range 10 {
		if MatchGlob(charGlob, name) {
			t.Fatal("character pathological glob matched")
		}
		if MatchGlob(compGlob, comps) {
			t.Fatal("component pathological glob matched")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("20 pathological matches took %v", d)
	}
}

func BenchmarkMatchGlobPathological(b *testing.B) {
	name := strings.Repeat("a", 254)
	glob := strings.Repeat("a*", 126) + "b"
	for b.Loop() {
		MatchGlob(glob, name)
	}
}

func BenchmarkMatchGlob(b *testing.B) {
	for b.Loop() {
		MatchGlob("team/**", "team/app/web")
	}
}

// refMatchGlob is an independent, obviously-correct (and exponential)
// implementation of the documented semantics, for tests and fuzzing on
// short inputs: recursion over components, a regular expression per
// component.
func refMatchGlob(g, repo string) bool {
	pat, name := strings.Split(g, "/"), strings.Split(repo, "/")
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		if i == len(pat) {
			return j == len(name)
		}
		if pat[i] == "**" {
			least := 0
			if i == len(pat)-1 && len(pat) > 1 {
				least = 1 // trailing "x/**" needs a component
			}
			for k := j + least; k <= len(name); k++ {
				if rec(i+1, k) {
					return true
				}
			}
			return false
		}
		if j == len(name) {
			return false
		}
		parts := strings.Split(pat[i], "*")
		for n, p := range parts {
			parts[n] = regexp.QuoteMeta(p)
		}
		re := regexp.MustCompile("^" + strings.Join(parts, "[^/]*") + "$")
		return re.MatchString(name[j]) && rec(i+1, j+1)
	}
	return rec(0, 0)
}

func FuzzMatchGlob(f *testing.F) {
	seeds := [][2]string{
		{"team/*", "team/app"},
		{"team/**", "team"},
		{"**/a", "a"},
		{"a/**/b/**", "a/b/c"},
		{"a*b*c", "aabbcc"},
		{"*-*", "a-b-c"},
		{"team//x", "team//x"},
		{"**/**", "a/b"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, g, repo string) {
		got := MatchGlob(g, repo)
		if ValidateGlob(g) != nil || oci.ValidateRepository(repo) != nil {
			if got {
				t.Fatalf("MatchGlob(%q, %q) matched an invalid glob or name", g, repo)
			}
			return
		}
		if !strings.Contains(g, "*") && got != (g == repo) {
			t.Fatalf("literal glob %q vs %q: got %v", g, repo, got)
		}
		// The reference is exponential; keep it to inputs it handles fast.
		if len(g) <= 24 && len(repo) <= 24 {
			if want := refMatchGlob(g, repo); got != want {
				t.Fatalf("MatchGlob(%q, %q) = %v, reference says %v", g, repo, got, want)
			}
		}
	})
}
