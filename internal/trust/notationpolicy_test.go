package trust

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// notationDir is a Notation configuration directory under test, with a
// `bulwark pki` CA in the trust store "ca:acme" and signers issued by it.
type notationDir struct {
	dir string
	ca  *CA
}

const testRegistry = "registry.example:5000"

// notationDirPolicy trusts CN=ci for one repository of testRegistry and
// CN=release for everything else.
var notationDirPolicy = `{
  "version": "1.0",
  "trustPolicies": [
    {
      "name": "app",
      "registryScopes": ["` + testRegistry + `/prod/app"],
      "signatureVerification": {"level": "strict"},
      "trustStores": ["ca:acme"],
      "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Example, CN=ci"]
    },
    {
      "name": "everything-else",
      "registryScopes": ["*"],
      "signatureVerification": {"level": "permissive", "verifyTimestamp": "afterCertExpiry"},
      "trustStores": ["ca:acme"],
      "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Example, CN=release"]
    }
  ]
}
`

func newNotationDir(t testing.TB, policy string) *notationDir {
	t.Helper()
	dir := t.TempDir()
	ca, err := InitCA(CAOptions{Dir: filepath.Join(t.TempDir(), "ca"), Organization: "Example", Country: "US", State: "WA"})
	if err != nil {
		t.Fatal(err)
	}
	d := &notationDir{dir: dir, ca: ca}
	d.write(t, "truststore/x509/ca/acme/root.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})))
	if policy != "" {
		d.write(t, NotationPolicyFile, policy)
	}
	return d
}

func (d *notationDir) write(t testing.TB, rel, content string) {
	t.Helper()
	p := filepath.Join(d.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sign issues a certificate for subject and returns a verified Notation
// fact signing target.
func (d *notationDir) sign(t testing.TB, subject string, target digest.Digest) SignatureFact {
	t.Helper()
	n, err := ParseSubject(subject)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, keyPEM, err := d.ca.Issue(IssueRequest{Subject: n})
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
	return signFact(t, key, chain, target)
}

func signFact(t testing.TB, key crypto.Signer, chain []*x509.Certificate, target digest.Digest) SignatureFact {
	t.Helper()
	desc := notationTarget("unused")
	desc.Digest = target
	env, mt, err := SignNotation(context.Background(), desc, key, chain, nil, "jws")
	if err != nil {
		t.Fatal(err)
	}
	f := VerifyNotation(context.Background(), env, mt, "sha256:sig-"+chain[0].Subject.CommonName)
	if !f.Verified {
		t.Fatalf("signature does not verify: %s", f.Error)
	}
	return f
}

func TestNotationDirLoad(t *testing.T) {
	d := newNotationDir(t, notationDirPolicy)
	p, err := LoadPolicy(d.dir)
	if err != nil {
		t.Fatalf("LoadPolicy(dir): %v", err)
	}
	if len(p.Environments) != 2 || len(p.Authorities) != 2 {
		t.Fatalf("%d environments, %d authorities; want 2 and 2", len(p.Environments), len(p.Authorities))
	}
	app, _ := p.Environment("app")
	if app.Require.String() != "all of [app]" || app.Line != 4 {
		t.Errorf("environment app: requires %s, line %d", app.Require, app.Line)
	}
	a, _ := p.Authority("app")
	if len(a.Roots) != 1 || !a.Roots[0].Equal(d.ca.Cert) || a.Identities[0] != "x509.subject: C=US, ST=WA, O=Example, CN=ci" {
		t.Errorf("authority app: roots %d, identities %q", len(a.Roots), a.Identities)
	}
	if !strings.HasPrefix(p.Version(), "sha256:") {
		t.Errorf("version %q", p.Version())
	}

	// Unresolved, the host-scoped statement covers nothing and "*" covers
	// only what no statement names on any registry: fail closed.
	for repo, want := range map[string][]string{"prod/app": nil, "dev/tool": {"everything-else"}} {
		if got := p.EnvironmentsFor(repo); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("unresolved: EnvironmentsFor(%q) = %v, want %v", repo, got, want)
		}
	}
	// Resolved for the statement's registry, Notation's precedence: the
	// exact scope wins over "*". On another registry "*" applies.
	for _, tc := range []struct {
		registry, repo string
		want           []string
	}{
		{testRegistry, "prod/app", []string{"app"}},
		{testRegistry, "prod/app2", []string{"everything-else"}},
		{testRegistry, "prod", []string{"everything-else"}},
		{"other.example", "prod/app", []string{"everything-else"}},
		{"registry.example", "prod/app", []string{"everything-else"}}, // the port is part of the host
	} {
		r := p.ForRegistry(tc.registry)
		if got := r.EnvironmentsFor(tc.repo); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ForRegistry(%q).EnvironmentsFor(%q) = %v, want %v", tc.registry, tc.repo, got, tc.want)
		}
		if r.Version() != p.Version() {
			t.Errorf("ForRegistry changed the version")
		}
		// Resolving again, for another registry, starts from the scopes.
		if got := r.ForRegistry("other.example").EnvironmentsFor("prod/app"); fmt.Sprint(got) != "[everything-else]" {
			t.Errorf("re-resolved for other.example: %v", got)
		}
	}
	if got := p.EnvironmentsFor("prod/app"); got != nil {
		t.Errorf("ForRegistry modified the policy: %v", got)
	}

	// YAML policies are not registry-scoped.
	k := newNotationPKI(t)
	if k.policy.ForRegistry(testRegistry) != k.policy {
		t.Errorf("ForRegistry copied a YAML policy")
	}
}

func TestNotationDirEvaluate(t *testing.T) {
	d := newNotationDir(t, notationDirPolicy)
	p, err := LoadNotationDir(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	img := digest.FromString("image")
	ci := d.sign(t, "C=US, ST=WA, O=Example, CN=ci", img)
	release := d.sign(t, "C=US, ST=WA, O=Example, CN=release", img)
	rogue := d.sign(t, "C=US, ST=WA, O=Rogue, CN=ci", img)
	now := time.Now()

	for _, tc := range []struct {
		name, registry, repo, env string
		sig                       SignatureFact
		allowed                   bool
		why                       string
	}{
		{"trusted identity in its scope", testRegistry, "prod/app", "", ci, true, "counted for authority app"},
		{"identity outside trustedIdentities", testRegistry, "prod/app", "", rogue, false, "is not one of the authority's identities"},
		{"identity of another statement", testRegistry, "prod/app", "", release, false, "is not one of the authority's identities"},
		{"wildcard statement elsewhere", testRegistry, "team/tool", "", release, true, "counted for authority everything-else"},
		{"ci does not count under the wildcard", testRegistry, "team/tool", "", ci, false, "is not one of the authority's identities"},
		{"same repository on another registry", "other.example", "prod/app", "", release, true, "counted"},
		{"exact statement named for another registry", "other.example", "prod/app", "app", ci, false, `does not cover repository "prod/app" (it covers ` + testRegistry + `/prod/app)`},
		{"wildcard named for an exactly scoped repository", testRegistry, "prod/app", "everything-else", release, false, "does not cover"},
		{"unresolved: no environment", "", "prod/app", "", ci, false, "no environment covers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := p.ForRegistry(tc.registry).Evaluate(tc.repo, img, tc.env, []SignatureFact{tc.sig}, now)
			if err != nil {
				t.Fatal(err)
			}
			text := dec.Reason + " | " + dec.Signatures[0].Why
			if dec.Allowed != tc.allowed || !strings.Contains(text, tc.why) {
				t.Errorf("allowed %v (%s), want %v and %q", dec.Allowed, text, tc.allowed, tc.why)
			}
		})
	}
}

// TestNotationDirRevocation: Notation checks the revocation services a
// certificate names; bulwark does not contact them, so a statement that
// enforces revocation refuses such certificates, and one that logs or
// skips revocation accepts them, as Notation would (with log, Notation
// accepts whatever the answer).
func TestNotationDirRevocation(t *testing.T) {
	img := digest.FromString("image")
	for _, tc := range []struct {
		verification string
		allowed      bool
	}{
		{`{"level": "strict"}`, false},
		{`{"level": "permissive"}`, true},
		{`{"level": "strict", "override": {"revocation": "log"}}`, true},
		{`{"level": "strict", "override": {"revocation": "skip"}}`, true},
		{`{"level": "permissive", "override": {"revocation": "enforce"}}`, false},
	} {
		t.Run(tc.verification, func(t *testing.T) {
			d := newNotationDir(t, `{"version": "1.0", "trustPolicies": [{"name": "all", "registryScopes": ["*"],
  "signatureVerification": `+tc.verification+`, "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}]}`)
			p, err := LoadNotationDir(d.dir)
			if err != nil {
				t.Fatal(err)
			}
			key, chain := leafWithCRLDistributionPoint(t, d.ca)
			for _, fact := range []SignatureFact{signFact(t, key, chain, img), d.sign(t, "C=US, ST=WA, O=Example, CN=plain", img)} {
				dec, err := p.Evaluate("team/app", img, "", []SignatureFact{fact}, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				hasCDP := len(fact.Chain[0].CRLDistributionPoints) > 0
				want := tc.allowed || !hasCDP // certificates naming no revocation service always count
				if dec.Allowed != want {
					t.Errorf("CRL distribution point %v: allowed %v, want %v: %s", hasCDP, dec.Allowed, want, dec.Signatures[0].Why)
				}
				// Go's chain builder drops the constraint's reason when the
				// envelope carries the root too; see refuseUncheckedRevocation.
				if hasCDP && !dec.Allowed && !strings.Contains(dec.Signatures[0].Why, "certificate chain") {
					t.Errorf("refusal does not say why: %s", dec.Signatures[0].Why)
				}
			}
		})
	}
}

// leafWithCRLDistributionPoint issues, under ca, a signing certificate
// naming a CRL distribution point.
func leafWithCRLDistributionPoint(t testing.TB, ca *CA) (crypto.Signer, []*x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(4242),
		Subject:               pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{"Example"}, CommonName: "cdp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		CRLDistributionPoints: []string{"http://crl.example/root.crl"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, []*x509.Certificate{leaf, ca.Cert}
}

// TestNotationDirSelfSignedSigner: Notation trusts a self-signed signing
// certificate placed in a ca store directly; so does bulwark.
func TestNotationDirSelfSignedSigner(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{"Solo"}, CommonName: "solo"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	d := newNotationDir(t, `{"version": "1.0", "trustPolicies": [{"name": "solo", "registryScopes": ["*"],
  "signatureVerification": {"level": "strict"}, "trustStores": ["ca:solo"],
  "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Solo"]}]}`)
	d.write(t, "truststore/x509/ca/solo/solo.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	p, err := LoadNotationDir(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	img := digest.FromString("image")
	dec, err := p.Evaluate("app", img, "", []SignatureFact{signFact(t, key, []*x509.Certificate{cert}, img)}, time.Now())
	if err != nil || !dec.Allowed {
		t.Fatalf("self-signed signer in the trust store: %v %s / %s", err, dec.Reason, dec.Signatures[0].Why)
	}
}

// TestNotationDirVersion: the version covers the document and every
// certificate file of the stores the statements use, and nothing else.
func TestNotationDirVersion(t *testing.T) {
	d := newNotationDir(t, notationDirPolicy)
	version := func() string {
		t.Helper()
		p, err := LoadNotationDir(d.dir)
		if err != nil {
			t.Fatal(err)
		}
		return p.Version()
	}
	v0 := version()
	if v := version(); v != v0 {
		t.Fatalf("version not deterministic: %s then %s", v0, v)
	}
	other, err := InitCA(CAOptions{Dir: filepath.Join(t.TempDir(), "other"), Organization: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	otherPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Cert.Raw}))

	d.write(t, "truststore/x509/ca/unused/other.crt", otherPEM)
	if v := version(); v != v0 {
		t.Errorf("a store no statement uses changed the version")
	}
	d.write(t, "truststore/x509/ca/acme/other.crt", otherPEM)
	v1 := version()
	if v1 == v0 {
		t.Errorf("adding a certificate to a used store did not change the version")
	}
	d.write(t, "truststore/x509/ca/acme/other.crt", otherPEM+"\n")
	if v := version(); v == v1 {
		t.Errorf("changing a certificate file did not change the version")
	}
	d.write(t, NotationPolicyFile, notationDirPolicy+" ")
	if v := version(); v == v1 {
		t.Errorf("changing the trust policy did not change the version")
	}
}

// TestNotationDirPolicyFile: trustpolicy.oci.json is preferred; both files
// must then agree, since Notation v1.3 reads trustpolicy.json.
func TestNotationDirPolicyFile(t *testing.T) {
	d := newNotationDir(t, "")
	if _, err := LoadNotationDir(d.dir); err == nil || !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("no trust policy: %v", err)
	}
	d.write(t, NotationOCIPolicyFile, notationDirPolicy)
	p1, err := LoadPolicy(d.dir)
	if err != nil {
		t.Fatalf("trustpolicy.oci.json alone: %v", err)
	}
	d.write(t, NotationPolicyFile, notationDirPolicy)
	p2, err := LoadPolicy(d.dir)
	if err != nil {
		t.Fatalf("identical trustpolicy.oci.json and trustpolicy.json: %v", err)
	}
	if p1.Version() != p2.Version() {
		t.Errorf("the same file read with a copy beside it has another version")
	}
	d.write(t, NotationPolicyFile, strings.Replace(notationDirPolicy, "CN=ci", "CN=other", 1))
	if _, err := LoadPolicy(d.dir); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Errorf("different trust policy files: %v", err)
	}
	os.Remove(filepath.Join(d.dir, NotationOCIPolicyFile))
	if err := os.Symlink(filepath.Join(d.dir, NotationPolicyFile), filepath.Join(d.dir, NotationOCIPolicyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(d.dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlinked trust policy: %v", err)
	}
}

// statement builds a one-statement document with fields overridden.
func statement(fields map[string]string) string {
	f := map[string]string{
		"name":                  `"s"`,
		"registryScopes":        `["*"]`,
		"signatureVerification": `{"level": "strict"}`,
		"trustStores":           `["ca:acme"]`,
		"trustedIdentities":     `["x509.subject: C=US, ST=WA, O=Example"]`,
	}
	for k, v := range fields {
		f[k] = v
	}
	var parts []string
	for _, k := range []string{"name", "registryScopes", "signatureVerification", "trustStores", "trustedIdentities"} {
		if f[k] != "" {
			parts = append(parts, fmt.Sprintf("%q: %s", k, f[k]))
		}
	}
	return "{" + strings.Join(parts, ",\n") + "}"
}

func doc(statements ...string) string {
	return `{"version": "1.0", "trustPolicies": [` + strings.Join(statements, ",\n") + "]}"
}

func TestNotationTrustPolicyRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
		line            int
	}{
		{"empty", "", "empty", 0},
		{"not JSON", "version: 1", "malformed JSON", 1},
		{"syntax error line", "{\n\"version\": \"1.0\",\n\"trustPolicies\": [}\n", "malformed JSON", 3},
		{"truncated", `{"version": "1.0", "trustPolicies": [`, "unexpected end", 1},
		{"trailing data", doc(statement(nil)) + " {}", "data after the JSON document", 5},
		{"invalid UTF-8", "{\"version\": \"1.0\xff\"}", "UTF-8", 0},
		{"array at top", "[]", "must be an object", 1},
		{"wrong version", `{"version": "2.0", "trustPolicies": []}`, `version "2.0" is not supported`, 1},
		{"numeric version", `{"version": 1.0, "trustPolicies": []}`, "version must be a string", 1},
		{"missing version", `{"trustPolicies": []}`, `missing "version"`, 1},
		{"no statements", `{"version": "1.0", "trustPolicies": []}`, "must not be empty", 1},
		{"unknown top-level key", `{"version": "1.0", "trustPolicies": [], "extra": 1}`, `unknown key "extra"`, 1},
		{"duplicate key", "{\"version\": \"1.0\",\n\"version\": \"1.0\"}", `key "version" is given twice`, 2},
		{"key in another case", doc(strings.Replace(statement(nil), `"name"`, `"Name"`, 1)), `unknown key "Name"`, 1},
		{"unknown statement key", doc(strings.Replace(statement(nil), "{", `{"registryScope": ["*"], `, 1)), `unknown key "registryScope"`, 1},
		{"duplicate statement key", doc(strings.Replace(statement(nil), "{", "{\"trustStores\": [\"ca:acme\"],\n", 1)), `key "trustStores" is given twice`, 5},
		{"missing name", doc(statement(map[string]string{"name": ""})), "missing name", 1},
		{"empty name", doc(statement(map[string]string{"name": `""`})), "name \"\": empty", 1},
		{"control character in name", doc(statement(map[string]string{"name": `"a\u0007b"`})), "non-printable", 1},
		{"duplicate statement names", doc(statement(nil), statement(map[string]string{"registryScopes": `["r.example/a"]`})), `statement name "s" is used twice (first on line 1)`, 6},
		{"same scope in two statements", doc(statement(map[string]string{"registryScopes": `["r.example/a"]`}),
			statement(map[string]string{"name": `"t"`, "registryScopes": `["r.example/b", "r.example/a"]`})), `registry scope "r.example/a" is also in statement "s"`, 6},
		{"scope twice in a statement", doc(statement(map[string]string{"registryScopes": `["r.example/a", "r.example/a"]`})), "listed twice", 1},
		{"two wildcard statements", doc(statement(nil), statement(map[string]string{"name": `"t"`})), `registry scope "*" is also in statement "s"`, 6},
		{"wildcard with other scopes", doc(statement(map[string]string{"registryScopes": `["r.example/a", "*"]`})), "cannot be combined", 2},
		{"no scopes", doc(statement(map[string]string{"registryScopes": `[]`})), "registryScopes is empty", 2},
		{"missing scopes", doc(statement(map[string]string{"registryScopes": ""})), "missing registryScopes", 1},
		{"scope without host", doc(statement(map[string]string{"registryScopes": `["app"]`})), "fully qualified repository", 2},
		{"scope with wildcard", doc(statement(map[string]string{"registryScopes": `["r.example/team/*"]`})), "wildcards are not allowed", 2},
		{"scope with tag", doc(statement(map[string]string{"registryScopes": `["r.example/app:v1"]`})), "fully qualified repository", 2},
		{"scope with upper case", doc(statement(map[string]string{"registryScopes": `["r.example/App"]`})), "fully qualified repository", 2},
		{"scope not a string", doc(statement(map[string]string{"registryScopes": `[1]`})), "must be a string, not 1", 2},
		{"missing level", doc(statement(map[string]string{"signatureVerification": `{}`})), "missing level", 3},
		{"unknown level", doc(statement(map[string]string{"signatureVerification": `{"level": "paranoid"}`})), `unknown level "paranoid"`, 3},
		{"skip", doc(statement(map[string]string{"signatureVerification": `{"level": "skip"}`, "trustStores": "", "trustedIdentities": ""})), `level "skip" lets images through`, 3},
		{"audit", doc(statement(map[string]string{"signatureVerification": `{"level": "audit"}`})), "authenticity is only logged", 3},
		{"authenticity logged", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "override": {"authenticity": "log"}}`})), "authenticity is only logged", 3},
		{"override integrity", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "override": {"integrity": "log"}}`})), "integrity cannot be overridden", 3},
		{"skip expiry", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "override": {"expiry": "skip"}}`})), "expiry cannot be skipped", 3},
		{"unknown check", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "override": {"freshness": "log"}}`})), `unknown verification type "freshness"`, 3},
		{"unknown action", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "override": {"revocation": "ignore"}}`})), `unknown action "ignore"`, 3},
		{"override not an object", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "override": ["revocation"]}`})), "override must be an object", 3},
		{"skip with override", doc(statement(map[string]string{"signatureVerification": `{"level": "skip", "override": {"revocation": "log"}}`})), `level "skip"`, 3},
		{"bad verifyTimestamp", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "verifyTimestamp": "never"}`})), "verifyTimestamp must be", 3},
		{"unknown verification key", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "Override": {}}`})), `unknown key "Override"`, 3},
		{"missing trust stores", doc(statement(map[string]string{"trustStores": ""})), "needs both trustStores and trustedIdentities", 1},
		{"null identities", doc(statement(map[string]string{"trustedIdentities": "null"})), "needs both trustStores and trustedIdentities", 1},
		{"empty trust stores", doc(statement(map[string]string{"trustStores": "[]"})), "trustStores is empty", 4},
		{"store without type", doc(statement(map[string]string{"trustStores": `["acme"]`})), "want TYPE:NAME", 4},
		{"unknown store type", doc(statement(map[string]string{"trustStores": `["x509:acme"]`})), `unknown type "x509"`, 4},
		{"store type in another case", doc(statement(map[string]string{"trustStores": `["CA:acme"]`})), `unknown type "CA"`, 4},
		{"store name with a slash", doc(statement(map[string]string{"trustStores": `["ca:a/b"]`})), "must match", 4},
		{"store name ..", doc(statement(map[string]string{"trustStores": `["ca:.."]`})), "must match", 4},
		{"no ca store", doc(statement(map[string]string{"trustStores": `["signingAuthority:acme", "tsa:ts"]`})), "no trust store of type ca", 4},
		{"empty identities", doc(statement(map[string]string{"trustedIdentities": "[]"})), "trustedIdentities is empty", 5},
		{"wildcard identity with others", doc(statement(map[string]string{"trustedIdentities": `["*", "x509.subject: C=US, ST=WA, O=Example"]`})), "cannot be combined", 5},
		{"identity without prefix", doc(statement(map[string]string{"trustedIdentities": `["C=US, ST=WA, O=Example"]`})), `want "x509.subject: C=..., ST=..., O=..." or "*"`, 5},
		{"identity without separator", doc(statement(map[string]string{"trustedIdentities": `["x509.subject"]`})), `want "x509.subject: C=..., ST=..., O=..." or "*"`, 5},
		{"unsupported identity type", doc(statement(map[string]string{"trustedIdentities": `["x509.uri: https://ci.example.com"]`})), `identity type "x509.uri" is not supported`, 5},
		{"empty identity value", doc(statement(map[string]string{"trustedIdentities": `["x509.subject: "]`})), "no distinguished name", 5},
		{"identity missing ST", doc(statement(map[string]string{"trustedIdentities": `["x509.subject: C=US, O=Example, CN=ci"]`})), "has no ST", 5},
		{"identity with hex value", doc(statement(map[string]string{"trustedIdentities": `["x509.subject: C=US, ST=WA, O=#0403"]`})), `"=#"`, 5},
		{"identity with duplicate attribute", doc(statement(map[string]string{"trustedIdentities": `["x509.subject: C=US, ST=WA, O=A, O=B"]`})), "given twice", 5},
		{"identity multi-valued", doc(statement(map[string]string{"trustedIdentities": `["x509.subject: C=US, ST=WA, O=A+CN=b"]`})), "multi-valued", 5},
		{"overlapping identities", doc(statement(map[string]string{"trustedIdentities": `["x509.subject: C=US, ST=WA, O=Example", "x509.subject: C=US, ST=WA, O=Example, CN=ci"]`})), "overlaps with", 5},
		{"identical identities", doc(statement(map[string]string{"trustedIdentities": `["x509.subject: C=US, ST=WA, O=Example", "x509.subject: O=Example, ST=WA, C=US"]`})), "overlaps with", 5},
		{"deeply nested", `{"version": "1.0", "trustPolicies": [` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "]}", "nested too deeply", 1},
		{"too large", `{"version": "1.0", "trustPolicies": [], "x": "` + strings.Repeat("a", MaxPolicySize) + `"}`, "larger than", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseNotationTrustPolicy([]byte(tc.doc))
			var pe *PolicyError
			if err == nil || !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("got %v, want a PolicyError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || pe.Line != tc.line {
				t.Errorf("got %q (line %d), want %q on line %d\n%s", err, pe.Line, tc.want, tc.line, tc.doc)
			}
		})
	}
}

