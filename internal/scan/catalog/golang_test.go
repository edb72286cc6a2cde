package catalog

import (
	"bytes"
	"debug/buildinfo"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	gobinOnce sync.Once
	gobinPath string
	gobinErr  error
)

// buildGobin builds testdata/gobin once per test binary run: a Go program
// of this module that links github.com/package-url/packageurl-go.
func buildGobin(t testing.TB) string {
	t.Helper()
	gobinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "catalog-gobin")
		if err != nil {
			gobinErr = err
			return
		}
		gobinPath = filepath.Join(dir, "gobin")
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", gobinPath, "./testdata/gobin").CombinedOutput()
		if err != nil {
			gobinErr = errors.New("go build: " + err.Error() + ": " + string(out))
		}
	})
	if gobinErr != nil {
		t.Fatal(gobinErr)
	}
	return gobinPath
}

func goroot(t testing.TB) string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// realGoBinaries are Go programs on this machine: the toolchain's own, and
// Debian's skopeo and runc (which the test suite installs).
func realGoBinaries(t *testing.T) []string {
	root := goroot(t)
	bins := []string{buildGobin(t), filepath.Join(root, "bin", "go"), filepath.Join(root, "bin", "gofmt"), "/usr/bin/skopeo", "/usr/sbin/runc"}
	for _, b := range bins {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("%s: %v (skopeo and runc come with scripts/test.sh's packages)", b, err)
		}
	}
	return bins
}

func TestGoBinaryStreamMatchesBuildinfo(t *testing.T) {
	buf := make([]byte, 64<<10)
	for _, bin := range realGoBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			f, err := os.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			bi, err := buildinfo.Read(f)
			if err != nil {
				t.Fatal(err)
			}
			ra, err := ReadGoBinary(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Seek(0, 0); err != nil {
				t.Fatal(err)
			}
			st, err := ScanGoBinary(f, 1<<30, buf)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ra, st) {
				t.Fatalf("random access and stream disagree:\n%+v\n%+v", ra, st)
			}
			if !strings.HasPrefix(bi.GoVersion, st.GoVersion) || !strings.HasPrefix(st.GoVersion, "go1.") {
				t.Fatalf("go version %q, buildinfo says %q", st.GoVersion, bi.GoVersion)
			}
			if len(st.Deps) != len(bi.Deps) {
				t.Fatalf("%d deps, buildinfo has %d", len(st.Deps), len(bi.Deps))
			}
			t.Logf("%s: %s, main %+v, %d deps", bin, st.GoVersion, st.Main, len(st.Deps))
		})
	}
}

func TestGoBinaryTestProgram(t *testing.T) {
	g := readGo(t, buildGobin(t))
	if g.GoVersion != runtime.Version() {
		t.Errorf("go version %q, want %q", g.GoVersion, runtime.Version())
	}
	want := GoModule{Path: "github.com/bulwark-dev/bulwark", Version: "(devel)"}
	if g.Main != want {
		t.Errorf("main %+v, want %+v", g.Main, want)
	}
	if !reflect.DeepEqual(g.Deps, []GoModule{{"github.com/package-url/packageurl-go", "v0.1.7"}}) {
		t.Errorf("deps %+v", g.Deps)
	}
	pkgs := goPackages(g)
	var purls []string
	for _, p := range pkgs {
		purls = append(purls, p.PURL)
	}
	wantPURLs := []string{"pkg:golang/stdlib@" + runtime.Version(), "pkg:golang/github.com/bulwark-dev/bulwark@%28devel%29", "pkg:golang/github.com/package-url/packageurl-go@v0.1.7"}
	if !reflect.DeepEqual(purls, wantPURLs) {
		t.Errorf("purls %q, want %q", purls, wantPURLs)
	}
}

