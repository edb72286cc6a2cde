package trust

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	policyDigest = digest.FromString("image A")
	otherDigest  = digest.FromString("image B")
)

// evalPolicy exercises every rule: ci and security as in the docs, an
// authority matched by URI, one with a narrow scope, a raw key, and one
// whose CRL is out of date.
const evalPolicy = `version: 1
authorities:
  - name: ci
    roots: [ca/root.crt]
    identities: ["C=US, ST=WA, O=Example, CN=ci"]
    crls: [ca/root.crl]
  - name: security
    roots: [ca/root.crt]
    identities: ["CN=security, O=Example"]
    crls: [ca/root.crl]
  - name: pipeline
    roots: [ca/root.crt]
    uris: ["https://ci.example.com/pipelines/*"]
  - name: vendor
    roots: [ca/root.crt]
    identities: ["CN=other"]
    repositories: ["vendor/**"]
  - name: release
    keys: [keys/release.pub]
    repositories: ["prod/**"]
  - name: stale
    roots: [ca/root.crt]
    identities: ["CN=ci"]
    crls: [ca/stale.crl]
environments:
  - name: dev
    repositories: ["dev/**"]
    require: [ci]
  - name: prod
    repositories: ["prod/**"]
    require: {threshold: 2, of: [ci, security]}
  - name: pipeline
    repositories: ["dev/**"]
    require: [pipeline]
  - name: vendor
    repositories: ["prod/**", "vendor/**"]
    require: [vendor]
  - name: keyed
    repositories: ["prod/**", "dev/**"]
    require: [release]
  - name: stale
    repositories: ["stale/**"]
    require: [stale]
  - name: solo
    repositories: ["solo/**"]
    require: [ci]
`

func certSig(ref string, chain ...*x509.Certificate) SignatureFact {
	return SignatureFact{Format: "notation-jws", Ref: ref, SignedDigest: policyDigest, Verified: true,
		Chain: chain, SignedAt: policyNow.Add(-time.Hour)}
}

func keySig(ref string, k crypto.PublicKey) SignatureFact {
	return SignatureFact{Format: "cosign", Ref: ref, SignedDigest: policyDigest, Verified: true, PublicKey: k}
}

// sigWant is what one SignatureResult must say.
type sigWant struct {
	authority string
	counted   bool
	why       string // substring
}

