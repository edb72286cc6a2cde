package vulndb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
)

// openDB opens a fresh database in a temporary data directory.
func openDB(t testing.TB) *vulndb.DB {
	t.Helper()
	db, err := vulndb.Open(context.Background(), vulndb.PathIn(t.TempDir()), vulndb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// importDocs writes OSV documents to a directory and imports it.
func importDocs(t testing.TB, db *vulndb.DB, docs ...string) *vulndb.ImportResult {
	t.Helper()
	dir := t.TempDir()
	for i, d := range docs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%04d.json", i)), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := db.Import(context.Background(), dir, vulndb.ImportOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// record builds an OSV record with one affected package.
func record(id, eco, name string, ranges string, versions ...string) string {
	a := map[string]any{"package": map[string]string{"ecosystem": eco, "name": name}}
	if ranges != "" {
		a["ranges"] = json.RawMessage(ranges)
	}
	if len(versions) > 0 {
		a["versions"] = versions
	}
	b, _ := json.Marshal(map[string]any{"id": id, "modified": "2025-01-01T00:00:00Z", "aliases": []string{"CVE-" + id}, "affected": []any{a}})
	return string(b)
}

func rng(typ string, events ...string) string {
	var ev []string
	for _, e := range events {
		k, v, _ := strings.Cut(e, "=")
		ev = append(ev, fmt.Sprintf(`{%q:%q}`, k, v))
	}
	return fmt.Sprintf(`[{"type":%q,"events":[%s]}]`, typ, strings.Join(ev, ","))
}

func match(t testing.TB, db *vulndb.DB, s *sbom.SBOM) *vulndb.Report {
	t.Helper()
	m, err := db.NewMatcher(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Match(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func oneSBOM(distro *sbom.Distro, pkgs ...sbom.Package) *sbom.SBOM {
	for i := range pkgs {
		if pkgs[i].PURL == "" {
			pkgs[i].PURL = "pkg:" + string(pkgs[i].Type) + "/" + pkgs[i].Name + "@" + pkgs[i].Version
		}
	}
	return &sbom.SBOM{SchemaVersion: 1, Source: sbom.Source{Kind: sbom.SourceRootfs, Name: "/test"}, Distro: distro, Packages: pkgs}
}

// TestRangeEvaluation checks OSV range semantics per ecosystem order.
func TestRangeEvaluation(t *testing.T) {
	db := openDB(t)
	importDocs(t, db,
		// Go: two ranges in one event list, unsorted on purpose.
		record("GO-1", "Go", "example.com/m", rng("SEMVER", "fixed=1.22.1", "introduced=0", "introduced=1.22.0-0", "fixed=1.21.8")),
		// last_affected is inclusive.
		record("GO-2", "Go", "example.com/last", rng("SEMVER", "introduced=1.0.0", "last_affected=1.4.2")),
		// limit ends the range.
		record("GO-3", "Go", "example.com/limit", rng("SEMVER", "introduced=0", "limit=2.0.0")),
		// explicit versions only.
		record("PY-1", "PyPI", "Some_Package", "", "1.0", "1.1"),
		// Debian: source package, epoch, tilde.
		record("DEB-1", "Debian:12", "glibc", rng("ECOSYSTEM", "introduced=0", "fixed=2.36-9+deb12u4")),
		record("DEB-2", "Debian:11", "glibc", rng("ECOSYSTEM", "introduced=0", "fixed=2.31-13+deb11u9")),
		record("DEB-3", "Debian", "openssl", rng("ECOSYSTEM", "introduced=0", "fixed=3.0.11-1~deb12u2")),
		record("DEB-4", "Debian:12", "unfixed", rng("ECOSYSTEM", "introduced=0")),
		// Alpine by origin.
		record("ALP-1", "Alpine:v3.19", "busybox", rng("ECOSYSTEM", "introduced=0", "fixed=1.36.1-r16")),
		// npm: SEMVER and ECOSYSTEM ranges both use semver.
		record("NPM-1", "npm", "@scope/pkg", rng("SEMVER", "introduced=2.0.0", "fixed=2.3.1")),
		// A GIT range cannot match a version.
		`{"id":"GIT-1","modified":"2025-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"example.com/m"},"ranges":[{"type":"GIT","repo":"https://example.com/r","events":[{"introduced":"0"},{"fixed":"abc"}]}]}]}`,
	)
	debian12 := &sbom.Distro{ID: "debian", VersionID: "12"}
	for _, c := range []struct {
		distro *sbom.Distro
		pkg    sbom.Package
		want   string // "ID@fixed" sorted, comma-separated; "" for none
	}{
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/m", Version: "v1.21.7"}, "GO-1@1.21.8"},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/m", Version: "v1.21.8"}, ""},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/m", Version: "v1.22.0-rc.1"}, "GO-1@1.22.1"},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/m", Version: "v1.22.1"}, ""},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/m", Version: "v1.23.0"}, ""},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/m", Version: "(devel)"}, ""},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/last", Version: "v1.4.2"}, "GO-2@"},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/last", Version: "v1.4.3"}, ""},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/last", Version: "v0.9.0"}, ""},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/limit", Version: "v1.9.9"}, "GO-3@"},
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/limit", Version: "v2.0.0"}, ""},
		{nil, sbom.Package{Type: sbom.PyPI, Name: "some-package", Version: "1.0"}, "PY-1@"},
		{nil, sbom.Package{Type: sbom.PyPI, Name: "SOME.PACKAGE", Version: "1.0.0"}, "PY-1@"}, // PEP 440: 1.0.0 == 1.0
		{nil, sbom.Package{Type: sbom.PyPI, Name: "some-package", Version: "1.2"}, ""},
		{debian12, sbom.Package{Type: sbom.Deb, Name: "libc6", Version: "2.36-9+deb12u3", SourceName: "glibc"}, "DEB-1@2.36-9+deb12u4"},
		{debian12, sbom.Package{Type: sbom.Deb, Name: "libc6", Version: "2.36-9+deb12u4", SourceName: "glibc"}, ""},
		// binNMU: the binary version is newer, the source version decides.
		{debian12, sbom.Package{Type: sbom.Deb, Name: "libc6", Version: "2.36-9+deb12u3+b1", SourceName: "glibc", SourceVersion: "2.36-9+deb12u3"}, "DEB-1@2.36-9+deb12u4"},
		// Debian 11 advisories do not apply to Debian 12.
		{&sbom.Distro{ID: "debian", VersionID: "11"}, sbom.Package{Type: sbom.Deb, Name: "libc6", Version: "2.31-13+deb11u8", SourceName: "glibc"}, "DEB-2@2.31-13+deb11u9"},
		// Binary name alone does not match a source advisory.
		{debian12, sbom.Package{Type: sbom.Deb, Name: "glibc-doc-like", Version: "2.36-9", SourceName: "other"}, ""},
		{debian12, sbom.Package{Type: sbom.Deb, Name: "libssl3", Version: "3.0.11-1~deb12u1", SourceName: "openssl"}, "DEB-3@3.0.11-1~deb12u2"},
		{debian12, sbom.Package{Type: sbom.Deb, Name: "libssl3", Version: "3.0.11-1~deb12u2", SourceName: "openssl"}, ""},
		{debian12, sbom.Package{Type: sbom.Deb, Name: "unfixed", Version: "1:9.9-1"}, "DEB-4@"},
		{&sbom.Distro{ID: "alpine", VersionID: "3.19.1"}, sbom.Package{Type: sbom.Apk, Name: "busybox-binsh", Version: "1.36.1-r15", SourceName: "busybox"}, "ALP-1@1.36.1-r16"},
		{&sbom.Distro{ID: "alpine", VersionID: "3.20.0"}, sbom.Package{Type: sbom.Apk, Name: "busybox", Version: "1.36.1-r15"}, ""},
		{nil, sbom.Package{Type: sbom.Npm, Name: "@scope/pkg", Version: "2.3.0"}, "NPM-1@2.3.1"},
		{nil, sbom.Package{Type: sbom.Npm, Name: "@scope/pkg", Version: "2.3.1"}, ""},
		{nil, sbom.Package{Type: sbom.Npm, Name: "@scope/pkg", Version: "1.9.0"}, ""},
		// Packages inside an OS package are covered by its advisories.
		{nil, sbom.Package{Type: sbom.Golang, Name: "example.com/m", Version: "v1.21.7", OwnedBy: "deb:golang-go"}, ""},
	} {
		r := match(t, db, oneSBOM(c.distro, c.pkg))
		var got []string
		for _, f := range r.Findings {
			got = append(got, f.ID+"@"+f.Fixed)
			if f.Aliases[0] != "CVE-"+f.ID {
				t.Errorf("%s: aliases %v", f.ID, f.Aliases)
			}
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s %s %s: got %q, want %q (notes %v)", c.pkg.Type, c.pkg.Name, c.pkg.Version, strings.Join(got, ","), c.want, r.Notes)
		}
	}
}

