package trust

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the tests' clock: fixed, so validity periods can be compared
// exactly.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

var (
	oidExtKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
)

func extension(c *x509.Certificate, oid asn1.ObjectIdentifier) (pkix.Extension, bool) {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e, true
		}
	}
	return pkix.Extension{}, false
}

// newTestCA makes a CA in a fresh temporary directory.
func newTestCA(t *testing.T, mod func(*CAOptions)) *CA {
	t.Helper()
	opts := CAOptions{Dir: filepath.Join(t.TempDir(), "ca"), Organization: "Example", Country: "US", State: "WA", Now: fixedNow(t0)}
	if mod != nil {
		mod(&opts)
	}
	ca, err := InitCA(opts)
	if err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	return ca
}

func mustSubject(t *testing.T, s string) pkix.Name {
	t.Helper()
	n, err := ParseSubject(s)
	if err != nil {
		t.Fatalf("ParseSubject(%q): %v", s, err)
	}
	return n
}

// issue issues a leaf and writes NAME.crt and NAME.key next to the CA, as
// the CLI would; it returns the parsed chain.
func issue(t *testing.T, ca *CA, req IssueRequest) ([]*x509.Certificate, []byte, []byte) {
	t.Helper()
	chainPEM, keyPEM, err := ca.Issue(req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	chain, err := ParseCertificates(chainPEM)
	if err != nil {
		t.Fatal(err)
	}
	return chain, chainPEM, keyPEM
}

func TestInitCA(t *testing.T) {
	ca := newTestCA(t, nil)
	for name, want := range map[string]os.FileMode{"": 0o700, RootKeyFile: 0o600, RootCertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(ca.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%q: mode %v, want %v", name, got, want)
		}
	}
	c := ca.Cert
	if err := c.CheckSignatureFrom(c); err != nil || !bytes.Equal(c.RawIssuer, c.RawSubject) {
		t.Errorf("root is not self-signed: %v", err)
	}
	if !c.BasicConstraintsValid || !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: valid=%v CA=%v pathlen=%d zero=%v; want CA:true, pathlen 0", c.BasicConstraintsValid, c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %b, want certSign|cRLSign", c.KeyUsage)
	}
	for _, oid := range []asn1.ObjectIdentifier{oidExtKeyUsage, oidExtBasicConstraints} {
		if e, ok := extension(c, oid); !ok || !e.Critical {
			t.Errorf("extension %v: present=%v critical=%v, want critical", oid, ok, e.Critical)
		}
	}
	if len(c.ExtKeyUsage) != 0 {
		t.Errorf("root has EKU %v", c.ExtKeyUsage)
	}
	if got := FormatSubject(c.Subject); got != "C=US, ST=WA, O=Example, CN=Example Root CA" {
		t.Errorf("subject %q", got)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() || c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("root key %T / %v, want ECDSA P-256 with SHA-256", c.PublicKey, c.SignatureAlgorithm)
	}
	if len(c.SubjectKeyId) != 20 {
		t.Errorf("subject key id %x", c.SubjectKeyId)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 || c.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %v: want positive, random, at most 128 bits", c.SerialNumber)
	}
	if !c.NotAfter.Equal(t0.Add(DefaultCAValidity)) || !c.NotBefore.Equal(t0.Add(-issueBackdate)) {
		t.Errorf("validity %v – %v", c.NotBefore, c.NotAfter)
	}
	if ca.KeyEncrypted() {
		t.Error("KeyEncrypted without a passphrase")
	}
	// Two roots never share a serial or a key.
	other := newTestCA(t, nil)
	if other.Cert.SerialNumber.Cmp(c.SerialNumber) == 0 || bytes.Equal(other.Cert.SubjectKeyId, c.SubjectKeyId) {
		t.Error("two CAs share a serial or a key")
	}
}

func TestInitCAWithoutCountryAndState(t *testing.T) {
	ca := newTestCA(t, func(o *CAOptions) { o.Country, o.State = "", "" })
	if got := FormatSubject(ca.Cert.Subject); got != "O=Example, CN=Example Root CA" {
		t.Errorf("subject %q", got)
	}
}

