package inventory

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
	"time"
)

// testCaller is an account of the test authenticator: it may pull the
// repositories matching its globs (path.Match), or everything as admin.
type testCaller struct {
	name, kind, env string
	admin           bool
	pull            []string
}

func (c *testCaller) Name() string               { return c.name }
func (c *testCaller) Kind() string               { return c.kind }
func (c *testCaller) Env() string                { return c.env }
func (c *testCaller) Admin(context.Context) bool { return c.admin }
func (c *testCaller) MayPull(_ context.Context, repo string) bool {
	for _, g := range c.pull {
		if ok, _ := path.Match(g, repo); ok {
			return true
		}
	}
	return false
}

// testAuthn knows accounts by their Basic user name; the password must be
// "pw".
type testAuthn map[string]*testCaller

func (a testAuthn) Authenticate(r *http.Request) (Caller, error) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return nil, nil
	}
	c, known := a[user]
	if !known || pass != "pw" {
		return nil, errors.New("invalid credentials")
	}
	return c, nil
}

func (a testAuthn) Challenge(*http.Request) string { return `Basic realm="test"` }

var testAccounts = testAuthn{
	"web1":   {name: "web1", kind: "robot", env: "prod", pull: []string{"prod/*"}},
	"web2":   {name: "web2", kind: "robot", env: "prod", pull: []string{"prod/*"}},
	"dev1":   {name: "dev1", kind: "robot", env: "dev", pull: []string{"dev/*"}},
	"nopull": {name: "nopull", kind: "robot", pull: []string{"other/*"}},
	"alice":  {name: "alice", kind: "user", pull: []string{"prod/app"}},
	"admin":  {name: "admin", kind: "user", admin: true},
}

