package remote

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// startDistribution runs Debian's docker-registry (distribution 2.8, which
// has no referrers API) with the configuration scripts/conformance.sh uses.
// It is required under CI and skipped locally when absent.
func startDistribution(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker-registry is required under CI: %v", err)
		}
		t.Skip("docker-registry not installed (apt-get install docker-registry)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + filepath.Join(dir, "data") +
		"\n  delete:\n    enabled: true\nhttp:\n  addr: " + addr + "\n"
	cfgPath := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", log.String())
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		select {
		case <-done:
			t.Fatalf("docker-registry exited:\n%s", log.String())
		case <-ctx.Done():
			t.Fatalf("docker-registry not ready:\n%s", log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestDistributionReferrersTagSchema: against a registry without the
// referrers API, PushManifest maintains the "sha256-<hex>" index and
// Referrers reads it back.
func TestDistributionReferrersTagSchema(t *testing.T) {
	host := startDistribution(t)
	c := New(Options{})
	ctx := t.Context()
	ref := mustRef(t, host+"/team/app:v1")
	img := pushImage(t, c, ref)
	if d, err := c.Resolve(ctx, ref); err != nil || d.Digest != img.desc.Digest {
		t.Fatalf("Resolve = %v, %v", d, err)
	}

	sig, sigBody := pushArtifact(t, c, ref, img.desc, sigType)
	if sig.SubjectProcessed {
		t.Fatal("distribution 2.8 claims OCI-Subject")
	}
	pushArtifact(t, c, ref, img.desc, "application/vnd.example.sbom")
	pushArtifact(t, c, ref, img.desc, sigType) // the same artifact again: no duplicate entry

	idx, err := c.Resolve(ctx, mustRef(t, host+"/team/app:"+ReferrersTag(img.desc.Digest)))
	if err != nil {
		t.Fatalf("fallback tag: %v", err)
	}
	t.Logf("fallback index %s", idx.Digest)

	all, err := c.Referrers(ctx, ref, img.desc.Digest, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("Referrers = %v, %v", all, err)
	}
	sigs, err := c.Referrers(ctx, ref, img.desc.Digest, sigType)
	if err != nil || len(sigs) != 1 || sigs[0].Digest != digest.FromBytes(sigBody) || sigs[0].ArtifactType != sigType {
		t.Fatalf("Referrers(%s) = %v, %v", sigType, sigs, err)
	}
	none, err := c.Referrers(ctx, ref, digest.FromString("unreferenced"), "")
	if err != nil || len(none) != 0 {
		t.Fatalf("Referrers of an unknown subject = %v, %v", none, err)
	}
	if _, _, err := c.Manifest(ctx, mustRef(t, host+"/team/app:absent")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent tag: %v, want ErrNotFound", err)
	}
}
