package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/yamlnode"
)

// ErrInvalidPolicy is wrapped by every error that LoadPolicy and
// ParsePolicy return for a policy that cannot be used: bad YAML, an
// unknown key, a broken reference, an unreadable root, key or CRL file.
var ErrInvalidPolicy = errors.New("invalid trust policy")

// PolicyError says where a trust policy is wrong. It wraps ErrInvalidPolicy
// and the underlying cause (for example fs.ErrNotExist for a missing root
// file), so callers can branch with errors.Is.
type PolicyError struct {
	Path string // the policy file; "" when parsed from bytes
	Line int    // 1-based line in the policy file; 0 when not tied to one
	Err  error
}

func (e *PolicyError) Error() string {
	var b strings.Builder
	b.WriteString("trust policy")
	if e.Path != "" {
		b.WriteString(" " + e.Path)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *PolicyError) Unwrap() []error { return []error{ErrInvalidPolicy, e.Err} }

// Limits on what a policy may make the loader read. A policy is written by
// an administrator, but a verifier may be pointed at any file, and a
// policy naming /dev/zero must fail, not exhaust memory.
const (
	MaxPolicySize    = 1 << 20  // the policy file itself
	MaxPolicyRefSize = 16 << 20 // each root, key or CRL file (CRLs can be large)
)

// Policy is a loaded trust policy: who may sign (authorities) and what each
// environment requires. The root, key and CRL files it names are read and
// parsed at load, so evaluation does no I/O. A Policy must not be modified
// after loading; it is then safe for concurrent use.
type Policy struct {
	Authorities  []*Authority
	Environments []*Environment
	version      string
}

// Authority is one party whose signatures can count: either certificates
// chaining to Roots with a subject or URI matching Identities or URIs, or
// signatures made with one of Keys.
type Authority struct {
	Name string
	Line int // where it is defined in the policy file, for messages

	Roots      []*x509.Certificate // CA certificates; exclusive with Keys
	Keys       []crypto.PublicKey  // raw public keys; exclusive with Roots
	Identities []string            // subject DN patterns as written; "*" is any subject
	URIs       []string            // URI SAN patterns as written
	CRLs       []*CRL

	// Repositories are the globs the authority may sign for; all
	// repositories ("**") when the policy does not say.
	Repositories []string

	rootPool   *x509.CertPool
	subjects   []subjectPattern
	anySubject bool
}

// CRL is a certificate revocation list an authority checks its leaf and
// intermediate certificates against.
type CRL struct {
	Path   string // as written in the policy
	List   *x509.RevocationList
	Issuer *x509.Certificate // the authority root whose signature it carries

	revoked map[string]bool // serial numbers, in decimal
}

// Environment says which repositories a deployment target covers and whose
// signatures their images need.
type Environment struct {
	Name         string
	Line         int
	Repositories []string
	Require      Requirement

	// Except are repositories the environment does not cover although
	// Repositories match them: a Notation "*" statement does not apply to
	// a repository another statement names (notationpolicy.go).
	Except []string

	// notation is set for an environment made from a Notation trust
	// policy statement, whose scopes name registry hosts; see
	// Policy.ForRegistry.
	notation *notationScopes
}

// Requirement is "Threshold distinct authorities out of Of". All is set
// when the policy wrote a plain list (every one of them), which is the same
// rule with Threshold == len(Of); it only changes how it is described.
type Requirement struct {
	Threshold int
	Of        []string
	All       bool
}

// String describes the requirement for people: "all of [ci]",
// "2 of [ci security]".
func (r Requirement) String() string {
	if r.All {
		return fmt.Sprintf("all of [%s]", strings.Join(r.Of, " "))
	}
	return fmt.Sprintf("%d of [%s]", r.Threshold, strings.Join(r.Of, " "))
}

// Version identifies the policy's content for caching decisions: the
// SHA-256 of the policy file and of every root, key and CRL file it
// references, as "sha256:<hex>". Referenced files are included because a
// new CRL must invalidate cached decisions even when the policy text is
// unchanged.
func (p *Policy) Version() string { return p.version }

// Authority returns the authority called name.
func (p *Policy) Authority(name string) (*Authority, bool) {
	for _, a := range p.Authorities {
		if a.Name == name {
			return a, true
		}
	}
	return nil, false
}

// Environment returns the environment called name.
func (p *Policy) Environment(name string) (*Environment, bool) {
	for _, e := range p.Environments {
		if e.Name == name {
			return e, true
		}
	}
	return nil, false
}

// EnvironmentsFor returns the names of the environments covering repo, in
// policy order.
func (p *Policy) EnvironmentsFor(repo string) []string {
	var names []string
	for _, e := range p.Environments {
		if e.Covers(repo) {
			names = append(names, e.Name)
		}
	}
	return names
}

// Covers reports whether repo matches one of the environment's globs and
// is not one of its exceptions. An environment whose scopes name registry
// hosts (from a Notation directory) covers nothing until the policy is
// resolved for the image's registry with Policy.ForRegistry: repo alone
// does not say which registry the image came from.
func (e *Environment) Covers(repo string) bool {
	if e.notation != nil && e.notation.pinned {
		return false
	}
	return matchAnyGlob(e.Repositories, repo) && !slices.Contains(e.Except, repo)
}

// Covers reports whether the authority may sign for repo.
func (a *Authority) Covers(repo string) bool { return matchAnyGlob(a.Repositories, repo) }

func matchAnyGlob(globs []string, repo string) bool {
	for _, g := range globs {
		if auth.MatchGlob(g, repo) {
			return true
		}
	}
	return false
}

// LoadPolicy reads and validates the trust policy at path. Relative root,
// key and CRL paths are resolved against the policy file's directory. A
// directory is read as a Notation configuration directory
// (LoadNotationDir).
func LoadPolicy(path string) (*Policy, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return LoadNotationDir(path)
	}
	data, err := yamlnode.ReadFile(path, MaxPolicySize)
	if err != nil {
		return nil, &PolicyError{Path: path, Err: err}
	}
	p, err := ParsePolicy(data, filepath.Dir(path))
	var pe *PolicyError
	if errors.As(err, &pe) {
		pe.Path = path
	}
	return p, err
}