type testAPI struct {
	srv   *httptest.Server
	store *Store
	seen  []Record
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	a := &testAPI{store: openTestStore(t)}
	a.srv = httptest.NewServer(Handler(a.store, testAccounts, Options{
		Now:      func() time.Time { return testNow },
		OnRecord: func(_ context.Context, r Record) { a.seen = append(a.seen, r) },
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *testAPI) client(t *testing.T, user string) *Client {
	t.Helper()
	authz := ""
	if u, p, ok := strings.Cut(user, ":"); ok {
		authz = "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))
	} else if user != "" {
		authz = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":pw"))
	}
	c, err := NewClient(a.srv.URL, ClientOptions{Authorization: authz})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// post sends a raw body as user and returns the status and body.
func (a *testAPI) post(t *testing.T, user, contentType string, body io.Reader) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL+EventsPath, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if user != "" {
		req.SetBasicAuth(user, "pw")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func status(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	if err == nil {
		return http.StatusCreated
	}
	return -1
}

func TestHandlerReport(t *testing.T) {
	a := newTestAPI(t)
	ctx := t.Context()
	ev := validEvent()

	rec, err := a.client(t, "web1").Report(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	// What the server owns comes from the server.
	if rec.Reporter != "web1" || rec.ReporterKind != "robot" || !rec.Received.Equal(testNow) || rec.Remote != "127.0.0.1" ||
		rec.Repository != "prod/app" || rec.Seq == 0 || rec.Host != ev.Host {
		t.Fatalf("stored %+v", rec)
	}
	if len(a.seen) != 1 || a.seen[0].Seq != rec.Seq {
		t.Fatalf("OnRecord saw %v", a.seen)
	}

	other := func(change func(e *Event)) Event {
		e := validEvent()
		change(&e)
		return e
	}
	tests := []struct {
		name   string
		user   string
		event  Event
		status int
		msg    string
	}{
		{"anonymous", "", ev, http.StatusUnauthorized, "authentication required"},
		{"wrong password", "web1:x", ev, http.StatusUnauthorized, "invalid credentials"},
		{"no pull on the repository", "nopull", other(func(e *Event) { e.Environment = ""; e.Container = "x" }), http.StatusForbidden, "may not pull prod/app"},
		{"robot bound to another environment", "dev1", other(func(e *Event) { e.Image = "r.example/dev/app:v1"; e.Container = "x" }), http.StatusForbidden, `bound to environment "dev"`},
		{"robot bound to prod, reports nothing", "web1", other(func(e *Event) { e.Environment = ""; e.Container = "y" }), http.StatusForbidden, `cannot report for ""`},
		{"another host's robot stops web1's container", "web2", other(func(e *Event) { e.Kind, e.Reason = KindStop, "stopped" }), http.StatusForbidden, "runs under web1's report"},
		{"another host's robot replaces it", "web2", ev, http.StatusForbidden, "runs under web1's report"},
		{"a user with pull on the repository", "alice", other(func(e *Event) { e.Host = "laptop"; e.Environment = "" }), http.StatusCreated, ""},
		{"a user without pull on it", "alice", other(func(e *Event) { e.Image = "r.example/prod/db:v1"; e.Host = "laptop" }), http.StatusForbidden, "may not pull prod/db"},
		{"invalid event", "web1", other(func(e *Event) { e.Container = "../../etc" }), http.StatusBadRequest, "container"},
		{"the owner stops it", "web1", other(func(e *Event) { e.Kind, e.Reason = KindStop, "stopped" }), http.StatusCreated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := tt.user
			c := a.client(t, user)
			_, err := c.Report(ctx, tt.event)
			if got := status(err); got != tt.status {
				t.Fatalf("Report: %v (status %d), want %d", err, got, tt.status)
			}
			if tt.msg != "" && !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not say %q", err, tt.msg)
			}
		})
	}
	// Refusals stored nothing: two starts (web1, alice) and one stop.
	evs, err := a.store.Events(ctx, Query{}, 100)
	if err != nil || len(evs) != 3 {
		t.Fatalf("stored events: %d, %v; want 3", len(evs), err)
	}
}

func TestHandlerHostileBodies(t *testing.T) {
	a := newTestAPI(t)
	good, _ := json.Marshal(validEvent())
	withField := func(field, value string) string {
		return strings.Replace(string(good), `{"kind"`, `{"`+field+`":`+value+`,"kind"`, 1)
	}
	tests := []struct {
		name        string
		contentType string
		body        io.Reader
		status      int
		msg         string
	}{
		{"oversized", "application/json", bytes.NewReader(bytes.Repeat([]byte(" "), MaxEventSize+1)), http.StatusRequestEntityTooLarge, "at most"},
		{"oversized stream", "application/json", io.LimitReader(zeros{}, 10<<20), http.StatusRequestEntityTooLarge, "at most"},
		{"bad JSON", "application/json", strings.NewReader(`{"kind":`), http.StatusBadRequest, "invalid inventory event"},
		{"not an object", "application/json", strings.NewReader(`"start"`), http.StatusBadRequest, "invalid inventory event"},
		{"two events", "application/json", strings.NewReader(string(good) + string(good)), http.StatusBadRequest, "trailing data"},
		{"spoofed reporter", "application/json", strings.NewReader(withField("reporter", `"admin"`)), http.StatusBadRequest, "unknown field"},
		{"spoofed received", "application/json", strings.NewReader(withField("received", `"2030-01-01T00:00:00Z"`)), http.StatusBadRequest, "unknown field"},
		{"spoofed reporter kind", "application/json", strings.NewReader(withField("reporterKind", `"user"`)), http.StatusBadRequest, "unknown field"},
		{"spoofed remote", "application/json", strings.NewReader(withField("remote", `"10.0.0.1"`)), http.StatusBadRequest, "unknown field"},
		{"form post", "application/x-www-form-urlencoded", strings.NewReader("kind=start"), http.StatusUnsupportedMediaType, "application/json"},
		{"JSON with charset", "application/json; charset=utf-8", strings.NewReader(string(good)), http.StatusCreated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := a.post(t, "web1", tt.contentType, tt.body)
			if code != tt.status || !strings.Contains(body, tt.msg) {
				t.Fatalf("POST: %d %s; want %d with %q", code, body, tt.status, tt.msg)
			}
			if code >= 400 {
				var e apiError
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
					t.Fatalf("error body is not {\"error\": …}: %s", body)
				}
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestHandlerRead(t *testing.T) {
	a := newTestAPI(t)
	ctx := t.Context()
	for i, r := range []struct{ user, image, env string }{
		{"web1", "r.example/prod/app:v1", "prod"},
		{"web1", "r.example/prod/db:v1", "prod"},
		{"dev1", "r.example/dev/app:v1", "dev"},
	} {
		e := validEvent()
		e.Image, e.Environment, e.Container = r.image, r.env, fmt.Sprintf("c%d", i)
		if _, err := a.client(t, r.user).Report(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		user   string
		q      Query
		want   []string
		status int
	}{
		{"admin", Query{}, []string{"c0", "c1", "c2"}, http.StatusOK},
		{"web1", Query{}, []string{"c0", "c1"}, http.StatusOK},
		{"alice", Query{}, []string{"c0"}, http.StatusOK},
		{"nopull", Query{}, []string{}, http.StatusOK},
		{"admin", Query{Repository: "dev/app"}, []string{"c2"}, http.StatusOK},
		{"", Query{}, nil, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		recs, err := a.client(t, tt.user).Running(ctx, tt.q)
		if tt.status != http.StatusOK {
			if got := status(err); got != tt.status {
				t.Errorf("%s: Running: %v, want status %d", tt.user, err, tt.status)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Running: %v", tt.user, err)
		}
		got := []string{}
		for _, r := range recs {
			got = append(got, r.Container)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: running %v, want %v", tt.user, got, tt.want)
		}
	}
	evs, err := a.client(t, "admin").Events(ctx, Query{}, 2)
	if err != nil || len(evs) != 2 || evs[0].Container != "c2" {
		t.Fatalf("Events(limit 2) = %d, %v", len(evs), err)
	}
	resp, err := http.Get(a.srv.URL + EventsPath + "?limit=100000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous GET: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodGet, a.srv.URL+EventsPath+"?limit=100000", nil)
	req.SetBasicAuth("admin", "pw")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("limit 100000: %s, want 400", resp.Status)
	}
}
