package trust

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// ErrUnknownEnvironment is returned by Evaluate for an environment the
// policy does not define.
var ErrUnknownEnvironment = errors.New("unknown environment")

// ErrAmbiguousEnvironment is returned by Evaluate when no environment was
// named and several cover the repository: picking one would silently pick
// the weaker rule.
var ErrAmbiguousEnvironment = errors.New("several environments cover the repository; name one")

// SignatureFact is one signature found for an image, after cryptographic
// verification (done elsewhere). Evaluate trusts nothing in it but Verified:
// the chain, key and digest are checked against the policy here.
type SignatureFact struct {
	Format       string        // "notation-jws", "notation-cose", "cosign", "cosign-bundle"
	Ref          string        // where it was found: digest of the signature manifest, or tag
	SignedDigest digest.Digest // the image digest the signed payload names
	Verified     bool          // the cryptographic signature check passed
	// Chain is the certificate chain carried by the signature, leaf first,
	// when certificate-based. It need not include the root.
	Chain []*x509.Certificate
	// PublicKey is the key the signature verified with, when key-based.
	// For certificate-based signatures it may be nil: Chain[0]'s key is used.
	PublicKey crypto.PublicKey
	SignedAt  time.Time // signing time claimed by the envelope; zero if none
	Error     string    // why cryptographic verification failed
}

// Decision is the outcome of a policy evaluation, explaining every
// signature considered. Its JSON form is what `bulwark verify --output
// json` prints.
type Decision struct {
	Allowed     bool              `json:"allowed"`
	Environment string            `json:"environment"`
	Requirement string            `json:"requirement"` // e.g. "2 of [ci security]"
	Satisfied   []string          `json:"satisfied"`   // authorities counted, in requirement order
	Signatures  []SignatureResult `json:"signatures"`  // one per SignatureFact, in input order
	Reason      string            `json:"reason"`
}

// SignatureResult says what the policy made of one signature.
type SignatureResult struct {
	Ref       string `json:"ref"`
	Format    string `json:"format"`
	Signer    string `json:"signer"`    // leaf subject DN, or "sha256:<hex>" of the public key (SubjectPublicKeyInfo DER)
	Authority string `json:"authority"` // the authority it matched; "" if none
	Counted   bool   `json:"counted"`   // it counted toward the requirement
	Why       string `json:"why"`
}

// Evaluate decides whether the signatures sigs on the image imageRepo@imageDigest
// satisfy environment env at time now. With env "" the one environment
// covering imageRepo is used (ErrAmbiguousEnvironment if several do).
//
// The error is for calls that cannot be decided (unknown environment, bad
// arguments); a policy that is not satisfied is a Decision with Allowed
// false and a Reason.
func (p *Policy) Evaluate(imageRepo string, imageDigest digest.Digest, env string, sigs []SignatureFact, now time.Time) (Decision, error) {
	if _, err := oci.ParseDigest(imageDigest.String()); err != nil {
		return Decision{}, fmt.Errorf("evaluate trust policy: image digest: %w", err)
	}
	if now.IsZero() {
		return Decision{}, errors.New("evaluate trust policy: zero evaluation time")
	}
	e, err := p.selectEnvironment(imageRepo, env)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Signatures: make([]SignatureResult, len(sigs)), Satisfied: []string{}}
	if e == nil {
		d.Reason = fmt.Sprintf("no environment covers repository %q", imageRepo)
		for i := range sigs {
			d.Signatures[i] = SignatureResult{Ref: sigs[i].Ref, Format: sigs[i].Format, Signer: signerOf(&sigs[i]),
				Why: "not evaluated: no environment applies"}
		}
		return d, nil
	}
	d.Environment, d.Requirement = e.Name, e.Require.String()

	ev := evaluation{p: p, env: e, repo: imageRepo, digest: imageDigest, now: now}
	counted := ev.run(sigs, d.Signatures)
	for _, name := range e.Require.Of {
		if counted[name] {
			d.Satisfied = append(d.Satisfied, name)
		}
	}

	switch {
	case !e.Covers(imageRepo):
		d.Reason = fmt.Sprintf("environment %q does not cover repository %q (it covers %s)",
			e.Name, imageRepo, strings.Join(e.Repositories, ", "))
	case len(d.Satisfied) >= e.Require.Threshold:
		d.Allowed = true
		d.Reason = fmt.Sprintf("satisfied: %s; counted %s", d.Requirement, strings.Join(d.Satisfied, ", "))
	default:
		var missing []string
		for _, name := range e.Require.Of {
			if !counted[name] {
				missing = append(missing, name)
			}
		}
		d.Reason = fmt.Sprintf("not satisfied: %s: %d of %d required authorities counted", d.Requirement, len(d.Satisfied), e.Require.Threshold)
		if len(d.Satisfied) > 0 {
			d.Reason += " (" + strings.Join(d.Satisfied, ", ") + ")"
		}
		d.Reason += "; missing " + strings.Join(missing, ", ")
		if len(sigs) == 0 {
			d.Reason += "; no signatures found"
		}
	}
	return d, nil
}

