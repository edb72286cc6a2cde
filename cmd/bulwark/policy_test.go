package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/policy"
	"github.com/bulwark-dev/bulwark/internal/remote"
	"github.com/bulwark-dev/bulwark/internal/server"
)

// runCobra runs a command with args and returns stdout, stderr and the
// error.
func runCobra(t *testing.T, cmd *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

func TestPolicyLint(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`version: 1
rules:
  - id: unused
    expression: 'image.config.user != ""'
    message: no user
bindings:
  - environments: [prod]
    repositories: ["prod/*"]
    actions: [pull]
    rules: [signed]
    mode: enforce
`), 0o600)
	out, _, err := runCobra(t, newPolicyCmd(), "lint", good)
	if err != nil || !strings.Contains(out, good+": valid: 1 rules, 1 bindings, 0 exceptions; version sha256:") ||
		!strings.Contains(out, good+`:3: warning: rule "unused" is not used by any binding`) {
		t.Fatalf("lint good: %v\n%s", err, out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nrules:\n  - id: r\n    expression: 'image.config.usr == \"\"'\n    message: m\n"), 0o600)
	out, errOut, err := runCobra(t, newPolicyCmd(), "lint", bad)
	if exitCode(err) != 1 || !strings.HasPrefix(errOut, bad+`:4: rule "r": expression:1:13: undefined field 'usr'`) || out != "" {
		t.Fatalf("lint bad: %v (exit %d)\nstdout %q\nstderr %q", err, exitCode(err), out, errOut)
	}
	out, _, err = runCobra(t, newPolicyCmd(), "lint", bad, "--output", "json")
	var res LintResult
	if exitCode(err) != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Valid || len(res.Errors) != 1 ||
		res.Errors[0].Line != 4 || res.Errors[0].Rule != "r" || !strings.Contains(res.Errors[0].Message, "undefined field 'usr'") {
		t.Fatalf("lint bad json: %v\n%s", err, out)
	}
	if _, _, err := runCobra(t, newPolicyCmd(), "lint", filepath.Join(dir, "missing.yaml")); exitCode(err) != 1 {
		t.Fatalf("missing file: %v", err)
	}
	if _, _, err := runCobra(t, newPolicyCmd(), "lint", "../../examples/policy.yaml"); err != nil {
		t.Fatalf("examples/policy.yaml: %v", err)
	}
}

func TestPolicyHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"lint", "--help"}, {"check", "--help"}} {
		out, _, err := runCobra(t, newPolicyCmd(), args...)
		if err != nil || !strings.Contains(out, "Examples:") || !strings.Contains(out, "bulwark policy") {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
}

func TestParsePublish(t *testing.T) {
	tests := []struct {
		in   string
		want policy.PortMapping
		ok   bool
	}{
		{"8080:80", policy.PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, true},
		{"127.0.0.1:53:53/udp", policy.PortMapping{HostIP: "127.0.0.1", HostPort: 53, ContainerPort: 53, Protocol: "udp"}, true},
		{"[::1]:8443:443", policy.PortMapping{HostIP: "::1", HostPort: 8443, ContainerPort: 443, Protocol: "tcp"}, true},
		{"80", policy.PortMapping{}, false},
		{"80:0", policy.PortMapping{}, false},
		{"80:70000", policy.PortMapping{}, false},
		{"80:80/sctp", policy.PortMapping{}, false},
		{"a:80", policy.PortMapping{}, false},
	}
	for _, tt := range tests {
		got, err := policyParsePublish(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%q: %+v %v", tt.in, got, err)
		}
	}
}

// pushTestImage pushes a one-layer image whose config says user and
// exposed port to the registry at host, and returns its digest.
func pushTestImage(t *testing.T, client *remote.Client, host, repo, tag, user string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	r := oci.ImageRef{Registry: host, Repository: repo}
	created := time.Now().Add(-time.Hour).UTC()
	cfg, _ := json.Marshal(v1.Image{Created: &created, Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		Config: v1.ImageConfig{User: user, ExposedPorts: map[string]struct{}{"8080/tcp": {}}, Labels: map[string]string{"team": "shop"}},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("layer")}}})
	cdesc, err := client.PushBlob(ctx, r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ldesc, err := client.PushBlob(ctx, r, []byte("layer"))
	if err != nil {
		t.Fatal(err)
	}
	cdesc.MediaType, ldesc.MediaType = v1.MediaTypeImageConfig, v1.MediaTypeImageLayer
	m, _ := json.Marshal(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: cdesc, Layers: []v1.Descriptor{ldesc}})
	r.Tag = tag
	if _, err := client.PushManifest(ctx, r, v1.MediaTypeImageManifest, m); err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(m)
}

