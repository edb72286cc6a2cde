package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

// ent is a tar entry for test layers.
type ent struct {
	typ  byte
	name string
	body string
	link string
	mode int64
}

func file(name, body string) ent { return ent{typ: tar.TypeReg, name: name, body: body, mode: 0o644} }
func dir(name string) ent        { return ent{typ: tar.TypeDir, name: name, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{typ: tar.TypeSymlink, name: name, link: target, mode: 0o777}
}
func hardlink(name, target string) ent { return ent{typ: tar.TypeLink, name: name, link: target} }

func mkTar(t testing.TB, es ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return zw.EncodeAll(b, nil)
}

func layersOf(blobs ...[]byte) []Layer {
	var ls []Layer
	for i, b := range blobs {
		ls = append(ls, Layer{Digest: digest.Digest("sha256:" + strings.Repeat(fmt.Sprint(i), 64)[:64]), Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}})
	}
	return ls
}

// recorder wants every file whose path does not contain "skip" and keeps
// its content, with the content of the version it replaced.
type recorder struct{}

type rec struct{ content, prev string }

func (recorder) Wants(f *File) bool { return !strings.Contains(f.Path, "skip") }
func (recorder) Analyze(_ context.Context, f *File, r io.Reader, prev any) (any, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	v := rec{content: string(b)}
	if p, ok := prev.(rec); ok {
		v.prev = p.content
	}
	return v, nil
}

// summary renders a tree as "path@layer=content(<prev)".
func summary(t *Tree) []string {
	var out []string
	for _, e := range t.Entries {
		r := e.Value.(rec)
		s := fmt.Sprintf("%s@%d=%s", e.File.Path, e.File.Layer, r.content)
		if r.prev != "" {
			s += "<" + r.prev
		}
		out = append(out, s)
	}
	return out
}