// selectEnvironment returns the named environment, or with name "" the only
// one covering repo (nil if none does).
func (p *Policy) selectEnvironment(repo, name string) (*Environment, error) {
	if name != "" {
		e, ok := p.Environment(name)
		if !ok {
			names := make([]string, len(p.Environments))
			for i, e := range p.Environments {
				names[i] = e.Name
			}
			return nil, fmt.Errorf("%w %q (environments: %s)", ErrUnknownEnvironment, name, strings.Join(names, ", "))
		}
		return e, nil
	}
	switch names := p.EnvironmentsFor(repo); len(names) {
	case 0:
		return nil, nil
	case 1:
		e, _ := p.Environment(names[0])
		return e, nil
	default:
		return nil, fmt.Errorf("%w: %q is covered by %s", ErrAmbiguousEnvironment, repo, strings.Join(names, ", "))
	}
}

// evaluation is one Evaluate call's fixed inputs.
type evaluation struct {
	p      *Policy
	env    *Environment
	repo   string
	digest digest.Digest
	now    time.Time
}

// run fills results (one per signature) and returns the authorities counted.
//
// Counting is a matching, not a tally: each authority is counted at most
// once, each signer (signing key) for at most one authority, and the
// largest such assignment is used. So one key cannot satisfy two
// authorities whose identities overlap by signing twice, and a greedy pass
// cannot waste a signer that fits two authorities on the one a second
// signer also fits.
func (ev *evaluation) run(sigs []SignatureFact, results []SignatureResult) map[string]bool {
	required := ev.env.Require.Of
	eligible := make([][]int, len(sigs)) // required authority indexes each signature satisfies
	failures := make([][]string, len(sigs))
	for i := range sigs {
		s := &sigs[i]
		results[i] = SignatureResult{Ref: s.Ref, Format: s.Format, Signer: signerOf(s)}
		if why := ev.precheck(s); why != "" {
			results[i].Why = why
			continue
		}
		for j, name := range required {
			a, _ := ev.p.Authority(name)
			if why := ev.check(a, s); why != "" {
				failures[i] = append(failures[i], name+": "+why)
				continue
			}
			eligible[i] = append(eligible[i], j)
		}
	}

	// Group the eligible signatures by signing key and match keys, not
	// signatures, to authorities.
	group := make([]int, len(sigs)) // signature -> signer index
	var signerSigs [][]int
	var signerAuths [][]int
	byKey := make(map[string]int)
	for i := range sigs {
		if len(eligible[i]) == 0 {
			group[i] = -1
			continue
		}
		key := signingKeyID(&sigs[i])
		g, ok := byKey[key]
		if !ok {
			g = len(signerSigs)
			byKey[key] = g
			signerSigs = append(signerSigs, nil)
			signerAuths = append(signerAuths, nil)
		}
		group[i] = g
		signerSigs[g] = append(signerSigs[g], i)
		for _, j := range eligible[i] {
			if !slices.Contains(signerAuths[g], j) {
				signerAuths[g] = append(signerAuths[g], j)
			}
		}
	}
	signerOfAuth := maxMatching(signerAuths, len(required)) // authority -> signer, -1 if none

	sigOfAuth := make([]int, len(required))
	authOfSig := make([]int, len(sigs))
	for i := range authOfSig {
		authOfSig[i] = -1
	}
	counted := make(map[string]bool)
	for j, g := range signerOfAuth {
		sigOfAuth[j] = -1
		if g < 0 {
			continue
		}
		// The signer's first signature that satisfies this authority.
		for _, i := range signerSigs[g] {
			if slices.Contains(eligible[i], j) {
				sigOfAuth[j], authOfSig[i] = i, j
				counted[required[j]] = true
				break
			}
		}
	}

	for i := range sigs {
		r := &results[i]
		switch {
		case r.Why != "":
			// refused before any authority was tried
		case authOfSig[i] >= 0:
			r.Authority, r.Counted = required[authOfSig[i]], true
			r.Why = fmt.Sprintf("counted for authority %s", r.Authority)
		case len(eligible[i]) > 0:
			r.Authority, r.Why = required[eligible[i][0]], ev.whyNotCounted(sigs, i, eligible[i], group, sigOfAuth, authOfSig)
		default:
			r.Why = "matches no required authority: " + strings.Join(failures[i], "; ")
			if name := ev.otherAuthority(&sigs[i]); name != "" {
				r.Authority = name
				r.Why = fmt.Sprintf("valid signature of authority %s, which environment %s does not require (%s); %s",
					name, ev.env.Name, ev.env.Require, r.Why)
			}
		}
	}
	return counted
}

