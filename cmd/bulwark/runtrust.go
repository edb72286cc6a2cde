package main

// The verify-and-decide step of bulwark run: between runner.Fetch (the
// manifest and config, nothing unpacked) and img.Rootfs (the layers).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/inventory"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/policy"
	"github.com/bulwark-dev/bulwark/internal/remote"
	"github.com/bulwark-dev/bulwark/internal/runner"
	"github.com/bulwark-dev/bulwark/internal/runner/network"
	"github.com/bulwark-dev/bulwark/internal/trust"
)

// exitRefused is bulwark run's status when the trust policy or the policy
// refuses the image (or nothing says it may be trusted): the same 2 as
// bulwark verify and bulwark policy check use for "denied". Nothing was
// unpacked and nothing ran.
const exitRefused = 2

// runChecks are bulwark run's verification settings: flags, else the
// configuration file.
type runChecks struct {
	trustPolicy, policy string
	env                 string
	insecure            bool
	reportTo            string
	// cacheDir keeps recent admissions (admissionCache); "" keeps none.
	cacheDir string
}

func (c *runChecks) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&c.trustPolicy, "trust-policy", "", "trust policy (YAML, docs/trust-policy.md): the image's signatures must satisfy it for --env (default: the config's trust_policy)")
	fl.StringVar(&c.policy, "policy", "", "policy (YAML, docs/policy.md) decided with action run and the full run request (default: the config's policy)")
	fl.StringVar(&c.env, "env", "", "environment the run is decided for (default: the config's run.env, else the one trust-policy environment covering the repository)")
	fl.BoolVar(&c.insecure, "insecure-skip-verify", false, "run an image without any signature or policy check (refused otherwise when neither --trust-policy nor --policy is set); not for production")
	fl.StringVar(&c.reportTo, "report-to", "", "bulwark server (URL) to report this container's start and stop to (default: the config's run.report_to)")
}

// resolve fills what the flags left empty from the configuration.
func (c *runChecks) resolve(cmd *cobra.Command, cfg config.Config) {
	fl := cmd.Flags()
	if !fl.Changed("trust-policy") {
		c.trustPolicy = cfg.TrustPolicy
	}
	if !fl.Changed("policy") {
		c.policy = cfg.Policy
	}
	if !fl.Changed("env") {
		c.env = cfg.Run.Env
	}
	if !fl.Changed("report-to") {
		c.reportTo = cfg.Run.ReportTo
	}
}

// runRequest is the run request as the policy sees it (input.runtime):
// what bulwark run will actually ask of the runtime. Privileged mode and
// host namespaces do not exist in bulwark run, and the root is always
// read-only; the rules that check them pass because that is the truth.
func runRequest(userFlag string, caps []string, net network.Config) policy.Runtime {
	rt := policy.Runtime{
		User:           userFlag,
		Capabilities:   []string{},
		HostNamespaces: []string{},
		ReadOnlyRootfs: true,
		Mounts: []policy.Mount{
			{Type: "tmpfs", Source: "tmpfs", Destination: "/tmp"},
			{Type: "tmpfs", Source: "shm", Destination: "/dev/shm"},
		},
		Egress: []string{},
	}
	for _, c := range caps {
		c = strings.ToUpper(strings.TrimSpace(c))
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(rt.Capabilities, c) {
			rt.Capabilities = append(rt.Capabilities, c)
		}
	}
	for _, p := range net.Publish {
		rt.PublishedPorts = append(rt.PublishedPorts, policy.PortMapping{HostIP: p.HostIP.String(), HostPort: int(p.HostPort),
			ContainerPort: int(p.Port), Protocol: string(p.Proto)})
	}
	for _, e := range net.Egress {
		if !slices.Contains(rt.Egress, e.Host) {
			rt.Egress = append(rt.Egress, e.Host)
		}
	}
	return rt
}

// admission is what admitRun decided: the environment and the summary
// that inventory reports carry.
type admission struct {
	env      string
	decision inventory.Decision
	decided  time.Time
}