// TestNotationTrustPolicyAccepts: what Notation accepts and bulwark maps.
func TestNotationTrustPolicyAccepts(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"strict", doc(statement(nil))},
		{"permissive", doc(statement(map[string]string{"signatureVerification": `{"level": "permissive"}`}))},
		{"custom", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "override": {"expiry": "log", "authenticTimestamp": "log", "revocation": "skip"}}`}))},
		{"audit made enforcing", doc(statement(map[string]string{"signatureVerification": `{"level": "audit", "override": {"authenticity": "enforce"}}`}))},
		{"verifyTimestamp", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "verifyTimestamp": "always"}`}))},
		{"null override", doc(statement(map[string]string{"signatureVerification": `{"level": "strict", "override": null}`}))},
		{"several scopes and stores", doc(statement(map[string]string{"registryScopes": `["r.example:5000/a", "localhost/b/c", "r.example/a__b/c-d.e"]`,
			"trustStores": `["ca:acme", "ca:acme", "signingAuthority:sa", "tsa:ts"]`}))},
		{"wildcard identity", doc(statement(map[string]string{"trustedIdentities": `["*"]`}))},
		{"disjoint identities", doc(statement(map[string]string{"trustedIdentities": `["x509.subject: C=US, ST=WA, O=Example, CN=ci", "x509.subject: C=US, ST=WA, O=Example, CN=release", "x509.subject: C=DE, S=BE, O=Beispiel"]`}))},
		{"name with spaces and capitals", doc(statement(map[string]string{"name": `"Wabbit Networks images"`}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseNotationTrustPolicy([]byte(tc.doc)); err != nil {
				t.Errorf("%v\n%s", err, tc.doc)
			}
		})
	}
}

