package vulndb_test

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/image"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vulntest"
)

// BenchmarkMatchMinbase is the matching half of `bulwark scan` on the
// bookworm minbase image: open the database, start a matcher, match the
// SBOM (cold caches, as in a fresh process). The database holds the Go
// vulnerability database and the fixture's changelog advisories.
func BenchmarkMatchMinbase(b *testing.B) {
	path, _ := sharedRealDB(b)
	s := minbaseSBOM(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		db, err := vulndb.Open(ctx, path, vulndb.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		m, err := db.NewMatcher(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Match(ctx, s); err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}

// BenchmarkScanMinbase is the whole of `bulwark scan --oci-layout` on the
// bookworm minbase image: read the one-layer image (gzip), catalog it,
// match it.
func BenchmarkScanMinbase(b *testing.B) {
	path, _ := sharedRealDB(b)
	_, layout := vulntest.BookwormMinbase(b)
	ctx := context.Background()
	for b.Loop() {
		img, err := image.Layout(ctx, layout, "bookworm-minbase", image.DefaultPlatform())
		if err != nil {
			b.Fatal(err)
		}
		s, _, err := catalog.Image(ctx, img, catalog.Options{})
		img.Close()
		if err != nil {
			b.Fatal(err)
		}
		db, err := vulndb.Open(ctx, path, vulndb.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		m, err := db.NewMatcher(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r, err := m.Match(ctx, s)
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
		if r.Packages < 80 {
			b.Fatalf("%d packages", r.Packages)
		}
	}
}

// BenchmarkScanMinbaseRootfs is `bulwark scan --rootfs` on the extracted
// bookworm minbase root: walk and catalog the directory, match.
func BenchmarkScanMinbaseRootfs(b *testing.B) {
	path, _ := sharedRealDB(b)
	rootfs, _ := vulntest.BookwormMinbase(b)
	ctx := context.Background()
	for b.Loop() {
		s, _, err := catalog.Dir(ctx, rootfs, catalog.Options{})
		if err != nil {
			b.Fatal(err)
		}
		db, err := vulndb.Open(ctx, path, vulndb.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		m, err := db.NewMatcher(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Match(ctx, s); err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}

// storedSBOMs makes n stored (JSON-encoded) SBOMs that look like a
// registry's: the bookworm minbase image at different points of its
// history (each source package at a version from its changelog), plus a
// Go service on a Go release of its own.
func storedSBOMs(b testing.TB, n int) [][]byte {
	b.Helper()
	base := minbaseSBOM(b)
	logs, err := vulntest.ReadChangelogs(mustRootfs(b))
	if err != nil {
		b.Fatal(err)
	}
	goReleases := []string{}
	for minor := 19; minor <= 26; minor++ {
		for patch := 0; patch <= 10; patch += 2 {
			goReleases = append(goReleases, fmt.Sprintf("go1.%d.%d", minor, patch))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		s := *base
		s.Source.Name = fmt.Sprintf("registry.example/team%d/app:v%d", i%37, i)
		s.Packages = append([]sbom.Package{}, base.Packages...)
		chosen := map[string]string{}
		for j := range s.Packages {
			p := &s.Packages[j]
			hist := logs[p.SourceName]
			if p.Type != sbom.Deb || len(hist) < 2 || rng.IntN(2) == 0 {
				continue
			}
			v, ok := chosen[p.SourceName]
			if !ok {
				v = hist[rng.IntN(min(len(hist), 8))].Version
				chosen[p.SourceName] = v
			}
			p.Version, p.SourceVersion = v, v
		}
		s.Packages = append(s.Packages,
			sbom.Package{Type: sbom.Golang, Name: sbom.GoStdlib, Version: goReleases[rng.IntN(len(goReleases))], PURL: "pkg:golang/stdlib", Paths: []string{"/app"}},
			sbom.Package{Type: sbom.Golang, Name: "golang.org/x/net", Version: fmt.Sprintf("v0.%d.0", rng.IntN(40)), PURL: "pkg:golang/golang.org/x/net", Paths: []string{"/app"}},
			sbom.Package{Type: sbom.Golang, Name: "golang.org/x/text", Version: fmt.Sprintf("v0.3.%d", rng.IntN(9)), PURL: "pkg:golang/golang.org/x/text", Paths: []string{"/app"}},
		)
		var buf bytes.Buffer
		if err := s.Encode(&buf); err != nil {
			b.Fatal(err)
		}
		out[i] = buf.Bytes()
	}
	return out
}

func decodeAll(stored [][]byte) iter.Seq2[*sbom.SBOM, error] {
	return func(yield func(*sbom.SBOM, error) bool) {
		for _, b := range stored {
			s, err := sbom.Decode(bytes.NewReader(b))
			if !yield(s, err) {
				return
			}
		}
	}
}

// BenchmarkRematch1000 re-matches 1,000 stored SBOMs after a database
// update: decode each stored SBOM, match it with a fresh matcher (the
// update invalidates every cache), diff against nothing.
func BenchmarkRematch1000(b *testing.B) {
	path, _ := sharedRealDB(b)
	stored := storedSBOMs(b, 1000)
	ctx := context.Background()
	db, err := vulndb.Open(ctx, path, vulndb.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ResetTimer()
	for b.Loop() {
		m, err := db.NewMatcher(ctx)
		if err != nil {
			b.Fatal(err)
		}
		findings := 0
		n, err := vulndb.Rematch(ctx, m, decodeAll(stored), func(_ *sbom.SBOM, r *vulndb.Report) error {
			findings += len(r.Findings)
			return nil
		})
		if err != nil || n != 1000 {
			b.Fatal(n, err)
		}
		b.ReportMetric(float64(findings)/1000, "findings/sbom")
	}
}

// TestRematch checks that re-matching stored SBOMs gives what matching
// each on its own gives, and that Diff sees a database update.
func TestRematch(t *testing.T) {
	ctx := context.Background()
	path, _ := sharedRealDB(t)
	stored := storedSBOMs(t, 20)
	db, err := vulndb.Open(ctx, path, vulndb.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, _ := db.NewMatcher(ctx)
	var reports []*vulndb.Report
	if _, err := vulndb.Rematch(ctx, m, decodeAll(stored), func(_ *sbom.SBOM, r *vulndb.Report) error {
		reports = append(reports, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, raw := range stored {
		s, _ := sbom.Decode(bytes.NewReader(raw))
		alone := match(t, db, s)
		if added, removed := vulndb.Diff(alone, reports[i]); len(added)+len(removed) != 0 || len(alone.Findings) != len(reports[i].Findings) {
			t.Fatalf("SBOM %d: rematch differs from a fresh match: +%d -%d", i, len(added), len(removed))
		}
		total += len(alone.Findings)
	}
	if total == 0 {
		t.Fatal("no findings in 20 varied SBOMs")
	}
	// A database update: a new advisory for every glibc.
	dir := t.TempDir()
	upd, err := vulndb.Open(ctx, vulndb.PathIn(dir), vulndb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer upd.Close()
	importDocs(t, upd, record("BWTEST-NEW-1", "Debian:12", "glibc", rng("ECOSYSTEM", "introduced=0", "fixed=99:1")))
	m2, _ := upd.NewMatcher(ctx)
	s, _ := sbom.Decode(bytes.NewReader(stored[0]))
	r2, _ := m2.Match(ctx, s)
	added, removed := vulndb.Diff(&vulndb.Report{}, r2)
	if len(added) == 0 || len(removed) != 0 || added[0].ID != "BWTEST-NEW-1" || added[0].Name != "glibc" {
		t.Fatalf("diff after update: +%v -%v", added, removed)
	}
}
