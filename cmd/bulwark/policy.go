package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/policy"
	"github.com/bulwark-dev/bulwark/internal/remote"
	"github.com/bulwark-dev/bulwark/internal/trust"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check policy files and what a policy decides for an image",
		Long: `A policy (docs/policy.md) says which rules, written in CEL, apply to which
environments, repositories and actions (push, pull, run), in which mode
(audit, warn, enforce), with which expiring exceptions. The registry applies
it at push and pull, the runner at run; these commands check a policy file
and ask what it decides without changing anything.`,
		Example: `  bulwark policy lint policy.yaml
  bulwark policy check 127.0.0.1:5000/prod/app:v1 --policy policy.yaml --trust-policy trust.yaml --env prod --action run --explain`,
	}
	cmd.AddCommand(newPolicyLintCmd(), newPolicyCheckCmd())
	return cmd
}

// LintResult is what `bulwark policy lint --output json` prints.
type LintResult struct {
	File       string           `json:"file"`
	Valid      bool             `json:"valid"`
	Version    string           `json:"version,omitempty"`
	Rules      int              `json:"rules"`
	Bindings   int              `json:"bindings"`
	Exceptions int              `json:"exceptions"`
	Errors     []LintError      `json:"errors"`
	Warnings   []policy.Warning `json:"warnings"`
}

// LintError is a reason the policy does not load.
type LintError struct {
	Line    int    `json:"line"`
	Rule    string `json:"rule,omitempty"`
	Message string `json:"message"`
}

func newPolicyLintCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "lint FILE",
		Short: "Load a policy file the way the server does and report what is wrong",
		Long: `Parse the policy, compile and type-check every CEL expression against the
input schema, and check bindings and exceptions, exactly as 'bulwark serve
--policy' does. Errors are printed as FILE:LINE: MESSAGE (the CEL compiler's
message for expressions) on stderr, and the exit status is 1.

A valid policy exits 0; it may still get warnings: exceptions that expired or
expire within a week, rules no binding uses, exceptions for rules no binding
applies, no bindings at all.`,
		Example: `  bulwark policy lint policy.yaml
  bulwark policy lint policy.yaml --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := policyOutputFlag(output); err != nil {
				return err
			}
			file := args[0]
			res := LintResult{File: file, Errors: []LintError{}, Warnings: []policy.Warning{}}
			p, err := policy.Load(file)
			if err != nil {
				var pe *policy.PolicyError
				if !errors.As(err, &pe) {
					return err
				}
				res.Errors = append(res.Errors, LintError{Line: pe.Line, Rule: pe.Rule, Message: pe.Err.Error()})
			} else {
				res.Valid, res.Version = true, p.Version()
				res.Rules, res.Bindings, res.Exceptions = len(p.Rules), len(p.Bindings), len(p.Exceptions)
				if ws := p.Lint(time.Now()); ws != nil {
					res.Warnings = ws
				}
			}
			if output == "json" {
				if err := printJSON(cmd, res); err != nil {
					return err
				}
			} else {
				w := cmd.OutOrStdout()
				for _, warn := range res.Warnings {
					fmt.Fprintf(w, "%s: warning: %s\n", policyFileLine(file, warn.Line), warn.Message)
				}
				if res.Valid {
					fmt.Fprintf(w, "%s: valid: %d rules, %d bindings, %d exceptions; version %s\n", file, res.Rules, res.Bindings, res.Exceptions, res.Version)
				}
			}
			if !res.Valid {
				// Compiler style, for editors: the line is the message.
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func policyFileLine(file string, line int) string {
	if line > 0 {
		return file + ":" + strconv.Itoa(line)
	}
	return file
}

func policyOutputFlag(o string) error {
	if o != "text" && o != "json" {
		return fmt.Errorf("--output must be text or json, not %q", o)
	}
	return nil
}

// CheckResult is what `bulwark policy check --output json` prints.
type CheckResult struct {
	Reference   string               `json:"reference"`
	Repository  string               `json:"repository"`
	Digest      digest.Digest        `json:"digest"`
	Decision    policy.Decision      `json:"decision"`
	Trust       *trust.Decision      `json:"trust,omitempty"`
	Approvals   []policy.Approval    `json:"approvals"`
	Explanation []policy.Explanation `json:"explanation,omitempty"`
	Notes       []string             `json:"notes,omitempty"`
}

// checkFlags describe the action being asked about.
type checkFlags struct {
	policyFile, trustFile, env, action, output, platform string
	explain                                              bool
	principal, principalKind, scanFile                   string
	// run request
	user                                  string
	privileged, readOnly                  bool
	caps, hostNS, mounts, publish, egress []string
}

func newPolicyCheckCmd() *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check REF --policy FILE --env ENV --action push|pull|run",
		Short: "Ask what the policy decides for an image (what-if; changes nothing)",
		Long: `Fetch REF's manifest and image configuration from its registry, gather the
