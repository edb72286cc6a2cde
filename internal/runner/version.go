package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/mod/semver"
	"golang.org/x/sys/unix"
)

// RuntimeVersion is what `RUNTIME --version` says about itself.
type RuntimeVersion struct {
	// Name is the first word of the output: "runc", "crun", …
	Name string
	// Version is the semantic version without distribution suffixes
	// ("1.1.5" for Debian's "1.1.5+ds1"), or "" when unparseable.
	Version string
	// Raw is the first line of the output, for messages.
	Raw string
}

// ParseRuntimeVersion reads the output of `runc --version` or
// `crun --version`; both start with "NAME version X.Y.Z".
func ParseRuntimeVersion(out string) RuntimeVersion {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 4096)
	if !sc.Scan() {
		return RuntimeVersion{}
	}
	line := strings.TrimSpace(sc.Text())
	v := RuntimeVersion{Raw: line}
	f := strings.Fields(line)
	if len(f) >= 1 {
		v.Name = f[0]
	}
	if len(f) >= 3 && f[1] == "version" {
		s := f[2]
		// Distribution build metadata ("+ds1", "+dev") does not change
		// which upstream fixes are in; semver ignores it anyway.
		if !strings.HasPrefix(s, "v") {
			s = "v" + s
		}
		if semver.IsValid(s) {
			v.Version = strings.TrimPrefix(semver.Canonical(s), "v")
			// Canonical drops "+build" but keeps "-rc.N".
		}
	}
	return v
}

// runcAdvisory is a range of runc releases known to be vulnerable.
type runcAdvisory struct {
	from, fixed string // semver with "v": from inclusive, fixed exclusive
	ids         string
}

// runcAdvisories lists the runc container-breakout fixes bulwark warns
// about. The 2025-11 trio (GHSA-9493-h29p-rfm2, GHSA-qw9x-cqr3-wc7r,
// GHSA-cgrx-mc8f-2prm) was fixed in 1.2.8, 1.3.3 and 1.4.0-rc.3; every
// release before 1.2.8 also predates it, which covers the older
// CVE-2024-21626 (fixed in 1.1.12) and CVE-2024-45310 (1.1.14) too.
var runcAdvisories = []runcAdvisory{
	{"v0.0.0", "v1.2.8", "CVE-2025-31133, CVE-2025-52565, CVE-2025-52881"},
	{"v1.3.0-0", "v1.3.3", "CVE-2025-31133, CVE-2025-52565, CVE-2025-52881"},
	{"v1.4.0-0", "v1.4.0-rc.3", "CVE-2025-31133, CVE-2025-52565, CVE-2025-52881"},
}

// Vulnerabilities returns the known vulnerabilities of a runc version, as
// one message, or "" when none is known. Other runtimes (crun, youki) and
// unparseable versions return "": there is no list to check them against,
// and guessing would train users to ignore the warning.
func (v RuntimeVersion) Vulnerabilities() string {
	if v.Name != "runc" || v.Version == "" {
		return ""
	}
	sv := "v" + v.Version
	for _, a := range runcAdvisories {
		if semver.Compare(sv, a.from) >= 0 && semver.Compare(sv, a.fixed) < 0 {
			return fmt.Sprintf("runc %s is affected by %s (container breakout); install runc >= 1.2.8, 1.3.3 or 1.4.0 (see docs/runner.md)", v.Version, a.ids)
		}
	}
	return ""
}

// CachedVersion is Version remembered in file, keyed by the binary's path,
// size, mtime and inode: `runc --version` costs a process start on every
// bulwark run otherwise. A changed or replaced binary is asked again.
func (r *Runtime) CachedVersion(ctx context.Context, file string) (RuntimeVersion, error) {
	bin, err := exec.LookPath(r.path())
	if err != nil {
		return RuntimeVersion{}, fmt.Errorf("runtime %s: %w", r.path(), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(bin, &st); err != nil {
		return RuntimeVersion{}, fmt.Errorf("runtime %s: %w", bin, err)
	}
	key := fmt.Sprintf("%s|%d|%d.%d|%d", bin, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ino)
	var cached struct {
		Key    string
		Output string
	}
	if b, err := os.ReadFile(file); err == nil && json.Unmarshal(b, &cached) == nil && cached.Key == key {
		return ParseRuntimeVersion(cached.Output), nil
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return RuntimeVersion{}, fmt.Errorf("%s --version: %w", bin, err)
	}
	cached.Key, cached.Output = key, string(out)
	if b, err := json.Marshal(cached); err == nil {
		writeFileAtomic(file, b, 0o600) // a cache: failing to write it is harmless
	}
	return ParseRuntimeVersion(string(out)), nil
}
