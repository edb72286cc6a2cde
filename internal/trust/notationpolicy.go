package trust

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/yamlnode"
)

// A Notation configuration directory ({NOTATION_CONFIG}, e.g.
// ~/.config/notation) read as a bulwark trust policy, so that one directory
// serves both `notation verify` and `bulwark verify`:
//
//	DIR/trustpolicy.oci.json   the trust policy (Notation after v1.3), or
//	DIR/trustpolicy.json       the same document (Notation v1.x)
//	DIR/truststore/x509/{ca,signingAuthority,tsa}/NAME/*   trusted certificates
//
// Each trust policy statement becomes an environment named after it,
// covering its registryScopes, and requiring one authority of the same
// name: the certificates of its "ca" trust stores as roots and its
// trustedIdentities as identities. docs/trust-policy.md says how each
// signatureVerification setting maps.

// Names of the trust policy files in a Notation configuration directory.
const (
	NotationOCIPolicyFile = "trustpolicy.oci.json"
	NotationPolicyFile    = "trustpolicy.json"
)

// Limits on what a Notation directory may make the loader read, beyond
// MaxPolicySize (the trust policy) and MaxPolicyRefSize (each certificate
// file).
const (
	maxTrustStoreFiles     = 1024     // files in one named trust store
	maxNotationStoresBytes = 64 << 20 // all trust store files together
	maxNotationJSONDepth   = 16       // the document is 4 levels deep
	maxNotationNameLength  = 128      // statement names
)

// notationScopes are a Notation statement's registryScopes.
type notationScopes struct {
	scopes []string // as written: "host[:port]/repository", or "*"
	// pinned: the scopes name registry hosts and the policy has not been
	// resolved for one (Policy.ForRegistry), so the environment covers
	// nothing: its Repositories are the scopes as written, for messages.
	pinned bool
}

// LoadNotationDir reads a Notation configuration directory as a trust
// policy: trustpolicy.oci.json, or trustpolicy.json when there is none (if
// both exist they must be identical, since Notation v1.3 reads the latter
// and later versions the former), and the trust stores its statements
// name. The document is read strictly (unknown or misspelt keys, duplicate
// keys, statement names or scopes, malformed identities are errors naming
// the line), every trust store must exist and hold certificates, and the
// policy's Version covers the document and every certificate file.
//
// Statements scoped to "host[:port]/repository" cover nothing until the
// policy is resolved for the image's registry with ForRegistry; a "*"
// statement covers every repository no other statement names.
func LoadNotationDir(dir string) (*Policy, error) {
	name, data, err := readNotationPolicyFile(dir)
	if err != nil {
		return nil, &PolicyError{Path: dir, Err: err}
	}
	file := filepath.Join(dir, name)
	stmts, err := parseNotationTrustPolicy(data)
	if err != nil {
		var pe *PolicyError
		if errors.As(err, &pe) {
			pe.Path = file
		}
		return nil, err
	}
	l := &policyLoader{baseDir: dir, hash: sha256.New()}
	// The version says what kind of policy it is and which file was read,
	// then the document and (readStore) every certificate file.
	l.hashPart([]byte("notation-dir"))
	l.hashPart([]byte(name))
	l.hashPart(data)
	p, err := l.notationPolicy(stmts)
	if err != nil {
		var pe *PolicyError
		if errors.As(err, &pe) {
			pe.Path = file
		}
		return nil, err
	}
	p.version = "sha256:" + hex.EncodeToString(l.hash.Sum(nil))
	return p, nil
}

// readNotationPolicyFile picks and reads the directory's trust policy.
// Symbolic links are refused, as Notation refuses them.
func readNotationPolicyFile(dir string) (string, []byte, error) {
	var found []string
	for _, name := range []string{NotationOCIPolicyFile, NotationPolicyFile} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return "", nil, fmt.Errorf("%s: %w", name, yamlnode.WithoutPath(err))
		case fi.Mode()&fs.ModeSymlink != 0:
			return "", nil, fmt.Errorf("%s is a symbolic link; Notation refuses those, so bulwark does too", name)
		}
		found = append(found, name)
	}
	if len(found) == 0 {
		return "", nil, fmt.Errorf("a directory must be a Notation configuration directory, with %s or %s: %w",
			NotationOCIPolicyFile, NotationPolicyFile, fs.ErrNotExist)
	}
	data, err := yamlnode.ReadFile(filepath.Join(dir, found[0]), MaxPolicySize)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", found[0], err)
	}
	if len(found) == 2 {
		other, err := yamlnode.ReadFile(filepath.Join(dir, found[1]), MaxPolicySize)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", found[1], err)
		}
		if !bytes.Equal(data, other) {
			return "", nil, fmt.Errorf("%s and %s differ: Notation v1.3 reads %s and later versions %s, so the directory "+
				"would mean different things to different verifiers; make them identical or remove one",
				found[0], found[1], NotationPolicyFile, NotationOCIPolicyFile)
		}
	}
	return found[0], data, nil
}

