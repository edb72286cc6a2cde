package vulndb_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
)

// writeZip writes an osv.dev-style export: one record per file at the
// root, plus what a hostile export may add.
func writeZip(t *testing.T, path string, files map[string][]byte, lie map[string]bool) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		if lie[name] {
			// A stored (uncompressed) entry whose header claims fewer
			// bytes than it holds.
			h := &zip.FileHeader{Name: name, Method: zip.Store}
			w, err := zw.CreateRaw(h)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data)
			continue
		}
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportZip(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	dir := t.TempDir()
	zipPath := filepath.Join(dir, "all.zip")
	// A big but compressible record (a bomb would be far larger; the
	// limit is what matters).
	bomb := `{"id":"BOMB-1","modified":"2025-01-01T00:00:00Z","summary":"` + strings.Repeat("A", osv.MaxRecordSize) + `"}`
	writeZip(t, zipPath, map[string][]byte{
		"DSA-1-1.json": []byte(record("DSA-1-1", "Debian:12", "glibc", rng("ECOSYSTEM", "introduced=0", "fixed=2.36-9+deb12u4"))),
		"DSA-2-1.json": []byte(record("DSA-2-1", "Debian:12", "openssl", rng("ECOSYSTEM", "introduced=0", "fixed=3.0.15-1~deb12u1"))),
		"README.txt":   []byte("not a record"),
		"sub/":         nil,
		"bad.json":     []byte(`{"id":"../../etc"}`),
		"bomb.json":    []byte(bomb),
		"liar.json":    []byte(record("LIAR-1", "Go", "x", rng("SEMVER", "introduced=0"))),
	}, map[string]bool{"liar.json": true})
	res, err := db.Import(ctx, zipPath, vulndb.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 2 || res.Rejected != 3 || len(res.Errors) != 3 {
		t.Fatalf("import: %+v", res)
	}
	if _, err := db.Import(ctx, zipPath, vulndb.ImportOptions{Strict: true}); !errors.Is(err, vulndb.ErrRejected) {
		t.Fatalf("strict import: %v", err)
	}
	r := match(t, db, oneSBOM(&sbom.Distro{ID: "debian", VersionID: "12"},
		sbom.Package{Type: sbom.Deb, Name: "libc6", Version: "2.36-9+deb12u3", SourceName: "glibc"},
		sbom.Package{Type: sbom.Deb, Name: "libssl3", Version: "3.0.15-1~deb12u1", SourceName: "openssl"}))
	if len(r.Findings) != 1 || r.Findings[0].ID != "DSA-1-1" {
		t.Fatalf("findings %+v", r.Findings)
	}
	st, err := db.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sources) != 1 || st.Sources[0].Records != 2 || st.Sources[0].Rejected != 3 || st.Records != 2 || st.Ecosystems[0].Ecosystem != "Debian:12" || !st.NewestModified.Equal(st.NewestModified.UTC()) || st.NewestModified.Year() != 2025 {
		t.Fatalf("status %+v", st)
	}
}

func TestImportErrors(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	dir := t.TempDir()
	if _, err := db.Import(ctx, filepath.Join(dir, "missing"), vulndb.ImportOptions{}); err == nil {
		t.Error("missing path accepted")
	}
	if _, err := db.Import(ctx, dir, vulndb.ImportOptions{}); err == nil {
		t.Error("empty directory accepted")
	}
	notZip := filepath.Join(dir, "x.zip")
	os.WriteFile(notZip, []byte("PK not really"), 0o644)
	if _, err := db.Import(ctx, notZip, vulndb.ImportOptions{}); err == nil {
		t.Error("corrupt zip accepted")
	}
	// An array document: one bad record rejects the document.
	arr := filepath.Join(dir, "arr.json")
	os.WriteFile(arr, []byte("["+record("A-1", "npm", "a", rng("SEMVER", "introduced=0"))+`,{"id":"B"}]`), 0o644)
	res, err := db.Import(ctx, arr, vulndb.ImportOptions{})
	if err != nil || res.Rejected != 1 || res.Added != 0 {
		t.Fatalf("array: %+v %v", res, err)
	}
	// A read-only database refuses imports; a missing one is ErrNoDatabase.
	ro, err := vulndb.Open(ctx, db.Path(), vulndb.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Import(ctx, arr, vulndb.ImportOptions{}); err == nil {
		t.Error("read-only import accepted")
	}
	if _, err := vulndb.Open(ctx, filepath.Join(dir, "none.db"), vulndb.Options{ReadOnly: true}); !errors.Is(err, vulndb.ErrNoDatabase) {
		t.Errorf("missing database: %v", err)
	}
}
