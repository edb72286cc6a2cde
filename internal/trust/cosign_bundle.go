package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Sigstore bundles, which `cosign sign --new-bundle-format` (cosign v2.5
// and later) attaches to an image as an OCI 1.1 referrer: a manifest with
// artifactType SigstoreBundleArtifactType, subject = the signed image, and
// the bundle as its one layer. The bundle holds a DSSE envelope whose
// payload is an in-toto statement naming the image's digest as its
// subject, with predicate type CosignSignPredicateType, and as
// verification material the signer's certificate or, for a key, only a
// hint (the verifier brings the key).
//
// Transparency-log entries and RFC 3161 timestamps in a bundle are not
// checked (bulwark verifies offline, against its own PKI), so a bundle's
// signing time is unknown: certificates are checked at verification time.
const (
	// SigstoreBundleArtifactType is the referrer's artifactType and the
	// layer's media type, as cosign v2.6 writes them.
	SigstoreBundleArtifactType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// CosignSignPredicateType marks an in-toto statement that is an image
	// signature rather than an attestation.
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
	// cosignInTotoPayloadType is the DSSE payload type of an in-toto statement.
	cosignInTotoPayloadType = "application/vnd.in-toto+json"
	// MaxCosignBundleBytes bounds a bundle. A key-signed bundle is under
	// 1 KiB; one with a certificate chain and log entries a few KiB.
	MaxCosignBundleBytes = 1 << 20

	// maxCosignBundleSubjects bounds an in-toto statement's subjects.
	maxCosignBundleSubjects = 64

	cosignBundleFormat = "cosign-bundle"
)

// cosignBundleMediaTypes are the bundle versions read: 0.3 is what cosign
// writes; 0.1 and 0.2 differ only in where the certificate may be.
var cosignBundleMediaTypes = []string{
	SigstoreBundleArtifactType,
	"application/vnd.dev.sigstore.bundle+json;version=0.3",
	"application/vnd.dev.sigstore.bundle+json;version=0.2",
	"application/vnd.dev.sigstore.bundle+json;version=0.1",
}

// cosignStatementTypes are the statement versions accepted.
var cosignStatementTypes = []string{"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"}

// VerifyCosignBundle checks a Sigstore bundle that signs an image: the
// DSSE signature over the in-toto statement, with the bundle's certificate
// or, for a key hint, with each of keys (the trust policy's); the
// statement must be a cosign image signature. The fact carries the
// certificate (Chain) or the key that verified (PublicKey), and the
// statement's digest that matches subject (else its first one, which
// Policy.Evaluate then refuses as another image's).
func VerifyCosignBundle(ctx context.Context, bundle []byte, subject digest.Digest, keys []crypto.PublicKey, ref string) SignatureFact {
	fact := SignatureFact{Ref: ref, Format: cosignBundleFormat}
	if err := verifyCosignBundle(ctx, bundle, subject, keys, &fact); err != nil {
		return SignatureFact{Ref: ref, Format: cosignBundleFormat, Error: err.Error()}
	}
	fact.Verified = true
	return fact
}

func verifyCosignBundle(ctx context.Context, bundle []byte, subject digest.Digest, keys []crypto.PublicKey, fact *SignatureFact) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed bundle (parser panicked: %v)", r)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := parseCosignBundle(bundle)
	if err != nil {
		return err
	}
	chain, err := cosignBundleChain(b.GetVerificationMaterial())
	if err != nil {
		return err
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return errors.New("bundle holds no DSSE envelope (a message signature does not sign an image)")
	}
	if env.GetPayloadType() != cosignInTotoPayloadType {
		return fmt.Errorf("DSSE payload type %q is not %q", truncateString(env.GetPayloadType(), 100), cosignInTotoPayloadType)
	}
	sigs := env.GetSignatures()
	if len(sigs) != 1 || len(sigs[0].GetSig()) == 0 {
		return fmt.Errorf("DSSE envelope has %d signatures, want one", len(sigs))
	}
	key, err := verifyWithKeys(chain, keys, sigs[0].GetSig(), cosignPAE(env))
	if err != nil {
		return err
	}
	signed, err := parseCosignStatement(env.GetPayload(), subject)
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

// decodeBundle bounds and decodes a Sigstore bundle's JSON, refusing
// duplicate keys anywhere: protojson refuses duplicate fields itself, but
// not in parts it skips as unknown, nor anything after the object.
func decodeBundle(data []byte, max int, discardUnknown bool) (*protobundle.Bundle, error) {
	if len(data) == 0 {
		return nil, errors.New("empty bundle")
	}
	if len(data) > max {
		return nil, fmt.Errorf("bundle is %d bytes, more than the %d allowed", len(data), max)
	}
	if err := rejectDuplicateKeys(data); err != nil {
		return nil, fmt.Errorf("malformed bundle: %w", err)
	}
	b := &protobundle.Bundle{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: discardUnknown}).Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("malformed bundle: %w", err)
	}
	return b, nil
}

