package registry_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// TestGateSkopeo checks what a real client sees of quarantine and pull
// denials: skopeo pushes into a quarantine without trouble, and a caller
// who may not pull gets the policy's message on its terminal.
func TestGateSkopeo(t *testing.T) {
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatalf("skopeo is required: %v", err)
	}
	e := newGateEnv(t, gateCallers())
	host := strings.TrimPrefix(e.url, "http://")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	skopeo := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"--policy", policy, "--tmpdir", dir}, args...)...)
		cmd.Env = append(os.Environ(), "REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	img, err := testimage.Random(ctx, t.TempDir(), 2, 64<<10, 7)
	if err != nil {
		t.Fatal(err)
	}
	src := func(token string) []string { return []string{"--src-tls-verify=false", "--src-registry-token", token} }
	dst := func(token string) []string {
		return []string{"--dest-tls-verify=false", "--dest-registry-token", token}
	}

	if out, err := skopeo(append(append([]string{"copy"}, dst("alice")...), img.OCIRef(), "docker://"+host+"/prod/app:v1")...); err != nil {
		t.Fatalf("skopeo push into a quarantine: %v\n%s", err, out)
	}
	if q, err := e.meta.Quarantined(t.Context(), "prod/app", img.ManifestDigest); err != nil || q == nil {
		t.Fatalf("pushed image not quarantined: %+v, %v", q, err)
	}
	// The pusher may pull it and copy it to another repository (the mount
	// from a quarantined source is its own).
	if out, err := skopeo(append(append(append([]string{"copy"}, src("alice")...), dst("alice")...),
		"docker://"+host+"/prod/app:v1", "docker://"+host+"/pull/app:copy")...); err != nil {
		t.Fatalf("skopeo copy by the pusher: %v\n%s", err, out)
	}
	// Anyone else is told why.
	out, err := skopeo(append(append([]string{"copy"}, src("bob")...), "docker://"+host+"/prod/app:v1", "oci:"+filepath.Join(dir, "out")+":x")...)
	if err == nil || !strings.Contains(out, "quarantined by policy") || !strings.Contains(out, "approved: prod images need an approval") {
		t.Fatalf("skopeo copy of a quarantined image by another user: %v\n%s", err, out)
	}
	t.Logf("skopeo shows a quarantined image as:\n%s", out)

	// The approval arrives; now bob may copy it.
	if _, r := e.pushEvidence(t, "alice", "prod/app", approvalType, v1.Descriptor{MediaType: v1.MediaTypeImageManifest,
		Digest: img.ManifestDigest, Size: int64(len(img.ManifestBytes))}, "approval"); r.StatusCode != http.StatusCreated {
		t.Fatalf("approval: %d %s", r.StatusCode, r.body)
	}
	if out, err := skopeo(append(append([]string{"copy"}, src("bob")...), "docker://"+host+"/prod/app:v1", "oci:"+filepath.Join(dir, "out")+":x")...); err != nil {
		t.Fatalf("skopeo copy after the approval: %v\n%s", err, out)
	}

	// A host bound to prod may not pull the unapproved copy in pull/app.
	out, err = skopeo(append(append([]string{"inspect"}, "--tls-verify=false", "--registry-token", "host"), "docker://"+host+"/pull/app:copy")...)
	if err == nil || !strings.Contains(out, "policy denies pulling pull/app@") || !strings.Contains(out, "approved: prod pulls need an approval") {
		t.Fatalf("skopeo inspect by a prod host of an unapproved image: %v\n%s", err, out)
	}
	t.Logf("skopeo shows a pull denial as:\n%s", out)
}
