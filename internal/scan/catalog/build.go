package catalog

import (
	"path"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
	packageurl "github.com/package-url/packageurl-go"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

// Build turns the catalog analyzer's values in tree into the distro and
// the package list (unsorted). layers maps the tree's layer indexes to
// digests; nil for a directory. Values of other analyzers are ignored.
func Build(tree *rootfs.Tree, layers []sbom.Layer) (*sbom.Distro, []sbom.Package) {
	b := builder{layers: layers, byKey: map[string]int{}}
	var (
		distro    *sbom.Distro
		etcSeen   bool
		lists     []rootfs.Entry
		copyright = map[string][]string{} // package name -> licenses
	)
	for _, e := range tree.Entries {
		switch v := e.Value.(type) {
		case osRelease:
			// /etc/os-release wins over /usr/lib/os-release
			// (os-release(5)); in Debian the former is a symlink to the
			// latter, and symlinks are not read.
			if e.File.Path == "/etc/os-release" || !etcSeen {
				d := v.distro
				distro = &d
				etcSeen = e.File.Path == "/etc/os-release"
			}
		case fileList:
			lists = append(lists, e)
		case debCopyright:
			copyright[path.Base(path.Dir(e.File.Path))] = v.licenses
		}
	}
	b.distro = distro
	for _, e := range tree.Entries {
		switch v := e.Value.(type) {
		case dpkgDB:
			for _, p := range v.pkgs {
				pkg := b.deb(p.DebPackage)
				pkg.Licenses = copyright[p.Name]
				b.add(pkg, e.File.Path, p.layer)
			}
		case apkDB:
			for _, p := range v.pkgs {
				b.add(b.apk(p.ApkPackage), e.File.Path, p.layer)
				b.own("apk:"+p.Name, p.Files)
			}
		case *GoBinary:
			for _, p := range goPackages(v) {
				b.addEvidence(p, e.File.Path, e.File.Layer)
			}
		case NpmPackage:
			b.addEvidence(sbom.Package{Type: sbom.Npm, Name: v.Name, Version: v.Version, Licenses: v.Licenses,
				PURL: npmPURL(v.Name, v.Version)}, e.File.Path, e.File.Layer)
		case PythonPackage:
			b.addEvidence(sbom.Package{Type: sbom.PyPI, Name: v.Name, Version: v.Version, Licenses: v.Licenses,
				PURL: purl("pypi", "", NormalizePythonName(v.Name), v.Version, nil)}, e.File.Path, e.File.Layer)
		}
	}
	for _, e := range lists {
		b.own("deb:"+debListOwner(e.File.Path), e.Value.(fileList).paths)
	}
	b.markOwned()
	return distro, b.pkgs
}

type builder struct {
	distro *sbom.Distro
	layers []sbom.Layer
	pkgs   []sbom.Package
	byKey  map[string]int
	// layerOf is the lowest layer index of each package's evidence.
	layerOf []int
	// evidence lists the language packages, whose evidence an OS package
	// may own.
	evidence []int
	owners   map[string]string // evidence path -> owner, filled by own
}

// add records p found at file (written by layer), merging it with an
// earlier find of the same package, and returns its index.
func (b *builder) add(p sbom.Package, file string, layer int) int {
	k := p.Key()
	if i, ok := b.byKey[k]; ok {
		q := &b.pkgs[i]
		if !slices.Contains(q.Paths, file) {
			q.Paths = append(q.Paths, file)
			slices.Sort(q.Paths)
		}
		if layer >= 0 && (b.layerOf[i] < 0 || layer < b.layerOf[i]) {
			b.layerOf[i] = layer
			q.Layer = b.layerDigest(layer)
		}
		return i
	}
	p.Paths = []string{file}
	p.Layer = b.layerDigest(layer)
	b.byKey[k] = len(b.pkgs)
	b.pkgs = append(b.pkgs, p)
	b.layerOf = append(b.layerOf, layer)
	return len(b.pkgs) - 1
}

// addEvidence adds a language package, whose evidence an OS package may
// own.
func (b *builder) addEvidence(p sbom.Package, file string, layer int) {
	i := b.add(p, file, layer)
	if !slices.Contains(b.evidence, i) {
		b.evidence = append(b.evidence, i)
	}
}

func (b *builder) layerDigest(i int) digest.Digest {
	if i < 0 || i >= len(b.layers) {
		return ""
	}
	return b.layers[i].Digest
}

// own records that owner's files include paths, for the language
// packages' evidence only.
func (b *builder) own(owner string, paths []string) {
	if len(b.evidence) == 0 {
		return
	}
	if b.owners == nil {
		b.owners = map[string]string{}
		for _, i := range b.evidence {
			for _, p := range b.pkgs[i].Paths {
				b.owners[p] = ""
			}
		}
	}
	for _, p := range paths {
		if o, ok := b.owners[p]; ok && o == "" {
			b.owners[p] = owner
		}
	}
}

func (b *builder) markOwned() {
	for _, i := range b.evidence {
		p := &b.pkgs[i]
		for _, e := range p.Paths {
			if o := b.owners[e]; o != "" {
				p.OwnedBy = o
				break
			}
		}
	}
}

// debListOwner: /var/lib/dpkg/info/NAME.list or NAME:ARCH.list, or
// /var/lib/dpkg/status.d/NAME.md5sums.
func debListOwner(p string) string {
	base := path.Base(p)
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".list"), ".md5sums")
	name, _, _ := strings.Cut(base, ":")
	return name
}

