package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/remote"
	"github.com/bulwark-dev/bulwark/internal/runner"
	"github.com/bulwark-dev/bulwark/internal/runner/unpack"
	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// runEnv is a registry with signed and unsigned images, a trust policy,
// a run policy and a host robot, as a host that runs only trusted images
// sees them.
type runEnv struct {
	srv                  *server
	trustPolicy, policy  string
	hostEnv              []string // DOCKER_CONFIG with the host robot's credentials
	hostDockerConfig     string   // that DOCKER_CONFIG
	adminEnv             []string // BULWARK_PASSWORD for bulwark report --username admin
	robot                string
	app, unsigned, rogue string // references of USER 1000 images: signed by ci, unsigned, signed by a look-alike ci of another CA
	root                 string // an image without USER (root), signed by ci
	appDigest            string
}

// requireRoot: bulwark run needs root (user namespaces with a mapped
// range, overlay mounts, cgroups). Like requireTool, it skips locally and
// fails under CI.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("bulwark run tests need root under CI")
	}
	t.Skip("bulwark run tests need root")
}

func newRunEnv(t testing.TB) *runEnv {
	t.Helper()
	requireRoot(t)
	requireTool(t, "runc")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	mustBW := func(env []string, args ...string) string {
		t.Helper()
		out, err := runCmd(ctx, env, bulwarkBin, args...)
		if err != nil {
			t.Fatalf("bulwark %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	// The authority prod requires, and a look-alike: a "ci" certificate
	// with the same subject from a CA the trust policy does not know.
	ca, keys := filepath.Join(dir, "ca"), filepath.Join(dir, "keys")
	rogueCA, rogueKeys := filepath.Join(dir, "rogue-ca"), filepath.Join(dir, "rogue-keys")
	for _, p := range [][2]string{{ca, keys}, {rogueCA, rogueKeys}} {
		mustBW(serverEnv(), "pki", "init", "--dir", p[0], "--org", "Example", "--country", "US", "--state", "WA")
		mustBW(serverEnv(), "pki", "issue", "--ca", p[0], "--name", "ci", "--subject", "C=US, ST=WA, O=Example, CN=ci",
			"--uri", "https://ci.example.com/signer", "--out", p[1])
	}
	e := &runEnv{trustPolicy: filepath.Join(dir, "trust.yaml"), policy: filepath.Join(dir, "policy.yaml")}
	writeRunFile(t, e.trustPolicy, `version: 1
authorities:
  - name: ci
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=ci"]
environments:
  - name: prod
    repositories: ["prod/**"]
    require: [ci]
`)
	writeRunFile(t, e.policy, `version: 1
bindings:
  - name: prod-run
    environments: [prod]
    repositories: ["prod/**"]
    actions: [run]
    rules: [signed, non-root, no-privileged, no-host-namespaces, no-host-path-mounts, read-only-rootfs]
    mode: enforce
`)

	e.srv = startAuthServer(t, adminPassword)
	adminCreds := "admin:" + adminPassword
	e.robot = "web-host"
	secret := e.srv.robotTB(t, e.robot, "--grant", "prod/**:pull", "--env", "prod")
	e.hostEnv = dockerConfigEnv(t, e.srv.addr, e.robot+":"+secret)
	e.hostDockerConfig = strings.TrimPrefix(e.hostEnv[len(e.hostEnv)-1], "DOCKER_CONFIG=")
	signEnv := dockerConfigEnv(t, e.srv.addr, adminCreds)
	e.adminEnv = append(serverEnv(), "BULWARK_PASSWORD="+adminPassword)

	sk := newSkopeo(t)
	layout := t.TempDir()
	img, err := testimage.Busybox(ctx, layout)
	if err != nil {
		t.Fatal(err)
	}
	user := withUser(t, img, "1000", "user1000")
	push := func(im testimage.Image, repo string) string {
		ref := e.srv.ref(repo, "v1")
		sk.push(t, ctx, im, ref, "--dest-creds", adminCreds, "--preserve-digests")
		return ref
	}
	e.app, e.unsigned, e.rogue, e.root = push(user, "prod/app"), push(user, "prod/unsigned"), push(user, "prod/rogue"), push(img, "prod/root")
	e.appDigest = user.ManifestDigest.String()
	mustBW(signEnv, "sign", e.app, "--key", filepath.Join(keys, "ci.key"), "--cert", filepath.Join(keys, "ci.crt"))
	mustBW(signEnv, "sign", e.root, "--key", filepath.Join(keys, "ci.key"), "--cert", filepath.Join(keys, "ci.crt"))
	mustBW(signEnv, "sign", e.rogue, "--key", filepath.Join(rogueKeys, "ci.key"), "--cert", filepath.Join(rogueKeys, "ci.crt"))
	return e
}

// robotTB is robot for any testing.TB (benchmarks too).
func (s *server) robotTB(t testing.TB, name string, extra ...string) string {
	t.Helper()
	out, err := runCmd(context.Background(), serverEnv(), bulwarkBin, append([]string{"admin", "--data", s.dataDir, "robot", "create", name, "--output", "json"}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ Name, Secret string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Secret == "" {
		t.Fatalf("robot create %s: %v\n%s", name, err, out)
	}
	return r.Secret
}

func writeRunFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dockerConfigEnv is an environment whose Docker config holds creds
// (USER:SECRET) for host.
func dockerConfigEnv(t testing.TB, host, creds string) []string {
	t.Helper()
	dir := t.TempDir()
	writeRunFile(t, filepath.Join(dir, "config.json"), fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`,
		host, base64.StdEncoding.EncodeToString([]byte(creds))))
	return append(serverEnv(), "DOCKER_CONFIG="+dir)
}

// withUser adds to img's layout a copy of img whose config sets USER,
// tagged tag: testimage images set none.
func withUser(t testing.TB, img testimage.Image, user, tag string) testimage.Image {
	t.Helper()
	cfg := img.Config
	cfg.Config.User = user
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := img.Manifest
	m.Config = v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	md := digest.FromBytes(mb)
	for d, b := range map[digest.Digest][]byte{m.Config.Digest: cb, md: mb} {
		if err := os.WriteFile(img.BlobPath(d), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	indexPath := filepath.Join(img.Dir, v1.ImageIndexFile)
	ib, err := os.ReadFile(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	var index v1.Index
	if err := json.Unmarshal(ib, &index); err != nil {
		t.Fatal(err)
	}
	index.Manifests = append(index.Manifests, v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: md, Size: int64(len(mb)),
		Annotations: map[string]string{v1.AnnotationRefName: tag}})
	if ib, err = json.Marshal(index); err != nil {
		t.Fatal(err)
	}
	writeRunFile(t, indexPath, string(ib))
	out, err := testimage.Load(img.Dir, tag)
	if err != nil || out.Config.Config.User != user {
		t.Fatalf("image with USER %s: %v", user, err)
	}
	return out
}

// runResult is one bulwark invocation.
type runResult struct {
	stdout, stderr string
	code           int
}

func (r runResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// bw runs bulwark with env and returns its output and exit status.
func bw(t testing.TB, ctx context.Context, env []string, args ...string) runResult {
	t.Helper()
	cmd := exec.CommandContext(ctx, bulwarkBin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := runResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("bulwark %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// run is `bulwark run` on a data directory with the env's policies for
// prod, as the host robot.
func (e *runEnv) run(t testing.TB, ctx context.Context, data string, args ...string) runResult {
	t.Helper()
	base := []string{"run", "--data", data, "--trust-policy", e.trustPolicy, "--policy", e.policy, "--env", "prod"}
	return bw(t, ctx, e.hostEnv, append(base, args...)...)
}

// TestRun is issue 6's trust path through the real binary, runc and a
// bulwark registry: a host with a trust policy and a run policy for prod
// runs a signed non-root image hardened, refuses unsigned, wrongly signed
// and root images before unpacking anything, and reports what it runs to
// the registry's inventory.
func TestRun(t *testing.T) {
	e := newRunEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	t.Run("verified", func(t *testing.T) {
		data := runData(t)
		r := e.run(t, ctx, data, e.app, "--", "id", "-u")
		if r.code != 0 || strings.TrimSpace(r.stdout) == "" || strings.TrimSpace(r.stdout) == "0" {
			t.Fatalf("id -u: want a non-zero uid and exit 0; got %v", r)
		}
		if !strings.Contains(r.stderr, "allows running") || !strings.Contains(r.stderr, "satisfied by ci") {
			t.Errorf("no decision summary on stderr: %s", r.stderr)
		}
		if strings.TrimSpace(r.stdout) != "1000" {
			t.Errorf("uid %q, want the image's USER 1000", strings.TrimSpace(r.stdout))
		}

		r = e.run(t, ctx, data, e.app, "--", "sh", "-c", "cat /proc/self/status; echo uid_map $(cat /proc/self/uid_map)")
		if r.code != 0 {
			t.Fatalf("status: %v", r)
		}
		status := map[string]string{}
		for _, line := range strings.Split(r.stdout, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				status[k] = strings.TrimSpace(v)
			}
		}
		for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			if status[k] != "0000000000000000" {
				t.Errorf("%s = %q, want 0", k, status[k])
			}
		}
		if status["NoNewPrivs"] != "1" || status["Seccomp"] != "2" {
			t.Errorf("NoNewPrivs %q Seccomp %q, want 1 and 2", status["NoNewPrivs"], status["Seccomp"])
		}
		// The container's ids start at an unprivileged host id.
		if f := strings.Fields(r.stdout[strings.Index(r.stdout, "uid_map"):]); len(f) < 4 || f[1] != "0" || f[2] == "0" {
			t.Errorf("uid_map %v: want container 0 mapped to a non-zero host uid", f)
		}

		r = e.run(t, ctx, data, e.app, "--", "sh", "-c", "echo x > /probe")
		if r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("writing to / succeeded or failed for another reason: %v", r)
		}
		if r = e.run(t, ctx, data, e.app, "--", "sh", "-c", "exit 7"); r.code != 7 {
			t.Errorf("exit 7 became %v", r)
		}
		if !strings.Contains(r.stderr, "(cached, decided") {
			t.Errorf("the same run a moment later did not reuse the admission: %s", r.stderr)
		}
	})

	t.Run("a changed policy applies at once", func(t *testing.T) {
		data := runData(t)
		pol := filepath.Join(t.TempDir(), "policy.yaml")
		orig, err := os.ReadFile(e.policy)
		if err != nil {
			t.Fatal(err)
		}
		writeRunFile(t, pol, string(orig))
		args := []string{"run", "--data", data, "--trust-policy", e.trustPolicy, "--policy", pol, "--env", "prod", e.app, "--", "true"}
		if r := bw(t, ctx, e.hostEnv, args...); r.code != 0 {
			t.Fatalf("run: %v", r)
		}
		// Now prod runs only digests: the admission cached a moment ago
		// for the tag must not be reused.
		writeRunFile(t, pol, strings.Replace(string(orig), "read-only-rootfs]", "read-only-rootfs, pinned-tag]", 1))
		r := bw(t, ctx, e.hostEnv, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "pinned-tag: ") {
			t.Fatalf("after the policy changed: %v", r)
		}
		pinned := strings.Replace(e.app, ":v1", "@"+e.appDigest, 1)
		args[len(args)-3] = pinned
		if r := bw(t, ctx, e.hostEnv, args...); r.code != 0 {
			t.Fatalf("run by digest: %v", r)
		}
	})

	t.Run("warn mode", func(t *testing.T) {
		pol := filepath.Join(t.TempDir(), "policy.yaml")
		writeRunFile(t, pol, `version: 1
bindings:
  - environments: [prod]
    repositories: ["prod/**"]
    actions: [run]
    rules: [signed, non-root]
    mode: enforce
  - environments: [prod]
    repositories: ["prod/**"]
    actions: [run]
    rules: [pinned-tag]
    mode: warn
`)
		r := bw(t, ctx, e.hostEnv, "run", "--data", runData(t), "--trust-policy", e.trustPolicy, "--policy", pol, "--env", "prod", e.app, "--", "id", "-u")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "1000" || !strings.Contains(r.stderr, "bulwark: warning: policy warning: rule pinned-tag") || !strings.Contains(r.stderr, "pinned-tag") {
			t.Fatalf("a warn-mode violation must warn and run: %v", r)
		}
	})

	t.Run("refused before unpacking", func(t *testing.T) {
		for _, tc := range []struct {
			name, ref string
			want      []string // on stderr
		}{
			{"unsigned", e.unsigned, []string{"signed: ", "no signatures", "fix: sign the image"}},
			{"signed by the wrong authority", e.rogue, []string{"signed: ", "CN=ci", "fix: sign the image"}},
			{"USER root", e.root, []string{"non-root: ", "the image sets no USER", "fix: add USER"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				data := runData(t)
				r := e.run(t, ctx, data, tc.ref, "--", "id", "-u")
				if r.code != 2 || r.stdout != "" {
					t.Fatalf("want exit 2 and no output; got %v", r)
				}
				t.Logf("refusal:\n%s", r.stderr)
				for _, w := range tc.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
					}
				}
				assertNothingUnpacked(t, data)
			})
		}
		// With the trust policy alone the signatures decide.
		data := runData(t)
		r := bw(t, ctx, e.hostEnv, "run", "--data", data, "--trust-policy", e.trustPolicy, "--env", "prod", e.rogue, "--", "true")
		if r.code != 2 || !strings.Contains(r.stderr, "requires") {
			t.Fatalf("trust policy alone, wrong authority: %v", r)
		}
		assertNothingUnpacked(t, data)
		// Without either, nothing runs, and the error says what to do.
		r = bw(t, ctx, e.hostEnv, "run", "--data", data, e.app, "--", "true")
		if r.code != 2 || !strings.Contains(r.stderr, "--trust-policy") || !strings.Contains(r.stderr, "--insecure-skip-verify") {
			t.Fatalf("no policies: %v", r)
		}
		assertNothingUnpacked(t, data)
		// Unless told to run it unchecked, loudly.
		r = bw(t, ctx, e.hostEnv, "run", "--data", data, "--insecure-skip-verify", e.unsigned, "--", "id", "-u")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "1000" || !strings.Contains(r.stderr, "without checking") {
			t.Fatalf("--insecure-skip-verify: %v", r)
		}
	})

	t.Run("inventory", func(t *testing.T) {
		data := runData(t)
		host, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		report := func(env []string, args ...string) []map[string]any {
			t.Helper()
			r := bw(t, ctx, env, append([]string{"report", "--running", "--server", e.srv.url(), "--output", "json"}, args...)...)
			if r.code != 0 {
				t.Fatalf("report --running: %v", r)
			}
			var recs []map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil {
				t.Fatalf("report --running output: %v\n%s", err, r.stdout)
			}
			return recs
		}
		r := e.run(t, ctx, data, "-d", "--name", "inv-web", "--report-to", e.srv.url(), e.app, "--", "sleep", "300")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "inv-web" {
			t.Fatalf("run -d: %v", r)
		}
		// It runs under its supervisor.
		if r := bw(t, ctx, e.hostEnv, "ps", "--data", data, "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"supervised": true`) ||
			!strings.Contains(r.stdout, `"status": "running"`) {
			t.Fatalf("ps of a detached container: %v", r)
		}
		for _, who := range []struct {
			name string
			env  []string
			args []string
		}{{"admin", e.adminEnv, []string{"--username", "admin"}}, {"the host robot", e.hostEnv, nil}} {
			recs := report(who.env, who.args...)
			if len(recs) != 1 {
				t.Fatalf("%s: report --running lists %d containers, want 1: %v", who.name, len(recs), recs)
			}
			got := recs[0]
			if got["container"] != "inv-web" || got["host"] != host || got["digest"] != e.appDigest || got["environment"] != "prod" ||
				got["reporter"] != e.robot || got["image"] != e.app {
				t.Errorf("%s: running record %v", who.name, got)
			}
			if d, _ := got["decision"].(map[string]any); d["verification"] != "policy" || d["id"] == "" {
				t.Errorf("%s: decision %v", who.name, got["decision"])
			}
		}
		// The server's data directory answers too, while the server runs.
		r = bw(t, ctx, serverEnv(), "report", "--running", "--data", e.srv.dataDir, "--output", "json")
		if r.code != 0 || !strings.Contains(r.stdout, `"container": "inv-web"`) {
			t.Errorf("report --running --data: %v", r)
		}
		// The text form names the host and the container.
		r = bw(t, ctx, e.adminEnv, "report", "--running", "--server", e.srv.url(), "--username", "admin")
		if r.code != 0 || !strings.Contains(r.stdout, "inv-web") || !strings.Contains(r.stdout, host) {
			t.Errorf("report --running (text): %v", r)
		}

		if r = bw(t, ctx, e.hostEnv, "stop", "--data", data, "--time", "2s", "inv-web"); r.code != 0 {
			t.Fatalf("stop: %v", r)
		}
		if recs := report(e.adminEnv, "--username", "admin"); len(recs) != 0 {
			t.Fatalf("after stop, report --running lists %v", recs)
		}

		// A detached container that exits on its own: its supervisor
		// records the exit status and reports the stop with it; ps shows
		// it and keeps listing the container until bulwark stop.
		r = e.run(t, ctx, data, "-d", "--name", "inv-short", "--report-to", e.srv.url(), e.app, "--", "sh", "-c", "sleep 1; exit 3")
		if r.code != 0 {
			t.Fatalf("run -d: %v", r)
		}
		if recs := report(e.adminEnv, "--username", "admin"); len(recs) != 1 || recs[0]["container"] != "inv-short" {
			t.Fatalf("after run -d, report --running lists %v", recs)
		}
		waitUntil(t, "inv-short's stop to be reported", func() bool {
			return len(report(e.adminEnv, "--username", "admin")) == 0
		})
		r = bw(t, ctx, e.hostEnv, "ps", "--data", data, "-o", "json")
		var sts []struct {
			Name       string
			Status     string
			Supervised bool
			Exit       *struct{ Code int }
		}
		if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil || len(sts) != 1 || sts[0].Status != "stopped" || sts[0].Exit == nil ||
			sts[0].Exit.Code != 3 || sts[0].Supervised {
			t.Fatalf("ps -o json after the exit: %v %v", err, r)
		}
		if r = bw(t, ctx, e.hostEnv, "ps", "--data", data); r.code != 0 || !strings.Contains(r.stdout, "exited (3)") || r.stderr != "" {
			t.Fatalf("ps: %v", r)
		}
		stopEvents := func(container string) []map[string]any {
			t.Helper()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.url()+"/inventory/v1/events?container="+container, nil)
			req.SetBasicAuth("admin", adminPassword)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var evs []map[string]any
			json.NewDecoder(resp.Body).Decode(&evs)
			var stops []map[string]any
			for _, ev := range evs {
				if ev["kind"] == "stop" {
					stops = append(stops, ev)
				}
			}
			return stops
		}
		if stops := stopEvents("inv-short"); len(stops) != 1 || stops[0]["exitCode"] != float64(3) {
			t.Fatalf("stop events of inv-short: %v", stops)
		}
		if r = bw(t, ctx, e.hostEnv, "stop", "--data", data, "inv-short"); r.code != 0 {
			t.Fatalf("stop: %v", r)
		}
		if stops := stopEvents("inv-short"); len(stops) != 1 {
			t.Fatalf("bulwark stop reported the stop again: %v", stops)
		}

		// An attached run reports its start and, with the exit code, its stop.
		r = e.run(t, ctx, data, "--name", "inv-once", "--report-to", e.srv.url(), e.app, "--", "sh", "-c", "exit 3")
		if r.code != 3 {
			t.Fatalf("attached run: %v", r)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.url()+"/inventory/v1/events?container=inv-once", nil)
		req.SetBasicAuth("admin", adminPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var evs []struct {
			Kind     string `json:"kind"`
			ExitCode *int   `json:"exitCode"`
			Reporter string `json:"reporter"`
		}
		body, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(body, &evs); err != nil || len(evs) != 2 || evs[0].Kind != "stop" || evs[1].Kind != "start" ||
			evs[0].ExitCode == nil || *evs[0].ExitCode != 3 || evs[0].Reporter != e.robot {
			t.Fatalf("events of the attached run: %v %s", err, body)
		}
	})
}

// runData is a data directory for bulwark run: its parents are made
// traversable (the testing package makes them 0700), since the runtime
// resolves the rootfs as the container's mapped root. Containers left
// behind by a failed test are stopped.
func runData(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := runCmd(ctx, serverEnv(), bulwarkBin, "ps", "--data", d, "--output", "json")
		var sts []struct{ Name string }
		if err != nil || json.Unmarshal([]byte(out), &sts) != nil {
			return
		}
		for _, s := range sts {
			if _, err := runCmd(ctx, serverEnv(), bulwarkBin, "stop", "--data", d, "--time", "1s", s.Name); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})
	return d
}

// assertNothingUnpacked: a refused run wrote nothing to the layer cache
// (the cache directory does not even exist in a fresh data directory).
func assertNothingUnpacked(t *testing.T, data string) {
	t.Helper()
	var found []string
	filepath.WalkDir(filepath.Join(data, "cache"), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			found = append(found, p)
		}
		return nil
	})
	if len(found) > 0 {
		t.Fatalf("a refused run touched the layer cache: %v", found)
	}
}

