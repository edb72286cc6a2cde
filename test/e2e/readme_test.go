package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
