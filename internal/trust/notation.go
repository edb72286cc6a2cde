package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-core-go/signature/cose"
	"github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The Notary Project signature format (signature specification v1.1):
// a JWS or COSE envelope whose payload names the signed manifest, stored
// as an OCI image manifest that refers to that manifest by `subject`.
const (
	// NotationPayloadMediaType is the content type of the signed payload.
	NotationPayloadMediaType = "application/vnd.cncf.notary.payload.v1+json"
	// NotationArtifactType marks a signature manifest. notation-go also
	// uses it as the config media type and, when a registry has no
	// referrers API, finds signatures by config media type alone.
	NotationArtifactType = "application/vnd.cncf.notary.signature"
	// NotationJWSMediaType and NotationCOSEMediaType are the envelope
	// (layer) media types.
	NotationJWSMediaType  = jws.MediaTypeEnvelope  // application/jose+json
	NotationCOSEMediaType = cose.MediaTypeEnvelope // application/cose
	// AnnotationNotationThumbprints lists the SHA-256 of each certificate
	// of the envelope's chain, leaf first, as a JSON array of hex strings.
	AnnotationNotationThumbprints = "io.cncf.notary.x509chain.thumbprint#S256"

	// MaxNotationEnvelopeBytes bounds what VerifyNotation parses. notation
	// itself refuses envelopes over 4 MiB; a chain of a few certificates
	// is a few KiB.
	MaxNotationEnvelopeBytes = 4 << 20

	notationSigningAgent = "bulwark/notation"
)

// ErrNotationFormat is wrapped by SignNotation for an unknown format.
var ErrNotationFormat = errors.New(`unknown Notary Project signature format (want "jws" or "cose")`)

// notationPayload is the Notary Project payload.
type notationPayload struct {
	TargetArtifact v1.Descriptor `json:"targetArtifact"`
}

// NotationMediaType maps a format name ("jws", "" or "cose") to its
// envelope media type.
func NotationMediaType(format string) (string, error) {
	switch format {
	case "", "jws":
		return NotationJWSMediaType, nil
	case "cose":
		return NotationCOSEMediaType, nil
	default:
		return "", fmt.Errorf("%w: %q", ErrNotationFormat, format)
	}
}

// SignNotation signs target with key, whose certificate is chain[0] (the
// chain goes leaf first and should end with the root, as `pki issue`
// writes it), and returns the envelope and its media type. annotations
// go into the signed payload's targetArtifact, where notation puts `sign
// --user-metadata`. format is "jws" (or "") or "cose".
func SignNotation(ctx context.Context, target v1.Descriptor, key crypto.PrivateKey, chain []*x509.Certificate,
	annotations map[string]string, format string) (envelope []byte, mediaType string, err error) {
	return signNotation(ctx, target, key, chain, annotations, format, time.Now())
}

// signNotation is SignNotation at a given signing time.
func signNotation(ctx context.Context, target v1.Descriptor, key crypto.PrivateKey, chain []*x509.Certificate,
	annotations map[string]string, format string, now time.Time) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	mediaType, err := NotationMediaType(format)
	if err != nil {
		return nil, "", err
	}
	if err := target.Digest.Validate(); err != nil {
		return nil, "", fmt.Errorf("notation sign: target digest: %w", err)
	}
	if target.MediaType == "" || target.Size < 0 {
		return nil, "", errors.New("notation sign: target descriptor needs a media type and a size")
	}
	if len(chain) == 0 {
		return nil, "", errors.New("notation sign: no certificate chain")
	}
	// Only the fields the specification allows in the payload: a
	// descriptor's urls, platform or data are not part of what is signed.
	p := notationPayload{TargetArtifact: v1.Descriptor{
		MediaType: target.MediaType, Digest: target.Digest, Size: target.Size, Annotations: annotations}}
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, "", fmt.Errorf("notation sign: payload: %w", err)
	}
	signer, err := signature.NewLocalSigner(chain, key)
	if err != nil {
		return nil, "", fmt.Errorf("notation sign: %w", err)
	}
	env, err := signature.NewEnvelope(mediaType)
	if err != nil {
		return nil, "", fmt.Errorf("notation sign: %w", err)
	}
	// Signing time in whole seconds, as notation does: JWS carries it as
	// RFC 3339 without fractions, so a finer time would not round-trip.
	req := &signature.SignRequest{
		Payload:       signature.Payload{ContentType: NotationPayloadMediaType, Content: payload},
		Signer:        signer,
		SigningTime:   now.Truncate(time.Second),
		SigningScheme: signature.SigningSchemeX509,
		SigningAgent:  notationSigningAgent,
	}
	out, err := env.Sign(req.WithContext(ctx))
	if err != nil {
		return nil, "", fmt.Errorf("notation sign: %w", err)
	}
	return out, mediaType, nil
}

