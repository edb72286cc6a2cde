package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
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
		Use:   "sign REF --key KEY --cert CERT [--format notation|cosign|all]",
		Short: "Sign an image by digest (Notary Project referrer, cosign .sig tag, or both)",
		Long: `Resolve REF to its digest once, sign that digest, and push the signature
to the same repository.

--format notation (default): a Notary Project JWS envelope (or COSE with
--signature-format cose) carrying the certificate chain, pushed as an OCI
1.1 referrer (artifactType application/vnd.cncf.notary.signature, subject =
the signed manifest). 'notation verify' accepts it given the same root.

--format cosign: a cosign signature in cosign's tag layout: a simple-signing
payload naming the digest, its signature and the certificate and chain as
annotations, added as a layer to the image manifest tagged
sha256-<hex>.sig (existing cosign signatures there are kept). 'cosign verify'
accepts it with --key (the certificate's public key) or with
--certificate-chain and --certificate-identity (docs/trust-policy.md).

--format all: both, of the same digest.

KEY and CERT come from 'bulwark pki issue' (CERT holds the leaf, then the
chain). Annotations given with --annotation are signed too (the Notary
payload's annotations, cosign's optional section). 'bulwark verify' checks
either format against a trust policy. Registry credentials come from
Docker's config (docker login / bulwark share them).`,
		Example: `  bulwark sign 127.0.0.1:5000/team/app:v1 --key keys/ci.key --cert keys/ci.crt
  bulwark sign 127.0.0.1:5000/team/app:v1 --key keys/ci.key --cert keys/ci.crt --format cosign
  bulwark sign registry.example:5000/prod/app@sha256:… --key keys/security.key --cert keys/security.crt \
      --format all --annotation reviewed-by=security --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			formats, err := signFormats(format)
			if err != nil {
				return err
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", output)
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
			if _, err := trust.NotationMediaType(sigFormat); err != nil {
				return fmt.Errorf("--signature-format: %w", err)
			}
			key, chain, err := loadSigningKey(cmd, keyFile, certFile, passFile)
			if err != nil {
				return err
			}
			client, err := registryClient()
			if err != nil {
				return err
			}
			// One resolution for every format: all signatures name the
			// same digest even if the tag moves meanwhile.
			target, err := client.Resolve(ctx, ref)
			if err != nil {
				return err // names the reference already
			}
			res := &SignResult{Repository: ref.Registry + "/" + ref.Repository, Digest: target.Digest, Signatures: []PushedSignature{}}
			for _, f := range formats {
				var sig PushedSignature
				switch f {
				case "notation":
					sig, err = signNotation(ctx, client, ref, target, key, chain, ann, sigFormat)
				case "cosign":
					sig, err = signCosign(ctx, client, ref, target.Digest, key, chain, ann)
				}
				if err != nil {
					return err
				}
				res.Signatures = append(res.Signatures, sig)
			}
			if output == "json" {
				return printJSON(cmd, res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s@%s\n", res.Repository, res.Digest)
			for _, sig := range res.Signatures {
				where := sig.Signature.String()
				if sig.Tag != "" {
					where = sig.Tag + " (" + where + ")"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "  %s signature %s, %s\n", sig.Format, where, sig.MediaType)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "private key (PEM, PKCS#8; encrypted keys need --passphrase-file or BULWARK_PASSPHRASE)")
	cmd.Flags().StringVar(&certFile, "cert", "", "certificate chain (PEM, leaf first)")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", `file holding the key's passphrase ("-" for stdin)`)
	cmd.Flags().StringVar(&format, "format", "notation", "signature format: notation, cosign, or all (both)")
	cmd.Flags().StringVar(&sigFormat, "signature-format", "jws", "Notary Project envelope: jws or cose (--format notation or all)")
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

// signFormats expands --format.
func signFormats(f string) ([]string, error) {
	switch f {
	case "notation", "cosign":
		return []string{f}, nil
	case "all":
		return []string{"notation", "cosign"}, nil
	}
	return nil, fmt.Errorf("--format %q: want notation, cosign or all", f)
}

// SignResult is what `bulwark sign --output json` prints.
type SignResult struct {
	Repository string            `json:"repository"`
	Digest     digest.Digest     `json:"digest"`
	Signatures []PushedSignature `json:"signatures"` // one per format, in --format order
}

// PushedSignature is one signature `bulwark sign` pushed.
type PushedSignature struct {
	Format    string        `json:"format"`        // "notation" or "cosign"
	Signature digest.Digest `json:"signature"`     // the signature manifest
	Tag       string        `json:"tag,omitempty"` // cosign: the sha256-<hex>.sig tag
	MediaType string        `json:"mediaType"`     // of the envelope or payload
}

