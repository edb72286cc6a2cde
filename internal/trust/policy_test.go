package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// policyPKI is a throwaway PKI for policy tests: a trusted root with an
// intermediate, leaves for each case, an untrusted root, CRLs and raw keys,
// all written under dir at the paths the test policies name.
type policyPKI struct {
	dir string
	now time.Time

	root, inter, untrustedRoot *x509.Certificate
	rootKey                    crypto.Signer

	ci, security, other, pipeline *x509.Certificate // good code-signing leaves under root
	noEKU, expired, revoked       *x509.Certificate // bad leaves under root
	noDigitalSignature, caLeaf    *x509.Certificate
	interLeaf                     *x509.Certificate // CN=ci under the intermediate
	untrusted                     *x509.Certificate // CN=ci under the untrusted root

	releaseKey, strangerKey crypto.PublicKey
	revokedAt               time.Time
	serial                  int64
}

// policyNow is the fixed "now" of every policy test, so expiry is
// deterministic.
var policyNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func newPolicyPKI(t testing.TB) *policyPKI {
	t.Helper()
	k := &policyPKI{dir: t.TempDir(), now: policyNow, revokedAt: policyNow.Add(-time.Hour)}
	year := 365 * 24 * time.Hour
	from, until := k.now.Add(-year), k.now.Add(year)

	var interKey, untrustedKey crypto.Signer
	k.root, k.rootKey = k.issue(t, k.caTemplate("Example Root"), nil, nil)
	k.inter, interKey = k.issue(t, k.caTemplate("Example Intermediate"), k.root, k.rootKey)
	k.untrustedRoot, untrustedKey = k.issue(t, k.caTemplate("Example Root"), nil, nil) // same name, other key

	k.ci, _ = k.issue(t, k.leafTemplate("ci", from, until), k.root, k.rootKey)
	k.security, _ = k.issue(t, k.leafTemplate("security", from, until), k.root, k.rootKey)
	k.other, _ = k.issue(t, k.leafTemplate("other", from, until), k.root, k.rootKey)
	pipe := k.leafTemplate("builder", from, until)
	pipe.URIs = []*url.URL{{Scheme: "https", Host: "ci.example.com", Path: "/pipelines/42"}}
	k.pipeline, _ = k.issue(t, pipe, k.root, k.rootKey)

	noEKU := k.leafTemplate("ci", from, until)
	noEKU.ExtKeyUsage = nil
	k.noEKU, _ = k.issue(t, noEKU, k.root, k.rootKey)
	noDS := k.leafTemplate("ci", from, until)
	noDS.KeyUsage = x509.KeyUsageKeyEncipherment
	k.noDigitalSignature, _ = k.issue(t, noDS, k.root, k.rootKey)
	caLeaf := k.leafTemplate("ci", from, until)
	caLeaf.IsCA, caLeaf.KeyUsage = true, x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign
	k.caLeaf, _ = k.issue(t, caLeaf, k.root, k.rootKey)
	k.expired, _ = k.issue(t, k.leafTemplate("ci", k.now.Add(-2*year), k.now.Add(-24*time.Hour)), k.root, k.rootKey)
	k.revoked, _ = k.issue(t, k.leafTemplate("ci", from, until), k.root, k.rootKey)
	k.interLeaf, _ = k.issue(t, k.leafTemplate("ci", from, until), k.inter, interKey)
	k.untrusted, _ = k.issue(t, k.leafTemplate("ci", from, until), k.untrustedRoot, untrustedKey)

	k.writePEM(t, "ca/root.crt", "CERTIFICATE", k.root.Raw)
	k.writePEM(t, "untrusted/root.crt", "CERTIFICATE", k.untrustedRoot.Raw)
	k.writePEM(t, "ca/root.crl", "X509 CRL", k.crl(t, k.root, k.rootKey, k.now.Add(30*24*time.Hour), k.revoked))
	k.writePEM(t, "ca/stale.crl", "X509 CRL", k.crl(t, k.root, k.rootKey, k.now.Add(-time.Minute)))
	k.writePEM(t, "untrusted/root.crl", "X509 CRL", k.crl(t, k.untrustedRoot, untrustedKey, k.now.Add(time.Hour)))

	k.releaseKey = k.writePublicKey(t, "keys/release.pub")
	k.strangerKey = k.writePublicKey(t, "keys/stranger.pub")
	return k
}