func TestInitCARefusesOverwrite(t *testing.T) {
	ca := newTestCA(t, nil)
	leaf, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example, CN=ci")})
	if err := ca.Revoke(leaf[0], ReasonSuperseded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, _ := os.ReadFile(filepath.Join(ca.Dir, name))
		return b
	}
	oldCert, oldKey := read(RootCertFile), read(RootKeyFile)

	_, err := InitCA(CAOptions{Dir: ca.Dir, Organization: "Other", Now: fixedNow(t0)})
	if !errors.Is(err, ErrCAExists) {
		t.Fatalf("second init: %v, want ErrCAExists", err)
	}
	if !bytes.Equal(read(RootCertFile), oldCert) || !bytes.Equal(read(RootKeyFile), oldKey) {
		t.Fatal("a refused init changed the CA")
	}
	// Only the key left behind (a crashed init): still refused.
	os.Remove(filepath.Join(ca.Dir, RootCertFile))
	if _, err := InitCA(CAOptions{Dir: ca.Dir, Organization: "Other"}); !errors.Is(err, ErrCAExists) {
		t.Fatalf("init over a lone root.key: %v, want ErrCAExists", err)
	}

	ca2, err := InitCA(CAOptions{Dir: ca.Dir, Organization: "Other", Force: true, Now: fixedNow(t0)})
	if err != nil {
		t.Fatalf("forced init: %v", err)
	}
	if bytes.Equal(read(RootKeyFile), oldKey) || ca2.Cert.Subject.Organization[0] != "Other" {
		t.Fatal("forced init did not replace the CA")
	}
	for _, name := range []string{RevokedFile, CRLFile} {
		if _, err := os.Stat(filepath.Join(ca.Dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("forced init kept the old CA's %s", name)
		}
	}
	if _, err := LoadCA(ca.Dir, nil); err != nil {
		t.Fatalf("LoadCA after forced init: %v", err)
	}
}

func TestInitCAInvalidOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts CAOptions
		want string
	}{
		{"no dir", CAOptions{Organization: "Example"}, "directory"},
		{"no organization", CAOptions{Dir: dir}, "organization"},
		{"blank organization", CAOptions{Dir: dir, Organization: "  "}, "organization"},
		{"country lower case", CAOptions{Dir: dir, Organization: "Example", Country: "us"}, "two-letter"},
		{"country three letters", CAOptions{Dir: dir, Organization: "Example", Country: "USA"}, "two-letter"},
		{"organization too long", CAOptions{Dir: dir, Organization: strings.Repeat("x", 65)}, "O (organization)"},
		{"organization with a newline", CAOptions{Dir: dir, Organization: "Ex\nample"}, "control"},
		{"short passphrase", CAOptions{Dir: dir, Organization: "Example", Passphrase: []byte("short")}, "passphrase too short"},
		{"empty passphrase", CAOptions{Dir: dir, Organization: "Example", Passphrase: []byte{}}, "passphrase too short"},
		{"validity under a day", CAOptions{Dir: dir, Organization: "Example", Validity: time.Hour}, "shorter than a day"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := InitCA(tt.opts)
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("InitCA = %v; want ErrInvalidRequest mentioning %q", err, tt.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused inits left files: %v", entries)
	}
}

// notationLeafProblems checks a signing certificate against the Notary
// Project signature specification's "Certificate Requirements" for leaf
// certificates, written from the specification, independently of the code
// under test.
func notationLeafProblems(c *x509.Certificate) []string {
	var p []string
	if e, ok := extension(c, oidExtBasicConstraints); ok && c.IsCA {
		p = append(p, "basicConstraints present with CA:true")
	} else if ok && !c.BasicConstraintsValid {
		p = append(p, "basicConstraints unparsed "+e.Id.String())
	}
	if e, ok := extension(c, oidExtKeyUsage); !ok || !e.Critical {
		p = append(p, "keyUsage missing or not critical")
	}
	if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		p = append(p, "keyUsage lacks digitalSignature")
	}
	if c.KeyUsage&(x509.KeyUsageKeyEncipherment|x509.KeyUsageDataEncipherment|x509.KeyUsageKeyAgreement|
		x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageEncipherOnly|x509.KeyUsageDecipherOnly) != 0 {
		p = append(p, "keyUsage has forbidden bits")
	}
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageAny, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth,
			x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageTimeStamping, x509.ExtKeyUsageOCSPSigning:
			p = append(p, "forbidden EKU")
		}
	}
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			p = append(p, "RSA key under 2048 bits")
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			p = append(p, "ECDSA key under 256 bits")
		}
	default:
		p = append(p, "key type not allowed")
	}
	switch c.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1:
		p = append(p, "SHA-1 signature")
	}
	for _, f := range [][]string{c.Subject.Country, c.Subject.Province, c.Subject.Organization} {
		if len(f) != 1 {
			p = append(p, "subject lacks C, ST or O")
		}
	}
	return p
}

