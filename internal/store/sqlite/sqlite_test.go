package sqlite_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/store"
	"github.com/bulwark-dev/bulwark/internal/store/sqlite"
	"github.com/bulwark-dev/bulwark/internal/store/storetest"
)

func openDB(t *testing.T, path string, opts sqlite.Options) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMeta(t *testing.T) {
	storetest.TestMeta(t, func(t *testing.T) store.Meta {
		return openDB(t, filepath.Join(t.TempDir(), "meta.db"), sqlite.Options{})
	})
}

// TestReopen checks that metadata survives closing and reopening, and that
// opening an existing database does not disturb it (the schema migration is
// idempotent).
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := t.Context()
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("cfg")
	content := []byte(`{"schemaVersion":2}`)
	rec := &store.ManifestRecord{Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: content, Config: d, Blobs: []digest.Digest{d}}
	if err := db.PutBlob(ctx, "r", d, 3); err != nil {
		t.Fatal(err)
	}
	if err := db.PutManifest(ctx, "r", rec, []string{"v1"}, false); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateUpload(ctx, &store.Upload{ID: "u", Repository: "r", Offset: 9}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, path, sqlite.Options{})
	if got, err := db.Tag(ctx, "r", "v1"); err != nil || got != rec.Digest {
		t.Errorf("Tag after reopen = %s, %v", got, err)
	}
	if size, err := db.RepoBlob(ctx, "r", d); err != nil || size != 3 {
		t.Errorf("RepoBlob after reopen = %d, %v", size, err)
	}
	if u, err := db.Upload(ctx, "u"); err != nil || u.Offset != 9 {
		t.Errorf("Upload after reopen = %+v, %v", u, err)
	}
	if unused, err := db.UnusedBlobs(ctx, time.Now().Add(time.Hour)); err != nil || len(unused) != 0 {
		t.Errorf("references lost on reopen: UnusedBlobs = %v, %v", unused, err)
	}
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// TestClock checks that the grace and expiry clocks use Options.Now, exactly,
// at the boundaries: a blob touched at T is a candidate for cutoff T+1ns but
// not for T.
func TestClock(t *testing.T) {
	ctx := t.Context()
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"), sqlite.Options{Now: clock.Now})
	t0 := clock.Now()
	d := digest.FromString("blob")
	if err := db.PutBlob(ctx, "r", d, 1); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateUpload(ctx, &store.Upload{ID: "u", Repository: "r"}); err != nil {
		t.Fatal(err)
	}
	rec, err := db.Blob(ctx, d)
	if err != nil || !rec.Touched.Equal(t0) {
		t.Fatalf("Touched = %v, %v; want %v", rec.Touched, err, t0)
	}
	if list, _ := db.UnusedBlobs(ctx, t0); len(list) != 0 {
		t.Errorf("UnusedBlobs(T) = %v, want none", list)
	}
	if list, _ := db.UnusedBlobs(ctx, t0.Add(1)); len(list) != 1 {
		t.Errorf("UnusedBlobs(T+1ns) = %v, want the blob", list)
	}
	if list, _ := db.StaleUploads(ctx, t0); len(list) != 0 {
		t.Errorf("StaleUploads(T) = %v, want none", list)
	}
	if list, _ := db.StaleUploads(ctx, t0.Add(1)); len(list) != 1 {
		t.Errorf("StaleUploads(T+1ns) = %v, want the session", list)
	}

	clock.Set(t0.Add(time.Hour))
	if _, err := db.LinkBlob(ctx, "r2", d); err != nil {
		t.Fatal(err)
	}
	if deleted, err := db.DeleteBlobIfUnused(ctx, d, t0.Add(time.Minute)); err != nil || deleted {
		t.Errorf("DeleteBlobIfUnused after a later link = %v, %v; want false", deleted, err)
	}
	if deleted, err := db.DeleteBlobIfUnused(ctx, d, t0.Add(time.Hour+1)); err != nil || !deleted {
		t.Errorf("DeleteBlobIfUnused past the link = %v, %v; want true", deleted, err)
	}
	if err := db.UpdateUpload(ctx, &store.Upload{ID: "u", Offset: 1}); err != nil {
		t.Fatal(err)
	}
	if u, err := db.Upload(ctx, "u"); err != nil || !u.Updated.Equal(t0.Add(time.Hour)) || !u.Started.Equal(t0) {
		t.Errorf("Upload times = %+v, %v", u, err)
	}
}