// admitRun verifies the image's signatures and asks the policy, before
// anything of the image is unpacked. A refusal is an *exitError with
// exitRefused, its reasons already printed on w (stderr).
//
// What decides:
//   - --policy: policy.Decide with action run, the environment, the local
//     user as principal, the image's facts, the trust decision (when
//     --trust-policy is given; else rule "signed" fails and says why), its
//     approvals and the run request. Warn-mode failures are printed and
//     the run goes on.
//   - --trust-policy alone: its requirement for the environment must be
//     satisfied.
//   - neither: refused, unless --insecure-skip-verify.
func admitRun(ctx context.Context, w io.Writer, client *remote.Client, ref oci.ImageRef, img *runner.Image, c runChecks, rt policy.Runtime) (admission, error) {
	name := ref.Registry + "/" + ref.Repository + "@" + img.Ref.Digest.String()
	if c.trustPolicy == "" && c.policy == "" {
		if !c.insecure {
			return admission{}, &exitError{code: exitRefused, msg: fmt.Sprintf(`refusing to run %s: nothing says it can be trusted.
  Check its signatures:   --trust-policy trust.yaml --env ENV   (docs/trust-policy.md)
  and decide with rules:  --policy policy.yaml                  (docs/policy.md; action run)
  or set trust_policy, policy and run.env in --config. To run it unchecked
  (never in production): --insecure-skip-verify`, name)}
		}
		fmt.Fprintf(w, "bulwark: warning: --insecure-skip-verify: running %s without checking its signatures or any policy\n", name)
		return admission{env: c.env, decision: inventory.Decision{Verification: inventory.VerifySkipped}}, nil
	}
	if c.insecure {
		return admission{}, fmt.Errorf("--insecure-skip-verify contradicts --trust-policy/--policy (or the config's trust_policy/policy): drop one")
	}
	var (
		tp         *trust.Policy
		p          *policy.Policy
		policyFile []byte
		err        error
	)
	if c.trustPolicy != "" {
		if tp, err = trust.LoadPolicy(c.trustPolicy); err != nil {
			return admission{}, err
		}
	}
	if c.policy != "" {
		// Read once: the bytes hashed for the cache are the bytes decided
		// with.
		if policyFile, err = readPolicyFile(c.policy); err != nil {
			return admission{}, err
		}
	}
	now := time.Now()
	cache := newAdmissionCache(c.cacheDir, admissionKey(ref, img, c.env, tp, policyFile, rt))
	if adm, summary, ok := cache.get(now); ok {
		for _, warn := range adm.decision.Warnings {
			fmt.Fprintf(w, "bulwark: warning: %s\n", warn)
		}
		fmt.Fprintf(w, "%s (cached, decided %s ago)\n", summary, now.Sub(adm.decided).Round(time.Second))
		return adm, nil
	}
	if policyFile != nil {
		if p, err = policy.Parse(policyFile, c.policy); err != nil {
			return admission{}, err
		}
	}
	d := img.Ref.Digest
	repo := oci.ImageRef{Registry: ref.Registry, Repository: ref.Repository}
	env := c.env

	// Signatures, checked against the trust policy for the environment.
	var (
		tfacts policy.Trust
		td     *trust.Decision
		tdErr  error
	)
	if tp != nil {
		facts, err := trust.Facts(ctx, trustFetcher{client}, repo, d, trust.WithKeys(tp.PublicKeys()...))
		if err != nil {
			return admission{}, fmt.Errorf("%s: signatures: %w", name, err)
		}
		dec, err := tp.ForRegistry(ref.Registry).Evaluate(ref.Repository, d, env, facts, now)
		if err != nil {
			// An environment the trust policy does not know, or a
			// repository none covers: with a policy, rule "signed"
			// fails and says why; alone, it is a refusal.
			tdErr = err
			tfacts = policy.Trust{PolicyVersion: tp.Version(), Environment: env, Reason: err.Error()}
		} else {
			td = &dec
			tfacts = policy.TrustFacts(dec, tp.Version())
			if env == "" {
				env = dec.Environment
			}
		}
	} else {
		tfacts = policy.Trust{Reason: "bulwark run was given no trust policy (--trust-policy or the config's trust_policy)"}
	}

	if p == nil {
		if tdErr != nil {
			return admission{}, &exitError{code: exitRefused, msg: fmt.Sprintf("refusing to run %s: the trust policy cannot decide: %v", name, tdErr)}
		}
		if !td.Allowed {
			fmt.Fprintln(w, "bulwark: the image's signatures do not satisfy the trust policy:")
			printDecision(w, VerifyResult{Reference: ref.String(), Digest: d, PolicyVersion: tp.Version(), Decision: *td})
			return admission{}, &exitError{code: exitRefused, msg: fmt.Sprintf("refusing to run %s: environment %s requires %s: %s", name, td.Environment, td.Requirement, td.Reason)}
		}
		summary := fmt.Sprintf("bulwark: verified %s for environment %s: %s satisfied by %s (trust policy %s)",
			name, td.Environment, td.Requirement, strings.Join(td.Satisfied, ", "), short(tp.Version()))
		fmt.Fprintln(w, summary)
		adm := admission{env: td.Environment, decided: now, decision: inventory.Decision{Verification: inventory.VerifiedByTrust,
			TrustPolicyVersion: tp.Version(), Requirement: td.Requirement, Satisfied: td.Satisfied}}
		cache.put(adm, summary, w)
		return adm, nil
	}

	if env == "" {
		return admission{}, fmt.Errorf("--policy needs the environment the run is decided for: give --env ENV (or run.env in --config)")
	}
	in := policy.Input{
		Action:      policy.ActionRun,
		Environment: env,
		Principal:   localPrincipal(),
		Now:         now,
		Image: policy.Image{
			Repository: ref.Repository,
			Digest:     d.String(),
			Tag:        ref.Tag,
			ByDigest:   ref.Digest != "",
			MediaType:  img.Manifest.MediaType,
		},
		Trust:   tfacts,
		Runtime: rt,
	}
	if ref.Tag != "" {
		in.Image.Tags = []string{ref.Tag}
	}
	// Fetch parsed and checked the config already; the policy reads the
	// same facts from it that the registry reads from the blob.
	cb, err := json.Marshal(img.Config)
	if err != nil {
		return admission{}, err
	}
	if in.Image.Config, err = policy.ConfigFacts(cb); err != nil {
		return admission{}, fmt.Errorf("%s: %w", name, err)
	}
	approvals, err := trust.Approvals(ctx, trustFetcher{client}, repo, d)
	if err != nil {
		return admission{}, fmt.Errorf("%s: approvals: %w", name, err)
	}
	for _, r := range trust.ApprovalResults(tp, approvals, now) {
		a := policy.Approval{Environment: r.Environment, Approver: r.Approver, Time: r.ApprovedAt, Verified: r.Verified, Ref: r.Ref}
		if len(r.Authorities) == 0 {
			in.Approvals = append(in.Approvals, a)
			continue
		}
		for _, auth := range r.Authorities {
			a.Authority = auth
			in.Approvals = append(in.Approvals, a)
		}
	}
	dec, err := p.Decide(ctx, in)
	if err != nil {
		// The policy could not decide: never a reason to run.
		return admission{}, fmt.Errorf("%s: policy decision: %w", name, err)
	}
	for _, warn := range dec.Warnings {
		fmt.Fprintf(w, "bulwark: warning: %s\n", warn)
	}
	if !dec.Allowed {
		fmt.Fprintf(w, "bulwark: policy %s denies running %s in environment %s (decision %s):\n", short(dec.PolicyVersion), name, env, dec.ID)
		for _, r := range dec.Failed() {
			if r.Mode != policy.ModeEnforce {
				continue
			}
			fmt.Fprintf(w, "  %s: %s\n", r.ID, r.Message)
			if r.Remediation != "" {
				fmt.Fprintf(w, "      fix: %s\n", r.Remediation)
			}
		}
		if dec.DefaultDeny {
			fmt.Fprintf(w, "  no binding of the policy covers %s for run in %s, which enforces policy: add one\n", ref.Repository, env)
		}
		return admission{}, &exitError{code: exitRefused, msg: fmt.Sprintf("refusing to run %s: %s", name, dec.Reason)}
	}
	summary := inventory.Decision{Verification: inventory.VerifiedByPolicy, ID: dec.ID, Mode: string(dec.Mode),
		PolicyVersion: dec.PolicyVersion, Warnings: dec.Warnings}
	trustNote := "signatures not checked"
	if td != nil {
		summary.TrustPolicyVersion, summary.Requirement, summary.Satisfied = tp.Version(), td.Requirement, td.Satisfied
		trustNote = "signatures: " + td.Requirement
		if td.Allowed {
			trustNote += " satisfied by " + strings.Join(td.Satisfied, ", ")
		} else {
			trustNote += " NOT satisfied"
		}
	}
	mode := string(dec.Mode)
	if mode == "" {
		mode = "no binding"
	}
	line := fmt.Sprintf("bulwark: policy %s allows running %s in environment %s (%s, decision %s; %s)",
		short(dec.PolicyVersion), name, env, mode, dec.ID, trustNote)
	fmt.Fprintln(w, line)
	adm := admission{env: env, decided: now, decision: summary}
	cache.put(adm, line, w)
	return adm, nil
}

