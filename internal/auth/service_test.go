package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAuth is an in-memory Authenticator. Secrets are distinctive strings
// so the tests can check they never reach a log or an event.
type fakeAuth struct {
	mu       sync.Mutex
	secrets  map[string]string // name → secret
	accounts map[string]Principal
	grants   map[string][]Grant
	refresh  map[string]string // refresh token → name
	calls    int
}

const (
	aliceSecret = "s3cret-alice-PASSWORD"
	ciSecret    = "s3cret-robot-SECRET"
	rootSecret  = "s3cret-root-PASSWORD"
)

func newFakeAuth() *fakeAuth {
	return &fakeAuth{
		secrets: map[string]string{"alice": aliceSecret, "ci": ciSecret, "root": rootSecret},
		accounts: map[string]Principal{
			"alice": {Name: "alice", Kind: KindUser, Role: RoleMember},
			"ci":    {Name: "ci", Kind: KindRobot, Env: "prod"},
			"root":  {Name: "root", Kind: KindUser, Role: RoleAdmin},
		},
		grants: map[string][]Grant{
			"alice": {{Glob: "team/*", Actions: []Action{ActionPull, ActionPush}}},
			"ci":    {{Glob: "team/app", Actions: []Action{ActionPull, ActionPush}}},
		},
		refresh: map[string]string{},
	}
}

func (f *fakeAuth) Authenticate(ctx context.Context, name, secret, remote string) (Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	want, ok := f.secrets[name]
	if !ok || !ConstantTimeEqual(want, secret) {
		return Principal{}, fmt.Errorf("account %q: %w", name, ErrBadCredentials)
	}
	return f.accounts[name], nil
}

func (f *fakeAuth) Grants(ctx context.Context, p Principal) ([]Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.grants[p.Name], nil
}

func (f *fakeAuth) IssueRefreshToken(ctx context.Context, p Principal) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := fmt.Sprintf("s3cret-refresh-%s-%d", p.Name, len(f.refresh))
	f.refresh[tok] = p.Name
	return tok, nil
}

func (f *fakeAuth) RedeemRefreshToken(ctx context.Context, tok, remote string) (Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name, ok := f.refresh[tok]
	if !ok {
		return Principal{}, fmt.Errorf("refresh token: %w", ErrBadCredentials)
	}
	return f.accounts[name], nil
}

// rotate changes an account's secret; its refresh tokens die with the old one.
func (f *fakeAuth) rotate(name, secret string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name] = secret
	for tok, n := range f.refresh {
		if n == name {
			delete(f.refresh, tok)
		}
	}
}

type serviceFixture struct {
	srv    *httptest.Server
	iss    *Issuer
	auth   *fakeAuth
	clock  *authClock
	logs   *bytes.Buffer
	events *[]Event
	mu     *sync.Mutex
}

