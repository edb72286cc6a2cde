package server

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/policy"
	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	scanstore "github.com/bulwark-dev/bulwark/internal/scan/store"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vulntest"
)

// TestScanQueue: each digest is queued once, later pushes only add their
// repository (also while it is being scanned), a full queue refuses and
// says so, and workers take digests in order.
func TestScanQueue(t *testing.T) {
	q := newScanQueue(2)
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	for _, step := range []struct {
		repo string
		d    digest.Digest
		ok   bool
	}{{"r1", a, true}, {"r2", a, true}, {"r1", a, true}, {"r1", b, true}, {"r1", c, false}} {
		if got := q.add(step.repo, step.d); got != step.ok {
			t.Fatalf("add(%s, %s) = %v, want %v", step.repo, step.d, got, step.ok)
		}
	}
	if !q.takeOverflow() || q.takeOverflow() {
		t.Fatal("overflow not reported exactly once")
	}
	if w, r := q.length(); w != 2 || r != 0 {
		t.Fatalf("length = %d waiting, %d running", w, r)
	}
	ctx := t.Context()
	d, repos, ok := q.next(ctx)
	if !ok || d != a || !slices.Equal(repos, []string{"r1", "r2"}) {
		t.Fatalf("next = %s %v %v", d, repos, ok)
	}
	if !q.pending(a) || !q.add("r3", a) {
		t.Fatal("a running digest is not pending, or refused a repository")
	}
	if w, r := q.length(); w != 1 || r != 1 {
		t.Fatalf("length while running = %d, %d", w, r)
	}
	if all := q.done(a); !slices.Equal(all, []string{"r1", "r2", "r3"}) {
		t.Fatalf("done = %v", all)
	}
	if q.pending(a) {
		t.Fatal("a is pending after done")
	}
	// Now there is room again.
	if !q.add("r1", c) {
		t.Fatal("add after room was made")
	}
	if d, _, _ := q.next(ctx); d != b {
		t.Fatalf("second next = %s, want b", d)
	}
	if d, _, _ := q.next(ctx); d != c {
		t.Fatalf("third next = %s, want c", d)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, ok := q.next(cctx); ok {
		t.Fatal("next on an empty queue returned before its context ended")
	}

	// Many repositories of one digest are bounded.
	for i := range 2 * maxQueuedRepos {
		q.add(fmt.Sprintf("r/%d", i), a)
	}
	if _, repos, _ := q.next(ctx); len(repos) != maxQueuedRepos {
		t.Fatalf("repositories kept = %d, want %d", len(repos), maxQueuedRepos)
	}
}

// TestScanQueueConcurrent: several workers and pushers; every digest is
// handed out exactly once.
func TestScanQueueConcurrent(t *testing.T) {
	q := newScanQueue(1000)
	ctx, cancel := context.WithCancel(t.Context())
	var (
		mu   sync.Mutex
		seen = map[digest.Digest]int{}
		wg   sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				d, _, ok := q.next(ctx)
				if !ok {
					return
				}
				mu.Lock()
				seen[d]++
				mu.Unlock()
				q.done(d)
			}
		})
	}
	var pushers sync.WaitGroup
	for p := range 4 {
		pushers.Go(func() {
			for i := range 200 {
				q.add(fmt.Sprintf("repo%d", p), digest.FromString(fmt.Sprint(i)))
			}
		})
	}
	pushers.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if w, r := q.length(); w == 0 && r == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("queue did not drain")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if len(seen) != 200 {
		t.Fatalf("%d digests handed out, want 200", len(seen))
	}
	// A digest pushed again after its scan ended is queued again (the
	// worker then finds its stored result); never twice at once.
	for d, n := range seen {
		if n < 1 || n > 4 {
			t.Fatalf("%s handed out %d times", d, n)
		}
	}
}

// testImage is an image built in memory: a config and one gzip layer.
type testImage struct {
	config, layer, manifest []byte
	digest                  digest.Digest
}

func buildTestImage(t *testing.T, files map[string]string, user string) testImage {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	img := testImage{layer: gz.Bytes()}
	cfg := v1.Image{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Config: v1.ImageConfig{User: user},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tarBuf.Bytes())}}}
	img.config, _ = json.Marshal(cfg)
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(img.config), Size: int64(len(img.config))},
		Layers: []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(img.layer), Size: int64(len(img.layer))}}}
	m.SchemaVersion = 2
	img.manifest, _ = json.Marshal(m)
	img.digest = digest.FromBytes(img.manifest)
	return img
}

