package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadmeQuickstart runs the README's quickstart block, so the commands a
// newcomer copies keep working. The only change made to them is the address:
// the test's server listens on a random port instead of 127.0.0.1:5000.
func TestReadmeQuickstart(t *testing.T) {
	requireTool(t, "skopeo")
	requireTool(t, "curl")
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- quickstart:begin -->")
	block, _, ok2 := strings.Cut(block, "<!-- quickstart:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no quickstart:begin/end markers")
	}
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sh")
	block = strings.TrimSuffix(block, "```")
	if !strings.Contains(block, "127.0.0.1:5000") {
		t.Fatal("the quickstart block no longer talks to 127.0.0.1:5000; update this test")
	}
	// The password the README tells the reader to choose.
	s := startAuthServer(t, "correct-horse-battery")
	script := strings.ReplaceAll(block, "127.0.0.1:5000", s.addr)

	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"v1"`, "without credentials: denied, as it should be"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("quickstart output lacks %s:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(cmd.Dir, "pulled", "index.json")); err != nil {
		t.Errorf("quickstart did not pull the image back: %v", err)
	}
}

// TestReadmeProdPolicy runs the README's policy-gate block: it starts its
// own server (on a free port instead of 5000) with the bulwark under test
// first on PATH, and must show each step's outcome.
func TestReadmeProdPolicy(t *testing.T) {
	requireTool(t, "skopeo")
	requireTool(t, "curl")
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- prod:begin -->")
	block, _, ok2 := strings.Cut(block, "<!-- prod:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no prod:begin/end markers")
	}
	block = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(block), "```sh"), "```")
	if !strings.Contains(block, "127.0.0.1:5000") {
		t.Fatal("the prod block no longer talks to 127.0.0.1:5000; update this test")
	}
	addr := freeAddr(t)
	script := strings.ReplaceAll(block, "127.0.0.1:5000", addr)
	script = strings.ReplaceAll(script, "bulwark serve ", "bulwark serve --addr "+addr+" ")

	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	// The binary under test as "bulwark" first on PATH, whatever BULWARK_BIN
	// calls it.
	binDir := t.TempDir()
	if err := os.Symlink(bulwarkBin, filepath.Join(binDir, "bulwark")); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(cmd.Dir, "serve.log"))
		t.Fatalf("prod block failed: %v\n%s\nserver log:\n%s", err, out, log)
	}
	for _, want := range []string{"prod/app", "unsigned: denied", "signed by ci alone: denied", "signed by ci and security: pulled", "quarantined by policy"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("prod block output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(cmd.Dir, "pulled", "index.json")); err != nil {
		t.Errorf("the prod host never pulled the image: %v", err)
	}
}