// ForRegistry returns the policy as it applies to images served by
// registry (host[:port], as the image reference writes it). A policy from
// a Notation directory scopes its statements to "host/repository" names,
// while Evaluate and Covers see only the repository: resolving keeps, for
// each statement, the repositories its scopes name on that registry, and
// takes them out of the "*" statement, which Notation applies only to
// repositories no other statement names. Statements with no scope on that
// registry cover nothing. Unresolved, a Notation policy applies its "*"
// statement only to repositories no statement names on any registry, and
// nothing else: without the registry (registry "") it fails closed.
//
// YAML policies name repositories on whatever registry serves them;
// ForRegistry returns them unchanged. The result shares the policy's
// authorities and has the same Version.
func (p *Policy) ForRegistry(registry string) *Policy {
	if registry == "" || !slices.ContainsFunc(p.Environments, func(e *Environment) bool { return e.notation != nil }) {
		return p
	}
	q := *p
	q.Environments = make([]*Environment, len(p.Environments))
	var named []string // repositories a statement names on registry
	for i, e := range p.Environments {
		r := *e
		if e.notation != nil && !slices.Contains(e.notation.scopes, "*") {
			r.Repositories = repositoriesOn(registry, e.notation.scopes)
			named = append(named, r.Repositories...)
			r.notation = &notationScopes{scopes: e.notation.scopes, pinned: len(r.Repositories) == 0}
			if r.notation.pinned {
				r.Repositories = e.notation.scopes
			}
		}
		q.Environments[i] = &r
	}
	for _, e := range q.Environments {
		if e.notation != nil && slices.Contains(e.notation.scopes, "*") {
			e.Except = named
		}
	}
	return &q
}

// repositoriesOn returns the repositories of the "host/repository" scopes
// whose host is registry. Hosts are compared as written, as Notation
// compares scopes with the reference it is given.
func repositoriesOn(registry string, scopes []string) []string {
	var repos []string
	for _, s := range scopes {
		if host, repo, ok := strings.Cut(s, "/"); ok && host == registry {
			repos = append(repos, repo)
		}
	}
	return repos
}

// notationStatement is one validated trust policy statement.
type notationStatement struct {
	name       string
	line       int
	scopes     []string
	revocation string // the resolved revocation action: enforce, log or skip
	stores     []notationStoreRef
	identities []string // as written
	any        bool     // trustedIdentities is ["*"]
	subjects   []subjectPattern
}

// notationStoreRef is one "type:name" of a statement's trustStores.
type notationStoreRef struct {
	typ, name string
	line      int
}

func (r notationStoreRef) String() string { return r.typ + ":" + r.name }

// dir is the store's directory relative to the configuration directory,
// with forward slashes (it goes into the version hash).
func (r notationStoreRef) dir() string { return path.Join("truststore", "x509", r.typ, r.name) }

// Notation's trust store types.
const (
	storeCA               = "ca"
	storeSigningAuthority = "signingAuthority"
	storeTSA              = "tsa"
)

// Notation's validation types and actions (notation-go
// verifier/trustpolicy).
const (
	checkIntegrity          = "integrity"
	checkAuthenticity       = "authenticity"
	checkAuthenticTimestamp = "authenticTimestamp"
	checkExpiry             = "expiry"
	checkRevocation         = "revocation"

	actionEnforce = "enforce"
	actionLog     = "log"
	actionSkip    = "skip"
)