func (b *builder) distroQualifier() string {
	d := b.distro
	switch {
	case d == nil:
		return ""
	case d.VersionID != "":
		return d.ID + "-" + d.VersionID
	case d.Codename != "":
		return d.ID + "-" + d.Codename
	}
	return d.ID
}

func (b *builder) namespace(def string) string {
	if b.distro != nil && b.distro.ID != "" && b.distro.ID != "linux" {
		return b.distro.ID
	}
	return def
}

func (b *builder) deb(p DebPackage) sbom.Package {
	return sbom.Package{Type: sbom.Deb, Name: p.Name, Version: p.Version, Arch: p.Arch,
		SourceName: p.SourceName, SourceVersion: p.SourceVersion,
		PURL: purl("deb", b.namespace("debian"), p.Name, p.Version, qualifiers("arch", p.Arch, "distro", b.distroQualifier()))}
}

func (b *builder) apk(p ApkPackage) sbom.Package {
	src := p.Origin
	if src == "" {
		src = p.Name
	}
	var lic []string
	lic = appendLicense(lic, p.License)
	return sbom.Package{Type: sbom.Apk, Name: p.Name, Version: p.Version, Arch: p.Arch,
		SourceName: src, SourceVersion: p.Version, Licenses: lic,
		PURL: purl("apk", b.namespace("alpine"), p.Name, p.Version, qualifiers("arch", p.Arch, "distro", b.distroQualifier()))}
}

func goPackages(g *GoBinary) []sbom.Package {
	var out []sbom.Package
	mod := func(m GoModule) {
		ns, name := "", m.Path
		if i := strings.LastIndexByte(m.Path, '/'); i >= 0 {
			ns, name = m.Path[:i], m.Path[i+1:]
		}
		out = append(out, sbom.Package{Type: sbom.Golang, Name: m.Path, Version: m.Version, PURL: purl("golang", ns, name, m.Version, nil)})
	}
	if strings.HasPrefix(g.GoVersion, "go1") {
		out = append(out, sbom.Package{Type: sbom.Golang, Name: sbom.GoStdlib, Version: g.GoVersion, PURL: purl("golang", "", sbom.GoStdlib, g.GoVersion, nil)})
	}
	if g.Main.Path != "" && validVersionText(g.Main.Version) {
		mod(g.Main)
	}
	for _, d := range g.Deps {
		if validVersionText(d.Version) {
			mod(d)
		}
	}
	return out
}

func npmPURL(name, version string) string {
	ns := ""
	if scope, n, ok := strings.Cut(name, "/"); ok {
		ns, name = scope, n
	}
	return purl("npm", ns, name, version, nil)
}

func purl(typ, ns, name, version string, q packageurl.Qualifiers) string {
	return packageurl.NewPackageURL(typ, ns, name, version, q, "").ToString()
}

// qualifiers builds purl qualifiers from key, value pairs (keys in
// alphabetical order), leaving out empty values.
func qualifiers(kv ...string) packageurl.Qualifiers {
	var q packageurl.Qualifiers
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q = append(q, packageurl.Qualifier{Key: kv[i], Value: kv[i+1]})
		}
	}
	return q
}
