package trust

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Files of a CA directory.
const (
	RootCertFile = "root.crt"     // the root certificate, PEM; public
	RootKeyFile  = "root.key"     // the root key, PKCS#8 PEM, mode 0600, encrypted with a passphrase
	RevokedFile  = "revoked.json" // revocations and the last CRL number
	CRLFile      = "root.crl"     // the current CRL, PEM "X509 CRL"
	caLockFile   = ".lock"        // flock for revoked.json read-modify-write
)

// Defaults.
const (
	DefaultCAValidity   = 3650 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
	DefaultCRLValidity  = 30 * 24 * time.Hour
)

// issueBackdate is how far NotBefore is set before the issuing moment: a CI
// runner whose clock is a little behind the CA's must not sign with a
// certificate that is "not yet valid" for the first minutes.
const issueBackdate = 5 * time.Minute

// Errors callers branch on.
var (
	ErrCAExists       = errors.New("a CA already exists in this directory")
	ErrNoCA           = errors.New("no CA in this directory")
	ErrKeyMismatch    = errors.New("root.key does not belong to root.crt")
	ErrCAExpired      = errors.New("the CA certificate is expired or not yet valid")
	ErrInvalidSubject = errors.New("invalid subject")
	ErrInvalidRequest = errors.New("invalid request")
)

// KeyType names a leaf key algorithm.
type KeyType string

// Leaf key types. All are accepted by Notation (ECDSA P-256/384/521, RSA
// 2048+) and cosign.
const (
	KeyECDSAP256 KeyType = "ecdsa-p256"
	KeyECDSAP384 KeyType = "ecdsa-p384"
	KeyRSA3072   KeyType = "rsa-3072"
)

