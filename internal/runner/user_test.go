package runner

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestResolveUser(t *testing.T) {
	tests := []struct {
		spec          string
		passwd, group string // "-" means the file is absent
		uid, gid      uint32
		sgids         []uint32
		home          string
		err           error
	}{
		{spec: "app", passwd: testPasswd, group: testGroup, uid: 1000, gid: 1000, sgids: []uint32{2000}, home: "/home/app"},
		{spec: "1000", passwd: testPasswd, group: testGroup, uid: 1000, gid: 1000, sgids: []uint32{2000}, home: "/home/app"},
		{spec: "app:extra", passwd: testPasswd, group: testGroup, uid: 1000, gid: 2000, home: "/home/app"},
		{spec: "app:3000", passwd: testPasswd, group: testGroup, uid: 1000, gid: 3000, home: "/home/app"},
		{spec: "4000", passwd: testPasswd, group: testGroup, uid: 4000, gid: 0, home: "/"},
		{spec: "4000:4000", passwd: "-", group: "-", uid: 4000, gid: 4000, home: "/"},
		{spec: "", passwd: testPasswd, group: testGroup, uid: 0, gid: 0, home: "/root"},
		{spec: "", passwd: "-", group: "-", uid: 0, gid: 0, home: "/"},
		{spec: "app", passwd: "-", group: "-", err: ErrUser},
		{spec: "app:nogroup", passwd: testPasswd, group: testGroup, err: ErrUser},
		{spec: "big", passwd: testPasswd, group: testGroup, err: ErrUser},
		{spec: "-1", passwd: testPasswd, group: testGroup, err: ErrUser},
		{spec: "99999999999", passwd: testPasswd, group: testGroup, err: ErrUser},
		{spec: "app\x00", passwd: testPasswd, group: testGroup, err: ErrUser},
		// Hostile files: negative ids, a relative home, garbage lines.
		{spec: "neg", passwd: "neg:x:-5:1::/:/bin/sh\n", group: "-", err: ErrUser},
		{spec: "rel", passwd: "rel:x:10:10::home:/bin/sh\n\x00\x01garbage\n:::::::\n", group: "-", uid: 10, gid: 10, home: "/"},
		{spec: "long", passwd: "long:x:10:10::/:/bin/sh\n" + strings.Repeat("x", 70000) + "\n", group: "-", err: ErrUser},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.spec, "\x00", `\0`), func(t *testing.T) {
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, "etc"), 0o755)
			if tt.passwd != "-" {
				os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(tt.passwd), 0o644)
			}
			if tt.group != "-" {
				os.WriteFile(filepath.Join(dir, "etc/group"), []byte(tt.group), 0o644)
			}
			u, err := ResolveUser(dir, tt.spec, 65536)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v (user %+v)", err, tt.err, u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.UID != tt.uid || u.GID != tt.gid || !slices.Equal(u.AdditionalGIDs, tt.sgids) || u.Home != tt.home {
				t.Errorf("got %+v, want uid %d gid %d sgids %v home %s", u, tt.uid, tt.gid, tt.sgids, tt.home)
			}
		})
	}
}

// TestResolveUserHostileRootfs: account files that try to make bulwark
// read the host's files, hang, or read without bound are refused.
func TestResolveUserHostileRootfs(t *testing.T) {
	// A host file that would resolve "hostonly" if it were followed.
	hostDir := t.TempDir()
	hostPasswd := filepath.Join(hostDir, "passwd")
	os.WriteFile(hostPasswd, []byte("hostonly:x:1234:1234::/:/bin/sh\n"), 0o644)

	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"absolute symlink to the host", func(t *testing.T, root string) {
			os.Symlink(hostPasswd, filepath.Join(root, "etc/passwd"))
		}},
		{"relative symlink climbing out", func(t *testing.T, root string) {
			rel, _ := filepath.Rel(filepath.Join(root, "etc"), hostPasswd)
			os.Symlink(rel, filepath.Join(root, "etc/passwd"))
		}},
		{"etc is a symlink out", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "etc"))
			os.Symlink(hostDir, filepath.Join(root, "etc"))
		}},
		{"fifo", func(t *testing.T, root string) {
			if err := syscall.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, root string) {
			os.Mkdir(filepath.Join(root, "etc/passwd"), 0o755)
		}},
		{"too large", func(t *testing.T, root string) {
			f, _ := os.Create(filepath.Join(root, "etc/passwd"))
			f.WriteString("hostonly:x:1234:1234::/:/bin/sh\n")
			f.Truncate(maxAccountFile + 10)
			f.Close()
		}},
		{"device node", func(t *testing.T, root string) {
			if err := syscall.Mknod(filepath.Join(root, "etc/passwd"), syscall.S_IFCHR|0o644, 0x103); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			os.Mkdir(filepath.Join(root, "etc"), 0o755)
			tt.setup(t, root)
			done := make(chan struct{})
			var u User
			var err error
			go func() {
				u, err = ResolveUser(root, "hostonly", 65536)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ResolveUser hangs")
			}
			if err == nil {
				t.Fatalf("resolved %+v through a hostile /etc/passwd", u)
			}
			if !errors.Is(err, ErrUser) {
				t.Errorf("err = %v, want ErrUser", err)
			}
		})
	}

	// A symlink that stays inside the rootfs is fine (Debian's
	// /etc/passwd is never one, but some images link /etc files).
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/lib/passwd"), []byte("inside:x:77:77::/:/bin/sh\n"), 0o644)
	os.Symlink("../usr/lib/passwd", filepath.Join(root, "etc/passwd"))
	u, err := ResolveUser(root, "inside", 65536)
	if err != nil || u.UID != 77 {
		t.Errorf("inside symlink: %+v, %v", u, err)
	}
}

func FuzzResolveUser(f *testing.F) {
	f.Add("app", testPasswd, testGroup)
	f.Add("app:extra", testPasswd, testGroup)
	f.Add("1:2", "", "")
	f.Add("x", "x:x:1:2:3:4:5:6:7\n::::\n", "g:x:3:x,y,,\n")
	f.Fuzz(func(t *testing.T, spec, passwd, group string) {
		const idRange = 65536
		u, err := resolveUser(spec, []byte(passwd), []byte(group), idRange)
		if err != nil {
			if !errors.Is(err, ErrUser) {
				t.Fatalf("error not ErrUser: %v", err)
			}
			return
		}
		if u.UID >= idRange || u.GID >= idRange {
			t.Fatalf("ids outside the range: %+v", u)
		}
		for _, g := range u.AdditionalGIDs {
			if g >= idRange {
				t.Fatalf("supplementary gid outside the range: %+v", u)
			}
		}
		if !strings.HasPrefix(u.Home, "/") {
			t.Fatalf("relative home %q", u.Home)
		}
	})
}
