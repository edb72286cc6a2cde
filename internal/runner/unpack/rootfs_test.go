package unpack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// blobs serves layer blobs by digest to Rootfs and counts fetches.
type blobs struct {
	m     map[digest.Digest][]byte
	calls atomic.Int64
}

func newBlobs(layers ...gzLayer) (*blobs, []v1.Descriptor) {
	b := &blobs{m: map[digest.Digest][]byte{}}
	var descs []v1.Descriptor
	for _, l := range layers {
		b.m[l.desc.Digest] = l.blob
		descs = append(descs, l.desc)
	}
	return b, descs
}

func (b *blobs) fetch(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	b.calls.Add(1)
	blob, ok := b.m[d.Digest]
	if !ok {
		return nil, errors.New("no such blob")
	}
	return io.NopCloser(bytes.NewReader(blob)), nil
}

func requireOverlay(t testing.TB) {
	t.Helper()
	requireRoot(t)
	if err := CheckOverlay(); err != nil {
		t.Fatalf("overlayfs is required for these tests: %v", err)
	}
}

func mount(t testing.TB, r *Rootfs) string {
	t.Helper()
	mnt := t.TempDir()
	if err := r.Mount(mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Unmount(mnt); err != nil {
			t.Error(err)
		}
	})
	return mnt
}

