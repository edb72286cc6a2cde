package oci

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Limits from the distribution spec and the reference grammar that
// distribution/reference enforces; clients generate nothing longer.
const (
	MaxRepositoryLength = 255
	MaxTagLength        = 128
)

var (
	// ErrNameInvalid reports a repository name outside the spec's grammar.
	ErrNameInvalid = errors.New("invalid repository name")
	// ErrTagInvalid reports a tag outside the spec's grammar.
	ErrTagInvalid = errors.New("invalid tag")
)

// ValidateRepository checks a repository name against the distribution
// spec's grammar:
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// It is written as a scanner rather than a regular expression so that hostile
// names cost linear time and the error says which component is wrong. The
// grammar itself excludes "..", "%2e" and empty components, which is what keeps
// names safe to use in paths and SQL keys.
func ValidateRepository(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrNameInvalid)
	}
	if len(name) > MaxRepositoryLength {
		return fmt.Errorf("%w: longer than %d characters", ErrNameInvalid, MaxRepositoryLength)
	}
	for i, comp := range strings.Split(name, "/") {
		if err := validateComponent(comp); err != nil {
			return fmt.Errorf("%w: component %d %q: %v", ErrNameInvalid, i+1, truncate(comp), err)
		}
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// validateComponent accepts alnum runs joined by one of the separators ".",
// "_", "__" or one or more "-".
func validateComponent(c string) error {
	if c == "" {
		return errors.New("empty")
	}
	i := 0
	for {
		start := i
		for i < len(c) && isAlnum(c[i]) {
			i++
		}
		if i == start {
			return fmt.Errorf("expected [a-z0-9] at offset %d", i)
		}
		if i == len(c) {
			return nil
		}
		switch {
		case c[i] == '.':
			i++
		case c[i] == '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case c[i] == '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return fmt.Errorf("invalid character %q at offset %d", c[i], i)
		}
		if i == len(c) {
			return errors.New("ends with a separator")
		}
	}
}

// ValidateTag checks a tag against [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func ValidateTag(tag string) error {
	if tag == "" {
		return fmt.Errorf("%w: empty", ErrTagInvalid)
	}
	if len(tag) > MaxTagLength {
		return fmt.Errorf("%w: longer than %d characters", ErrTagInvalid, MaxTagLength)
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			(i > 0 && (c == '.' || c == '-'))
		if !ok {
			return fmt.Errorf("%w: invalid character %q at offset %d", ErrTagInvalid, c, i)
		}
	}
	return nil
}

// Reference is the part of a manifest URL after "/manifests/": a tag or a
// digest, never both.
type Reference struct {
	Tag    string
	Digest digest.Digest
}

// IsDigest reports whether the reference names content rather than a tag.
func (r Reference) IsDigest() bool { return r.Digest != "" }

func (r Reference) String() string {
	if r.IsDigest() {
		return r.Digest.String()
	}
	return r.Tag
}

// ParseReference parses a manifest reference. Anything containing ':' is a
// digest (tags cannot contain ':'), so a malformed digest is reported as such
// instead of as a strange tag.
func ParseReference(s string) (Reference, error) {
	if strings.Contains(s, ":") {
		d, err := ParseDigest(s)
		if err != nil {
			return Reference{}, err
		}
		return Reference{Digest: d}, nil
	}
	if err := ValidateTag(s); err != nil {
		return Reference{}, err
	}
	return Reference{Tag: s}, nil
}

// ImageRef is a full image reference as users type it:
// [host[:port]/]repository[:tag][@digest].
type ImageRef struct {
	Registry   string // host[:port]; empty when the user gave none
	Repository string
	Tag        string
	Digest     digest.Digest
}

func (r ImageRef) String() string {
	var b strings.Builder
	if r.Registry != "" {
		b.WriteString(r.Registry)
		b.WriteByte('/')
	}
	b.WriteString(r.Repository)
	if r.Tag != "" {
		b.WriteByte(':')
		b.WriteString(r.Tag)
	}
	if r.Digest != "" {
		b.WriteByte('@')
		b.WriteString(r.Digest.String())
	}
	return b.String()
}

// ParseImageRef parses a user-supplied image reference. The first path
// component is a registry host when it contains '.' or ':' or is "localhost",
// following Docker's rule, so "127.0.0.1:5000/team/app:v1" and
// "team/app@sha256:…" both parse as users expect. There is no implicit
// default registry or "latest" tag: bulwark never guesses where an image
// comes from.
func ParseImageRef(s string) (ImageRef, error) {
	var ref ImageRef
	if s == "" {
		return ref, fmt.Errorf("%w: empty reference", ErrNameInvalid)
	}
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		d, err := ParseDigest(rest[i+1:])
		if err != nil {
			return ImageRef{}, err
		}
		ref.Digest = d
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host := rest[:i]
		if strings.ContainsAny(host, ".:") || host == "localhost" {
			if err := validateHost(host); err != nil {
				return ImageRef{}, err
			}
			ref.Registry = host
			rest = rest[i+1:]
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		if err := ValidateTag(rest[i+1:]); err != nil {
			return ImageRef{}, err
		}
		ref.Tag = rest[i+1:]
		rest = rest[:i]
	}
	if err := ValidateRepository(rest); err != nil {
		return ImageRef{}, err
	}
	ref.Repository = rest
	return ref, nil
}

func validateHost(h string) error {
	if h == "" || len(h) > 255 {
		return fmt.Errorf("%w: bad registry host %q", ErrNameInvalid, truncate(h))
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-:[]", c) >= 0) {
			return fmt.Errorf("%w: bad character %q in registry host", ErrNameInvalid, c)
		}
	}
	return nil
}
