package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

const cosignRef = "r.example/dev/app"

// cosignKeyPolicy trusts only a raw public key, as a cosign user without
// a PKI would.
const cosignKeyPolicy = `version: 1
authorities:
  - name: release
    keys: [release.pub]
environments:
  - name: dev
    repositories: ["dev/**"]
    require: [release]
`

// keyPolicy writes pub as release.pub beside a policy trusting it.
func keyPolicy(t *testing.T, pub crypto.PublicKey) *Policy {
	t.Helper()
	dir := t.TempDir()
	pemBytes, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "release.pub"), pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy([]byte(cosignKeyPolicy), dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signCosignT(t testing.TB, target digest.Digest, key crypto.Signer, chain []*x509.Certificate, ann map[string]string) ([]byte, v1.Descriptor) {
	t.Helper()
	p, l, err := SignCosign(context.Background(), cosignRef, target, key, chain, ann)
	if err != nil {
		t.Fatalf("SignCosign: %v", err)
	}
	return p, l
}

func TestSignVerifyCosign(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image A").Digest
	now := k.chain[0].NotBefore.Add(1)

	t.Run("certificate", func(t *testing.T) {
		payload, layer := signCosignT(t, target, k.key, k.chain, map[string]string{"build": "42"})
		var p struct {
			Critical struct {
				Identity struct {
					DockerReference string `json:"docker-reference"`
				} `json:"identity"`
				Image struct {
					DockerManifestDigest string `json:"docker-manifest-digest"`
				} `json:"image"`
				Type string `json:"type"`
			} `json:"critical"`
			Optional map[string]string `json:"optional"`
		}
		if err := json.Unmarshal(payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Critical.Identity.DockerReference != cosignRef || p.Critical.Image.DockerManifestDigest != target.String() ||
			p.Critical.Type != "cosign container image signature" || p.Optional["build"] != "42" {
			t.Fatalf("payload %s", payload)
		}
		if layer.MediaType != CosignSimpleSigningMediaType || layer.Digest != digest.FromBytes(payload) || layer.Size != int64(len(payload)) {
			t.Fatalf("layer %+v", layer)
		}
		for _, a := range []string{CosignSignatureAnnotation, CosignCertificateAnnotation, CosignChainAnnotation} {
			if layer.Annotations[a] == "" {
				t.Errorf("annotation %s missing", a)
			}
		}
		f := VerifyCosign(ctx, layer, payload, nil, "sig#0")
		if !f.Verified || f.SignedDigest != target || len(f.Chain) != 2 || f.PublicKey != nil || f.Format != "cosign" {
			t.Fatalf("fact %+v", f)
		}
		d, err := k.policy.Evaluate("dev/app", target, "dev", []SignatureFact{f}, now)
		if err != nil || !d.Allowed {
			t.Fatalf("decision %+v, %v", d, err)
		}
		// The certificate's key is a key like any other for a keys: policy.
		d, err = keyPolicy(t, k.key.Public()).Evaluate("dev/app", target, "dev", []SignatureFact{f}, now)
		if err != nil || !d.Allowed {
			t.Fatalf("keys policy on a certificate signature: %+v, %v", d, err)
		}
	})

	t.Run("key only", func(t *testing.T) {
		key := newECKey(t)
		payload, layer := signCosignT(t, target, key, nil, nil)
		if _, ok := layer.Annotations[CosignCertificateAnnotation]; ok {
			t.Fatal("certificate annotation on a key-only signature")
		}
		if !bytes.Contains(payload, []byte(`"optional":null`)) {
			t.Errorf("payload without annotations should say optional null, as cosign's does: %s", payload)
		}
		other := newECKey(t)
		f := VerifyCosign(ctx, layer, payload, []crypto.PublicKey{other.Public(), key.Public()}, "sig#0")
		if !f.Verified || f.Chain != nil || !publicKeysEqual(key.Public(), f.PublicKey) {
			t.Fatalf("fact %+v", f)
		}
		d, err := keyPolicy(t, key.Public()).Evaluate("dev/app", target, "dev", []SignatureFact{f}, now)
		if err != nil || !d.Allowed {
			t.Fatalf("decision %+v, %v", d, err)
		}
		// Checked against the ci policy, which trusts certificates only.
		d, err = k.policy.Evaluate("dev/app", target, "dev", []SignatureFact{f}, now)
		if err != nil || d.Allowed {
			t.Fatalf("key-only signature satisfied a roots policy: %+v, %v", d, err)
		}
		for name, keys := range map[string][]crypto.PublicKey{"no keys": nil, "wrong key": {other.Public()}} {
			if f := VerifyCosign(ctx, layer, payload, keys, "sig#0"); f.Verified || f.Error == "" {
				t.Errorf("%s: %+v", name, f)
			}
		}
	})

	t.Run("replay", func(t *testing.T) {
		// A genuine signature of image B found under image A.
		other := notationTarget("image B").Digest
		payload, layer := signCosignT(t, other, k.key, k.chain, nil)
		f := VerifyCosign(ctx, layer, payload, nil, "sig#0")
		if !f.Verified || f.SignedDigest != other {
			t.Fatalf("fact %+v", f)
		}
		d, err := k.policy.Evaluate("dev/app", target, "dev", []SignatureFact{f}, now)
		if err != nil || d.Allowed || !strings.Contains(d.Signatures[0].Why, "not this image") {
			t.Fatalf("replayed signature: %+v, %v", d, err)
		}
	})

	t.Run("untrusted root", func(t *testing.T) {
		stranger := newNotationPKI(t) // another CA, same subject
		payload, layer := signCosignT(t, target, stranger.key, stranger.chain, nil)
		f := VerifyCosign(ctx, layer, payload, nil, "sig#0")
		if !f.Verified {
			t.Fatalf("fact %+v", f)
		}
		d, err := k.policy.Evaluate("dev/app", target, "dev", []SignatureFact{f}, now)
		if err != nil || d.Allowed || d.Signatures[0].Counted || !strings.Contains(d.Signatures[0].Why, "authority's roots") {
			t.Fatalf("signature from an untrusted root: %+v, %v", d, err)
		}
	})
}

func TestSignCosignErrors(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image A").Digest
	if _, _, err := SignCosign(ctx, cosignRef, "sha256:nope", k.key, k.chain, nil); err == nil {
		t.Error("bad digest accepted")
	}
	if _, _, err := SignCosign(ctx, "", target, k.key, k.chain, nil); err == nil {
		t.Error("empty reference accepted")
	}
	if _, _, err := SignCosign(ctx, cosignRef, target, k.otherKey, k.chain, nil); err == nil {
		t.Error("certificate of another key accepted")
	}
	huge := map[string]string{"x": strings.Repeat("a", MaxCosignPayloadBytes)}
	if _, _, err := SignCosign(ctx, cosignRef, target, k.key, k.chain, huge); err == nil {
		t.Error("oversized payload accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := SignCosign(cancelled, cosignRef, target, k.key, k.chain, nil); err == nil {
		t.Error("cancelled context ignored")
	}
}

// resign signs payload with key the way cosign does, for payloads
// SignCosign would not write.
func resign(t *testing.T, key crypto.Signer, payload []byte, layer v1.Descriptor) v1.Descriptor {
	t.Helper()
	s, err := signature.LoadSigner(key, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	l := layer
	l.Annotations = maps.Clone(layer.Annotations)
	l.Annotations[CosignSignatureAnnotation] = base64.StdEncoding.EncodeToString(sig)
	l.Digest, l.Size = digest.FromBytes(payload), int64(len(payload))
	return l
}

func TestVerifyCosignHostile(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image A").Digest
	payload, layer := signCosignT(t, target, k.key, k.chain, nil)
	keyOnlyPayload, keyOnlyLayer := signCosignT(t, target, k.key, nil, nil)
	withAnn := func(edit func(a map[string]string)) v1.Descriptor {
		l := layer
		l.Annotations = maps.Clone(layer.Annotations)
		edit(l.Annotations)
		return l
	}
	certPEM := layer.Annotations[CosignCertificateAnnotation]
	tampered := bytes.Replace(payload, []byte(target.Encoded()[:8]), []byte("00000000"), 1)
	valid := func(p string) []byte {
		return []byte(strings.Replace(p, "DIGEST", target.String(), 1))
	}

	cases := []struct {
		name    string
		layer   v1.Descriptor
		payload []byte
		keys    []crypto.PublicKey
		want    string
	}{
		{"tampered payload", func() v1.Descriptor { l := layer; l.Digest = digest.FromBytes(tampered); return l }(), tampered, nil, "does not verify"},
		{"payload not the layer's", layer, tampered, nil, "does not match the layer digest"},
		{"wrong key", keyOnlyLayer, keyOnlyPayload, []crypto.PublicKey{k.otherKey.Public()}, "none of the trust policy's 1"},
		{"key-only, no keys", keyOnlyLayer, keyOnlyPayload, nil, "no public keys"},
		{"certificate of another key", withAnn(func(a map[string]string) {
			other, _ := cryptoutils.MarshalCertificateToPEM(k.otherChain[0])
			a[CosignCertificateAnnotation] = string(other)
		}), payload, []crypto.PublicKey{k.key.Public()}, "certificate's key"},
		{"wrong media type", func() v1.Descriptor { l := layer; l.MediaType = "application/json"; return l }(), payload, nil, "media type"},
		{"no signature", withAnn(func(a map[string]string) { delete(a, CosignSignatureAnnotation) }), payload, nil, "no dev.cosignproject.cosign/signature"},
		{"empty signature", withAnn(func(a map[string]string) { a[CosignSignatureAnnotation] = "" }), payload, nil, "empty"},
		{"bad base64", withAnn(func(a map[string]string) { a[CosignSignatureAnnotation] = "!!not base64!!" }), payload, nil, "not base64"},
		{"url-safe base64", withAnn(func(a map[string]string) {
			a[CosignSignatureAnnotation] = strings.NewReplacer("+", "-", "/", "_").Replace(a[CosignSignatureAnnotation]) + "-_"
		}), payload, nil, "not base64"},
		{"huge signature", withAnn(func(a map[string]string) { a[CosignSignatureAnnotation] = strings.Repeat("A", 1<<20) }), payload, nil, "exceeds"},
		{"garbage certificate", withAnn(func(a map[string]string) {
			a[CosignCertificateAnnotation] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}), payload, nil, "certificate"},
		{"not PEM", withAnn(func(a map[string]string) { a[CosignCertificateAnnotation] = "hello" }), payload, nil, "certificate"},
		{"two leaves", withAnn(func(a map[string]string) { a[CosignCertificateAnnotation] = certPEM + certPEM }), payload, nil, "at most 1"},
		{"chain without certificate", withAnn(func(a map[string]string) { delete(a, CosignCertificateAnnotation) }), payload, nil, "without"},
		{"huge chain", withAnn(func(a map[string]string) { a[CosignChainAnnotation] = strings.Repeat(certPEM, 50) }), payload, nil, "at most 10"},
		{"huge certificate", withAnn(func(a map[string]string) { a[CosignCertificateAnnotation] = strings.Repeat("x", 10<<20) }), payload, nil, "too large"},
		{"huge payload", layer, bytes.Repeat([]byte(" "), MaxCosignPayloadBytes+1), nil, "exceeds"},
	}
	// Signed, but not a cosign payload naming a digest.
	for _, bad := range []struct{ name, payload, want string }{
		{"not JSON", `not json`, "malformed payload"},
		{"JSON array", `[]`, "malformed payload"},
		{"wrong type", `{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"DIGEST"},"type":"atomic container signature"},"optional":null}`, "critical.type"},
		{"no digest", `{"critical":{"identity":{"docker-reference":"r/a"},"image":{},"type":"cosign container image signature"},"optional":null}`, "docker-manifest-digest"},
		{"bad digest", `{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"sha256:abc"},"type":"cosign container image signature"},"optional":null}`, "docker-manifest-digest"},
		{"duplicate digest", `{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"DIGEST","docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}`, "duplicate key"},
		{"trailing data", `{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"DIGEST"},"type":"cosign container image signature"},"optional":null} {}`, "after the JSON"},
		{"deep nesting", `{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"DIGEST"},"type":"cosign container image signature"},"optional":{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}}`, "too deeply"},
	} {
		p := valid(bad.payload)
		cases = append(cases, struct {
			name    string
			layer   v1.Descriptor
			payload []byte
			keys    []crypto.PublicKey
			want    string
		}{bad.name, resign(t, k.key, p, layer), p, nil, bad.want})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := VerifyCosign(ctx, c.layer, c.payload, c.keys, "sig#0")
			if f.Verified || !strings.Contains(f.Error, c.want) {
				t.Fatalf("verified=%v error=%q, want unverified mentioning %q", f.Verified, f.Error, c.want)
			}
			if f.SignedDigest != "" || f.Chain != nil || f.PublicKey != nil {
				t.Fatalf("a failed fact reports what it did not verify: %+v", f)
			}
		})
	}
}

func TestAppendCosignSignature(t *testing.T) {
	k := newNotationPKI(t)
	target := notationTarget("image A").Digest
	_, l1 := signCosignT(t, target, k.key, k.chain, nil)
	_, l2 := signCosignT(t, target, k.key, k.chain, map[string]string{"n": "2"})

	m1, c1, added, err := AppendCosignSignature(nil, l1)
	if err != nil || !added {
		t.Fatal(err, added)
	}
	check := func(m, c []byte, want ...v1.Descriptor) {
		t.Helper()
		var man v1.Manifest
		if err := json.Unmarshal(m, &man); err != nil {
			t.Fatal(err)
		}
		if man.MediaType != v1.MediaTypeImageManifest || man.Config.Digest != digest.FromBytes(c) || man.Config.MediaType != v1.MediaTypeImageConfig {
			t.Fatalf("manifest %s", m)
		}
		if len(man.Layers) != len(want) {
			t.Fatalf("%d layers, want %d", len(man.Layers), len(want))
		}
		var cfg v1.Image
		if err := json.Unmarshal(c, &cfg); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if !sameDescriptor(man.Layers[i], want[i]) || cfg.RootFS.DiffIDs[i] != want[i].Digest {
				t.Fatalf("layer %d: %+v, want %+v", i, man.Layers[i], want[i])
			}
		}
	}
	check(m1, c1, l1)
	m2, c2, added, err := AppendCosignSignature(m1, l2)
	if err != nil || !added {
		t.Fatal(err, added)
	}
	check(m2, c2, l1, l2)
	// Signing the same thing twice (same bytes: an identical layer) adds nothing.
	m3, c3, added, err := AppendCosignSignature(m2, l1)
	if err != nil || added || !bytes.Equal(m3, m2) {
		t.Fatalf("duplicate layer: added=%v err=%v", added, err)
	}
	check(m3, c3, l1, l2)

	// A full manifest takes no more; garbage or an index under the tag is refused.
	full := m1
	for i := 1; i < MaxCosignLayers; i++ {
		l := l1
		l.Digest = digest.FromString(string(rune(i)))
		full, _, _, err = AppendCosignSignature(full, l)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
	}
	if _, _, _, err := AppendCosignSignature(full, l2); err == nil || !strings.Contains(err.Error(), "already has 100") {
		t.Errorf("101st signature: %v", err)
	}
	idx := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	for name, existing := range map[string][]byte{"garbage": []byte("{"), "index": idx} {
		if _, _, _, err := AppendCosignSignature(existing, l1); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPolicyPublicKeys(t *testing.T) {
	key := newECKey(t)
	p := keyPolicy(t, key.Public())
	keys := p.PublicKeys()
	if len(keys) != 1 || !publicKeysEqual(key.Public(), keys[0]) {
		t.Fatalf("keys %v", keys)
	}
	if k := newNotationPKI(t); len(k.policy.PublicKeys()) != 0 {
		t.Fatal("a roots-only policy has keys")
	}
}

func TestCosignSignatureTag(t *testing.T) {
	d := digest.FromString("x")
	if got := CosignSignatureTag(d); got != "sha256-"+d.Encoded()+".sig" {
		t.Fatal(got)
	}
}

// FuzzVerifyCosign feeds arbitrary payloads and annotations to the legacy
// verifier and the payload parser: they may refuse, never panic.
func FuzzVerifyCosign(f *testing.F) {
	k := newNotationPKI(f)
	payload, layer := signCosignT(f, notationTarget("image A").Digest, k.key, k.chain, map[string]string{"a": "b"})
	f.Add(payload, layer.Annotations[CosignSignatureAnnotation], layer.Annotations[CosignCertificateAnnotation], layer.Annotations[CosignChainAnnotation])
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"sha256:"}}}`), "", "", "")
	f.Add([]byte(`[[[[`), "AAAA", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----", "")
	keys := []crypto.PublicKey{k.key.Public()}
	f.Fuzz(func(t *testing.T, p []byte, sig, cert, chain string) {
		_, _ = parseSimpleSigning(p)
		l := v1.Descriptor{MediaType: CosignSimpleSigningMediaType, Digest: digest.FromBytes(p), Size: int64(len(p)),
			Annotations: map[string]string{CosignSignatureAnnotation: sig}}
		if cert != "" {
			l.Annotations[CosignCertificateAnnotation] = cert
		}
		if chain != "" {
			l.Annotations[CosignChainAnnotation] = chain
		}
		fact := VerifyCosign(context.Background(), l, p, keys, "fuzz")
		if fact.Verified && fact.SignedDigest == "" {
			t.Fatalf("verified without a digest: %+v", fact)
		}
		if strings.Contains(fact.Error, "panicked") {
			t.Fatalf("parser panicked: %s", fact.Error)
		}
	})
}

// BenchmarkVerifyCosign is BenchmarkVerifyNotation for a legacy cosign
// signature (ECDSA P-256, leaf and root in the annotations): verifying the
// layer and evaluating the trust policy over it.
func BenchmarkVerifyCosign(b *testing.B) {
	k := newNotationPKI(b)
	ctx := context.Background()
	target := notationTarget("manifest for the benchmark").Digest
	payload, layer := signCosignT(b, target, k.key, k.chain, nil)
	now := k.chain[0].NotBefore.Add(1)
	for b.Loop() {
		fact := VerifyCosign(ctx, layer, payload, nil, "sig#0")
		d, err := k.policy.Evaluate("dev/app", target, "dev", []SignatureFact{fact}, now)
		if err != nil || !d.Allowed {
			b.Fatalf("not allowed: %v %+v", err, d)
		}
	}
}
