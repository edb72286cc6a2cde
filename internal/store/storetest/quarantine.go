package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/store"
)

// qrec is a quarantine record of d in repo pushed by pusher.
func qrec(repo string, d digest.Digest, pusher, reason string) *store.QuarantineRecord {
	return &store.QuarantineRecord{
		Repository: repo, Digest: d, Pusher: pusher, PusherKind: "user", Reason: reason,
		Violations: []store.Violation{{Rule: "signed", Message: "no signature", Remediation: "bulwark sign"}},
		DecisionID: "dec-" + reason,
	}
}

func wantQuarantined(t *testing.T, m store.Meta, repo string, d digest.Digest, want *store.QuarantineRecord) *store.QuarantineRecord {
	t.Helper()
	got, err := m.Quarantined(t.Context(), repo, d)
	noErr(t, fmt.Sprintf("Quarantined(%s, %s)", repo, d), err)
	switch {
	case want == nil && got != nil:
		t.Errorf("Quarantined(%s, %s) = %+v, want not quarantined", repo, d, got)
	case want != nil && got == nil:
		t.Errorf("Quarantined(%s, %s) = not quarantined, want %+v", repo, d, want)
	case want != nil:
		if got.Repository != repo || got.Digest != d || got.Pusher != want.Pusher || got.PusherKind != want.PusherKind ||
			got.Reason != want.Reason || got.DecisionID != want.DecisionID || !slices.Equal(got.Violations, want.Violations) {
			t.Errorf("Quarantined(%s, %s) = %+v, want %+v", repo, d, got, want)
		}
		if got.Created.IsZero() || got.Decided.Before(got.Created) {
			t.Errorf("Quarantined(%s, %s): created %v, decided %v", repo, d, got.Created, got.Decided)
		}
	}
	return got
}

func testManifestTags(t *testing.T, m store.Meta) {
	ctx := t.Context()
	putBlobs(t, m, "mt", dg("c"))
	a, b := image("a", dg("c")), image("b", dg("c"))
	putManifest(t, m, "mt", a, "v2", "latest", "v1")
	putManifest(t, m, "mt", b, "other")
	for _, tc := range []struct {
		repo string
		d    digest.Digest
		want []string
	}{
		{"mt", a.Digest, []string{"latest", "v1", "v2"}},
		{"mt", b.Digest, []string{"other"}},
		{"mt", dg("unknown"), nil},
		{"unknown", a.Digest, nil},
	} {
		got, err := m.ManifestTags(ctx, tc.repo, tc.d)
		noErr(t, "ManifestTags", err)
		if !slices.Equal(sortedStrings(got), sortedStrings(tc.want)) || !slices.IsSorted(got) {
			t.Errorf("ManifestTags(%s, %s) = %q, want %q", tc.repo, tc.d, got, tc.want)
		}
	}
}

