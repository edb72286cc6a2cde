package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/server"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// quarantineIn stores a quarantined manifest in prod/app of the data
// directory dir and returns its digest.
func quarantineIn(t *testing.T, dir, name string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	data, err := server.OpenData(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	cfg := digest.FromString("config")
	content := []byte(`{"schemaVersion":2,"name":"` + name + `"}`)
	rec := &store.ManifestRecord{Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: content, Config: cfg, Blobs: []digest.Digest{cfg}}
	if err := data.Meta.PutBlob(ctx, "prod/app", cfg, 6); err != nil {
		t.Fatal(err)
	}
	if err := data.Meta.PutQuarantinedManifest(ctx, "prod/app", rec, nil, false, &store.QuarantineRecord{
		Pusher: "ci", PusherKind: "robot", Reason: "unsigned", DecisionID: "dec-" + name,
		Violations: []store.Violation{{Rule: "signed", Message: "no signature"}}}); err != nil {
		t.Fatal(err)
	}
	return rec.Digest
}

func TestAdminQuarantineData(t *testing.T) {
	unsetDataEnv(t)
	dir := t.TempDir()
	if _, err := runAdmin(t, "", "quarantine", "list", "--data", dir); err == nil || !strings.Contains(err.Error(), "no registry") {
		t.Fatalf("list on an empty directory: %v", err)
	}
	d := quarantineIn(t, dir, "one")
	ref := "prod/app@" + d.String()

	out, err := runAdmin(t, "", "quarantine", "list", "--data", dir)
	if err != nil || !strings.Contains(out, ref) || !strings.Contains(out, "robot ci") || !strings.Contains(out, "signed: no signature") || !strings.Contains(out, "dec-one") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = runAdmin(t, "", "quarantine", "list", "--data", dir, "--repository", "prod/app", "--output", "json")
	var entries []registry.QuarantineEntry
	if err != nil || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 || entries[0].Digest != d {
		t.Fatalf("list --output json: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"release", ref}, "use --server"},
		{[]string{"release", ref, "--force"}, "--force needs --reason"},
		{[]string{"release", ref, "--reason", "x"}, "--reason goes with --force"},
		{[]string{"release", "prod/app"}, "want REPO@DIGEST"},
		{[]string{"release", "prod/app@sha256:nothex"}, "digest"},
		{[]string{"release", "Bad Repo@" + d.String()}, "repository"},
		{[]string{"release", "prod/app@" + digest.FromString("other").String(), "--force", "--reason", "x"}, "not quarantined"},
		{[]string{"list", "--repository", "../x"}, "--repository"},
	} {
		if _, err := runAdmin(t, "", append(append([]string{"quarantine"}, tc.args...), "--data", dir)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	out, err = runAdmin(t, "", "quarantine", "release", ref, "--force", "--reason", "INC-1", "--data", dir)
	if err != nil || !strings.Contains(out, "released "+ref+" (forced: INC-1)") {
		t.Fatalf("forced release: %v\n%s", err, out)
	}
	if out, err := runAdmin(t, "", "quarantine", "list", "--data", dir); err != nil || !strings.Contains(out, "nothing is quarantined") {
		t.Fatalf("list after release: %v\n%s", err, out)
	}
	events, err := audit.Query(context.Background(), audit.PathIn(dir), audit.Filter{Action: registry.ActionRelease})
	if err != nil || len(events) != 1 || !strings.HasPrefix(events[0].Who, "cli:") || events[0].Detail != "decision dec-one: forced by an administrator: INC-1" {
		t.Fatalf("audit: %+v, %v", events, err)
	}
}

func TestAdminQuarantineServer(t *testing.T) {
	unsetDataEnv(t)
	dir := t.TempDir()
	d := quarantineIn(t, dir, "two")
	ref := "prod/app@" + d.String()
	t.Setenv("BULWARK_ADMIN_PASSWORD", "quarantine-cli-password")
	cfg := config.Default()
	cfg.Data = dir
	s, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	if _, err := runAdmin(t, "", "quarantine", "list", "--data", dir); err == nil || !strings.Contains(err.Error(), "--server") {
		t.Fatalf("list --data while the server holds it: %v", err)
	}
	t.Setenv("BULWARK_TOKEN", "")
	t.Setenv("BULWARK_PASSWORD", "wrong")
	if _, err := runAdmin(t, "", "quarantine", "list", "--server", srv.URL, "--username", "admin"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("list with a wrong password: %v", err)
	}
	t.Setenv("BULWARK_PASSWORD", "quarantine-cli-password")
	via := []string{"--server", srv.URL, "--username", "admin"}
	out, err := runAdmin(t, "", append([]string{"quarantine", "list"}, via...)...)
	if err != nil || !strings.Contains(out, ref) {
		t.Fatalf("list through the server: %v\n%s", err, out)
	}
	// The server runs no policy in this test: re-deciding is refused.
	if _, err := runAdmin(t, "", append([]string{"quarantine", "release", ref}, via...)...); err == nil || !strings.Contains(err.Error(), "no policy") {
		t.Fatalf("re-decide without a policy: %v", err)
	}
	out, err = runAdmin(t, "", append([]string{"quarantine", "release", ref, "--force", "--reason", "INC-2", "--output", "json"}, via...)...)
	var res registry.ReleaseResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || !res.Released || !res.Forced {
		t.Fatalf("forced release through the server: %v\n%s", err, out)
	}
}

func TestAdminQuarantineHelp(t *testing.T) {
	for _, args := range [][]string{{"quarantine", "--help"}, {"quarantine", "list", "--help"}, {"quarantine", "release", "--help"}} {
		out, err := runAdmin(t, "", args...)
		if err != nil || !strings.Contains(out, "Examples:") || !strings.Contains(out, "bulwark admin quarantine") {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
}
