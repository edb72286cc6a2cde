package server

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testRules = `version: 1
bindings:
  - environments: [prod]
    repositories: ["prod/**"]
    actions: [push]
    rules: [non-root]
    mode: enforce
`

// TestPoliciesReload: a changed file is picked up by the periodic check and
// by SIGHUP; a broken one leaves the running policy in force; an unchanged
// one keeps the compiled policy (no recompilation).
func TestPoliciesReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(testRules)
	p, err := loadPolicies("", path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first := p.current()
	if changed, err := p.reload(); err != nil || changed || p.current().rules != first.rules {
		t.Fatalf("reload of an unchanged file: changed %v, err %v, recompiled %v", changed, err, p.current().rules != first.rules)
	}

	write(strings.Replace(testRules, "mode: enforce", "mode: warn", 1))
	if changed, err := p.reload(); err != nil || !changed {
		t.Fatalf("reload of a changed file: changed %v, err %v", changed, err)
	}
	if got := p.current().rules.Bindings[0].Mode; got != "warn" {
		t.Fatalf("after reload the binding's mode is %q, want warn", got)
	}

	good := p.current()
	write("version: 1\nbindings: [\n") // broken YAML
	if changed, err := p.reload(); err == nil || changed || p.current() != good {
		t.Fatalf("reload of a broken file: changed %v, err %v; the running policy must stay", changed, err)
	}

	// The watcher: SIGHUP reloads at once (no periodic check here). The
	// test's own subscription keeps a SIGHUP sent before the watcher has
	// subscribed from killing the test binary.
	sink := make(chan os.Signal, 16)
	signal.Notify(sink, syscall.SIGHUP)
	defer signal.Stop(sink)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { p.watch(ctx, 0); close(done) }()
	defer func() { cancel(); <-done }()
	write(testRules)
	deadline := time.Now().Add(10 * time.Second)
	for p.current().rules.Bindings[0].Mode != "enforce" {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the policy")
		}
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLoadPoliciesRefusesBrokenFiles: a server must not start with a
// policy it cannot enforce.
func TestLoadPoliciesRefusesBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nrules:\n  - id: x\n    expression: 'image.nosuchfield'\n    message: m\n"), 0o600)
	if _, err := loadPolicies("", bad, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--policy") {
		t.Fatalf("loadPolicies with an unknown field: %v", err)
	}
	if _, err := loadPolicies(filepath.Join(dir, "missing.yaml"), "", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--trust-policy") {
		t.Fatalf("loadPolicies with a missing trust policy: %v", err)
	}
}
