package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// TestPolicyGate is issue 5's acceptance through real clients: a registry
// serving a trust policy (prod needs CI and the security team) and a rule
// policy (prod enforced, dev audited), pushed to and pulled from with
// skopeo and docker, signed with the real bulwark CLI.
//
//   - an unsigned image pushed to prod/** is quarantined;
//   - a host robot bound to prod cannot pull it signed by CI alone, and can
//     once the security team has signed too;
//   - skopeo and docker print the denial's rule and message;
//   - dev's audit mode allows and records what it would have refused;
//   - an exception lets an unsigned hotfix in until it expires, and stops
//     applying after.
func TestPolicyGate(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bw := func(env []string, args ...string) (string, error) { return runCmd(ctx, env, bulwarkBin, args...) }
	mustBW := func(env []string, args ...string) string {
		t.Helper()
		out, err := bw(env, args...)
		if err != nil {
			t.Fatalf("bulwark %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	ca, keys := filepath.Join(dir, "ca"), filepath.Join(dir, "keys")
	mustBW(serverEnv(), "pki", "init", "--dir", ca, "--org", "Example", "--country", "US", "--state", "WA")
	for _, who := range []string{"ci", "security"} {
		mustBW(serverEnv(), "pki", "issue", "--ca", ca, "--name", who, "--subject", "C=US, ST=WA, O=Example, CN="+who,
			"--uri", "https://"+who+".example.com/signer", "--out", keys)
	}
	trustPolicy := filepath.Join(dir, "trust.yaml")
	writeFile(t, trustPolicy, `version: 1
authorities:
  - name: ci
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=ci"]
  - name: security
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=security"]
environments:
  - name: dev
    repositories: ["team/**"]
    require: [ci]
  - name: prod
    repositories: ["prod/**"]
    require: {threshold: 2, of: [ci, security]}
`)
	// The exception must still be valid while the hotfix is pushed, a few
	// seconds from now, and expire while the test runs.
	expires := time.Now().Add(40 * time.Second).UTC().Truncate(time.Second)
	rulePolicy := filepath.Join(dir, "policy.yaml")
	writeFile(t, rulePolicy, fmt.Sprintf(`version: 1
bindings:
  - name: prod
    environments: [prod]
    repositories: ["prod/**"]
    actions: [push, pull]
    rules: [signed]
    mode: enforce
  - name: dev
    environments: [dev]
    repositories: ["team/**"]
    actions: [push, pull]
    rules: [signed, non-root]
    mode: audit
exceptions:
  - id: hotfix-unsigned
    repositories: ["prod/hotfix"]
    rules: [signed]
    reason: emergency fix ahead of the signing pipeline (INC-42)
    requested_by: alice
    approved_by: bob
    expires: %s
`, expires.Format(time.RFC3339)))

	srv := startAuthServer(t, adminPassword, "--trust-policy", trustPolicy, "--policy", rulePolicy)
	adminCreds := "admin:" + adminPassword
	sk := newSkopeo(t)
	img, err := testimage.Busybox(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	digest := img.ManifestDigest.String()

	// The hotfix first, while its exception is valid.
	sk.push(t, ctx, img, srv.ref("prod/hotfix", "v1"), "--dest-creds", adminCreds, "--preserve-digests")
	sk.push(t, ctx, img, srv.ref("prod/app", "v1"), "--dest-creds", adminCreds, "--preserve-digests")
	sk.push(t, ctx, img, srv.ref("team/app", "v1"), "--dest-creds", adminCreds, "--preserve-digests")

	quarantined := func() []string {
		t.Helper()
		// The quarantine lives in the server's metadata: ask the server.
		out := mustBW(append(serverEnv(), "BULWARK_PASSWORD="+adminPassword), "admin", "quarantine", "list",
			"--server", srv.url(), "--username", "admin", "--output", "json")
		var recs []struct {
			Repository string `json:"repository"`
			Digest     string `json:"digest"`
		}
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			t.Fatalf("quarantine list: %v\n%s", err, out)
		}
		var names []string
		for _, r := range recs {
			names = append(names, r.Repository+"@"+r.Digest)
		}
		return names
	}
	if q := quarantined(); len(q) != 1 || q[0] != "prod/app@"+digest {
		t.Fatalf("quarantined %v, want only prod/app@%s (prod/hotfix is excepted, team/app audited)", q, digest)
	}

	host := srv.robot(t, "web1", "--grant", "prod/**:pull", "--grant", "team/**:pull", "--env", "prod")
	hostCreds := "web1:" + host
	var pullAs func(creds, repo string) (string, error)
	// pull returns what skopeo printed, errors included (what its user sees).
	pull := func(repo string) (string, error) { return pullAs(hostCreds, repo) }
	pullAs = func(creds, repo string) (string, error) {
		out, err := sk.run(ctx, "copy", "--src-tls-verify=false", "--src-creds", creds, "docker://"+srv.ref(repo, "v1"), "oci:"+filepath.Join(t.TempDir(), "out")+":v1")
		if err != nil {
			out += err.Error()
		}
		return out, err
	}
	out, err := pull("prod/app")
	if err == nil || !strings.Contains(out, "signed") {
		t.Fatalf("prod host pulled an unsigned, quarantined image (or the denial does not name the rule): %v\n%s", err, out)
	}

	// Signatures are pushed as the admin, credentials from a Docker config.
	dockerCfg := filepath.Join(dir, "docker")
	os.MkdirAll(dockerCfg, 0o700)
	writeFile(t, filepath.Join(dockerCfg, "config.json"), fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`,
		srv.addr, base64.StdEncoding.EncodeToString([]byte(adminCreds))))
	signEnv := append(serverEnv(), "DOCKER_CONFIG="+dockerCfg)
	sign := func(who string) {
		t.Helper()
		mustBW(signEnv, "sign", srv.ref("prod/app", "v1"), "--key", filepath.Join(keys, who+".key"), "--cert", filepath.Join(keys, who+".crt"))
	}

	sign("ci")
	if q := quarantined(); len(q) != 1 {
		t.Fatalf("signed by ci alone, quarantine is %v; prod needs ci and security", q)
	}
	out, err = pull("prod/app")
	if err == nil || !strings.Contains(out, "signed") {
		t.Fatalf("prod host pulled an image signed by ci alone: %v\n%s", err, out)
	}

	sign("security")
	if q := quarantined(); len(q) != 0 {
		t.Fatalf("signed by ci and security, still quarantined: %v", q)
	}
	if out, err := pull("prod/app"); err != nil {
		t.Fatalf("prod host cannot pull an image signed by ci and security: %v\n%s", err, out)
	}

	// A host of prod pulls only what prod's bindings cover: prod enforces,
	// so everything else is denied by default.
	if out, err := pull("team/app"); err == nil || !strings.Contains(out, "no binding covers") {
		t.Fatalf("a prod host pulled team/app, which no prod binding covers: %v\n%s", err, out)
	}
	// Audit mode: allowed and recorded with what failed.
	devHost := "dev1:" + srv.robot(t, "dev1", "--grant", "team/**:pull", "--env", "dev")
	if out, err := pullAs(devHost, "team/app"); err != nil {
		t.Fatalf("dev is audit mode, yet the pull failed: %v\n%s", err, out)
	}
	var decisions []struct {
		Decision struct {
			Action  string `json:"action"`
			Allowed bool   `json:"allowed"`
			Mode    string `json:"mode"`
			Rules   []struct {
				ID     string `json:"id"`
				Result string `json:"result"`
			} `json:"rules"`
		} `json:"decision"`
	}
	out = mustBW(serverEnv(), "decisions", "--data", srv.dataDir, "--repo", "team/app", "--env", "dev", "--output", "json")
	if err := json.Unmarshal([]byte(out), &decisions); err != nil || len(decisions) == 0 {
		t.Fatalf("decisions for team/app: %v\n%s", err, out)
	}
	for _, d := range decisions {
		violated := map[string]bool{}
		for _, r := range d.Decision.Rules {
			violated[r.ID] = r.Result == "violated"
		}
		if !d.Decision.Allowed || d.Decision.Mode != "audit" || !violated["signed"] {
			t.Errorf("dev decision %+v: want allowed in audit mode with signed violated", d.Decision)
		}
	}
	if out := mustBW(serverEnv(), "decisions", "--data", srv.dataDir, "--denied", "--digest", digest); !strings.Contains(out, "prod/app") {
		t.Errorf("decisions --denied does not list the prod/app push:\n%s", out)
	}

	// The exception: the hotfix is pullable until it expires...
	if out, err := pull("prod/hotfix"); err != nil {
		t.Fatalf("prod host cannot pull the excepted hotfix before expiry: %v\n%s", err, out)
	}
	// ... and docker is ready to show the denial once it has.
	d := startDockerd(t, ctx)
	d.mustRun(t, ctx, "login", "-u", "web1", "-p", host, srv.addr)
	time.Sleep(time.Until(expires) + time.Second)
	out, err = pull("prod/hotfix")
	if err == nil || !strings.Contains(out, "signed") {
		t.Fatalf("the exception expired, yet the hotfix was pulled (or the denial does not name the rule): %v\n%s", err, out)
	}
	out, err = d.run(ctx, "pull", srv.ref("prod/hotfix", "v1"))
	if err != nil {
		out += err.Error()
	}
	if err == nil || !strings.Contains(out, "signed") {
		t.Fatalf("docker pull of a denied image: %v\n%s", err, out)
	}
	t.Logf("docker shows:\n%s", out)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
