package sbom

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// SPDX 2.3 JSON, the subset bulwark writes (hand-written for the same
// reason as the CycloneDX structs: a handful of fields, checked by tests).
type (
	SPDX struct {
		SPDXVersion       string             `json:"spdxVersion"`
		DataLicense       string             `json:"dataLicense"`
		SPDXID            string             `json:"SPDXID"`
		Name              string             `json:"name"`
		DocumentNamespace string             `json:"documentNamespace"`
		CreationInfo      SPDXCreationInfo   `json:"creationInfo"`
		Packages          []SPDXPackage      `json:"packages"`
		Relationships     []SPDXRelationship `json:"relationships"`
	}
	SPDXCreationInfo struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
	}
	SPDXPackage struct {
		SPDXID                string            `json:"SPDXID"`
		Name                  string            `json:"name"`
		VersionInfo           string            `json:"versionInfo,omitempty"`
		DownloadLocation      string            `json:"downloadLocation"`
		FilesAnalyzed         bool              `json:"filesAnalyzed"`
		LicenseConcluded      string            `json:"licenseConcluded"`
		LicenseDeclared       string            `json:"licenseDeclared"`
		CopyrightText         string            `json:"copyrightText"`
		SourceInfo            string            `json:"sourceInfo,omitempty"`
		PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
		Checksums             []SPDXChecksum    `json:"checksums,omitempty"`
		ExternalRefs          []SPDXExternalRef `json:"externalRefs,omitempty"`
		Comment               string            `json:"comment,omitempty"`
	}
	SPDXChecksum struct {
		Algorithm     string `json:"algorithm"`
		ChecksumValue string `json:"checksumValue"`
	}
	SPDXExternalRef struct {
		ReferenceCategory string `json:"referenceCategory"`
		ReferenceType     string `json:"referenceType"`
		ReferenceLocator  string `json:"referenceLocator"`
	}
	SPDXRelationship struct {
		SPDXElementID      string `json:"spdxElementId"`
		RelationshipType   string `json:"relationshipType"`
		RelatedSPDXElement string `json:"relatedSpdxElement"`
	}
)

const noAssertion = "NOASSERTION"

// SPDX converts the SBOM to SPDX 2.3: one package for the scanned image
// or directory that CONTAINS one package per found package, each with its
// purl as a PACKAGE-MANAGER external reference.
func (s *SBOM) SPDX() *SPDX {
	name := s.Source.Name
	if name == "" {
		name = "unnamed"
	}
	creators := []string{"Tool: bulwark"}
	if s.Tool != "" {
		creators = []string{"Tool: " + strings.Replace(s.Tool, "/", "-", 1)}
	}
	doc := &SPDX{SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT", Name: name,
		DocumentNamespace: "https://bulwark.invalid/spdx/" + url.PathEscape(name) + "-" + s.serial().String(),
		CreationInfo:      SPDXCreationInfo{Created: s.Created.UTC().Format(time.RFC3339), Creators: creators},
		Packages:          []SPDXPackage{}, Relationships: []SPDXRelationship{}}
	subject := SPDXPackage{SPDXID: "SPDXRef-Subject", Name: name, DownloadLocation: noAssertion,
		LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion, PrimaryPackagePurpose: "CONTAINER"}
	if s.Source.Kind == SourceRootfs {
		subject.PrimaryPackagePurpose = "FILE"
	}
	if d := s.Source.Digest; d != "" {
		subject.VersionInfo = d.String()
		if alg, hex, ok := strings.Cut(d.String(), ":"); ok && (alg == "sha256" || alg == "sha512") {
			subject.Checksums = []SPDXChecksum{{strings.ToUpper(alg), hex}}
		}
	}
	doc.Packages = append(doc.Packages, subject)
	doc.Relationships = append(doc.Relationships, SPDXRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", subject.SPDXID})
	if d := s.Distro; d != nil {
		os := SPDXPackage{SPDXID: "SPDXRef-OperatingSystem", Name: d.ID, VersionInfo: d.VersionID, DownloadLocation: noAssertion,
			LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion, PrimaryPackagePurpose: "OPERATING-SYSTEM",
			Comment: d.Name}
		doc.Packages = append(doc.Packages, os)
		doc.Relationships = append(doc.Relationships, SPDXRelationship{subject.SPDXID, "CONTAINS", os.SPDXID})
	}
	for i := range s.Packages {
		p := &s.Packages[i]
		sp := SPDXPackage{SPDXID: fmt.Sprintf("SPDXRef-Package-%s-%d", spdxIDChars(string(p.Type)), i), Name: p.Name, VersionInfo: p.Version,
			DownloadLocation: noAssertion, LicenseConcluded: noAssertion, LicenseDeclared: spdxLicense(p.Licenses),
			CopyrightText: noAssertion, PrimaryPackagePurpose: "LIBRARY",
			ExternalRefs: []SPDXExternalRef{{"PACKAGE-MANAGER", "purl", p.PURL}}}
		if p.SourceName != "" {
			sp.SourceInfo = "built from source package " + p.SourceName + " " + p.SourceVersion
		}
		var notes []string
		if p.Layer != "" {
			notes = append(notes, "layer "+p.Layer.String())
		}
		if len(p.Paths) > 0 {
			notes = append(notes, "found at "+strings.Join(p.Paths, ", "))
		}
		if p.OwnedBy != "" {
			notes = append(notes, "part of "+p.OwnedBy)
		}
		sp.Comment = strings.Join(notes, "; ")
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, SPDXRelationship{subject.SPDXID, "CONTAINS", sp.SPDXID})
	}
	return doc
}

// spdxLicense: the declared licenses as one SPDX expression if all are
// known ids or valid expressions, else NOASSERTION (SPDX accepts nothing
// else without LicenseRef definitions).
func spdxLicense(ls []string) string {
	var parts []string
	for _, l := range ls {
		if id, ok := spdxID(l); ok {
			parts = append(parts, id)
		} else if validExpression(l) {
			parts = append(parts, "("+l+")")
		} else {
			return noAssertion
		}
	}
	if len(parts) == 0 {
		return noAssertion
	}
	if len(parts) == 1 {
		return strings.TrimSuffix(strings.TrimPrefix(parts[0], "("), ")")
	}
	return strings.Join(parts, " AND ")
}

func spdxIDChars(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// EncodeSPDX writes the SBOM as SPDX 2.3 JSON.
func (s *SBOM) EncodeSPDX(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(s.SPDX())
}