// ParsePolicy validates a trust policy held in memory. Relative root, key
// and CRL paths are resolved against baseDir.
func ParsePolicy(data []byte, baseDir string) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, &PolicyError{Err: fmt.Errorf("larger than %d bytes", MaxPolicySize)}
	}
	l := &policyLoader{baseDir: baseDir, hash: sha256.New()}
	l.hashPart(data)
	root, err := decodeSingleDocument(data)
	if err != nil {
		return nil, err
	}
	p, err := l.policy(root)
	if err != nil {
		return nil, err
	}
	p.version = "sha256:" + hex.EncodeToString(l.hash.Sum(nil))
	return p, nil
}

// policyLoader turns the YAML tree into a Policy, reading referenced files
// and hashing everything that determines the policy's meaning.
type policyLoader struct {
	baseDir string
	hash    hash.Hash
}

// hashPart adds one length-prefixed part to the version hash, so that
// moving bytes between parts changes the hash.
func (l *policyLoader) hashPart(b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	l.hash.Write(n[:])
	l.hash.Write(b)
}

// errAt is a policy error on line n.
func errAt(n *yaml.Node, format string, args ...any) error {
	return &PolicyError{Line: n.Line, Err: fmt.Errorf(format, args...)}
}

// policyNamePattern is the grammar of authority and environment names:
// safe in file names, log lines and command-line flags.
var policyNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

const maxPolicyNameLength = 64

func (l *policyLoader) policy(root *yaml.Node) (*Policy, error) {
	fields, err := policyMapping(root, "the policy", "version", "authorities", "environments")
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"version", "authorities", "environments"} {
		if fields[k] == nil {
			return nil, errAt(root, "missing %q", k)
		}
	}
	if err := policyVersion(fields["version"]); err != nil {
		return nil, err
	}

	p := &Policy{}
	items, err := policySequence(fields["authorities"], "authorities")
	if err != nil {
		return nil, err
	}
	for i, n := range items {
		a, err := l.authority(n, i)
		if err != nil {
			return nil, err
		}
		if prev, ok := p.Authority(a.Name); ok {
			return nil, errAt(n, "authority %q is defined twice (first on line %d)", a.Name, prev.Line)
		}
		p.Authorities = append(p.Authorities, a)
	}

	items, err = policySequence(fields["environments"], "environments")
	if err != nil {
		return nil, err
	}
	for i, n := range items {
		e, err := environment(n, i, p)
		if err != nil {
			return nil, err
		}
		if prev, ok := p.Environment(e.Name); ok {
			return nil, errAt(n, "environment %q is defined twice (first on line %d)", e.Name, prev.Line)
		}
		p.Environments = append(p.Environments, e)
	}
	return p, nil
}

