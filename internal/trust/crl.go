package trust

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Revocation reasons (RFC 5280 CRLReason) that make sense for a signing
// certificate. certificateHold is left out on purpose: a hold can be
// lifted, and a verifier that cached "revoked" would then disagree with one
// that did not; revoke and issue a new certificate instead.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonPrivilegeWithdrawn   = 9
)

var reasonNames = map[int]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
}

// RevocationReasons lists the accepted reason names, in code order.
func RevocationReasons() []string {
	codes := make([]int, 0, len(reasonNames))
	for c := range reasonNames {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	names := make([]string, len(codes))
	for i, c := range codes {
		names[i] = reasonNames[c]
	}
	return names
}

// ParseRevocationReason maps a reason name (RFC 5280 spelling, any case) to
// its code.
func ParseRevocationReason(s string) (int, error) {
	for c, n := range reasonNames {
		if strings.EqualFold(n, s) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown revocation reason %q (want one of %s)", ErrInvalidRequest, s, strings.Join(RevocationReasons(), ", "))
}

// RevocationReasonName is the inverse of ParseRevocationReason; unknown
// codes print as "reason(N)".
func RevocationReasonName(code int) string {
	if n, ok := reasonNames[code]; ok {
		return n
	}
	return fmt.Sprintf("reason(%d)", code)
}

// Errors from revocation.
var (
	ErrNotIssuedByCA = errors.New("certificate was not issued by this CA")
	ErrCRLExpired    = errors.New("CRL is past its nextUpdate (or not yet valid)")
	ErrCRLIssuer     = errors.New("CRL was not signed by this issuer")
)

// Revocation is one entry of revoked.json.
type Revocation struct {
	Serial    string    `json:"serial"` // uppercase hex, as `openssl x509 -noout -serial` prints it
	RevokedAt time.Time `json:"revoked_at"`
	Reason    string    `json:"reason"`
	Subject   string    `json:"subject"` // informational
	NotAfter  time.Time `json:"not_after"`
}

// revocationFile is DIR/revoked.json. LastCRLNumber is the cRLNumber of the
// most recent CRL signed; it lives with the list so that both change
// together under one lock.
type revocationFile struct {
	Version       int          `json:"version"`
	LastCRLNumber int64        `json:"last_crl_number"`
	Revoked       []Revocation `json:"revoked"`
}

// SerialHex formats a serial number the way revoked.json and `openssl x509
// -serial` write it.
func SerialHex(n *big.Int) string {
	return strings.ToUpper(hex.EncodeToString(n.Bytes()))
}

// Revocations returns the CA's revocation list.
func (ca *CA) Revocations() ([]Revocation, error) {
	st, err := ca.readState()
	if err != nil {
		return nil, err
	}
	return st.Revoked, nil
}

// Revoke adds cert to the revocation list with reason (one of the Reason*
// codes) and revocation time at (zero: now), then signs and writes a new
// CRL (DIR/root.crl) so a revocation is never recorded without being
// published. Revoking a certificate that is already on the list changes
// nothing (the first time and reason stay) and returns nil; it only
// re-signs the CRL when root.crl is missing. cert must have been issued by
// this CA (ErrNotIssuedByCA).
func (ca *CA) Revoke(cert *x509.Certificate, reason int, at time.Time) error {
	if _, ok := reasonNames[reason]; !ok {
		return fmt.Errorf("%w: revocation reason code %d is not supported (want one of %s)", ErrInvalidRequest, reason, strings.Join(RevocationReasons(), ", "))
	}
	if bytes.Equal(cert.Raw, ca.Cert.Raw) {
		return fmt.Errorf("%w: a root cannot revoke itself; make a new CA and replace root.crt wherever it is trusted", ErrInvalidRequest)
	}
	if !bytes.Equal(cert.RawIssuer, ca.Cert.RawSubject) || cert.CheckSignatureFrom(ca.Cert) != nil {
		return fmt.Errorf("%w: %q is issued by %q", ErrNotIssuedByCA, cert.Subject, cert.Issuer)
	}
	now := ca.now()
	if at.IsZero() {
		at = now
	}
	if at.After(now.Add(time.Minute)) {
		return fmt.Errorf("%w: revocation time %s is in the future", ErrInvalidRequest, at.UTC().Format(time.RFC3339))
	}
	unlock, err := ca.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := ca.readState()
	if err != nil {
		return err
	}
	serial := SerialHex(cert.SerialNumber)
	for _, r := range st.Revoked {
		if r.Serial == serial {
			if _, err := os.Stat(filepath.Join(ca.Dir, CRLFile)); err == nil {
				return nil
			}
			_, err := ca.signCRL(st, now)
			return err
		}
	}
	st.Revoked = append(st.Revoked, Revocation{
		Serial:    serial,
		RevokedAt: at.UTC().Truncate(time.Second), // the CRL's UTCTime has seconds
		Reason:    reasonNames[reason],
		Subject:   cert.Subject.String(),
		NotAfter:  cert.NotAfter.UTC(),
	})
	_, err = ca.signCRL(st, now)
	return err
}

// CRL signs a new CRL listing every revocation, valid from now for
// CRLValidity, with the next cRLNumber; writes it to DIR/root.crl and
// returns it (PEM). Run it before the previous CRL's nextUpdate: verifiers
// treat a stale CRL as an error (see CheckCRL).
func (ca *CA) CRL(now time.Time) ([]byte, error) {
	unlock, err := ca.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := ca.readState()
	if err != nil {
		return nil, err
	}
	return ca.signCRL(st, now)
}

// signCRL signs st as the next CRL. The caller holds the lock. The state
// (with the incremented number) is written before the CRL: after a crash
// in between, the next CRL skips a number, which is allowed, rather than
// reusing one, which is not (RFC 5280 §5.2.3).
func (ca *CA) signCRL(st revocationFile, now time.Time) ([]byte, error) {
	validity := ca.CRLValidity
	if validity == 0 {
		validity = DefaultCRLValidity
	}
	if validity < time.Minute {
		return nil, fmt.Errorf("%w: CRL validity %v is too short", ErrInvalidRequest, validity)
	}
	st.LastCRLNumber++
	entries := make([]x509.RevocationListEntry, 0, len(st.Revoked))
	for _, r := range st.Revoked {
		b, err := hex.DecodeString(r.Serial)
		if err != nil {
			return nil, fmt.Errorf("%s: bad serial %q", RevokedFile, r.Serial)
		}
		code, err := ParseRevocationReason(r.Reason)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", RevokedFile, err)
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber:   new(big.Int).SetBytes(b),
			RevocationTime: r.RevokedAt,
			ReasonCode:     code, // 0 (unspecified) is omitted, as RFC 5280 asks
		})
	}
	tmpl := &x509.RevocationList{
		Number:                    big.NewInt(st.LastCRLNumber),
		ThisUpdate:                now.UTC(),
		NextUpdate:                now.UTC().Add(validity),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	if err := ca.writeState(st); err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	if err := writeFileAtomic(filepath.Join(ca.Dir, CRLFile), out, 0o644, false); err != nil {
		return nil, fmt.Errorf("write %s: %w", CRLFile, err)
	}
	return out, nil
}

// lock takes an exclusive flock on DIR/.lock: revoked.json is read,
// changed and written back, and two `pki revoke` at once must not lose one
// of the revocations.
func (ca *CA) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(ca.Dir, caLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock CA directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock CA directory: %w", err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

func (ca *CA) readState() (revocationFile, error) {
	path := filepath.Join(ca.Dir, RevokedFile)
	data, err := readSmallFile(path, 64<<20)
	if errors.Is(err, os.ErrNotExist) {
		return revocationFile{Version: 1}, nil
	}
	if err != nil {
		return revocationFile{}, err
	}
	var st revocationFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return revocationFile{}, fmt.Errorf("%s: %w", path, err)
	}
	if st.Version != 1 || st.LastCRLNumber < 0 {
		return revocationFile{}, fmt.Errorf("%s: unsupported version %d or bad CRL number %d", path, st.Version, st.LastCRLNumber)
	}
	return st, nil
}

func (ca *CA) writeState(st revocationFile) error {
	if st.Revoked == nil {
		st.Revoked = []Revocation{}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := writeFileAtomic(filepath.Join(ca.Dir, RevokedFile), data, 0o644, false); err != nil {
		return fmt.Errorf("write %s: %w", RevokedFile, err)
	}
	return nil
}

// LoadCRL reads a CRL file, PEM ("X509 CRL") or DER. It only parses: call
// CheckCRL before trusting what it says.
func LoadCRL(path string) (*x509.RevocationList, error) {
	data, err := readSmallFile(path, 64<<20)
	if err != nil {
		return nil, err
	}
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("%s: PEM block %q, want \"X509 CRL\"", path, block.Type)
		}
		der = block.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return crl, nil
}

// crlSkew tolerates a verifier whose clock is a little behind the CA's.
const crlSkew = 5 * time.Minute

// CheckCRL verifies that crl was signed by issuer (ErrCRLIssuer) and is
// current at now: thisUpdate ≤ now ≤ nextUpdate, with a few minutes of
// clock skew (ErrCRLExpired). A CRL without nextUpdate is refused as
// expired: a verifier could otherwise accept a years-old list forever.
func CheckCRL(crl *x509.RevocationList, issuer *x509.Certificate, now time.Time) error {
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("%w: CRL issuer %q, certificate %q", ErrCRLIssuer, crl.Issuer, issuer.Subject)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("%w: %w", ErrCRLIssuer, err)
	}
	if crl.NextUpdate.IsZero() || now.After(crl.NextUpdate) || now.Add(crlSkew).Before(crl.ThisUpdate) {
		return fmt.Errorf("%w: CRL #%v valid %s to %s, now %s", ErrCRLExpired, crl.Number,
			crl.ThisUpdate.UTC().Format(time.RFC3339), crl.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// IsRevoked reports whether crl lists cert: same issuer name and serial
// number. A CRL from another issuer says nothing about cert (serials are
// only unique per issuer), so it answers false. It does not check the
// CRL's signature or freshness: do that once with CheckCRL.
func IsRevoked(crl *x509.RevocationList, cert *x509.Certificate) bool {
	if !bytes.Equal(crl.RawIssuer, cert.RawIssuer) {
		return false
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber != nil && e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}
