package catalog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DebPackage is one stanza of a dpkg database.
type DebPackage struct {
	Name          string
	Version       string
	Arch          string
	SourceName    string
	SourceVersion string
	// Status is the third word of Status: ("installed", "unpacked",
	// "config-files", ...); empty in distroless status.d files, which
	// hold installed packages only.
	Status string
}

// Installed reports whether the package's files are on disk: any state
// but not-installed and config-files.
func (p *DebPackage) Installed() bool {
	return p.Status != "not-installed" && p.Status != "config-files"
}

// maxControlLine bounds one line of a control file. Real status files
// have lines of a few hundred bytes (long Depends:, Description:).
const maxControlLine = 1 << 20

// errSkip marks a stanza left out because it lacks a name or version or
// has characters dpkg would not accept.
var errSkip = errors.New("stanza skipped")

// ParseDpkgStatus reads a dpkg status file (/var/lib/dpkg/status) or a
// distroless status.d entry: stanzas of "Field: value" lines separated by
// blank lines, continuation lines starting with a space or tab. It returns
// the stanzas that name a valid package and version, in file order, and
// how many it skipped. Input is untrusted: lines are bounded, nothing else
// is kept.
func ParseDpkgStatus(r io.Reader) (pkgs []DebPackage, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxControlLine)
	var cur DebPackage
	var field string // last field name, for continuation lines
	inStanza := false
	flush := func() {
		if !inStanza {
			return
		}
		if p, err := finishDeb(cur); err != nil {
			skipped++
		} else {
			pkgs = append(pkgs, p)
		}
		cur, field, inStanza = DebPackage{}, "", false
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		inStanza = true
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of field: none of the fields read spans lines
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			// dpkg refuses such a file; keep the stanza's other fields
			// and let finishDeb judge it.
			field = ""
			continue
		}
		field = string(bytes.TrimSpace(line[:i]))
		value := string(bytes.TrimSpace(line[i+1:]))
		switch strings.ToLower(field) {
		case "package":
			cur.Name = value
		case "version":
			cur.Version = value
		case "architecture":
			cur.Arch = value
		case "source":
			cur.SourceName, cur.SourceVersion = value, ""
			if j := strings.IndexByte(value, '('); j >= 0 {
				cur.SourceName = strings.TrimSpace(value[:j])
				v := value[j+1:]
				if k := strings.IndexByte(v, ')'); k >= 0 {
					cur.SourceVersion = strings.TrimSpace(v[:k])
				} else {
					cur.SourceVersion = "\x00" // unterminated: invalid
				}
			}
		case "status":
			words := strings.Fields(value)
			cur.Status = "\x00"
			if len(words) == 3 {
				cur.Status = words[2]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return pkgs, skipped, fmt.Errorf("dpkg status: %w", err)
	}
	flush()
	return pkgs, skipped, nil
}

// finishDeb validates a stanza and fills the source defaults.
func finishDeb(p DebPackage) (DebPackage, error) {
	if !validDebName(p.Name) || !validDebVersion(p.Version) {
		return p, errSkip
	}
	if p.Arch != "" && !validToken(p.Arch) {
		return p, errSkip
	}
	if p.Status == "\x00" {
		return p, errSkip
	}
	if p.SourceName == "" {
		p.SourceName = p.Name
	} else if !validDebName(p.SourceName) {
		return p, errSkip
	}
	switch p.SourceVersion {
	case "":
		p.SourceVersion = p.Version
	default:
		if !validDebVersion(p.SourceVersion) {
			return p, errSkip
		}
	}
	return p, nil
}

// validDebName follows Debian policy 5.6.1: lower case letters, digits,
// + - . ; at least two characters, starting with an alphanumeric. dpkg
// itself also accepts upper case in old databases, so it is allowed.
func validDebName(s string) bool {
	if len(s) < 2 || len(s) > 256 || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validDebVersion follows Debian policy 5.6.12: [epoch:]upstream[-revision]
// with alphanumerics and . + - ~ (and : within upstream when there is an
// epoch); the upstream part starts with a digit.
func validDebVersion(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	up := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		for j := 0; j < i; j++ {
			if s[j] < '0' || s[j] > '9' {
				return false
			}
		}
		if i == 0 {
			return false
		}
		up = s[i+1:]
	}
	if up == "" || up[0] < '0' || up[0] > '9' {
		return false
	}
	for i := 0; i < len(up); i++ {
		c := up[i]
		if !isAlnum(c) && !strings.ContainsRune(".+-~:", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validToken: printable ASCII without spaces, for architectures and the
// like.
func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// ParseFileList reads a dpkg file list (/var/lib/dpkg/info/NAME.list: one
// absolute path per line) or an md5sums file ("HASH  path" with the path
// relative to /), returning clean "/"-rooted paths.
func ParseFileList(r io.Reader, md5sums bool) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 16<<10), 64<<10)
	var out []string
	for sc.Scan() {
		line := sc.Text()
		if md5sums {
			i := strings.IndexByte(line, ' ')
			if i < 0 {
				continue
			}
			line = strings.TrimLeft(line[i:], " ")
		}
		if line == "" || line == "/." || strings.IndexByte(line, 0) >= 0 {
			continue
		}
		if line[0] != '/' {
			line = "/" + line
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("file list: %w", err)
	}
	return out, nil
}

// maxLicenses bounds the licenses kept for one package.
const maxLicenses = 32

// ParseDebianCopyright reads the License: fields of a machine-readable
// debian/copyright (DEP-5, as installed in /usr/share/doc/NAME/copyright)
// and returns their short names ("GPL-2+", "BSD-3-clause", "GPL-1+ or
// Artistic"), each once, in file order. A copyright file in free form has
// none.
func ParseDebianCopyright(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 16<<10), maxControlLine)
	var out []string
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if !strings.HasPrefix(line, "Format:") || !strings.Contains(line, "copyright-format") {
				return nil, nil
			}
			continue
		}
		v, ok := strings.CutPrefix(line, "License:")
		if !ok {
			continue
		}
		out = appendLicense(out, v)
		if len(out) == maxLicenses {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("copyright: %w", err)
	}
	return out, nil
}