// registryClient pushes and pulls through the HTTP API with a token.
type registryClient struct {
	t            *testing.T
	base, bearer string
}

func tokenFor(t *testing.T, base, user, password string, scopes ...string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/token?"+url.Values{"service": {"bulwark"}, "scope": scopes}.Encode(), nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.Token == "" {
		t.Fatalf("token for %s: %s %v", user, resp.Status, err)
	}
	return tr.Token
}

func (c registryClient) do(method, path string, body []byte, ct string) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.bearer)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Accept", v1.MediaTypeImageManifest+", "+v1.MediaTypeImageIndex)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c registryClient) push(repo, tag string, img testImage) {
	c.t.Helper()
	for _, blob := range [][]byte{img.config, img.layer} {
		if resp, body := c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(blob).String(), blob, "application/octet-stream"); resp.StatusCode != http.StatusCreated {
			c.t.Fatalf("upload to %s: %s %s", repo, resp.Status, body)
		}
	}
	c.putManifest(repo, tag, v1.MediaTypeImageManifest, img.manifest)
}

func (c registryClient) putManifest(repo, tag, mediaType string, b []byte) {
	c.t.Helper()
	if resp, body := c.do(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, b, mediaType); resp.StatusCode != http.StatusCreated {
		c.t.Fatalf("push %s:%s: %s %s", repo, tag, resp.Status, body)
	}
}

func npmRecord(id, name, fixed string) string {
	b, _ := json.Marshal(map[string]any{"id": id, "modified": "2025-01-01T00:00:00Z", "aliases": []string{"CVE-2099-" + id[len(id)-1:]},
		"affected": []any{map[string]any{"package": map[string]string{"ecosystem": "npm", "name": name},
			"ranges": []any{map[string]any{"type": "SEMVER", "events": []map[string]string{{"introduced": "0"}, {"fixed": fixed}}}}}}})
	return string(b)
}

