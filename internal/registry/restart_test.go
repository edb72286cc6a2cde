package registry_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/store/fs"
	"github.com/bulwark-dev/bulwark/internal/store/sqlite"
)

// TestUploadAfterRestartIsRehashed: upload data is not fsynced between
// requests, so a session that outlives its process (a crash, a power loss)
// may have data that no longer matches its saved hash state. The registry
// must re-hash such data when the upload finishes instead of committing it
// under the client's digest.
func TestUploadAfterRestartIsRehashed(t *testing.T) {
	dir := t.TempDir()
	blobs, err := fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := sqlite.Open(t.Context(), filepath.Join(dir, "meta.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	before := httptest.NewServer(registry.New(blobs, meta, registry.Options{}))
	content := bytes.Repeat([]byte("0123456789"), 1000)
	d := digest.FromBytes(content)

	resp, err := http.Post(before.URL+"/v2/r/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	req, _ := http.NewRequest(http.MethodPatch, before.URL+loc, bytes.NewReader(content))
	req.Header.Set("Content-Range", "0-9999")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("patch: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	before.Close()

	// What a power loss can leave: the right length, other bytes.
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	path := filepath.Join(dir, "uploads", id)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[5000] ^= 0xff
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}

	after := httptest.NewServer(registry.New(blobs, meta, registry.Options{}))
	defer after.Close()
	req, _ = http.NewRequest(http.MethodPut, after.URL+loc+"?digest="+d.String(), nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "DIGEST_INVALID") {
		t.Fatalf("finishing a damaged upload after a restart = %s %s, want 400 DIGEST_INVALID", resp.Status, body)
	}
	if _, err := blobs.Stat(t.Context(), d); err == nil {
		t.Fatal("damaged data was committed under the client's digest")
	}
}
