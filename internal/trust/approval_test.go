package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// approvalNow is the fixed clock of the approval tests: the CAs are made
// at it, approvals are dated at it, and verification runs an hour later.
var approvalNow = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

const approvalRepo = "prod/app"

// approvalPKI is a bulwark CA with a security and a ci approvalSigner, a rogue CA
// (same organisation, other key) with its own "security", and a
// hand-made root → intermediate → leaf chain (bulwark's own roots have
// pathlen 0 and cannot have intermediates).
type approvalPKI struct {
	dir    string
	ca     *CA
	policy *Policy

	security, ci, rogue, interLeaf approvalSigner
	image, otherImage              v1.Descriptor
}

type approvalSigner struct {
	key   crypto.Signer
	chain []*x509.Certificate
}

const approvalTestPolicy = `version: 1
authorities:
  - name: security
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=security"]
  - name: ci
    roots: [ca/root.crt]
    identities: ["CN=ci"]
  - name: release
    keys: [keys/security.pub]
  - name: vendor
    roots: [ca/root.crt]
    identities: ["CN=security"]
    repositories: ["vendor/**"]
  - name: deep
    roots: [deep/root.crt]
    identities: ["CN=deep"]
environments:
  - name: prod
    repositories: ["prod/**"]
    require: [ci]
`