// whyNotCounted explains a signature that satisfies some required
// authority yet was not counted: that authority is already counted, or its
// signer already counts for another authority.
func (ev *evaluation) whyNotCounted(sigs []SignatureFact, i int, eligible, group, sigOfAuth, authOfSig []int) string {
	required := ev.env.Require.Of
	for _, j := range eligible {
		if by := sigOfAuth[j]; by >= 0 {
			return fmt.Sprintf("valid signature of authority %s, which is already counted by signature %s: each authority counts once",
				required[j], sigs[by].Ref)
		}
	}
	// Only reachable when every authority this signature fits is
	// uncounted, which a maximum matching allows only if its signer is
	// already counted elsewhere.
	for i2, j := range authOfSig {
		if j >= 0 && group[i2] == group[i] {
			return fmt.Sprintf("valid signature of authority %s, but its signer already counts for authority %s by signature %s: each signer counts once",
				required[eligible[0]], required[j], sigs[i2].Ref)
		}
	}
	return "not counted"
}

// signingKeyID identifies who holds the key that made a signature: the
// fingerprint of the leaf's public key, or of the raw key.
func signingKeyID(s *SignatureFact) string {
	if len(s.Chain) > 0 {
		return keyFingerprint(s.Chain[0].PublicKey)
	}
	return keyFingerprint(s.PublicKey)
}

// otherAuthority returns the first authority outside the requirement that
// the signature satisfies, to explain why a good signature did not count.
func (ev *evaluation) otherAuthority(s *SignatureFact) string {
	for _, a := range ev.p.Authorities {
		if !slices.Contains(ev.env.Require.Of, a.Name) && ev.check(a, s) == "" {
			return a.Name
		}
	}
	return ""
}

// maxMatching assigns signers to authorities (augmenting paths, Kuhn's
// algorithm) so that as many authorities as possible get a distinct
// signer. eligible[i] lists the authorities signer i satisfies; the result
// gives each authority's signer, or -1. The sizes are a handful of
// authorities and signers, so O(V·E) is nothing.
func maxMatching(eligible [][]int, nAuth int) []int {
	signerOf := make([]int, nAuth)
	for j := range signerOf {
		signerOf[j] = -1
	}
	authOf := make([]int, len(eligible))
	for g := range authOf {
		authOf[g] = -1
	}
	signersOf := make([][]int, nAuth)
	for g, js := range eligible {
		for _, j := range js {
			signersOf[j] = append(signersOf[j], g)
		}
	}
	var visited []bool
	var augment func(j int) bool
	augment = func(j int) bool {
		for _, g := range signersOf[j] {
			if visited[g] {
				continue
			}
			visited[g] = true
			if authOf[g] < 0 || augment(authOf[g]) {
				authOf[g], signerOf[j] = j, g
				return true
			}
		}
		return false
	}
	for j := range nAuth {
		visited = make([]bool, len(eligible))
		augment(j)
	}
	return signerOf
}

// precheck refuses signatures that cannot count for any authority.
func (ev *evaluation) precheck(s *SignatureFact) string {
	if !s.Verified {
		why := "cryptographic verification failed"
		if s.Error != "" {
			why += ": " + s.Error
		}
		return why
	}
	if slices.Contains(s.Chain, nil) {
		return "malformed signature facts: empty certificate in the chain"
	}
	if s.SignedDigest != ev.digest {
		return fmt.Sprintf("signature is for %s, not this image (%s): a signature copied from another image does not count",
			s.SignedDigest, ev.digest)
	}
	return ""
}

// check returns "" if the signature counts for authority a, else why not.
func (ev *evaluation) check(a *Authority, s *SignatureFact) string {
	var why string
	if a.Keys != nil {
		why = checkKey(a, s)
	} else {
		why = ev.checkCertificate(a, s)
	}
	if why != "" {
		return why
	}
	// Scope last: "outside its scope" is only said of signatures that are
	// otherwise the authority's own.
	if !a.Covers(ev.repo) {
		return fmt.Sprintf("authority signing outside its scope: %q is not in its repositories (%s)",
			ev.repo, strings.Join(a.Repositories, ", "))
	}
	return ""
}

