package registry_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/store"
)

const octet = "application/octet-stream"

func TestAPIBase(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	for _, path := range []string{"/v2/", "/v2"} {
		r := e.get(path)
		want(t, "GET "+path, r, http.StatusOK, "")
		if string(r.Body) != "{}" || r.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
			t.Errorf("GET %s = %s, API version header %q", path, r, r.Header.Get("Docker-Distribution-API-Version"))
		}
	}
	r := e.head("/v2/")
	want(t, "HEAD /v2/", r, http.StatusOK, "")
	if len(r.Body) != 0 {
		t.Errorf("HEAD /v2/ sent a body")
	}
}

func TestAPIBlobPushPull(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	content := []byte("0123456789 monolithic blob")
	d := digest.FromBytes(content)

	r := e.do(apiReq{Method: http.MethodPost, Path: "/v2/app/blobs/uploads/?digest=" + d.String(),
		Header: map[string]string{"Content-Type": octet}, Body: content})
	want(t, "monolithic POST", r, http.StatusCreated, "")
	if r.Header.Get("Location") != "/v2/app/blobs/"+d.String() || r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("monolithic POST headers: Location %q, Docker-Content-Digest %q", r.Header.Get("Location"), r.Header.Get("Docker-Content-Digest"))
	}

	r = e.head("/v2/app/blobs/" + d.String())
	want(t, "HEAD blob", r, http.StatusOK, "")
	if r.Header.Get("Content-Length") != strconv.Itoa(len(content)) || len(r.Body) != 0 || r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("HEAD blob: Content-Length %q, body %d bytes, digest %q", r.Header.Get("Content-Length"), len(r.Body), r.Header.Get("Docker-Content-Digest"))
	}
	r = e.get("/v2/app/blobs/" + d.String())
	want(t, "GET blob", r, http.StatusOK, "")
	if !bytes.Equal(r.Body, content) {
		t.Errorf("GET blob = %q, want %q", r.Body, content)
	}
	r = e.do(apiReq{Method: http.MethodGet, Path: "/v2/app/blobs/" + d.String(), Header: map[string]string{"Range": "bytes=2-5"}})
	want(t, "GET blob range", r, http.StatusPartialContent, "")
	if string(r.Body) != "2345" || r.Header.Get("Content-Range") != fmt.Sprintf("bytes 2-5/%d", len(content)) {
		t.Errorf("GET range = %q, Content-Range %q", r.Body, r.Header.Get("Content-Range"))
	}

	// POST then PUT with the whole body, as Docker does.
	second := []byte("post then put")
	loc := e.startUpload("app")
	r = e.do(apiReq{Method: http.MethodPut, Path: withQuery(loc, "digest="+digest.FromBytes(second).String()),
		Header: map[string]string{"Content-Type": octet}, Body: second})
	want(t, "PUT upload", r, http.StatusCreated, "")
	if got := e.get("/v2/app/blobs/" + digest.FromBytes(second).String()); !bytes.Equal(got.Body, second) {
		t.Errorf("GET after POST+PUT = %s", got)
	}
	want(t, "upload status after finishing", e.get(loc), http.StatusNotFound, registry.CodeBlobUploadUnknown)

	// Deleting unlinks the blob from the repository.
	want(t, "DELETE blob", e.do(apiReq{Method: http.MethodDelete, Path: "/v2/app/blobs/" + d.String()}), http.StatusAccepted, "")
	want(t, "GET deleted blob", e.get("/v2/app/blobs/"+d.String()), http.StatusNotFound, registry.CodeBlobUnknown)
	want(t, "DELETE deleted blob", e.do(apiReq{Method: http.MethodDelete, Path: "/v2/app/blobs/" + d.String()}), http.StatusNotFound, registry.CodeBlobUnknown)
}

func TestAPIChunkedUpload(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	content := []byte("0123456789abcdefghijKLMNOPQRST")
	d := digest.FromBytes(content)
	loc := e.startUpload("chunky")

	r := e.get(loc)
	want(t, "status of a new upload", r, http.StatusNoContent, "")
	if r.Header.Get("Range") != "0-0" {
		t.Errorf("Range of an empty upload = %q, want 0-0", r.Header.Get("Range"))
	}
	patch := func(loc, cr string, chunk []byte) apiResp {
		h := map[string]string{"Content-Type": octet}
		if cr != "" {
			h["Content-Range"] = cr
		}
		return e.do(apiReq{Method: http.MethodPatch, Path: loc, Header: h, Body: chunk})
	}
	r = patch(loc, "0-9", content[:10])
	want(t, "PATCH 0-9", r, http.StatusAccepted, "")
	if r.Header.Get("Range") != "0-9" || r.Header.Get("Location") == "" {
		t.Errorf("PATCH 0-9: Range %q, Location %q", r.Header.Get("Range"), r.Header.Get("Location"))
	}
	loc = r.Header.Get("Location")

	// A chunk that does not start where the upload ends is refused with the
	// current state, and changes nothing.
	for _, cr := range []string{"20-29", "5-14", "0-9"} {
		r = patch(loc, cr, content[:10])
		want(t, "out-of-order PATCH "+cr, r, http.StatusRequestedRangeNotSatisfiable, registry.CodeBlobUploadInvalid)
		if r.Header.Get("Range") != "0-9" || r.Header.Get("Location") != loc {
			t.Errorf("416 for %s: Range %q, Location %q; want 0-9, %q", cr, r.Header.Get("Range"), r.Header.Get("Location"), loc)
		}
	}
	r = e.get(loc)
	want(t, "status after refused chunks", r, http.StatusNoContent, "")
	if r.Header.Get("Range") != "0-9" {
		t.Errorf("Range after refused chunks = %q, want 0-9", r.Header.Get("Range"))
	}

	r = patch(loc, "10-19", content[10:20])
	want(t, "PATCH 10-19", r, http.StatusAccepted, "")
	// Chunks without Content-Range (streamed) are appended too.
	r = e.do(apiReq{Method: http.MethodPatch, Path: r.Header.Get("Location"), Body: content[20:25], Chunked: true})
	want(t, "streamed PATCH", r, http.StatusAccepted, "")
	if r.Header.Get("Range") != "0-24" {
		t.Errorf("Range after streamed PATCH = %q, want 0-24", r.Header.Get("Range"))
	}
	// The final PUT carries the last bytes.
	r = e.do(apiReq{Method: http.MethodPut, Path: withQuery(r.Header.Get("Location"), "digest="+d.String()),
		Header: map[string]string{"Content-Type": octet}, Body: content[25:]})
	want(t, "PUT last chunk", r, http.StatusCreated, "")
	if r.Header.Get("Location") != "/v2/chunky/blobs/"+d.String() {
		t.Errorf("PUT Location = %q", r.Header.Get("Location"))
	}
	if got := e.get("/v2/chunky/blobs/" + d.String()); !bytes.Equal(got.Body, content) {
		t.Errorf("chunked blob = %q, want %q", got.Body, content)
	}

	// Cancelling a session removes it and its data.
	loc = e.startUpload("chunky")
	want(t, "PATCH before cancel", patch(loc, "", []byte("abandoned")), http.StatusAccepted, "")
	want(t, "DELETE upload", e.do(apiReq{Method: http.MethodDelete, Path: loc}), http.StatusNoContent, "")
	want(t, "status after cancel", e.get(loc), http.StatusNotFound, registry.CodeBlobUploadUnknown)
	want(t, "PATCH after cancel", patch(loc, "", []byte("more")), http.StatusNotFound, registry.CodeBlobUploadUnknown)
	if ups, err := e.blobs.Uploads(t.Context()); err != nil || len(ups) != 0 {
		t.Errorf("upload data after cancel = %+v, %v", ups, err)
	}
}

