package runner

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestRuntimeVersion(t *testing.T) {
	tests := []struct {
		out        string
		name, ver  string
		vulnerable bool
	}{
		{"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n", "runc", "1.1.5", true},
		{"runc version 1.1.12\n", "runc", "1.1.12", true},
		{"runc version 1.2.7\n", "runc", "1.2.7", true},
		{"runc version 1.2.8-rc.1\n", "runc", "1.2.8-rc.1", true},
		{"runc version 1.2.8\n", "runc", "1.2.8", false},
		{"runc version 1.2.9\n", "runc", "1.2.9", false},
		{"runc version 1.3.0-rc.1\n", "runc", "1.3.0-rc.1", true},
		{"runc version 1.3.0\n", "runc", "1.3.0", true},
		{"runc version 1.3.2\n", "runc", "1.3.2", true},
		{"runc version 1.3.3\n", "runc", "1.3.3", false},
		{"runc version 1.4.0-rc.1\n", "runc", "1.4.0-rc.1", true},
		{"runc version 1.4.0-rc.2\n", "runc", "1.4.0-rc.2", true},
		{"runc version 1.4.0-rc.3\n", "runc", "1.4.0-rc.3", false},
		{"runc version 1.4.0\n", "runc", "1.4.0", false},
		{"runc version 1.5.2\ncommit: v1.5.2-0-gdeadbeef\n", "runc", "1.5.2", false},
		{"crun version 1.8.1\ncommit: abc\n+SYSTEMD +SELINUX\n", "crun", "1.8.1", false},
		{"runc version unknown\n", "runc", "", false},
		{"", "", "", false},
		{"runc\n", "runc", "", false},
	}
	for _, tt := range tests {
		v := ParseRuntimeVersion(tt.out)
		if v.Name != tt.name || v.Version != tt.ver {
			t.Errorf("%q: got %q %q, want %q %q", tt.out, v.Name, v.Version, tt.name, tt.ver)
		}
		if got := v.Vulnerabilities() != ""; got != tt.vulnerable {
			t.Errorf("%q: vulnerable = %v, want %v (%s)", tt.out, got, tt.vulnerable, v.Vulnerabilities())
		}
	}
}

func FuzzParseRuntimeVersion(f *testing.F) {
	f.Add("runc version 1.1.5+ds1\ncommit: x\n")
	f.Add("crun version 1.8.1")
	f.Fuzz(func(t *testing.T, out string) {
		v := ParseRuntimeVersion(out)
		v.Vulnerabilities()
		if strings.ContainsRune(v.Raw, '\n') {
			t.Fatalf("raw spans lines: %q", v.Raw)
		}
	})
}

// TestInstalledRuncVersion runs the machine's runc: Debian 12's 1.1.5 must
// be reported as vulnerable.
func TestInstalledRuncVersion(t *testing.T) {
	path := requireRunc(t)
	v, err := (&Runtime{Path: path}).Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", path, v.Raw)
	if v.Name != "runc" || v.Version == "" {
		t.Fatalf("unparsed: %+v", v)
	}
	if strings.HasPrefix(v.Version, "1.1.") && v.Vulnerabilities() == "" {
		t.Errorf("runc %s not reported as vulnerable", v.Version)
	}
}

func requireRunc(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal("runc is required (apt-get install runc; scripts/test.sh installs it)")
	}
	return p
}

func TestCachedVersion(t *testing.T) {
	path := requireRunc(t)
	file := t.TempDir() + "/version.json"
	rt := &Runtime{Path: path}
	v1, err := rt.CachedVersion(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := rt.CachedVersion(context.Background(), file)
	if err != nil || v2 != v1 || v1.Version == "" {
		t.Fatalf("cached %+v %v, first %+v", v2, err, v1)
	}
	// A stale key (another binary) is not trusted.
	os.WriteFile(file, []byte(`{"Key":"other","Output":"runc version 9.9.9\n"}`), 0o600)
	if v3, err := rt.CachedVersion(context.Background(), file); err != nil || v3 != v1 {
		t.Fatalf("stale cache used: %+v %v", v3, err)
	}
}