func checkKey(a *Authority, s *SignatureFact) string {
	k := s.PublicKey
	if k == nil && len(s.Chain) > 0 {
		k = s.Chain[0].PublicKey
	}
	if k == nil {
		return "no public key in the signature"
	}
	for _, want := range a.Keys {
		if eq, ok := want.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(k) {
			return ""
		}
	}
	return fmt.Sprintf("key %s is not one of the authority's keys", keyFingerprint(k))
}

func (ev *evaluation) checkCertificate(a *Authority, s *SignatureFact) string {
	if len(s.Chain) == 0 {
		return "no certificate in the signature; the authority trusts certificates under its roots"
	}
	leaf := s.Chain[0]
	inter := x509.NewCertPool()
	for _, c := range s.Chain[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         a.rootPool,
		Intermediates: inter,
		CurrentTime:   ev.now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	if err != nil {
		return describeVerifyError(err, ev.now)
	}
	// Verify treats a certificate without extended key usages as good for
	// any purpose; a signing certificate must say code signing explicitly.
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) {
		return "certificate lacks the code-signing extended key usage"
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return "certificate lacks the digital-signature key usage"
	}
	if leaf.IsCA {
		return "signing certificate is a CA certificate"
	}
	if !s.SignedAt.IsZero() {
		if why := validAt(chains, s.SignedAt); why != "" {
			return why
		}
	}
	for _, chain := range chains {
		if why := revoked(a, chain, ev.now); why != "" {
			return why
		}
	}
	if !ev.identityMatches(a, leaf) {
		return fmt.Sprintf("identity %s is not one of the authority's identities (%s)", describeLeaf(leaf), describeIdentities(a))
	}
	return ""
}