facts the registry and runner would (signatures checked against the trust
policy when --trust-policy is given, approvals, the image's user, ports,
labels, age), and run the policy for the environment and action. Each rule's
result is printed: pass, violated, excepted (waived by an exception, never
shown as pass) or error (counts as a violation); then the decision.

--explain also prints each rule's CEL expression and the input fields it
reads with their values, and the trust policy's verdict on every signature.

For --action run the run request is described with the flags a run would
use (--user, --privileged, --cap, --host-ns, --mount, --publish, --read-only,
--egress); rules about the run request pass at push and pull. Scan facts
come from --scan (a JSON file shaped like the input's "scan" field,
docs/policy.md) until the scanner provides them.

Exit status: 0 when the action would be allowed (also in audit and warn
mode), 2 when it would be denied, 1 when the check could not run. Registry
credentials come from Docker's config, as for 'bulwark verify'.`,
		Example: `  # Would prod run this tag?
  bulwark policy check 127.0.0.1:5000/prod/app:v1 --policy policy.yaml --trust-policy trust.yaml \
      --env prod --action run --read-only --publish 8080:8080 --explain

  # Would a prod robot be allowed to pull it? Machine-readable:
  bulwark policy check registry.example:5000/prod/app@sha256:… --policy policy.yaml \
      --trust-policy trust.yaml --env prod --action pull --principal deploy --principal-kind robot --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := policyOutputFlag(f.output); err != nil {
				return err
			}
			action := policy.Action(f.action)
			if action != policy.ActionPush && action != policy.ActionPull && action != policy.ActionRun {
				return fmt.Errorf("--action must be push, pull or run, not %q", f.action)
			}
			ref, err := parseRemoteRef(args[0])
			if err != nil {
				return err
			}
			p, err := policy.Load(f.policyFile)
			if err != nil {
				return err
			}
			var tp *trust.Policy
			if f.trustFile != "" {
				if tp, err = trust.LoadPolicy(f.trustFile); err != nil {
					return err
				}
			}
			runtime, err := f.runtimeRequest()
			if err != nil {
				return err
			}
			client, err := registryClient()
			if err != nil {
				return err
			}
			res, in, err := policyGather(cmd.Context(), client, ref, tp, f, action, runtime)
			if err != nil {
				return err
			}
			d, err := p.Decide(cmd.Context(), in)
			if err != nil {
				return err
			}
			res.Decision = d
			if f.explain {
				if res.Explanation, err = p.Explain(in, d); err != nil {
					return err
				}
			}
			if f.output == "json" {
				if err := printJSON(cmd, res); err != nil {
					return err
				}
			} else {
				printPolicyCheck(cmd.OutOrStdout(), p, res, f.explain)
			}
			if !d.Allowed {
				return &exitError{code: 2, msg: "policy denies " + string(action) + ": " + d.Reason}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.policyFile, "policy", "", "policy file (YAML, docs/policy.md)")
	fl.StringVar(&f.trustFile, "trust-policy", "", "trust policy file: check signatures and approvals against it (without it, rule \"signed\" fails)")
	fl.StringVar(&f.env, "env", "", "environment to decide for")
	fl.StringVar(&f.action, "action", "", "push, pull or run")
	fl.BoolVar(&f.explain, "explain", false, "print each rule's expression and the input fields it reads, and every signature's verdict")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.StringVar(&f.platform, "platform", "", "for an index: decide on the image for OS/ARCH (e.g. linux/amd64) instead of the index itself")
	fl.StringVar(&f.principal, "principal", "", "who asks (input principal.name)")
	fl.StringVar(&f.principalKind, "principal-kind", "", "user, robot or anonymous (input principal.kind)")
	fl.StringVar(&f.scanFile, "scan", "", `JSON file with scan facts ({"available": true, "vulnerabilities": [{"id", "severity", "package", "version", "fixedVersion"}]})`)
	fl.StringVar(&f.user, "user", "", "run: user the container runs as (default: the image's)")
	fl.BoolVar(&f.privileged, "privileged", false, "run: privileged container")
	fl.BoolVar(&f.readOnly, "read-only", false, "run: read-only root filesystem")
	fl.StringArrayVar(&f.caps, "cap", nil, "run: capability the container keeps (repeatable)")
	fl.StringArrayVar(&f.hostNS, "host-ns", nil, "run: namespace shared with the host: network, pid, ipc, uts, user, cgroup (repeatable)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "run: TYPE:SOURCE:DEST[:ro], TYPE bind, volume or tmpfs (repeatable)")
	fl.StringArrayVar(&f.publish, "publish", nil, "run: [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO] (repeatable)")
	fl.StringArrayVar(&f.egress, "egress", nil, `run: destination the container may reach, CIDR or host, "*" for anywhere (repeatable)`)
	cmd.MarkFlagRequired("policy")
	cmd.MarkFlagRequired("action")
	return cmd
}

// runtimeRequest builds the run request from the flags.
func (f *checkFlags) runtimeRequest() (policy.Runtime, error) {
	r := policy.Runtime{User: f.user, Privileged: f.privileged, ReadOnlyRootfs: f.readOnly,
		Capabilities: f.caps, HostNamespaces: f.hostNS, Egress: f.egress}
	for _, m := range f.mounts {
		parts := strings.Split(m, ":")
		if len(parts) < 3 || len(parts) > 4 || (len(parts) == 4 && parts[3] != "ro") {
			return r, fmt.Errorf("--mount %q: want TYPE:SOURCE:DEST[:ro]", m)
		}
		r.Mounts = append(r.Mounts, policy.Mount{Type: parts[0], Source: parts[1], Destination: parts[2], ReadOnly: len(parts) == 4})
	}
	for _, s := range f.publish {
		pm, err := policyParsePublish(s)
		if err != nil {
			return r, err
		}
		r.PublishedPorts = append(r.PublishedPorts, pm)
	}
	return r, nil
}

// policyParsePublish reads docker's -p syntax: [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO].
func policyParsePublish(s string) (policy.PortMapping, error) {
	bad := fmt.Errorf("--publish %q: want [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]", s)
	spec, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return policy.PortMapping{}, bad
	}
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return policy.PortMapping{}, bad
	}
	host, cport := spec[:i], spec[i+1:]
	var hostIP string
	if j := strings.LastIndex(host, ":"); j >= 0 {
		hostIP, host = strings.Trim(host[:j], "[]"), host[j+1:]
	}
	hp, err1 := strconv.Atoi(host)
	cp, err2 := strconv.Atoi(cport)
	if err1 != nil || err2 != nil || hp < 0 || hp > 65535 || cp < 1 || cp > 65535 {
		return policy.PortMapping{}, bad
	}
	return policy.PortMapping{HostIP: hostIP, HostPort: hp, ContainerPort: cp, Protocol: proto}, nil
}

// policyGather fetches what the decision needs: the manifest (for the
// digest, media and artifact type), the image configuration, the trust
// decision and the approvals, as the registry's gate gathers them.
func policyGather(ctx context.Context, client *remote.Client, ref oci.ImageRef, tp *trust.Policy, f checkFlags,
	action policy.Action, rt policy.Runtime) (*CheckResult, policy.Input, error) {
	res := &CheckResult{Reference: ref.String(), Repository: ref.Repository, Approvals: []policy.Approval{}}
	desc, body, err := client.Manifest(ctx, ref)
	if err != nil {
		return nil, policy.Input{}, err
	}
	m, err := oci.ParseManifest(desc.MediaType, body)
	if err != nil {
		return nil, policy.Input{}, fmt.Errorf("%s: %w", ref, err)
	}
	if m.IsIndex() && f.platform != "" {
		child, err := policyPlatform(m, f.platform)
		if err != nil {
			return nil, policy.Input{}, fmt.Errorf("%s: %w", ref, err)
		}
		cref := oci.ImageRef{Registry: ref.Registry, Repository: ref.Repository, Digest: child.Digest}
		if desc, body, err = client.Manifest(ctx, cref); err != nil {
			return nil, policy.Input{}, err
		}
		if m, err = oci.ParseManifest(desc.MediaType, body); err != nil {
			return nil, policy.Input{}, fmt.Errorf("%s: %w", cref, err)
		}
		res.Notes = append(res.Notes, fmt.Sprintf("index: deciding on the %s image %s", f.platform, child.Digest))
	}
	res.Digest = desc.Digest
	in := policy.Input{
		Action:      action,
		Environment: f.env,
		Principal:   policy.Principal{Name: f.principal, Kind: f.principalKind},
		Now:         time.Now(),
		Image: policy.Image{
			Repository:   ref.Repository,
			Digest:       desc.Digest.String(),
			Tag:          ref.Tag,
			ByDigest:     ref.Digest != "",
			MediaType:    m.MediaType,
			ArtifactType: m.EffectiveArtifactType(),
		},
	}
	if ref.Tag != "" {
		in.Image.Tags = []string{ref.Tag}
	}
	if action == policy.ActionRun {
		in.Runtime = rt
	}
	switch {
	case m.IsIndex():
		res.Notes = append(res.Notes, "REF is an index: the image configuration is not read (give --platform to decide on one image)")
	case m.Config != nil:
		cfg, err := policyFetchConfig(ctx, client, ref, m.Config.Digest)
		if err != nil {
			return nil, policy.Input{}, err
		}
		in.Image.Config = cfg
	}
	if f.scanFile != "" {
		data, err := os.ReadFile(f.scanFile)
		if err != nil {
			return nil, policy.Input{}, fmt.Errorf("--scan: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in.Scan); err != nil {
			return nil, policy.Input{}, fmt.Errorf("--scan %s: %w", f.scanFile, err)
		}
	}

	repo := oci.ImageRef{Registry: ref.Registry, Repository: ref.Repository}
	if tp != nil {
		facts, err := trust.Facts(ctx, trustFetcher{client}, repo, desc.Digest, trust.WithKeys(tp.PublicKeys()...))
		if err != nil {
			return nil, policy.Input{}, err
		}
		td, err := tp.ForRegistry(ref.Registry).Evaluate(ref.Repository, desc.Digest, f.env, facts, in.Now)
		if err != nil {
			// The trust policy cannot decide here (an environment it does
			// not know): rule "signed" fails and says why.
			in.Trust = policy.Trust{PolicyVersion: tp.Version(), Environment: f.env, Reason: err.Error()}
			res.Notes = append(res.Notes, "trust policy: "+err.Error())
		} else {
			in.Trust = policy.TrustFacts(td, tp.Version())
			res.Trust = &td
		}
	} else {
		res.Notes = append(res.Notes, "no --trust-policy: signatures are not checked, so rule \"signed\" fails")
	}
	approvals, err := trust.Approvals(ctx, trustFetcher{client}, repo, desc.Digest)
	if err != nil {
		return nil, policy.Input{}, err
	}
	for _, r := range trust.ApprovalResults(tp, approvals, in.Now) {
		a := policy.Approval{Environment: r.Environment, Approver: r.Approver, Time: r.ApprovedAt, Verified: r.Verified, Ref: r.Ref}
		if len(r.Authorities) == 0 {
			in.Approvals = append(in.Approvals, a)
			continue
		}
		for _, name := range r.Authorities {
			a.Authority = name
			in.Approvals = append(in.Approvals, a)
		}
	}
	if in.Approvals != nil {
		res.Approvals = in.Approvals
	}
	return res, in, nil
}

func policyPlatform(m *oci.Manifest, platform string) (v1.Descriptor, error) {
	os_, arch, ok := strings.Cut(platform, "/")
	if !ok {
		return v1.Descriptor{}, fmt.Errorf("--platform %q: want OS/ARCH", platform)
	}
	arch, variant, _ := strings.Cut(arch, "/")
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS == os_ && d.Platform.Architecture == arch && (variant == "" || d.Platform.Variant == variant) {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("the index has no %s image", platform)
}

func policyFetchConfig(ctx context.Context, client *remote.Client, ref oci.ImageRef, d digest.Digest) (policy.ImageConfig, error) {
	repo := oci.ImageRef{Registry: ref.Registry, Repository: ref.Repository}
	rc, _, err := client.Blob(ctx, repo, d, policy.MaxConfigSize)
	if err != nil {
		return policy.ImageConfig{}, fmt.Errorf("image configuration %s: %w", d, err)
	}
	defer rc.Close()
	blob, err := io.ReadAll(rc) // verified against d at EOF
	if err != nil {
		return policy.ImageConfig{}, fmt.Errorf("image configuration %s: %w", d, err)
	}
	cfg, err := policy.ConfigFacts(blob)
	if err != nil {
		// An artifact's config is not an image's: no facts, rules that need
		// them fail closed, as in the registry.
		return policy.ImageConfig{}, nil
	}
	return cfg, nil
}

var policyResultMarks = map[policy.Result]string{
	policy.ResultPass: "pass", policy.ResultViolated: "VIOLATED", policy.ResultExcepted: "excepted", policy.ResultError: "ERROR",
}

func printPolicyCheck(w io.Writer, p *policy.Policy, r *CheckResult, explain bool) {
	d := r.Decision
	verdict := "ALLOWED"
	if !d.Allowed {
		verdict = "DENIED"
	}
	fmt.Fprintf(w, "%s@%s\n", r.Repository, r.Digest)
	fmt.Fprintf(w, "%s %s in environment %q (policy %s, %s)\n", verdict, d.Action, d.Environment, p.Name(), d.PolicyVersion)
	fmt.Fprintf(w, "%s\n", d.Reason)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(d.Bindings) == 0 {
		fmt.Fprintln(w, "no binding covers this environment, repository and action")
	}
	for _, b := range d.Bindings {
		name := ""
		if b.Name != "" {
			name = " " + b.Name
		}
		fmt.Fprintf(w, "binding #%d%s (line %d): %s\n", b.Index, name, b.Line, b.Mode)
	}
	explanations := map[int]policy.Explanation{}
	for i, e := range r.Explanation {
		explanations[i] = e
	}
	for i, rr := range d.Rules {
		line := fmt.Sprintf("  %-8s %-22s %-7s %-8s %s", policyResultMarks[rr.Result], rr.ID, rr.Mode, rr.Severity, rr.Message)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		if rr.Exception != "" {
			fmt.Fprintf(w, "           waived by exception %s\n", rr.Exception)
		}
		if rr.Failed() && rr.Remediation != "" {
			fmt.Fprintf(w, "           fix: %s\n", rr.Remediation)
		}
		if e, ok := explanations[i]; ok && explain {
			if len(e.Params) > 0 {
				fmt.Fprintf(w, "           params: %s\n", policyParams(e.Params))
			}
			fmt.Fprintf(w, "           expression: %s\n", policyOneLine(e.Expression))
			for _, f := range e.Facts {
				v, _ := json.Marshal(f.Value)
				fmt.Fprintf(w, "           %s = %s\n", f.Path, policyTruncate(string(v), 200))
			}
		}
	}
	for _, x := range d.Exceptions {
		fmt.Fprintf(w, "exception %s (requested by %s, approved by %s, expires %s) waives %s: %s\n",
			x.ID, x.RequestedBy, x.ApprovedBy, x.Expires.Format(time.RFC3339), strings.Join(x.Rules, ", "), x.Reason)
	}
	for _, warn := range d.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if explain && r.Trust != nil {
		printDecision(w, VerifyResult{Reference: r.Reference, Digest: r.Digest, Decision: *r.Trust})
	}
	if explain {
		for _, a := range r.Approvals {
			state := "verified"
			if !a.Verified {
				state = "NOT verified"
			}
			fmt.Fprintf(w, "approval %s: %s for %s (%s, authority %q)\n", a.Ref, a.Approver, a.Environment, state, a.Authority)
		}
	}
	fmt.Fprintf(w, "decision %s\n", d.ID)
}

func policyParams(p map[string]string) string {
	var parts []string
	for k, v := range p {
		parts = append(parts, k+"="+strings.ReplaceAll(v, "\n", ","))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func policyOneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func policyTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
