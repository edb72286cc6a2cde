// Package aptindex reads APT Packages indexes and dpkg status files (both
// deb822 paragraphs) and answers the "behind the security archive" question:
// which installed packages are older than the version an archive offers.
// It needs no vulnerability feed: a package with a newer version in
// bookworm-security is missing a security fix by definition.
package aptindex

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/pierrec/lz4/v4"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/version"
)

// Limits on untrusted input. Real paragraphs are a few KiB (long
// descriptions included); a line of 1 MiB or a paragraph of 4 MiB is hostile.
const (
	MaxLine       = 1 << 20
	MaxParagraph  = 4 << 20
	MaxFields     = 512
	MaxEntries    = 2_000_000
	maxNameLength = 256
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("malformed deb822 index")

// Entry is one paragraph of a Packages index or a dpkg status file, reduced
// to the fields matching needs.
type Entry struct {
	Package      string
	Version      string
	Architecture string
	// Source is the source package; SourceVersion is set only when it
	// differs from Version (binNMUs, "Source: glibc (2.36-9)").
	Source        string
	SourceVersion string
	// Status is dpkg's "want flag status" (status files only).
	Status string
}

// Installed reports whether a status-file entry is an installed package
// (Packages index entries have no status and count as installed).
func (e Entry) Installed() bool {
	if e.Status == "" {
		return true
	}
	f := strings.Fields(e.Status)
	return len(f) == 3 && (f[2] == "installed" || f[2] == "half-configured" || f[2] == "triggers-awaited" || f[2] == "triggers-pending")
}

// Parse reads deb822 paragraphs from r and calls fn for each one that has a
// Package field. Every paragraph must have Package and Version (status
// entries that are not installed may lack Version); versions must be valid
// Debian versions. fn's error stops the parse and is returned.
func Parse(r io.Reader, fn func(Entry) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	var (
		fields  = map[string]string{}
		last    string // field continuation lines belong to
		size    int
		line    int
		start   int
		entries int
	)
	flush := func() error {
		if len(fields) == 0 {
			return nil
		}
		defer clear(fields)
		e, err := entryOf(fields)
		if err != nil {
			return fmt.Errorf("%w: paragraph at line %d: %v", ErrSyntax, start, err)
		}
		if entries++; entries > MaxEntries {
			return fmt.Errorf("%w: more than %d paragraphs", ErrSyntax, MaxEntries)
		}
		return fn(e)
	}
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			if err := flush(); err != nil {
				return err
			}
			last, size = "", 0
			continue
		}
		if size += len(b); size > MaxParagraph {
			return fmt.Errorf("%w: paragraph at line %d is longer than %d bytes", ErrSyntax, start, MaxParagraph)
		}
		switch {
		case b[0] == ' ' || b[0] == '\t':
			if last == "" {
				return fmt.Errorf("%w: line %d: continuation line outside a field", ErrSyntax, line)
			}
			// Only single-line fields are kept; continuation of
			// Description and friends is skipped.
			continue
		case b[0] == '#':
			continue
		}
		name, value, ok := bytes.Cut(b, []byte(":"))
		if !ok {
			return fmt.Errorf("%w: line %d: no colon in field line", ErrSyntax, line)
		}
		if len(name) == 0 || len(name) > 128 || name[0] == '-' || bytes.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			return fmt.Errorf("%w: line %d: bad field name", ErrSyntax, line)
		}
		if len(fields) == 0 {
			start = line
		}
		last = string(name)
		key := strings.ToLower(last)
		switch key {
		case "package", "version", "architecture", "source", "status":
		default:
			fields[key] = "" // counted for MaxFields and duplicates only
			if len(fields) > MaxFields {
				return fmt.Errorf("%w: paragraph at line %d has more than %d fields", ErrSyntax, start, MaxFields)
			}
			continue
		}
		if _, dup := fields[key]; dup {
			return fmt.Errorf("%w: line %d: field %s repeated", ErrSyntax, line, last)
		}
		fields[key] = string(bytes.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: line %d longer than %d bytes", ErrSyntax, line+1, MaxLine)
		}
		return err
	}
	return flush()
}

func entryOf(f map[string]string) (Entry, error) {
	e := Entry{Package: f["package"], Version: f["version"], Architecture: f["architecture"], Status: f["status"]}
	if _, ok := f["package"]; !ok {
		return e, errors.New("no Package field")
	}
	if !validName(e.Package) {
		return e, fmt.Errorf("bad package name %q", clip(e.Package))
	}
	if e.Architecture != "" && !validName(e.Architecture) {
		return e, fmt.Errorf("package %s: bad architecture %q", e.Package, clip(e.Architecture))
	}
	if e.Version == "" {
		if e.Status == "" || e.Installed() {
			return e, fmt.Errorf("package %s: no Version field", e.Package)
		}
	} else if _, err := version.Debian.Parse(e.Version); err != nil {
		return e, fmt.Errorf("package %s: %w", e.Package, err)
	}
	e.Source = e.Package
	if src := f["source"]; src != "" {
		name, ver, hasVer := strings.Cut(src, " ")
		if !validName(name) {
			return e, fmt.Errorf("package %s: bad source %q", e.Package, clip(src))
		}
		e.Source = name
		if hasVer {
			ver = strings.TrimSpace(ver)
			if !strings.HasPrefix(ver, "(") || !strings.HasSuffix(ver, ")") {
				return e, fmt.Errorf("package %s: bad source version in %q", e.Package, clip(src))
			}
			ver = ver[1 : len(ver)-1]
			if _, err := version.Debian.Parse(ver); err != nil {
				return e, fmt.Errorf("package %s: source: %w", e.Package, err)
			}
			if ver != e.Version {
				e.SourceVersion = ver
			}
		}
	}
	return e, nil
}

