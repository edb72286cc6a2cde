package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/store"
)

// TestMeta runs the store.Meta conformance suite against stores returned by
// open.
func TestMeta(t *testing.T, open func(t *testing.T) store.Meta) {
	t.Helper()
	run(t, open, []subtest[store.Meta]{
		{"BlobLinks", testBlobLinks},
		{"BlobTouch", testBlobTouch},
		{"CompleteUpload", testCompleteUpload},
		{"PutManifestChecksReferences", testPutManifestRefs},
		{"ManifestRoundTrip", testManifestRoundTrip},
		{"Tags", testTags},
		{"UnknownManifestsAndTags", testUnknowns},
		{"DeleteManifestCascadesTags", testDeleteManifest},
		{"DeleteTag", testDeleteTag},
		{"TagsPagination", testTagsPagination},
		{"RepositoriesPagination", testReposPagination},
		{"Referrers", testReferrers},
		{"WalkManifests", testWalkManifests},
		{"Uploads", testUploadSessions},
		{"StaleUploads", testStaleUploads},
		{"UnusedBlobs", testUnusedBlobs},
		{"Concurrent", testConcurrentMeta},
		{"ManifestTags", testManifestTags},
		{"Quarantine", testQuarantine},
		{"QuarantineAtomicWithPut", testPutQuarantined},
		{"QuarantineDeletedWithManifest", testQuarantineDelete},
		{"QuarantineList", testQuarantineList},
		{"QuarantinedManifestsAreLive", testQuarantineGC},
		{"BlobAccess", testBlobAccess},
	})
}

// dg is a distinct, well-formed digest per name. Meta never sees content,
// so any digest will do.
func dg(name string) digest.Digest { return digest.FromString(name) }

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
)

// image returns the record of an image manifest named name.
func image(name string, config digest.Digest, layers ...digest.Digest) *store.ManifestRecord {
	content := []byte(`{"image":"` + name + `"}`)
	return &store.ManifestRecord{
		Digest:       digest.FromBytes(content),
		MediaType:    mtManifest,
		ArtifactType: mtConfig,
		Content:      content,
		Config:       config,
		Blobs:        append([]digest.Digest{config}, layers...),
	}
}

// index returns the record of an index named name listing children.
func index(name string, children ...digest.Digest) *store.ManifestRecord {
	content := []byte(`{"index":"` + name + `"}`)
	return &store.ManifestRecord{
		Digest:    digest.FromBytes(content),
		MediaType: mtIndex,
		Content:   content,
		Children:  children,
	}
}

// putBlobs records each digest as a 10-byte blob linked into repo.
func putBlobs(t *testing.T, m store.Meta, repo string, ds ...digest.Digest) {
	t.Helper()
	for _, d := range ds {
		noErr(t, "PutBlob "+repo, m.PutBlob(t.Context(), repo, d, 10))
	}
}

func putManifest(t *testing.T, m store.Meta, repo string, rec *store.ManifestRecord, tags ...string) {
	t.Helper()
	noErr(t, fmt.Sprintf("PutManifest %s %v", repo, tags), m.PutManifest(t.Context(), repo, rec, tags, false))
}

func wantTag(t *testing.T, m store.Meta, repo, tag string, want digest.Digest) {
	t.Helper()
	got, err := m.Tag(t.Context(), repo, tag)
	if err != nil {
		t.Errorf("Tag(%s, %s): %v, want %s", repo, tag, err, want)
		return
	}
	if got != want {
		t.Errorf("Tag(%s, %s) = %s, want %s", repo, tag, got, want)
	}
}

func wantNoTag(t *testing.T, m store.Meta, repo, tag string) {
	t.Helper()
	_, err := m.Tag(t.Context(), repo, tag)
	wantErr(t, fmt.Sprintf("Tag(%s, %s)", repo, tag), err, store.ErrTagUnknown)
}

func wantTags(t *testing.T, m store.Meta, repo string, want ...string) {
	t.Helper()
	got, err := m.Tags(t.Context(), repo, store.Page{N: -1})
	noErr(t, "Tags "+repo, err)
	if !slices.Equal(append([]string{}, got...), append([]string{}, want...)) {
		t.Errorf("Tags(%s) = %q, want %q", repo, got, want)
	}
}

func wantNoManifest(t *testing.T, m store.Meta, repo string, d digest.Digest) {
	t.Helper()
	_, err := m.Manifest(t.Context(), repo, d)
	wantErr(t, fmt.Sprintf("Manifest(%s, %s)", repo, d), err, store.ErrManifestUnknown)
}

func wantRepos(t *testing.T, m store.Meta, want ...string) {
	t.Helper()
	got, err := m.Repositories(t.Context(), store.Page{N: -1})
	noErr(t, "Repositories", err)
	if !slices.Equal(sortedStrings(got), sortedStrings(want)) {
		t.Errorf("Repositories = %q, want %q", got, want)
	}
}