var (
	notationChecks  = []string{checkIntegrity, checkAuthenticity, checkAuthenticTimestamp, checkExpiry, checkRevocation}
	notationActions = []string{actionEnforce, actionLog, actionSkip}
	// notationLevels are the presets' actions, in the order of notationChecks.
	notationLevels = map[string][5]string{
		"strict":     {actionEnforce, actionEnforce, actionEnforce, actionEnforce, actionEnforce},
		"permissive": {actionEnforce, actionEnforce, actionLog, actionLog, actionLog},
		"audit":      {actionEnforce, actionLog, actionLog, actionLog, actionLog},
		"skip":       {actionSkip, actionSkip, actionSkip, actionSkip, actionSkip},
	}
)

// Registry scope grammar, as Notation validates it (from distribution's
// reference grammar): a domain with an optional port, "/", a repository.
var (
	notationDomain     = regexp.MustCompile(`^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?$`)
	notationRepository = regexp.MustCompile(`^[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$`)
	notationStoreName  = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
)

// parseNotationTrustPolicy parses and validates a Notation trust policy
// document (version 1.0) without touching the file system. It refuses
// everything Notation refuses, and more: unknown and duplicate keys, and
// the settings bulwark cannot honour without weakening them (see
// notationVerification).
func parseNotationTrustPolicy(data []byte) ([]notationStatement, error) {
	if len(data) > MaxPolicySize {
		return nil, &PolicyError{Err: fmt.Errorf("larger than %d bytes", MaxPolicySize)}
	}
	root, err := parseJSONTree(data)
	if err != nil {
		return nil, err
	}
	f, err := root.object("the trust policy", "version", "trustPolicies")
	if err != nil {
		return nil, err
	}
	if f["version"] == nil {
		return nil, root.errorf(`missing "version" (the only version is "1.0")`)
	}
	if v, err := f["version"].string("version"); err != nil {
		return nil, err
	} else if v != "1.0" {
		return nil, f["version"].errorf(`version %q is not supported; the only version is "1.0"`, v)
	}
	if f["trustPolicies"] == nil {
		return nil, root.errorf(`missing "trustPolicies"`)
	}
	items, err := f["trustPolicies"].array("trustPolicies")
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, f["trustPolicies"].errorf("trustPolicies must not be empty")
	}

	var stmts []notationStatement
	scopeOwner := map[string]string{} // scope -> statement
	for i, n := range items {
		s, err := notationStatementOf(n, i)
		if err != nil {
			return nil, err
		}
		for _, prev := range stmts {
			if prev.name == s.name {
				return nil, n.errorf("statement name %q is used twice (first on line %d); names must be unique", s.name, prev.line)
			}
		}
		for _, scope := range s.scopes {
			if owner, dup := scopeOwner[scope]; dup {
				if owner == s.name {
					return nil, n.errorf("statement %q: registry scope %q is listed twice", s.name, scope)
				}
				return nil, n.errorf("statement %q: registry scope %q is also in statement %q; one scope can only be in one statement", s.name, scope, owner)
			}
			scopeOwner[scope] = s.name
		}
		stmts = append(stmts, s)
	}
	return stmts, nil
}

