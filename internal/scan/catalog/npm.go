package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// NpmPackage is what a package.json under node_modules declares.
type NpmPackage struct {
	Name     string
	Version  string
	Licenses []string
}

// ErrNotPackage is returned for a manifest that names no package (a
// package.json with only {"type":"module"}, a METADATA without Name:).
var ErrNotPackage = errors.New("not a package manifest")

// ParsePackageJSON reads a package.json (untrusted; the caller bounds its
// size). Only name, version and license(s) are kept; other fields may hold
// anything.
func ParsePackageJSON(r io.Reader) (NpmPackage, error) {
	var doc struct {
		Name     string          `json:"name"`
		Version  string          `json:"version"`
		License  json.RawMessage `json:"license"`
		Licenses json.RawMessage `json:"licenses"`
	}
	dec := json.NewDecoder(r)
	if err := dec.Decode(&doc); err != nil {
		return NpmPackage{}, fmt.Errorf("package.json: %w", err)
	}
	if doc.Name == "" || doc.Version == "" {
		return NpmPackage{}, ErrNotPackage
	}
	if !validNpmName(doc.Name) || !validVersionText(doc.Version) {
		return NpmPackage{}, fmt.Errorf("package.json: invalid name or version %q@%q", truncate(doc.Name), truncate(doc.Version))
	}
	p := NpmPackage{Name: doc.Name, Version: doc.Version}
	// "license": "MIT" | {"type": "MIT"}; the deprecated "licenses":
	// [{"type": "MIT"}] or ["MIT"].
	addLicense := func(raw json.RawMessage) {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			return
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			p.Licenses = appendLicense(p.Licenses, s)
			return
		}
		var o struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &o) == nil {
			p.Licenses = appendLicense(p.Licenses, o.Type)
		}
	}
	addLicense(doc.License)
	var list []json.RawMessage
	if json.Unmarshal(doc.Licenses, &list) == nil {
		for i, l := range list {
			if i == 16 {
				break
			}
			addLicense(l)
		}
	}
	return p, nil
}

// validNpmName: npm's rules (at most 214 characters, no spaces or
// control characters, an optional @scope/ prefix); old packages may have
// upper case, so it is allowed.
func validNpmName(s string) bool {
	if s == "" || len(s) > 214 || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == '\\' || c == '%' {
			return false
		}
	}
	if strings.HasPrefix(s, "@") {
		scope, name, ok := strings.Cut(s[1:], "/")
		return ok && scope != "" && name != "" && !strings.Contains(name, "/")
	}
	return !strings.Contains(s, "/")
}

// validVersionText: a version as written by a language ecosystem:
// printable ASCII, no spaces, at most 128 bytes.
func validVersionText(s string) bool {
	return len(s) <= 128 && validToken(s)
}

func appendLicense(ls []string, l string) []string {
	l = strings.TrimSpace(l)
	if l == "" || len(l) > 256 || strings.ContainsAny(l, "\n\r") || !utf8.ValidString(l) {
		return ls
	}
	for _, x := range ls {
		if x == l {
			return ls
		}
	}
	return append(ls, l)
}

func truncate(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