func TestEvaluate(t *testing.T) {
	k := newPolicyPKI(t)
	p := k.load(t, evalPolicy)

	with := func(s SignatureFact, edit func(*SignatureFact)) SignatureFact { edit(&s); return s }
	tests := []struct {
		name      string
		repo, env string
		sigs      []SignatureFact
		allowed   bool
		satisfied string // comma-joined
		reason    string // substring
		want      []sigWant
	}{
		{"dev with ci", "dev/app", "dev", []SignatureFact{certSig("s1", k.ci)}, true, "ci", "satisfied: all of [ci]",
			[]sigWant{{"ci", true, "counted for authority ci"}}},
		{"prod with ci only", "prod/app", "prod", []SignatureFact{certSig("s1", k.ci)}, false, "ci",
			"not satisfied: 2 of [ci security]: 1 of 2 required authorities counted (ci); missing security",
			[]sigWant{{"ci", true, "counted"}}},
		{"prod with ci and security", "prod/app", "prod", []SignatureFact{certSig("s1", k.ci), certSig("s2", k.security)}, true, "ci,security", "counted ci, security",
			[]sigWant{{"ci", true, ""}, {"security", true, ""}}},
		{"prod with ci twice", "prod/app", "prod", []SignatureFact{certSig("s1", k.ci), certSig("s2", k.ci)}, false, "ci", "1 of 2 required authorities counted (ci)",
			[]sigWant{{"ci", true, ""}, {"ci", false, "already counted by signature s1: each authority counts once"}}},
		{"prod with nothing", "prod/app", "prod", nil, false, "", "missing ci, security; no signatures found", nil},
		{"nil certificate in the chain", "dev/app", "dev", []SignatureFact{certSig("s1", nil, k.inter)}, false, "", "", nil},
		{"nil leaf after a good signature", "dev/app", "dev", []SignatureFact{certSig("s1", k.ci), certSig("s2", k.ci, nil)}, true, "ci", "",
			[]sigWant{{"ci", true, ""}, {"", false, "malformed signature facts: empty certificate in the chain"}}},
		{"replayed from another image", "dev/app", "dev",
			[]SignatureFact{with(certSig("s1", k.ci), func(s *SignatureFact) { s.SignedDigest = otherDigest })}, false, "", "missing ci",
			[]sigWant{{"", false, "signature is for " + otherDigest.String() + ", not this image"}}},
		{"unverified", "dev/app", "dev",
			[]SignatureFact{with(certSig("s1", k.ci), func(s *SignatureFact) { s.Verified, s.Error = false, "ecdsa: bad signature" })}, false, "", "missing ci",
			[]sigWant{{"", false, "cryptographic verification failed: ecdsa: bad signature"}}},
		{"wrong identity", "dev/app", "dev", []SignatureFact{certSig("s1", k.other)}, false, "", "missing ci",
			[]sigWant{{"", false, `ci: identity "C=US, ST=WA, O=Example, CN=other" is not one of the authority's identities`}}},
		{"untrusted root", "dev/app", "dev", []SignatureFact{certSig("s1", k.untrusted, k.untrustedRoot)}, false, "", "",
			[]sigWant{{"", false, "ci: certificate chain does not lead to one of the authority's roots"}}},
		{"no code-signing EKU", "dev/app", "dev", []SignatureFact{certSig("s1", k.noEKU)}, false, "", "",
			[]sigWant{{"", false, "lacks the code-signing extended key usage"}}},
		{"no digital-signature key usage", "dev/app", "dev", []SignatureFact{certSig("s1", k.noDigitalSignature)}, false, "", "",
			[]sigWant{{"", false, "lacks the digital-signature key usage"}}},
		{"CA certificate as signer", "dev/app", "dev", []SignatureFact{certSig("s1", k.caLeaf)}, false, "", "",
			[]sigWant{{"", false, "signing certificate is a CA certificate"}}},
		{"expired", "dev/app", "dev",
			[]SignatureFact{with(certSig("s1", k.expired), func(s *SignatureFact) { s.SignedAt = k.now.Add(-30 * 24 * time.Hour) })}, false, "", "",
			[]sigWant{{"", false, "expired at " + k.expired.NotAfter.UTC().Format(time.RFC3339)}}},
		{"revoked", "dev/app", "dev", []SignatureFact{certSig("s1", k.revoked)}, false, "", "",
			[]sigWant{{"", false, "is revoked by CRL ca/root.crl"}}},
		{"revoked after signing", "dev/app", "dev",
			[]SignatureFact{with(certSig("s1", k.revoked), func(s *SignatureFact) { s.SignedAt = k.revokedAt.Add(-10 * 24 * time.Hour) })}, false, "", "",
			[]sigWant{{"", false, "is revoked by CRL ca/root.crl"}}},
		{"out-of-date CRL fails closed", "stale/app", "stale", []SignatureFact{certSig("s1", k.ci)}, false, "", "",
			[]sigWant{{"ci", false, "which environment stale does not require (all of [stale]); matches no required authority: stale: CRL ca/stale.crl is out of date"}}},
		{"signed outside the certificate's validity", "dev/app", "dev",
			[]SignatureFact{with(certSig("s1", k.ci), func(s *SignatureFact) { s.SignedAt = k.ci.NotBefore.Add(-time.Hour) })}, false, "", "",
			[]sigWant{{"", false, "was not valid at the signing time"}}},
		{"no signing time: checked now only", "dev/app", "dev",
			[]SignatureFact{with(certSig("s1", k.ci), func(s *SignatureFact) { s.SignedAt = time.Time{} })}, true, "ci", "",
			[]sigWant{{"ci", true, ""}}},
		{"authority outside its scope", "prod/app", "vendor", []SignatureFact{certSig("s1", k.other)}, false, "", "",
			[]sigWant{{"", false, `vendor: authority signing outside its scope: "prod/app" is not in its repositories (vendor/**)`}}},
		{"authority inside its scope", "vendor/app", "vendor", []SignatureFact{certSig("s1", k.other)}, true, "vendor", "",
			[]sigWant{{"vendor", true, ""}}},
		{"chain through an intermediate", "dev/app", "dev", []SignatureFact{certSig("s1", k.interLeaf, k.inter)}, true, "ci", "",
			[]sigWant{{"ci", true, ""}}},
		{"intermediate missing from the chain", "dev/app", "dev", []SignatureFact{certSig("s1", k.interLeaf)}, false, "", "",
			[]sigWant{{"", false, "does not lead to one of the authority's roots"}}},
		{"uri identity", "dev/app", "pipeline", []SignatureFact{certSig("s1", k.pipeline)}, true, "pipeline", "",
			[]sigWant{{"pipeline", true, ""}}},
		{"uri identity, certificate without the uri", "dev/app", "pipeline", []SignatureFact{certSig("s1", k.ci)}, false, "", "",
			[]sigWant{{"ci", false, `pipeline: identity "C=US, ST=WA, O=Example, CN=ci" is not one of the authority's identities (uri "https://ci.example.com/pipelines/*")`}}},
		{"authority the environment does not require", "dev/app", "dev", []SignatureFact{certSig("s1", k.security)}, false, "", "missing ci",
			[]sigWant{{"security", false, "valid signature of authority security, which environment dev does not require (all of [ci]); matches no required authority: ci: identity"}}},
		{"key authority, matching key", "prod/app", "keyed", []SignatureFact{keySig("s1", k.releaseKey)}, true, "release", "",
			[]sigWant{{"release", true, ""}}},
		{"key authority, other key", "prod/app", "keyed", []SignatureFact{keySig("s1", k.strangerKey)}, false, "", "",
			[]sigWant{{"", false, "release: key " + keyFingerprint(k.strangerKey) + " is not one of the authority's keys"}}},
		{"key authority outside its scope", "dev/app", "keyed", []SignatureFact{keySig("s1", k.releaseKey)}, false, "", "",
			[]sigWant{{"", false, "authority signing outside its scope"}}},
		{"certificate authority, key signature", "dev/app", "dev", []SignatureFact{keySig("s1", k.releaseKey)}, false, "", "",
			[]sigWant{{"", false, "ci: no certificate in the signature"}}},
		{"environment not covering the repository", "dev/app", "prod", []SignatureFact{certSig("s1", k.ci), certSig("s2", k.security)}, false, "ci,security",
			`environment "prod" does not cover repository "dev/app" (it covers prod/**)`, nil},
		{"no environment named, one covers", "solo/app", "", []SignatureFact{certSig("s1", k.ci)}, true, "ci", "", nil},
		{"no environment named, none covers", "elsewhere/app", "", []SignatureFact{certSig("s1", k.ci)}, false, "",
			`no environment covers repository "elsewhere/app"`, []sigWant{{"", false, "not evaluated"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Evaluate(tc.repo, policyDigest, tc.env, tc.sigs, k.now)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if d.Allowed != tc.allowed {
				t.Errorf("Allowed = %v, want %v (reason %q)", d.Allowed, tc.allowed, d.Reason)
			}
			if got := strings.Join(d.Satisfied, ","); got != tc.satisfied {
				t.Errorf("Satisfied = %q, want %q", got, tc.satisfied)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Reason = %q, want it to contain %q", d.Reason, tc.reason)
			}
			if len(d.Signatures) != len(tc.sigs) {
				t.Fatalf("%d signature results for %d signatures", len(d.Signatures), len(tc.sigs))
			}
			for i, w := range tc.want {
				r := d.Signatures[i]
				if r.Ref != tc.sigs[i].Ref || r.Format != tc.sigs[i].Format || r.Signer == "" {
					t.Errorf("signature %d: ref %q format %q signer %q do not describe the input", i, r.Ref, r.Format, r.Signer)
				}
				if r.Authority != w.authority || r.Counted != w.counted || !strings.Contains(r.Why, w.why) {
					t.Errorf("signature %d = {authority %q counted %v why %q}, want {%q %v %q}", i, r.Authority, r.Counted, r.Why, w.authority, w.counted, w.why)
				}
			}
		})
	}
}

// TestEvaluateDistinctSigners checks that counting is a matching: one
// signing key never counts for two authorities, however many signatures
// it made, and a signer that fits two authorities is assigned so that the
// most authorities are counted.
func TestEvaluateDistinctSigners(t *testing.T) {
	k := newPolicyPKI(t)
	// org accepts any Example certificate, including ci's; ci only CN=ci.
	// k.ci and k.interLeaf are both CN=ci, with different keys.
	p := k.load(t, `version: 1
authorities:
  - name: org
    roots: [ca/root.crt]
    identities: ["O=Example"]
  - name: ci
    roots: [ca/root.crt]
    identities: ["CN=ci"]
environments:
  - name: prod
    repositories: ["**"]
    require: {threshold: 2, of: [org, ci]}
`)
	tests := []struct {
		name    string
		sigs    []SignatureFact
		allowed bool
		counted []string // authority per signature, "" if not counted
		why     []string // substring of each Why
	}{
		{"one signature fitting both", []SignatureFact{certSig("a", k.ci)}, false,
			[]string{"org"}, []string{"counted"}},
		{"one key signing twice", []SignatureFact{certSig("a", k.ci), certSig("b", k.ci)}, false,
			[]string{"org", ""}, []string{"counted", "already counted by signature a"}},
		{"one key, with and without a certificate", []SignatureFact{certSig("a", k.ci), keySig("b", k.ci.PublicKey)}, false,
			[]string{"org", ""}, []string{"counted", "no certificate in the signature"}},
		// Either assignment is right here; the algorithm's is fixed.
		{"two keys with the same identity", []SignatureFact{certSig("a", k.ci), certSig("b", k.interLeaf, k.inter)}, true,
			[]string{"ci", "org"}, []string{"counted", "counted"}},
		// A greedy pass gives a to org, then finds nothing for ci.
		{"ci first, then another signer", []SignatureFact{certSig("a", k.ci), certSig("b", k.security)}, true,
			[]string{"ci", "org"}, []string{"counted", "counted"}},
		{"another signer first", []SignatureFact{certSig("a", k.security), certSig("b", k.ci)}, true,
			[]string{"org", "ci"}, []string{"counted", "counted"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Evaluate("team/app", policyDigest, "prod", tc.sigs, k.now)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allowed {
				t.Errorf("Allowed = %v, want %v (%s)", d.Allowed, tc.allowed, d.Reason)
			}
			for i, want := range tc.counted {
				r := d.Signatures[i]
				got := ""
				if r.Counted {
					got = r.Authority
				}
				if got != want || !strings.Contains(r.Why, tc.why[i]) {
					t.Errorf("signature %s counted for %q (%s), want %q (%s)", r.Ref, got, r.Why, want, tc.why[i])
				}
			}
		})
	}
}

// TestEvaluateSignerCountsOnce covers the signer rule on its own: the
// key of ci's certificate is also a raw-key authority, and it signs once
// with its certificate and once without. Two authorities accept its
// signatures, but one key is one signer.
func TestEvaluateSignerCountsOnce(t *testing.T) {
	k := newPolicyPKI(t)
	der, err := x509.MarshalPKIXPublicKey(k.ci.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k.writePEM(t, "keys/ci.pub", "PUBLIC KEY", der)
	p := k.load(t, `version: 1
authorities:
  - name: certs
    roots: [ca/root.crt]
    identities: ["CN=ci"]
  - name: cikey
    keys: [keys/ci.pub]
environments:
  - name: prod
    repositories: ["**"]
    require: {threshold: 2, of: [certs, cikey]}
`)
	d, err := p.Evaluate("team/app", policyDigest, "prod", []SignatureFact{certSig("a", k.ci), keySig("b", k.ci.PublicKey)}, k.now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || strings.Join(d.Satisfied, ",") != "certs" {
		t.Errorf("Allowed %v, Satisfied %v; want one authority counted (%s)", d.Allowed, d.Satisfied, d.Reason)
	}
	want := "valid signature of authority cikey, but its signer already counts for authority certs by signature a: each signer counts once"
	if r := d.Signatures[1]; r.Counted || r.Authority != "cikey" || r.Why != want {
		t.Errorf("second signature = %+v, want uncounted: %s", r, want)
	}
	// A different key for the second authority satisfies it.
	d, err = p.Evaluate("team/app", policyDigest, "prod", []SignatureFact{certSig("a", k.interLeaf, k.inter), keySig("b", k.ci.PublicKey)}, k.now)
	if err != nil || !d.Allowed {
		t.Errorf("two keys: Allowed %v, err %v (%s)", d.Allowed, err, d.Reason)
	}
}

func TestEvaluateErrors(t *testing.T) {
	k := newPolicyPKI(t)
	p := k.load(t, evalPolicy)
	sigs := []SignatureFact{certSig("s1", k.ci)}

	_, err := p.Evaluate("dev/app", policyDigest, "staging", sigs, k.now)
	if !errors.Is(err, ErrUnknownEnvironment) || !strings.Contains(err.Error(), `"staging" (environments: dev, prod,`) {
		t.Errorf("unknown environment: %v", err)
	}
	_, err = p.Evaluate("dev/app", policyDigest, "", sigs, k.now)
	if !errors.Is(err, ErrAmbiguousEnvironment) || !strings.Contains(err.Error(), "dev, pipeline, keyed") {
		t.Errorf("ambiguous environment: %v", err)
	}
	if _, err = p.Evaluate("dev/app", "sha256:nothex", "dev", sigs, k.now); err == nil {
		t.Error("invalid image digest accepted")
	}
	if _, err = p.Evaluate("dev/app", policyDigest, "dev", sigs, time.Time{}); err == nil {
		t.Error("zero time accepted")
	}
}

func TestDecisionJSON(t *testing.T) {
	k := newPolicyPKI(t)
	p := k.load(t, evalPolicy)
	d, err := p.Evaluate("prod/app", policyDigest, "prod", []SignatureFact{certSig("s1", k.other)}, k.now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"allowed":false`, `"environment":"prod"`, `"requirement":"2 of [ci security]"`,
		`"satisfied":[]`, `"signatures":[{"ref":"s1","format":"notation-jws","signer":"C=US, ST=WA, O=Example, CN=other","authority":"","counted":false,"why":"matches no required authority: ci: identity`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}

func TestKeyFingerprint(t *testing.T) {
	k := newPolicyPKI(t)
	a, b := keyFingerprint(k.releaseKey), keyFingerprint(k.strangerKey)
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+64 || a == b {
		t.Errorf("fingerprints %q, %q", a, b)
	}
}

// BenchmarkEvaluate is one ECDSA P-256 signature with a two-certificate
// chain (leaf, intermediate) against a root authority with a CRL.
func BenchmarkEvaluate(b *testing.B) {
	k := newPolicyPKI(b)
	p := k.load(b, evalPolicy)
	sigs := []SignatureFact{certSig("s1", k.interLeaf, k.inter)}
	for b.Loop() {
		d, err := p.Evaluate("dev/app", policyDigest, "dev", sigs, k.now)
		if err != nil || !d.Allowed {
			b.Fatal(err, d.Reason)
		}
	}
}
