package registry_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/store/fs"
	"github.com/bulwark-dev/bulwark/internal/store/sqlite"
)

// apiEnv is a registry on real stores in t.TempDir() behind a real HTTP
// server. Every response status is recorded, and the test fails at cleanup
// if any request was answered with a 5xx.
type apiEnv struct {
	t *testing.T
	*apiShared
}

type apiShared struct {
	srv   *httptest.Server
	reg   *registry.Registry
	blobs *fs.Store
	meta  *sqlite.DB

	mu       sync.Mutex
	failures []string // requests answered with 5xx
}

// on returns the environment bound to t, for use inside subtests: helpers
// report failures on the test that called them.
func (e *apiEnv) on(t *testing.T) *apiEnv { return &apiEnv{t: t, apiShared: e.apiShared} }

// openStores opens real stores in a fresh temporary directory, closed when
// the test ends.
func openStores(t testing.TB) (*fs.Store, *sqlite.DB) {
	t.Helper()
	dir := t.TempDir()
	blobs, err := fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := sqlite.Open(t.Context(), filepath.Join(dir, "meta.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close(); blobs.Close() })
	return blobs, meta
}

func newAPIEnv(t *testing.T, opts registry.Options) *apiEnv {
	t.Helper()
	blobs, meta := openStores(t)
	e := &apiEnv{t: t, apiShared: &apiShared{blobs: blobs, meta: meta}}
	e.reg = registry.New(blobs, meta, opts)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &apiStatusWriter{ResponseWriter: w}
		e.reg.ServeHTTP(sw, r)
		if sw.status >= 500 {
			e.mu.Lock()
			e.failures = append(e.failures, fmt.Sprintf("%s %s -> %d", r.Method, r.URL.RequestURI(), sw.status))
			e.mu.Unlock()
		}
	}))
	t.Cleanup(func() {
		e.srv.Close()
		meta.Close()
		blobs.Close()
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, f := range e.failures {
			t.Errorf("server error: %s", f)
		}
	})
	return e
}

type apiStatusWriter struct {
	http.ResponseWriter
	status int
}

func (w *apiStatusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *apiStatusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// apiResp is a fully read response.
type apiResp struct {
	Status int
	Header http.Header
	Body   []byte
}

// apiErrorBody is the spec's error envelope.
type apiErrorBody struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

// code returns the first error code of an error response, or "" if the body
// is not the spec's error envelope.
func (r apiResp) code() string {
	var eb apiErrorBody
	if json.Unmarshal(r.Body, &eb) != nil || len(eb.Errors) == 0 {
		return ""
	}
	return eb.Errors[0].Code
}

// detailDigest returns detail.digest of the first error.
func (r apiResp) detailDigest() string {
	var eb apiErrorBody
	if json.Unmarshal(r.Body, &eb) != nil || len(eb.Errors) == 0 {
		return ""
	}
	var d struct {
		Digest string `json:"digest"`
	}
	json.Unmarshal(eb.Errors[0].Detail, &d)
	return d.Digest
}

func (r apiResp) String() string {
	body := string(r.Body)
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Sprintf("%d %s", r.Status, body)
}

// apiReq describes a request. Body may be nil; Chunked sends the body with
// chunked transfer encoding (no Content-Length).
type apiReq struct {
	Method  string
	Path    string // absolute path with query, or a full URL
	Header  map[string]string
	Body    []byte
	Chunked bool
}

func (e *apiEnv) do(rq apiReq) apiResp {
	e.t.Helper()
	url := rq.Path
	if !strings.HasPrefix(url, "http") {
		url = e.srv.URL + url
	}
	var body io.Reader
	if rq.Body != nil {
		body = bytes.NewReader(rq.Body)
		if rq.Chunked {
			body = io.MultiReader(body) // hides the length from net/http
		}
	}
	req, err := http.NewRequestWithContext(e.t.Context(), rq.Method, url, body)
	if err != nil {
		e.t.Fatalf("build %s %s: %v", rq.Method, rq.Path, err)
	}
	for k, v := range rq.Header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", rq.Method, rq.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", rq.Method, rq.Path, err)
	}
	return apiResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (e *apiEnv) get(path string) apiResp { return e.do(apiReq{Method: http.MethodGet, Path: path}) }
func (e *apiEnv) head(path string) apiResp {
	return e.do(apiReq{Method: http.MethodHead, Path: path})
}

