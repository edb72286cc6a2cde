package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/scan/lint"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/store"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func openStore(t testing.TB, dir string, c *clock) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Path(dir), store.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// goRecord is an OSV record of the Go ecosystem for module, fixed in
// fixed ("" for no fix), modified at modified (a later record replaces an
// earlier one with the same id).
func goRecord(id, module, fixed string, modified ...string) string {
	events := []map[string]string{{"introduced": "0"}}
	if fixed != "" {
		events = append(events, map[string]string{"fixed": fixed})
	}
	mod := "2025-01-01T00:00:00Z"
	if len(modified) > 0 {
		mod = modified[0]
	}
	b, _ := json.Marshal(map[string]any{
		"id": id, "modified": mod, "aliases": []string{"CVE-" + id},
		"affected": []any{map[string]any{
			"package": map[string]string{"ecosystem": "Go", "name": module},
			"ranges":  []any{map[string]any{"type": "SEMVER", "events": events}},
		}},
	})
	return string(b)
}

// vulnDB is a real vulnerability database in dir, filled with records.
func vulnDB(t testing.TB, dir string, records ...string) *vulndb.DB {
	t.Helper()
	db, err := vulndb.Open(context.Background(), vulndb.PathIn(dir), vulndb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	importRecords(t, db, records...)
	return db
}

func importRecords(t testing.TB, db *vulndb.DB, records ...string) {
	t.Helper()
	if len(records) == 0 {
		return
	}
	dir := t.TempDir()
	for i, r := range records {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%d.json", i)), []byte(r), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Import(context.Background(), dir, vulndb.ImportOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
}

// goImage is the SBOM of an image with one Go binary linking modules.
func goImage(d digest.Digest, modules map[string]string) *sbom.SBOM {
	s := &sbom.SBOM{SchemaVersion: sbom.SchemaVersion, Created: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
		Source: sbom.Source{Kind: sbom.SourceImage, Name: "team/app@" + d.String(), Digest: d}}
	for name, v := range modules {
		s.Packages = append(s.Packages, sbom.Package{Type: sbom.Golang, Name: name, Version: v,
			PURL: "pkg:golang/" + name + "@" + v, Paths: []string{"/app"}})
	}
	s.Sort()
	return s
}

func match(t testing.TB, db *vulndb.DB, s *sbom.SBOM) *vulndb.Report {
	t.Helper()
	m, err := db.NewMatcher(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Match(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ids(fs []vulndb.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	slices.Sort(out)
	return out
}

// TestScanThenRematch stores a scan, then a re-matched report after a
// database update: the diff names the new advisory, findings keep when
// they were first seen, and a fix is dated from when it was first seen.
func TestScanThenRematch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	st := openStore(t, dir, c)
	db := vulnDB(t, dir, goRecord("GO-T-1", "golang.org/x/text", "0.3.7"), goRecord("GO-T-2", "golang.org/x/net", ""))

	d := digest.FromString("image one")
	s := goImage(d, map[string]string{"golang.org/x/text": "v0.3.5", "golang.org/x/net": "v0.1.0", "example.com/safe": "v1.0.0"})
	lf := []lint.Finding{{ID: lint.IDRootUser, Severity: lint.Medium, Message: "runs as root"}}
	ch, err := st.PutScan(ctx, &store.Scan{Digest: d, Repositories: []string{"team/app"}, SBOM: s, Lint: lf, Report: match(t, db, s)})
	if err != nil {
		t.Fatal(err)
	}
	if !ch.First || !slices.Equal(ids(ch.Added), []string{"GO-T-1", "GO-T-2"}) || len(ch.Removed) != 0 {
		t.Fatalf("first scan change = %+v", ch)
	}
	scanTime := c.t

	f, err := st.Facts(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Image.HasReport() || f.Image.Generation != 1 || len(f.Findings) != 2 || len(f.Lint) != 1 || f.Lint[0].ID != lint.IDRootUser {
		t.Fatalf("facts = %+v", f)
	}
	for _, x := range f.Findings {
		switch x.ID {
		case "GO-T-1":
			if x.Fixed != "0.3.7" || x.Package != "golang.org/x/text" || x.Version != "v0.3.5" || x.Severity != "UNKNOWN" ||
				!x.FixSince.Equal(scanTime) || !x.FirstSeen.Equal(scanTime) {
				t.Errorf("GO-T-1 = %+v", x)
			}
		case "GO-T-2":
			if x.Fixed != "" || !x.FixSince.IsZero() {
				t.Errorf("GO-T-2 (no fix) = %+v", x)
			}
		}
	}

	// A database update: GO-T-2 gets a fix, GO-T-3 is new, GO-T-1 is
	// withdrawn.
	c.t = c.t.Add(48 * time.Hour)
	importRecords(t, db, goRecord("GO-T-2", "golang.org/x/net", "0.2.0", "2025-02-01T00:00:00Z"),
		goRecord("GO-T-3", "example.com/safe", "1.0.1"),
		`{"id":"GO-T-1","modified":"2025-02-01T00:00:00Z","withdrawn":"2025-02-01T00:00:00Z"}`)
	stale, err := st.Stale(ctx, 2, false)
	if err != nil || !slices.Equal(stale, []digest.Digest{d}) {
		t.Fatalf("Stale(2) = %v, %v", stale, err)
	}
	if none, _ := st.Stale(ctx, 1, false); len(none) != 0 {
		t.Fatalf("Stale(1) = %v, want none (the report answers for generation 1)", none)
	}
	sboms, err := st.SBOMs(ctx, append(stale, digest.FromString("absent")))
	if err != nil || len(sboms) != 1 || sboms[0].Source.Digest != d || len(sboms[0].Packages) != 3 {
		t.Fatalf("SBOMs = %+v, %v", sboms, err)
	}
	m, _ := db.NewMatcher(ctx)
	var matched []store.Matched
	if _, err := vulndb.Rematch(ctx, m, seq(sboms), func(sb *sbom.SBOM, r *vulndb.Report) error {
		matched = append(matched, store.Matched{Digest: sb.Source.Digest, Report: r})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// An image deleted meanwhile is skipped.
	matched = append(matched, store.Matched{Digest: digest.FromString("gone"), Report: matched[0].Report})
	chs, err := st.PutReports(ctx, matched)
	if err != nil || len(chs) != 1 {
		t.Fatalf("PutReports = %+v, %v", chs, err)
	}
	if ch := chs[0]; ch.First || !slices.Equal(ids(ch.Added), []string{"GO-T-3"}) || !slices.Equal(ids(ch.Removed), []string{"GO-T-1"}) {
		t.Fatalf("re-match change = +%v -%v first %v", ids(ch.Added), ids(ch.Removed), ch.First)
	}
	res, err := st.Result(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if res.Generation != 2 || !res.Matched.Equal(c.t) || !res.Scanned.Equal(s.Created) || res.Report == nil || len(res.Report.Findings) != 2 {
		t.Fatalf("result = %+v", res.Image)
	}
	for _, x := range res.Findings {
		switch x.ID {
		case "GO-T-2": // seen since the scan, fixed since the update
			if !x.FirstSeen.Equal(scanTime) || x.Fixed != "0.2.0" || !x.FixSince.Equal(c.t) {
				t.Errorf("GO-T-2 after the update = %+v", x)
			}
		case "GO-T-3":
			if !x.FirstSeen.Equal(c.t) || !x.FixSince.Equal(c.t) {
				t.Errorf("GO-T-3 = %+v", x)
			}
		default:
			t.Errorf("unexpected finding %+v", x)
		}
	}
	// The same findings at a later generation: only the generation moves.
	c.t = c.t.Add(time.Hour)
	again := *matched[0].Report
	again.Database = vulndb.DatabaseRef{Generation: 3, UpdatedAt: c.t}
	chs, err = st.PutReports(ctx, []store.Matched{{Digest: d, Report: &again}})
	if err != nil || len(chs) != 1 || chs[0].Changed() || chs[0].First {
		t.Fatalf("unchanged re-match = %+v, %v", chs, err)
	}
	if res, _ := st.Result(ctx, d); res.Generation != 3 || res.Report.Database.Generation != 3 || !res.Report.Database.UpdatedAt.Equal(c.t) ||
		len(res.Findings) != 2 || !res.Findings[0].FirstSeen.Before(c.t) {
		t.Fatalf("after an unchanged re-match: %+v %+v", res.Image, res.Report.Database)
	}
	if repos, _ := st.Repositories(ctx, d); !slices.Equal(repos, []string{"team/app"}) {
		t.Errorf("repositories = %v", repos)
	}
	stats, _ := st.Stats(ctx)
	if stats != (store.Stats{Scanned: 1, Reported: 1, Findings: 2}) {
		t.Errorf("stats = %+v", stats)
	}
}

func seq(sboms []*sbom.SBOM) func(func(*sbom.SBOM, error) bool) {
	return func(yield func(*sbom.SBOM, error) bool) {
		for _, s := range sboms {
			if !yield(s, nil) {
				return
			}
		}
	}
}

// TestWithoutDatabase: a scan stored before any vulnerability database
// has no report (policy: not available) and is stale for every
// generation; its first report counts as First.
func TestWithoutDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	st := openStore(t, dir, c)
	d := digest.FromString("image two")
	s := goImage(d, map[string]string{"golang.org/x/text": "v0.3.5"})
	ch, err := st.PutScan(ctx, &store.Scan{Digest: d, Repositories: []string{"a/b"}, SBOM: s})
	if err != nil || ch.Changed() {
		t.Fatalf("PutScan = %+v, %v", ch, err)
	}
	f, err := st.Facts(ctx, d)
	if err != nil || f.Image.HasReport() || f.Findings != nil || f.Image.Generation != -1 || !f.Image.Matched.IsZero() {
		t.Fatalf("facts without a database = %+v, %v", f, err)
	}
	if stale, _ := st.Stale(ctx, 0, false); !slices.Equal(stale, []digest.Digest{d}) {
		t.Fatalf("Stale = %v", stale)
	}
	db := vulnDB(t, dir, goRecord("GO-T-1", "golang.org/x/text", "0.3.7"))
	chs, err := st.PutReports(ctx, []store.Matched{{Digest: d, Report: match(t, db, s)}})
	if err != nil || len(chs) != 1 || !chs[0].First || !slices.Equal(ids(chs[0].Added), []string{"GO-T-1"}) {
		t.Fatalf("first report = %+v, %v", chs, err)
	}
}

// TestFailuresAndDelete: failures count attempts; a later scan clears
// them; Delete forgets everything about a digest.
func TestFailuresAndDelete(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Now()}
	st := openStore(t, t.TempDir(), c)
	d := digest.FromString("flaky")
	for want := 1; want <= 3; want++ {
		n, err := st.PutFailure(ctx, d, []string{"x/y"}, "layer missing")
		if err != nil || n != want {
			t.Fatalf("PutFailure #%d = %d, %v", want, n, err)
		}
	}
	im, err := st.Image(ctx, d)
	if err != nil || im.State != store.StateFailed || im.Attempts != 3 || im.Error != "layer missing" || im.HasReport() {
		t.Fatalf("failed image = %+v, %v", im, err)
	}
	if _, err := st.Result(ctx, d); err != nil {
		t.Fatalf("Result of a failed scan: %v", err)
	}
	if _, err := st.PutScan(ctx, &store.Scan{Digest: d, SBOM: goImage(d, nil)}); err != nil {
		t.Fatal(err)
	}
	if im, _ := st.Image(ctx, d); im.State != store.StateScanned || im.Attempts != 0 || im.Error != "" {
		t.Fatalf("after a successful scan = %+v", im)
	}
	idx := digest.FromString("index")
	if err := st.SetIndex(ctx, "x/y", idx, []digest.Digest{d}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Indexes(ctx, d); len(got) != 1 || got[0] != (store.RepoDigest{Repository: "x/y", Digest: idx}) {
		t.Fatalf("Indexes = %v", got)
	}
	if err := st.Delete(ctx, []digest.Digest{d}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Image(ctx, d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Image after Delete = %v", err)
	}
	if _, err := st.SBOM(ctx, d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SBOM after Delete = %v", err)
	}
	if got, _ := st.Indexes(ctx, d); len(got) != 0 {
		t.Fatalf("Indexes after Delete = %v", got)
	}
	if imgs, _ := st.Images(ctx); len(imgs) != 0 {
		t.Fatalf("Images after Delete = %v", imgs)
	}
}

// TestReadOnly: a read-only store needs the file, refuses writes, and
// reads what a writer commits while both are open.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := store.Open(ctx, store.Path(dir), store.Options{ReadOnly: true}); !errors.Is(err, store.ErrNoStore) {
		t.Fatalf("read-only Open of nothing = %v", err)
	}
	w := openStore(t, dir, &clock{t: time.Now()})
	r, err := store.Open(ctx, store.Path(dir), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := digest.FromString("shared")
	if _, err := w.PutScan(ctx, &store.Scan{Digest: d, SBOM: goImage(d, map[string]string{"a.example/m": "v1.0.0"})}); err != nil {
		t.Fatal(err)
	}
	if s, err := r.SBOM(ctx, d); err != nil || len(s.Packages) != 1 {
		t.Fatalf("reader SBOM = %+v, %v", s, err)
	}
	if _, err := r.PutFailure(ctx, d, nil, "x"); err == nil {
		t.Fatal("a read-only store accepted a write")
	}
}

// TestFixSinceFromPublished: a fix is dated from the advisory's
// publication when the record has one (never from the future, never from
// an implausible date), else from when the registry first saw it; a
// publication date learnt later moves an unchanged finding's date back.
func TestFixSinceFromPublished(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	st := openStore(t, dir, c)
	db := vulnDB(t, dir, goRecord("GO-P-1", "example.com/a", "1.0.0"), goRecord("GO-P-2", "example.com/b", "2.0.0"),
		goRecord("GO-P-3", "example.com/c", "3.0.0"), goRecord("GO-P-4", "example.com/d", "4.0.0"))
	d := digest.FromString("image p")
	s := goImage(d, map[string]string{"example.com/a": "v0.1.0", "example.com/b": "v0.1.0", "example.com/c": "v0.1.0", "example.com/d": "v0.1.0"})
	published := map[string]time.Time{
		"GO-P-1": time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC), // the past: counts
		"GO-P-2": time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),  // the future: now
		"GO-P-3": time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC),     // implausible: now
	}
	report := func(pub map[string]time.Time) *vulndb.Report {
		r := match(t, db, s)
		for i := range r.Findings {
			r.Findings[i].Published = pub[r.Findings[i].ID]
		}
		return r
	}
	if _, err := st.PutScan(ctx, &store.Scan{Digest: d, Repositories: []string{"a/b"}, SBOM: s, Report: report(published)}); err != nil {
		t.Fatal(err)
	}
	since := func() map[string]time.Time {
		fs, err := st.Findings(ctx, d)
		if err != nil || len(fs) != 4 {
			t.Fatalf("findings %+v, %v", fs, err)
		}
		out := map[string]time.Time{}
		for _, f := range fs {
			out[f.ID] = f.FixSince
		}
		return out
	}
	want := map[string]time.Time{"GO-P-1": published["GO-P-1"], "GO-P-2": c.t, "GO-P-3": c.t, "GO-P-4": c.t}
	if got := since(); !reflect.DeepEqual(got, want) {
		t.Fatalf("fix since:\n got %v\nwant %v", got, want)
	}
	first := c.t
	// Later: the same findings, GO-P-4 now with an earlier date, GO-P-1
	// with a later one (an earlier date stays).
	c.t = c.t.Add(72 * time.Hour)
	published["GO-P-4"] = time.Date(2024, 5, 5, 0, 0, 0, 0, time.UTC)
	published["GO-P-1"] = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	r := report(published)
	r.Database.Generation = 2
	if _, err := st.PutReports(ctx, []store.Matched{{Digest: d, Report: r}}); err != nil {
		t.Fatal(err)
	}
	want = map[string]time.Time{"GO-P-1": time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC), "GO-P-2": first, "GO-P-3": first, "GO-P-4": published["GO-P-4"]}
	if got := since(); !reflect.DeepEqual(got, want) {
		t.Fatalf("fix since after the update:\n got %v\nwant %v", got, want)
	}
}
