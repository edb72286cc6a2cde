package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/store"
)

// TestBlobs runs the store.Blobs conformance suite against stores returned
// by open.
func TestBlobs(t *testing.T, open func(t *testing.T) store.Blobs) {
	t.Helper()
	run(t, open, []subtest[store.Blobs]{
		{"CommitMakesContentReadable", testCommitReadable},
		{"AppendResumesAndTruncates", testAppendOffsets},
		{"AppendBeyondDataFails", testAppendBeyondData},
		{"AppendLimit", testAppendLimit},
		{"EmptyBlob", testEmptyBlob},
		{"CommitDedups", testCommitDedup},
		{"ConcurrentCommitsOfSameContent", testConcurrentCommit},
		{"RehashSHA512", testRehash},
		{"Abort", testAbort},
		{"DeleteIsIdempotent", testDelete},
		{"UnknownBlob", testUnknownBlob},
		{"WalkListsExactlyCommittedBlobs", testWalk},
		{"UploadsListsUploadData", testUploads},
		{"HostileDigestsAndIDs", testHostileNames},
	})
}

// appendAll writes content to upload id at offset and checks the count and
// the bytes fed to the hash.
func appendAll(t *testing.T, b store.Blobs, id string, offset int64, content []byte) {
	t.Helper()
	h := sha256.New()
	n, err := b.Append(t.Context(), id, offset, bytes.NewReader(content), h, -1)
	noErr(t, fmt.Sprintf("Append(%q, %d)", id, offset), err)
	if n != int64(len(content)) {
		t.Fatalf("Append(%q, %d) wrote %d bytes, want %d", id, offset, n, len(content))
	}
	if got, want := digest.NewDigest(digest.SHA256, h), digest.FromBytes(content); got != want {
		t.Fatalf("Append(%q) fed the hash %s, want %s", id, got, want)
	}
}

// commitBlob uploads content under a fresh id and commits it as its sha256
// digest.
func commitBlob(t *testing.T, b store.Blobs, id string, content []byte) digest.Digest {
	t.Helper()
	appendAll(t, b, id, 0, content)
	d := digest.FromBytes(content)
	noErr(t, "Commit "+id, b.Commit(t.Context(), id, d))
	return d
}

// readBlob returns a committed blob's content, checking Open's size and
// Stat agree with it.
func readBlob(t *testing.T, b store.Blobs, d digest.Digest) []byte {
	t.Helper()
	f, size, err := b.Open(t.Context(), d)
	noErr(t, "Open "+d.String(), err)
	defer f.Close()
	data, err := io.ReadAll(f)
	noErr(t, "read "+d.String(), err)
	if size != int64(len(data)) {
		t.Errorf("Open(%s) reported size %d, read %d bytes", d, size, len(data))
	}
	st, err := b.Stat(t.Context(), d)
	noErr(t, "Stat "+d.String(), err)
	if st != int64(len(data)) {
		t.Errorf("Stat(%s) = %d, read %d bytes", d, st, len(data))
	}
	return data
}

func walkBlobs(t *testing.T, b store.Blobs) map[digest.Digest]int64 {
	t.Helper()
	out := map[digest.Digest]int64{}
	err := b.Walk(t.Context(), func(d digest.Digest, size int64) error {
		if _, dup := out[d]; dup {
			t.Errorf("Walk reported %s twice", d)
		}
		out[d] = size
		return nil
	})
	noErr(t, "Walk", err)
	return out
}

func uploadData(t *testing.T, b store.Blobs) map[string]store.UploadData {
	t.Helper()
	list, err := b.Uploads(t.Context())
	noErr(t, "Uploads", err)
	out := map[string]store.UploadData{}
	for _, u := range list {
		out[u.ID] = u
	}
	return out
}

func wantWalk(t *testing.T, b store.Blobs, want map[digest.Digest]int64) {
	t.Helper()
	if got := walkBlobs(t, b); !maps.Equal(got, want) {
		t.Errorf("Walk = %v, want %v", got, want)
	}
}