func newServiceFixture(t *testing.T) *serviceFixture {
	t.Helper()
	iss, _, clock := newTestIssuer(t)
	fx := &serviceFixture{iss: iss, auth: newFakeAuth(), clock: clock, logs: &bytes.Buffer{}, events: &[]Event{}, mu: &sync.Mutex{}}
	logger := slog.New(slog.NewJSONHandler(lockedWriter{fx.mu, fx.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := NewService(ServiceConfig{
		Issuer:        iss,
		Authenticator: fx.auth,
		AnonymousPull: []string{"public/**"},
		Throttle:      NewThrottle(ThrottleConfig{}),
		Logger:        logger,
		OnEvent: func(ev Event) {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			*fx.events = append(*fx.events, ev)
		},
		Now: clock.Now,
	})
	fx.srv = httptest.NewServer(svc)
	t.Cleanup(fx.srv.Close)
	return fx
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func basicAuthHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

type tokenResult struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (fx *serviceFixture) do(t *testing.T, req *http.Request) tokenResult {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := tokenResult{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("status %d, body not JSON: %q", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	return r
}

func (fx *serviceFixture) get(t *testing.T, query string, header map[string]string) tokenResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fx.srv.URL+"/token?"+query, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return fx.do(t, req)
}

func (fx *serviceFixture) post(t *testing.T, form url.Values) tokenResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, fx.srv.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return fx.do(t, req)
}

// access verifies the token in a 200 answer and returns its access claim.
func (fx *serviceFixture) access(t *testing.T, r tokenResult, field string) (*Claims, []Access) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	tok, _ := r.body[field].(string)
	c, err := fx.iss.Verify(tok, fx.clock.Now())
	if err != nil {
		t.Fatalf("%s does not verify: %v", field, err)
	}
	return c, c.Access
}

var encodeQuery = url.Values.Encode

func TestServiceGet(t *testing.T) {
	type want struct {
		status int
		access []Access // for 200
		sub    string
		code   string // errors[0].code otherwise
	}
	acc := func(name string, acts ...string) []Access {
		return []Access{{Type: ScopeRepository, Name: name, Actions: acts}}
	}
	tests := []struct {
		name   string
		query  url.Values
		header map[string]string
		want   want
	}{
		{"anonymous, no scope (docker's first call)", url.Values{"service": {tokenServiceName}}, nil,
			want{status: 200, access: []Access{}}},
		{"anonymous pull of a public image", url.Values{"service": {tokenServiceName}, "scope": {"repository:public/busybox:pull"}}, nil,
			want{status: 200, access: acc("public/busybox", "pull")}},
		{"anonymous push is not granted", url.Values{"service": {tokenServiceName}, "scope": {"repository:public/busybox:pull,push"}}, nil,
			want{status: 200, access: acc("public/busybox", "pull")}},
		{"anonymous private pull: empty access, not an error", url.Values{"service": {tokenServiceName}, "scope": {"repository:team/app:pull"}}, nil,
			want{status: 200, access: []Access{}}},
		{"basic, member", url.Values{"service": {tokenServiceName}, "scope": {"repository:team/app:pull,push"}, "account": {"alice"}},
			map[string]string{"Authorization": basicAuthHeader("alice", aliceSecret)},
			want{status: 200, access: acc("team/app", "pull", "push"), sub: "alice"}},
		{"basic, robot outside its grant", url.Values{"service": {tokenServiceName}, "scope": {"repository:team/other:push"}},
			map[string]string{"Authorization": basicAuthHeader("ci", ciSecret)},
			want{status: 200, access: []Access{}, sub: "ci"}},
		{"basic, admin, catalog", url.Values{"service": {tokenServiceName}, "scope": {"registry:catalog:* repository:x/y:delete"}},
			map[string]string{"Authorization": basicAuthHeader("root", rootSecret)},
			want{status: 200, access: []Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}, acc("x/y", "delete")[0]}, sub: "root"}},
		{"bad password", url.Values{"service": {tokenServiceName}}, map[string]string{"Authorization": basicAuthHeader("alice", "wrong")},
			want{status: 401, code: "UNAUTHORIZED"}},
		{"unknown user", url.Values{"service": {tokenServiceName}}, map[string]string{"Authorization": basicAuthHeader("mallory", "x")},
			want{status: 401, code: "UNAUTHORIZED"}},
		{"wrong service", url.Values{"service": {"evil.example"}}, nil, want{status: 400, code: "INVALID_REQUEST"}},
		{"no service", url.Values{}, nil, want{status: 400, code: "INVALID_REQUEST"}},
		{"service twice", url.Values{"service": {tokenServiceName, tokenServiceName}}, nil, want{status: 400, code: "INVALID_REQUEST"}},
		{"traversal scope", url.Values{"service": {tokenServiceName}, "scope": {"repository:team/../prod:push"}},
			map[string]string{"Authorization": basicAuthHeader("alice", aliceSecret)}, want{status: 400, code: "INVALID_REQUEST"}},
		{"wildcard scope", url.Values{"service": {tokenServiceName}, "scope": {"repository:team/*:push"}},
			map[string]string{"Authorization": basicAuthHeader("alice", aliceSecret)}, want{status: 400, code: "INVALID_REQUEST"}},
		{"encoded traversal scope", url.Values{"service": {tokenServiceName}, "scope": {"repository:team/%2e%2e/prod:push"}}, nil,
			want{status: 400, code: "INVALID_REQUEST"}},
		{"account does not match credentials", url.Values{"service": {tokenServiceName}, "account": {"root"}},
			map[string]string{"Authorization": basicAuthHeader("alice", aliceSecret)}, want{status: 400, code: "INVALID_REQUEST"}},
		{"oversized Authorization", url.Values{"service": {tokenServiceName}},
			map[string]string{"Authorization": "Basic " + strings.Repeat("A", MaxAuthorizationHeader)}, want{status: 431, code: "INVALID_REQUEST"}},
		{"basic without colon", url.Values{"service": {tokenServiceName}},
			map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))}, want{status: 400, code: "INVALID_REQUEST"}},
		{"basic with bad base64", url.Values{"service": {tokenServiceName}},
			map[string]string{"Authorization": "Basic !!!not-base64"}, want{status: 400, code: "INVALID_REQUEST"}},
		{"basic with empty user", url.Values{"service": {tokenServiceName}},
			map[string]string{"Authorization": basicAuthHeader("", "x")}, want{status: 400, code: "INVALID_REQUEST"}},
		{"basic with nothing", url.Values{"service": {tokenServiceName}},
			map[string]string{"Authorization": "Basic"}, want{status: 400, code: "INVALID_REQUEST"}},
		{"bearer instead of basic", url.Values{"service": {tokenServiceName}},
			map[string]string{"Authorization": "Bearer abc"}, want{status: 400, code: "INVALID_REQUEST"}},
		{"lower-case scheme is fine", url.Values{"service": {tokenServiceName}},
			map[string]string{"Authorization": "basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+aliceSecret))},
			want{status: 200, access: []Access{}, sub: "alice"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newServiceFixture(t)
			r := fx.get(t, encodeQuery(tc.query), tc.header)
			if r.status != tc.want.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want.status, r.raw)
			}
			if tc.want.status != 200 {
				errs, _ := r.body["errors"].([]any)
				if len(errs) != 1 || errs[0].(map[string]any)["code"] != tc.want.code {
					t.Fatalf("errors %v, want code %s", r.body["errors"], tc.want.code)
				}
				if tc.want.status == 401 && r.header.Get("WWW-Authenticate") != `Basic realm="bulwark"` {
					t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
				return
			}
			if r.body["token"] != r.body["access_token"] {
				t.Fatal("token and access_token differ")
			}
			if r.body["expires_in"] != float64(DefaultTokenTTL/time.Second) {
				t.Fatalf("expires_in %v", r.body["expires_in"])
			}
			if r.body["issued_at"] != fx.clock.Now().Format(time.RFC3339) {
				t.Fatalf("issued_at %v", r.body["issued_at"])
			}
			if _, ok := r.body["refresh_token"]; ok {
				t.Fatal("refresh_token without offline_token")
			}
			c, access := fx.access(t, r, "token")
			if c.Subject != tc.want.sub {
				t.Fatalf("sub %q, want %q", c.Subject, tc.want.sub)
			}
			if fmt.Sprint(access) != fmt.Sprint(tc.want.access) {
				t.Fatalf("access %+v, want %+v", access, tc.want.access)
			}
		})
	}
}

