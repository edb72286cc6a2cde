package server

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/policy"
	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/store"
	"github.com/bulwark-dev/bulwark/internal/trust"
)

// policyGate is the policy engine as the registry's Gate: it gathers the
// facts about a manifest (its configuration, its signatures judged by the
// trust policy, its promotion approvals), asks policy.Decide, records the
// decision in the audit log and turns it into a verdict.
//
// Which environments decide:
//   - push: every environment the image's repository belongs to, that is
//     those the trust policy's environments cover and those a push binding
//     names for the repository. The push is quarantined if any of them
//     denies. A repository in no environment is not decided.
//   - pull: the environment of the caller, for callers bound to one (a
//     robot created with --env). Other callers are not decided: their
//     permissions already say what they may pull, and quarantine still
//     applies to them.
//
// Manifests with a subject (signatures, approvals, SBOMs) are evidence,
// not images: they are not decided, and their arrival drops what the gate
// remembers of their subject, whose quarantine the registry then
// re-decides.
type policyGate struct {
	policies *policies
	fetcher  *localFetcher
	cache    *trust.Cache
	facts    *imageFactsCache
	pulls    *pullCache
	record   func(audit.Event)
	log      *slog.Logger
	now      func() time.Time
	// scans supplies the scan facts (scanner.go); nil without a scanner:
	// no scan result, so rules that need one fail closed.
	scans *scanner
}

func newPolicyGate(p *policies, meta store.Meta, blobs store.Blobs, record func(audit.Event), log *slog.Logger) *policyGate {
	return &policyGate{
		policies: p,
		fetcher:  &localFetcher{meta: meta, blobs: blobs},
		cache:    trust.NewCache(trust.CacheOptions{}),
		facts:    newImageFactsCache(4096),
		pulls:    newPullCache(16384),
		record:   record,
		log:      log,
		now:      time.Now,
	}
}

// Push implements registry.Gate.
func (g *policyGate) Push(ctx context.Context, req *registry.GateRequest) (registry.Verdict, error) {
	if req.Subject != "" {
		g.cache.Invalidate(req.Repository, req.Subject)
		g.facts.invalidate(req.Repository, req.Subject)
		g.pulls.invalidate(req.Repository, req.Subject)
		return registry.Verdict{Allow: true}, nil
	}
	snap := g.policies.current()
	envs := pushEnvironments(snap, req.Repository)
	if len(envs) == 0 {
		return registry.Verdict{Allow: true}, nil
	}
	v := registry.Verdict{Allow: true}
	for _, env := range envs {
		d, err := g.decide(ctx, snap, req, policy.ActionPush, env)
		if err != nil {
			return registry.Verdict{}, err
		}
		merge(&v, d, true)
	}
	return v, nil
}

// Pull implements registry.Gate. A host pulls the same digest again and
// again (every node, every restart): the decision for the same image, tag,
// environment, principal and policies is reused for up to pullReuse, and
// never past an exception it relied on. The registry records each pull
// with the id of the decision that allowed it; the decision itself is
// logged once, when made.
func (g *policyGate) Pull(ctx context.Context, req *registry.GateRequest) (registry.Verdict, error) {
	env := req.Caller.Env()
	if env == "" || req.Subject != "" {
		return registry.Verdict{Allow: true}, nil
	}
	snap := g.policies.current()
	key := pullKey{repo: req.Repository, digest: req.Digest, env: env, who: req.Caller.Name(), kind: req.Caller.Kind(),
		trust: version(snap.trust), rules: snap.rules.Version()}
	if len(req.Tags) == 1 {
		key.tag = req.Tags[0]
	}
	now := g.now()
	d, ok := g.pulls.get(key, now)
	if !ok {
		var err error
		if d, err = g.decide(ctx, snap, req, policy.ActionPull, env); err != nil {
			return registry.Verdict{}, err
		}
		g.pulls.put(key, d, reuseUntil(d, now))
	}
	var v registry.Verdict
	v.Allow = true
	merge(&v, d, false)
	return v, nil
}

