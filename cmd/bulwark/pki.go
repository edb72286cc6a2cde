package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/trust"
)

// pkiPassphraseEnv is read when --passphrase-file is not given.
const pkiPassphraseEnv = "BULWARK_PASSPHRASE"

func newPKICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "A private CA for signing keys that Notation and cosign accept",
		Long: `Run a small private PKI for content trust: one root CA (ECDSA P-256) that
issues code-signing certificates to the people and machines that sign
images (a CI pipeline, a security team), and a CRL to revoke them.

The CA directory holds root.crt (public: give it to verifiers), root.key
(keep it offline; encrypted when a passphrase is given), revoked.json and
root.crl. Each issued certificate comes with its own key, written as
NAME.key (PKCS#8) and NAME.crt (the certificate, then the root), which
notation and cosign load directly. docs/pki.md walks through it.`,
		Example: `  # a root CA whose key is encrypted with a passphrase kept in a file
  bulwark pki init --dir ca --org "Example Corp" --country US --state WA --passphrase-file ~/.ca-pass

  # a signing key for CI, with the identity cosign checks as a URI SAN
  bulwark pki issue --ca ca --passphrase-file ~/.ca-pass --name ci \
      --subject "C=US, ST=WA, O=Example Corp, CN=ci" --uri https://ci.example.com/pipelines/release --out keys

  # the key was leaked: revoke it and ship the new ca/root.crl to verifiers
  bulwark pki revoke --ca ca --passphrase-file ~/.ca-pass --reason keyCompromise keys/ci.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPKIInitCmd(), newPKIIssueCmd(), newPKIRevokeCmd(), newPKICRLCmd())
	return cmd
}

// pkiPassphrase returns the CA key passphrase: the contents of file ("-"
// for standard input) without one trailing newline, else
// $BULWARK_PASSPHRASE, else nil (no passphrase).
func pkiPassphrase(cmd *cobra.Command, file string) ([]byte, error) {
	if file == "" {
		if v := os.Getenv(pkiPassphraseEnv); v != "" {
			return []byte(v), nil
		}
		return nil, nil
	}
	var r io.Reader
	if file == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	if len(b) > 64<<10 {
		return nil, fmt.Errorf("passphrase file %s is larger than 64 KiB: is it the right file?", file)
	}
	// `echo secret > file` adds a newline nobody means as part of it.
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("passphrase file %s is empty", file)
	}
	return b, nil
}

// pkiLoadCA loads the CA in dir, turning a missing passphrase into advice.
func pkiLoadCA(cmd *cobra.Command, dir, passFile string) (*trust.CA, error) {
	pass, err := pkiPassphrase(cmd, passFile)
	if err != nil {
		return nil, err
	}
	ca, err := trust.LoadCA(dir, pass)
	if errors.Is(err, trust.ErrPassphraseRequired) {
		return nil, fmt.Errorf("%s is encrypted: give its passphrase with --passphrase-file FILE (or - for stdin) or in %s",
			filepath.Join(dir, trust.RootKeyFile), pkiPassphraseEnv)
	}
	return ca, err
}

func pkiDuration(flag, value string) (time.Duration, error) {
	d, err := config.ParseDuration(value)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--%s %q: want a positive duration such as 365d or 720h", flag, value)
	}
	return d, nil
}

func pkiFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func pkiDate(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func newPKIInitCmd() *cobra.Command {
	var dir, org, country, state, valid, passFile string
	var force bool
	cmd := &cobra.Command{
		Use:   "init --dir DIR --org ORGANIZATION",
		Short: "Create a root CA",
		Long: `Create a root CA in DIR: an ECDSA P-256 key (DIR/root.key, mode 0600) and a
self-signed certificate "<ORGANIZATION> Root CA" (DIR/root.crt), valid for
--valid (10 years by default). DIR is created with mode 0700.

