package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// notationPKI is a CA with two leaves: ci (trusted by the test policy)
// and other (same CA and subject, different key), and a policy trusting ci.
type notationPKI struct {
	dir               string
	chain, otherChain []*x509.Certificate
	key, otherKey     crypto.Signer
	chainPEM, keyPEM  []byte
	policy            *Policy
	ca                *CA
}

const notationTestPolicy = `version: 1
authorities:
  - name: ci
    roots: [root.crt]
    identities: ["CN=ci, O=Example"]
environments:
  - name: dev
    repositories: ["dev/**"]
    require: [ci]
`

func newNotationPKI(t testing.TB) *notationPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := InitCA(CAOptions{Dir: dir, Organization: "Example"})
	if err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	k := &notationPKI{dir: dir, ca: ca}
	leaf := func(subject string) ([]*x509.Certificate, crypto.Signer, []byte, []byte) {
		n, err := ParseSubject(subject)
		if err != nil {
			t.Fatal(err)
		}
		chainPEM, keyPEM, err := ca.Issue(IssueRequest{Subject: n})
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		chain, err := ParseCertificates(chainPEM)
		if err != nil {
			t.Fatal(err)
		}
		key, err := ParsePrivateKey(keyPEM, nil)
		if err != nil {
			t.Fatal(err)
		}
		return chain, key, chainPEM, keyPEM
	}
	k.chain, k.key, k.chainPEM, k.keyPEM = leaf("C=US, ST=WA, O=Example, CN=ci")
	k.otherChain, k.otherKey, _, _ = leaf("C=US, ST=WA, O=Example, CN=ci")
	k.policy, err = ParsePolicy([]byte(notationTestPolicy), dir)
	if err != nil {
		t.Fatalf("ParsePolicy: %v", err)
	}
	return k
}

