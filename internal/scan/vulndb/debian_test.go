package vulndb_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/aptindex"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vulntest"
)

func minbaseSBOM(t testing.TB) *sbom.SBOM {
	t.Helper()
	rootfs, _ := vulntest.BookwormMinbase(t)
	s, _, err := catalog.Dir(context.Background(), rootfs, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Distro == nil || s.Distro.ID != "debian" || s.Distro.VersionID != "12" {
		t.Fatalf("distro %+v", s.Distro)
	}
	return s
}

// TestDebianChangelogAdvisories matches the bookworm minbase image against
// OSV records written from its own changelogs: every CVE its packages
// name, with the version that fixed it. The installed packages carry every
// one of those fixes, so nothing may match; the same packages at the
// version just before each fix must match that advisory, by source
// package, with the fixed version.
func TestDebianChangelogAdvisories(t *testing.T) {
	db := openShared(t)
	_, fixes := sharedRealDB(t)
	s := minbaseSBOM(t)
	if len(fixes) < 100 {
		t.Fatalf("only %d CVE fixes in the fixture's changelogs", len(fixes))
	}

	r := match(t, db, s)
	for _, f := range r.Findings {
		if strings.HasPrefix(f.ID, "BWTEST-") {
			t.Errorf("installed %s %s (source %s %s) matched %s fixed in %s", f.Package.Name, f.Package.Version, f.Name, f.Version, f.ID, f.Fixed)
		}
	}

	bySource := map[string][]int{}
	for i, p := range s.Packages {
		if p.Type == sbom.Deb {
			bySource[p.SourceName] = append(bySource[p.SourceName], i)
		}
	}
	m, err := db.NewMatcher(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checked, binaries := 0, 0
	for _, fx := range fixes {
		if fx.Vulnerable == "" {
			continue
		}
		idx := bySource[fx.Source]
		if len(idx) == 0 {
			t.Errorf("source %s of a changelog has no installed package", fx.Source)
			continue
		}
		old := *s
		old.Packages = append([]sbom.Package{}, s.Packages...)
		for _, i := range idx {
			old.Packages[i].SourceVersion = fx.Vulnerable
		}
		r, err := m.Match(context.Background(), &old)
		if err != nil {
			t.Fatal(err)
		}
		want := "BWTEST-" + fx.CVE + "-" + fx.Source
		found := map[string]bool{}
		for _, f := range r.Findings {
			if f.ID != want {
				continue
			}
			found[f.Package.Name] = true
			if f.Fixed != fx.Fixed || f.Name != fx.Source || f.Version != fx.Vulnerable || f.Aliases[0] != fx.CVE || f.Ecosystem != "Debian:12" {
				t.Errorf("%s: %+v", want, f)
			}
		}
		// Every binary package of the source is affected.
		for _, i := range idx {
			if !found[s.Packages[i].Name] {
				t.Errorf("%s at source version %s (fixed in %s): binary %s not reported", fx.Source, fx.Vulnerable, fx.Fixed, s.Packages[i].Name)
			}
		}
		checked++
		binaries += len(idx)
	}
	if checked < 50 {
		t.Fatalf("only %d vulnerable versions checked", checked)
	}
	t.Logf("%d CVE fixes from %d changelogs: installed versions clean; %d earlier versions (%d binary packages) matched by source", len(fixes), len(bySource), checked, binaries)
}

// securityIndexes are this machine's bookworm-security Packages indexes.
func securityIndexes(t testing.TB) []string {
	t.Helper()
	idx, _ := filepath.Glob("/var/lib/apt/lists/*bookworm-security*_Packages*")
	if len(idx) == 0 {
		t.Fatal("no bookworm-security Packages index under /var/lib/apt/lists (is deb.debian.org/debian-security in the APT sources, and apt-get update run?)")
	}
	return idx
}

// TestBehindSecurityArchive compares the fixture's installed packages with
// this machine's bookworm-security index, and checks each verdict with
// dpkg --compare-versions.
func TestBehindSecurityArchive(t *testing.T) {
	ctx := context.Background()
	paths := securityIndexes(t)
	ix, err := aptindex.Load(ctx, paths...)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() < 100 {
		t.Fatalf("security index has %d packages", ix.Len())
	}
	// The oracle's view of the index: every version of every package.
	versions := map[string][]string{} // name/arch → versions
	for _, p := range paths {
		rc, err := aptindex.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		err = aptindex.Parse(rc, func(e aptindex.Entry) error {
			k := e.Package + "/" + e.Architecture
			versions[k] = append(versions[k], e.Version)
			return nil
		})
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(a, op, b string) bool { return exec.Command("dpkg", "--compare-versions", a, op, b).Run() == nil }
	s := minbaseSBOM(t)
	check := func(s *sbom.SBOM) []aptindex.Behind {
		r := &vulndb.Report{}
		r.CheckArchive(s, ix, paths)
		behind := map[string]aptindex.Behind{}
		for _, b := range r.Archive.Behind {
			behind[b.Installed.Name] = b
		}
		inIndex := 0
		for _, p := range vulndb.InstalledDebs(s) {
			vs := versions[p.Name+"/"+p.Architecture]
			if len(vs) == 0 {
				vs = versions[p.Name+"/all"]
			}
			if len(vs) == 0 {
				continue
			}
			inIndex++
			avail := vs[0]
			for _, v := range vs[1:] {
				if dpkg(v, "gt", avail) {
					avail = v
				}
			}
			older := dpkg(p.Version, "lt", avail)
			b, reported := behind[p.Name]
			if older != reported || (reported && b.Available != avail) {
				t.Errorf("%s %s vs archive %s: dpkg says older=%v, bulwark reported %+v", p.Name, p.Version, avail, older, b)
			}
		}
		if inIndex == 0 {
			t.Fatal("no installed package is in the security index")
		}
		t.Logf("%d installed packages in the index, %d behind", inIndex, len(r.Archive.Behind))
		return r.Archive.Behind
	}
	behind := check(s)
	t.Logf("fixture: %d packages behind bookworm-security", len(behind))
	for _, b := range behind {
		t.Logf("  %s %s < %s", b.Installed.Name, b.Installed.Version, b.Available)
	}

	// The same image a few updates earlier: a package that is up to date
	// with the archive, set back to the version its changelog lists before
	// the installed one, must be behind.
	logs, err := vulntest.ReadChangelogs(mustRootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	isBehind := map[string]bool{}
	for _, b := range behind {
		isBehind[b.Installed.Name] = true
	}
	old := *s
	old.Packages = append([]sbom.Package{}, s.Packages...)
	target := ""
	for i, p := range old.Packages {
		hist := logs[p.SourceName]
		vs := append(versions[p.Name+"/"+p.Arch], versions[p.Name+"/all"]...)
		if p.Type != sbom.Deb || len(vs) == 0 || isBehind[p.Name] || len(hist) < 2 || hist[0].Version != p.SourceVersion || p.Version != p.SourceVersion {
			continue
		}
		// The newest earlier version that the archive has replaced.
		for _, h := range hist[1:] {
			if dpkg(h.Version, "lt", vs[0]) {
				old.Packages[i].Version, old.Packages[i].SourceVersion = h.Version, h.Version
				target = p.Name + " " + h.Version
				break
			}
		}
		if target != "" {
			break
		}
	}
	if target == "" {
		t.Fatal("no up-to-date package of the index with changelog history in the fixture")
	}
	found := false
	for _, b := range check(&old) {
		found = found || strings.HasPrefix(target, b.Installed.Name+" ")
	}
	if !found {
		t.Errorf("%s not reported behind the security archive", target)
	}
	t.Logf("set back %s: reported behind", target)
}

func mustRootfs(t testing.TB) string {
	r, _ := vulntest.BookwormMinbase(t)
	return r
}