func TestNotationDirStoreErrors(t *testing.T) {
	leafPEM := func(t *testing.T, d *notationDir) string {
		chainPEM, _, err := d.ca.Issue(IssueRequest{Subject: pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{"Example"}}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(chainPEM)
		return string(pem.EncodeToMemory(b))
	}
	for _, tc := range []struct {
		name   string
		policy string
		setup  func(t *testing.T, d *notationDir)
		want   string
	}{
		{"missing store", doc(statement(map[string]string{"trustStores": `["ca:nope"]`})), nil, `trust store "ca:nope": truststore/x509/ca/nope: no such file`},
		{"empty store", doc(statement(nil)), func(t *testing.T, d *notationDir) {
			os.Remove(filepath.Join(d.dir, "truststore/x509/ca/acme/root.crt"))
		}, "holds no certificate"},
		{"store is a file", doc(statement(map[string]string{"trustStores": `["ca:file"]`})), func(t *testing.T, d *notationDir) {
			d.write(t, "truststore/x509/ca/file", "x")
		}, "is not a directory"},
		{"symlinked store", doc(statement(map[string]string{"trustStores": `["ca:link"]`})), func(t *testing.T, d *notationDir) {
			os.Symlink(filepath.Join(d.dir, "truststore/x509/ca/acme"), filepath.Join(d.dir, "truststore/x509/ca/link"))
		}, "is not a directory"},
		{"symlinked certificate", doc(statement(nil)), func(t *testing.T, d *notationDir) {
			os.Symlink(filepath.Join(d.dir, "truststore/x509/ca/acme/root.crt"), filepath.Join(d.dir, "truststore/x509/ca/acme/link.crt"))
		}, "link.crt is not a regular file"},
		{"directory in a store", doc(statement(nil)), func(t *testing.T, d *notationDir) {
			os.Mkdir(filepath.Join(d.dir, "truststore/x509/ca/acme/sub"), 0o700)
		}, "sub is not a regular file"},
		{"not a certificate", doc(statement(nil)), func(t *testing.T, d *notationDir) {
			d.write(t, "truststore/x509/ca/acme/README", "certificates go here\n")
		}, "README: no PEM certificate, and not a DER certificate"},
		{"private key", doc(statement(nil)), func(t *testing.T, d *notationDir) {
			_, keyPEM, _ := d.ca.Issue(IssueRequest{Subject: pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{"Example"}}})
			d.write(t, "truststore/x509/ca/acme/key.pem", string(keyPEM))
		}, "holds a private key"},
		{"leaf certificate", doc(statement(nil)), func(t *testing.T, d *notationDir) {
			d.write(t, "truststore/x509/ca/acme/leaf.pem", leafPEM(t, d))
		}, "neither a CA certificate nor a self-signed signing certificate"},
		{"tsa store with a leaf", doc(statement(map[string]string{"trustStores": `["ca:acme", "tsa:ts"]`})), func(t *testing.T, d *notationDir) {
			d.write(t, "truststore/x509/tsa/ts/leaf.pem", leafPEM(t, d))
		}, "root CA certificates only"},
		{"signingAuthority store missing", doc(statement(map[string]string{"trustStores": `["ca:acme", "signingAuthority:sa"]`})), nil, "truststore/x509/signingAuthority/sa: no such file"},
		{"too many files", doc(statement(nil)), func(t *testing.T, d *notationDir) {
			for i := range maxTrustStoreFiles {
				d.write(t, fmt.Sprintf("truststore/x509/ca/acme/%d.crt", i), "")
			}
		}, "more than 1024 files"},
		{"huge certificate file", doc(statement(nil)), func(t *testing.T, d *notationDir) {
			f, err := os.Create(filepath.Join(d.dir, "truststore/x509/ca/acme/huge.crt"))
			if err != nil {
				t.Fatal(err)
			}
			f.Truncate(MaxPolicyRefSize + 1)
			f.Close()
		}, "larger than"},
		{"device", doc(statement(map[string]string{"trustStores": `["ca:dev"]`})), func(t *testing.T, d *notationDir) {
			os.MkdirAll(filepath.Join(d.dir, "truststore/x509/ca/dev"), 0o700)
			if err := os.Symlink("/dev/zero", filepath.Join(d.dir, "truststore/x509/ca/dev/zero.crt")); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newNotationDir(t, tc.policy)
			if tc.setup != nil {
				tc.setup(t, d)
			}
			_, err := LoadPolicy(d.dir)
			var pe *PolicyError
			if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if pe.Path != filepath.Join(d.dir, NotationPolicyFile) || pe.Line != 4 {
				t.Errorf("error at %s line %d, want the trustStores line of %s", pe.Path, pe.Line, NotationPolicyFile)
			}
		})
	}
}

