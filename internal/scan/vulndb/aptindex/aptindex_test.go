package aptindex_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/aptindex"
)

const index = `Package: libc6
Source: glibc
Version: 2.36-9+deb12u4
Architecture: amd64
Description: GNU C Library
 Contains the standard libraries.
 .
 More text.

Package: libssl3
Source: openssl (3.0.15-1~deb12u1)
Version: 3.0.15-1~deb12u1+b1
Architecture: amd64

Package: tzdata
Version: 2025b-0+deb12u1
Architecture: all

Package: libc6
Source: glibc
Version: 2.36-9+deb12u3
Architecture: amd64

Package: libc6
Source: glibc
Version: 2.36-9+deb12u9
Architecture: arm64
`

func load(t *testing.T, text string) *aptindex.Index {
	t.Helper()
	ix := &aptindex.Index{}
	if err := ix.Add(strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestBehind(t *testing.T) {
	ix := load(t, index)
	if ix.Len() != 4 {
		t.Fatalf("Len %d", ix.Len())
	}
	behind, invalid := ix.Behind([]aptindex.Installed{
		{Name: "libc6", Version: "2.36-9+deb12u3", Architecture: "amd64", Source: "glibc"},       // older than u4 (u3 also listed)
		{Name: "libssl3", Version: "3.0.15-1~deb12u1", Architecture: "amd64", Source: "openssl"}, // the binNMU is newer
		{Name: "tzdata", Version: "2025b-0+deb12u1", Architecture: "all"},                        // same
		{Name: "bash", Version: "5.2.15-2+b2", Architecture: "amd64"},                            // not in the archive
		{Name: "libc6", Version: "2.36-9+deb12u9", Architecture: "arm64"},                        // same
		{Name: "tzdata", Version: "2024a-0+deb12u1"},                                             // any architecture
		{Name: "libssl3", Version: "not a version!", Architecture: "amd64"},
	})
	var got []string
	for _, b := range behind {
		got = append(got, b.Installed.Name+" "+b.Installed.Version+" < "+b.Available+" "+b.AvailableSource)
	}
	want := []string{
		"libc6 2.36-9+deb12u3 < 2.36-9+deb12u4 ",
		"libssl3 3.0.15-1~deb12u1 < 3.0.15-1~deb12u1+b1 3.0.15-1~deb12u1",
		"tzdata 2024a-0+deb12u1 < 2025b-0+deb12u1 ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("behind:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(invalid) != 1 {
		t.Errorf("invalid: %v", invalid)
	}
}

func TestParseEntries(t *testing.T) {
	var got []aptindex.Entry
	status := "Package: a\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\n\nPackage: b\nStatus: deinstall ok config-files\nArchitecture: amd64\n\n"
	if err := aptindex.Parse(strings.NewReader(status), func(e aptindex.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Installed() || got[1].Installed() || got[0].Source != "a" {
		t.Fatalf("%+v", got)
	}
}

func TestOpenCompressed(t *testing.T) {
	dir := t.TempDir()
	var gz, l4 bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(index))
	zw.Close()
	lw := lz4.NewWriter(&l4)
	lw.Write([]byte(index))
	lw.Close()
	files := map[string][]byte{"Packages": []byte(index), "Packages.gz": gz.Bytes(), "Packages.lz4": l4.Bytes()}
	var paths []string
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		paths = append(paths, p)
	}
	ix, err := aptindex.Load(context.Background(), paths...)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != 4 {
		t.Fatalf("Len %d", ix.Len())
	}
	os.WriteFile(filepath.Join(dir, "x.xz"), []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2}, 0o644)
	if _, err := aptindex.Load(context.Background(), filepath.Join(dir, "x.xz")); err == nil {
		t.Error("xz accepted")
	}
}

// TestRealSecurityIndex reads this machine's bookworm-security index.
func TestRealSecurityIndex(t *testing.T) {
	paths, _ := filepath.Glob("/var/lib/apt/lists/*bookworm-security*_Packages*")
	if len(paths) == 0 {
		t.Fatal("no bookworm-security index under /var/lib/apt/lists (apt-get update)")
	}
	ix, err := aptindex.Load(context.Background(), paths...)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() < 100 {
		t.Fatalf("only %d packages", ix.Len())
	}
}

func TestParseHostile(t *testing.T) {
	for name, doc := range map[string]string{
		"continuation first": " leading continuation\n",
		"no colon":           "Package libc6\n",
		"bad field name":     "Pack age: x\nVersion: 1\n",
		"duplicate field":    "Package: a\nPackage: b\nVersion: 1\n",
		"no package":         "Version: 1.0\n",
		"no version":         "Package: a\nArchitecture: amd64\n",
		"bad version":        "Package: a\nVersion: not-a-version\n",
		"bad name":           "Package: a/../b\nVersion: 1.0\n",
		"bad source":         "Package: a\nVersion: 1.0\nSource: x (1.0\n",
		"bad source version": "Package: a\nVersion: 1.0\nSource: x (zz)\n",
		"long line":          "Package: a\nVersion: 1.0\nDescription: " + strings.Repeat("x", aptindex.MaxLine+10) + "\n",
		"huge paragraph":     "Package: a\nVersion: 1.0\nDescription: x\n" + strings.Repeat(" "+strings.Repeat("y", 1000)+"\n", aptindex.MaxParagraph/1000+10),
		"too many fields":    "Package: a\nVersion: 1.0\n" + manyFields(aptindex.MaxFields+1),
		"control in arch":    "Package: a\nVersion: 1.0\nArchitecture: am\x01d64\n",
		"epoch not a number": "Package: a\nVersion: x:1.0\n",
	} {
		err := aptindex.Parse(strings.NewReader(doc), func(aptindex.Entry) error { return nil })
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, aptindex.ErrSyntax) {
			t.Errorf("%s: %v does not wrap ErrSyntax", name, err)
		}
	}
}

func manyFields(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "X-Field-%d: v\n", i)
	}
	return b.String()
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(index))
	f.Add([]byte("Package: a\nStatus: install ok installed\nVersion: 1:1.0-1\nSource: b (1.0-1)\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix := &aptindex.Index{}
		if err := ix.Add(bytes.NewReader(data)); err != nil {
			return
		}
		ix.Behind([]aptindex.Installed{{Name: "a", Version: "1.0"}, {Name: "libc6", Version: "2.36-9", Architecture: "amd64"}})
	})
}
