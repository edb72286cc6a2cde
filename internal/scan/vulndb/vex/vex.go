// Package vex reads OpenVEX documents (https://github.com/openvex/spec)
// and decides whether a statement in them covers a finding: a vendor or
// the image's owner saying a vulnerability does not affect (or is fixed
// in) a product. Documents are untrusted input, parsed strictly and within
// bounds.
package vex

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	packageurl "github.com/package-url/packageurl-go"
)

// Bounds on one document.
const (
	MaxDocumentSize = 16 << 20
	MaxStatements   = 100_000
	MaxProducts     = 10_000
	maxString       = 4096
)

// Statuses.
const (
	NotAffected        = "not_affected"
	Affected           = "affected"
	Fixed              = "fixed"
	UnderInvestigation = "under_investigation"
)

var justifications = map[string]bool{
	"component_not_present":                             true,
	"vulnerable_code_not_present":                       true,
	"vulnerable_code_not_in_execute_path":               true,
	"vulnerable_code_cannot_be_controlled_by_adversary": true,
	"inline_mitigations_already_exist":                  true,
}

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid OpenVEX document")

// Document is a parsed OpenVEX document.
type Document struct {
	ID         string
	Author     string
	Timestamp  time.Time
	Statements []Statement
}

// Statement is one statement, normalised across OpenVEX versions (v0.0.1
// wrote vulnerability and products as strings).
type Statement struct {
	Vulnerability   []string // name, @id and aliases
	Products        []Product
	Subcomponents   []string // statement-level (v0.0.1)
	Status          string
	Justification   string
	ImpactStatement string
	Timestamp       time.Time
}

// Product is a product identifier (a purl, an image digest, a reference)
// with its subcomponents.
type Product struct {
	IDs           []string // @id and identifiers
	Subcomponents []string
}

// Decision is the statement that applies to a finding.
type Decision struct {
	Status          string    `json:"status"`
	Justification   string    `json:"justification,omitempty"`
	ImpactStatement string    `json:"impactStatement,omitempty"`
	Document        string    `json:"document,omitempty"`
	Timestamp       time.Time `json:"timestamp,omitzero"`
}

// Suppresses reports whether the decision removes the finding from a
// report: the product is not affected, or contains the fix.
func (d Decision) Suppresses() bool { return d.Status == NotAffected || d.Status == Fixed }

// wire forms: fields that changed type between versions are decoded as raw
// JSON and normalised.
type wireDoc struct {
	Context    string          `json:"@context"`
	ID         string          `json:"@id"`
	Author     string          `json:"author"`
	Timestamp  *time.Time      `json:"timestamp"`
	Statements []wireStatement `json:"statements"`
}

type wireStatement struct {
	Vulnerability   json.RawMessage   `json:"vulnerability"`
	Products        []json.RawMessage `json:"products"`
	Subcomponents   []json.RawMessage `json:"subcomponents"`
	Status          string            `json:"status"`
	Justification   string            `json:"justification"`
	ImpactStatement string            `json:"impact_statement"`
	Timestamp       *time.Time        `json:"timestamp"`
}

type wireVuln struct {
	ID      string   `json:"@id"`
	Name    string   `json:"name"`
	Aliases []string `json:"aliases"`
}

type wireComponent struct {
	ID            string            `json:"@id"`
	Identifiers   map[string]string `json:"identifiers"`
	Subcomponents []json.RawMessage `json:"subcomponents"`
}

// ReadFile parses the document at path.
func ReadFile(path string) (*Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	doc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc, nil
}

