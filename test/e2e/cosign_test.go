package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// cosignBin finds the cosign CLI that scripts/test.sh builds (COSIGN_BIN),
// else cosign on PATH. Its absence fails the test: the interop it checks
// is a requirement, not an extra.
func cosignBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COSIGN_BIN"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		t.Fatalf("COSIGN_BIN=%s: not found", p)
	}
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	t.Fatal("cosign CLI not found: scripts/test.sh builds cosign v2.6.5 and sets COSIGN_BIN")
	return ""
}

// cosignOffline are the flags cosign v2.6.5 needs against a plain-HTTP
// registry on loopback and without Sigstore's public services (no Rekor
// upload on signing, no log or SCT to check on verification).
var (
	cosignRegistryFlags = []string{"--allow-insecure-registry", "--allow-http-registry"}
	cosignSignFlags     = append([]string{"--tlog-upload=false", "--yes"}, cosignRegistryFlags...)
	cosignVerifyFlags   = append([]string{"--insecure-ignore-tlog", "--insecure-ignore-sct"}, cosignRegistryFlags...)
)

// TestCosignThroughRegistry checks interoperability with cosign v2.6.5
// through a bulwark registry, both ways, with keys from `bulwark pki`:
// `cosign verify` (with the public key, and with the CA chain and the
// certificate's URI identity) accepts what `bulwark sign --format cosign`
// pushed, and `bulwark verify` accepts what `cosign sign --key` pushed, in
// the legacy .sig layout and as a Sigstore bundle referrer, key-only and
// with the certificate attached. A signature copied onto another image
// and a key the policy does not trust are refused.
func TestCosignThroughRegistry(t *testing.T) {
	cosign := cosignBin(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	srv := startServer(t)
	dir := t.TempDir()
	env := append(serverEnv(), "DOCKER_CONFIG="+filepath.Join(dir, "docker"),
		// cosign caches Sigstore's TUF root under $HOME; keep it private.
		"HOME="+filepath.Join(dir, "home"), "TUF_ROOT="+filepath.Join(dir, "tuf"),
		"COSIGN_PASSWORD=cosign-e2e", "COSIGN_YES=true")
	run := func(bin string, args ...string) string {
		t.Helper()
		out, err := runCmd(ctx, env, bin, args...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
		}
		return out
	}
	cosignRun := func(args ...string) (string, error) { return runCmd(ctx, env, cosign, args...) }

	ca, keys := filepath.Join(dir, "ca"), filepath.Join(dir, "keys")
	run(bulwarkBin, "pki", "init", "--dir", ca, "--org", "Example", "--country", "US", "--state", "WA")
	const identity = "https://ci.example.com/signer"
	run(bulwarkBin, "pki", "issue", "--ca", ca, "--name", "ci", "--subject", "C=US, ST=WA, O=Example, CN=ci",
		"--uri", identity, "--out", keys)
	run(bulwarkBin, "pki", "issue", "--ca", ca, "--name", "other", "--subject", "C=US, ST=WA, O=Example, CN=other",
		"--uri", "https://other.example.com/signer", "--out", keys)
	// cosign's own key format, from the PKCS#8 keys pki wrote.
	for _, name := range []string{"ci", "other"} {
		run(cosign, "import-key-pair", "--key", filepath.Join(keys, name+".key"),
			"--output-key-prefix", filepath.Join(keys, "cosign-"+name))
	}
	// --certificate reads one certificate: the leaf, the first block of ci.crt.
	chain, err := os.ReadFile(filepath.Join(keys, "ci.crt"))
	if err != nil {
		t.Fatal(err)
	}
	end := []byte("-----END CERTIFICATE-----\n")
	leaf := chain[:bytes.Index(chain, end)+len(end)]
	leafFile := filepath.Join(keys, "ci-leaf.crt")
	if err := os.WriteFile(leafFile, leaf, 0o600); err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(ca, "root.crt")

	rootsPolicy := filepath.Join(dir, "trust-roots.yaml")
	keysPolicy := filepath.Join(dir, "trust-keys.yaml")
	for path, content := range map[string]string{
		rootsPolicy: `version: 1
authorities:
  - name: ci
    roots: [ca/root.crt]
    uris: ["https://ci.example.com/*"]
environments:
  - name: dev
    repositories: ["e2e/**"]
    require: [ci]
`,
		keysPolicy: `version: 1
authorities:
  - name: ci
    keys: [keys/cosign-ci.pub]
environments:
  - name: dev
    repositories: ["e2e/**"]
    require: [ci]
`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	sk := newSkopeo(t)
	push := func(repo string) string { // returns repo@digest
		t.Helper()
		img, err := testimage.Random(ctx, t.TempDir(), 1, 512, int64(len(repo)), testimage.WithLabel("repo", repo))
		if err != nil {
			t.Fatal(err)
		}
		sk.push(t, ctx, img, srv.ref(repo, "v1"), "--preserve-digests")
		return srv.addr + "/" + repo + "@" + img.ManifestDigest.String()
	}
	// verify runs bulwark verify and returns whether the policy was
	// satisfied and the decision's signatures.
	type sigResult struct {
		Ref, Format, Signer, Authority, Why string
		Counted                             bool
	}
	verify := func(ref, policy string) (bool, []sigResult, string) {
		t.Helper()
		out, err := runCmd(ctx, env, bulwarkBin, "verify", ref, "--trust-policy", policy, "--env", "dev", "--output", "json")
		var res struct {
			Decision struct {
				Allowed    bool
				Signatures []sigResult
				Reason     string
			}
		}
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
			t.Fatalf("bulwark verify %s: %v\n%s\n%v", ref, jerr, out, err)
		}
		if (err == nil) != res.Decision.Allowed {
			t.Fatalf("bulwark verify %s: exit %v but allowed=%v", ref, err, res.Decision.Allowed)
		}
		return res.Decision.Allowed, res.Decision.Signatures, out
	}
	counted := func(sigs []sigResult, format string) int {
		n := 0
		for _, s := range sigs {
			if s.Counted && s.Format == format {
				n++
			}
		}
		return n
	}

	t.Run("bulwark sign, cosign verify", func(t *testing.T) {
		ref := push("e2e/by-bulwark")
		out := run(bulwarkBin, "sign", ref, "--format", "cosign", "--key", filepath.Join(keys, "ci.key"),
			"--cert", filepath.Join(keys, "ci.crt"), "--annotation", "build=42", "--output", "json")
		var res struct {
			Signatures []struct{ Format, Tag string }
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Signatures) != 1 || res.Signatures[0].Format != "cosign" ||
			!strings.HasSuffix(res.Signatures[0].Tag, ".sig") {
			t.Fatalf("sign output: %v\n%s", err, out)
		}
		// A second signature is appended to the same .sig manifest.
		run(bulwarkBin, "sign", ref, "--format", "cosign", "--key", filepath.Join(keys, "ci.key"), "--cert", filepath.Join(keys, "ci.crt"))

		out = run(cosign, append([]string{"verify", "--key", filepath.Join(keys, "cosign-ci.pub"), "--output", "json", ref}, cosignVerifyFlags...)...)
		var payloads []struct {
			Critical struct {
				Image struct {
					Digest string `json:"docker-manifest-digest"`
				} `json:"image"`
			} `json:"critical"`
			Optional map[string]any `json:"optional"`
		}
		if err := json.Unmarshal([]byte(out), &payloads); err != nil || len(payloads) != 2 {
			t.Fatalf("cosign verify --key: want 2 signatures: %v\n%s", err, out)
		}
		digest := ref[strings.Index(ref, "@")+1:]
		if payloads[0].Critical.Image.Digest != digest || payloads[0].Optional["build"] != "42" {
			t.Fatalf("cosign verify --key: payload %+v", payloads[0])
		}
		run(cosign, append([]string{"verify", "--certificate-chain", rootFile, "--certificate-identity", identity,
			"--certificate-oidc-issuer-regexp", ".*", ref}, cosignVerifyFlags...)...)

		// What cosign must refuse: another key, another identity.
		if out, err := cosignRun(append([]string{"verify", "--key", filepath.Join(keys, "cosign-other.pub"), ref}, cosignVerifyFlags...)...); err == nil {
			t.Fatalf("cosign verify accepted another key:\n%s", out)
		}
		if out, err := cosignRun(append([]string{"verify", "--certificate-chain", rootFile, "--certificate-identity", "https://other.example.com/signer",
			"--certificate-oidc-issuer-regexp", ".*", ref}, cosignVerifyFlags...)...); err == nil {
			t.Fatalf("cosign verify accepted another identity:\n%s", out)
		}

		// And bulwark reads back what it wrote, with either policy.
		for _, policy := range []string{rootsPolicy, keysPolicy} {
			if ok, sigs, out := verify(ref, policy); !ok || counted(sigs, "cosign") != 1 || len(sigs) != 2 {
				t.Fatalf("bulwark verify (%s):\n%s", filepath.Base(policy), out)
			}
		}

		// `--format all` signs the same digest both ways.
		allRef := push("e2e/by-bulwark-all")
		run(bulwarkBin, "sign", allRef, "--format", "all", "--key", filepath.Join(keys, "ci.key"), "--cert", filepath.Join(keys, "ci.crt"))
		// Both verify and match the authority, which counts once.
		ok, sigs, out := verify(allRef, rootsPolicy)
		if !ok || len(sigs) != 2 || sigs[0].Format != "notation-jws" || sigs[1].Format != "cosign" ||
			sigs[0].Authority != "ci" || sigs[1].Authority != "ci" {
			t.Fatalf("bulwark verify after --format all:\n%s", out)
		}
		run(cosign, append([]string{"verify", "--key", filepath.Join(keys, "cosign-ci.pub"), allRef}, cosignVerifyFlags...)...)
	})

	t.Run("cosign sign, bulwark verify", func(t *testing.T) {
		cases := []struct {
			name, repo, policy string
			args               []string // after cosign sign
			format             string   // of the fact bulwark reports
			refusedBy          string   // a policy that must not be satisfied
		}{
			{"key", "e2e/cosign-key", keysPolicy, nil, "cosign", rootsPolicy},
			{"key and certificate", "e2e/cosign-cert", rootsPolicy,
				[]string{"--certificate", leafFile, "--certificate-chain", rootFile}, "cosign", ""},
			{"bundle, key", "e2e/cosign-bundle-key", keysPolicy, []string{"--new-bundle-format"}, "cosign-bundle", rootsPolicy},
			{"bundle, certificate", "e2e/cosign-bundle-cert", rootsPolicy,
				[]string{"--new-bundle-format", "--certificate", leafFile, "--certificate-chain", rootFile}, "cosign-bundle", ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ref := push(c.repo)
				if ok, _, out := verify(ref, c.policy); ok {
					t.Fatalf("unsigned image satisfied the policy:\n%s", out)
				}
				args := append([]string{"sign", "--key", filepath.Join(keys, "cosign-ci.key")}, c.args...)
				run(cosign, append(append(args, cosignSignFlags...), ref)...)
				ok, sigs, out := verify(ref, c.policy)
				if !ok || counted(sigs, c.format) != 1 {
					t.Fatalf("bulwark verify of a cosign signature (%s):\n%s", c.format, out)
				}
				if c.refusedBy != "" {
					if ok, _, out := verify(ref, c.refusedBy); ok {
						t.Fatalf("a key-only cosign signature satisfied a certificate policy:\n%s", out)
					}
				}
			})
		}
	})

	t.Run("refused", func(t *testing.T) {
		// Signed by a key the policy does not list.
		ref := push("e2e/cosign-other")
		run(cosign, append(append([]string{"sign", "--key", filepath.Join(keys, "cosign-other.key")}, cosignSignFlags...), ref)...)
		if ok, sigs, out := verify(ref, keysPolicy); ok || len(sigs) != 1 || !strings.Contains(sigs[0].Why, "none of the trust policy's") {
			t.Fatalf("signature by an untrusted key:\n%s", out)
		}

		// A genuine .sig manifest of image A copied to image B's tag.
		a, b := push("e2e/replay"), ""
		img, err := testimage.Random(ctx, t.TempDir(), 1, 512, 99)
		if err != nil {
			t.Fatal(err)
		}
		sk.push(t, ctx, img, srv.ref("e2e/replay", "v2"), "--preserve-digests")
		b = srv.addr + "/e2e/replay@" + img.ManifestDigest.String()
		run(bulwarkBin, "sign", a, "--format", "cosign", "--key", filepath.Join(keys, "ci.key"), "--cert", filepath.Join(keys, "ci.crt"))
		sigTag := func(ref string) string { return strings.Replace(ref[strings.Index(ref, "@")+1:], ":", "-", 1) + ".sig" }
		copyManifest(t, ctx, srv.url()+"/v2/e2e/replay/manifests/", sigTag(a), sigTag(b))
		ok, sigs, out := verify(b, rootsPolicy)
		if ok || len(sigs) != 1 || !strings.Contains(sigs[0].Why, "not this image") {
			t.Fatalf("signature replayed from A onto B:\n%s", out)
		}
		if _, err := cosignRun(append([]string{"verify", "--key", filepath.Join(keys, "cosign-ci.pub"), b}, cosignVerifyFlags...)...); err == nil {
			t.Fatal("cosign verify accepted the replayed signature too: the test would prove nothing")
		}
	})
}

// copyManifest copies the manifest tagged from to the tag to, over the
// registry API (base is ".../v2/<repo>/manifests/").
func copyManifest(t *testing.T, ctx context.Context, base, from, to string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+from, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", from, resp.Status, body)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, base+to, bytes.NewReader(body))
	req.Header.Set("Content-Type", resp.Header.Get("Content-Type"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s", to, resp.Status)
	}
}
