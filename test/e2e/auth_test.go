package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

const adminPassword = "e2e-admin-password"

// admin runs `bulwark admin …` against the server's data directory while
// the server runs, as an operator would.
func (s *server) admin(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCmd(t.Context(), serverEnv(), bulwarkBin, append([]string{"admin", "--data", s.dataDir}, args...)...)
	if err != nil {
		t.Fatalf("bulwark admin %v: %v", args, err)
	}
	return out
}

// robot creates a robot and returns its secret.
func (s *server) robot(t *testing.T, name string, extra ...string) string {
	t.Helper()
	out := s.admin(t, append([]string{"robot", "create", name, "--output", "json"}, extra...)...)
	var r struct{ Name, Secret string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Name != name || r.Secret == "" {
		t.Fatalf("robot create %s: %v\n%s", name, err, out)
	}
	return r.Secret
}

// token gets a token for scope from the token service the registry points
// at, as a client library would.
func (s *server) token(t *testing.T, user, secret, scope string) string {
	t.Helper()
	q := url.Values{"service": {"bulwark"}, "scope": {scope}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url()+"/token?"+q.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token for %s %s: %s %v", user, scope, resp.Status, err)
	}
	return tr.Token
}

func (s *server) auditEvents(t *testing.T) []map[string]any {
	t.Helper()
	out, err := runCmd(t.Context(), serverEnv(), bulwarkBin, "audit", "--data", s.dataDir, "--output", "json")
	if err != nil {
		t.Fatalf("bulwark audit: %v\n%s", err, out)
	}
	var events []map[string]any
	if err := json.Unmarshal([]byte(out), &events); err != nil {
		t.Fatalf("bulwark audit output: %v\n%s", err, out)
	}
	return events
}

func hasEvent(events []map[string]any, who, action, repo, outcome string) bool {
	return slices.ContainsFunc(events, func(e map[string]any) bool {
		return e["who"] == who && e["action"] == action && (repo == "" || e["repository"] == repo) && e["outcome"] == outcome
	})
}

// TestSkopeoCredentialsAndGrants: robots push and pull within their grants
// and nowhere else, anonymous pulls only where allowed, rotation and removal
// cut access at once, the catalog shows each caller only what it may read,
// and all of it lands in a verifiable audit log.
func TestSkopeoCredentialsAndGrants(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv := startServerEnv(t, []string{"BULWARK_ADMIN_PASSWORD=" + adminPassword, "BULWARK_AUTH_ANONYMOUS_PULL=public/*"})
	sk := newSkopeo(t)
	img, err := testimage.Busybox(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ci := srv.robot(t, "ci", "--grant", "team/*:pull,push")
	reader := srv.robot(t, "reader", "--grant", "team/*:pull")

	push := func(creds, ref string) error {
		args := []string{"copy", "--dest-tls-verify=false"}
		if creds != "" {
			args = append(args, "--dest-creds", creds)
		}
		_, err := sk.run(ctx, append(args, img.OCIRef(), "docker://"+ref)...)
		return err
	}
	inspect := func(creds, ref string) error {
		args := []string{"inspect", "--tls-verify=false"}
		if creds != "" {
			args = append(args, "--creds", creds)
		}
		_, err := sk.run(ctx, append(args, "docker://"+ref)...)
		return err
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	mustFail := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded; it must be refused", what)
		}
	}

	must("ci pushes team/app", push("ci:"+ci, srv.ref("team/app", "v1")))
	must("reader pulls team/app", inspect("reader:"+reader, srv.ref("team/app", "v1")))
	mustFail("reader pushes team/app", push("reader:"+reader, srv.ref("team/app", "v2")))
	mustFail("ci pushes outside its grant", push("ci:"+ci, srv.ref("prod/app", "v1")))
	mustFail("anonymous push", push("", srv.ref("public/tool", "v1")))
	mustFail("anonymous pull of team/app", inspect("", srv.ref("team/app", "v1")))
	mustFail("wrong secret", inspect("reader:"+reader+"x", srv.ref("team/app", "v1")))

	must("admin pushes public/tool", push("admin:"+adminPassword, srv.ref("public/tool", "v1")))
	must("anonymous pull of public/*", inspect("", srv.ref("public/tool", "v1")))

	// The catalog shows each caller only the repositories it may read.
	catalog := func(user, secret string) []string {
		tok := srv.token(t, user, secret, "registry:catalog:*")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url()+"/v2/_catalog", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c struct{ Repositories []string }
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &c); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("catalog for %s: %s %s", user, resp.Status, b)
		}
		return c.Repositories
	}
	if got := catalog("reader", reader); !slices.Equal(got, []string{"public/tool", "team/app"}) {
		t.Errorf("reader's catalog = %v, want [public/tool team/app]", got)
	}
	if got := catalog("admin", adminPassword); !slices.Contains(got, "team/app") || !slices.Contains(got, "public/tool") {
		t.Errorf("admin's catalog = %v", got)
	}

	// A token for one repository does not open another.
	tok := srv.token(t, "reader", reader, "repository:team/app:pull")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url()+"/v2/public/tool/tags/list", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("team/app token used on public/tool: %v %v", err, resp.Status)
	}

	// Signing-key rotation while the server runs: tokens signed before keep
	// working until they expire, tokens signed after use the new key.
	get := func(tok, path string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	before := srv.token(t, "reader", reader, "repository:team/app:pull")
	srv.admin(t, "keys", "rotate")
	time.Sleep(1200 * time.Millisecond) // the server re-reads the key directory at most once a second
	after := srv.token(t, "reader", reader, "repository:team/app:pull")
	if before == after {
		t.Fatal("same token before and after rotation")
	}
	for name, tok := range map[string]string{"signed before rotation": before, "signed after rotation": after} {
		if code := get(tok, "/v2/team/app/tags/list"); code != http.StatusOK {
			t.Errorf("token %s: %d", name, code)
		}
	}
	if keys := srv.admin(t, "keys", "list"); strings.Count(keys, "\n") != 2 || !strings.Contains(keys, "retired") {
		t.Errorf("keys after one rotation:\n%s", keys)
	}

	// The admin API through the server, as an administrator only.
	remote := func(env []string, args ...string) (string, error) {
		return runCmd(ctx, append(serverEnv(), env...), bulwarkBin, append([]string{"admin", "--server", srv.url()}, args...)...)
	}
	if out, err := remote([]string{"BULWARK_PASSWORD=" + adminPassword}, "--username", "admin", "robot", "list"); err != nil || !strings.Contains(out, "reader") {
		t.Fatalf("admin robot list via the server: %v\n%s", err, out)
	}
	if out, err := remote([]string{"BULWARK_PASSWORD=wrong"}, "--username", "admin", "robot", "list"); err == nil {
		t.Fatalf("admin API with a wrong password succeeded:\n%s", out)
	}
	if out, err := remote([]string{"BULWARK_PASSWORD=" + ci}, "--username", "ci", "robot", "list"); err == nil {
		t.Fatalf("admin API as a robot succeeded:\n%s", out)
	}
	// gc and fsck through the server need an administrator too.
	maint := func(env []string, args ...string) (string, error) {
		return runCmd(ctx, append(serverEnv(), env...), bulwarkBin, append(args, "--server", srv.url())...)
	}
	if out, err := maint(nil, "gc", "--dry-run"); err == nil {
		t.Fatalf("gc through the server without credentials succeeded:\n%s", out)
	}
	if out, err := maint([]string{"BULWARK_PASSWORD=" + adminPassword}, "fsck", "--username", "admin"); err != nil || !strings.Contains(out, "0 problems") {
		t.Fatalf("fsck through the server as admin: %v\n%s", err, out)
	}
	adminTok := srv.token(t, "admin", adminPassword, "")
	if out, err := runCmd(ctx, append(serverEnv(), "BULWARK_TOKEN="+adminTok), bulwarkBin,
		"audit", "--server", srv.url(), "--who", "reader", "--output", "json"); err != nil || !strings.Contains(out, `"who": "reader"`) && !strings.Contains(out, `"who":"reader"`) {
		t.Fatalf("audit via the server with an admin token: %v\n%s", err, out)
	}

	// Rotation and removal take effect immediately.
	out := srv.admin(t, "robot", "rotate", "ci", "--output", "json")
	var rotated struct{ Secret string }
	json.Unmarshal([]byte(out), &rotated)
	mustFail("ci with its rotated-out secret", push("ci:"+ci, srv.ref("team/app", "v3")))
	must("ci with its new secret", push("ci:"+rotated.Secret, srv.ref("team/app", "v3")))
	srv.admin(t, "robot", "rm", "reader")
	mustFail("removed robot", inspect("reader:"+reader, srv.ref("team/app", "v1")))

	events := srv.auditEvents(t)
	for _, want := range [][4]string{
		{"ci", "push", "team/app", "ok"},
		{"reader", "pull", "team/app", "ok"},
		{"reader", "denied", "team/app", "denied"},
		{"anonymous", "pull", "public/tool", "ok"},
		{"ci", "login", "", "failed"},
	} {
		if !hasEvent(events, want[0], want[1], want[2], want[3]) {
			t.Errorf("audit log has no %v event", want)
		}
	}
	if out, err := runCmd(ctx, serverEnv(), bulwarkBin, "audit", "verify", "--data", srv.dataDir); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

// TestDockerLoginTLS: docker login, push and pull against bulwark serving
// HTTPS from its own local CA, which the test's dockerd trusts through a
// certs.d directory; a pull-only robot cannot push.
func TestDockerLoginTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	srv := startAuthServer(t, adminPassword, "--tls", "auto")
	ci := srv.robot(t, "ci", "--grant", "e2e/*:pull,push")
	host := srv.robot(t, "host", "--grant", "e2e/*:pull", "--env", "prod")

	// dockerd reads registry CAs from /etc/docker/certs.d/HOST:PORT.
	certsDir := filepath.Join("/etc/docker/certs.d", srv.addr)
	if err := os.MkdirAll(certsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(certsDir) })
	ca, err := os.ReadFile(filepath.Join(srv.dataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certsDir, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}

	d := startDockerd(t, ctx)
	sk := newSkopeo(t)
	img, err := testimage.Busybox(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	sk.mustRun(t, ctx, "copy", img.OCIRef(), "docker-archive:"+archive+":e2e/busybox:v1")
	d.mustRun(t, ctx, "load", "-i", archive)

	ref := srv.ref("e2e/app", "v1")
	if _, err := d.run(ctx, "push", ref); err == nil {
		t.Fatal("push before login succeeded")
	}
	d.mustRun(t, ctx, "login", srv.addr, "-u", "ci", "-p", ci)
	d.mustRun(t, ctx, "tag", "e2e/busybox:v1", ref)
	d.mustRun(t, ctx, "push", ref)
	d.mustRun(t, ctx, "logout", srv.addr)

	d.mustRun(t, ctx, "login", srv.addr, "-u", "host", "-p", host)
	d.mustRun(t, ctx, "rmi", ref)
	out := d.mustRun(t, ctx, "pull", ref)
	if !strings.Contains(out, "Digest: sha256:") {
		t.Errorf("docker pull output:\n%s", out)
	}
	other := srv.ref("e2e/app", "v2")
	d.mustRun(t, ctx, "tag", ref, other)
	if out, err := d.run(ctx, "push", other); err == nil {
		t.Fatalf("a pull-only robot pushed:\n%s", out)
	}
	if _, err := d.run(ctx, "login", srv.addr, "-u", "host", "-p", host+"wrong"); err == nil {
		t.Fatal("docker login with a wrong secret succeeded")
	}

	events := srv.auditEvents(t)
	for _, want := range [][4]string{
		{"ci", "push", "e2e/app", "ok"},
		{"host", "pull", "e2e/app", "ok"},
		{"host", "denied", "e2e/app", "denied"},
	} {
		if !hasEvent(events, want[0], want[1], want[2], want[3]) {
			t.Errorf("audit log has no %v event", want)
		}
	}

}
