package vulndb

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vex"
)

// CycloneDX 1.5 vulnerabilities, added to the SBOM's CycloneDX document
// (internal/scan/sbom writes the components).
type cdxDocument struct {
	*sbom.CycloneDX
	Vulnerabilities []cdxVulnerability `json:"vulnerabilities"`
}

type cdxVulnerability struct {
	BOMRef         string         `json:"bom-ref"`
	ID             string         `json:"id"`
	Source         *cdxSource     `json:"source,omitempty"`
	References     []cdxReference `json:"references,omitempty"`
	Ratings        []cdxRating    `json:"ratings,omitempty"`
	Description    string         `json:"description,omitempty"`
	Recommendation string         `json:"recommendation,omitempty"`
	Analysis       *cdxAnalysis   `json:"analysis,omitempty"`
	Affects        []cdxAffects   `json:"affects"`
}

type cdxSource struct {
	Name string `json:"name,omitempty"`
	URL  string `json:"url,omitempty"`
}

type cdxReference struct {
	ID     string    `json:"id"`
	Source cdxSource `json:"source"`
}

type cdxRating struct {
	Score    float64 `json:"score,omitempty"`
	Severity string  `json:"severity"`
	Method   string  `json:"method,omitempty"`
	Vector   string  `json:"vector,omitempty"`
}

type cdxAnalysis struct {
	State         string `json:"state"`
	Justification string `json:"justification,omitempty"`
	Detail        string `json:"detail,omitempty"`
}

type cdxAffects struct {
	Ref      string       `json:"ref"`
	Versions []cdxVersion `json:"versions,omitempty"`
}

type cdxVersion struct {
	Version string `json:"version"`
	Status  string `json:"status"`
}

// WriteCycloneDX writes the SBOM as CycloneDX 1.5 with the report's
// findings as vulnerabilities (one per advisory, affecting components by
// bom-ref), suppressed findings with their VEX analysis.
func (r *Report) WriteCycloneDX(w io.Writer, s *sbom.SBOM) error {
	doc := cdxDocument{CycloneDX: s.CycloneDX(), Vulnerabilities: []cdxVulnerability{}}
	refs := map[string]string{} // purl → bom-ref
	for _, c := range doc.Components {
		if c.PURL != "" {
			refs[c.PURL] = c.BOMRef
		}
	}
	byID := map[string]int{}
	add := func(f Finding) {
		ref, ok := refs[f.Package.PURL]
		if !ok {
			return
		}
		i, seen := byID[f.ID]
		if !seen {
			v := cdxVulnerability{BOMRef: "vuln-" + f.ID, ID: f.ID, Description: f.Summary, Ratings: cdxRatings(f.Severity)}
			if f.URL != "" {
				v.Source = &cdxSource{Name: sourceName(f.ID), URL: f.URL}
			}
			for _, a := range f.Aliases {
				v.References = append(v.References, cdxReference{ID: a, Source: cdxSource{Name: sourceName(a)}})
			}
			if f.Fixed != "" {
				v.Recommendation = "Upgrade " + f.Name + " to " + f.Fixed + " or later"
			}
			if f.VEX != nil {
				v.Analysis = cdxAnalysisOf(f.VEX)
			}
			i = len(doc.Vulnerabilities)
			byID[f.ID] = i
			doc.Vulnerabilities = append(doc.Vulnerabilities, v)
		}
		status := "affected"
		if f.VEX != nil {
			status = "unaffected"
		}
		doc.Vulnerabilities[i].Affects = append(doc.Vulnerabilities[i].Affects, cdxAffects{Ref: ref, Versions: []cdxVersion{{Version: f.Package.Version, Status: status}}})
	}
	for _, f := range r.Findings {
		add(f)
	}
	for _, f := range r.Suppressed {
		add(f)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

func cdxRatings(s osv.Score) []cdxRating {
	r := cdxRating{Severity: strings.ToLower(s.Rating.String()), Score: s.Score, Vector: s.Vector}
	switch {
	case strings.HasPrefix(s.Vector, "CVSS:4.0/"):
		r.Method = "CVSSv4"
	case strings.HasPrefix(s.Vector, "CVSS:3.1/"):
		r.Method = "CVSSv31"
	case strings.HasPrefix(s.Vector, "CVSS:3.0/"):
		r.Method = "CVSSv3"
	case strings.HasPrefix(s.Vector, "AV:"):
		r.Method = "CVSSv2"
	default:
		r.Method, r.Vector = "other", ""
	}
	if s.Rating == osv.Unknown {
		r.Method = ""
	}
	return []cdxRating{r}
}

// cdxAnalysisOf maps an OpenVEX decision to CycloneDX's analysis.
func cdxAnalysisOf(d *vex.Decision) *cdxAnalysis {
	a := &cdxAnalysis{State: "not_affected", Detail: d.ImpactStatement}
	if d.Status == vex.Fixed {
		a.State = "resolved"
	}
	a.Justification = map[string]string{
		"component_not_present":                             "code_not_present",
		"vulnerable_code_not_present":                       "code_not_present",
		"vulnerable_code_not_in_execute_path":               "code_not_reachable",
		"vulnerable_code_cannot_be_controlled_by_adversary": "protected_at_runtime",
		"inline_mitigations_already_exist":                  "protected_by_mitigating_control",
	}[d.Justification]
	return a
}

// sourceName names an advisory's database by its id prefix.
func sourceName(id string) string {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "CVE":
		return "NVD"
	case "GHSA":
		return "GitHub"
	case "GO":
		return "Go Vulnerability Database"
	case "DSA", "DLA", "DTSA", "DEBIAN":
		return "Debian"
	case "PYSEC":
		return "PyPA"
	case "RUSTSEC":
		return "RustSec"
	}
	return prefix
}
