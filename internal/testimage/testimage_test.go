package testimage

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const busyboxPath = "/bin/busybox"

// requireBusybox skips when the host has no busybox-static, except under CI
// where a missing fixture must fail loudly instead of hiding the tests.
func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(busyboxPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing under CI (install busybox-static): %v", busyboxPath, err)
		}
		t.Skipf("%s missing (install busybox-static): %v", busyboxPath, err)
	}
}

func mustLoad(t *testing.T, dir, tag string) Image {
	t.Helper()
	img, err := Load(dir, tag)
	if err != nil {
		t.Fatalf("Load(%s, %q): %v", dir, tag, err)
	}
	return img
}

// sameImage compares everything Load can recover against what was written.
func sameImage(t *testing.T, got, want Image) {
	t.Helper()
	if got.ManifestDigest != want.ManifestDigest || got.ConfigDigest != want.ConfigDigest {
		t.Errorf("manifest/config = %s/%s, want %s/%s", got.ManifestDigest, got.ConfigDigest, want.ManifestDigest, want.ConfigDigest)
	}
	if string(got.ManifestBytes) != string(want.ManifestBytes) || string(got.ConfigBytes) != string(want.ConfigBytes) {
		t.Errorf("manifest or config bytes differ")
	}
	if !slices.Equal(got.LayerDigests, want.LayerDigests) || !slices.Equal(got.DiffIDs, want.DiffIDs) {
		t.Errorf("layers %v diff_ids %v, want %v %v", got.LayerDigests, got.DiffIDs, want.LayerDigests, want.DiffIDs)
	}
	if got.Tag != want.Tag {
		t.Errorf("tag %q, want %q", got.Tag, want.Tag)
	}
}

// layerEntries returns the tar headers of a gzip layer, keyed by name.
func layerEntries(t *testing.T, img Image, d digest.Digest) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(img.BlobPath(d))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	hdrs := map[string]*tar.Header{}
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name] = h
		names = append(names, h.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("layer %s entries not sorted: %v", d, names)
	}
	return hdrs
}

func TestBusybox(t *testing.T) {
	requireBusybox(t)
	dir := t.TempDir()
	img, err := Busybox(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	sameImage(t, mustLoad(t, dir, "latest"), img)
	if img.OCIRef() != "oci:"+dir+":latest" {
		t.Errorf("OCIRef = %q", img.OCIRef())
	}

	cfg := img.Config
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if !slices.Equal(cfg.Config.Cmd, []string{"/bin/sh"}) {
		t.Errorf("Cmd = %q", cfg.Config.Cmd)
	}
	if len(img.LayerDigests) != 1 || len(cfg.History) != 1 {
		t.Fatalf("want 1 layer and 1 history entry, got %d, %d", len(img.LayerDigests), len(cfg.History))
	}

	hdrs := layerEntries(t, img, img.LayerDigests[0])
	host, err := os.Stat(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if h := hdrs["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Size != host.Size() || h.Mode != 0o755 {
		t.Errorf("bin/busybox entry = %+v, want 0755 regular file of %d bytes", h, host.Size())
	}
	for _, applet := range []string{"sh", "echo", "cat", "ls"} {
		h := hdrs["bin/"+applet]
		if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s entry = %+v, want symlink to busybox", applet, h)
		}
	}
	for name, h := range hdrs {
		if !h.ModTime.Equal(DefaultCreated) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: mtime %v uid %d gid %d uname %q; want pinned values", name, h.ModTime, h.Uid, h.Gid, h.Uname)
		}
	}
}

func TestBusyboxRejectsDynamicBinary(t *testing.T) {
	const dynamic = "/bin/ls" // coreutils is dynamically linked on Debian
	if _, err := os.Stat(dynamic); err != nil {
		t.Skipf("%s: %v", dynamic, err)
	}
	_, err := Busybox(t.Context(), t.TempDir(), WithBusyboxPath(dynamic))
	if err == nil || !strings.Contains(err.Error(), "not statically linked") {
		t.Fatalf("Busybox(%s) error = %v, want 'not statically linked'", dynamic, err)
	}
}

