package oci_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// The distribution spec's grammars, written as regular expressions. They are
// independent oracles for the hand-written scanners.
var (
	repoGrammar = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagGrammar  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

func TestValidateRepository(t *testing.T) {
	// 255 characters: 127 two-character components "a/" ... plus "a".
	max := strings.Repeat("a/", 127) + "a"
	if len(max) != 255 {
		t.Fatalf("test setup: len = %d", len(max))
	}
	tests := []struct {
		name  string
		valid bool
	}{
		{"a", true},
		{"0", true},
		{"a/b", true},
		{"library/ubuntu", true},
		{"a.b_c__d---e/f", true},
		{"a-b", true},
		{"a--------b", true},
		{"a_b", true},
		{"a__b", true},
		{"a.b.c", true},
		{"a/b/c/d/e/f/g", true},
		{"0a/9z", true},
		{"blobs/manifests/tags/uploads", true},
		{strings.Repeat("a", 255), true},
		{max, true},

		{"", false},
		{"A", false},
		{"aB", false},
		{"..", false},
		{".", false},
		{"a/../b", false},
		{"a/./b", false},
		{"a..b", false},
		{"a//b", false},
		{"/a", false},
		{"a/", false},
		{"/", false},
		{"%2e%2e", false},
		{"a%2fb", false},
		{"a_", false},
		{"_a", false},
		{"a-", false},
		{"-a", false},
		{"a.", false},
		{".a", false},
		{"a___b", false},
		{"a__b___c", false},
		{"a._b", false},
		{"a-.b", false},
		{"a_-b", false},
		{"a:b", false},
		{"a@b", false},
		{"a b", false},
		{"a\\b", false},
		{strings.Repeat("a", 256), false},
		{max + "a", false},
		{max + "/a", false},
		{"café", false},
		{"ａ", false}, // fullwidth a
		{"a\x00", false},
		{"\x00", false},
		{"a\nb", false},
		{"a\xff", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.40q", tt.name), func(t *testing.T) {
			err := oci.ValidateRepository(tt.name)
			if tt.valid && err != nil {
				t.Fatalf("ValidateRepository(%q) = %v, want nil", tt.name, err)
			}
			if !tt.valid {
				if err == nil {
					t.Fatalf("ValidateRepository(%q) = nil, want error", tt.name)
				}
				if !errors.Is(err, oci.ErrNameInvalid) {
					t.Errorf("ValidateRepository(%q) = %v, want errors.Is ErrNameInvalid", tt.name, err)
				}
			}
			// The oracle must agree on every case, or the table is wrong.
			if oracle := repoGrammar.MatchString(tt.name) && len(tt.name) <= oci.MaxRepositoryLength; oracle != tt.valid {
				t.Errorf("table says valid=%v but the spec grammar says %v", tt.valid, oracle)
			}
		})
	}
}

func TestValidateRepositoryErrorIsBounded(t *testing.T) {
	long := "a/" + strings.Repeat("A", 200)
	err := oci.ValidateRepository(long)
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), strings.Repeat("A", 101)) {
		t.Errorf("error echoes the whole hostile component: %v", err)
	}
	if !strings.Contains(err.Error(), "component 2") {
		t.Errorf("error %q does not say which component is wrong", err)
	}
}