// pullReuse bounds how long a pull decision is reused. Rules that read the
// clock (max-age, exception expiry) are therefore at most this late.
const pullReuse = 30 * time.Second

// reuseUntil is when a decision made at now stops being reusable: after
// pullReuse, or when an exception it applied expires.
func reuseUntil(d policy.Decision, now time.Time) time.Time {
	until := now.Add(pullReuse)
	for _, e := range d.Exceptions {
		if !e.Expires.IsZero() && e.Expires.Before(until) {
			until = e.Expires
		}
	}
	return until
}

// pushEnvironments lists, in a stable order, the environments a push to
// repo is decided for.
func pushEnvironments(snap *policySnapshot, repo string) []string {
	var envs []string
	if snap.trust != nil {
		envs = append(envs, snap.trust.EnvironmentsFor(repo)...)
	}
	for _, b := range snap.rules.Bindings {
		if !slices.Contains(b.Actions, policy.ActionPush) || !matchAnyGlob(b.Repositories, repo) {
			continue
		}
		for _, e := range b.Environments {
			if e != "*" && !slices.Contains(envs, e) {
				envs = append(envs, e)
			}
		}
	}
	return envs
}

func matchAnyGlob(globs []string, repo string) bool {
	for _, g := range globs {
		if auth.MatchGlob(g, repo) {
			return true
		}
	}
	return false
}

// merge folds decision d into verdict v: a denial quarantines at push and
// refuses at pull; warnings and failed rules accumulate.
func merge(v *registry.Verdict, d policy.Decision, push bool) {
	if v.DecisionID == "" || !d.Allowed {
		v.DecisionID = d.ID
	}
	v.Warnings = append(v.Warnings, d.Warnings...)
	if d.Allowed {
		return
	}
	v.Allow = false
	v.Quarantine = push
	if v.Reason == "" {
		v.Reason = fmt.Sprintf("denied by policy for environment %s: %s", d.Environment, d.Reason)
	}
	for _, r := range d.Failed() {
		if r.Mode != policy.ModeEnforce {
			continue
		}
		v.Violations = append(v.Violations, registry.Violation{Rule: r.ID, Message: r.Message, Remediation: r.Remediation})
	}
}

// decide gathers the facts for one environment, decides, and records the
// decision. An error is a decision that could not be made; the registry
// fails closed on it.
func (g *policyGate) decide(ctx context.Context, snap *policySnapshot, req *registry.GateRequest, action policy.Action, env string) (policy.Decision, error) {
	now := g.now()
	facts, err := g.imageFacts(ctx, snap, req)
	if err != nil {
		return policy.Decision{}, err
	}
	in := policy.Input{
		Action:      action,
		Environment: env,
		Principal:   policy.Principal{Name: req.Caller.Name(), Kind: req.Caller.Kind(), Environment: req.Caller.Env()},
		Now:         now,
		Image: policy.Image{
			Repository:   req.Repository,
			Digest:       req.Digest.String(),
			Tags:         req.Tags,
			MediaType:    req.MediaType,
			ArtifactType: req.ArtifactType,
			Config:       facts.config,
		},
		Approvals: facts.approvals,
	}
	if action == policy.ActionPull && len(req.Tags) == 1 {
		in.Image.Tag = req.Tags[0]
	}
	in.Trust = g.trustFacts(ctx, snap, req, env)
	in.Scan = g.scanFacts(ctx, req)
	d, err := snap.rules.Decide(ctx, in)
	if err != nil {
		return policy.Decision{}, fmt.Errorf("policy decision: %w", err)
	}
	g.logDecision(req, d)
	return d, nil
}