func notationTarget(s string) v1.Descriptor {
	b := []byte(s)
	return v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func notationFormats() []struct{ format, mediaType, name string } {
	return []struct{ format, mediaType, name string }{
		{"jws", NotationJWSMediaType, "notation-jws"},
		{"cose", NotationCOSEMediaType, "notation-cose"},
	}
}

func TestSignVerifyNotation(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("manifest A")
	for _, f := range notationFormats() {
		t.Run(f.format, func(t *testing.T) {
			env, mt, err := SignNotation(ctx, target, k.key, k.chain, map[string]string{"build": "42"}, f.format)
			if err != nil {
				t.Fatalf("SignNotation: %v", err)
			}
			if mt != f.mediaType {
				t.Fatalf("media type %q, want %q", mt, f.mediaType)
			}
			fact := VerifyNotation(ctx, env, mt, "sha256:sig")
			if !fact.Verified {
				t.Fatalf("not verified: %s", fact.Error)
			}
			if fact.SignedDigest != target.Digest || fact.Format != f.name || fact.Ref != "sha256:sig" {
				t.Fatalf("fact = %+v", fact)
			}
			if len(fact.Chain) != 2 || !fact.Chain[0].Equal(k.chain[0]) || !fact.Chain[1].Equal(k.chain[1]) {
				t.Fatalf("chain = %d certificates, want leaf + root", len(fact.Chain))
			}
			if d := time.Since(fact.SignedAt); d < 0 || d > time.Minute {
				t.Fatalf("SignedAt %v", fact.SignedAt)
			}

			// The signed payload and attributes are what the specification says.
			parsed, _ := signature.ParseEnvelope(mt, env)
			c, err := parsed.Content()
			if err != nil {
				t.Fatal(err)
			}
			if c.Payload.ContentType != NotationPayloadMediaType || c.SignerInfo.SignedAttributes.SigningScheme != signature.SigningSchemeX509 ||
				!strings.HasPrefix(c.SignerInfo.UnsignedAttributes.SigningAgent, "bulwark/") {
				t.Fatalf("content type %q, scheme %q, agent %q", c.Payload.ContentType,
					c.SignerInfo.SignedAttributes.SigningScheme, c.SignerInfo.UnsignedAttributes.SigningAgent)
			}
			var p struct {
				TargetArtifact map[string]any `json:"targetArtifact"`
			}
			if err := json.Unmarshal(c.Payload.Content, &p); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"mediaType": target.MediaType, "digest": target.Digest.String(),
				"size": float64(target.Size), "annotations": map[string]any{"build": "42"}}
			if g, _ := json.Marshal(p.TargetArtifact); string(g) != string(mustJSON(t, want)) {
				t.Fatalf("payload targetArtifact %s, want %s", g, mustJSON(t, want))
			}

			d, err := k.policy.Evaluate("dev/app", target.Digest, "", []SignatureFact{fact}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allowed || !d.Signatures[0].Counted {
				t.Fatalf("not allowed: %s; %+v", d.Reason, d.Signatures)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignNotationErrors(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("m")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		target v1.Descriptor
		key    crypto.PrivateKey
		chain  []*x509.Certificate
		format string
		want   string
	}{
		{"unknown format", ctx, target, k.key, k.chain, "pgp", "unknown Notary Project signature format"},
		{"key not the leaf's", ctx, target, k.otherKey, k.chain, "jws", "key"},
		{"no chain", ctx, target, k.key, nil, "cose", "no certificate chain"},
		{"bad digest", ctx, v1.Descriptor{MediaType: "x", Digest: "sha256:zz", Size: 1}, k.key, k.chain, "", "digest"},
		{"no media type", ctx, v1.Descriptor{Digest: target.Digest, Size: 1}, k.key, k.chain, "", "media type"},
		{"cancelled", cancelled, target, k.key, k.chain, "", "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := SignNotation(tt.ctx, tt.target, tt.key, tt.chain, nil, tt.format)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// signRaw makes an envelope with full control of the payload and
// attributes, for payloads SignNotation would never produce.
func signRaw(t *testing.T, mediaType string, key crypto.Signer, chain []*x509.Certificate, contentType string, payload []byte, scheme signature.SigningScheme) []byte {
	t.Helper()
	signer, err := signature.NewLocalSigner(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	env, err := signature.NewEnvelope(mediaType)
	if err != nil {
		t.Fatal(err)
	}
	out, err := env.Sign(&signature.SignRequest{Payload: signature.Payload{ContentType: contentType, Content: payload},
		Signer: signer, SigningTime: time.Now().Truncate(time.Second), SigningScheme: scheme, SigningAgent: "test"})
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return out
}

// signPayload signs payload bytes exactly as given. notation-core-go
// re-encodes a JWS payload when signing (which drops duplicate keys), so
// for JWS the compact signature is made here over the envelope's own
// protected header.
func signPayload(t *testing.T, mediaType string, k *notationPKI, payload []byte) []byte {
	t.Helper()
	if mediaType == NotationCOSEMediaType {
		return signRaw(t, mediaType, k.key, k.chain, NotationPayloadMediaType, payload, signature.SigningSchemeX509)
	}
	good := signRaw(t, mediaType, k.key, k.chain, NotationPayloadMediaType, []byte(`{"targetArtifact":{}}`), signature.SigningSchemeX509)
	return editJWS(t, good, func(m map[string]any) {
		m["payload"] = base64.RawURLEncoding.EncodeToString(payload)
		h := sha256.Sum256([]byte(m["protected"].(string) + "." + m["payload"].(string)))
		r, s, err := ecdsa.Sign(rand.Reader, k.key.(*ecdsa.PrivateKey), h[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		m["signature"] = base64.RawURLEncoding.EncodeToString(sig)
	})
}

// editJWS changes a JWS envelope's JSON fields.
func editJWS(t *testing.T, env []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	return mustJSON(t, m)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func flipByte(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

func TestVerifyNotationHostile(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("manifest A")
	other := notationTarget("manifest B")

	type hostile struct {
		name      string
		env       []byte
		mediaType string
		why       string // substring of the Evaluate reason for the signature
	}
	var cases []hostile
	for _, f := range notationFormats() {
		mt := f.mediaType
		env, _, err := SignNotation(ctx, target, k.key, k.chain, nil, f.format)
		if err != nil {
			t.Fatal(err)
		}
		replay, _, err := SignNotation(ctx, other, k.key, k.chain, nil, f.format)
		if err != nil {
			t.Fatal(err)
		}
		goodPayload := string(mustJSON(t, map[string]any{"targetArtifact": target}))
		dupPayload := `{"targetArtifact":` + string(mustJSON(t, other)) + `,"targetArtifact":` + string(mustJSON(t, target)) + `}`
		dupInner := strings.Replace(goodPayload, `"digest":`, `"digest":"`+other.Digest.String()+`","digest":`, 1)
		huge := append(bytes.Clone(env), bytes.Repeat([]byte(" "), MaxNotationEnvelopeBytes)...)
		cases = append(cases,
			hostile{f.format + ": replayed from another image", replay, mt, "signature is for " + other.Digest.String() + ", not this image"},
			hostile{f.format + ": truncated", env[:len(env)/2], mt, "malformed"},
			hostile{f.format + ": garbage", []byte("\x00garbage{"), mt, "malformed"},
			hostile{f.format + ": empty", nil, mt, "empty envelope"},
			hostile{f.format + ": huge", huge, mt, "more than the"},
			hostile{f.format + ": wrong media type", env, "application/json", "envelope media type"},
			hostile{f.format + ": duplicate targetArtifact", signPayload(t, mt, k, []byte(dupPayload)), mt, "duplicate key"},
			hostile{f.format + ": duplicate digest", signPayload(t, mt, k, []byte(dupInner)), mt, "duplicate key"},
			hostile{f.format + ": payload type not Notary", signRaw(t, mt, k.key, k.chain, "application/json", []byte(goodPayload), signature.SigningSchemeX509), mt, "payload content type"},
			hostile{f.format + ": no digest in payload", signRaw(t, mt, k.key, k.chain, NotationPayloadMediaType, []byte(`{"targetArtifact":{"mediaType":"x","size":1}}`), signature.SigningSchemeX509), mt, "digest"},
		)
		// The other media type's parser on this envelope.
		otherMT := NotationCOSEMediaType
		if mt == NotationCOSEMediaType {
			otherMT = NotationJWSMediaType
		}
		cases = append(cases, hostile{f.format + ": parsed as the other format", env, otherMT, "malformed"})
	}

	// JWS: edit the JSON serialization.
	jwsEnv, _, err := SignNotation(ctx, target, k.key, k.chain, nil, "jws")
	if err != nil {
		t.Fatal(err)
	}
	otherDER := make([]any, len(k.otherChain))
	for i, c := range k.otherChain {
		otherDER[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	cases = append(cases,
		hostile{"jws: tampered payload", editJWS(t, jwsEnv, func(m map[string]any) {
			m["payload"] = b64(string(mustJSON(t, map[string]any{"targetArtifact": other})))
		}), NotationJWSMediaType, "signature does not verify"},
		hostile{"jws: tampered signature", editJWS(t, jwsEnv, func(m map[string]any) {
			sig, _ := base64.RawURLEncoding.DecodeString(m["signature"].(string))
			m["signature"] = base64.RawURLEncoding.EncodeToString(flipByte(sig, len(sig)/2))
		}), NotationJWSMediaType, "signature does not verify"},
		hostile{"jws: key A, certificate B", editJWS(t, jwsEnv, func(m map[string]any) {
			m["header"].(map[string]any)["x5c"] = otherDER
		}), NotationJWSMediaType, "signature does not verify"},
		hostile{"jws: duplicate payload member", bytes.Replace(jwsEnv, []byte(`{`),
			[]byte(`{"payload":"`+b64(string(mustJSON(t, map[string]any{"targetArtifact": other})))+`",`), 1), NotationJWSMediaType, "duplicate key"},
	)

	// COSE: flip bytes in place; the payload and certificates are
	// embedded as raw byte strings.
	coseEnv, _, err := SignNotation(ctx, target, k.key, k.chain, nil, "cose")
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(coseEnv, []byte(target.Digest.Encoded()))
	if at < 0 {
		t.Fatal("payload digest not found in the COSE envelope")
	}
	tamperedPayload := bytes.Clone(coseEnv)
	copy(tamperedPayload[at:], other.Digest.Encoded())
	leafAt := bytes.Index(coseEnv, k.chain[0].Raw)
	if leafAt < 0 {
		t.Fatal("leaf certificate not found in the COSE envelope")
	}
	cases = append(cases,
		hostile{"cose: tampered payload", tamperedPayload, NotationCOSEMediaType, "signature does not verify"},
		hostile{"cose: tampered signature", flipByte(coseEnv, len(coseEnv)-2), NotationCOSEMediaType, "signature does not verify"},
		hostile{"cose: tampered leaf certificate", flipByte(coseEnv, leafAt+len(k.chain[0].Raw)-3), NotationCOSEMediaType, ""},
	)
	// Splicing certificate B over A in place needs B's DER to be as long
	// as A's (ECDSA signature lengths vary by a byte or two): issue until
	// one is.
	certB := k.otherChain[0]
	for i := 0; len(certB.Raw) != len(k.chain[0].Raw); i++ {
		if i == 50 {
			t.Fatal("no same-length certificate in 50 issues")
		}
		chainPEM, _, err := k.ca.Issue(IssueRequest{Subject: k.chain[0].Subject})
		if err != nil {
			t.Fatal(err)
		}
		chain, err := ParseCertificates(chainPEM)
		if err != nil {
			t.Fatal(err)
		}
		certB = chain[0]
	}
	swapped := bytes.Clone(coseEnv)
	copy(swapped[leafAt:], certB.Raw)
	cases = append(cases, hostile{"cose: key A, certificate B", swapped, NotationCOSEMediaType, "signature does not verify"})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fact := VerifyNotation(ctx, c.env, c.mediaType, "ref")
			d, err := k.policy.Evaluate("dev/app", target.Digest, "dev", []SignatureFact{fact}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed || d.Signatures[0].Counted {
				t.Fatalf("counted: %+v", d.Signatures[0])
			}
			if !strings.Contains(d.Signatures[0].Why, c.why) {
				t.Fatalf("why = %q, want %q", d.Signatures[0].Why, c.why)
			}
			if !fact.Verified && (fact.SignedDigest != "" || fact.Chain != nil || !fact.SignedAt.IsZero() || fact.Error == "") {
				t.Fatalf("an unverified fact reports content: %+v", fact)
			}
		})
	}
}

func TestNotationSignatureManifest(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("manifest A")
	for _, f := range notationFormats() {
		t.Run(f.format, func(t *testing.T) {
			env, mt, err := SignNotation(ctx, target, k.key, k.chain, nil, f.format)
			if err != nil {
				t.Fatal(err)
			}
			raw, envDesc, err := NotationSignatureManifest(target, env, mt)
			if err != nil {
				t.Fatal(err)
			}
			if envDesc.Digest != digest.FromBytes(env) || envDesc.Size != int64(len(env)) || envDesc.MediaType != mt {
				t.Fatalf("envelope descriptor %+v", envDesc)
			}
			var m v1.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			fact := VerifyNotation(ctx, env, mt, "")
			thumbs, _ := json.Marshal([]string{
				digest.FromBytes(k.chain[0].Raw).Encoded(), digest.FromBytes(k.chain[1].Raw).Encoded()})
			switch {
			case m.SchemaVersion != 2 || m.MediaType != v1.MediaTypeImageManifest || m.ArtifactType != NotationArtifactType:
				t.Fatalf("manifest header: %s", raw)
			case m.Config.MediaType != NotationArtifactType || m.Config.Digest != v1.DescriptorEmptyJSON.Digest || m.Config.Size != 2:
				t.Fatalf("config %+v", m.Config)
			case len(m.Layers) != 1 || m.Layers[0].Digest != envDesc.Digest || m.Layers[0].MediaType != mt:
				t.Fatalf("layers %+v", m.Layers)
			case m.Subject == nil || m.Subject.Digest != target.Digest || m.Subject.Size != target.Size || m.Subject.MediaType != target.MediaType:
				t.Fatalf("subject %+v", m.Subject)
			case m.Annotations[AnnotationNotationThumbprints] != string(thumbs):
				t.Fatalf("thumbprints %q, want %q", m.Annotations[AnnotationNotationThumbprints], thumbs)
			case m.Annotations[v1.AnnotationCreated] != fact.SignedAt.UTC().Format(time.RFC3339):
				t.Fatalf("created %q, signed at %v", m.Annotations[v1.AnnotationCreated], fact.SignedAt)
			}
		})
	}
	if _, _, err := NotationSignatureManifest(target, []byte("junk"), NotationJWSMediaType); err == nil {
		t.Fatal("manifest for a junk envelope")
	}
}

func TestRejectDuplicateKeys(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{"a":1,"b":{"a":2}}`, true},
		{`[{"a":1},{"a":1}]`, true},
		{`{"a":1,"a":1}`, false},
		{`{"a":{"b":1,"b":2}}`, false},
		{`{"a":1} {}`, false},
		{`{"a":`, false},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), false},
	}
	for _, tt := range tests {
		if err := rejectDuplicateKeys([]byte(tt.in)); (err == nil) != tt.ok {
			t.Errorf("rejectDuplicateKeys(%.30q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func FuzzVerifyNotation(f *testing.F) {
	dir := f.TempDir()
	ca, err := InitCA(CAOptions{Dir: dir, Organization: "Example"})
	if err != nil {
		f.Fatal(err)
	}
	n, _ := ParseSubject("C=US, ST=WA, O=Example, CN=ci")
	chainPEM, keyPEM, err := ca.Issue(IssueRequest{Subject: n})
	if err != nil {
		f.Fatal(err)
	}
	chain, _ := ParseCertificates(chainPEM)
	key, _ := ParsePrivateKey(keyPEM, nil)
	for _, format := range []string{"jws", "cose"} {
		env, _, err := SignNotation(context.Background(), notationTarget("x"), key, chain, nil, format)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(env, format == "cose")
	}
	f.Add([]byte(`{"payload":"","protected":"","header":{},"signature":""}`), false)
	f.Fuzz(func(t *testing.T, env []byte, isCOSE bool) {
		mt := NotationJWSMediaType
		if isCOSE {
			mt = NotationCOSEMediaType
		}
		fact := VerifyNotation(context.Background(), env, mt, "r")
		if fact.Verified && (fact.SignedDigest.Validate() != nil || len(fact.Chain) == 0) {
			t.Fatalf("verified without a digest or chain: %+v", fact)
		}
	})
}

// writeFile is a test helper for the interop test.
func writeNotationFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// notationBinary finds the notation CLI: $NOTATION_BIN, else the copy
// built for interop tests. Under CI a missing binary is a failure, so the
// interop check cannot silently stop running.
func notationBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("NOTATION_BIN"), "/tmp/interop/bin/notation"} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("notation CLI not found: set NOTATION_BIN or build it with " +
			"`GOBIN=/tmp/interop/bin go install github.com/notaryproject/notation/cmd/notation@v1.3.2`")
	}
	t.Skip("notation CLI not found (NOTATION_BIN or /tmp/interop/bin/notation)")
	return ""
}

// ociLayout is a minimal OCI image layout holding one image, which
// `notation sign/verify --oci-layout` (experimental in v1.3) work on
// offline. notation v1.3 has no `blob` commands.
type ociLayout struct {
	dir    string
	target v1.Descriptor
}

func (l *ociLayout) putBlob(t *testing.T, b []byte) digest.Digest {
	d := digest.FromBytes(b)
	writeNotationFile(t, filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded()), b)
	return d
}

func (l *ociLayout) index(t *testing.T) v1.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func (l *ociLayout) writeIndex(t *testing.T, idx v1.Index) {
	t.Helper()
	writeNotationFile(t, filepath.Join(l.dir, "index.json"), mustJSON(t, idx))
}

func newOCILayout(t *testing.T) *ociLayout {
	t.Helper()
	l := &ociLayout{dir: filepath.Join(t.TempDir(), "layout")}
	writeNotationFile(t, filepath.Join(l.dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("not really a tarball")
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: l.putBlob(t, cfg), Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: l.putBlob(t, layer), Size: int64(len(layer))}}}
	m.SchemaVersion = 2
	raw := mustJSON(t, m)
	l.target = v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: l.putBlob(t, raw), Size: int64(len(raw))}
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{l.target}}
	idx.SchemaVersion = 2
	l.writeIndex(t, idx)
	return l
}

func TestNotationCLIInterop(t *testing.T) {
	bin := notationBinary(t)
	k := newNotationPKI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// notation's configuration: the bulwark root in a trust store, a
	// trust policy for scope local/app, and the bulwark-issued key as a
	// local signing key. Revocation is skipped: the leaf names no CRL or
	// OCSP location, and bulwark checks its CRLs in Policy.Evaluate.
	cfg := t.TempDir()
	notationDir := filepath.Join(cfg, "notation")
	root, err := os.ReadFile(filepath.Join(k.dir, RootCertFile))
	if err != nil {
		t.Fatal(err)
	}
	writeNotationFile(t, filepath.Join(notationDir, "truststore", "x509", "ca", "bulwark", "root.crt"), root)
	writeNotationFile(t, filepath.Join(notationDir, "trustpolicy.json"), []byte(`{
  "version": "1.0",
  "trustPolicies": [{
    "name": "bulwark",
    "registryScopes": ["local/app"],
    "signatureVerification": {"level": "strict", "override": {"revocation": "skip"}},
    "trustStores": ["ca:bulwark"],
    "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Example, CN=ci"]
  }]
}`))
	keyPath, certPath := filepath.Join(cfg, "ci.key"), filepath.Join(cfg, "ci.crt")
	writeNotationFile(t, keyPath, k.keyPEM)
	writeNotationFile(t, certPath, k.chainPEM)
	writeNotationFile(t, filepath.Join(notationDir, "signingkeys.json"), mustJSON(t, map[string]any{
		"default": "ci", "keys": []map[string]string{{"name": "ci", "keyPath": keyPath, "certPath": certPath}}}))

	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfg, "XDG_CACHE_HOME="+filepath.Join(cfg, "cache"),
			"HOME="+cfg, "NOTATION_EXPERIMENTAL=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	for _, f := range notationFormats() {
		t.Run("notation verifies bulwark "+f.format, func(t *testing.T) {
			l := newOCILayout(t)
			env, mt, err := SignNotation(ctx, l.target, k.key, k.chain, map[string]string{"by": "bulwark"}, f.format)
			if err != nil {
				t.Fatal(err)
			}
			raw, envDesc, err := NotationSignatureManifest(l.target, env, mt)
			if err != nil {
				t.Fatal(err)
			}
			if l.putBlob(t, env) != envDesc.Digest {
				t.Fatal("envelope descriptor does not match the envelope")
			}
			l.putBlob(t, v1.DescriptorEmptyJSON.Data)
			sigDesc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, ArtifactType: NotationArtifactType,
				Digest: l.putBlob(t, raw), Size: int64(len(raw))}
			idx := l.index(t)
			idx.Manifests = append(idx.Manifests, sigDesc)
			l.writeIndex(t, idx)

			ref := l.dir + "@" + l.target.Digest.String()
			out, err := run("verify", "--oci-layout", "--scope", "local/app", ref)
			if err != nil {
				t.Fatalf("notation verify: %v\n%s", err, out)
			}
			if !strings.Contains(out, "Successfully verified") {
				t.Fatalf("notation verify said:\n%s", out)
			}
			t.Logf("notation verify: %s", strings.TrimSpace(out))

			// And a signature for another image, attached to this one,
			// is refused by notation too.
			other := notationTarget("another image")
			env2, _, err := SignNotation(ctx, other, k.key, k.chain, nil, f.format)
			if err != nil {
				t.Fatal(err)
			}
			l2 := newOCILayout(t)
			raw2, _, err := NotationSignatureManifest(l2.target, env2, mt)
			if err != nil {
				t.Fatal(err)
			}
			l2.putBlob(t, env2)
			l2.putBlob(t, v1.DescriptorEmptyJSON.Data)
			idx2 := l2.index(t)
			idx2.Manifests = append(idx2.Manifests, v1.Descriptor{MediaType: v1.MediaTypeImageManifest,
				ArtifactType: NotationArtifactType, Digest: l2.putBlob(t, raw2), Size: int64(len(raw2))})
			l2.writeIndex(t, idx2)
			if out, err := run("verify", "--oci-layout", "--scope", "local/app", l2.dir+"@"+l2.target.Digest.String()); err == nil || !strings.Contains(out, "signature verification failed") {
				t.Fatalf("notation on a replayed signature: %v\n%s", err, out)
			} else {
				t.Logf("notation verify, replayed signature: %s", strings.TrimSpace(out))
			}
		})

		t.Run("bulwark verifies notation "+f.format, func(t *testing.T) {
			l := newOCILayout(t)
			ref := l.dir + "@" + l.target.Digest.String()
			out, err := run("sign", "--oci-layout", "--key", "ci", "--signature-format", f.format, ref)
			if err != nil {
				t.Fatalf("notation sign: %v\n%s", err, out)
			}
			var found int
			for _, d := range l.index(t).Manifests {
				if d.Digest == l.target.Digest {
					continue
				}
				raw, err := os.ReadFile(filepath.Join(l.dir, "blobs", "sha256", d.Digest.Encoded()))
				if err != nil {
					t.Fatal(err)
				}
				var m v1.Manifest
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatal(err)
				}
				if m.Config.MediaType != NotationArtifactType || m.Subject == nil || m.Subject.Digest != l.target.Digest || len(m.Layers) != 1 {
					t.Fatalf("unexpected signature manifest from notation: %s", raw)
				}
				env, err := os.ReadFile(filepath.Join(l.dir, "blobs", "sha256", m.Layers[0].Digest.Encoded()))
				if err != nil {
					t.Fatal(err)
				}
				fact := VerifyNotation(ctx, env, m.Layers[0].MediaType, d.Digest.String())
				if !fact.Verified || fact.SignedDigest != l.target.Digest || fact.Format != f.name {
					t.Fatalf("VerifyNotation on notation's envelope: %+v", fact)
				}
				dec, err := k.policy.Evaluate("dev/app", l.target.Digest, "", []SignatureFact{fact}, time.Now())
				if err != nil || !dec.Allowed {
					t.Fatalf("Evaluate: %v %s", err, dec.Reason)
				}
				// Our manifest builder agrees with notation's on what it
				// can reproduce.
				ours, _, err := NotationSignatureManifest(l.target, env, m.Layers[0].MediaType)
				if err != nil {
					t.Fatal(err)
				}
				var om v1.Manifest
				if err := json.Unmarshal(ours, &om); err != nil {
					t.Fatal(err)
				}
				for _, a := range []string{AnnotationNotationThumbprints, v1.AnnotationCreated} {
					if om.Annotations[a] != m.Annotations[a] {
						t.Errorf("annotation %s: ours %q, notation's %q", a, om.Annotations[a], m.Annotations[a])
					}
				}
				if om.Config.Digest != m.Config.Digest || om.Subject.Digest != m.Subject.Digest || om.Layers[0].Digest != m.Layers[0].Digest {
					t.Errorf("config or subject differ: ours %s, notation's %s", ours, raw)
				}
				t.Logf("notation's signature manifest: %s", raw)
				found++
			}
			if found != 1 {
				t.Fatalf("%d signature manifests in the layout, want 1", found)
			}
		})
	}
}