func testBlobLinks(t *testing.T, m store.Meta) {
	ctx := t.Context()
	d := dg("layer")
	_, err := m.RepoBlob(ctx, "a", d)
	wantErr(t, "RepoBlob before PutBlob", err, store.ErrBlobUnknown)
	_, err = m.Blob(ctx, d)
	wantErr(t, "Blob before PutBlob", err, store.ErrBlobUnknown)

	noErr(t, "PutBlob", m.PutBlob(ctx, "a", d, 42))
	if size, err := m.RepoBlob(ctx, "a", d); err != nil || size != 42 {
		t.Errorf("RepoBlob(a) = %d, %v; want 42", size, err)
	}
	if rec, err := m.Blob(ctx, d); err != nil || rec.Size != 42 || rec.Digest != d || rec.Touched.IsZero() {
		t.Errorf("Blob = %+v, %v; want size 42 and a touched time", rec, err)
	}
	_, err = m.RepoBlob(ctx, "b", d)
	wantErr(t, "RepoBlob in a repository it was not linked into", err, store.ErrBlobUnknown)

	if size, err := m.LinkBlob(ctx, "b", d); err != nil || size != 42 {
		t.Errorf("LinkBlob(b) = %d, %v; want 42", size, err)
	}
	if size, err := m.LinkBlob(ctx, "b", d); err != nil || size != 42 {
		t.Errorf("second LinkBlob(b) = %d, %v; want 42", size, err)
	}
	if size, err := m.RepoBlob(ctx, "b", d); err != nil || size != 42 {
		t.Errorf("RepoBlob(b) after LinkBlob = %d, %v; want 42", size, err)
	}
	repos, err := m.BlobRepositories(ctx, d)
	noErr(t, "BlobRepositories", err)
	if !slices.Equal(sortedStrings(repos), []string{"a", "b"}) {
		t.Errorf("BlobRepositories = %q, want [a b]", repos)
	}

	// Linking unknown content fails and has no side effect.
	_, err = m.LinkBlob(ctx, "c", dg("unknown"))
	wantErr(t, "LinkBlob of unknown content", err, store.ErrBlobUnknown)
	wantRepos(t, m, "a", "b")

	noErr(t, "UnlinkBlob", m.UnlinkBlob(ctx, "b", d))
	_, err = m.RepoBlob(ctx, "b", d)
	wantErr(t, "RepoBlob after UnlinkBlob", err, store.ErrBlobUnknown)
	if size, err := m.RepoBlob(ctx, "a", d); err != nil || size != 42 {
		t.Errorf("RepoBlob(a) after unlinking from b = %d, %v", size, err)
	}
	if _, err := m.Blob(ctx, d); err != nil {
		t.Errorf("Blob after unlinking from one repository: %v", err)
	}
	wantErr(t, "second UnlinkBlob", m.UnlinkBlob(ctx, "b", d), store.ErrBlobUnknown)
	wantErr(t, "UnlinkBlob in an unknown repository", m.UnlinkBlob(ctx, "nope", d), store.ErrBlobUnknown)
	repos, err = m.BlobRepositories(ctx, d)
	noErr(t, "BlobRepositories", err)
	if !slices.Equal(repos, []string{"a"}) {
		t.Errorf("BlobRepositories after unlink = %q, want [a]", repos)
	}
	if repos, err := m.BlobRepositories(ctx, dg("unknown")); err != nil || len(repos) != 0 {
		t.Errorf("BlobRepositories of unknown content = %q, %v; want none", repos, err)
	}

	all, err := m.Blobs(ctx)
	noErr(t, "Blobs", err)
	if len(all) != 1 || all[0].Digest != d || all[0].Size != 42 {
		t.Errorf("Blobs = %+v, want only %s", all, d)
	}
}

// testBlobTouch checks PutBlob and LinkBlob restart the GC grace clock.
func testBlobTouch(t *testing.T, m store.Meta) {
	ctx := t.Context()
	for _, op := range []struct {
		name  string
		touch func(d digest.Digest) error
	}{
		{"PutBlob again", func(d digest.Digest) error { return m.PutBlob(ctx, "touch", d, 10) }},
		{"PutBlob in another repository", func(d digest.Digest) error { return m.PutBlob(ctx, "touch/other", d, 10) }},
		{"LinkBlob", func(d digest.Digest) error { _, err := m.LinkBlob(ctx, "touch/linked", d); return err }},
		{"CompleteUpload", func(d digest.Digest) error {
			if err := m.CreateUpload(ctx, &store.Upload{ID: "touch-up", Repository: "touch"}); err != nil {
				return err
			}
			return m.CompleteUpload(ctx, "touch-up", "touch", d, 10)
		}},
	} {
		t.Run(op.name, func(t *testing.T) {
			d := dg("touch " + op.name)
			putBlobs(t, m, "touch", d)
			time.Sleep(5 * time.Millisecond)
			cutoff := time.Now()
			time.Sleep(5 * time.Millisecond)
			if !containsBlob(unused(t, m, cutoff), d) {
				t.Fatalf("blob touched before the cutoff is not an unused candidate")
			}
			noErr(t, op.name, op.touch(d))
			rec, err := m.Blob(ctx, d)
			noErr(t, "Blob", err)
			if rec.Touched.Before(cutoff) {
				t.Errorf("Touched = %v after %s, want after %v", rec.Touched, op.name, cutoff)
			}
			if containsBlob(unused(t, m, cutoff), d) {
				t.Errorf("blob touched by %s is still a GC candidate for cutoff %v", op.name, cutoff)
			}
			if deleted, err := m.DeleteBlobIfUnused(ctx, d, cutoff); err != nil || deleted {
				t.Errorf("DeleteBlobIfUnused of a freshly touched blob = %v, %v; want false", deleted, err)
			}
		})
	}
}

func unused(t *testing.T, m store.Meta, before time.Time) []store.BlobRecord {
	t.Helper()
	list, err := m.UnusedBlobs(t.Context(), before)
	noErr(t, "UnusedBlobs", err)
	return list
}

func containsBlob(list []store.BlobRecord, d digest.Digest) bool {
	return slices.ContainsFunc(list, func(b store.BlobRecord) bool { return b.Digest == d })
}

