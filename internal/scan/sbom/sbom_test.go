package sbom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

func dg(c string) digest.Digest { return digest.Digest("sha256:" + strings.Repeat(c, 64)) }

func sample() *sbom.SBOM {
	return &sbom.SBOM{
		SchemaVersion: sbom.SchemaVersion,
		Created:       time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Tool:          "bulwark/v0.1.0",
		Source:        sbom.Source{Kind: sbom.SourceImage, Name: "127.0.0.1:5000/team/app:v1", Digest: dg("a"), Config: dg("b")},
		Distro:        &sbom.Distro{ID: "debian", VersionID: "12", Codename: "bookworm", Name: "Debian GNU/Linux 12 (bookworm)"},
		Layers:        []sbom.Layer{{Digest: dg("c"), DiffID: dg("d"), Size: 100}},
		Packages: []sbom.Package{
			{Type: sbom.Deb, Name: "libc6", Version: "2.36-9+deb12u10", PURL: "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12", Arch: "amd64",
				SourceName: "glibc", SourceVersion: "2.36-9+deb12u10", Layer: dg("c"), Paths: []string{"/var/lib/dpkg/status"}},
			{Type: sbom.Golang, Name: sbom.GoStdlib, Version: "go1.22.1", PURL: "pkg:golang/stdlib@go1.22.1", Paths: []string{"/usr/bin/a", "/usr/bin/b"}},
			{Type: sbom.Npm, Name: "@scope/x", Version: "1.0.0", PURL: "pkg:npm/%40scope/x@1.0.0", Licenses: []string{"MIT"}, Paths: []string{"/app/node_modules/@scope/x/package.json"}},
			{Type: sbom.PyPI, Name: "Flask", Version: "3.0.0", PURL: "pkg:pypi/flask@3.0.0", Licenses: []string{"BSD-3-Clause OR MIT", "Some Custom License"}, OwnedBy: "deb:python3-flask"},
			{Type: sbom.Apk, Name: "musl", Version: "1.2.4-r2", PURL: "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64", Licenses: []string{"Apache 2.0"}},
		},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	s := sample()
	var b bytes.Buffer
	if err := s.Encode(&b); err != nil {
		t.Fatal(err)
	}
	back, err := sbom.Decode(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip:\n%+v\n%+v", back, s)
	}
}

func TestDecodeHostile(t *testing.T) {
	valid := func(mut func(m map[string]any)) string {
		var b bytes.Buffer
		sample().Encode(&b)
		var m map[string]any
		json.Unmarshal(b.Bytes(), &m)
		mut(m)
		out, _ := json.Marshal(m)
		return string(out)
	}
	for _, tc := range []struct {
		name, in string
	}{
		{"empty", ""},
		{"not JSON", "<sbom/>"},
		{"array", "[]"},
		{"trailing data", valid(func(map[string]any) {}) + "{}"},
		{"schema version 0", valid(func(m map[string]any) { m["schemaVersion"] = 0 })},
		{"future schema version", valid(func(m map[string]any) { m["schemaVersion"] = sbom.SchemaVersion + 1 })},
		{"unknown source kind", valid(func(m map[string]any) { m["source"] = map[string]any{"kind": "tarball"} })},
		{"package without purl", valid(func(m map[string]any) {
			m["packages"] = []any{map[string]any{"type": "deb", "name": "a", "version": "1"}}
		})},
		{"bad digest type", valid(func(m map[string]any) { m["source"] = map[string]any{"kind": "image", "digest": 5} })},
		{"too large", `{"schemaVersion":1,"x":"` + strings.Repeat("x", sbom.MaxEncodedSize) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := sbom.Decode(strings.NewReader(tc.in)); !errors.Is(err, sbom.ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	var b bytes.Buffer
	sample().Encode(&b)
	f.Add(b.Bytes())
	f.Add([]byte(`{"schemaVersion":1,"source":{"kind":"rootfs"},"packages":null}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := sbom.Decode(bytes.NewReader(in))
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Decode accepted an invalid SBOM: %v", err)
		}
		var out bytes.Buffer
		if err := s.Encode(&out); err != nil {
			t.Fatal(err)
		}
		s.CycloneDX()
		s.SPDX()
	})
}

var (
	uuidURN = regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	spdxRef = regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.\-]+$`)
)

// checkCycloneDX checks a CycloneDX 1.5 document against the fields the
// specification requires, and that it describes s.
func checkCycloneDX(t *testing.T, s *sbom.SBOM, b []byte) {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["bomFormat"] != "CycloneDX" || raw["specVersion"] != "1.5" || raw["version"] != float64(1) {
		t.Fatalf("header: %v %v %v", raw["bomFormat"], raw["specVersion"], raw["version"])
	}
	if sn, _ := raw["serialNumber"].(string); !uuidURN.MatchString(sn) {
		t.Fatalf("serialNumber %q", sn)
	}
	var doc sbom.CycloneDX
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(&doc)
	var a, c any
	json.Unmarshal(again, &a)
	json.Unmarshal(b, &c)
	if !reflect.DeepEqual(a, c) {
		t.Fatal("CycloneDX document does not round-trip")
	}
	if _, err := time.Parse(time.RFC3339, doc.Metadata.Timestamp); err != nil {
		t.Fatalf("timestamp: %v", err)
	}
	refs := map[string]bool{}
	var purls []string
	types := map[string]bool{"application": true, "framework": true, "library": true, "container": true, "platform": true, "operating-system": true, "device": true, "device-driver": true, "firmware": true, "file": true, "machine-learning-model": true, "data": true}
	for _, c := range append([]sbom.CDXComponent{*doc.Metadata.Component}, doc.Components...) {
		if !types[c.Type] || c.Name == "" {
			t.Fatalf("component without a valid type or name: %+v", c)
		}
		if c.BOMRef == "" || refs[c.BOMRef] {
			t.Fatalf("bom-ref %q missing or not unique", c.BOMRef)
		}
		refs[c.BOMRef] = true
		for _, l := range c.Licenses {
			if (l.License == nil) == (l.Expression == "") || l.License != nil && (l.License.ID == "") == (l.License.Name == "") {
				t.Fatalf("license choice: %+v", l)
			}
		}
		for _, h := range c.Hashes {
			if h.Alg != "SHA-256" && h.Alg != "SHA-512" || len(h.Content) < 64 {
				t.Fatalf("hash %+v", h)
			}
		}
		if c.PURL != "" {
			purls = append(purls, c.PURL)
		}
	}
	var want []string
	for _, p := range s.Packages {
		want = append(want, p.PURL)
	}
	if !reflect.DeepEqual(purls, want) {
		t.Fatalf("purls %q, want %q", purls, want)
	}
}

// checkSPDX checks an SPDX 2.3 document's required fields and references.
func checkSPDX(t *testing.T, s *sbom.SBOM, b []byte) {
	t.Helper()
	var doc sbom.SPDX
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" || doc.Name == "" || !strings.HasPrefix(doc.DocumentNamespace, "https://") {
		t.Fatalf("document header %+v", doc)
	}
	if _, err := time.Parse(time.RFC3339, doc.CreationInfo.Created); err != nil || len(doc.CreationInfo.Creators) == 0 || !strings.HasPrefix(doc.CreationInfo.Creators[0], "Tool: ") {
		t.Fatalf("creation info %+v", doc.CreationInfo)
	}
	ids := map[string]bool{"SPDXRef-DOCUMENT": true}
	var purls []string
	for _, p := range doc.Packages {
		if !spdxRef.MatchString(p.SPDXID) || ids[p.SPDXID] {
			t.Fatalf("SPDXID %q invalid or not unique", p.SPDXID)
		}
		ids[p.SPDXID] = true
		if p.Name == "" || p.DownloadLocation == "" || p.LicenseConcluded == "" || p.LicenseDeclared == "" || p.CopyrightText == "" {
			t.Fatalf("package misses a required field: %+v", p)
		}
		for _, r := range p.ExternalRefs {
			if r.ReferenceCategory != "PACKAGE-MANAGER" || r.ReferenceType != "purl" || !strings.HasPrefix(r.ReferenceLocator, "pkg:") {
				t.Fatalf("external ref %+v", r)
			}
			purls = append(purls, r.ReferenceLocator)
		}
	}
	describes := 0
	for _, r := range doc.Relationships {
		if !ids[r.SPDXElementID] || !ids[r.RelatedSPDXElement] {
			t.Fatalf("relationship to an unknown element: %+v", r)
		}
		if r.RelationshipType == "DESCRIBES" {
			describes++
		}
	}
	if describes != 1 || len(doc.Relationships) != len(doc.Packages) {
		t.Fatalf("%d DESCRIBES, %d relationships for %d packages", describes, len(doc.Relationships), len(doc.Packages))
	}
	var want []string
	for _, p := range s.Packages {
		want = append(want, p.PURL)
	}
	if !reflect.DeepEqual(purls, want) {
		t.Fatalf("purls %q, want %q", purls, want)
	}
}

func TestFormats(t *testing.T) {
	s := sample()
	var c, p bytes.Buffer
	if err := s.EncodeCycloneDX(&c); err != nil {
		t.Fatal(err)
	}
	checkCycloneDX(t, s, c.Bytes())
	if err := s.EncodeSPDX(&p); err != nil {
		t.Fatal(err)
	}
	checkSPDX(t, s, p.Bytes())

	cdx := s.CycloneDX()
	lic := func(i int) string { b, _ := json.Marshal(cdx.Components[i+1].Licenses); return string(b) }
	if got := lic(2); got != `[{"license":{"id":"MIT"}}]` {
		t.Errorf("npm license %s", got)
	}
	if got := lic(3); got != `[{"expression":"BSD-3-Clause OR MIT"},{"license":{"name":"Some Custom License"}}]` {
		t.Errorf("pypi licenses %s", got)
	}
	if got := lic(4); got != `[{"license":{"id":"Apache-2.0"}}]` {
		t.Errorf("apk license %s", got)
	}
	props := fmt.Sprint(cdx.Components[1].Properties)
	if !strings.Contains(props, "{bulwark:source:name glibc}") || !strings.Contains(props, "{bulwark:layer sha256:ccc") {
		t.Errorf("deb properties %s", props)
	}
	sp := s.SPDX()
	if got := sp.Packages[2].SourceInfo; got != "built from source package glibc 2.36-9+deb12u10" {
		t.Errorf("sourceInfo %q", got)
	}
	if sp.Packages[5].LicenseDeclared != "NOASSERTION" || sp.Packages[4].LicenseDeclared != "MIT" || sp.Packages[6].LicenseDeclared != "Apache-2.0" {
		t.Errorf("licenseDeclared %q %q %q", sp.Packages[5].LicenseDeclared, sp.Packages[4].LicenseDeclared, sp.Packages[6].LicenseDeclared)
	}
	// Same scan, same serial number; another scan time, another one.
	if s.CycloneDX().SerialNumber != cdx.SerialNumber {
		t.Error("serial number not stable")
	}
	s.Created = s.Created.Add(time.Second)
	if s.CycloneDX().SerialNumber == cdx.SerialNumber {
		t.Error("serial number does not change with the scan")
	}
}

// TestFormatsBookworm writes the real minbase root's SBOM in every format.
func TestFormatsBookworm(t *testing.T) {
	out, err := exec.Command("../../../scripts/fixtures.sh", "bookworm-minbase").Output()
	if err != nil {
		t.Fatalf("scripts/fixtures.sh: %v", err)
	}
	s, _, err := catalog.Dir(context.Background(), filepath.Join(strings.TrimSpace(string(out)), "rootfs"), catalog.Options{Tool: "bulwark/test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Packages) < 80 {
		t.Fatalf("%d packages", len(s.Packages))
	}
	var c, p bytes.Buffer
	s.EncodeCycloneDX(&c)
	checkCycloneDX(t, s, c.Bytes())
	s.EncodeSPDX(&p)
	checkSPDX(t, s, p.Bytes())
}
