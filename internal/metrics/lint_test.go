package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// sample is one parsed sample line.
type sample struct {
	name   string
	labels [][2]string // as written, values unescaped
	value  float64
	line   string
}

func (s sample) label(name string) (string, bool) {
	for _, l := range s.labels {
		if l[0] == name {
			return l[1], true
		}
	}
	return "", false
}

// parseExposition is a strict, hand-written check of the text format 0.0.4
// as this package writes it: every family is "# HELP name text", "# TYPE name
// type", then its samples; families are unique and sorted by name; every
// other line is name{label="value",...} value with only the \\, \" and \n
// escapes, valid names, no repeated label or series; histograms have
// increasing le bounds ending in +Inf, cumulative counts, and a _count equal
// to the +Inf bucket. It returns the samples in order.
func parseExposition(text string) ([]sample, error) {
	if text == "" {
		return nil, nil
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("output does not end in a newline")
	}
	var (
		out      []sample
		fam, typ string
		help     = map[string]bool{}
		series   = map[string]bool{}
		lastFam  string
		hist     = map[string]*histCheck{}
	)
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		errf := func(format string, a ...any) error {
			return fmt.Errorf("line %d %q: %s", n+1, line, fmt.Sprintf(format, a...))
		}
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, h, ok := strings.Cut(rest, " ")
			if !ok || !validMetricName(name) {
				return nil, errf("bad HELP")
			}
			if _, err := unescape(h, false); err != nil {
				return nil, errf("help: %v", err)
			}
			if help[name] {
				return nil, errf("second HELP for %s", name)
			}
			if name <= lastFam {
				return nil, errf("family %s not after %s", name, lastFam)
			}
			help[name] = true
			fam, typ, lastFam = name, "", name
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, ty, ok := strings.Cut(rest, " ")
			if !ok || name != fam || typ != "" {
				return nil, errf("TYPE not right after its HELP")
			}
			switch ty {
			case "counter", "gauge", "histogram", "summary", "untyped":
			default:
				return nil, errf("unknown type %q", ty)
			}
			typ = ty
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			return nil, errf("unexpected comment or blank line")
		}
		if typ == "" {
			return nil, errf("sample before its family's HELP and TYPE")
		}
		s, err := parseSampleLine(line)
		if err != nil {
			return nil, errf("%v", err)
		}
		_, hasLE := s.label("le")
		_, hasQ := s.label("quantile")
		switch {
		case s.name == fam && !hasLE && (typ != "summary" || hasQ) && (typ != "histogram"):
		case typ == "histogram" && s.name == fam+"_bucket" && hasLE:
		case (typ == "histogram" || typ == "summary") && (s.name == fam+"_sum" || s.name == fam+"_count") && !hasLE && !hasQ:
		default:
			return nil, errf("sample does not belong to family %s of type %s", fam, typ)
		}
		key := s.name + "|" + fmt.Sprint(s.labels)
		if series[key] {
			return nil, errf("repeated series")
		}
		series[key] = true
		if typ == "counter" && (s.value < 0 || math.IsNaN(s.value)) {
			return nil, errf("counter value %v", s.value)
		}
		if typ == "histogram" {
			if err := checkHistogramSample(hist, fam, s); err != nil {
				return nil, errf("%v", err)
			}
		}
		out = append(out, s)
	}
	for k, h := range hist {
		if !h.done() {
			return nil, fmt.Errorf("histogram series %s incomplete: %+v", k, *h)
		}
	}
	return out, nil
}

type histCheck struct {
	lastLE      float64
	lastCum     float64
	buckets     int
	inf, count  bool
	sum         bool
	infV        float64
	sawAnything bool
}

func (h *histCheck) done() bool { return h.inf && h.sum && h.count }

// checkHistogramSample follows one histogram series (its labels without le)
// through its buckets, _sum and _count.
func checkHistogramSample(hist map[string]*histCheck, fam string, s sample) error {
	var rest [][2]string
	var le string
	for _, l := range s.labels {
		if l[0] == "le" {
			le = l[1]
		} else {
			rest = append(rest, l)
		}
	}
	key := fam + fmt.Sprint(rest)
	h := hist[key]
	if h == nil {
		h = &histCheck{lastLE: math.Inf(-1)}
		hist[key] = h
	}
	switch s.name {
	case fam + "_bucket":
		if h.inf {
			return fmt.Errorf("bucket after +Inf")
		}
		b, err := parseValue(le)
		if err != nil || math.IsNaN(b) || b <= h.lastLE {
			return fmt.Errorf("le %q not increasing", le)
		}
		if s.value < h.lastCum || s.value != math.Trunc(s.value) {
			return fmt.Errorf("bucket count %v not cumulative", s.value)
		}
		h.lastLE, h.lastCum = b, s.value
		if math.IsInf(b, +1) {
			h.inf, h.infV = true, s.value
		}
	case fam + "_sum":
		if !h.inf || h.sum {
			return fmt.Errorf("_sum out of place")
		}
		h.sum = true
	case fam + "_count":
		if !h.sum || h.count {
			return fmt.Errorf("_count out of place")
		}
		if s.value != h.infV {
			return fmt.Errorf("_count %v != +Inf bucket %v", s.value, h.infV)
		}
		h.count = true
	}
	return nil
}

func parseSampleLine(line string) (sample, error) {
	s := sample{line: line}
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' {
		i++
	}
	s.name = line[:i]
	if !validMetricName(s.name) {
		return s, fmt.Errorf("bad metric name %q", s.name)
	}
	if i < len(line) && line[i] == '{' {
		i++
		seen := map[string]bool{}
		for {
			j := strings.Index(line[i:], `="`)
			if j < 0 {
				return s, fmt.Errorf("label without =\"")
			}
			name := line[i : i+j]
			if !validLabelName(name) && name != "le" && name != "quantile" || seen[name] {
				return s, fmt.Errorf("bad or repeated label name %q", name)
			}
			seen[name] = true
			i += j + 2
			// The value runs to the first unescaped quote.
			k := i
			for ; k < len(line) && line[k] != '"'; k++ {
				if line[k] == '\\' {
					k++
				}
			}
			if k >= len(line) {
				return s, fmt.Errorf("unterminated label value")
			}
			v, err := unescape(line[i:k], true)
			if err != nil {
				return s, err
			}
			s.labels = append(s.labels, [2]string{name, v})
			i = k + 1
			if i < len(line) && line[i] == ',' {
				i++
				continue
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			return s, fmt.Errorf("expected , or } after a label")
		}
	}
	if i >= len(line) || line[i] != ' ' {
		return s, fmt.Errorf("expected one space before the value")
	}
	v, err := parseValue(line[i+1:])
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(+1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	if s == "" || strings.ContainsAny(s, " \tiInN_x") {
		return 0, fmt.Errorf("bad value %q", s)
	}
	return strconv.ParseFloat(s, 64)
}

// unescape undoes the format's escaping, refusing any escape the format
// does not define and, in label values, any raw double quote.
func unescape(s string, label bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("invalid UTF-8 in %q", s)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' && label {
			return "", fmt.Errorf("raw quote in %q", s)
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("trailing backslash in %q", s)
		}
		switch {
		case s[i] == '\\':
			b.WriteByte('\\')
		case s[i] == 'n':
			b.WriteByte('\n')
		case s[i] == '"' && label:
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("undefined escape \\%c in %q", s[i], s)
		}
	}
	return b.String(), nil
}