func blobDigests(list []store.BlobRecord) []digest.Digest {
	out := make([]digest.Digest, 0, len(list))
	for _, b := range list {
		out = append(out, b.Digest)
	}
	return sortedDigests(out)
}

func testCompleteUpload(t *testing.T, m store.Meta) {
	ctx := t.Context()
	for _, id := range []string{"up-1", "up-2"} {
		noErr(t, "CreateUpload", m.CreateUpload(ctx, &store.Upload{ID: id, Repository: "repo"}))
	}
	d := dg("uploaded")
	noErr(t, "CompleteUpload", m.CompleteUpload(ctx, "up-1", "repo", d, 7))
	_, err := m.Upload(ctx, "up-1")
	wantErr(t, "Upload after CompleteUpload", err, store.ErrUploadUnknown)
	if _, err := m.Upload(ctx, "up-2"); err != nil {
		t.Errorf("CompleteUpload of up-1 removed up-2: %v", err)
	}
	if size, err := m.RepoBlob(ctx, "repo", d); err != nil || size != 7 {
		t.Errorf("RepoBlob after CompleteUpload = %d, %v; want 7", size, err)
	}
	wantRepos(t, m, "repo")
}

func testPutManifestRefs(t *testing.T, m store.Meta) {
	ctx := t.Context()
	const repo = "refs"
	cfg, l1, l2 := dg("config"), dg("layer 1"), dg("layer 2")
	putBlobs(t, m, repo, cfg, l1)
	putBlobs(t, m, "elsewhere", l2, dg("elsewhere config"))
	child := image("child", cfg, l1)
	putManifest(t, m, repo, child)
	putManifest(t, m, "elsewhere", image("foreign child", dg("elsewhere config")))
	foreignChild := image("foreign child", dg("elsewhere config")).Digest

	tests := []struct {
		name        string
		rec         *store.ManifestRecord
		sparse      bool
		blobUnknown digest.Digest // want *BlobUnknownError naming this
		manUnknown  digest.Digest // want *ManifestUnknownError naming this
	}{
		{"all blobs present", image("ok", cfg, l1), false, "", ""},
		{"missing layer", image("missing layer", cfg, l1, dg("absent")), false, dg("absent"), ""},
		{"missing config", image("missing config", dg("absent config"), l1), false, dg("absent config"), ""},
		{"layer only in another repository", image("foreign layer", cfg, l2), false, l2, ""},
		{"index with present child", index("ok index", child.Digest), false, "", ""},
		{"index with missing child", index("missing child", child.Digest, dg("absent manifest")), false, "", dg("absent manifest")},
		{"index with child only in another repository", index("foreign child", foreignChild), false, "", foreignChild},
		{"sparse: missing layer allowed", image("sparse layer", cfg, dg("absent")), true, "", ""},
		{"sparse: missing config refused", image("sparse config", dg("absent config"), l1), true, dg("absent config"), ""},
		{"sparse: missing child allowed", index("sparse index", dg("absent manifest")), true, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tag := "t" + tc.rec.Digest.Encoded()[:12]
			err := m.PutManifest(ctx, repo, tc.rec, []string{tag}, tc.sparse)
			switch {
			case tc.blobUnknown != "":
				var bu *store.BlobUnknownError
				if !errors.As(err, &bu) {
					t.Fatalf("PutManifest = %v, want *BlobUnknownError", err)
				}
				if bu.Digest != tc.blobUnknown {
					t.Errorf("BlobUnknownError names %s, want %s", bu.Digest, tc.blobUnknown)
				}
				wantErr(t, "PutManifest", err, store.ErrBlobUnknown)
			case tc.manUnknown != "":
				var mu *store.ManifestUnknownError
				if !errors.As(err, &mu) {
					t.Fatalf("PutManifest = %v, want *ManifestUnknownError", err)
				}
				if mu.Digest != tc.manUnknown {
					t.Errorf("ManifestUnknownError names %s, want %s", mu.Digest, tc.manUnknown)
				}
				wantErr(t, "PutManifest", err, store.ErrManifestUnknown)
			default:
				noErr(t, "PutManifest", err)
				if _, err := m.Manifest(ctx, repo, tc.rec.Digest); err != nil {
					t.Errorf("Manifest after PutManifest: %v", err)
				}
				wantTag(t, m, repo, tag, tc.rec.Digest)
				return
			}
			// A refused manifest leaves nothing behind, not even its tag.
			wantNoManifest(t, m, repo, tc.rec.Digest)
			wantNoTag(t, m, repo, tag)
		})
	}

	// A refused manifest does not create its repository either.
	err := m.PutManifest(ctx, "never/created", image("x", dg("absent")), []string{"latest"}, false)
	wantErr(t, "PutManifest in a new repository without blobs", err, store.ErrBlobUnknown)
	wantRepos(t, m, repo, "elsewhere")
}

