package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

const bookwormStatus = `Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12987
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 Source: not-a-field (9.9)

Package: bsdutils
Essential: yes
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5)
Version: 1:2.38.1-5+b1
Description: basic utilities from 4.4BSD-Lite

Package: oldconf
Status: deinstall ok config-files
Architecture: all
Version: 1.0-1

Package: half
Status: install reinstreq half-installed
Architecture: amd64
Version: 2.0


`

func TestParseDpkgStatus(t *testing.T) {
	pkgs, skipped, err := ParseDpkgStatus(strings.NewReader(bookwormStatus))
	if err != nil || skipped != 0 {
		t.Fatalf("err %v, skipped %d", err, skipped)
	}
	want := []DebPackage{
		{Name: "libc6", Version: "2.36-9+deb12u10", Arch: "amd64", SourceName: "glibc", SourceVersion: "2.36-9+deb12u10", Status: "installed"},
		{Name: "bsdutils", Version: "1:2.38.1-5+b1", Arch: "amd64", SourceName: "util-linux", SourceVersion: "2.38.1-5", Status: "installed"},
		{Name: "oldconf", Version: "1.0-1", Arch: "all", SourceName: "oldconf", SourceVersion: "1.0-1", Status: "config-files"},
		{Name: "half", Version: "2.0", Arch: "amd64", SourceName: "half", SourceVersion: "2.0", Status: "half-installed"},
	}
	if !reflect.DeepEqual(pkgs, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", pkgs, want)
	}
	installed := []bool{true, true, false, true}
	for i, p := range pkgs {
		if p.Installed() != installed[i] {
			t.Errorf("%s: Installed() = %v", p.Name, p.Installed())
		}
	}
}

func TestParseDpkgStatusHostile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		pkgs    int
		skipped int
		err     bool
	}{
		{"empty", "", 0, 0, false},
		{"only blank lines", "\n\n \n\t\n", 0, 0, false},
		{"no version", "Package: a1\nStatus: install ok installed\n", 0, 1, false},
		{"no package", "Version: 1.0\n", 0, 1, false},
		{"name with space", "Package: a b\nVersion: 1.0\n", 0, 1, false},
		{"name with slash", "Package: ../../etc\nVersion: 1.0\n", 0, 1, false},
		{"version with space", "Package: ab\nVersion: 1.0 rm -rf\n", 0, 1, false},
		{"version not starting with digit", "Package: ab\nVersion: x1\n", 0, 1, false},
		{"bad epoch", "Package: ab\nVersion: a:1.0\n", 0, 1, false},
		{"unterminated source version", "Package: ab\nVersion: 1.0\nSource: src (1.0\n", 0, 1, false},
		{"bad source name", "Package: ab\nVersion: 1.0\nSource: s\x00rc\n", 0, 1, false},
		{"bad status", "Package: ab\nVersion: 1.0\nStatus: installed\n", 0, 1, false},
		{"line without colon", "Package: ab\ngarbage\nVersion: 1.0\n", 1, 0, false},
		{"continuation first", " indented\nPackage: ab\nVersion: 1.0\n", 1, 0, false},
		{"CRLF", "Package: ab\r\nVersion: 1.0\r\n\r\nPackage: cd\r\nVersion: 2\r\n", 2, 0, false},
		{"NUL bytes", "Package: ab\x00\nVersion: 1\n", 0, 1, false},
		{"huge line", "Package: ab\nVersion: 1\nDescription: " + strings.Repeat("x", maxControlLine+1) + "\n", 0, 0, true},
		{"duplicate fields: last wins", "Package: ab\nPackage: cd\nVersion: 1\n", 1, 0, false},
		{"many stanzas", strings.Repeat("Package: ab\nVersion: 1\n\n", 10000), 10000, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs, skipped, err := ParseDpkgStatus(strings.NewReader(tc.in))
			if (err != nil) != tc.err || len(pkgs) != tc.pkgs || skipped != tc.skipped {
				t.Fatalf("got %d packages, %d skipped, err %v; want %d, %d, err %v", len(pkgs), skipped, err, tc.pkgs, tc.skipped, tc.err)
			}
		})
	}
}