func policyVersion(n *yaml.Node) error {
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return errAt(n, "version must be the integer 1, not %s", nodeKind(n))
	}
	if n.Decode(&v) != nil || v != 1 {
		return errAt(n, "version %s is not supported; the only version is 1", n.Value)
	}
	return nil
}

func (l *policyLoader) authority(n *yaml.Node, i int) (*Authority, error) {
	what := fmt.Sprintf("authorities[%d]", i)
	f, err := policyMapping(n, what, "name", "roots", "keys", "identities", "uris", "repositories", "crls")
	if err != nil {
		return nil, err
	}
	name, err := policyName(n, f["name"], what)
	if err != nil {
		return nil, err
	}
	a := &Authority{Name: name, Line: n.Line}
	what = fmt.Sprintf("authority %q", name)

	switch {
	case f["roots"] != nil && f["keys"] != nil:
		return nil, errAt(f["keys"], "%s: has both roots and keys; an authority trusts either CA certificates or raw public keys", what)
	case f["roots"] == nil && f["keys"] == nil:
		return nil, errAt(n, "%s: needs roots (CA certificate files) or keys (public key files)", what)
	case f["roots"] != nil:
		if err := l.authorityRoots(a, f, what); err != nil {
			return nil, err
		}
	default:
		if err := l.authorityKeys(a, f, what); err != nil {
			return nil, err
		}
	}

	a.Repositories = []string{"**"}
	if rn := f["repositories"]; rn != nil {
		if a.Repositories, err = policyGlobs(rn, what+": repositories"); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (l *policyLoader) authorityRoots(a *Authority, f map[string]*yaml.Node, what string) error {
	paths, nodes, err := policyStrings(f["roots"], what+": roots")
	if err != nil {
		return err
	}
	a.rootPool = x509.NewCertPool()
	for i, path := range paths {
		certs, err := l.certificates(path)
		if err != nil {
			return errAt(nodes[i], "%s: roots: %w", what, err)
		}
		for j, c := range certs {
			if !c.BasicConstraintsValid || !c.IsCA {
				return errAt(nodes[i], "%s: roots: %s: certificate %d (%s) is not a CA certificate; use keys: to trust a single signer's key", what, path, j+1, formatName(c.Subject))
			}
			a.Roots = append(a.Roots, c)
			a.rootPool.AddCert(c)
		}
	}

	if f["identities"] == nil && f["uris"] == nil {
		return errAt(f["roots"], `%s: needs identities (subject DNs, or "*" for any) or uris: without them every certificate under its roots would count`, what)
	}
	if n := f["identities"]; n != nil {
		if a.Identities, nodes, err = policyStrings(n, what+": identities"); err != nil {
			return err
		}
		for i, s := range a.Identities {
			if s == "*" {
				a.anySubject = true
				continue
			}
			sp, err := parseSubjectPattern(s)
			if err != nil {
				return errAt(nodes[i], "%s: identities: %q: %w", what, s, err)
			}
			a.subjects = append(a.subjects, sp)
		}
	}
	if n := f["uris"]; n != nil {
		if a.URIs, nodes, err = policyStrings(n, what+": uris"); err != nil {
			return err
		}
		for i, s := range a.URIs {
			if err := validateURIPattern(s); err != nil {
				return errAt(nodes[i], "%s: uris: %q: %w", what, s, err)
			}
		}
	}

	if n := f["crls"]; n != nil {
		if paths, nodes, err = policyStrings(n, what+": crls"); err != nil {
			return err
		}
		for i, path := range paths {
			crls, err := l.crls(path, a.Roots)
			if err != nil {
				return errAt(nodes[i], "%s: crls: %w", what, err)
			}
			a.CRLs = append(a.CRLs, crls...)
		}
	}
	return nil
}

func (l *policyLoader) authorityKeys(a *Authority, f map[string]*yaml.Node, what string) error {
	for _, k := range []string{"identities", "uris", "crls"} {
		if f[k] != nil {
			return errAt(f[k], "%s: %s applies to certificates; an authority with keys has none", what, k)
		}
	}
	paths, nodes, err := policyStrings(f["keys"], what+": keys")
	if err != nil {
		return err
	}
	for i, path := range paths {
		keys, err := l.publicKeys(path)
		if err != nil {
			return errAt(nodes[i], "%s: keys: %w", what, err)
		}
		a.Keys = append(a.Keys, keys...)
	}
	return nil
}

func environment(n *yaml.Node, i int, p *Policy) (*Environment, error) {
	what := fmt.Sprintf("environments[%d]", i)
	f, err := policyMapping(n, what, "name", "repositories", "require")
	if err != nil {
		return nil, err
	}
	name, err := policyName(n, f["name"], what)
	if err != nil {
		return nil, err
	}
	e := &Environment{Name: name, Line: n.Line}
	what = fmt.Sprintf("environment %q", name)
	if f["repositories"] == nil {
		return nil, errAt(n, "%s: needs repositories (the repository globs it covers)", what)
	}
	if e.Repositories, err = policyGlobs(f["repositories"], what+": repositories"); err != nil {
		return nil, err
	}
	if f["require"] == nil {
		return nil, errAt(n, "%s: needs require (a list of authorities, or {threshold: K, of: [...]})", what)
	}
	if e.Require, err = requirement(f["require"], what+": require", p); err != nil {
		return nil, err
	}
	return e, nil
}

// requirement reads either a list of authorities (all of them) or
// {threshold: K, of: [...]}.
func requirement(n *yaml.Node, what string, p *Policy) (Requirement, error) {
	var r Requirement
	ofNode := n
	switch n.Kind {
	case yaml.SequenceNode:
		r.All = true
	case yaml.MappingNode:
		f, err := policyMapping(n, what, "threshold", "of")
		if err != nil {
			return r, err
		}
		if f["threshold"] == nil || f["of"] == nil {
			return r, errAt(n, "%s: needs both threshold and of", what)
		}
		t := f["threshold"]
		if t.Kind != yaml.ScalarNode || t.ShortTag() != "!!int" || t.Decode(&r.Threshold) != nil {
			return r, errAt(t, "%s: threshold %q is not an integer", what, t.Value)
		}
		ofNode = f["of"]
		what += ": of"
	default:
		return r, errAt(n, "%s: must be a list of authorities or {threshold: K, of: [...]}, not %s", what, nodeKind(n))
	}

	of, nodes, err := policyStrings(ofNode, what)
	if err != nil {
		return r, err
	}
	for i, name := range of {
		if slices.Index(of, name) != i {
			return r, errAt(nodes[i], "%s: authority %q is listed twice; each authority counts once", what, name)
		}
		if _, ok := p.Authority(name); !ok {
			known := make([]string, len(p.Authorities))
			for j, a := range p.Authorities {
				known[j] = a.Name
			}
			return r, errAt(nodes[i], "%s: unknown authority %q (authorities: %s)", what, name, strings.Join(known, ", "))
		}
	}
	r.Of = of
	if r.All {
		r.Threshold = len(of)
	} else if r.Threshold < 1 || r.Threshold > len(of) {
		return r, errAt(n, "%s: threshold %d must be between 1 and %d (the number of authorities in of)", strings.TrimSuffix(what, ": of"), r.Threshold, len(of))
	}
	return r, nil
}

func policyName(parent, n *yaml.Node, what string) (string, error) {
	if n == nil {
		return "", errAt(parent, "%s: missing name", what)
	}
	s, err := policyString(n, what+": name")
	if err != nil {
		return "", err
	}
	if len(s) > maxPolicyNameLength || !policyNamePattern.MatchString(s) {
		return "", errAt(n, "%s: name %q must match [a-z0-9][a-z0-9._-]* and be at most %d characters", what, s, maxPolicyNameLength)
	}
	return s, nil
}

func policyGlobs(n *yaml.Node, what string) ([]string, error) {
	globs, nodes, err := policyStrings(n, what)
	if err != nil {
		return nil, err
	}
	for i, g := range globs {
		if err := auth.ValidateGlob(g); err != nil {
			return nil, errAt(nodes[i], "%s: %w", what, err)
		}
	}
	return globs, nil
}

// readRef reads a file the policy references and adds its path and content
// to the version hash.
func (l *policyLoader) readRef(path string) ([]byte, error) {
	full := path
	if !filepath.IsAbs(full) {
		full = filepath.Join(l.baseDir, full)
	}
	data, err := yamlnode.ReadFile(full, MaxPolicyRefSize)
	if err != nil {
		if full != path {
			return nil, fmt.Errorf("%s (%s): %w", path, full, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l.hashPart([]byte(path))
	l.hashPart(data)
	return data, nil
}

// pemBlocks returns the PEM blocks in data, refusing private keys: a
// private key in a trust file means someone copied the wrong file, and it
// must not sit next to the policy unnoticed.
func pemBlocks(path string, data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.Contains(b.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("%s: holds a private key (%s); trust files must hold only public material", path, b.Type)
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// certificates reads one or more CA certificates: PEM, or a single DER
// certificate.
func (l *policyLoader) certificates(path string) ([]*x509.Certificate, error) {
	data, err := l.readRef(path)
	if err != nil {
		return nil, err
	}
	blocks, err := pemBlocks(path, data)
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("%s: no PEM certificate, and not a DER certificate: %w", path, err)
		}
		return []*x509.Certificate{c}, nil
	}
	var certs []*x509.Certificate
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block %d is %q, not CERTIFICATE", path, i+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: PEM block %d: %w", path, i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// minRSABits is the smallest RSA key a key authority may use.
const minRSABits = 2048

// publicKeys reads PEM public keys ("PUBLIC KEY", as cosign and openssl
// write them, or PKCS #1 "RSA PUBLIC KEY").
func (l *policyLoader) publicKeys(path string) ([]crypto.PublicKey, error) {
	data, err := l.readRef(path)
	if err != nil {
		return nil, err
	}
	blocks, err := pemBlocks(path, data)
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key found", path)
	}
	var keys []crypto.PublicKey
	for i, b := range blocks {
		var k crypto.PublicKey
		switch b.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			return nil, fmt.Errorf("%s: PEM block %d is a certificate; certificates belong in roots", path, i+1)
		default:
			return nil, fmt.Errorf("%s: PEM block %d is %q, not PUBLIC KEY", path, i+1, b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: PEM block %d: %w", path, i+1, err)
		}
		switch k := k.(type) {
		case *ecdsa.PublicKey, ed25519.PublicKey:
		case *rsa.PublicKey:
			if k.N.BitLen() < minRSABits {
				return nil, fmt.Errorf("%s: PEM block %d: RSA key of %d bits; at least %d are required", path, i+1, k.N.BitLen(), minRSABits)
			}
		default:
			return nil, fmt.Errorf("%s: PEM block %d: unsupported key type %T", path, i+1, k)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// crls reads CRLs (PEM "X509 CRL" blocks, or one DER CRL) and checks each
// is signed by one of roots: a CRL nobody trusted signed would let anyone
// who can write the file decide what is revoked, and a CRL from another CA
// would silently revoke nothing.
func (l *policyLoader) crls(path string, roots []*x509.Certificate) ([]*CRL, error) {
	data, err := l.readRef(path)
	if err != nil {
		return nil, err
	}
	blocks, err := pemBlocks(path, data)
	if err != nil {
		return nil, err
	}
	ders := [][]byte{data}
	if len(blocks) > 0 {
		ders = ders[:0]
		for i, b := range blocks {
			if b.Type != "X509 CRL" {
				return nil, fmt.Errorf("%s: PEM block %d is %q, not X509 CRL", path, i+1, b.Type)
			}
			ders = append(ders, b.Bytes)
		}
	}
	var out []*CRL
	for i, der := range ders {
		list, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("%s: CRL %d: %w", path, i+1, err)
		}
		c := &CRL{Path: path, List: list, revoked: make(map[string]bool, len(list.RevokedCertificateEntries))}
		for _, r := range roots {
			if list.CheckSignatureFrom(r) == nil {
				c.Issuer = r
				break
			}
		}
		if c.Issuer == nil {
			return nil, fmt.Errorf("%s: CRL %d (issuer %s) is not signed by any of the authority's roots", path, i+1, formatName(list.Issuer))
		}
		for _, e := range list.RevokedCertificateEntries {
			if e.SerialNumber != nil {
				c.revoked[e.SerialNumber.String()] = true
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// subjectPattern is a parsed identity: attributes a certificate subject
// must all carry, in any order.
type subjectPattern struct {
	text  string
	attrs []pkix.AttributeTypeAndValue
}

// parseSubjectPattern parses an identity with ParseSubject (pki.go), the
// syntax Notation trust policies use, and keeps its attributes as a set:
// the order a DN is written in carries no meaning here.
func parseSubjectPattern(s string) (subjectPattern, error) {
	name, err := ParseSubject(s)
	if err != nil {
		return subjectPattern{}, err
	}
	sp := subjectPattern{text: s}
	for _, rdn := range name.ToRDNSequence() {
		sp.attrs = append(sp.attrs, rdn...)
	}
	return sp, nil
}

// matches reports whether every attribute of the pattern is in subject
// with the same value. ParseSubject allows each type once, so there is no
// multiset to count.
func (sp subjectPattern) matches(subject []pkix.AttributeTypeAndValue) bool {
next:
	for _, want := range sp.attrs {
		for _, have := range subject {
			if s, ok := have.Value.(string); ok && have.Type.Equal(want.Type) && s == want.Value {
				continue next
			}
		}
		return false
	}
	return true
}

// validateURIPattern accepts an absolute URI with a host, optionally ending
// in "/*". The "*" is only allowed there so it can never extend the host
// ("https://ci.example.com*" would match ci.example.com.evil.org).
func validateURIPattern(p string) error {
	base, wild := strings.CutSuffix(p, "*")
	if wild && !strings.HasSuffix(base, "/") {
		return errors.New(`"*" is only allowed as the last path segment ("https://host/path/*")`)
	}
	if strings.Contains(base, "*") {
		return errors.New(`"*" is only allowed at the end, after "/"`)
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	if u.Scheme == "" || u.Host == "" {
		return errors.New("not an absolute URI with a host")
	}
	if wild && (u.RawQuery != "" || u.Fragment != "" || u.Path == "") {
		return errors.New(`"/*" must end the path, after the host`)
	}
	return nil
}

// matchURIPattern: an exact pattern matches itself; "prefix/*" matches
// prefix/ followed by at least one character.
func matchURIPattern(p, uri string) bool {
	if base, ok := strings.CutSuffix(p, "*"); ok {
		return len(uri) > len(base) && strings.HasPrefix(uri, base)
	}
	return uri == p
}

// The strict YAML reading is yamlnode's; these put its errors' lines into
// PolicyError.

func lineErr(err error) error {
	var ye *yamlnode.Error
	if errors.As(err, &ye) {
		return &PolicyError{Line: ye.Line, Err: ye.Err}
	}
	return err
}

func decodeSingleDocument(data []byte) (*yaml.Node, error) {
	n, err := yamlnode.SingleDocument(data)
	return n, lineErr(err)
}

func policyMapping(n *yaml.Node, what string, known ...string) (map[string]*yaml.Node, error) {
	m, err := yamlnode.Mapping(n, what, known...)
	return m, lineErr(err)
}

func policyStrings(n *yaml.Node, what string) ([]string, []*yaml.Node, error) {
	out, items, err := yamlnode.Strings(n, what)
	return out, items, lineErr(err)
}

func policyString(n *yaml.Node, what string) (string, error) {
	v, err := yamlnode.String(n, what)
	return v, lineErr(err)
}

func nodeKind(n *yaml.Node) string { return yamlnode.Kind(n) }

func policySequence(n *yaml.Node, what string) ([]*yaml.Node, error) {
	items, err := yamlnode.Sequence(n, what, false)
	return items, lineErr(err)
}
