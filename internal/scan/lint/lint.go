// Package lint checks an image's config and filesystem against the CIS
// Docker Benchmark (section 4, container images and build files) and the
// image checks Dockle made common: running as root, no HEALTHCHECK,
// setuid/setgid files, secrets in the environment, labels or files, ADD of
// remote URLs, "latest" tags, package manager caches left behind, sudo.
//
// The filesystem facts come from the same walk that catalogs packages
// (internal/scan/catalog/rootfs): NewAnalyzer's analyzer is passed along
// with the catalogers', and Check reads its values from the tree. Finding
// IDs are Dockle's (CIS-DI-nnnn for CIS items, DKL-DI-nnnn for Dockle's
// own), so existing documentation and ignore lists apply.
package lint

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity of a finding, ordered: Info < Low < Medium < High < Critical.
// The names (upper case) match the vulnerability ratings', so one
// --fail-on applies to both.
type Severity int

// Severities.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

func (s Severity) String() string {
	if s < Info || s > Critical {
		return "INFO"
	}
	return severityNames[s]
}

// MarshalText writes the name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name (see ParseSeverity).
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	*s = v
	return err
}

// ParseSeverity reads a severity name, case-insensitively.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(n, name) {
			return Severity(i), nil
		}
	}
	return Info, fmt.Errorf("unknown severity %q (want CRITICAL, HIGH, MEDIUM, LOW or INFO)", name)
}

// Finding is one problem found in an image.
type Finding struct {
	// ID is the check's identifier, "CIS-DI-0001".
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Benchmark names the CIS Docker Benchmark recommendation, if any.
	Benchmark   string `json:"benchmark,omitempty"`
	Message     string `json:"message"`
	Remediation string `json:"remediation"`
	// Evidence lists what was found: paths, environment variable names,
	// history entries (at most maxEvidence; the message gives the count).
	Evidence []string `json:"evidence,omitempty"`
}

// maxEvidence bounds a finding's evidence list.
const maxEvidence = 20

// Sort orders findings by severity (highest first), then ID.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.ID, b.ID))
	})
}

// Max returns the highest severity among findings, and false if there are
// none.
func Max(fs []Finding) (Severity, bool) {
	if len(fs) == 0 {
		return Info, false
	}
	m := fs[0].Severity
	for _, f := range fs[1:] {
		m = max(m, f.Severity)
	}
	return m, true
}

// Check identifiers.
const (
	IDRootUser      = "CIS-DI-0001"
	IDHealthcheck   = "CIS-DI-0006"
	IDUpdateAlone   = "CIS-DI-0007"
	IDSetuid        = "CIS-DI-0008"
	IDAddRemote     = "CIS-DI-0009"
	IDSecrets       = "CIS-DI-0010"
	IDSudo          = "DKL-DI-0001"
	IDPackageCache  = "DKL-DI-0005"
	IDLatestTag     = "DKL-DI-0006"
	benchUser       = "CIS Docker Benchmark 4.1"
	benchHealth     = "CIS Docker Benchmark 4.6"
	benchUpdate     = "CIS Docker Benchmark 4.7"
	benchSetuid     = "CIS Docker Benchmark 4.8"
	benchAdd        = "CIS Docker Benchmark 4.9"
	benchSecrets    = "CIS Docker Benchmark 4.10"
	evidenceOmitted = "…"
)

func evidence(items []string) []string {
	if len(items) > maxEvidence {
		return append(slices.Clone(items[:maxEvidence]), fmt.Sprintf("%s and %d more", evidenceOmitted, len(items)-maxEvidence))
	}
	return items
}
