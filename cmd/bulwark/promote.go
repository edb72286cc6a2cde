package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/remote"
	"github.com/bulwark-dev/bulwark/internal/trust"
)

func newPromoteCmd() *cobra.Command {
	var (
		env, keyFile, certFile, passFile, reason, output string
		annotations                                      []string
	)
	cmd := &cobra.Command{
		Use:   "promote REF --to ENV --key KEY --cert CERT",
		Short: "Approve an image digest for an environment (a signed approval stored as an OCI referrer)",
		Long: `Resolve REF to its digest once and record that you approve that digest for
environment ENV: an in-toto statement (predicate type
https://bulwark.dev/promotion/v1: environment, approver, approval time,
reason) signed in a DSSE envelope inside a Sigstore bundle with your
certificate, pushed to the same repository as an OCI 1.1 referrer of the
image (artifactType application/vnd.bulwark.promotion.v1+json).

Promotion moves nothing: no tag is created or changed and no content is
copied. Policy rules decide what an approval allows, for example "prod needs
an approval for prod by authority security" (docs/promotion.md); list
approvals with 'bulwark approvals'.

KEY and CERT come from 'bulwark pki issue' (CERT holds the leaf, then the
chain); your approver name is the certificate's subject. Registry
credentials come from Docker's config (docker login / bulwark login).`,
		Example: `  bulwark promote 127.0.0.1:5000/team/app:v1 --to prod --key keys/security.key --cert keys/security.crt \
      --reason "pen test SEC-42 passed"
  bulwark promote registry.example:5000/prod/app@sha256:… --to staging --key qa.key --cert qa.crt \
      --annotation ticket=QA-7 --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutputFlag(output); err != nil {
				return err
			}
			if err := trust.ValidateApprovalEnvironment(env); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
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
			res, err := promote(cmd.Context(), client, ref, trust.ApprovalRequest{Environment: env, Reason: reason, Annotations: ann}, key, chain)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd, res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approved %s@%s for %s\n  approver %q at %s\n  approval %s\n",
				res.Repository, res.Digest, res.Environment, res.Approver, res.ApprovedAt.Format(time.RFC3339), res.Approval)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "to", "", "environment the image is approved for (e.g. prod)")
	cmd.Flags().StringVar(&keyFile, "key", "", "private key (PEM, PKCS#8; encrypted keys need --passphrase-file or BULWARK_PASSPHRASE)")
	cmd.Flags().StringVar(&certFile, "cert", "", "certificate chain (PEM, leaf first)")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", `file holding the key's passphrase ("-" for stdin)`)
	cmd.Flags().StringVar(&reason, "reason", "", "why the image is approved (signed with the approval)")
	cmd.Flags().StringArrayVar(&annotations, "annotation", nil, "KEY=VALUE to sign along (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.MarkFlagRequired("to")
	cmd.MarkFlagRequired("key")
	cmd.MarkFlagRequired("cert")
	return cmd
}

func checkOutputFlag(output string) error {
	if output != "text" && output != "json" {
		return fmt.Errorf("--output must be text or json, not %q", output)
	}
	return nil
}

// PromoteResult is what `bulwark promote --output json` prints.
type PromoteResult struct {
	Repository  string        `json:"repository"`
	Digest      digest.Digest `json:"digest"`
	Environment string        `json:"environment"`
	Approver    string        `json:"approver"`
	ApprovedAt  time.Time     `json:"approvedAt"`
	Approval    digest.Digest `json:"approval"`  // the approval manifest
	MediaType   string        `json:"mediaType"` // of the bundle
}

// promote signs an approval of ref's digest and pushes it as a referrer.
// The digest is resolved once and everything after names it: a tag moved
// meanwhile cannot make the approval land on other content.
func promote(ctx context.Context, client *remote.Client, ref oci.ImageRef, req trust.ApprovalRequest,
	key crypto.Signer, chain []*x509.Certificate) (*PromoteResult, error) {
	target, err := client.Resolve(ctx, ref) // its errors name the reference
	if err != nil {
		return nil, err
	}
	req.Repository, req.Subject = ref.Repository, target.Digest
	bundle, mediaType, err := trust.SignApproval(ctx, req, key, chain)
	if err != nil {
		return nil, err
	}
	manifest, _, err := trust.ApprovalManifest(target, bundle, mediaType)
	if err != nil {
		return nil, err
	}
	approval := digest.FromBytes(manifest)
	// Check our own work the way every reader will before publishing it.
	f := trust.VerifyApproval(ctx, bundle, mediaType, approval.String(), ref.Repository, target.Digest)
	if !f.Verified {
		return nil, fmt.Errorf("the approval just signed does not verify: %s", f.Error)
	}

	repo := oci.ImageRef{Registry: ref.Registry, Repository: ref.Repository}
	if _, err := client.PushBlob(ctx, repo, []byte("{}")); err != nil {
		return nil, fmt.Errorf("push approval config: %w", err)
	}
	if _, err := client.PushBlob(ctx, repo, bundle); err != nil {
		return nil, fmt.Errorf("push approval bundle: %w", err)
	}
	aref := repo
	aref.Digest = approval
	if _, err := client.PushManifest(ctx, aref, v1.MediaTypeImageManifest, manifest); err != nil {
		return nil, fmt.Errorf("push approval manifest: %w", err)
	}
	return &PromoteResult{Repository: ref.Registry + "/" + ref.Repository, Digest: target.Digest, Environment: f.Environment,
		Approver: f.Approver, ApprovedAt: f.ApprovedAt, Approval: approval, MediaType: mediaType}, nil
}

func newApprovalsCmd() *cobra.Command {
	var (
		policyFile, env, require, output string
	)
	cmd := &cobra.Command{
		Use:   "approvals REF [--trust-policy FILE] [--env ENV [--require AUTHORITY]]",
		Short: "List an image's promotion approvals and who vouches for them",
		Long: `Resolve REF to its digest, find the approvals recorded by 'bulwark promote'
(OCI referrers of the digest), and verify each: its signature, that it
names exactly this repository and digest, that the approver is the signing
certificate's subject, and that it was made while that certificate was
valid. With --trust-policy, each verified approval's signer is matched
against the policy's authorities with the same checks as signatures (roots,
identities, CRLs, keys, repository scopes), naming the authorities it speaks
for.

--env keeps only approvals for that environment. With --require AUTHORITY
(needs --env and --trust-policy) the exit status says whether some approval
for ENV is vouched for by AUTHORITY: 0 yes, 2 no, 1 when the check could
not run.`,
		Example: `  bulwark approvals 127.0.0.1:5000/team/app:v1
  bulwark approvals registry.example:5000/prod/app:v1 --trust-policy trust.yaml --output json
  bulwark approvals registry.example:5000/prod/app:v1 --trust-policy trust.yaml --env prod --require security`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutputFlag(output); err != nil {
				return err
			}
			if require != "" && (env == "" || policyFile == "") {
				return fmt.Errorf("--require needs --env and --trust-policy")
			}
			ref, err := parseRemoteRef(args[0])
			if err != nil {
				return err
			}
			var policy *trust.Policy
			if policyFile != "" {
				if policy, err = trust.LoadPolicy(policyFile); err != nil {
					return err
				}
				if _, ok := policy.Authority(require); require != "" && !ok {
					return fmt.Errorf("--require %q: the trust policy has no such authority", require)
				}
			}
			client, err := registryClient()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			target, err := client.Resolve(ctx, ref)
			if err != nil {
				return err
			}
			facts, err := trust.Approvals(ctx, client, ref, target.Digest)
			if err != nil {
				return err
			}
			if env != "" {
				facts = slices.DeleteFunc(facts, func(f trust.ApprovalFact) bool { return f.Verified && f.Environment != env })
			}
			res := ApprovalsResult{Reference: ref.String(), Digest: target.Digest, Environment: env,
				Approvals: trust.ApprovalResults(policy, facts, time.Now())}
			if policy != nil {
				res.PolicyVersion = policy.Version()
			}
			if require != "" {
				res.Require = &ApprovalRequirement{Environment: env, Authority: require}
				for _, a := range res.Approvals {
					if a.Verified && slices.Contains(a.Authorities, require) {
						res.Require.Satisfied, res.Require.By = true, a.Ref
						break
					}
				}
			}
			if output == "json" {
				if err := printJSON(cmd, res); err != nil {
					return err
				}
			} else {
				printApprovals(cmd.OutOrStdout(), res)
			}
			if res.Require != nil && !res.Require.Satisfied {
				return &exitError{code: 2, msg: fmt.Sprintf("no approval for %s by authority %s", env, require)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&policyFile, "trust-policy", "", "trust policy whose authorities approvers are matched against (docs/trust-policy.md)")
	cmd.Flags().StringVar(&env, "env", "", "list only approvals for this environment")
	cmd.Flags().StringVar(&require, "require", "", "exit 2 unless an approval for --env is vouched for by this authority")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// ApprovalsResult is what `bulwark approvals --output json` prints.
type ApprovalsResult struct {
	Reference     string                 `json:"reference"`
	Digest        digest.Digest          `json:"digest"`
	Environment   string                 `json:"environment,omitempty"` // --env
	PolicyVersion string                 `json:"policyVersion,omitempty"`
	Approvals     []trust.ApprovalResult `json:"approvals"`
	Require       *ApprovalRequirement   `json:"require,omitempty"`
}

// ApprovalRequirement is the outcome of --require.
type ApprovalRequirement struct {
	Environment string `json:"environment"`
	Authority   string `json:"authority"`
	Satisfied   bool   `json:"satisfied"`
	By          string `json:"by,omitempty"` // the approval that satisfied it
}

func printApprovals(w io.Writer, r ApprovalsResult) {
	fmt.Fprintf(w, "%s@%s\n", strings.SplitN(r.Reference, "@", 2)[0], r.Digest)
	if len(r.Approvals) == 0 && r.Environment != "" {
		fmt.Fprintf(w, "  no approvals for %s found\n", r.Environment)
	} else if len(r.Approvals) == 0 {
		fmt.Fprintln(w, "  no approvals found")
	}
	for _, a := range r.Approvals {
		if !a.Verified {
			fmt.Fprintf(w, "  ! %s not verified: %s\n", a.Ref, a.Error)
			continue
		}
		mark, who := "-", "no authority"
		if len(a.Authorities) > 0 {
			mark, who = "+", "authority "+strings.Join(a.Authorities, ", ")
		}
		fmt.Fprintf(w, "  %s %s for %s by %q at %s: %s", mark, a.Ref, a.Environment, a.Approver, a.ApprovedAt.Format(time.RFC3339), who)
		if a.Why != "" {
			fmt.Fprintf(w, " (%s)", a.Why)
		}
		fmt.Fprintln(w)
		if a.Reason != "" {
			fmt.Fprintf(w, "      reason %q\n", a.Reason)
		}
	}
	if q := r.Require; q != nil {
		verdict := "NOT SATISFIED"
		if q.Satisfied {
			verdict = "SATISFIED by " + q.By
		}
		fmt.Fprintf(w, "approval for %s by authority %s: %s\n", q.Environment, q.Authority, verdict)
	}
}