// localPrincipal is who runs bulwark run: the local user.
func localPrincipal() policy.Principal {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return policy.Principal{Name: u.Username, Kind: "user"}
	}
	return policy.Principal{Name: strconv.Itoa(os.Getuid()), Kind: "user"}
}

// short abbreviates a policy version ("sha256:…") for one-line messages.
func short(v string) string {
	if i := strings.IndexByte(v, ':'); i >= 0 && len(v) > i+13 {
		return v[:i+13]
	}
	return v
}

// admissionTTL is how long bulwark run reuses an admission: the same
// digest, resolved from the same reference, for the same environment,
// principal and run request, under the same trust policy (its version
// covers every root, key and CRL file) and the same policy file, checked
// by the same bulwark binary. The registry keeps signature facts as long
// (trust.Cache's default MaxAge is five times longer); what a cached
// admission can miss is a signature or approval removed, or an exception
// expiring, within the last minute. Only admissions are cached, never
// refusals.
const admissionTTL = time.Minute

// readPolicyFile reads a policy file as policy.Load does.
func readPolicyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("policy %s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, policy.MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	if len(b) > policy.MaxPolicySize {
		return nil, fmt.Errorf("policy %s: larger than %d bytes", path, policy.MaxPolicySize)
	}
	return b, nil
}

