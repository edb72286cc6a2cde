package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ispecs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/runner/unpack"
	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// layoutRegistry serves an OCI image layout the way a registry would:
// manifests by tag (index.json's ref names) or digest, blobs by digest,
// everything verified against the digest asked for.
type layoutRegistry struct {
	dir          string
	blobGets     int
	manifestGets int
}

func (l *layoutRegistry) blob(d digest.Digest) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(b) != d {
		return nil, fmt.Errorf("layout blob %s corrupt", d)
	}
	return b, nil
}

func (l *layoutRegistry) Manifest(ctx context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error) {
	l.manifestGets++
	d := ref.Digest
	var mt string
	if d == "" {
		b, err := os.ReadFile(filepath.Join(l.dir, "index.json"))
		if err != nil {
			return v1.Descriptor{}, nil, err
		}
		var idx v1.Index
		json.Unmarshal(b, &idx)
		for _, m := range idx.Manifests {
			if m.Annotations[v1.AnnotationRefName] == ref.Tag {
				d, mt = m.Digest, m.MediaType
			}
		}
		if d == "" {
			return v1.Descriptor{}, nil, fmt.Errorf("tag %s: not found", ref.Tag)
		}
	}
	b, err := l.blob(d)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	if mt == "" {
		var probe struct{ MediaType string }
		json.Unmarshal(b, &probe)
		mt = probe.MediaType
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}, b, nil
}

