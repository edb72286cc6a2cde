package remote

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/server"
)

// startBulwark runs a real bulwark registry in-process and returns its
// host:port. With auth, the administrator is admin/password.
func startBulwark(t *testing.T, auth bool, password string) string {
	t.Helper()
	if auth {
		t.Setenv("BULWARK_ADMIN_PASSWORD", password)
	}
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Auth.Enabled = auth
	s, err := server.New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return strings.TrimPrefix(ts.URL, "http://")
}

func mustRef(t *testing.T, s string) oci.ImageRef {
	t.Helper()
	r, err := oci.ParseImageRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// image is a one-layer image, and a signature-like artifact about it.
type image struct {
	config, layer []byte
	manifest      []byte
	desc          v1.Descriptor
}

func pushImage(t *testing.T, c *Client, ref oci.ImageRef) image {
	t.Helper()
	ctx := t.Context()
	img := image{config: []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`),
		layer: []byte("not really a tarball, " + t.Name())}
	cfgDesc, err := c.PushBlob(ctx, ref, img.config)
	if err != nil {
		t.Fatalf("push config: %v", err)
	}
	cfgDesc.MediaType = v1.MediaTypeImageConfig
	layerDesc, err := c.PushBlob(ctx, ref, img.layer)
	if err != nil {
		t.Fatalf("push layer: %v", err)
	}
	layerDesc.MediaType = v1.MediaTypeImageLayerGzip
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: cfgDesc, Layers: []v1.Descriptor{layerDesc}}
	m.SchemaVersion = 2
	img.manifest = marshal(t, m)
	p, err := c.PushManifest(ctx, ref, v1.MediaTypeImageManifest, img.manifest)
	if err != nil {
		t.Fatalf("push manifest: %v", err)
	}
	img.desc = p.Descriptor
	if img.desc.Digest != digest.FromBytes(img.manifest) {
		t.Fatalf("pushed digest %s", img.desc.Digest)
	}
	return img
}

const sigType = "application/vnd.bulwark.signature.v1+json"

// pushArtifact pushes an artifact manifest whose subject is subject.
func pushArtifact(t *testing.T, c *Client, repo oci.ImageRef, subject v1.Descriptor, artifactType string) (Pushed, []byte) {
	t.Helper()
	payload := []byte(`{"signed":"` + subject.Digest.String() + `","type":"` + artifactType + `"}`)
	layer, err := c.PushBlob(t.Context(), repo, payload)
	if err != nil {
		t.Fatal(err)
	}
	layer.MediaType = "application/json"
	empty, err := c.PushBlob(t.Context(), repo, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	empty.MediaType = v1.MediaTypeEmptyJSON
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: artifactType, Config: empty,
		Layers: []v1.Descriptor{layer}, Subject: &subject}
	m.SchemaVersion = 2
	body := marshal(t, m)
	target := repo
	target.Tag, target.Digest = "", digest.FromBytes(body)
	p, err := c.PushManifest(t.Context(), target, v1.MediaTypeImageManifest, body)
	if err != nil {
		t.Fatalf("push artifact: %v", err)
	}
	return p, body
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