func TestServiceGetOfflineToken(t *testing.T) {
	fx := newServiceFixture(t)
	// docker login: GET with basic auth and offline_token=true.
	r := fx.get(t, encodeQuery(url.Values{"service": {tokenServiceName}, "offline_token": {"true"}, "client_id": {"docker"}}),
		map[string]string{"Authorization": basicAuthHeader("alice", aliceSecret)})
	rt, _ := r.body["refresh_token"].(string)
	if r.status != 200 || rt == "" {
		t.Fatalf("status %d, refresh_token %q", r.status, rt)
	}
	// Anonymous callers get no refresh token.
	r = fx.get(t, encodeQuery(url.Values{"service": {tokenServiceName}, "offline_token": {"true"}}), nil)
	if _, ok := r.body["refresh_token"]; r.status != 200 || ok {
		t.Fatalf("anonymous offline_token: %d %s", r.status, r.raw)
	}
}

func TestServicePost(t *testing.T) {
	fx := newServiceFixture(t)
	// docker login through OAuth2: password grant with offline access.
	r := fx.post(t, url.Values{
		"grant_type": {"password"}, "username": {"alice"}, "password": {aliceSecret},
		"client_id": {"docker"}, "access_type": {"offline"}, "service": {tokenServiceName},
		"scope": {"repository:team/app:pull,push repository:prod/x:pull"},
	})
	c, access := fx.access(t, r, "access_token")
	if c.Subject != "alice" || fmt.Sprint(access) != fmt.Sprint([]Access{{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}}) {
		t.Fatalf("claims %+v", c)
	}
	if _, ok := r.body["token"]; ok {
		t.Fatal("POST answer has GET's token field")
	}
	if r.body["scope"] != "repository:team/app:pull,push" || r.body["expires_in"] != float64(300) {
		t.Fatalf("body %v", r.body)
	}
	rt, _ := r.body["refresh_token"].(string)
	if rt == "" {
		t.Fatal("no refresh_token with access_type=offline")
	}

	// Later pushes: refresh_token grant.
	fx.clock.Add(time.Hour)
	r = fx.post(t, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"docker"},
		"service": {tokenServiceName}, "scope": {"repository:team/web:push"},
	})
	c, access = fx.access(t, r, "access_token")
	if c.Subject != "alice" || len(access) != 1 || access[0].Name != "team/web" || r.body["refresh_token"] != rt {
		t.Fatalf("refresh grant: %+v %v", c, r.body)
	}

	// Without access_type=offline there is no refresh token.
	r = fx.post(t, url.Values{"grant_type": {"password"}, "username": {"ci"}, "password": {ciSecret},
		"client_id": {"ci"}, "service": {tokenServiceName}})
	if _, ok := r.body["refresh_token"]; r.status != 200 || ok {
		t.Fatalf("online password grant: %d %s", r.status, r.raw)
	}

	// A rotated secret kills the password and the refresh tokens.
	fx.auth.rotate("alice", "new-password")
	for _, form := range []url.Values{
		{"grant_type": {"password"}, "username": {"alice"}, "password": {aliceSecret}, "client_id": {"docker"}, "service": {tokenServiceName}},
		{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"docker"}, "service": {tokenServiceName}},
	} {
		r = fx.post(t, form)
		if r.status != 400 || r.body["error"] != "invalid_grant" {
			t.Fatalf("%s after rotation: %d %s", form.Get("grant_type"), r.status, r.raw)
		}
	}
}