func TestAPIMount(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	content := []byte("mount me")
	d := e.pushBlob("src/repo", content)

	mount := func(target, query string) apiResp {
		return e.do(apiReq{Method: http.MethodPost, Path: "/v2/" + target + "/blobs/uploads/?" + query})
	}
	r := mount("dst/one", "mount="+d.String()+"&from=src/repo")
	want(t, "mount", r, http.StatusCreated, "")
	if r.Header.Get("Location") != "/v2/dst/one/blobs/"+d.String() || r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("mount headers: %v", r.Header)
	}
	if got := e.get("/v2/dst/one/blobs/" + d.String()); !bytes.Equal(got.Body, content) {
		t.Errorf("GET mounted blob = %s", got)
	}

	// Anonymous mount: any copy the registry holds.
	want(t, "anonymous mount", mount("dst/two", "mount="+d.String()), http.StatusCreated, "")
	want(t, "GET anonymously mounted blob", e.get("/v2/dst/two/blobs/"+d.String()), http.StatusOK, "")

	// Mounts that cannot be served fall back to an upload session.
	unknown := digest.FromString("not stored anywhere")
	for _, q := range []string{
		"mount=" + d.String() + "&from=dst/never",     // source lacks the blob
		"mount=" + d.String() + "&from=..%2F..%2Fetc", // invalid source name
		"mount=" + unknown.String() + "&from=src/repo",
		"mount=" + unknown.String(),
	} {
		r := mount("dst/three", q)
		want(t, "fallback mount "+q, r, http.StatusAccepted, "")
		if !strings.HasPrefix(r.Header.Get("Location"), "/v2/dst/three/blobs/uploads/") {
			t.Errorf("fallback mount %s: Location %q", q, r.Header.Get("Location"))
		}
	}
	want(t, "GET from a repository the blob was never mounted into", e.get("/v2/dst/three/blobs/"+d.String()),
		http.StatusNotFound, registry.CodeBlobUnknown)
	repos, err := e.meta.BlobRepositories(t.Context(), d)
	if err != nil || !slices.Equal(repos, []string{"dst/one", "dst/two", "src/repo"}) {
		t.Errorf("BlobRepositories = %q, %v", repos, err)
	}
}

func TestAPIManifestLifecycle(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	img := newImage("lifecycle", 2)
	r := e.pushImage("app", "v1", img)
	if r.Header.Get("Location") != "/v2/app/manifests/"+img.Digest.String() ||
		r.Header.Get("Docker-Content-Digest") != img.Digest.String() || r.Header.Get("OCI-Subject") != "" {
		t.Errorf("PUT manifest headers: %v", r.Header)
	}

	for _, ref := range []string{"v1", img.Digest.String()} {
		r = e.get("/v2/app/manifests/" + ref)
		want(t, "GET manifest "+ref, r, http.StatusOK, "")
		if !bytes.Equal(r.Body, img.Manifest) || r.Header.Get("Content-Type") != v1.MediaTypeImageManifest ||
			r.Header.Get("Docker-Content-Digest") != img.Digest.String() {
			t.Errorf("GET manifest %s: %s, headers %v", ref, r, r.Header)
		}
		r = e.head("/v2/app/manifests/" + ref)
		want(t, "HEAD manifest "+ref, r, http.StatusOK, "")
		if len(r.Body) != 0 || r.Header.Get("Content-Length") != strconv.Itoa(len(img.Manifest)) ||
			r.Header.Get("Docker-Content-Digest") != img.Digest.String() {
			t.Errorf("HEAD manifest %s: %d body bytes, headers %v", ref, len(r.Body), r.Header)
		}
	}
	r = e.do(apiReq{Method: http.MethodGet, Path: "/v2/app/manifests/v1", Header: map[string]string{"If-None-Match": `"` + img.Digest.String() + `"`}})
	want(t, "conditional GET", r, http.StatusNotModified, "")

	// An index over the image.
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{img.descriptor()}}
	idx.SchemaVersion = 2
	idxBody := apiJSON(idx)
	want(t, "PUT index", e.putManifest("app", "multi", v1.MediaTypeImageIndex, idxBody), http.StatusCreated, "")
	if r := e.get("/v2/app/manifests/multi"); r.Header.Get("Content-Type") != v1.MediaTypeImageIndex || !bytes.Equal(r.Body, idxBody) {
		t.Errorf("GET index = %s, Content-Type %q", r, r.Header.Get("Content-Type"))
	}

	// A second tag, then deletes.
	want(t, "retag", e.putManifest("app", "v2", v1.MediaTypeImageManifest, img.Manifest), http.StatusCreated, "")
	want(t, "DELETE tag", e.do(apiReq{Method: http.MethodDelete, Path: "/v2/app/manifests/v2"}), http.StatusAccepted, "")
	want(t, "GET deleted tag", e.get("/v2/app/manifests/v2"), http.StatusNotFound, registry.CodeManifestUnknown)
	want(t, "GET remaining tag", e.get("/v2/app/manifests/v1"), http.StatusOK, "")
	want(t, "DELETE by digest", e.do(apiReq{Method: http.MethodDelete, Path: "/v2/app/manifests/" + img.Digest.String()}), http.StatusAccepted, "")
	want(t, "GET tag of deleted manifest", e.get("/v2/app/manifests/v1"), http.StatusNotFound, registry.CodeManifestUnknown)
	want(t, "GET deleted manifest", e.get("/v2/app/manifests/"+img.Digest.String()), http.StatusNotFound, registry.CodeManifestUnknown)
	want(t, "DELETE deleted manifest", e.do(apiReq{Method: http.MethodDelete, Path: "/v2/app/manifests/" + img.Digest.String()}),
		http.StatusNotFound, registry.CodeManifestUnknown)
	r = e.get("/v2/app/tags/list")
	if !strings.Contains(string(r.Body), `"tags":["multi"]`) {
		t.Errorf("tags after deletes = %s", r)
	}
}

// TestAPIManifestSizeLimit checks the 4 MiB boundary: exactly the limit is
// stored and served, one byte more is refused without being stored.
func TestAPIManifestSizeLimit(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	img := newImage("big", 1)
	e.pushImage("big", "small", img)
	body := paddedManifest(img, 4<<20)
	r := e.putManifest("big", "max", v1.MediaTypeImageManifest, body)
	want(t, "PUT 4 MiB manifest", r, http.StatusCreated, "")
	if got := e.get("/v2/big/manifests/max"); !bytes.Equal(got.Body, body) {
		t.Errorf("GET 4 MiB manifest returned %d bytes", len(got.Body))
	}
	over := paddedManifest(img, 4<<20+1)
	r = e.putManifest("big", "over", v1.MediaTypeImageManifest, over)
	want(t, "PUT 4 MiB + 1 manifest", r, http.StatusRequestEntityTooLarge, registry.CodeSizeInvalid)
	want(t, "GET refused manifest", e.get("/v2/big/manifests/over"), http.StatusNotFound, registry.CodeManifestUnknown)
}

// paddedManifest returns img's manifest grown to exactly size bytes with an
// annotation.
func paddedManifest(img *testImage, size int) []byte {
	var m v1.Manifest
	if err := json.Unmarshal(img.Manifest, &m); err != nil {
		panic(err)
	}
	m.Annotations = map[string]string{"pad": ""}
	base := apiJSON(m)
	// Splice the padding in rather than marshalling megabytes.
	before, after, ok := bytes.Cut(base, []byte(`"pad":""`))
	if !ok {
		panic("no pad annotation in " + string(base))
	}
	out := make([]byte, 0, size)
	out = append(out, before...)
	out = append(out, `"pad":"`...)
	out = append(out, bytes.Repeat([]byte("p"), size-len(base))...)
	out = append(out, '"')
	out = append(out, after...)
	if len(out) != size || !json.Valid(out) {
		panic(fmt.Sprintf("padded manifest is %d bytes, want %d", len(out), size))
	}
	return out
}

// listAll follows Link headers from path and returns every page's entries.
func listAll(t *testing.T, e *apiEnv, path, field string) (all []string, pages int) {
	t.Helper()
	for path != "" && pages < 100 {
		r := e.get(path)
		want(t, "GET "+path, r, http.StatusOK, "")
		var body map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		var items []string
		if err := json.Unmarshal(body[field], &items); err != nil || items == nil {
			t.Fatalf("GET %s: %s is %s, want a JSON array", path, field, body[field])
		}
		all = append(all, items...)
		pages++
		path = ""
		if link := r.Header.Get("Link"); link != "" {
			next, ok := strings.CutPrefix(link, "<")
			next, rest, ok2 := strings.Cut(next, ">")
			if !ok || !ok2 || rest != `; rel="next"` {
				t.Fatalf("malformed Link %q", link)
			}
			path = next
		}
	}
	return all, pages
}

