// Package sbom is bulwark's software bill of materials: the packages a scan
// found in an image or a root filesystem, and where each came from. It is
// the contract between the catalogers (internal/scan/catalog), which fill
// it, the vulnerability matcher (internal/scan/vulndb), which reads it, and
// the stored SBOMs the registry re-matches when the vulnerability database
// changes; so it is small, and its JSON form (Encode, Decode) only grows.
//
// # Packages
//
// Every Package has a Type (the purl type, which names its ecosystem), a
// Name and a Version spelled as the ecosystem spells them, and a purl
// (https://github.com/package-url/purl-spec). Per type:
//
//	type    Name                     Version              Source*                 purl
//	deb     binary package name      full, with epoch     Source: field (or Name) pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12
//	apk     package name (P:)        V: (1.36.1-r15)      origin (o:)             pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1
//	golang  module path, or "stdlib" v1.2.3, go1.22.1     -                       pkg:golang/golang.org/x/net@v0.17.0, pkg:golang/stdlib@go1.22.1
//	npm     name (with @scope/)      package.json version -                       pkg:npm/%40scope/name@1.0.0
//	pypi    Name: of METADATA        Version: of METADATA -                       pkg:pypi/requests@2.31.0
//
// For deb, SourceVersion is the version in parentheses after Source:, or
// the binary version when there is none; Debian's advisories name source
// packages, so a matcher looks them up by (SourceName, SourceVersion). For
// apk, SourceName is the origin (aports names advisories by it) and
// SourceVersion the package's version. Go versions keep their "v" and "go"
// prefixes; OSV's Go ecosystem writes them without ("1.22.1"), so a matcher
// strips them. A Go main module built outside version control has Version
// "(devel)", which no advisory range can match. A pypi Name is spelled as
// its METADATA declares it ("Flask"); the purl carries the PEP 503
// normalised name ("flask"), which is what PyPI and OSV compare. purls are
// percent-encoded by the purl spec's rules ("+" is "%2B", ":" stays).
//
// OSV ecosystems follow from Type and SBOM.Distro: deb on Distro{ID:
// "debian", VersionID: "12"} is "Debian:12", apk on Distro{ID: "alpine",
// VersionID: "3.19.1"} is "Alpine:v3.19", golang "Go", npm "npm", pypi
// "PyPI".
//
// # Where
//
// Layer is the digest (as the manifest lists it) of the image layer that
// introduced the package at this version: an upgrade in a later layer moves
// it there. It is empty when a directory was scanned. Paths are the files
// that evidence the package, relative to the root with a leading "/": the
// dpkg status file, a Go binary, a package.json. OwnedBy names the OS
// package (Type:Name, "deb:golang-1.19-go") whose files include a language
// package's evidence: such a package is part of the OS package, whose
// advisories cover it, and a matcher should not report it twice.
package sbom

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// SchemaVersion is the version of the JSON form written by Encode.
// Decode reads this and earlier versions.
const SchemaVersion = 1

// MaxEncodedSize bounds a JSON SBOM that Decode accepts. An image with
// 100,000 packages encodes to about 40 MB.
const MaxEncodedSize = 128 << 20

// Type is a package ecosystem, named as in purl.
type Type string

// Types the catalogers produce.
const (
	Deb    Type = "deb"
	Apk    Type = "apk"
	Golang Type = "golang"
	Npm    Type = "npm"
	PyPI   Type = "pypi"
)

// GoStdlib is the Name of the Go standard library compiled into a binary.
const GoStdlib = "stdlib"

// SBOM is what one scan found.
type SBOM struct {
	SchemaVersion int `json:"schemaVersion"`
	// Created is when the scan ran (UTC).
	Created time.Time `json:"created"`
	// Tool is the scanner, "bulwark/VERSION".
	Tool   string `json:"tool,omitempty"`
	Source Source `json:"source"`
	// Distro is the operating system of the root filesystem, from
	// /etc/os-release (or /usr/lib/os-release); nil when there is none.
	Distro *Distro `json:"distro,omitempty"`
	// Layers of the image, bottom first; empty for a directory.
	Layers   []Layer   `json:"layers,omitempty"`
	Packages []Package `json:"packages"`
}

