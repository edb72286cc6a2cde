package remote

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Challenge is one challenge of a WWW-Authenticate header (RFC 9110 §11.6.1).
// Scheme and parameter names are lower-cased; they are case-insensitive.
type Challenge struct {
	Scheme string
	Params map[string]string
}

// maxChallengeHeader bounds the work a hostile registry can cause.
const maxChallengeHeader = 16 << 10

// String renders the challenge canonically (parameters sorted, values
// quoted); ParseChallenges(c.String()) gives c back.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	keys := make([]string, 0, len(c.Params))
	for k := range c.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(`="`)
		for j := 0; j < len(c.Params[k]); j++ {
			if ch := c.Params[k][j]; ch == '"' || ch == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c.Params[k][j])
		}
		b.WriteByte('"')
	}
	return b.String()
}

// ParseChallenges parses a WWW-Authenticate value, which may hold several
// challenges ("Basic realm=x, Bearer realm=y"). Values may be quoted strings
// with backslash escapes or bare words; bare words run to the next comma or
// space, which also accepts the unquoted URLs some registries send. A
// repeated parameter is an error: which one to believe would be a guess.
func ParseChallenges(h string) ([]Challenge, error) {
	if len(h) > maxChallengeHeader {
		return nil, fmt.Errorf("WWW-Authenticate: longer than %d bytes", maxChallengeHeader)
	}
	var out []Challenge
	i := 0
	for {
		i = skip(h, i, " \t,")
		if i >= len(h) {
			break
		}
		scheme, j := readToken(h, i)
		if scheme == "" {
			return nil, fmt.Errorf("WWW-Authenticate: unexpected %q at offset %d", h[i], i)
		}
		i = j
		ch := Challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
		for {
			k := skip(h, i, " \t,")
			name, m := readToken(h, k)
			if name == "" {
				i = k
				break
			}
			m = skip(h, m, " \t")
			if m >= len(h) || h[m] != '=' {
				i = k // a bare word: the next challenge's scheme
				break
			}
			m = skip(h, m+1, " \t")
			var val string
			if m < len(h) && h[m] == '"' {
				var err error
				if val, m, err = readQuoted(h, m); err != nil {
					return nil, err
				}
			} else {
				start := m
				for m < len(h) && h[m] != ',' && h[m] != ' ' && h[m] != '\t' {
					m++
				}
				val = h[start:m]
			}
			key := strings.ToLower(name)
			if _, dup := ch.Params[key]; dup {
				return nil, fmt.Errorf("WWW-Authenticate: parameter %q repeated", key)
			}
			ch.Params[key] = val
			i = m
		}
		out = append(out, ch)
	}
	if len(out) == 0 {
		return nil, errors.New("WWW-Authenticate: no challenge")
	}
	return out, nil
}

func skip(s string, i int, set string) int {
	for i < len(s) && strings.IndexByte(set, s[i]) >= 0 {
		i++
	}
	return i
}

// isTchar is RFC 9110's token character class.
func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func readToken(s string, i int) (string, int) {
	start := i
	for i < len(s) && isTchar(s[i]) {
		i++
	}
	return s[start:i], i
}

// readQuoted reads a quoted-string starting at s[i] == '"'.
func readQuoted(s string, i int) (string, int, error) {
	var b strings.Builder
	for i++; i < len(s); i++ {
		switch s[i] {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			i++
			if i == len(s) {
				return "", 0, errors.New("WWW-Authenticate: unterminated escape")
			}
		}
		b.WriteByte(s[i])
	}
	return "", 0, errors.New("WWW-Authenticate: unterminated quoted string")
}
