// Package catalog finds the packages installed in a root filesystem or an
// image and builds its SBOM (internal/scan/sbom): dpkg (status and
// distroless status.d), apk, Go executables (build information: main
// module, dependencies, standard library), npm (node_modules/**/
// package.json) and Python (*.dist-info/METADATA).
//
// It reads the filesystem through internal/scan/catalog/rootfs, so an image
// is read layer by layer without extracting it, every package knows the
// layer that introduced it, and a package removed by a later layer is gone.
// Only the installed-package databases and manifests count: a .deb left in
// /var/cache/apt/archives is not an installed package, and a language
// package inside an OS package's files is reported once, marked OwnedBy.
//
// Every file read is untrusted: databases and manifests larger than
// Options.MaxFileSize are skipped (and reported as problems), every parser
// bounds its lines and is fuzzed, and nothing found in a file is trusted
// as a path.
package catalog

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog/image"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

// Options tune cataloging; zero values take the defaults.
type Options struct {
	// MaxFileSize: package databases and manifests larger than this are
	// not parsed (default 32 MiB; a dpkg status of 5,000 packages is
	// about 10 MiB).
	MaxFileSize int64
	// MaxBinarySize: executables larger than this are not searched for
	// Go build information (default 1 GiB).
	MaxBinarySize int64
	// Tool is recorded in the SBOM ("bulwark/VERSION").
	Tool string
	// Now is the SBOM's creation time (default time.Now).
	Now func() time.Time
	// Walk tunes the filesystem walk.
	Walk rootfs.Options
}

// Defaults.
const (
	DefaultMaxFileSize   = 32 << 20
	DefaultMaxBinarySize = 1 << 30
)

