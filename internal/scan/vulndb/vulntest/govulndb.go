// Package vulntest provides real vulnerability data to tests without the
// internet: the Go vulnerability database as published in the
// golang.org/x/vulndb module (fetched through the Go module proxy into the
// module cache once), and OSV records written from the Debian changelogs of
// a debootstrapped root file system.
package vulntest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// GoVulnDBVersion pins the golang.org/x/vulndb module version tests read,
// so results do not change under them. Its data/osv directory holds ~4,800
// OSV records (CC-BY-4.0).
const GoVulnDBVersion = "v0.0.0-20261105234957-e22db6528018"

var goVulnDB struct {
	once sync.Once
	dir  string
	err  string
}

// GoVulnDB returns the directory of the Go vulnerability database's OSV
// records, downloading the module into the module cache if it is not there.
func GoVulnDB(t testing.TB) string {
	t.Helper()
	goVulnDB.once.Do(func() {
		cmd := exec.Command("go", "mod", "download", "-json", "golang.org/x/vulndb@"+GoVulnDBVersion)
		cmd.Dir = os.TempDir() // outside any module: no go.mod is touched
		out, err := cmd.Output()
		if err != nil {
			goVulnDB.err = "go mod download golang.org/x/vulndb: " + err.Error() + ": " + string(out)
			if ee, ok := err.(*exec.ExitError); ok {
				goVulnDB.err += string(ee.Stderr)
			}
			return
		}
		var m struct{ Dir, Error string }
		if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
			goVulnDB.err = "go mod download golang.org/x/vulndb: " + m.Error + string(out)
			return
		}
		goVulnDB.dir = filepath.Join(m.Dir, "data", "osv")
	})
	if goVulnDB.err != "" {
		t.Fatal(goVulnDB.err)
	}
	return goVulnDB.dir
}

var vulnbin struct {
	once sync.Once
	dir  string
	err  string
}

// VulnerableGoRoot returns a directory holding usr/local/bin/vulnbin, a Go
// program built against golang.org/x/text v0.3.5, which the Go database
// lists as affected by GO-2021-0113 (fixed in 0.3.7) and GO-2022-1059
// (fixed in 0.3.8). It is built with the go command (module proxy or
// cache) once and kept in the system's temporary directory for later runs.
func VulnerableGoRoot(t testing.TB) string {
	t.Helper()
	vulnbin.once.Do(func() {
		final := filepath.Join(os.TempDir(), "bulwark-vulntest-gobin-"+runtime.Version())
		if _, err := os.Stat(filepath.Join(final, "usr", "local", "bin", "vulnbin")); err == nil {
			vulnbin.dir = final
			return
		}
		dir, err := os.MkdirTemp("", "vulntest-gobin")
		if err != nil {
			vulnbin.err = err.Error()
			return
		}
		src := filepath.Join(dir, "src")
		bin := filepath.Join(dir, "root", "usr", "local", "bin")
		for _, d := range []string{src, bin} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				vulnbin.err = err.Error()
				return
			}
		}
		files := map[string]string{
			"go.mod":  "module example.com/vulnbin\n\ngo 1.22\n\nrequire golang.org/x/text v0.3.5\n",
			"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"golang.org/x/text/language\"\n)\n\nfunc main() { fmt.Println(language.Make(\"en-US\")) }\n",
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
				vulnbin.err = err.Error()
				return
			}
		}
		cmd := exec.Command("go", "build", "-mod=mod", "-buildvcs=false", "-o", filepath.Join(bin, "vulnbin"), ".")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			vulnbin.err = "go build: " + err.Error() + ": " + string(out)
			return
		}
		// Concurrent runs race here harmlessly: one rename wins, the
		// others find the result in place.
		if err := os.Rename(filepath.Join(dir, "root"), final); err != nil {
			if _, serr := os.Stat(filepath.Join(final, "usr", "local", "bin", "vulnbin")); serr != nil {
				vulnbin.err = err.Error()
				return
			}
		}
		os.RemoveAll(dir)
		vulnbin.dir = final
	})
	if vulnbin.err != "" {
		t.Fatal(vulnbin.err)
	}
	return vulnbin.dir
}