func TestSeverityFromAlias(t *testing.T) {
	db := openDB(t)
	importDocs(t, db,
		`{"id":"GO-2099-0001","modified":"2025-01-01T00:00:00Z","aliases":["GHSA-aaaa-bbbb-cccc","CVE-2099-1"],"affected":[{"package":{"ecosystem":"Go","name":"example.com/m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.1"}]}]}]}`,
		`{"id":"GHSA-aaaa-bbbb-cccc","modified":"2025-01-01T00:00:00Z","aliases":["CVE-2099-1"],"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N"}],"affected":[{"package":{"ecosystem":"Go","name":"example.com/m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.1"}]}]}]}`,
	)
	r := match(t, db, oneSBOM(nil, sbom.Package{Type: sbom.Golang, Name: "example.com/m", Version: "v1.0.0"}))
	if len(r.Findings) != 2 {
		t.Fatalf("findings: %+v", r.Findings)
	}
	for _, f := range r.Findings {
		if f.Severity.Rating != osv.Critical && f.Severity.Rating != osv.High {
			t.Errorf("%s: severity %+v", f.ID, f.Severity)
		}
		if f.ID == "GO-2099-0001" && f.SeverityFrom != "GHSA-aaaa-bbbb-cccc" {
			t.Errorf("GO record severity from %q", f.SeverityFrom)
		}
	}
	if max, _ := r.MaxSeverity(); max < osv.High || r.AtLeast(osv.High) != 2 || r.Fixable() != 2 {
		t.Errorf("summary: max %s, ≥high %d, fixable %d", max, r.AtLeast(osv.High), r.Fixable())
	}
}