// NotationSignatureManifest builds the signature manifest for an envelope
// made by SignNotation, as notation-go does: an OCI image manifest with
// config {} typed application/vnd.cncf.notary.signature, the envelope as
// its one layer, subject = target, and the chain thumbprints and creation
// (signing) time as annotations. It also returns the envelope's
// descriptor, which is the blob to push before the manifest.
//
// artifactType is set as well (notation leaves it out): registries with
// the referrers API report it directly, and notation's fallback reads the
// config media type, which is the same.
func NotationSignatureManifest(target v1.Descriptor, envelope []byte, mediaType string) (manifest []byte, envelopeDesc v1.Descriptor, err error) {
	env, err := parseNotationEnvelope(envelope, mediaType)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	// Our own envelope: Content without Verify is enough to read back the
	// chain and time we put in.
	c, err := env.Content()
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("notation signature manifest: %w", err)
	}
	thumbs := make([]string, len(c.SignerInfo.CertificateChain))
	for i, cert := range c.SignerInfo.CertificateChain {
		sum := sha256.Sum256(cert.Raw)
		thumbs[i] = hex.EncodeToString(sum[:])
	}
	tj, err := json.Marshal(thumbs)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	if c.SignerInfo.SignedAttributes.SigningTime.IsZero() {
		return nil, v1.Descriptor{}, errors.New("notation signature manifest: envelope has no signing time")
	}
	envelopeDesc = v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(envelope), Size: int64(len(envelope))}
	subject := v1.Descriptor{MediaType: target.MediaType, Digest: target.Digest, Size: target.Size}
	m := v1.Manifest{
		MediaType:    v1.MediaTypeImageManifest,
		ArtifactType: NotationArtifactType,
		Config: v1.Descriptor{MediaType: NotationArtifactType,
			Digest: v1.DescriptorEmptyJSON.Digest, Size: v1.DescriptorEmptyJSON.Size},
		Layers:  []v1.Descriptor{envelopeDesc},
		Subject: &subject,
		Annotations: map[string]string{
			AnnotationNotationThumbprints: string(tj),
			v1.AnnotationCreated:          c.SignerInfo.SignedAttributes.SigningTime.UTC().Format(time.RFC3339),
		},
	}
	m.SchemaVersion = 2
	manifest, err = json.Marshal(m)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	return manifest, envelopeDesc, nil
}

// VerifyNotation checks a Notary Project envelope cryptographically and
// reports what it signs. The signature is checked with the leaf
// certificate the envelope carries; whether that certificate is trusted
// (roots, EKU, identity, revocation, scope) is Policy.Evaluate's job. Any
// failure gives Verified false and Error; nothing from an envelope that
// did not verify is reported.
func VerifyNotation(ctx context.Context, envelope []byte, mediaType string, ref string) SignatureFact {
	fact := SignatureFact{Ref: ref, Format: notationFormat(mediaType)}
	if err := verifyNotation(ctx, envelope, mediaType, &fact); err != nil {
		return SignatureFact{Ref: ref, Format: fact.Format, Error: err.Error()}
	}
	fact.Verified = true
	return fact
}

func notationFormat(mediaType string) string {
	switch mediaType {
	case NotationJWSMediaType:
		return "notation-jws"
	case NotationCOSEMediaType:
		return "notation-cose"
	default:
		return "notation"
	}
}

