package trust

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Fetcher reads what signature discovery needs from a registry.
// remote.Client implements it; the registry and the runner can pass their
// own.
type Fetcher interface {
	// Referrers lists manifests whose subject is subject, of artifactType.
	Referrers(ctx context.Context, repo oci.ImageRef, subject digest.Digest, artifactType string) ([]v1.Descriptor, error)
	// Manifest fetches a manifest, verified against ref's digest.
	Manifest(ctx context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error)
	// Blob opens a blob whose reader fails at EOF if the content does not
	// match d, and past maxSize.
	Blob(ctx context.Context, repo oci.ImageRef, d digest.Digest, maxSize int64) (io.ReadCloser, int64, error)
}

// Facts finds the signatures of repo@subject and verifies each one
// cryptographically. Every signature found yields a fact, failures
// included, so a decision can explain all of them; an error means discovery
// itself failed. Feed the facts to Policy.Evaluate. Facts depend only on
// the image digest, so callers may cache them per digest.
func Facts(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest) ([]SignatureFact, error) {
	repo.Tag, repo.Digest = "", ""
	descs, err := f.Referrers(ctx, repo, subject, NotationArtifactType)
	if err != nil {
		return nil, fmt.Errorf("list signatures of %s@%s: %w", repo, subject, err)
	}
	facts := make([]SignatureFact, 0, len(descs))
	for _, desc := range descs {
		facts = append(facts, notationFact(ctx, f, repo, subject, desc))
	}
	return facts, nil
}

func notationFact(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest, desc v1.Descriptor) SignatureFact {
	fail := func(format string, args ...any) SignatureFact {
		return SignatureFact{Format: "notation", Ref: desc.Digest.String(), Error: fmt.Sprintf(format, args...)}
	}
	sigRef := repo
	sigRef.Digest = desc.Digest
	_, body, err := f.Manifest(ctx, sigRef)
	if err != nil {
		return fail("fetch signature manifest: %v", err)
	}
	// The referrers list is only the registry's word: the manifest itself,
	// verified by digest, must say it signs this image and hold one envelope.
	m, err := oci.ParseManifest("", body)
	switch {
	case err != nil:
		return fail("signature manifest: %v", err)
	case m.Subject == nil || m.Subject.Digest != subject:
		return fail("signature manifest's subject is not %s", subject)
	case len(m.Layers) != 1:
		return fail("signature manifest has %d layers, want one envelope", len(m.Layers))
	case m.Layers[0].Size > MaxNotationEnvelopeBytes:
		return fail("signature envelope of %d bytes exceeds %d", m.Layers[0].Size, MaxNotationEnvelopeBytes)
	}
	rc, _, err := f.Blob(ctx, repo, m.Layers[0].Digest, MaxNotationEnvelopeBytes)
	if err != nil {
		return fail("fetch signature envelope: %v", err)
	}
	defer rc.Close()
	envelope, err := io.ReadAll(rc) // verified against its digest at EOF
	if err != nil {
		return fail("fetch signature envelope: %v", err)
	}
	return VerifyNotation(ctx, envelope, m.Layers[0].MediaType, desc.Digest.String())
}
