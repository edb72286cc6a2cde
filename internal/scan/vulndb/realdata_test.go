package vulndb_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vulntest"
)

var tmpRoot string

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "vulndb-test"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// realDB is a database holding the Go vulnerability database and the OSV
// records written from the bookworm minbase fixture's changelogs, imported
// once per test binary run (read-only for tests).
var realDB struct {
	once    sync.Once
	path    string
	fixes   []vulntest.Fix
	goStats *vulndb.ImportResult
	err     error
}

func sharedRealDB(t testing.TB) (path string, fixes []vulntest.Fix) {
	t.Helper()
	goDir := vulntest.GoVulnDB(t)
	rootfs, _ := vulntest.BookwormMinbase(t)
	realDB.once.Do(func() {
		ctx := context.Background()
		dir := filepath.Join(tmpRoot, "realdb")
		logs, err := vulntest.ReadChangelogs(rootfs)
		if err != nil {
			realDB.err = err
			return
		}
		realDB.fixes = vulntest.Fixes(logs)
		debDir := filepath.Join(dir, "debian-osv")
		if realDB.err = vulntest.WriteDebianOSV(debDir, "Debian:12", realDB.fixes); realDB.err != nil {
			return
		}
		db, err := vulndb.Open(ctx, vulndb.PathIn(dir), vulndb.Options{})
		if err != nil {
			realDB.err = err
			return
		}
		defer db.Close()
		if realDB.goStats, realDB.err = db.Import(ctx, goDir, vulndb.ImportOptions{Strict: true}); realDB.err != nil {
			return
		}
		if _, realDB.err = db.Import(ctx, debDir, vulndb.ImportOptions{Strict: true}); realDB.err != nil {
			return
		}
		realDB.path = vulndb.PathIn(dir)
	})
	if realDB.err != nil {
		t.Fatal(realDB.err)
	}
	return realDB.path, realDB.fixes
}

