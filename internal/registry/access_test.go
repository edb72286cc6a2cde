package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/registry"
)

// tokenAuthorizer maps bearer tokens to callers with fixed permissions: the
// registry's side of the Authorizer contract, without the token service
// (which internal/auth tests on its own and test/e2e tests end to end).
type tokenAuthorizer map[string]*permCaller

type permCaller struct {
	name  string
	perms map[string]bool // "repository:a/b:pull", "registry:catalog:*"
	env   string          // a robot's environment
	admin bool
}

func (c *permCaller) Name() string                 { return c.name }
func (c *permCaller) Kind() string                 { return "robot" }
func (c *permCaller) Env() string                  { return c.env }
func (c *permCaller) Admin(_ context.Context) bool { return c.admin }
func (c *permCaller) Can(typ, name, action string) bool {
	return c.perms[typ+":"+name+":"+action]
}

// MayPull answers from the same permissions: in this fake, the token is
// the whole account.
func (c *permCaller) MayPull(_ context.Context, repo string) bool {
	return c.perms["repository:"+repo+":pull"]
}

func (a tokenAuthorizer) Authenticate(r *http.Request) (registry.Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	c, ok := a[strings.TrimPrefix(h, "Bearer ")]
	if !ok {
		return nil, fmt.Errorf("invalid token")
	}
	return c, nil
}

func (a tokenAuthorizer) Challenge(_ *http.Request, scope string, insufficient bool) string {
	v := `Bearer realm="https://auth.test/token",service="test",scope="` + scope + `"`
	if insufficient {
		v += `,error="insufficient_scope"`
	}
	return v
}

type authEnv struct {
	url    string
	mu     sync.Mutex
	events []registry.Event
}

func newAuthEnv(t *testing.T, az tokenAuthorizer) *authEnv {
	t.Helper()
	blobs, meta := openStores(t)
	e := &authEnv{}
	reg := registry.New(blobs, meta, registry.Options{
		Authorizer: az,
		OnEvent: func(_ context.Context, ev registry.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
	})
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *authEnv) do(t *testing.T, token, method, path string, body []byte, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func perms(ps ...string) map[string]bool {
	m := map[string]bool{}
	for _, p := range ps {
		m[p] = true
	}
	return m
}

func TestAuthorization(t *testing.T) {
	az := tokenAuthorizer{
		"ci":     {name: "ci", perms: perms("repository:team/app:pull", "repository:team/app:push", "registry:catalog:*")},
		"reader": {name: "reader", perms: perms("repository:team/app:pull", "repository:other/lib:pull", "registry:catalog:*")},
		"other":  {name: "other", perms: perms("repository:other/lib:push", "repository:other/lib:pull")},
	}
	e := newAuthEnv(t, az)
	blob := []byte("layer")
	d := digest.FromBytes(blob)
	push := "/v2/team/app/blobs/uploads/?digest=" + d.String()

	// No credentials: 401 with a challenge naming the scope needed.
	resp, body := e.do(t, "", http.MethodPost, push, blob)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "UNAUTHORIZED") {
		t.Fatalf("anonymous push = %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `scope="repository:team/app:push"`) {
		t.Fatalf("challenge = %q", got)
	}
	// Invalid token: 401 as well.
	if resp, _ := e.do(t, "forged", http.MethodGet, "/v2/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged token on /v2/ = %d", resp.StatusCode)
	}
	// Valid credentials with no particular scope may use /v2/.
	if resp, _ := e.do(t, "reader", http.MethodGet, "/v2/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/v2/ with a token = %d", resp.StatusCode)
	}
	// Insufficient scope: 401 DENIED with error="insufficient_scope".
	resp, body = e.do(t, "reader", http.MethodPost, push, blob)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "DENIED") ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("reader push = %d %s %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	// Allowed push.
	if resp, body := e.do(t, "ci", http.MethodPost, push, blob); resp.StatusCode != http.StatusCreated {
		t.Fatalf("ci push = %d %s", resp.StatusCode, body)
	}
	config := []byte(`{}`)
	cd := digest.FromBytes(config)
	e.do(t, "ci", http.MethodPost, "/v2/team/app/blobs/uploads/?digest="+cd.String(), config)
	man := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: cd, Size: 2},
		Layers: []v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: d, Size: int64(len(blob))}}}
	man.SchemaVersion = 2
	m, _ := json.Marshal(man)
	if resp, body := e.do(t, "ci", http.MethodPut, "/v2/team/app/manifests/v1", m, "Content-Type", v1.MediaTypeImageManifest); resp.StatusCode != http.StatusCreated {
		t.Fatalf("ci manifest push = %d %s", resp.StatusCode, body)
	}
	// A token for team/app does not open other/lib, and vice versa.
	if resp, _ := e.do(t, "ci", http.MethodGet, "/v2/other/lib/tags/list", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ci reading other/lib = %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "other", http.MethodGet, "/v2/team/app/manifests/v1", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("other reading team/app = %d", resp.StatusCode)
	}
	// Delete needs delete, which nobody here has.
	if resp, _ := e.do(t, "ci", http.MethodDelete, "/v2/team/app/manifests/v1", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ci delete = %d", resp.StatusCode)
	}
	// Pull is allowed to the reader and audited.
	if resp, _ := e.do(t, "reader", http.MethodGet, "/v2/team/app/manifests/v1", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("reader pull = %d", resp.StatusCode)
	}

	// Mounts: "other" may push to other/lib but not pull team/app, so a
	// mount from team/app — named or anonymous — must not copy the blob;
	// the client is sent to upload instead.
	for _, q := range []string{"?mount=" + d.String() + "&from=team/app", "?mount=" + d.String()} {
		resp, _ := e.do(t, "other", http.MethodPost, "/v2/other/lib/blobs/uploads/"+q, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("mount %s by a caller who cannot pull the source = %d, want 202 (upload instead)", q, resp.StatusCode)
		}
	}
	if resp, _ := e.do(t, "other", http.MethodHead, "/v2/other/lib/blobs/"+d.String(), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("blob reached other/lib through a refused mount: %d", resp.StatusCode)
	}

	// The catalog lists only repositories the caller may pull.
	e.do(t, "other", http.MethodPost, "/v2/other/lib/blobs/uploads/?digest="+d.String(), blob)
	for token, want := range map[string][]string{"ci": {"team/app"}, "reader": {"other/lib", "team/app"}} {
		resp, body := e.do(t, token, http.MethodGet, "/v2/_catalog", nil)
		var cat struct{ Repositories []string }
		json.Unmarshal([]byte(body), &cat)
		if resp.StatusCode != http.StatusOK || !slices.Equal(cat.Repositories, want) {
			t.Fatalf("catalog for %s = %d %v, want %v", token, resp.StatusCode, cat.Repositories, want)
		}
	}
	if resp, _ := e.do(t, "other", http.MethodGet, "/v2/_catalog", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("catalog without registry:catalog:* = %d", resp.StatusCode)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	var got []string
	for _, ev := range e.events {
		got = append(got, ev.Who+" "+ev.Action+" "+ev.Repository+" "+ev.Outcome)
	}
	for _, want := range []string{"reader denied team/app denied", "ci push team/app ok", "reader pull team/app ok", "ci denied team/app denied"} {
		if !slices.Contains(got, want) {
			t.Errorf("audit events lack %q; got %q", want, got)
		}
	}
}