func TestIssueMeetsNotationAndCosignRequirements(t *testing.T) {
	ca := newTestCA(t, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tests := []struct {
		keyType KeyType
		check   func(any) bool
	}{
		{"", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P256() }},
		{KeyECDSAP256, func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P256() }},
		{KeyECDSAP384, func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P384() }},
		{KeyRSA3072, func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 3072 }},
	}
	for _, tt := range tests {
		t.Run(string(tt.keyType), func(t *testing.T) {
			if tt.keyType == KeyRSA3072 && testing.Short() {
				t.Skip("RSA key generation is slow")
			}
			chain, chainPEM, keyPEM := issue(t, ca, IssueRequest{
				Subject:  mustSubject(t, "C=US, ST=WA, L=Seattle, O=Example, OU=Build, CN=ci"),
				URIs:     []string{"https://ci.example.com/pipelines/build"},
				KeyType:  tt.keyType,
				Validity: 90 * 24 * time.Hour,
			})
			// The chain file: exactly leaf then root, nothing else.
			var types []string
			for rest := chainPEM; ; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				types = append(types, b.Type)
			}
			if len(chain) != 2 || !slices.Equal(types, []string{"CERTIFICATE", "CERTIFICATE"}) {
				t.Fatalf("chain file has %v, want two certificates", types)
			}
			leaf := chain[0]
			if !bytes.Equal(chain[1].Raw, ca.Cert.Raw) {
				t.Fatal("second certificate is not the root")
			}
			if leaf.CheckSignatureFrom(ca.Cert) != nil || bytes.Equal(leaf.RawSubject, leaf.RawIssuer) {
				t.Fatal("first certificate is not a leaf issued by the root")
			}
			if p := notationLeafProblems(leaf); len(p) > 0 {
				t.Errorf("Notation requirements: %v", p)
			}
			// Stricter than Notation: exactly what we promise.
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("key usage %b, want digitalSignature only", leaf.KeyUsage)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}) || len(leaf.UnknownExtKeyUsage) != 0 {
				t.Errorf("EKU %v %v, want codeSigning only", leaf.ExtKeyUsage, leaf.UnknownExtKeyUsage)
			}
			if _, ok := extension(leaf, oidExtExtKeyUsage); !ok {
				t.Error("no EKU extension")
			}
			if !leaf.BasicConstraintsValid || leaf.IsCA {
				t.Error("want basicConstraints CA:false present")
			}
			if got := FormatSubject(leaf.Subject); got != "C=US, ST=WA, L=Seattle, O=Example, OU=Build, CN=ci" {
				t.Errorf("subject %q", got)
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "https://ci.example.com/pipelines/build" {
				t.Errorf("URI SANs %v", leaf.URIs)
			}
			if !bytes.Equal(leaf.AuthorityKeyId, ca.Cert.SubjectKeyId) || len(leaf.SubjectKeyId) == 0 {
				t.Errorf("AKI %x (root SKI %x), SKI %x", leaf.AuthorityKeyId, ca.Cert.SubjectKeyId, leaf.SubjectKeyId)
			}
			if !leaf.NotBefore.Equal(t0.Add(-issueBackdate)) || !leaf.NotAfter.Equal(t0.Add(90*24*time.Hour)) {
				t.Errorf("validity %v – %v", leaf.NotBefore, leaf.NotAfter)
			}
			if leaf.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 || leaf.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %v", leaf.SerialNumber)
			}
			// cosign and notation verify with code signing as the usage.
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
				t.Errorf("Verify for code signing: %v", err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Error("leaf verifies for serverAuth")
			}
			// The key: unencrypted PKCS#8, matching the certificate.
			b, _ := pem.Decode(keyPEM)
			if b == nil || b.Type != "PRIVATE KEY" {
				t.Fatalf("key PEM type %v, want PRIVATE KEY", b)
			}
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(k) {
				t.Errorf("key %T, want %s", k, tt.keyType)
			}
			if !publicKeysEqual(k.(crypto.Signer).Public(), leaf.PublicKey) {
				t.Error("key does not match the certificate")
			}
		})
	}
}