// trustFacts asks the trust policy about the image in env. A failure to
// decide (no trust policy, an environment it does not know, discovery
// failing) becomes "not evaluated" with the reason: the built-in rule
// "signed" then fails and says why.
func (g *policyGate) trustFacts(ctx context.Context, snap *policySnapshot, req *registry.GateRequest, env string) policy.Trust {
	if snap.trust == nil {
		return policy.Trust{Reason: "the server has no trust policy (serve --trust-policy)"}
	}
	ref := oci.ImageRef{Repository: req.Repository, Digest: req.Digest}
	d, err := g.cache.Decision(ctx, snap.trust, ref, env, func(ctx context.Context, keys []crypto.PublicKey) ([]trust.SignatureFact, error) {
		return trust.Facts(ctx, g.fetcher, ref, req.Digest, trust.WithKeys(keys...))
	})
	if err != nil {
		return policy.Trust{PolicyVersion: snap.trust.Version(), Environment: env, Reason: err.Error()}
	}
	return policy.TrustFacts(d, snap.trust.Version())
}

// imageFacts are the facts about a digest that do not depend on the
// environment: its configuration and its verified approvals.
type imageFacts struct {
	config    policy.ImageConfig
	approvals []policy.Approval
}

func (g *policyGate) imageFacts(ctx context.Context, snap *policySnapshot, req *registry.GateRequest) (*imageFacts, error) {
	key := factsKey{repo: req.Repository, digest: req.Digest, trust: version(snap.trust)}
	if f, ok := g.facts.get(key); ok {
		return f, nil
	}
	f := &imageFacts{}
	m, err := req.Parsed()
	if err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", req.Digest, err)
	}
	if m.Config != nil && m.Config.Digest != "" && !m.IsIndex() {
		blob, err := g.fetcher.readBlob(ctx, m.Config.Digest, policy.MaxConfigSize)
		if err != nil {
			return nil, fmt.Errorf("read image configuration %s: %w", m.Config.Digest, err)
		}
		// A configuration that is not an image's (an artifact's config, an
		// empty descriptor) gives no facts rather than an error: rules that
		// need them fail closed.
		if cfg, err := policy.ConfigFacts(blob); err == nil {
			f.config = cfg
		}
	}
	ref := oci.ImageRef{Repository: req.Repository}
	approvals, err := trust.Approvals(ctx, g.fetcher, ref, req.Digest)
	if err != nil {
		return nil, fmt.Errorf("find approvals of %s@%s: %w", req.Repository, req.Digest, err)
	}
	for _, r := range trust.ApprovalResults(snap.trust, approvals, g.now()) {
		a := policy.Approval{Environment: r.Environment, Approver: r.Approver, Time: r.ApprovedAt, Verified: r.Verified, Ref: r.Ref}
		if len(r.Authorities) == 0 {
			f.approvals = append(f.approvals, a)
			continue
		}
		for _, name := range r.Authorities {
			a.Authority = name
			f.approvals = append(f.approvals, a)
		}
	}
	g.facts.put(key, f)
	return f, nil
}

// logDecision appends the decision to the hash-chained audit log: the
// decision log that `bulwark decisions` reads.
func (g *policyGate) logDecision(req *registry.GateRequest, d policy.Decision) {
	if g.record == nil {
		return
	}
	body, err := json.Marshal(d)
	if err != nil {
		g.log.Error("encode policy decision", "id", d.ID, "err", err)
		return
	}
	outcome := audit.OutcomeOK
	if !d.Allowed {
		outcome = audit.OutcomeDenied
	}
	ref := req.Digest.String()
	if len(req.Tags) == 1 {
		ref = req.Tags[0]
	}
	g.record(audit.Event{Who: req.Caller.Name(), Kind: req.Caller.Kind(), Action: audit.ActionDecision,
		Repository: req.Repository, Reference: ref, Digest: req.Digest.String(), Outcome: outcome,
		Detail: fmt.Sprintf("%s in %s: %s", d.Action, d.Environment, d.Reason), Decision: body})
}

// imageFactsCache remembers imageFacts per (repository, digest, trust
// policy version). It is small and simple: at its bound it forgets
// everything, which costs one recomputation per image.
type imageFactsCache struct {
	max int
	mu  sync.Mutex
	m   map[factsKey]*imageFacts
}

type factsKey struct {
	repo   string
	digest digest.Digest
	trust  string
}

func newImageFactsCache(max int) *imageFactsCache {
	return &imageFactsCache{max: max, m: map[factsKey]*imageFacts{}}
}

