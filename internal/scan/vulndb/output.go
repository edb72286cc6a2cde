package vulndb

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteTable writes the report for a terminal: one line per finding, then
// a summary, then the archive check.
func (r *Report) WriteTable(w io.Writer) error {
	name := r.Source.Name
	if r.Source.Digest != "" {
		name += " (" + r.Source.Digest.String() + ")"
	}
	distro := ""
	if r.Distro != nil {
		distro = ", " + strings.TrimSpace(r.Distro.ID+" "+r.Distro.VersionID)
	}
	fmt.Fprintf(w, "%s%s: %d packages matched against vulnerability database generation %d\n", name, distro, r.Packages, r.Database.Generation)
	if len(r.Findings) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nPACKAGE\tVERSION\tADVISORY\tSEVERITY\tFIXED IN\tALIASES\tLAYER")
		for _, f := range r.Findings {
			fixed := f.Fixed
			if fixed == "" {
				fixed = "(no fix)"
			}
			pkg := f.Package.Name
			if f.Name != f.Package.Name {
				pkg += " (" + f.Name + ")" // Debian source package
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", pkg, f.Package.Version, f.ID, f.Severity.Rating, fixed,
				strings.Join(clipList(f.Aliases, 2), ","), shortDigest(string(f.Package.Layer)))
		}
		tw.Flush()
	}
	counts := map[osv.Rating]int{}
	for _, f := range r.Findings {
		counts[f.Severity.Rating]++
	}
	parts := []string{}
	for _, s := range []osv.Rating{osv.Critical, osv.High, osv.Medium, osv.Low, osv.Unknown} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], strings.ToLower(s.String())))
		}
	}
	summary := fmt.Sprintf("\n%d findings", len(r.Findings))
	if len(parts) > 0 {
		summary += " (" + strings.Join(parts, ", ") + ")"
	}
	summary += fmt.Sprintf(", %d with a fix", r.Fixable())
	if len(r.Suppressed) > 0 {
		summary += fmt.Sprintf("; %d suppressed by VEX", len(r.Suppressed))
	}
	fmt.Fprintln(w, summary)
	if a := r.Archive; a != nil {
		fmt.Fprintf(w, "\n%d installed packages are older than the archive (%s)\n", len(a.Behind), strings.Join(a.Indexes, ", "))
		if len(a.Behind) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PACKAGE\tARCH\tINSTALLED\tAVAILABLE\tSOURCE\tLAYER")
			for _, b := range a.Behind {
				src := b.Source
				if b.AvailableSource != "" {
					src += " " + b.AvailableSource
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Installed.Name, b.Installed.Architecture, b.Installed.Version, b.Available, src, shortDigest(b.Installed.Layer))
			}
			tw.Flush()
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

func clipList(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(append([]string{}, s[:n]...), "…")
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

// SARIF 2.1.0, the subset code-scanning services read: one run, one rule
// per advisory, one result per (advisory, package).
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID               string         `json:"id"`
	ShortDescription sarifText      `json:"shortDescription"`
	FullDescription  *sarifText     `json:"fullDescription,omitempty"`
	HelpURI          string         `json:"helpUri,omitempty"`
	Help             *sarifText     `json:"help,omitempty"`
	Properties       map[string]any `json:"properties,omitempty"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

// behindRule is the SARIF rule of the archive check.
const behindRule = "bulwark.behind-archive"

// SARIFResult is a result of another check (the image lint) written into
// the same SARIF run.
type SARIFResult struct {
	RuleID  string
	Level   string // error, warning or note
	Message string
	// Description and Help describe the rule; Score is its
	// security-severity ("7.0"), optional.
	Description, Help, Score string
	// Paths are files in the image, "/"-rooted.
	Paths []string
}

// WriteSARIF writes the report, and extra results, as a SARIF 2.1.0 log.
// Locations are the package's evidence files in the image (the dpkg
// status file, a Go binary), relative to its root.
func (r *Report) WriteSARIF(w io.Writer, toolVersion string, extra ...SARIFResult) error {
	run := sarifRun{
		Tool:    sarifTool{Driver: sarifDriver{Name: "bulwark", Version: toolVersion, InformationURI: "https://github.com/bulwark-dev/bulwark", Rules: []sarifRule{}}},
		Results: []sarifResult{},
	}
	ruleIndex := map[string]int{}
	rule := func(id string, mk func() sarifRule) int {
		if i, ok := ruleIndex[id]; ok {
			return i
		}
		ruleIndex[id] = len(run.Tool.Driver.Rules)
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, mk())
		return ruleIndex[id]
	}
	for _, f := range r.Findings {
		i := rule(f.ID, func() sarifRule {
			desc := f.Summary
			if desc == "" {
				desc = f.ID
			}
			props := map[string]any{"tags": []string{"security", "vulnerability"}}
			if f.Severity.Score > 0 {
				props["security-severity"] = fmt.Sprintf("%.1f", f.Severity.Score)
			} else if s := nominalScore(f.Severity.Rating); s != "" {
				props["security-severity"] = s
			}
			if len(f.Aliases) > 0 {
				props["aliases"] = f.Aliases
			}
			return sarifRule{ID: f.ID, ShortDescription: sarifText{desc}, HelpURI: f.URL, Properties: props}
		})
		fixed := "no fixed version is known"
		if f.Fixed != "" {
			fixed = "fixed in " + f.Fixed
		}
		msg := fmt.Sprintf("%s %s is affected by %s (%s, %s)", f.Package.Name, f.Package.Version, f.ID, f.Severity.Rating, fixed)
		if f.Name != f.Package.Name {
			msg = fmt.Sprintf("%s %s (source %s %s) is affected by %s (%s, %s)", f.Package.Name, f.Package.Version, f.Name, f.Version, f.ID, f.Severity.Rating, fixed)
		}
		run.Results = append(run.Results, sarifResult{
			RuleID: f.ID, RuleIndex: i, Level: sarifLevel(f.Severity.Rating), Message: sarifText{msg},
			Locations:  r.locations(f.Package.Paths),
			Properties: map[string]any{"purl": f.Package.PURL, "fixedVersion": f.Fixed, "layer": string(f.Package.Layer)},
		})
	}
	if a := r.Archive; a != nil {
		for _, b := range a.Behind {
			i := rule(behindRule, func() sarifRule {
				return sarifRule{ID: behindRule, ShortDescription: sarifText{"Installed package is older than the security archive's"},
					Help:       &sarifText{"Rebuild the image on an updated base, or run apt-get upgrade in it."},
					Properties: map[string]any{"tags": []string{"security", "patch"}}}
			})
			run.Results = append(run.Results, sarifResult{
				RuleID: behindRule, RuleIndex: i, Level: "warning",
				Message:   sarifText{fmt.Sprintf("%s %s is older than %s in %s", b.Installed.Name, b.Installed.Version, b.Available, strings.Join(a.Indexes, ", "))},
				Locations: r.locations([]string{"/var/lib/dpkg/status"}),
			})
		}
	}
	for _, x := range extra {
		i := rule(x.RuleID, func() sarifRule {
			ru := sarifRule{ID: x.RuleID, ShortDescription: sarifText{x.Description}, Properties: map[string]any{"tags": []string{"security"}}}
			if x.Help != "" {
				ru.Help = &sarifText{x.Help}
			}
			if x.Score != "" {
				ru.Properties["security-severity"] = x.Score
			}
			return ru
		})
		run.Results = append(run.Results, sarifResult{RuleID: x.RuleID, RuleIndex: i, Level: x.Level, Message: sarifText{x.Message}, Locations: r.locations(x.Paths)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}

func (r *Report) locations(paths []string) []sarifLocation {
	p := ""
	if len(paths) > 0 {
		p = strings.TrimPrefix(paths[0], "/")
	}
	if p == "" {
		p = r.Source.Name // the image itself
	}
	if p == "" {
		return []sarifLocation{}
	}
	// A URI reference: escaped, and "./"-prefixed when the first segment
	// has a colon ("127.0.0.1:5000/app:v1" is not a scheme).
	return []sarifLocation{{sarifPhysical{sarifArtifact{URI: (&url.URL{Path: p}).String()}}}}
}

func sarifLevel(r osv.Rating) string {
	switch r {
	case osv.Critical, osv.High:
		return "error"
	case osv.Medium:
		return "warning"
	}
	return "note"
}

// nominalScore gives code-scanning services a number for a rating that
// came without a CVSS score.
func nominalScore(r osv.Rating) string {
	switch r {
	case osv.Critical:
		return "9.0"
	case osv.High:
		return "7.0"
	case osv.Medium:
		return "4.0"
	case osv.Low:
		return "0.1"
	}
	return ""
}
