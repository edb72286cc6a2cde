package vulndb

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/aptindex"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/version"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vex"
)

// Finding is one advisory affecting one package.
type Finding struct {
	// ID is the advisory's id (GO-2024-2600, DSA-5678-1, …); Aliases its
	// other names (CVE-…, GHSA-…).
	ID       string    `json:"id"`
	Aliases  []string  `json:"aliases,omitempty"`
	Summary  string    `json:"summary,omitempty"`
	URL      string    `json:"url,omitempty"`
	Severity osv.Score `json:"severity"`
	// SeverityFrom names the alias whose record gave the severity when
	// the advisory itself has none.
	SeverityFrom string `json:"severityFrom,omitempty"`
	// Fixed is the first version that fixes it ("" when there is no
	// fix yet), in the advisory's terms: a Debian source version, a Go
	// module version without "v".
	Fixed string `json:"fixed,omitempty"`
	// Published is when the advisory was published (OSV "published"),
	// zero when the record does not say. For advisories written with
	// their fix (Debian DSA/DLA, the Go database, GHSA) it is about when
	// the fix became available.
	Published time.Time  `json:"published,omitzero"`
	Package   PackageRef `json:"package"`
	// Ecosystem, Name and Version are what the advisory matched: for a
	// Debian binary package, its source package and version.
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	// VEX is the OpenVEX statement that suppressed the finding (in
	// Report.Suppressed only).
	VEX *vex.Decision `json:"vex,omitempty"`
}

// PackageRef is the affected SBOM package.
type PackageRef struct {
	Type    sbom.Type     `json:"type"`
	Name    string        `json:"name"`
	Version string        `json:"version"`
	PURL    string        `json:"purl"`
	Layer   digest.Digest `json:"layer,omitempty"`
	Paths   []string      `json:"paths,omitempty"`
}

// Report is the result of matching one SBOM.
type Report struct {
	Source   sbom.Source  `json:"source"`
	Distro   *sbom.Distro `json:"distro,omitempty"`
	Database DatabaseRef  `json:"database"`
	// Packages is the number of SBOM packages looked up.
	Packages int       `json:"packages"`
	Findings []Finding `json:"findings"`
	// Suppressed are findings an OpenVEX statement marks not_affected or
	// fixed.
	Suppressed []Finding `json:"suppressed,omitempty"`
	// Archive is the "behind the security archive" check, when asked for.
	Archive *ArchiveCheck `json:"archive,omitempty"`
	// Notes say what could not be matched and why.
	Notes []string `json:"notes,omitempty"`
}

// ArchiveCheck lists installed Debian packages older than an APT
// archive's (e.g. bookworm-security): missing fixes, no CVE feed needed.
type ArchiveCheck struct {
	Indexes []string          `json:"indexes"`
	Behind  []aptindex.Behind `json:"behind"`
}

// DatabaseRef says which database state a report reflects.
type DatabaseRef struct {
	Generation int64     `json:"generation"`
	UpdatedAt  time.Time `json:"updatedAt,omitzero"`
}

// Matcher matches SBOMs against one state of the database. It caches the
// advisories of each package name and the verdict for each (package,
// version), so matching many SBOMs that share packages (the re-match after
// a database update) costs little more than matching their distinct
// packages. Safe for concurrent use.
type Matcher struct {
	db  *DB
	ref DatabaseRef

	mu         sync.Mutex
	candidates map[string][]*candidate // query.key() → advisories
	verdicts   map[string][]hit        // query.key() + version → matches
	vulns      map[string]*vulnInfo
}

