package trust

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// readCRL loads DIR/root.crl the way a verifier does, and checks it.
func readCRL(t *testing.T, ca *CA) *x509.RevocationList {
	t.Helper()
	crl, err := LoadCRL(filepath.Join(ca.Dir, CRLFile))
	if err != nil {
		t.Fatalf("LoadCRL: %v", err)
	}
	return crl
}

func serials(crl *x509.RevocationList) []string {
	var s []string
	for _, e := range crl.RevokedCertificateEntries {
		s = append(s, SerialHex(e.SerialNumber))
	}
	slices.Sort(s)
	return s
}

func TestRevokeAndCRL(t *testing.T) {
	ca := newTestCA(t, nil)
	ci, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example, CN=ci")})
	sec, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example, CN=security")})
	if _, err := os.Stat(filepath.Join(ca.Dir, CRLFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a CRL exists before any revocation")
	}

	// Revoke ci: keyCompromise, at a time before now.
	revokedAt := t0.Add(-time.Hour)
	if err := ca.Revoke(ci[0], ReasonKeyCompromise, revokedAt); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	crl := readCRL(t, ca)
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	// The raw bytes parse with the standard library directly, too.
	raw, _ := pem.Decode(mustRead(t, filepath.Join(ca.Dir, CRLFile)))
	if raw == nil || raw.Type != "X509 CRL" {
		t.Fatalf("root.crl is not a PEM X509 CRL")
	}
	if direct, err := x509.ParseRevocationList(raw.Bytes); err != nil || direct.CheckSignatureFrom(ca.Cert) != nil {
		t.Fatalf("ParseRevocationList: %v", err)
	}
	if err := CheckCRL(crl, ca.Cert, t0); err != nil {
		t.Fatalf("CheckCRL: %v", err)
	}
	if crl.Number.Int64() != 1 || !crl.ThisUpdate.Equal(t0) || !crl.NextUpdate.Equal(t0.Add(DefaultCRLValidity)) {
		t.Errorf("CRL #%v %v – %v", crl.Number, crl.ThisUpdate, crl.NextUpdate)
	}
	if !bytes.Equal(crl.AuthorityKeyId, ca.Cert.SubjectKeyId) || !bytes.Equal(crl.RawIssuer, ca.Cert.RawSubject) {
		t.Errorf("CRL AKI %x issuer %v", crl.AuthorityKeyId, crl.Issuer)
	}
	if len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("%d entries", len(crl.RevokedCertificateEntries))
	}
	e := crl.RevokedCertificateEntries[0]
	if e.SerialNumber.Cmp(ci[0].SerialNumber) != 0 || e.ReasonCode != ReasonKeyCompromise || !e.RevocationTime.Equal(revokedAt) {
		t.Errorf("entry %v reason %d at %v", e.SerialNumber, e.ReasonCode, e.RevocationTime)
	}
	if !IsRevoked(crl, ci[0]) || IsRevoked(crl, sec[0]) || IsRevoked(crl, ca.Cert) {
		t.Errorf("IsRevoked: ci=%v security=%v root=%v", IsRevoked(crl, ci[0]), IsRevoked(crl, sec[0]), IsRevoked(crl, ca.Cert))
	}

	// revoked.json says the same, readably.
	var st revocationFile
	if err := json.Unmarshal(mustRead(t, filepath.Join(ca.Dir, RevokedFile)), &st); err != nil {
		t.Fatal(err)
	}
	if st.LastCRLNumber != 1 || len(st.Revoked) != 1 || st.Revoked[0].Serial != SerialHex(ci[0].SerialNumber) ||
		st.Revoked[0].Reason != "keyCompromise" || !st.Revoked[0].RevokedAt.Equal(revokedAt) ||
		st.Revoked[0].Subject != ci[0].Subject.String() {
		t.Errorf("revoked.json: %+v", st)
	}

	// Revoking ci again, even with another reason: nothing changes.
	before := mustRead(t, filepath.Join(ca.Dir, CRLFile))
	beforeState := mustRead(t, filepath.Join(ca.Dir, RevokedFile))
	ca.Now = fixedNow(t0.Add(time.Hour))
	if err := ca.Revoke(ci[0], ReasonSuperseded, time.Time{}); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(ca.Dir, CRLFile)), before) || !bytes.Equal(mustRead(t, filepath.Join(ca.Dir, RevokedFile)), beforeState) {
		t.Fatal("revoking the same certificate twice changed the CRL or revoked.json")
	}

	// Revoking security: both listed, number 2; reason unspecified is
	// omitted from the entry, as RFC 5280 asks.
	if err := ca.Revoke(sec[0], ReasonUnspecified, time.Time{}); err != nil {
		t.Fatal(err)
	}
	crl = readCRL(t, ca)
	want := []string{SerialHex(ci[0].SerialNumber), SerialHex(sec[0].SerialNumber)}
	slices.Sort(want)
	if crl.Number.Int64() != 2 || !slices.Equal(serials(crl), want) {
		t.Errorf("CRL #%v lists %v, want #2 with %v", crl.Number, serials(crl), want)
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(sec[0].SerialNumber) == 0 && (e.ReasonCode != 0 || len(e.Extensions) != 0) {
			t.Errorf("unspecified reason encoded: %d %v", e.ReasonCode, e.Extensions)
		}
	}

	// Re-signing refreshes nextUpdate and counts on.
	ca.CRLValidity = 7 * 24 * time.Hour
	later := t0.Add(20 * 24 * time.Hour)
	pemCRL, err := ca.CRL(later)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pemCRL, mustRead(t, filepath.Join(ca.Dir, CRLFile))) {
		t.Error("CRL returned differs from root.crl")
	}
	crl = readCRL(t, ca)
	if crl.Number.Int64() != 3 || !crl.NextUpdate.Equal(later.Add(7*24*time.Hour)) || len(crl.RevokedCertificateEntries) != 2 {
		t.Errorf("re-signed CRL #%v next %v, %d entries", crl.Number, crl.NextUpdate, len(crl.RevokedCertificateEntries))
	}
	if err := CheckCRL(crl, ca.Cert, later.Add(6*24*time.Hour)); err != nil {
		t.Errorf("fresh CRL refused: %v", err)
	}

	// A CA loaded from disk continues the sequence.
	loaded, err := LoadCA(ca.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loaded.CRL(later); err != nil {
		t.Fatal(err)
	}
	if n := readCRL(t, ca).Number.Int64(); n != 4 {
		t.Errorf("CRL number after reload %d, want 4", n)
	}
	revs, err := loaded.Revocations()
	if err != nil || len(revs) != 2 {
		t.Errorf("Revocations = %v, %v", revs, err)
	}
}

