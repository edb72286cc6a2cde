package catalog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog/image"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

// dpkgQuery lists the packages dpkg itself considers present in root
// (files on disk: not not-installed, not config-files), as
// "name:arch version source source-version".
func dpkgQuery(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W",
		"-f=${db:Status-Status}\t${Package}:${Architecture} ${Version} ${source:Package} ${source:Version}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		status, rest, _ := strings.Cut(l, "\t")
		if status != "not-installed" && status != "config-files" {
			lines = append(lines, rest)
		}
	}
	slices.Sort(lines)
	return lines
}

func debLines(s *sbom.SBOM) []string {
	var lines []string
	for _, p := range s.Packages {
		if p.Type == sbom.Deb {
			lines = append(lines, fmt.Sprintf("%s:%s %s %s %s", p.Name, p.Arch, p.Version, p.SourceName, p.SourceVersion))
		}
	}
	slices.Sort(lines)
	return lines
}

func TestBookwormRootfsMatchesDpkgQuery(t *testing.T) {
	root := filepath.Join(bookworm(t), "rootfs")
	want := dpkgQuery(t, root)
	s, tree, err := Dir(context.Background(), root, Options{Tool: "bulwark/test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Problems) != 0 {
		t.Errorf("problems: %v", tree.Problems)
	}
	got := debLines(s)
	if !reflect.DeepEqual(got, want) {
		for _, l := range diffLines(got, want) {
			t.Error(l)
		}
		t.Fatalf("%d packages, dpkg-query lists %d", len(got), len(want))
	}
	if len(got) < 80 {
		t.Fatalf("only %d packages in a minbase root", len(got))
	}
	// The .debs debootstrap leaves in the apt cache are not installed
	// packages: the count above already matches dpkg; make sure they are
	// there, so this test means something.
	debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb"))
	if len(debs) < 50 {
		t.Fatalf("fixture has %d cached .debs; the double-counting check needs them", len(debs))
	}
	if s.Distro == nil || *s.Distro != (sbom.Distro{ID: "debian", VersionID: "12", Codename: "bookworm", Name: "Debian GNU/Linux 12 (bookworm)"}) {
		t.Fatalf("distro %+v", s.Distro)
	}
	for _, p := range s.Packages {
		if p.Type != sbom.Deb {
			t.Errorf("non-deb package in minbase: %+v", p)
		}
		if p.Layer != "" || !reflect.DeepEqual(p.Paths, []string{"/var/lib/dpkg/status"}) {
			t.Errorf("%s: layer %q paths %q", p.Name, p.Layer, p.Paths)
		}
		if want := fmt.Sprintf("pkg:deb/debian/%s@%s?arch=%s&distro=debian-12", strings.ReplaceAll(p.Name, "+", "%2B"), strings.ReplaceAll(p.Version, "+", "%2B"), p.Arch); p.PURL != want {
			t.Errorf("purl %s, want %s", p.PURL, want)
		}
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// Licenses come from the machine-readable /usr/share/doc/*/copyright
	// files (74 of 88 in bookworm minbase; the others are free-form or a
	// symlinked doc directory).
	withLicenses := 0
	for _, p := range s.Packages {
		if len(p.Licenses) > 0 {
			withLicenses++
		}
		if p.Name == "bash" && !slices.Contains(p.Licenses, "GPL-3+") {
			t.Errorf("bash licenses %q", p.Licenses)
		}
	}
	if withLicenses < 60 {
		t.Errorf("only %d packages with licenses", withLicenses)
	}
}

func diffLines(got, want []string) []string {
	var out []string
	for _, g := range got {
		if !slices.Contains(want, g) {
			out = append(out, "extra:   "+g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, "missing: "+w)
		}
	}
	return out
}

func TestBookwormImageMatchesRootfs(t *testing.T) {
	fx := bookworm(t)
	ctx := context.Background()
	img, err := image.Layout(ctx, filepath.Join(fx, "oci"), "bookworm-minbase", image.Platform{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	fromImage, tree, err := Image(ctx, img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Problems) != 0 {
		t.Errorf("problems: %v", tree.Problems)
	}
	fromDir, _, err := Dir(ctx, filepath.Join(fx, "rootfs"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := debLines(fromImage), dpkgQuery(t, filepath.Join(fx, "rootfs")); !reflect.DeepEqual(got, want) {
		t.Fatalf("image: %q", diffLines(got, want))
	}
	layer := img.Layers[0].Digest
	for i := range fromImage.Packages {
		p := fromImage.Packages[i]
		if p.Layer != layer {
			t.Errorf("%s: layer %q, want %s", p.Name, p.Layer, layer)
		}
		p.Layer = ""
		if !reflect.DeepEqual(p, fromDir.Packages[i]) {
			t.Errorf("image and rootfs disagree:\n%+v\n%+v", p, fromDir.Packages[i])
		}
	}
	if fromImage.Source.Kind != sbom.SourceImage || fromImage.Source.Digest != img.Manifest.Digest || len(fromImage.Layers) != 1 || fromImage.Layers[0].DiffID == "" {
		t.Errorf("source %+v layers %+v", fromImage.Source, fromImage.Layers)
	}
}

const (
	osReleaseDebian = "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"
	statusL0        = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9\n\n" +
		"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\n" +
		"Package: python3-requests\nStatus: install ok installed\nArchitecture: all\nSource: requests\nVersion: 2.28.1+dfsg-1\n"
	statusL1 = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u10\n\n" +
		"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\n" +
		"Package: python3-requests\nStatus: install ok installed\nArchitecture: all\nSource: requests\nVersion: 2.28.1+dfsg-1\n\n" +
		"Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10+deb12u12\n\n" +
		"Package: removed\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n"
	requestsMeta = "Metadata-Version: 2.1\nName: requests\nVersion: 2.28.1\nLicense: Apache 2.0\n\n"
)

// layeredImage builds a three-layer image: packages installed, upgraded,
// removed and hardlinked across layers.
func layeredImage(t *testing.T) (dir string, layers []digest.Digest) {
	gobin, err := os.ReadFile(buildGobin(t))
	if err != nil {
		t.Fatal(err)
	}
	pyMeta := "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA"
	l0 := tarLayer(t,
		tfile("etc/os-release", osReleaseDebian),
		tfile("var/lib/dpkg/status", statusL0),
		tfile("var/lib/dpkg/info/python3-requests.list", "/.\n/usr\n/"+pyMeta+"\n"),
		tfile(pyMeta, requestsMeta),
		texec("usr/bin/app", gobin),
		tfile("app/node_modules/left-pad/package.json", `{"name":"left-pad","version":"1.3.0","license":"WTFPL"}`),
		tfile("app/node_modules/left-pad/node_modules/inner/package.json", `{"name":"inner","version":"0.1.0"}`),
		tfile("app/node_modules/@scope/x/package.json", `{"name":"@scope/x","version":"2.0.0"}`),
		tfile("app/node_modules/@scope/x/lib/package.json", `{"type":"module"}`),
		tfile("app/package.json", `{"name":"the-app","version":"1.0.0"}`),
		tfile("var/cache/apt/archives/curl_7.88.1-10+deb12u12_amd64.deb", "!<arch>\ndebian-binary"),
	)
	l1 := tarLayer(t,
		tfile("var/lib/dpkg/status", statusL1),
		tfile("app/node_modules/.wh.left-pad", ""),
		tfile("opt/venv/lib/python3.11/site-packages/Flask-3.0.0.dist-info/METADATA", "Name: Flask\nVersion: 3.0.0\nLicense-Expression: BSD-3-Clause\n\n"),
	)
	l2 := tarLayer(t,
		tlink("usr/local/bin/app2", "usr/bin/app"),
	)
	dir = t.TempDir()
	return dir, writeLayout(t, dir, v1.Image{}, l0, l1, l2)
}

func TestLayeredImage(t *testing.T) {
	dir, layers := layeredImage(t)
	ctx := context.Background()
	img, err := image.Layout(ctx, dir, "", image.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, tree, err := Image(ctx, img, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Problems) != 0 {
		t.Errorf("problems %v", tree.Problems)
	}
	got := map[string]string{}
	for _, p := range s.Packages {
		l := slices.Index(layers, p.Layer)
		got[p.PURL] = fmt.Sprintf("L%d %s %s", l, strings.Join(p.Paths, ","), p.OwnedBy)
	}
	v := runtime.Version()
	want := map[string]string{
		"pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12":        "L1 /var/lib/dpkg/status ",
		"pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12":             "L0 /var/lib/dpkg/status ",
		"pkg:deb/debian/python3-requests@2.28.1%2Bdfsg-1?arch=all&distro=debian-12": "L0 /var/lib/dpkg/status ",
		"pkg:deb/debian/curl@7.88.1-10%2Bdeb12u12?arch=amd64&distro=debian-12":      "L1 /var/lib/dpkg/status ",
		"pkg:pypi/requests@2.28.1":                               "L0 /usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA deb:python3-requests",
		"pkg:pypi/flask@3.0.0":                                   "L1 /opt/venv/lib/python3.11/site-packages/Flask-3.0.0.dist-info/METADATA ",
		"pkg:npm/%40scope/x@2.0.0":                               "L0 /app/node_modules/@scope/x/package.json ",
		"pkg:golang/stdlib@" + v:                                 "L0 /usr/bin/app,/usr/local/bin/app2 ",
		"pkg:golang/github.com/bulwark-dev/bulwark@%28devel%29":  "L0 /usr/bin/app,/usr/local/bin/app2 ",
		"pkg:golang/github.com/package-url/packageurl-go@v0.1.7": "L0 /usr/bin/app,/usr/local/bin/app2 ",
	}
	if !reflect.DeepEqual(got, want) {
		for k, g := range got {
			if want[k] != g {
				t.Errorf("got  %s: %s", k, g)
			}
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("want %s: %s", k, w)
			}
		}
	}
	// The JSON form round-trips.
	var buf bytes.Buffer
	if err := s.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := sbom.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip changed the SBOM:\n%+v\n%+v", back, s)
	}
	if !s.Created.Equal(now) || len(s.Layers) != 3 || s.Layers[2].Digest != layers[2] {
		t.Fatalf("created %v layers %+v", s.Created, s.Layers)
	}
}

func TestDistrolessAndAlpine(t *testing.T) {
	ctx := context.Background()
	gobin, err := os.ReadFile(buildGobin(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("distroless", func(t *testing.T) {
		dir := t.TempDir()
		writeLayout(t, dir, v1.Image{}, tarLayer(t,
			tfile("etc/os-release", "PRETTY_NAME=\"Distroless\"\nID=debian\nVERSION_ID=\"12\"\n"),
			tfile("var/lib/dpkg/status.d/base-files", "Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n"),
			tfile("var/lib/dpkg/status.d/libssl3", "Package: libssl3\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\nSource: openssl\n"),
			tfile("var/lib/dpkg/status.d/tool", "Package: tool\nVersion: 1.0\nArchitecture: amd64\n"),
			tfile("var/lib/dpkg/status.d/tool.md5sums", "0123456789abcdef0123456789abcdef  usr/bin/tool\n"),
			texec("usr/bin/tool", gobin),
		))
		img, err := image.Layout(ctx, dir, "test", image.Platform{OS: "linux", Architecture: "amd64"})
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		s, _, err := Image(ctx, img, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var debs []string
		for _, p := range s.Packages {
			switch p.Type {
			case sbom.Deb:
				debs = append(debs, p.Name+" "+p.SourceName+" "+p.SourceVersion)
			case sbom.Golang:
				if p.OwnedBy != "deb:tool" {
					t.Errorf("%s: owned by %q", p.PURL, p.OwnedBy)
				}
			}
		}
		if want := []string{"base-files base-files 12.4+deb12u5", "libssl3 openssl 3.0.11-1~deb12u2", "tool tool 1.0"}; !reflect.DeepEqual(debs, want) {
			t.Fatalf("debs %q", debs)
		}
	})
	t.Run("alpine", func(t *testing.T) {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "etc"), 0o755)
		os.MkdirAll(filepath.Join(root, "lib/apk/db"), 0o755)
		os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n"), 0o644)
		os.WriteFile(filepath.Join(root, "lib/apk/db/installed"), []byte(alpineInstalled), 0o644)
		s, _, err := Dir(ctx, root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var purls []string
		for _, p := range s.Packages {
			purls = append(purls, p.PURL+" "+p.SourceName)
		}
		want := []string{"pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1 openssl", "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1 musl"}
		if !reflect.DeepEqual(purls, want) {
			t.Fatalf("purls %q", purls)
		}
		if s.Packages[1].Licenses[0] != "MIT" {
			t.Fatalf("licenses %q", s.Packages[1].Licenses)
		}
	})
}

func TestOversizedDatabaseIsAProblem(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), bytes.Repeat([]byte("Package: ab\nVersion: 1\n\n"), 1000), 0o644)
	s, tree, err := Dir(context.Background(), root, Options{MaxFileSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Packages) != 0 || len(tree.Problems) != 1 || !strings.Contains(tree.Problems[0].Err.Error(), "not parsed") {
		t.Fatalf("packages %d, problems %v", len(s.Packages), tree.Problems)
	}
}
