package version

import (
	"strings"

	debversion "github.com/knqyf263/go-deb-version"
)

type debianOrder struct{}

func (debianOrder) Name() string { return "debian" }

// maxDigits is the longest digit run go-deb-version compares correctly: it
// converts runs with strconv.Atoi, which saturates at 19 digits, while
// dpkg compares digit strings of any length. Versions with longer runs
// (date-and-time stamps, e.g. 1.0+git20240101123456789012) are compared by
// verrevcmp below, a transcription of dpkg's lib/dpkg/version.c.
const maxDigits = 18

type debianVersion struct {
	v    debversion.Version
	s    string
	long bool // has a digit run longer than maxDigits
}

func (debianOrder) Parse(s string) (Version, error) {
	if err := checkCommon("debian", s); err != nil {
		return nil, err
	}
	// go-deb-version accepts a signed epoch ("+1:"); dpkg's is digits.
	if epoch, _, ok := strings.Cut(s, ":"); ok {
		if epoch == "" || strings.TrimLeft(epoch, "0123456789") != "" || len(epoch) > 9 {
			return nil, invalid("debian", s, "epoch is not a number")
		}
	}
	// dpkg refuses an empty revision ("1.0-"); go-deb-version takes it as
	// none.
	if strings.HasSuffix(s, "-") {
		return nil, invalid("debian", s, "revision is empty")
	}
	v, err := debversion.NewVersion(s)
	if err != nil {
		return nil, invalid("debian", s, err.Error())
	}
	return &debianVersion{v: v, s: s, long: longestDigitRun(s) > maxDigits}, nil
}

func (d *debianVersion) String() string { return d.s }

func (d *debianVersion) Compare(w Version) int {
	e := w.(*debianVersion)
	if d.long || e.long {
		return compareDebianLong(d, e)
	}
	return sign(d.v.Compare(e.v))
}

func compareDebianLong(a, b *debianVersion) int {
	if c := sign(a.v.Epoch() - b.v.Epoch()); c != 0 {
		return c
	}
	if c := verrevcmp(a.v.Version(), b.v.Version()); c != 0 {
		return sign(c)
	}
	return sign(verrevcmp(a.v.Revision(), b.v.Revision()))
}

// verrevcmp is dpkg's comparison of an upstream version or a revision.
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := debOrder(a, i), debOrder(b, j)
			if ac != bc {
				return ac - bc
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		for i < len(a) && j < len(b) && isDigit(a[i]) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return firstDiff
		}
	}
	return 0
}

// debOrder is dpkg's order(): end of string and digits 0, letters by
// ASCII, '~' before everything, other characters after letters.
func debOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case isDigit(c):
		return 0
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return int(c)
	case c == '~':
		return -1
	}
	return int(c) + 256
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func longestDigitRun(s string) int {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}