func (c *imageFactsCache) get(k factsKey) (*imageFacts, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.m[k]
	return f, ok
}

func (c *imageFactsCache) put(k factsKey, f *imageFacts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = f
}

func (c *imageFactsCache) invalidate(repo string, d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.repo == repo && k.digest == d {
			delete(c.m, k)
		}
	}
}

// localFetcher reads signatures, approvals and configurations straight
// from the store: the gate runs inside the registry and must not call
// itself over HTTP (nor be subject to its own quarantine: evidence is
// never quarantined, and the gate is the one deciding about images).
type localFetcher struct {
	meta  store.Meta
	blobs store.Blobs
}

func (f *localFetcher) Referrers(ctx context.Context, repo oci.ImageRef, subject digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	recs, err := f.meta.Referrers(ctx, repo.Repository, subject, artifactType)
	if err != nil {
		return nil, err
	}
	out := make([]v1.Descriptor, 0, len(recs))
	for _, r := range recs {
		out = append(out, v1.Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: r.Size(),
			ArtifactType: r.ArtifactType, Annotations: r.Annotations})
	}
	return out, nil
}

func (f *localFetcher) Manifest(ctx context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error) {
	d := ref.Digest
	if d == "" {
		var err error
		if d, err = f.meta.Tag(ctx, ref.Repository, ref.Tag); err != nil {
			return v1.Descriptor{}, nil, notFound(err)
		}
	}
	m, err := f.meta.Manifest(ctx, ref.Repository, d)
	if err != nil {
		return v1.Descriptor{}, nil, notFound(err)
	}
	return v1.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size(), ArtifactType: m.ArtifactType}, m.Content, nil
}

func (f *localFetcher) Blob(ctx context.Context, repo oci.ImageRef, d digest.Digest, maxSize int64) (io.ReadCloser, int64, error) {
	size, err := f.meta.RepoBlob(ctx, repo.Repository, d)
	if err != nil {
		return nil, 0, notFound(err)
	}
	if maxSize > 0 && size > maxSize {
		return nil, 0, fmt.Errorf("blob %s of %d bytes exceeds %d", d, size, maxSize)
	}
	rc, _, err := f.blobs.Open(ctx, d)
	if err != nil {
		return nil, 0, notFound(err)
	}
	return rc, size, nil
}

// readBlob reads a whole blob of at most max bytes. The store verified
// the content when it was committed.
func (f *localFetcher) readBlob(ctx context.Context, d digest.Digest, max int64) ([]byte, error) {
	rc, size, err := f.blobs.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > max {
		return nil, fmt.Errorf("%d bytes exceeds %d", size, max)
	}
	return io.ReadAll(io.LimitReader(rc, max))
}

func notFound(err error) error {
	if errors.Is(err, store.ErrManifestUnknown) || errors.Is(err, store.ErrBlobUnknown) || errors.Is(err, store.ErrTagUnknown) {
		return fmt.Errorf("%w: %w", trust.ErrNotFound, err)
	}
	return err
}

// pullCache remembers pull decisions (see policyGate.Pull). Like
// imageFactsCache it forgets everything at its bound.
type pullCache struct {
	max int
	mu  sync.Mutex
	m   map[pullKey]cachedPull
}

type pullKey struct {
	repo                string
	digest              digest.Digest
	tag, env, who, kind string
	trust, rules        string // policy versions
}

type cachedPull struct {
	d     policy.Decision
	until time.Time
}

func newPullCache(max int) *pullCache { return &pullCache{max: max, m: map[pullKey]cachedPull{}} }

func (c *pullCache) get(k pullKey, now time.Time) (policy.Decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !now.Before(e.until) {
		return policy.Decision{}, false
	}
	return e.d, true
}

func (c *pullCache) put(k pullKey, d policy.Decision, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = cachedPull{d: d, until: until}
}

func (c *pullCache) invalidate(repo string, d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.repo == repo && k.digest == d {
			delete(c.m, k)
		}
	}
}