// ParseKeyType checks a --key-type value.
func ParseKeyType(s string) (KeyType, error) {
	for _, k := range []KeyType{KeyECDSAP256, KeyECDSAP384, KeyRSA3072} {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: unknown key type %q (want ecdsa-p256, ecdsa-p384 or rsa-3072)", ErrInvalidRequest, s)
}

func (k KeyType) generate() (crypto.Signer, error) {
	switch k {
	case KeyECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("%w: unknown key type %q", ErrInvalidRequest, k)
}

// CAOptions configures InitCA.
type CAOptions struct {
	Dir          string // created 0700 if missing, made 0700 otherwise
	Organization string // required; the root is "<Organization> Root CA"
	Country      string // optional, ISO 3166 two-letter code
	State        string // optional

	// Passphrase encrypts root.key at rest (at least 8 bytes). Nil stores
	// the key unencrypted: acceptable only for a directory that is itself
	// kept offline or in a secret store.
	Passphrase []byte

	Validity time.Duration    // 0: DefaultCAValidity
	Force    bool             // replace an existing CA (and drop its revocation list)
	Now      func() time.Time // nil: time.Now
}

// CA is a loaded root CA: its certificate and its key.
type CA struct {
	Dir  string
	Cert *x509.Certificate

	// CRLValidity is how long a CRL signed by Revoke or CRL is valid
	// (nextUpdate − thisUpdate). 0: DefaultCRLValidity.
	CRLValidity time.Duration
	// Now is the clock for Issue and the CRL's thisUpdate. nil: time.Now.
	Now func() time.Time

	key       crypto.Signer
	encrypted bool
}

func (ca *CA) now() time.Time {
	if ca.Now != nil {
		return ca.Now()
	}
	return time.Now()
}

// KeyEncrypted reports whether root.key is encrypted at rest.
func (ca *CA) KeyEncrypted() bool { return ca.encrypted }

// InitCA creates a root CA in opts.Dir: an ECDSA P-256 key and a
// self-signed certificate with CA:true, pathlen 0 (bulwark issues signing
// certificates directly from the root; no intermediate CA may exist),
// KeyUsage certSign|cRLSign, both critical. It refuses to replace an
// existing root.crt or root.key (ErrCAExists) unless opts.Force; with
// Force, the old revocation list and CRL are removed too, since they
// belong to the old root.
func InitCA(opts CAOptions) (*CA, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if opts.Dir == "" {
		return nil, fmt.Errorf("%w: no CA directory", ErrInvalidRequest)
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultCAValidity
	}
	if validity < 24*time.Hour {
		return nil, fmt.Errorf("%w: CA validity %v is shorter than a day", ErrInvalidRequest, validity)
	}
	if opts.Passphrase != nil && len(opts.Passphrase) < minPassphrase {
		return nil, fmt.Errorf("%w: passphrase too short (%d bytes, need at least %d)", ErrInvalidRequest, len(opts.Passphrase), minPassphrase)
	}
	subject := pkix.Name{CommonName: strings.TrimSpace(opts.Organization) + " Root CA"}
	for _, a := range []struct {
		typ, value string
		dst        *[]string
	}{
		{"C", opts.Country, &subject.Country},
		{"ST", opts.State, &subject.Province},
		{"O", opts.Organization, &subject.Organization},
	} {
		v := strings.TrimSpace(a.value)
		if v == "" {
			if a.typ == "O" {
				return nil, fmt.Errorf("%w: an organization is required", ErrInvalidRequest)
			}
			continue
		}
		if err := checkSubjectValue(attrByType[a.typ], v); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		*a.dst = []string{v}
	}
	if err := checkSubjectValue(attrByType["CN"], subject.CommonName); err != nil {
		return nil, fmt.Errorf("%w: organization too long for the root's common name: %w", ErrInvalidRequest, err)
	}

	certPath, keyPath := filepath.Join(opts.Dir, RootCertFile), filepath.Join(opts.Dir, RootKeyFile)
	if !opts.Force {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return nil, fmt.Errorf("%w: %s", ErrCAExists, p)
			}
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	// Also when it existed: the directory holds the root key.
	if err := os.Chmod(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               subject,
		NotBefore:             t.Add(-issueBackdate),
		NotAfter:              t.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	var keyPEM []byte
	if opts.Passphrase != nil {
		keyPEM, err = EncryptPrivateKey(key, opts.Passphrase)
	} else {
		keyPEM, err = MarshalPrivateKey(key)
	}
	if err != nil {
		return nil, err
	}
	if opts.Force {
		for _, name := range []string{RevokedFile, CRLFile} {
			if err := os.Remove(filepath.Join(opts.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("remove the old CA's %s: %w", name, err)
			}
		}
	}
	// Without Force the files are created exclusively: two concurrent
	// `pki init` cannot both believe they made the CA.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600, !opts.Force); err != nil {
		return nil, caExistErr(err, keyPath)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFileAtomic(certPath, certPEM, 0o644, !opts.Force); err != nil {
		return nil, caExistErr(err, certPath)
	}
	return &CA{Dir: opts.Dir, Cert: cert, Now: opts.Now, key: key, encrypted: opts.Passphrase != nil}, nil
}

func caExistErr(err error, path string) error {
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %s", ErrCAExists, path)
	}
	return fmt.Errorf("write %s: %w", path, err)
}

// LoadCA reads the CA in dir. passphrase decrypts an encrypted root.key
// (ErrPassphraseRequired when it is missing, ErrWrongPassphrase when it is
// wrong); it is ignored for an unencrypted key. The key must match
// root.crt (ErrKeyMismatch) and root.crt must be a CA certificate.
func LoadCA(dir string, passphrase []byte) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, RootCertFile), filepath.Join(dir, RootKeyFile)
	certData, err := readSmallFile(certPath, maxKeyFileBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing (create a CA with `bulwark pki init`)", ErrNoCA, certPath)
	}
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificates(certData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	cert := certs[0]
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s: not a CA certificate", certPath)
	}
	keyData, err := readSmallFile(keyPath, maxKeyFileBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing", ErrNoCA, keyPath)
	}
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKey(keyData, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%w (%s, %s)", ErrKeyMismatch, keyPath, certPath)
	}
	return &CA{Dir: dir, Cert: cert, key: key, encrypted: IsEncryptedKey(keyData)}, nil
}

// IssueRequest describes a signing certificate.
type IssueRequest struct {
	// Subject must have C, ST and O: Notation's trust policy names
	// identities by them (see RequireSigningSubject).
	Subject pkix.Name
	// URIs become URI subject alternative names: the identity cosign
	// checks with --certificate-identity. Absolute URIs only.
	URIs []string
	// Validity is capped at the CA's own NotAfter. 0: DefaultLeafValidity.
	Validity time.Duration
	// KeyType of the new key. "": KeyECDSAP256.
	KeyType KeyType
}

// Issue makes a new key and a code-signing certificate for it, signed by
// the root. It returns the certificate chain (leaf, then root; PEM) and the
// key (unencrypted PKCS#8 PEM). The leaf meets the Notary Project's
// certificate requirements and what cosign checks: basicConstraints
// CA:false, keyUsage digitalSignature only (critical), extendedKeyUsage
// codeSigning only, subject with C, ST and O, and the requested URI SANs.
func (ca *CA) Issue(req IssueRequest) (certPEMChain, keyPEM []byte, err error) {
	if err := RequireSigningSubject(req.Subject); err != nil {
		return nil, nil, err
	}
	uris, err := parseURIs(req.URIs)
	if err != nil {
		return nil, nil, err
	}
	validity := req.Validity
	if validity == 0 {
		validity = DefaultLeafValidity
	}
	if validity < time.Minute {
		return nil, nil, fmt.Errorf("%w: validity %v is too short", ErrInvalidRequest, validity)
	}
	now := ca.now()
	if now.Before(ca.Cert.NotBefore) || !now.Before(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("%w: valid %s to %s", ErrCAExpired,
			ca.Cert.NotBefore.UTC().Format(time.RFC3339), ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := req.KeyType.generate()
	if err != nil {
		return nil, nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	notBefore := now.Add(-issueBackdate)
	if notBefore.Before(ca.Cert.NotBefore) {
		notBefore = ca.Cert.NotBefore
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               req.Subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  uris,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate: %w", err)
	}
	keyPEM, err = MarshalPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	var chain bytes.Buffer
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	return chain.Bytes(), keyPEM, nil
}

// ErrFileExists is returned by WriteIssued when NAME.crt or NAME.key is
// already there and overwrite is false.
var ErrFileExists = errors.New("file exists")

// WriteIssued writes what Issue returned as DIR/NAME.crt (0644) and
// DIR/NAME.key (0600), creating DIR (0700) if needed. Without overwrite an
// existing file is ErrFileExists and nothing is written: replacing a key
// that is in use would silently break whoever signs with it. name must be
// a plain file name stem (letters, digits, '.', '_', '-').
func WriteIssued(dir, name string, certPEMChain, keyPEM []byte, overwrite bool) (certPath, keyPath string, err error) {
	if err := checkFileStem(name); err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	if !overwrite {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", "", fmt.Errorf("%w: %s", ErrFileExists, p)
			}
		}
	}
	for _, f := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{{keyPath, keyPEM, 0o600}, {certPath, certPEMChain, 0o644}} {
		if err := writeFileAtomic(f.path, f.data, f.perm, !overwrite); err != nil {
			if errors.Is(err, os.ErrExist) {
				err = fmt.Errorf("%w: %s", ErrFileExists, f.path)
			}
			return "", "", err
		}
	}
	return certPath, keyPath, nil
}

func checkFileStem(name string) error {
	ok := name != "" && len(name) <= 64 && name[0] != '.' && name[0] != '-'
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%w: name %q: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'", ErrInvalidRequest, name)
	}
	return nil
}

// ParseCertificates decodes every CERTIFICATE block of a PEM file, in
// order, or a single DER certificate.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) > 0 {
		return certs, nil
	}
	if c, err := x509.ParseCertificate(data); err == nil {
		return []*x509.Certificate{c}, nil
	}
	return nil, errors.New("no certificate found (want PEM CERTIFICATE blocks or DER)")
}

