package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

type adminChange struct{ action, target, detail string }

func newAdminServer(t *testing.T) (*httptest.Server, *Accounts, *acctClock, func() []adminChange) {
	t.Helper()
	clock := newAcctClock()
	a := openTestAccounts(t, "", clock)
	var (
		mu      sync.Mutex
		changes []adminChange
	)
	h := AdminHandler(a, AdminOptions{
		Now: clock.Now,
		OnChange: func(_ context.Context, action, target, detail string) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, adminChange{action, target, detail})
		},
	})
	// Mounted the way the server mounts it.
	mux := http.NewServeMux()
	mux.Handle("/admin/v1/", http.StripPrefix("/admin/v1", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, a, clock, func() []adminChange {
		mu.Lock()
		defer mu.Unlock()
		out := changes
		changes = nil
		return out
	}
}

func adminCall(t *testing.T, srv *httptest.Server, method, path, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+"/admin/v1"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s: error answered as %q", method, path, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, string(b)
}

func TestAdminHandlerFlow(t *testing.T) {
	srv, a, clock, changes := newAdminServer(t)
	ctx := context.Background()
	steps := []struct {
		name, method, path, body string
		status                   int
		contains                 string // in the answer
		change                   string // "action target detail" recorded, or ""
	}{
		{"add admin", "POST", "/users", `{"name":"root","role":"admin","password":"correct horse battery"}`, 201, `"name":"root","role":"admin"`, "user.add root role admin"},
		{"add member", "POST", "/users", `{"name":"alice","role":"member","password":"correct horse battery"}`, 201, `"grants":[]`, "user.add alice role member"},
		{"duplicate", "POST", "/users", `{"name":"alice","role":"member","password":"correct horse battery"}`, 409, `"code":"EXISTS"`, ""},
		{"bad name", "POST", "/users", `{"name":"Al ice","role":"member","password":"correct horse battery"}`, 400, `"code":"INVALID"`, ""},
		{"short password", "POST", "/users", `{"name":"bob","role":"member","password":"short"}`, 400, `password too weak`, ""},
		{"unknown field", "POST", "/users", `{"name":"bob","role":"member","password":"correct horse battery","admin":true}`, 400, `unknown field`, ""},
		{"two values", "POST", "/users", `{"name":"bob","role":"member","password":"correct horse battery"}{}`, 400, `more than one`, ""},
		{"not json", "POST", "/users", `name=bob`, 400, `"code":"INVALID"`, ""},
		{"list users", "GET", "/users", "", 200, `"name":"alice"`, ""},
		{"get user", "GET", "/users/alice", "", 200, `"role":"member"`, ""},
		{"get unknown", "GET", "/users/nobody", "", 404, `"code":"NOT_FOUND"`, ""},
		{"passwd", "POST", "/users/alice/password", `{"password":"another long password"}`, 204, "", "user.passwd alice "},
		{"passwd unknown", "POST", "/users/nobody/password", `{"password":"another long password"}`, 404, "", ""},
		{"grant", "POST", "/grants", `{"user":"alice","glob":"team/*","actions":["push","pull"]}`, 200, `"grants":[{"glob":"team/*","actions":["pull","push"]}]`, "grant alice team/*:pull,push"},
		{"grant merge", "POST", "/grants", `{"user":"alice","glob":"team/*","actions":["delete"]}`, 200, `"actions":["pull","push","delete"]`, "grant alice team/*:delete"},
		{"grant bad glob", "POST", "/grants", `{"user":"alice","glob":"team/../x","actions":["pull"]}`, 400, `invalid grant`, ""},
		{"grant bad action", "POST", "/grants", `{"user":"alice","glob":"team/*","actions":["own"]}`, 400, `unknown action`, ""},
		{"grant unknown user", "POST", "/grants", `{"user":"nobody","glob":"team/*","actions":["pull"]}`, 404, ``, ""},
		{"grants of alice", "GET", "/grants?user=alice", "", 200, `[{"name":"alice","kind":"user","role":"member","grants":[{"glob":"team/*","actions":["pull","push","delete"]}]}]`, ""},
		{"create robot", "POST", "/robots", `{"name":"ci","grants":[{"glob":"team/*","actions":["pull","push"]}],"expires_in_seconds":3600,"env":"prod"}`, 201, `"secret":"bwk_`, "robot.create ci grants team/*:pull,push, expires 2030-01-02T04:04:05Z, env prod"},
		{"create robot no grants", "POST", "/robots", `{"name":"ci2","grants":[]}`, 400, `at least one grant`, ""},
		{"create robot negative expiry", "POST", "/robots", `{"name":"ci2","grants":[{"glob":"a","actions":["pull"]}],"expires_in_seconds":-1}`, 400, ``, ""},
		{"create robot taken", "POST", "/robots", `{"name":"alice","grants":[{"glob":"a","actions":["pull"]}]}`, 409, ``, ""},
		{"grant to robot", "POST", "/grants", `{"user":"ci","glob":"x","actions":["pull"]}`, 400, `fixed when it is created`, ""},
		{"list robots has no secret", "GET", "/robots", "", 200, `"expires":"2030-01-02T04:04:05Z"`, ""},
		{"get robot", "GET", "/robots/ci", "", 200, `"env":"prod"`, ""},
		{"rotate", "POST", "/robots/ci/rotate", "", 200, `"secret":"bwk_`, "robot.rotate ci grants team/*:pull,push, expires 2030-01-02T04:04:05Z, env prod"},
		{"rotate unknown", "POST", "/robots/nobody/rotate", "", 404, ``, ""},
		{"all grants", "GET", "/grants", "", 200, `{"name":"ci","kind":"robot","grants":[{"glob":"team/*","actions":["pull","push"]}]}`, ""},
		{"revoke by query", "DELETE", "/grants?user=alice&glob=" + url.QueryEscape("team/*"), "", 204, ``, "revoke alice team/*"},
		{"revoke again", "DELETE", "/grants?user=alice&glob=" + url.QueryEscape("team/*"), "", 404, `"code":"NO_GRANT"`, ""},
		{"revoke missing glob", "DELETE", "/grants?user=alice", "", 400, ``, ""},
		{"grant again", "POST", "/grants", `{"user":"alice","glob":"a/**","actions":["pull"]}`, 200, ``, "grant alice a/**:pull"},
		{"revoke by body", "DELETE", "/grants", `{"user":"alice","glob":"a/**"}`, 204, ``, "revoke alice a/**"},
		{"rm robot", "DELETE", "/robots/ci", "", 204, ``, "robot.rm ci "},
		{"rm robot again", "DELETE", "/robots/ci", "", 404, ``, ""},
		{"rm user", "DELETE", "/users/alice", "", 204, ``, "user.rm alice "},
		{"rm last admin", "DELETE", "/users/root", "", 409, `"code":"LAST_ADMIN"`, ""},
		{"wrong method", "PUT", "/users", "", 405, ``, ""},
		{"unknown path", "GET", "/nothing", "", 404, ``, ""},
	}
	for _, s := range steps {
		status, body := adminCall(t, srv, s.method, s.path, s.body)
		if status != s.status || !strings.Contains(body, s.contains) {
			t.Fatalf("%s: %s %s = %d %s; want %d containing %s", s.name, s.method, s.path, status, body, s.status, s.contains)
		}
		if s.status >= 500 || strings.Contains(body, "correct horse") || strings.Contains(body, "another long") {
			t.Fatalf("%s: answer %s", s.name, body)
		}
		got := changes()
		switch {
		case s.change == "" && len(got) != 0:
			t.Fatalf("%s: unexpected audit %v", s.name, got)
		case s.change != "" && (len(got) != 1 || fmt.Sprintf("%s %s %s", got[0].action, got[0].target, got[0].detail) != s.change):
			t.Fatalf("%s: audit %v, want %q", s.name, got, s.change)
		}
		if s.name == "list robots has no secret" && strings.Contains(body, "secret") {
			t.Fatalf("robot list leaks a secret: %s", body)
		}
		if s.name == "passwd" {
			if _, err := a.Authenticate(ctx, "alice", "another long password", ""); err != nil {
				t.Fatalf("password set over the API does not work: %v", err)
			}
		}
	}
	_ = clock
}

func TestAdminHandlerRobotSecretWorks(t *testing.T) {
	srv, a, clock, _ := newAdminServer(t)
	ctx := context.Background()
	status, body := adminCall(t, srv, "POST", "/robots",
		`{"name":"ci","grants":[{"glob":"team/*","actions":["pull"]}],"expires_in_seconds":60}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	var rb AdminRobot
	if err := json.Unmarshal([]byte(body), &rb); err != nil {
		t.Fatal(err)
	}
	if rb.Expires == nil || !rb.Expires.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("expires = %v", rb.Expires)
	}
	if _, err := a.Authenticate(ctx, rb.Name, rb.Secret, ""); err != nil {
		t.Fatalf("secret from the API does not authenticate: %v", err)
	}
	status, body = adminCall(t, srv, "POST", "/robots/ci/rotate", "")
	var rotated AdminRobot
	if status != 200 || json.Unmarshal([]byte(body), &rotated) != nil {
		t.Fatalf("rotate: %d %s", status, body)
	}
	if _, err := a.Authenticate(ctx, "ci", rb.Secret, ""); err == nil {
		t.Fatal("old secret works after rotation over the API")
	}
	if _, err := a.Authenticate(ctx, "ci", rotated.Secret, ""); err != nil {
		t.Fatalf("rotated secret: %v", err)
	}
}

func TestAdminHandlerBodyLimit(t *testing.T) {
	srv, _, _, _ := newAdminServer(t)
	big := `{"name":"x","role":"member","password":"` + strings.Repeat("a", maxAdminBody) + `"}`
	if status, _ := adminCall(t, srv, "POST", "/users", big); status != http.StatusBadRequest {
		t.Fatalf("oversized body: %d", status)
	}
}