// admissionKey is everything an admission depends on, as one string.
func admissionKey(ref oci.ImageRef, img *runner.Image, env string, tp *trust.Policy, policyFile []byte, rt policy.Runtime) string {
	k := struct {
		Binary     string           `json:"binary"`
		Registry   string           `json:"registry"`
		Repository string           `json:"repository"`
		Digest     string           `json:"digest"`
		Config     string           `json:"config"`
		Tag        string           `json:"tag"`
		ByDigest   bool             `json:"byDigest"`
		Env        string           `json:"env"`
		Trust      string           `json:"trust"`
		Policy     string           `json:"policy"`
		Principal  policy.Principal `json:"principal"`
		Runtime    policy.Runtime   `json:"runtime"`
	}{
		Binary: binaryIdentity(), Registry: ref.Registry, Repository: ref.Repository, Digest: img.Ref.Digest.String(),
		Config: img.Manifest.Digest.String(), Tag: ref.Tag, ByDigest: ref.Digest != "", Env: env,
		Principal: localPrincipal(), Runtime: rt,
	}
	if tp != nil {
		k.Trust = tp.Version()
	}
	if policyFile != nil {
		sum := sha256.Sum256(policyFile)
		k.Policy = hex.EncodeToString(sum[:])
	}
	b, _ := json.Marshal(k)
	return string(b)
}

// binaryIdentity names this bulwark build: its version, and the size and
// modification time of its executable (every dev build says "dev").
func binaryIdentity() string {
	id := version
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil {
			id += fmt.Sprintf(" %s %d %d", exe, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return id
}

// admissionCache keeps admissions in DIR/admissions/, one file per key.
type admissionCache struct {
	dir, key, path string
}

type cachedAdmission struct {
	Key         string             `json:"key"`
	Decided     time.Time          `json:"decided"`
	Expires     time.Time          `json:"expires"`
	Environment string             `json:"environment"`
	Decision    inventory.Decision `json:"decision"`
	Summary     string             `json:"summary"`
}

func newAdmissionCache(dir, key string) *admissionCache {
	if dir == "" {
		return &admissionCache{}
	}
	sum := sha256.Sum256([]byte(key))
	return &admissionCache{dir: dir, key: key, path: filepath.Join(dir, hex.EncodeToString(sum[:])+".json")}
}

func (c *admissionCache) get(now time.Time) (admission, string, bool) {
	if c.path == "" {
		return admission{}, "", false
	}
	b, err := os.ReadFile(c.path)
	if err != nil || len(b) > 1<<20 {
		return admission{}, "", false
	}
	var e cachedAdmission
	// The whole key is compared, not just its hash; a clock set back
	// makes an entry stale rather than young.
	if json.Unmarshal(b, &e) != nil || e.Key != c.key || !now.Before(e.Expires) || now.Before(e.Decided) ||
		e.Expires.Sub(e.Decided) > admissionTTL {
		return admission{}, "", false
	}
	return admission{env: e.Environment, decision: e.Decision, decided: e.Decided}, e.Summary, true
}

// put remembers an admission; failing to is a warning, not a failure.
func (c *admissionCache) put(adm admission, summary string, w io.Writer) {
	if c.path == "" {
		return
	}
	b, err := json.Marshal(cachedAdmission{Key: c.key, Decided: adm.decided, Expires: adm.decided.Add(admissionTTL),
		Environment: adm.env, Decision: adm.decision, Summary: summary})
	if err == nil {
		if err = os.MkdirAll(c.dir, 0o700); err == nil {
			err = writeReportFile(c.path, b)
		}
	}
	if err != nil {
		fmt.Fprintf(w, "bulwark: warning: remembering the admission: %v\n", err)
		return
	}
	// Forget what has expired, so the directory stays small.
	if ents, err := os.ReadDir(c.dir); err == nil {
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 2*admissionTTL {
				os.Remove(filepath.Join(c.dir, e.Name()))
			}
		}
	}
}
