package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var testIDs = IDMap{UIDBase: 100000, GIDBase: 200000, Size: 65536}

// TestApplyHostile is the hostile-layer corpus: every case is applied into
// a root beside a sentinel directory (standing in for the host's /etc) and
// must leave everything outside the root exactly as it was, with the
// documented error or the documented result.
func TestApplyHostile(t *testing.T) {
	requireRoot(t)
	long := strings.Repeat("a", 5000)
	cases := []struct {
		name    string
		opts    Options
		layer   func(h *host) []byte
		wantErr error
		check   func(t *testing.T, h *host, st Stats)
	}{
		{
			name:    "dotdot traversal",
			layer:   func(h *host) []byte { return mkTar(t, file("../host/secret", "pwned")) },
			wantErr: ErrUnsafePath,
		},
		{
			name:    "dotdot inside a path",
			layer:   func(h *host) []byte { return mkTar(t, dir("a/"), file("a/../../host/secret", "pwned")) },
			wantErr: ErrUnsafePath,
		},
		{
			name:    "absolute dotdot",
			layer:   func(h *host) []byte { return mkTar(t, file("/../../../"+h.secret, "pwned")) },
			wantErr: ErrUnsafePath,
		},
		{
			name:  "absolute path lands inside the root",
			layer: func(h *host) []byte { return mkTar(t, file(h.secret, "inside")) },
			check: func(t *testing.T, h *host, _ Stats) {
				if got := kind(t, filepath.Join(h.root, h.secret)); got != "file(inside)" {
					t.Fatalf("got %s", got)
				}
			},
		},
		{
			name: "absolute symlink then write through it",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("evil", h.sentinel), file("evil/secret", "pwned"))
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "relative symlink then write through it",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("evil", "../host"), file("evil/secret", "pwned"))
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "symlink then directory through it",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("evil", "../host"), dir("evil/sub/newdir/"))
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "symlink chain",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("a", "b"), symlink("b", "../host"), file("a/secret", "pwned"))
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "directory replaced by a symlink, then written through",
			layer: func(h *host) []byte {
				return mkTar(t, dir("d/"), file("d/f", "x"), symlink("d", h.sentinel), file("d/secret", "pwned"))
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "symlink inside the root is still not followed",
			layer: func(h *host) []byte {
				return mkTar(t, dir("real/"), symlink("alias", "real"), file("alias/f", "x"))
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "file over a symlink replaces the symlink",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("link", h.secret), file("link", "replaced"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				if got := kind(t, filepath.Join(h.root, "link")); got != "file(replaced)" {
					t.Fatalf("got %s", got)
				}
			},
		},
		{
			name: "symlinks pointing anywhere are created, not followed",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("abs", h.secret), symlink("rel", "../../../../host/secret"), symlink("self", "self"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				want := []string{"abs link(" + h.secret + ")", "rel link(../../../../host/secret)", "self link(self)"}
				if got := tree(t, h.root); !slices.Equal(got, want) {
					t.Fatalf("tree = %q, want %q", got, want)
				}
			},
		},
		{
			name:    "hardlink out by dotdot",
			layer:   func(h *host) []byte { return mkTar(t, hardlink("h", "../host/secret")) },
			wantErr: ErrUnsafePath,
		},
		{
			name:    "hardlink to an absolute host path stays inside (and finds nothing)",
			layer:   func(h *host) []byte { return mkTar(t, hardlink("h", h.secret)) },
			wantErr: ErrInvalidLayer,
		},
		{
			name: "hardlink through a symlinked parent",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("s", h.sentinel), hardlink("h", "s/secret"))
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "hardlink to a symlink pointing out, then written",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("s", h.secret), hardlink("h", "s"), file("h", "pwned?"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				want := []string{"h file(pwned?)", "s link(" + h.secret + ")"}
				if got := tree(t, h.root); !slices.Equal(got, want) {
					t.Fatalf("tree = %q, want %q", got, want)
				}
			},
		},
		{
			name: "hardlink to a symlink is a second symlink",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("s", h.secret), hardlink("h", "s"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				if got := kind(t, filepath.Join(h.root, "h")); got != "link("+h.secret+")" {
					t.Fatalf("got %s", got)
				}
			},
		},
		{
			name:    "hardlink to a directory",
			layer:   func(h *host) []byte { return mkTar(t, dir("d/"), hardlink("h", "d")) },
			wantErr: ErrInvalidLayer,
		},
		{
			name: "hardlink within the layer",
			layer: func(h *host) []byte {
				return mkTar(t, dir("a/"), file("a/f", "data"), hardlink("b/g", "a/f"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				if st := stat(t, filepath.Join(h.root, "b/g")); st.Nlink != 2 {
					t.Fatalf("nlink = %d", st.Nlink)
				}
			},
		},
		{
			name: "device nodes and fifos are dropped",
			layer: func(h *host) []byte {
				return mkTar(t,
					ent{typ: tar.TypeChar, name: "dev/mem", mode: 0o666, major: 1},
					ent{typ: tar.TypeBlock, name: "dev/sda", mode: 0o666, major: 8},
					ent{typ: tar.TypeFifo, name: "fifo", mode: 0o666},
					ent{typ: tar.TypeChar, name: "fake-whiteout", mode: 0o666})
			},
			check: func(t *testing.T, h *host, st Stats) {
				if got := tree(t, h.root); len(got) != 0 {
					t.Fatalf("tree = %q", got)
				}
				if st.Dropped != 4 {
					t.Fatalf("dropped = %d", st.Dropped)
				}
			},
		},
		{
			name: "devices and fifos kept when allowed, owners shifted",
			opts: Options{KeepDevices: true, KeepFifos: true, IDs: testIDs},
			layer: func(h *host) []byte {
				return mkTar(t,
					ent{typ: tar.TypeChar, name: "null", mode: 0o666, major: 1},
					ent{typ: tar.TypeFifo, name: "fifo", mode: 0o640, uid: 5, gid: 6})
			},
			check: func(t *testing.T, h *host, _ Stats) {
				if got := tree(t, h.root); !slices.Equal(got, []string{"fifo fifo", "null chr(1:0)"}) {
					t.Fatalf("tree = %q", got)
				}
				if st := stat(t, filepath.Join(h.root, "fifo")); st.Uid != 100005 || st.Gid != 200006 || st.Mode&0o7777 != 0o640 {
					t.Fatalf("fifo uid=%d gid=%d mode=%o", st.Uid, st.Gid, st.Mode&0o7777)
				}
			},
		},
		{
			name: "setuid and setgid stripped",
			layer: func(h *host) []byte {
				su := file("bin/su", "#!")
				su.mode = 0o4755
				sg := file("bin/wall", "#!")
				sg.mode = 0o2755
				d := dir("mail/")
				d.mode = 0o2775
				tmp := dir("tmp/")
				tmp.mode = 0o1777
				return mkTar(t, su, sg, d, tmp)
			},
			check: func(t *testing.T, h *host, st Stats) {
				for p, want := range map[string]uint32{"bin/su": 0o755, "bin/wall": 0o755, "mail": 0o2775, "tmp": 0o1777} {
					if got := stat(t, filepath.Join(h.root, p)).Mode & 0o7777; got != want {
						t.Errorf("%s mode %o, want %o", p, got, want)
					}
				}
				if st.Stripped != 2 {
					t.Errorf("stripped = %d", st.Stripped)
				}
			},
		},
		{
			name: "setuid kept when allowed",
			opts: Options{AllowSetuid: true, IDs: testIDs},
			layer: func(h *host) []byte {
				su := file("su", "#!")
				su.mode = 0o4755
				return mkTar(t, su)
			},
			check: func(t *testing.T, h *host, _ Stats) {
				if got := stat(t, filepath.Join(h.root, "su")).Mode & 0o7777; got != 0o4755 {
					t.Fatalf("mode %o", got)
				}
			},
		},
		{
			name: "owners shifted into the range",
			opts: Options{IDs: testIDs},
			layer: func(h *host) []byte {
				f := file("f", "x")
				f.uid, f.gid = 1000, 1001
				l := symlink("l", "f")
				l.uid, l.gid = 7, 8
				return mkTar(t, dir("./"), f, l)
			},
			check: func(t *testing.T, h *host, _ Stats) {
				for p, want := range map[string][2]uint32{"": {100000, 200000}, "f": {101000, 201001}, "l": {100007, 200008}} {
					st := stat(t, filepath.Join(h.root, p))
					if st.Uid != want[0] || st.Gid != want[1] {
						t.Errorf("%q owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, want[0], want[1])
					}
				}
			},
		},
		{
			name: "implicit parents belong to the container's root",
			opts: Options{IDs: testIDs},
			layer: func(h *host) []byte {
				return mkTar(t, file("a/b/c", "x"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				st := stat(t, filepath.Join(h.root, "a/b"))
				if st.Uid != 100000 || st.Gid != 200000 || st.Mode&0o7777 != 0o755 {
					t.Fatalf("a/b %d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
				}
			},
		},
		{
			name: "owner beyond the range refused",
			opts: Options{IDs: testIDs},
			layer: func(h *host) []byte {
				f := file("f", "x")
				f.uid = 70000
				return mkTar(t, f)
			},
			wantErr: ErrIDOutOfRange,
		},
		{
			name: "owner beyond the range clamped when asked",
			opts: Options{IDs: testIDs, ClampIDs: true},
			layer: func(h *host) []byte {
				f := file("f", "x")
				f.uid, f.gid = 70000, 1<<31
				return mkTar(t, f)
			},
			check: func(t *testing.T, h *host, st Stats) {
				s := stat(t, filepath.Join(h.root, "f"))
				if s.Uid != 100000+65534 || s.Gid != 200000+65534 || st.Clamped != 1 {
					t.Fatalf("owner %d:%d clamped=%d", s.Uid, s.Gid, st.Clamped)
				}
			},
		},
		{
			name:    "whiteout of dotdot",
			layer:   func(h *host) []byte { return mkTar(t, whiteout(".wh..."), whiteout("a/.wh...")) },
			wantErr: ErrUnsafePath,
		},
		{
			name:    "whiteout of dot",
			layer:   func(h *host) []byte { return mkTar(t, whiteout("a/.wh..")) },
			wantErr: ErrUnsafePath,
		},
		{
			name:    "whiteout of nothing",
			layer:   func(h *host) []byte { return mkTar(t, whiteout(".wh.")) },
			wantErr: ErrUnsafePath,
		},
		{
			name:    "whiteout that climbs out",
			layer:   func(h *host) []byte { return mkTar(t, whiteout("../.wh.host")) },
			wantErr: ErrUnsafePath,
		},
		{
			name: "whiteout through a symlink",
			layer: func(h *host) []byte {
				return mkTar(t, symlink("s", h.sentinel), whiteout("s/.wh.secret"), whiteout("s/.wh..wh..opq"))
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "whiteouts become overlayfs whiteouts",
			layer: func(h *host) []byte {
				return mkTar(t, whiteout(".wh.gone"), dir("d/"), whiteout("d/.wh..wh..opq"), file("d/kept", "k"),
					whiteout("e/.wh.x"), whiteout(".wh..wh.plnk"))
			},
			check: func(t *testing.T, h *host, st Stats) {
				want := []string{"d dir(opaque)", "d/kept file(k)", "e dir", "e/x whiteout", "gone whiteout"}
				if got := tree(t, h.root); !slices.Equal(got, want) {
					t.Fatalf("tree = %q, want %q", got, want)
				}
				if st.Whiteouts != 3 || st.Dropped != 1 {
					t.Fatalf("whiteouts=%d dropped=%d", st.Whiteouts, st.Dropped)
				}
			},
		},
		{
			// OCI: a whiteout hides lower layers only, never its own layer.
			name: "whiteout after its target in the same layer",
			layer: func(h *host) []byte {
				return mkTar(t, file("f", "stays"), whiteout(".wh.f"), dir("d/"), file("d/g", "stays"), whiteout(".wh.d"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				want := []string{"d dir(opaque)", "d/g file(stays)", "f file(stays)"}
				if got := tree(t, h.root); !slices.Equal(got, want) {
					t.Fatalf("tree = %q, want %q", got, want)
				}
			},
		},
		{
			name: "directory recreated after its whiteout is opaque",
			layer: func(h *host) []byte {
				return mkTar(t, whiteout(".wh.d"), dir("d/"), file("d/new", "n"), whiteout(".wh.e"), file("e/new", "n"),
					whiteout(".wh.f"), file("f", "file"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				want := []string{"d dir(opaque)", "d/new file(n)", "e dir(opaque)", "e/new file(n)", "f file(file)"}
				if got := tree(t, h.root); !slices.Equal(got, want) {
					t.Fatalf("tree = %q, want %q", got, want)
				}
			},
		},
		{
			name: "duplicate entries: last wins",
			layer: func(h *host) []byte {
				return mkTar(t, file("f", "first"), file("f", "second"),
					dir("d/"), file("d/x", "x"), file("d", "file now"),
					file("e", "file"), dir("e/"), file("e/y", "y"),
					symlink("s", "a"), symlink("s", "b"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				want := []string{"d file(file now)", "e dir", "e/y file(y)", "f file(second)", "s link(b)"}
				if got := tree(t, h.root); !slices.Equal(got, want) {
					t.Fatalf("tree = %q, want %q", got, want)
				}
			},
		},
		{
			name:    "entry below a regular file",
			layer:   func(h *host) []byte { return mkTar(t, file("f", "x"), file("f/g", "y")) },
			wantErr: ErrInvalidLayer,
		},
		{
			name:    "root as a symlink",
			layer:   func(h *host) []byte { return mkTar(t, symlink("./", h.sentinel)) },
			wantErr: ErrInvalidLayer,
		},
		{
			name: "root entry sets the root's metadata",
			opts: Options{IDs: testIDs},
			layer: func(h *host) []byte {
				r := dir("./")
				r.mode, r.uid = 0o750, 3
				return mkTar(t, r, file("f", "x"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				st := stat(t, h.root)
				if st.Mode&0o7777 != 0o750 || st.Uid != 100003 || st.Mtim.Sec != testTime.Unix() {
					t.Fatalf("root mode %o uid %d mtime %d", st.Mode&0o7777, st.Uid, st.Mtim.Sec)
				}
			},
		},
		{
			name:    "very long name",
			layer:   func(h *host) []byte { return mkTar(t, file(long, "x")) },
			wantErr: ErrLimit,
		},
		{
			name:    "very long component",
			layer:   func(h *host) []byte { return mkTar(t, file("a/"+strings.Repeat("b", 256), "x")) },
			wantErr: ErrLimit,
		},
		{
			name:    "very long symlink target",
			layer:   func(h *host) []byte { return mkTar(t, symlink("l", long)) },
			wantErr: ErrLimit,
		},
		{
			name: "pax path climbing out",
			layer: func(h *host) []byte {
				return rawTar(t, paxEntry(map[string]string{"path": "../../host/secret"}, "innocent", "pwned"))
			},
			wantErr: ErrUnsafePath,
		},
		{
			name:    "pax negative uid",
			layer:   func(h *host) []byte { return rawTar(t, paxEntry(map[string]string{"uid": "-1"}, "f", "x")) },
			wantErr: ErrIDOutOfRange,
		},
		{
			name:    "pax huge uid without a user namespace",
			layer:   func(h *host) []byte { return rawTar(t, paxEntry(map[string]string{"uid": "4294967295"}, "f", "x")) },
			wantErr: ErrIDOutOfRange,
		},
		{
			name:    "pax size that lies",
			layer:   func(h *host) []byte { return rawTar(t, paxEntry(map[string]string{"size": "-5"}, "f", "x")) },
			wantErr: ErrInvalidLayer,
		},
		{
			name:    "pax size beyond the data",
			layer:   func(h *host) []byte { return rawTar(t, paxEntry(map[string]string{"size": "999999"}, "f", "x")) },
			wantErr: ErrInvalidLayer,
		},
		{
			name:    "pax record that does not parse",
			layer:   func(h *host) []byte { return rawTar(t, rawPax("99999 path=x\n"), rawHeader("f", tar.TypeReg, 0)) },
			wantErr: ErrInvalidLayer,
		},
		{
			name: "pax times far out and xattrs of every namespace",
			layer: func(h *host) []byte {
				return rawTar(t,
					paxEntry(map[string]string{
						"mtime":                               "99999999999999.5",
						"atime":                               "-99999",
						"SCHILY.xattr.user.note":              "kept",
						"SCHILY.xattr.trusted.overlay.opaque": "y",
						"SCHILY.xattr.security.capability":    "\x01\x00\x00\x02",
					}, "f", "x"))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				p := filepath.Join(h.root, "f")
				if v, err := getxattr(p, "user.note"); err != nil || v != "kept" {
					t.Errorf("user.note = %q, %v", v, err)
				}
				for _, x := range []string{opaqueXattr, "security.capability"} {
					if _, err := getxattr(p, x); err == nil {
						t.Errorf("%s was applied", x)
					}
				}
				if st := stat(t, p); st.Mtim.Sec != maxTime || st.Atim.Sec != 0 {
					t.Errorf("times %d/%d", st.Mtim.Sec, st.Atim.Sec)
				}
			},
		},
		{
			name:    "NUL in a name",
			layer:   func(h *host) []byte { return rawTar(t, paxEntry(map[string]string{"path": "a\x00b"}, "f", "x")) },
			wantErr: ErrInvalidLayer, // archive/tar refuses it before we see it
		},
		{
			name:    "unknown entry type",
			layer:   func(h *host) []byte { return rawTar(t, rawHeader("v", 'V', 0)) },
			wantErr: ErrInvalidLayer,
		},
		{
			name:    "too many entries",
			opts:    Options{Limits: Limits{MaxEntries: 5}},
			layer:   func(h *host) []byte { return mkTar(t, manyFiles(6)...) },
			wantErr: ErrLimit,
		},
		{
			name:    "file larger than the entry limit",
			opts:    Options{Limits: Limits{MaxEntryBytes: 1000}},
			layer:   func(h *host) []byte { return mkTar(t, file("big", strings.Repeat("x", 1001))) },
			wantErr: ErrLimit,
		},
		{
			name:    "stream larger than the layer limit",
			opts:    Options{Limits: Limits{MaxLayerBytes: 10 << 10}},
			layer:   func(h *host) []byte { return mkTar(t, file("big", strings.Repeat("x", 20<<10))) },
			wantErr: ErrLimit,
		},
		{
			name:    "sparse file larger than the entry limit",
			layer:   func(h *host) []byte { return rawTar(t, sparseEntry("sparse", 1<<40)) },
			wantErr: ErrLimit,
		},
		{
			// Each entry passes MaxEntryBytes; together they would write
			// far more than the few hundred bytes of tar.
			name: "sparse files adding up",
			opts: Options{Limits: Limits{MaxLayerBytes: 64 << 20, MaxEntryBytes: 40 << 20}},
			layer: func(h *host) []byte {
				return rawTar(t, sparseEntry("s1", 40<<20), sparseEntry("s2", 40<<20))
			},
			wantErr: ErrLimit,
		},
		{
			name: "sparse file within limits",
			layer: func(h *host) []byte {
				return rawTar(t, sparseEntry("sparse", 3<<20))
			},
			check: func(t *testing.T, h *host, _ Stats) {
				b, err := os.ReadFile(filepath.Join(h.root, "sparse"))
				if err != nil || len(b) != 3<<20 || b[0] != 'x' || b[1] != 0 {
					t.Fatalf("sparse file: %d bytes, %v", len(b), err)
				}
			},
		},
		{
			name:    "not a tar",
			layer:   func(h *host) []byte { return bytes.Repeat([]byte("garbage!"), 200) },
			wantErr: ErrInvalidLayer,
		},
		{
			name:  "empty tar",
			layer: func(h *host) []byte { return mkTar(t) },
			check: func(t *testing.T, h *host, _ Stats) {
				if got := tree(t, h.root); len(got) != 0 {
					t.Fatalf("tree = %q", got)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			st, err := ApplyLayer(context.Background(), h.root, bytes.NewReader(tc.layer(h)), tc.opts)
			h.untouched(t)
			wantErr(t, err, tc.wantErr)
			if err != nil {
				t.Logf("refused as documented: %v", err)
			}
			if tc.check != nil {
				tc.check(t, h, st)
			}
		})
	}
}

func manyFiles(n int) []ent {
	var es []ent
	for i := range n {
		es = append(es, file(fmt.Sprintf("f%d", i), "x"))
	}
	return es
}

// Raw tar blocks, for headers archive/tar's writer would not produce.

func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", testTime.Unix()))
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func rawPax(records string) []byte {
	return append(rawHeader("PaxHeaders/x", tar.TypeXHeader, int64(len(records))), pad([]byte(records))...)
}

// paxEntry is a pax extended header with the given records followed by a
// regular file.
func paxEntry(records map[string]string, name, body string) []byte {
	var rec strings.Builder
	keys := make([]string, 0, len(records))
	for k := range records {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kv := " " + k + "=" + records[k] + "\n"
		total := len(kv) + len(strconv.Itoa(len(kv)))
		if len(strconv.Itoa(total)) != len(strconv.Itoa(len(kv))) {
			total++
		}
		rec.WriteString(strconv.Itoa(total) + kv)
	}
	out := rawPax(rec.String())
	out = append(out, rawHeader(name, tar.TypeReg, int64(len(body)))...)
	return append(out, pad([]byte(body))...)
}

// sparseEntry is a PAX (GNU 1.0) sparse file of the given apparent size
// holding one byte of data: a few hundred bytes of tar.
func sparseEntry(name string, size int64) []byte {
	body := pad([]byte("1\n0\n1\n"))
	body = append(body, 'x')
	return paxEntry(map[string]string{
		"GNU.sparse.major":    "1",
		"GNU.sparse.minor":    "0",
		"GNU.sparse.name":     name,
		"GNU.sparse.realsize": strconv.FormatInt(size, 10),
	}, "GNUSparseFile.0/"+name, string(body))
}

func rawTar(t testing.TB, blocks ...[]byte) []byte {
	t.Helper()
	var out []byte
	for _, b := range blocks {
		out = append(out, b...)
	}
	return append(out, make([]byte, 1024)...)
}

// TestApplyCancel: extraction stops when the context ends.
func TestApplyCancel(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ApplyLayer(ctx, h.root, bytes.NewReader(mkTar(t, file("f", "x"))), Options{})
	wantErr(t, err, context.Canceled)
}

// TestApplyDirTimes: directory times are those of the tar, set after the
// entries below them were written.
func TestApplyDirTimes(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	if _, err := ApplyLayer(context.Background(), h.root, bytes.NewReader(mkTar(t, dir("d/"), file("d/f", "x"), file("d/e/g", "y"))), Options{}); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, filepath.Join(h.root, "d")); st.Mtim.Sec != testTime.Unix() {
		t.Fatalf("d mtime %d, want %d", st.Mtim.Sec, testTime.Unix())
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(h.root, "d/f"), &st); err != nil || st.Mtim.Sec != testTime.Unix() {
		t.Fatalf("d/f mtime %d, %v", st.Mtim.Sec, err)
	}
}