// Source kinds.
const (
	SourceImage  = "image"
	SourceRootfs = "rootfs"
)

// Source says what was scanned.
type Source struct {
	// Kind is SourceImage or SourceRootfs.
	Kind string `json:"kind"`
	// Name is the reference or directory as given.
	Name string `json:"name"`
	// Digest is the image manifest's digest.
	Digest digest.Digest `json:"digest,omitempty"`
	// Config is the image config's digest.
	Config digest.Digest `json:"config,omitempty"`
}

// Layer is one image layer.
type Layer struct {
	// Digest is the layer blob's digest as the manifest lists it.
	Digest digest.Digest `json:"digest"`
	// DiffID is the digest of the uncompressed tar, when known.
	DiffID digest.Digest `json:"diffID,omitempty"`
	Size   int64         `json:"size,omitempty"`
}

// Distro is the operating system release, from os-release(5).
type Distro struct {
	ID        string `json:"id"`                  // ID: "debian", "alpine"
	VersionID string `json:"versionID,omitempty"` // VERSION_ID: "12", "3.19.1"
	Codename  string `json:"codename,omitempty"`  // VERSION_CODENAME: "bookworm"
	Name      string `json:"name,omitempty"`      // PRETTY_NAME
}

// Package is one installed package.
type Package struct {
	Type    Type   `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl"`
	// Arch is the package's architecture as its ecosystem names it
	// ("amd64", "all", "x86_64"), for OS packages.
	Arch string `json:"arch,omitempty"`
	// SourceName and SourceVersion name the source package it was built
	// from (deb: Source:, apk: origin).
	SourceName    string `json:"sourceName,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	// Layer is the digest of the layer that introduced this version.
	Layer digest.Digest `json:"layer,omitempty"`
	// Paths are the files that evidence the package, "/"-rooted, sorted.
	Paths []string `json:"paths,omitempty"`
	// Licenses as declared (SPDX identifiers or expressions where the
	// package gives them, else the declared text; for deb, the License:
	// short names of its machine-readable /usr/share/doc/NAME/copyright).
	Licenses []string `json:"licenses,omitempty"`
	// OwnedBy is the OS package ("deb:NAME", "apk:NAME") whose files
	// include this package's evidence.
	OwnedBy string `json:"ownedBy,omitempty"`
}

// Key identifies a package within one SBOM: the same software found in two
// places is one Package with two Paths.
func (p *Package) Key() string { return string(p.Type) + " " + p.PURL }

// Sort puts packages in a stable order: by type, name, version, purl.
func (s *SBOM) Sort() {
	slices.SortFunc(s.Packages, func(a, b Package) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Version, b.Version), cmp.Compare(a.PURL, b.PURL))
	})
}

// ErrInvalid is wrapped by Validate and Decode errors about content.
var ErrInvalid = errors.New("sbom: invalid")

// Validate checks what every consumer relies on: a known schema version
// and source kind, and every package with a type, name, version and purl.
func (s *SBOM) Validate() error {
	if s.SchemaVersion < 1 || s.SchemaVersion > SchemaVersion {
		return fmt.Errorf("%w: schemaVersion %d (this bulwark reads 1 to %d)", ErrInvalid, s.SchemaVersion, SchemaVersion)
	}
	if s.Source.Kind != SourceImage && s.Source.Kind != SourceRootfs {
		return fmt.Errorf("%w: source kind %q", ErrInvalid, s.Source.Kind)
	}
	for i := range s.Packages {
		p := &s.Packages[i]
		if p.Type == "" || p.Name == "" || p.Version == "" || p.PURL == "" {
			return fmt.Errorf("%w: package %d (%q %q): type, name, version and purl are required", ErrInvalid, i, p.Name, p.Version)
		}
	}
	return nil
}

// Encode writes the SBOM as indented JSON.
func (s *SBOM) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(s)
}

// Decode reads a JSON SBOM written by Encode (untrusted: bounded by
// MaxEncodedSize, one object, validated).
func Decode(r io.Reader) (*SBOM, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxEncodedSize+1))
	if err != nil {
		return nil, fmt.Errorf("sbom: reading: %w", err)
	}
	if len(b) > MaxEncodedSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxEncodedSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var s SBOM
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}
