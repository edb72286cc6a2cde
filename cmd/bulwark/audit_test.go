package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/audit"
)

// auditData makes a data directory whose audit log holds five events.
func auditData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	l, err := audit.Open(audit.PathIn(dir), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-48 * time.Hour).UTC()
	for i, e := range []audit.Event{
		{Who: "alice", Kind: audit.KindUser, Action: audit.ActionLogin, Remote: "192.0.2.1:4000"},
		{Who: "alice", Kind: audit.KindUser, Action: audit.ActionPush, Repository: "team/app", Reference: "v1", Digest: "sha256:aaaa"},
		{Who: "ci", Kind: audit.KindRobot, Action: audit.ActionPull, Repository: "team/app", Reference: "sha256:aaaa", Digest: "sha256:aaaa"},
		{Who: "", Action: audit.ActionPull, Repository: "team/db", Outcome: audit.OutcomeDenied, Detail: "no grant"},
		{Who: "evil\x1b[2J\tname", Action: audit.ActionLogin, Outcome: audit.OutcomeDenied, Detail: "bad password"},
	} {
		e.Time = t0.Add(time.Duration(i) * 12 * time.Hour)
		l.Record(e)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runAudit runs `bulwark audit ARGS…` and returns stdout, stderr, error.
func runAudit(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newAuditCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestAuditList(t *testing.T) {
	dir := auditData(t)
	tests := []struct {
		name  string
		args  []string
		lines int
		want  []string // substrings of stdout
	}{
		{"all", nil, 5, []string{"alice", "team/app:v1@sha256:aaaa", "team/app@sha256:aaaa", "anonymous", "no grant", "192.0.2.1:4000"}},
		{"repo", []string{"--repo", "team/app"}, 2, []string{"push", "pull"}},
		{"who", []string{"--who", "alice", "--action", "push"}, 1, []string{"push"}},
		{"since duration", []string{"--since", "30h"}, 3, nil},
		{"until", []string{"--until", time.Now().Add(-30 * time.Hour).UTC().Format(time.RFC3339)}, 2, nil},
		{"limit", []string{"--limit", "2"}, 2, []string{"no grant", "bad password"}},
		{"hostile name escaped", []string{"--action", "login", "--who", "evil\x1b[2J\tname"}, 1, []string{`"evil\x1b[2J\tname"`}},
		{"nothing", []string{"--repo", "none"}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runAudit(t, append([]string{"--data", dir}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(out, "\n"); n != tc.lines {
				t.Fatalf("%d lines, want %d:\n%s", n, tc.lines, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "\x1b") {
				t.Fatalf("raw escape sequence in output:\n%q", out)
			}
		})
	}

	out, _, err := runAudit(t, "--data", dir, "--output", "json", "--who", "ci")
	var events []audit.Event
	if err != nil || json.Unmarshal([]byte(out), &events) != nil || len(events) != 1 || events[0].Kind != audit.KindRobot {
		t.Fatalf("json: %v %s", err, out)
	}
	out, _, err = runAudit(t, "--data", dir, "-o", "json", "--repo", "none")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty json: %v %q", err, out)
	}
}

func TestAuditBadInput(t *testing.T) {
	dir := auditData(t)
	for _, args := range [][]string{
		{"--data", dir, "--output", "yaml"},
		{"--data", dir, "--since", "yesterday"},
		{"--data", dir, "--until", "-5h"},
		{"--data", dir, "--limit", "-1"},
		{"--data", filepath.Join(dir, "missing")},
		{"verify", "--data", dir, "--head", "not-a-hash"},
		{"verify", "--data", filepath.Join(dir, "missing")},
		{"unexpected-arg", "--data", dir},
	} {
		if _, _, err := runAudit(t, args...); err == nil {
			t.Errorf("audit %q succeeded", args)
		} else if errors.As(err, new(*exitError)) {
			t.Errorf("audit %q: %v is an exit-2 error, want a plain one", args, err)
		}
	}
}

func TestAuditVerify(t *testing.T) {
	dir := auditData(t)
	out, _, err := runAudit(t, "verify", "--data", dir)
	if err != nil || !strings.Contains(out, "5 entries verified") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, _, err = runAudit(t, "verify", "--data", dir, "-o", "json")
	var rep audit.Report
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || !rep.OK || len(rep.Head) != 64 {
		t.Fatalf("verify json: %v\n%s", err, out)
	}
	if out, _, err := runAudit(t, "verify", "--data", dir, "--head", rep.Head); err != nil || !strings.Contains(out, "found at seq 5") {
		t.Fatalf("verify --head: %v\n%s", err, out)
	}

	exit2 := func(t *testing.T, err error, want string) {
		t.Helper()
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, want) || strings.Contains(ee.msg, "\n") {
			t.Fatalf("error %v, want exit 2 mentioning %q on one line", err, want)
		}
	}
	_, _, err = runAudit(t, "verify", "--data", dir, "--head", strings.Repeat("ab", 32))
	exit2(t, err, "head-missing")

	// Tamper: change who on line 2.
	path := audit.PathIn(dir)
	b, _ := os.ReadFile(path)
	b = bytes.Replace(b, []byte(`"who":"alice","kind":"user","action":"push"`), []byte(`"who":"bob","kind":"user","action":"push"`), 1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = runAudit(t, "verify", "--data", dir)
	exit2(t, err, "line 2: edited")
	if !strings.Contains(out, "1 entries verified before the problem") {
		t.Fatalf("stdout: %s", out)
	}
}

func TestAuditServer(t *testing.T) {
	dir := auditData(t)
	var gotAuth []string
	h := audit.Handler(audit.PathIn(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		if !strings.HasPrefix(r.URL.Path, "/admin/v1/audit") {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	t.Setenv("BULWARK_TOKEN", "s3cret")
	out, _, err := runAudit(t, "--server", srv.URL+"/", "--repo", "team/app", "--since", "7d")
	if err != nil || strings.Count(out, "\n") != 2 {
		t.Fatalf("list via server: %v\n%s", err, out)
	}
	out, _, err = runAudit(t, "verify", "--server", srv.URL)
	if err != nil || !strings.Contains(out, "5 entries verified") {
		t.Fatalf("verify via server: %v\n%s", err, out)
	}
	_, _, err = runAudit(t, "verify", "--server", srv.URL, "--head", strings.Repeat("0", 64))
	if ee := new(exitError); !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("verify via server with a missing head: %v", err)
	}
	for _, a := range gotAuth {
		if a != "Bearer s3cret" {
			t.Fatalf("Authorization %q", a)
		}
	}

	t.Setenv("BULWARK_TOKEN", "")
	gotAuth = nil
	if _, _, err := runAudit(t, "--server", srv.URL); err != nil || gotAuth[0] != "" {
		t.Fatalf("without token: %v, Authorization %q", err, gotAuth)
	}
	// Server errors are reported with the status.
	if _, _, err := runAudit(t, "--server", srv.URL+"/nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
}

func TestAuditHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"verify", "--help"}} {
		out, _, err := runAudit(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"head", "hash", "Example", "--data", "--server"} {
			if !strings.Contains(out, w) {
				t.Errorf("%q help lacks %q", args, w)
			}
		}
	}
	out, _, _ := runAudit(t, "--help")
	for _, w := range []string{"login", "push", "denial", "prev", "record", "--head"} {
		if !strings.Contains(out, w) {
			t.Errorf("audit --help lacks %q", w)
		}
	}
}