func testCommitReadable(t *testing.T, b store.Blobs) {
	content := []byte("hello, content-addressed world")
	d := digest.FromBytes(content)
	appendAll(t, b, "up-1", 0, content)

	// Upload data is not content: nothing is readable before Commit.
	_, err := b.Stat(t.Context(), d)
	wantErr(t, "Stat before Commit", err, store.ErrBlobUnknown)
	_, _, err = b.Open(t.Context(), d)
	wantErr(t, "Open before Commit", err, store.ErrBlobUnknown)
	wantWalk(t, b, map[digest.Digest]int64{})

	noErr(t, "Commit", b.Commit(t.Context(), "up-1", d))
	if got := readBlob(t, b, d); !bytes.Equal(got, content) {
		t.Fatalf("content = %q, want %q", got, content)
	}
	// Open returns a seekable reader: Range requests depend on it.
	f, _, err := b.Open(t.Context(), d)
	noErr(t, "Open", err)
	defer f.Close()
	if _, err := f.Seek(7, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(f)
	noErr(t, "read after seek", err)
	if !bytes.Equal(rest, content[7:]) {
		t.Errorf("after Seek(7) read %q, want %q", rest, content[7:])
	}
	if _, ok := uploadData(t, b)["up-1"]; ok {
		t.Error("Uploads still lists a committed upload")
	}
	wantWalk(t, b, map[digest.Digest]int64{d: int64(len(content))})
}

func testAppendOffsets(t *testing.T, b store.Blobs) {
	tests := []struct {
		name    string
		initial string
		offset  int64
		chunk   string
		want    string
	}{
		{"resume at end", "hello ", 6, "world", "hello world"},
		{"truncate unacknowledged tail", "abcdef", 3, "XY", "abcXY"},
		{"truncate to empty then write", "abcdef", 0, "Z", "Z"},
		{"truncate without new data", "abcdef", 2, "", "ab"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("offsets-%d", i)
			appendAll(t, b, id, 0, []byte(tc.initial))
			// The caller's hash carries the state of the first offset bytes.
			h := sha256.New()
			h.Write([]byte(tc.initial[:tc.offset]))
			n, err := b.Append(t.Context(), id, tc.offset, strings.NewReader(tc.chunk), h, -1)
			noErr(t, "second Append", err)
			if n != int64(len(tc.chunk)) {
				t.Errorf("second Append wrote %d bytes, want %d", n, len(tc.chunk))
			}
			want := digest.FromString(tc.want)
			if got := digest.NewDigest(digest.SHA256, h); got != want {
				t.Errorf("hash after resume = %s, want %s", got, want)
			}
			if got := uploadData(t, b)[id].Size; got != int64(len(tc.want)) {
				t.Errorf("Uploads size = %d, want %d", got, len(tc.want))
			}
			gd, gn, err := b.Rehash(t.Context(), id, digest.SHA256)
			noErr(t, "Rehash", err)
			if gd != want || gn != int64(len(tc.want)) {
				t.Errorf("Rehash = %s, %d; want %s, %d", gd, gn, want, len(tc.want))
			}
			noErr(t, "Commit", b.Commit(t.Context(), id, want))
			if got := readBlob(t, b, want); string(got) != tc.want {
				t.Errorf("committed content = %q, want %q", got, tc.want)
			}
		})
	}
}

func testAppendBeyondData(t *testing.T, b store.Blobs) {
	appendAll(t, b, "beyond", 0, []byte("abc"))
	_, err := b.Append(t.Context(), "beyond", 10, strings.NewReader("xyz"), sha256.New(), -1)
	if err == nil {
		t.Fatal("Append at offset 10 of a 3-byte upload succeeded; it must fail, there is a hole")
	}
	d, n, err := b.Rehash(t.Context(), "beyond", digest.SHA256)
	noErr(t, "Rehash", err)
	if d != digest.FromString("abc") || n != 3 {
		t.Errorf("data after refused Append = %s (%d bytes), want the original 3 bytes", d, n)
	}
}

// endless is a body that never ends.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	clear(p)
	e.read += int64(len(p))
	return len(p), nil
}