func notationStatementOf(n *jsonNode, i int) (notationStatement, error) {
	what := fmt.Sprintf("trustPolicies[%d]", i)
	if name, ok := n.field("name"); ok && name.kind == 's' && checkNotationName(name.str) == nil {
		what = fmt.Sprintf("statement %q", name.str)
	}
	f, err := n.object(what, "name", "registryScopes", "signatureVerification", "trustStores", "trustedIdentities")
	if err != nil {
		return notationStatement{}, err
	}
	s := notationStatement{line: n.line}
	if f["name"] == nil {
		return s, n.errorf("%s: missing name; every statement needs one", what)
	}
	if s.name, err = f["name"].string(what + ": name"); err != nil {
		return s, err
	}
	if err := checkNotationName(s.name); err != nil {
		return s, f["name"].errorf("%s: name %q: %v", what, s.name, err)
	}

	if f["registryScopes"] == nil {
		return s, n.errorf("%s: missing registryScopes", what)
	}
	var nodes []*jsonNode
	if s.scopes, nodes, err = f["registryScopes"].strings(what + ": registryScopes"); err != nil {
		return s, err
	}
	if len(s.scopes) == 0 {
		return s, f["registryScopes"].errorf("%s: registryScopes is empty; it needs at least one scope", what)
	}
	for j, scope := range s.scopes {
		if scope == "*" {
			if len(s.scopes) > 1 {
				return s, nodes[j].errorf(`%s: the wildcard scope "*" cannot be combined with other scopes`, what)
			}
			continue
		}
		if err := checkRegistryScope(scope); err != nil {
			return s, nodes[j].errorf("%s: registry scope %q: %v", what, scope, err)
		}
	}

	if f["signatureVerification"] == nil {
		return s, n.errorf("%s: missing signatureVerification", what)
	}
	if s.revocation, err = notationVerification(f["signatureVerification"], what); err != nil {
		return s, err
	}

	// Only "skip" may go without stores and identities, and skip is
	// refused above: both are required.
	if f["trustStores"].isAbsent() || f["trustedIdentities"].isAbsent() {
		return s, n.errorf("%s: needs both trustStores and trustedIdentities", what)
	}
	stores, nodes, err := f["trustStores"].strings(what + ": trustStores")
	if err != nil {
		return s, err
	}
	if len(stores) == 0 {
		return s, f["trustStores"].errorf("%s: trustStores is empty", what)
	}
	for j, ts := range stores {
		typ, name, ok := strings.Cut(ts, ":")
		switch {
		case !ok:
			return s, nodes[j].errorf("%s: trust store %q: want TYPE:NAME, e.g. ca:acme", what, ts)
		case typ != storeCA && typ != storeSigningAuthority && typ != storeTSA:
			return s, nodes[j].errorf("%s: trust store %q: unknown type %q (ca, signingAuthority or tsa)", what, ts, typ)
		case !notationStoreName.MatchString(name) || name == "." || name == "..":
			return s, nodes[j].errorf("%s: trust store %q: the name must match [a-zA-Z0-9_.-]+ and not be . or ..", what, ts)
		}
		ref := notationStoreRef{typ: typ, name: name, line: nodes[j].line}
		if !slices.ContainsFunc(s.stores, func(r notationStoreRef) bool { return r.typ == typ && r.name == name }) {
			s.stores = append(s.stores, ref)
		}
	}
	if !slices.ContainsFunc(s.stores, func(r notationStoreRef) bool { return r.typ == storeCA }) {
		return s, f["trustStores"].errorf("%s: no trust store of type ca; bulwark verifies signatures of the notary.x509 "+
			"signing scheme, which Notation trusts through ca stores only (signingAuthority stores serve the "+
			"notary.x509.signingAuthority scheme, tsa stores timestamps; neither is supported yet)", what)
	}

	if s.identities, nodes, err = f["trustedIdentities"].strings(what + ": trustedIdentities"); err != nil {
		return s, err
	}
	if len(s.identities) == 0 {
		return s, f["trustedIdentities"].errorf("%s: trustedIdentities is empty", what)
	}
	for j, id := range s.identities {
		if id == "*" {
			if len(s.identities) > 1 {
				return s, nodes[j].errorf(`%s: the wildcard identity "*" cannot be combined with other identities`, what)
			}
			s.any = true
			continue
		}
		sp, err := parseNotationIdentity(id)
		if err != nil {
			return s, nodes[j].errorf("%s: trusted identity %q: %v", what, id, err)
		}
		for k, prev := range s.subjects {
			if sp.subsetOf(prev) || prev.subsetOf(sp) {
				return s, nodes[j].errorf("%s: trusted identity %q overlaps with %q (one matches every certificate the other does); Notation refuses overlapping identities",
					what, id, s.identities[k])
			}
		}
		s.subjects = append(s.subjects, sp)
	}
	return s, nil
}

// checkNotationName: Notation only requires a name; bulwark uses it as an
// environment and authority name in flags, logs and JSON, so it must be
// printable and short.
func checkNotationName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > maxNotationNameLength {
		return fmt.Errorf("longer than %d bytes", maxNotationNameLength)
	}
	if !utf8.ValidString(name) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("non-printable character %U", r)
		}
	}
	if strings.TrimSpace(name) != name {
		return errors.New("leading or trailing space")
	}
	return nil
}

// checkRegistryScope applies Notation's rule: "domain[:port]/repository",
// no wildcard, no tag or digest.
func checkRegistryScope(scope string) error {
	if strings.Contains(scope, "*") {
		return errors.New(`wildcards are not allowed in a scope; "*" alone is the only wildcard scope`)
	}
	domain, repo, ok := strings.Cut(scope, "/")
	if !ok || !notationDomain.MatchString(domain) || !notationRepository.MatchString(repo) {
		return errors.New("want a fully qualified repository without scheme, tag or digest, e.g. registry.example.com/team/app")
	}
	// Evaluate matches the repository part with bulwark's glob rules; a
	// Notation-valid name is a valid glob, but say so if not.
	if err := auth.ValidateGlob(repo); err != nil {
		return err
	}
	return nil
}