// TestPolicyCheck runs `policy check` against an in-process registry: an
// unsigned image is denied by rule "signed" with exit status 2, then
// allowed once CI signed it; the run request's ports are checked against
// the image's; --explain shows the facts; --output json parses.
func TestPolicyCheck(t *testing.T) {
	noPassphraseEnv(t)
	unsetDataEnv(t)
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker")) // no credentials of the invoking user
	cfg := config.Default()
	cfg.Data = filepath.Join(dir, "data")
	cfg.Auth.Enabled = false
	s, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	client := remote.New(remote.Options{})
	dg := pushTestImage(t, client, host, "prod/app", "v1", "1000")
	ref := host + "/prod/app:v1"

	ca, keys := filepath.Join(dir, "ca"), filepath.Join(dir, "keys")
	mustRunPKI(t, "", "init", "--dir", ca, "--org", "Example", "--country", "US", "--state", "WA")
	mustRunPKI(t, "", "issue", "--ca", ca, "--name", "ci", "--subject", "C=US, ST=WA, O=Example, CN=ci", "--out", keys)
	trustFile := filepath.Join(dir, "trust.yaml")
	os.WriteFile(trustFile, []byte(`version: 1
authorities:
  - name: ci
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=ci"]
environments:
  - name: prod
    repositories: ["prod/**"]
    require: [ci]
`), 0o600)
	policyFile := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policyFile, []byte(`version: 1
bindings:
  - name: prod
    environments: [prod]
    repositories: ["prod/**"]
    actions: [push, pull, run]
    rules: [signed, non-root, declared-ports-only]
    mode: enforce
`), 0o600)
	check := func(args ...string) (string, string, error) {
		return runCobra(t, newPolicyCmd(), append([]string{"check", ref, "--policy", policyFile, "--trust-policy", trustFile, "--env", "prod"}, args...)...)
	}

	out, _, err := check("--action", "pull")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "policy denies pull: denied: signed failed (enforce)") ||
		!strings.Contains(out, "DENIED pull") || !strings.Contains(out, "VIOLATED signed") || !strings.Contains(out, "no signatures found") ||
		!strings.Contains(out, "fix: sign the image") || !strings.Contains(out, "pass     non-root") || !strings.Contains(out, dg.String()) {
		t.Fatalf("unsigned: %v (exit %d)\n%s", err, exitCode(err), out)
	}

	if _, _, err := runCobra(t, newSignCmd(), ref, "--key", filepath.Join(keys, "ci.key"), "--cert", filepath.Join(keys, "ci.crt")); err != nil {
		t.Fatalf("sign: %v", err)
	}
	out, _, err = check("--action", "pull", "--explain")
	if err != nil || !strings.Contains(out, "ALLOWED pull") || !strings.Contains(out, "pass     signed") ||
		!strings.Contains(out, `image.config.user = "1000"`) || !strings.Contains(out, "trust.allowed = true") ||
		!strings.Contains(out, "counted for authority ci") || !strings.Contains(out, "expression: trust.evaluated") {
		t.Fatalf("signed, --explain: %v\n%s", err, out)
	}

	out, _, err = check("--action", "run", "--publish", "8080:8080", "--publish", "2222:22")
	if exitCode(err) != 2 || !strings.Contains(out, "VIOLATED declared-ports-only") || !strings.Contains(out, "22/tcp (declared: 8080/tcp)") {
		t.Fatalf("run with an undeclared port: %v\n%s", err, out)
	}
	out, _, err = check("--action", "run", "--publish", "8080:8080", "--user", "0", "--output", "json")
	var res CheckResult
	if exitCode(err) != 2 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if res.Digest != dg || res.Decision.Allowed || res.Trust == nil || !res.Trust.Allowed || len(res.Decision.Rules) != 3 ||
		res.Decision.Rules[1].ID != "non-root" || res.Decision.Rules[1].Result != policy.ResultViolated {
		t.Fatalf("json result: %+v", res)
	}

	// An environment no binding covers is default-denied, since prod has
	// an enforce binding; an unknown action is a usage error.
	if _, _, err := runCobra(t, newPolicyCmd(), "check", host+"/other/app:v1", "--policy", policyFile, "--env", "prod", "--action", "pull"); exitCode(err) != 1 {
		t.Fatalf("missing image: %v", err)
	}
	if _, _, err := check("--action", "exec"); err == nil || !strings.Contains(err.Error(), "--action must be push, pull or run") {
		t.Fatalf("bad action: %v", err)
	}
}