func FuzzParseDpkgStatus(f *testing.F) {
	f.Add([]byte(bookwormStatus))
	f.Add([]byte("Package: ab\nVersion: 1:2-3\nSource: x (4)\n\n"))
	f.Add([]byte("Package: ab\nStatus: a b c\n Version: 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, _, _ := ParseDpkgStatus(bytes.NewReader(b))
		for _, p := range pkgs {
			if !validDebName(p.Name) || !validDebVersion(p.Version) || !validDebName(p.SourceName) || !validDebVersion(p.SourceVersion) {
				t.Fatalf("invalid package accepted: %+v", p)
			}
		}
	})
}

func TestParseFileList(t *testing.T) {
	got, err := ParseFileList(strings.NewReader("/.\n/usr\n/usr/bin/env\n\n/usr/share/doc/x y\n"), false)
	if err != nil || !reflect.DeepEqual(got, []string{"/usr", "/usr/bin/env", "/usr/share/doc/x y"}) {
		t.Fatalf("list: %q %v", got, err)
	}
	got, err = ParseFileList(strings.NewReader("d41d8cd98f00b204e9800998ecf8427e  usr/bin/env\nbroken\n0123  /abs\n"), true)
	if err != nil || !reflect.DeepEqual(got, []string{"/usr/bin/env", "/abs"}) {
		t.Fatalf("md5sums: %q %v", got, err)
	}
}

func FuzzParseFileList(f *testing.F) {
	f.Add([]byte("/usr/bin/env\n"), false)
	f.Add([]byte("abc  usr/bin/env\n"), true)
	f.Fuzz(func(t *testing.T, b []byte, md5 bool) {
		paths, _ := ParseFileList(bytes.NewReader(b), md5)
		for _, p := range paths {
			if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
				t.Fatalf("bad path %q", p)
			}
		}
	})
}

const alpineInstalled = `C:Q1Ivfn5QNm8GZcfqWc1N9n4HLSsjI=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407989
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1705330432
c:a7bc2af7e2d2f1a8ae0fa6e94b2c6a3f2f5a0d5d
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1BsdfUpf6bNg/vSU1cyNKT8TTUdQ=
R:libc.musl-x86_64.so.1
F:usr/lib

C:Q1abc=
P:libcrypto3
V:3.1.4-r5
A:x86_64
L:Apache-2.0
o:openssl
F:usr/lib
R:libcrypto.so.3
R:../../etc/shadow

`

func TestParseApkInstalled(t *testing.T) {
	pkgs, skipped, err := ParseApkInstalled(strings.NewReader(alpineInstalled))
	if err != nil || skipped != 0 {
		t.Fatal(err, skipped)
	}
	want := []ApkPackage{
		{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", License: "MIT", Origin: "musl",
			Files: []string{"/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1"}},
		{Name: "libcrypto3", Version: "3.1.4-r5", Arch: "x86_64", License: "Apache-2.0", Origin: "openssl",
			Files: []string{"/usr/lib/libcrypto.so.3"}},
	}
	if !reflect.DeepEqual(pkgs, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", pkgs, want)
	}
}

func TestParseApkInstalledHostile(t *testing.T) {
	for _, tc := range []struct {
		name          string
		in            string
		pkgs, skipped int
	}{
		{"empty", "", 0, 0},
		{"no version", "P:a\n", 0, 1},
		{"no name", "V:1\n", 0, 1},
		{"name with slash", "P:a/b\nV:1\n", 0, 1},
		{"version with space", "P:a\nV:1 2\n", 0, 1},
		{"short lines", "P\n:\nP:a\nV:1\n", 1, 0},
		{"origin with colon", "P:a\nV:1\no:x:y\n", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs, skipped, err := ParseApkInstalled(strings.NewReader(tc.in))
			if err != nil || len(pkgs) != tc.pkgs || skipped != tc.skipped {
				t.Fatalf("got %d, %d skipped, %v", len(pkgs), skipped, err)
			}
		})
	}
}

