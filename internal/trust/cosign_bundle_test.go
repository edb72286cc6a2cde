package trust

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"
)

// cosignStatementFor is the statement `cosign sign --new-bundle-format`
// signs for an image.
func cosignStatementFor(d digest.Digest) []byte {
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{%q:%q}}],"predicateType":%q}`,
		d.Algorithm().String(), d.Encoded(), CosignSignPredicateType)
}

// makeBundle builds a v0.3 bundle as cosign does: the DSSE envelope over
// statement signed by key, and as verification material the leaf of chain
// or, without one, the key's hint. edit may change the bundle after signing.
func makeBundle(t testing.TB, key crypto.Signer, chain []*x509.Certificate, statement []byte, edit func(*protobundle.Bundle)) []byte {
	t.Helper()
	env := &protodsse.Envelope{Payload: statement, PayloadType: "application/vnd.in-toto+json"}
	s, err := signature.LoadSigner(key, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.SignMessage(strings.NewReader(string(cosignPAE(env))))
	if err != nil {
		t.Fatal(err)
	}
	env.Signatures = []*protodsse.Signature{{Sig: sig}}
	vm := &protobundle.VerificationMaterial{}
	if len(chain) > 0 {
		vm.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: chain[0].Raw}}
	} else {
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(der)
		vm.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: base64.StdEncoding.EncodeToString(sum[:])}}
	}
	b := &protobundle.Bundle{MediaType: SigstoreBundleArtifactType, VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env}}
	if edit != nil {
		edit(b)
	}
	out, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyCosignBundle(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image A").Digest
	now := k.chain[0].NotBefore.Add(1)

	f := VerifyCosignBundle(ctx, makeBundle(t, k.key, k.chain, cosignStatementFor(target), nil), target, nil, "sha256:ref")
	if !f.Verified || f.SignedDigest != target || len(f.Chain) != 1 || f.PublicKey != nil || f.Format != "cosign-bundle" {
		t.Fatalf("certificate bundle: %+v", f)
	}
	if d, err := k.policy.Evaluate("dev/app", target, "dev", []SignatureFact{f}, now); err != nil || !d.Allowed {
		t.Fatalf("decision %+v, %v", d, err)
	}

	key := newECKey(t)
	keyBundle := makeBundle(t, key, nil, cosignStatementFor(target), nil)
	f = VerifyCosignBundle(ctx, keyBundle, target, []crypto.PublicKey{k.key.Public(), key.Public()}, "sha256:ref")
	if !f.Verified || f.Chain != nil || !publicKeysEqual(key.Public(), f.PublicKey) {
		t.Fatalf("key bundle: %+v", f)
	}
	if d, err := keyPolicy(t, key.Public()).Evaluate("dev/app", target, "dev", []SignatureFact{f}, now); err != nil || !d.Allowed {
		t.Fatalf("decision %+v, %v", d, err)
	}

	// A statement naming several subjects signs each of them.
	other := notationTarget("image B").Digest
	multi := fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":%q}},{"name":"a","digest":{"sha256":%q}}],"predicateType":%q}`,
		other.Encoded(), target.Encoded(), CosignSignPredicateType)
	if f := VerifyCosignBundle(ctx, makeBundle(t, key, nil, multi, nil), target, []crypto.PublicKey{key.Public()}, "r"); !f.Verified || f.SignedDigest != target {
		t.Fatalf("multi-subject: %+v", f)
	}

	// Replayed from image B: verified, but the policy refuses it for A.
	f = VerifyCosignBundle(ctx, makeBundle(t, k.key, k.chain, cosignStatementFor(other), nil), target, nil, "r")
	if !f.Verified || f.SignedDigest != other {
		t.Fatalf("replayed bundle: %+v", f)
	}
	if d, err := k.policy.Evaluate("dev/app", target, "dev", []SignatureFact{f}, now); err != nil || d.Allowed {
		t.Fatalf("replayed bundle counted: %+v, %v", d, err)
	}

	// A bundle from another CA is verified but not counted.
	stranger := newNotationPKI(t)
	f = VerifyCosignBundle(ctx, makeBundle(t, stranger.key, stranger.chain, cosignStatementFor(target), nil), target, nil, "r")
	if d, err := k.policy.Evaluate("dev/app", target, "dev", []SignatureFact{f}, now); err != nil || d.Allowed || !f.Verified {
		t.Fatalf("untrusted root: %+v, %+v, %v", f, d, err)
	}
}

