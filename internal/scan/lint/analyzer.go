package lint

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
)

// Limits of the content scan for secrets.
const (
	// maxScanSize: larger files are not searched (keys and credential
	// files are small; large files are data or programs).
	maxScanSize = 256 << 10
)

// fileFacts is what the analyzer keeps for one file.
type fileFacts struct {
	setuid, setgid bool
	secrets        []string // kinds of secrets found in the content
	cache          string   // kind of package cache the file belongs to
	sudo           bool
	size           int64
}

// Analyzer collects the filesystem facts Check needs. Pass it to the walk
// along with the catalogers' analyzer, and to Check in Input.Analyzer. One
// walk at a time.
type Analyzer struct {
	// secrets seen in any layer, also those a later layer removed: the
	// lower layer still carries them to everyone who pulls the image.
	secrets []layerSecret
	buf     []byte // reused between files
}

type layerSecret struct {
	path  string
	layer int
	kinds []string
}

// NewAnalyzer returns the lint's rootfs.Analyzer.
func NewAnalyzer() *Analyzer { return &Analyzer{} }

// Wants implements rootfs.Analyzer.
func (a *Analyzer) Wants(f *rootfs.File) bool {
	return f.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 || cacheKind(f.Path) != "" || isSudo(f.Path) || scanForSecrets(f)
}

// Analyze implements rootfs.Analyzer.
func (a *Analyzer) Analyze(_ context.Context, f *rootfs.File, r io.Reader, _ any) (any, error) {
	v := fileFacts{setuid: f.Mode&fs.ModeSetuid != 0, setgid: f.Mode&fs.ModeSetgid != 0, cache: cacheKind(f.Path), sudo: isSudo(f.Path), size: f.Size}
	if scanForSecrets(f) {
		if a.buf == nil {
			a.buf = make([]byte, maxScanSize)
		}
		n, err := io.ReadFull(r, a.buf[:min(f.Size, maxScanSize)])
		if err != nil && err != io.ErrUnexpectedEOF {
			return nil, err
		}
		v.secrets = findSecrets(f.Path, a.buf[:n])
		if len(v.secrets) > 0 && len(a.secrets) < 10*maxEvidence {
			a.secrets = append(a.secrets, layerSecret{f.Path, f.Layer, v.secrets})
		}
	}
	if !v.setuid && !v.setgid && v.cache == "" && !v.sudo && len(v.secrets) == 0 {
		return nil, nil
	}
	return v, nil
}

func isSudo(p string) bool {
	return p == "/usr/bin/sudo" || p == "/bin/sudo" || p == "/usr/sbin/sudo"
}

// cacheKind names the package manager cache p belongs to, or "".
func cacheKind(p string) string {
	dir, base := path.Split(p)
	switch {
	case dir == "/var/lib/apt/lists/" && base != "lock":
		return "apt lists (/var/lib/apt/lists)"
	case dir == "/var/cache/apt/archives/" && strings.HasSuffix(base, ".deb"):
		return "apt archives (/var/cache/apt/archives)"
	case dir == "/var/cache/apt/" && strings.HasSuffix(base, ".bin"):
		return "apt package cache (/var/cache/apt/*.bin)"
	case strings.HasPrefix(p, "/var/cache/apk/"):
		return "apk cache (/var/cache/apk)"
	case strings.HasPrefix(p, "/var/cache/yum/") || strings.HasPrefix(p, "/var/cache/dnf/"):
		return "yum/dnf cache (/var/cache/yum, /var/cache/dnf)"
	case strings.HasPrefix(p, "/root/.cache/pip/"):
		return "pip cache (/root/.cache/pip)"
	case strings.HasPrefix(p, "/root/.npm/_cacache/"):
		return "npm cache (/root/.npm/_cacache)"
	}
	return ""
}

// Trees whose files are not searched for secrets: packaged programs, data,
// libraries and dependencies (which ship test keys and sample credentials
// by the thousand), and the OS package databases and caches, checked
// otherwise. /usr/local is searched.
var noSecretScan = []string{"/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/usr/share/", "/usr/lib/", "/usr/lib64/", "/lib/", "/lib64/", "/usr/libexec/", "/usr/include/", "/usr/src/",
	"/var/lib/dpkg/", "/var/lib/apt/", "/var/cache/", "/var/lib/apk/", "/lib/apk/", "/proc/", "/sys/", "/dev/"}

var noSecretScanParts = []string{"/node_modules/", "/site-packages/", "/dist-packages/", "/.git/objects/"}