// notationVerification checks signatureVerification as Notation does and
// maps it onto what bulwark checks. Every check bulwark makes is always
// enforced, so a Notation action "log" for authenticTimestamp or expiry
// becomes "enforce" (stricter, never weaker). What bulwark cannot honour
// without silently accepting more than the statement says is refused:
// level "skip" (no verification at all) and "log" for authenticity (level
// "audit": a signature by anyone would count). It returns the revocation
// action, the one check whose setting changes bulwark's evaluation.
func notationVerification(n *jsonNode, what string) (string, error) {
	what += ": signatureVerification"
	f, err := n.object(what, "level", "override", "verifyTimestamp")
	if err != nil {
		return "", err
	}
	if f["level"] == nil {
		return "", n.errorf("%s: missing level (strict, permissive, audit or skip)", what)
	}
	level, err := f["level"].string(what + ": level")
	if err != nil {
		return "", err
	}
	actions, ok := notationLevels[level]
	if !ok {
		return "", f["level"].errorf("%s: unknown level %q (strict, permissive, audit or skip)", what, level)
	}
	if level == "skip" {
		return "", f["level"].errorf(`%s: level "skip" lets images through without verifying any signature; bulwark decides `+
			`whether an image may run and has no unverified environments: remove the statement or verify its scopes`, what)
	}
	if o := f["override"]; !o.isAbsent() {
		if o.kind != '{' {
			return "", o.errorf("%s: override must be an object, not %s", what, o.describe())
		}
		for k, key := range o.keys {
			idx := slices.Index(notationChecks, key)
			if idx < 0 {
				return "", o.keyErr(k, "%s: override: unknown verification type %q (%s)", what, key, strings.Join(notationChecks, ", "))
			}
			action, err := o.items[k].string(fmt.Sprintf("%s: override: %s", what, key))
			if err != nil {
				return "", err
			}
			switch {
			case !slices.Contains(notationActions, action):
				return "", o.items[k].errorf("%s: override: %s: unknown action %q (enforce, log or skip)", what, key, action)
			case key == checkIntegrity:
				return "", o.keyErr(k, "%s: override: integrity cannot be overridden", what)
			case key != checkRevocation && action == actionSkip:
				return "", o.keyErr(k, "%s: override: %s cannot be skipped (only revocation can)", what, key)
			}
			actions[idx] = action
		}
	}
	if actions[1] != actionEnforce {
		return "", n.errorf(`%s: authenticity is only logged (level "audit" or an override), so a signature by anyone `+
			`would be accepted; bulwark cannot use that to decide whether an image may run: use "strict" or "permissive"`, what)
	}
	if t := f["verifyTimestamp"]; !t.isAbsent() {
		v, err := t.string(what + ": verifyTimestamp")
		if err != nil {
			return "", err
		}
		if v != "always" && v != "afterCertExpiry" {
			return "", t.errorf(`%s: verifyTimestamp must be "always" or "afterCertExpiry", not %q`, what, v)
		}
	}
	return actions[4], nil
}

// parseNotationIdentity parses "x509.subject: C=US, ST=WA, O=..." with
// Notation's rules: the prefix, then a DN with at least C, ST and O, each
// attribute once, no multi-valued RDNs or hex (#) values (ParseSubject).
func parseNotationIdentity(id string) (subjectPattern, error) {
	prefix, value, ok := strings.Cut(id, ":")
	if !ok {
		return subjectPattern{}, errors.New(`want "x509.subject: C=..., ST=..., O=..." or "*"`)
	}
	if prefix != "x509.subject" {
		return subjectPattern{}, fmt.Errorf("identity type %q is not supported; bulwark, like Notation without plugins, understands x509.subject", prefix)
	}
	if strings.TrimSpace(value) == "" {
		return subjectPattern{}, errors.New("no distinguished name after x509.subject:")
	}
	if strings.Contains(value, "=#") {
		return subjectPattern{}, errors.New(`"=#" (hex-encoded values) is not supported`)
	}
	sp, err := parseSubjectPattern(value)
	if err != nil {
		return subjectPattern{}, err
	}
	sp.text = id
	for _, want := range []struct {
		typ string
		oid []int
	}{{"C", []int{2, 5, 4, 6}}, {"ST", []int{2, 5, 4, 8}}, {"O", []int{2, 5, 4, 10}}} {
		if !slices.ContainsFunc(sp.attrs, func(a pkix.AttributeTypeAndValue) bool { return a.Type.Equal(want.oid) }) {
			return subjectPattern{}, fmt.Errorf("the distinguished name has no %s; Notation requires C, ST and O at least", want.typ)
		}
	}
	return sp, nil
}