func TestServicePostErrors(t *testing.T) {
	base := func(mod func(url.Values)) url.Values {
		v := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {aliceSecret},
			"client_id": {"docker"}, "service": {tokenServiceName}}
		mod(v)
		return v
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"bad password", base(func(v url.Values) { v.Set("password", "nope") }), 400, "invalid_grant"},
		{"unknown user", base(func(v url.Values) { v.Set("username", "mallory") }), 400, "invalid_grant"},
		{"bad refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"forged"}, "client_id": {"x"}, "service": {tokenServiceName}}, 400, "invalid_grant"},
		{"unsupported grant", base(func(v url.Values) { v.Set("grant_type", "client_credentials") }), 400, "unsupported_grant_type"},
		{"no grant", base(func(v url.Values) { v.Del("grant_type") }), 400, "invalid_request"},
		{"grant twice", base(func(v url.Values) { v.Add("grant_type", "refresh_token") }), 400, "invalid_request"},
		{"no client_id", base(func(v url.Values) { v.Del("client_id") }), 400, "invalid_request"},
		{"no password", base(func(v url.Values) { v.Del("password") }), 400, "invalid_request"},
		{"no refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"x"}, "service": {tokenServiceName}}, 400, "invalid_request"},
		{"wrong service", base(func(v url.Values) { v.Set("service", "other") }), 400, "invalid_request"},
		{"bad scope", base(func(v url.Values) { v.Set("scope", "repository:a//b:pull") }), 400, "invalid_scope"},
		{"10 KB scope", base(func(v url.Values) { v.Set("scope", "repository:"+strings.Repeat("a/", 5000)+"a:pull") }), 400, "invalid_scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newServiceFixture(t)
			r := fx.post(t, tc.form)
			if r.status != tc.status || r.body["error"] != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
		})
	}
}