func TestAPITagsPagination(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	img := newImage("tags", 1)
	e.pushImage("app", "latest", img)
	tags := []string{"latest", "v1", "v10", "v2", "V2", "a-b", "a.b", "a_b", "_x", "0"}
	for _, tag := range tags[1:] {
		want(t, "tag "+tag, e.putManifest("app", tag, v1.MediaTypeImageManifest, img.Manifest), http.StatusCreated, "")
	}
	sorted := slices.Clone(tags)
	slices.Sort(sorted) // byte order

	all, pages := listAll(t, e, "/v2/app/tags/list", "tags")
	if !slices.Equal(all, sorted) || pages != 1 {
		t.Errorf("tags = %q in %d pages, want %q in 1", all, pages, sorted)
	}
	all, pages = listAll(t, e, "/v2/app/tags/list?n=3", "tags")
	if !slices.Equal(all, sorted) || pages != 4 {
		t.Errorf("tags by 3 = %q in %d pages, want %q in 4", all, pages, sorted)
	}
	r := e.get("/v2/app/tags/list?n=2")
	wantLink := "</v2/app/tags/list?last=" + url.QueryEscape(sorted[1]) + "&n=2>; rel=\"next\""
	if r.Header.Get("Link") != wantLink {
		t.Errorf("Link = %q, want %q", r.Header.Get("Link"), wantLink)
	}
	r = e.get("/v2/app/tags/list?n=2&last=" + url.QueryEscape(sorted[len(sorted)-2]))
	if !strings.Contains(string(r.Body), `"tags":["`+sorted[len(sorted)-1]+`"]`) || r.Header.Get("Link") != "" {
		t.Errorf("last page = %s, Link %q", r, r.Header.Get("Link"))
	}
	r = e.get("/v2/app/tags/list?n=0")
	want(t, "n=0", r, http.StatusOK, "")
	if !strings.Contains(string(r.Body), `"tags":[]`) || r.Header.Get("Link") != "" {
		t.Errorf("n=0 = %s, Link %q; want an empty list", r, r.Header.Get("Link"))
	}
	r = e.get("/v2/app/tags/list?n=" + strconv.Itoa(len(tags)))
	if r.Header.Get("Link") != "" {
		t.Errorf("a page holding exactly the rest has Link %q", r.Header.Get("Link"))
	}
}

func TestAPICatalog(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	repos := []string{"b", "a/b", "a-b", "a", "a.b", "z/y/x"}
	for _, repo := range repos {
		e.pushBlob(repo, []byte("x"))
	}
	// A session alone does not create a repository.
	e.startUpload("only/session")
	sorted := slices.Clone(repos)
	slices.Sort(sorted)
	for _, n := range []string{"", "?n=1", "?n=4", "?n=100"} {
		all, _ := listAll(t, e, "/v2/_catalog"+n, "repositories")
		if !slices.Equal(all, sorted) {
			t.Errorf("catalog%s = %q, want %q", n, all, sorted)
		}
	}
}

func TestAPIReferrers(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	const sigType = "application/vnd.example.signature.v1"
	const sbomConfigType = "application/vnd.example.sbom.config.v1+json"
	subject := newImage("subject", 1)
	e.pushImage("app", "v1", subject)
	emptyDesc := v1.DescriptorEmptyJSON
	e.pushBlob("app", emptyDesc.Data)
	sigLayer := e.pushBlob("app", []byte("signature bytes"))
	sbomConfig := []byte(`{"sbom":true}`)
	e.pushBlob("app", sbomConfig)
	subjDesc := subject.descriptor()

	artifact := func(artifactType string, config v1.Descriptor, name string) ([]byte, digest.Digest) {
		m := v1.Manifest{
			MediaType:    v1.MediaTypeImageManifest,
			ArtifactType: artifactType,
			Config:       config,
			Layers:       []v1.Descriptor{{MediaType: octet, Digest: sigLayer, Size: int64(len("signature bytes"))}},
			Subject:      &subjDesc,
			Annotations:  map[string]string{"name": name},
		}
		m.SchemaVersion = 2
		b := apiJSON(m)
		return b, digest.FromBytes(b)
	}
	emptyConfig := v1.Descriptor{MediaType: emptyDesc.MediaType, Digest: emptyDesc.Digest, Size: emptyDesc.Size}
	sig, sigDigest := artifact(sigType, emptyConfig, "sig")
	sbom, sbomDigest := artifact("", v1.Descriptor{MediaType: sbomConfigType, Digest: digest.FromBytes(sbomConfig), Size: int64(len(sbomConfig))}, "sbom")
	for _, a := range []struct {
		body []byte
		d    digest.Digest
	}{{sig, sigDigest}, {sbom, sbomDigest}} {
		r := e.putManifest("app", a.d.String(), v1.MediaTypeImageManifest, a.body)
		want(t, "PUT referrer", r, http.StatusCreated, "")
		if r.Header.Get("OCI-Subject") != subject.Digest.String() {
			t.Errorf("PUT referrer: OCI-Subject = %q, want %s", r.Header.Get("OCI-Subject"), subject.Digest)
		}
	}

	referrers := func(query string) (v1.Index, apiResp) {
		t.Helper()
		r := e.get("/v2/app/referrers/" + subject.Digest.String() + query)
		want(t, "GET referrers"+query, r, http.StatusOK, "")
		if r.Header.Get("Content-Type") != v1.MediaTypeImageIndex {
			t.Errorf("referrers Content-Type = %q", r.Header.Get("Content-Type"))
		}
		var idx v1.Index
		if err := json.Unmarshal(r.Body, &idx); err != nil {
			t.Fatal(err)
		}
		return idx, r
	}
	idx, r := referrers("")
	if r.Header.Get("OCI-Filters-Applied") != "" {
		t.Errorf("unfiltered referrers: OCI-Filters-Applied = %q", r.Header.Get("OCI-Filters-Applied"))
	}
	got := map[digest.Digest]v1.Descriptor{}
	for _, m := range idx.Manifests {
		got[m.Digest] = m
	}
	wantDescs := map[digest.Digest]v1.Descriptor{
		sigDigest:  {MediaType: v1.MediaTypeImageManifest, ArtifactType: sigType, Digest: sigDigest, Size: int64(len(sig)), Annotations: map[string]string{"name": "sig"}},
		sbomDigest: {MediaType: v1.MediaTypeImageManifest, ArtifactType: sbomConfigType, Digest: sbomDigest, Size: int64(len(sbom)), Annotations: map[string]string{"name": "sbom"}},
	}
	if len(got) != len(wantDescs) || idx.SchemaVersion != 2 || idx.MediaType != v1.MediaTypeImageIndex {
		t.Errorf("referrers = %s", r)
	}
	for d, w := range wantDescs {
		g := got[d]
		if g.MediaType != w.MediaType || g.ArtifactType != w.ArtifactType || g.Size != w.Size || g.Annotations["name"] != w.Annotations["name"] {
			t.Errorf("referrer %s = %+v, want %+v", d, g, w)
		}
	}

	idx, r = referrers("?artifactType=" + url.QueryEscape(sigType))
	if r.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Errorf("filtered referrers: OCI-Filters-Applied = %q", r.Header.Get("OCI-Filters-Applied"))
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sigDigest {
		t.Errorf("filtered referrers = %s", r)
	}
	idx, _ = referrers("?artifactType=" + url.QueryEscape(sbomConfigType))
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sbomDigest {
		t.Errorf("referrers filtered on the config media type = %+v", idx.Manifests)
	}

	// No referrers is an empty list, never a 404, never null.
	for _, path := range []string{
		"/v2/app/referrers/" + digest.FromString("no referrers").String(),
		"/v2/unknown/repo/referrers/" + subject.Digest.String(),
	} {
		r := e.get(path)
		want(t, "GET "+path, r, http.StatusOK, "")
		if !strings.Contains(string(r.Body), `"manifests":[]`) {
			t.Errorf("GET %s = %s, want an empty manifests array", path, r)
		}
	}
}

