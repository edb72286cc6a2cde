package audit

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestShellVerifier runs the shell verifier printed in docs/audit.md, so
// the claim that the log can be checked without bulwark stays true.
func TestShellVerifier(t *testing.T) {
	for _, tool := range []string{"bash", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	doc, err := os.ReadFile("../../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "<!-- verifier:begin -->\n```bash\n")
	block, _, ok2 := strings.Cut(block, "```\n<!-- verifier:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/audit.md has no verifier block")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "verify-audit")
	if err := os.WriteFile(script, []byte(block), 0o700); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "audit.log")
	writeEvents(t, log, 7) // sample() covers escaping, invalid UTF-8, clipping
	rep := mustVerify(t, log, 7)
	lines := readLines(t, log)

	run := func(t *testing.T, content []byte, args ...string) (string, int) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", append([]string{script, p}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	edited := bytes.Replace(lines[2], []byte(`"who":"user2"`), []byte(`"who":"user4"`), 1)
	if bytes.Equal(edited, lines[2]) {
		t.Fatal("edit did not apply")
	}
	tests := []struct {
		name    string
		content []byte
		args    []string
		code    int
		want    string
	}{
		{"intact", join(lines), nil, 0, "7 entries verified, head " + rep.Head},
		{"intact with head", join(lines), []string{rep.Head}, 0, "7 entries verified"},
		{"empty", nil, nil, 0, "0 entries verified"},
		{"edited", join(append(append([][]byte{}, lines[:2]...), append([][]byte{edited}, lines[3:]...)...)), nil, 2, "line 3: hash mismatch"},
		{"deleted", join(append(append([][]byte{}, lines[:5]...), lines[6:]...)), nil, 2, "line 6: seq 7 does not follow seq 5"},
		{"swapped", join(append(append([][]byte{}, lines[:5]...), lines[6], lines[5])), nil, 2, "line 6: seq 7 does not follow"},
		{"inserted", join(append(append([][]byte{}, lines[:5]...), append([][]byte{lines[1]}, lines[5:]...)...)), nil, 2, "line 6: seq 2 does not follow seq 5"},
		{"partial last line", join(lines)[:len(join(lines))-20], nil, 2, "line 7: incomplete last line"},
		{"garbage", join(append([][]byte{[]byte("hello")}, lines...)), nil, 2, "line 1: not an audit entry"},
		{"truncated tail, head recorded", join(lines[:5]), []string{rep.Head}, 2, "is not in the log"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(t, tc.content, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output %q; want exit %d and %q", code, out, tc.code, tc.want)
			}
		})
	}
}