func TestNotationDirTooLarge(t *testing.T) {
	d := newNotationDir(t, `{"version": "1.0", "trustPolicies": [], "x": "`+strings.Repeat("a", MaxPolicySize)+`"}`)
	if _, err := LoadPolicy(d.dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge trust policy: %v", err)
	}
}

// FuzzNotationTrustPolicy: the trust policy parser never panics, and what
// it accepts keeps the invariants the policy builder relies on.
func FuzzNotationTrustPolicy(f *testing.F) {
	f.Add([]byte(notationDirPolicy))
	f.Add([]byte(doc(statement(nil))))
	f.Add([]byte(doc(statement(map[string]string{"registryScopes": `["r.example:5000/a", "localhost/b/c"]`,
		"signatureVerification": `{"level": "strict", "override": {"revocation": "skip"}}`}))))
	f.Add([]byte(`{"version": "1.0", "trustPolicies": [{"name": "a\u00e9", "registryScopes": ["*"]}]}`))
	f.Add([]byte("{\"version\": \"1.0\",\n\"version\": 1}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		stmts, err := parseNotationTrustPolicy(data)
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("not a PolicyError: %v", err)
			}
			return
		}
		names := map[string]bool{}
		scopes := map[string]bool{}
		for _, s := range stmts {
			if s.name == "" || names[s.name] || len(s.scopes) == 0 || len(s.stores) == 0 || len(s.identities) == 0 {
				t.Fatalf("accepted an invalid statement: %+v", s)
			}
			names[s.name] = true
			for _, sc := range s.scopes {
				if scopes[sc] {
					t.Fatalf("scope %q accepted twice", sc)
				}
				scopes[sc] = true
			}
			if s.any != (len(s.subjects) == 0) {
				t.Fatalf("identities %q: any %v with %d subjects", s.identities, s.any, len(s.subjects))
			}
		}
	})
}

