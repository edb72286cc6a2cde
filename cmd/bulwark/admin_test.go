package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/auth"
)

// runAdmin runs `bulwark admin ARGS` with stdin and returns its output.
func runAdmin(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newAdminCmd()
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// unsetDataEnv keeps a BULWARK_DATA of the environment the tests run in
// from overriding --data (and restores it afterwards).
func unsetDataEnv(t *testing.T) {
	t.Setenv("BULWARK_DATA", "x")
	os.Unsetenv("BULWARK_DATA")
}

func openAccountsIn(t *testing.T, dir string) *auth.Accounts {
	t.Helper()
	a, err := auth.OpenAccounts(context.Background(), auth.AccountsPath(dir), auth.AccountsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestAdminRobotCreateJSON(t *testing.T) {
	unsetDataEnv(t)
	dir := t.TempDir()
	out, err := runAdmin(t, "", "robot", "create", "ci", "--data", dir,
		"--grant", "team/*:pull,push", "--grant", "base/**:pull", "--expires", "90d", "--env", "prod", "--output", "json")
	if err != nil {
		t.Fatalf("robot create: %v\n%s", err, out)
	}
	var got struct {
		Name    string     `json:"name"`
		Secret  string     `json:"secret"`
		Expires *time.Time `json:"expires"`
		Env     string     `json:"env"`
		Grants  []struct {
			Glob    string   `json:"glob"`
			Actions []string `json:"actions"`
		} `json:"grants"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if got.Name != "ci" || !strings.HasPrefix(got.Secret, "bwk_") || got.Env != "prod" || len(got.Grants) != 2 {
		t.Fatalf("robot create answered %+v", got)
	}
	if got.Expires == nil || got.Expires.Sub(time.Now().Add(90*24*time.Hour)).Abs() > time.Minute {
		t.Fatalf("expires = %v, want in 90 days", got.Expires)
	}
	a := openAccountsIn(t, dir)
	p, err := a.Authenticate(context.Background(), "ci", got.Secret, "test")
	if err != nil || p.Kind != auth.KindRobot || p.Env != "prod" {
		t.Fatalf("the printed secret does not authenticate: %+v, %v", p, err)
	}
	events, err := audit.Query(context.Background(), audit.PathIn(dir), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Action != "robot.create" || !strings.HasPrefix(events[0].Who, "cli:") ||
		events[0].Kind != audit.KindSystem || !strings.Contains(events[0].Detail, "ci: grants base/**:pull team/*:pull,push") ||
		strings.Contains(events[0].Detail, got.Secret) {
		t.Fatalf("audit events = %+v", events)
	}
}

// step is one CLI invocation of a scripted session.
type step struct {
	name  string
	stdin string
	args  []string
	// want: output contains each; wantErr: error contains it ("" = success)
	want    []string
	wantErr string
}

func runSteps(t *testing.T, mode []string, steps []step) {
	t.Helper()
	for _, s := range steps {
		out, err := runAdmin(t, s.stdin, append(append([]string{}, s.args...), mode...)...)
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Fatalf("%s: err = %v, want %q\n%s", s.name, err, s.wantErr, out)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", s.name, err, out)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Fatalf("%s: output lacks %q:\n%s", s.name, w, out)
			}
		}
	}
}

// sessionSteps is the same session for --data and --server.
var sessionSteps = []step{
	{name: "add admin", stdin: "correct horse battery\n", args: []string{"user", "add", "root", "--role", "admin", "--password-stdin"}, want: []string{"added admin root"}},
	{name: "add member", stdin: "correct horse battery", args: []string{"user", "add", "alice", "--password-stdin", "-o", "json"}, want: []string{`"name": "alice"`, `"role": "member"`}},
	{name: "no --password-stdin", args: []string{"user", "add", "bob"}, wantErr: "--password-stdin"},
	{name: "empty stdin", args: []string{"user", "add", "bob", "--password-stdin"}, wantErr: "no password on stdin"},
	{name: "short password", stdin: "short\n", args: []string{"user", "add", "bob", "--password-stdin"}, wantErr: "password too weak"},
	{name: "bad name", stdin: "correct horse battery\n", args: []string{"user", "add", "Bob", "--password-stdin"}, wantErr: "invalid account name"},
	{name: "bad role", stdin: "correct horse battery\n", args: []string{"user", "add", "bob", "--role", "owner", "--password-stdin"}, wantErr: "invalid role"},
	{name: "duplicate", stdin: "correct horse battery\n", args: []string{"user", "add", "alice", "--password-stdin"}, wantErr: "already exists"},
	{name: "passwd", stdin: "another long password\n", args: []string{"user", "passwd", "alice", "--password-stdin"}, want: []string{"changed the password of alice"}},
	{name: "passwd unknown", stdin: "another long password\n", args: []string{"user", "passwd", "nobody", "--password-stdin"}, wantErr: "not found"},
	{name: "grant", args: []string{"grant", "alice", "team/*:pull,push"}, want: []string{"alice now holds: team/*:pull,push"}},
	{name: "grant merges", args: []string{"grant", "alice", "team/*:delete", "-o", "json"}, want: []string{`"pull",`, `"delete"`}},
	{name: "grant bad spec", args: []string{"grant", "alice", "team/*"}, wantErr: "REPO_GLOB:ACTIONS"},
	{name: "grant traversal", args: []string{"grant", "alice", "team/../prod:push"}, wantErr: "invalid"},
	{name: "grant unknown user", args: []string{"grant", "nobody", "team/*:pull"}, wantErr: "not found"},
	{name: "robot without grant", args: []string{"robot", "create", "ci"}, wantErr: "at least one --grant"},
	{name: "robot bad expiry", args: []string{"robot", "create", "ci", "--grant", "a:pull", "--expires", "soon"}, wantErr: "--expires"},
	{name: "robot create", args: []string{"robot", "create", "ci", "--grant", "team/*:push", "--expires", "30d"}, want: []string{"created robot ci", "bwk_", "shown only this once", "docker login"}},
	{name: "robot name taken", args: []string{"robot", "create", "alice", "--grant", "a:pull"}, wantErr: "already exists"},
	{name: "grant to robot", args: []string{"grant", "ci", "a:pull"}, wantErr: "fixed when it is created"},
	{name: "robot list", args: []string{"robot", "list"}, want: []string{"NAME", "ci", "team/*:push"}},
	{name: "robot rotate", args: []string{"robot", "rotate", "ci", "-o", "json"}, want: []string{`"secret": "bwk_`}},
	{name: "grants all", args: []string{"grants"}, want: []string{"alice", "team/*:pull,push,delete", "root", "admin: everything", "ci", "robot"}},
	{name: "grants one", args: []string{"grants", "alice", "-o", "json"}, want: []string{`"name": "alice"`, `"glob": "team/*"`}},
	{name: "revoke with actions", args: []string{"revoke", "alice", "team/*:pull"}, wantErr: "without actions"},
	{name: "revoke", args: []string{"revoke", "alice", "team/*"}, want: []string{"revoked alice's grant on team/*"}},
	{name: "revoke again", args: []string{"revoke", "alice", "team/*"}, wantErr: "no such grant"},
	{name: "user list", args: []string{"user", "list"}, want: []string{"alice", "member", "root", "admin"}},
	{name: "robot rm", args: []string{"robot", "rm", "ci"}, want: []string{"removed robot ci"}},
	{name: "robot rm again", args: []string{"robot", "rm", "ci"}, wantErr: "not found"},
	{name: "user rm", args: []string{"user", "rm", "alice", "-o", "json"}, want: []string{`"removed": "alice"`}},
	{name: "last admin", args: []string{"user", "rm", "root"}, wantErr: "last admin"},
	{name: "bad output", args: []string{"user", "list", "-o", "yaml"}, wantErr: "--output"},
}

func TestAdminSessionData(t *testing.T) {
	unsetDataEnv(t)
	dir := t.TempDir()
	// A running server holds the directory lock and has auth.db open: the
	// admin commands must work regardless.
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	server := openAccountsIn(t, dir)

	runSteps(t, []string{"--data", dir}, sessionSteps)

	// The "server" saw every change.
	ctx := context.Background()
	if _, err := server.Authenticate(ctx, "root", "correct horse battery", ""); err != nil {
		t.Fatalf("server cannot log in the CLI's admin: %v", err)
	}
	if _, err := server.User(ctx, "alice"); err == nil {
		t.Fatal("server still sees a user the CLI removed")
	}
	events, err := audit.Query(ctx, audit.PathIn(dir), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	want := "user.add user.add user.passwd grant grant robot.create robot.rotate revoke robot.rm user.rm"
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("audited %s\nwant    %s", got, want)
	}
	if rep, err := audit.Verify(ctx, audit.PathIn(dir), audit.VerifyOptions{}); err != nil || !rep.OK {
		t.Fatalf("audit chain: %+v, %v", rep, err)
	}
}

func TestAdminReadOnlyNeedsExistingData(t *testing.T) {
	unsetDataEnv(t)
	dir := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{{"user", "list"}, {"robot", "list"}, {"grants"}} {
		_, err := runAdmin(t, "", append(args, "--data", dir)...)
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("%v on a missing directory: %v", args, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("a read-only command created the data directory")
	}
}

// TestAdminSessionServer runs the same session through --server, against
// the admin API behind a stand-in for the server's admin check.
func TestAdminSessionServer(t *testing.T) {
	a, err := auth.OpenAccounts(context.Background(), filepath.Join(t.TempDir(), "auth.db"), auth.AccountsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var (
		mu       sync.Mutex // the handler runs on the server's goroutines
		changes  []string
		lastAuth string
	)
	h := auth.AdminHandler(a, auth.AdminOptions{OnChange: func(_ context.Context, action, target, _ string) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, action+" "+target)
	}})
	mux := http.NewServeMux()
	mux.Handle("/admin/v1/", http.StripPrefix("/admin/v1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastAuth = r.Header.Get("Authorization")
		ok := lastAuth == "Bearer tok"
		mu.Unlock()
		if !ok {
			http.Error(w, "admins only", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	t.Setenv("BULWARK_TOKEN", "")
	t.Setenv("BULWARK_PASSWORD", "pw")
	_, err = runAdmin(t, "", "user", "list", "--server", srv.URL, "--username", "root")
	mu.Lock()
	basic := strings.HasPrefix(lastAuth, "Basic ")
	mu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "401") || !basic {
		t.Fatalf("basic auth: err %v, Authorization %q", err, lastAuth)
	}
	t.Setenv("BULWARK_PASSWORD", "")
	if _, err := runAdmin(t, "", "user", "list", "--server", srv.URL, "--username", "root"); err == nil || !strings.Contains(err.Error(), "BULWARK_PASSWORD") {
		t.Fatalf("--username without a password: %v", err)
	}
	if _, err := runAdmin(t, "", "user", "list", "--server", "ftp://x"); err == nil {
		t.Fatal("accepted a non-HTTP server URL")
	}

	t.Setenv("BULWARK_TOKEN", "tok")
	runSteps(t, []string{"--server", srv.URL}, sessionSteps)
	mu.Lock()
	defer mu.Unlock()
	want := "user.add root,user.add alice,user.passwd alice,grant alice,grant alice,robot.create ci,robot.rotate ci,revoke alice,robot.rm ci,user.rm alice"
	if got := strings.Join(changes, ","); got != want {
		t.Fatalf("server audited %s\nwant           %s", got, want)
	}
}

func TestAdminRobotSecretText(t *testing.T) {
	unsetDataEnv(t)
	dir := t.TempDir()
	out, err := runAdmin(t, "", "--data", dir, "robot", "create", "host1", "--grant", "team/web:pull")
	if err != nil {
		t.Fatal(err)
	}
	var secret string
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "bwk_") {
			secret = f
		}
	}
	if _, err := openAccountsIn(t, dir).Authenticate(context.Background(), "host1", secret, ""); err != nil {
		t.Fatalf("secret %q from the text output: %v\n%s", secret, err, out)
	}
	// Rotation prints a new secret; the old one stops working.
	out, err = runAdmin(t, "", "--data", dir, "robot", "rotate", "host1")
	if err != nil || strings.Contains(out, secret) || !strings.Contains(out, "bwk_") {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	if _, err := openAccountsIn(t, dir).Authenticate(context.Background(), "host1", secret, ""); err == nil {
		t.Fatal("old secret works after rotate")
	}
}

func TestAdminHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"},
		{"user", "add", "--help"},
		{"robot", "create", "--help"},
		{"grant", "--help"},
	} {
		out, err := runAdmin(t, "", args...)
		if err != nil || !strings.Contains(out, "Examples:") || !strings.Contains(out, "bulwark admin") {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
}
