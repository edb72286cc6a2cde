package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// notationBin finds the notation CLI that scripts/test.sh builds
// (NOTATION_BIN). Under CI its absence is a failure, not a skip.
func notationBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NOTATION_BIN"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("notation"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("notation CLI not found: scripts/test.sh builds it and sets NOTATION_BIN")
	}
	t.Skip("notation CLI not found (set NOTATION_BIN; scripts/test.sh builds it)")
	return ""
}

// TestNotationThroughRegistry checks interoperability with the Notary
// Project's own CLI through a bulwark registry, both ways: notation
// verifies what `bulwark sign` pushed, and `bulwark verify` accepts what
// `notation sign` pushed, with keys from `bulwark pki`. (The registry runs
// without authentication here: notation's login flow is not what is under
// test.)
func TestNotationThroughRegistry(t *testing.T) {
	notation := notationBin(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv := startServer(t)
	dir := t.TempDir()
	env := append(serverEnv(), "DOCKER_CONFIG="+filepath.Join(dir, "docker"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg"))
	run := func(bin string, args ...string) string {
		t.Helper()
		out, err := runCmd(ctx, env, bin, args...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
		}
		return out
	}

	ca, keys := filepath.Join(dir, "ca"), filepath.Join(dir, "keys")
	run(bulwarkBin, "pki", "init", "--dir", ca, "--org", "Example", "--country", "US", "--state", "WA")
	run(bulwarkBin, "pki", "issue", "--ca", ca, "--name", "ci", "--subject", "C=US, ST=WA, O=Example, CN=ci",
		"--uri", "https://ci.example.com/signer", "--out", keys)

	// notation's configuration: the bulwark root as a trust store, a strict
	// policy naming the ci identity, and the bulwark-issued key for signing.
	cfg := filepath.Join(dir, "xdg", "notation")
	store := filepath.Join(cfg, "truststore", "x509", "ca", "bulwark")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	root, _ := os.ReadFile(filepath.Join(ca, "root.crt"))
	files := map[string]string{
		filepath.Join(store, "root.crt"): string(root),
		filepath.Join(cfg, "trustpolicy.json"): `{"version":"1.0","trustPolicies":[{"name":"all","registryScopes":["*"],
 "signatureVerification":{"level":"strict","override":{"revocation":"skip"}},
 "trustStores":["ca:bulwark"],"trustedIdentities":["x509.subject: C=US, ST=WA, O=Example, CN=ci"]}]}`,
		filepath.Join(cfg, "signingkeys.json"): `{"default":"ci","keys":[{"name":"ci","keyPath":"` +
			filepath.Join(keys, "ci.key") + `","certPath":"` + filepath.Join(keys, "ci.crt") + `"}]}`,
		filepath.Join(dir, "trust.yaml"): `version: 1
authorities:
  - name: ci
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=ci"]
environments:
  - name: dev
    repositories: ["e2e/**"]
    require: [ci]
`,
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	sk := newSkopeo(t)
	for _, repo := range []string{"e2e/by-bulwark", "e2e/by-notation"} {
		img, err := testimage.Busybox(ctx, t.TempDir(), testimage.WithLabel("repo", repo))
		if err != nil {
			t.Fatal(err)
		}
		sk.push(t, ctx, img, srv.ref(repo, "v1"), "--preserve-digests")
		byDigest := srv.addr + "/" + repo + "@" + img.ManifestDigest.String()
		policy := filepath.Join(dir, "trust.yaml")
		if repo == "e2e/by-bulwark" {
			run(bulwarkBin, "sign", srv.ref(repo, "v1"), "--key", filepath.Join(keys, "ci.key"), "--cert", filepath.Join(keys, "ci.crt"))
			if out := run(notation, "verify", "--insecure-registry", byDigest); !strings.Contains(out, "Successfully verified") {
				t.Fatalf("notation verify of a bulwark signature:\n%s", out)
			}
		} else {
			if out, err := runCmd(ctx, env, bulwarkBin, "verify", srv.ref(repo, "v1"), "--trust-policy", policy, "--env", "dev"); err == nil {
				t.Fatalf("bulwark verify passed before notation signed:\n%s", out)
			}
			run(notation, "sign", "--insecure-registry", byDigest)
			if out := run(bulwarkBin, "verify", srv.ref(repo, "v1"), "--trust-policy", policy, "--env", "dev"); !strings.Contains(out, "SATISFIED") {
				t.Fatalf("bulwark verify of a notation signature:\n%s", out)
			}
		}
	}
}
