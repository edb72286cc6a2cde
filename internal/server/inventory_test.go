package server

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/inventory"
)

const invDigest = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func invEvent(kind inventory.Kind, host, container, image, env string) inventory.Event {
	e := inventory.Event{Kind: kind, Time: time.Now().UTC(), Host: host, Container: container, Image: image,
		Digest: invDigest, Environment: env, Decision: inventory.Decision{Verification: inventory.VerifiedByPolicy}}
	if kind == inventory.KindStop {
		e.Reason = "stopped"
	}
	return e
}

func basic(user, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+secret))
}

func invClient(t *testing.T, url, authz string) *inventory.Client {
	t.Helper()
	c, err := inventory.NewClient(url, inventory.ClientOptions{Authorization: authz})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func apiStatus(err error) int {
	var ae *inventory.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	if err == nil {
		return 0
	}
	return -1
}

// TestInventoryWithAccounts: the inventory API of a server with
// authentication takes robot secrets and user passwords (Basic, what
// docker login stores) and tokens from /token; a reporter needs pull on
// the image's repository and, when bound to an environment, reports only
// for it; readers see what they may pull; events are audited and kept
// across restarts.
func TestInventoryWithAccounts(t *testing.T) {
	const adminPassword = "inventory-admin-password"
	t.Setenv("BULWARK_ADMIN_PASSWORD", adminPassword)
	dir := t.TempDir()
	s := newAuthServer(t, dir)
	ts := httptest.NewServer(s.Handler())
	ctx := t.Context()
	pull := []auth.Action{auth.ActionPull}
	web1, err := s.sec.accounts.CreateRobot(ctx, "web1", []auth.Grant{{Glob: "prod/**", Actions: pull}}, time.Time{}, "prod")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.sec.accounts.CreateRobot(ctx, "other", []auth.Grant{{Glob: "team/*", Actions: pull}}, time.Time{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sec.accounts.AddUser(ctx, "member", auth.RoleMember, "member-password-long"); err != nil {
		t.Fatal(err)
	}
	tok, code := token(t, ts.URL, "web1", web1, "repository:prod/app:pull")
	if code != http.StatusOK {
		t.Fatalf("token: %d", code)
	}

	tests := []struct {
		name   string
		authz  string
		event  inventory.Event
		status int // 0: created
		msg    string
	}{
		{"robot with pull, Basic", basic("web1", web1), invEvent(inventory.KindStart, "h1", "app-1", "r.example/prod/app:v1", "prod"), 0, ""},
		{"robot with pull, bearer token", "Bearer " + tok, invEvent(inventory.KindStart, "h1", "app-2", "r.example/prod/app:v1", "prod"), 0, ""},
		{"wrong secret", basic("web1", web1+"x"), invEvent(inventory.KindStart, "h1", "app-3", "r.example/prod/app:v1", "prod"), http.StatusUnauthorized, "invalid credentials"},
		{"forged token", "Bearer eyJhbGciOiJub25lIn0.e30.", invEvent(inventory.KindStart, "h1", "app-3", "r.example/prod/app:v1", "prod"), http.StatusUnauthorized, ""},
		{"no credentials", "", invEvent(inventory.KindStart, "h1", "app-3", "r.example/prod/app:v1", "prod"), http.StatusUnauthorized, "authentication required"},
		{"robot without a grant on the repository", basic("other", other), invEvent(inventory.KindStart, "h2", "app-4", "r.example/prod/app:v1", ""), http.StatusForbidden, "may not pull prod/app"},
		{"robot bound to prod reports for dev", basic("web1", web1), invEvent(inventory.KindStart, "h1", "app-5", "r.example/prod/app:v1", "dev"), http.StatusForbidden, `bound to environment "prod"`},
		{"another account stops web1's container", basic("other", other), invEvent(inventory.KindStop, "h1", "app-1", "r.example/team/x:v1", ""), http.StatusForbidden, "runs under web1's report"},
		{"member without grants", basic("member", "member-password-long"), invEvent(inventory.KindStart, "h3", "app-6", "r.example/prod/app:v1", ""), http.StatusForbidden, "may not pull"},
		{"administrator stops it", basic("admin", adminPassword), invEvent(inventory.KindStop, "h1", "app-2", "r.example/prod/app:v1", "prod"), 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := invClient(t, ts.URL, tt.authz).Report(ctx, tt.event)
			if got := apiStatus(err); got != tt.status {
				t.Fatalf("Report: %v, want status %d", err, tt.status)
			}
			if tt.msg != "" && !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not say %q", err, tt.msg)
			}
		})
	}

	running := func(authz string) []string {
		t.Helper()
		recs, err := invClient(t, ts.URL, authz).Running(ctx, inventory.Query{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.Host+"/"+r.Container+"@"+r.Reporter)
		}
		return out
	}
	if got := running(basic("admin", adminPassword)); strings.Join(got, " ") != "h1/app-1@web1" {
		t.Fatalf("admin sees %v, want only h1/app-1 by web1", got)
	}
	if got := running(basic("other", other)); len(got) != 0 {
		t.Fatalf("a robot without pull on prod/* sees %v", got)
	}

	// Audited, with the reporter and the host.
	if err := s.sec.audit.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := audit.Query(ctx, s.sec.audit.Path(), audit.Filter{Action: auditInventoryStart})
	if err != nil || len(evs) != 2 || evs[0].Who != "web1" || !strings.Contains(evs[0].Detail, "host h1 container app-1") {
		t.Fatalf("audited starts: %+v, %v", evs, err)
	}

	ts.Close()
	s.Close()
	again := newAuthServer(t, dir)
	defer again.Close()
	ts = httptest.NewServer(again.Handler())
	defer ts.Close()
	if got := running(basic("admin", adminPassword)); len(got) != 1 {
		t.Fatalf("after restart: %v", got)
	}
}

// TestInventoryWithoutAccounts: like the admin endpoints, a server without
// authentication serves the inventory to loopback clients only.
func TestInventoryWithoutAccounts(t *testing.T) {
	s, _ := newTestServer(t)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ctx := t.Context()
	if _, err := invClient(t, ts.URL, "").Report(ctx, invEvent(inventory.KindStart, "h1", "c1", "127.0.0.1:5000/team/app:v1", "")); err != nil {
		t.Fatalf("loopback report: %v", err)
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req := httptest.NewRequestWithContext(context.Background(), method, inventory.RunningPath, strings.NewReader("{}"))
		if method == http.MethodPost {
			req.URL.Path = inventory.EventsPath
		}
		req.RemoteAddr = "192.0.2.10:40000"
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "loopback") {
			t.Errorf("%s from a remote client: %d %s, want 403", method, rec.Code, rec.Body)
		}
	}
}
