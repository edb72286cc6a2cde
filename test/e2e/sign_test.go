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

// TestSignAndVerify: a private PKI, two signing identities, and a trust
// policy requiring CI for dev and CI plus security for prod; images are
// signed by digest into an authenticated bulwark and verified against the
// policy with the real binary, credentials taken from a Docker config.
func TestSignAndVerify(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv := startAuthServer(t, adminPassword)
	dir := t.TempDir()

	// Docker's credential file, as `docker login` leaves it.
	dockerCfg := filepath.Join(dir, "docker")
	os.MkdirAll(dockerCfg, 0o700)
	auth := base64.StdEncoding.EncodeToString([]byte("admin:" + adminPassword))
	os.WriteFile(filepath.Join(dockerCfg, "config.json"),
		fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, srv.addr, auth), 0o600)
	env := append(serverEnv(), "DOCKER_CONFIG="+dockerCfg)
	bw := func(args ...string) (string, error) { return runCmd(ctx, env, bulwarkBin, args...) }
	mustBW := func(args ...string) string {
		t.Helper()
		out, err := bw(args...)
		if err != nil {
			t.Fatalf("bulwark %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	img, err := testimage.Busybox(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sk := newSkopeo(t)
	sk.push(t, ctx, img, srv.ref("e2e/app", "v1"), "--dest-creds", "admin:"+adminPassword, "--preserve-digests")
	ref := srv.ref("e2e/app", "v1")

	ca, keys := filepath.Join(dir, "ca"), filepath.Join(dir, "keys")
	mustBW("pki", "init", "--dir", ca, "--org", "Example", "--country", "US", "--state", "WA")
	for _, who := range []string{"ci", "security"} {
		mustBW("pki", "issue", "--ca", ca, "--name", who, "--subject", "C=US, ST=WA, O=Example, CN="+who,
			"--uri", "https://"+who+".example.com/signer", "--out", keys)
	}
	policy := filepath.Join(dir, "trust.yaml")
	os.WriteFile(policy, []byte(`version: 1
authorities:
  - name: ci
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=ci"]
    repositories: ["e2e/**"]
  - name: security
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=security"]
environments:
  - name: dev
    repositories: ["e2e/**"]
    require: [ci]
  - name: prod
    repositories: ["e2e/**"]
    require: {threshold: 2, of: [ci, security]}
`), 0o600)

	verify := func(envName string) (bool, string) {
		out, err := bw("verify", ref, "--trust-policy", policy, "--env", envName, "--output", "json")
		var res struct {
			Digest   string
			Decision struct {
				Allowed    bool
				Signatures []struct {
					Authority string
					Counted   bool
				}
			}
		}
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
			t.Fatalf("verify --env %s: %v\n%s", envName, jerr, out)
		}
		if res.Digest != img.ManifestDigest.String() {
			t.Fatalf("verify resolved %s, pushed %s", res.Digest, img.ManifestDigest)
		}
		if (err == nil) != res.Decision.Allowed {
			t.Fatalf("verify --env %s: exit %v but allowed=%v", envName, err, res.Decision.Allowed)
		}
		return res.Decision.Allowed, out
	}

	if ok, out := verify("dev"); ok {
		t.Fatalf("an unsigned image satisfied dev:\n%s", out)
	}
	mustBW("sign", ref, "--key", filepath.Join(keys, "ci.key"), "--cert", filepath.Join(keys, "ci.crt"), "--annotation", "build=42")
	if ok, out := verify("dev"); !ok {
		t.Fatalf("signed by ci, dev not satisfied:\n%s", out)
	}
	if ok, out := verify("prod"); ok {
		t.Fatalf("prod satisfied by ci alone:\n%s", out)
	}
	// The same authority twice does not make two.
	mustBW("sign", ref, "--key", filepath.Join(keys, "ci.key"), "--cert", filepath.Join(keys, "ci.crt"), "--signature-format", "cose")
	if ok, out := verify("prod"); ok {
		t.Fatalf("prod satisfied by two ci signatures:\n%s", out)
	}
	mustBW("sign", ref, "--key", filepath.Join(keys, "security.key"), "--cert", filepath.Join(keys, "security.crt"))
	ok, out := verify("prod")
	if !ok {
		t.Fatalf("signed by ci and security, prod not satisfied:\n%s", out)
	}
	if n := strings.Count(out, `"counted": true`); n < 2 {
		t.Fatalf("prod counted %d signatures:\n%s", n, out)
	}
	// Text output explains every signature.
	text, err := bw("verify", ref, "--trust-policy", policy, "--env", "prod")
	if err != nil || !strings.Contains(text, "SATISFIED") || strings.Count(text, "\n  ") < 3 {
		t.Fatalf("text output: %v\n%s", err, text)
	}

	// A revoked signer stops counting.
	os.WriteFile(policy, []byte(strings.Replace(string(must(os.ReadFile(policy))),
		`identities: ["C=US, ST=WA, O=Example, CN=security"]`,
		"identities: [\"C=US, ST=WA, O=Example, CN=security\"]\n    crls: [ca/root.crl]", 1)), 0o600)
	mustBW("pki", "revoke", "--ca", ca, filepath.Join(keys, "security.crt"))
	if ok, out := verify("prod"); ok {
		t.Fatalf("prod satisfied with a revoked security certificate:\n%s", out)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
