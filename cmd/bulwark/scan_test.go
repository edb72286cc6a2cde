package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/lint"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vulntest"
	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// TestVulndbAndScanCommands imports the real Go vulnerability database and
// a Debian advisory, then scans the bookworm minbase image with a Go
// program added, in every output format.
func TestVulndbAndScanCommands(t *testing.T) {
	unsetDataEnv(t)
	data := filepath.Join(t.TempDir(), "data")
	goDB := vulntest.GoVulnDB(t)
	rootfs, layout := vulntest.BookwormMinbase(t)
	goRoot := vulntest.VulnerableGoRoot(t)

	// No database yet.
	if _, _, err := runCobra(t, newScanCmd(), "--rootfs", goRoot, "--data", data); err == nil || !strings.Contains(err.Error(), "vulndb import") {
		t.Fatalf("scan without a database: %v", err)
	}
	if _, _, err := runCobra(t, newVulndbCmd(), "status", "--data", data); err == nil {
		t.Fatal("status without a database succeeded")
	}

	// A Debian-style advisory for glibc (the fixture's libc6 and
	// libc-bin come from it) that is not fixed yet, and one that is.
	adv := t.TempDir()
	os.WriteFile(filepath.Join(adv, "unfixed.json"), []byte(`{"id":"BWTEST-2026-0001","modified":"2026-01-01T00:00:00Z","aliases":["CVE-2026-99999"],
		"summary":"test advisory","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
		"affected":[{"package":{"ecosystem":"Debian:12","name":"glibc"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}]}`), 0o644)
	os.WriteFile(filepath.Join(adv, "fixed.json"), []byte(`{"id":"BWTEST-2026-0002","modified":"2026-01-01T00:00:00Z",
		"affected":[{"package":{"ecosystem":"Debian:12","name":"glibc"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.36-9"}]}]}]}`), 0o644)
	os.WriteFile(filepath.Join(adv, "bad.json"), []byte(`{"id":"../x"}`), 0o644)

	out, stderr, err := runCobra(t, newVulndbCmd(), "import", "--data", data, goDB, adv)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "4771 added") || !strings.Contains(out, "2 added") || !strings.Contains(stderr, "rejected: "+filepath.Join(adv, "bad.json")) {
		t.Fatalf("import output:\n%s\nstderr:\n%s", out, stderr)
	}
	if _, _, err := runCobra(t, newVulndbCmd(), "import", "--data", data, "--strict", adv); err == nil {
		t.Fatal("strict import of a bad record succeeded")
	}
	out, _, err = runCobra(t, newVulndbCmd(), "status", "--data", data)
	if err != nil || !strings.Contains(out, "Go  ") || !strings.Contains(out, "Debian:12") || !strings.Contains(out, "4773 (generation 2)") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, _, err = runCobra(t, newVulndbCmd(), "status", "--data", data, "--output", "json")
	var st struct {
		Records    int
		Generation int64
		Sources    []struct{ Path string }
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Records != 4773 || len(st.Sources) != 2 {
		t.Fatalf("status json: %v\n%s", err, out)
	}

	// The Go program: a real finding from the Go database.
	out, _, err = runCobra(t, newScanCmd(), "--rootfs", goRoot, "--data", data, "--no-lint")
	if err != nil || !strings.Contains(out, "GO-2021-0113") || !strings.Contains(out, "0.3.7") || !strings.Contains(out, "golang.org/x/text") {
		t.Fatalf("scan go program: %v\n%s", err, out)
	}

	// The Debian image: table, with the archive check against this
	// machine's bookworm-security index.
	indexes, _ := filepath.Glob("/var/lib/apt/lists/*bookworm-security*_Packages*")
	if len(indexes) == 0 {
		t.Fatal("no bookworm-security index under /var/lib/apt/lists")
	}
	args := []string{"--oci-layout", layout + ":bookworm-minbase", "--data", data, "--packages-index", indexes[0]}
	out, _, err = runCobra(t, newScanCmd(), args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"libc6 (glibc)", "BWTEST-2026-0001", "CRITICAL", "(no fix)", "older than the archive", "lint:"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "BWTEST-2026-0002") {
		t.Errorf("fixed advisory reported:\n%s", out)
	}

	// JSON.
	out, _, err = runCobra(t, newScanCmd(), append(args, "--format", "json")...)
	var rep struct {
		Source   struct{ Digest string }
		Findings []struct {
			ID, Fixed string
			Package   struct{ Name, Layer string }
			Name      string
		}
		Archive *struct{ Behind []struct{ Available string } }
		Lint    []struct{ ID string }
	}
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("json: %v\n%.2000s", err, out)
	}
	glibc := 0
	for _, f := range rep.Findings {
		if f.ID == "BWTEST-2026-0001" {
			glibc++
			if f.Name != "glibc" || !strings.HasPrefix(f.Package.Layer, "sha256:") {
				t.Errorf("finding %+v", f)
			}
		}
	}
	if glibc < 2 || rep.Archive == nil || rep.Source.Digest == "" || rep.Lint == nil {
		t.Fatalf("json report: %d glibc findings, archive %v\n%.3000s", glibc, rep.Archive, out)
	}

	// SARIF 2.1.0: the fields code-scanning services require.
	out, _, err = runCobra(t, newScanCmd(), append(args, "--format", "sarif")...)
	var sarif struct {
		Schema  string `json:"$schema"`
		Version string
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string
					Rules []struct {
						ID               string
						ShortDescription struct{ Text string }
					}
				}
			}
			Results []struct {
				RuleID    string
				RuleIndex int
				Level     string
				Message   struct{ Text string }
				Locations []struct {
					PhysicalLocation struct{ ArtifactLocation struct{ URI string } }
				}
			}
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &sarif) != nil || sarif.Version != "2.1.0" || len(sarif.Runs) != 1 || sarif.Runs[0].Tool.Driver.Name != "bulwark" {
		t.Fatalf("sarif: %v\n%.2000s", err, out)
	}
	run := sarif.Runs[0]
	if len(run.Results) == 0 {
		t.Fatal("sarif: no results")
	}
	for _, r := range run.Results {
		if r.RuleIndex >= len(run.Tool.Driver.Rules) || run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID || r.Message.Text == "" ||
			(r.Level != "error" && r.Level != "warning" && r.Level != "note") || len(r.Locations) == 0 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
			t.Fatalf("sarif result %+v", r)
		}
	}

	// CycloneDX with vulnerabilities pointing at components.
	out, _, err = runCobra(t, newScanCmd(), append(args, "--format", "cyclonedx")...)
	var cdx struct {
		SpecVersion string
		Components  []struct {
			BOMRef string `json:"bom-ref"`
		}
		Vulnerabilities []struct {
			ID      string
			Affects []struct{ Ref string }
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &cdx) != nil || cdx.SpecVersion != "1.5" || len(cdx.Vulnerabilities) == 0 {
		t.Fatalf("cyclonedx: %v\n%.2000s", err, out)
	}
	refs := map[string]bool{}
	for _, c := range cdx.Components {
		refs[c.BOMRef] = true
	}
	for _, v := range cdx.Vulnerabilities {
		for _, a := range v.Affects {
			if !refs[a.Ref] {
				t.Fatalf("cyclonedx: %s affects unknown component %q", v.ID, a.Ref)
			}
		}
	}

	// SPDX: the SBOM the findings were matched on, as SPDX 2.3 (every
	// component, plus the package describing the image itself).
	out, _, err = runCobra(t, newScanCmd(), append(args, "--format", "spdx")...)
	var spdx struct {
		SPDXVersion string
		Packages    []struct{ Name string }
	}
	if err != nil || json.Unmarshal([]byte(out), &spdx) != nil || spdx.SPDXVersion != "SPDX-2.3" || len(spdx.Packages) < len(cdx.Components) {
		t.Fatalf("spdx: %v (%d packages, CycloneDX had %d components)\n%.2000s", err, len(spdx.Packages), len(cdx.Components), out)
	}

	// --fail-on: the CRITICAL advisory trips HIGH; a VEX statement
	// about glibc's packages suppresses it.
	_, _, err = runCobra(t, newScanCmd(), append(args, "--fail-on", "HIGH", "--no-lint")...)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "at or above HIGH") {
		t.Fatalf("--fail-on HIGH: %v", err)
	}
	vexFile := filepath.Join(t.TempDir(), "vex.json")
	os.WriteFile(vexFile, []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://example.com/vex/1","timestamp":"2026-01-01T00:00:00Z",
		"statements":[{"vulnerability":{"name":"CVE-2026-99999"},"products":[{"@id":"pkg:deb/debian/libc6"},{"@id":"pkg:deb/debian/libc-bin"}],
		"status":"not_affected","justification":"vulnerable_code_not_in_execute_path"}]}`), 0o644)
	out, _, err = runCobra(t, newScanCmd(), append(args, "--fail-on", "HIGH", "--no-lint", "--vex", vexFile)...)
	if err != nil || !strings.Contains(out, "suppressed by VEX") {
		t.Fatalf("--vex: %v\n%s", err, out)
	}
	// The archive check alone, without a database.
	out, _, err = runCobra(t, newScanCmd(), "--rootfs", rootfs, "--data", filepath.Join(t.TempDir(), "empty"), "--packages-index", indexes[0], "--fail-on-behind", "--no-lint")
	if strings.Contains(out, "0 installed packages are older") {
		if err != nil {
			t.Fatalf("nothing behind, yet: %v", err)
		}
	} else if exitCode(err) != 2 || !strings.Contains(err.Error(), "behind the archive") {
		t.Fatalf("--fail-on-behind: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rootfs", goRoot, "--data", data, "--format", "xml"}, "--format must be"},
		{[]string{"--rootfs", goRoot, "--data", data, "--fail-on", "SEVERE"}, "unknown severity"},
		{[]string{"--rootfs", goRoot, "--data", data, "--vex", filepath.Join(adv, "bad.json")}, "--vex"},
		{[]string{"--rootfs", goRoot, "--data", data, "--packages-index", filepath.Join(adv, "missing")}, "--packages-index"},
	} {
		if _, _, err := runCobra(t, newScanCmd(), tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("scan %q: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestScanCache: a second scan of the same image reads its catalog from
// DATA/scan-cache and no layer (the layer is damaged in between), with
// the same result; --no-cache reads the layers again; a data directory
// that does not exist is not created.
func TestScanCache(t *testing.T) {
	unsetDataEnv(t)
	ctx := t.Context()
	img, err := testimage.Busybox(ctx, filepath.Join(t.TempDir(), "layout"), testimage.WithTag("latest"),
		testimage.WithFile("etc/ssl/private/key.pem", []byte("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n")))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	scan := func(extra ...string) (scanOutput, string, error) {
		t.Helper()
		args := append([]string{"--oci-layout", img.Dir + ":latest", "--data", data, "--no-vulndb", "--format", "json"}, extra...)
		out, stderr, err := runCobra(t, newScanCmd(), args...)
		var res scanOutput
		if err == nil {
			if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
				t.Fatalf("%v\n%s", jerr, out)
			}
		}
		return res, stderr, err
	}

	// No data directory: scans, caches nothing, creates nothing.
	if _, _, err := scan(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("scan created the data directory: %v", err)
	}
	os.MkdirAll(data, 0o700)
	first, stderr, err := scan()
	if err != nil || strings.Contains(stderr, "scan cache") {
		t.Fatalf("first scan: %v\n%s", err, stderr)
	}
	if ids := lintIDs(first.Lint); !strings.Contains(ids, "DKL-DI-0006") || !strings.Contains(ids, "CIS-DI-0010") {
		t.Fatalf("lint of the tagged image: %s", ids)
	}
	// Damage the layer: only a cached catalog can still scan the image.
	layer := filepath.Join(img.Dir, "blobs", "sha256", img.LayerDigests[0].Encoded())
	if err := os.WriteFile(layer, []byte("not the layer"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, stderr, err := scan()
	if err != nil || !strings.Contains(stderr, "read from the scan cache") {
		t.Fatalf("second scan: %v\n%s", err, stderr)
	}
	if !reflect.DeepEqual(first.Lint, second.Lint) || !reflect.DeepEqual(first.Report.Source, second.Report.Source) ||
		first.Report.Packages != second.Report.Packages {
		t.Fatalf("cached scan differs:\n%+v\n%+v", first, second)
	}
	if _, _, err := scan("--no-cache"); err == nil || !strings.Contains(err.Error(), "does not match its descriptor") {
		t.Fatalf("--no-cache read the damaged layer without error: %v", err)
	}
	// The sbom command shares the cache.
	out, stderr, err := runCobra(t, newSBOMCmd(), "--oci-layout", img.Dir, "--data", data)
	if err != nil || !strings.Contains(stderr, "scan cache") || !strings.Contains(out, img.ManifestDigest.String()) {
		t.Fatalf("sbom from the cache: %v\n%s\n%s", err, stderr, out)
	}
}

func lintIDs(fs []lint.Finding) string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return strings.Join(ids, " ")
}
