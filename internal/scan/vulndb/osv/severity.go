package osv

import (
	"encoding/json"
	"fmt"
	"strings"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Rating is a qualitative severity, ordered: Unknown < Low < Medium < High
// < Critical. Unknown sorts lowest so that --fail-on HIGH is not tripped by
// records that carry no severity (the Go database, Debian's); use --fail-on
// UNKNOWN to fail on any finding.
type Rating int

// Ratings.
const (
	Unknown Rating = iota
	Low
	Medium
	High
	Critical
)

var ratingNames = [...]string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

func (r Rating) String() string {
	if r < Unknown || r > Critical {
		return "UNKNOWN"
	}
	return ratingNames[r]
}

// MarshalText writes the name.
func (r Rating) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a name (see ParseRating).
func (r *Rating) UnmarshalText(b []byte) error {
	v, err := ParseRating(string(b))
	*r = v
	return err
}

// ParseRating reads a rating name, case-insensitively; MODERATE (GitHub's
// word) is MEDIUM, IMPORTANT (Red Hat's) is HIGH, NEGLIGIBLE and NONE are
// LOW.
func ParseRating(s string) (Rating, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "UNKNOWN", "UNIMPORTANT", "":
		return Unknown, nil
	case "LOW", "NEGLIGIBLE", "NONE":
		return Low, nil
	case "MEDIUM", "MODERATE":
		return Medium, nil
	case "HIGH", "IMPORTANT":
		return High, nil
	case "CRITICAL":
		return Critical, nil
	}
	return Unknown, fmt.Errorf("unknown severity %q (want CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN)", s)
}

// Score is a severity with where it came from.
type Score struct {
	Rating Rating  `json:"rating"`
	Score  float64 `json:"score,omitempty"`  // CVSS base score, 0 when none
	Vector string  `json:"vector,omitempty"` // the CVSS vector or word it came from
}

// SeverityOf rates one affected package of v: the affected entry's own
// severities, else the record's, else database_specific.severity (GitHub,
// Alpine, …) at either level. Of several CVSS vectors the newest CVSS
// version wins (v4 over v3 over v2); an unparsable vector is ignored.
func (v *Vulnerability) SeverityOf(a *Affected) Score {
	if a != nil {
		if s, ok := rate(a.Severity); ok {
			return s
		}
	}
	if s, ok := rate(v.Severity); ok {
		return s
	}
	for _, raw := range []json.RawMessage{affectedDB(a), v.DatabaseSpecific} {
		if w := severityWord(raw); w != "" {
			if r, err := ParseRating(w); err == nil && r != Unknown {
				return Score{Rating: r, Vector: w}
			}
		}
	}
	return Score{}
}

func affectedDB(a *Affected) json.RawMessage {
	if a == nil {
		return nil
	}
	if w := severityWord(a.EcosystemSpecific); w != "" {
		return a.EcosystemSpecific
	}
	return a.DatabaseSpecific
}

// severityWord reads {"severity": "HIGH"} from a *_specific object.
func severityWord(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '{' {
		return ""
	}
	var ds struct {
		Severity any `json:"severity"`
	}
	if json.Unmarshal(raw, &ds) != nil {
		return ""
	}
	s, _ := ds.Severity.(string)
	return s
}

func rate(ss []Severity) (Score, bool) {
	best, bestRank, found := Score{}, -1, false
	for _, s := range ss {
		var (
			score float64
			rank  int
			ok    = true
		)
		switch s.Type {
		case "CVSS_V4":
			c, err := gocvss40.ParseVector(s.Score)
			ok = err == nil
			if ok {
				score, rank = c.Score(), 4
			}
		case "CVSS_V3":
			switch {
			case strings.HasPrefix(s.Score, "CVSS:3.1/"):
				c, err := gocvss31.ParseVector(s.Score)
				ok = err == nil
				if ok {
					score, rank = c.BaseScore(), 3
				}
			case strings.HasPrefix(s.Score, "CVSS:3.0/"):
				c, err := gocvss30.ParseVector(s.Score)
				ok = err == nil
				if ok {
					score, rank = c.BaseScore(), 3
				}
			default:
				ok = false
			}
		case "CVSS_V2":
			c, err := gocvss20.ParseVector(s.Score)
			ok = err == nil
			if ok {
				score, rank = c.BaseScore(), 2
			}
		case "Ubuntu":
			// A distribution's priority word ranks below any CVSS score.
			if r, err := ParseRating(s.Score); err == nil && r != Unknown && bestRank < 1 {
				best, bestRank, found = Score{Rating: r, Vector: s.Score}, 1, true
			}
			continue
		default:
			continue
		}
		if !ok || rank <= bestRank {
			continue
		}
		best, bestRank, found = Score{Rating: ratingOfScore(score), Score: score, Vector: s.Score}, rank, true
	}
	return best, found
}

// ratingOfScore maps a CVSS base score to its qualitative rating (the same
// bands in CVSS v3 and v4; v2 has no CRITICAL band officially, but tools
// apply the v3 bands and so does bulwark).
func ratingOfScore(s float64) Rating {
	switch {
	case s >= 9:
		return Critical
	case s >= 7:
		return High
	case s >= 4:
		return Medium
	case s > 0:
		return Low
	}
	return Unknown
}