// want fails the test unless r has the status (and, if code is set, the
// spec error code).
func want(t *testing.T, what string, r apiResp, status int, code registry.Code) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: got %s, want status %d", what, r, status)
	}
	if code != "" && r.code() != string(code) {
		t.Fatalf("%s: got %s, want code %s", what, r, code)
	}
}

// pushBlob uploads content with a monolithic POST and returns its digest.
func (e *apiEnv) pushBlob(repo string, content []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(content)
	r := e.do(apiReq{Method: http.MethodPost, Path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(),
		Header: map[string]string{"Content-Type": "application/octet-stream"}, Body: content})
	want(e.t, "push blob", r, http.StatusCreated, "")
	return d
}

// startUpload opens an upload session and returns its Location.
func (e *apiEnv) startUpload(repo string) string {
	e.t.Helper()
	r := e.do(apiReq{Method: http.MethodPost, Path: "/v2/" + repo + "/blobs/uploads/"})
	want(e.t, "start upload", r, http.StatusAccepted, "")
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+repo+"/blobs/uploads/") {
		e.t.Fatalf("upload Location = %q", loc)
	}
	return loc
}

// withQuery appends a query parameter to a Location that may already carry
// a query.
func withQuery(loc, kv string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + kv
	}
	return loc + "?" + kv
}

// testImage is an image manifest and the blobs it needs.
type testImage struct {
	Config   []byte
	Layers   [][]byte
	Manifest []byte
	Digest   digest.Digest
}

// newImage builds an image manifest over a config and layers whose content
// derives from name.
func newImage(name string, nLayers int) *testImage {
	img := &testImage{Config: []byte(`{"architecture":"amd64","os":"linux","name":"` + name + `"}`)}
	m := v1.Manifest{
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(img.Config), Size: int64(len(img.Config))},
		Layers:    []v1.Descriptor{},
	}
	m.SchemaVersion = 2
	for i := range nLayers {
		l := []byte(fmt.Sprintf("layer %d of %s", i, name))
		img.Layers = append(img.Layers, l)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(l), Size: int64(len(l))})
	}
	img.Manifest = apiJSON(m)
	img.Digest = digest.FromBytes(img.Manifest)
	return img
}

func (img *testImage) descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: img.Digest, Size: int64(len(img.Manifest))}
}

// pushImage uploads img's blobs and puts its manifest under ref.
func (e *apiEnv) pushImage(repo, ref string, img *testImage) apiResp {
	e.t.Helper()
	e.pushBlob(repo, img.Config)
	for _, l := range img.Layers {
		e.pushBlob(repo, l)
	}
	r := e.putManifest(repo, ref, v1.MediaTypeImageManifest, img.Manifest)
	want(e.t, "push manifest "+repo+":"+ref, r, http.StatusCreated, "")
	return r
}

func (e *apiEnv) putManifest(repo, ref, mediaType string, body []byte) apiResp {
	e.t.Helper()
	h := map[string]string{}
	if mediaType != "" {
		h["Content-Type"] = mediaType
	}
	return e.do(apiReq{Method: http.MethodPut, Path: "/v2/" + repo + "/manifests/" + ref, Header: h, Body: body})
}

func apiJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// rawRequest writes head and body to a fresh connection, optionally
// half-closing it so the server sees the body end early, and returns the
// response the server sends back.
func (e *apiEnv) rawRequest(head string, body []byte, closeWrite bool) apiResp {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		e.t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		e.t.Fatal(err)
	}
	if closeWrite {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			e.t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatalf("read response to %q: %v", strings.SplitN(head, "\r\n", 2)[0], err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// truncatedRequest sends a request declaring Content-Length declared but
// carrying only body, then closes the write side.
func (e *apiEnv) truncatedRequest(method, path string, header map[string]string, body []byte, declared int) apiResp {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, path, e.srv.Listener.Addr(), declared)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("Connection: close\r\n\r\n")
	return e.rawRequest(b.String(), body, true)
}

// walkBlobs lists the blob store's committed content.
func (e *apiEnv) walkBlobs() []digest.Digest {
	e.t.Helper()
	var out []digest.Digest
	if err := e.blobs.Walk(e.t.Context(), func(d digest.Digest, _ int64) error {
		out = append(out, d)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// blobRecords lists the digests the metadata store knows.
func (e *apiEnv) blobRecords() []digest.Digest {
	e.t.Helper()
	recs, err := e.meta.Blobs(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []digest.Digest
	for _, r := range recs {
		out = append(out, r.Digest)
	}
	slices.Sort(out)
	return out
}
