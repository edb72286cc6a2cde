package unpack

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

var testTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ent is one tar entry for the layer builders.
type ent struct {
	typ      byte
	name     string
	link     string
	body     string
	mode     int64
	uid, gid int
	major    int64
	pax      map[string]string
}

func file(name, body string) ent { return ent{typ: tar.TypeReg, name: name, body: body, mode: 0o644} }
func dir(name string) ent        { return ent{typ: tar.TypeDir, name: name, mode: 0o755} }
func symlink(name, to string) ent {
	return ent{typ: tar.TypeSymlink, name: name, link: to, mode: 0o777}
}
func hardlink(name, to string) ent {
	return ent{typ: tar.TypeLink, name: name, link: to, mode: 0o644}
}
func whiteout(name string) ent { return ent{typ: tar.TypeReg, name: name, mode: 0o600} }

// mkTar builds an uncompressed layer. Names are written exactly as given,
// hostile ones included (archive/tar's writer does not sanitise).
func mkTar(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode,
			Uid: e.uid, Gid: e.gid, ModTime: testTime, Size: int64(len(e.body)),
			Devmajor: e.major, PAXRecords: e.pax, Format: tar.FormatPAX,
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func descFor(mt string, blob []byte) v1.Descriptor {
	return v1.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
}

// gzLayer is a gzip layer blob with its descriptor.
type gzLayer struct {
	desc v1.Descriptor
	blob []byte
}

func newGzLayer(t testing.TB, entries ...ent) gzLayer {
	b := gzipBytes(t, mkTar(t, entries...))
	return gzLayer{desc: descFor(v1.MediaTypeImageLayerGzip, b), blob: b}
}

func (l gzLayer) open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l.blob)), nil }

// host is a fake host filesystem around a root: a sentinel directory with
// a secret that every hostile layer tries to reach, and a snapshot of
// everything outside the root to compare after the test.
type host struct {
	base, root, sentinel, secret string
	before                       string
}

func newHost(t testing.TB) *host {
	t.Helper()
	return newHostIn(t, t.TempDir())
}

// newHostIn builds the host in base, an empty directory.
func newHostIn(t testing.TB, base string) *host {
	t.Helper()
	h := &host{base: base, root: filepath.Join(base, "root"), sentinel: filepath.Join(base, "host")}
	h.secret = filepath.Join(h.sentinel, "secret")
	for _, d := range []string{h.root, h.sentinel, filepath.Join(h.sentinel, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(h.secret, []byte("do not touch"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.before = snapshot(t, base, h.root)
	return h
}

// untouched fails the test if anything outside the root changed.
func (h *host) untouched(t testing.TB) {
	t.Helper()
	if after := snapshot(t, h.base, h.root); after != h.before {
		t.Fatalf("the host outside the root changed:\nbefore:\n%s\nafter:\n%s", h.before, after)
	}
}

// snapshot lists every path under base except below skip, with type, mode,
// owner, size, times and a content hash.
func snapshot(t testing.TB, base, skip string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			lines = append(lines, "root/ (not compared)")
			return fs.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		sum := ""
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			sum = hex.EncodeToString(s[:8])
		}
		rel, _ := filepath.Rel(base, p)
		lines = append(lines, fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%d mtime=%d nlink=%d %s",
			rel, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Nano(), st.Nlink, sum))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// tree lists a directory recursively as "path type" lines, for exact
// comparisons of extraction results.
func tree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel+" "+kind(t, p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kind(t testing.TB, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if v, err := getxattr(p, opaqueXattr); err == nil && v == "y" {
			return "dir(opaque)"
		}
		return "dir"
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("file(%s)", b)
	case unix.S_IFLNK:
		l, _ := os.Readlink(p)
		return "link(" + l + ")"
	case unix.S_IFCHR:
		if st.Rdev == 0 {
			return "whiteout"
		}
		return fmt.Sprintf("chr(%d:%d)", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		return "blk"
	case unix.S_IFIFO:
		return "fifo"
	}
	return "other"
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func stat(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (chown, mknod, trusted xattrs, mount); the project's tests run as root")
	}
}