// parseCosignBundle bounds and decodes a bundle's JSON.
func parseCosignBundle(data []byte) (*protobundle.Bundle, error) {
	// Unknown fields are skipped: a newer bundle minor version may add
	// some, and nothing unknown is trusted.
	b, err := decodeBundle(data, MaxCosignBundleBytes, true)
	if err != nil {
		return nil, err
	}
	mt := b.GetMediaType()
	known := false
	for _, m := range cosignBundleMediaTypes {
		known = known || m == mt
	}
	if !known {
		return nil, fmt.Errorf("bundle media type %q is not one of %s", truncateString(mt, 100), strings.Join(cosignBundleMediaTypes, ", "))
	}
	return b, nil
}

// cosignBundleChain returns the bundle's certificates, leaf first, or nil for a
// public-key hint.
func cosignBundleChain(vm *protobundle.VerificationMaterial) ([]*x509.Certificate, error) {
	var ders [][]byte
	switch c := vm.GetContent().(type) {
	case *protobundle.VerificationMaterial_PublicKey:
		return nil, nil
	case *protobundle.VerificationMaterial_Certificate:
		ders = [][]byte{c.Certificate.GetRawBytes()}
	case *protobundle.VerificationMaterial_X509CertificateChain:
		for _, cert := range c.X509CertificateChain.GetCertificates() {
			ders = append(ders, cert.GetRawBytes())
		}
	default:
		return nil, errors.New("bundle has no verification material")
	}
	if len(ders) == 0 || len(ders) > maxCosignChainCerts {
		return nil, fmt.Errorf("bundle has %d certificates, want 1 to %d", len(ders), maxCosignChainCerts)
	}
	chain := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("bundle certificate %d: %w", i, err)
		}
		chain = append(chain, c)
	}
	return chain, nil
}

// cosignPAE is the DSSE v1 pre-authentication encoding, what a DSSE
// signature signs: "DSSEv1 <len(type)> <type> <len(body)> <body>".
func cosignPAE(env *protodsse.Envelope) []byte {
	t, p := env.GetPayloadType(), env.GetPayload()
	var b bytes.Buffer
	fmt.Fprintf(&b, "DSSEv1 %d %s %d ", len(t), t, len(p))
	b.Write(p)
	return b.Bytes()
}

// cosignStatement is what a cosign signature statement holds.
type cosignStatement struct {
	Type    string `json:"_type"`
	Subject []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// parseCosignStatement decodes a verified in-toto statement strictly and
// returns its subject digest equal to want, else its first.
func parseCosignStatement(b []byte, want digest.Digest) (digest.Digest, error) {
	if err := rejectDuplicateKeys(b); err != nil {
		return "", fmt.Errorf("malformed in-toto statement: %w", err)
	}
	var st cosignStatement
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&st); err != nil {
		return "", fmt.Errorf("malformed in-toto statement: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("malformed in-toto statement: data after the JSON object")
	}
	known := false
	for _, t := range cosignStatementTypes {
		known = known || st.Type == t
	}
	if !known {
		return "", fmt.Errorf("in-toto statement type %q is not one of %s", truncateString(st.Type, 100), strings.Join(cosignStatementTypes, ", "))
	}
	if st.PredicateType != CosignSignPredicateType {
		return "", fmt.Errorf("predicate type %q is not %q: an attestation, not a signature",
			truncateString(st.PredicateType, 100), CosignSignPredicateType)
	}
	if len(st.Subject) == 0 || len(st.Subject) > maxCosignBundleSubjects {
		return "", fmt.Errorf("in-toto statement has %d subjects, want 1 to %d", len(st.Subject), maxCosignBundleSubjects)
	}
	var first digest.Digest
	for i, s := range st.Subject {
		if len(s.Digest) == 0 {
			return "", fmt.Errorf("in-toto subject %d has no digest", i)
		}
		for alg, hex := range s.Digest {
			d, err := oci.ParseDigest(alg + ":" + hex)
			if err != nil {
				return "", fmt.Errorf("in-toto subject %d: %w", i, err)
			}
			if d == want {
				return d, nil
			}
			if first == "" || (i == 0 && alg == "sha256") {
				first = d
			}
		}
	}
	return first, nil
}