func testQuarantine(t *testing.T, m store.Meta) {
	ctx := t.Context()
	putBlobs(t, m, "q", dg("c"))
	putBlobs(t, m, "q/other", dg("c"))
	img := image("img", dg("c"))
	putManifest(t, m, "q", img, "v1")
	putManifest(t, m, "q/other", img)

	wantQuarantined(t, m, "q", img.Digest, nil)
	wantQuarantined(t, m, "unknown", img.Digest, nil)
	wantErr(t, "Quarantine of an unknown manifest", m.Quarantine(ctx, qrec("q", dg("absent"), "alice", "r")), store.ErrManifestUnknown)
	wantErr(t, "Quarantine in an unknown repository", m.Quarantine(ctx, qrec("nope", img.Digest, "alice", "r")), store.ErrManifestUnknown)

	first := qrec("q", img.Digest, "alice", "first")
	noErr(t, "Quarantine", m.Quarantine(ctx, first))
	got1 := wantQuarantined(t, m, "q", img.Digest, first)
	// Quarantine is per repository.
	wantQuarantined(t, m, "q/other", img.Digest, nil)
	// Nothing else about the manifest changes.
	if rec, err := m.Manifest(ctx, "q", img.Digest); err != nil || string(rec.Content) != string(img.Content) {
		t.Errorf("Manifest of a quarantined manifest = %v, %v", rec, err)
	}
	wantTag(t, m, "q", "v1", img.Digest)

	// A new decision replaces the record but keeps when it began.
	time.Sleep(2 * time.Millisecond)
	second := qrec("q", img.Digest, "bob", "second")
	second.PusherKind = "robot"
	second.Violations = nil
	noErr(t, "Quarantine again", m.Quarantine(ctx, second))
	got2 := wantQuarantined(t, m, "q", img.Digest, second)
	if got1 != nil && got2 != nil && (!got2.Created.Equal(got1.Created) || !got2.Decided.After(got1.Decided)) {
		t.Errorf("re-quarantine: created %v -> %v, decided %v -> %v; want created kept, decided later",
			got1.Created, got2.Created, got1.Decided, got2.Decided)
	}

	rec, got3, err := m.ManifestWithQuarantine(ctx, "q", img.Digest)
	noErr(t, "ManifestWithQuarantine", err)
	if string(rec.Content) != string(img.Content) || rec.MediaType != img.MediaType || got3 == nil || got2 == nil ||
		got3.Reason != second.Reason || got3.Pusher != "bob" || got3.PusherKind != "robot" || !got3.Created.Equal(got2.Created) ||
		got3.DecisionID != second.DecisionID || got3.Repository != "q" || got3.Digest != img.Digest {
		t.Errorf("ManifestWithQuarantine = %+v, %+v; want the manifest and %+v", rec, got3, got2)
	}
	if rec, q, err := m.ManifestWithQuarantine(ctx, "q/other", img.Digest); err != nil || q != nil || string(rec.Content) != string(img.Content) {
		t.Errorf("ManifestWithQuarantine of a public copy = %+v, %+v, %v", rec, q, err)
	}
	_, _, err = m.ManifestWithQuarantine(ctx, "q", dg("absent"))
	wantErr(t, "ManifestWithQuarantine of an unknown manifest", err, store.ErrManifestUnknown)

	noErr(t, "Release", m.Release(ctx, "q", img.Digest))
	wantQuarantined(t, m, "q", img.Digest, nil)
	if _, q, err := m.ManifestWithQuarantine(ctx, "q", img.Digest); err != nil || q != nil {
		t.Errorf("ManifestWithQuarantine after Release = %+v, %v", q, err)
	}
	wantErr(t, "second Release", m.Release(ctx, "q", img.Digest), store.ErrNotQuarantined)
	wantErr(t, "Release in an unknown repository", m.Release(ctx, "nope", img.Digest), store.ErrNotQuarantined)
}

func testPutQuarantined(t *testing.T, m store.Meta) {
	ctx := t.Context()
	putBlobs(t, m, "pq", dg("c"))
	img := image("img", dg("c"))
	q := qrec("pq", img.Digest, "alice", "unsigned")
	noErr(t, "PutQuarantinedManifest", m.PutQuarantinedManifest(ctx, "pq", img, []string{"v1"}, false, q))
	wantTag(t, m, "pq", "v1", img.Digest)
	wantQuarantined(t, m, "pq", img.Digest, q)

	// A refused manifest leaves neither a manifest nor a record behind.
	bad := image("bad", dg("absent"))
	err := m.PutQuarantinedManifest(ctx, "pq", bad, []string{"v2"}, false, qrec("pq", bad.Digest, "alice", "x"))
	wantErr(t, "PutQuarantinedManifest with a missing blob", err, store.ErrBlobUnknown)
	wantQuarantined(t, m, "pq", bad.Digest, nil)
	wantNoManifest(t, m, "pq", bad.Digest)
	wantNoTag(t, m, "pq", "v2")

	// A manifest already stored and public is quarantined in place.
	public := image("public", dg("c"))
	putManifest(t, m, "pq", public, "p")
	q2 := qrec("pq", public.Digest, "bob", "re-pushed")
	noErr(t, "PutQuarantinedManifest of a stored manifest", m.PutQuarantinedManifest(ctx, "pq", public, []string{"p2"}, false, q2))
	wantQuarantined(t, m, "pq", public.Digest, q2)
	wantTags(t, m, "pq", "p", "p2", "v1")
}