func scanForSecrets(f *rootfs.File) bool {
	if f.Size == 0 || f.Size > maxScanSize {
		return false
	}
	for _, p := range noSecretScan {
		if strings.HasPrefix(f.Path, p) {
			return false
		}
	}
	for _, p := range noSecretScanParts {
		if strings.Contains(f.Path, p) {
			return false
		}
	}
	return true
}

// findSecrets returns the kinds of secrets in b, a file at p.
func findSecrets(p string, b []byte) []string {
	var kinds []string
	add := func(k string) {
		for _, x := range kinds {
			if x == k {
				return
			}
		}
		kinds = append(kinds, k)
	}
	if hasPrivateKey(b) {
		add("private key")
	}
	if hasAWSAccessKeyID(b) {
		add("AWS access key id")
	}
	for _, name := range [][]byte{[]byte("aws_secret_access_key"), []byte("AWS_SECRET_ACCESS_KEY")} {
		if i := bytes.Index(b, name); i >= 0 && hasValueAfter(b[i+len(name):], 40) {
			add("AWS secret access key")
		}
	}
	for _, t := range []struct {
		prefix string
		n      int
	}{{"ghp_", 36}, {"gho_", 36}, {"ghs_", 36}, {"github_pat_", 82}} {
		if hasToken(b, []byte(t.prefix), t.n, isTokenByte) {
			add("GitHub token")
		}
	}
	switch base := path.Base(p); {
	case base == ".git-credentials" && bytes.Contains(b, []byte("://")) && bytes.Contains(b, []byte("@")):
		add("git credentials")
	case base == "config.json" && path.Base(path.Dir(p)) == ".docker" && bytes.Contains(b, []byte(`"auth"`)):
		add("registry credentials")
	case base == ".npmrc" && (bytes.Contains(b, []byte("_authToken")) || bytes.Contains(b, []byte("_auth="))):
		add("npm token")
	case base == ".pypirc" && bytes.Contains(b, []byte("password")):
		add("PyPI password")
	}
	return kinds
}

// hasPrivateKey finds a PEM private key header ("-----BEGIN RSA PRIVATE
// KEY-----", "... OPENSSH PRIVATE KEY-----", "... ENCRYPTED PRIVATE
// KEY-----", ...).
func hasPrivateKey(b []byte) bool {
	for {
		i := bytes.Index(b, []byte("PRIVATE KEY-----"))
		if i < 0 {
			return false
		}
		line := b[:i]
		if j := bytes.LastIndexByte(line, '\n'); j >= 0 {
			line = line[j+1:]
		}
		if k := bytes.Index(line, []byte("-----BEGIN ")); k >= 0 && len(line)-k <= len("-----BEGIN ENCRYPTED ") {
			return true
		}
		b = b[i+1:]
	}
}

// hasAWSAccessKeyID finds AKIA/ASIA followed by 16 upper-case letters or
// digits, not inside a longer word.
func hasAWSAccessKeyID(b []byte) bool {
	upper := func(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	return hasToken(b, []byte("AKIA"), 16, upper) || hasToken(b, []byte("ASIA"), 16, upper)
}

func isTokenByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
}

// hasToken finds prefix followed by exactly n bytes accepted by ok, not
// inside a longer word.
func hasToken(b, prefix []byte, n int, ok func(byte) bool) bool {
	for off := 0; ; {
		i := bytes.Index(b[off:], prefix)
		if i < 0 {
			return false
		}
		i += off
		start, end := i+len(prefix), i+len(prefix)+n
		if (i == 0 || !isTokenByte(b[i-1])) && end <= len(b) && (end == len(b) || !isTokenByte(b[end])) && all(b[start:end], ok) {
			return true
		}
		off = i + 1
	}
}

func all(b []byte, ok func(byte) bool) bool {
	for _, c := range b {
		if !ok(c) {
			return false
		}
	}
	return true
}

// hasValueAfter: rest starts with optional spaces, '=' or ':', optional
// spaces or quotes, then at least n characters of a base64 secret.
func hasValueAfter(rest []byte, n int) bool {
	rest = bytes.TrimLeft(rest, " \t\"'")
	if len(rest) == 0 || (rest[0] != '=' && rest[0] != ':') {
		return false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\"'")
	k := 0
	for k < len(rest) && (isTokenByte(rest[k]) || rest[k] == '/' || rest[k] == '+') {
		k++
	}
	return k >= n
}