func FuzzValidateRepository(f *testing.F) {
	for _, s := range []string{
		"a", "a/b", "a.b_c__d---e/f", "library/ubuntu", "", "A", "..", "a/../b",
		"a//b", "/a", "a/", "%2e%2e", "a_", "a___b", "a__b", "a\x00", "café",
		strings.Repeat("a", 255), strings.Repeat("a", 256),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := oci.ValidateRepository(s)
		if oracle := repoGrammar.MatchString(s) && len(s) <= oci.MaxRepositoryLength; oracle != (err == nil) {
			t.Fatalf("ValidateRepository(%q) = %v, but the spec grammar says valid=%v", s, err, oracle)
		}
		if err != nil {
			if !errors.Is(err, oci.ErrNameInvalid) {
				t.Fatalf("ValidateRepository(%q) error %v does not wrap ErrNameInvalid", s, err)
			}
			if len(err.Error()) > maxErrLen {
				t.Fatalf("error message is %d bytes for %d bytes of input", len(err.Error()), len(s))
			}
			return
		}
		switch {
		case s == "", len(s) > oci.MaxRepositoryLength:
			t.Fatalf("accepted length %d", len(s))
		case strings.Contains(s, ".."), strings.Contains(s, "//"), strings.ContainsRune(s, '%'):
			t.Fatalf("accepted unsafe name %q", s)
		case strings.ToLower(s) != s:
			t.Fatalf("accepted uppercase name %q", s)
		case strings.HasPrefix(s, "/"), strings.HasSuffix(s, "/"):
			t.Fatalf("accepted name with leading or trailing slash %q", s)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._-/", c) >= 0) {
				t.Fatalf("accepted name %q with byte %q", s, c)
			}
		}
	})
}

func TestValidateTag(t *testing.T) {
	tests := []struct {
		tag   string
		valid bool
	}{
		{"latest", true},
		{"v1.0.0", true},
		{"v1.0-rc_1", true},
		{"_", true},
		{"_x", true},
		{"A", true},
		{"0", true},
		{"a..b--c__", true},
		{strings.Repeat("a", 128), true},

		{"", false},
		{".x", false},
		{"-x", false},
		{"x:y", false},
		{"x/y", false},
		{"x@y", false},
		{"x y", false},
		{"x+y", false},
		{"ü", false},
		{"x\x00", false},
		{"x\n", false},
		{strings.Repeat("a", 129), false},
		{"sha256:" + hex64, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.40q", tt.tag), func(t *testing.T) {
			err := oci.ValidateTag(tt.tag)
			if tt.valid && err != nil {
				t.Fatalf("ValidateTag(%q) = %v, want nil", tt.tag, err)
			}
			if !tt.valid {
				if err == nil {
					t.Fatalf("ValidateTag(%q) = nil, want error", tt.tag)
				}
				if !errors.Is(err, oci.ErrTagInvalid) {
					t.Errorf("ValidateTag(%q) = %v, want errors.Is ErrTagInvalid", tt.tag, err)
				}
			}
			if oracle := tagGrammar.MatchString(tt.tag); oracle != tt.valid {
				t.Errorf("table says valid=%v but the spec grammar says %v", tt.valid, oracle)
			}
		})
	}
}