func TestAPISHA512(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	config := []byte(`{"sha512":"config"}`)
	layer := []byte("sha512 layer, uploaded in chunks")
	cfgD, layerD := digest.SHA512.FromBytes(config), digest.SHA512.FromBytes(layer)

	r := e.do(apiReq{Method: http.MethodPost, Path: "/v2/app/blobs/uploads/?digest=" + cfgD.String(), Body: config})
	want(t, "monolithic sha512", r, http.StatusCreated, "")
	if r.Header.Get("Docker-Content-Digest") != cfgD.String() {
		t.Errorf("Docker-Content-Digest = %q", r.Header.Get("Docker-Content-Digest"))
	}
	loc := e.startUpload("app")
	r = e.do(apiReq{Method: http.MethodPatch, Path: loc, Header: map[string]string{"Content-Range": "0-9"}, Body: layer[:10]})
	want(t, "PATCH", r, http.StatusAccepted, "")
	// A mismatch refuses the upload but keeps the session and its bytes...
	r = e.do(apiReq{Method: http.MethodPut, Path: withQuery(loc, "digest="+digest.SHA512.FromString("something else").String()), Body: layer[10:]})
	want(t, "PUT with a mismatching sha512", r, http.StatusBadRequest, registry.CodeDigestInvalid)
	// ...so the client can finish it with the right digest and no body.
	r = e.do(apiReq{Method: http.MethodPut, Path: withQuery(loc, "digest="+layerD.String())})
	want(t, "PUT sha512", r, http.StatusCreated, "")
	for d, content := range map[digest.Digest][]byte{cfgD: config, layerD: layer} {
		r := e.get("/v2/app/blobs/" + d.String())
		if !bytes.Equal(r.Body, content) || r.Header.Get("Docker-Content-Digest") != d.String() {
			t.Errorf("GET %s = %s", d, r)
		}
	}

	m := v1.Manifest{
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cfgD, Size: int64(len(config))},
		Layers:    []v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: layerD, Size: int64(len(layer))}},
	}
	m.SchemaVersion = 2
	body := apiJSON(m)
	md := digest.SHA512.FromBytes(body)
	r = e.putManifest("app", md.String()+"?tag=a&tag=b", v1.MediaTypeImageManifest, body)
	want(t, "PUT sha512 manifest with tags", r, http.StatusCreated, "")
	if r.Header.Get("Docker-Content-Digest") != md.String() || r.Header.Get("Location") != "/v2/app/manifests/"+md.String() {
		t.Errorf("PUT sha512 manifest headers: %v", r.Header)
	}
	if got := r.Header.Values("OCI-Tag"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("OCI-Tag = %q, want [a b]", got)
	}
	for _, ref := range []string{"a", "b", md.String()} {
		r := e.get("/v2/app/manifests/" + ref)
		if !bytes.Equal(r.Body, body) || r.Header.Get("Docker-Content-Digest") != md.String() {
			t.Errorf("GET manifest %s = %s, digest %q", ref, r, r.Header.Get("Docker-Content-Digest"))
		}
	}
	// The same bytes are not reachable under their sha256 digest.
	want(t, "GET by sha256", e.get("/v2/app/manifests/"+digest.FromBytes(body).String()), http.StatusNotFound, registry.CodeManifestUnknown)
}

func TestAPITagParams(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	img := newImage("tagged", 1)
	e.pushImage("app", "first", img)
	r := e.putManifest("app", img.Digest.String()+"?tag=x&tag=y&tag=z", v1.MediaTypeImageManifest, img.Manifest)
	want(t, "PUT by digest with tags", r, http.StatusCreated, "")
	if got := r.Header.Values("OCI-Tag"); !slices.Equal(got, []string{"x", "y", "z"}) {
		t.Errorf("OCI-Tag = %q", got)
	}
	all, _ := listAll(t, e, "/v2/app/tags/list", "tags")
	if !slices.Equal(all, []string{"first", "x", "y", "z"}) {
		t.Errorf("tags = %q", all)
	}
	// One bad tag refuses the whole push: no tag moves.
	other := newImage("other", 1)
	e.pushBlob("app", other.Config)
	e.pushBlob("app", other.Layers[0])
	r = e.putManifest("app", other.Digest.String()+"?tag=x&tag=-bad", v1.MediaTypeImageManifest, other.Manifest)
	want(t, "PUT with a bad tag", r, http.StatusBadRequest, registry.CodeManifestInvalid)
	if r := e.get("/v2/app/manifests/x"); r.Header.Get("Docker-Content-Digest") != img.Digest.String() {
		t.Errorf("tag x moved by a refused push: %q", r.Header.Get("Docker-Content-Digest"))
	}
	want(t, "GET refused manifest", e.get("/v2/app/manifests/"+other.Digest.String()), http.StatusNotFound, registry.CodeManifestUnknown)
}

func TestAPIBlobSizeLimit(t *testing.T) {
	const limit = 1024
	e := newAPIEnv(t, registry.Options{MaxBlobSize: limit})
	big := bytes.Repeat([]byte("b"), limit+1)
	r := e.do(apiReq{Method: http.MethodPost, Path: "/v2/app/blobs/uploads/?digest=" + digest.FromBytes(big).String(), Body: big})
	want(t, "monolithic over the limit", r, http.StatusRequestEntityTooLarge, registry.CodeSizeInvalid)
	e.pushBlob("app", big[:limit])

	loc := e.startUpload("app")
	r = e.do(apiReq{Method: http.MethodPatch, Path: loc, Body: big[:1000]})
	want(t, "PATCH under the limit", r, http.StatusAccepted, "")
	r = e.do(apiReq{Method: http.MethodPatch, Path: loc, Body: big[1000:]})
	want(t, "PATCH past the limit", r, http.StatusRequestEntityTooLarge, registry.CodeSizeInvalid)
	if r := e.get(loc); r.Header.Get("Range") != "0-999" {
		t.Errorf("Range after a refused chunk = %q, want 0-999", r.Header.Get("Range"))
	}
	r = e.do(apiReq{Method: http.MethodPut, Path: withQuery(loc, "digest="+digest.FromBytes(big[:limit]).String()), Body: big[1000:limit]})
	want(t, "PUT reaching exactly the limit", r, http.StatusCreated, "")
	want(t, "blob over the limit", e.head("/v2/app/blobs/"+digest.FromBytes(big).String()), http.StatusNotFound, "")
}

// TestAPIUploadsAreRepositoryScoped checks that an upload id is not a
// capability for another repository, and that probing with it does not
// disturb the session.
func TestAPIUploadsAreRepositoryScoped(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	content := []byte("belongs to alice")
	d := digest.FromBytes(content)
	loc := e.startUpload("alice/app")
	want(t, "PATCH own", e.do(apiReq{Method: http.MethodPatch, Path: loc, Body: content[:5]}), http.StatusAccepted, "")
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	foreign := "/v2/mallory/app/blobs/uploads/" + id
	for _, rq := range []apiReq{
		{Method: http.MethodGet, Path: foreign},
		{Method: http.MethodPatch, Path: foreign, Body: []byte("evil")},
		{Method: http.MethodPatch, Path: foreign, Header: map[string]string{"Content-Range": "5-8"}, Body: []byte("evil")},
		{Method: http.MethodPut, Path: foreign + "?digest=" + d.String(), Body: content[5:]},
		{Method: http.MethodDelete, Path: foreign},
	} {
		want(t, rq.Method+" foreign upload", e.do(rq), http.StatusNotFound, registry.CodeBlobUploadUnknown)
	}
	r := e.get(loc)
	if r.Status != http.StatusNoContent || r.Header.Get("Range") != "0-4" {
		t.Errorf("owner's session after probes: %s, Range %q", r, r.Header.Get("Range"))
	}
	want(t, "owner finishes", e.do(apiReq{Method: http.MethodPut, Path: withQuery(loc, "digest="+d.String()), Body: content[5:]}), http.StatusCreated, "")
	want(t, "GET in mallory", e.get("/v2/mallory/app/blobs/"+d.String()), http.StatusNotFound, registry.CodeBlobUnknown)
	if got := e.get("/v2/alice/app/blobs/" + d.String()); !bytes.Equal(got.Body, content) {
		t.Errorf("alice's blob = %s", got)
	}
}

