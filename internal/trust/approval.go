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
	"time"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Promotion approvals (docs/promotion.md): "approver A approves image
// repo@digest for environment E at time T", as an in-toto Statement v1
// whose predicate says so, signed in a DSSE envelope inside a Sigstore
// bundle, stored as an OCI 1.1 referrer of the image.
//
// The container is the Sigstore bundle because it is the ecosystem's one
// standard carrier for a DSSE envelope plus the certificate that signed it:
// sigstore-go and cosign (verify-blob-attestation --bundle) read the layer
// as it is. The referrer's artifactType, though, is bulwark's own and not
// the bundle media type cosign uses for its signatures and attestations:
// signature discovery lists referrers by artifactType, and an approval must
// never turn up there as a candidate image signature. The real separation
// is signed: the statement's predicateType, which a signature verifier
// checks too.
const (
	// ApprovalPredicateType is the in-toto predicate type of an approval.
	ApprovalPredicateType = "https://bulwark.dev/promotion/v1"
	// ApprovalArtifactType marks an approval referrer manifest.
	ApprovalArtifactType = "application/vnd.bulwark.promotion.v1+json"

	// ApprovalStatementType and ApprovalPayloadType: an in-toto Statement
	// v1 as a DSSE payload.
	ApprovalStatementType = "https://in-toto.io/Statement/v1"
	ApprovalPayloadType   = "application/vnd.in-toto+json"

	// Sigstore bundle media types. Approvals are written as v0.3 with the
	// leaf certificate, or as v0.2 with a chain when the signer has
	// intermediates (v0.3 carries only the leaf).
	ApprovalBundleMediaType      = "application/vnd.dev.sigstore.bundle.v0.3+json"
	ApprovalChainBundleMediaType = "application/vnd.dev.sigstore.bundle+json;version=0.2"
	approvalBundleV03Alternate   = "application/vnd.dev.sigstore.bundle+json;version=0.3"

	// Manifest annotations, cosign's for a bundle referrer plus the
	// environment. They are unsigned hints for listing; verification reads
	// the signed statement and refuses a manifest that disagrees with it.
	ApprovalAnnotationEnvironment   = "dev.bulwark.promotion.environment"
	approvalAnnotationBundleContent = "dev.sigstore.bundle.content"
	approvalAnnotationPredicateType = "dev.sigstore.bundle.predicateType"

	// MaxApprovalBundleBytes bounds what VerifyApproval parses: a statement
	// and a few certificates are a few KiB.
	MaxApprovalBundleBytes = 256 << 10
	// MaxApprovalsListed bounds how many referrers Approvals examines per
	// image, so a repository flooded with approvals cannot make one check
	// fetch without end.
	MaxApprovalsListed = 256

	maxApprovalReason         = 4 << 10
	maxApprovalAnnotations    = 32
	maxApprovalAnnotationKey  = 128
	maxApprovalAnnotationVal  = 1 << 10
	maxApprovalChain          = 8
	approvalFutureSkew        = 5 * time.Minute
	approvalBundleContentDSSE = "dsse-envelope"
)

// ErrInvalidApproval is wrapped by SignApproval and ApprovalManifest for a
// request or bundle that cannot make a valid approval.
var ErrInvalidApproval = errors.New("invalid approval")

// ApprovalRequest is what SignApproval signs.
type ApprovalRequest struct {
	// Repository is the repository path the approval is for, such as
	// "prod/app": no registry host, so an approval survives mirroring.
	Repository string
	// Subject is the approved manifest's digest.
	Subject digest.Digest
	// Environment is where the image may go, e.g. "prod" (the trust
	// policy's name grammar: [a-z0-9][a-z0-9._-]*).
	Environment string
	Reason      string            // optional, at most 4 KiB
	Annotations map[string]string // optional, signed along
	// ApprovedAt defaults to now. It is truncated to whole seconds, as RFC
	// 3339 in the statement carries it.
	ApprovedAt time.Time
}

