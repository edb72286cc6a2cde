package trust

import (
	"context"
	"crypto"
	"errors"
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

// ErrNotFound is what a Fetcher's error matches (errors.Is) when a
// manifest does not exist. Facts needs it to tell "no cosign signature
// tag" from "could not look".
var ErrNotFound = errors.New("not found")

// MaxSignatureManifests bounds the signature manifests (referrers) Facts
// checks for one image; more is a discovery error rather than thousands
// of fetches.
const MaxSignatureManifests = 256

// FactsOption configures Facts.
type FactsOption func(*factsConfig)

type factsConfig struct {
	keys []crypto.PublicKey
}

// WithKeys gives Facts the public keys to check key-only cosign signatures
// with (legacy signatures and bundles without a certificate name no key).
// Pass the trust policy's, Policy.PublicKeys. Facts then depend on the
// keys as well as the digest: cache them per (digest, policy version).
func WithKeys(keys ...crypto.PublicKey) FactsOption {
	return func(c *factsConfig) { c.keys = append(c.keys, keys...) }
}

// Facts finds the signatures of repo@subject and verifies each one
// cryptographically: Notary Project signatures and Sigstore bundles
// attached as OCI referrers, and cosign's legacy signatures under the
// "sha256-<hex>.sig" tag (one fact per signature layer). Every signature
// found yields a fact, failures included, so a decision can explain all of
// them; an error means discovery itself failed. Feed the facts to
// Policy.Evaluate. Without WithKeys, facts depend only on the image
// digest, so callers may cache them per digest.
func Facts(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest, opts ...FactsOption) ([]SignatureFact, error) {
	var cfg factsConfig
	for _, o := range opts {
		o(&cfg)
	}
	repo.Tag, repo.Digest = "", ""
	// One listing for every format: the artifact type only routes a
	// referrer to its parser, which checks the manifest itself.
	descs, err := f.Referrers(ctx, repo, subject, "")
	if err != nil {
		return nil, fmt.Errorf("list signatures of %s@%s: %w", repo, subject, err)
	}
	var sigs []v1.Descriptor
	for _, desc := range descs {
		if desc.ArtifactType == NotationArtifactType || desc.ArtifactType == SigstoreBundleArtifactType {
			sigs = append(sigs, desc)
		}
	}
	if len(sigs) > MaxSignatureManifests {
		return nil, fmt.Errorf("list signatures of %s@%s: %d signature manifests, more than the %d bulwark checks",
			repo, subject, len(sigs), MaxSignatureManifests)
	}
	facts := make([]SignatureFact, 0, len(sigs))
	for _, desc := range sigs {
		switch desc.ArtifactType {
		case NotationArtifactType:
			facts = append(facts, notationFact(ctx, f, repo, subject, desc))
		case SigstoreBundleArtifactType:
			if pt := desc.Annotations[bundlePredicateAnnotation]; pt != "" && pt != CosignSignPredicateType {
				continue // an attestation (SLSA provenance, SBOM, …), not a signature
			}
			facts = append(facts, bundleFact(ctx, f, repo, subject, desc, cfg.keys))
		}
	}
	return append(facts, cosignFacts(ctx, f, repo, subject, cfg.keys)...), nil
}

// bundlePredicateAnnotation is where cosign says, on a bundle referrer,
// which in-toto predicate the bundle carries.
const bundlePredicateAnnotation = "dev.sigstore.bundle.predicateType"

func notationFact(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest, desc v1.Descriptor) SignatureFact {
	fail := func(err error) SignatureFact {
		return SignatureFact{Format: "notation", Ref: desc.Digest.String(), Error: err.Error()}
	}
	layer, err := signatureManifest(ctx, f, repo, subject, desc, MaxNotationEnvelopeBytes)
	if err != nil {
		return fail(err)
	}
	envelope, err := readBlob(ctx, f, repo, layer.Digest, MaxNotationEnvelopeBytes)
	if err != nil {
		return fail(fmt.Errorf("fetch signature envelope: %w", err))
	}
	return VerifyNotation(ctx, envelope, layer.MediaType, desc.Digest.String())
}

// signatureManifest fetches the referrer desc and checks what a
// registry's listing cannot vouch for: the manifest, verified by digest,
// says it signs subject and holds one layer of at most maxLayer bytes.
func signatureManifest(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest, desc v1.Descriptor, maxLayer int64) (v1.Descriptor, error) {
	sigRef := repo
	sigRef.Digest = desc.Digest
	_, body, err := f.Manifest(ctx, sigRef)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("fetch signature manifest: %w", err)
	}
	m, err := oci.ParseManifest("", body)
	switch {
	case err != nil:
		return v1.Descriptor{}, fmt.Errorf("signature manifest: %w", err)
	case m.Subject == nil || m.Subject.Digest != subject:
		return v1.Descriptor{}, fmt.Errorf("signature manifest's subject is not %s", subject)
	case len(m.Layers) != 1:
		return v1.Descriptor{}, fmt.Errorf("signature manifest has %d layers, want one", len(m.Layers))
	case m.Layers[0].Size > maxLayer:
		return v1.Descriptor{}, fmt.Errorf("signature layer of %d bytes exceeds %d", m.Layers[0].Size, maxLayer)
	}
	return m.Layers[0], nil
}