// TestRootfsOverlayWhiteouts mounts a three-layer image with a real
// overlayfs and checks the merged view: whiteouts, opaque directories,
// directories recreated after a whiteout, replaced files, all across
// layers.
func TestRootfsOverlayWhiteouts(t *testing.T) {
	requireOverlay(t)
	su := file("bin/su", "setuid")
	su.mode = 0o4755
	tmp := dir("tmp/")
	tmp.mode = 0o1777
	l1 := newGzLayer(t, dir("etc/"), file("etc/passwd", "v1"), file("etc/shadow", "s"),
		dir("d/"), file("d/x", "x"), file("d/y", "y"), dir("e/"), file("e/z", "z"),
		file("a", "a"), file("b", "b"), dir("keep/"), file("keep/k", "k"), su, tmp,
		symlink("link", "etc/passwd"), dir("deep/"), dir("deep/er/"), file("deep/er/f", "f"))
	l2 := newGzLayer(t, whiteout(".wh.a"), dir("d/"), whiteout("d/.wh..wh..opq"), file("d/new", "n"),
		whiteout(".wh.e"), dir("e/"), file("e/w", "w"), dir("etc/"), file("etc/passwd", "v2"),
		file("keep/k2", "k2"), whiteout("deep/er/.wh.f"))
	l3 := newGzLayer(t, whiteout(".wh.b"), dir("b/"), file("b/inner", "i"), whiteout(".wh.link"),
		file("a", "back"))
	b, descs := newBlobs(l1, l2, l3)
	c := openCache(t, t.TempDir(), Options{IDs: testIDs})
	r, err := c.Rootfs(context.Background(), descs, b.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Lowerdirs) != 3 || r.Lowerdirs[0] != r.Layers[2].Dir || !r.NoSuid {
		t.Fatalf("rootfs %+v", r)
	}
	mnt := mount(t, r)

	want := []string{
		"a file(back)",
		"b dir", "b/inner file(i)",
		"bin dir", "bin/su file(setuid)",
		"d dir", "d/new file(n)",
		"deep dir", "deep/er dir",
		"e dir", "e/w file(w)",
		"etc dir", "etc/passwd file(v2)", "etc/shadow file(s)",
		"keep dir", "keep/k file(k)", "keep/k2 file(k2)",
		"tmp dir",
	}
	if got := tree(t, mnt); !slices.Equal(got, want) {
		t.Fatalf("merged tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The fallbacks for older kernels give the same view.
	for name, how := range map[string]int{"lowerdir+ by path": layersByPath, "mount(2)": layersLegacy} {
		other := t.TempDir()
		if err := r.mount(other, how); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := tree(t, other)
		if err := Unmount(other); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: merged tree %q", name, got)
		}
	}
	if st := stat(t, filepath.Join(mnt, "etc/passwd")); st.Uid != testIDs.UIDBase || st.Gid != testIDs.GIDBase {
		t.Errorf("etc/passwd owned by %d:%d", st.Uid, st.Gid)
	}
	if m := stat(t, filepath.Join(mnt, "bin/su")).Mode & 0o7777; m != 0o755 {
		t.Errorf("bin/su mode %o", m)
	}
	if m := stat(t, filepath.Join(mnt, "tmp")).Mode & 0o7777; m != 0o1777 {
		t.Errorf("tmp mode %o", m)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(mnt, &sfs); err != nil {
		t.Fatal(err)
	}
	if want := int64(unix.ST_RDONLY | unix.ST_NODEV | unix.ST_NOSUID); sfs.Flags&want != want {
		t.Errorf("mount flags %#x lack ro,nodev,nosuid", sfs.Flags)
	}
	if err := os.WriteFile(filepath.Join(mnt, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write to the rootfs: %v, want EROFS", err)
	}

	// A second Rootfs of the same image fetches nothing.
	before := b.calls.Load()
	if _, err := c.Rootfs(context.Background(), descs, b.fetch); err != nil || b.calls.Load() != before {
		t.Fatalf("second Rootfs: fetched %d more, %v", b.calls.Load()-before, err)
	}
}

// TestRootfsOpaqueRoot: an opaque marker at the top of a layer hides
// every lower layer.
func TestRootfsOpaqueRoot(t *testing.T) {
	requireOverlay(t)
	l1 := newGzLayer(t, file("old", "o"), dir("olddir/"))
	l2 := newGzLayer(t, whiteout(".wh..wh..opq"), file("new", "n"))
	b, descs := newBlobs(l1, l2)
	c := openCache(t, t.TempDir(), Options{})
	r, err := c.Rootfs(context.Background(), descs, b.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Layers[1].Stats.OpaqueRoot || len(r.Lowerdirs) != 2 || r.Lowerdirs[1] != filepath.Join(c.Dir(), "empty") {
		t.Fatalf("rootfs %+v", r)
	}
	mnt := mount(t, r)
	if got := tree(t, mnt); !slices.Equal(got, []string{"new file(n)"}) {
		t.Fatalf("merged tree %q", got)
	}
}

// TestRootfsBusybox runs a program from a mounted one-layer image (the
// cache's empty directory is the second lower dir) as an unprivileged id
// of the container's range.
func TestRootfsBusybox(t *testing.T) {
	requireOverlay(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Fatalf("busybox-static is required: %v", err)
	}
	ctx := context.Background()
	img, err := testimage.Busybox(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
		return os.Open(img.BlobPath(d.Digest))
	}
	c := openCache(t, t.TempDir(), Options{IDs: testIDs})
	r, err := c.Rootfs(ctx, img.Manifest.Layers, fetch)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Lowerdirs) != 2 || r.Lowerdirs[1] != filepath.Join(c.Dir(), "empty") {
		t.Fatalf("lowerdirs %q", r.Lowerdirs)
	}
	if err := r.CheckDiffIDs(img.Config.RootFS.DiffIDs); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckDiffIDs([]digest.Digest{digest.FromString("other")}); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("CheckDiffIDs with a wrong diffID: %v", err)
	}
	mnt := mount(t, r)
	cmd := exec.Command("/bin/sh", "-c", "echo hello from $(id -u)")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     mnt,
		Credential: &syscall.Credential{Uid: testIDs.UIDBase + 1000, Gid: testIDs.GIDBase + 1000},
	}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "hello from 101000"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRootfsFailures(t *testing.T) {
	requireRoot(t)
	good := newGzLayer(t, file("g", "g"))
	other := newGzLayer(t, file("o", "o"))
	big1 := newGzLayer(t, file("big1", strings.Repeat("x", 600<<10)))
	big2 := newGzLayer(t, file("big2", strings.Repeat("y", 600<<10)))

	t.Run("bad layer among good ones", func(t *testing.T) {
		b, descs := newBlobs(good, other)
		bad := descs[1]
		b.m[bad.Digest] = good.blob[:len(good.blob)-1] // truncated in transit
		c := openCache(t, t.TempDir(), Options{})
		_, err := c.Rootfs(context.Background(), descs, b.fetch)
		wantErr(t, err, ErrSizeMismatch)
		if _, err := c.Lookup(bad); !errors.Is(err, ErrNotCached) {
			t.Fatalf("bad layer cached: %v", err)
		}
	})
	t.Run("image size limit", func(t *testing.T) {
		b, descs := newBlobs(big1, big2)
		c := openCache(t, t.TempDir(), Options{Limits: Limits{MaxImageBytes: 1 << 20}})
		_, err := c.Rootfs(context.Background(), descs, b.fetch)
		wantErr(t, err, ErrLimit)
		// With one layer cached already, the limit still counts it.
		if _, err := c.Layer(context.Background(), descs[0], func() (io.ReadCloser, error) { return b.fetch(context.Background(), descs[0]) }); err != nil {
			t.Fatal(err)
		}
		_, err = c.Rootfs(context.Background(), descs, b.fetch)
		wantErr(t, err, ErrLimit)
	})
	t.Run("too many layers", func(t *testing.T) {
		b, descs := newBlobs(good, other, big1)
		c := openCache(t, t.TempDir(), Options{Limits: Limits{MaxLayers: 2}})
		_, err := c.Rootfs(context.Background(), descs, b.fetch)
		wantErr(t, err, ErrLimit)
		if b.calls.Load() != 0 {
			t.Fatal("fetched before checking the layer count")
		}
	})
	t.Run("no layers", func(t *testing.T) {
		c := openCache(t, t.TempDir(), Options{})
		_, err := c.Rootfs(context.Background(), nil, nil)
		wantErr(t, err, ErrInvalidLayer)
	})
	t.Run("fetch error", func(t *testing.T) {
		c := openCache(t, t.TempDir(), Options{})
		_, err := c.Rootfs(context.Background(), []v1.Descriptor{good.desc}, func(context.Context, v1.Descriptor) (io.ReadCloser, error) {
			return nil, errors.New("registry down")
		})
		if err == nil || !strings.Contains(err.Error(), "registry down") {
			t.Fatalf("err = %v", err)
		}
	})
}