func verifyNotation(ctx context.Context, envelope []byte, mediaType string, fact *SignatureFact) (err error) {
	// notation-core-go should not panic on hostile input, but a panic in
	// a parser must not take the server down with it.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed envelope (parser panicked: %v)", r)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	env, err := parseNotationEnvelope(envelope, mediaType)
	if err != nil {
		return err
	}
	c, err := env.Verify()
	if err != nil {
		return fmt.Errorf("signature does not verify: %w", err)
	}
	si := &c.SignerInfo
	if si.SignedAttributes.SigningScheme != signature.SigningSchemeX509 {
		return fmt.Errorf("signing scheme %q is not %q", si.SignedAttributes.SigningScheme, signature.SigningSchemeX509)
	}
	if si.SignedAttributes.SigningTime.IsZero() {
		return errors.New("no signing time in the signed attributes")
	}
	if exp := si.SignedAttributes.Expiry; !exp.IsZero() && time.Now().After(exp) {
		return fmt.Errorf("signature expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if c.Payload.ContentType != NotationPayloadMediaType {
		return fmt.Errorf("payload content type %q is not %q", c.Payload.ContentType, NotationPayloadMediaType)
	}
	target, err := parseNotationPayload(c.Payload.Content)
	if err != nil {
		return err
	}
	if len(si.CertificateChain) == 0 {
		return errors.New("no certificate chain in the envelope")
	}
	fact.SignedDigest = target.Digest
	fact.Chain = si.CertificateChain
	fact.SignedAt = si.SignedAttributes.SigningTime
	return nil
}

// parseNotationEnvelope bounds and parses an envelope of a known type.
func parseNotationEnvelope(envelope []byte, mediaType string) (signature.Envelope, error) {
	if mediaType != NotationJWSMediaType && mediaType != NotationCOSEMediaType {
		return nil, fmt.Errorf("envelope media type %q is not %q or %q", mediaType, NotationJWSMediaType, NotationCOSEMediaType)
	}
	if len(envelope) == 0 {
		return nil, errors.New("empty envelope")
	}
	if len(envelope) > MaxNotationEnvelopeBytes {
		return nil, fmt.Errorf("envelope is %d bytes, more than the %d allowed", len(envelope), MaxNotationEnvelopeBytes)
	}
	if mediaType == NotationJWSMediaType {
		// encoding/json keeps the last of duplicate keys where another
		// parser may keep the first: refuse the ambiguity.
		if err := rejectDuplicateKeys(envelope); err != nil {
			return nil, fmt.Errorf("malformed JWS envelope: %w", err)
		}
	}
	env, err := signature.ParseEnvelope(mediaType, envelope)
	if err != nil {
		return nil, fmt.Errorf("malformed envelope: %w", err)
	}
	return env, nil
}

// parseNotationPayload decodes a verified payload strictly: one JSON
// object, no duplicate keys, a valid digest.
func parseNotationPayload(b []byte) (v1.Descriptor, error) {
	if err := rejectDuplicateKeys(b); err != nil {
		return v1.Descriptor{}, fmt.Errorf("malformed payload: %w", err)
	}
	var p notationPayload
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return v1.Descriptor{}, fmt.Errorf("malformed payload: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return v1.Descriptor{}, errors.New("malformed payload: data after the JSON object")
	}
	t := p.TargetArtifact
	if err := t.Digest.Validate(); err != nil {
		return v1.Descriptor{}, fmt.Errorf("payload targetArtifact digest: %w", err)
	}
	if t.MediaType == "" || t.Size < 0 {
		return v1.Descriptor{}, errors.New("payload targetArtifact needs a media type and a size")
	}
	return t, nil
}

// rejectDuplicateKeys walks a JSON document and fails on an object with
// the same key twice, or on anything that is not a single JSON value.
func rejectDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walkJSON(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

const maxJSONDepth = 64

func walkJSON(dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := make(map[string]bool)
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			if seen[key] {
				return fmt.Errorf("duplicate key %q", key)
			}
			seen[key] = true
			if err := walkJSON(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walkJSON(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}