// ApprovalFact is one approval found for an image, after cryptographic
// verification. As with SignatureFact, whether the approver is trusted is
// the trust policy's business: see MatchApproval.
type ApprovalFact struct {
	Ref         string            `json:"ref"`         // digest of the approval manifest
	Repository  string            `json:"repository"`  // the statement's subject name
	Subject     digest.Digest     `json:"subject"`     // the image digest the statement names
	Environment string            `json:"environment"` // from the signed predicate
	Approver    string            `json:"approver"`    // the leaf's subject DN (key fingerprint if it has none)
	ApprovedAt  time.Time         `json:"approvedAt"`
	Reason      string            `json:"reason,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Verified    bool              `json:"verified"` // signature, statement, subject and validity checks passed
	// Chain is the certificate chain the approval carries, leaf first,
	// without the root.
	Chain []*x509.Certificate `json:"-"`
	// PublicKey is the leaf's key.
	PublicKey crypto.PublicKey `json:"-"`
	Error     string           `json:"error,omitempty"` // why it is not Verified
}

// approvalStatement is an in-toto Statement v1. Fields in-toto may add later
// are ignored, as its parsing rules ask; the predicate is ours and strict.
type approvalStatement struct {
	Type          string            `json:"_type"`
	Subject       []approvalSubject `json:"subject"`
	PredicateType string            `json:"predicateType"`
	Predicate     json.RawMessage   `json:"predicate"`
}

type approvalSubject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// approvalPredicate is the https://bulwark.dev/promotion/v1 predicate.
type approvalPredicate struct {
	Environment string            `json:"environment"`
	Approver    string            `json:"approver"`
	ApprovedAt  string            `json:"approvedAt"` // RFC 3339, UTC
	Reason      string            `json:"reason,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SignApproval signs an approval with key, whose certificate is chain[0]
// (the chain as `bulwark pki issue` writes it: leaf, then issuers), and
// returns the Sigstore bundle and its media type.
func SignApproval(ctx context.Context, req ApprovalRequest, key crypto.Signer, chain []*x509.Certificate) (bundle []byte, mediaType string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if req.ApprovedAt.IsZero() {
		req.ApprovedAt = time.Now()
	}
	req.ApprovedAt = req.ApprovedAt.UTC().Truncate(time.Second)
	if err := checkApprovalRequest(req); err != nil {
		return nil, "", err
	}
	if len(chain) == 0 || chain[0] == nil {
		return nil, "", fmt.Errorf("%w: no certificate", ErrInvalidApproval)
	}
	leaf := chain[0]
	if !publicKeysEqual(key.Public(), leaf.PublicKey) {
		return nil, "", fmt.Errorf("%w: the key is not the certificate's (%s)", ErrInvalidApproval, formatDN(leaf))
	}
	if why := validityAt(leaf, req.ApprovedAt); why != "" {
		return nil, "", fmt.Errorf("%w: %s", ErrInvalidApproval, why)
	}

	pred, err := json.Marshal(approvalPredicate{
		Environment: req.Environment,
		Approver:    approverOf(leaf),
		ApprovedAt:  req.ApprovedAt.Format(time.RFC3339),
		Reason:      req.Reason,
		Annotations: req.Annotations,
	})
	if err != nil {
		return nil, "", err
	}
	payload, err := json.Marshal(approvalStatement{
		Type:          ApprovalStatementType,
		Subject:       []approvalSubject{{Name: req.Repository, Digest: map[string]string{req.Subject.Algorithm().String(): req.Subject.Encoded()}}},
		PredicateType: ApprovalPredicateType,
		Predicate:     pred,
	})
	if err != nil {
		return nil, "", err
	}
	env := &protodsse.Envelope{Payload: payload, PayloadType: ApprovalPayloadType}
	sig, err := signApprovalPAE(key, approvalPAE(env))
	if err != nil {
		return nil, "", fmt.Errorf("sign approval: %w", err)
	}
	env.Signatures = []*protodsse.Signature{{Sig: sig}}

	// Roots stay out (the bundle specification forbids them: a verifier
	// must have its own), intermediates go in, which only v0.2 allows.
	carried := []*protocommon.X509Certificate{{RawBytes: leaf.Raw}}
	for _, c := range chain[1:] {
		if c != nil && !isSelfSigned(c) {
			carried = append(carried, &protocommon.X509Certificate{RawBytes: c.Raw})
		}
	}
	b := &protobundle.Bundle{
		MediaType: ApprovalBundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_Certificate{Certificate: carried[0]},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env},
	}
	if len(carried) > 1 {
		b.MediaType = ApprovalChainBundleMediaType
		b.VerificationMaterial.Content = &protobundle.VerificationMaterial_X509CertificateChain{
			X509CertificateChain: &protocommon.X509CertificateChain{Certificates: carried}}
	}
	out, err := protojson.Marshal(b)
	if err != nil {
		return nil, "", fmt.Errorf("sign approval: %w", err)
	}
	return out, b.MediaType, nil
}