// BenchmarkRunVerified is issue 6's start-up benchmark: `bulwark run` of a
// cached, verified image running /bin/true (the whole CLI: the reference
// resolved, the admission made, the cached rootfs mounted, the bundle
// generated, runc run, cleanup) against `runc run` of the identical
// generated bundle, alternating within each iteration so load from other
// processes hits both alike. Two cases:
//
//	admission=cached   the same run a moment ago was admitted, so the
//	                   admission is reused (DATA/admissions, one minute);
//	admission=decided  the policy file changes before every run, so every
//	                   run loads both policies, fetches and verifies the
//	                   signatures and approvals and decides.
//
// It reports the medians and the median of the per-iteration difference
// (extra-p50-ms). Each iteration also runs `bulwark version`: its median
// (version-p50-ms) is the binary's own start-up and exit, which no change
// to the runner can remove, and work-p50-ms is the median of what remains
// of the difference once that is taken off (resolve, admission, mount,
// bundle, cleanup). Run with
//
//	go test ./test/e2e -run '^$' -bench RunVerified -benchtime 30x
func BenchmarkRunVerified(b *testing.B) {
	e := newRunEnv(b)
	ctx := context.Background()
	data := runData(b)
	if r := e.run(b, ctx, data, e.app, "--", "/bin/true"); r.code != 0 { // fills the layer cache
		b.Fatalf("warm-up: %v", r)
	}

	// The bundle bulwark run generates for the same image and command,
	// built with the same packages over the same cache.
	store, err := runner.OpenStore(data)
	if err != nil {
		b.Fatal(err)
	}
	m := &runner.Manager{Store: store, Runtime: &runner.Runtime{Path: "runc", Root: store.RuntimeRoot()}}
	ids := runner.IDMap{HostBase: runner.DefaultIDMapHostBase, Size: runner.DefaultIDMapSize}
	cache, err := unpack.Open(filepath.Join(data, "cache"), unpack.Options{
		IDs: unpack.IDMap{UIDBase: ids.HostBase, GIDBase: ids.HostBase, Size: ids.Size}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ref, err := oci.ParseImageRef(e.app)
	if err != nil {
		b.Fatal(err)
	}
	creds, err := remote.DockerConfigCredentials(filepath.Join(e.hostDockerConfig, "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	client := remote.New(remote.Options{Credentials: creds})
	img, err := runner.Fetch(ctx, client, ref)
	if err != nil {
		b.Fatal(err)
	}
	rootfs, err := img.Rootfs(ctx, cache, client)
	if err != nil {
		b.Fatal(err)
	}
	c, err := m.Prepare(ctx, runner.RunRequest{Options: runner.Options{Name: "bench-bundle", Image: img.Config.Config,
		Args: []string{"/bin/true"}, IDMap: ids}, Rootfs: rootfs})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Remove(c) })
	orig, err := os.ReadFile(e.policy)
	if err != nil {
		b.Fatal(err)
	}

	i := 0
	for _, decided := range []bool{false, true} {
		name := "admission=cached"
		if decided {
			name = "admission=decided"
		}
		b.Run(name, func(b *testing.B) {
			pol := filepath.Join(b.TempDir(), "policy.yaml")
			writeRunFile(b, pol, string(orig))
			args := []string{"run", "--data", data, "--trust-policy", e.trustPolicy, "--policy", pol, "--env", "prod", "--name", "", e.app, "--", "/bin/true"}
			var runcDs, bulwarkDs, diffs, versionDs, work []time.Duration
			for b.Loop() {
				i++
				start := time.Now()
				if r := bw(b, ctx, e.hostEnv, "version"); r.code != 0 {
					b.Fatalf("bulwark version: %v", r)
				}
				versionDs = append(versionDs, time.Since(start))

				start = time.Now()
				cmd := exec.Command("runc", "--root", store.RuntimeRoot(), "run", "--bundle", c.BundleDir(), fmt.Sprintf("bench-runc-%d", i))
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("runc run: %v\n%s", err, out)
				}
				runc := time.Since(start)

				if decided {
					writeRunFile(b, pol, fmt.Sprintf("%s# run %d\n", orig, i))
				}
				args[len(args)-4] = fmt.Sprintf("bench-%d", i)
				start = time.Now()
				r := bw(b, ctx, e.hostEnv, args...)
				full := time.Since(start)
				if r.code != 0 || strings.Contains(r.stderr, "(cached") == decided {
					b.Fatalf("bulwark run (decided %v): %v", decided, r)
				}
				runcDs, bulwarkDs, diffs = append(runcDs, runc), append(bulwarkDs, full), append(diffs, full-runc)
				work = append(work, full-runc-versionDs[len(versionDs)-1])
			}
			b.ReportMetric(p50(runcDs), "runc-p50-ms")
			b.ReportMetric(p50(bulwarkDs), "bulwark-p50-ms")
			b.ReportMetric(p50(diffs), "extra-p50-ms")
			b.ReportMetric(p50(versionDs), "version-p50-ms")
			b.ReportMetric(p50(work), "work-p50-ms")
		})
	}
}

func p50(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}