func (l *layoutRegistry) Blob(ctx context.Context, repo oci.ImageRef, d digest.Digest, maxSize int64) (io.ReadCloser, int64, error) {
	l.blobGets++
	b, err := l.blob(d)
	if err != nil {
		return nil, 0, err
	}
	if int64(len(b)) > maxSize {
		return nil, 0, fmt.Errorf("blob %s too large", d)
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

// writeBlob adds a blob to a layout and returns its descriptor.
func writeBlob(t *testing.T, dir, mediaType string, b []byte) v1.Descriptor {
	t.Helper()
	d := digest.FromBytes(b)
	p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// TestImageToContainer is the whole runner path on a real image: an OCI
// layout made by testimage, fetched, unpacked by the real cache with
// ownership shifted into the user namespace, run by runc.
func TestImageToContainer(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	layout := t.TempDir()
	built, err := testimage.Busybox(ctx, layout)
	if err != nil {
		t.Fatal(err)
	}
	reg := &layoutRegistry{dir: layout}
	img, err := Fetch(ctx, reg, oci.ImageRef{Repository: "test/busybox", Tag: testimage.DefaultTag})
	if err != nil {
		t.Fatal(err)
	}
	if img.Ref.Digest != built.ManifestDigest || img.Manifest.Digest != built.ManifestDigest {
		t.Errorf("resolved %s / %s, built %s", img.Ref.Digest, img.Manifest.Digest, built.ManifestDigest)
	}
	if reg.blobGets != 1 {
		t.Errorf("Fetch read %d blobs; it must read only the config", reg.blobGets)
	}
	// The test image has no USER: refused before a layer is fetched.
	if !UserIsRoot(img.Config.Config.User) {
		t.Fatalf("test image USER %q", img.Config.Config.User)
	}

	cache, err := unpack.Open(filepath.Join(e.m.Store.Dir(), "layers"), unpack.Options{
		IDs:    unpack.IDMap{UIDBase: testIDs.HostBase, GIDBase: testIDs.HostBase, Size: testIDs.Size},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	rootfs, err := img.Rootfs(ctx, cache, reg)
	if err != nil {
		t.Fatal(err)
	}
	req := RunRequest{
		Options: Options{
			Name:  "from-image",
			Image: img.Config.Config,
			User:  "1000:1000",
			Args:  []string{"/bin/sh", "-c", "echo uid=$(id -u); echo owner=$(stat -c %u /bin/busybox); touch /bin/x 2>/dev/null; echo write=$?"},
		},
		Rootfs: rootfs, Image: img.Ref.String(), ImageDigest: img.Manifest.Digest.String(),
	}
	code, out, errOut := e.run(t, req)
	kv := keyValues(out)
	// The layer's root-owned files appear owned by root inside: the
	// unpacker shifted them to 100000, the user namespace maps that to 0.
	if code != 0 || kv["uid"] != "1000" || kv["owner"] != "0" || kv["write"] == "0" {
		t.Errorf("exit %d: %q %q", code, out, errOut)
	}
}

func TestFetchIndexAndHostileImages(t *testing.T) {
	ctx := context.Background()
	layout := t.TempDir()
	built, err := testimage.Busybox(ctx, layout)
	if err != nil {
		t.Fatal(err)
	}
	reg := &layoutRegistry{dir: layout}
	repo := oci.ImageRef{Repository: "test/busybox"}

	mkIndex := func(ms ...v1.Descriptor) oci.ImageRef {
		b, _ := json.Marshal(v1.Index{Versioned: ispecs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: ms})
		d := writeBlob(t, layout, v1.MediaTypeImageIndex, b)
		r := repo
		r.Digest = d.Digest
		return r
	}
	mkImage := func(cfg []byte, layers []v1.Descriptor) oci.ImageRef {
		c := writeBlob(t, layout, v1.MediaTypeImageConfig, cfg)
		b, _ := json.Marshal(v1.Manifest{Versioned: ispecs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: c, Layers: layers})
		d := writeBlob(t, layout, v1.MediaTypeImageManifest, b)
		r := repo
		r.Digest = d.Digest
		return r
	}
	native := &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	other := &v1.Platform{OS: "linux", Architecture: "s390x"}
	if runtime.GOARCH == "s390x" {
		other.Architecture = "amd64"
	}
	good := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: built.ManifestDigest, Size: int64(len(built.ManifestBytes))}

	// An index: the native manifest is picked, attestations skipped.
	attest := good
	attest.Platform = &v1.Platform{OS: "unknown", Architecture: "unknown"}
	foreign := good
	foreign.Platform = other
	pick := good
	pick.Platform = native
	img, err := Fetch(ctx, reg, mkIndex(attest, foreign, pick))
	if err != nil {
		t.Fatal(err)
	}
	if img.Manifest.Digest != built.ManifestDigest || img.Ref.Digest == built.ManifestDigest {
		t.Errorf("index: manifest %s ref %s", img.Manifest.Digest, img.Ref.Digest)
	}

	cfg := func(mutate func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(built.ConfigBytes, &m)
		mutate(m)
		b, _ := json.Marshal(m)
		return b
	}
	layers := built.Manifest.Layers
	for name, ref := range map[string]oci.ImageRef{
		"index without this platform": mkIndex(foreign, attest),
		"foreign architecture":        mkImage(cfg(func(m map[string]any) { m["architecture"] = other.Architecture }), layers),
		"windows":                     mkImage(cfg(func(m map[string]any) { m["os"] = "windows" }), layers),
		"diff ids disagree":           mkImage(cfg(func(m map[string]any) { m["rootfs"] = map[string]any{"type": "layers", "diff_ids": []string{}} }), layers),
		"bad diff id": mkImage(cfg(func(m map[string]any) {
			m["rootfs"] = map[string]any{"type": "layers", "diff_ids": []string{"sha256:zz"}}
		}), layers),
		"config not json":      mkImage([]byte("{not json"), layers),
		"config trailing data": mkImage(append(bytes.Clone(built.ConfigBytes), []byte(" {}")...), layers),
		"index in index":       mkIndex(v1.Descriptor{MediaType: v1.MediaTypeImageIndex, Digest: mkIndex(pick).Digest, Size: 1, Platform: native}),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Fetch(ctx, reg, ref)
			if !errors.Is(err, ErrImage) {
				t.Errorf("err = %v, want ErrImage", err)
			}
		})
	}
}

// TestFetchCached: with a metadata cache, the reference (tag or digest)
// is asked of the registry every time, but what it reaches by digest (an
// index's platform manifest, the config) is fetched once; whatever in the
// cache does not match its digest is ignored and fetched again.
func TestFetchCached(t *testing.T) {
	ctx := context.Background()
	layout := t.TempDir()
	built, err := testimage.Busybox(ctx, layout)
	if err != nil {
		t.Fatal(err)
	}
	reg := &layoutRegistry{dir: layout}
	cache := OpenMetadataCache(filepath.Join(t.TempDir(), "images"))
	byTag := oci.ImageRef{Repository: "test/busybox", Tag: testimage.DefaultTag}
	byDigest := byTag
	byDigest.Tag, byDigest.Digest = "", built.ManifestDigest
	platform := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: built.ManifestDigest, Size: int64(len(built.ManifestBytes)),
		Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}
	ib, err := json.Marshal(v1.Index{Versioned: ispecs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{platform}})
	if err != nil {
		t.Fatal(err)
	}
	byIndex := byDigest
	byIndex.Digest = writeBlob(t, layout, v1.MediaTypeImageIndex, ib).Digest

	fetch := func(ref oci.ImageRef, manifests, blobs int) {
		t.Helper()
		reg.manifestGets, reg.blobGets = 0, 0
		img, err := FetchCached(ctx, reg, ref, cache)
		if err != nil {
			t.Fatal(err)
		}
		if img.Manifest.Digest != built.ManifestDigest || img.Manifest.MediaType != v1.MediaTypeImageManifest ||
			img.Ref.Digest != ref.Digest && ref.Digest != "" || img.Config.Config.Cmd == nil || len(img.Layers) != len(built.Manifest.Layers) {
			t.Fatalf("fetched %+v", img)
		}
		if reg.manifestGets != manifests || reg.blobGets != blobs {
			t.Errorf("%s: %d manifest and %d blob requests, want %d and %d", ref, reg.manifestGets, reg.blobGets, manifests, blobs)
		}
	}
	fetch(byTag, 1, 1)
	fetch(byTag, 1, 0)
	fetch(byDigest, 1, 0)
	fetch(byIndex, 2, 0)
	fetch(byIndex, 1, 0)

	// Cached content that is not what its digest names is a miss, and is
	// replaced.
	cfgPath := cache.path(built.Manifest.Config.Digest)
	manifestPath := cache.path(built.ManifestDigest)
	for _, corrupt := range []func(p string) error{
		func(p string) error { return os.Truncate(p, 10) },
		func(p string) error { // valid JSON, other bytes
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, append(b, ' '), 0o600)
		},
		func(p string) error { return os.Remove(p) },
	} {
		for _, p := range []string{cfgPath, manifestPath} {
			if err := corrupt(p); err != nil {
				t.Fatal(err)
			}
		}
		fetch(byIndex, 2, 1)
		fetch(byIndex, 1, 0)
	}

	// A nil cache asks the registry for everything.
	reg.manifestGets, reg.blobGets = 0, 0
	if _, err := FetchCached(ctx, reg, byIndex, nil); err != nil || reg.manifestGets != 2 || reg.blobGets != 1 {
		t.Errorf("nil cache: %v, %d manifest and %d blob requests", err, reg.manifestGets, reg.blobGets)
	}

	// A manifest without its media type in the body is not kept: the
	// cached bytes alone must say what they are.
	noType, err := json.Marshal(v1.Manifest{Versioned: ispecs.Versioned{SchemaVersion: 2}, Config: built.Manifest.Config, Layers: built.Manifest.Layers})
	if err != nil {
		t.Fatal(err)
	}
	p := platform
	p.Digest, p.Size = writeBlob(t, layout, v1.MediaTypeImageManifest, noType).Digest, int64(len(noType))
	ib, err = json.Marshal(v1.Index{Versioned: ispecs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{p}})
	if err != nil {
		t.Fatal(err)
	}
	ref := byDigest
	ref.Digest = writeBlob(t, layout, v1.MediaTypeImageIndex, ib).Digest
	for range 2 {
		reg.manifestGets = 0
		// The layout registry sends no Content-Type either, so Fetch
		// refuses the manifest; what matters here is the requests.
		FetchCached(ctx, reg, ref, cache)
		if reg.manifestGets != 2 {
			t.Errorf("manifest without media type: %d requests, want 2 (never cached)", reg.manifestGets)
		}
	}
	if _, err := os.Stat(cache.path(p.Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("manifest without media type cached: %v", err)
	}
}

func FuzzParseImageConfig(f *testing.F) {
	f.Add([]byte(`{"architecture":"` + runtime.GOARCH + `","os":"linux","config":{"User":"app","Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[]}}`))
	f.Add([]byte(`{"os":"linux"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := ParseImageConfig(b)
		if err != nil {
			if !errors.Is(err, ErrImage) {
				t.Fatalf("error not ErrImage: %v", err)
			}
			return
		}
		if img.OS != "linux" || img.Architecture != runtime.GOARCH {
			t.Fatalf("accepted %s/%s", img.OS, img.Architecture)
		}
	})
}

// FuzzBodyMediaType: whatever a registry or a damaged cache file holds,
// the media type read from it is empty or one of the manifest types.
func FuzzBodyMediaType(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`))
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.config.v1+json"}`))
	f.Add([]byte(`{"mediaType":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if mt := bodyMediaType(b); mt != "" && !oci.IsManifestMediaType(mt) {
			t.Fatalf("media type %q", mt)
		}
	})
}