func checkApprovalRequest(req ApprovalRequest) error {
	if err := oci.ValidateRepository(req.Repository); err != nil {
		return fmt.Errorf("%w: repository: %v", ErrInvalidApproval, err)
	}
	if err := req.Subject.Validate(); err != nil {
		return fmt.Errorf("%w: subject digest: %v", ErrInvalidApproval, err)
	}
	p := approvalPredicate{Environment: req.Environment, Reason: req.Reason, Annotations: req.Annotations}
	if why := checkPredicateFields(&p); why != "" {
		return fmt.Errorf("%w: %s", ErrInvalidApproval, why)
	}
	return nil
}

// ValidateApprovalEnvironment checks an environment name for an approval
// (the trust policy's grammar), so a command can refuse a typo before it
// contacts a registry.
func ValidateApprovalEnvironment(name string) error {
	if why := checkPredicateFields(&approvalPredicate{Environment: name}); why != "" {
		return fmt.Errorf("%w: %s", ErrInvalidApproval, why)
	}
	return nil
}

// checkPredicateFields applies the limits both signing and verification
// enforce, so what one signs the other accepts.
func checkPredicateFields(p *approvalPredicate) string {
	if len(p.Environment) > maxPolicyNameLength || !policyNamePattern.MatchString(p.Environment) {
		return fmt.Sprintf("environment %q must match [a-z0-9][a-z0-9._-]* and be at most %d characters", p.Environment, maxPolicyNameLength)
	}
	if len(p.Reason) > maxApprovalReason || !utf8.ValidString(p.Reason) {
		return fmt.Sprintf("reason must be UTF-8 of at most %d bytes", maxApprovalReason)
	}
	if len(p.Annotations) > maxApprovalAnnotations {
		return fmt.Sprintf("%d annotations, at most %d", len(p.Annotations), maxApprovalAnnotations)
	}
	for k, v := range p.Annotations {
		if k == "" || len(k) > maxApprovalAnnotationKey || len(v) > maxApprovalAnnotationVal || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Sprintf("annotation %.40q: keys must be 1-%d bytes and values at most %d bytes of UTF-8",
				k, maxApprovalAnnotationKey, maxApprovalAnnotationVal)
		}
	}
	return ""
}

