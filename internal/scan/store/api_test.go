package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/scan/store"
)

// tableAccess is an Access over a fixed table: which user may pull which
// repository, and which repository holds which digest.
type tableAccess struct {
	pull  map[string][]string // user → repositories
	holds map[string]digest.Digest
	down  bool
}

func (a tableAccess) Challenge(*http.Request) string { return `Basic realm="test"` }

func (a tableAccess) Authorize(r *http.Request, repo string, d digest.Digest) error {
	if a.down {
		return fmt.Errorf("%w: accounts database closed", store.ErrUnavailable)
	}
	user, _, ok := r.BasicAuth()
	if !ok {
		return store.ErrUnauthenticated
	}
	allowed := false
	for _, rp := range a.pull[user] {
		allowed = allowed || rp == repo
	}
	if !allowed {
		return store.ErrForbidden
	}
	if a.holds[repo] != d {
		return store.ErrNoImage
	}
	return nil
}

// TestHandler checks the scan API's answers, hostile requests included,
// through its own client.
func TestHandler(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir, &clock{t: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
	db := vulnDB(t, dir, goRecord("GO-T-1", "golang.org/x/text", "0.3.7"))
	scanned, queued, unknown := digest.FromString("scanned"), digest.FromString("queued"), digest.FromString("unknown")
	s := goImage(scanned, map[string]string{"golang.org/x/text": "v0.3.5"})
	if _, err := st.PutScan(ctx, &store.Scan{Digest: scanned, SBOM: s, Report: match(t, db, s)}); err != nil {
		t.Fatal(err)
	}
	access := tableAccess{
		pull:  map[string][]string{"alice": {"team/app", "team/queued", "team/unknown"}, "bob": {"other/app"}},
		holds: map[string]digest.Digest{"team/app": scanned, "team/queued": queued, "team/unknown": unknown, "other/app": scanned},
	}
	h := store.Handler(st, access, store.HandlerOptions{Pending: func(d digest.Digest) bool { return d == queued }})
	ts := httptest.NewServer(h)
	defer ts.Close()

	get := func(user, rawQuery, path string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path+"?"+rawQuery, nil)
		if user != "" {
			req.SetBasicAuth(user, "pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("WWW-Authenticate")
	}
	q := func(repo string, d digest.Digest) string {
		return url.Values{"repository": {repo}, "digest": {d.String()}}.Encode()
	}
	tests := []struct {
		name, user, query, path string
		status                  int
		want                    string
	}{
		{"report", "alice", q("team/app", scanned), store.ReportPath, 200, `"id":"GO-T-1"`},
		{"sbom", "alice", q("team/app", scanned), store.SBOMPath, 200, `"purl": "pkg:golang/golang.org/x/text@v0.3.5"`},
		{"sbom cyclonedx", "alice", q("team/app", scanned) + "&format=cyclonedx", store.SBOMPath, 200, `"bomFormat": "CycloneDX"`},
		{"sbom spdx", "alice", q("team/app", scanned) + "&format=spdx", store.SBOMPath, 200, `"spdxVersion": "SPDX-2.3"`},
		{"same digest, other repository", "bob", q("other/app", scanned), store.ReportPath, 200, `"generation":1`},
		{"no credentials", "", q("team/app", scanned), store.ReportPath, 401, store.CodeUnauthenticated},
		{"not allowed to pull", "bob", q("team/app", scanned), store.ReportPath, 403, store.CodeDenied},
		// A digest the named repository does not hold: pull on one
		// repository does not open another's results.
		{"digest not in the repository", "alice", q("team/queued", scanned), store.ReportPath, 404, store.CodeNotFound},
		{"queued", "alice", q("team/queued", queued), store.ReportPath, 404, store.CodePending},
		{"not scanned", "alice", q("team/unknown", unknown), store.SBOMPath, 404, store.CodeNotScanned},
		{"no parameters", "alice", "", store.ReportPath, 400, store.CodeInvalid},
		{"repository twice", "alice", q("team/app", scanned) + "&repository=team/app", store.ReportPath, 400, store.CodeInvalid},
		{"bad repository", "alice", url.Values{"repository": {"../etc"}, "digest": {scanned.String()}}.Encode(), store.ReportPath, 400, store.CodeInvalid},
		{"upper-case repository", "alice", url.Values{"repository": {"Team/App"}, "digest": {scanned.String()}}.Encode(), store.ReportPath, 400, store.CodeInvalid},
		{"bad digest", "alice", url.Values{"repository": {"team/app"}, "digest": {"sha256:zz"}}.Encode(), store.ReportPath, 400, store.CodeInvalid},
		{"unknown algorithm", "alice", url.Values{"repository": {"team/app"}, "digest": {"md5:d41d8cd98f00b204e9800998ecf8427e"}}.Encode(), store.ReportPath, 400, store.CodeInvalid},
		{"long repository", "alice", url.Values{"repository": {strings.Repeat("a/", 2000) + "a"}, "digest": {scanned.String()}}.Encode(), store.ReportPath, 400, store.CodeInvalid},
		{"bad format", "alice", q("team/app", scanned) + "&format=xml", store.SBOMPath, 400, store.CodeInvalid},
	}
	for _, tc := range tests {
		status, body, challenge := get(tc.user, tc.query, tc.path)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %.300s, want %d containing %q", tc.name, status, body, tc.status, tc.want)
		}
		if status == 401 && challenge == "" {
			t.Errorf("%s: 401 without a challenge", tc.name)
		}
	}
	if resp, err := http.Post(ts.URL+store.ReportPath+"?"+q("team/app", scanned), "application/json", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST report: %v %v", resp.Status, err)
	}

	// The client, against the same server.
	c, err := store.NewClient(ts.URL, store.ClientOptions{Authorization: "Basic " + basic("alice")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Result(ctx, "team/app", scanned)
	if err != nil || len(res.Findings) != 1 || res.Findings[0].Fixed != "0.3.7" || res.Report == nil {
		t.Fatalf("client Result = %+v, %v", res, err)
	}
	_, err = c.Result(ctx, "team/queued", queued)
	var apiErr *store.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != store.CodePending {
		t.Fatalf("client Result of a queued image = %v", err)
	}
	if b, err := c.SBOM(ctx, "team/app", scanned, "spdx"); err != nil || !strings.Contains(string(b), "SPDX-2.3") {
		t.Fatalf("client SBOM = %.200s, %v", b, err)
	}

	// Access that cannot be checked is 503, not a denial.
	down := httptest.NewServer(store.Handler(st, tableAccess{down: true}, store.HandlerOptions{}))
	defer down.Close()
	resp, err := http.Get(down.URL + store.ReportPath + "?" + q("team/app", scanned))
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("access down: %v %v", resp.Status, err)
	}
	resp.Body.Close()
}

func basic(user string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, "pw")
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// TestClientRefusesInsecure: credentials never go over plain HTTP beyond
// loopback, and the server address is checked.
func TestClientRefusesInsecure(t *testing.T) {
	for _, tc := range []struct {
		server, authz string
		ok            bool
	}{
		{"http://registry.example:5000", "Basic eA==", false},
		{"http://registry.example:5000", "", true},
		{"registry.example:5000", "Basic eA==", true}, // https
		{"http://127.0.0.1:5000", "Basic eA==", true},
		{"http://[::1]:5000", "Basic eA==", true},
		{"ftp://registry.example", "", false},
		{"http://user:pw@registry.example", "", false},
		{"https://registry.example/?x=1", "", false},
	} {
		_, err := store.NewClient(tc.server, store.ClientOptions{Authorization: tc.authz})
		if (err == nil) != tc.ok {
			t.Errorf("NewClient(%q, %q) = %v, want ok %v", tc.server, tc.authz, err, tc.ok)
		}
	}
}

func FuzzParseImageQuery(f *testing.F) {
	for _, s := range []string{
		"repository=team/app&digest=sha256:" + strings.Repeat("a", 64),
		"repository=a&digest=sha512:" + strings.Repeat("b", 128),
		"repository=../x&digest=sha256:00", "repository=a&repository=b", "digest=%00", "repository=%ff%fe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		repo, d, err := store.ParseImageQuery(q)
		if err != nil {
			return
		}
		if repo == "" || strings.Contains(repo, "..") || strings.HasPrefix(repo, "/") || d.Validate() != nil {
			t.Fatalf("accepted repository %q digest %q", repo, d)
		}
	})
}