func TestRevokeRecreatesMissingCRL(t *testing.T) {
	ca := newTestCA(t, nil)
	leaf, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example")})
	if err := ca.Revoke(leaf[0], ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// As after a crash between revoked.json and root.crl, or a deleted file.
	os.Remove(filepath.Join(ca.Dir, CRLFile))
	if err := ca.Revoke(leaf[0], ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	crl := readCRL(t, ca)
	if !IsRevoked(crl, leaf[0]) || crl.Number.Int64() != 2 {
		t.Errorf("recreated CRL #%v, revoked=%v", crl.Number, IsRevoked(crl, leaf[0]))
	}
}

func TestRevokeRejects(t *testing.T) {
	ca := newTestCA(t, nil)
	leaf, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example")})
	// Another CA with the very same subject: same issuer name, other key.
	twin := newTestCA(t, nil)
	foreign, _, _ := issue(t, twin, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example")})
	tests := []struct {
		name   string
		cert   *x509.Certificate
		reason int
		at     time.Time
		is     error
	}{
		{"issued by another CA with the same name", foreign[0], ReasonKeyCompromise, time.Time{}, ErrNotIssuedByCA},
		{"the other CA's root", twin.Cert, ReasonKeyCompromise, time.Time{}, ErrNotIssuedByCA},
		{"the root itself", ca.Cert, ReasonKeyCompromise, time.Time{}, ErrInvalidRequest},
		{"certificateHold", leaf[0], 6, time.Time{}, ErrInvalidRequest},
		{"removeFromCRL", leaf[0], 8, time.Time{}, ErrInvalidRequest},
		{"unknown code", leaf[0], 42, time.Time{}, ErrInvalidRequest},
		{"in the future", leaf[0], ReasonKeyCompromise, t0.Add(time.Hour), ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ca.Revoke(tt.cert, tt.reason, tt.at); !errors.Is(err, tt.is) {
				t.Fatalf("Revoke = %v, want %v", err, tt.is)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(ca.Dir, RevokedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused revocation wrote revoked.json")
	}
}

func TestCheckCRL(t *testing.T) {
	ca := newTestCA(t, nil)
	twin := newTestCA(t, nil) // same subject, other key
	other := newTestCA(t, func(o *CAOptions) { o.Organization = "Other" })
	leaf, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example")})
	if err := ca.Revoke(leaf[0], ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	crl := readCRL(t, ca)
	tests := []struct {
		name   string
		issuer *x509.Certificate
		now    time.Time
		is     error
	}{
		{"current", ca.Cert, t0, nil},
		{"at nextUpdate", ca.Cert, crl.NextUpdate, nil},
		{"clock a minute behind", ca.Cert, t0.Add(-time.Minute), nil},
		{"after nextUpdate", ca.Cert, crl.NextUpdate.Add(time.Second), ErrCRLExpired},
		{"long before thisUpdate", ca.Cert, t0.Add(-time.Hour), ErrCRLExpired},
		{"same name, other key", twin.Cert, t0, ErrCRLIssuer},
		{"other issuer", other.Cert, t0, ErrCRLIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCRL(crl, tt.issuer, tt.now)
			if (tt.is == nil && err != nil) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("CheckCRL = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestIsRevokedOnlyForItsIssuer(t *testing.T) {
	ca := newTestCA(t, nil)
	other := newTestCA(t, func(o *CAOptions) { o.Organization = "Other" })
	leaf, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, "C=US, ST=WA, O=Example")})
	// A CRL of another issuer that happens to list the same serial.
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: t0, NextUpdate: t0.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: leaf[0].SerialNumber, RevocationTime: t0}},
	}, other.Cert, other.key)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if IsRevoked(crl, leaf[0]) {
		t.Fatal("a CRL of another issuer revoked our certificate")
	}
}

func TestLoadCRL(t *testing.T) {
	ca := newTestCA(t, nil)
	if _, err := ca.CRL(t0); err != nil { // an empty CRL is fine
		t.Fatal(err)
	}
	crl := readCRL(t, ca)
	if len(crl.RevokedCertificateEntries) != 0 || CheckCRL(crl, ca.Cert, t0) != nil {
		t.Fatal("empty CRL")
	}
	dir := t.TempDir()
	der := filepath.Join(dir, "root.crl.der")
	os.WriteFile(der, crl.Raw, 0o644)
	if got, err := LoadCRL(der); err != nil || !bytes.Equal(got.Raw, crl.Raw) {
		t.Errorf("DER: %v", err)
	}
	for name, data := range map[string][]byte{
		"certificate PEM": mustRead(t, filepath.Join(ca.Dir, RootCertFile)),
		"garbage":         []byte("not a CRL"),
		"empty":           nil,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, data, 0o644)
		if _, err := LoadCRL(p); err == nil {
			t.Errorf("LoadCRL(%s) succeeded", name)
		}
	}
	if _, err := LoadCRL(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// Concurrent `pki revoke` processes must not lose revocations or reuse a
// CRL number: each goroutine loads its own CA, as a separate process would.
func TestRevokeConcurrent(t *testing.T) {
	ca := newTestCA(t, nil)
	const n = 8
	var leaves []*x509.Certificate
	for i := range n {
		c, _, _ := issue(t, ca, IssueRequest{Subject: mustSubject(t, fmt.Sprintf("C=US, ST=WA, O=Example, CN=%d", i))})
		leaves = append(leaves, c[0])
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, leaf := range leaves {
		wg.Go(func() {
			c, err := LoadCA(ca.Dir, nil)
			if err == nil {
				err = c.Revoke(leaf, ReasonCessationOfOperation, time.Time{})
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	crl := readCRL(t, ca)
	if len(crl.RevokedCertificateEntries) != n || crl.Number.Int64() != n {
		t.Fatalf("CRL #%v with %d entries, want #%d with %d", crl.Number, len(crl.RevokedCertificateEntries), n, n)
	}
	for _, l := range leaves {
		if !IsRevoked(crl, l) {
			t.Errorf("%v lost", l.Subject)
		}
	}
}

func TestRevocationReasons(t *testing.T) {
	for _, name := range RevocationReasons() {
		code, err := ParseRevocationReason(name)
		if err != nil || RevocationReasonName(code) != name {
			t.Errorf("%s → %d, %v", name, code, err)
		}
	}
	if c, err := ParseRevocationReason("KEYCOMPROMISE"); err != nil || c != ReasonKeyCompromise {
		t.Errorf("case-insensitive: %d, %v", c, err)
	}
	for _, bad := range []string{"", "certificateHold", "removeFromCRL", "compromised"} {
		if _, err := ParseRevocationReason(bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("ParseRevocationReason(%q) = %v", bad, err)
		}
	}
	if got := RevocationReasonName(6); got != "reason(6)" {
		t.Errorf("RevocationReasonName(6) = %q", got)
	}
}
