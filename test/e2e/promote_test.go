package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// TestPromote: an image pushed with skopeo is approved for prod by the
// security team's certificate with `bulwark promote`, and by a certificate
// with the same subject from a CA nobody trusts; `bulwark approvals`
// verifies both and names authority security for the first only. The
// approval is evidence, not a move: the tag still names the same digest,
// no tag appears, and signature verification does not take the approval
// for a signature.
func TestPromote(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv := startServer(t)
	dir := t.TempDir()
	// An empty Docker config: no credentials, and none of the invoking
	// user's.
	dockerCfg := filepath.Join(dir, "docker")
	if err := os.MkdirAll(dockerCfg, 0o700); err != nil {
		t.Fatal(err)
	}
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
	ref := srv.ref("prod/app", "v1")
	newSkopeo(t).push(t, ctx, img, ref, "--preserve-digests")

	ca, rogue, keys := filepath.Join(dir, "ca"), filepath.Join(dir, "rogue"), filepath.Join(dir, "keys")
	mustBW("pki", "init", "--dir", ca, "--org", "Example", "--country", "US", "--state", "WA")
	mustBW("pki", "init", "--dir", rogue, "--org", "Example", "--country", "US", "--state", "WA")
	subject := "C=US, ST=WA, O=Example, CN=security"
	mustBW("pki", "issue", "--ca", ca, "--name", "security", "--subject", subject, "--out", keys)
	mustBW("pki", "issue", "--ca", rogue, "--name", "impostor", "--subject", subject, "--out", keys)
	policy := filepath.Join(dir, "trust.yaml")
	if err := os.WriteFile(policy, []byte(`version: 1
authorities:
  - name: ci
    roots: [ca/root.crt]
    identities: ["CN=ci"]
  - name: security
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=security"]
environments:
  - name: prod
    repositories: ["prod/**"]
    require: [ci]
`), 0o600); err != nil {
		t.Fatal(err)
	}

	type promoted struct {
		Digest, Environment, Approver, Approval string
	}
	promote := func(name string) promoted {
		t.Helper()
		out := mustBW("promote", ref, "--to", "prod", "--key", filepath.Join(keys, name+".key"),
			"--cert", filepath.Join(keys, name+".crt"), "--reason", "pen test SEC-42 passed", "--output", "json")
		var p promoted
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("promote output: %v\n%s", err, out)
		}
		if p.Digest != img.ManifestDigest.String() || p.Environment != "prod" || p.Approver != subject || p.Approval == "" {
			t.Fatalf("promote with %s: %+v, pushed %s", name, p, img.ManifestDigest)
		}
		return p
	}
	good := promote("security")
	bad := promote("impostor")

	type approval struct {
		Ref, Environment, Approver, Reason, Error, Why string
		Verified                                       bool
		Authorities                                    []string
	}
	var res struct {
		Digest    string
		Approvals []approval
		Require   *struct{ Satisfied bool }
	}
	out := mustBW("approvals", ref, "--trust-policy", policy, "--output", "json")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("approvals output: %v\n%s", err, out)
	}
	if res.Digest != img.ManifestDigest.String() || len(res.Approvals) != 2 {
		t.Fatalf("approvals of %s: %s", img.ManifestDigest, out)
	}
	byRef := map[string]approval{}
	for _, a := range res.Approvals {
		byRef[a.Ref] = a
	}
	if a := byRef[good.Approval]; !a.Verified || a.Environment != "prod" || a.Approver != subject ||
		a.Reason != "pen test SEC-42 passed" || !slices.Equal(a.Authorities, []string{"security"}) {
		t.Errorf("security's approval: %+v\n%s", a, out)
	}
	// Cryptographically sound, vouched for by nobody.
	if a := byRef[bad.Approval]; !a.Verified || len(a.Authorities) != 0 || !strings.Contains(a.Why, "does not lead to one of the authority's roots") {
		t.Errorf("untrusted root's approval: %+v\n%s", a, out)
	}

	// --require: the exit status answers "approved for prod by security?".
	if out, err := bw("approvals", ref, "--trust-policy", policy, "--env", "prod", "--require", "security"); err != nil ||
		!strings.Contains(out, "SATISFIED by "+good.Approval) {
		t.Errorf("prod by security: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"--env", "staging", "--require", "security"}, {"--env", "prod", "--require", "ci"}} {
		out, err := bw(append([]string{"approvals", ref, "--trust-policy", policy}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(out, "NOT SATISFIED") {
			t.Errorf("approvals %v: want exit 2, got %v\n%s", args, err, out)
		}
	}
	// Text output, without a policy.
	if text := mustBW("approvals", ref); strings.Count(text, "for prod by") != 2 || !strings.Contains(text, "no trust policy given") {
		t.Errorf("text output:\n%s", text)
	}

	// No retag, no copy: the tag names the pushed digest and is the only tag.
	resp, _, err := srv.get(ctx, "/v2/prod/app/manifests/v1", "Accept: "+v1.MediaTypeImageManifest)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != img.ManifestDigest.String() {
		t.Fatalf("tag v1 after promote: %v %v %s", err, resp.Status, resp.Header.Get("Docker-Content-Digest"))
	}
	resp, body, err := srv.get(ctx, "/v2/prod/app/tags/list")
	var tags struct{ Tags []string }
	if err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tags) != nil || !slices.Equal(tags.Tags, []string{"v1"}) {
		t.Fatalf("tags after promote: %v %s", err, body)
	}
	// The approvals are referrers of the digest, typed so that signature
	// discovery skips them.
	resp, body, err = srv.get(ctx, "/v2/prod/app/referrers/"+img.ManifestDigest.String())
	var idx v1.Index
	if err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(body, &idx) != nil || len(idx.Manifests) != 2 {
		t.Fatalf("referrers: %v %s", err, body)
	}
	for _, m := range idx.Manifests {
		if m.ArtifactType != "application/vnd.bulwark.promotion.v1+json" {
			t.Errorf("referrer %s has artifactType %q", m.Digest, m.ArtifactType)
		}
	}
	out, err = bw("verify", ref, "--trust-policy", policy, "--env", "prod", "--output", "json")
	var verdict struct{ Decision struct{ Signatures []any } }
	if jerr := json.Unmarshal([]byte(out), &verdict); jerr != nil || err == nil || len(verdict.Decision.Signatures) != 0 {
		t.Errorf("verify counted approvals as signatures (or passed unsigned): %v %v\n%s", err, jerr, out)
	}
}