func FuzzParseApkInstalled(f *testing.F) {
	f.Add([]byte(alpineInstalled))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, _, _ := ParseApkInstalled(bytes.NewReader(b))
		for _, p := range pkgs {
			if !validApkName(p.Name) || !validApkVersion(p.Version) {
				t.Fatalf("invalid package accepted: %+v", p)
			}
			for _, f := range p.Files {
				if !strings.HasPrefix(f, "/") || strings.Contains(f, "/../") {
					t.Fatalf("bad file %q", f)
				}
			}
		}
	})
}

func TestParsePackageJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want NpmPackage
		err  error // nil, ErrNotPackage, or errAny
	}{
		{"plain", `{"name":"express","version":"4.18.2","license":"MIT","dependencies":{"x":"1"}}`,
			NpmPackage{Name: "express", Version: "4.18.2", Licenses: []string{"MIT"}}, nil},
		{"scoped, license object", `{"name":"@babel/core","version":"7.23.0","license":{"type":"MIT","url":"x"}}`,
			NpmPackage{Name: "@babel/core", Version: "7.23.0", Licenses: []string{"MIT"}}, nil},
		{"licenses array", `{"name":"a","version":"1.0.0","licenses":[{"type":"MIT"},{"type":"Apache-2.0"},"BSD"]}`,
			NpmPackage{Name: "a", Version: "1.0.0", Licenses: []string{"MIT", "Apache-2.0", "BSD"}}, nil},
		{"type module only", `{"type":"module"}`, NpmPackage{}, ErrNotPackage},
		{"no version", `{"name":"a"}`, NpmPackage{}, ErrNotPackage},
		{"not json", `name: a`, NpmPackage{}, errAny},
		{"name with slash", `{"name":"../../x","version":"1"}`, NpmPackage{}, errAny},
		{"bad scope", `{"name":"@/x","version":"1"}`, NpmPackage{}, errAny},
		{"version with space", `{"name":"a","version":"1 2"}`, NpmPackage{}, errAny},
		{"name is a number", `{"name":1,"version":"1"}`, NpmPackage{}, errAny},
		{"deep nesting", `{"name":"a","version":"1","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, NpmPackage{}, errAny},
		{"license with newline", `{"name":"a","version":"1","license":"MIT\nfoo"}`, NpmPackage{Name: "a", Version: "1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePackageJSON(strings.NewReader(tc.in))
			checkErr(t, err, tc.err)
			if tc.err == nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error %v", err)
	case want == errAny && err == nil:
		t.Fatal("no error")
	case want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}

func FuzzParsePackageJSON(f *testing.F) {
	f.Add([]byte(`{"name":"@a/b","version":"1.0.0","license":{"type":"MIT"},"licenses":["x"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePackageJSON(bytes.NewReader(b))
		if err == nil && (!validNpmName(p.Name) || !validVersionText(p.Version)) {
			t.Fatalf("invalid package accepted: %+v", p)
		}
	})
}

const requestsMetadata = `Metadata-Version: 2.1
Name: requests
Version: 2.31.0
Summary: Python HTTP for Humans.
Home-page: https://requests.readthedocs.io
License: Apache 2.0
Classifier: License :: OSI Approved :: Apache Software License
Requires-Python: >=3.7
Description-Content-Type: text/markdown

# Requests
Name: not-this
`

func TestParseMetadata(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want PythonPackage
		err  error
	}{
		{"requests", requestsMetadata, PythonPackage{Name: "requests", Version: "2.31.0", Licenses: []string{"Apache 2.0"}}, nil},
		{"license expression", "Metadata-Version: 2.4\nName: Foo_Bar\nVersion: 1.0\nLicense-Expression: MIT OR Apache-2.0\nLicense: ignored\n\n",
			PythonPackage{Name: "Foo_Bar", Version: "1.0", Licenses: []string{"MIT OR Apache-2.0"}}, nil},
		{"classifiers only, no trailing blank line", "Name: x\nVersion: 1\nClassifier: License :: OSI Approved :: MIT License\nClassifier: License :: OSI Approved",
			PythonPackage{Name: "x", Version: "1", Licenses: []string{"MIT License"}}, nil},
		{"whole license text in License:", "Name: x\nVersion: 1\nLicense: " + strings.Repeat("words ", 100) + "\n\n", PythonPackage{Name: "x", Version: "1"}, nil},
		{"continuation lines", "Name: x\nVersion: 1\nDescription: a\n  b\n\n", PythonPackage{Name: "x", Version: "1"}, nil},
		{"no name", "Version: 1\n\n", PythonPackage{}, ErrNotPackage},
		{"empty", "", PythonPackage{}, errAny},
		{"bad name", "Name: ../x\nVersion: 1\n\n", PythonPackage{}, errAny},
		{"bad version", "Name: x\nVersion: 1 2\n\n", PythonPackage{}, errAny},
		{"not a header", "<html>\n", PythonPackage{}, errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMetadata(strings.NewReader(tc.in))
			checkErr(t, err, tc.err)
			if tc.err == nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(requestsMetadata))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseMetadata(bytes.NewReader(b))
		if err == nil && (!validPythonName(p.Name) || !validVersionText(p.Version)) {
			t.Fatalf("invalid package accepted: %+v", p)
		}
	})
}