func signNotation(ctx context.Context, client *remote.Client, ref oci.ImageRef, target v1.Descriptor, key crypto.Signer,
	chain []*x509.Certificate, ann map[string]string, envFormat string) (PushedSignature, error) {
	envelope, mediaType, err := trust.SignNotation(ctx, target, key, chain, ann, envFormat)
	if err != nil {
		return PushedSignature{}, err
	}
	manifest, _, err := trust.NotationSignatureManifest(target, envelope, mediaType)
	if err != nil {
		return PushedSignature{}, err
	}
	repo := oci.ImageRef{Registry: ref.Registry, Repository: ref.Repository}
	// The signature manifest's config is the empty JSON object; the
	// registry must hold it like any other blob.
	if _, err := client.PushBlob(ctx, repo, []byte("{}")); err != nil {
		return PushedSignature{}, fmt.Errorf("push signature config: %w", err)
	}
	if _, err := client.PushBlob(ctx, repo, envelope); err != nil {
		return PushedSignature{}, fmt.Errorf("push signature envelope: %w", err)
	}
	sigRef := repo
	sigRef.Digest = digest.FromBytes(manifest)
	if _, err := client.PushManifest(ctx, sigRef, v1.MediaTypeImageManifest, manifest); err != nil {
		return PushedSignature{}, fmt.Errorf("push signature manifest: %w", err)
	}
	return PushedSignature{Format: "notation", Signature: sigRef.Digest, MediaType: mediaType}, nil
}

// signCosign adds a cosign signature of target to the image's .sig tag:
// fetch the manifest there (if any), append the new layer, push the
// payload, the config and the manifest under the tag again. Like cosign
// itself this is a read-modify-write: two signers racing on one image can
// lose one signature (the loser's `bulwark verify` shows it missing).
func signCosign(ctx context.Context, client *remote.Client, ref oci.ImageRef, target digest.Digest, key crypto.Signer,
	chain []*x509.Certificate, ann map[string]string) (PushedSignature, error) {
	repo := oci.ImageRef{Registry: ref.Registry, Repository: ref.Repository}
	payload, layer, err := trust.SignCosign(ctx, ref.Registry+"/"+ref.Repository, target, key, chain, ann)
	if err != nil {
		return PushedSignature{}, err
	}
	tagRef := repo
	tagRef.Tag = trust.CosignSignatureTag(target)
	_, existing, err := client.Manifest(ctx, tagRef)
	switch {
	case errors.Is(err, remote.ErrNotFound):
		existing = nil
	case err != nil:
		return PushedSignature{}, fmt.Errorf("fetch existing cosign signatures %s: %w", tagRef, err)
	}
	manifest, config, _, err := trust.AppendCosignSignature(existing, layer)
	if err != nil {
		return PushedSignature{}, fmt.Errorf("%s: %w", tagRef, err)
	}
	if _, err := client.PushBlob(ctx, repo, payload); err != nil {
		return PushedSignature{}, fmt.Errorf("push cosign payload: %w", err)
	}
	if _, err := client.PushBlob(ctx, repo, config); err != nil {
		return PushedSignature{}, fmt.Errorf("push cosign signature config: %w", err)
	}
	pushed, err := client.PushManifest(ctx, tagRef, v1.MediaTypeImageManifest, manifest)
	if err != nil {
		return PushedSignature{}, fmt.Errorf("push cosign signature manifest: %w", err)
	}
	return PushedSignature{Format: "cosign", Signature: pushed.Digest, Tag: tagRef.Tag, MediaType: trust.CosignSimpleSigningMediaType}, nil
}

// trustFetcher is the registry client as signature discovery sees it: a
// missing manifest is trust.ErrNotFound.
type trustFetcher struct{ *remote.Client }

func (f trustFetcher) Manifest(ctx context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error) {
	desc, body, err := f.Client.Manifest(ctx, ref)
	if errors.Is(err, remote.ErrNotFound) {
		err = fmt.Errorf("%w: %w", trust.ErrNotFound, err)
	}
	return desc, body, err
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
is not, 1 when the check could not run.

Signatures read: Notary Project JWS and COSE envelopes (referrers), cosign
signatures under the sha256-<hex>.sig tag, and Sigstore bundles that
'cosign sign --new-bundle-format' attaches as referrers. cosign signatures
made with a bare key (no certificate) are checked with the policy's keys.`,
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
				return err // names the reference already
			}
			facts, err := trust.Facts(ctx, trustFetcher{client}, ref, target.Digest, trust.WithKeys(policy.PublicKeys()...))
			if err != nil {
				return err
			}
			d, err := policy.ForRegistry(ref.Registry).Evaluate(ref.Repository, target.Digest, env, facts, time.Now())
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
