package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// cosign's "legacy" signature layout, which cosign v2 writes by default and
// every cosign version reads: the signatures of image sha256:<hex> live in
// the same repository under the tag "sha256-<hex>.sig", an OCI image
// manifest with one layer per signature. Each layer is a simple-signing
// payload (containers-signature(5)) naming the image's digest; its
// annotations carry the base64 signature over the payload's bytes and,
// for certificate-based signatures, the leaf certificate and its chain
// (PEM). Key-only signatures carry no key: the verifier brings it.
const (
	// CosignSimpleSigningMediaType is the media type of a payload layer.
	CosignSimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// Annotations of a payload layer.
	CosignSignatureAnnotation   = "dev.cosignproject.cosign/signature"
	CosignCertificateAnnotation = "dev.sigstore.cosign/certificate"
	CosignChainAnnotation       = "dev.sigstore.cosign/chain"

	// MaxCosignPayloadBytes bounds a simple-signing payload. cosign's are a
	// few hundred bytes plus the signed annotations.
	MaxCosignPayloadBytes = 256 << 10
	// MaxCosignLayers bounds the signatures of one .sig manifest. Every
	// signature is a blob to fetch and a signature to check; cosign itself
	// gives up at 1000.
	MaxCosignLayers = 100
	// maxCosignSignatureChars bounds the base64 signature annotation (an
	// RSA-4096 signature is 684 characters).
	maxCosignSignatureChars = 4 << 10
	// maxCosignCertChars bounds each certificate annotation, and
	// maxCosignChainCerts the certificates of a chain.
	maxCosignCertChars  = 64 << 10
	maxCosignChainCerts = 10

	cosignFormat = "cosign"
)

// CosignSignatureTag is the tag under which cosign keeps the signatures of
// subject: "sha256-<hex>.sig".
func CosignSignatureTag(subject digest.Digest) string {
	return subject.Algorithm().String() + "-" + subject.Encoded() + ".sig"
}

// SignCosign signs target, the digest of an image in repository
// dockerReference ("host/repo", as cosign writes critical.identity), the
// way `cosign sign` does: a simple-signing payload with annotations as its
// optional section, signed with key. chain (leaf first) is attached when
// given: the leaf as the certificate annotation, the rest as the chain;
// without it the signature is key-only. It returns the payload, which is
// the layer's blob, and the layer descriptor to append to the .sig
// manifest (AppendCosignSignature).
func SignCosign(ctx context.Context, dockerReference string, target digest.Digest, key crypto.Signer,
	chain []*x509.Certificate, annotations map[string]string) (payloadBytes []byte, layer v1.Descriptor, err error) {
	if err := ctx.Err(); err != nil {
		return nil, v1.Descriptor{}, err
	}
	if _, err := oci.ParseDigest(target.String()); err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("cosign sign: target digest: %w", err)
	}
	if dockerReference == "" {
		return nil, v1.Descriptor{}, errors.New("cosign sign: no docker reference")
	}
	if len(chain) > 0 && !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return nil, v1.Descriptor{}, errors.New("cosign sign: the certificate is not the key's")
	}
	var optional map[string]any
	if len(annotations) > 0 {
		optional = make(map[string]any, len(annotations))
		for k, v := range annotations {
			optional[k] = v
		}
	}
	payloadBytes, err = json.Marshal(payload.SimpleContainerImage{
		Critical: payload.Critical{
			Identity: payload.Identity{DockerReference: dockerReference},
			Image:    payload.Image{DockerManifestDigest: target.String()},
			Type:     payload.CosignSignatureType,
		},
		Optional: optional,
	})
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("cosign sign: payload: %w", err)
	}
	if len(payloadBytes) > MaxCosignPayloadBytes {
		return nil, v1.Descriptor{}, fmt.Errorf("cosign sign: payload of %d bytes exceeds %d (too many or too long annotations)",
			len(payloadBytes), MaxCosignPayloadBytes)
	}
	// SHA-256 whatever the key, which is what `cosign verify` assumes for
	// certificates and --key alike.
	signer, err := signature.LoadSigner(key, crypto.SHA256)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("cosign sign: %w", err)
	}
	sig, err := signer.SignMessage(bytes.NewReader(payloadBytes))
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("cosign sign: %w", err)
	}
	ann := map[string]string{CosignSignatureAnnotation: base64.StdEncoding.EncodeToString(sig)}
	if len(chain) > 0 {
		leaf, err := cryptoutils.MarshalCertificateToPEM(chain[0])
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("cosign sign: certificate: %w", err)
		}
		ann[CosignCertificateAnnotation] = string(leaf)
		if len(chain) > 1 {
			rest, err := cryptoutils.MarshalCertificatesToPEM(chain[1:])
			if err != nil {
				return nil, v1.Descriptor{}, fmt.Errorf("cosign sign: certificate chain: %w", err)
			}
			ann[CosignChainAnnotation] = string(rest)
		}
	}
	layer = v1.Descriptor{
		MediaType:   CosignSimpleSigningMediaType,
		Digest:      digest.FromBytes(payloadBytes),
		Size:        int64(len(payloadBytes)),
		Annotations: ann,
	}
	return payloadBytes, layer, nil
}

