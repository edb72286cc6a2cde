package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

const dockerManifestV2 = "application/vnd.docker.distribution.manifest.v2+json"

// skopeoInspect is the part of `skopeo inspect` output the tests check.
type skopeoInspect struct {
	Digest       digest.Digest
	RepoTags     []string
	Architecture string
	Os           string
	Layers       []digest.Digest
}

// TestSkopeoRoundTrip pushes an OCI image with skopeo (containers/image, the
// client of podman and buildah), reads it back every way skopeo can, and
// checks it comes back bit for bit. A second push converts to Docker schema
// 2 on the way, as pushes from older tooling do.
func TestSkopeoRoundTrip(t *testing.T) {
	sk := newSkopeo(t)
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	img, err := testimage.Busybox(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const repo = "e2e/busybox"
	// --preserve-digests makes skopeo fail rather than silently re-encode,
	// so the digest check below is about the registry, not the client.
	if got := sk.push(t, ctx, img, srv.ref(repo, "v1"), "--preserve-digests"); got != img.ManifestDigest.String() {
		t.Fatalf("pushed manifest digest %s, want %s", got, img.ManifestDigest)
	}
	// A second tag for the same content: every blob now exists, so skopeo
	// takes the "blob already present" (HEAD) path and only PUTs a manifest.
	sk.push(t, ctx, img, srv.ref(repo, "v2"), "--preserve-digests")

	t.Run("inspect", func(t *testing.T) {
		var got skopeoInspect
		out := sk.mustRun(t, ctx, "inspect", "--tls-verify=false", "docker://"+srv.ref(repo, "v1"))
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("parsing inspect output: %v\n%s", err, out)
		}
		if got.Digest != img.ManifestDigest {
			t.Errorf("inspect Digest = %s, want %s", got.Digest, img.ManifestDigest)
		}
		if !slices.Equal(got.Layers, img.LayerDigests) {
			t.Errorf("inspect Layers = %v, want %v", got.Layers, img.LayerDigests)
		}
		if got.Architecture != img.Config.Architecture || got.Os != img.Config.OS {
			t.Errorf("inspect platform %s/%s, want %s/%s", got.Os, got.Architecture, img.Config.OS, img.Config.Architecture)
		}
		if slices.Sort(got.RepoTags); !slices.Equal(got.RepoTags, []string{"v1", "v2"}) {
			t.Errorf("inspect RepoTags = %v, want [v1 v2]", got.RepoTags)
		}

		// Raw manifest by tag and by digest, and the raw config, must be the
		// exact bytes that were pushed.
		raws := []struct {
			name string
			args []string
			want []byte
		}{
			{"manifest by tag", []string{"--raw", "docker://" + srv.ref(repo, "v1")}, img.ManifestBytes},
			{"manifest by digest", []string{"--raw", "docker://" + srv.addr + "/" + repo + "@" + img.ManifestDigest.String()}, img.ManifestBytes},
			{"config", []string{"--config", "--raw", "docker://" + srv.ref(repo, "v2")}, img.ConfigBytes},
		}
		for _, r := range raws {
			out := sk.mustRun(t, ctx, append([]string{"inspect", "--tls-verify=false"}, r.args...)...)
			if !bytes.Equal([]byte(out), r.want) {
				t.Errorf("inspect %s:\n got %s\nwant %s", r.name, out, r.want)
			}
		}
	})

	t.Run("list-tags", func(t *testing.T) {
		var got struct {
			Repository string
			Tags       []string
		}
		out := sk.mustRun(t, ctx, "list-tags", "--tls-verify=false", "docker://"+srv.addr+"/"+repo)
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("parsing list-tags output: %v\n%s", err, out)
		}
		if slices.Sort(got.Tags); !slices.Equal(got.Tags, []string{"v1", "v2"}) {
			t.Errorf("list-tags = %v, want [v1 v2]", got.Tags)
		}
	})

	t.Run("pull", func(t *testing.T) {
		dir := t.TempDir()
		sk.mustRun(t, ctx, "copy", "--src-tls-verify=false", "--preserve-digests",
			"docker://"+srv.ref(repo, "v1"), "oci:"+dir+":pulled")
		got, err := testimage.Load(dir, "pulled")
		if err != nil {
			t.Fatalf("pulled layout is invalid: %v", err)
		}
		if got.ManifestDigest != img.ManifestDigest {
			t.Errorf("pulled manifest %s, want %s", got.ManifestDigest, img.ManifestDigest)
		}
		for _, d := range append([]digest.Digest{img.ConfigDigest}, img.LayerDigests...) {
			sameBlob(t, got, img, d)
		}
	})

	t.Run("docker schema2", func(t *testing.T) {
		const repo2 = "e2e/busybox-v2s2"
		pushed := digest.Digest(sk.push(t, ctx, img, srv.ref(repo2, "v1"), "--format", "v2s2"))

		raw := sk.mustRun(t, ctx, "inspect", "--tls-verify=false", "--raw", "docker://"+srv.ref(repo2, "v1"))
		var m v1.Manifest // schema2 and OCI manifests share this JSON shape
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("parsing manifest: %v\n%s", err, raw)
		}
		if m.MediaType != dockerManifestV2 {
			t.Errorf("stored manifest mediaType %q, want %q", m.MediaType, dockerManifestV2)
		}
		if got := digest.FromString(raw); got != pushed {
			t.Errorf("served manifest hashes to %s, skopeo pushed %s", got, pushed)
		}
		// The conversion only relabels layers, so the registry must hold
		// the very same compressed blobs.
		for i, l := range m.Layers {
			if i >= len(img.LayerDigests) || l.Digest != img.LayerDigests[i] {
				t.Errorf("schema2 layer %d = %s, want %v", i, l.Digest, img.LayerDigests)
			}
		}

		// The registry must answer with the stored media type and digest.
		resp, body, err := srv.get(ctx, "/v2/"+repo2+"/manifests/v1",
			"Accept: "+dockerManifestV2, "Accept: "+v1.MediaTypeImageManifest)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != dockerManifestV2 ||
			resp.Header.Get("Docker-Content-Digest") != pushed.String() || string(body) != raw {
			t.Errorf("GET manifest: %s, Content-Type %q, Docker-Content-Digest %q; want 200, %q, %q",
				resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"), dockerManifestV2, pushed)
		}

		// Pulling converts back to OCI; the filesystem must be unchanged.
		dir := t.TempDir()
		sk.mustRun(t, ctx, "copy", "--src-tls-verify=false", "docker://"+srv.ref(repo2, "v1"), "oci:"+dir+":pulled")
		got, err := testimage.Load(dir, "pulled")
		if err != nil {
			t.Fatalf("pulled layout is invalid: %v", err)
		}
		if !slices.Equal(got.LayerDigests, img.LayerDigests) || !slices.Equal(got.DiffIDs, img.DiffIDs) {
			t.Errorf("pulled layers %v diff_ids %v, want %v %v", got.LayerDigests, got.DiffIDs, img.LayerDigests, img.DiffIDs)
		}
		for _, d := range img.LayerDigests {
			sameBlob(t, got, img, d)
		}
	})
}

// sameBlob fails unless blob d has identical bytes in both layouts.
func sameBlob(t *testing.T, got, want testimage.Image, d digest.Digest) {
	t.Helper()
	a, err := os.ReadFile(got.BlobPath(d))
	if err != nil {
		t.Errorf("pulled layout lacks blob %s: %v", d, err)
		return
	}
	b, err := os.ReadFile(want.BlobPath(d))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("blob %s differs after round trip (%d vs %d bytes) in %s", d, len(a), len(b), filepath.Dir(got.BlobPath(d)))
	}
}