// randomSerial returns a positive 128-bit random serial number (RFC 5280
// allows up to 20 octets; CA/B Forum wants at least 64 random bits).
func randomSerial() *big.Int {
	b := make([]byte, 16)
	for {
		rand.Read(b)
		if s := new(big.Int).SetBytes(b); s.Sign() > 0 {
			return s
		}
	}
}

// subjectKeyID is RFC 7093 method 1: the leftmost 160 bits of the SHA-256
// of the subjectPublicKey BIT STRING.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// parseURIs checks --uri values: absolute URIs with a scheme, printable,
// no spaces, at most 2 KiB each.
func parseURIs(in []string) ([]*url.URL, error) {
	var out []*url.URL
	seen := map[string]bool{}
	for _, s := range in {
		if len(s) > 2048 || strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || !unicode.IsPrint(r) }) >= 0 {
			return nil, fmt.Errorf("%w: URI %.60q is too long or has spaces or control characters", ErrInvalidRequest, s)
		}
		u, err := url.Parse(s)
		if err != nil || !u.IsAbs() || (u.Host == "" && u.Opaque == "" && u.Path == "") {
			return nil, fmt.Errorf("%w: %q is not an absolute URI (e.g. https://ci.example.com/pipelines/build)", ErrInvalidRequest, s)
		}
		if seen[s] {
			return nil, fmt.Errorf("%w: URI %q given twice", ErrInvalidRequest, s)
		}
		seen[s] = true
		out = append(out, u)
	}
	return out, nil
}

// ---- subjects ----

// subjectAttr describes one attribute type the subject syntax accepts.
type subjectAttr struct {
	typ     string // canonical short name
	desc    string
	maxLen  int // RFC 5280 upper bound, in characters
	country bool
	field   func(*pkix.Name) *[]string // nil for CN
}

