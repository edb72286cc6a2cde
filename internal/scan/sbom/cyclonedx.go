package sbom

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
)

// CycloneDX 1.5 JSON, the subset bulwark writes. The structs are written
// here rather than taken from cyclonedx-go: bulwark emits a dozen fields,
// and the tests check them against the specification's required fields.
type (
	CycloneDX struct {
		BOMFormat    string         `json:"bomFormat"`
		SpecVersion  string         `json:"specVersion"`
		SerialNumber string         `json:"serialNumber,omitempty"`
		Version      int            `json:"version"`
		Metadata     *CDXMetadata   `json:"metadata,omitempty"`
		Components   []CDXComponent `json:"components"`
	}
	CDXMetadata struct {
		Timestamp string        `json:"timestamp,omitempty"`
		Tools     *CDXTools     `json:"tools,omitempty"`
		Component *CDXComponent `json:"component,omitempty"`
	}
	CDXTools struct {
		Components []CDXComponent `json:"components"`
	}
	CDXComponent struct {
		Type       string        `json:"type"`
		BOMRef     string        `json:"bom-ref,omitempty"`
		Name       string        `json:"name"`
		Version    string        `json:"version,omitempty"`
		PURL       string        `json:"purl,omitempty"`
		Licenses   []CDXLicense  `json:"licenses,omitempty"`
		Hashes     []CDXHash     `json:"hashes,omitempty"`
		Properties []CDXProperty `json:"properties,omitempty"`
	}
	// CDXLicense is a license choice: one of License or Expression.
	CDXLicense struct {
		License    *CDXLicenseID `json:"license,omitempty"`
		Expression string        `json:"expression,omitempty"`
	}
	CDXLicenseID struct {
		ID   string `json:"id,omitempty"`
		Name string `json:"name,omitempty"`
	}
	CDXHash struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	}
	CDXProperty struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
)

// Property names bulwark adds to CycloneDX components (its own
// namespace, as the CycloneDX property taxonomy asks).
const (
	PropLayer         = "bulwark:layer"
	PropPath          = "bulwark:path"
	PropSourceName    = "bulwark:source:name"
	PropSourceVersion = "bulwark:source:version"
	PropOwnedBy       = "bulwark:ownedBy"
	PropArch          = "bulwark:arch"
	PropDistro        = "bulwark:distro"
)

// serial derives a stable UUID for the document from what it describes,
// so the same scan gives the same serial number and namespace.
func (s *SBOM) serial() uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("bulwark:%s:%s:%s:%s", s.Source.Kind, s.Source.Name, s.Source.Digest, s.Created.Format(time.RFC3339Nano))))
}

// CycloneDX converts the SBOM to CycloneDX 1.5.
func (s *SBOM) CycloneDX() *CycloneDX {
	doc := &CycloneDX{BOMFormat: "CycloneDX", SpecVersion: "1.5", SerialNumber: "urn:uuid:" + s.serial().String(), Version: 1,
		Components: []CDXComponent{}}
	md := &CDXMetadata{Timestamp: s.Created.UTC().Format(time.RFC3339)}
	if s.Tool != "" {
		name, version, _ := strings.Cut(s.Tool, "/")
		md.Tools = &CDXTools{Components: []CDXComponent{{Type: "application", Name: name, Version: version}}}
	}
	subject := CDXComponent{Type: "container", BOMRef: "subject", Name: s.Source.Name}
	if s.Source.Kind == SourceRootfs {
		subject.Type = "file"
	}
	if s.Source.Digest != "" {
		subject.Version = s.Source.Digest.String()
		subject.Hashes = cdxHash(s.Source.Digest.String())
	}
	md.Component = &subject
	doc.Metadata = md
	if d := s.Distro; d != nil {
		os := CDXComponent{Type: "operating-system", BOMRef: "os", Name: d.ID, Version: d.VersionID}
		if d.Name != "" {
			os.Properties = append(os.Properties, CDXProperty{"bulwark:os:prettyName", d.Name})
		}
		doc.Components = append(doc.Components, os)
	}
	for i := range s.Packages {
		p := &s.Packages[i]
		c := CDXComponent{Type: "library", BOMRef: fmt.Sprintf("pkg-%d", i), Name: p.Name, Version: p.Version, PURL: p.PURL}
		for _, l := range p.Licenses {
			c.Licenses = append(c.Licenses, cdxLicense(l))
		}
		prop := func(name, value string) {
			if value != "" {
				c.Properties = append(c.Properties, CDXProperty{name, value})
			}
		}
		prop(PropSourceName, p.SourceName)
		prop(PropSourceVersion, p.SourceVersion)
		prop(PropArch, p.Arch)
		prop(PropLayer, p.Layer.String())
		for _, path := range p.Paths {
			prop(PropPath, path)
		}
		prop(PropOwnedBy, p.OwnedBy)
		doc.Components = append(doc.Components, c)
	}
	return doc
}

func cdxHash(d string) []CDXHash {
	alg, hex, ok := strings.Cut(d, ":")
	switch {
	case !ok:
		return nil
	case alg == "sha256":
		return []CDXHash{{"SHA-256", hex}}
	case alg == "sha512":
		return []CDXHash{{"SHA-512", hex}}
	}
	return nil
}

// cdxLicense uses an SPDX id or expression where the declared license is
// one bulwark knows to be valid (the schema only accepts listed ids),
// else the declared name.
func cdxLicense(l string) CDXLicense {
	if id, ok := spdxID(l); ok {
		return CDXLicense{License: &CDXLicenseID{ID: id}}
	}
	if validExpression(l) {
		return CDXLicense{Expression: l}
	}
	return CDXLicense{License: &CDXLicenseID{Name: l}}
}

// EncodeCycloneDX writes the SBOM as CycloneDX 1.5 JSON.
func (s *SBOM) EncodeCycloneDX(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(s.CycloneDX())
}
