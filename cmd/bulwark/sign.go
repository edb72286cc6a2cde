package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/remote"
	"github.com/bulwark-dev/bulwark/internal/trust"
)

// registryClient is the client the sign and verify commands use, with
// credentials from Docker's config ($DOCKER_CONFIG or ~/.docker/config.json)
// so `docker login` and bulwark share them.
func registryClient() (*remote.Client, error) {
	creds, err := remote.DockerConfigCredentials("")
	if err != nil {
		return nil, err
	}
	return remote.New(remote.Options{Credentials: creds, UserAgent: "bulwark/" + version}), nil
}

func parseRemoteRef(s string) (oci.ImageRef, error) {
	ref, err := oci.ParseImageRef(s)
	if err != nil {
		return ref, err
	}
	if ref.Registry == "" {
		return ref, fmt.Errorf("%q names no registry: write HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]", s)
	}
	if ref.Tag == "" && ref.Digest == "" {
		return ref, fmt.Errorf("%q names no tag or digest", s)
	}
	return ref, nil
}

func newSignCmd() *cobra.Command {
	var (
		keyFile, certFile, passFile, format, sigFormat string
		annotations                                    []string
		output                                         string
	)
	cmd := &cobra.Command{
		Use:   "sign REF --key KEY --cert CERT",
		Short: "Sign an image by digest (Notary Project signature stored as an OCI referrer)",
		Long: `Resolve REF to its digest once, sign that digest, and push the signature
to the same repository as an OCI 1.1 referrer (artifactType
application/vnd.cncf.notary.signature, subject = the signed manifest). The
signature is a Notary Project JWS envelope (or COSE with --signature-format
cose) carrying the certificate chain, so 'notation verify' accepts it given
the same root, and 'bulwark verify' checks it against a trust policy.

KEY and CERT come from 'bulwark pki issue' (CERT holds the leaf, then the
chain). Annotations given with --annotation are signed too. Registry
credentials come from Docker's config (docker login / bulwark share them).

Only the Notary Project format exists so far; cosign signatures are to come.`,
		Example: `  bulwark sign 127.0.0.1:5000/team/app:v1 --key keys/ci.key --cert keys/ci.crt
  bulwark sign registry.example:5000/prod/app@sha256:… --key keys/security.key --cert keys/security.crt \
      --annotation reviewed-by=security --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "notation" {
				return fmt.Errorf("--format %q: only notation is implemented so far", format)
			}
			ctx := cmd.Context()
			ref, err := parseRemoteRef(args[0])
			if err != nil {
				return err
			}
			ann, err := parseAnnotations(annotations)
			if err != nil {
				return err
			}
			key, chain, err := loadSigningKey(cmd, keyFile, certFile, passFile)
			if err != nil {
				return err
			}
			client, err := registryClient()
			if err != nil {
				return err
			}
			res, err := signNotation(ctx, client, ref, key, chain, ann, sigFormat)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd, res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s@%s\n  signature %s (%s)\n", res.Repository, res.Digest, res.Signature, res.MediaType)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "private key (PEM, PKCS#8; encrypted keys need --passphrase-file or BULWARK_PASSPHRASE)")
	cmd.Flags().StringVar(&certFile, "cert", "", "certificate chain (PEM, leaf first)")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", `file holding the key's passphrase ("-" for stdin)`)
	cmd.Flags().StringVar(&format, "format", "notation", "signature format: notation")
	cmd.Flags().StringVar(&sigFormat, "signature-format", "jws", "Notary Project envelope: jws or cose")
	cmd.Flags().StringArrayVar(&annotations, "annotation", nil, "KEY=VALUE to sign along (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.MarkFlagRequired("key")
	cmd.MarkFlagRequired("cert")
	return cmd
}

func parseAnnotations(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--annotation %q: want KEY=VALUE", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--annotation %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

func loadSigningKey(cmd *cobra.Command, keyFile, certFile, passFile string) (crypto.Signer, []*x509.Certificate, error) {
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--key: %w", err)
	}
	pass, err := pkiPassphrase(cmd, passFile)
	if err != nil {
		return nil, nil, err
	}
	key, err := trust.ParsePrivateKey(kb, pass)
	if err != nil {
		return nil, nil, fmt.Errorf("--key %s: %w", keyFile, err)
	}
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--cert: %w", err)
	}
	chain, err := trust.ParseCertificates(cb)
	if err != nil {
		return nil, nil, fmt.Errorf("--cert %s: %w", certFile, err)
	}
	return key, chain, nil
}

// SignResult is what `bulwark sign --output json` prints.
type SignResult struct {
	Repository string        `json:"repository"`
	Digest     digest.Digest `json:"digest"`
	Signature  digest.Digest `json:"signature"` // the signature manifest
	MediaType  string        `json:"mediaType"` // of the envelope
}

func signNotation(ctx context.Context, client *remote.Client, ref oci.ImageRef, key crypto.Signer, chain []*x509.Certificate,
	ann map[string]string, envFormat string) (*SignResult, error) {
	target, err := client.Resolve(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	envelope, mediaType, err := trust.SignNotation(ctx, target, key, chain, ann, envFormat)
	if err != nil {
		return nil, err
	}
	manifest, _, err := trust.NotationSignatureManifest(target, envelope, mediaType)
	if err != nil {
		return nil, err
	}
	repo := oci.ImageRef{Registry: ref.Registry, Repository: ref.Repository}
	// The signature manifest's config is the empty JSON object; the
	// registry must hold it like any other blob.
	if _, err := client.PushBlob(ctx, repo, []byte("{}")); err != nil {
		return nil, fmt.Errorf("push signature config: %w", err)
	}
	if _, err := client.PushBlob(ctx, repo, envelope); err != nil {
		return nil, fmt.Errorf("push signature envelope: %w", err)
	}
	sigRef := repo
	sigRef.Digest = digest.FromBytes(manifest)
	if _, err := client.PushManifest(ctx, sigRef, v1.MediaTypeImageManifest, manifest); err != nil {
		return nil, fmt.Errorf("push signature manifest: %w", err)
	}
	return &SignResult{Repository: ref.Registry + "/" + ref.Repository, Digest: target.Digest, Signature: sigRef.Digest, MediaType: mediaType}, nil
}

func newVerifyCmd() *cobra.Command {
	var (
		policyFile, env, output string
	)
	cmd := &cobra.Command{
		Use:   "verify REF --trust-policy FILE [--env ENV]",
		Short: "Check an image's signatures against a trust policy",
		Long: `Resolve REF to its digest, find its signatures through the OCI referrers
API (falling back to the referrers tag schema), verify each cryptographically,
and apply the trust policy for the environment: which authorities must have
signed (all of a list, or k of n distinct authorities), for which
repositories, with which identities, roots and CRLs (docs/trust-policy.md).

For each signature it prints who signed, which authority it matched, and
why it counted or not. Exit status: 0 when the policy is satisfied, 2 when it
is not, 1 when the check could not run. Notary Project (notation) signatures
are verified; cosign signatures are to come.`,
		Example: `  bulwark verify 127.0.0.1:5000/team/app:v1 --trust-policy trust.yaml --env dev
  bulwark verify registry.example:5000/prod/app@sha256:… --trust-policy trust.yaml --env prod --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ref, err := parseRemoteRef(args[0])
			if err != nil {
				return err
			}
			policy, err := trust.LoadPolicy(policyFile)
			if err != nil {
				return err
			}
			client, err := registryClient()
			if err != nil {
				return err
			}
			target, err := client.Resolve(ctx, ref)
			if err != nil {
				return fmt.Errorf("resolve %s: %w", ref, err)
			}
			facts, err := trust.Facts(ctx, client, ref, target.Digest)
			if err != nil {
				return err
			}
			d, err := policy.Evaluate(ref.Repository, target.Digest, env, facts, time.Now())
			if err != nil {
				return err
			}
			res := VerifyResult{Reference: ref.String(), Digest: target.Digest, PolicyVersion: policy.Version(), Decision: d}
			if output == "json" {
				if err := printJSON(cmd, res); err != nil {
					return err
				}
			} else {
				printDecision(cmd.OutOrStdout(), res)
			}
			if !d.Allowed {
				return &exitError{code: 2, msg: "trust policy not satisfied: " + d.Reason}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&policyFile, "trust-policy", "", "trust policy file (YAML, docs/trust-policy.md)")
	cmd.Flags().StringVar(&env, "env", "", "environment whose requirement applies (default: the one environment covering the repository)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.MarkFlagRequired("trust-policy")
	return cmd
}

// VerifyResult is what `bulwark verify --output json` prints.
type VerifyResult struct {
	Reference     string         `json:"reference"`
	Digest        digest.Digest  `json:"digest"`
	PolicyVersion string         `json:"policyVersion"`
	Decision      trust.Decision `json:"decision"`
}

func printDecision(w io.Writer, r VerifyResult) {
	d := r.Decision
	verdict := "SATISFIED"
	if !d.Allowed {
		verdict = "NOT SATISFIED"
	}
	fmt.Fprintf(w, "%s@%s\nenvironment %s requires %s: %s\n", strings.SplitN(r.Reference, "@", 2)[0], r.Digest, d.Environment, d.Requirement, verdict)
	if len(d.Signatures) == 0 {
		fmt.Fprintln(w, "  no signatures found")
	}
	for _, s := range d.Signatures {
		mark := "-"
		if s.Counted {
			mark = "+"
		}
		auth := s.Authority
		if auth == "" {
			auth = "no authority"
		}
		fmt.Fprintf(w, "  %s %s [%s] signer %q: %s (%s)\n", mark, s.Ref, s.Format, s.Signer, auth, s.Why)
	}
	if d.Reason != "" {
		fmt.Fprintf(w, "%s\n", d.Reason)
	}
}