// Parse parses one OpenVEX document.
func Parse(data []byte) (*Document, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxDocumentSize {
		return nil, bad("larger than %d bytes", MaxDocumentSize)
	}
	if !utf8.Valid(data) {
		return nil, bad("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var w wireDoc
	if err := dec.Decode(&w); err != nil {
		return nil, bad("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("trailing data after the JSON value")
	}
	if !strings.HasPrefix(w.Context, "https://openvex.dev/ns") {
		return nil, bad("@context %q is not an OpenVEX namespace", clip(w.Context))
	}
	if len(w.Statements) == 0 {
		return nil, bad("no statements")
	}
	if len(w.Statements) > MaxStatements {
		return nil, bad("more than %d statements", MaxStatements)
	}
	doc := &Document{ID: w.ID, Author: w.Author}
	if w.Timestamp != nil {
		doc.Timestamp = *w.Timestamp
	}
	for i, ws := range w.Statements {
		st, err := statement(ws, doc.Timestamp)
		if err != nil {
			return nil, bad("statement %d: %v", i, err)
		}
		doc.Statements = append(doc.Statements, st)
	}
	return doc, nil
}

func statement(ws wireStatement, docTime time.Time) (Statement, error) {
	st := Statement{Status: ws.Status, Justification: ws.Justification, ImpactStatement: ws.ImpactStatement, Timestamp: docTime}
	if ws.Timestamp != nil {
		st.Timestamp = *ws.Timestamp
	}
	switch st.Status {
	case NotAffected:
		if st.Justification == "" && st.ImpactStatement == "" {
			return st, errors.New("not_affected needs a justification or an impact_statement")
		}
		if st.Justification != "" && !justifications[st.Justification] {
			return st, fmt.Errorf("unknown justification %q", clip(st.Justification))
		}
	case Affected, Fixed, UnderInvestigation:
	default:
		return st, fmt.Errorf("unknown status %q", clip(st.Status))
	}
	if len(st.ImpactStatement) > maxString {
		return st, errors.New("impact_statement too long")
	}
	// vulnerability: a string (v0.0.1) or an object (v0.2.0).
	v := bytes.TrimSpace(ws.Vulnerability)
	switch {
	case len(v) > 0 && v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return st, err
		}
		st.Vulnerability = []string{s}
	case len(v) > 0 && v[0] == '{':
		var wv wireVuln
		if err := json.Unmarshal(v, &wv); err != nil {
			return st, fmt.Errorf("vulnerability: %v", err)
		}
		for _, s := range append([]string{wv.Name, wv.ID}, wv.Aliases...) {
			if s != "" {
				st.Vulnerability = append(st.Vulnerability, s)
			}
		}
	}
	if len(st.Vulnerability) == 0 {
		return st, errors.New("no vulnerability")
	}
	for _, s := range st.Vulnerability {
		if len(s) > maxString {
			return st, errors.New("vulnerability name too long")
		}
	}
	if len(ws.Products) == 0 {
		// A statement about no product would, read loosely, be about
		// every product: refuse it rather than suppress everything.
		return st, errors.New("no products")
	}
	if len(ws.Products) > MaxProducts || len(ws.Subcomponents) > MaxProducts {
		return st, fmt.Errorf("more than %d products or subcomponents", MaxProducts)
	}
	for _, raw := range ws.Products {
		ids, subs, err := component(raw, true)
		if err != nil {
			return st, fmt.Errorf("product: %v", err)
		}
		st.Products = append(st.Products, Product{IDs: ids, Subcomponents: subs})
	}
	for _, raw := range ws.Subcomponents {
		ids, _, err := component(raw, false)
		if err != nil {
			return st, fmt.Errorf("subcomponent: %v", err)
		}
		st.Subcomponents = append(st.Subcomponents, ids...)
	}
	return st, nil
}

// component reads a product or subcomponent: a string (v0.0.1) or an
// object with @id, identifiers and (products only) subcomponents.
func component(raw json.RawMessage, allowSubs bool) (ids, subs []string, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, nil, err
		}
		ids = []string{s}
	} else {
		var c wireComponent
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, nil, err
		}
		if c.ID != "" {
			ids = append(ids, c.ID)
		}
		for _, k := range []string{"purl", "cpe23", "cpe22"} {
			if v := c.Identifiers[k]; v != "" {
				ids = append(ids, v)
			}
		}
		if len(c.Subcomponents) > MaxProducts {
			return nil, nil, errors.New("too many subcomponents")
		}
		if len(c.Subcomponents) > 0 && !allowSubs {
			return nil, nil, errors.New("nested subcomponents")
		}
		for _, s := range c.Subcomponents {
			sids, _, err := component(s, false)
			if err != nil {
				return nil, nil, err
			}
			subs = append(subs, sids...)
		}
	}
	if len(ids) == 0 {
		return nil, nil, errors.New("no identifier")
	}
	for _, id := range ids {
		if id == "" || len(id) > maxString {
			return nil, nil, errors.New("empty or overlong identifier")
		}
	}
	return ids, subs, nil
}

