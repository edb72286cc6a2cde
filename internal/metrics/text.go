package metrics

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// appendSample appends one sample line: name+suffix, the labels of d in
// name order with their values, then an optional extra label (le, quantile)
// written last as client_golang does, then the value.
func appendSample(b []byte, d *desc, suffix string, values []string, extraName, extraValue string, v float64) []byte {
	b = append(b, d.name...)
	b = append(b, suffix...)
	sep := byte('{')
	for _, i := range d.order {
		b = append(b, sep)
		b = append(b, d.labels[i]...)
		b = append(b, '=', '"')
		b = appendEscaped(b, values[i], true)
		b = append(b, '"')
		sep = ','
	}
	if extraName != "" {
		b = append(b, sep)
		b = append(b, extraName...)
		b = append(b, '=', '"')
		b = append(b, extraValue...)
		b = append(b, '"')
		sep = ','
	}
	if sep == ',' {
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}

// appendEscaped appends s escaped for the text format: backslash and
// newline always, the double quote inside label values. Invalid UTF-8,
// which the format does not allow, becomes U+FFFD, one per run of bad bytes
// as strings.ToValidUTF8 does (client_golang would have panicked when the
// label value was first used).
func appendEscaped(b []byte, s string, quote bool) []byte {
	bad := false // the previous byte was invalid UTF-8
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			bad = false
			switch {
			case c == '\\':
				b = append(b, '\\', '\\')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '"' && quote:
				b = append(b, '\\', '"')
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			if !bad {
				b = utf8.AppendRune(b, utf8.RuneError)
			}
			bad = true
		} else {
			b = append(b, s[i:i+n]...)
			bad = false
		}
		i += n
	}
	return b
}

// appendFloat formats v as client_golang's text encoder does: shortest 'g'
// form, with +Inf, -Inf and NaN spelled as the format wants.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
