package vulndb

import (
	"context"
	"fmt"
	"time"
)

// Status describes the database: where its records came from, how many
// there are per ecosystem, and how fresh they are.
type Status struct {
	Path       string `json:"path"`
	Generation int64  `json:"generation"`
	// UpdatedAt is when an import last changed the database.
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	Records   int       `json:"records"`
	// NewestModified is the newest "modified" time of any record, the
	// best measure of the data's age; zero when no record has one (the Go
	// database's module copy writes none).
	NewestModified time.Time         `json:"newestModified,omitzero"`
	Sources        []SourceStatus    `json:"sources"`
	Ecosystems     []EcosystemStatus `json:"ecosystems"`
}

// SourceStatus is one imported path.
type SourceStatus struct {
	Path       string    `json:"path"`
	ImportedAt time.Time `json:"importedAt"`
	// Records read at the last import and records in the database that
	// came from it (fewer when another source has newer copies).
	Records  int `json:"records"`
	Stored   int `json:"stored"`
	Rejected int `json:"rejected"`
}

// EcosystemStatus counts records (advisories) and affected packages.
type EcosystemStatus struct {
	Ecosystem string `json:"ecosystem"`
	Records   int    `json:"records"`
	Packages  int    `json:"packages"`
}

// Status reads the database's status.
func (db *DB) Status(ctx context.Context) (*Status, error) {
	st := &Status{Path: db.path, Sources: []SourceStatus{}, Ecosystems: []EcosystemStatus{}}
	var err error
	if st.Generation, err = db.Generation(ctx); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	var updated, newest string
	_ = db.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'updated_at'`).Scan(&updated)
	st.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(modified), '') FROM vulns`).Scan(&st.Records, &newest); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	// RFC 3339 UTC strings of one layout sort as times; the zero time
	// ("0001-…") sorts first.
	if t, err := time.Parse(time.RFC3339Nano, newest); err == nil && t.Year() > 1 {
		st.NewestModified = t
	}
	rows, err := db.r.QueryContext(ctx, `SELECT s.path, s.imported_at, s.records, s.rejected, (SELECT COUNT(*) FROM vulns v WHERE v.source = s.id)
		FROM sources s ORDER BY s.imported_at`)
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	for rows.Next() {
		var s SourceStatus
		var at string
		if err := rows.Scan(&s.Path, &at, &s.Records, &s.Rejected, &s.Stored); err != nil {
			rows.Close()
			return nil, err
		}
		s.ImportedAt, _ = time.Parse(time.RFC3339Nano, at)
		st.Sources = append(st.Sources, s)
	}
	rows.Close()
	rows, err = db.r.QueryContext(ctx, `SELECT ecosystem, COUNT(DISTINCT vuln), COUNT(*) FROM affected GROUP BY ecosystem ORDER BY ecosystem`)
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e EcosystemStatus
		if err := rows.Scan(&e.Ecosystem, &e.Records, &e.Packages); err != nil {
			return nil, err
		}
		st.Ecosystems = append(st.Ecosystems, e)
	}
	return st, rows.Err()
}