func TestParseReference(t *testing.T) {
	d256 := "sha256:" + hex64
	d512 := "sha512:" + hex128
	tests := []struct {
		in      string
		want    oci.Reference
		wantErr error
	}{
		{in: "latest", want: oci.Reference{Tag: "latest"}},
		{in: "v1.2.3", want: oci.Reference{Tag: "v1.2.3"}},
		{in: d256, want: oci.Reference{Digest: digest.Digest(d256)}},
		{in: d512, want: oci.Reference{Digest: digest.Digest(d512)}},

		{in: "", wantErr: oci.ErrTagInvalid},
		{in: ".hidden", wantErr: oci.ErrTagInvalid},
		{in: strings.Repeat("t", 129), wantErr: oci.ErrTagInvalid},
		{in: "a/b", wantErr: oci.ErrTagInvalid},
		// Anything with ':' is judged as a digest, not as a strange tag.
		// "v1:2" is a well-formed digest of an unknown algorithm "v1".
		{in: "v1:2", wantErr: oci.ErrDigestUnsupported},
		{in: "v1:", wantErr: oci.ErrDigestInvalid},
		{in: "v1:2 3", wantErr: oci.ErrDigestInvalid},
		{in: "sha256:" + hex64[:10], wantErr: oci.ErrDigestInvalid},
		{in: "sha256:" + strings.ToUpper(hex64), wantErr: oci.ErrDigestInvalid},
		{in: "sha384:" + hex96, wantErr: oci.ErrDigestUnsupported},
		{in: "md5:d41d8cd98f00b204e9800998ecf8427e", wantErr: oci.ErrDigestUnsupported},
		{in: ":", wantErr: oci.ErrDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.40q", tt.in), func(t *testing.T) {
			got, err := oci.ParseReference(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseReference(%q) = %+v, %v; want errors.Is %v", tt.in, got, err, tt.wantErr)
				}
				if got != (oci.Reference{}) {
					t.Errorf("ParseReference(%q) returned %+v alongside an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReference(%q) = %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseReference(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.IsDigest() != (tt.want.Digest != "") {
				t.Errorf("IsDigest() = %v", got.IsDigest())
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"latest", "v1.2.3", "_", "sha256:" + hex64, "sha512:" + hex128, "sha384:" + hex96,
		"", ".x", "v1:2", ":", "a/b", strings.Repeat("t", 129),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := oci.ParseReference(s)
		if err != nil {
			if !errors.Is(err, oci.ErrTagInvalid) && !errors.Is(err, oci.ErrDigestInvalid) && !errors.Is(err, oci.ErrDigestUnsupported) {
				t.Fatalf("ParseReference(%q) error %v has no sentinel", s, err)
			}
			if r != (oci.Reference{}) {
				t.Fatalf("ParseReference(%q) returned %+v alongside an error", s, r)
			}
			return
		}
		if (r.Tag == "") == (r.Digest == "") {
			t.Fatalf("ParseReference(%q) = %+v: want exactly one of tag and digest", s, r)
		}
		if r.String() != s {
			t.Fatalf("ParseReference(%q).String() = %q", s, r.String())
		}
		if r.IsDigest() {
			if _, err := oci.ParseDigest(r.Digest.String()); err != nil {
				t.Fatalf("ParseReference(%q) accepted digest that ParseDigest rejects: %v", s, err)
			}
		} else {
			if !tagGrammar.MatchString(r.Tag) {
				t.Fatalf("ParseReference(%q) accepted tag outside the grammar", s)
			}
		}
		again, err := oci.ParseReference(r.String())
		if err != nil || again != r {
			t.Fatalf("re-parse of %q = %+v, %v; want %+v", r.String(), again, err, r)
		}
	})
}

func TestParseImageRef(t *testing.T) {
	d := digest.Digest("sha256:" + hex64)
	tests := []struct {
		in      string
		want    oci.ImageRef
		wantErr error
	}{
		{in: "app", want: oci.ImageRef{Repository: "app"}},
		{in: "team/app", want: oci.ImageRef{Repository: "team/app"}},
		{in: "team/app:v1", want: oci.ImageRef{Repository: "team/app", Tag: "v1"}},
		{in: "localhost/x", want: oci.ImageRef{Registry: "localhost", Repository: "x"}},
		{in: "localhost:5000/x:latest", want: oci.ImageRef{Registry: "localhost:5000", Repository: "x", Tag: "latest"}},
		{in: "127.0.0.1:5000/team/app:v1", want: oci.ImageRef{Registry: "127.0.0.1:5000", Repository: "team/app", Tag: "v1"}},
		{in: "registry.example.com/a/b/c", want: oci.ImageRef{Registry: "registry.example.com", Repository: "a/b/c"}},
		{in: "Registry.Example.com/a", want: oci.ImageRef{Registry: "Registry.Example.com", Repository: "a"}},
		{in: "[::1]:5000/a:b", want: oci.ImageRef{Registry: "[::1]:5000", Repository: "a", Tag: "b"}},
		{in: "team/app@" + d.String(), want: oci.ImageRef{Repository: "team/app", Digest: d}},
		{in: "a:b@" + d.String(), want: oci.ImageRef{Repository: "a", Tag: "b", Digest: d}},
		{in: "host.io/a:b@" + d.String(), want: oci.ImageRef{Registry: "host.io", Repository: "a", Tag: "b", Digest: d}},
		// Without '.' or ':' or "localhost", the first component is a path component.
		{in: "team/app/x", want: oci.ImageRef{Repository: "team/app/x"}},
		// A bare "localhost" is a repository; with ":5000" it is repository plus tag.
		{in: "localhost", want: oci.ImageRef{Repository: "localhost"}},
		{in: "localhost:5000", want: oci.ImageRef{Repository: "localhost", Tag: "5000"}},

		{in: "", wantErr: oci.ErrNameInvalid},
		{in: "Team/app", wantErr: oci.ErrNameInvalid},
		{in: "LOCALHOST/x", wantErr: oci.ErrNameInvalid},
		{in: "/app", wantErr: oci.ErrNameInvalid},
		{in: "app/", wantErr: oci.ErrNameInvalid},
		{in: "localhost/", wantErr: oci.ErrNameInvalid},
		{in: "host.io/", wantErr: oci.ErrNameInvalid},
		{in: "a//b", wantErr: oci.ErrNameInvalid},
		{in: "host.io/a/../b", wantErr: oci.ErrNameInvalid},
		{in: "bad_host.io/a", wantErr: oci.ErrNameInvalid},
		{in: "host.io:5000/", wantErr: oci.ErrNameInvalid},
		{in: "@" + d.String(), wantErr: oci.ErrNameInvalid},
		{in: ":tag", wantErr: oci.ErrNameInvalid},
		{in: "app:", wantErr: oci.ErrTagInvalid},
		{in: "app:-x", wantErr: oci.ErrTagInvalid},
		{in: "app:" + strings.Repeat("t", 129), wantErr: oci.ErrTagInvalid},
		{in: "app@", wantErr: oci.ErrDigestInvalid},
		{in: "app@sha256:abc", wantErr: oci.ErrDigestInvalid},
		{in: "app@sha384:" + hex96, wantErr: oci.ErrDigestUnsupported},
		{in: "app@" + d.String() + "@" + d.String(), wantErr: oci.ErrDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := oci.ParseImageRef(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseImageRef(%q) = %+v, %v; want errors.Is %v", tt.in, got, err, tt.wantErr)
				}
				if got != (oci.ImageRef{}) {
					t.Errorf("ParseImageRef(%q) returned %+v alongside an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseImageRef(%q) = %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseImageRef(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func FuzzParseImageRef(f *testing.F) {
	d := "sha256:" + hex64
	for _, s := range []string{
		"app", "team/app:v1", "localhost/x", "localhost:5000", "127.0.0.1:5000/team/app:v1",
		"team/app@" + d, "a:b@" + d, "[::1]:5000/a:b", "host.io/a:b@" + d, "", "/app", "app:",
		"bad_host.io/a", "@" + d, "a@b@" + d, ":/x", "a.b/c.d/e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := oci.ParseImageRef(s)
		if err != nil {
			if r != (oci.ImageRef{}) {
				t.Fatalf("ParseImageRef(%q) returned %+v alongside an error", s, r)
			}
			return
		}
		if verr := oci.ValidateRepository(r.Repository); verr != nil {
			t.Fatalf("ParseImageRef(%q) accepted repository %q: %v", s, r.Repository, verr)
		}
		if r.Tag != "" && oci.ValidateTag(r.Tag) != nil {
			t.Fatalf("ParseImageRef(%q) accepted tag %q", s, r.Tag)
		}
		if r.Digest != "" {
			if _, err := oci.ParseDigest(r.Digest.String()); err != nil {
				t.Fatalf("ParseImageRef(%q) accepted digest %q", s, r.Digest)
			}
		}
		again, err := oci.ParseImageRef(r.String())
		if err != nil {
			t.Fatalf("ParseImageRef(%q) = %+v, but its String() %q does not parse: %v", s, r, r.String(), err)
		}
		if again != r {
			t.Fatalf("ParseImageRef(%q) = %+v, but re-parsing %q gives %+v", s, r, r.String(), again)
		}
	})
}

func ExampleParseImageRef() {
	r, err := oci.ParseImageRef("127.0.0.1:5000/team/app:v1")
	if err != nil {
		panic(err)
	}
	fmt.Printf("registry=%s repository=%s tag=%s\n", r.Registry, r.Repository, r.Tag)
	r, _ = oci.ParseImageRef("team/app:v1")
	fmt.Printf("registry=%q repository=%s tag=%s\n", r.Registry, r.Repository, r.Tag)
	// Output:
	// registry=127.0.0.1:5000 repository=team/app tag=v1
	// registry="" repository=team/app tag=v1
}
