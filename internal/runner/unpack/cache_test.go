package unpack

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

func openCache(t testing.TB, dir string, opts Options) *Cache {
	t.Helper()
	c, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func opener(b []byte, calls *atomic.Int64) Opener {
	return func() (io.ReadCloser, error) {
		if calls != nil {
			calls.Add(1)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

// cacheEmpty fails unless the cache holds no layer and no leftover.
func cacheEmpty(t testing.TB, c *Cache) {
	t.Helper()
	var found []string
	for _, d := range []string{c.layers, c.tmp} {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && p != d && !(e.IsDir() && (p == filepath.Join(d, "sha256") || p == filepath.Join(d, "sha512"))) {
				found = append(found, p)
			}
			return nil
		})
	}
	if len(found) > 0 {
		t.Fatalf("cache not empty: %q", found)
	}
}

func TestLayerMediaTypes(t *testing.T) {
	requireRoot(t)
	tarball := mkTar(t, dir("etc/"), file("etc/hostname", "bulwark"), symlink("etc/alias", "hostname"))
	cases := []struct {
		mt   string
		blob []byte
	}{
		{v1.MediaTypeImageLayer, tarball},
		{v1.MediaTypeImageLayerGzip, gzipBytes(t, tarball)},
		{v1.MediaTypeImageLayerZstd, zstdBytes(t, tarball)},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", gzipBytes(t, tarball)},
	}
	c := openCache(t, t.TempDir(), Options{IDs: testIDs})
	for _, tc := range cases {
		t.Run(tc.mt, func(t *testing.T) {
			desc := descFor(tc.mt, tc.blob)
			if tc.mt == "application/vnd.docker.image.rootfs.diff.tar.gzip" {
				// Same bytes as the OCI gzip case: a distinct digest needs a
				// distinct blob, so add a second gzip member (valid gzip).
				tc.blob = append(tc.blob, gzipBytes(t, nil)...)
				desc = descFor(tc.mt, tc.blob)
			}
			l, err := c.Layer(context.Background(), desc, opener(tc.blob, nil))
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"etc dir", "etc/alias link(hostname)", "etc/hostname file(bulwark)"}
			if got := tree(t, l.Dir); !slices.Equal(got, want) {
				t.Fatalf("tree = %q", got)
			}
			if wantDiff := digest.FromBytes(tarball); l.DiffID != wantDiff {
				t.Fatalf("diffID %s, want %s", l.DiffID, wantDiff)
			}
			if l.Stats.Bytes != int64(len(tarball)) || l.Stats.Entries != 3 {
				t.Fatalf("stats %+v", l.Stats)
			}
			if st := stat(t, l.Dir); st.Uid != testIDs.UIDBase || st.Mode&0o777 != 0o755 {
				t.Fatalf("layer root %d %o", st.Uid, st.Mode&0o777)
			}
		})
	}
}

func TestLayerCachedOnce(t *testing.T) {
	requireRoot(t)
	l := newGzLayer(t, file("f", "x"))
	dir := t.TempDir()
	c := openCache(t, dir, Options{IDs: testIDs})
	if _, err := c.Lookup(l.desc); !errors.Is(err, ErrNotCached) {
		t.Fatalf("Lookup before = %v", err)
	}
	var calls atomic.Int64
	first, err := c.Layer(context.Background(), l.desc, opener(l.blob, &calls))
	if err != nil {
		t.Fatal(err)
	}
	// Another Cache on the same directory (a later process) finds it.
	c2 := openCache(t, dir, Options{IDs: testIDs})
	second, err := c2.Layer(context.Background(), l.desc, opener(l.blob, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || first.Dir != second.Dir || first.DiffID != second.DiffID {
		t.Fatalf("calls=%d %+v %+v", calls.Load(), first, second)
	}
	// Other options are another variant: extracted again, elsewhere.
	c3 := openCache(t, dir, Options{IDs: IDMap{UIDBase: 300000, GIDBase: 300000, Size: 65536}})
	third, err := c3.Layer(context.Background(), l.desc, opener(l.blob, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || third.Dir == first.Dir || stat(t, filepath.Join(third.Dir, "f")).Uid != 300000 {
		t.Fatalf("variant not separate: calls=%d dir=%s", calls.Load(), third.Dir)
	}
}

// TestLayerVerification: a blob that is not what its descriptor says
// aborts and leaves nothing in the cache.
func TestLayerVerification(t *testing.T) {
	requireRoot(t)
	good := gzipBytes(t, mkTar(t, file("f", strings.Repeat("data ", 2000)), file("g", "tail")))
	tampered := bytes.Clone(good)
	tampered[len(tampered)/2] ^= 0xff
	other := gzipBytes(t, mkTar(t, file("other", "x")))
	sha512Desc := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Size: int64(len(good)),
		Digest: digest.NewDigestFromEncoded(digest.SHA512, fmt.Sprintf("%x", sha512.Sum512(good)))}
	cases := []struct {
		name    string
		desc    v1.Descriptor
		blob    []byte
		wantErr error
	}{
		{"good", descFor(v1.MediaTypeImageLayerGzip, good), good, nil},
		{"sha512 digest", sha512Desc, good, nil},
		{"other content", descFor(v1.MediaTypeImageLayerGzip, good), other[:min(len(other), len(good))], ErrSizeMismatch},
		{"same size, other bytes", v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(good), Size: int64(len(tampered))}, tampered, ErrDigestMismatch},
		{"wrong digest, valid layer", v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(other), Size: int64(len(good))}, good, ErrDigestMismatch},
		{"truncated", descFor(v1.MediaTypeImageLayerGzip, good), good[:len(good)-10], ErrSizeMismatch},
		{"longer than declared", descFor(v1.MediaTypeImageLayerGzip, good), append(bytes.Clone(good), make([]byte, 1<<20)...), ErrSizeMismatch},
		{"not gzip", descFor(v1.MediaTypeImageLayerGzip, []byte("plain text, not gzip")), []byte("plain text, not gzip"), ErrInvalidLayer},
		{"unsupported media type", descFor("application/vnd.oci.image.layer.v1.tar+bzip2", good), good, ErrMediaType},
		{"zero size", v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(nil)}, nil, ErrSizeMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := openCache(t, t.TempDir(), Options{IDs: testIDs})
			_, err := c.Layer(context.Background(), tc.desc, opener(tc.blob, nil))
			wantErr(t, err, tc.wantErr)
			if tc.wantErr != nil {
				t.Logf("refused: %v", err)
				cacheEmpty(t, c)
			}
		})
	}
	t.Run("bad digest string", func(t *testing.T) {
		c := openCache(t, t.TempDir(), Options{})
		_, err := c.Layer(context.Background(), v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: "md5:abc", Size: 3}, opener(good, nil))
		if err == nil {
			t.Fatal("md5 digest accepted")
		}
	})
}