func openShared(t testing.TB) *vulndb.DB {
	t.Helper()
	path, _ := sharedRealDB(t)
	db, err := vulndb.Open(context.Background(), path, vulndb.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestImportGoVulnDB(t *testing.T) {
	db := openShared(t)
	res := realDB.goStats
	if res.Records < 4000 || res.Added+res.Withdrawn != res.Records || res.Rejected != 0 {
		t.Fatalf("import: %+v", res)
	}
	st, err := db.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var goEco *vulndb.EcosystemStatus
	for i := range st.Ecosystems {
		if st.Ecosystems[i].Ecosystem == "Go" {
			goEco = &st.Ecosystems[i]
		}
	}
	if goEco == nil || goEco.Records != res.Added || st.Records < res.Added || len(st.Sources) != 2 || st.Generation != 2 {
		t.Fatalf("status: %+v", st)
	}
	t.Logf("Go database: %d records (%d withdrawn, not stored), %d affected packages, imported in %v", goEco.Records, res.Withdrawn, goEco.Packages, res.Duration)
}

// TestReimport: importing the same data again (as a directory or as a zip
// of it) changes nothing and keeps the generation; a withdrawn or changed
// record does.
func TestReimport(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	docs := []string{
		record("GO-1", "Go", "example.com/a", rng("SEMVER", "introduced=0", "fixed=1.0.0")),
		record("GO-2", "Go", "example.com/b", rng("SEMVER", "introduced=0", "fixed=1.0.0")),
	}
	first := importDocs(t, db, docs...)
	again := importDocs(t, db, docs...)
	if first.Added != 2 || again.Unchanged != 2 || again.Generation != first.Generation {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	withdrawn := strings.Replace(docs[0], `"id"`, `"withdrawn":"2025-02-01T00:00:00Z","id"`, 1)
	older := strings.Replace(docs[1], "2025-01-01", "2024-01-01", 1)
	older = strings.Replace(older, "example.com/b", "example.com/c", 1)
	res := importDocs(t, db, withdrawn, older)
	if res.Withdrawn != 1 || res.Older != 1 || res.Generation != first.Generation+1 {
		t.Fatalf("withdrawn/older: %+v", res)
	}
	r := match(t, db, oneSBOM(nil,
		sbom.Package{Type: sbom.Golang, Name: "example.com/a", Version: "v0.1.0"},
		sbom.Package{Type: sbom.Golang, Name: "example.com/b", Version: "v0.1.0"},
		sbom.Package{Type: sbom.Golang, Name: "example.com/c", Version: "v0.1.0"}))
	if len(r.Findings) != 1 || r.Findings[0].ID != "GO-2" || r.Findings[0].Package.Name != "example.com/b" {
		t.Fatalf("after withdrawal: %+v", r.Findings)
	}
	newer := strings.Replace(strings.Replace(docs[1], "2025-01-01", "2025-06-01", 1), "example.com/b", "example.com/c", 1)
	if res := importDocs(t, db, newer); res.Updated != 1 {
		t.Fatalf("newer: %+v", res)
	}
	r = match(t, db, oneSBOM(nil, sbom.Package{Type: sbom.Golang, Name: "example.com/b", Version: "v0.1.0"}, sbom.Package{Type: sbom.Golang, Name: "example.com/c", Version: "v0.1.0"}))
	if len(r.Findings) != 1 || r.Findings[0].Package.Name != "example.com/c" {
		t.Fatalf("after update: %+v", r.Findings)
	}
	st, _ := db.Status(ctx)
	if st.Records != 1 {
		t.Fatalf("records %d", st.Records)
	}
}

// TestGoBinaryFindings catalogs a real Go binary built against a
// vulnerable module and matches it against the real Go database.
func TestGoBinaryFindings(t *testing.T) {
	db := openShared(t)
	root := vulntest.VulnerableGoRoot(t)
	s, _, err := catalog.Dir(context.Background(), root, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := match(t, db, s)
	got := map[string]vulndb.Finding{}
	for _, f := range r.Findings {
		if f.Package.Name == "golang.org/x/text" {
			got[f.ID] = f
		}
	}
	for id, fixed := range map[string]string{"GO-2021-0113": "0.3.7", "GO-2022-1059": "0.3.8"} {
		f, ok := got[id]
		if !ok {
			t.Errorf("%s not found for golang.org/x/text v0.3.5; findings: %+v", id, r.Findings)
			continue
		}
		if f.Fixed != fixed || f.Package.Version != "v0.3.5" || !slices.ContainsFunc(f.Aliases, func(a string) bool { return strings.HasPrefix(a, "CVE-") }) {
			t.Errorf("%s: %+v", id, f)
		}
		if len(f.Package.Paths) == 0 || f.Package.Paths[0] != "/usr/local/bin/vulnbin" {
			t.Errorf("%s: paths %v", id, f.Package.Paths)
		}
	}
	if _, ok := got["GO-2020-0015"]; ok {
		t.Error("GO-2020-0015 was fixed in v0.3.3 but matched v0.3.5")
	}
}

// TestGoStdlibFindings: Debian's skopeo is built with Go 1.19.8, whose
// standard library has many advisories in the Go database.
func TestGoStdlibFindings(t *testing.T) {
	db := openShared(t)
	const skopeo = "/usr/bin/skopeo"
	if _, err := os.Stat(skopeo); err != nil {
		t.Fatalf("%v (skopeo comes with the test suite's packages: apt-get install skopeo)", err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "usr", "bin"), 0o755)
	data, err := os.ReadFile(skopeo)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "usr", "bin", "skopeo"), data, 0o755)
	s, _, err := catalog.Dir(context.Background(), dir, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := match(t, db, s)
	stdlib := 0
	var net *vulndb.Finding
	for i, f := range r.Findings {
		if f.Package.Name == sbom.GoStdlib {
			stdlib++
			if f.ID == "GO-2024-2600" {
				net = &r.Findings[i]
			}
		}
	}
	if stdlib < 20 || net == nil || net.Fixed != "1.21.8" || !strings.HasPrefix(net.Package.Version, "go1.19") {
		t.Fatalf("stdlib findings %d; GO-2024-2600: %+v", stdlib, net)
	}
	t.Logf("%s: %d findings, %d in the standard library (%s)", skopeo, len(r.Findings), stdlib, net.Package.Version)
}
