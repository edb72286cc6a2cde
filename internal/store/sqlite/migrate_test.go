package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/store"
	"github.com/bulwark-dev/bulwark/internal/store/sqlite"
)

// TestMigrateFromV1 opens a database made by the first schema (before
// quarantine existed; testdata/schema-v1.sql is that file verbatim) and
// checks that Open adds what is new without disturbing what is there.
func TestMigrateFromV1(t *testing.T) {
	v1, err := os.ReadFile("testdata/schema-v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "meta.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := digest.FromString("cfg")
	content := []byte(`{"schemaVersion":2,"old":true}`)
	md := digest.FromBytes(content)
	for _, stmt := range []struct {
		q    string
		args []any
	}{
		{string(v1), nil},
		{`INSERT INTO repositories(id, name, created) VALUES (1, 'old/repo', 1)`, nil},
		{`INSERT INTO blobs(digest, size, touched) VALUES (?, 3, 1)`, []any{cfg.String()}},
		{`INSERT INTO repo_blobs(repo_id, digest) VALUES (1, ?)`, []any{cfg.String()}},
		{`INSERT INTO manifests(repo_id, digest, media_type, artifact_type, content, created) VALUES (1, ?, 'application/vnd.oci.image.manifest.v1+json', '', ?, 1)`, []any{md.String(), content}},
		{`INSERT INTO manifest_refs(repo_id, manifest, kind, digest) VALUES (1, ?, 'b', ?)`, []any{md.String(), cfg.String()}},
		{`INSERT INTO tags(repo_id, name, digest, updated) VALUES (1, 'v1', ?, 1)`, []any{md.String()}},
	} {
		if _, err := raw.Exec(stmt.q, stmt.args...); err != nil {
			t.Fatalf("%.60s: %v", stmt.q, err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	db := openDB(t, path, sqlite.Options{})
	ctx := t.Context()
	if got, err := db.Tag(ctx, "old/repo", "v1"); err != nil || got != md {
		t.Fatalf("Tag after migration = %s, %v", got, err)
	}
	if a, err := db.BlobAccess(ctx, "old/repo", cfg); err != nil || !a.Public || a.Size != 3 {
		t.Fatalf("BlobAccess after migration = %+v, %v", a, err)
	}
	if err := db.Quarantine(ctx, &store.QuarantineRecord{Repository: "old/repo", Digest: md, Pusher: "a", PusherKind: "user", Reason: "r", DecisionID: "d"}); err != nil {
		t.Fatalf("Quarantine after migration: %v", err)
	}
	if a, err := db.BlobAccess(ctx, "old/repo", cfg); err != nil || a.Public || len(a.Quarantined) != 1 {
		t.Fatalf("BlobAccess of a quarantined manifest's blob = %+v, %v", a, err)
	}
	// Opening again (the migration is idempotent) keeps the record.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, path, sqlite.Options{})
	if q, err := db.Quarantined(ctx, "old/repo", md); err != nil || q == nil || q.Reason != "r" {
		t.Fatalf("Quarantined after reopening = %+v, %v", q, err)
	}
}
