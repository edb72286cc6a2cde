package vulndb

import (
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/aptindex"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vex"
)

// ApplyVEX moves findings that an OpenVEX statement marks not_affected or
// fixed for this image (or this package) from Findings to Suppressed, each
// with the statement that decided it.
func (r *Report) ApplyVEX(docs []*vex.Document) {
	if len(docs) == 0 {
		return
	}
	image := []string{}
	if r.Source.Digest != "" {
		image = append(image, r.Source.Digest.String())
	}
	if r.Source.Name != "" {
		image = append(image, r.Source.Name)
	}
	kept := r.Findings[:0]
	for _, f := range r.Findings {
		d, ok := vex.Decide(docs, vex.Subject{
			Vulnerability: append([]string{f.ID}, f.Aliases...),
			Image:         image,
			PackagePURL:   f.Package.PURL,
		})
		if ok && d.Suppresses() {
			f.VEX = &d
			r.Suppressed = append(r.Suppressed, f)
			continue
		}
		kept = append(kept, f)
	}
	r.Findings = kept
}

// MaxSeverity is the highest severity among the findings, and false when
// there are none.
func (r *Report) MaxSeverity() (osv.Rating, bool) {
	if len(r.Findings) == 0 {
		return osv.Unknown, false
	}
	max := osv.Unknown
	for _, f := range r.Findings {
		max = maxRating(max, f.Severity.Rating)
	}
	return max, true
}

func maxRating(a, b osv.Rating) osv.Rating {
	if a > b {
		return a
	}
	return b
}

// AtLeast counts findings at or above a severity.
func (r *Report) AtLeast(min osv.Rating) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity.Rating >= min {
			n++
		}
	}
	return n
}

// Fixable counts findings with a fixed version.
func (r *Report) Fixable() int {
	n := 0
	for _, f := range r.Findings {
		if f.Fixed != "" {
			n++
		}
	}
	return n
}

// Diff returns the findings of next that prev did not have, and those of
// prev that next no longer has, keyed by (advisory, package purl): what a
// database update changed for one image.
func Diff(prev, next *Report) (added, removed []Finding) {
	key := func(f Finding) string { return f.ID + "\x00" + f.Package.PURL }
	had := map[string]bool{}
	if prev != nil {
		for _, f := range prev.Findings {
			had[key(f)] = true
		}
	}
	has := map[string]bool{}
	for _, f := range next.Findings {
		has[key(f)] = true
		if !had[key(f)] {
			added = append(added, f)
		}
	}
	if prev != nil {
		for _, f := range prev.Findings {
			if !has[key(f)] {
				removed = append(removed, f)
			}
		}
	}
	return added, removed
}

// CheckArchive fills r.Archive: the SBOM's Debian packages older than
// ix's. indexes names the index files, for the report.
func (r *Report) CheckArchive(s *sbom.SBOM, ix *aptindex.Index, indexes []string) {
	behind, invalid := ix.Behind(InstalledDebs(s))
	if behind == nil {
		behind = []aptindex.Behind{}
	}
	r.Archive = &ArchiveCheck{Indexes: indexes, Behind: behind}
	for _, err := range invalid {
		r.Notes = append(r.Notes, err.Error())
	}
}

// InstalledDebs lists an SBOM's Debian packages for
// aptindex.Index.Behind.
func InstalledDebs(s *sbom.SBOM) []aptindex.Installed {
	var out []aptindex.Installed
	for _, p := range s.Packages {
		if p.Type != sbom.Deb {
			continue
		}
		out = append(out, aptindex.Installed{
			Name: p.Name, Version: p.Version, Architecture: p.Arch,
			Source: p.SourceName, SourceVersion: p.SourceVersion, Layer: string(p.Layer),
		})
	}
	return out
}
