package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// TestNotationDirTrustPolicy: one Notation configuration directory serves
// `notation verify` and `bulwark verify --trust-policy DIR`, and both reach
// the same verdicts: a statement scoped to one repository of the registry
// (host included) trusting CN=ci, and the "*" statement trusting only
// CN=release for everything else. Images are signed with `bulwark sign`
// using certificates from `bulwark pki`.
func TestNotationDirTrustPolicy(t *testing.T) {
	if os.Getenv("NOTATION_BIN") == "" {
		// Where scripts/test.sh leaves the notation it builds.
		if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".cache", "bulwark-ci", "bin", "notation-v1.3.2"); fileExists(p) {
				t.Setenv("NOTATION_BIN", p)
			}
		}
	}
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
	for _, who := range []string{"ci", "release", "rogue"} {
		run(bulwarkBin, "pki", "issue", "--ca", ca, "--name", who, "--subject", "C=US, ST=WA, O=Example, CN="+who, "--out", keys)
	}

	// The configuration directory notation reads through XDG_CONFIG_HOME.
	// trustpolicy.oci.json is what later Notation versions and bulwark
	// prefer; notation v1.3.2 reads trustpolicy.json, so both are there,
	// identical (bulwark refuses them if they differ).
	cfg := filepath.Join(dir, "xdg", "notation")
	store := filepath.Join(cfg, "truststore", "x509", "ca", "bulwark")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	root, err := os.ReadFile(filepath.Join(ca, "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	policy := `{
  "version": "1.0",
  "trustPolicies": [
    {
      "name": "e2e-app",
      "registryScopes": ["` + srv.addr + `/e2e/app"],
      "signatureVerification": {"level": "strict"},
      "trustStores": ["ca:bulwark"],
      "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Example, CN=ci"]
    },
    {
      "name": "everything-else",
      "registryScopes": ["*"],
      "signatureVerification": {"level": "strict"},
      "trustStores": ["ca:bulwark"],
      "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Example, CN=release"]
    }
  ]
}
`
	for path, content := range map[string]string{
		filepath.Join(store, "root.crt"):           string(root),
		filepath.Join(cfg, "trustpolicy.oci.json"): policy,
		filepath.Join(cfg, "trustpolicy.json"):     policy,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	sk := newSkopeo(t)
	for i, tc := range []struct {
		name, repo, signer string
		accepted           bool
		environment        string // the statement bulwark applies
	}{
		{"trusted identity in its scope", "e2e/app", "ci", true, "e2e-app"},
		{"identity outside trustedIdentities", "e2e/app", "rogue", false, "e2e-app"},
		{"identity of the other statement", "e2e/app", "release", false, "e2e-app"},
		{"wildcard statement", "e2e/tool", "release", true, "everything-else"},
		{"scoped identity outside its scope", "e2e/tool", "ci", false, "everything-else"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := testimage.Busybox(ctx, t.TempDir(), testimage.WithLabel("case", tc.name))
			if err != nil {
				t.Fatal(err)
			}
			tag := srv.ref(tc.repo, "v"+string(rune('1'+i)))
			sk.push(t, ctx, img, tag, "--preserve-digests")
			byDigest := srv.addr + "/" + tc.repo + "@" + img.ManifestDigest.String()
			run(bulwarkBin, "sign", tag, "--key", filepath.Join(keys, tc.signer+".key"), "--cert", filepath.Join(keys, tc.signer+".crt"))

			out, err := runCmd(ctx, env, notation, "verify", "--insecure-registry", byDigest)
			if notationOK := err == nil && strings.Contains(out, "Successfully verified"); notationOK != tc.accepted {
				t.Errorf("notation verify: accepted %v, want %v: %v\n%s", notationOK, tc.accepted, err, out)
			}

			out, err = runCmd(ctx, env, bulwarkBin, "verify", byDigest, "--trust-policy", cfg, "--output", "json")
			var res struct {
				Decision struct {
					Allowed     bool   `json:"allowed"`
					Environment string `json:"environment"`
					Reason      string `json:"reason"`
				} `json:"decision"`
			}
			if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
				t.Fatalf("bulwark verify: %v; output %q: %v", err, out, jerr)
			}
			d := res.Decision
			if d.Allowed != tc.accepted || (err == nil) != tc.accepted || d.Environment != tc.environment {
				t.Errorf("bulwark verify: allowed %v in %q (%v), want %v in %q: %s", d.Allowed, d.Environment, err, tc.accepted, tc.environment, d.Reason)
			}
			if !tc.accepted && (err == nil || !strings.Contains(err.Error(), "exit status 2")) {
				t.Errorf("bulwark verify refused without exit status 2: %v", err)
			}
		})
	}

	// The directory is checked as strictly as a YAML policy: a typo in a
	// key is an error naming the file and line, not a policy that silently
	// trusts more.
	bad := strings.Replace(policy, `"trustedIdentities": ["x509.subject: C=US, ST=WA, O=Example, CN=release"]`,
		`"trustedIdentity": ["x509.subject: C=US, ST=WA, O=Example, CN=release"]`, 1)
	for _, name := range []string{"trustpolicy.oci.json", "trustpolicy.json"} {
		if err := os.WriteFile(filepath.Join(cfg, name), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runCmd(ctx, env, bulwarkBin, "verify", srv.ref("e2e/app", "v1"), "--trust-policy", cfg)
	if err == nil || !strings.Contains(err.Error(), `trustpolicy.oci.json: line 16: statement "everything-else": unknown key "trustedIdentity"`) {
		t.Errorf("misspelt key: %v\n%s", err, out)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
