package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/inventory"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vulntest"
	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// TestScanRegistry is issue 7's registry side through the real binary:
//
//   - `bulwark vulndb import --data` one real Go advisory (GO-2021-0113)
//     into the data directory of a running server;
//   - push (skopeo) an image holding a Go program built against the
//     vulnerable golang.org/x/text v0.3.5, and a busybox image;
//   - the server scans both in the background: the advisory shows in the
//     scan API, and a host robot bound to prod, under a policy with
//     max-severity at pull (allow_unscanned false), cannot pull the
//     vulnerable image and can pull busybox;
//   - a container of the vulnerable image is reported running;
//     `bulwark report --running --vulnerabilities` lists it with the
//     advisory, its fixed version and the days since the fix (since the
//     advisory's publication);
//   - a second advisory (GO-2022-1059) is imported: the maintenance loop
//     re-matches the stored SBOMs without reading layers again, audits a
//     scan.findings event for the image naming the running container,
//     and POSTs it to the webhook.
func TestScanRegistry(t *testing.T) {
	skopeo := newSkopeo(t)
	ctx := t.Context()
	goDB := vulntest.GoVulnDB(t)
	goRoot := vulntest.VulnerableGoRoot(t)
	dir := t.TempDir()

	vulnLayout := filepath.Join(dir, "vulnbin-layout")
	bin, err := os.ReadFile(filepath.Join(goRoot, "usr", "local", "bin", "vulnbin"))
	if err != nil {
		t.Fatal(err)
	}
	vulnDigest := writeLayout(t, vulnLayout, "v1", map[string]layoutFile{"usr/local/bin/vulnbin": {data: bin, mode: 0o755}})
	busybox, err := testimage.Busybox(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	var (
		hookMu  sync.Mutex
		notices []json.RawMessage
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		notices = append(notices, b)
		hookMu.Unlock()
	}))
	defer hook.Close()

	policy := filepath.Join(dir, "policy.yaml")
	writeFile(t, policy, `version: 1
bindings:
  - name: prod-pull
    environments: [prod]
    repositories: ["prod/**"]
    actions: [pull]
    rules: [max-severity]
    params:
      max-severity: {severity: high, allow_unscanned: false}
    mode: enforce
`)
	srv := startServerEnv(t, []string{"BULWARK_ADMIN_PASSWORD=" + adminPassword, "BULWARK_SCAN_REMATCH_INTERVAL=1s",
		"BULWARK_SCAN_WEBHOOK=" + hook.URL + "/bulwark"}, "--policy", policy)
	bw := func(env []string, args ...string) string {
		t.Helper()
		out, err := runCmd(ctx, append(serverEnv(), env...), bulwarkBin, args...)
		if err != nil {
			t.Fatalf("bulwark %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	importOne := func(id string) {
		t.Helper()
		d := filepath.Join(t.TempDir(), id)
		os.MkdirAll(d, 0o755)
		b, err := os.ReadFile(filepath.Join(goDB, id+".json"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, id+".json"), string(b))
		bw(nil, "vulndb", "import", "--data", srv.dataDir, "--strict", d)
	}
	importOne("GO-2021-0113")

	adminCreds := "admin:" + adminPassword
	skopeo.push(t, ctx, testimage.Image{Dir: vulnLayout, Tag: "v1"}, srv.ref("prod/app", "v1"), "--dest-creds", adminCreds, "--preserve-digests")
	skopeo.push(t, ctx, busybox, srv.ref("prod/base", "v1"), "--dest-creds", adminCreds, "--preserve-digests")

	type finding struct {
		ID, Severity, Package, Version, Fixed string
	}
	report := func(repo string, d digest.Digest) (int, []finding) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url()+"/scan/v1/report?"+
			url.Values{"repository": {repo}, "digest": {d.String()}}.Encode(), nil)
		req.SetBasicAuth("admin", adminPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res struct{ Findings []finding }
		json.NewDecoder(resp.Body).Decode(&res)
		return resp.StatusCode, res.Findings
	}
	var got []finding
	waitUntil(t, "the pushed images to be scanned", func() bool {
		s1, f := report("prod/app", vulnDigest)
		s2, _ := report("prod/base", busybox.ManifestDigest)
		got = f
		return s1 == http.StatusOK && s2 == http.StatusOK
	})
	if len(got) != 1 || got[0].ID != "GO-2021-0113" || got[0].Package != "golang.org/x/text" || got[0].Version != "v0.3.5" || got[0].Fixed != "0.3.7" {
		t.Fatalf("findings of the vulnerable image = %+v", got)
	}

	// The CLI reads what the registry stored (--from-registry) and
	// matches it locally; the SBOM is the one the layers give.
	dockerDir := t.TempDir()
	writeFile(t, filepath.Join(dockerDir, "config.json"), fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, srv.addr, basicCreds("admin", adminPassword)))
	cliData := t.TempDir()
	bw(nil, "vulndb", "import", "--data", cliData, goDB)
	dockerEnv := []string{"DOCKER_CONFIG=" + dockerDir}
	local := bw(dockerEnv, "sbom", "--data", cliData, "--no-cache", srv.ref("prod/app", "v1"))
	stored := bw(dockerEnv, "sbom", "--from-registry", srv.ref("prod/app", "v1"))
	pkgs := func(out string) []string {
		t.Helper()
		var s struct{ Packages []struct{ PURL string } }
		if err := json.Unmarshal([]byte(out), &s); err != nil || len(s.Packages) == 0 {
			t.Fatalf("sbom output: %v\n%s", err, out)
		}
		var p []string
		for _, x := range s.Packages {
			p = append(p, x.PURL)
		}
		return p
	}
	if l, r := pkgs(local), pkgs(stored); !slices.Equal(l, r) {
		t.Errorf("the registry's SBOM lists %v, the layers %v", r, l)
	}
	fromReg := bw(dockerEnv, "scan", "--data", cliData, "--from-registry", "--format", "json", srv.ref("prod/app", "v1"))
	if !strings.Contains(fromReg, "GO-2021-0113") || !strings.Contains(fromReg, "CIS-DI-0006") {
		t.Errorf("scan --from-registry lacks the advisory or the stored lint:\n%s", fromReg)
	}

	// A prod host pulls by policy: the scan decides.
	host := srv.robot(t, "node1", "--grant", "prod/**:pull", "--env", "prod")
	pull := func(repo string) (string, error) {
		out, err := skopeo.run(ctx, "copy", "--src-tls-verify=false", "--src-creds", "node1:"+host,
			"docker://"+srv.ref(repo, "v1"), "oci:"+filepath.Join(t.TempDir(), "out")+":v1")
		if err != nil {
			out += err.Error()
		}
		return out, err
	}
	if out, err := pull("prod/app"); err == nil || !strings.Contains(out, "GO-2021-0113") {
		t.Fatalf("the prod host pulled the vulnerable image (or the denial does not name the advisory): %v\n%s", err, out)
	}
	if out, err := pull("prod/base"); err != nil {
		t.Fatalf("the prod host cannot pull busybox: %v\n%s", err, out)
	}

	// The vulnerable image runs on node1.
	inv, err := inventory.NewClient(srv.url(), inventory.ClientOptions{Authorization: "Basic " + basicCreds("node1", host)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Report(ctx, inventory.Event{Kind: inventory.KindStart, Time: time.Now().UTC(), Host: "node1", Container: "web",
		Image: srv.ref("prod/app", "v1"), Digest: vulnDigest.String(), Environment: "prod",
		Decision: inventory.Decision{Verification: inventory.VerifySkipped}}); err != nil {
		t.Fatal(err)
	}
	adminEnv := []string{"BULWARK_PASSWORD=" + adminPassword}
	table := bw(adminEnv, "report", "--running", "--vulnerabilities", "--server", srv.url(), "--username", "admin")
	t.Logf("bulwark report --running --vulnerabilities:\n%s", table)
	// The fix is dated from the advisory's publication (the Go database's
	// "published"), not from this registry's first sight of it.
	var rec struct{ Published time.Time }
	if b, err := os.ReadFile(filepath.Join(goDB, "GO-2021-0113.json")); err != nil || json.Unmarshal(b, &rec) != nil || rec.Published.IsZero() {
		t.Fatalf("GO-2021-0113's published date: %v", err)
	}
	days := int(time.Since(rec.Published) / (24 * time.Hour))
	daysOK := func(d int) bool { return d == days || d == days+1 } // a day may turn during the test
	for _, want := range []string{"node1", "web", "GO-2021-0113", "golang.org/x/text", "v0.3.5", "0.3.7"} {
		if !strings.Contains(table, want) {
			t.Errorf("report --running --vulnerabilities lacks %q:\n%s", want, table)
		}
	}
	if !strings.Contains(table, fmt.Sprintf("%d days", days)) && !strings.Contains(table, fmt.Sprintf("%d days", days+1)) {
		t.Errorf("report --running --vulnerabilities does not count %d days since the fix:\n%s", days, table)
	}
	var rows []struct {
		Host, Container, ID, Fixed, Scan string
		DaysSinceFix                     *int
	}
	// The same from the data directory, while the server runs.
	out := bw(nil, "report", "--running", "--vulnerabilities", "--data", srv.dataDir, "--output", "json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].ID != "GO-2021-0113" ||
		rows[0].DaysSinceFix == nil || !daysOK(*rows[0].DaysSinceFix) || rows[0].Scan != "scanned" {
		t.Fatalf("report --data --output json = %v\n%s", err, out)
	}

	// A database update: the maintenance loop re-matches what is stored.
	importOne("GO-2022-1059")
	type auditEvent struct{ Action, Digest, Detail string }
	var events []auditEvent
	waitUntil(t, "the re-match's scan.findings audit event", func() bool {
		out := bw(nil, "audit", "--data", srv.dataDir, "--action", "scan.findings", "--output", "json")
		events = nil
		json.Unmarshal([]byte(out), &events)
		return len(events) > 0
	})
	if len(events) != 1 || events[0].Digest != vulnDigest.String() || !strings.Contains(events[0].Detail, "GO-2022-1059") ||
		!strings.Contains(events[0].Detail, "node1/web") {
		t.Fatalf("scan.findings events = %+v", events)
	}
	waitUntil(t, "the webhook", func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		return len(notices) > 0
	})
	hookMu.Lock()
	var notice struct {
		Event  string
		Images []struct {
			Digest  digest.Digest
			New     []struct{ ID, Fixed string }
			Running []struct{ Host, Container string }
		}
	}
	if err := json.Unmarshal(notices[0], &notice); err != nil || len(notices) != 1 || notice.Event != "scan.findings" || len(notice.Images) != 1 ||
		notice.Images[0].Digest != vulnDigest || len(notice.Images[0].New) != 1 || notice.Images[0].New[0].ID != "GO-2022-1059" ||
		notice.Images[0].New[0].Fixed != "0.3.8" || len(notice.Images[0].Running) != 1 || notice.Images[0].Running[0].Host != "node1" {
		t.Errorf("webhook notices = %s (%v)", notices, err)
	}
	hookMu.Unlock()
	_, got = report("prod/app", vulnDigest)
	ids := []string{}
	for _, f := range got {
		ids = append(ids, f.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"GO-2021-0113", "GO-2022-1059"}) {
		t.Fatalf("findings after the update = %v", ids)
	}
	// No layer was read again: two images, two layer scans.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url()+"/admin/v1/scan/status", nil)
	req.SetBasicAuth("admin", adminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		LayerScans int
		Stored     struct{ Scanned, Reported int }
	}
	json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if status.LayerScans != 2 || status.Stored.Scanned != 2 || status.Stored.Reported != 2 {
		t.Fatalf("scan status = %+v", status)
	}
}

func basicCreds(user, secret string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, secret)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type layoutFile struct {
	data []byte
	mode int64
}

// writeLayout writes an OCI image layout at dir holding one image tagged
// tag: one gzip layer with files (and their parent directories) and a
// config for linux on this machine's architecture. It returns the
// manifest digest.
func writeLayout(t *testing.T, dir, tag string, files map[string]layoutFile) digest.Digest {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	dirs := map[string]bool{}
	for name := range files {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) { // parents sort before children
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime})
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		f := files[name]
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime})
		tw.Write(f.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) v1.Descriptor {
		d := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{Digest: d, Size: int64(len(b))}
	}
	layer := put(gz.Bytes())
	layer.MediaType = v1.MediaTypeImageLayerGzip
	created := mtime
	cfgBytes, _ := json.Marshal(v1.Image{Created: &created, Platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: v1.ImageConfig{User: "65532", Entrypoint: []string{"/usr/local/bin/vulnbin"}},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tarBuf.Bytes())}}})
	cfg := put(cfgBytes)
	cfg.MediaType = v1.MediaTypeImageConfig
	mBytes, _ := json.Marshal(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config: cfg, Layers: []v1.Descriptor{layer}})
	m := put(mBytes)
	m.MediaType = v1.MediaTypeImageManifest
	m.Annotations = map[string]string{v1.AnnotationRefName: tag}
	idx, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{m}})
	writeFile(t, filepath.Join(dir, v1.ImageIndexFile), string(idx))
	writeFile(t, filepath.Join(dir, v1.ImageLayoutFile), `{"imageLayoutVersion":"1.0.0"}`)
	return m.Digest
}
