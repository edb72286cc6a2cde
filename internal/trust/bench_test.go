package trust

import (
	"context"
	"crypto"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// BenchmarkVerifyNotation measures what deciding one signed image costs:
// verifying a Notary Project JWS signature (ECDSA P-256, leaf + root chain
// in the envelope) and evaluating the trust policy over it (chain to the
// root, code-signing EKU, identity, scope, requirement). Run with -cpu 1
// for the per-core figure in docs/benchmarks.md.
func BenchmarkVerifyNotation(b *testing.B) {
	k := newNotationPKI(b)
	ctx := context.Background()
	target := notationTarget("manifest for the benchmark")
	env, mt, err := SignNotation(ctx, target, k.key, k.chain, nil, "jws")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		fact := VerifyNotation(ctx, env, mt, "sha256:sig")
		d, err := k.policy.Evaluate("dev/app", target.Digest, "dev", []SignatureFact{fact}, now)
		if err != nil || !d.Allowed {
			b.Fatalf("not allowed: %v %+v", err, d)
		}
	}
}

// BenchmarkVerifyNotationCached measures the same decision served by a
// Cache: same image, policy version and environment as an earlier call, so
// neither the signature nor its certificate chain is verified again. This
// is what a registry or runner pays per pull or run of an image it has
// already decided, until a signature arrives or the policy changes.
func BenchmarkVerifyNotationCached(b *testing.B) {
	k := newNotationPKI(b)
	ctx := context.Background()
	target := notationTarget("manifest for the benchmark")
	env, mt, err := SignNotation(ctx, target, k.key, k.chain, nil, "jws")
	if err != nil {
		b.Fatal(err)
	}
	facts := func(ctx context.Context, _ []crypto.PublicKey) ([]SignatureFact, error) {
		return []SignatureFact{VerifyNotation(ctx, env, mt, "sha256:sig")}, nil
	}
	c := NewCache(CacheOptions{})
	img := oci.ImageRef{Registry: "127.0.0.1:5000", Repository: "dev/app", Digest: target.Digest}
	for b.Loop() {
		d, err := c.Decision(ctx, k.policy, img, "dev", facts)
		if err != nil || !d.Allowed {
			b.Fatalf("not allowed: %v %+v", err, d)
		}
	}
	if s := c.Stats(); s.Misses != 2 {
		b.Fatalf("decided %d times, want once (plus the facts)", s.Misses)
	}
}
