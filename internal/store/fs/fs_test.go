package fs_test

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/store"
	"github.com/bulwark-dev/bulwark/internal/store/fs"
	"github.com/bulwark-dev/bulwark/internal/store/storetest"
)

const sentinel = "sentinel: must survive every test unchanged"

// openJailed opens a store at PARENT/root next to sentinel files and checks,
// when the test ends, that nothing outside the root was created, changed or
// removed. "../x" from the uploads directory lands in root/x and "../../x"
// in PARENT/x, so both levels are watched.
func openJailed(t *testing.T) *fs.Store {
	t.Helper()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	for _, p := range []string{filepath.Join(parent, "x"), filepath.Join(parent, "passwd")} {
		if err := os.WriteFile(p, []byte(sentinel), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := fs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		wantEntries(t, parent, "passwd", "root", "x")
		wantEntries(t, root, "blobs", "uploads")
		for _, p := range []string{filepath.Join(parent, "x"), filepath.Join(parent, "passwd")} {
			if b, err := os.ReadFile(p); err != nil || string(b) != sentinel {
				t.Errorf("%s changed: %q, %v", p, b, err)
			}
		}
	})
	return s
}

func wantEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("read %s: %v", dir, err)
		return
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

func TestBlobs(t *testing.T) {
	storetest.TestBlobs(t, func(t *testing.T) store.Blobs { return openJailed(t) })
}

// TestReopen checks committed content survives closing and reopening the
// store, and that uploads in progress are still listed.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	content := []byte("durable")
	d := digest.FromBytes(content)
	if _, err := s.Append(ctx, "u1", 0, bytes.NewReader(content), sha256.New(), -1); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "u1", d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "u2", 0, strings.NewReader("half"), sha256.New(), -1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if size, err := s.Stat(ctx, d); err != nil || size != int64(len(content)) {
		t.Errorf("Stat after reopen = %d, %v", size, err)
	}
	ups, err := s.Uploads(ctx)
	if err != nil || len(ups) != 1 || ups[0].ID != "u2" || ups[0].Size != 4 {
		t.Errorf("Uploads after reopen = %+v, %v", ups, err)
	}
	// The upload resumes where it stopped.
	if _, err := s.Append(ctx, "u2", 4, strings.NewReader(" done"), sha256.New(), -1); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.Rehash(ctx, "u2", digest.SHA256); err != nil || got != digest.FromString("half done") {
		t.Errorf("Rehash after resume = %s, %v", got, err)
	}
}

// TestWalkSkipsForeignFiles checks that files an operator or another tool
// left in the blob tree are never reported as content.
func TestWalkSkipsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	content := []byte("real")
	d := digest.FromBytes(content)
	if _, err := s.Append(ctx, "u", 0, bytes.NewReader(content), nil, -1); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "u", d); err != nil {
		t.Fatal(err)
	}
	hex := d.Encoded()
	other := digest.FromString("other").Encoded()
	foreign := []string{
		"blobs/README",
		"blobs/sha256/README",
		"blobs/sha256/" + hex[:2] + "/" + hex + ".tmp",
		"blobs/sha256/" + hex[:2] + "/NOTHEX",
		"blobs/sha256/zz/" + other, // wrong fan-out directory
		"blobs/md5/d4/d41d8cd98f00b204e9800998ecf8427e",
		"blobs/sha256/" + other[:2] + "/deeper/" + other,
	}
	for _, p := range foreign {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var got []digest.Digest
	if err := s.Walk(ctx, func(d digest.Digest, _ int64) error { got = append(got, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []digest.Digest{d}) {
		t.Errorf("Walk = %v, want only %s", got, d)
	}
}