func testQuarantineDelete(t *testing.T, m store.Meta) {
	ctx := t.Context()
	putBlobs(t, m, "qd", dg("c"))
	img := image("img", dg("c"))
	putManifest(t, m, "qd", img, "v1")
	noErr(t, "Quarantine", m.Quarantine(ctx, qrec("qd", img.Digest, "alice", "r")))
	// Deleting a tag keeps the record; deleting the manifest removes it.
	noErr(t, "DeleteTag", m.DeleteTag(ctx, "qd", "v1"))
	wantQuarantined(t, m, "qd", img.Digest, qrec("qd", img.Digest, "alice", "r"))
	noErr(t, "DeleteManifest", m.DeleteManifest(ctx, "qd", img.Digest))
	wantQuarantined(t, m, "qd", img.Digest, nil)
	// The same content pushed again is not quarantined by the old record.
	putManifest(t, m, "qd", img, "v1")
	wantQuarantined(t, m, "qd", img.Digest, nil)
	if list, err := m.ListQuarantined(ctx, "", store.Page{N: -1}); err != nil || len(list) != 0 {
		t.Errorf("ListQuarantined after the delete = %v, %v; want none", list, err)
	}
}

func testQuarantineList(t *testing.T, m store.Meta) {
	ctx := t.Context()
	var want []string
	for _, repo := range []string{"ql/b", "ql/a", "ql/c"} {
		putBlobs(t, m, repo, dg("c"))
		for i := range 3 {
			img := image(fmt.Sprintf("%s %d", repo, i), dg("c"))
			putManifest(t, m, repo, img)
			if repo != "ql/c" {
				noErr(t, "Quarantine", m.Quarantine(ctx, qrec(repo, img.Digest, "alice", "r")))
				want = append(want, repo+"@"+img.Digest.String())
			}
		}
	}
	slices.Sort(want)
	keys := func(list []*store.QuarantineRecord) []string {
		var out []string
		for _, q := range list {
			out = append(out, q.Repository+"@"+q.Digest.String())
		}
		return out
	}
	all, err := m.ListQuarantined(ctx, "", store.Page{N: -1})
	noErr(t, "ListQuarantined", err)
	if !slices.Equal(keys(all), want) {
		t.Errorf("ListQuarantined = %q, want %q", keys(all), want)
	}
	for _, q := range all {
		if q.Reason != "r" || len(q.Violations) != 1 || q.Pusher != "alice" {
			t.Errorf("listed record %+v lacks its fields", q)
		}
	}
	got := paginate(t, 2, func(p store.Page) ([]string, error) {
		list, err := m.ListQuarantined(ctx, "", p)
		return keys(list), err
	})
	if !slices.Equal(got, want) {
		t.Errorf("ListQuarantined in pages of 2 = %q, want %q", got, want)
	}
	one, err := m.ListQuarantined(ctx, "ql/a", store.Page{N: -1})
	noErr(t, "ListQuarantined(ql/a)", err)
	if !slices.Equal(keys(one), want[:3]) {
		t.Errorf("ListQuarantined(ql/a) = %q, want %q", keys(one), want[:3])
	}
	none, err := m.ListQuarantined(ctx, "ql/c", store.Page{N: -1})
	if err != nil || len(none) != 0 {
		t.Errorf("ListQuarantined(ql/c) = %q, %v; want none", keys(none), err)
	}
	if _, err := m.ListQuarantined(ctx, "", store.Page{Last: "no digest", N: 1}); err == nil {
		t.Errorf("ListQuarantined after a malformed Last: no error")
	}
}

func testQuarantineGC(t *testing.T, m store.Meta) {
	ctx := t.Context()
	future := time.Now().Add(time.Hour)
	putBlobs(t, m, "qgc", dg("cfg"), dg("layer"))
	img := image("img", dg("cfg"), dg("layer"))
	noErr(t, "PutQuarantinedManifest", m.PutQuarantinedManifest(ctx, "qgc", img, nil, false, qrec("qgc", img.Digest, "a", "r")))
	if got := unused(t, m, future); len(got) != 0 {
		t.Errorf("UnusedBlobs = %v: a quarantined manifest's blobs must stay", blobDigests(got))
	}
	for _, d := range []digest.Digest{dg("cfg"), dg("layer")} {
		if deleted, err := m.DeleteBlobIfUnused(ctx, d, future); err != nil || deleted {
			t.Errorf("DeleteBlobIfUnused(%s) = %v, %v; want kept", d, deleted, err)
		}
	}
}