func testAppendLimit(t *testing.T, b store.Blobs) {
	tests := []struct {
		name    string
		size    int
		limit   int64
		tooLong bool
	}{
		{"exactly the limit", 10, 10, false},
		{"one past the limit", 11, 10, true},
		{"empty body, zero limit", 0, 0, false},
		{"one byte, zero limit", 1, 0, true},
		{"unlimited", 1 << 20, -1, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("limit-%d", i)
			n, err := b.Append(t.Context(), id, 0, bytes.NewReader(make([]byte, tc.size)), sha256.New(), tc.limit)
			if tc.tooLong {
				wantErr(t, "Append", err, store.ErrTooLarge)
				return
			}
			noErr(t, "Append", err)
			if n != int64(tc.size) {
				t.Errorf("Append wrote %d, want %d", n, tc.size)
			}
		})
	}
	t.Run("endless body", func(t *testing.T) {
		// A limit must stop a body that never ends, not merely report it.
		src := &endless{}
		_, err := b.Append(t.Context(), "limit-endless", 0, src, sha256.New(), 4096)
		wantErr(t, "Append of an endless body", err, store.ErrTooLarge)
		if src.read > 16<<20 {
			t.Errorf("Append read %d bytes of an endless body with a 4096-byte limit", src.read)
		}
	})
	wantWalk(t, b, map[digest.Digest]int64{})
}

func testEmptyBlob(t *testing.T, b store.Blobs) {
	d := commitBlob(t, b, "empty", nil)
	if d != digest.FromBytes(nil) {
		t.Fatalf("digest of nothing = %s", d)
	}
	if got := readBlob(t, b, d); len(got) != 0 {
		t.Errorf("empty blob reads %d bytes", len(got))
	}
	wantWalk(t, b, map[digest.Digest]int64{d: 0})
}

func testCommitDedup(t *testing.T, b store.Blobs) {
	content := []byte("the same bytes twice")
	d := commitBlob(t, b, "dedup-1", content)
	appendAll(t, b, "dedup-2", 0, content)
	noErr(t, "second Commit of the same content", b.Commit(t.Context(), "dedup-2", d))
	if got := readBlob(t, b, d); !bytes.Equal(got, content) {
		t.Errorf("content = %q, want %q", got, content)
	}
	wantWalk(t, b, map[digest.Digest]int64{d: int64(len(content))})
	if ups := uploadData(t, b); len(ups) != 0 {
		t.Errorf("Uploads after both commits = %v, want none", ups)
	}
}

