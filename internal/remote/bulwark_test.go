package remote

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBulwarkRoundTrip pushes and pulls through every operation against a
// real (open) bulwark.
func TestBulwarkRoundTrip(t *testing.T) {
	host := startBulwark(t, false, "")
	c := New(Options{})
	ctx := t.Context()
	ref := mustRef(t, host+"/team/app:v1")
	img := pushImage(t, c, ref)

	// A second push of the same blob is skipped by HEAD, and still succeeds.
	if d, err := c.PushBlob(ctx, ref, img.layer); err != nil || d.Digest != digest.FromBytes(img.layer) {
		t.Fatalf("re-push: %v %v", d, err)
	}

	byDigest := mustRef(t, host+"/team/app@"+img.desc.Digest.String())
	for _, r := range []struct {
		name string
		ref  string
	}{{"tag", host + "/team/app:v1"}, {"digest", byDigest.String()}, {"tag and digest", host + "/team/app:v1@" + img.desc.Digest.String()}} {
		t.Run(r.name, func(t *testing.T) {
			ref := mustRef(t, r.ref)
			desc, err := c.Resolve(ctx, ref)
			if err != nil || desc.Digest != img.desc.Digest || desc.Size != int64(len(img.manifest)) || desc.MediaType != v1.MediaTypeImageManifest {
				t.Fatalf("Resolve = %+v, %v", desc, err)
			}
			desc, body, err := c.Manifest(ctx, ref)
			if err != nil || desc.Digest != img.desc.Digest || !bytes.Equal(body, img.manifest) || desc.MediaType != v1.MediaTypeImageManifest {
				t.Fatalf("Manifest = %+v, %v", desc, err)
			}
		})
	}

	rc, size, err := c.Blob(ctx, ref, digest.FromBytes(img.layer), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, img.layer) || size != int64(len(img.layer)) {
		t.Fatalf("Blob = %q (%d), %v", got, size, err)
	}
	if _, _, err := c.Blob(ctx, ref, digest.FromBytes(img.layer), 3); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Blob over the limit: %v, want ErrTooLarge", err)
	}

	if _, err := c.Tag(ctx, byDigest, "v2"); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Resolve(ctx, mustRef(t, host+"/team/app:v2")); err != nil || d.Digest != img.desc.Digest {
		t.Fatalf("tagged: %v %v", d, err)
	}

	// Not found, typed.
	for name, err := range map[string]error{
		"tag":  func() error { _, err := c.Resolve(ctx, mustRef(t, host+"/team/app:nope")); return err }(),
		"repo": func() error { _, _, err := c.Manifest(ctx, mustRef(t, host+"/team/none:v1")); return err }(),
		"blob": func() error { _, _, err := c.Blob(ctx, ref, digest.FromString("absent"), 10); return err }(),
	} {
		var re *Error
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &re) || re.Status != http.StatusNotFound {
			t.Errorf("%s: %v, want ErrNotFound as *Error", name, err)
		}
	}

	// Referrers: two artifacts about the image, filtered by type.
	sig, sigBody := pushArtifact(t, c, ref, img.desc, sigType)
	if !sig.SubjectProcessed {
		t.Error("bulwark did not answer OCI-Subject")
	}
	pushArtifact(t, c, ref, img.desc, "application/vnd.example.sbom")
	all, err := c.Referrers(ctx, ref, img.desc.Digest, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("Referrers = %v, %v", all, err)
	}
	sigs, err := c.Referrers(ctx, ref, img.desc.Digest, sigType)
	if err != nil || len(sigs) != 1 || sigs[0].Digest != digest.FromBytes(sigBody) || sigs[0].ArtifactType != sigType {
		t.Fatalf("Referrers(%s) = %v, %v", sigType, sigs, err)
	}
	none, err := c.Referrers(ctx, ref, digest.FromString("nothing refers to me"), "")
	if err != nil || len(none) != 0 {
		t.Fatalf("Referrers of an unknown subject = %v, %v", none, err)
	}
}

// countingTransport counts token requests, to check tokens are cached.
type countingTransport struct{ tokens atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/token") {
		c.tokens.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func writeDockerConfig(t *testing.T, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBulwarkTokenFlow: the full Bearer flow against bulwark with auth on,
// credentials from a docker config.json found through DOCKER_CONFIG.
func TestBulwarkTokenFlow(t *testing.T) {
	const password = "remote-test-admin-password"
	host := startBulwark(t, true, password)
	t.Setenv("DOCKER_CONFIG", writeDockerConfig(t, host, "admin", password))
	creds, err := DockerConfigCredentials("")
	if err != nil {
		t.Fatal(err)
	}
	counter := &countingTransport{}
	c := New(Options{Credentials: creds, HTTP: &http.Client{Transport: counter}})
	ctx := t.Context()
	ref := mustRef(t, host+"/team/app:v1")
	img := pushImage(t, c, ref)
	if _, _, err := c.Manifest(ctx, ref); err != nil {
		t.Fatal(err)
	}
	pushes := counter.tokens.Load()
	for range 3 {
		if _, _, err := c.Manifest(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	if n := counter.tokens.Load() - pushes; n != 0 {
		t.Errorf("3 more pulls fetched %d tokens, want 0 (cached)", n)
	}

	t.Run("anonymous", func(t *testing.T) {
		_, err := New(Options{}).Resolve(ctx, ref)
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("anonymous Resolve = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		c := New(Options{Credentials: StaticCredentials{host: {Username: "admin", Secret: password + "x"}}})
		_, _, err := c.Manifest(ctx, mustRef(t, host+"/team/app@"+img.desc.Digest.String()))
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Manifest with a wrong password = %v, want ErrUnauthorized", err)
		}
		if _, err := c.PushBlob(ctx, ref, []byte("x")); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("PushBlob with a wrong password = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("referrers with auth", func(t *testing.T) {
		pushArtifact(t, c, ref, img.desc, sigType)
		got, err := c.Referrers(ctx, ref, img.desc.Digest, sigType)
		if err != nil || len(got) != 1 {
			t.Fatalf("Referrers = %v, %v", got, err)
		}
	})
}