func TestServiceRequestLimits(t *testing.T) {
	fx := newServiceFixture(t)
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {aliceSecret},
		"client_id": {"docker"}, "service": {tokenServiceName}}

	big := form.Encode() + "&pad=" + strings.Repeat("x", MaxFormBody)
	req, _ := http.NewRequest(http.MethodPost, fx.srv.URL+"/token", strings.NewReader(big))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := fx.do(t, req); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("65 KB form: %d %s", r.status, r.raw)
	}

	req, _ = http.NewRequest(http.MethodPost, fx.srv.URL+"/token", strings.NewReader(`{"grant_type":"password"}`))
	req.Header.Set("Content-Type", "application/json")
	if r := fx.do(t, req); r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("JSON body: %d %s", r.status, r.raw)
	}

	req, _ = http.NewRequest(http.MethodPost, fx.srv.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic "+strings.Repeat("A", MaxAuthorizationHeader))
	if r := fx.do(t, req); r.status != http.StatusRequestHeaderFieldsTooLarge || r.body["error"] != "invalid_request" {
		t.Fatalf("oversized header on POST: %d %s", r.status, r.raw)
	}

	req, _ = http.NewRequest(http.MethodGet, fx.srv.URL+"/token?service="+url.QueryEscape(tokenServiceName), nil)
	req.Header.Add("Authorization", basicAuthHeader("alice", aliceSecret))
	req.Header.Add("Authorization", basicAuthHeader("root", rootSecret))
	if r := fx.do(t, req); r.status != http.StatusBadRequest {
		t.Fatalf("two Authorization headers: %d %s", r.status, r.raw)
	}

	req, _ = http.NewRequest(http.MethodPut, fx.srv.URL+"/token", nil)
	if r := fx.do(t, req); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST" {
		t.Fatalf("PUT: %d %v", r.status, r.header)
	}
}

func TestServiceThrottle(t *testing.T) {
	fx := newServiceFixture(t)
	query := encodeQuery(url.Values{"service": {tokenServiceName}})
	for i := range DefaultMaxFailures {
		if r := fx.get(t, query, map[string]string{"Authorization": basicAuthHeader("alice", fmt.Sprint("guess", i))}); r.status != 401 {
			t.Fatalf("guess %d: %d", i, r.status)
		}
	}
	calls := fx.auth.calls
	// Now even the right password is refused without being checked.
	r := fx.get(t, query, map[string]string{"Authorization": basicAuthHeader("alice", aliceSecret)})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
		t.Fatalf("throttled GET: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.raw)
	}
	if errs, _ := r.body["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["code"] != "TOOMANYREQUESTS" {
		t.Fatalf("body %s", r.raw)
	}
	if fx.auth.calls != calls {
		t.Fatal("credentials were checked while throttled")
	}
	// The POST form is throttled too (same source).
	r = fx.post(t, url.Values{"grant_type": {"password"}, "username": {"root"}, "password": {"x"}, "client_id": {"d"}, "service": {tokenServiceName}})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("throttled POST: %d %s", r.status, r.raw)
	}
	// Anonymous pulls are not logins and stay available.
	if r := fx.get(t, query, nil); r.status != 200 {
		t.Fatalf("anonymous while throttled: %d", r.status)
	}
	// After the wait, the right password works.
	fx.clock.Add(time.Second)
	if r := fx.get(t, query, map[string]string{"Authorization": basicAuthHeader("alice", aliceSecret)}); r.status != 200 {
		t.Fatalf("after the wait: %d %s", r.status, r.raw)
	}

	fx.mu.Lock()
	defer fx.mu.Unlock()
	var throttled int
	for _, ev := range *fx.events {
		if ev.Outcome == OutcomeThrottled {
			throttled++
		}
	}
	if throttled != 2 {
		t.Fatalf("%d throttled events, want 2", throttled)
	}
}