// TestAPITruncatedBodies sends bodies shorter than their Content-Length
// over a raw connection and half-closes it. The server must answer 400, and
// nothing of the partial body may become visible.
func TestAPITruncatedBodies(t *testing.T) {
	env := newAPIEnv(t, registry.Options{})
	full := bytes.Repeat([]byte("0123456789"), 100)
	d := digest.FromBytes(full)
	half := full[:500]
	// rotated is what the resumed session below ends up holding.
	rotated := append(slices.Clone(full[500:]), full[:500]...)

	// invisible checks no blob of the given digests is recorded, stored or
	// served.
	invisible := func(t *testing.T, e *apiEnv, what string, ds ...digest.Digest) {
		t.Helper()
		for _, x := range ds {
			if _, err := e.meta.Blob(t.Context(), x); !errors.Is(err, store.ErrBlobUnknown) {
				t.Errorf("%s: blob record for %s: %v", what, x, err)
			}
			if _, err := e.blobs.Stat(t.Context(), x); !errors.Is(err, store.ErrBlobUnknown) {
				t.Errorf("%s: blob file for %s: %v", what, x, err)
			}
			if r := e.head("/v2/app/blobs/" + x.String()); r.Status != http.StatusNotFound {
				t.Errorf("%s: HEAD %s = %d", what, x, r.Status)
			}
		}
	}

	t.Run("monolithic POST", func(t *testing.T) {
		e := env.on(t)
		r := e.truncatedRequest(http.MethodPost, "/v2/app/blobs/uploads/?digest="+d.String(), map[string]string{"Content-Type": octet}, half, len(full))
		want(t, "truncated POST", r, http.StatusBadRequest, registry.CodeBlobUploadInvalid)
		invisible(t, e, "truncated POST", d, digest.FromBytes(half))
		if ups, err := e.blobs.Uploads(t.Context()); err != nil || len(ups) != 0 {
			t.Errorf("upload data left by a truncated monolithic push: %+v, %v", ups, err)
		}
	})

	t.Run("PATCH and PUT, then resume", func(t *testing.T) {
		e := env.on(t)
		loc := e.startUpload("app")
		r := e.truncatedRequest(http.MethodPatch, loc, map[string]string{"Content-Type": octet}, half, len(full))
		want(t, "truncated PATCH", r, http.StatusBadRequest, registry.CodeBlobUploadInvalid)
		r = e.get(loc)
		if r.Status != http.StatusNoContent || r.Header.Get("Range") != "0-0" {
			t.Fatalf("status after truncated PATCH = %s, Range %q; want nothing acknowledged", r, r.Header.Get("Range"))
		}
		// Resuming overwrites the unacknowledged partial chunk.
		r = e.do(apiReq{Method: http.MethodPatch, Path: loc, Header: map[string]string{"Content-Range": "0-499"}, Body: full[500:]})
		want(t, "PATCH after truncation", r, http.StatusAccepted, "")
		// A truncated final PUT commits nothing and keeps the session.
		put := withQuery(loc, "digest="+digest.FromBytes(rotated).String())
		r = e.truncatedRequest(http.MethodPut, put, nil, full[:100], 500)
		want(t, "truncated PUT", r, http.StatusBadRequest, registry.CodeBlobUploadInvalid)
		invisible(t, e, "truncated PUT", digest.FromBytes(rotated), digest.FromBytes(append(slices.Clone(full[500:]), full[:100]...)))
		if r := e.get(loc); r.Header.Get("Range") != "0-499" {
			t.Fatalf("Range after truncated PUT = %q, want 0-499", r.Header.Get("Range"))
		}
		r = e.do(apiReq{Method: http.MethodPut, Path: put, Body: full[:500]})
		want(t, "PUT after truncation", r, http.StatusCreated, "")
		if got := e.get("/v2/app/blobs/" + digest.FromBytes(rotated).String()); !bytes.Equal(got.Body, rotated) {
			t.Errorf("blob after resumed upload has %d bytes, want the 1000 acknowledged ones", len(got.Body))
		}
	})

	t.Run("manifest PUT", func(t *testing.T) {
		e := env.on(t)
		img := newImage("truncated", 1)
		e.pushBlob("app", img.Config)
		e.pushBlob("app", img.Layers[0])
		r := e.truncatedRequest(http.MethodPut, "/v2/app/manifests/v1", map[string]string{"Content-Type": v1.MediaTypeImageManifest},
			img.Manifest[:len(img.Manifest)/2], len(img.Manifest))
		want(t, "truncated manifest PUT", r, http.StatusBadRequest, registry.CodeManifestInvalid)
		want(t, "GET tag of truncated manifest", e.get("/v2/app/manifests/v1"), http.StatusNotFound, registry.CodeManifestUnknown)
		want(t, "GET truncated manifest", e.get("/v2/app/manifests/"+img.Digest.String()), http.StatusNotFound, registry.CodeManifestUnknown)
	})
}

// hostileCase is one request no registry may accept.
type hostileCase struct {
	name    string
	method  string
	path    string // "{up}" is replaced by a fresh session in good/repo, "{foreign}" by one of other/repo addressed via good/repo
	header  map[string]string
	body    []byte
	chunked bool
	status  int
	code    registry.Code     // "" for HEAD, which has no body
	detail  digest.Digest     // expected detail.digest, if set
	headers map[string]string // expected response headers
}