func testManifestRoundTrip(t *testing.T, m store.Meta) {
	ctx := t.Context()
	subject := dg("subject manifest")
	rec := image("round trip", dg("cfg"), dg("l"))
	rec.ArtifactType = "application/vnd.example.sbom.v1"
	rec.Subject = subject
	rec.Annotations = map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "x": "ü\"\\"}
	putBlobs(t, m, "rt", dg("cfg"), dg("l"))
	before := time.Now().Add(-time.Minute)
	putManifest(t, m, "rt", rec, "v1")
	// Putting the same manifest again is idempotent and may add tags.
	putManifest(t, m, "rt", rec, "v2")

	got, err := m.Manifest(ctx, "rt", rec.Digest)
	noErr(t, "Manifest", err)
	if got.Digest != rec.Digest || got.MediaType != rec.MediaType || got.ArtifactType != rec.ArtifactType ||
		got.Subject != subject || !bytes.Equal(got.Content, rec.Content) || !maps.Equal(got.Annotations, rec.Annotations) {
		t.Errorf("Manifest = %+v, want %+v", got, rec)
	}
	if got.Size() != int64(len(rec.Content)) {
		t.Errorf("Size = %d, want %d", got.Size(), len(rec.Content))
	}
	if got.Created.Before(before) || got.Created.After(time.Now().Add(time.Minute)) {
		t.Errorf("Created = %v, want about now", got.Created)
	}
	wantTags(t, m, "rt", "v1", "v2")

	// Without annotations or subject the record stays empty, not "null".
	plain := image("plain", dg("cfg"))
	putManifest(t, m, "rt", plain)
	got, err = m.Manifest(ctx, "rt", plain.Digest)
	noErr(t, "Manifest plain", err)
	if got.Subject != "" || len(got.Annotations) != 0 {
		t.Errorf("plain manifest came back with subject %q, annotations %v", got.Subject, got.Annotations)
	}
}

func testTags(t *testing.T, m store.Meta) {
	const repo = "tags"
	putBlobs(t, m, repo, dg("c1"), dg("c2"))
	m1, m2 := image("m1", dg("c1")), image("m2", dg("c2"))
	putManifest(t, m, repo, m1, "a", "b", "c")
	for _, tag := range []string{"a", "b", "c"} {
		wantTag(t, m, repo, tag, m1.Digest)
	}
	// Re-tagging moves the tag and leaves the others alone.
	putManifest(t, m, repo, m2, "b")
	wantTag(t, m, repo, "a", m1.Digest)
	wantTag(t, m, repo, "b", m2.Digest)
	wantTag(t, m, repo, "c", m1.Digest)
	// No tags: the manifest is stored untagged and no tag moves.
	putManifest(t, m, repo, image("m3", dg("c1")))
	wantTags(t, m, repo, "a", "b", "c")
	// Tags are per repository.
	putBlobs(t, m, "tags/other", dg("c1"))
	putManifest(t, m, "tags/other", m1, "b")
	wantTag(t, m, repo, "b", m2.Digest)
	wantTag(t, m, "tags/other", "b", m1.Digest)
	wantTags(t, m, "tags/other", "b")
}

func testUnknowns(t *testing.T, m store.Meta) {
	ctx := t.Context()
	putBlobs(t, m, "known", dg("c"))
	rec := image("known", dg("c"))
	putManifest(t, m, "known", rec, "latest")

	wantNoManifest(t, m, "known", dg("other"))
	wantNoTag(t, m, "known", "other")
	// The same digest is not visible from another repository.
	putBlobs(t, m, "other", dg("x"))
	wantNoManifest(t, m, "other", rec.Digest)
	wantNoTag(t, m, "other", "latest")
	// Unknown repositories: the registry maps either error to 404.
	for _, repo := range []string{"unknown", ""} {
		_, err := m.Manifest(ctx, repo, rec.Digest)
		if !errors.Is(err, store.ErrManifestUnknown) && !errors.Is(err, store.ErrRepoUnknown) {
			t.Errorf("Manifest in repository %q: %v, want ErrManifestUnknown", repo, err)
		}
		_, err = m.Tag(ctx, repo, "latest")
		if !errors.Is(err, store.ErrTagUnknown) && !errors.Is(err, store.ErrRepoUnknown) {
			t.Errorf("Tag in repository %q: %v, want ErrTagUnknown", repo, err)
		}
		_, err = m.Tags(ctx, repo, store.Page{N: -1})
		wantErr(t, fmt.Sprintf("Tags(%q)", repo), err, store.ErrRepoUnknown)
	}
	// A repository with blobs but no tags lists no tags, without error.
	tags, err := m.Tags(ctx, "other", store.Page{N: -1})
	if err != nil || len(tags) != 0 {
		t.Errorf("Tags of a repository without tags = %q, %v; want none", tags, err)
	}
}

func testDeleteManifest(t *testing.T, m store.Meta) {
	ctx := t.Context()
	putBlobs(t, m, "del", dg("c1"), dg("c2"))
	putBlobs(t, m, "del/other", dg("c1"))
	m1, m2 := image("m1", dg("c1")), image("m2", dg("c2"))
	putManifest(t, m, "del", m1, "a", "b")
	putManifest(t, m, "del", m2, "c")
	putManifest(t, m, "del/other", m1, "a")

	noErr(t, "DeleteManifest", m.DeleteManifest(ctx, "del", m1.Digest))
	wantNoManifest(t, m, "del", m1.Digest)
	wantNoTag(t, m, "del", "a")
	wantNoTag(t, m, "del", "b")
	wantTag(t, m, "del", "c", m2.Digest)
	wantTags(t, m, "del", "c")
	// Another repository's copy is untouched.
	wantTag(t, m, "del/other", "a", m1.Digest)
	if _, err := m.Manifest(ctx, "del/other", m1.Digest); err != nil {
		t.Errorf("DeleteManifest in del removed del/other's copy: %v", err)
	}

	wantErr(t, "second DeleteManifest", m.DeleteManifest(ctx, "del", m1.Digest), store.ErrManifestUnknown)
	err := m.DeleteManifest(ctx, "unknown", m1.Digest)
	if !errors.Is(err, store.ErrManifestUnknown) && !errors.Is(err, store.ErrRepoUnknown) {
		t.Errorf("DeleteManifest in an unknown repository: %v", err)
	}
	// The manifest's references went with it.
	err = m.WalkManifests(ctx, func(repo string, rec *store.ManifestRecord) error {
		if repo == "del" && rec.Digest == m1.Digest {
			t.Errorf("WalkManifests still lists the deleted manifest")
		}
		return nil
	})
	noErr(t, "WalkManifests", err)
}