func newApprovalPKI(t testing.TB) *approvalPKI {
	t.Helper()
	k := &approvalPKI{dir: t.TempDir()}
	clock := func() time.Time { return approvalNow.Add(-time.Hour) }
	var err error
	k.ca, err = InitCA(CAOptions{Dir: filepath.Join(k.dir, "ca"), Organization: "Example", Country: "US", State: "WA", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := InitCA(CAOptions{Dir: filepath.Join(k.dir, "rogue"), Organization: "Example", Country: "US", State: "WA", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	k.security = approvalIssue(t, k.ca, "C=US, ST=WA, O=Example, CN=security", "")
	k.ci = approvalIssue(t, k.ca, "C=US, ST=WA, O=Example, CN=ci", "")
	k.rogue = approvalIssue(t, rogue, "C=US, ST=WA, O=Example, CN=security", "")

	// root → intermediate → leaf, by hand.
	root, rootKey := approvalCert(t, "Deep Root", true, nil, nil)
	inter, interKey := approvalCert(t, "Deep Intermediate", true, root, rootKey)
	leaf, leafKey := approvalCert(t, "deep", false, inter, interKey)
	k.interLeaf = approvalSigner{key: leafKey, chain: []*x509.Certificate{leaf, inter, root}}
	approvalWritePEM(t, filepath.Join(k.dir, "deep", "root.crt"), "CERTIFICATE", root.Raw)

	der, err := x509.MarshalPKIXPublicKey(k.security.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	approvalWritePEM(t, filepath.Join(k.dir, "keys", "security.pub"), "PUBLIC KEY", der)
	k.policy = k.loadPolicy(t, approvalTestPolicy)

	k.image = notationTarget("the image")
	k.otherImage = notationTarget("another image")
	return k
}

func (k *approvalPKI) loadPolicy(t testing.TB, text string) *Policy {
	t.Helper()
	path := filepath.Join(k.dir, "trust.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func approvalIssue(t testing.TB, ca *CA, subject string, kt KeyType) approvalSigner {
	t.Helper()
	n, err := ParseSubject(subject)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, keyPEM, err := ca.Issue(IssueRequest{Subject: n, KeyType: kt, Validity: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ParseCertificates(chainPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParsePrivateKey(keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	return approvalSigner{key: key, chain: chain}
}

var approvalSerial int64

// approvalCert makes a CA (ca) or code-signing leaf certificate valid for
// a year around approvalNow, self-signed when parent is nil.
func approvalCert(t testing.TB, cn string, ca bool, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	approvalSerial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(approvalSerial),
		Subject:               pkix.Name{Organization: []string{"Example"}, CommonName: cn},
		NotBefore:             approvalNow.Add(-365 * 24 * time.Hour),
		NotAfter:              approvalNow.Add(365 * 24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	if ca {
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageCertSign|x509.KeyUsageCRLSign, nil
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func approvalWritePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (k *approvalPKI) request(env string) ApprovalRequest {
	return ApprovalRequest{Repository: approvalRepo, Subject: k.image.Digest, Environment: env, ApprovedAt: approvalNow,
		Reason: "pen test passed", Annotations: map[string]string{"ticket": "SEC-42"}}
}

func (k *approvalPKI) sign(t testing.TB, s approvalSigner, req ApprovalRequest) ([]byte, string) {
	t.Helper()
	b, mt, err := SignApproval(context.Background(), req, s.key, s.chain)
	if err != nil {
		t.Fatalf("SignApproval: %v", err)
	}
	return b, mt
}

// approvalVerifyAt is VerifyApproval an hour after approvalNow.
func approvalVerifyAt(bundle []byte, mediaType string, subject digest.Digest) ApprovalFact {
	return verifyApproval(context.Background(), bundle, mediaType, "ref", approvalRepo, subject, approvalNow.Add(time.Hour))
}

func TestApprovalPAE(t *testing.T) {
	// The example in the DSSE protocol specification.
	got := approvalPAE(&protodsse.Envelope{PayloadType: "http://example.com/HelloWorld", Payload: []byte("hello world")})
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; string(got) != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
}

func TestSignVerifyApproval(t *testing.T) {
	k := newApprovalPKI(t)
	for _, tc := range []struct {
		name           string
		approvalSigner approvalSigner
		mt             string
		certs          int
	}{
		{"leaf only, v0.3", k.security, ApprovalBundleMediaType, 1},
		{"intermediate, v0.2 chain", k.interLeaf, ApprovalChainBundleMediaType, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle, mt := k.sign(t, tc.approvalSigner, k.request("prod"))
			if mt != tc.mt {
				t.Fatalf("media type %q, want %q", mt, tc.mt)
			}
			f := approvalVerifyAt(bundle, mt, k.image.Digest)
			if !f.Verified {
				t.Fatalf("not verified: %s", f.Error)
			}
			want := approverOf(tc.approvalSigner.chain[0])
			if f.Environment != "prod" || f.Approver != want || !f.ApprovedAt.Equal(approvalNow) ||
				f.Repository != approvalRepo || f.Subject != k.image.Digest || f.Reason != "pen test passed" ||
				f.Annotations["ticket"] != "SEC-42" || len(f.Chain) != tc.certs || f.PublicKey == nil {
				t.Fatalf("fact %+v", f)
			}
		})
	}

	// The bundle is a Sigstore bundle as sigstore-go reads it: the
	// protobuf-specs message, a DSSE envelope, an in-toto statement.
	bundle, mt := k.sign(t, k.security, k.request("prod"))
	var b protobundle.Bundle
	if err := protojson.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	if b.MediaType != mt || b.GetDsseEnvelope().GetPayloadType() != "application/vnd.in-toto+json" ||
		!bytes.Equal(b.GetVerificationMaterial().GetCertificate().GetRawBytes(), k.security.chain[0].Raw) {
		t.Fatalf("bundle %v", &b)
	}
	var st map[string]any
	if err := json.Unmarshal(b.GetDsseEnvelope().GetPayload(), &st); err != nil {
		t.Fatal(err)
	}
	subj := st["subject"].([]any)[0].(map[string]any)
	pred := st["predicate"].(map[string]any)
	if st["_type"] != "https://in-toto.io/Statement/v1" || st["predicateType"] != ApprovalPredicateType ||
		subj["name"] != approvalRepo || subj["digest"].(map[string]any)["sha256"] != k.image.Digest.Encoded() ||
		pred["environment"] != "prod" || pred["approver"] != "C=US, ST=WA, O=Example, CN=security" ||
		pred["approvedAt"] != "2026-07-01T12:00:00Z" {
		t.Fatalf("statement %s", b.GetDsseEnvelope().GetPayload())
	}
}

func TestSignApprovalKeyTypes(t *testing.T) {
	k := newApprovalPKI(t)
	for _, kt := range []KeyType{KeyECDSAP384, KeyRSA3072} {
		s := approvalIssue(t, k.ca, "C=US, ST=WA, O=Example, CN=security", kt)
		bundle, mt := k.sign(t, s, k.request("prod"))
		if f := approvalVerifyAt(bundle, mt, k.image.Digest); !f.Verified {
			t.Errorf("%s: %s", kt, f.Error)
		}
	}
}

func TestSignApprovalRefuses(t *testing.T) {
	k := newApprovalPKI(t)
	ok := k.request("prod")
	for _, tc := range []struct {
		name string
		edit func(*ApprovalRequest, *approvalSigner)
		want string
	}{
		{"bad environment", func(r *ApprovalRequest, _ *approvalSigner) { r.Environment = "Prod!" }, "environment"},
		{"no environment", func(r *ApprovalRequest, _ *approvalSigner) { r.Environment = "" }, "environment"},
		{"bad repository", func(r *ApprovalRequest, _ *approvalSigner) { r.Repository = "Prod/App" }, "repository"},
		{"bad digest", func(r *ApprovalRequest, _ *approvalSigner) { r.Subject = "sha256:abc" }, "digest"},
		{"long reason", func(r *ApprovalRequest, _ *approvalSigner) { r.Reason = strings.Repeat("x", 5000) }, "reason"},
		{"invalid UTF-8", func(r *ApprovalRequest, _ *approvalSigner) { r.Reason = "\xff" }, "reason"},
		{"many annotations", func(r *ApprovalRequest, _ *approvalSigner) {
			r.Annotations = map[string]string{}
			for i := range 40 {
				r.Annotations[strings.Repeat("k", i+1)] = "v"
			}
		}, "annotations"},
		{"empty annotation key", func(r *ApprovalRequest, _ *approvalSigner) { r.Annotations = map[string]string{"": "v"} }, "annotation"},
		{"no certificate", func(_ *ApprovalRequest, s *approvalSigner) { s.chain = nil }, "no certificate"},
		{"key not the certificate's", func(_ *ApprovalRequest, s *approvalSigner) { s.key = k.ci.key }, "not the certificate's"},
		{"before the certificate", func(r *ApprovalRequest, _ *approvalSigner) { r.ApprovedAt = approvalNow.Add(-48 * time.Hour) }, "not valid at the approval time"},
		{"after the certificate", func(r *ApprovalRequest, _ *approvalSigner) { r.ApprovedAt = approvalNow.Add(60 * 24 * time.Hour) }, "not valid at the approval time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, s := ok, k.security
			tc.edit(&r, &s)
			_, _, err := SignApproval(context.Background(), r, s.key, s.chain)
			if !errors.Is(err, ErrInvalidApproval) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidApproval mentioning %q", err, tc.want)
			}
		})
	}
	if err := ValidateApprovalEnvironment("prod"); err != nil {
		t.Errorf("prod: %v", err)
	}
	if err := ValidateApprovalEnvironment("Prod"); !errors.Is(err, ErrInvalidApproval) {
		t.Errorf("Prod: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := SignApproval(ctx, ok, k.security.key, k.security.chain); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

// approvalForge assembles a bundle around payload, signed by s over the PAE of
// payloadType (or with sigs as given), carrying certs (DER, default s's
// leaf).
type approvalForge struct {
	bundleType  string
	payloadType string
	payload     []byte
	sigs        [][]byte
	certs       [][]byte
	chain       bool // x509CertificateChain instead of certificate
	publicKey   bool // a public-key hint instead of a certificate
}

func (k *approvalPKI) forge(t testing.TB, s approvalSigner, f approvalForge) []byte {
	t.Helper()
	if f.bundleType == "" {
		f.bundleType = ApprovalBundleMediaType
	}
	if f.payloadType == "" {
		f.payloadType = ApprovalPayloadType
	}
	env := &protodsse.Envelope{Payload: f.payload, PayloadType: f.payloadType}
	if f.sigs == nil {
		sig, err := signApprovalPAE(s.key, approvalPAE(env))
		if err != nil {
			t.Fatal(err)
		}
		f.sigs = [][]byte{sig}
	}
	for _, sig := range f.sigs {
		env.Signatures = append(env.Signatures, &protodsse.Signature{Sig: sig})
	}
	if f.certs == nil {
		f.certs = [][]byte{s.chain[0].Raw}
	}
	var certs []*protocommon.X509Certificate
	for _, c := range f.certs {
		certs = append(certs, &protocommon.X509Certificate{RawBytes: c})
	}
	vm := &protobundle.VerificationMaterial{}
	switch {
	case f.publicKey:
		vm.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: "k"}}
	case f.chain:
		vm.Content = &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: &protocommon.X509CertificateChain{Certificates: certs}}
	default:
		vm.Content = &protobundle.VerificationMaterial_Certificate{Certificate: certs[0]}
	}
	out, err := protojson.Marshal(&protobundle.Bundle{MediaType: f.bundleType, VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// statement is the payload a genuine approval by s for the image would
// carry, with edit applied to its JSON tree.
func (k *approvalPKI) statement(t testing.TB, s approvalSigner, edit func(st, pred map[string]any)) []byte {
	t.Helper()
	pred := map[string]any{"environment": "prod", "approver": approverOf(s.chain[0]), "approvedAt": "2026-07-01T12:00:00Z"}
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": approvalRepo, "digest": map[string]any{"sha256": k.image.Digest.Encoded()}}},
		"predicateType": ApprovalPredicateType,
		"predicate":     pred,
	}
	if edit != nil {
		edit(st, pred)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// approvalEditJSON rewrites a bundle's JSON without re-signing.
func approvalEditJSON(t testing.TB, bundle []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(bundle, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyApprovalHostile(t *testing.T) {
	k := newApprovalPKI(t)
	s := k.security
	good, mt := k.sign(t, s, k.request("prod"))
	if f := approvalVerifyAt(good, mt, k.image.Digest); !f.Verified {
		t.Fatal(f.Error)
	}
	stmt := func(edit func(st, pred map[string]any)) []byte {
		return k.forge(t, s, approvalForge{payload: k.statement(t, s, edit)})
	}
	envelope := func(m map[string]any) map[string]any { return m["dsseEnvelope"].(map[string]any) }
	b64 := base64.StdEncoding.EncodeToString
	manyCerts := make([][]byte, 9)
	for i := range manyCerts {
		manyCerts[i] = s.chain[0].Raw
	}

	for _, tc := range []struct {
		name      string
		bundle    []byte
		mediaType string
		subject   digest.Digest
		want      string
	}{
		{"control: forged but honest", stmt(nil), "", "", ""},
		{"tampered payload", approvalEditJSON(t, good, func(m map[string]any) {
			p, _ := base64.StdEncoding.DecodeString(envelope(m)["payload"].(string))
			envelope(m)["payload"] = b64(bytes.Replace(p, []byte(`"prod"`), []byte(`"dev1"`), 1))
		}), "", "", "does not verify"},
		{"payload type changed after signing", approvalEditJSON(t, good, func(m map[string]any) {
			envelope(m)["payloadType"] = "application/json"
		}), "", "", "payload type"},
		{"signed with another payload type", k.forge(t, s, approvalForge{payloadType: "application/vnd.cncf.notary.payload.v1+json", payload: k.statement(t, s, nil)}), "", "", "payload type"},
		{"garbage signature", approvalEditJSON(t, good, func(m map[string]any) {
			envelope(m)["signatures"] = []any{map[string]any{"sig": b64([]byte("garbage"))}}
		}), "", "", "does not verify"},
		{"empty signature", approvalEditJSON(t, good, func(m map[string]any) {
			envelope(m)["signatures"] = []any{map[string]any{"keyid": "x"}}
		}), "", "", "empty"},
		{"no signatures", approvalEditJSON(t, good, func(m map[string]any) { delete(envelope(m), "signatures") }), "", "", "0 signatures"},
		{"two signatures", approvalEditJSON(t, good, func(m map[string]any) {
			sigs := envelope(m)["signatures"].([]any)
			envelope(m)["signatures"] = append(sigs, sigs[0])
		}), "", "", "2 signatures"},
		{"other image", k.sign2(t, s, func(r *ApprovalRequest) { r.Subject = k.otherImage.Digest }), "", "", "copied from another image"},
		{"other repository", k.sign2(t, s, func(r *ApprovalRequest) { r.Repository = "dev/app" }), "", "", `repository "dev/app"`},
		{"sha512 subject for a sha256 image", stmt(func(st, _ map[string]any) {
			st["subject"] = []any{map[string]any{"name": approvalRepo, "digest": map[string]any{"sha512": strings.Repeat("ab", 64)}}}
		}), "", "", "another image"},
		{"two subjects", stmt(func(st, _ map[string]any) {
			st["subject"] = append(st["subject"].([]any), st["subject"].([]any)[0])
		}), "", "", "2 subjects"},
		{"two digests", stmt(func(st, _ map[string]any) {
			st["subject"].([]any)[0].(map[string]any)["digest"].(map[string]any)["sha512"] = strings.Repeat("ab", 64)
		}), "", "", "2 digests"},
		{"no subject", stmt(func(st, _ map[string]any) { delete(st, "subject") }), "", "", "0 subjects"},
		{"wrong predicate type", stmt(func(st, _ map[string]any) { st["predicateType"] = approvalTestCosignPredicate }), "", "", "predicate type"},
		{"statement v0.1", stmt(func(st, _ map[string]any) { st["_type"] = "https://in-toto.io/Statement/v0.1" }), "", "", "_type"},
		{"case-variant key", stmt(func(st, _ map[string]any) { st["PredicateType"] = "x" }), "", "", "is not"},
		{"case-variant predicate key", stmt(func(_, p map[string]any) { p["Environment"] = "dev" }), "", "", "is not"},
		{"unknown predicate field", stmt(func(_, p map[string]any) { p["expires"] = "2026-07-02T00:00:00Z" }), "", "", "unknown key"},
		{"unknown statement field is ignored", stmt(func(st, _ map[string]any) { st["futureField"] = 1 }), "", "", ""},
		{"predicate not an object", stmt(func(st, _ map[string]any) { st["predicate"] = "prod" }), "", "", "predicate"},
		{"bad environment", stmt(func(_, p map[string]any) { p["environment"] = "../prod" }), "", "", "environment"},
		{"approver is not the certificate", stmt(func(_, p map[string]any) { p["approver"] = "C=US, ST=WA, O=Example, CN=ci" }), "", "", "approver"},
		{"approvedAt not RFC 3339", stmt(func(_, p map[string]any) { p["approvedAt"] = "yesterday" }), "", "", "RFC 3339"},
		{"approvedAt before the certificate", stmt(func(_, p map[string]any) { p["approvedAt"] = "2026-06-01T00:00:00Z" }), "", "", "not valid at the approval time"},
		{"approvedAt in the future", stmt(func(_, p map[string]any) { p["approvedAt"] = "2026-07-01T14:00:00Z" }), "", "", "in the future"},
		{"duplicate keys in the statement", k.forge(t, s, approvalForge{payload: []byte(strings.Replace(string(k.statement(t, s, nil)),
			`"_type":`, `"predicateType":"x","_type":`, 1))}), "", "", "duplicate"},
		{"statement not JSON", k.forge(t, s, approvalForge{payload: []byte("not json")}), "", "", "malformed statement"},
		{"statement with trailing data", k.forge(t, s, approvalForge{payload: append(k.statement(t, s, nil), []byte(" {}")...)}), "", "", "malformed statement"},
		{"signed by another key than the certificate's", k.forge(t, k.ci, approvalForge{payload: k.statement(t, s, nil), certs: [][]byte{s.chain[0].Raw}}), "", "", "does not verify"},
		{"garbage certificate", k.forge(t, s, approvalForge{payload: k.statement(t, s, nil), certs: [][]byte{[]byte("not DER")}}), "", "", "certificate 1"},
		{"too many certificates", k.forge(t, s, approvalForge{payload: k.statement(t, s, nil), certs: manyCerts, chain: true, bundleType: ApprovalChainBundleMediaType}), ApprovalChainBundleMediaType, "", "9 certificates"},
		{"public key hint", k.forge(t, s, approvalForge{payload: k.statement(t, s, nil), publicKey: true}), "", "", "public key"},
		{"v0.3 with a chain", k.forge(t, s, approvalForge{payload: k.statement(t, s, nil), chain: true}), "", "", "no certificate"},
		{"v0.2 with a lone certificate", k.forge(t, s, approvalForge{payload: k.statement(t, s, nil), bundleType: ApprovalChainBundleMediaType}), ApprovalChainBundleMediaType, "", "no certificate chain"},
		{"bundle says v0.2, stored as v0.3", k.forge(t, s, approvalForge{payload: k.statement(t, s, nil), chain: true, bundleType: ApprovalChainBundleMediaType}), "", "", "stored as"},
		{"message signature", approvalEditJSON(t, good, func(m map[string]any) {
			delete(m, "dsseEnvelope")
			m["messageSignature"] = map[string]any{"signature": b64([]byte("x"))}
		}), "", "", "no DSSE envelope"},
		{"no verification material", approvalEditJSON(t, good, func(m map[string]any) { delete(m, "verificationMaterial") }), "", "", "no verification material"},
		{"unknown bundle field", approvalEditJSON(t, good, func(m map[string]any) { m["surprise"] = true }), "", "", "malformed bundle"},
		{"duplicate bundle keys", []byte(strings.Replace(string(good), `{`, `{"mediaType":"x",`, 1)), "", "", "duplicate"},
		{"not a bundle media type", good, "application/json", "", "not a Sigstore bundle"},
		{"cosign v0.1 bundle type", good, "application/vnd.dev.sigstore.bundle+json;version=0.1", "", "not a Sigstore bundle"},
		{"empty", nil, "", "", "empty bundle"},
		{"oversized", append(bytes.Repeat([]byte(" "), MaxApprovalBundleBytes), good...), "", "", "more than"},
		{"garbage", []byte("\x00\xff{{"), "", "", "malformed bundle"},
		{"bad image digest", good, "", "sha256:short", "image digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mt := tc.mediaType
			if mt == "" {
				mt = ApprovalBundleMediaType
			}
			subject := tc.subject
			if subject == "" {
				subject = k.image.Digest
			}
			f := approvalVerifyAt(tc.bundle, mt, subject)
			if tc.want == "" {
				if !f.Verified {
					t.Fatalf("not verified: %s", f.Error)
				}
				return
			}
			if f.Verified || !strings.Contains(f.Error, tc.want) {
				t.Fatalf("verified=%v error=%q, want refused mentioning %q", f.Verified, f.Error, tc.want)
			}
			if f.Environment != "" || f.Approver != "" || f.Chain != nil {
				t.Fatalf("a refused approval reports content: %+v", f)
			}
		})
	}
}

// approvalTestCosignPredicate is cosign's image-signature predicate: a
// signature statement must not pass for an approval.
const approvalTestCosignPredicate = "https://sigstore.dev/cosign/sign/v1"

func (k *approvalPKI) sign2(t testing.TB, s approvalSigner, edit func(*ApprovalRequest)) []byte {
	t.Helper()
	r := k.request("prod")
	edit(&r)
	b, _ := k.sign(t, s, r)
	return b
}

func TestMatchApproval(t *testing.T) {
	k := newApprovalPKI(t)
	now := approvalNow.Add(time.Hour)
	match := func(s approvalSigner, repo string, now time.Time) ([]string, string) {
		t.Helper()
		r := k.request("prod")
		r.Repository = repo
		bundle, mt := k.sign(t, s, r)
		f := verifyApproval(context.Background(), bundle, mt, "ref", repo, k.image.Digest, approvalNow.Add(time.Hour))
		if !f.Verified {
			t.Fatal(f.Error)
		}
		ms := MatchApproval(k.policy, &f, now)
		if len(ms) != len(k.policy.Authorities) {
			t.Fatalf("%d results for %d authorities", len(ms), len(k.policy.Authorities))
		}
		return AuthorityMatches(ms), describeMismatch(ms)
	}
	eq := func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

	// security's certificate is authority security, and release (its key).
	if got, why := match(k.security, approvalRepo, now); !eq(got, []string{"security", "release"}) {
		t.Errorf("security: %v (%s)", got, why)
	}
	// vendor (CN=security too) may only approve vendor/**.
	if got, why := match(k.security, "vendor/app", now); !eq(got, []string{"security", "release", "vendor"}) {
		t.Errorf("security for vendor/app: %v (%s)", got, why)
	}
	if _, why := match(k.security, approvalRepo, now); !strings.Contains(why, "vendor: authority signing outside its scope") {
		t.Errorf("vendor outside its scope: %s", why)
	}
	if got, _ := match(k.ci, approvalRepo, now); !eq(got, []string{"ci"}) {
		t.Errorf("ci: %v", got)
	}
	// Same subject under another root: cryptographically fine, trusted by nobody.
	if got, why := match(k.rogue, approvalRepo, now); len(got) != 0 || !strings.Contains(why, "does not lead to one of the authority's roots") {
		t.Errorf("rogue CA: %v (%s)", got, why)
	}
	// The v0.2 chain's intermediate leads the leaf to the deep root.
	if got, why := match(k.interLeaf, approvalRepo, now); !eq(got, []string{"deep"}) {
		t.Errorf("intermediate chain: %v (%s)", got, why)
	}
	// Once the certificate has expired the approval no longer counts: no
	// timestamp authority vouches for approvedAt.
	if got, why := match(k.security, approvalRepo, approvalNow.Add(40*24*time.Hour)); slices.Contains(got, "security") || !strings.Contains(why, "expired") {
		t.Errorf("expired: %v (%s)", got, why)
	}

	// Revoked after approving: no longer counts.
	bundle, mt := k.sign(t, k.security, k.request("prod"))
	f := approvalVerifyAt(bundle, mt, k.image.Digest)
	if err := k.ca.Revoke(k.security.chain[0], 1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	p := k.loadPolicy(t, strings.Replace(approvalTestPolicy, `CN=security"]`+"\n", `CN=security"]`+"\n    crls: [ca/root.crl]\n", 1))
	if got := AuthorityMatches(MatchApproval(p, &f, now)); slices.Contains(got, "security") || !f.Verified {
		t.Errorf("revoked certificate still matches security: %v", got)
	}

	if ms := MatchApproval(k.policy, &ApprovalFact{Error: "bad"}, now); ms != nil {
		t.Errorf("unverified approval matched: %v", ms)
	}
}

func TestMatchSignerRefuses(t *testing.T) {
	k := newApprovalPKI(t)
	now := approvalNow.Add(time.Hour)
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		key   crypto.PublicKey
		now   time.Time
		want  string
	}{
		{"nil certificate", []*x509.Certificate{nil}, nil, now, "empty certificate"},
		{"nothing", nil, nil, now, "no certificate or key"},
		{"zero time", k.security.chain, nil, time.Time{}, "zero evaluation time"},
	} {
		for _, m := range k.policy.MatchSigner(approvalRepo, tc.chain, tc.key, time.Time{}, tc.now) {
			if m.Matched || !strings.Contains(m.Why, tc.want) {
				t.Errorf("%s: %+v", tc.name, m)
			}
		}
	}
	// A bare key matches the key authority and no certificate authority.
	ms := k.policy.MatchSigner(approvalRepo, nil, k.security.key.Public(), time.Time{}, now)
	if got := AuthorityMatches(ms); strings.Join(got, ",") != "release" {
		t.Errorf("bare key: %v", ms)
	}
	// signedAt before the certificate: refused even though valid now.
	ms = k.policy.MatchSigner(approvalRepo, k.security.chain, nil, approvalNow.Add(-48*time.Hour), now)
	if ms[0].Matched || !strings.Contains(ms[0].Why, "not valid at the signing time") {
		t.Errorf("signedAt before validity: %+v", ms[0])
	}
}

// approvalRegistry serves referrers as an honest or hostile registry
// would: the listing is whatever it claims.
type approvalRegistry struct {
	referrers []v1.Descriptor
	manifests map[digest.Digest][]byte
	blobs     map[digest.Digest][]byte
	listErr   error
}

func newApprovalRegistry() *approvalRegistry {
	return &approvalRegistry{manifests: map[digest.Digest][]byte{}, blobs: map[digest.Digest][]byte{}}
}

func (r *approvalRegistry) Referrers(_ context.Context, _ oci.ImageRef, _ digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	if artifactType != ApprovalArtifactType {
		return nil, errors.New("approvals must be listed by their artifact type")
	}
	return r.referrers, r.listErr
}

func (r *approvalRegistry) Manifest(_ context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error) {
	b, ok := r.manifests[ref.Digest]
	if !ok {
		return v1.Descriptor{}, nil, errors.New("manifest unknown")
	}
	return v1.Descriptor{Digest: ref.Digest, Size: int64(len(b))}, b, nil
}

func (r *approvalRegistry) Blob(_ context.Context, _ oci.ImageRef, d digest.Digest, _ int64) (io.ReadCloser, int64, error) {
	b, ok := r.blobs[d]
	if !ok {
		return nil, 0, errors.New("blob unknown")
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

// add stores a manifest and lists it.
func (r *approvalRegistry) add(manifest []byte) {
	d := digest.FromBytes(manifest)
	r.manifests[d] = manifest
	r.referrers = append(r.referrers, v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d,
		Size: int64(len(manifest)), ArtifactType: ApprovalArtifactType})
}

// push stores an approval's bundle and returns its manifest.
func (r *approvalRegistry) push(t testing.TB, subject v1.Descriptor, bundle []byte, mt string) []byte {
	t.Helper()
	m, desc, err := ApprovalManifest(subject, bundle, mt)
	if err != nil {
		t.Fatal(err)
	}
	r.blobs[desc.Digest] = bundle
	return m
}

func approvalEditManifest(t testing.TB, manifest []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestApprovalManifest(t *testing.T) {
	k := newApprovalPKI(t)
	bundle, mt := k.sign(t, k.security, k.request("prod"))
	manifest, desc, err := ApprovalManifest(k.image, bundle, mt)
	if err != nil {
		t.Fatal(err)
	}
	m, err := oci.ParseManifest("", manifest)
	if err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != ApprovalArtifactType || m.EffectiveArtifactType() == "application/vnd.cncf.notary.signature" ||
		m.Config.MediaType != v1.MediaTypeEmptyJSON || len(m.Layers) != 1 || m.Layers[0].Digest != desc.Digest ||
		desc.MediaType != ApprovalBundleMediaType || m.Subject.Digest != k.image.Digest ||
		m.Annotations[ApprovalAnnotationEnvironment] != "prod" || m.Annotations[v1.AnnotationCreated] != "2026-07-01T12:00:00Z" ||
		m.Annotations["dev.sigstore.bundle.predicateType"] != ApprovalPredicateType {
		t.Fatalf("manifest %s", manifest)
	}
	if _, _, err := ApprovalManifest(k.otherImage, bundle, mt); !errors.Is(err, ErrInvalidApproval) {
		t.Fatalf("manifest for an image the approval does not name: %v", err)
	}
	if _, _, err := ApprovalManifest(k.image, []byte("{}"), mt); !errors.Is(err, ErrInvalidApproval) {
		t.Fatalf("manifest for a broken bundle: %v", err)
	}
}

func TestApprovals(t *testing.T) {
	k := newApprovalPKI(t)
	ctx := context.Background()
	reg := newApprovalRegistry()
	repo := oci.ImageRef{Registry: "r.example", Repository: approvalRepo, Tag: "v1"}

	prod, mt := k.sign(t, k.security, k.request("prod"))
	good := reg.push(t, k.image, prod, mt)
	reg.add(good)
	staging, _ := k.sign(t, k.ci, k.request("staging"))
	reg.add(reg.push(t, k.image, staging, mt))
	// Another image's approval listed as this one's (the manifest says so).
	other, _ := k.sign(t, k.security, ApprovalRequest{Repository: approvalRepo, Subject: k.otherImage.Digest, Environment: "prod", ApprovedAt: approvalNow})
	reg.add(reg.push(t, k.otherImage, other, mt))
	// ...and its bundle under a manifest that claims this image.
	otherHere := approvalEditManifest(t, good, func(m map[string]any) {
		m["layers"] = []any{map[string]any{"mediaType": mt, "digest": digest.FromBytes(other).String(), "size": len(other)}}
	})
	reg.add(otherHere)
	// The unsigned environment hint says prod, the signed approval staging.
	reg.add(approvalEditManifest(t, reg.push(t, k.image, staging, mt), func(m map[string]any) {
		m["annotations"].(map[string]any)[ApprovalAnnotationEnvironment] = "prod"
	}))
	reg.add(approvalEditManifest(t, good, func(m map[string]any) { m["artifactType"] = "application/vnd.cncf.notary.signature" }))
	reg.add(approvalEditManifest(t, good, func(m map[string]any) { m["layers"] = append(m["layers"].([]any), m["layers"].([]any)[0]) }))
	reg.add(approvalEditManifest(t, good, func(m map[string]any) {
		m["layers"].([]any)[0].(map[string]any)["size"] = MaxApprovalBundleBytes + 1
	}))
	reg.add(approvalEditManifest(t, good, func(m map[string]any) { m["layers"].([]any)[0].(map[string]any)["mediaType"] = "application/json" }))
	reg.add(approvalEditManifest(t, good, func(m map[string]any) {
		m["annotations"].(map[string]any)["dev.sigstore.bundle.predicateType"] = "https://slsa.dev/provenance/v1"
	}))
	reg.add(approvalEditManifest(t, good, func(m map[string]any) {
		m["layers"].([]any)[0].(map[string]any)["digest"] = digest.FromString("missing").String()
	}))
	reg.add([]byte("not a manifest"))
	reg.referrers = append(reg.referrers, v1.Descriptor{Digest: digest.FromString("gone")}, v1.Descriptor{Digest: "sha256:bad"})

	facts, err := approvals(ctx, reg, repo, k.image.Digest, approvalNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	wants := []string{"", "", "subject is not", "another image", "manifest says environment", "artifactType",
		"2 layers", "exceeds", "not a Sigstore bundle", "predicateType", "fetch approval bundle", "approval manifest",
		"fetch approval manifest", "bad digest"}
	if len(facts) != len(wants) {
		t.Fatalf("%d facts for %d listed", len(facts), len(wants))
	}
	for i, want := range wants {
		f := facts[i]
		if f.Ref != reg.referrers[i].Digest.String() {
			t.Errorf("fact %d: ref %s, listed %s", i, f.Ref, reg.referrers[i].Digest)
		}
		if want == "" {
			if !f.Verified {
				t.Errorf("fact %d: %s", i, f.Error)
			}
			continue
		}
		if f.Verified || !strings.Contains(f.Error, want) {
			t.Errorf("fact %d: verified=%v error=%q, want %q", i, f.Verified, f.Error, want)
		}
	}
	if facts[0].Environment != "prod" || facts[1].Environment != "staging" {
		t.Errorf("environments %q, %q", facts[0].Environment, facts[1].Environment)
	}

	// What a rule sees: approved for prod by security.
	results := ApprovalResults(k.policy, facts, approvalNow.Add(time.Hour))
	if r := results[0]; strings.Join(r.Authorities, ",") != "security,release" || r.Why != "" {
		t.Errorf("prod approval: %+v", r)
	}
	if r := results[1]; strings.Join(r.Authorities, ",") != "ci" {
		t.Errorf("staging approval: %+v", r)
	}
	if r := results[2]; len(r.Authorities) != 0 || !strings.HasPrefix(r.Why, "not verified") {
		t.Errorf("refused approval: %+v", r)
	}
	if r := ApprovalResults(nil, facts[:1], approvalNow)[0]; len(r.Authorities) != 0 || r.Why != "no trust policy given" {
		t.Errorf("no policy: %+v", r)
	}
	js, err := json.Marshal(results[0])
	if err != nil || !strings.Contains(string(js), `"environment":"prod"`) || !strings.Contains(string(js), `"authorities":["security","release"]`) {
		t.Errorf("JSON %s, %v", js, err)
	}

	// Listing bounded; discovery failure is an error.
	many := newApprovalRegistry()
	for range MaxApprovalsListed + 2 {
		many.referrers = append(many.referrers, v1.Descriptor{Digest: digest.FromString("gone")})
	}
	facts, err = approvals(ctx, many, repo, k.image.Digest, approvalNow)
	if err != nil || len(facts) != MaxApprovalsListed+1 || !strings.Contains(facts[MaxApprovalsListed].Error, "2 more") {
		t.Fatalf("%d facts, %v", len(facts), err)
	}
	many.listErr = errors.New("registry down")
	if _, err := Approvals(ctx, many, repo, k.image.Digest); err == nil {
		t.Fatal("listing failure not reported")
	}
}

func FuzzVerifyApproval(f *testing.F) {
	k := newApprovalPKI(f)
	good, mt := k.sign(f, k.security, k.request("prod"))
	chain, _ := k.sign(f, k.interLeaf, k.request("prod"))
	f.Add(good, false)
	f.Add(chain, true)
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA=="}]},"verificationMaterial":{"certificate":{"rawBytes":"AA=="}}}`), false)
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"signatures":[]}}`), false)
	f.Fuzz(func(t *testing.T, bundle []byte, v02 bool) {
		m := mt
		if v02 {
			m = ApprovalChainBundleMediaType
		}
		fact := approvalVerifyAt(bundle, m, k.image.Digest)
		if fact.Verified && (fact.Environment == "" || fact.Approver == "" || len(fact.Chain) == 0 || fact.Subject != k.image.Digest) {
			t.Fatalf("verified with incomplete facts: %+v", fact)
		}
		if !fact.Verified && fact.Error == "" {
			t.Fatal("refused without a reason")
		}
	})
}

// TestApprovalIsNotASignature: the signed predicate type keeps an approval
// from passing for a cosign image signature even where a verifier is
// handed one (its artifactType already keeps it out of the listing).
func TestApprovalIsNotASignature(t *testing.T) {
	k := newApprovalPKI(t)
	bundle, _ := k.sign(t, k.security, k.request("prod"))
	f := VerifyCosignBundle(context.Background(), bundle, k.image.Digest, nil, "ref")
	if f.Verified || !strings.Contains(f.Error, ApprovalPredicateType) {
		t.Fatalf("approval verified as a signature: %+v", f)
	}
}
