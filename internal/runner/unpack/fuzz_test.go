package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzApplyLayer feeds arbitrary bytes to the tar reader and apply path.
// Whatever the input, nothing may panic, nothing outside the root may
// change, and the tree left inside must keep the invariants the runner
// relies on: no device nodes but whiteouts, no fifos, no setuid/setgid
// files, every owner inside the user-namespace range.
func FuzzApplyLayer(f *testing.F) {
	requireRoot(f)
	seeds := [][]byte{
		mkTar(f, dir("etc/"), file("etc/passwd", "root:x:0:0"), symlink("etc/l", "passwd"), hardlink("etc/h", "etc/passwd")),
		mkTar(f, file("../escape", "x")),
		mkTar(f, symlink("evil", "/"), file("evil/etc/passwd", "x")),
		mkTar(f, symlink("evil", "../../.."), dir("evil/x/")),
		mkTar(f, symlink("s", "/etc/passwd"), hardlink("h", "s"), file("h", "x")),
		mkTar(f, hardlink("h", "../../etc/passwd")),
		mkTar(f, whiteout(".wh..."), whiteout("d/.wh..wh..opq"), whiteout(".wh.x"), dir("x/")),
		mkTar(f, ent{typ: tar.TypeChar, name: "dev/null", mode: 0o666, major: 1}, ent{typ: tar.TypeFifo, name: "p"}),
		mkTar(f, ent{typ: tar.TypeReg, name: "su", body: "x", mode: 0o6755, uid: 70000}),
		mkTar(f, file("f", "a"), file("f", "b"), dir("f/"), file("f", "c")),
		rawTar(f, paxEntry(map[string]string{"path": "../x", "uid": "-1", "mtime": "1e30"}, "f", "x")),
		rawTar(f, sparseEntry("s", 1<<20)),
		gzipBytes(f, mkTar(f, file("f", "x"))), // compressed: not a tar here
	}
	for _, s := range seeds {
		f.Add(s)
	}
	opts := Options{
		IDs:    testIDs,
		Limits: Limits{MaxLayerBytes: 4 << 20, MaxEntries: 2000, MaxEntryBytes: 1 << 20},
	}
	// Each input gets a fresh host. On tmpfs that is cheap; on a disk
	// filesystem, creating and deleting directories thousands of times a
	// second slows inode allocation to a crawl (ext4 without a journal
	// skips recently deleted inodes).
	shm, err := os.MkdirTemp("/dev/shm", "fuzz-unpack-")
	if err != nil {
		shm = f.TempDir()
	}
	f.Cleanup(func() { os.RemoveAll(shm) })
	f.Fuzz(func(t *testing.T, data []byte) {
		base, err := os.MkdirTemp(shm, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(base)
		h := newHostIn(t, base)
		ApplyLayer(context.Background(), h.root, bytes.NewReader(data), opts) // any error is fine
		h.untouched(t)
		checkInvariants(t, h.root)
	})
}

func checkInvariants(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		typ := st.Mode & unix.S_IFMT
		switch {
		case typ == unix.S_IFBLK, typ == unix.S_IFIFO, typ == unix.S_IFSOCK, typ == unix.S_IFCHR && st.Rdev != 0:
			t.Errorf("%s: special file %o", p, st.Mode)
		case typ != unix.S_IFDIR && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0:
			t.Errorf("%s: setuid/setgid %o", p, st.Mode)
		}
		whiteout := typ == unix.S_IFCHR && st.Rdev == 0 // created by us, owner irrelevant
		if !whiteout && (st.Uid < testIDs.UIDBase || st.Uid >= testIDs.UIDBase+testIDs.Size ||
			st.Gid < testIDs.GIDBase || st.Gid >= testIDs.GIDBase+testIDs.Size) && p != root {
			t.Errorf("%s: owner %d:%d outside the range", p, st.Uid, st.Gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
