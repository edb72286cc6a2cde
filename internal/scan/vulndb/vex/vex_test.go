package vex_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vex"
)

const imageDigest = "sha256:0b4a3f5ba4a0b4c6a0a9d5c2f33f6b3c3d2a6a7b8c9d0e1f2a3b4c5d6e7f8091"

const doc = `{
  "@context": "https://openvex.dev/ns/v0.2.0",
  "@id": "https://example.com/vex/2026-001",
  "author": "Platform Security",
  "timestamp": "2026-01-10T10:00:00Z",
  "version": 1,
  "statements": [
    {
      "vulnerability": {"name": "CVE-2021-38561", "aliases": ["GO-2021-0113"]},
      "products": [{"@id": "pkg:oci/app@sha256%3A0b4a3f5ba4a0b4c6a0a9d5c2f33f6b3c3d2a6a7b8c9d0e1f2a3b4c5d6e7f8091?repository_url=registry.example/app",
                    "subcomponents": [{"@id": "pkg:golang/golang.org/x/text"}]}],
      "status": "not_affected",
      "justification": "vulnerable_code_not_in_execute_path"
    },
    {
      "vulnerability": {"name": "CVE-2026-0861"},
      "products": [{"@id": "pkg:deb/debian/libc6?arch=amd64"}],
      "status": "not_affected",
      "impact_statement": "malloc is not reachable with attacker-sized alignments"
    },
    {
      "vulnerability": {"name": "CVE-2026-0861"},
      "products": [{"@id": "pkg:deb/debian/libc6"}],
      "status": "affected",
      "timestamp": "2026-01-01T00:00:00Z"
    },
    {
      "vulnerability": {"name": "CVE-2026-9999"},
      "products": [{"@id": "pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?arch=amd64"}],
      "status": "fixed"
    },
    {
      "vulnerability": {"name": "CVE-2026-1111"},
      "products": [{"@id": "pkg:deb/debian/libc6"}],
      "status": "not_affected",
      "justification": "component_not_present",
      "timestamp": "2026-01-01T00:00:00Z"
    },
    {
      "vulnerability": {"name": "CVE-2026-1111"},
      "products": [{"@id": "pkg:deb/debian/libc6"}],
      "status": "affected",
      "timestamp": "2026-02-01T00:00:00Z"
    }
  ]
}`

const libc = "pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?arch=amd64&distro=debian-12"

func TestDecide(t *testing.T) {
	d, err := vex.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	docs := []*vex.Document{d}
	for _, c := range []struct {
		name   string
		s      vex.Subject
		status string // "" when no statement applies
	}{
		{"image product with subcomponent, by alias", vex.Subject{Vulnerability: []string{"GO-2021-0113"}, Image: []string{imageDigest}, PackagePURL: "pkg:golang/golang.org/x/text@v0.3.5"}, vex.NotAffected},
		{"another image", vex.Subject{Vulnerability: []string{"GO-2021-0113"}, Image: []string{"sha256:" + strings.Repeat("1", 64)}, PackagePURL: "pkg:golang/golang.org/x/text@v0.3.5"}, ""},
		{"subcomponent does not match", vex.Subject{Vulnerability: []string{"CVE-2021-38561"}, Image: []string{imageDigest}, PackagePURL: "pkg:golang/golang.org/x/net@v0.1.0"}, ""},
		{"package product, later statement wins", vex.Subject{Vulnerability: []string{"BWTEST-X", "CVE-2026-0861"}, PackagePURL: libc}, vex.NotAffected},
		{"qualifier mismatch", vex.Subject{Vulnerability: []string{"CVE-2026-0861"}, PackagePURL: "pkg:deb/debian/libc6@2.36-9?arch=arm64"}, vex.Affected},
		{"versioned product", vex.Subject{Vulnerability: []string{"CVE-2026-9999"}, PackagePURL: libc}, vex.Fixed},
		{"versioned product, other version", vex.Subject{Vulnerability: []string{"CVE-2026-9999"}, PackagePURL: "pkg:deb/debian/libc6@2.36-9?arch=amd64"}, ""},
		{"retracted by a later statement", vex.Subject{Vulnerability: []string{"CVE-2026-1111"}, PackagePURL: libc}, vex.Affected},
		{"other vulnerability", vex.Subject{Vulnerability: []string{"CVE-2000-0001"}, PackagePURL: libc}, ""},
	} {
		got, ok := vex.Decide(docs, c.s)
		if (c.status == "") != !ok || got.Status != c.status {
			t.Errorf("%s: got %+v (%v), want %q", c.name, got, ok, c.status)
		}
		if ok && got.Document != "https://example.com/vex/2026-001" {
			t.Errorf("%s: document %q", c.name, got.Document)
		}
	}
}

func TestParseV001(t *testing.T) {
	d, err := vex.Parse([]byte(`{"@context":"https://openvex.dev/ns","@id":"x","timestamp":"2023-01-01T00:00:00Z",
		"statements":[{"vulnerability":"CVE-2023-1","products":["pkg:oci/app@sha256:abc"],"subcomponents":["pkg:npm/left-pad"],"status":"not_affected","justification":"component_not_present"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := vex.Decide([]*vex.Document{d}, vex.Subject{Vulnerability: []string{"CVE-2023-1"}, Image: []string{"pkg:oci/app@sha256:abc"}, PackagePURL: "pkg:npm/left-pad@1.3.0"})
	if !ok || !got.Suppresses() {
		t.Fatalf("%+v %v", got, ok)
	}
}

func TestParseHostile(t *testing.T) {
	base := func(stmt string) string {
		return `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"x","timestamp":"2026-01-01T00:00:00Z","statements":[` + stmt + `]}`
	}
	for name, d := range map[string]string{
		"empty":                    ``,
		"not openvex":              `{"@context":"https://example.com","statements":[]}`,
		"no statements":            base(``),
		"trailing":                 base(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:npm/a"}],"status":"affected"}`) + `{}`,
		"unknown status":           base(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:npm/a"}],"status":"maybe"}`),
		"not_affected unjustified": base(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:npm/a"}],"status":"not_affected"}`),
		"unknown justification":    base(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:npm/a"}],"status":"not_affected","justification":"trust me"}`),
		"no products":              base(`{"vulnerability":{"name":"CVE-1"},"status":"not_affected","justification":"component_not_present"}`),
		"no vulnerability":         base(`{"products":[{"@id":"pkg:npm/a"}],"status":"affected"}`),
		"product without id":       base(`{"vulnerability":{"name":"CVE-1"},"products":[{}],"status":"affected"}`),
		"product wrong type":       base(`{"vulnerability":{"name":"CVE-1"},"products":[42],"status":"affected"}`),
		"vulnerability wrong type": base(`{"vulnerability":42,"products":[{"@id":"pkg:npm/a"}],"status":"affected"}`),
		"invalid utf8":             base(`{"vulnerability":{"name":"CVE-\xff"},"products":[{"@id":"pkg:npm/a"}],"status":"affected"}`),
		"nested subcomponents":     base(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"a","subcomponents":[{"@id":"b","subcomponents":[{"@id":"c"}]}]}],"status":"affected"}`),
		"huge":                     `{"@context":"https://openvex.dev/ns","x":"` + strings.Repeat("a", vex.MaxDocumentSize) + `"}`,
	} {
		if _, err := vex.Parse([]byte(d)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, vex.ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(doc))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := vex.Parse(data)
		if err != nil {
			return
		}
		vex.Decide([]*vex.Document{d}, vex.Subject{Vulnerability: []string{"CVE-2026-0861"}, Image: []string{imageDigest}, PackagePURL: libc})
	})
}
