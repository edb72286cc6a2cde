package vulndb_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
)

func withPublished(rec, published string) string {
	return strings.Replace(rec, `"modified":`, `"published":"`+published+`","modified":`, 1)
}

// Findings carry the advisory's publication date ("fix available since"
// for advisories written with their fix); records without one give zero.
func TestFindingPublished(t *testing.T) {
	db := openDB(t)
	importDocs(t, db,
		withPublished(record("GO-2024-0001", "Go", "example.com/a", rng("SEMVER", "introduced=0", "fixed=1.2.0")), "2024-03-05T10:00:00Z"),
		record("GO-2024-0002", "Go", "example.com/b", rng("SEMVER", "introduced=0", "fixed=2.0.0")))
	r := match(t, db, oneSBOM(nil,
		sbom.Package{Type: sbom.Golang, Name: "example.com/a", Version: "v1.1.0"},
		sbom.Package{Type: sbom.Golang, Name: "example.com/b", Version: "v1.0.0"}))
	got := map[string]time.Time{}
	for _, f := range r.Findings {
		got[f.ID] = f.Published
	}
	if len(got) != 2 {
		t.Fatalf("findings %+v", r.Findings)
	}
	if want := time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC); !got["GO-2024-0001"].Equal(want) {
		t.Errorf("published %v, want %v", got["GO-2024-0001"], want)
	}
	if !got["GO-2024-0002"].IsZero() {
		t.Errorf("record without a date: published %v", got["GO-2024-0002"])
	}
}

// A schema-1 database is read as it is by read-only opens, upgraded by the
// next writer, and its records rewritten (with dates) by the next import
// of the same files instead of being counted unchanged.
func TestUpgradeFromSchema1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), vulndb.FileName)
	rec := withPublished(record("GO-2024-0001", "Go", "example.com/a", rng("SEMVER", "introduced=0", "fixed=1.2.0")), "2024-03-05T10:00:00Z")

	// Import with the current code, then turn the file into a schema-1
	// file: version 1 had no published column (the other tables did not
	// change).
	db, err := vulndb.Open(ctx, path, vulndb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	importDocs(t, db, rec)
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER TABLE vulns DROP COLUMN published`, `PRAGMA user_version = 1`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	pkg := sbom.Package{Type: sbom.Golang, Name: "example.com/a", Version: "v1.1.0"}
	ro, err := vulndb.Open(ctx, path, vulndb.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r := match(t, ro, oneSBOM(nil, pkg))
	ro.Close()
	if len(r.Findings) != 1 || !r.Findings[0].Published.IsZero() {
		t.Fatalf("schema-1 read-only match: %+v", r.Findings)
	}

	db, err = vulndb.Open(ctx, path, vulndb.Options{})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer db.Close()
	res := importDocs(t, db, rec)
	if res.Updated != 1 || res.Unchanged != 0 {
		t.Fatalf("re-import after the upgrade: %+v", res)
	}
	r = match(t, db, oneSBOM(nil, pkg))
	if len(r.Findings) != 1 || r.Findings[0].Published.IsZero() {
		t.Fatalf("after the upgrade: %+v", r.Findings)
	}
	// A second writer open is a no-op.
	again, err := vulndb.Open(ctx, path, vulndb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}