// validAt reports "" if some verified chain was valid throughout at t (the
// claimed signing time), else why not. Verify already checked validity now.
func validAt(chains [][]*x509.Certificate, t time.Time) string {
	why := ""
	for _, chain := range chains {
		why = ""
		for _, c := range chain {
			if t.Before(c.NotBefore) || t.After(c.NotAfter) {
				why = fmt.Sprintf("certificate %s was not valid at the signing time %s (valid %s to %s)",
					formatDN(c), t.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
				break
			}
		}
		if why == "" {
			return ""
		}
	}
	return why
}

// revoked checks every certificate of a verified chain below the root
// against the authority's CRLs signed by that certificate's issuer. Any
// revocation counts, whatever its date: without a timestamp authority the
// signing time is only the signer's claim. A CRL past its next update
// fails closed.
func revoked(a *Authority, chain []*x509.Certificate, now time.Time) string {
	for i := 0; i+1 < len(chain); i++ {
		c, issuer := chain[i], chain[i+1]
		for _, crl := range a.CRLs {
			if !crl.Issuer.Equal(issuer) {
				continue
			}
			if !crl.List.NextUpdate.IsZero() && now.After(crl.List.NextUpdate) {
				return fmt.Sprintf("CRL %s is out of date (next update was due %s): revocation cannot be checked",
					crl.Path, crl.List.NextUpdate.UTC().Format(time.RFC3339))
			}
			if crl.revoked[c.SerialNumber.String()] {
				return fmt.Sprintf("certificate %s (serial %s) is revoked by CRL %s", formatDN(c), c.SerialNumber, crl.Path)
			}
		}
	}
	return ""
}

func (ev *evaluation) identityMatches(a *Authority, leaf *x509.Certificate) bool {
	if a.anySubject {
		return true
	}
	for _, sp := range a.subjects {
		if sp.matches(leaf.Subject.Names) {
			return true
		}
	}
	for _, p := range a.URIs {
		for _, u := range leaf.URIs {
			if matchURIPattern(p, u.String()) {
				return true
			}
		}
	}
	return false
}

// describeVerifyError turns x509.Verify's error into a reason a person can
// act on.
func describeVerifyError(err error, now time.Time) string {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Cert != nil {
		switch inv.Reason {
		case x509.Expired:
			if now.Before(inv.Cert.NotBefore) {
				return fmt.Sprintf("certificate %s is not valid yet (valid from %s)", formatDN(inv.Cert), inv.Cert.NotBefore.UTC().Format(time.RFC3339))
			}
			return fmt.Sprintf("certificate %s expired at %s (now %s)", formatDN(inv.Cert), inv.Cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		case x509.IncompatibleUsage:
			return fmt.Sprintf("certificate %s is not valid for code signing (extended key usage)", formatDN(inv.Cert))
		}
	}
	var unk x509.UnknownAuthorityError
	if errors.As(err, &unk) {
		return "certificate chain does not lead to one of the authority's roots: " + err.Error()
	}
	return "certificate chain rejected: " + err.Error()
}

func describeLeaf(leaf *x509.Certificate) string {
	s := fmt.Sprintf("%q", formatDN(leaf))
	for _, u := range leaf.URIs {
		s += fmt.Sprintf(" uri %q", u)
	}
	return s
}

func describeIdentities(a *Authority) string {
	var parts []string
	for _, s := range a.Identities {
		parts = append(parts, fmt.Sprintf("%q", s))
	}
	for _, s := range a.URIs {
		parts = append(parts, fmt.Sprintf("uri %q", s))
	}
	return strings.Join(parts, ", ")
}

// signerOf names who made a signature: the leaf's subject, else the key's
// fingerprint.
func signerOf(s *SignatureFact) string {
	switch {
	case len(s.Chain) > 0 && s.Chain[0] != nil:
		return formatDN(s.Chain[0])
	case s.PublicKey != nil:
		return keyFingerprint(s.PublicKey)
	}
	return ""
}

// keyFingerprint is "sha256:" and the hex SHA-256 of the key's
// SubjectPublicKeyInfo DER, which `openssl pkey -pubin -outform DER |
// sha256sum` reproduces from a PEM public key.
func keyFingerprint(k crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return fmt.Sprintf("unsupported key type %T", k)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// dnShortNames are the names formatDN uses, the same the policy accepts,
// so a signer printed by verify can be pasted into identities.
var dnShortNames = map[string]string{
	"2.5.4.6": "C", "2.5.4.8": "ST", "2.5.4.7": "L", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.3": "CN", "2.5.4.5": "SERIALNUMBER", "2.5.4.9": "STREET", "2.5.4.17": "POSTALCODE",
	"0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
	"1.2.840.113549.1.9.1": "E",
}

// formatDN writes a certificate's subject, see formatName.
func formatDN(c *x509.Certificate) string { return formatName(c.Subject) }

// formatName writes a parsed name in the order it is encoded, as
// "C=US, ST=WA, O=Example, CN=ci", escaping separators in values.
func formatName(n pkix.Name) string {
	parts := make([]string, 0, len(n.Names))
	for _, a := range n.Names {
		typ, ok := dnShortNames[a.Type.String()]
		if !ok {
			typ = a.Type.String()
		}
		parts = append(parts, typ+"="+escapeDNValue(fmt.Sprint(a.Value)))
	}
	if len(parts) == 0 {
		return n.String()
	}
	return strings.Join(parts, ", ")
}

func escapeDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`,+"\<>;=`, c) >= 0,
			c == ' ' && (i == 0 || i == len(v)-1),
			c == '#' && i == 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\%02X`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// AuthorityMatch is one authority's verdict on a signer (MatchSigner).
type AuthorityMatch struct {
	Authority string `json:"authority"`
	Matched   bool   `json:"matched"`
	Why       string `json:"why,omitempty"` // why not, when not matched
}

// MatchSigner checks a cryptographically verified signer against every
// authority of the policy for repository repo at time now, with the
// checks Evaluate applies to a signature: for certificate authorities the
// chain (leaf first, root optional) must lead to one of its roots, be valid
// now and, when signedAt is not zero, at signedAt, carry the code-signing
// and digital-signature usages, not be revoked by its CRLs, and have a
// subject or URI among its identities; for key authorities the signer's key
// (key, else the leaf's) must be one of its keys; and repo must be in the
// authority's scope. It returns one result per authority, in policy order.
//
// It is for signed evidence other than image signatures, such as promotion
// approvals, whose requirements are not the environments' k-of-n.
func (p *Policy) MatchSigner(repo string, chain []*x509.Certificate, key crypto.PublicKey, signedAt, now time.Time) []AuthorityMatch {
	out := make([]AuthorityMatch, len(p.Authorities))
	var refuse string
	switch {
	case now.IsZero():
		refuse = "zero evaluation time"
	case slices.Contains(chain, nil):
		refuse = "malformed signer: empty certificate in the chain"
	case len(chain) == 0 && key == nil:
		refuse = "no certificate or key to match"
	}
	s := SignatureFact{Verified: true, Chain: chain, PublicKey: key, SignedAt: signedAt}
	ev := evaluation{p: p, repo: repo, now: now} // check does not consult the environment
	for i, a := range p.Authorities {
		out[i].Authority = a.Name
		switch {
		case refuse != "":
			out[i].Why = refuse
		default:
			out[i].Why = ev.check(a, &s)
			out[i].Matched = out[i].Why == ""
		}
	}
	return out
}