// validName accepts Debian package and architecture names (lower-case
// alphanumerics and + - .), plus upper case for robustness.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Open opens an index file, decompressing it by content: plain text,
// gzip, bzip2 or LZ4 frames (APT's own choice on these machines:
// /var/lib/apt/lists/*_Packages.lz4).
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := Decompress(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return readCloser{r, f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Decompress wraps r by its magic number.
func Decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x04, 0x22, 0x4d, 0x18}):
		return lz4.NewReader(br), nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}), bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, errors.New("xz and zstd indexes are not supported; decompress first (xz -d, zstd -d)")
	}
	return br, nil
}

// Index is the newest version of each (package, architecture) in one or
// more Packages indexes.
type Index struct {
	// byName holds, per package name, the newest entry of each
	// architecture (rarely more than two).
	byName map[string][]indexed
	n      int
}

type indexed struct {
	Entry
	v version.Version
}

// Load reads Packages indexes (compressed or not).
func Load(ctx context.Context, paths ...string) (*Index, error) {
	ix := &Index{}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rc, err := Open(p)
		if err != nil {
			return nil, fmt.Errorf("open packages index: %w", err)
		}
		err = ix.Add(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read packages index %s: %w", p, err)
		}
	}
	return ix, nil
}

// Add reads one Packages index into ix.
func (ix *Index) Add(r io.Reader) error {
	if ix.byName == nil {
		ix.byName = map[string][]indexed{}
	}
	return Parse(r, func(e Entry) error {
		v, err := version.Debian.Parse(e.Version)
		if err != nil {
			return err
		}
		list := ix.byName[e.Package]
		for i := range list {
			if list[i].Architecture == e.Architecture {
				if list[i].v.Compare(v) < 0 {
					list[i] = indexed{e, v}
				}
				return nil
			}
		}
		ix.byName[e.Package] = append(list, indexed{e, v})
		ix.n++
		return nil
	})
}

// Len is the number of (package, architecture) pairs in the index.
func (ix *Index) Len() int { return ix.n }

// Installed is an installed binary package.
type Installed struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"arch,omitempty"` // "" matches any
	// Source and SourceVersion describe the installed source package, for
	// the report; the comparison is between binary versions.
	Source        string `json:"source,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	// Layer is the image layer that installed the package, if known.
	Layer string `json:"layer,omitempty"`
}

// Behind is an installed package older than the archive's.
type Behind struct {
	Installed Installed `json:"installed"`
	// Available is the archive's binary version; AvailableSource the
	// archive's source version when it differs from Available (a binNMU).
	Available       string `json:"available"`
	AvailableSource string `json:"availableSource,omitempty"`
	// Source is the archive's source package.
	Source string `json:"source"`
}

// Behind returns the installed packages whose version is older than the
// index's version of the same binary package and architecture, sorted by
// name. Binary versions are compared (a binNMU "2.36-9+b1" is newer than
// "2.36-9"), because the archive publishes binaries; the source version is
// reported next to them. Installed packages with invalid versions are
// returned in invalid, not compared.
func (ix *Index) Behind(installed []Installed) (behind []Behind, invalid []error) {
	for _, p := range installed {
		cand, ok := ix.lookup(p)
		if !ok {
			continue
		}
		v, err := version.Debian.Parse(p.Version)
		if err != nil {
			invalid = append(invalid, fmt.Errorf("installed %s: %w", p.Name, err))
			continue
		}
		if v.Compare(cand.v) < 0 {
			behind = append(behind, Behind{Installed: p, Available: cand.Version, AvailableSource: cand.SourceVersion, Source: cand.Source})
		}
	}
	sort.Slice(behind, func(i, j int) bool {
		a, b := behind[i].Installed, behind[j].Installed
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Architecture < b.Architecture
	})
	return behind, invalid
}

// lookup finds the archive's entry for an installed package: the same
// architecture, else "all" (packages move between the two), else, for an
// installed package of unknown architecture, the newest of any.
func (ix *Index) lookup(p Installed) (indexed, bool) {
	var best indexed
	found := false
	for _, e := range ix.byName[p.Name] {
		switch {
		case p.Architecture != "" && e.Architecture == p.Architecture:
			return e, true
		case p.Architecture != "" && e.Architecture == "all", p.Architecture == "":
			if !found || best.v.Compare(e.v) < 0 {
				best, found = e, true
			}
		}
	}
	return best, found
}