func (k *policyPKI) caTemplate(cn string) *x509.Certificate {
	k.serial++
	return &x509.Certificate{
		SerialNumber:          big.NewInt(k.serial),
		Subject:               pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{"Example"}, CommonName: cn},
		NotBefore:             k.now.Add(-10 * 365 * 24 * time.Hour),
		NotAfter:              k.now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func (k *policyPKI) leafTemplate(cn string, from, until time.Time) *x509.Certificate {
	k.serial++
	return &x509.Certificate{
		SerialNumber:          big.NewInt(k.serial),
		Subject:               pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{"Example"}, CommonName: cn},
		NotBefore:             from,
		NotAfter:              until,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
}

// issue creates a certificate from tmpl with a new P-256 key, signed by
// parent (self-signed when parent is nil).
func (k *policyPKI) issue(t testing.TB, tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
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

func (k *policyPKI) crl(t testing.TB, issuer *x509.Certificate, key crypto.Signer, next time.Time, revoked ...*x509.Certificate) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: k.now.Add(-2 * time.Hour), NextUpdate: next}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: k.revokedAt})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (k *policyPKI) writePublicKey(t testing.TB, name string) crypto.PublicKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	k.writePEM(t, name, "PUBLIC KEY", der)
	return key.Public()
}

func (k *policyPKI) writePEM(t testing.TB, name, typ string, der []byte) {
	t.Helper()
	k.write(t, name, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}

func (k *policyPKI) write(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(k.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (k *policyPKI) load(t testing.TB, policy string) *Policy {
	t.Helper()
	p, err := LoadPolicy(k.write(t, "policy.yaml", policy))
	if err != nil {
		t.Fatalf("LoadPolicy: %v", err)
	}
	return p
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "policy", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadPolicyIssueExample(t *testing.T) {
	k := newPolicyPKI(t)
	p := k.load(t, readTestdata(t, "issue-example.yaml"))

	if len(p.Authorities) != 2 || len(p.Environments) != 2 {
		t.Fatalf("got %d authorities, %d environments; want 2, 2", len(p.Authorities), len(p.Environments))
	}
	ci, _ := p.Authority("ci")
	sec, _ := p.Authority("security")
	if len(ci.Roots) != 1 || !ci.Roots[0].Equal(k.root) {
		t.Errorf("ci roots = %v, want the test root", ci.Roots)
	}
	if got := strings.Join(sec.Repositories, ","); got != "**" {
		t.Errorf("security repositories = %q, want the default **", got)
	}
	dev, _ := p.Environment("dev")
	prod, _ := p.Environment("prod")
	if got := dev.Require.String(); got != "all of [ci]" {
		t.Errorf("dev requires %q", got)
	}
	if got := prod.Require.String(); got != "2 of [ci security]" {
		t.Errorf("prod requires %q", got)
	}
	if got := p.EnvironmentsFor("prod/app"); strings.Join(got, ",") != "prod" {
		// "*" is one path component, so dev ("*") does not cover prod/app.
		t.Errorf("EnvironmentsFor(prod/app) = %v, want [prod]", got)
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(p.Version()) {
		t.Errorf("Version() = %q", p.Version())
	}
}

func TestLoadPolicyEnvironmentsExample(t *testing.T) {
	k := newPolicyPKI(t)
	p := k.load(t, readTestdata(t, "environments.yaml"))
	var names []string
	for _, e := range p.Environments {
		names = append(names, e.Name+"="+e.Require.String())
	}
	want := "dev=all of [ci],staging=all of [ci security],prod=2 of [ci security release]"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("environments = %s, want %s", got, want)
	}
	rel, _ := p.Authority("release")
	if len(rel.Keys) != 1 || !rel.Keys[0].(*ecdsa.PublicKey).Equal(k.releaseKey) {
		t.Errorf("release keys = %v, want the test release key", rel.Keys)
	}
	ci, _ := p.Authority("ci")
	if len(ci.CRLs) != 1 || len(ci.CRLs[0].List.RevokedCertificateEntries) != 1 || !ci.CRLs[0].Issuer.Equal(k.root) {
		t.Errorf("ci CRLs = %+v, want root.crl with one entry", ci.CRLs)
	}
}

// TestPolicyDocsExamples loads every YAML policy in docs/trust-policy.md, so
// the documentation cannot drift from the loader.
func TestPolicyDocsExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "trust-policy.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	k := newPolicyPKI(t)
	n := 0
	for _, b := range blocks {
		if !strings.HasPrefix(b[1], "version: 1\n") {
			continue // a fragment, not a whole policy
		}
		n++
		if _, err := ParsePolicy([]byte(b[1]), k.dir); err != nil {
			t.Errorf("docs example %d does not load: %v\n%s", n, err, b[1])
		}
	}
	if n < 3 {
		t.Errorf("found %d whole policies in the docs, want at least 3", n)
	}
	// The testdata copy of the main example must be the docs' first one.
	if want := readTestdata(t, "environments.yaml"); !strings.Contains(string(doc), want) {
		t.Error("testdata/policy/environments.yaml is not in docs/trust-policy.md verbatim")
	}
	// So must the copy users start from.
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "trust-policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(example)) {
		t.Error("examples/trust-policy.yaml is not in docs/trust-policy.md verbatim")
	}
}

func TestLoadPolicyErrors(t *testing.T) {
	k := newPolicyPKI(t)
	leafPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.ci.Raw}))
	k.write(t, "bad/garbage.crt", "this is not a certificate\n")
	k.write(t, "bad/leaf.crt", leafPEM)
	k.write(t, "bad/key-in-roots.crt", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	k.write(t, "bad/cert.pub", leafPEM)
	k.write(t, "bad/empty.pub", "")
	k.write(t, "bad/garbage.crl", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
	if err := os.Mkdir(filepath.Join(k.dir, "bad", "dir.crt"), 0o755); err != nil {
		t.Fatal(err)
	}

	// auth is the head of a valid policy with one authority, ci; env is a
	// valid environment list. Cases replace one part.
	const auth = "version: 1\nauthorities:\n  - name: ci\n    roots: [ca/root.crt]\n    identities: [\"CN=ci\"]\n"
	const env = "environments:\n  - name: dev\n    repositories: [\"**\"]\n    require: [ci]\n"
	tests := []struct {
		name   string
		policy string
		line   int    // 0: not checked
		want   string // substring of the error
		is     error  // also wrapped, besides ErrInvalidPolicy
	}{
		{"empty file", "", 0, "empty", nil},
		{"only a comment", "# nothing\n", 0, "empty", nil},
		{"not yaml", "version: [1\n", 0, "yaml:", nil},
		{"two documents", auth + env + "---\nversion: 1\n", 10, "only one YAML document", nil},
		{"top level is a list", "- version: 1\n", 1, "must be a mapping", nil},
		{"unknown top-level key", auth + env + "enviroments: []\n", 10, `unknown key "enviroments"`, nil},
		{"unknown authority key", "version: 1\nauthorities:\n  - name: ci\n    roots: [ca/root.crt]\n    identities: [\"CN=ci\"]\n    rots: [x]\n" + env, 6, `unknown key "rots"`, nil},
		{"unknown environment key", auth + "environments:\n  - name: dev\n    repositories: [\"**\"]\n    require: [ci]\n    approvers: 2\n", 10, `unknown key "approvers"`, nil},
		{"unknown require key", auth + "environments:\n  - name: dev\n    repositories: [\"**\"]\n    require: {threshold: 1, of: [ci], quorum: 1}\n", 9, `unknown key "quorum"`, nil},
		{"duplicate key", "version: 1\nversion: 1\n", 2, `key "version" is given twice`, nil},
		{"missing version", "authorities: []\nenvironments: []\n", 1, `missing "version"`, nil},
		{"version 2", strings.Replace(auth, "version: 1", "version: 2", 1) + env, 1, "version 2 is not supported; the only version is 1", nil},
		{"version as string", strings.Replace(auth, "version: 1", `version: "1"`, 1) + env, 1, `version must be the integer 1, not the string "1"`, nil},
		{"missing environments", auth, 1, `missing "environments"`, nil},
		{"no authorities", "version: 1\nauthorities: []\n" + env, 2, "authorities must not be empty", nil},
		{"no environments", auth + "environments: []\n", 6, "environments must not be empty", nil},
		{"duplicate authority", auth + "  - name: ci\n    keys: [keys/release.pub]\n" + env, 6, `authority "ci" is defined twice (first on line 3)`, nil},
		{"duplicate environment", auth + env + "  - name: dev\n    repositories: [\"x\"]\n    require: [ci]\n", 10, `environment "dev" is defined twice`, nil},
		{"bad authority name", strings.Replace(auth, "name: ci", "name: CI", 1) + strings.Replace(env, "[ci]", "[CI]", 1), 3, `name "CI" must match`, nil},
		{"name starting with dash", auth + strings.Replace(env, "name: dev", "name: -dev", 1), 7, `name "-dev" must match`, nil},
		{"missing name", "version: 1\nauthorities:\n  - roots: [ca/root.crt]\n    identities: [\"CN=ci\"]\n" + env, 3, "missing name", nil},
		{"null name", "version: 1\nauthorities:\n  - name:\n    roots: [ca/root.crt]\n" + env, 3, "missing value", nil},
		{"unknown authority in require list", auth + strings.Replace(env, "[ci]", "[ci, security]", 1), 9, `unknown authority "security" (authorities: ci)`, nil},
		{"unknown authority in of", auth + strings.Replace(env, "[ci]", "{threshold: 1, of: [securty]}", 1), 9, `unknown authority "securty"`, nil},
		{"threshold 0", auth + strings.Replace(env, "[ci]", "{threshold: 0, of: [ci]}", 1), 9, "threshold 0 must be between 1 and 1", nil},
		{"threshold above n", auth + strings.Replace(env, "[ci]", "{threshold: 2, of: [ci]}", 1), 9, "threshold 2 must be between 1 and 1", nil},
		{"negative threshold", auth + strings.Replace(env, "[ci]", "{threshold: -1, of: [ci]}", 1), 9, "threshold -1 must be between", nil},
		{"threshold not a number", auth + strings.Replace(env, "[ci]", "{threshold: two, of: [ci]}", 1), 9, `threshold "two" is not an integer`, nil},
		{"threshold without of", auth + strings.Replace(env, "[ci]", "{threshold: 1}", 1), 9, "needs both threshold and of", nil},
		{"duplicate in of", auth + strings.Replace(env, "[ci]", "{threshold: 2, of: [ci, ci]}", 1), 9, `authority "ci" is listed twice`, nil},
		{"duplicate in require list", auth + strings.Replace(env, "[ci]", "[ci, ci]", 1), 9, `authority "ci" is listed twice`, nil},
		{"require as a string", auth + strings.Replace(env, "[ci]", "ci", 1), 9, "must be a list of authorities or {threshold", nil},
		{"empty require", auth + strings.Replace(env, "[ci]", "[]", 1), 9, "require must not be empty", nil},
		{"missing require", auth + "environments:\n  - name: dev\n    repositories: [\"**\"]\n", 7, "needs require", nil},
		{"roots and keys", strings.Replace(auth, "    identities:", "    keys: [keys/release.pub]\n    identities:", 1) + env, 5, "has both roots and keys", nil},
		{"neither roots nor keys", "version: 1\nauthorities:\n  - name: ci\n    identities: [\"CN=ci\"]\n" + env, 3, "needs roots (CA certificate files) or keys", nil},
		{"missing root file", strings.Replace(auth, "ca/root.crt", "ca/nope.crt", 1) + env, 4, `authority "ci": roots: ca/nope.crt (` + filepath.Join(k.dir, "ca/nope.crt") + "): no such file", fs.ErrNotExist},
		{"root is a directory", strings.Replace(auth, "ca/root.crt", "bad/dir.crt", 1) + env, 4, "roots: bad/dir.crt (" + filepath.Join(k.dir, "bad/dir.crt") + "): not a regular file", nil},
		{"root is not PEM", strings.Replace(auth, "ca/root.crt", "bad/garbage.crt", 1) + env, 4, "bad/garbage.crt: no PEM certificate, and not a DER certificate", nil},
		{"root file holds a private key", strings.Replace(auth, "ca/root.crt", "bad/key-in-roots.crt", 1) + env, 4, "holds a private key", nil},
		{"root is a leaf", strings.Replace(auth, "ca/root.crt", "bad/leaf.crt", 1) + env, 4, "bad/leaf.crt: certificate 1 (C=US, ST=WA, O=Example, CN=ci) is not a CA certificate", nil},
		{"missing key file", "version: 1\nauthorities:\n  - name: ci\n    keys: [keys/nope.pub]\n" + env, 4, `authority "ci": keys: keys/nope.pub (`, fs.ErrNotExist},
		{"key file is a certificate", "version: 1\nauthorities:\n  - name: ci\n    keys: [bad/cert.pub]\n" + env, 4, "certificates belong in roots", nil},
		{"empty key file", "version: 1\nauthorities:\n  - name: ci\n    keys: [bad/empty.pub]\n" + env, 4, "no PEM public key found", nil},
		{"key authority with identities", "version: 1\nauthorities:\n  - name: ci\n    keys: [keys/release.pub]\n    identities: [\"CN=ci\"]\n" + env, 5, "identities applies to certificates", nil},
		{"missing CRL file", auth + "    crls: [ca/nope.crl]\n" + env, 6, `authority "ci": crls: ca/nope.crl (`, fs.ErrNotExist},
		{"bad CRL", auth + "    crls: [bad/garbage.crl]\n" + env, 6, "bad/garbage.crl: CRL 1:", nil},
		{"CRL from another CA", auth + "    crls: [untrusted/root.crl]\n" + env, 6, "is not signed by any of the authority's roots", nil},
		{"roots without identities", "version: 1\nauthorities:\n  - name: ci\n    roots: [ca/root.crt]\n" + env, 4, "needs identities", nil},
		{"bad identity", strings.Replace(auth, `"CN=ci"`, `"CN"`, 1) + env, 5, `identities: "CN": `, ErrInvalidSubject},
		{"unknown identity attribute", strings.Replace(auth, `"CN=ci"`, `"XX=1, CN=ci"`, 1) + env, 5, "unknown attribute type", ErrInvalidSubject},
		{"uri wildcard inside host", auth + "    uris: [\"https://ci.example.com*\"]\n" + env, 6, `"*" is only allowed as the last path segment`, nil},
		{"uri wildcard in the middle", auth + "    uris: [\"https://ci.example.com/*/x\"]\n" + env, 6, `"*" is only allowed at the end`, nil},
		{"uri without scheme", auth + "    uris: [\"ci.example.com/*\"]\n" + env, 6, "not an absolute URI with a host", nil},
		{"bad authority glob", auth + "    repositories: [\"Team/*\"]\n" + env, 6, "invalid repository glob", nil},
		{"bad environment glob", auth + strings.Replace(env, `["**"]`, `["team/a**"]`, 1), 8, "invalid repository glob", nil},
		{"environment without repositories", auth + "environments:\n  - name: dev\n    require: [ci]\n", 7, "needs repositories", nil},
		{"environment with empty repositories", auth + strings.Replace(env, `["**"]`, "[]", 1), 8, "repositories must not be empty", nil},
		{"alias", auth + "    repositories: &r [\"**\"]\n" + strings.Replace(env, `["**"]`, "*r", 1), 9, "anchors and aliases are not supported", nil},
		{"list where a string belongs", auth + strings.Replace(env, "name: dev", "name: [dev]", 1), 7, "expected a string, not a list", nil},
		{"custom tag", auth + strings.Replace(env, "name: dev", "name: !env dev", 1), 7, "tag !env is not supported", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := k.write(t, "policy.yaml", tc.policy)
			_, err := LoadPolicy(path)
			if err == nil {
				t.Fatalf("LoadPolicy succeeded; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "trust policy "+path) {
				t.Errorf("error %q does not start with the policy path", err)
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("error %v does not wrap ErrInvalidPolicy", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *PolicyError", err)
			}
			if tc.line != 0 && pe.Line != tc.line {
				t.Errorf("error %q is on line %d, want %d", err, pe.Line, tc.line)
			}
		})
	}
}

func TestLoadPolicyMissingFile(t *testing.T) {
	_, err := LoadPolicy(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("LoadPolicy(missing) = %v, want fs.ErrNotExist and ErrInvalidPolicy", err)
	}
}

func TestParsePolicyTooLarge(t *testing.T) {
	data := []byte("version: 1\n" + strings.Repeat("#", MaxPolicySize))
	if _, err := ParsePolicy(data, t.TempDir()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("ParsePolicy(huge) = %v, want a size error", err)
	}
}

func TestPolicyVersion(t *testing.T) {
	k := newPolicyPKI(t)
	policy := readTestdata(t, "environments.yaml")
	v1 := k.load(t, policy).Version()
	if v2 := k.load(t, policy).Version(); v2 != v1 {
		t.Errorf("same files, different versions: %s, %s", v1, v2)
	}
	if v2 := k.load(t, policy+"# a comment\n").Version(); v2 == v1 {
		t.Error("a changed policy file kept its version")
	}
	// A new CRL must change the version: cached decisions depend on it.
	k.writePEM(t, "ca/root.crl", "X509 CRL", k.crl(t, k.root, k.rootKey, k.now.Add(time.Hour)))
	if v2 := k.load(t, policy).Version(); v2 == v1 {
		t.Error("a changed CRL file kept the policy version")
	}
}

func TestSubjectPatternMatch(t *testing.T) {
	subject := pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{"Example"},
		OrganizationalUnit: []string{"Build"}, CommonName: "ci"}
	var names []pkix.AttributeTypeAndValue
	for _, rdn := range subject.ToRDNSequence() {
		names = append(names, rdn...)
	}
	tests := []struct {
		pattern string
		want    bool
	}{
		{"C=US, ST=WA, O=Example, OU=Build, CN=ci", true},
		{"CN=ci, O=Example, ST=WA, C=US", true}, // order does not matter
		{"cn=ci,o=Example", true},               // nor case of types, nor spaces
		{"CN=ci", true},                         // a subset is enough
		{"CN=CI", false},                        // values are exact
		{"CN=ci, O=Other", false},
		{"CN=ci, L=Seattle", false}, // an attribute the subject lacks
		{"CN=c", false},
	}
	for _, tc := range tests {
		sp, err := parseSubjectPattern(tc.pattern)
		if err != nil {
			t.Fatalf("parseSubjectPattern(%q): %v", tc.pattern, err)
		}
		if got := sp.matches(names); got != tc.want {
			t.Errorf("%q matches %v = %v, want %v", tc.pattern, subject, got, tc.want)
		}
	}
}

func TestURIPattern(t *testing.T) {
	tests := []struct {
		pattern, uri string
		want         bool
	}{
		{"https://ci.example.com/pipelines/42", "https://ci.example.com/pipelines/42", true},
		{"https://ci.example.com/pipelines/42", "https://ci.example.com/pipelines/421", false},
		{"https://ci.example.com/*", "https://ci.example.com/pipelines/42", true},
		{"https://ci.example.com/*", "https://ci.example.com/", false}, // "*" needs at least one character
		{"https://ci.example.com/*", "https://ci.example.com.evil.org/x", false},
		{"https://ci.example.com/*", "http://ci.example.com/x", false},
		{"https://ci.example.com/pipelines/*", "https://ci.example.com/other/1", false},
	}
	for _, tc := range tests {
		if err := validateURIPattern(tc.pattern); err != nil {
			t.Fatalf("validateURIPattern(%q): %v", tc.pattern, err)
		}
		if got := matchURIPattern(tc.pattern, tc.uri); got != tc.want {
			t.Errorf("matchURIPattern(%q, %q) = %v, want %v", tc.pattern, tc.uri, got, tc.want)
		}
	}
}

// FuzzParsePolicy checks that no input makes ParsePolicy panic, that every
// error is a *PolicyError wrapping ErrInvalidPolicy, and that every policy
// it accepts keeps its invariants and can be evaluated. The test PKI's
// files are in baseDir, so mutations of the seeds reach the file loaders.
//
//	go test ./internal/trust -run '^$' -fuzz FuzzParsePolicy -fuzztime 20s
func FuzzParsePolicy(f *testing.F) {
	k := newPolicyPKI(f)
	example := readTestdata(f, "issue-example.yaml")
	environments := readTestdata(f, "environments.yaml")
	for _, s := range []string{
		example,
		environments,
		strings.Replace(example, "roots:", "rots:", 1),
		strings.Replace(example, "threshold: 2", "threshold: 0", 1),
		strings.Replace(example, "of: [ci, security]", "of: [ci, ci]", 1),
		strings.Replace(example, `["prod/*"]`, "[]", 1),
		strings.Replace(example, "version: 1", "version: 2", 1),
		strings.Replace(environments, "keys/release.pub", "ca/root.crt", 1),
		strings.Replace(environments, "ca/root.crl", "ca/stale.crl", 1),
		strings.Replace(environments, `"https://ci.example.com/*"`, `"https://*"`, 1),
		"version: 1\nauthorities: &a [x]\nenvironments: *a\n",
		"version: 1\n---\nversion: 1\n",
		"{version: 1, authorities: [{name: a, keys: [keys/release.pub]}], environments: [{name: b, repositories: ['**'], require: [a]}]}",
		"",
		"\x00\xff",
	} {
		f.Add([]byte(s))
	}
	sig := SignatureFact{Format: "notation-jws", Ref: "sha256:0", SignedDigest: policyDigest, Verified: true,
		Chain: []*x509.Certificate{k.ci}, SignedAt: k.now.Add(-time.Hour)}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data, k.dir)
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v (%T) is not a *PolicyError wrapping ErrInvalidPolicy", err, err)
			}
			return
		}
		if p.Version() == "" || len(p.Authorities) == 0 || len(p.Environments) == 0 {
			t.Fatalf("accepted policy without version, authorities or environments: %+v", p)
		}
		for _, a := range p.Authorities {
			if (len(a.Roots) == 0) == (len(a.Keys) == 0) {
				t.Fatalf("authority %s has %d roots and %d keys", a.Name, len(a.Roots), len(a.Keys))
			}
		}
		for _, e := range p.Environments {
			r := e.Require
			if r.Threshold < 1 || r.Threshold > len(r.Of) || len(e.Repositories) == 0 {
				t.Fatalf("environment %s: bad requirement %+v or no repositories", e.Name, r)
			}
			for _, name := range r.Of {
				if _, ok := p.Authority(name); !ok {
					t.Fatalf("environment %s requires unknown authority %s", e.Name, name)
				}
			}
			d, err := p.Evaluate("prod/app", policyDigest, e.Name, []SignatureFact{sig, sig}, k.now)
			if err != nil {
				t.Fatalf("Evaluate(%s): %v", e.Name, err)
			}
			if len(d.Signatures) != 2 || len(d.Satisfied) > len(r.Of) || d.Allowed && len(d.Satisfied) < r.Threshold {
				t.Fatalf("Evaluate(%s) = %+v", e.Name, d)
			}
		}
	})
}