func TestVerifyCosignBundleHostile(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image A").Digest
	stmt := cosignStatementFor(target)
	keys := []crypto.PublicKey{k.key.Public()}
	withStatement := func(s string) []byte { return makeBundle(t, k.key, nil, []byte(s), nil) }
	subj := fmt.Sprintf(`[{"digest":{"sha256":%q}}]`, target.Encoded())
	good := string(makeBundle(t, k.key, nil, stmt, nil))

	cases := []struct {
		name   string
		bundle []byte
		keys   []crypto.PublicKey
		want   string
	}{
		{"wrong key", []byte(good), []crypto.PublicKey{k.otherKey.Public()}, "none of the trust policy's"},
		{"no keys", []byte(good), nil, "no public keys"},
		{"tampered payload", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) {
			b.GetDsseEnvelope().Payload = cosignStatementFor(notationTarget("image B").Digest)
		}), keys, "verifies with none"},
		{"tampered payload, certificate", makeBundle(t, k.key, k.chain, stmt, func(b *protobundle.Bundle) {
			b.GetDsseEnvelope().Payload = cosignStatementFor(notationTarget("image B").Digest)
		}), nil, "does not verify with the certificate's key"},
		{"tampered payload type", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) {
			b.GetDsseEnvelope().PayloadType = "application/json"
		}), keys, "payload type"},
		{"certificate of another key", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) {
			b.VerificationMaterial.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: k.otherChain[0].Raw}}
		}), keys, "certificate's key"},
		{"garbage certificate", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) {
			b.VerificationMaterial.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: []byte("junk")}}
		}), keys, "bundle certificate 0"},
		{"empty chain", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) {
			b.VerificationMaterial.Content = &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: &protocommon.X509CertificateChain{}}
		}), keys, "0 certificates"},
		{"long chain", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) {
			c := &protocommon.X509CertificateChain{}
			for range 11 {
				c.Certificates = append(c.Certificates, &protocommon.X509Certificate{RawBytes: k.chain[0].Raw})
			}
			b.VerificationMaterial.Content = &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: c}
		}), keys, "11 certificates"},
		{"no verification material", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) { b.VerificationMaterial = nil }), keys, "no verification material"},
		{"two signatures", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) {
			e := b.GetDsseEnvelope()
			e.Signatures = append(e.Signatures, e.Signatures[0])
		}), keys, "2 signatures"},
		{"no signature", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) { b.GetDsseEnvelope().Signatures = nil }), keys, "0 signatures"},
		{"message signature", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) {
			b.Content = &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{Signature: []byte("x")}}
		}), keys, "no DSSE envelope"},
		{"unknown media type", makeBundle(t, k.key, nil, stmt, func(b *protobundle.Bundle) { b.MediaType = "application/json" }), keys, "media type"},
		{"not JSON", []byte("{"), keys, "malformed bundle"},
		{"empty", nil, keys, "empty bundle"},
		{"huge", []byte(`{"mediaType":"` + strings.Repeat("a", MaxCosignBundleBytes) + `"}`), keys, "more than"},
		{"duplicate key", []byte(strings.Replace(good, `{"mediaType":`, `{"mediaType":"x","mediaType":`, 1)), keys, "duplicate key"},
		{"bad base64", []byte(strings.Replace(good, `"sig":"`, `"sig":"!!`, 1)), keys, "malformed bundle"},
		{"deep nesting", []byte(`{"x":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`), keys, "too deeply"},
		{"attestation", withStatement(`{"_type":"https://in-toto.io/Statement/v1","subject":` + subj + `,"predicateType":"https://slsa.dev/provenance/v1"}`), keys, "attestation, not a signature"},
		{"statement type", withStatement(`{"_type":"https://example.com/x","subject":` + subj + `,"predicateType":"` + CosignSignPredicateType + `"}`), keys, "statement type"},
		{"no subject", withStatement(`{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"` + CosignSignPredicateType + `"}`), keys, "0 subjects"},
		{"subject without digest", withStatement(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x"}],"predicateType":"` + CosignSignPredicateType + `"}`), keys, "no digest"},
		{"bad subject digest", withStatement(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"abc"}}],"predicateType":"` + CosignSignPredicateType + `"}`), keys, "in-toto subject 0"},
		{"statement not JSON", withStatement(`nope`), keys, "malformed in-toto statement"},
		{"statement duplicate keys", withStatement(`{"_type":"https://in-toto.io/Statement/v1","subject":` + subj + `,"predicateType":"` + CosignSignPredicateType + `","predicateType":"x"}`), keys, "duplicate key"},
		{"statement trailing data", withStatement(string(stmt) + `{}`), keys, "after the JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := VerifyCosignBundle(ctx, c.bundle, target, c.keys, "r")
			if f.Verified || !strings.Contains(f.Error, c.want) {
				t.Fatalf("verified=%v error=%q, want unverified mentioning %q", f.Verified, f.Error, c.want)
			}
			if f.SignedDigest != "" || f.Chain != nil || f.PublicKey != nil {
				t.Fatalf("a failed fact reports what it did not verify: %+v", f)
			}
		})
	}
}

// FuzzVerifyCosignBundle: arbitrary bundles and statements may be refused,
// never panic.
func FuzzVerifyCosignBundle(f *testing.F) {
	k := newNotationPKI(f)
	target := notationTarget("image A").Digest
	stmt := cosignStatementFor(target)
	f.Add(makeBundle(f, k.key, k.chain, stmt, nil), stmt)
	f.Add(makeBundle(f, k.key, nil, stmt, nil), []byte(`{"subject":[{"digest":{"sha512":""}}]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{}}`), []byte(`[]`))
	keys := []crypto.PublicKey{k.key.Public()}
	f.Fuzz(func(t *testing.T, bundle, statement []byte) {
		_, _ = parseCosignStatement(statement, target)
		fact := VerifyCosignBundle(context.Background(), bundle, target, keys, "fuzz")
		if fact.Verified && fact.SignedDigest == "" {
			t.Fatalf("verified without a digest: %+v", fact)
		}
		if strings.Contains(fact.Error, "panicked") {
			t.Fatalf("parser panicked: %s", fact.Error)
		}
	})
}
