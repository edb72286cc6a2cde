// Package osv parses vulnerability records in the Open Source Vulnerability
// format (https://ossf.github.io/osv-schema/), strictly and within bounds:
// advisories are untrusted input, imported from files anyone can hand an
// operator.
package osv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Bounds on one record. The largest real records (Debian's Linux kernel
// advisories with hundreds of listed versions) are a few hundred KiB.
const (
	MaxRecordSize    = 8 << 20
	MaxRecords       = 100_000 // per file holding an array of records
	MaxAliases       = 1024
	MaxAffected      = 10_000
	MaxRanges        = 1000
	MaxEvents        = 10_000
	MaxVersions      = 100_000
	MaxSeverities    = 64
	MaxReferences    = 10_000
	MaxIDLength      = 128
	MaxNameLength    = 1024
	MaxVersionLength = 256
	MaxSummaryLength = 64 << 10
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid OSV record")

// Vulnerability is the part of an OSV record matching and reports use.
// Fields bulwark does not use (details, credits, …) are not decoded.
type Vulnerability struct {
	SchemaVersion    string          `json:"schema_version,omitempty"`
	ID               string          `json:"id"`
	Modified         time.Time       `json:"modified"`
	Published        *time.Time      `json:"published,omitempty"`
	Withdrawn        *time.Time      `json:"withdrawn,omitempty"`
	Aliases          []string        `json:"aliases,omitempty"`
	Related          []string        `json:"related,omitempty"`
	Upstream         []string        `json:"upstream,omitempty"`
	Summary          string          `json:"summary,omitempty"`
	Severity         []Severity      `json:"severity,omitempty"`
	Affected         []Affected      `json:"affected,omitempty"`
	References       []Reference     `json:"references,omitempty"`
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`

	// hasModified: Parse requires "modified"; the zero time is valid (the
	// Go database's module copy writes it).
	hasModified bool
}

// UnmarshalJSON decodes a record, noting whether "modified" was present.
func (v *Vulnerability) UnmarshalJSON(b []byte) error {
	type plain Vulnerability
	var p struct {
		plain
		Modified *time.Time `json:"modified"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*v = Vulnerability(p.plain)
	if p.Modified != nil {
		v.Modified, v.hasModified = *p.Modified, true
	}
	return nil
}

// Severity is a scored severity: CVSS_V2, CVSS_V3, CVSS_V4 vectors or an
// "Ubuntu" priority word.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected is one affected package.
type Affected struct {
	Package           Package         `json:"package"`
	Severity          []Severity      `json:"severity,omitempty"`
	Ranges            []Range         `json:"ranges,omitempty"`
	Versions          []string        `json:"versions,omitempty"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  json.RawMessage `json:"database_specific,omitempty"`
}

// Package names a package in an ecosystem ("Debian:12", "Go", "npm", …).
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Purl      string `json:"purl,omitempty"`
}

// Range is a list of version events of one type: SEMVER, ECOSYSTEM or GIT.
type Range struct {
	Type   string  `json:"type"`
	Repo   string  `json:"repo,omitempty"`
	Events []Event `json:"events"`
}

// Event is one event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Reference is a link.
type Reference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// Parse decodes one OSV JSON document: a record, or an array of records.
// It refuses oversized input, invalid UTF-8, trailing data, wrong types
// and records that break the schema's rules or bulwark's bounds.
func Parse(data []byte) ([]Vulnerability, error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d-byte limit", ErrInvalid, len(data), MaxRecordSize)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrInvalid)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty document", ErrInvalid)
	}
	var out []Vulnerability
	switch data[0] {
	case '{':
		var v Vulnerability
		if err := decodeStrict(data, &v); err != nil {
			return nil, err
		}
		out = []Vulnerability{v}
	case '[':
		var raws []json.RawMessage
		if err := decodeStrict(data, &raws); err != nil {
			return nil, err
		}
		if len(raws) > MaxRecords {
			return nil, fmt.Errorf("%w: more than %d records in one document", ErrInvalid, MaxRecords)
		}
		out = make([]Vulnerability, 0, len(raws))
		for i, raw := range raws {
			var v Vulnerability
			if len(raw) == 0 || raw[0] != '{' {
				return nil, fmt.Errorf("%w: element %d is not an object", ErrInvalid, i)
			}
			if err := decodeStrict(raw, &v); err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out = append(out, v)
		}
	default:
		return nil, fmt.Errorf("%w: document is neither an object nor an array", ErrInvalid)
	}
	for i := range out {
		if !out[i].hasModified {
			return nil, fmt.Errorf("%w %q: no modified time", ErrInvalid, clip(out[i].ID))
		}
		if err := out[i].Validate(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the JSON value", ErrInvalid)
	}
	return nil
}

// Validate checks the schema's rules and bulwark's bounds.
func (v *Vulnerability) Validate() error {
	bad := func(format string, args ...any) error {
		id := v.ID
		if len(id) > 64 {
			id = id[:64] + "…"
		}
		return fmt.Errorf("%w %q: %s", ErrInvalid, id, fmt.Sprintf(format, args...))
	}
	if !ValidID(v.ID) {
		return bad("id must be 1-%d characters of A-Z a-z 0-9 . _ : -", MaxIDLength)
	}
	if len(v.Summary) > MaxSummaryLength {
		return bad("summary longer than %d bytes", MaxSummaryLength)
	}
	for name, ids := range map[string][]string{"aliases": v.Aliases, "related": v.Related, "upstream": v.Upstream} {
		if len(ids) > MaxAliases {
			return bad("more than %d %s", MaxAliases, name)
		}
		for _, a := range ids {
			if !ValidID(a) {
				return bad("%s entry %q is not a valid id", name, clip(a))
			}
		}
	}
	if err := validSeverities(v.Severity); err != nil {
		return bad("%v", err)
	}
	if len(v.References) > MaxReferences {
		return bad("more than %d references", MaxReferences)
	}
	if len(v.Affected) > MaxAffected {
		return bad("more than %d affected packages", MaxAffected)
	}
	for i, a := range v.Affected {
		if err := a.validate(); err != nil {
			return bad("affected[%d]: %v", i, err)
		}
	}
	return nil
}

func (a *Affected) validate() error {
	p := a.Package
	if p.Ecosystem == "" || p.Name == "" {
		if len(a.Ranges) > 0 || len(a.Versions) > 0 {
			// Ranges without a package are GIT-only records
			// (commit ranges of a repository); bulwark cannot
			// match them but they are valid.
			for _, r := range a.Ranges {
				if r.Type != "GIT" {
					return errors.New("package ecosystem and name are required")
				}
			}
		}
	}
	if !validText(p.Ecosystem, 128) || !validText(p.Name, MaxNameLength) || len(p.Purl) > MaxNameLength {
		return errors.New("package ecosystem, name or purl too long or with control characters")
	}
	if err := validSeverities(a.Severity); err != nil {
		return err
	}
	if len(a.Ranges) > MaxRanges {
		return fmt.Errorf("more than %d ranges", MaxRanges)
	}
	if len(a.Versions) > MaxVersions {
		return fmt.Errorf("more than %d versions", MaxVersions)
	}
	for _, s := range a.Versions {
		if !validVersion(s) {
			return fmt.Errorf("version %q is empty, too long or has control characters", clip(s))
		}
	}
	for i, r := range a.Ranges {
		switch r.Type {
		case "SEMVER", "ECOSYSTEM", "GIT":
		default:
			return fmt.Errorf("ranges[%d]: unknown type %q", i, clip(r.Type))
		}
		if len(r.Events) == 0 {
			return fmt.Errorf("ranges[%d]: no events", i)
		}
		if len(r.Events) > MaxEvents {
			return fmt.Errorf("ranges[%d]: more than %d events", i, MaxEvents)
		}
		introduced := false
		for j, e := range r.Events {
			n := 0
			for _, s := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
				if s != "" {
					n++
					if !validVersion(s) {
						return fmt.Errorf("ranges[%d].events[%d]: version %q too long or with control characters", i, j, clip(s))
					}
				}
			}
			if n != 1 {
				return fmt.Errorf("ranges[%d].events[%d]: an event has exactly one of introduced, fixed, last_affected, limit", i, j)
			}
			introduced = introduced || e.Introduced != ""
		}
		if !introduced {
			return fmt.Errorf("ranges[%d]: no introduced event", i)
		}
	}
	return nil
}

func validSeverities(ss []Severity) error {
	if len(ss) > MaxSeverities {
		return fmt.Errorf("more than %d severities", MaxSeverities)
	}
	for _, s := range ss {
		if !validText(s.Type, 32) || s.Type == "" || !validText(s.Score, 256) || s.Score == "" {
			return fmt.Errorf("severity %q/%q: type and score must be short, non-empty text", clip(s.Type), clip(s.Score))
		}
	}
	return nil
}

// ValidID reports whether s is a plausible advisory id (GO-2024-1234,
// DSA-5678-1, GHSA-xxxx-xxxx-xxxx, DEBIAN-CVE-2024-1234, CVE-2024-1234…).
func ValidID(s string) bool {
	if s == "" || len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func validVersion(s string) bool { return s != "" && validText(s, MaxVersionLength) }

// validText bounds s and refuses control characters.
func validText(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