func TestNormalizePythonName(t *testing.T) {
	for in, want := range map[string]string{"Foo_Bar": "foo-bar", "a.-_b": "a-b", "zope.interface": "zope-interface", "X": "x"} {
		if got := NormalizePythonName(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestParseOSRelease(t *testing.T) {
	d, err := ParseOSRelease(strings.NewReader(`PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
# comment
garbage
`))
	want := sbom.Distro{ID: "debian", VersionID: "12", Codename: "bookworm", Name: "Debian GNU/Linux 12 (bookworm)"}
	if err != nil || d != want {
		t.Fatalf("%+v %v", d, err)
	}
	d, err = ParseOSRelease(strings.NewReader("ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME='Alpine \"Linux\" v3.19'\n"))
	if err != nil || d != (sbom.Distro{ID: "alpine", VersionID: "3.19.1", Name: `Alpine "Linux" v3.19`}) {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := ParseOSRelease(strings.NewReader("ID=\"de bian\"\n")); err == nil {
		t.Fatal("ID with a space accepted")
	}
	if d, err := ParseOSRelease(strings.NewReader("")); err != nil || d.ID != "linux" {
		t.Fatalf("empty: %+v %v", d, err)
	}
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte("ID=debian\nVERSION_ID=\"12\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseOSRelease(bytes.NewReader(b))
		if err == nil && !validToken(d.ID) {
			t.Fatalf("bad ID %q", d.ID)
		}
	})
}

const bashCopyright = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bash

Files: *
Copyright: (C) 1987-2022 Free Software Foundation, Inc.
License: GPL-3+
 This program is free software.
 License: not-a-field

Files: lib/glob/*
License: GPL-3+

Files: doc/*
License: GFDL-NIV-1.3
`

func TestParseDebianCopyright(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"dep5", bashCopyright, []string{"GPL-3+", "GFDL-NIV-1.3"}},
		{"free form", "This is the Debian prepackaged version of zlib.\nLicense: Zlib\n", nil},
		{"empty", "", nil},
		{"empty license", "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense:\nLicense: " + strings.Repeat("x", 300) + "\n", nil},
		{"many", "Format: copyright-format/1.0\n" + strings.Repeat("License: a\nLicense: b\n", 10) + func() string {
			var b strings.Builder
			for i := range 100 {
				fmt.Fprintf(&b, "License: L%d\n", i)
			}
			return b.String()
		}(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDebianCopyright(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "many" {
				if len(got) != maxLicenses || got[0] != "a" || got[1] != "b" {
					t.Fatalf("got %d: %q", len(got), got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzParseDebianCopyright(f *testing.F) {
	f.Add([]byte(bashCopyright))
	f.Fuzz(func(t *testing.T, b []byte) {
		ls, _ := ParseDebianCopyright(bytes.NewReader(b))
		if len(ls) > maxLicenses {
			t.Fatalf("%d licenses", len(ls))
		}
		for _, l := range ls {
			if l == "" || strings.ContainsAny(l, "\n\r") {
				t.Fatalf("bad license %q", l)
			}
		}
	})
}