func TestIssueValidity(t *testing.T) {
	ca := newTestCA(t, func(o *CAOptions) { o.Validity = 30 * 24 * time.Hour })
	// Asking for more than the CA has left: capped at the CA's NotAfter.
	chain, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example"), Validity: 365 * 24 * time.Hour})
	if !chain[0].NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want capped at the CA's %v", chain[0].NotAfter, ca.Cert.NotAfter)
	}
	// Default: a year (here capped too).
	ca2 := newTestCA(t, nil)
	chain, _, _ = issue(t, ca2, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example")})
	if !chain[0].NotAfter.Equal(t0.Add(DefaultLeafValidity)) {
		t.Errorf("default NotAfter %v", chain[0].NotAfter)
	}
	// A CA that has expired, or is not valid yet, issues nothing.
	for _, at := range []time.Time{ca.Cert.NotAfter, ca.Cert.NotAfter.Add(time.Hour), ca.Cert.NotBefore.Add(-time.Hour)} {
		ca.Now = fixedNow(at)
		if _, _, err := ca.Issue(IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example")}); !errors.Is(err, ErrCAExpired) {
			t.Errorf("issue at %v: %v, want ErrCAExpired", at, err)
		}
	}
}

func TestIssueRejects(t *testing.T) {
	ca := newTestCA(t, nil)
	good := mustSubject(t, "C=US, ST=WA, O=Example, CN=ci")
	tests := []struct {
		name string
		req  IssueRequest
		is   error
		want string
	}{
		{"no C", IssueRequest{Subject: mustSubject(t, "ST=WA, O=Example, CN=ci")}, ErrInvalidSubject, "missing C (country)"},
		{"no ST", IssueRequest{Subject: mustSubject(t, "C=US, O=Example, CN=ci")}, ErrInvalidSubject, "missing ST (state or province)"},
		{"no O", IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, CN=ci")}, ErrInvalidSubject, "missing O (organization)"},
		{"only CN", IssueRequest{Subject: mustSubject(t, "CN=ci")}, ErrInvalidSubject, "C (country), ST (state or province), O (organization)"},
		{"two O built in code", IssueRequest{Subject: pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{"A", "B"}}}, ErrInvalidSubject, "O given 2 times"},
		{"bad country built in code", IssueRequest{Subject: pkix.Name{Country: []string{"usa"}, Province: []string{"WA"}, Organization: []string{"A"}}}, ErrInvalidSubject, "two-letter"},
		{"extra attribute", IssueRequest{Subject: pkix.Name{Country: []string{"US"}, Province: []string{"WA"}, Organization: []string{"A"}, SerialNumber: "1"}}, ErrInvalidSubject, "only C, ST"},
		{"relative URI", IssueRequest{Subject: good, URIs: []string{"/pipelines/build"}}, ErrInvalidRequest, "absolute URI"},
		{"URI with space", IssueRequest{Subject: good, URIs: []string{"https://ci.example.com/a b"}}, ErrInvalidRequest, "spaces"},
		{"URI twice", IssueRequest{Subject: good, URIs: []string{"https://a.example/", "https://a.example/"}}, ErrInvalidRequest, "twice"},
		{"URI too long", IssueRequest{Subject: good, URIs: []string{"https://a.example/" + strings.Repeat("a", 3000)}}, ErrInvalidRequest, "too long"},
		{"unknown key type", IssueRequest{Subject: good, KeyType: "ed25519"}, ErrInvalidRequest, "unknown key type"},
		{"tiny validity", IssueRequest{Subject: good, Validity: time.Second}, ErrInvalidRequest, "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, k, err := ca.Issue(tt.req)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) || c != nil || k != nil {
				t.Fatalf("Issue = %v; want %v mentioning %q", err, tt.is, tt.want)
			}
		})
	}
}