func TestAPIHostileInput(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	ctx := t.Context()
	img := newImage("good", 1)
	e.pushImage("good/repo", "latest", img)
	otherOnly := e.pushBlob("other/repo", []byte("only in other/repo"))
	seeded := []digest.Digest{digest.FromBytes(img.Config), digest.FromBytes(img.Layers[0]), otherOnly}
	slices.Sort(seeded)

	missing := digest.FromString("never uploaded")
	bad := []byte("bad content")
	hex64 := strings.Repeat("a", 64)
	manifestCT := map[string]string{"Content-Type": v1.MediaTypeImageManifest}
	indexCT := map[string]string{"Content-Type": v1.MediaTypeImageIndex}
	cfgDesc := v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(img.Config), Size: int64(len(img.Config))}
	layerDesc := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(img.Layers[0]), Size: int64(len(img.Layers[0]))}

	manifest := func(mutate func(m map[string]any)) []byte {
		m := map[string]any{
			"schemaVersion": 2,
			"mediaType":     v1.MediaTypeImageManifest,
			"config":        cfgDesc,
			"layers":        []any{layerDesc},
		}
		if mutate != nil {
			mutate(m)
		}
		return apiJSON(m)
	}
	withLayer := func(l any) []byte { return manifest(func(m map[string]any) { m["layers"] = []any{l} }) }
	index := func(children ...v1.Descriptor) []byte {
		return apiJSON(map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageIndex, "manifests": children})
	}
	goodBody := manifest(nil)
	missingLayer := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: missing, Size: 5}
	otherLayer := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: otherOnly, Size: 18}
	schema1 := []byte(`{"schemaVersion":1,"name":"good/repo","tag":"latest","architecture":"amd64","fsLayers":[{"blobSum":"` +
		digest.FromBytes(img.Layers[0]).String() + `"}],"history":[{"v1Compatibility":"{}"}],"signatures":[]}`)
	deep := []byte(`{"schemaVersion":2,"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`)
	tooBig := paddedManifest(img, 4<<20+1)
	long := strings.Repeat("a", 256)

	tests := []hostileCase{
		// Repository names.
		{name: "dotdot", method: "GET", path: "/v2/../x/manifests/latest", status: 400, code: registry.CodeNameInvalid},
		{name: "dotdot inside", method: "GET", path: "/v2/good/../repo/manifests/latest", status: 400, code: registry.CodeNameInvalid},
		{name: "encoded dotdot", method: "GET", path: "/v2/%2e%2e/x/manifests/latest", status: 400, code: registry.CodeNameInvalid},
		{name: "encoded dotdot upper", method: "GET", path: "/v2/good/%2E%2E/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "encoded slash", method: "GET", path: "/v2/good%2Frepo/manifests/latest", status: 400, code: registry.CodeNameInvalid},
		{name: "encoded slash lower", method: "GET", path: "/v2/good%2frepo/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "encoded dotdot slash", method: "GET", path: "/v2/good/%2e%2e%2F%2e%2e/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "uppercase", method: "GET", path: "/v2/Good/repo/manifests/latest", status: 400, code: registry.CodeNameInvalid},
		{name: "encoded uppercase", method: "GET", path: "/v2/%47ood/repo/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "too long", method: "GET", path: "/v2/" + long + "/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "longest valid", method: "GET", path: "/v2/" + long[:255] + "/tags/list", status: 404, code: registry.CodeNameUnknown},
		{name: "empty component", method: "GET", path: "/v2/good//repo/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "trailing separator", method: "GET", path: "/v2/good/repo-/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "leading separator", method: "GET", path: "/v2/-good/repo/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "double dot", method: "GET", path: "/v2/a..b/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "triple underscore", method: "GET", path: "/v2/a___b/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "NUL", method: "GET", path: "/v2/good/repo%00/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "non-ASCII", method: "GET", path: "/v2/g%C3%B6od/tags/list", status: 400, code: registry.CodeNameInvalid},
		{name: "dotdot upload", method: "POST", path: "/v2/../../etc/blobs/uploads/", status: 400, code: registry.CodeNameInvalid},
		{name: "dotdot blob push", method: "POST", path: "/v2/%2e%2e/blobs/uploads/?digest=" + digest.FromBytes(bad).String(), body: bad, status: 400, code: registry.CodeNameInvalid},
		{name: "dotdot manifest push", method: "PUT", path: "/v2/%2e%2e/manifests/latest", header: manifestCT, body: goodBody, status: 400, code: registry.CodeNameInvalid},
		{name: "dotdot referrers", method: "GET", path: "/v2/../referrers/" + img.Digest.String(), status: 400, code: registry.CodeNameInvalid},

		// Manifest bodies.
		{name: "manifest over 4 MiB", method: "PUT", path: "/v2/good/repo/manifests/big", header: manifestCT, body: tooBig, status: 413, code: registry.CodeSizeInvalid},
		{name: "malformed JSON", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: []byte(`{"schemaVersion":2,`), status: 400, code: registry.CodeManifestInvalid},
		{name: "trailing garbage", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: append(slices.Clone(goodBody), " xyz"...), status: 400, code: registry.CodeManifestInvalid},
		{name: "empty body", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: []byte{}, status: 400, code: registry.CodeManifestInvalid},
		{name: "JSON null", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: []byte("null"), status: 400, code: registry.CodeManifestInvalid},
		{name: "JSON array", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: []byte("[]"), status: 400, code: registry.CodeManifestInvalid},
		{name: "deeply nested", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: deep, status: 400, code: registry.CodeManifestInvalid},
		{name: "schemaVersion 3", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: manifest(func(m map[string]any) { m["schemaVersion"] = 3 }), status: 400, code: registry.CodeManifestInvalid},
		{name: "no schemaVersion", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: manifest(func(m map[string]any) { delete(m, "schemaVersion") }), status: 400, code: registry.CodeManifestInvalid},
		{name: "unknown Content-Type, no mediaType", method: "PUT", path: "/v2/good/repo/manifests/x", header: map[string]string{"Content-Type": "text/plain"},
			body: manifest(func(m map[string]any) { delete(m, "mediaType") }), status: 415, code: registry.CodeManifestInvalid},
		{name: "no Content-Type, no mediaType", method: "PUT", path: "/v2/good/repo/manifests/x",
			body: manifest(func(m map[string]any) { delete(m, "mediaType") }), status: 400, code: registry.CodeManifestInvalid},
		{name: "unknown body mediaType", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: manifest(func(m map[string]any) { m["mediaType"] = "application/x-evil" }), status: 415, code: registry.CodeManifestInvalid},
		{name: "mediaType differs from Content-Type", method: "PUT", path: "/v2/good/repo/manifests/x", header: indexCT, body: goodBody, status: 400, code: registry.CodeManifestInvalid},
		{name: "docker mediaType, OCI Content-Type", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: manifest(func(m map[string]any) { m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json" }), status: 400, code: registry.CodeManifestInvalid},
		{name: "index Content-Type on a manifest without mediaType", method: "PUT", path: "/v2/good/repo/manifests/x", header: indexCT,
			body: manifest(func(m map[string]any) { delete(m, "mediaType") }), status: 400, code: registry.CodeManifestInvalid},
		{name: "schema1", method: "PUT", path: "/v2/good/repo/manifests/x",
			header: map[string]string{"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"}, body: schema1, status: 415, code: registry.CodeManifestInvalid},
		{name: "manifest with manifests", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: manifest(func(m map[string]any) { m["manifests"] = []any{img.descriptor()} }), status: 400, code: registry.CodeManifestInvalid},
		{name: "index with config", method: "PUT", path: "/v2/good/repo/manifests/x", header: indexCT,
			body: apiJSON(map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageIndex, "config": cfgDesc, "manifests": []any{}}), status: 400, code: registry.CodeManifestInvalid},
		{name: "no config", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: manifest(func(m map[string]any) { delete(m, "config") }), status: 400, code: registry.CodeManifestInvalid},
		{name: "layer digest malformed", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: withLayer(map[string]any{"mediaType": v1.MediaTypeImageLayer, "digest": "sha256:xyz", "size": 1}), status: 400, code: registry.CodeManifestInvalid},
		{name: "layer digest path traversal", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: withLayer(map[string]any{"mediaType": v1.MediaTypeImageLayer, "digest": "sha256:../../../etc/passwd", "size": 1}), status: 400, code: registry.CodeManifestInvalid},
		{name: "layer digest md5", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: withLayer(map[string]any{"mediaType": v1.MediaTypeImageLayer, "digest": "md5:d41d8cd98f00b204e9800998ecf8427e", "size": 1}), status: 400, code: registry.CodeManifestInvalid},
		{name: "layer negative size", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: withLayer(map[string]any{"mediaType": v1.MediaTypeImageLayer, "digest": layerDesc.Digest, "size": -1}), status: 400, code: registry.CodeManifestInvalid},
		{name: "layer without mediaType", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: withLayer(map[string]any{"digest": layerDesc.Digest, "size": 1}), status: 400, code: registry.CodeManifestInvalid},
		{name: "bad artifactType", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: manifest(func(m map[string]any) { m["artifactType"] = "not a media type" }), status: 400, code: registry.CodeManifestInvalid},
		{name: "subject with bad digest", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: manifest(func(m map[string]any) {
				m["subject"] = map[string]any{"mediaType": v1.MediaTypeImageManifest, "digest": "sha256:nothex", "size": 1}
			}), status: 400, code: registry.CodeManifestInvalid},

		// Manifests naming content the repository does not hold.
		{name: "missing layer", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: withLayer(missingLayer),
			status: 400, code: registry.CodeManifestBlobUnknown, detail: missing},
		{name: "missing config", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT,
			body: manifest(func(m map[string]any) {
				m["config"] = v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: missing, Size: 5}
			}), status: 400, code: registry.CodeManifestBlobUnknown, detail: missing},
		{name: "layer only in another repository", method: "PUT", path: "/v2/good/repo/manifests/x", header: manifestCT, body: withLayer(otherLayer),
			status: 400, code: registry.CodeManifestBlobUnknown, detail: otherOnly},
		{name: "index with missing child", method: "PUT", path: "/v2/good/repo/manifests/x", header: indexCT,
			body:   index(img.descriptor(), v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: missing, Size: 5}),
			status: 400, code: registry.CodeManifestBlobUnknown, detail: missing},
		{name: "index with child from another repository", method: "PUT", path: "/v2/other/repo/manifests/x", header: indexCT,
			body: index(img.descriptor()), status: 400, code: registry.CodeManifestBlobUnknown, detail: img.Digest},

		// Manifest references.
		{name: "digest mismatch", method: "PUT", path: "/v2/good/repo/manifests/" + digest.FromBytes(bad).String(), header: manifestCT, body: goodBody,
			status: 400, code: registry.CodeDigestInvalid},
		{name: "sha512 digest mismatch", method: "PUT", path: "/v2/good/repo/manifests/" + digest.SHA512.FromBytes(bad).String(), header: manifestCT, body: goodBody,
			status: 400, code: registry.CodeDigestInvalid},
		{name: "sha256 digest named as sha512", method: "PUT", path: "/v2/good/repo/manifests/sha512:" + digest.FromBytes(goodBody).Encoded(), header: manifestCT, body: goodBody,
			status: 400, code: registry.CodeDigestInvalid},
		{name: "malformed digest ref", method: "PUT", path: "/v2/good/repo/manifests/sha256:xyz", header: manifestCT, body: goodBody, status: 400, code: registry.CodeDigestInvalid},
		{name: "md5 digest ref", method: "PUT", path: "/v2/good/repo/manifests/md5:d41d8cd98f00b204e9800998ecf8427e", header: manifestCT, body: goodBody, status: 400, code: registry.CodeDigestInvalid},
		{name: "invalid tag", method: "PUT", path: "/v2/good/repo/manifests/-bad", header: manifestCT, body: goodBody, status: 400, code: registry.CodeManifestInvalid},
		{name: "dot tag", method: "PUT", path: "/v2/good/repo/manifests/.x", header: manifestCT, body: goodBody, status: 400, code: registry.CodeManifestInvalid},
		{name: "tag too long", method: "PUT", path: "/v2/good/repo/manifests/" + strings.Repeat("t", 129), header: manifestCT, body: goodBody, status: 400, code: registry.CodeManifestInvalid},
		{name: "empty tag", method: "PUT", path: "/v2/good/repo/manifests/", header: manifestCT, body: goodBody, status: 400, code: registry.CodeManifestInvalid},
		{name: "invalid tag parameter", method: "PUT", path: "/v2/good/repo/manifests/" + digest.FromBytes(goodBody).String() + "?tag=ok&tag=bad%21", header: manifestCT, body: goodBody,
			status: 400, code: registry.CodeManifestInvalid},
		{name: "tag parameter on push by tag", method: "PUT", path: "/v2/good/repo/manifests/x?tag=y", header: manifestCT, body: goodBody, status: 400, code: registry.CodeManifestInvalid},
		{name: "GET unknown tag", method: "GET", path: "/v2/good/repo/manifests/nope", status: 404, code: registry.CodeManifestUnknown},
		{name: "GET unknown digest", method: "GET", path: "/v2/good/repo/manifests/" + missing.String(), status: 404, code: registry.CodeManifestUnknown},
		{name: "GET manifest of unknown repository", method: "GET", path: "/v2/no/such/manifests/latest", status: 404, code: registry.CodeManifestUnknown},
		{name: "GET manifest from the wrong repository", method: "GET", path: "/v2/other/repo/manifests/" + img.Digest.String(), status: 404, code: registry.CodeManifestUnknown},
		{name: "HEAD unknown manifest", method: "HEAD", path: "/v2/good/repo/manifests/nope", status: 404},
		{name: "GET malformed digest", method: "GET", path: "/v2/good/repo/manifests/sha256:xyz", status: 400, code: registry.CodeDigestInvalid},
		{name: "GET md5 digest", method: "GET", path: "/v2/good/repo/manifests/md5:d41d8cd98f00b204e9800998ecf8427e", status: 400, code: registry.CodeDigestInvalid},
		{name: "DELETE unknown tag", method: "DELETE", path: "/v2/good/repo/manifests/nope", status: 404, code: registry.CodeManifestUnknown},
		{name: "DELETE unknown digest", method: "DELETE", path: "/v2/good/repo/manifests/" + missing.String(), status: 404, code: registry.CodeManifestUnknown},
		{name: "DELETE in unknown repository", method: "DELETE", path: "/v2/no/such/manifests/" + img.Digest.String(), status: 404, code: registry.CodeManifestUnknown},
		{name: "DELETE malformed digest", method: "DELETE", path: "/v2/good/repo/manifests/sha256:xyz", status: 400, code: registry.CodeDigestInvalid},

		// Blob reads.
		{name: "GET blob malformed digest", method: "GET", path: "/v2/good/repo/blobs/sha256:xyz", status: 400, code: registry.CodeDigestInvalid},
		{name: "GET blob md5", method: "GET", path: "/v2/good/repo/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", status: 400, code: registry.CodeDigestInvalid},
		{name: "GET blob sha384", method: "GET", path: "/v2/good/repo/blobs/sha384:" + strings.Repeat("a", 96), status: 400, code: registry.CodeDigestInvalid},
		{name: "GET blob uppercase hex", method: "GET", path: "/v2/good/repo/blobs/sha256:" + strings.ToUpper(hex64), status: 400, code: registry.CodeDigestInvalid},
		{name: "GET blob short hex", method: "GET", path: "/v2/good/repo/blobs/sha256:" + hex64[:63], status: 400, code: registry.CodeDigestInvalid},
		{name: "GET blob no algorithm", method: "GET", path: "/v2/good/repo/blobs/" + hex64, status: 400, code: registry.CodeDigestInvalid},
		{name: "GET blob traversal", method: "GET", path: "/v2/good/repo/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd", status: 400, code: registry.CodeNameInvalid},
		{name: "GET blob encoded dotdot", method: "GET", path: "/v2/good/repo/blobs/%2e%2e", status: 400, code: registry.CodeDigestInvalid},
		{name: "GET unknown blob", method: "GET", path: "/v2/good/repo/blobs/" + missing.String(), status: 404, code: registry.CodeBlobUnknown},
		{name: "GET blob of another repository", method: "GET", path: "/v2/good/repo/blobs/" + otherOnly.String(), status: 404, code: registry.CodeBlobUnknown},
		{name: "HEAD blob of another repository", method: "HEAD", path: "/v2/good/repo/blobs/" + otherOnly.String(), status: 404},
		{name: "DELETE unknown blob", method: "DELETE", path: "/v2/good/repo/blobs/" + missing.String(), status: 404, code: registry.CodeBlobUnknown},
		{name: "DELETE blob of another repository", method: "DELETE", path: "/v2/good/repo/blobs/" + otherOnly.String(), status: 404, code: registry.CodeBlobUnknown},
		{name: "DELETE blob malformed digest", method: "DELETE", path: "/v2/good/repo/blobs/sha256:xyz", status: 400, code: registry.CodeDigestInvalid},

		// Blob pushes.
		{name: "monolithic malformed digest", method: "POST", path: "/v2/good/repo/blobs/uploads/?digest=sha256:xyz", body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "monolithic md5", method: "POST", path: "/v2/good/repo/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e", body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "monolithic digest mismatch", method: "POST", path: "/v2/good/repo/blobs/uploads/?digest=" + missing.String(), body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "monolithic sha512 mismatch", method: "POST", path: "/v2/good/repo/blobs/uploads/?digest=" + digest.SHA512.FromString("other").String(), body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "monolithic streamed mismatch", method: "POST", path: "/v2/good/repo/blobs/uploads/?digest=" + missing.String(), body: bad, chunked: true, status: 400, code: registry.CodeDigestInvalid},
		{name: "mount malformed digest", method: "POST", path: "/v2/good/repo/blobs/uploads/?mount=sha256:xyz&from=other/repo", status: 400, code: registry.CodeDigestInvalid},
		{name: "mount from invalid name", method: "POST", path: "/v2/good/repo/blobs/uploads/?mount=" + otherOnly.String() + "&from=..%2Fother%2Frepo", status: 202},
		{name: "mount from repository without the blob", method: "POST", path: "/v2/good/repo/blobs/uploads/?mount=" + otherOnly.String() + "&from=good/repo", status: 202},
		{name: "GET upload collection", method: "GET", path: "/v2/good/repo/blobs/uploads/", status: 405, code: registry.CodeUnsupported},

		// Upload sessions.
		{name: "PATCH unknown upload", method: "PATCH", path: "/v2/good/repo/blobs/uploads/0123456789abcdef0123456789abcdef", body: bad, status: 404, code: registry.CodeBlobUploadUnknown},
		{name: "PUT unknown upload", method: "PUT", path: "/v2/good/repo/blobs/uploads/nope?digest=" + digest.FromBytes(bad).String(), body: bad, status: 404, code: registry.CodeBlobUploadUnknown},
		{name: "PATCH dotdot upload", method: "PATCH", path: "/v2/good/repo/blobs/uploads/..", body: bad, status: 404, code: registry.CodeBlobUploadUnknown},
		{name: "PATCH encoded traversal upload", method: "PATCH", path: "/v2/good/repo/blobs/uploads/..%2F..%2Fblobs", body: bad, status: 400, code: registry.CodeNameInvalid},
		{name: "GET foreign upload", method: "GET", path: "{foreign}", status: 404, code: registry.CodeBlobUploadUnknown},
		{name: "PATCH foreign upload", method: "PATCH", path: "{foreign}", body: bad, status: 404, code: registry.CodeBlobUploadUnknown},
		{name: "PUT foreign upload", method: "PUT", path: "{foreign}?digest=" + digest.FromBytes(bad).String(), body: bad, status: 404, code: registry.CodeBlobUploadUnknown},
		{name: "DELETE foreign upload", method: "DELETE", path: "{foreign}", status: 404, code: registry.CodeBlobUploadUnknown},
		{name: "PUT without digest", method: "PUT", path: "{up}", body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "PUT with empty digest", method: "PUT", path: "{up}?digest=", body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "PUT malformed digest", method: "PUT", path: "{up}?digest=sha256:xyz", body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "PUT md5 digest", method: "PUT", path: "{up}?digest=md5:d41d8cd98f00b204e9800998ecf8427e", body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "PUT digest mismatch", method: "PUT", path: "{up}?digest=" + missing.String(), body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "PUT sha512 mismatch", method: "PUT", path: "{up}?digest=" + digest.SHA512.FromString("x").String(), body: bad, status: 400, code: registry.CodeDigestInvalid},
		{name: "Content-Range longer than body", method: "PATCH", path: "{up}", header: map[string]string{"Content-Range": "0-99"}, body: bad, status: 400, code: registry.CodeBlobUploadInvalid},
		{name: "Content-Range shorter than body", method: "PATCH", path: "{up}", header: map[string]string{"Content-Range": "0-1"}, body: bad, status: 400, code: registry.CodeBlobUploadInvalid},
		{name: "Content-Range longer than streamed body", method: "PATCH", path: "{up}", header: map[string]string{"Content-Range": "0-99"}, body: bad, chunked: true,
			status: 400, code: registry.CodeBlobUploadInvalid},
		{name: "Content-Range overflowing int64", method: "PATCH", path: "{up}", header: map[string]string{"Content-Range": "0-9223372036854775807"}, body: bad, chunked: true,
			status: 400, code: registry.CodeBlobUploadInvalid},
		{name: "Content-Range beyond int64", method: "PATCH", path: "{up}", header: map[string]string{"Content-Range": "0-99999999999999999999"}, body: bad,
			status: 400, code: registry.CodeBlobUploadInvalid},
		{name: "Content-Range garbage", method: "PATCH", path: "{up}", header: map[string]string{"Content-Range": "bytes=abc"}, body: bad, status: 400, code: registry.CodeBlobUploadInvalid},
		{name: "Content-Range reversed", method: "PATCH", path: "{up}", header: map[string]string{"Content-Range": "5-2"}, body: bad, status: 400, code: registry.CodeBlobUploadInvalid},
		{name: "Content-Range negative", method: "PATCH", path: "{up}", header: map[string]string{"Content-Range": "-1-9"}, body: bad, status: 400, code: registry.CodeBlobUploadInvalid},
		{name: "Content-Range out of order", method: "PATCH", path: "{up}", header: map[string]string{"Content-Range": "100-110"}, body: bad,
			status: 416, code: registry.CodeBlobUploadInvalid, headers: map[string]string{"Range": "0-0"}},
		{name: "PUT Content-Range mismatch", method: "PUT", path: "{up}?digest=" + digest.FromBytes(bad).String(), header: map[string]string{"Content-Range": "0-3"}, body: bad,
			status: 400, code: registry.CodeBlobUploadInvalid},
		{name: "POST to an upload", method: "POST", path: "{up}", status: 405, code: registry.CodeUnsupported},

		// Listings.
		{name: "tags n negative", method: "GET", path: "/v2/good/repo/tags/list?n=-1", status: 400, code: registry.CodeUnsupported},
		{name: "tags n not a number", method: "GET", path: "/v2/good/repo/tags/list?n=abc", status: 400, code: registry.CodeUnsupported},
		{name: "tags n fractional", method: "GET", path: "/v2/good/repo/tags/list?n=1.5", status: 400, code: registry.CodeUnsupported},
		{name: "tags n overflowing", method: "GET", path: "/v2/good/repo/tags/list?n=99999999999999999999", status: 400, code: registry.CodeUnsupported},
		{name: "tags n empty-ish", method: "GET", path: "/v2/good/repo/tags/list?n=%20", status: 400, code: registry.CodeUnsupported},
		{name: "tags of unknown repository", method: "GET", path: "/v2/no/such/tags/list", status: 404, code: registry.CodeNameUnknown},
		{name: "catalog n negative", method: "GET", path: "/v2/_catalog?n=-5", status: 400, code: registry.CodeUnsupported},
		{name: "referrers malformed digest", method: "GET", path: "/v2/good/repo/referrers/sha256:xyz", status: 400, code: registry.CodeDigestInvalid},
		{name: "referrers tag instead of digest", method: "GET", path: "/v2/good/repo/referrers/latest", status: 400, code: registry.CodeDigestInvalid},

		// Methods and routes.
		{name: "POST manifest", method: "POST", path: "/v2/good/repo/manifests/latest", body: goodBody, status: 405, code: registry.CodeUnsupported,
			headers: map[string]string{"Allow": "GET, HEAD, PUT, DELETE"}},
		{name: "PATCH manifest", method: "PATCH", path: "/v2/good/repo/manifests/latest", body: goodBody, status: 405, code: registry.CodeUnsupported},
		{name: "custom method", method: "BREW", path: "/v2/good/repo/manifests/latest", status: 405, code: registry.CodeUnsupported},
		{name: "PUT blob", method: "PUT", path: "/v2/good/repo/blobs/" + digest.FromBytes(bad).String(), body: bad, status: 405, code: registry.CodeUnsupported,
			headers: map[string]string{"Allow": "GET, HEAD, DELETE"}},
		{name: "POST blob", method: "POST", path: "/v2/good/repo/blobs/" + digest.FromBytes(bad).String(), body: bad, status: 405, code: registry.CodeUnsupported},
		{name: "PUT catalog", method: "PUT", path: "/v2/_catalog", status: 405, code: registry.CodeUnsupported, headers: map[string]string{"Allow": "GET"}},
		{name: "DELETE catalog", method: "DELETE", path: "/v2/_catalog", status: 405, code: registry.CodeUnsupported},
		{name: "DELETE base", method: "DELETE", path: "/v2/", status: 405, code: registry.CodeUnsupported},
		{name: "POST tags", method: "POST", path: "/v2/good/repo/tags/list", status: 405, code: registry.CodeUnsupported},
		{name: "DELETE tags", method: "DELETE", path: "/v2/good/repo/tags/list", status: 405, code: registry.CodeUnsupported},
		{name: "DELETE referrers", method: "DELETE", path: "/v2/good/repo/referrers/" + img.Digest.String(), status: 405, code: registry.CodeUnsupported},
		{name: "unknown route", method: "GET", path: "/v2/good/repo/nope/x", status: 404, code: registry.CodeNameUnknown},
		{name: "outside /v2", method: "GET", path: "/v1/_ping", status: 404, code: registry.CodeNameUnknown},
	}

	// Digests of content hostile requests carried: none may be stored.
	refused := []digest.Digest{missing, digest.FromBytes(bad), digest.SHA512.FromBytes(bad), digest.FromBytes(tooBig), digest.FromBytes(deep)}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.on(t)
			path := tc.path
			if strings.Contains(path, "{up}") {
				path = strings.ReplaceAll(path, "{up}", e.startUpload("good/repo"))
			}
			if strings.Contains(path, "{foreign}") {
				loc := e.startUpload("other/repo")
				path = strings.ReplaceAll(path, "{foreign}", strings.Replace(loc, "/v2/other/repo/", "/v2/good/repo/", 1))
			}
			r := e.do(apiReq{Method: tc.method, Path: path, Header: tc.header, Body: tc.body, Chunked: tc.chunked})
			if r.Status >= 500 {
				t.Fatalf("%s %s: server error %s", tc.method, path, r)
			}
			if r.Status != tc.status {
				t.Fatalf("%s %s: got %s, want status %d", tc.method, path, r, tc.status)
			}
			if tc.code != "" && r.code() != string(tc.code) {
				t.Errorf("%s %s: got %s, want code %s", tc.method, path, r, tc.code)
			}
			if tc.method == http.MethodHead && len(r.Body) != 0 {
				t.Errorf("HEAD response has a body")
			}
			if r.Status >= 400 && tc.method != http.MethodHead && r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("error response Content-Type = %q", r.Header.Get("Content-Type"))
			}
			if tc.detail != "" && r.detailDigest() != tc.detail.String() {
				t.Errorf("detail digest = %q, want %s", r.detailDigest(), tc.detail)
			}
			for k, v := range tc.headers {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if r.Status >= 400 && r.Header.Get("Docker-Content-Digest") != "" {
				t.Errorf("error response carries Docker-Content-Digest %q", r.Header.Get("Docker-Content-Digest"))
			}
		})
	}

	// Nothing partial became visible.
	if got := e.walkBlobs(); !slices.Equal(got, seeded) {
		t.Errorf("blob files after hostile requests = %v, want exactly %v", got, seeded)
	}
	if got := e.blobRecords(); !slices.Equal(got, seeded) {
		t.Errorf("blob records after hostile requests = %v, want exactly %v", got, seeded)
	}
	for _, d := range refused {
		if _, err := e.meta.Blob(ctx, d); !errors.Is(err, store.ErrBlobUnknown) {
			t.Errorf("blob record for refused content %s: %v", d, err)
		}
		if _, err := e.blobs.Stat(ctx, d); !errors.Is(err, store.ErrBlobUnknown) {
			t.Errorf("blob file for refused content %s: %v", d, err)
		}
	}
	if _, err := e.meta.RepoBlob(ctx, "good/repo", otherOnly); !errors.Is(err, store.ErrBlobUnknown) {
		t.Errorf("other/repo's blob was linked into good/repo: %v", err)
	}
	repos, err := e.meta.Repositories(ctx, store.Page{N: -1})
	if err != nil || !slices.Equal(repos, []string{"good/repo", "other/repo"}) {
		t.Errorf("repositories after hostile requests = %q, %v", repos, err)
	}
	var manifests []string
	err = e.meta.WalkManifests(ctx, func(repo string, m *store.ManifestRecord) error {
		manifests = append(manifests, repo+"@"+m.Digest.String())
		return nil
	})
	if err != nil || !slices.Equal(manifests, []string{"good/repo@" + img.Digest.String()}) {
		t.Errorf("manifests after hostile requests = %q, %v", manifests, err)
	}
	if tags, err := e.meta.Tags(ctx, "good/repo", store.Page{N: -1}); err != nil || !slices.Equal(tags, []string{"latest"}) {
		t.Errorf("tags after hostile requests = %q, %v", tags, err)
	}
	// Upload data exists only for live sessions: failed monolithic pushes
	// leave nothing behind.
	ups, err := e.blobs.Uploads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		if _, err := e.meta.Upload(ctx, u.ID); err != nil {
			t.Errorf("upload data %s (%d bytes) has no session: %v", u.ID, u.Size, err)
		}
	}
	// The seeded image is intact.
	if r := e.get("/v2/good/repo/manifests/latest"); !bytes.Equal(r.Body, img.Manifest) {
		t.Errorf("seeded manifest after hostile requests = %s", r)
	}
}