func testDeleteTag(t *testing.T, m store.Meta) {
	ctx := t.Context()
	putBlobs(t, m, "dt", dg("c"))
	rec := image("m", dg("c"))
	putManifest(t, m, "dt", rec, "a", "b")
	noErr(t, "DeleteTag", m.DeleteTag(ctx, "dt", "a"))
	wantNoTag(t, m, "dt", "a")
	wantTag(t, m, "dt", "b", rec.Digest)
	if _, err := m.Manifest(ctx, "dt", rec.Digest); err != nil {
		t.Errorf("DeleteTag removed the manifest: %v", err)
	}
	wantErr(t, "second DeleteTag", m.DeleteTag(ctx, "dt", "a"), store.ErrTagUnknown)
	err := m.DeleteTag(ctx, "unknown", "b")
	if !errors.Is(err, store.ErrTagUnknown) && !errors.Is(err, store.ErrRepoUnknown) {
		t.Errorf("DeleteTag in an unknown repository: %v", err)
	}
	wantTags(t, m, "dt", "b")
}

// paginate walks a listing n at a time and returns everything it saw.
func paginate(t *testing.T, n int, list func(store.Page) ([]string, error)) []string {
	t.Helper()
	var all []string
	p := store.Page{N: n}
	for range 100 {
		page, err := list(p)
		noErr(t, "list page", err)
		if len(page) > n {
			t.Fatalf("page of N=%d has %d entries", n, len(page))
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		p.Last = page[len(page)-1]
	}
	t.Fatal("pagination does not terminate")
	return nil
}

// Byte order, not locale or case-insensitive order: '-' < '.' < '/' <
// digits < upper case < '_' < lower case.
var (
	tagNames  = []string{"z", "a_1", "a.1", "a-1", "a", "_x", "Z", "B", "A", "10", "1", "9", "latest", "v1.0.0"}
	repoNames = []string{"b", "a_b", "a/b", "a.b", "a-b", "a", "a0", "b/c/d", "z9", "0"}
)

func testTagsPagination(t *testing.T, m store.Meta) {
	ctx := t.Context()
	const repo = "pages"
	putBlobs(t, m, repo, dg("c"))
	// Spread tags over several manifests: listing must not depend on it.
	for i, tag := range tagNames {
		putManifest(t, m, repo, image(fmt.Sprint(i%3), dg("c")), tag)
	}
	want := sortedStrings(tagNames)
	list := func(p store.Page) ([]string, error) { return m.Tags(ctx, repo, p) }

	all, err := list(store.Page{N: -1})
	noErr(t, "Tags N=-1", err)
	if !slices.Equal(all, want) {
		t.Fatalf("Tags = %q, want %q", all, want)
	}
	for _, n := range []int{1, 2, 3, 5, len(want), len(want) + 1} {
		if got := paginate(t, n, list); !slices.Equal(got, want) {
			t.Errorf("paging by %d = %q, want %q", n, got, want)
		}
	}
	checkPageEdges(t, list, want)
}

func testReposPagination(t *testing.T, m store.Meta) {
	ctx := t.Context()
	for _, r := range repoNames {
		putBlobs(t, m, r, dg("c"))
	}
	want := sortedStrings(repoNames)
	list := func(p store.Page) ([]string, error) { return m.Repositories(ctx, p) }
	all, err := list(store.Page{N: -1})
	noErr(t, "Repositories N=-1", err)
	if !slices.Equal(all, want) {
		t.Fatalf("Repositories = %q, want %q", all, want)
	}
	for _, n := range []int{1, 3, len(want)} {
		if got := paginate(t, n, list); !slices.Equal(got, want) {
			t.Errorf("paging by %d = %q, want %q", n, got, want)
		}
	}
	checkPageEdges(t, list, want)
}

// checkPageEdges checks N=0, a Last that is not in the list, and a Last past
// the end.
func checkPageEdges(t *testing.T, list func(store.Page) ([]string, error), want []string) {
	t.Helper()
	if got, err := list(store.Page{N: 0}); err != nil || len(got) != 0 {
		t.Errorf("N=0 = %q, %v; want nothing", got, err)
	}
	// Last need not be an entry: the page starts after it in byte order.
	mid := want[len(want)/2] + "+" // '+' is in neither grammar
	var after []string
	for _, s := range want {
		if s > mid {
			after = append(after, s)
		}
	}
	if got, err := list(store.Page{Last: mid, N: -1}); err != nil || !slices.Equal(got, after) {
		t.Errorf("Last=%q = %q, %v; want %q", mid, got, err, after)
	}
	if got, err := list(store.Page{Last: want[len(want)-1], N: 10}); err != nil || len(got) != 0 {
		t.Errorf("Last=final entry = %q, %v; want nothing", got, err)
	}
	if got, err := list(store.Page{Last: want[0], N: 2}); err != nil || !slices.Equal(got, want[1:3]) {
		t.Errorf("Last=%q N=2 = %q, %v; want %q", want[0], got, err, want[1:3])
	}
}

func testReferrers(t *testing.T, m store.Meta) {
	ctx := t.Context()
	const repo = "refer"
	const sig, sbom = "application/vnd.example.signature.v1", "application/vnd.example.sbom.v1"
	putBlobs(t, m, repo, dg("c"))
	putBlobs(t, m, "refer/other", dg("c"))
	subject := image("subject", dg("c"))
	putManifest(t, m, repo, subject, "latest")

	referrer := func(name, artifactType string, subj digest.Digest) *store.ManifestRecord {
		r := image(name, dg("c"))
		r.ArtifactType = artifactType
		r.Subject = subj
		r.Annotations = map[string]string{"name": name}
		return r
	}
	r1 := referrer("sig", sig, subject.Digest)
	r2 := referrer("sbom", sbom, subject.Digest)
	r3 := referrer("sig 2", sig, subject.Digest)
	unrelated := referrer("unrelated", sig, dg("another subject"))
	for _, r := range []*store.ManifestRecord{r1, r2, r3, unrelated} {
		putManifest(t, m, repo, r)
	}
	putManifest(t, m, "refer/other", referrer("other repo", sig, subject.Digest))
	// A referrer may arrive before its subject.
	early := referrer("early", sbom, dg("subject not pushed yet"))
	putManifest(t, m, repo, early)

	refs := func(d digest.Digest, artifactType string) map[digest.Digest]*store.ManifestRecord {
		t.Helper()
		list, err := m.Referrers(ctx, repo, d, artifactType)
		noErr(t, "Referrers", err)
		out := map[digest.Digest]*store.ManifestRecord{}
		for _, r := range list {
			out[r.Digest] = r
		}
		return out
	}
	keys := func(recs map[digest.Digest]*store.ManifestRecord) []digest.Digest {
		return sortedDigests(slices.Collect(maps.Keys(recs)))
	}
	tests := []struct {
		subject      digest.Digest
		artifactType string
		want         []*store.ManifestRecord
	}{
		{subject.Digest, "", []*store.ManifestRecord{r1, r2, r3}},
		{subject.Digest, sig, []*store.ManifestRecord{r1, r3}},
		{subject.Digest, sbom, []*store.ManifestRecord{r2}},
		{subject.Digest, "application/vnd.example.none", nil},
		{dg("subject not pushed yet"), "", []*store.ManifestRecord{early}},
		{dg("no referrers"), "", nil},
	}
	for _, tc := range tests {
		got := refs(tc.subject, tc.artifactType)
		var want []digest.Digest
		for _, r := range tc.want {
			want = append(want, r.Digest)
			if g, ok := got[r.Digest]; ok {
				if g.ArtifactType != r.ArtifactType || g.MediaType != r.MediaType || g.Subject != r.Subject ||
					!bytes.Equal(g.Content, r.Content) || !maps.Equal(g.Annotations, r.Annotations) {
					t.Errorf("referrer %s = %+v, want %+v", r.Digest, g, r)
				}
			}
		}
		if !slices.Equal(keys(got), sortedDigests(want)) {
			t.Errorf("Referrers(%s, %q) = %v, want %v", tc.subject, tc.artifactType, keys(got), sortedDigests(want))
		}
	}
	if list, err := m.Referrers(ctx, "unknown", subject.Digest, ""); len(list) != 0 || (err != nil && !errors.Is(err, store.ErrRepoUnknown)) {
		t.Errorf("Referrers in an unknown repository = %v, %v; want none", list, err)
	}

	noErr(t, "DeleteManifest", m.DeleteManifest(ctx, repo, r1.Digest))
	if got := keys(refs(subject.Digest, sig)); !slices.Equal(got, []digest.Digest{r3.Digest}) {
		t.Errorf("Referrers after deleting one = %v, want only %s", got, r3.Digest)
	}
}

func testWalkManifests(t *testing.T, m store.Meta) {
	ctx := t.Context()
	cfg, l1, l2 := dg("cfg"), dg("l1"), dg("l2")
	putBlobs(t, m, "walk/a", cfg, l1, l2)
	putBlobs(t, m, "walk/b", cfg)
	img := image("img", cfg, l1, l2)
	img2 := image("img2", cfg)
	idx := index("idx", img.Digest, img2.Digest)
	putManifest(t, m, "walk/a", img, "img")
	putManifest(t, m, "walk/a", img2)
	putManifest(t, m, "walk/a", idx, "idx")
	putManifest(t, m, "walk/b", img2)

	type key struct {
		repo string
		d    digest.Digest
	}
	want := map[key]*store.ManifestRecord{
		{"walk/a", img.Digest}: img, {"walk/a", img2.Digest}: img2,
		{"walk/a", idx.Digest}: idx, {"walk/b", img2.Digest}: img2,
	}
	seen := map[key]bool{}
	err := m.WalkManifests(ctx, func(repo string, rec *store.ManifestRecord) error {
		k := key{repo, rec.Digest}
		w, ok := want[k]
		if !ok {
			t.Errorf("WalkManifests reported unexpected %s in %s", rec.Digest, repo)
			return nil
		}
		if seen[k] {
			t.Errorf("WalkManifests reported %s in %s twice", rec.Digest, repo)
		}
		seen[k] = true
		if !slices.Equal(sortedDigests(rec.Blobs), sortedDigests(w.Blobs)) {
			t.Errorf("%s in %s: Blobs = %v, want %v", rec.Digest, repo, rec.Blobs, w.Blobs)
		}
		if !slices.Equal(sortedDigests(rec.Children), sortedDigests(w.Children)) {
			t.Errorf("%s in %s: Children = %v, want %v", rec.Digest, repo, rec.Children, w.Children)
		}
		if !bytes.Equal(rec.Content, w.Content) || rec.MediaType != w.MediaType {
			t.Errorf("%s in %s: content or media type differ", rec.Digest, repo)
		}
		return nil
	})
	noErr(t, "WalkManifests", err)
	if len(seen) != len(want) {
		t.Errorf("WalkManifests reported %d manifests, want %d", len(seen), len(want))
	}

	stop := errors.New("stop")
	calls := 0
	err = m.WalkManifests(ctx, func(string, *store.ManifestRecord) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("WalkManifests with a failing callback = %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func testUploadSessions(t *testing.T, m store.Meta) {
	ctx := t.Context()
	before := time.Now().Add(-time.Minute)
	u := &store.Upload{ID: "sess-1", Repository: "repo/x"}
	noErr(t, "CreateUpload", m.CreateUpload(ctx, u))
	got, err := m.Upload(ctx, "sess-1")
	noErr(t, "Upload", err)
	if got.ID != "sess-1" || got.Repository != "repo/x" || got.Offset != 0 || len(got.HashState) != 0 {
		t.Errorf("Upload = %+v, want a fresh session of repo/x", got)
	}
	if got.Started.Before(before) || got.Updated.Before(before) {
		t.Errorf("Upload times = %v, %v; want about now", got.Started, got.Updated)
	}
	if err := m.CreateUpload(ctx, &store.Upload{ID: "sess-1", Repository: "repo/y"}); err == nil {
		t.Error("CreateUpload with an id in use succeeded")
	}
	if got, err := m.Upload(ctx, "sess-1"); err != nil || got.Repository != "repo/x" {
		t.Errorf("a second CreateUpload changed the session: %+v, %v", got, err)
	}

	state := []byte{0, 1, 2, 0xff, 'h', 'a', 's', 'h'}
	noErr(t, "UpdateUpload", m.UpdateUpload(ctx, &store.Upload{ID: "sess-1", Repository: "repo/x", Offset: 1234, HashState: state}))
	got, err = m.Upload(ctx, "sess-1")
	noErr(t, "Upload", err)
	if got.Offset != 1234 || !bytes.Equal(got.HashState, state) || got.Repository != "repo/x" {
		t.Errorf("Upload after UpdateUpload = %+v", got)
	}

	err = m.UpdateUpload(ctx, &store.Upload{ID: "no-such-session", Offset: 1})
	wantErr(t, "UpdateUpload of an unknown session", err, store.ErrUploadUnknown)
	_, err = m.Upload(ctx, "no-such-session")
	wantErr(t, "Upload after a failed UpdateUpload", err, store.ErrUploadUnknown)

	noErr(t, "DeleteUpload", m.DeleteUpload(ctx, "sess-1"))
	_, err = m.Upload(ctx, "sess-1")
	wantErr(t, "Upload after DeleteUpload", err, store.ErrUploadUnknown)
	// GC and a client cancel can race to delete the same session.
	noErr(t, "second DeleteUpload", m.DeleteUpload(ctx, "sess-1"))
	for _, id := range []string{"", "../x", "x' OR '1'='1"} {
		_, err := m.Upload(ctx, id)
		wantErr(t, fmt.Sprintf("Upload(%q)", id), err, store.ErrUploadUnknown)
	}
}

func testStaleUploads(t *testing.T, m store.Meta) {
	ctx := t.Context()
	stale := func(before time.Time) []string {
		t.Helper()
		list, err := m.StaleUploads(ctx, before)
		noErr(t, "StaleUploads", err)
		var ids []string
		for _, u := range list {
			ids = append(ids, u.ID)
			if u.Repository != "stale/repo" {
				t.Errorf("StaleUploads: %s has repository %q", u.ID, u.Repository)
			}
		}
		return sortedStrings(ids)
	}
	noErr(t, "CreateUpload", m.CreateUpload(ctx, &store.Upload{ID: "old", Repository: "stale/repo"}))
	time.Sleep(10 * time.Millisecond)
	mid := time.Now()
	time.Sleep(10 * time.Millisecond)
	noErr(t, "CreateUpload", m.CreateUpload(ctx, &store.Upload{ID: "new", Repository: "stale/repo"}))

	if got := stale(time.Now().Add(-time.Hour)); len(got) != 0 {
		t.Errorf("StaleUploads(an hour ago) = %q, want none", got)
	}
	if got := stale(mid); !slices.Equal(got, []string{"old"}) {
		t.Errorf("StaleUploads(mid) = %q, want [old]", got)
	}
	if got := stale(time.Now().Add(time.Hour)); !slices.Equal(got, []string{"new", "old"}) {
		t.Errorf("StaleUploads(an hour ahead) = %q, want [new old]", got)
	}
	// Activity refreshes a session.
	noErr(t, "UpdateUpload", m.UpdateUpload(ctx, &store.Upload{ID: "old", Repository: "stale/repo", Offset: 5}))
	if got := stale(mid); len(got) != 0 {
		t.Errorf("StaleUploads(mid) after updating old = %q, want none", got)
	}
	noErr(t, "DeleteUpload", m.DeleteUpload(ctx, "new"))
	if got := stale(time.Now().Add(time.Hour)); !slices.Equal(got, []string{"old"}) {
		t.Errorf("StaleUploads after deleting new = %q, want [old]", got)
	}
}

func testUnusedBlobs(t *testing.T, m store.Meta) {
	ctx := t.Context()
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	cfg, layer, loose, shared := dg("cfg"), dg("layer"), dg("loose"), dg("shared")
	sparseOnly := dg("sparse only")
	putBlobs(t, m, "gc/a", cfg, layer, loose, shared)
	putBlobs(t, m, "gc/b", shared, sparseOnly)
	img := image("img", cfg, layer)
	putManifest(t, m, "gc/a", img, "latest")
	// shared is referenced only from gc/b; it must be kept for gc/a too.
	putManifest(t, m, "gc/b", image("b", shared))
	// An index's children are manifests, not blobs.
	putManifest(t, m, "gc/a", index("idx", img.Digest))

	if got := unused(t, m, past); len(got) != 0 {
		t.Errorf("UnusedBlobs(past) = %v, want none: everything was just touched", blobDigests(got))
	}
	if got := blobDigests(unused(t, m, future)); !slices.Equal(got, sortedDigests([]digest.Digest{loose, sparseOnly})) {
		t.Errorf("UnusedBlobs(future) = %v, want %v", got, sortedDigests([]digest.Digest{loose, sparseOnly}))
	}
	// A sparse manifest naming sparseOnly as a layer keeps it alive too.
	putBlobs(t, m, "gc/c", cfg)
	noErr(t, "sparse PutManifest", m.PutManifest(ctx, "gc/c", image("sparse", cfg, sparseOnly), nil, true))
	if got := blobDigests(unused(t, m, future)); !slices.Equal(got, []digest.Digest{loose}) {
		t.Errorf("UnusedBlobs(future) after a sparse reference = %v, want [%s]", got, loose)
	}

	tests := []struct {
		d      digest.Digest
		before time.Time
		want   bool
	}{
		{cfg, future, false},
		{layer, future, false},
		{shared, future, false},
		{loose, past, false},
		{loose, future, true},
		{loose, future, false}, // already gone
		{dg("never recorded"), future, false},
	}
	for i, tc := range tests {
		deleted, err := m.DeleteBlobIfUnused(ctx, tc.d, tc.before)
		noErr(t, "DeleteBlobIfUnused", err)
		if deleted != tc.want {
			t.Errorf("#%d DeleteBlobIfUnused(%s, before=%v) = %v, want %v", i, tc.d, tc.before, deleted, tc.want)
		}
	}
	_, err := m.Blob(ctx, loose)
	wantErr(t, "Blob after DeleteBlobIfUnused", err, store.ErrBlobUnknown)
	_, err = m.RepoBlob(ctx, "gc/a", loose)
	wantErr(t, "RepoBlob after DeleteBlobIfUnused", err, store.ErrBlobUnknown)
	if repos, err := m.BlobRepositories(ctx, loose); err != nil || len(repos) != 0 {
		t.Errorf("BlobRepositories after DeleteBlobIfUnused = %q, %v; want none", repos, err)
	}
	for _, d := range []digest.Digest{cfg, layer, shared} {
		if _, err := m.RepoBlob(ctx, "gc/a", d); err != nil {
			t.Errorf("referenced blob %s lost: %v", d, err)
		}
	}

	// Deleting the manifests releases their blobs.
	noErr(t, "DeleteManifest", m.DeleteManifest(ctx, "gc/a", img.Digest))
	if got := blobDigests(unused(t, m, future)); !slices.Equal(got, []digest.Digest{layer}) {
		// cfg stays referenced by the sparse manifest in gc/c.
		t.Errorf("UnusedBlobs after deleting the image = %v, want [%s]", got, layer)
	}
	if deleted, err := m.DeleteBlobIfUnused(ctx, layer, future); err != nil || !deleted {
		t.Errorf("DeleteBlobIfUnused(layer) after its manifest went = %v, %v; want true", deleted, err)
	}
}

func testConcurrentMeta(t *testing.T, m store.Meta) {
	ctx := t.Context()
	const workers = 16
	sharedLayer := dg("shared layer")
	errs := make(chan error, workers*8)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			report := func(what string, err error) {
				if err != nil {
					errs <- fmt.Errorf("worker %d: %s: %w", i, what, err)
				}
			}
			own := fmt.Sprintf("conc/%d", i)
			cfg := dg(fmt.Sprint("config ", i))
			for _, repo := range []string{"conc", own} {
				report("PutBlob config", m.PutBlob(ctx, repo, cfg, 100))
				report("PutBlob shared", m.PutBlob(ctx, repo, sharedLayer, 1000))
			}
			id := fmt.Sprint("conc-upload-", i)
			report("CreateUpload", m.CreateUpload(ctx, &store.Upload{ID: id, Repository: "conc"}))
			report("CompleteUpload", m.CompleteUpload(ctx, id, "conc", dg(id), 5))
			rec := image(fmt.Sprint("conc ", i), cfg, sharedLayer)
			report("PutManifest", m.PutManifest(ctx, "conc", rec, []string{fmt.Sprint("tag-", i), "latest"}, false))
			report("PutManifest own", m.PutManifest(ctx, own, rec, []string{"latest"}, false))
			_, err := m.Tags(ctx, "conc", store.Page{N: -1})
			report("Tags", err)
			_, err = m.LinkBlob(ctx, "conc/linked", sharedLayer)
			report("LinkBlob", err)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tags, err := m.Tags(ctx, "conc", store.Page{N: -1})
	noErr(t, "Tags", err)
	if len(tags) != workers+1 {
		t.Errorf("conc has %d tags, want %d", len(tags), workers+1)
	}
	latest, err := m.Tag(ctx, "conc", "latest")
	noErr(t, "Tag latest", err)
	if _, err := m.Manifest(ctx, "conc", latest); err != nil {
		t.Errorf("latest points at %s, which is not stored: %v", latest, err)
	}
	repos, err := m.Repositories(ctx, store.Page{N: -1})
	noErr(t, "Repositories", err)
	if len(repos) != workers+2 {
		t.Errorf("%d repositories, want %d", len(repos), workers+2)
	}
	blobs, err := m.Blobs(ctx)
	noErr(t, "Blobs", err)
	if len(blobs) != 2*workers+1 {
		t.Errorf("%d blob records, want %d", len(blobs), 2*workers+1)
	}
}
