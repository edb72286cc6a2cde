package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// TestCallerIdentity: what a policy learns about a token's caller, the
// robot's environment and whether it is an administrator, comes through
// the registry's Caller.
func TestCallerIdentity(t *testing.T) {
	t.Setenv("BULWARK_ADMIN_PASSWORD", "identity-admin-password")
	s := newAuthServer(t, t.TempDir())
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	secret, err := s.sec.accounts.CreateRobot(t.Context(), "web1", []auth.Grant{{Glob: "team/*", Actions: []auth.Action{auth.ActionPull}}}, time.Time{}, "prod")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, password, env string
		admin               bool
	}{
		{"web1", secret, "prod", false},
		{"admin", "identity-admin-password", "", true},
		{"", "", "", false}, // anonymous
	} {
		tok, code := token(t, ts.URL, tc.user, tc.password, "repository:team/app:pull")
		if code != http.StatusOK {
			t.Fatalf("token for %q: %d", tc.user, code)
		}
		req := httptest.NewRequest(http.MethodGet, "/v2/team/app/tags/list", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		c, err := s.sec.Authenticate(req)
		if err != nil || c == nil {
			t.Fatalf("Authenticate %q: %v", tc.user, err)
		}
		if c.Env() != tc.env || c.Admin(t.Context()) != tc.admin {
			t.Errorf("%q: Env %q Admin %v, want %q %v", tc.user, c.Env(), c.Admin(t.Context()), tc.env, tc.admin)
		}
	}
}

// TestQuarantineAdminEndpoints: the quarantine API is for administrators;
// a forced release is audited with the administrator and the reason.
func TestQuarantineAdminEndpoints(t *testing.T) {
	t.Setenv("BULWARK_ADMIN_PASSWORD", "quarantine-admin-password")
	dir := t.TempDir()
	s := newAuthServer(t, dir)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	// A quarantined manifest, as a gated push would have left it.
	ctx := t.Context()
	cfg := digest.FromString("config")
	content := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	rec := &store.ManifestRecord{Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: content, Config: cfg, Blobs: []digest.Digest{cfg}}
	if err := s.data.Meta.PutBlob(ctx, "prod/app", cfg, 6); err != nil {
		t.Fatal(err)
	}
	if err := s.data.Meta.PutQuarantinedManifest(ctx, "prod/app", rec, []string{"v1"}, false, &store.QuarantineRecord{
		Pusher: "ci", PusherKind: "robot", Reason: "unsigned", DecisionID: "d1",
		Violations: []store.Violation{{Rule: "signed", Message: "no signature"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.sec.accounts.AddUser(ctx, "member", auth.RoleMember, "member-password-long"); err != nil {
		t.Fatal(err)
	}

	call := func(user, password, method, path string, body any) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, ts.URL+path, rd)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	release := map[string]any{"repository": "prod/app", "digest": rec.Digest.String()}
	forced := map[string]any{"repository": "prod/app", "digest": rec.Digest.String(), "force": true, "reason": "INC-42 approved by security"}
	tests := []struct {
		name, user, password, method, path string
		body                               any
		status                             int
		want                               string
	}{
		{"list without credentials", "", "", http.MethodGet, "/admin/v1/quarantine", nil, http.StatusUnauthorized, "administrator"},
		{"list as a member", "member", "member-password-long", http.MethodGet, "/admin/v1/quarantine", nil, http.StatusUnauthorized, "only administrators"},
		{"release as a member", "member", "member-password-long", http.MethodPost, "/admin/v1/quarantine/release", forced, http.StatusUnauthorized, "only administrators"},
		{"list", "admin", "quarantine-admin-password", http.MethodGet, "/admin/v1/quarantine", nil, http.StatusOK, `"pusher":"ci"`},
		{"re-decide without a policy", "admin", "quarantine-admin-password", http.MethodPost, "/admin/v1/quarantine/release", release, http.StatusConflict, "NO_POLICY"},
		{"forced release", "admin", "quarantine-admin-password", http.MethodPost, "/admin/v1/quarantine/release", forced, http.StatusOK, `"released":true`},
		{"list after release", "admin", "quarantine-admin-password", http.MethodGet, "/admin/v1/quarantine", nil, http.StatusOK, `{"quarantined":[]}`},
	}
	for _, tc := range tests {
		status, body := call(tc.user, tc.password, tc.method, tc.path, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.name, status, body, tc.status, tc.want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	events, err := audit.Query(ctx, audit.PathIn(dir), audit.Filter{Action: "release"})
	if err != nil || len(events) != 1 {
		t.Fatalf("release audit entries = %+v, %v", events, err)
	}
	if e := events[0]; e.Who != "admin" || e.Repository != "prod/app" || e.Digest != rec.Digest.String() ||
		e.Detail != "decision d1: forced by an administrator: INC-42 approved by security" {
		t.Errorf("release audit entry = %+v", e)
	}
}