// subsetOf reports whether every attribute of sp is in other with the same
// value: then every certificate other matches, sp matches too.
func (sp subjectPattern) subsetOf(other subjectPattern) bool {
	return sp.matches(other.attrs)
}

// notationPolicy reads the trust stores and builds the policy: one
// environment and one authority per statement, both named after it.
func (l *policyLoader) notationPolicy(stmts []notationStatement) (*Policy, error) {
	p := &Policy{}
	stores := map[string][]*x509.Certificate{}
	budget := int64(maxNotationStoresBytes)
	var exact []string // repositories of every host-scoped statement
	for _, s := range stmts {
		a := &Authority{Name: s.name, Line: s.line, Identities: s.identities, Repositories: []string{"**"},
			rootPool: x509.NewCertPool(), subjects: s.subjects, anySubject: s.any}
		for _, ref := range s.stores {
			certs, ok := stores[ref.String()]
			if !ok {
				var err error
				if certs, err = l.readStore(ref, &budget); err != nil {
					return nil, &PolicyError{Line: ref.line, Err: fmt.Errorf("statement %q: trust store %q: %w", s.name, ref, err)}
				}
				stores[ref.String()] = certs
			}
			if ref.typ != storeCA {
				continue // read and validated, but they trust no notary.x509 signature
			}
			for _, c := range certs {
				a.Roots = append(a.Roots, c)
				if s.revocation == actionEnforce {
					a.rootPool.AddCertWithConstraint(c, refuseUncheckedRevocation)
				} else {
					a.rootPool.AddCert(c)
				}
			}
		}
		p.Authorities = append(p.Authorities, a)

		e := &Environment{Name: s.name, Line: s.line, Require: Requirement{Threshold: 1, Of: []string{s.name}, All: true},
			notation: &notationScopes{scopes: s.scopes}}
		if s.scopes[0] == "*" {
			e.Repositories = []string{"**"}
		} else {
			e.Repositories = s.scopes
			e.notation.pinned = true
			for _, scope := range s.scopes {
				_, repo, _ := strings.Cut(scope, "/")
				exact = append(exact, repo)
			}
		}
		p.Environments = append(p.Environments, e)
	}
	for _, e := range p.Environments {
		if !e.notation.pinned {
			e.Except = exact
		}
	}
	return p, nil
}

// readStore reads every file of a named trust store as Notation does: each
// entry must be a regular file (no directories, no symbolic links) holding
// PEM or DER certificates; CA and signingAuthority stores take CA
// certificates or self-signed signing certificates, tsa stores root CA
// certificates. Each file's path and content go into the version hash.
func (l *policyLoader) readStore(ref notationStoreRef, budget *int64) ([]*x509.Certificate, error) {
	dir := filepath.Join(l.baseDir, filepath.FromSlash(ref.dir()))
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref.dir(), yamlnode.WithoutPath(err))
	}
	if !fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s is not a directory (symbolic links are refused, as Notation refuses them)", ref.dir())
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref.dir(), yamlnode.WithoutPath(err))
	}
	entries, err := f.ReadDir(maxTrustStoreFiles + 1)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", ref.dir(), yamlnode.WithoutPath(err))
	}
	if len(entries) > maxTrustStoreFiles {
		return nil, fmt.Errorf("%s: more than %d files", ref.dir(), maxTrustStoreFiles)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	var certs []*x509.Certificate
	for _, e := range entries {
		rel := path.Join(ref.dir(), e.Name())
		if e.IsDir() || e.Type()&fs.ModeSymlink != 0 || !e.Type().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file (Notation refuses directories and symbolic links in a trust store)", rel)
		}
		if info, err := e.Info(); err == nil {
			if *budget -= info.Size(); *budget < 0 {
				return nil, fmt.Errorf("trust stores hold more than %d bytes", maxNotationStoresBytes)
			}
		}
		cs, err := l.certificates(rel)
		if err != nil {
			return nil, err
		}
		for j, c := range cs {
			if err := checkStoreCertificate(ref.typ, c); err != nil {
				return nil, fmt.Errorf("%s: certificate %d (%s): %w", rel, j+1, formatName(c.Subject), err)
			}
		}
		certs = append(certs, cs...)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", ref.dir())
	}
	return certs, nil
}