// NewMatcher starts a matcher at the database's current generation.
func (db *DB) NewMatcher(ctx context.Context) (*Matcher, error) {
	m := &Matcher{db: db, candidates: map[string][]*candidate{}, verdicts: map[string][]hit{}, vulns: map[string]*vulnInfo{}}
	var err error
	if m.ref.Generation, err = db.Generation(ctx); err != nil {
		return nil, fmt.Errorf("read vulnerability database: %w", err)
	}
	var updated string
	if err := db.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'updated_at'`).Scan(&updated); err == nil {
		m.ref.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
	}
	return m, nil
}

// Database is the state the matcher answers for.
func (m *Matcher) Database() DatabaseRef { return m.ref }

// candidate is one stored affected entry, with its versions parsed.
type candidate struct {
	vuln      string
	ecosystem string
	order     version.Order // the ecosystem's, nil when unknown
	ranges    []parsedRange
	versions  []string
	parsedVer []version.Version
	severity  osv.Score
}

type parsedRange struct {
	order  version.Order
	events []parsedEvent
}

type eventKind int

const (
	introduced eventKind = iota
	fixed
	lastAffected
	limit
)

type parsedEvent struct {
	kind eventKind
	raw  string
	v    version.Version // nil for introduced "0": every version
}

type hit struct {
	vuln, ecosystem, fixed string
	severity               osv.Score
}

type vulnInfo struct {
	aliases      []string
	summary, url string
	published    time.Time
	severity     osv.Score
	severityFrom string
}

// Match matches one SBOM. Packages that an OS package owns (OwnedBy) are
// covered by the OS package's advisories and skipped.
func (m *Matcher) Match(ctx context.Context, s *sbom.SBOM) (*Report, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := &Report{Source: s.Source, Distro: s.Distro, Database: m.ref, Findings: []Finding{}}
	notes := map[string]bool{}
	note := func(n string) {
		if !notes[n] {
			notes[n] = true
			r.Notes = append(r.Notes, n)
		}
	}
	for i := range s.Packages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := &s.Packages[i]
		if p.OwnedBy != "" {
			continue
		}
		q, ok, why := queryFor(p, s.Distro)
		if !ok {
			if why != "" {
				note(why)
			}
			continue
		}
		r.Packages++
		hits, err := m.verdict(ctx, q, note)
		if err != nil {
			return nil, err
		}
		for _, h := range hits {
			info, err := m.vuln(ctx, h.vuln)
			if err != nil {
				return nil, err
			}
			f := Finding{
				ID: h.vuln, Aliases: info.aliases, Summary: info.summary, URL: info.url,
				Severity: h.severity, Fixed: h.fixed, Published: info.published,
				Package:   PackageRef{Type: p.Type, Name: p.Name, Version: p.Version, PURL: p.PURL, Layer: p.Layer, Paths: p.Paths},
				Ecosystem: h.ecosystem, Name: q.name, Version: q.version,
			}
			if f.Severity.Rating == osv.Unknown {
				f.Severity, f.SeverityFrom = info.severity, info.severityFrom
			}
			r.Findings = append(r.Findings, f)
		}
	}
	SortFindings(r.Findings)
	sort.Strings(r.Notes)
	return r, nil
}

// SortFindings orders findings by severity (highest first), then package,
// then id.
func SortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(b.Severity.Rating, a.Severity.Rating), cmp.Compare(a.Package.Name, b.Package.Name),
			cmp.Compare(a.Package.Version, b.Package.Version), cmp.Compare(a.ID, b.ID))
	})
}

// verdict returns the advisories affecting q's version, from the cache
// when this (package, version) was seen before.
func (m *Matcher) verdict(ctx context.Context, q query, note func(string)) ([]hit, error) {
	vk := q.key() + "\x00" + q.version
	if hits, ok := m.verdicts[vk]; ok {
		return hits, nil
	}
	cands, err := m.load(ctx, q, note)
	if err != nil {
		return nil, err
	}
	var hits []hit
	if len(cands) > 0 {
		var v version.Version
		if q.order != nil {
			if v, err = q.order.Parse(q.version); err != nil {
				note(fmt.Sprintf("%s %s: %v (not matched)", q.name, q.version, err))
			}
		}
		seen := map[string]int{}
		for _, c := range cands {
			aff, fix := c.affects(v, q.order, q.version)
			if !aff {
				continue
			}
			if i, dup := seen[c.vuln]; dup {
				// The same advisory through "Debian:12" and "Debian":
				// keep one, with a fixed version if either has it.
				if hits[i].fixed == "" {
					hits[i].fixed = fix
				}
				continue
			}
			seen[c.vuln] = len(hits)
			hits = append(hits, hit{vuln: c.vuln, ecosystem: c.ecosystem, fixed: fix, severity: c.severity})
		}
	}
	m.verdicts[vk] = hits
	return hits, nil
}

// load reads and parses the advisories naming q's package.
func (m *Matcher) load(ctx context.Context, q query, note func(string)) ([]*candidate, error) {
	k := q.key()
	if c, ok := m.candidates[k]; ok {
		return c, nil
	}
	ecos := q.ecosystems
	args := []any{q.name}
	placeholders := ""
	for i, e := range ecos {
		if i > 0 {
			placeholders += ","
		}
		placeholders += "?"
		args = append(args, e)
	}
	rows, err := m.db.r.QueryContext(ctx, `SELECT vuln, ecosystem, data FROM affected WHERE name = ? AND ecosystem IN (`+placeholders+`) ORDER BY vuln`, args...)
	if err != nil {
		return nil, fmt.Errorf("read advisories for %s: %w", q.name, err)
	}
	defer rows.Close()
	var out []*candidate
	for rows.Next() {
		var (
			vuln, eco string
			data      []byte
			sa        storedAffected
		)
		if err := rows.Scan(&vuln, &eco, &data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &sa); err != nil {
			return nil, fmt.Errorf("advisory %s: stored data: %w", vuln, err)
		}
		out = append(out, newCandidate(vuln, eco, q.name, sa, note))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	m.candidates[k] = out
	return out, nil
}

// newCandidate parses a stored affected entry's versions once.
func newCandidate(vuln, eco, name string, sa storedAffected, note func(string)) *candidate {
	c := &candidate{vuln: vuln, ecosystem: eco, severity: sa.Severity, versions: sa.Versions}
	c.order, _ = version.ForEcosystem(eco)
	if c.order != nil {
		for _, s := range sa.Versions {
			if v, err := c.order.Parse(s); err == nil {
				c.parsedVer = append(c.parsedVer, v)
			}
		}
	}
	for _, rg := range sa.Ranges {
		pr, err := parseRange(rg, eco)
		if err != nil {
			note(fmt.Sprintf("advisory %s: a %s range of %s was skipped: %v", vuln, rg.Type, name, err))
			continue
		}
		if pr != nil {
			c.ranges = append(c.ranges, *pr)
		}
	}
	return c
}

// parseRange parses and sorts a range's events; GIT ranges (nil, nil)
// cannot be evaluated on package versions.
func parseRange(rg osv.Range, ecosystem string) (*parsedRange, error) {
	order, ok := version.ForRange(rg.Type, ecosystem)
	if !ok {
		if rg.Type == "GIT" {
			return nil, nil
		}
		return nil, fmt.Errorf("no version order for %s", ecosystem)
	}
	pr := &parsedRange{order: order, events: make([]parsedEvent, 0, len(rg.Events))}
	for _, e := range rg.Events {
		var ev parsedEvent
		switch {
		case e.Introduced != "":
			ev = parsedEvent{kind: introduced, raw: e.Introduced}
		case e.Fixed != "":
			ev = parsedEvent{kind: fixed, raw: e.Fixed}
		case e.LastAffected != "":
			ev = parsedEvent{kind: lastAffected, raw: e.LastAffected}
		default:
			ev = parsedEvent{kind: limit, raw: e.Limit}
		}
		if !(ev.kind == introduced && ev.raw == "0") && !(ev.kind == limit && ev.raw == "*") {
			v, err := order.Parse(ev.raw)
			if err != nil {
				return nil, err
			}
			ev.v = v
		}
		pr.events = append(pr.events, ev)
	}
	// OSV: events are evaluated in version order, "0" first; at equal
	// versions the written order is kept.
	slices.SortStableFunc(pr.events, func(a, b parsedEvent) int {
		switch {
		case a.v == nil && b.v == nil:
			return 0
		case a.v == nil:
			return -1
		case b.v == nil:
			return 1
		}
		return a.v.Compare(b.v)
	})
	return pr, nil
}

// affects evaluates one affected entry for a version: raw as written, v
// parsed in the package ecosystem's order (nil when it did not parse: then
// only exact listed versions match). fix is the first fixed version above
// v in the range that matched.
func (c *candidate) affects(v version.Version, order version.Order, raw string) (bool, string) {
	if slices.Contains(c.versions, raw) {
		return true, c.nextFix(v, order, raw)
	}
	if v == nil {
		return false, ""
	}
	if c.order == order {
		for _, lv := range c.parsedVer {
			if lv.Compare(v) == 0 {
				return true, c.nextFix(v, order, raw)
			}
		}
	}
	for i := range c.ranges {
		if aff, fix := c.ranges[i].affects(v, order, raw); aff {
			return true, fix
		}
	}
	return false, ""
}

// nextFix finds, for a version matched by an explicit list, a fix in the
// entry's ranges.
func (c *candidate) nextFix(v version.Version, order version.Order, raw string) string {
	if v == nil {
		return ""
	}
	for i := range c.ranges {
		if aff, fix := c.ranges[i].affects(v, order, raw); aff {
			return fix
		}
	}
	return ""
}

// affects is the OSV evaluation: walking the sorted events, an introduced
// event at or below v makes it affected, a fixed event at or below v (or a
// last_affected event below v) unaffected; a limit event at or below v
// ends the range. A range in another order than the package's (a SEMVER
// range in PyPI) re-parses raw in its own order.
func (pr *parsedRange) affects(v version.Version, order version.Order, raw string) (bool, string) {
	if pr.order != order {
		w, err := pr.order.Parse(raw)
		if err != nil {
			return false, ""
		}
		v = w
	}
	affected := false
	for _, e := range pr.events {
		if e.v != nil && e.v.Compare(v) > 0 {
			break
		}
		switch e.kind {
		case introduced:
			affected = true
		case fixed:
			affected = false
		case lastAffected:
			if e.v.Compare(v) < 0 {
				affected = false
			}
		case limit:
			if e.v != nil {
				return false, ""
			}
		}
	}
	if !affected {
		return false, ""
	}
	for _, e := range pr.events {
		if e.v == nil || e.v.Compare(v) <= 0 {
			continue
		}
		if e.kind == fixed {
			return true, e.raw
		}
		if e.kind == introduced {
			break
		}
	}
	return true, ""
}

// vuln reads an advisory's report fields, with the severity of an alias
// when it has none (a Go or Debian record aliasing a GHSA or CVE record
// imported from another source).
func (m *Matcher) vuln(ctx context.Context, id string) (*vulnInfo, error) {
	if info, ok := m.vulns[id]; ok {
		return info, nil
	}
	info := &vulnInfo{}
	var aliases, sev, published string
	q := `SELECT aliases, summary, url, severity, published FROM vulns WHERE id = ?`
	if m.db.version < 2 {
		q = `SELECT aliases, summary, url, severity, '' FROM vulns WHERE id = ?`
	}
	err := m.db.r.QueryRowContext(ctx, q, id).Scan(&aliases, &info.summary, &info.url, &sev, &published)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("advisory %s vanished during matching", id)
		}
		return nil, err
	}
	json.Unmarshal([]byte(aliases), &info.aliases)
	json.Unmarshal([]byte(sev), &info.severity)
	if published != "" {
		info.published, _ = time.Parse(time.RFC3339Nano, published)
	}
	if info.severity.Rating == osv.Unknown {
		names := append([]string{id}, info.aliases...)
		for _, n := range names {
			rows, err := m.db.r.QueryContext(ctx, `SELECT id, severity FROM vulns WHERE id = ? AND id != ?
				UNION SELECT v.id, v.severity FROM aliases a JOIN vulns v ON v.id = a.vuln WHERE a.alias = ? AND v.id != ?`, n, id, n, id)
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var other, s string
				var sc osv.Score
				if rows.Scan(&other, &s) == nil && json.Unmarshal([]byte(s), &sc) == nil && sc.Rating > info.severity.Rating {
					info.severity, info.severityFrom = sc, other
				}
			}
			rows.Close()
		}
	}
	m.vulns[id] = info
	return info, nil
}