func testBlobAccess(t *testing.T, m store.Meta) {
	ctx := t.Context()
	const repo = "ba"
	cfg, shared, qonly, loose := dg("cfg"), dg("shared"), dg("quarantined only"), dg("loose")
	putBlobs(t, m, repo, cfg, shared, qonly, loose)
	putBlobs(t, m, "ba/other", cfg, qonly)
	public := image("public", cfg, shared)
	putManifest(t, m, repo, public, "v1")
	q1, q2 := image("q1", cfg, shared, qonly), image("q2", cfg, qonly)
	noErr(t, "PutQuarantinedManifest q1", m.PutQuarantinedManifest(ctx, repo, q1, nil, false, qrec(repo, q1.Digest, "alice", "one")))
	noErr(t, "PutQuarantinedManifest q2", m.PutQuarantinedManifest(ctx, repo, q2, nil, false, qrec(repo, q2.Digest, "bob", "two")))
	// In ba/other, qonly is referenced by a manifest that is not quarantined.
	putManifest(t, m, "ba/other", image("other", cfg, qonly))

	pushers := func(a store.BlobAccess) []string {
		var out []string
		for _, q := range a.Quarantined {
			out = append(out, q.Pusher)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		repo    string
		d       digest.Digest
		public  bool
		pushers []string
	}{
		{repo, cfg, true, nil},
		{repo, shared, true, nil},
		{repo, qonly, false, []string{"alice", "bob"}},
		{repo, loose, false, nil},
		{"ba/other", qonly, true, nil},
	} {
		a, err := m.BlobAccess(ctx, tc.repo, tc.d)
		noErr(t, "BlobAccess", err)
		if a.Size != 10 || a.Public != tc.public || !slices.Equal(pushers(a), tc.pushers) {
			t.Errorf("BlobAccess(%s, %s) = size %d public %v pushers %q; want 10 %v %q",
				tc.repo, tc.d, a.Size, a.Public, pushers(a), tc.public, tc.pushers)
		}
	}
	for _, tc := range []struct {
		repo string
		d    digest.Digest
	}{{repo, dg("absent")}, {"ba/other", shared}, {"unknown", cfg}} {
		_, err := m.BlobAccess(ctx, tc.repo, tc.d)
		wantErr(t, fmt.Sprintf("BlobAccess(%s, %s)", tc.repo, tc.d), err, store.ErrBlobUnknown)
	}

	// The manifests through which a pull policy may grant each blob: not
	// quarantined ones, in digest order, bounded.
	for _, tc := range []struct {
		repo  string
		d     digest.Digest
		limit int
		want  []digest.Digest
	}{
		{repo, cfg, 10, []digest.Digest{public.Digest}},
		{repo, qonly, 10, nil},
		{repo, loose, 10, nil},
		{"ba/other", qonly, 10, []digest.Digest{image("other", cfg, qonly).Digest}},
		{"unknown", cfg, 10, nil},
	} {
		got, err := m.BlobManifests(ctx, tc.repo, tc.d, tc.limit)
		noErr(t, "BlobManifests", err)
		if !slices.Equal(got, tc.want) {
			t.Errorf("BlobManifests(%s, %s) = %v, want %v", tc.repo, tc.d, got, tc.want)
		}
	}
	putManifest(t, m, repo, image("public2", cfg), "v2")
	if got, err := m.BlobManifests(ctx, repo, cfg, 1); err != nil || len(got) != 1 {
		t.Errorf("BlobManifests with limit 1 = %v, %v; want one manifest", got, err)
	}

	// Releasing one quarantined manifest makes its blobs public.
	noErr(t, "Release", m.Release(ctx, repo, q2.Digest))
	if a, err := m.BlobAccess(ctx, repo, qonly); err != nil || !a.Public {
		t.Errorf("BlobAccess after release = %+v, %v; want public", a, err)
	}
	// Deleting the public manifest leaves shared referenced only by q1.
	noErr(t, "Quarantine q2", m.Quarantine(ctx, qrec(repo, q2.Digest, "bob", "two")))
	noErr(t, "DeleteManifest", m.DeleteManifest(ctx, repo, public.Digest))
	if a, err := m.BlobAccess(ctx, repo, shared); err != nil || a.Public || !slices.Equal(pushers(a), []string{"alice"}) {
		t.Errorf("BlobAccess(shared) after deleting the public manifest = %+v, %v; want only alice's quarantined q1", a, err)
	}
}