// AppendCosignSignature adds layer to the .sig manifest existing (nil when
// the tag does not exist yet), as cosign does when an image is signed
// again: the layers already there are kept in order and an identical layer
// is not added twice. It returns the new manifest and its config, an image
// configuration whose rootfs lists the layers (the shape cosign, through
// go-containerregistry, writes and reads). added is false when layer was
// already there; the manifest is then unchanged.
func AppendCosignSignature(existing []byte, layer v1.Descriptor) (manifest, config []byte, added bool, err error) {
	var layers []v1.Descriptor
	if existing != nil {
		m, err := oci.ParseManifest("", existing)
		if err != nil {
			return nil, nil, false, fmt.Errorf("existing cosign signature manifest: %w", err)
		}
		if m.IsIndex() {
			return nil, nil, false, errors.New("existing cosign signature manifest is an index, not an image manifest")
		}
		layers = m.Layers
	}
	added = true
	for _, l := range layers {
		if sameDescriptor(l, layer) {
			added = false
			break
		}
	}
	if added {
		if len(layers) >= MaxCosignLayers {
			return nil, nil, false, fmt.Errorf("the image already has %d cosign signatures, the most bulwark reads (%d)", len(layers), MaxCosignLayers)
		}
		layers = append(slices.Clip(layers), layer)
	}
	config, err = cosignConfig(layers)
	if err != nil {
		return nil, nil, false, err
	}
	m := v1.Manifest{
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers:    layers,
	}
	m.SchemaVersion = 2
	manifest, err = json.Marshal(m)
	if err != nil {
		return nil, nil, false, err
	}
	return manifest, config, added, nil
}

func sameDescriptor(a, b v1.Descriptor) bool {
	return a.MediaType == b.MediaType && a.Digest == b.Digest && a.Size == b.Size && maps.Equal(a.Annotations, b.Annotations)
}

