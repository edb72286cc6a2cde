package vulntest

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/version"
)

// BookwormMinbase returns the root of the debootstrapped Debian 12 minbase
// fixture, building it with the project's scripts/fixtures.sh if it is not
// cached (CI caches it; a fresh machine needs Debian's mirror once).
func BookwormMinbase(t testing.TB) (rootfs, ociLayout string) {
	t.Helper()
	dir := fixture(t, "bookworm-minbase")
	return filepath.Join(dir, "rootfs"), filepath.Join(dir, "oci")
}

var fixtures sync.Map // name → result

type fixtureResult struct {
	once sync.Once
	dir  string
	err  error
}

func fixture(t testing.TB, name string) string {
	t.Helper()
	v, _ := fixtures.LoadOrStore(name, &fixtureResult{})
	r := v.(*fixtureResult)
	r.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			r.err = err
			return
		}
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "fixtures.sh"), name)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			r.err = fmt.Errorf("scripts/fixtures.sh %s: %v\n%s", name, err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		r.dir = lines[len(lines)-1]
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.dir
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// ChangelogEntry is one entry of a Debian changelog.
type ChangelogEntry struct {
	Source  string
	Version string
	CVEs    []string
}

var (
	changelogHeader = regexp.MustCompile(`^([a-z0-9][a-z0-9+.-]*) \(([^ ()]+)\) [^;]+;`)
	cveID           = regexp.MustCompile(`CVE-[0-9]{4}-[0-9]{4,7}`)
)

// ReadChangelogs reads /usr/share/doc/*/changelog.Debian.gz of a root file
// system, once per source package (binary packages of one source ship the
// same changelog), entries newest first.
func ReadChangelogs(rootfs string) (map[string][]ChangelogEntry, error) {
	files, err := filepath.Glob(filepath.Join(rootfs, "usr/share/doc/*/changelog.Debian.gz"))
	if err != nil {
		return nil, err
	}
	out := map[string][]ChangelogEntry{}
	for _, f := range files {
		entries, err := readChangelog(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if len(entries) == 0 {
			continue
		}
		src := entries[0].Source
		if _, done := out[src]; !done {
			out[src] = entries
		}
	}
	return out, nil
}

func readChangelog(path string) ([]ChangelogEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var entries []ChangelogEntry
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Old Changelog:") || strings.HasPrefix(line, "Local variables:") {
			break // free-form history follows
		}
		if m := changelogHeader.FindStringSubmatch(line); m != nil {
			if _, err := version.Debian.Parse(m[2]); err != nil {
				continue
			}
			entries = append(entries, ChangelogEntry{Source: m[1], Version: m[2]})
			continue
		}
		if len(entries) == 0 || !strings.HasPrefix(line, " ") {
			continue
		}
		e := &entries[len(entries)-1]
		for _, c := range cveID.FindAllString(line, -1) {
			if !contains(e.CVEs, c) {
				e.CVEs = append(e.CVEs, c)
			}
		}
	}
	return entries, sc.Err()
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// Fix is a CVE fixed in a source package, as its changelog tells: the
// first version of the package's lineage carrying the fix (the smallest
// version, in Debian's order, among the entry naming the CVE and every
// later one — a "~deb12u1" backport sorts below the unstable entry it
// carries), and the version of the entry just before it (still
// vulnerable), if there is one older than Fixed.
type Fix struct {
	Source     string
	CVE        string
	Fixed      string
	Vulnerable string
}

// Fixes derives fixes from changelogs: for each (source, CVE) the oldest
// entry naming it.
func Fixes(changelogs map[string][]ChangelogEntry) []Fix {
	var out []Fix
	for src, entries := range changelogs {
		parsed := make([]version.Version, len(entries))
		for i, e := range entries {
			parsed[i], _ = version.Debian.Parse(e.Version) // validated when read
		}
		firstMention := map[string]int{} // CVE → index of the oldest entry naming it
		for i, e := range entries {
			for _, c := range e.CVEs {
				firstMention[c] = i // entries are newest first: the last seen is the oldest
			}
		}
		for cve, i := range firstMention {
			fixed := parsed[i]
			for j := 0; j < i; j++ {
				if parsed[j].Compare(fixed) < 0 {
					fixed = parsed[j]
				}
			}
			f := Fix{Source: src, CVE: cve, Fixed: fixed.String()}
			if i+1 < len(entries) && parsed[i+1].Compare(fixed) < 0 {
				f.Vulnerable = entries[i+1].Version
			}
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].CVE < out[j].CVE
	})
	return out
}

// WriteDebianOSV writes one OSV record per fix into dir, in the shape of
// Debian's records on osv.dev (ecosystem "Debian:12", the source package,
// an ECOSYSTEM range from "0" to the fixed version), with ids of their
// own (BWTEST-…) so they are never mistaken for Debian's.
func WriteDebianOSV(dir, ecosystem string, fixes []Fix) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range fixes {
		rec := map[string]any{
			"schema_version": "1.6.0",
			"id":             "BWTEST-" + f.CVE + "-" + f.Source,
			"modified":       "2026-01-01T00:00:00Z",
			"aliases":        []string{f.CVE},
			"summary":        f.CVE + " in " + f.Source + " (from its Debian changelog)",
			"affected": []any{map[string]any{
				"package": map[string]string{"ecosystem": ecosystem, "name": f.Source},
				"ranges": []any{map[string]any{
					"type":   "ECOSYSTEM",
					"events": []any{map[string]string{"introduced": "0"}, map[string]string{"fixed": f.Fixed}},
				}},
			}},
		}
		b, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "BWTEST-"+f.CVE+"-"+f.Source+".json"), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