// ApprovalManifest builds the referrer manifest for a bundle made by
// SignApproval: an OCI image manifest with artifactType
// ApprovalArtifactType, the empty JSON config, the bundle as its one layer
// and subject = the approved image, annotated like cosign's bundle
// referrers plus the environment. It returns the bundle's descriptor, the
// blob to push (with the empty config) before the manifest.
func ApprovalManifest(subject v1.Descriptor, bundle []byte, mediaType string) (manifest []byte, bundleDesc v1.Descriptor, err error) {
	// Our own bundle: read back the statement for the annotations, and
	// refuse to attach it to an image it does not name.
	st, pred, err := decodeApprovalBundle(bundle, mediaType)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("%w: %v", ErrInvalidApproval, err)
	}
	if err := subject.Digest.Validate(); err != nil || subject.MediaType == "" || subject.Size < 0 {
		return nil, v1.Descriptor{}, fmt.Errorf("%w: subject descriptor needs a digest, media type and size", ErrInvalidApproval)
	}
	if len(st.Subject) != 1 || st.Subject[0].Digest[subject.Digest.Algorithm().String()] != subject.Digest.Encoded() {
		return nil, v1.Descriptor{}, fmt.Errorf("%w: the statement does not name %s", ErrInvalidApproval, subject.Digest)
	}
	bundleDesc = v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(bundle), Size: int64(len(bundle))}
	m := v1.Manifest{
		MediaType:    v1.MediaTypeImageManifest,
		ArtifactType: ApprovalArtifactType,
		Config:       v1.DescriptorEmptyJSON,
		Layers:       []v1.Descriptor{bundleDesc},
		Subject:      &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations: map[string]string{
			approvalAnnotationBundleContent: approvalBundleContentDSSE,
			approvalAnnotationPredicateType: ApprovalPredicateType,
			ApprovalAnnotationEnvironment:   pred.Environment,
			v1.AnnotationCreated:            pred.ApprovedAt,
		},
	}
	m.Config.Data = nil
	m.SchemaVersion = 2
	manifest, err = json.Marshal(m)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	return manifest, bundleDesc, nil
}

// Approvals finds the approvals of repo@subject and verifies each one
// cryptographically: every approval listed yields a fact, failures
// included (up to MaxApprovalsListed; past that one fact says how many were
// left out). An error means discovery itself failed. Facts depend only on
// the image digest and the time, so callers may cache them per digest.
func Approvals(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest) ([]ApprovalFact, error) {
	return approvals(ctx, f, repo, subject, time.Now())
}

func approvals(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest, now time.Time) ([]ApprovalFact, error) {
	repo.Tag, repo.Digest = "", ""
	descs, err := f.Referrers(ctx, repo, subject, ApprovalArtifactType)
	if err != nil {
		return nil, fmt.Errorf("list approvals of %s@%s: %w", repo, subject, err)
	}
	n := min(len(descs), MaxApprovalsListed)
	facts := make([]ApprovalFact, 0, n+1)
	for _, desc := range descs[:n] {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		facts = append(facts, approvalFact(ctx, f, repo, subject, desc, now))
	}
	if left := len(descs) - n; left > 0 {
		facts = append(facts, ApprovalFact{Error: fmt.Sprintf("%d more approvals listed and not examined (at most %d are)", left, MaxApprovalsListed)})
	}
	return facts, nil
}

func approvalFact(ctx context.Context, f Fetcher, repo oci.ImageRef, subject digest.Digest, desc v1.Descriptor, now time.Time) ApprovalFact {
	fail := func(format string, args ...any) ApprovalFact {
		return ApprovalFact{Ref: desc.Digest.String(), Error: fmt.Sprintf(format, args...)}
	}
	if err := desc.Digest.Validate(); err != nil {
		return fail("approval listed with a bad digest: %v", err)
	}
	ref := repo
	ref.Digest = desc.Digest
	_, body, err := f.Manifest(ctx, ref)
	if err != nil {
		return fail("fetch approval manifest: %v", err)
	}
	// The referrers list is the registry's word; the manifest, verified by
	// digest, must itself say it is an approval of this image.
	m, err := oci.ParseManifest("", body)
	switch {
	case err != nil:
		return fail("approval manifest: %v", err)
	case m.ArtifactType != ApprovalArtifactType:
		return fail("manifest's artifactType %.80q is not %q", m.ArtifactType, ApprovalArtifactType)
	case m.Subject == nil || m.Subject.Digest != subject:
		return fail("approval manifest's subject is not %s", subject)
	case len(m.Layers) != 1:
		return fail("approval manifest has %d layers, want one bundle", len(m.Layers))
	case !isApprovalBundleMediaType(m.Layers[0].MediaType):
		return fail("approval layer media type %.80q is not a Sigstore bundle v0.2 or v0.3", m.Layers[0].MediaType)
	case m.Layers[0].Size > MaxApprovalBundleBytes:
		return fail("approval bundle of %d bytes exceeds %d", m.Layers[0].Size, MaxApprovalBundleBytes)
	}
	if pt, ok := m.Annotations[approvalAnnotationPredicateType]; ok && pt != ApprovalPredicateType {
		return fail("manifest annotation %s is %.80q, not %q", approvalAnnotationPredicateType, pt, ApprovalPredicateType)
	}
	rc, _, err := f.Blob(ctx, repo, m.Layers[0].Digest, MaxApprovalBundleBytes)
	if err != nil {
		return fail("fetch approval bundle: %v", err)
	}
	defer rc.Close()
	// The reader checks the digest at EOF; the limit guards a Fetcher that
	// does not honour maxSize.
	bundle, err := io.ReadAll(io.LimitReader(rc, MaxApprovalBundleBytes+1))
	if err != nil {
		return fail("fetch approval bundle: %v", err)
	}
	if int64(len(bundle)) > MaxApprovalBundleBytes {
		return fail("approval bundle exceeds %d bytes", MaxApprovalBundleBytes)
	}
	fact := verifyApproval(ctx, bundle, m.Layers[0].MediaType, desc.Digest.String(), repo.Repository, subject, now)
	if env, ok := m.Annotations[ApprovalAnnotationEnvironment]; ok && fact.Verified && env != fact.Environment {
		return fail("manifest says environment %.80q but the signed approval is for %q", env, fact.Environment)
	}
	return fact
}

