package catalog

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// ApkPackage is one entry of an apk installed database.
type ApkPackage struct {
	Name    string // P:
	Version string // V:
	Arch    string // A:
	License string // L:
	Origin  string // o: the aport it was built from
	// Files are the package's files, "/"-rooted (F: directories, R:
	// files in the last F:).
	Files []string
}

// maxApkFiles bounds the files kept for one package (a hostile database
// could list millions); real packages have at most tens of thousands.
const maxApkFiles = 200_000

// ParseApkInstalled reads /lib/apk/db/installed: entries of "K:value"
// lines separated by blank lines. It returns the entries with a valid name
// and version, in file order, and how many it skipped.
func ParseApkInstalled(r io.Reader) (pkgs []ApkPackage, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxControlLine)
	var cur ApkPackage
	dir := ""
	in := false
	files := 0
	flush := func() {
		if !in {
			return
		}
		if validApkName(cur.Name) && validApkVersion(cur.Version) && (cur.Arch == "" || validToken(cur.Arch)) && (cur.Origin == "" || validApkName(cur.Origin)) {
			pkgs = append(pkgs, cur)
		} else {
			skipped++
		}
		cur, dir, in = ApkPackage{}, "", false
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		in = true
		if len(line) < 2 || line[1] != ':' {
			continue
		}
		v := line[2:]
		switch line[0] {
		case 'P':
			cur.Name = v
		case 'V':
			cur.Version = v
		case 'A':
			cur.Arch = v
		case 'L':
			cur.License = v
		case 'o':
			cur.Origin = v
		case 'F':
			dir = v
		case 'R':
			if files < maxApkFiles && v != "" && strings.IndexByte(v, '/') < 0 {
				cur.Files = append(cur.Files, path.Clean("/"+dir+"/"+v))
				files++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return pkgs, skipped, fmt.Errorf("apk installed: %w", err)
	}
	flush()
	return pkgs, skipped, nil
}

// validApkName: apk package names are printable ASCII without spaces or
// slashes.
func validApkName(s string) bool {
	return validToken(s) && len(s) <= 256 && !strings.ContainsAny(s, "/:")
}

// validApkVersion: digits first, then alphanumerics and . _ - + ~.
func validApkVersion(s string) bool {
	if s == "" || len(s) > 128 || s[0] < '0' || s[0] > '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune("._-+~", rune(c)) {
			return false
		}
	}
	return true
}