func walk(t *testing.T, blobs ...[]byte) *Tree {
	t.Helper()
	tree, err := WalkLayers(context.Background(), layersOf(blobs...), []Analyzer{recorder{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestWalkLayersWhiteouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers [][]ent
		want   []string
	}{
		{"overwrite, whiteout, add", [][]ent{
			{dir("d/"), file("a", "1"), file("d/b", "2")},
			{file("a", "3"), file("d/.wh.b", ""), file("c", "4")},
		}, []string{"/a@1=3<1", "/c@1=4"}},
		{"opaque directory hides lower layers only", [][]ent{
			{file("d/x", "1"), file("d/y", "2"), file("e/x", "3")},
			{file("d/z", "4"), file("d/.wh..wh..opq", "")},
		}, []string{"/d/z@1=4", "/e/x@0=3"}},
		{"whiteout of a directory", [][]ent{
			{file("d/e/f", "1"), file("de", "2")},
			{file(".wh.d", "")},
		}, []string{"/de@0=2"}},
		{"whiteout hides lower layers only", [][]ent{
			{file("a", "1")},
			{file("a", "2"), file(".wh.a", "")},
		}, []string{"/a@1=2<1"}},
		{"file replaces directory", [][]ent{
			{file("d/f", "1"), file("d2/f", "2")},
			{symlink("d", "/etc"), file("d2", "3")},
		}, []string{"/d2@1=3"}},
		{"directory replaces file", [][]ent{
			{file("x", "1")},
			{dir("x/")},
		}, nil},
		{"directory entry over a directory keeps its files", [][]ent{
			{file("x/f", "1")},
			{dir("x/")},
		}, []string{"/x/f@0=1"}},
		{"symlink replaces file", [][]ent{
			{file("x", "1")},
			{symlink("x", "y")},
		}, nil},
		{"hardlink shares the target's value", [][]ent{
			{file("bin/a", "1")},
			{hardlink("bin/h", "bin/a"), hardlink("bin/dangling", "nowhere")},
		}, []string{"/bin/a@0=1", "/bin/h@1=1"}},
		{"recreated after whiteout has no previous value", [][]ent{
			{file("a", "1")},
			{file(".wh.a", "")},
			{file("a", "2")},
		}, []string{"/a@2=2"}},
		{"duplicate entry: last wins", [][]ent{
			{file("a", "1"), file("a", "2")},
		}, []string{"/a@0=2<1"}},
		{"names: ./, absolute, aufs metadata", [][]ent{
			{file("./a", "1"), file("/b", "2"), file(".wh..wh.plnk/1.2", "x"), file("skip", "x")},
		}, []string{"/a@0=1", "/b@0=2"}},
		{"whiteout of everything at the root", [][]ent{
			{file("a", "1"), file("d/b", "2")},
			{file(".wh..wh..opq", ""), file("c", "3")},
		}, []string{"/c@1=3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var blobs [][]byte
			for _, l := range tc.layers {
				blobs = append(blobs, mkTar(t, l...))
			}
			if got := summary(walk(t, blobs...)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWalkLayersCompression(t *testing.T) {
	raw := mkTar(t, file("etc/os-release", "ID=x"))
	for name, blob := range map[string][]byte{"tar": raw, "gzip": gz(t, raw), "zstd": zst(t, raw)} {
		t.Run(name, func(t *testing.T) {
			if got := summary(walk(t, blob)); !reflect.DeepEqual(got, []string{"/etc/os-release@0=ID=x"}) {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestWalkLayersHostile(t *testing.T) {
	ctx := context.Background()
	good := mkTar(t, file("a", "1"))
	tree := walk(t, mkTar(t, file("../../etc/passwd", "x"), file("a/../../b", "y"), file("ok", "z")))
	if got := summary(tree); !reflect.DeepEqual(got, []string{"/ok@0=z"}) || len(tree.Problems) != 2 {
		t.Fatalf("climbing names: %q, problems %v", got, tree.Problems)
	}
	for _, tc := range []struct {
		name   string
		blobs  [][]byte
		opts   Options
		target error
	}{
		{"garbage", [][]byte{[]byte("this is not a tar archive, not at all, no. " + strings.Repeat("x", 600))}, Options{}, ErrInvalidLayer},
		{"truncated tar", [][]byte{mkTar(t, file("a", strings.Repeat("x", 5000)))[:1500]}, Options{}, ErrInvalidLayer},
		{"truncated gzip", [][]byte{gz(t, good)[:30]}, Options{}, ErrInvalidLayer},
		{"bad gzip header", [][]byte{append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{0}, 20)...)}, Options{}, ErrInvalidLayer},
		{"too many entries", [][]byte{mkTar(t, file("a", "1"), file("b", "2"), file("c", "3"))}, Options{MaxEntries: 2}, ErrLimit},
		{"too many layers", [][]byte{good, good, good}, Options{MaxLayers: 2}, ErrLimit},
		{"decompression bomb", [][]byte{gz(t, mkTar(t, file("zeros", strings.Repeat("\x00", 1<<20))))}, Options{MaxLayerBytes: 512 << 10}, ErrLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WalkLayers(ctx, layersOf(tc.blobs...), []Analyzer{recorder{}}, tc.opts)
			if !errors.Is(err, tc.target) {
				t.Fatalf("err %v, want %v", err, tc.target)
			}
		})
	}
	// An empty layer (zero bytes, or only the end marker) is fine.
	if got := summary(walk(t, nil, mkTar(t))); got != nil {
		t.Fatalf("empty layers: %q", got)
	}
}

func TestWalkLayersOpenAndCloseErrors(t *testing.T) {
	boom := errors.New("boom")
	ls := []Layer{{Digest: "sha256:x", Open: func(context.Context) (io.ReadCloser, error) { return nil, boom }}}
	if _, err := WalkLayers(context.Background(), ls, nil, Options{}); !errors.Is(err, boom) {
		t.Fatalf("open: %v", err)
	}
	// A verifying reader reports a digest mismatch on Close: the walk fails.
	ls = []Layer{{Digest: "sha256:x", Open: func(context.Context) (io.ReadCloser, error) {
		return failingCloser{bytes.NewReader(mkTar(t, file("a", "1")))}, nil
	}}}
	if _, err := WalkLayers(context.Background(), ls, []Analyzer{recorder{}}, Options{}); !errors.Is(err, errClose) {
		t.Fatalf("close: %v", err)
	}
}

var errClose = errors.New("digest mismatch")

type failingCloser struct{ io.Reader }

func (failingCloser) Close() error { return errClose }

func TestWalkLayersCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WalkLayers(ctx, layersOf(mkTar(t, file("a", "1"))), []Analyzer{recorder{}}, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

// upper keeps the upper-cased content: a second analyzer of the same files.
type upper struct{}

func (upper) Wants(f *File) bool { return true }
func (upper) Analyze(_ context.Context, _ *File, r io.Reader, _ any) (any, error) {
	b, err := io.ReadAll(r)
	return strings.ToUpper(string(b)), err
}

func TestWalkLayersTwoAnalyzersShareAFile(t *testing.T) {
	tree, err := WalkLayers(context.Background(), layersOf(mkTar(t, file("a", "abc"), file("big", "0123456789"))),
		[]Analyzer{recorder{}, upper{}}, Options{MaxFileSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, e := range tree.Entries {
		got[fmt.Sprint(e.File.Path, e.Analyzer)] = e.Value
	}
	want := map[string]any{"/a0": rec{content: "abc"}, "/a1": "ABC", "/big0": rec{content: "0123456789"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if len(tree.Problems) != 1 || tree.Problems[0].Path != "/big" {
		t.Fatalf("problems %v", tree.Problems)
	}
}

func TestWalkDir(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o644)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc", "sub"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "a"), []byte("1"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "sub", "b"), []byte("2"), 0o755)
	os.Chmod(filepath.Join(root, "etc", "sub", "b"), 0o755|os.ModeSetuid)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "etc", "abs-link"))
	os.Symlink("../../../../"+outside, filepath.Join(root, "etc", "rel-link"))
	os.Symlink(outside, filepath.Join(root, "dirlink"))
	tree, err := WalkDir(context.Background(), root, []Analyzer{recorder{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(tree); !reflect.DeepEqual(got, []string{"/etc/a@-1=1", "/etc/sub/b@-1=2"}) {
		t.Fatalf("got %q", got)
	}
	if m := tree.Entries[1].File.Mode; m&os.ModeSetuid == 0 || m.Perm() != 0o755 {
		t.Fatalf("mode %v", m)
	}
	if _, err := WalkDir(context.Background(), filepath.Join(root, "etc", "a"), nil, Options{}); err == nil {
		t.Fatal("a file accepted as root")
	}
}

func FuzzWalkLayers(f *testing.F) {
	f.Add(mkTar(f, file("a", "1"), file(".wh.a", ""), hardlink("h", "a"), dir("d/"), file("d/.wh..wh..opq", "")))
	f.Add(mkTar(f, file("../x", "1"), symlink("s", "/"), file("s/x", "2")))
	f.Add(gz(f, mkTar(f, file("a", "1"))))
	f.Fuzz(func(t *testing.T, b []byte) {
		base := mkTar(t, file("a", "1"), file("d/b", "2"))
		tree, err := WalkLayers(context.Background(), layersOf(base, b), []Analyzer{recorder{}}, Options{MaxEntries: 1000})
		if err != nil {
			return
		}
		for _, e := range tree.Entries {
			if !strings.HasPrefix(e.File.Path, "/") || strings.Contains(e.File.Path, "..") && strings.Contains(e.File.Path, "/../") {
				t.Fatalf("bad path %q", e.File.Path)
			}
		}
	})
}
