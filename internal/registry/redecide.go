package registry

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// TriggerScan: the manifest is quarantined and its scan results changed
// (its scan completed, a vulnerability database update changed its
// findings, or, for an index, one of its platforms' did).
const TriggerScan Trigger = "scan"

// Redecide asks the push policy again about a quarantined manifest, for a
// cause outside the registry's own requests (trigger, e.g. TriggerScan):
// the facts a decision reads have changed. Like the arrival of evidence,
// a passing verdict releases the manifest (and re-decides the quarantined
// children of an index); otherwise the record keeps the new reasons. It
// returns an error wrapping store.ErrNotQuarantined for a manifest that
// is not quarantined, and ErrNoGate without a policy.
func (reg *Registry) Redecide(ctx context.Context, by Actor, repo string, d digest.Digest, trigger Trigger) (ReleaseResult, error) {
	if reg.opts.Gate == nil {
		return ReleaseResult{}, ErrNoGate
	}
	if err := oci.ValidateRepository(repo); err != nil {
		return ReleaseResult{}, err
	}
	q, err := reg.meta.Quarantined(ctx, repo, d)
	if err != nil {
		return ReleaseResult{}, err
	}
	if q == nil {
		return ReleaseResult{}, fmt.Errorf("%w: %s@%s", store.ErrNotQuarantined, repo, d)
	}
	return reg.redecide(ctx, by, q, trigger, "", 0)
}