// Subject is what a finding is about: the image (its digest, the reference
// scanned) and the package (its purl), and the vulnerability's names (id
// and aliases).
type Subject struct {
	Vulnerability []string
	// Image identifiers: "sha256:…" digests and references. An OCI purl
	// product matches an image whose digest is the purl's version.
	Image []string
	// PackagePURL is the affected package's purl.
	PackagePURL string
}

// Decide returns the statement of docs that covers s, the latest one
// (by timestamp, then position) when several do. A statement covers s when
// it names one of s's vulnerability names and a product that is the
// image (and then, if it lists subcomponents, one of them is the package)
// or the package itself. Package purls match ignoring qualifiers the
// statement does not give and, when it gives no version, any version.
func Decide(docs []*Document, s Subject) (Decision, bool) {
	var (
		best    *Statement
		bestDoc *Document
	)
	for _, d := range docs {
		for i := range d.Statements {
			st := &d.Statements[i]
			if !st.names(s.Vulnerability) || !st.covers(s) {
				continue
			}
			// Not Before: at equal times the later statement wins.
			if best == nil || !st.Timestamp.Before(best.Timestamp) {
				best, bestDoc = st, d
			}
		}
	}
	if best == nil {
		return Decision{}, false
	}
	return Decision{Status: best.Status, Justification: best.Justification, ImpactStatement: best.ImpactStatement, Document: bestDoc.ID, Timestamp: best.Timestamp}, true
}

func (st *Statement) names(vulns []string) bool {
	for _, a := range st.Vulnerability {
		for _, b := range vulns {
			if strings.EqualFold(a, b) {
				return true
			}
		}
	}
	return false
}

func (st *Statement) covers(s Subject) bool {
	for _, p := range st.Products {
		subs := p.Subcomponents
		if len(subs) == 0 {
			subs = st.Subcomponents
		}
		for _, id := range p.IDs {
			switch {
			case isImage(id, s.Image):
				if len(subs) == 0 {
					return true
				}
				for _, sub := range subs {
					if purlMatch(sub, s.PackagePURL) {
						return true
					}
				}
			case purlMatch(id, s.PackagePURL):
				return true
			}
		}
	}
	return false
}

// isImage reports whether a product identifier names the image: equal to
// a digest or reference of it, or an OCI purl whose version is its digest.
func isImage(id string, image []string) bool {
	for _, im := range image {
		if im != "" && id == im {
			return true
		}
	}
	if !strings.HasPrefix(id, "pkg:oci/") {
		return false
	}
	p, err := packageurl.FromString(id)
	if err != nil || p.Version == "" {
		return false
	}
	for _, im := range image {
		if strings.HasPrefix(im, "sha256:") && p.Version == im {
			return true
		}
	}
	return false
}

// purlMatch reports whether the statement's purl a covers the package's
// purl b.
func purlMatch(a, b string) bool {
	if a == "" || b == "" || !strings.HasPrefix(a, "pkg:") {
		return false
	}
	if a == b {
		return true
	}
	pa, err := packageurl.FromString(a)
	if err != nil {
		return false
	}
	pb, err := packageurl.FromString(b)
	if err != nil {
		return false
	}
	if pa.Type != pb.Type || pa.Namespace != pb.Namespace || pa.Name != pb.Name {
		return false
	}
	if pa.Version != "" && pa.Version != pb.Version {
		return false
	}
	qb := pb.Qualifiers.Map()
	for k, v := range pa.Qualifiers.Map() {
		if qb[k] != v {
			return false
		}
	}
	return pa.Subpath == "" || pa.Subpath == pb.Subpath
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