func testConcurrentCommit(t *testing.T, b store.Blobs) {
	content := bytes.Repeat([]byte("race"), 4096)
	d := digest.FromBytes(content)
	const workers = 8
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("race-%d", i)
			if _, err := b.Append(t.Context(), id, 0, bytes.NewReader(content), sha256.New(), -1); err != nil {
				errs <- fmt.Errorf("Append %s: %w", id, err)
				return
			}
			if err := b.Commit(t.Context(), id, d); err != nil {
				errs <- fmt.Errorf("Commit %s: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := readBlob(t, b, d); !bytes.Equal(got, content) {
		t.Error("content after concurrent commits differs")
	}
	wantWalk(t, b, map[digest.Digest]int64{d: int64(len(content))})
	if ups := uploadData(t, b); len(ups) != 0 {
		t.Errorf("Uploads after concurrent commits = %v, want none", ups)
	}
}

func testRehash(t *testing.T, b store.Blobs) {
	chunks := []string{"first chunk, ", "second chunk, ", "third"}
	var off int64
	for _, c := range chunks {
		appendAll(t, b, "rehash", off, []byte(c))
		off += int64(len(c))
	}
	whole := strings.Join(chunks, "")
	for _, alg := range []digest.Algorithm{digest.SHA512, digest.SHA256} {
		d, n, err := b.Rehash(t.Context(), "rehash", alg)
		noErr(t, "Rehash "+string(alg), err)
		if want := alg.FromString(whole); d != want || n != int64(len(whole)) {
			t.Errorf("Rehash(%s) = %s, %d; want %s, %d", alg, d, n, want, len(whole))
		}
	}
	d := digest.SHA512.FromString(whole)
	noErr(t, "Commit sha512", b.Commit(t.Context(), "rehash", d))
	if got := readBlob(t, b, d); string(got) != whole {
		t.Errorf("sha512 blob = %q, want %q", got, whole)
	}
	_, err := b.Stat(t.Context(), digest.FromString(whole))
	wantErr(t, "Stat of the sha256 digest of a blob committed as sha512", err, store.ErrBlobUnknown)
	wantWalk(t, b, map[digest.Digest]int64{d: int64(len(whole))})
}

func testAbort(t *testing.T, b store.Blobs) {
	appendAll(t, b, "abort", 0, []byte("doomed data"))
	noErr(t, "Abort", b.Abort(t.Context(), "abort"))
	if _, ok := uploadData(t, b)["abort"]; ok {
		t.Error("Uploads lists an aborted upload")
	}
	noErr(t, "second Abort", b.Abort(t.Context(), "abort"))
	noErr(t, "Abort of an unknown id", b.Abort(t.Context(), "never-started"))
	// The data is really gone: resuming where it ended must fail, and a new
	// upload under the same id starts from nothing.
	if _, err := b.Append(t.Context(), "abort", 11, strings.NewReader("more"), sha256.New(), -1); err == nil {
		t.Error("Append at the old offset of an aborted upload succeeded")
	}
	appendAll(t, b, "abort", 0, []byte("fresh"))
	d, n, err := b.Rehash(t.Context(), "abort", digest.SHA256)
	noErr(t, "Rehash", err)
	if d != digest.FromString("fresh") || n != 5 {
		t.Errorf("restarted upload = %s (%d bytes), want just \"fresh\"", d, n)
	}
	wantWalk(t, b, map[digest.Digest]int64{})
}

func testDelete(t *testing.T, b store.Blobs) {
	keep := commitBlob(t, b, "keep", []byte("keep me"))
	gone := commitBlob(t, b, "gone", []byte("delete me"))
	noErr(t, "Delete", b.Delete(t.Context(), gone))
	_, err := b.Stat(t.Context(), gone)
	wantErr(t, "Stat after Delete", err, store.ErrBlobUnknown)
	_, _, err = b.Open(t.Context(), gone)
	wantErr(t, "Open after Delete", err, store.ErrBlobUnknown)
	noErr(t, "second Delete", b.Delete(t.Context(), gone))
	noErr(t, "Delete of unknown content", b.Delete(t.Context(), digest.FromString("never stored")))
	wantWalk(t, b, map[digest.Digest]int64{keep: 7})
	if got := readBlob(t, b, keep); string(got) != "keep me" {
		t.Errorf("surviving blob = %q", got)
	}
}

func testUnknownBlob(t *testing.T, b store.Blobs) {
	for _, d := range []digest.Digest{digest.FromString("nope"), digest.SHA512.FromString("nope")} {
		_, err := b.Stat(t.Context(), d)
		wantErr(t, "Stat "+d.String(), err, store.ErrBlobUnknown)
		_, _, err = b.Open(t.Context(), d)
		wantErr(t, "Open "+d.String(), err, store.ErrBlobUnknown)
	}
}

func testWalk(t *testing.T, b store.Blobs) {
	want := map[digest.Digest]int64{}
	for i, c := range []string{"one", "two", "three"} {
		want[commitBlob(t, b, fmt.Sprintf("walk-%d", i), []byte(c))] = int64(len(c))
	}
	appendAll(t, b, "walk-512", 0, []byte("sha512 content"))
	d512 := digest.SHA512.FromString("sha512 content")
	noErr(t, "Commit sha512", b.Commit(t.Context(), "walk-512", d512))
	want[d512] = 14
	want[commitBlob(t, b, "walk-empty", nil)] = 0
	deleted := commitBlob(t, b, "walk-deleted", []byte("deleted"))
	noErr(t, "Delete", b.Delete(t.Context(), deleted))
	appendAll(t, b, "walk-pending", 0, []byte("not committed"))
	wantWalk(t, b, want)

	stop := errors.New("stop")
	calls := 0
	err := b.Walk(t.Context(), func(digest.Digest, int64) error { calls++; return stop })
	if !errors.Is(err, stop) {
		t.Errorf("Walk returned %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Errorf("Walk called fn %d times after it failed, want 1", calls)
	}
}

func testUploads(t *testing.T, b store.Blobs) {
	start := time.Now()
	appendAll(t, b, "ups-a", 0, []byte("abc"))
	appendAll(t, b, "ups-b", 0, nil)
	commitBlob(t, b, "ups-done", []byte("done"))
	got := uploadData(t, b)
	if len(got) != 2 {
		t.Fatalf("Uploads = %v, want exactly ups-a and ups-b", got)
	}
	for id, size := range map[string]int64{"ups-a": 3, "ups-b": 0} {
		u, ok := got[id]
		if !ok {
			t.Errorf("Uploads does not list %s", id)
			continue
		}
		if u.Size != size {
			t.Errorf("%s: Size = %d, want %d", id, u.Size, size)
		}
		// Generous bounds: file systems round modification times.
		if u.Modified.Before(start.Add(-time.Minute)) || u.Modified.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s: Modified = %v, want about %v", id, u.Modified, start)
		}
	}
}

// hostileDigests are digest strings no store may act on: malformed,
// unsupported, or crafted to escape a directory.
var hostileDigests = []digest.Digest{
	"",
	"sha256",
	"sha256:",
	"sha256:xyz",
	"sha256:../../../../etc/passwd",
	"sha256:" + digest.Digest(strings.Repeat("A", 64)),
	"sha256:" + digest.Digest(strings.Repeat("a", 63)),
	"sha256:/" + digest.Digest(strings.Repeat("a", 63)),
	"sha256:" + digest.Digest(strings.Repeat("a", 62)) + "/..",
	"md5:d41d8cd98f00b204e9800998ecf8427e",
	"sha384:" + digest.Digest(strings.Repeat("a", 96)),
	"../x",
	"../../x",
	"..",
	"/etc/passwd",
}

// hostileIDs are upload ids no store may act on.
var hostileIDs = []string{
	"",
	".",
	"..",
	"../x",
	"../../x",
	"../blobs/sha256",
	"a/b",
	"/etc/passwd",
	"x\x00y",
	`..\x`,
}

func testHostileNames(t *testing.T, b store.Blobs) {
	// Legitimate state that hostile calls must leave alone.
	good := commitBlob(t, b, "good", []byte("good content"))
	appendAll(t, b, "pending", 0, []byte("pending data"))
	ctx := t.Context()
	valid := digest.FromString("valid but unknown")

	for _, d := range hostileDigests {
		_, err := b.Stat(ctx, d)
		wantErr(t, fmt.Sprintf("Stat(%q)", d), err, store.ErrBlobUnknown)
		_, _, err = b.Open(ctx, d)
		wantErr(t, fmt.Sprintf("Open(%q)", d), err, store.ErrBlobUnknown)
		if err := b.Delete(ctx, d); err != nil && !errors.Is(err, store.ErrBlobUnknown) {
			t.Errorf("Delete(%q) = %v, want nil or ErrBlobUnknown", d, err)
		}
		appendAll(t, b, "victim", 0, []byte("victim data"))
		err = b.Commit(ctx, "victim", d)
		wantErr(t, fmt.Sprintf("Commit(victim, %q)", d), err, store.ErrBlobUnknown)
		noErr(t, "Abort victim", b.Abort(ctx, "victim"))
	}
	for _, id := range hostileIDs {
		_, err := b.Append(ctx, id, 0, strings.NewReader("evil"), sha256.New(), -1)
		wantErr(t, fmt.Sprintf("Append(%q)", id), err, store.ErrUploadUnknown)
		_, _, err = b.Rehash(ctx, id, digest.SHA256)
		wantErr(t, fmt.Sprintf("Rehash(%q)", id), err, store.ErrUploadUnknown)
		err = b.Commit(ctx, id, valid)
		wantErr(t, fmt.Sprintf("Commit(%q)", id), err, store.ErrUploadUnknown)
		if err := b.Abort(ctx, id); err != nil && !errors.Is(err, store.ErrUploadUnknown) {
			t.Errorf("Abort(%q) = %v, want nil or ErrUploadUnknown", id, err)
		}
	}

	wantWalk(t, b, map[digest.Digest]int64{good: 12})
	if got := readBlob(t, b, good); string(got) != "good content" {
		t.Errorf("good blob = %q after hostile calls", got)
	}
	ups := uploadData(t, b)
	if len(ups) != 1 || ups["pending"].Size != 12 {
		t.Errorf("Uploads = %v after hostile calls, want only pending (12 bytes)", ups)
	}
	_, err := b.Stat(ctx, valid)
	wantErr(t, "Stat of the digest hostile commits named", err, store.ErrBlobUnknown)
}
