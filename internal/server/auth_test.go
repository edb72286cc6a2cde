package server

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/config"
)

func newAuthServer(t *testing.T, dataDir string) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.Data = dataDir
	s, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func token(t *testing.T, base, user, password, scope string) (string, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/token?"+url.Values{"service": {"bulwark"}, "scope": {scope}}.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tr)
	return tr.Token, resp.StatusCode
}

// TestBootstrapAdmin: the first start on an empty data directory creates
// "admin" with a generated one-time password that works; later starts
// create nothing and print nothing.
func TestBootstrapAdmin(t *testing.T) {
	t.Setenv("BULWARK_ADMIN_PASSWORD", "")
	dir := t.TempDir()
	s := newAuthServer(t, dir)
	boot := s.Bootstrap
	if !boot.Created || len(boot.Password) < 16 {
		t.Fatalf("first start: %+v, want a created admin with a generated password", boot)
	}
	ts := httptest.NewServer(s.Handler())
	if _, code := token(t, ts.URL, "admin", boot.Password, "repository:a/b:push"); code != http.StatusOK {
		t.Fatalf("login with the generated password: %d", code)
	}
	if _, code := token(t, ts.URL, "admin", boot.Password+"x", ""); code != http.StatusUnauthorized {
		t.Fatalf("login with a wrong password: %d", code)
	}
	ts.Close()
	s.Close()

	again := newAuthServer(t, dir)
	defer again.Close()
	if again.Bootstrap.Created || again.Bootstrap.Password != "" {
		t.Fatalf("second start: %+v, want nothing created", again.Bootstrap)
	}
}

// TestRegistryRefusesHostileCredentials sends forged and malformed
// credentials to the registry itself: each is a 401 with a Bearer
// challenge, never a 5xx and never access.
func TestRegistryRefusesHostileCredentials(t *testing.T) {
	t.Setenv("BULWARK_ADMIN_PASSWORD", "hostile-admin-password")
	s := newAuthServer(t, t.TempDir())
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	good, code := token(t, ts.URL, "admin", "hostile-admin-password", "repository:team/app:pull")
	if code != http.StatusOK || good == "" {
		t.Fatalf("admin token: %d", code)
	}
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	otherRepo := strings.Replace(string(payload), "team/app", "prod/app", 1)

	tests := []struct {
		name, authorization, path string
	}{
		{"alg none", "Bearer " + b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", "/v2/team/app/tags/list"},
		{"HS256 header on an ES256 signature", "Bearer " + b64([]byte(strings.Replace(string(header), "ES256", "HS256", 1))) + "." + parts[1] + "." + parts[2], "/v2/team/app/tags/list"},
		{"payload edited to another repository", "Bearer " + parts[0] + "." + b64([]byte(otherRepo)) + "." + parts[2], "/v2/prod/app/tags/list"},
		{"token for team/app used on prod/app", "Bearer " + good, "/v2/prod/app/tags/list"},
		{"truncated signature", "Bearer " + good[:len(good)-10], "/v2/team/app/tags/list"},
		{"basic credentials instead of a token", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:hostile-admin-password")), "/v2/team/app/tags/list"},
		{"malformed bearer", "Bearer", "/v2/team/app/tags/list"},
		{"oversized header", "Bearer " + strings.Repeat("A", 100<<10), "/v2/team/app/tags/list"},
		{"unknown scheme", `Digest username="admin", realm="x"`, "/v2/"},
		{"junk after bearer", "Bearer a.b.c!!", "/v2/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ts.URL+tt.path, nil)
			req.Header["Authorization"] = []string{tt.authorization}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer realm=") {
				t.Fatalf("status %d, challenge %q; want 401 with a Bearer challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	// The genuine token still works where it applies (the repository does
	// not exist yet, so: 404 NAME_UNKNOWN, not 401).
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v2/team/app/tags/list", nil)
	req.Header.Set("Authorization", "Bearer "+good)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("genuine token: %d, want 404 for the empty repository", resp.StatusCode)
	}
}