The root may only issue signing certificates directly (path length 0). With
--passphrase-file, or the passphrase in BULWARK_PASSPHRASE, root.key is
encrypted (PKCS#8, scrypt and AES-256-CBC; OpenSSL reads it too); without
one it is stored in the clear, which is only acceptable for a directory
that itself lives offline or in a secret store. The same passphrase is
needed by 'pki issue', 'pki revoke' and 'pki crl'.

An existing CA is never replaced unless --force is given: every
certificate it issued, and every verifier that trusts it, would be
orphaned. --force also drops the old CA's revocation list.`,
		Example: `  # passphrase from a file (one trailing newline is ignored)
  bulwark pki init --dir ca --org "Example Corp" --country US --state WA --passphrase-file ~/.ca-pass

  # passphrase from the environment, e.g. a CI secret
  BULWARK_PASSPHRASE="$CA_PASSPHRASE" bulwark pki init --dir ca --org "Example Corp"

  # a throwaway CA for a test, key unencrypted, valid one year
  bulwark pki init --dir /tmp/test-ca --org Test --valid 365d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			validity, err := pkiDuration("valid", valid)
			if err != nil {
				return err
			}
			pass, err := pkiPassphrase(cmd, passFile)
			if err != nil {
				return err
			}
			ca, err := trust.InitCA(trust.CAOptions{Dir: dir, Organization: org, Country: country, State: state,
				Passphrase: pass, Validity: validity, Force: force})
			if errors.Is(err, trust.ErrCAExists) {
				return fmt.Errorf("%w; refusing to replace it (that would orphan every certificate it issued): use another --dir, or --force", err)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Created root CA %q in %s\n", ca.Cert.Subject.CommonName, dir)
			fmt.Fprintf(out, "  %-28s the certificate: give it to verifiers\n", filepath.Join(dir, trust.RootCertFile))
			keyNote := "the key, encrypted with the passphrase: keep it offline"
			if !ca.KeyEncrypted() {
				keyNote = "the key, NOT encrypted: keep it offline"
			}
			fmt.Fprintf(out, "  %-28s %s\n", filepath.Join(dir, trust.RootKeyFile), keyNote)
			fmt.Fprintf(out, "  valid until     %s\n", pkiDate(ca.Cert.NotAfter))
			fmt.Fprintf(out, "  serial          %s\n", trust.SerialHex(ca.Cert.SerialNumber))
			fmt.Fprintf(out, "  SHA-256         %s\n", pkiFingerprint(ca.Cert))
			fmt.Fprintf(out, "Next: bulwark pki issue --ca %s --name ci --subject \"C=US, ST=WA, O=%s, CN=ci\"\n", dir, org)
			if !ca.KeyEncrypted() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is not encrypted (give --passphrase-file or %s to encrypt it)\n",
					filepath.Join(dir, trust.RootKeyFile), pkiPassphraseEnv)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA directory to create (required)")
	f.StringVar(&org, "org", "", `organization, e.g. "Example Corp" (required); the root is named "<org> Root CA"`)
	f.StringVar(&country, "country", "", "two-letter country code of the root's subject, e.g. US")
	f.StringVar(&state, "state", "", "state or province of the root's subject")
	f.StringVar(&valid, "valid", "3650d", "validity of the root (e.g. 3650d, 8760h)")
	f.StringVar(&passFile, "passphrase-file", "", "file holding the passphrase that encrypts root.key (- for stdin; default $"+pkiPassphraseEnv+")")
	f.BoolVar(&force, "force", false, "replace an existing CA in --dir")
	cmd.MarkFlagRequired("dir")
	cmd.MarkFlagRequired("org")
	return cmd
}

func newPKIIssueCmd() *cobra.Command {
	var caDir, name, subject, valid, out, keyType, passFile string
	var uris []string
	var force bool
	cmd := &cobra.Command{
		Use:   "issue --ca DIR --name NAME --subject \"C=…, ST=…, O=…, CN=…\"",
		Short: "Issue a signing key and certificate",
		Long: `Make a new signing key and a certificate for it, signed by the CA in --ca,
and write them as OUT/NAME.key (PKCS#8 PEM, unencrypted, mode 0600) and
OUT/NAME.crt (PEM: the certificate, then the root).

The certificate is what Notation and cosign require of a signing
certificate: key usage Digital Signature (critical), extended key usage
Code Signing only, basic constraints CA:false, and a subject with C, ST and
O, which Notation trust policies match identities on. --uri adds a URI
subject alternative name, the identity 'cosign verify
--certificate-identity' checks.

--subject is written like a Notation trust policy identity: attributes C,
ST, L, O, OU, CN separated by commas, each at most once; a comma or other
special character inside a value is escaped with a backslash
("O=Example\, Inc."). The certificate is valid for --valid (a year by
default), but never beyond the root's own expiry.

Using the key:
  notation: add {"name":"NAME","keyPath":"/abs/OUT/NAME.key","certPath":"/abs/OUT/NAME.crt"}
            to the "keys" of ~/.config/notation/signingkeys.json, then notation sign --key NAME
  cosign:   cosign import-key-pair --key OUT/NAME.key   (writes import-cosign.key, encrypted)
            cosign sign --key import-cosign.key --certificate OUT/NAME.crt --certificate-chain CA/root.crt`,
		Example: `  # a key for the CI pipeline, identified to cosign by its URI
  bulwark pki issue --ca ca --name ci --subject "C=US, ST=WA, O=Example Corp, CN=ci" \
      --uri https://ci.example.com/pipelines/release --out keys

  # a key for the security team's sign-off, RSA for an older HSM workflow, valid 90 days
  bulwark pki issue --ca ca --name security --subject "C=US, ST=WA, O=Example Corp, OU=Security, CN=security" \
      --key-type rsa-3072 --valid 90d --out keys

  # the CA key's passphrase from a password manager on stdin
  pass show ca | bulwark pki issue --ca ca --passphrase-file - --name ci --subject "C=US, ST=WA, O=Example Corp, CN=ci"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			validity, err := pkiDuration("valid", valid)
			if err != nil {
				return err
			}
			kt, err := trust.ParseKeyType(keyType)
			if err != nil {
				return err
			}
			subj, err := trust.ParseSubject(subject)
			if err != nil {
				return fmt.Errorf("--subject: %w", err)
			}
			if err := trust.RequireSigningSubject(subj); err != nil {
				return fmt.Errorf("--subject: %w", err)
			}
			ca, err := pkiLoadCA(cmd, caDir, passFile)
			if err != nil {
				return err
			}
			chainPEM, keyPEM, err := ca.Issue(trust.IssueRequest{Subject: subj, URIs: uris, Validity: validity, KeyType: kt})
			if err != nil {
				return err
			}
			certPath, keyPath, err := trust.WriteIssued(out, name, chainPEM, keyPEM, force)
			if errors.Is(err, trust.ErrFileExists) {
				return fmt.Errorf("%w; not replacing a key that may be in use (choose another --name, or --force)", err)
			}
			if err != nil {
				return err
			}
			chain, err := trust.ParseCertificates(chainPEM)
			if err != nil {
				return err
			}
			leaf := chain[0]
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Issued %q (%s)\n", trust.FormatSubject(leaf.Subject), kt)
			fmt.Fprintf(w, "  %-28s certificate, then the root (notation certPath, cosign --certificate)\n", certPath)
			fmt.Fprintf(w, "  %-28s private key, unencrypted: store it as a secret\n", keyPath)
			for _, u := range leaf.URIs {
				fmt.Fprintf(w, "  URI             %s\n", u)
			}
			fmt.Fprintf(w, "  valid until     %s\n", pkiDate(leaf.NotAfter))
			fmt.Fprintf(w, "  serial          %s\n", trust.SerialHex(leaf.SerialNumber))
			if len(leaf.URIs) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "note: no --uri: cosign names signers by a URI (or e-mail) SAN, so 'cosign verify --certificate-identity' cannot match this certificate; Notation, which matches the subject, is unaffected")
			}
			if leaf.NotAfter.Before(time.Now().Add(validity - time.Hour)) {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: validity shortened to the root's expiry, %s\n", pkiDate(leaf.NotAfter))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca", "", "CA directory (required)")
	f.StringVar(&name, "name", "", "file name for the key and certificate: OUT/NAME.key, OUT/NAME.crt (required)")
	f.StringVar(&subject, "subject", "", `subject, e.g. "C=US, ST=WA, O=Example Corp, CN=ci" (required; C, ST and O are)`)
	f.StringArrayVar(&uris, "uri", nil, "URI subject alternative name, e.g. https://ci.example.com/pipelines/release (repeatable)")
	f.StringVar(&valid, "valid", "365d", "validity (e.g. 365d, 90d, 720h); capped at the root's expiry")
	f.StringVar(&out, "out", ".", "directory to write NAME.key and NAME.crt to (created 0700 if missing)")
	f.StringVar(&keyType, "key-type", string(trust.KeyECDSAP256), "key algorithm: ecdsa-p256, ecdsa-p384 or rsa-3072")
	f.StringVar(&passFile, "passphrase-file", "", "file holding the CA key's passphrase (- for stdin; default $"+pkiPassphraseEnv+")")
	f.BoolVar(&force, "force", false, "overwrite an existing OUT/NAME.key and OUT/NAME.crt")
	cmd.MarkFlagRequired("ca")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("subject")
	return cmd
}