// TestNotationDirExample: examples/notation is the docs' example, and
// loads given a root in its trust store.
func TestNotationDirExample(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "notation", NotationOCIPolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := os.ReadFile(filepath.Join("..", "..", "examples", "notation", NotationPolicyFile))
	if err != nil || string(legacy) != string(example) {
		t.Errorf("examples/notation: %s and %s differ (%v)", NotationPolicyFile, NotationOCIPolicyFile, err)
	}
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "trust-policy.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(docs), "```json\n"+string(example)+"```") {
		t.Errorf("examples/notation/%s is not in docs/trust-policy.md verbatim", NotationOCIPolicyFile)
	}
	d := newNotationDir(t, "")
	d.write(t, NotationOCIPolicyFile, string(example))
	os.Rename(filepath.Join(d.dir, "truststore/x509/ca/acme"), filepath.Join(d.dir, "truststore/x509/ca/example"))
	p, err := LoadPolicy(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	img := digest.FromString("image")
	ci, other := d.sign(t, "C=US, ST=WA, O=Example, CN=ci", img), d.sign(t, "C=US, ST=WA, O=Example, CN=dev", img)
	for _, tc := range []struct {
		registry, repo string
		sig            SignatureFact
		env            string
		allowed        bool
	}{
		{"registry.example.com", "prod/app", ci, "prod-app", true},
		{"registry.example.com", "prod/api", other, "prod-app", false},
		{"registry.example.com", "team/tool", other, "everything-else", true},
		{"mirror.example.com", "prod/app", other, "everything-else", true},
	} {
		dec, err := p.ForRegistry(tc.registry).Evaluate(tc.repo, img, "", []SignatureFact{tc.sig}, time.Now())
		if err != nil || dec.Allowed != tc.allowed || dec.Environment != tc.env {
			t.Errorf("%s/%s: %v allowed %v in %q, want %v in %q: %s", tc.registry, tc.repo, err, dec.Allowed, dec.Environment, tc.allowed, tc.env, dec.Reason)
		}
	}
}