// readBlob reads a whole blob of at most max bytes, verified against d
// (the Fetcher checks the digest at EOF).
func readBlob(ctx context.Context, f Fetcher, repo oci.ImageRef, d digest.Digest, max int64) ([]byte, error) {
	rc, _, err := f.Blob(ctx, repo, d, max)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("blob %s exceeds %d bytes", d, max)
	}
	return b, nil
}

func bundleFact(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest, desc v1.Descriptor, keys []crypto.PublicKey) SignatureFact {
	fail := func(err error) SignatureFact {
		return SignatureFact{Format: cosignBundleFormat, Ref: desc.Digest.String(), Error: err.Error()}
	}
	layer, err := signatureManifest(ctx, f, repo, subject, desc, MaxCosignBundleBytes)
	if err != nil {
		return fail(err)
	}
	if layer.MediaType != SigstoreBundleArtifactType {
		return fail(fmt.Errorf("bundle layer media type %q is not %q", truncateString(layer.MediaType, 100), SigstoreBundleArtifactType))
	}
	bundle, err := readBlob(ctx, f, repo, layer.Digest, MaxCosignBundleBytes)
	if err != nil {
		return fail(fmt.Errorf("fetch bundle: %w", err))
	}
	return VerifyCosignBundle(ctx, bundle, subject, keys, desc.Digest.String())
}

// cosignFacts reads the legacy "sha256-<hex>.sig" manifest: one fact per
// layer, none if the tag does not exist.
func cosignFacts(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest, keys []crypto.PublicKey) []SignatureFact {
	tag := CosignSignatureTag(subject)
	fail := func(ref string, err error) []SignatureFact {
		return []SignatureFact{{Format: cosignFormat, Ref: ref, Error: err.Error()}}
	}
	sigRef := repo
	sigRef.Tag = tag
	_, body, err := f.Manifest(ctx, sigRef)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fail(tag, fmt.Errorf("fetch cosign signature manifest: %w", err))
	}
	m, err := oci.ParseManifest("", body)
	switch {
	case err != nil:
		return fail(tag, fmt.Errorf("cosign signature manifest: %w", err))
	case m.IsIndex():
		return fail(tag, errors.New("cosign signature manifest is an index"))
	case len(m.Layers) > MaxCosignLayers:
		return fail(tag, fmt.Errorf("cosign signature manifest has %d layers, more than the %d bulwark checks", len(m.Layers), MaxCosignLayers))
	}
	facts := make([]SignatureFact, 0, len(m.Layers))
	for i, layer := range m.Layers {
		ref := fmt.Sprintf("%s#%d", tag, i)
		if layer.MediaType != CosignSimpleSigningMediaType {
			facts = append(facts, fail(ref, fmt.Errorf("layer media type %q is not %q", truncateString(layer.MediaType, 100), CosignSimpleSigningMediaType))...)
			continue
		}
		if layer.Size > MaxCosignPayloadBytes {
			facts = append(facts, fail(ref, fmt.Errorf("payload of %d bytes exceeds %d", layer.Size, MaxCosignPayloadBytes))...)
			continue
		}
		p, err := readBlob(ctx, f, repo, layer.Digest, MaxCosignPayloadBytes)
		if err != nil {
			facts = append(facts, fail(ref, fmt.Errorf("fetch payload: %w", err))...)
			continue
		}
		facts = append(facts, VerifyCosign(ctx, layer, p, keys, ref))
	}
	return facts
}
