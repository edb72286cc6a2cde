package runner

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestInitLayerShared: the init layer is made once per user-namespace
// mapping, completely or not at all, however many runs ask for it at once,
// and holds the mount points owned by the mapped root.
func TestInitLayerShared(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the init layer is owned by the mapped root: run as root")
	}
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ids := IDMap{HostBase: 200000, Size: 1000}
	dirs := make([]string, 8)
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Go(func() {
			d, err := s.initLayer(ids)
			if err != nil {
				t.Error(err)
			}
			dirs[i] = d
		})
	}
	wg.Wait()
	for _, d := range dirs {
		if d != dirs[0] {
			t.Fatalf("init layers %q", dirs)
		}
	}
	for name, mode := range map[string]os.FileMode{"": os.ModeDir | 0o755, "proc": os.ModeDir | 0o555, "sys": os.ModeDir | 0o555,
		"dev": os.ModeDir | 0o755, "tmp": os.ModeDir | os.ModeSticky | 0o777} {
		fi, err := os.Lstat(filepath.Join(dirs[0], name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != mode || st.Uid != ids.HostBase || st.Gid != ids.HostBase {
			t.Errorf("/%s: %v %d:%d, want %v %d:%d", name, fi.Mode(), st.Uid, st.Gid, mode, ids.HostBase, ids.HostBase)
		}
	}
	// Only the finished layer is left, nothing half-made; a temporary copy
	// a crashed bulwark left is removed when the next layer is made.
	ents, err := os.ReadDir(filepath.Dir(dirs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "200000-1000" {
		t.Errorf("init layers directory holds %v", ents)
	}
	crashed := filepath.Join(filepath.Dir(dirs[0]), "300000-1000.tmp-0123456789abcdef")
	if err := os.MkdirAll(filepath.Join(crashed, "proc"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(crashed, old, old); err != nil {
		t.Fatal(err)
	}
	// Another mapping gets its own.
	if d, err := s.initLayer(IDMap{HostBase: 300000, Size: 1000}); err != nil || d == dirs[0] {
		t.Errorf("second mapping: %q, %v", d, err)
	}
	if _, err := os.Lstat(crashed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a crashed creation's copy is left: %v", err)
	}
}