// VerifyApproval checks an approval bundle (mediaType is its layer's media
// type) for the image repo@subject: one DSSE signature by the leaf
// certificate the bundle carries, over an in-toto statement of predicate
// type ApprovalPredicateType naming exactly repo@subject, an approver that
// is the certificate's subject, and an approval time within the
// certificate's validity and not in the future. Any failure gives Verified
// false and Error; nothing from a bundle that did not verify is reported.
// ref names the approval in the fact.
func VerifyApproval(ctx context.Context, bundle []byte, mediaType, ref, repo string, subject digest.Digest) ApprovalFact {
	return verifyApproval(ctx, bundle, mediaType, ref, repo, subject, time.Now())
}

func verifyApproval(ctx context.Context, bundle []byte, mediaType, ref, repo string, subject digest.Digest, now time.Time) ApprovalFact {
	fact := ApprovalFact{Ref: ref}
	if err := verifyApprovalBundle(ctx, bundle, mediaType, repo, subject, now, &fact); err != nil {
		return ApprovalFact{Ref: ref, Error: err.Error()}
	}
	fact.Verified = true
	return fact
}

func verifyApprovalBundle(ctx context.Context, bundle []byte, mediaType, repo string, subject digest.Digest, now time.Time, fact *ApprovalFact) (err error) {
	// protojson should not panic on hostile input, but a panic in a parser
	// must not take the server down with it.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed approval (parser panicked: %v)", r)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := subject.Validate(); err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	b, err := parseApprovalBundle(bundle, mediaType)
	if err != nil {
		return err
	}
	chain, err := approvalChain(b.GetVerificationMaterial())
	if err != nil {
		return err
	}
	if len(chain) == 0 {
		return errors.New("bundle carries no certificate")
	}
	leaf := chain[0]
	env := b.GetDsseEnvelope()
	if err := verifyApprovalPAE(leaf.PublicKey, approvalPAE(env), env.Signatures[0].Sig); err != nil {
		return fmt.Errorf("signature does not verify with the certificate's key (%s): %w", formatDN(leaf), err)
	}

	st, pred, err := parseApprovalStatement(env.Payload)
	if err != nil {
		return err
	}
	s := st.Subject[0]
	if s.Name != repo {
		return fmt.Errorf("approval is for repository %.300q, not %q", s.Name, repo)
	}
	alg, hex := firstDigest(s.Digest)
	if alg != subject.Algorithm().String() || hex != subject.Encoded() {
		return fmt.Errorf("approval is for %.80s:%.200s, not this image (%s): an approval copied from another image does not count", alg, hex, subject)
	}
	if want := approverOf(leaf); pred.Approver != want {
		return fmt.Errorf("approver %.300q is not the signing certificate's subject %q", pred.Approver, want)
	}
	at, err := time.Parse(time.RFC3339, pred.ApprovedAt)
	if err != nil {
		return fmt.Errorf("approvedAt %.40q is not an RFC 3339 time", pred.ApprovedAt)
	}
	if why := validityAt(leaf, at); why != "" {
		return errors.New(why)
	}
	if at.After(now.Add(approvalFutureSkew)) {
		return fmt.Errorf("approval is dated %s, in the future (now %s)", at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}

	fact.Repository, fact.Subject = s.Name, subject
	fact.Environment, fact.Approver, fact.ApprovedAt = pred.Environment, pred.Approver, at.UTC()
	fact.Reason, fact.Annotations = pred.Reason, pred.Annotations
	fact.Chain, fact.PublicKey = chain, leaf.PublicKey
	return nil
}

func isApprovalBundleMediaType(mt string) bool {
	return bundleVersion(mt) != ""
}

func bundleVersion(mt string) string {
	switch mt {
	case ApprovalBundleMediaType, approvalBundleV03Alternate:
		return "0.3"
	case ApprovalChainBundleMediaType:
		return "0.2"
	}
	return ""
}

// parseApprovalBundle bounds and decodes a bundle and checks its shape: a
// DSSE envelope with exactly one signature over an in-toto payload, and
// certificate material of the form its version allows.
func parseApprovalBundle(bundle []byte, mediaType string) (*protobundle.Bundle, error) {
	version := bundleVersion(mediaType)
	if version == "" {
		return nil, fmt.Errorf("bundle media type %.80q is not a Sigstore bundle v0.2 or v0.3", mediaType)
	}
	// Approvals are bulwark's own: nothing unknown is accepted.
	b, err := decodeBundle(bundle, MaxApprovalBundleBytes, false)
	if err != nil {
		return nil, err
	}
	if bundleVersion(b.MediaType) != version {
		return nil, fmt.Errorf("bundle says media type %.80q, stored as %q", b.MediaType, mediaType)
	}
	env := b.GetDsseEnvelope()
	switch {
	case env == nil:
		return nil, errors.New("bundle holds no DSSE envelope (a message signature is not an approval)")
	case env.PayloadType != ApprovalPayloadType:
		return nil, fmt.Errorf("DSSE payload type %.80q is not %q", env.PayloadType, ApprovalPayloadType)
	case len(env.Payload) == 0:
		return nil, errors.New("DSSE envelope has no payload")
	case len(env.Signatures) != 1:
		// Several signatures would leave open whose approval it is.
		return nil, fmt.Errorf("DSSE envelope has %d signatures; an approval has exactly one", len(env.Signatures))
	case env.Signatures[0] == nil || len(env.Signatures[0].Sig) == 0:
		return nil, errors.New("DSSE signature is empty")
	}
	vm := b.GetVerificationMaterial()
	switch {
	case vm == nil:
		return nil, errors.New("bundle has no verification material")
	case vm.GetPublicKey() != nil:
		return nil, errors.New("bundle names a public key, not a certificate; approvals are signed with a certificate")
	case version == "0.3" && vm.GetCertificate() == nil:
		return nil, errors.New("v0.3 bundle has no certificate")
	case version == "0.2" && vm.GetX509CertificateChain() == nil:
		return nil, errors.New("v0.2 bundle has no certificate chain")
	}
	return b, nil
}

// parseApprovalStatement decodes a verified payload strictly: no duplicate
// keys, one subject with one digest, our predicate type, and a predicate
// without fields this version does not know (a newer field such as an
// expiry must not be silently ignored).
func parseApprovalStatement(payload []byte) (*approvalStatement, *approvalPredicate, error) {
	if err := rejectDuplicateKeys(payload); err != nil {
		return nil, nil, fmt.Errorf("malformed statement: %w", err)
	}
	if err := checkObjectKeys(payload, false, "_type", "subject", "predicateType", "predicate"); err != nil {
		return nil, nil, fmt.Errorf("malformed statement: %w", err)
	}
	var st approvalStatement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, nil, fmt.Errorf("malformed statement: %w", err)
	}
	switch {
	case st.Type != ApprovalStatementType:
		return nil, nil, fmt.Errorf("statement _type %.80q is not %q", st.Type, ApprovalStatementType)
	case st.PredicateType != ApprovalPredicateType:
		return nil, nil, fmt.Errorf("predicate type %.80q is not %q", st.PredicateType, ApprovalPredicateType)
	case len(st.Subject) != 1:
		return nil, nil, fmt.Errorf("statement has %d subjects; an approval names exactly one image", len(st.Subject))
	case len(st.Subject[0].Digest) != 1:
		return nil, nil, fmt.Errorf("statement subject has %d digests, want one", len(st.Subject[0].Digest))
	}
	var subjects []json.RawMessage
	if err := json.Unmarshal(payload, &struct {
		Subject *[]json.RawMessage `json:"subject"`
	}{&subjects}); err != nil || len(subjects) != 1 {
		return nil, nil, errors.New("malformed statement subject")
	}
	if err := checkObjectKeys(subjects[0], false, "name", "digest"); err != nil {
		return nil, nil, fmt.Errorf("malformed statement subject: %w", err)
	}
	if err := checkObjectKeys(st.Predicate, true, "environment", "approver", "approvedAt", "reason", "annotations"); err != nil {
		return nil, nil, fmt.Errorf("malformed predicate: %w", err)
	}
	var pred approvalPredicate
	if err := json.Unmarshal(st.Predicate, &pred); err != nil {
		return nil, nil, fmt.Errorf("malformed predicate: %w", err)
	}
	if why := checkPredicateFields(&pred); why != "" {
		return nil, nil, errors.New("predicate: " + why)
	}
	return &st, &pred, nil
}