// checkStoreCertificate applies Notation's rules for trusted certificates.
func checkStoreCertificate(typ string, c *x509.Certificate) error {
	selfSigned := bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
	if typ == storeTSA {
		if !selfSigned {
			return errors.New("a tsa trust store takes root CA certificates only")
		}
		return nil
	}
	// A self-signed signing certificate may be trusted directly; otherwise
	// it must be a CA. CheckSignatureFrom refuses non-CA issuers, so check
	// the self-signature by hand for that case.
	if c.BasicConstraintsValid && c.IsCA {
		return nil
	}
	if bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil {
		return nil
	}
	return errors.New("neither a CA certificate nor a self-signed signing certificate")
}

// refuseUncheckedRevocation is the root constraint of statements that
// enforce revocation. Notation checks the OCSP responders and CRL
// distribution points a certificate names and fails when it cannot; bulwark
// contacts neither, so a chain whose certificates name any cannot count
// rather than count unchecked. Certificates naming none (those `bulwark pki`
// issues) have no revocation to check, for Notation as for bulwark.
//
// A root constraint is the one hook x509.Verify offers; its reason reaches
// the decision only when Go's chain builder keeps it (it does not when the
// envelope carries the root as well, and then the signature is refused as
// "does not lead to one of the authority's roots").
func refuseUncheckedRevocation(chain []*x509.Certificate) error {
	for _, c := range chain {
		if bytes.Equal(c.RawSubject, c.RawIssuer) {
			continue // a root is not checked for revocation
		}
		if len(c.OCSPServer) > 0 || len(c.CRLDistributionPoints) > 0 {
			return fmt.Errorf("certificate %s names revocation services (OCSP %v, CRL %v) that bulwark does not contact, and the "+
				"trust policy statement enforces revocation; override revocation to \"log\" or \"skip\" to accept such certificates unchecked",
				formatDN(c), c.OCSPServer, c.CRLDistributionPoints)
		}
	}
	return nil
}

// jsonNode is a parsed JSON value with the line it starts on, so the
// Notation trust policy can be validated with messages naming lines.
// encoding/json alone would match keys case-insensitively, keep the last of
// duplicate keys and ignore unknown ones.
type jsonNode struct {
	kind     byte   // '{' object, '[' array, 's' string, 'n' number, 'b' boolean, '0' null
	line     int    // 1-based
	str      string // a string's value, or a number's or boolean's literal
	keys     []string
	keyLines []int
	items    []*jsonNode // an object's values (parallel to keys) or an array's elements
}

// parseJSONTree parses one JSON value, refusing invalid UTF-8, duplicate
// keys, trailing data and nesting deeper than maxNotationJSONDepth.
func parseJSONTree(data []byte) (*jsonNode, error) {
	if !utf8.Valid(data) {
		return nil, &PolicyError{Err: errors.New("not valid UTF-8")}
	}
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data)), line: 1}
	p.dec.UseNumber()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	line := p.nextLine()
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, &PolicyError{Line: line, Err: errors.New("data after the JSON document")}
	}
	return n, nil
}

type jsonParser struct {
	data []byte
	dec  *json.Decoder
	off  int // where line was counted up to
	line int
}

// nextLine returns the line of the next token: after the decoder's offset,
// past white space and the separators Token consumes silently.
func (p *jsonParser) nextLine() int {
	pos := int(p.dec.InputOffset())
	for pos < len(p.data) && strings.IndexByte(" \t\r\n,:", p.data[pos]) >= 0 {
		pos++
	}
	return p.lineAt(pos)
}

