package catalog

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

// ParseOSRelease reads os-release(5): KEY=value lines, values optionally
// in single or double quotes with backslash escapes. Unknown keys and
// malformed lines are ignored.
func ParseOSRelease(r io.Reader) (sbom.Distro, error) {
	var d sbom.Distro
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = unquoteShell(v)
		if len(v) > 256 {
			continue
		}
		switch k {
		case "ID":
			d.ID = v
		case "VERSION_ID":
			d.VersionID = v
		case "VERSION_CODENAME":
			d.Codename = v
		case "PRETTY_NAME":
			d.Name = v
		}
	}
	if err := sc.Err(); err != nil {
		return d, fmt.Errorf("os-release: %w", err)
	}
	if d.ID == "" {
		d.ID = "linux" // os-release(5): the default
	}
	if !validToken(d.ID) || (d.VersionID != "" && !validToken(d.VersionID)) || (d.Codename != "" && !validToken(d.Codename)) {
		return sbom.Distro{}, fmt.Errorf("os-release: invalid ID, VERSION_ID or VERSION_CODENAME")
	}
	return d, nil
}

// unquoteShell removes one level of shell quoting, as os-release allows.
func unquoteShell(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		q := v[0]
		v = v[1 : len(v)-1]
		if q == '"' {
			var b strings.Builder
			for i := 0; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				b.WriteByte(v[i])
			}
			v = b.String()
		}
	}
	return strings.ToValidUTF8(v, "?")
}