// TestServiceEventsAndLogs: every login and token is reported, and no
// secret ever reaches the log or an event.
func TestServiceEventsAndLogs(t *testing.T) {
	fx := newServiceFixture(t)
	fx.get(t, encodeQuery(url.Values{"service": {tokenServiceName}, "scope": {"repository:team/app:push"}, "offline_token": {"true"}}),
		map[string]string{"Authorization": basicAuthHeader("alice", aliceSecret)})
	fx.get(t, encodeQuery(url.Values{"service": {tokenServiceName}}), map[string]string{"Authorization": basicAuthHeader("ci", "s3cret-wrong-guess")})
	r := fx.post(t, url.Values{"grant_type": {"password"}, "username": {"root"}, "password": {rootSecret},
		"client_id": {"docker"}, "access_type": {"offline"}, "service": {tokenServiceName}})
	rt, _ := r.body["refresh_token"].(string)
	fx.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"docker"}, "service": {tokenServiceName}})
	fx.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"s3cret-forged-refresh"}, "client_id": {"docker"}, "service": {tokenServiceName}})
	fx.get(t, encodeQuery(url.Values{"service": {tokenServiceName}, "scope": {"repository:team/app:push"}}), nil)

	fx.mu.Lock()
	defer fx.mu.Unlock()
	var got []string
	for _, ev := range *fx.events {
		got = append(got, fmt.Sprintf("%s/%s/%s/%s", ev.Action, ev.Outcome, ev.Who, ev.Kind))
		if ev.Remote != "127.0.0.1" || ev.Time.IsZero() {
			t.Errorf("event %+v", ev)
		}
	}
	want := []string{
		"login/success/alice/user", "token/success/alice/user",
		"login/failure/ci/",
		"login/success/root/user", "token/success/root/user",
		"login/success/root/user", "token/success/root/user",
		"login/failure//",
		"token/denied//anonymous",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	last := (*fx.events)[len(*fx.events)-1]
	if len(last.Scopes) != 1 || last.Scopes[0] != "repository:team/app:push" || len(last.Granted) != 0 {
		t.Fatalf("anonymous denial event %+v", last)
	}

	dump := fx.logs.String() + fmt.Sprintf("%+v", *fx.events)
	for _, secret := range []string{aliceSecret, rootSecret, ciSecret, "s3cret-wrong-guess", "s3cret-forged-refresh", rt,
		base64.StdEncoding.EncodeToString([]byte("alice:" + aliceSecret))} {
		if strings.Contains(dump, secret) {
			t.Errorf("secret %q appears in logs or events", secret)
		}
	}
	if !strings.Contains(fx.logs.String(), "token request refused") {
		t.Error("refusals are not logged at all; the secret check above proves nothing")
	}
}

// errAuth fails with a store error, which must be a 500, not a 401.
type errAuth struct{ fakeAuth }

func (e *errAuth) Authenticate(context.Context, string, string, string) (Principal, error) {
	return Principal{}, errors.New("database is locked")
}

func TestServiceStoreError(t *testing.T) {
	iss, _, _ := newTestIssuer(t)
	svc := NewService(ServiceConfig{Issuer: iss, Authenticator: &errAuth{}, Logger: discardLogger()})
	req := httptest.NewRequest(http.MethodGet, "/token?service="+url.QueryEscape(tokenServiceName), nil)
	req.Header.Set("Authorization", basicAuthHeader("alice", "x"))
	w := httptest.NewRecorder()
	svc.ServeHTTP(w, req)
	if w.Code != 500 || strings.Contains(w.Body.String(), "database") {
		t.Fatalf("store error: %d %s", w.Code, w.Body)
	}
}

func TestBearerChallenge(t *testing.T) {
	sc, _ := ParseScopes([]string{"repository:a:pull", "repository:b:pull,push"})
	tests := []struct {
		realm, service string
		scopes         []Scope
		code, want     string
	}{
		{"https://r.test/token", "r.test", nil, "", `Bearer realm="https://r.test/token",service="r.test"`},
		{"https://r.test/token", "r.test", sc, "insufficient_scope",
			`Bearer realm="https://r.test/token",service="r.test",scope="repository:a:pull repository:b:pull,push",error="insufficient_scope"`},
		{`https://r.test/"x\`, "r", nil, "", `Bearer realm="https://r.test/\"x\\",service="r"`},
	}
	for _, tc := range tests {
		if got := BearerChallenge(tc.realm, tc.service, tc.scopes, tc.code); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
