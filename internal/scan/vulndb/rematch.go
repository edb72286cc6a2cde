package vulndb

import (
	"context"
	"fmt"
	"iter"

	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

// Rematch matches stored SBOMs against the database as it is now, without
// reading any image again: the SBOM is the input. One matcher serves all of
// them, so each distinct package is looked up once and each distinct
// (package, version) evaluated once. fn gets each SBOM's report (to store
// it, compare it with the previous one using Diff, notify); its error, or
// one from sboms, stops the run. It returns the number of SBOMs matched.
func Rematch(ctx context.Context, m *Matcher, sboms iter.Seq2[*sbom.SBOM, error], fn func(*sbom.SBOM, *Report) error) (int, error) {
	n := 0
	for s, err := range sboms {
		if err != nil {
			return n, err
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		r, err := m.Match(ctx, s)
		if err != nil {
			return n, fmt.Errorf("match %s: %w", s.Source.Name, err)
		}
		n++
		if err := fn(s, r); err != nil {
			return n, err
		}
	}
	return n, nil
}