// cosignConfig is the image configuration go-containerregistry writes for
// a .sig image: empty platform, one history entry and one diff ID per layer
// (the payloads are not compressed, so a layer's diff ID is its digest).
func cosignConfig(layers []v1.Descriptor) ([]byte, error) {
	type history struct {
		Created string `json:"created"`
	}
	cfg := struct {
		Architecture string    `json:"architecture"`
		Created      string    `json:"created"`
		History      []history `json:"history"`
		OS           string    `json:"os"`
		RootFS       struct {
			Type    string          `json:"type"`
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
		Config struct{} `json:"config"`
	}{Created: "0001-01-01T00:00:00Z", History: []history{}}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []digest.Digest{}
	for _, l := range layers {
		cfg.History = append(cfg.History, history{Created: "0001-01-01T00:00:00Z"})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
	}
	return json.Marshal(cfg)
}

// VerifyCosign checks one layer of a legacy cosign signature manifest:
// payload is the layer's blob. A signature with a certificate is checked
// with the certificate's key and reported with its chain, for the policy
// to judge; a key-only signature is checked with each of keys (the trust
// policy's, see Policy.PublicKeys) and reported with the key that verified
// it. The signed digest is the payload's; Policy.Evaluate refuses it for
// any other image. Any failure gives Verified false and Error.
func VerifyCosign(ctx context.Context, layer v1.Descriptor, payloadBytes []byte, keys []crypto.PublicKey, ref string) SignatureFact {
	fact := SignatureFact{Ref: ref, Format: cosignFormat}
	if err := verifyCosign(ctx, layer, payloadBytes, keys, &fact); err != nil {
		return SignatureFact{Ref: ref, Format: cosignFormat, Error: err.Error()}
	}
	fact.Verified = true
	return fact
}

func verifyCosign(ctx context.Context, layer v1.Descriptor, payloadBytes []byte, keys []crypto.PublicKey, fact *SignatureFact) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed cosign signature (parser panicked: %v)", r)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if layer.MediaType != CosignSimpleSigningMediaType {
		return fmt.Errorf("layer media type %q is not %q", truncateString(layer.MediaType, 100), CosignSimpleSigningMediaType)
	}
	if len(payloadBytes) > MaxCosignPayloadBytes {
		return fmt.Errorf("payload of %d bytes exceeds %d", len(payloadBytes), MaxCosignPayloadBytes)
	}
	if err := layer.Digest.Validate(); err != nil {
		return fmt.Errorf("layer digest: %w", err)
	}
	if layer.Digest.Algorithm().FromBytes(payloadBytes) != layer.Digest {
		return fmt.Errorf("payload does not match the layer digest %s", layer.Digest)
	}
	sigB64, ok := layer.Annotations[CosignSignatureAnnotation]
	if !ok {
		return fmt.Errorf("no %s annotation", CosignSignatureAnnotation)
	}
	if len(sigB64) > maxCosignSignatureChars {
		return fmt.Errorf("%s annotation of %d characters exceeds %d", CosignSignatureAnnotation, len(sigB64), maxCosignSignatureChars)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return fmt.Errorf("%s annotation is not base64: %w", CosignSignatureAnnotation, err)
	}
	if len(sig) == 0 {
		return fmt.Errorf("empty %s annotation", CosignSignatureAnnotation)
	}
	chain, err := cosignAnnotationChain(layer.Annotations)
	if err != nil {
		return err
	}
	key, err := verifyWithKeys(chain, keys, sig, payloadBytes)
	if err != nil {
		return err
	}
	signed, err := parseSimpleSigning(payloadBytes)
	if err != nil {
		return err
	}
	fact.SignedDigest = signed
	fact.Chain = chain
	if len(chain) == 0 {
		fact.PublicKey = key
	}
	return nil
}

// cosignAnnotationChain reads the certificate and chain annotations, leaf
// first; nil for a key-only signature.
func cosignAnnotationChain(ann map[string]string) ([]*x509.Certificate, error) {
	leafPEM, hasLeaf := ann[CosignCertificateAnnotation]
	chainPEM, hasChain := ann[CosignChainAnnotation]
	switch {
	case !hasLeaf && hasChain:
		return nil, fmt.Errorf("%s annotation without %s", CosignChainAnnotation, CosignCertificateAnnotation)
	case !hasLeaf:
		return nil, nil
	}
	leaf, err := parsePEMCertificates(CosignCertificateAnnotation, []byte(leafPEM), 1)
	if err != nil {
		return nil, err
	}
	if !hasChain {
		return leaf, nil
	}
	rest, err := parsePEMCertificates(CosignChainAnnotation, []byte(chainPEM), maxCosignChainCerts)
	if err != nil {
		return nil, err
	}
	return append(leaf, rest...), nil
}