func readGo(t *testing.T, path string) *GoBinary {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ScanGoBinary(bytes.NewReader(b), 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGoBinaryNotGo(t *testing.T) {
	for _, bin := range []string{"/bin/busybox", "/usr/bin/env"} {
		f, err := os.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ReadGoBinary(f); err != ErrNotGo {
			t.Errorf("%s: random access: %v, want ErrNotGo", bin, err)
		}
		f.Seek(0, 0)
		if _, err := ScanGoBinary(f, 1<<30, nil); err != ErrNotGo {
			t.Errorf("%s: stream: %v, want ErrNotGo", bin, err)
		}
		f.Close()
	}
}

// header builds a buildinfo header at a 16-byte aligned offset of an ELF
// "file" followed by the given inline strings.
func fakeGoELF(pad int, flags byte, strs ...[]byte) []byte {
	b := append([]byte("\x7fELF"), make([]byte, pad)...)
	for len(b)%16 != 0 {
		b = append(b, 0)
	}
	hdr := make([]byte, 32)
	copy(hdr, buildInfoMagic)
	hdr[14], hdr[15] = 8, flags
	b = append(b, hdr...)
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func TestScanGoBinaryHostile(t *testing.T) {
	mod := "0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6path\tx\nmod\tx\t(devel)\t\ndep\ty\tv1.0.0\t\n\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"
	ok := fakeGoELF(100, 2, []byte("go1.22.1"), []byte(mod))
	g, err := ScanGoBinary(bytes.NewReader(ok), 1<<20, nil)
	if err != nil || g.GoVersion != "go1.22.1" || g.Main.Path != "x" || len(g.Deps) != 1 {
		t.Fatalf("well-formed: %+v %v", g, err)
	}
	// The magic straddling a chunk boundary of the scan buffer.
	for _, pad := range []int{64<<10 - 40, 64<<10 - 4, 64<<10 + 12, 3 * 64 << 10} {
		b := fakeGoELF(pad, 2, []byte("go1.22.1"), []byte(mod))
		if g, err := ScanGoBinary(bytes.NewReader(b), 1<<30, make([]byte, 64<<10)); err != nil || g.GoVersion != "go1.22.1" {
			t.Errorf("pad %d: %+v %v", pad, g, err)
		}
	}
	misaligned := append([]byte("\x7fELF\x00\x00\x00\x00\x00"), ok[16:]...)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotGo},
		{"not ELF", append([]byte("MZ"), ok[4:]...), ErrNotGo},
		{"misaligned magic", misaligned, ErrNotGo},
		{"truncated header", ok[:len(ok)-len(mod)-45], ErrNotGo},
		{"pre-1.18 pointer format", fakeGoELF(0, 0), errOldGo},
		{"truncated strings", ok[:len(ok)-10], errAny},
		{"huge length", fakeGoELF(0, 2, []byte("go1"), nil)[:52], errAny},
		{"varint overflow", append(fakeGoELF(0, 2), bytes.Repeat([]byte{0xff}, 12)...), errAny},
		{"length over the limit", append(fakeGoELF(0, 2), binary.AppendUvarint(nil, maxBuildInfo+1)...), errAny},
		{"bad module text", fakeGoELF(0, 2, []byte("go1.22.1"), []byte(strings.Replace(mod, "dep\ty\tv1.0.0\t", "dep\ty", 1))), errAny},
		{"no sentinels: version only", fakeGoELF(0, 2, []byte("go1.22.1"), []byte("path\tx\n")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ScanGoBinary(bytes.NewReader(tc.in), 1<<20, nil)
			checkErr(t, err, tc.want)
		})
	}
	// The limit stops the scan.
	big := fakeGoELF(2<<20, 2, []byte("go1.22.1"), []byte(mod))
	if _, err := ScanGoBinary(bytes.NewReader(big), 1<<20, nil); err != ErrNotGo {
		t.Errorf("past the limit: %v", err)
	}
}

func FuzzScanGoBinary(f *testing.F) {
	mod := "0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6path\tx\nmod\tx\t(devel)\t\n\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"
	f.Add(fakeGoELF(10, 2, []byte("go1.22.1"), []byte(mod)))
	f.Add(fakeGoELF(0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ScanGoBinary(bytes.NewReader(b), 1<<20, nil)
		if err == nil && g == nil {
			t.Fatal("nil result without error")
		}
		if err == nil {
			goPackages(g) // must not panic on whatever the module text held
		}
	})
}