var subjectAttrs = []subjectAttr{
	{typ: "C", desc: "country", maxLen: 2, country: true, field: func(n *pkix.Name) *[]string { return &n.Country }},
	{typ: "ST", desc: "state or province", maxLen: 128, field: func(n *pkix.Name) *[]string { return &n.Province }},
	{typ: "L", desc: "locality", maxLen: 128, field: func(n *pkix.Name) *[]string { return &n.Locality }},
	{typ: "O", desc: "organization", maxLen: 64, field: func(n *pkix.Name) *[]string { return &n.Organization }},
	{typ: "OU", desc: "organizational unit", maxLen: 64, field: func(n *pkix.Name) *[]string { return &n.OrganizationalUnit }},
	{typ: "CN", desc: "common name", maxLen: 64},
}

var attrByType = func() map[string]*subjectAttr {
	m := map[string]*subjectAttr{}
	for i := range subjectAttrs {
		m[subjectAttrs[i].typ] = &subjectAttrs[i]
	}
	return m
}()

// maxSubjectLen bounds the whole subject string: the longest valid one
// (every attribute at its bound, every character escaped) is well below.
const maxSubjectLen = 4096

// ParseSubject parses a distinguished name written the way Notation trust
// policies write identities: "C=US, ST=WA, O=Example, CN=ci".
//
// Attributes are separated by ',' (spaces around them are ignored). Types
// are C, ST (or S), L, O, OU and CN, in any case; anything else is refused
// rather than dropped. Values are RFC 4514 strings: a ',', '+', '"', '\',
// '<', '>', ';' or '=' inside a value, a leading '#' or space and a
// trailing space must be escaped with a backslash ("O=Example\, Inc."), and
// "\XX" is a hex-escaped UTF-8 byte. Each type may appear once: Notation
// refuses duplicate attributes (and multi-valued RDNs, so an unescaped '+'
// is an error too). Values must be non-empty, valid UTF-8 without control
// characters, within RFC 5280's length bounds; C is two capital letters.
// Errors wrap ErrInvalidSubject.
func ParseSubject(s string) (pkix.Name, error) {
	var name pkix.Name
	fail := func(format string, args ...any) (pkix.Name, error) {
		return pkix.Name{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidSubject}, args...)...)
	}
	if len(s) > maxSubjectLen {
		return fail("%d bytes, more than %d", len(s), maxSubjectLen)
	}
	if !utf8.ValidString(s) {
		return fail("not valid UTF-8")
	}
	if strings.TrimSpace(s) == "" {
		return fail(`empty (want e.g. "C=US, ST=WA, O=Example, CN=ci")`)
	}
	seen := map[string]bool{}
	i := 0
	for {
		// type
		for i < len(s) && s[i] == ' ' {
			i++
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ',' {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			return fail("%q: want TYPE=VALUE", strings.TrimSpace(s[start:i]))
		}
		typ := strings.ToUpper(strings.TrimSpace(s[start:i]))
		if typ == "S" {
			typ = "ST"
		}
		attr, ok := attrByType[typ]
		if !ok {
			return fail("unknown attribute type %q (want C, ST, L, O, OU or CN)", strings.TrimSpace(s[start:i]))
		}
		if seen[typ] {
			return fail("%s given twice (Notation refuses duplicate attributes)", typ)
		}
		seen[typ] = true
		i++ // '='

		// value
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i < len(s) && s[i] == '#' {
			return fail("%s: a value starting with '#' (hex-encoded BER) is not supported; write \\# for a literal '#'", typ)
		}
		var val []byte
		trailing := 0 // unescaped spaces at the end of val, trimmed at the separator
		for i < len(s) && s[i] != ',' {
			c := s[i]
			switch c {
			case '\\':
				if i+1 >= len(s) {
					return fail("%s: dangling '\\' at the end", typ)
				}
				n := s[i+1]
				if strings.IndexByte(`,+"\<>;= #`, n) >= 0 {
					val = append(val, n)
					i += 2
				} else if b, ok := subjectUnhex2(s, i+1); ok {
					val = append(val, b)
					i += 3
				} else {
					return fail("%s: bad escape \\%c (escape one of , + \" \\ < > ; = # space, or write \\XX in hex)", typ, n)
				}
				trailing = 0
				continue
			case '+':
				return fail("%s: unescaped '+' (multi-valued names are not supported; write \\+ for a literal '+')", typ)
			case '=', '"', '<', '>', ';':
				return fail("%s: unescaped %q in the value (write \\%c)", typ, c, c)
			case ' ':
				trailing++
			default:
				trailing = 0
			}
			val = append(val, c)
			i++
		}
		v := string(val[:len(val)-trailing])
		if err := checkSubjectValue(attr, v); err != nil {
			return fail("%w", err)
		}
		if attr.field == nil {
			name.CommonName = v
		} else {
			*attr.field(&name) = []string{v}
		}
		if i >= len(s) {
			return name, nil
		}
		i++ // ','
		if strings.TrimSpace(s[i:]) == "" {
			return fail("trailing ','")
		}
	}
}