// checkObjectKeys makes encoding/json's decoding of an object into a
// struct exact. encoding/json matches keys without regard to case, so
// "PredicateType" would be read as predicateType where other in-toto
// parsers ignore it: such near-misses are refused. With strict, every key
// must be known (a newer predicate field such as an expiry must not be
// silently ignored); without, other keys are ignored, as in-toto's
// parsing rules ask of statement fields a consumer does not know.
func checkObjectKeys(raw []byte, strict bool, known ...string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return err
	}
	if obj == nil {
		return errors.New("not a JSON object")
	}
next:
	for k := range obj {
		for _, want := range known {
			if k == want {
				continue next
			}
		}
		for _, want := range known {
			if strings.EqualFold(k, want) {
				return fmt.Errorf("key %.40q is not %q", k, want)
			}
		}
		if strict {
			return fmt.Errorf("unknown key %.40q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	return nil
}

// decodeApprovalBundle reads the statement out of a bundle without
// verifying the signature: only for bundles we just made.
func decodeApprovalBundle(bundle []byte, mediaType string) (*approvalStatement, *approvalPredicate, error) {
	b, err := parseApprovalBundle(bundle, mediaType)
	if err != nil {
		return nil, nil, err
	}
	return parseApprovalStatement(b.GetDsseEnvelope().Payload)
}

func firstDigest(m map[string]string) (alg, hex string) {
	for alg, hex = range m {
		return alg, hex
	}
	return "", ""
}

// approverOf names the holder of a certificate: its subject DN, or the
// fingerprint of its key when the subject is empty.
func approverOf(leaf *x509.Certificate) string {
	if dn := formatDN(leaf); dn != "" {
		return dn
	}
	return keyFingerprint(leaf.PublicKey)
}

// validityAt returns "" if t is within c's validity, else why not.
func validityAt(c *x509.Certificate, t time.Time) string {
	if t.Before(c.NotBefore) || t.After(c.NotAfter) {
		return fmt.Sprintf("certificate %s was not valid at the approval time %s (valid %s to %s)",
			formatDN(c), t.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// approvalPAE is DSSE's pre-authentication encoding (DSSE protocol v1),
// what the signature signs: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP
// body. The payload type is signed, so an approval cannot be re-presented
// as another kind of DSSE message.
func approvalPAE(env *protodsse.Envelope) []byte {
	t, p := env.GetPayloadType(), env.GetPayload()
	var b bytes.Buffer
	b.Grow(len(t) + len(p) + 32)
	fmt.Fprintf(&b, "DSSEv1 %d %s %d ", len(t), t, len(p))
	b.Write(p)
	return b.Bytes()
}

// approvalChain parses the bundle's certificates, leaf first.
func approvalChain(vm *protobundle.VerificationMaterial) ([]*x509.Certificate, error) {
	var raw [][]byte
	if c := vm.GetCertificate(); c != nil {
		raw = [][]byte{c.GetRawBytes()}
	} else {
		for _, c := range vm.GetX509CertificateChain().GetCertificates() {
			raw = append(raw, c.GetRawBytes())
		}
	}
	if len(raw) == 0 || len(raw) > maxApprovalChain {
		return nil, fmt.Errorf("bundle carries %d certificates, want 1 to %d", len(raw), maxApprovalChain)
	}
	chain := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d in the bundle: %w", i+1, err)
		}
		chain[i] = c
	}
	return chain, nil
}

// signApprovalPAE signs DSSE's pre-authentication encoding with the
// key's default algorithm in Sigstore's registry (ECDSA P-256 with SHA-256,
// P-384 with SHA-384, RSA PKCS #1 v1.5 with SHA-256, Ed25519), which is
// what a Sigstore verifier expects for that key: DSSE names no algorithm.
func signApprovalPAE(key crypto.Signer, pae []byte) ([]byte, error) {
	s, err := signature.LoadDefaultSigner(key)
	if err != nil {
		return nil, err
	}
	return s.SignMessage(bytes.NewReader(pae))
}

func verifyApprovalPAE(pub crypto.PublicKey, pae, sig []byte) error {
	v, err := signature.LoadDefaultVerifier(pub)
	if err != nil {
		return err
	}
	return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pae))
}

// AuthorityMatches returns the names of the authorities that matched.
func AuthorityMatches(ms []AuthorityMatch) []string {
	names := []string{}
	for _, m := range ms {
		if m.Matched {
			names = append(names, m.Authority)
		}
	}
	return names
}

// MatchApproval checks a verified approval's signer against every
// authority of the trust policy, as signatures are checked (roots, the
// certificate's validity now and at approvedAt, code-signing use, CRLs,
// identities, keys, and the authority's repository scope), so a rule can
// say "approved for prod by authority security". It returns nil for an
// approval that did not verify.
func MatchApproval(p *Policy, a *ApprovalFact, now time.Time) []AuthorityMatch {
	if !a.Verified {
		return nil
	}
	return p.MatchSigner(a.Repository, a.Chain, a.PublicKey, a.ApprovedAt, now)
}

// describeMismatch summarises why no authority matched.
func describeMismatch(ms []AuthorityMatch) string {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		if !m.Matched {
			parts = append(parts, m.Authority+": "+m.Why)
		}
	}
	return strings.Join(parts, "; ")
}

// ApprovalResult is an approval with what the trust policy made of its
// approver: the JSON shape `bulwark approvals --output json` prints, and
// what policy rules see.
type ApprovalResult struct {
	ApprovalFact
	// Authorities are the trust-policy authorities the approver speaks
	// for (empty when none matched, or no policy was given).
	Authorities []string `json:"authorities"`
	// Why explains an empty Authorities.
	Why string `json:"why,omitempty"`
}

// ApprovalResults matches each verified approval against p (which may be
// nil: then no authority is named).
func ApprovalResults(p *Policy, facts []ApprovalFact, now time.Time) []ApprovalResult {
	out := make([]ApprovalResult, len(facts))
	for i := range facts {
		r := ApprovalResult{ApprovalFact: facts[i], Authorities: []string{}}
		switch {
		case !r.Verified:
			r.Why = "not verified: " + r.Error
		case p == nil:
			r.Why = "no trust policy given"
		default:
			ms := MatchApproval(p, &facts[i], now)
			r.Authorities = AuthorityMatches(ms)
			if len(r.Authorities) == 0 {
				r.Why = "matches no authority: " + describeMismatch(ms)
			}
		}
		out[i] = r
	}
	return out
}