func (o Options) withDefaults() Options {
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MaxBinarySize <= 0 {
		o.MaxBinarySize = DefaultMaxBinarySize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Dir catalogs the root filesystem at dir. Extra analyzers (the image
// lint's) see the same walk; their values are in the returned tree.
func Dir(ctx context.Context, dir string, opts Options, extra ...rootfs.Analyzer) (*sbom.SBOM, *rootfs.Tree, error) {
	opts = opts.withDefaults()
	tree, err := rootfs.WalkDir(ctx, dir, append([]rootfs.Analyzer{NewAnalyzer(opts)}, extra...), opts.Walk)
	if err != nil {
		return nil, nil, err
	}
	s := &sbom.SBOM{SchemaVersion: sbom.SchemaVersion, Created: opts.Now().UTC().Truncate(time.Second), Tool: opts.Tool,
		Source: sbom.Source{Kind: sbom.SourceRootfs, Name: dir}}
	s.Distro, s.Packages = Build(tree, nil)
	s.Sort()
	return s, tree, nil
}

// Image catalogs an image, reading each layer once.
func Image(ctx context.Context, img *image.Image, opts Options, extra ...rootfs.Analyzer) (*sbom.SBOM, *rootfs.Tree, error) {
	opts = opts.withDefaults()
	tree, err := rootfs.WalkLayers(ctx, img.RootfsLayers(), append([]rootfs.Analyzer{NewAnalyzer(opts)}, extra...), opts.Walk)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", img.Name, err)
	}
	s := &sbom.SBOM{SchemaVersion: sbom.SchemaVersion, Created: opts.Now().UTC().Truncate(time.Second), Tool: opts.Tool,
		Source: sbom.Source{Kind: sbom.SourceImage, Name: img.Name, Digest: img.Manifest.Digest, Config: img.ConfigDigest}}
	for i, l := range img.Layers {
		s.Layers = append(s.Layers, sbom.Layer{Digest: l.Digest, DiffID: img.Config.RootFS.DiffIDs[i], Size: l.Size})
	}
	s.Distro, s.Packages = Build(tree, s.Layers)
	s.Sort()
	return s, tree, nil
}

// kind is what a file is to the catalogers.
type kind int

const (
	kindNone kind = iota
	kindOSRelease
	kindDpkgStatus
	kindDpkgList
	kindDpkgMD5
	kindApk
	kindNpm
	kindPython
	kindExecutable
	kindDebCopyright
)

func classify(f *rootfs.File) kind {
	p := f.Path
	dir, base := path.Split(p)
	switch dir {
	case "/etc/", "/usr/lib/":
		if base == "os-release" {
			return kindOSRelease
		}
	case "/var/lib/dpkg/":
		if base == "status" {
			return kindDpkgStatus
		}
	case "/var/lib/dpkg/status.d/":
		// distroless: one control stanza per package, and its md5sums.
		if strings.HasSuffix(base, ".md5sums") {
			return kindDpkgMD5
		}
		return kindDpkgStatus
	case "/var/lib/dpkg/info/":
		if strings.HasSuffix(base, ".list") {
			return kindDpkgList
		}
	case "/lib/apk/db/", "/usr/lib/apk/db/":
		if base == "installed" {
			return kindApk
		}
	}
	if base == "copyright" && strings.HasPrefix(dir, "/usr/share/doc/") && strings.Count(dir, "/") == 5 {
		return kindDebCopyright
	}
	switch {
	case base == "package.json" && inNodeModules(dir):
		return kindNpm
	case base == "METADATA" && strings.HasSuffix(dir, ".dist-info/"):
		return kindPython
	case f.Mode&0o111 != 0 && f.Size >= 512:
		return kindExecutable
	}
	return kindNone
}

// inNodeModules: dir is node_modules/NAME/ or node_modules/@SCOPE/NAME/.
func inNodeModules(dir string) bool {
	d := path.Dir(strings.TrimSuffix(dir, "/")) // drops NAME
	if strings.HasPrefix(path.Base(d), "@") {
		d = path.Dir(d)
	}
	return path.Base(d) == "node_modules"
}

// Values the analyzer keeps per file.
type (
	osRelease struct {
		distro sbom.Distro
	}
	debEntry struct {
		DebPackage
		layer int // the layer that introduced this version
	}
	dpkgDB       struct{ pkgs []debEntry }
	debCopyright struct{ licenses []string }
	fileList     struct{ paths []string }
	apkEntry     struct {
		ApkPackage
		layer int
	}
	apkDB struct{ pkgs []apkEntry }
)

// Analyzer is the catalogers' rootfs.Analyzer. One walk at a time: it
// reuses a buffer between files.
type Analyzer struct {
	opts Options
	buf  []byte
}

// NewAnalyzer returns the analyzer whose tree Build turns into packages.
func NewAnalyzer(opts Options) *Analyzer {
	return &Analyzer{opts: opts.withDefaults()}
}

// Wants implements rootfs.Analyzer.
func (a *Analyzer) Wants(f *rootfs.File) bool {
	k := classify(f)
	return k != kindNone && (k != kindExecutable || f.Size <= a.opts.MaxBinarySize)
}

// Analyze implements rootfs.Analyzer.
func (a *Analyzer) Analyze(_ context.Context, f *rootfs.File, r io.Reader, prev any) (any, error) {
	k := classify(f)
	if k != kindExecutable && f.Size > a.opts.MaxFileSize {
		return nil, fmt.Errorf("not parsed: %d bytes, limit %d", f.Size, a.opts.MaxFileSize)
	}
	lr := io.LimitReader(r, a.opts.MaxFileSize)
	switch k {
	case kindOSRelease:
		d, err := ParseOSRelease(lr)
		if err != nil {
			return nil, err
		}
		return osRelease{d}, nil
	case kindDpkgStatus:
		pkgs, skipped, err := ParseDpkgStatus(lr)
		if err != nil {
			return nil, err
		}
		db := dpkgDB{}
		old := map[string]debEntry{}
		if p, ok := prev.(dpkgDB); ok {
			for _, e := range p.pkgs {
				old[e.Name+":"+e.Arch] = e
			}
		}
		for _, p := range pkgs {
			if !p.Installed() {
				continue
			}
			e := debEntry{DebPackage: p, layer: f.Layer}
			if o, ok := old[p.Name+":"+p.Arch]; ok && o.Version == p.Version {
				e.layer = o.layer
			}
			db.pkgs = append(db.pkgs, e)
		}
		if skipped > 0 {
			return db, fmt.Errorf("%d invalid stanzas skipped", skipped)
		}
		return db, nil
	case kindDebCopyright:
		ls, err := ParseDebianCopyright(lr)
		if err != nil || len(ls) == 0 {
			return nil, err
		}
		return debCopyright{ls}, nil
	case kindDpkgList, kindDpkgMD5:
		paths, err := ParseFileList(lr, k == kindDpkgMD5)
		if err != nil {
			return nil, err
		}
		return fileList{paths}, nil
	case kindApk:
		pkgs, skipped, err := ParseApkInstalled(lr)
		if err != nil {
			return nil, err
		}
		db := apkDB{}
		old := map[string]apkEntry{}
		if p, ok := prev.(apkDB); ok {
			for _, e := range p.pkgs {
				old[e.Name] = e
			}
		}
		for _, p := range pkgs {
			e := apkEntry{ApkPackage: p, layer: f.Layer}
			if o, ok := old[p.Name]; ok && o.Version == p.Version {
				e.layer = o.layer
			}
			db.pkgs = append(db.pkgs, e)
		}
		if skipped > 0 {
			return db, fmt.Errorf("%d invalid entries skipped", skipped)
		}
		return db, nil
	case kindNpm:
		p, err := ParsePackageJSON(lr)
		if err == ErrNotPackage {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return p, nil
	case kindPython:
		p, err := ParseMetadata(lr)
		if err == ErrNotPackage {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return p, nil
	case kindExecutable:
		var (
			g   *GoBinary
			err error
		)
		if ra, ok := r.(io.ReaderAt); ok {
			g, err = ReadGoBinary(ra)
		} else {
			if a.buf == nil {
				a.buf = make([]byte, 256<<10)
			}
			g, err = ScanGoBinary(r, a.opts.MaxBinarySize, a.buf)
		}
		if err == ErrNotGo {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return g, nil
	}
	return nil, nil
}