func importInto(t *testing.T, dataDir string, records ...string) {
	t.Helper()
	db, err := vulndb.Open(t.Context(), vulndb.PathIn(dataDir), vulndb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	for i, r := range records {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.json", i)), []byte(r), 0o644)
	}
	if _, err := db.Import(t.Context(), dir, vulndb.ImportOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
}

const scanPolicy = `version: 1
bindings:
  - name: gated-push
    environments: [prod]
    repositories: ["gated/**"]
    actions: [push]
    rules: [max-severity]
    params:
      max-severity: {severity: high}
    mode: enforce
  - name: pull
    environments: [prod]
    repositories: ["prod/**", "gated/**"]
    actions: [pull]
    rules: [max-severity]
    params:
      max-severity: {severity: high}
    mode: enforce
`

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScannerFeedsPolicy is the scanner inside a real server (accounts,
// policy, vulnerability database, HTTP): pushes decided before any scan
// see no scan result; a restart scans what was pushed (the queue is not
// persisted, the sweep finds it); each digest's layers are read once
// however many repositories hold it; the results release what passes
// and keep what fails quarantined (an index with its platform); an
// environment's pull is decided on them; a database update re-matches
// stored SBOMs without reading layers, invalidates cached pull decisions,
// audits the new finding and calls the webhook once.
func TestScannerFeedsPolicy(t *testing.T) {
	const adminPassword = "scanner-admin-password"
	t.Setenv("BULWARK_ADMIN_PASSWORD", adminPassword)
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(scanPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	importInto(t, dir, npmRecord("NPM-T-1", "left-pad", "1.0.1"))

	var (
		hookMu sync.Mutex
		hooks  []findingsNotice
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n findingsNotice
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		hookMu.Lock()
		hooks = append(hooks, n)
		hookMu.Unlock()
	}))
	defer hook.Close()

	cfg := config.Default()
	cfg.Data = dir
	cfg.Policy = policyPath
	cfg.Scan.RematchInterval = 0 // re-match when the test says
	cfg.Scan.Webhook = hook.URL
	log := slog.New(slog.DiscardHandler)

	vulnerable := buildTestImage(t, map[string]string{"app/node_modules/left-pad/package.json": `{"name":"left-pad","version":"1.0.0"}`}, "1000")
	clean := buildTestImage(t, map[string]string{"app/node_modules/right-pad/package.json": `{"name":"right-pad","version":"2.0.0"}`}, "1000")
	index, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{{
		MediaType: v1.MediaTypeImageManifest, Digest: clean.digest, Size: int64(len(clean.manifest)),
		Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}}})
	indexDigest := digest.FromBytes(index)

	// Server A accepts the pushes but never runs its scanner (as if it
	// stopped right after).
	a, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	tsA := httptest.NewServer(a.Handler())
	admin := registryClient{t: t, base: tsA.URL}
	admin.bearer = tokenFor(t, tsA.URL, "admin", adminPassword, "repository:prod/app:pull,push", "repository:prod/clean:pull,push",
		"repository:gated/app:pull,push", "repository:gated/clean:pull,push")
	for _, repo := range []string{"prod/app", "gated/app"} {
		admin.push(repo, "v1", vulnerable)
	}
	for _, repo := range []string{"prod/clean", "gated/clean"} {
		admin.push(repo, "v1", clean)
	}
	admin.putManifest("gated/clean", "multi", v1.MediaTypeImageIndex, index)
	robotSecret, err := a.sec.accounts.CreateRobot(t.Context(), "web1", []auth.Grant{{Glob: "prod/**", Actions: []auth.Action{auth.ActionPull}},
		{Glob: "gated/**", Actions: []auth.Action{auth.ActionPull}}}, time.Time{}, "prod")
	if err != nil {
		t.Fatal(err)
	}
	robotPull := func(base, repo string) (int, string) {
		t.Helper()
		c := registryClient{t: t, base: base, bearer: tokenFor(t, base, "web1", robotSecret, "repository:"+repo+":pull")}
		resp, body := c.do(http.MethodGet, "/v2/"+repo+"/manifests/v1", nil, "")
		return resp.StatusCode, body
	}
	if status, body := robotPull(tsA.URL, "prod/clean"); status != http.StatusForbidden || !strings.Contains(body, "no scan result") {
		t.Fatalf("pull before any scan: %d %s", status, body)
	}
	quarantined := func(s *Server, repo string, d digest.Digest) bool {
		q, err := s.data.Meta.Quarantined(t.Context(), repo, d)
		if err != nil {
			t.Fatal(err)
		}
		return q != nil
	}
	for _, qd := range []struct {
		repo string
		d    digest.Digest
	}{{"gated/app", vulnerable.digest}, {"gated/clean", clean.digest}, {"gated/clean", indexDigest}} {
		if !quarantined(a, qd.repo, qd.d) {
			t.Fatalf("%s@%s not quarantined before its scan", qd.repo, qd.d)
		}
	}
	tsA.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// Server B, on the same data: its sweep finds the unscanned images.
	b, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(b.Handler())
	defer ts.Close()
	ctx, stop := context.WithCancel(t.Context())
	var running sync.WaitGroup
	running.Go(func() { b.scanner.run(ctx) })
	defer func() { stop(); running.Wait(); b.Close() }()

	results := b.scanner.results
	waitFor(t, "both images scanned and re-decided", func() bool {
		for _, d := range []digest.Digest{vulnerable.digest, clean.digest} {
			if im, err := results.Image(t.Context(), d); err != nil || !im.HasReport() {
				return false
			}
		}
		return !quarantined(b, "gated/clean", clean.digest) && !quarantined(b, "gated/clean", indexDigest)
	})
	if n := b.scanner.layerScans.Load(); n != 2 {
		t.Fatalf("layers read for %d images, want 2 (one per digest)", n)
	}
	q, err := b.data.Meta.Quarantined(t.Context(), "gated/app", vulnerable.digest)
	if err != nil || q == nil || len(q.Violations) != 1 || q.Violations[0].Rule != "max-severity" || !strings.Contains(q.Violations[0].Message, "NPM-T-1") {
		t.Fatalf("vulnerable image's quarantine after its scan = %+v, %v", q, err)
	}
	if repos, _ := results.Repositories(t.Context(), vulnerable.digest); !slices.Equal(repos, []string{"gated/app", "prod/app"}) {
		t.Errorf("repositories of the vulnerable image = %v", repos)
	}
	if status, body := robotPull(ts.URL, "prod/clean"); status != http.StatusOK {
		t.Fatalf("pull of the clean image: %d %s", status, body)
	}
	if status, body := robotPull(ts.URL, "prod/app"); status != http.StatusForbidden || !strings.Contains(body, "NPM-T-1") {
		t.Fatalf("pull of the vulnerable image: %d %s", status, body)
	}
	// The policy input carries the lint findings too: these test images
	// declare no HEALTHCHECK.
	facts := b.scanner.facts(t.Context(), &registry.GateRequest{Repository: "prod/app", Digest: vulnerable.digest,
		MediaType: v1.MediaTypeImageManifest, Manifest: vulnerable.manifest})
	if !facts.Available || !slices.ContainsFunc(facts.Lint, func(l policy.LintFinding) bool {
		return l.ID == "CIS-DI-0006" && l.Severity != "" && l.Message != ""
	}) {
		t.Errorf("scan facts of the vulnerable image lack the HEALTHCHECK lint finding: %+v", facts.Lint)
	}

	// The API: the robot may read what it may pull.
	api, err := scanstore.NewClient(ts.URL, scanstore.ClientOptions{Authorization: "Basic " + basicAuth("web1", robotSecret)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := api.Result(t.Context(), "prod/app", vulnerable.digest)
	if err != nil || len(res.Findings) != 1 || res.Findings[0].ID != "NPM-T-1" || res.Findings[0].Fixed != "1.0.1" {
		t.Fatalf("API result = %+v, %v", res, err)
	}
	if _, err := api.Result(t.Context(), "gated/app", vulnerable.digest); err == nil {
		t.Fatal("the robot read the result of a manifest quarantined for it")
	}

	// A database update: right-pad 2.0.0 becomes vulnerable.
	importInto(t, dir, npmRecord("NPM-T-2", "right-pad", "2.0.1"))
	rm, err := b.scanner.Rematch(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	if rm.Images != 2 || rm.Changed != 1 || rm.NewFindings != 1 || rm.Webhook != "sent" || rm.Generation != 2 {
		t.Fatalf("re-match = %+v", rm)
	}
	if n := b.scanner.layerScans.Load(); n != 2 {
		t.Fatalf("the re-match read layers (%d scans)", n)
	}
	// The pull allowed a moment ago (and cached) is decided again.
	if status, body := robotPull(ts.URL, "prod/clean"); status != http.StatusForbidden || !strings.Contains(body, "NPM-T-2") {
		t.Fatalf("pull of the newly vulnerable image: %d %s", status, body)
	}
	hookMu.Lock()
	if len(hooks) != 1 || len(hooks[0].Images) != 1 || hooks[0].Images[0].Digest != clean.digest ||
		len(hooks[0].Images[0].New) != 1 || hooks[0].Images[0].New[0].ID != "NPM-T-2" || hooks[0].Images[0].New[0].Fixed != "2.0.1" ||
		!slices.Equal(hooks[0].Images[0].Repositories, []string{"gated/clean", "prod/clean"}) {
		t.Errorf("webhook calls = %+v", hooks)
	}
	hookMu.Unlock()
	// Nothing changed since: nothing to do, nothing sent.
	if rm, err := b.scanner.Rematch(t.Context(), false); err != nil || rm.Images != 0 || rm.Webhook != "" {
		t.Fatalf("second re-match = %+v, %v", rm, err)
	}

	// The admin endpoints.
	status := adminCall(t, ts.URL, "admin", adminPassword, http.MethodGet, "/admin/v1/scan/status")
	if !strings.Contains(status, `"layerScans":2`) || !strings.Contains(status, `"generation":2`) {
		t.Errorf("status = %s", status)
	}
	rmAll := adminCall(t, ts.URL, "admin", adminPassword, http.MethodPost, "/admin/v1/scan/rematch?all=true")
	if !strings.Contains(rmAll, `"images":2`) || !strings.Contains(rmAll, `"changed":0`) {
		t.Errorf("rematch all = %s", rmAll)
	}

	stop()
	running.Wait()
	ts.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	events, err := audit.Query(t.Context(), audit.PathIn(dir), audit.Filter{Action: auditScanFindings})
	if err != nil || len(events) != 1 || events[0].Digest != clean.digest.String() || !strings.Contains(events[0].Detail, "NPM-T-2") {
		t.Fatalf("scan.findings audit events = %+v, %v", events, err)
	}
	scans, _ := audit.Query(t.Context(), audit.PathIn(dir), audit.Filter{Action: auditScan})
	if len(scans) != 2 {
		t.Fatalf("scan audit events = %+v", scans)
	}
}

func basicAuth(user, password string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, password)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

func adminCall(t *testing.T, base, user, password, method, path string) string {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, b)
	}
	return string(b)
}

// BenchmarkRematch1000 re-matches 1,000 stored SBOMs through the
// scanner's storage path after a database update: list the stale images
// in DATA/scan.db, decode their SBOMs, match them with a fresh matcher
// (an update invalidates every cache), diff against the stored findings
// and write the new reports and finding rows, 64 per transaction. The
// SBOMs are the bookworm minbase image at different points of its
// history plus a Go service each, against the Go vulnerability database
// and the fixture's changelog advisories (issue 7's target: 5 s).
func BenchmarkRematch1000(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	rootfs, _ := vulntest.BookwormMinbase(b)
	logs, err := vulntest.ReadChangelogs(rootfs)
	if err != nil {
		b.Fatal(err)
	}
	debDir := filepath.Join(b.TempDir(), "debian")
	if err := vulntest.WriteDebianOSV(debDir, "Debian:12", vulntest.Fixes(logs)); err != nil {
		b.Fatal(err)
	}
	db, err := vulndb.Open(ctx, vulndb.PathIn(dir), vulndb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []string{vulntest.GoVulnDB(b), debDir} {
		if _, err := db.Import(ctx, p, vulndb.ImportOptions{Strict: true}); err != nil {
			b.Fatal(err)
		}
	}
	db.Close()
	base, _, err := catalog.Dir(ctx, rootfs, catalog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	results, err := scanstore.Open(ctx, scanstore.Path(dir), scanstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer results.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var stored []*sbom.SBOM
	for i := range 1000 {
		s := *base
		s.Source = sbom.Source{Kind: sbom.SourceImage, Name: fmt.Sprintf("team%d/app:v%d", i%37, i), Digest: digest.FromString(fmt.Sprint("image ", i))}
		s.Packages = slices.Clone(base.Packages)
		chosen := map[string]string{}
		for j := range s.Packages {
			p := &s.Packages[j]
			hist := logs[p.SourceName]
			if p.Type != sbom.Deb || len(hist) < 2 || rng.IntN(2) == 0 {
				continue
			}
			v, ok := chosen[p.SourceName]
			if !ok {
				v = hist[rng.IntN(min(len(hist), 8))].Version
				chosen[p.SourceName] = v
			}
			p.Version, p.SourceVersion = v, v
		}
		s.Packages = append(s.Packages,
			sbom.Package{Type: sbom.Golang, Name: sbom.GoStdlib, Version: fmt.Sprintf("go1.%d.%d", 19+rng.IntN(8), rng.IntN(10)), PURL: "pkg:golang/stdlib", Paths: []string{"/app"}},
			sbom.Package{Type: sbom.Golang, Name: "golang.org/x/net", Version: fmt.Sprintf("v0.%d.0", rng.IntN(40)), PURL: "pkg:golang/golang.org/x/net", Paths: []string{"/app"}},
			sbom.Package{Type: sbom.Golang, Name: "golang.org/x/text", Version: fmt.Sprintf("v0.3.%d", rng.IntN(9)), PURL: "pkg:golang/golang.org/x/text", Paths: []string{"/app"}})
		stored = append(stored, &s)
	}
	forget := func() {
		for _, sb := range stored {
			if _, err := results.PutScan(ctx, &scanstore.Scan{Digest: sb.Source.Digest, Repositories: []string{"team/app"}, SBOM: sb}); err != nil {
				b.Fatal(err)
			}
		}
	}
	forget()
	s := &scanner{cfg: config.Default().Scan, dataDir: dir, results: results, record: func(audit.Event) {},
		log: slog.New(slog.DiscardHandler), queue: newScanQueue(1), now: time.Now}
	defer s.close()
	rematch := func(b *testing.B, wantChanged int) {
		s.dbMu.Lock()
		s.matcher = nil
		s.dbMu.Unlock()
		res, err := s.Rematch(ctx, true)
		if err != nil || res.Images != 1000 || res.Changed != wantChanged {
			b.Fatal(res, err)
		}
	}
	// Every report is new: all 1,000 reports and their ~133,000 finding
	// rows are written (the worst case: a first database import).
	b.Run("new-reports", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			forget()
			b.StartTimer()
			rematch(b, 1000)
		}
		st, _ := results.Stats(ctx)
		b.ReportMetric(float64(st.Findings)/1000, "findings/sbom")
	})
	// The database moved but the reports did not change (most images
	// after a typical update): decode, match and compare, nothing written
	// but the generation.
	b.Run("unchanged", func(b *testing.B) {
		for b.Loop() {
			rematch(b, 0)
		}
	})
}