// gzipBomb returns a gzip layer whose tar declares one file of `size`
// zero bytes, built from concatenated gzip members (one valid gzip stream
// to a reader) so that making it does not take compressing `size` bytes.
// trailing puts the zeros after the tar's end instead, where only the
// drain sees them.
func gzipBomb(t testing.TB, size int64, trailing bool) []byte {
	t.Helper()
	var head []byte
	if trailing {
		head = mkTar(t, file("small", "x"))
	} else {
		head = rawHeader("bomb", '0', size)
	}
	blob := gzipBytes(t, head)
	member := zeroMember()
	for n := int64(len(head)); n < size; n += zeroChunk {
		blob = append(blob, member...)
	}
	return blob
}

const zeroChunk = 64 << 20

var zeroMember = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(make([]byte, zeroChunk))
	zw.Close()
	return buf.Bytes()
})

func TestLayerGzipBomb(t *testing.T) {
	requireRoot(t)
	for _, trailing := range []bool{false, true} {
		t.Run(fmt.Sprintf("trailing=%v", trailing), func(t *testing.T) {
			bomb := gzipBomb(t, 4<<30, trailing) // 4 GiB uncompressed
			t.Logf("bomb: %d bytes compressed, 4 GiB uncompressed", len(bomb))
			c := openCache(t, t.TempDir(), Options{Limits: Limits{MaxLayerBytes: 32 << 20, MaxEntryBytes: 8 << 30}})
			start := time.Now()
			_, err := c.Layer(context.Background(), descFor(v1.MediaTypeImageLayerGzip, bomb), opener(bomb, nil))
			wantErr(t, err, ErrLimit)
			if el := time.Since(start); el > 20*time.Second {
				t.Fatalf("took %v to refuse", el)
			}
			cacheEmpty(t, c)
		})
	}
	t.Run("entry limit", func(t *testing.T) {
		bomb := gzipBomb(t, 5<<30, false)
		c := openCache(t, t.TempDir(), Options{})
		start := time.Now()
		_, err := c.Layer(context.Background(), descFor(v1.MediaTypeImageLayerGzip, bomb), opener(bomb, nil))
		// MaxEntryBytes, 4 GiB by default: refused before a byte is written.
		wantErr(t, err, ErrLimit)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("took %v to refuse", el)
		}
		cacheEmpty(t, c)
	})
}

// TestLayerConcurrent: many goroutines and two caches (as two processes
// would) ask for the same layer at once; it is extracted into one place
// and every caller gets it.
func TestLayerConcurrent(t *testing.T) {
	requireRoot(t)
	var entries []ent
	for i := range 200 {
		entries = append(entries, file(fmt.Sprintf("d%d/f%d", i%10, i), strings.Repeat("x", i*10)))
	}
	l := newGzLayer(t, entries...)
	dir := t.TempDir()
	caches := []*Cache{openCache(t, dir, Options{IDs: testIDs}), openCache(t, dir, Options{IDs: testIDs})}
	var calls atomic.Int64
	var wg sync.WaitGroup
	dirs := make([]string, 16)
	errs := make([]error, 16)
	for i := range 16 {
		wg.Go(func() {
			got, err := caches[i%2].Layer(context.Background(), l.desc, opener(l.blob, &calls))
			dirs[i], errs[i] = got.Dir, err
		})
	}
	wg.Wait()
	for i := range 16 {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("caller %d: %q, %v (first: %q)", i, dirs[i], errs[i], dirs[0])
		}
	}
	if n := calls.Load(); n < 1 || n > 2 {
		t.Fatalf("opened %d times; one per cache at most", n)
	}
	if got := len(tree(t, dirs[0])); got != 210 {
		t.Fatalf("%d entries", got)
	}
	if left, _ := os.ReadDir(caches[0].tmp); len(left) != 0 {
		t.Fatalf("left in tmp: %v", left)
	}
}