// parsePEMCertificates reads one to max PEM certificates and nothing else.
func parsePEMCertificates(what string, pemBytes []byte, max int) ([]*x509.Certificate, error) {
	if len(pemBytes) > maxCosignCertChars*max {
		return nil, fmt.Errorf("%s of %d bytes is too large", what, len(pemBytes))
	}
	if n := bytes.Count(pemBytes, []byte("-----BEGIN")); n > max {
		return nil, fmt.Errorf("%s holds %d PEM blocks, at most %d allowed", what, n, max)
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", what)
	}
	if len(certs) > max {
		return nil, fmt.Errorf("%s holds %d certificates, at most %d allowed", what, len(certs), max)
	}
	return certs, nil
}

// verifyWithKeys checks sig over message with the leaf's key when there is
// a certificate, else with each of keys, and returns the key that
// verified. ECDSA and RSA are tried with SHA-256, what cosign signs with
// by default, and with the key's own default hash (SHA-384 for P-384),
// which cosign's newer signers use; Ed25519 has no choice.
func verifyWithKeys(chain []*x509.Certificate, keys []crypto.PublicKey, sig, message []byte) (crypto.PublicKey, error) {
	candidates := keys
	if len(chain) > 0 {
		candidates = []crypto.PublicKey{chain[0].PublicKey}
	}
	if len(candidates) == 0 {
		return nil, errors.New("key-only signature (no certificate) and the trust policy has no public keys to check it with")
	}
	for _, k := range candidates {
		if verifiesWith(k, sig, message) {
			return k, nil
		}
	}
	if len(chain) > 0 {
		return nil, errors.New("signature does not verify with the certificate's key")
	}
	return nil, fmt.Errorf("signature verifies with none of the trust policy's %d public keys", len(candidates))
}

func verifiesWith(k crypto.PublicKey, sig, message []byte) bool {
	hashes := []crypto.Hash{crypto.SHA256}
	if d, err := signature.GetDefaultAlgorithmDetails(k); err == nil && d.GetHashType() != crypto.SHA256 {
		hashes = append(hashes, d.GetHashType())
	}
	for _, h := range hashes {
		v, err := signature.LoadVerifier(k, h)
		if err != nil {
			return false // unsupported key type
		}
		if v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(message)) == nil {
			return true
		}
	}
	return false
}

// parseSimpleSigning decodes a verified simple-signing payload strictly:
// one JSON object, no duplicate keys, cosign's critical.type and a valid
// docker-manifest-digest. It returns that digest.
func parseSimpleSigning(b []byte) (digest.Digest, error) {
	if len(b) > MaxCosignPayloadBytes {
		return "", fmt.Errorf("payload of %d bytes exceeds %d", len(b), MaxCosignPayloadBytes)
	}
	if err := rejectDuplicateKeys(b); err != nil {
		return "", fmt.Errorf("malformed payload: %w", err)
	}
	var p payload.SimpleContainerImage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return "", fmt.Errorf("malformed payload: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("malformed payload: data after the JSON object")
	}
	if p.Critical.Type != payload.CosignSignatureType {
		return "", fmt.Errorf("payload critical.type %q is not %q", truncateString(p.Critical.Type, 100), payload.CosignSignatureType)
	}
	d, err := oci.ParseDigest(p.Critical.Image.DockerManifestDigest)
	if err != nil {
		return "", fmt.Errorf("payload docker-manifest-digest: %w", err)
	}
	return d, nil
}

// PublicKeys returns the raw public keys of every authority, the
// candidates for checking key-only cosign signatures (which do not say
// which key made them). Which authority a key belongs to is still
// Evaluate's decision.
func (p *Policy) PublicKeys() []crypto.PublicKey {
	var out []crypto.PublicKey
	for _, a := range p.Authorities {
		for _, k := range a.Keys {
			if !slices.ContainsFunc(out, func(o crypto.PublicKey) bool { return publicKeysEqual(o, k) }) {
				out = append(out, k)
			}
		}
	}
	return out
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
