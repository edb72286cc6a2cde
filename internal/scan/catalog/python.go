package catalog

import (
	"bufio"
	"fmt"
	"io"
	"net/textproto"
	"strings"
)

// PythonPackage is what a *.dist-info/METADATA declares.
type PythonPackage struct {
	Name     string
	Version  string
	Licenses []string
}

// ParseMetadata reads the header of a Python core metadata file
// (METADATA, RFC 822 style, parsed with net/textproto as Python's email
// parser would); the body, the long description, is not read. Input is
// untrusted; the caller bounds its size.
func ParseMetadata(r io.Reader) (PythonPackage, error) {
	h, err := textproto.NewReader(bufio.NewReader(r)).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return PythonPackage{}, fmt.Errorf("METADATA: %w", err)
	}
	// A header that ends without the blank line before the body (or at
	// EOF) is complete enough.
	p := PythonPackage{Name: strings.TrimSpace(h.Get("Name")), Version: strings.TrimSpace(h.Get("Version"))}
	if p.Name == "" || p.Version == "" {
		return PythonPackage{}, ErrNotPackage
	}
	if !validPythonName(p.Name) || !validVersionText(p.Version) {
		return PythonPackage{}, fmt.Errorf("METADATA: invalid name or version %q %q", truncate(p.Name), truncate(p.Version))
	}
	// Metadata 2.4's License-Expression is an SPDX expression; License:
	// is free text (sometimes a whole license, which is not kept); the
	// classifiers name licenses too.
	if e := h.Get("License-Expression"); e != "" {
		p.Licenses = appendLicense(p.Licenses, e)
	} else if l := h.Get("License"); l != "" && len(l) <= 128 && l != "UNKNOWN" {
		p.Licenses = appendLicense(p.Licenses, l)
	}
	if len(p.Licenses) == 0 {
		for _, c := range h.Values("Classifier") {
			if rest, ok := strings.CutPrefix(c, "License :: "); ok {
				rest = strings.TrimPrefix(rest, "OSI Approved :: ")
				if rest != "OSI Approved" {
					p.Licenses = appendLicense(p.Licenses, rest)
				}
			}
			if len(p.Licenses) == 8 {
				break
			}
		}
	}
	return p, nil
}

// validPythonName follows PEP 508: ASCII letters, digits, . _ -, starting
// and ending with a letter or digit.
func validPythonName(s string) bool {
	if s == "" || len(s) > 256 || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// NormalizePythonName is PEP 503's normalisation (lower case, runs of
// - _ . become one -), which PyPI, OSV and purl use.
func NormalizePythonName(s string) string {
	var b strings.Builder
	sep := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' || c == '_' || c == '.' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}