func (p *jsonParser) lineAt(pos int) int {
	if pos > len(p.data) {
		pos = len(p.data)
	}
	if pos > p.off {
		p.line += bytes.Count(p.data[p.off:pos], []byte{'\n'})
		p.off = pos
	}
	return p.line
}

func (p *jsonParser) syntaxError(err error) error {
	line := p.line
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line = p.lineAt(int(se.Offset))
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("unexpected end of the document")
		line = p.lineAt(len(p.data))
	}
	return &PolicyError{Line: line, Err: fmt.Errorf("malformed JSON: %w", err)}
}

func (p *jsonParser) value(depth int) (*jsonNode, error) {
	line := p.nextLine()
	tok, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) && depth == 0 {
			return nil, &PolicyError{Err: errors.New("empty")}
		}
		return nil, p.syntaxError(err)
	}
	n := &jsonNode{line: line}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxNotationJSONDepth {
			return nil, &PolicyError{Line: line, Err: errors.New("JSON nested too deeply")}
		}
		n.kind = byte(t)
		for p.dec.More() {
			if t == '{' {
				kline := p.nextLine()
				k, err := p.dec.Token()
				if err != nil {
					return nil, p.syntaxError(err)
				}
				key, _ := k.(string)
				if slices.Contains(n.keys, key) {
					return nil, &PolicyError{Line: kline, Err: fmt.Errorf("key %q is given twice", key)}
				}
				n.keys, n.keyLines = append(n.keys, key), append(n.keyLines, kline)
			}
			item, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, item)
		}
		if _, err := p.dec.Token(); err != nil { // the closing delimiter
			return nil, p.syntaxError(err)
		}
	case string:
		n.kind, n.str = 's', t
	case json.Number:
		n.kind, n.str = 'n', t.String()
	case bool:
		n.kind, n.str = 'b', fmt.Sprint(t)
	case nil:
		n.kind = '0'
	}
	return n, nil
}

func (n *jsonNode) errorf(format string, args ...any) error {
	return &PolicyError{Line: n.line, Err: fmt.Errorf(format, args...)}
}

// keyErr is an error on the line of the object's k-th key.
func (n *jsonNode) keyErr(k int, format string, args ...any) error {
	return &PolicyError{Line: n.keyLines[k], Err: fmt.Errorf(format, args...)}
}

// field returns the value of an object's key.
func (n *jsonNode) field(key string) (*jsonNode, bool) {
	if n.kind != '{' {
		return nil, false
	}
	if k := slices.Index(n.keys, key); k >= 0 {
		return n.items[k], true
	}
	return nil, false
}

// isAbsent: a missing key (nil node) or an explicit null.
func (n *jsonNode) isAbsent() bool { return n == nil || n.kind == '0' }

func (n *jsonNode) describe() string {
	switch n.kind {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 's':
		return fmt.Sprintf("the string %q", n.str)
	case '0':
		return "null"
	default:
		return n.str
	}
}

// object checks that n is an object whose keys are all known (compared
// exactly: Notation's own decoder would also take "Name" for "name"), and
// returns its values by key.
func (n *jsonNode) object(what string, known ...string) (map[string]*jsonNode, error) {
	if n.kind != '{' {
		return nil, n.errorf("%s must be an object, not %s", what, n.describe())
	}
	f := make(map[string]*jsonNode, len(n.keys))
	for k, key := range n.keys {
		if !slices.Contains(known, key) {
			return nil, n.keyErr(k, "%s: unknown key %q (known: %s)", what, key, strings.Join(known, ", "))
		}
		f[key] = n.items[k]
	}
	return f, nil
}

func (n *jsonNode) array(what string) ([]*jsonNode, error) {
	if n.kind != '[' {
		return nil, n.errorf("%s must be an array, not %s", what, n.describe())
	}
	return n.items, nil
}

func (n *jsonNode) string(what string) (string, error) {
	if n.kind != 's' {
		return "", n.errorf("%s must be a string, not %s", what, n.describe())
	}
	return n.str, nil
}

// strings reads an array of non-empty strings and the node of each.
func (n *jsonNode) strings(what string) ([]string, []*jsonNode, error) {
	items, err := n.array(what)
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, len(items))
	for i, item := range items {
		if out[i], err = item.string(what); err != nil {
			return nil, nil, err
		}
		if out[i] == "" {
			return nil, nil, item.errorf("%s: empty string", what)
		}
	}
	return out, items, nil
}