func subjectUnhex2(s string, i int) (byte, bool) {
	if i+1 >= len(s) {
		return 0, false
	}
	hi, ok1 := subjectUnhex(s[i])
	lo, ok2 := subjectUnhex(s[i+1])
	return hi<<4 | lo, ok1 && ok2
}

func subjectUnhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// checkSubjectValue validates one attribute value.
func checkSubjectValue(a *subjectAttr, v string) error {
	if v == "" {
		return fmt.Errorf("%s (%s) is empty", a.typ, a.desc)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s: not valid UTF-8", a.typ)
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == utf8.RuneError || (!unicode.IsPrint(r) && r != ' ') {
			return fmt.Errorf("%s: control or non-printable character %U", a.typ, r)
		}
	}
	if a.country && (len(v) != 2 || v[0] < 'A' || v[0] > 'Z' || v[1] < 'A' || v[1] > 'Z') {
		return fmt.Errorf("C must be a two-letter ISO 3166 country code in capitals, like US or DE, not %.20q", v)
	}
	if n := utf8.RuneCountInString(v); n > a.maxLen {
		return fmt.Errorf("%s (%s) is %d characters, at most %d", a.typ, a.desc, n, a.maxLen)
	}
	if v != strings.TrimSpace(v) {
		// Only reachable through escapes; still refused, since a name
		// that differs from another by a trailing space is a trap.
		return fmt.Errorf("%s: leading or trailing space", a.typ)
	}
	return nil
}

// FormatSubject writes a name in ParseSubject's syntax, C, ST, L, O, OU,
// CN in that order, escaping what needs it. Only those attributes are
// written; ParseSubject(FormatSubject(n)) == n for every n ParseSubject
// returns.
func FormatSubject(n pkix.Name) string {
	var parts []string
	for i := range subjectAttrs {
		a := &subjectAttrs[i]
		var vals []string
		if a.field == nil {
			if n.CommonName != "" {
				vals = []string{n.CommonName}
			}
		} else {
			vals = *a.field(&n)
		}
		for _, v := range vals {
			parts = append(parts, a.typ+"="+escapeSubjectValue(v))
		}
	}
	return strings.Join(parts, ", ")
}

func escapeSubjectValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`,+"\<>;=`, c) >= 0,
			c == '#' && i == 0,
			c == ' ' && (i == 0 || i == len(v)-1):
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// RequireSigningSubject checks that a signing certificate's subject has
// C, ST and O, which Notation requires of the x509.subject identities in a
// trust policy (so a certificate without them could never be trusted by
// name). The error names the missing fields.
func RequireSigningSubject(n pkix.Name) error {
	var missing []string
	if len(n.Country) == 0 {
		missing = append(missing, "C (country)")
	}
	if len(n.Province) == 0 {
		missing = append(missing, "ST (state or province)")
	}
	if len(n.Organization) == 0 {
		missing = append(missing, "O (organization)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s; Notation requires C, ST and O in a signing certificate's subject",
			ErrInvalidSubject, strings.Join(missing, ", "))
	}
	// Names built in code rather than parsed get the same checks.
	for i := range subjectAttrs {
		a := &subjectAttrs[i]
		var vals []string
		if a.field == nil {
			if n.CommonName != "" {
				vals = []string{n.CommonName}
			}
		} else {
			vals = *a.field(&n)
		}
		if len(vals) > 1 {
			return fmt.Errorf("%w: %s given %d times (Notation refuses duplicate attributes)", ErrInvalidSubject, a.typ, len(vals))
		}
		for _, v := range vals {
			if err := checkSubjectValue(a, v); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidSubject, err)
			}
		}
	}
	// n.Names is only what parsing filled in; marshaling ignores it.
	if len(n.StreetAddress)+len(n.PostalCode)+len(n.ExtraNames) > 0 || n.SerialNumber != "" {
		return fmt.Errorf("%w: only C, ST, L, O, OU and CN are supported", ErrInvalidSubject)
	}
	return nil
}