// TestCrashDuringExtraction kills a process in the middle of extracting a
// layer: the half-extracted tree is never served, and the next Open
// removes it.
func TestCrashDuringExtraction(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "UNPACK_CRASH_CHILD="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := make([]byte, 5)
	if _, err := io.ReadFull(stdout, ready); err != nil || string(ready) != "ready" {
		t.Fatalf("child: %q, %v", ready, err)
	}
	// Wait until files of the layer are on disk, then kill.
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(dir, "tmp", "layer-*", "fs", "f*"))
		if len(m) >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child wrote nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	l := crashLayer(t)
	c := openCache(t, dir, Options{}) // leftover too young to be judged abandoned
	if _, err := c.Lookup(l.desc); !errors.Is(err, ErrNotCached) {
		t.Fatalf("half extraction visible: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "tmp", "layer-*"))
	if len(left) != 1 {
		t.Fatalf("leftovers %q", left)
	}
	old := time.Now().Add(-2 * staleAfter)
	os.Chtimes(left[0], old, old)
	c = openCache(t, dir, Options{})
	if left, _ := filepath.Glob(filepath.Join(dir, "tmp", "*")); len(left) != 0 {
		t.Fatalf("abandoned extraction not removed: %q", left)
	}
	got, err := c.Layer(context.Background(), l.desc, opener(l.blob, nil))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tree(t, got.Dir)); n != 500 {
		t.Fatalf("%d entries after re-extraction", n)
	}
}

func crashLayer(t testing.TB) gzLayer {
	var entries []ent
	for i := range 500 {
		entries = append(entries, file(fmt.Sprintf("f%03d", i), strings.Repeat("y", 4096)))
	}
	return newGzLayer(t, entries...)
}

// TestHelperCrashChild is the process TestCrashDuringExtraction kills; it
// does nothing unless started by it.
func TestHelperCrashChild(t *testing.T) {
	dir := os.Getenv("UNPACK_CRASH_CHILD")
	if dir == "" {
		return
	}
	l := crashLayer(t)
	c := openCache(t, dir, Options{})
	os.Stdout.WriteString("ready")
	// Serve most of the blob, then hang: the parent kills us mid-layer.
	half := l.blob[:len(l.blob)*9/10]
	c.Layer(context.Background(), l.desc, func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(half), blockingReader{})), nil
	})
	t.Fatal("extraction finished; it should have hung")
}

type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { select {} }

// TestStaleLeftovers: Open removes abandoned extractions only.
func TestStaleLeftovers(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	c := openCache(t, dir, Options{})
	old := time.Now().Add(-2 * staleAfter)
	mk := func(name string, age time.Time) string {
		p := filepath.Join(c.tmp, name)
		if err := os.MkdirAll(filepath.Join(p, "fs", "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, age, age)
		return p
	}
	abandoned := mk("layer-abandoned", old)
	young := mk("layer-young", time.Now())
	busy := mk("layer-busy", old)
	fd, err := unix.Open(busy, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// flock is per open file description: Open's attempt from this same
	// process conflicts just as another process's would.
	openCache(t, dir, Options{})
	for p, want := range map[string]bool{abandoned: false, young: true, busy: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

// TestDamagedEntry: an entry without layer.json (only outside interference
// can make one) is discarded and extracted again.
func TestDamagedEntry(t *testing.T) {
	requireRoot(t)
	l := newGzLayer(t, file("f", "x"))
	c := openCache(t, t.TempDir(), Options{})
	got, err := c.Layer(context.Background(), l.desc, opener(l.blob, nil))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(filepath.Dir(got.Dir), "layer.json"))
	os.WriteFile(filepath.Join(got.Dir, "planted"), []byte("x"), 0o644)
	var calls atomic.Int64
	got, err = c.Layer(context.Background(), l.desc, opener(l.blob, &calls))
	if err != nil || calls.Load() != 1 {
		t.Fatalf("calls=%d err=%v", calls.Load(), err)
	}
	if want := []string{"f file(x)"}; !slices.Equal(tree(t, got.Dir), want) {
		t.Fatalf("tree = %q", tree(t, got.Dir))
	}
}

func TestLayerContextCanceled(t *testing.T) {
	requireRoot(t)
	l := crashLayer(t)
	c := openCache(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := c.Layer(ctx, l.desc, func() (io.ReadCloser, error) {
		cancel()
		return io.NopCloser(bytes.NewReader(l.blob)), nil
	})
	wantErr(t, err, context.Canceled)
	cacheEmpty(t, c)
}
