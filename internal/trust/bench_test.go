package trust

import (
	"context"
	"testing"
	"time"
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
