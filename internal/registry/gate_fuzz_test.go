package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/store"
	"github.com/bulwark-dev/bulwark/internal/store/fs"
	"github.com/bulwark-dev/bulwark/internal/store/sqlite"
)

// FuzzWarningValue: whatever a policy's warning says (its messages may
// quote image labels, which pushers control), the header value is one
// well-formed RFC 7234 warning: no line breaks or control characters, one
// quoted string with every inner quote escaped.
func FuzzWarningValue(f *testing.F) {
	for _, s := range []string{"", "plain", `a "quoted" \ text`, "line\r\nInjected: 1", "\x00\x7f\u2028", strings.Repeat("é", 900), "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		v := warningValue(text)
		body, ok := strings.CutPrefix(v, `299 - "`)
		if !ok || !strings.HasSuffix(body, `"`) || len(body) > 2*maxWarningLen*4+8 {
			t.Fatalf("malformed warning %q", v)
		}
		if !utf8.ValidString(v) {
			t.Fatalf("invalid UTF-8 in %q", v)
		}
		for _, c := range v {
			if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
				t.Fatalf("control character %U in %q", c, v)
			}
		}
		body = body[:len(body)-1]
		for i := 0; i < len(body); i++ {
			switch body[i] {
			case '\\':
				i++ // escaped character
				if i == len(body) || (body[i] != '"' && body[i] != '\\') {
					t.Fatalf("dangling escape in %q", v)
				}
			case '"':
				t.Fatalf("unescaped quote in %q", v)
			}
		}
		h := http.Header{}
		h.Add("Warning", v)
		var buf bytes.Buffer
		if err := h.Write(&buf); err != nil || strings.Count(buf.String(), "\r\n") != 1 {
			t.Fatalf("header %q does not write as one line: %v", buf.String(), err)
		}
	})
}

// FuzzQuarantineAdmin sends arbitrary release bodies and list queries to
// the admin API: every answer is JSON with a 2xx or 4xx status (the only
// 5xx is a policy failure, and this registry has a policy that never
// fails), and nothing but the one quarantined manifest is ever released.
func FuzzQuarantineAdmin(f *testing.F) {
	dir := f.TempDir()
	blobs, err := fs.Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	meta, err := sqlite.Open(f.Context(), filepath.Join(dir, "meta.db"), sqlite.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { meta.Close(); blobs.Close() })
	cfg := digest.FromString("cfg")
	content := []byte(`{"schemaVersion":2}`)
	rec := &store.ManifestRecord{Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: content, Config: cfg, Blobs: []digest.Digest{cfg}}
	if err := meta.PutBlob(f.Context(), "prod/app", cfg, 3); err != nil {
		f.Fatal(err)
	}
	if err := meta.PutQuarantinedManifest(f.Context(), "prod/app", rec, nil, false, &store.QuarantineRecord{Pusher: "a", PusherKind: "user", Reason: "r", DecisionID: "d"}); err != nil {
		f.Fatal(err)
	}
	reg := New(blobs, meta, Options{Gate: stillQuarantined{}})
	h := reg.QuarantineAdminHandler(QuarantineAdminOptions{})
	for _, s := range []struct{ body, query string }{
		{`{"repository":"prod/app","digest":"` + rec.Digest.String() + `"}`, "repository=prod/app"},
		{`{"repository":"prod/app","digest":"` + rec.Digest.String() + `","force":true}`, "n=2&last=prod/app@sha256:00"},
		{`{"repository":"../../etc","digest":"sha256:zz"}`, "last=nodigest"},
		{`{"repository":1}`, "n=-1"},
		{`[]`, "repository=%00"},
		{`{"repository":"prod/app","digest":"` + digest.FromString("x").String() + `","force":true,"reason":"r"}`, "n=99999999999999999999"},
	} {
		f.Add(s.body, s.query)
	}
	f.Fuzz(func(t *testing.T, body, query string) {
		for _, req := range []*http.Request{
			httptest.NewRequest(http.MethodPost, "/quarantine/release", strings.NewReader(body)),
			httptest.NewRequest(http.MethodGet, "/quarantine?"+url.PathEscape(query), nil),
		} {
			req.URL.RawQuery = query
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code >= 500 || !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %q %q: %d %s", req.Method, body, query, w.Code, w.Body)
			}
		}
		if q, err := meta.Quarantined(t.Context(), "prod/app", rec.Digest); err != nil || q == nil {
			// Only a forced release with a reason may release it; put it
			// back for the next input after checking that was the case.
			var rr ReleaseRequest
			if json.Unmarshal([]byte(body), &rr) != nil || !rr.Force || rr.Reason == "" {
				t.Fatalf("released by %q (%v)", body, err)
			}
			if err := meta.Quarantine(t.Context(), &store.QuarantineRecord{Repository: "prod/app", Digest: rec.Digest, Pusher: "a", PusherKind: "user", Reason: "r", DecisionID: "d"}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// stillQuarantined is a policy under which nothing passes.
type stillQuarantined struct{}

func (stillQuarantined) Push(_ context.Context, _ *GateRequest) (Verdict, error) {
	return Verdict{Quarantine: true, Reason: "still failing"}, nil
}
func (stillQuarantined) Pull(_ context.Context, _ *GateRequest) (Verdict, error) {
	return Verdict{Allow: true}, nil
}