func TestLoadCA(t *testing.T) {
	pass := []byte("correct horse battery staple")
	enc := newTestCA(t, func(o *CAOptions) { o.Passphrase = pass })
	plain := newTestCA(t, nil)

	keyFile, err := os.ReadFile(filepath.Join(enc.Dir, RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("encrypted file holds no plaintext key", func(t *testing.T) {
		b, rest := pem.Decode(keyFile)
		if b == nil || b.Type != "ENCRYPTED PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
			t.Fatalf("root.key is not one ENCRYPTED PRIVATE KEY block: %q", keyFile)
		}
		if bytes.Contains(keyFile, []byte("BEGIN PRIVATE KEY")) || bytes.Contains(keyFile, []byte("BEGIN EC PRIVATE KEY")) {
			t.Fatal("root.key contains a plaintext key block")
		}
		der, _ := x509.MarshalPKCS8PrivateKey(enc.key)
		d := enc.key.(*ecdsa.PrivateKey).D.Bytes()
		if bytes.Contains(b.Bytes, der) || bytes.Contains(b.Bytes, d) || bytes.Contains(keyFile, d) {
			t.Fatal("root.key contains the private key in the clear")
		}
		if !enc.KeyEncrypted() || !IsEncryptedKey(keyFile) {
			t.Error("KeyEncrypted/IsEncryptedKey = false")
		}
	})

	tests := []struct {
		name string
		dir  string
		pass []byte
		is   error
	}{
		{"encrypted, right passphrase", enc.Dir, pass, nil},
		{"encrypted, wrong passphrase", enc.Dir, []byte("correct horse battery stapler"), ErrWrongPassphrase},
		{"encrypted, no passphrase", enc.Dir, nil, ErrPassphraseRequired},
		{"encrypted, empty passphrase", enc.Dir, []byte{}, ErrPassphraseRequired},
		{"unencrypted", plain.Dir, nil, nil},
		{"unencrypted, passphrase ignored", plain.Dir, pass, nil},
		{"no CA", t.TempDir(), nil, ErrNoCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, err := LoadCA(tt.dir, tt.pass)
			if tt.is != nil {
				if !errors.Is(err, tt.is) || ca != nil {
					t.Fatalf("LoadCA = %v; want %v", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCA: %v", err)
			}
			if ca.Cert.SerialNumber.Cmp(map[string]*CA{enc.Dir: enc, plain.Dir: plain}[tt.dir].Cert.SerialNumber) != 0 {
				t.Fatal("loaded another certificate")
			}
			// The loaded CA issues certificates that chain to its root.
			ca.Now = fixedNow(t0)
			chain, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example, CN=x")})
			if err := chain[0].CheckSignatureFrom(ca.Cert); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("wrong passphrase error is readable", func(t *testing.T) {
		_, err := LoadCA(enc.Dir, []byte("nope-nope-nope"))
		if err == nil || !strings.Contains(err.Error(), "wrong passphrase") || !strings.Contains(err.Error(), RootKeyFile) {
			t.Fatalf("error %q should say wrong passphrase and name the file", err)
		}
	})
	t.Run("key of another CA", func(t *testing.T) {
		other := newTestCA(t, nil)
		k, _ := os.ReadFile(filepath.Join(other.Dir, RootKeyFile))
		if err := os.WriteFile(filepath.Join(plain.Dir, RootKeyFile), k, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCA(plain.Dir, nil); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("LoadCA = %v; want ErrKeyMismatch", err)
		}
	})
	t.Run("leaf certificate as root.crt", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ca")
		ca := newTestCA(t, func(o *CAOptions) { o.Dir = dir })
		_, chainPEM, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example")})
		os.WriteFile(filepath.Join(dir, RootCertFile), chainPEM, 0o644)
		if _, err := LoadCA(dir, nil); err == nil || !strings.Contains(err.Error(), "not a CA") {
			t.Fatalf("LoadCA = %v; want 'not a CA'", err)
		}
	})
}

func TestParseSubject(t *testing.T) {
	long := strings.Repeat("a", 10*1024)
	tests := []struct {
		in   string
		want string // FormatSubject of the result; "" = error
		err  string // part of the error message
	}{
		{in: "C=US, ST=WA, O=Example, CN=ci", want: "C=US, ST=WA, O=Example, CN=ci"},
		{in: "CN=ci,O=Example,ST=WA,C=US", want: "C=US, ST=WA, O=Example, CN=ci"},
		{in: "  C = US ,ST=WA  ,  O=Example  ", want: "C=US, ST=WA, O=Example"},
		{in: "C=US, ST=WA, L=Seattle, O=Example, OU=Build, CN=ci", want: "C=US, ST=WA, L=Seattle, O=Example, OU=Build, CN=ci"},
		{in: "c=US, st=WA, o=Example, cn=ci", want: "C=US, ST=WA, O=Example, CN=ci"},
		{in: "C=US, S=WA, O=Example", want: "C=US, ST=WA, O=Example"},
		{in: `O=Example\, Inc., C=US`, want: `C=US, O=Example\, Inc.`},
		{in: `O=a\+b\=c\;d\<e\>f\"g\\h`, want: `O=a\+b\=c\;d\<e\>f\"g\\h`},
		{in: `O=\#1`, want: `O=\#1`},
		{in: `O=a#1`, want: `O=a#1`},
		{in: `O=caf\C3\A9`, want: "O=café"},
		{in: "O=Zürich AG, L=東京, CN=Ωmega ci", want: "L=東京, O=Zürich AG, CN=Ωmega ci"},
		{in: "O=Example  Two  Spaces", want: "O=Example  Two  Spaces"},
		{in: "CN=" + strings.Repeat("x", 64), want: "CN=" + strings.Repeat("x", 64)},
		{in: "ST=" + strings.Repeat("é", 128), want: "ST=" + strings.Repeat("é", 128)},

		{in: "", err: "empty"},
		{in: "   ", err: "empty"},
		{in: "C=US, ST=WA, O=Example,", err: "trailing ','"},
		{in: "C=US,, O=Example", err: "want TYPE=VALUE"},
		{in: "US", err: "want TYPE=VALUE"},
		{in: "C=US, Example", err: `"Example": want TYPE=VALUE`},
		{in: "E=ci@example.com", err: `unknown attribute type "E"`},
		{in: "emailAddress=ci@example.com", err: "unknown attribute type"},
		{in: "2.5.4.3=ci", err: "unknown attribute type"},
		{in: "SERIALNUMBER=1", err: "unknown attribute type"},
		{in: "=x", err: `unknown attribute type ""`},
		{in: "C=", err: "C (country) is empty"},
		{in: "O= , C=US", err: "O (organization) is empty"},
		{in: "O=Example, O=Evil", err: "O given twice"},
		{in: "OU=a, OU=b", err: "OU given twice"},
		{in: "ST=WA, S=OR", err: "ST given twice"},
		{in: "CN=ci, O=Example, CN=admin", err: "CN given twice"},
		// Injection: a value that tries to smuggle in another attribute.
		{in: "CN=ci, O=Example, C=US, ST=WA, O=Evil", err: "O given twice"},
		{in: "CN=ci=admin", err: `unescaped '='`},
		{in: "O=Example=Evil, C=US", err: `unescaped '='`},
		{in: "CN=a+O=b", err: "unescaped '+'"},
		{in: "CN=a;O=b", err: "unescaped ';'"},
		{in: `CN="quoted"`, err: `unescaped '"'`},
		{in: "CN=<x>", err: "unescaped '<'"},
		{in: "O=#04024869", err: "hex-encoded"},
		{in: `O=abc\`, err: "dangling"},
		{in: `O=a\qb`, err: "bad escape"},
		{in: `O=a\4`, err: "bad escape"},
		{in: `O=\ lead`, err: "leading or trailing space"},
		{in: `O=trail\ `, err: "leading or trailing space"},
		{in: "C=us", err: "two-letter"},
		{in: "C=USA", err: "two-letter"},
		{in: "C=U1", err: "two-letter"},
		{in: "CN=" + strings.Repeat("x", 65), err: "at most 64"},
		{in: "O=" + strings.Repeat("é", 65), err: "at most 64"},
		{in: "CN=" + long, err: "more than"},
		{in: "O=" + strings.Repeat(`\,`, 2100) + ", C=US", err: "more than"},
		{in: strings.Repeat("CN=a, ", 2000), err: "more than"},
		{in: "CN=a\x00b", err: "control"},
		{in: `CN=a\00b`, err: "control"},
		{in: "CN=a\nb", err: "control"},
		{in: "CN=a\u200bb", err: "non-printable"},
		{in: "CN=a\u00a0b", err: "non-printable"},
		{in: "CN=\xff\xfe", err: "UTF-8"},
		{in: `CN=\FF`, err: "UTF-8"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			n, err := ParseSubject(tt.in)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidSubject) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSubject = %q, %v; want ErrInvalidSubject mentioning %q", FormatSubject(n), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSubject: %v", err)
			}
			if got := FormatSubject(n); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A parsed subject survives the trip into a certificate and Go's RFC 2253
// rendering, which is what Notation matches trust policy identities
// against.
func TestParsedSubjectInCertificate(t *testing.T) {
	ca := newTestCA(t, nil)
	n := mustSubject(t, `C=DE, ST=Bayern, L=München, O=Beispiel\, GmbH, OU=a\+b, CN=ci`)
	chain, _, _ := issue(t, ca, IssueRequest{Subject: n})
	if got := chain[0].Subject.String(); got != `CN=ci,OU=a\+b,O=Beispiel\, GmbH,L=München,ST=Bayern,C=DE` {
		t.Errorf("certificate subject %q", got)
	}
	back, err := ParseSubject(FormatSubject(chain[0].Subject))
	if err != nil || FormatSubject(back) != FormatSubject(n) {
		t.Errorf("round trip through the certificate: %q, %v", FormatSubject(back), err)
	}
}

func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{
		"C=US, ST=WA, O=Example, CN=ci", `O=Example\, Inc.`, `CN=caf\C3\A9`, "CN=a+O=b", "O=#00",
		"C=US,,", "ST=x, S=y", `O=\ `, "CN=東京", "cn=x, ou=y, l=z", "=", `\`, "CN=a\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSubject(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSubject) {
				t.Fatalf("error %v is not ErrInvalidSubject", err)
			}
			return
		}
		// Every accepted value is one valid attribute of a known type.
		for _, a := range subjectAttrs {
			var vals []string
			if a.field == nil {
				if n.CommonName != "" {
					vals = []string{n.CommonName}
				}
			} else {
				vals = *a.field(&n)
			}
			if len(vals) > 1 {
				t.Fatalf("%q: %s has %d values", s, a.typ, len(vals))
			}
			for _, v := range vals {
				if err := checkSubjectValue(&a, v); err != nil {
					t.Fatalf("%q: accepted a bad value: %v", s, err)
				}
			}
		}
		// Canonical formatting round-trips.
		f1 := FormatSubject(n)
		n2, err := ParseSubject(f1)
		if err != nil || FormatSubject(n2) != f1 {
			t.Fatalf("%q → %q → %q, %v", s, f1, FormatSubject(n2), err)
		}
		// The name encodes as a certificate subject.
		if _, err := asn1.Marshal(n.ToRDNSequence()); err != nil {
			t.Fatalf("%q: marshal: %v", s, err)
		}
	})
}

// ---- OpenSSL as an independent oracle ----

// requireOpenSSL returns the path of openssl, or skips the test where it
// is absent, except under CI: openssl is on every fresh machine (Debian's
// ca-certificates depends on it), so there a missing tool is a failure,
// not a reason to test less.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl not found; it is needed as an independent check of the PKI (apt-get install openssl)")
		}
		t.Skip("openssl not installed")
	}
	return p
}

func runOpenSSL(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func TestOpenSSLAcceptsChainAndCRL(t *testing.T) {
	bin := requireOpenSSL(t)
	// OpenSSL checks validity against the real clock.
	ca := newTestCA(t, func(o *CAOptions) { o.Now = nil })
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootPath := filepath.Join(ca.Dir, RootCertFile)
	var leaves []string
	for _, name := range []string{"ci", "security"} {
		chainPEM, keyPEM, err := ca.Issue(IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example, CN="+name),
			URIs: []string{"https://ci.example.com/" + name}})
		if err != nil {
			t.Fatal(err)
		}
		chain, _ := ParseCertificates(chainPEM)
		leaves = append(leaves, write(name+".leaf.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0].Raw})))
		write(name+".crt", chainPEM)
		keyPath := write(name+".key", keyPEM)
		// OpenSSL reads the PKCS#8 key and finds the certificate's public key in it.
		pub, err := runOpenSSL(t, bin, "pkey", "-in", keyPath, "-pubout")
		if err != nil {
			t.Fatalf("openssl pkey: %v\n%s", err, pub)
		}
		der, _ := x509.MarshalPKIXPublicKey(chain[0].PublicKey)
		if strings.TrimSpace(pub) != strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))) {
			t.Errorf("openssl derives another public key from %s.key", name)
		}
	}
	for _, leaf := range leaves {
		out, err := runOpenSSL(t, bin, "verify", "-CAfile", rootPath, "-purpose", "any", leaf)
		if err != nil || !strings.Contains(out, ": OK") {
			t.Fatalf("openssl verify %s: %v\n%s", leaf, err, out)
		}
		out, err = runOpenSSL(t, bin, "x509", "-in", leaf, "-noout", "-text")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"X509v3 Key Usage: critical", "Digital Signature", "Code Signing", "CA:FALSE", "URI:https://ci.example.com/"} {
			if !strings.Contains(out, want) {
				t.Errorf("openssl x509 -text lacks %q:\n%s", want, out)
			}
		}
	}
	out, err := runOpenSSL(t, bin, "x509", "-in", rootPath, "-noout", "-text")
	if err != nil || !strings.Contains(out, "CA:TRUE, pathlen:0") || !strings.Contains(out, "Certificate Sign, CRL Sign") {
		t.Errorf("root as openssl sees it: %v\n%s", err, out)
	}

	chains, _ := ParseCertificates(mustRead(t, leaves[0]))
	if err := ca.Revoke(chains[0], ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	crlPath := filepath.Join(ca.Dir, CRLFile)
	out, err = runOpenSSL(t, bin, "crl", "-in", crlPath, "-noout", "-text")
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	for _, want := range []string{"Serial Number: " + SerialHex(chains[0].SerialNumber), "Key Compromise", "X509v3 CRL Number:", "X509v3 Authority Key Identifier", "Next Update:"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl crl -text lacks %q:\n%s", want, out)
		}
	}
	out, err = runOpenSSL(t, bin, "crl", "-in", crlPath, "-CAfile", rootPath, "-noout")
	if err != nil || !strings.Contains(out, "verify OK") {
		t.Errorf("openssl crl signature check: %v\n%s", err, out)
	}
	// With the CRL, openssl refuses the revoked leaf and accepts the other.
	out, err = runOpenSSL(t, bin, "verify", "-crl_check", "-CRLfile", crlPath, "-CAfile", rootPath, "-purpose", "any", leaves[0])
	if err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify -crl_check accepted the revoked leaf: %v\n%s", err, out)
	}
	out, err = runOpenSSL(t, bin, "verify", "-crl_check", "-CRLfile", crlPath, "-CAfile", rootPath, "-purpose", "any", leaves[1])
	if err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify -crl_check refused the good leaf: %v\n%s", err, out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
