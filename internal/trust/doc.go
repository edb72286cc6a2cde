// Package trust is bulwark's content trust. This part is the private PKI
// behind `bulwark pki`: a root CA that issues code-signing certificates
// which both Notation and cosign accept, and the CRL that revokes them.
// Signing and verification build on it.
//
// # CA directory
//
//	DIR/            mode 0700
//	  root.crt      the root certificate (PEM); what verifiers trust
//	  root.key      the root key, PKCS#8 PEM, mode 0600; "ENCRYPTED PRIVATE KEY"
//	                when created with a passphrase (see EncryptPrivateKey)
//	  revoked.json  revocations and the last CRL number (written by Revoke, CRL)
//	  root.crl      the current CRL, PEM "X509 CRL"
//	  .lock         flock taken while revoked.json is rewritten
//
// The root is ECDSA P-256 with basicConstraints CA:true, pathLenConstraint 0
// (certificates are issued directly by the root, so there are no
// intermediates, and with pathlen 0 a CA certificate the root signed by
// mistake still could not issue anything a verifier accepts), and keyUsage
// keyCertSign and cRLSign, both critical. Serial numbers are 128 random bits. Subject key
// identifiers are RFC 7093 method 1 (SHA-256, truncated to 160 bits); leaf
// certificates and CRLs carry the root's as their authority key identifier.
//
// # Signing certificates
//
// [CA.Issue] makes a key (ECDSA P-256 by default, P-384 or RSA-3072) and a
// certificate that meets the Notary Project's certificate requirements
// (signature specification, "Certificate Requirements") and cosign's
// certificate checks:
//
//   - basicConstraints present, CA:false;
//   - keyUsage digitalSignature only, critical;
//   - extendedKeyUsage codeSigning only (Notation refuses serverAuth,
//     clientAuth, emailProtection, timeStamping, OCSPSigning; cosign
//     requires codeSigning);
//   - subject with C, ST and O (Notation trust policies name identities by
//     them); subject syntax in [ParseSubject];
//   - URI subject alternative names from IssueRequest.URIs (cosign's
//     --certificate-identity);
//   - validity capped at the root's NotAfter.
//
// The chain file is the leaf then the root, which is what notation's
// signingkeys.json certPath expects (the envelope must carry the chain up to
// a self-signed root) and what cosign's --certificate reads (the first
// block). The key is unencrypted PKCS#8 ("PRIVATE KEY"): it goes into a CI
// secret store, notation reads it directly and `cosign import-key-pair`
// converts it.
//
// # Revocation
//
// [CA.Revoke] records a certificate in revoked.json and signs a new CRL
// with a cRLNumber one above the last and a nextUpdate CRLValidity away
// (30 days by default); [CA.CRL] re-signs it without changes. Verifiers use
// [LoadCRL], [CheckCRL] (signed by the root, not stale) and [IsRevoked].
// Certificates carry no CRL distribution point: the CRL is a file shipped
// to verifiers with the trust policy, and Notation, which fetches CRLs only
// from distribution points, therefore treats these certificates as having
// no revocation information rather than failing on an unreachable URL.
package trust