// TestDeterministic checks that identical inputs give identical digests, so
// tests can compare digests across a registry round trip.
func TestDeterministic(t *testing.T) {
	tests := []struct {
		name    string
		busybox bool
		build   func(ctx context.Context, dir string) (Image, error)
	}{
		{"busybox", true, func(ctx context.Context, dir string) (Image, error) { return Busybox(ctx, dir) }},
		{"busybox+file", true, func(ctx context.Context, dir string) (Image, error) {
			return Busybox(ctx, dir, WithFile("etc/motd", []byte("hi\n")), WithLabel("k", "v"))
		}},
		{"random", false, func(ctx context.Context, dir string) (Image, error) { return Random(ctx, dir, 3, 4096, 42) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.busybox {
				requireBusybox(t)
			}
			a, err := tt.build(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			b, err := tt.build(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if a.ManifestDigest != b.ManifestDigest {
				t.Errorf("two builds gave manifests %s and %s", a.ManifestDigest, b.ManifestDigest)
			}
			sameImage(t, mustLoad(t, a.Dir, ""), a)
		})
	}
}

func TestRandom(t *testing.T) {
	tests := []struct {
		layers   int
		sizeEach int64
	}{
		{1, 0},
		{1, 1},
		{4, 10_000},
		{2, 3 << 20},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		img, err := Random(t.Context(), dir, tt.layers, tt.sizeEach, 7)
		if err != nil {
			t.Fatalf("Random(%d, %d): %v", tt.layers, tt.sizeEach, err)
		}
		sameImage(t, mustLoad(t, dir, DefaultTag), img)
		if len(img.LayerDigests) != tt.layers {
			t.Errorf("Random(%d, %d): %d layers", tt.layers, tt.sizeEach, len(img.LayerDigests))
		}
		// Every layer must be distinct, or load tests would silently
		// upload fewer bytes than they claim.
		if uniq := slices.Compact(slices.Sorted(slices.Values(img.LayerDigests))); len(uniq) != tt.layers {
			t.Errorf("Random(%d, %d): only %d distinct layers", tt.layers, tt.sizeEach, len(uniq))
		}
		for i, l := range img.Manifest.Layers {
			if l.Size < tt.sizeEach {
				t.Errorf("layer %d is %d bytes, want >= %d (random data should not compress)", i, l.Size, tt.sizeEach)
			}
		}
	}

	a, err := Random(t.Context(), t.TempDir(), 2, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Random(t.Context(), t.TempDir(), 2, 1000, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range a.LayerDigests {
		if slices.Contains(b.LayerDigests, d) {
			t.Errorf("seeds 1 and 2 share layer %s", d)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Random(ctx, t.TempDir(), 1, 1<<20, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Random with cancelled context: %v, want context.Canceled", err)
	}
}

func TestOptions(t *testing.T) {
	requireBusybox(t)
	ctx := t.Context()
	dir := t.TempDir()
	created := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	base, err := Busybox(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Several tags in one layout: each must stay loadable.
	labelled, err := Busybox(ctx, dir, WithTag("labelled"), WithLabel("org.example.variant", "1"))
	if err != nil {
		t.Fatal(err)
	}
	withFile, err := Busybox(ctx, dir, WithTag("file"), WithFile("/etc/motd", []byte("hello\n")), WithCreated(created))
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []Image{base, labelled, withFile} {
		sameImage(t, mustLoad(t, dir, img.Tag), img)
	}
	if _, err := Load(dir, ""); err == nil {
		t.Error("Load with empty tag on a 3-image layout succeeded, want ambiguity error")
	}

	if labelled.ManifestDigest == base.ManifestDigest || !slices.Equal(labelled.LayerDigests, base.LayerDigests) {
		t.Errorf("WithLabel should change the manifest but keep layers: %v vs %v", labelled.LayerDigests, base.LayerDigests)
	}
	if got := labelled.Config.Config.Labels["org.example.variant"]; got != "1" {
		t.Errorf("label = %q", got)
	}

	if len(withFile.LayerDigests) != 2 {
		t.Fatalf("WithFile: %d layers, want 2", len(withFile.LayerDigests))
	}
	if withFile.Config.Created == nil || !withFile.Config.Created.Equal(created) {
		t.Errorf("Created = %v, want %v", withFile.Config.Created, created)
	}
	hdrs := layerEntries(t, withFile, withFile.LayerDigests[1])
	if h := hdrs["etc/motd"]; h == nil || h.Size != 6 || !h.ModTime.Equal(created) {
		t.Errorf("etc/motd = %+v", h)
	}
	if h := hdrs["etc/"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Errorf("etc/ = %+v, want a directory entry", h)
	}

	// Re-writing a tag replaces its index entry instead of duplicating it.
	if _, err := Busybox(ctx, dir, WithTag("labelled"), WithLabel("org.example.variant", "2")); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, dir, "labelled"); got.ManifestDigest == labelled.ManifestDigest {
		t.Error("rewriting tag 'labelled' kept the old manifest")
	}
}

// TestLoadDetectsCorruption makes sure Load is a real check: each mutation of
// a valid layout must be reported.
func TestLoadDetectsCorruption(t *testing.T) {
	flipLastByte := func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)-1] ^= 0xff
		return os.WriteFile(p, b, 0o644)
	}
	tests := []struct {
		name    string
		corrupt func(img Image) error
		wantErr string
	}{
		{"layer bytes", func(img Image) error { return flipLastByte(img.BlobPath(img.LayerDigests[0])) }, "layer 0"},
		{"config bytes", func(img Image) error { return flipLastByte(img.BlobPath(img.ConfigDigest)) }, "config"},
		{"missing layer", func(img Image) error { return os.Remove(img.BlobPath(img.LayerDigests[1])) }, "layer 1"},
		{"no oci-layout", func(img Image) error { return os.Remove(filepath.Join(img.Dir, v1.ImageLayoutFile)) }, "not an OCI layout"},
		{"wrong diff_id", func(img Image) error {
			cfg := img.Config
			cfg.RootFS.DiffIDs = slices.Clone(cfg.RootFS.DiffIDs)
			cfg.RootFS.DiffIDs[0] = digest.FromString("nope")
			return rewriteConfig(img, cfg)
		}, "diff_id"},
		{"missing diff_id", func(img Image) error {
			cfg := img.Config
			cfg.RootFS.DiffIDs = cfg.RootFS.DiffIDs[:1]
			return rewriteConfig(img, cfg)
		}, "diff_ids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Random(t.Context(), t.TempDir(), 2, 100, 3)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.corrupt(img); err != nil {
				t.Fatal(err)
			}
			_, err = Load(img.Dir, img.Tag)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load after corrupting %s: %v, want error containing %q", tt.name, err, tt.wantErr)
			}
		})
	}
	if _, err := Load(t.TempDir(), "latest"); err == nil {
		t.Error("Load of an empty dir succeeded")
	}
}

// rewriteConfig stores cfg as a new config blob and writes a new manifest
// and index pointing at it, keeping the layout internally consistent.
func rewriteConfig(img Image, cfg v1.Image) error {
	w := &writer{dir: img.Dir, o: newOptions([]Option{WithTag(img.Tag)})}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cd, err := w.writeBlob(v1.MediaTypeImageConfig, cb)
	if err != nil {
		return err
	}
	m := img.Manifest
	m.Config = cd
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	md, err := w.writeBlob(v1.MediaTypeImageManifest, mb)
	if err != nil {
		return err
	}
	return w.updateIndex(md)
}