func newPKIRevokeCmd() *cobra.Command {
	var caDir, reason, nextUpdate, passFile string
	cmd := &cobra.Command{
		Use:   "revoke --ca DIR CERT",
		Short: "Revoke a certificate and sign a new CRL",
		Long: `Revoke the certificate in CERT (a PEM file as 'pki issue' wrote it; the first
certificate in it is revoked, or a DER file), record it in DIR/revoked.json
and sign a new CRL, DIR/root.crl (PEM), valid for --next-update. Copy
root.crl to wherever verifiers read it (the trust policy names it).

Revoking the same certificate again changes nothing. Verifiers refuse a CRL
past its next update, so re-sign it with 'bulwark pki crl' before then,
e.g. from a weekly job.

Reasons: unspecified (default), keyCompromise, affiliationChanged,
superseded, cessationOfOperation, privilegeWithdrawn.`,
		Example: `  # the CI key leaked
  bulwark pki revoke --ca ca --reason keyCompromise keys/ci.crt

  # a person left the team; the CRL is valid for 7 days
  bulwark pki revoke --ca ca --reason affiliationChanged --next-update 7d keys/alice.crt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := trust.ParseRevocationReason(reason)
			if err != nil {
				return fmt.Errorf("--reason: %w", err)
			}
			validity, err := pkiDuration("next-update", nextUpdate)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			certs, err := trust.ParseCertificates(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			cert := certs[0]
			ca, err := pkiLoadCA(cmd, caDir, passFile)
			if err != nil {
				return err
			}
			ca.CRLValidity = validity
			revs, err := ca.Revocations()
			if err != nil {
				return err
			}
			serial := trust.SerialHex(cert.SerialNumber)
			w := cmd.OutOrStdout()
			already := false
			for _, r := range revs {
				if r.Serial == serial {
					already = true
					fmt.Fprintf(w, "%q (serial %s) was already revoked on %s (%s); nothing changed\n",
						trust.FormatSubject(cert.Subject), serial, pkiDate(r.RevokedAt), r.Reason)
				}
			}
			if err := ca.Revoke(cert, code, time.Time{}); err != nil {
				return err
			}
			if !already {
				fmt.Fprintf(w, "Revoked %q (serial %s, %s)\n", trust.FormatSubject(cert.Subject), serial, trust.RevocationReasonName(code))
			}
			return pkiPrintCRL(cmd, ca)
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca", "", "CA directory (required)")
	f.StringVar(&reason, "reason", "unspecified", "revocation reason: "+strings.Join(trust.RevocationReasons(), ", "))
	f.StringVar(&nextUpdate, "next-update", "30d", "how long the new CRL is valid")
	f.StringVar(&passFile, "passphrase-file", "", "file holding the CA key's passphrase (- for stdin; default $"+pkiPassphraseEnv+")")
	cmd.MarkFlagRequired("ca")
	return cmd
}

func newPKICRLCmd() *cobra.Command {
	var caDir, nextUpdate, passFile string
	cmd := &cobra.Command{
		Use:   "crl --ca DIR",
		Short: "Re-sign the CRL (refresh its next update)",
		Long: `Sign a new CRL with the same revocations and a fresh next update, and write
it to DIR/root.crl. Verifiers refuse a CRL past its next update, so run
this before then (e.g. weekly, with the default 30-day --next-update) and
ship the new root.crl to them.`,
		Example: `  bulwark pki crl --ca ca
  bulwark pki crl --ca ca --next-update 7d --passphrase-file ~/.ca-pass`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			validity, err := pkiDuration("next-update", nextUpdate)
			if err != nil {
				return err
			}
			ca, err := pkiLoadCA(cmd, caDir, passFile)
			if err != nil {
				return err
			}
			ca.CRLValidity = validity
			if _, err := ca.CRL(time.Now()); err != nil {
				return err
			}
			return pkiPrintCRL(cmd, ca)
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca", "", "CA directory (required)")
	f.StringVar(&nextUpdate, "next-update", "30d", "how long the new CRL is valid")
	f.StringVar(&passFile, "passphrase-file", "", "file holding the CA key's passphrase (- for stdin; default $"+pkiPassphraseEnv+")")
	cmd.MarkFlagRequired("ca")
	return cmd
}

func pkiPrintCRL(cmd *cobra.Command, ca *trust.CA) error {
	path := filepath.Join(ca.Dir, trust.CRLFile)
	crl, err := trust.LoadCRL(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "CRL #%v in %s: %d revoked, next update %s\n",
		crl.Number, path, len(crl.RevokedCertificateEntries), pkiDate(crl.NextUpdate))
	return nil
}
