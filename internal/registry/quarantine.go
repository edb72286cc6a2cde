package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// isPusher reports whether c is the authenticated account whose push q
// records. Anonymous pushes have no owner: nobody but administrators sees
// them (in a registry without authentication, nobody until released).
func isPusher(c Caller, q *store.QuarantineRecord) bool {
	return c != nil && q.PusherKind != "anonymous" && q.Pusher != "" &&
		c.Kind() == q.PusherKind && c.Name() == q.Pusher
}

// seesQuarantined reports whether the request's caller may fetch content
// quarantined by q: its pusher or an administrator.
func seesQuarantined(r *http.Request, q *store.QuarantineRecord) bool {
	c := callerFrom(r.Context())
	return isPusher(c, q) || (c != nil && c.Admin(r.Context()))
}

// checkQuarantine refuses a manifest quarantined (q) for this caller, and
// tells the pusher or administrator who may fetch it that it is.
func (reg *Registry) checkQuarantine(w http.ResponseWriter, r *http.Request, repo, refStr string, d digest.Digest, q *store.QuarantineRecord) error {
	if q == nil {
		return nil
	}
	if !seesQuarantined(r, q) {
		reg.emit(r, nil, Event{Action: ActionPolicyDeny, Repository: repo, Reference: refStr, Digest: d, Outcome: "denied",
			DecisionID: q.DecisionID, Detail: "quarantined: " + ruleIDs(q.Violations)})
		return quarantinedError(fmt.Sprintf("manifest %s@%s", repo, d), q)
	}
	addWarnings(w, "manifest is quarantined, only its pusher and administrators can pull it: "+
		violationSummary(q.Reason, q.Violations, q.DecisionID))
	return nil
}

// gatePull resolves and decides a manifest GET or HEAD: quarantine first,
// then the pull policy. The quarantine comes with the manifest in one
// lookup, so enforcement adds no query to a pull. It returns the id of the
// decision that allowed the pull ("" when none was made), for the pull's
// audit event.
func (reg *Registry) gatePull(w http.ResponseWriter, r *http.Request, repo, refStr string, ref oci.Reference) (*store.ManifestRecord, string, error) {
	d := ref.Digest
	if !ref.IsDigest() {
		var err error
		if d, err = reg.meta.Tag(r.Context(), repo, ref.Tag); err != nil {
			return nil, "", err
		}
	}
	m, q, err := reg.meta.ManifestWithQuarantine(r.Context(), repo, d)
	if err != nil {
		return nil, "", err
	}
	if err := reg.checkQuarantine(w, r, repo, refStr, m.Digest, q); err != nil {
		return nil, "", err
	}
	req := &GateRequest{Trigger: TriggerPull, Repository: repo, Digest: m.Digest, MediaType: m.MediaType,
		ArtifactType: m.ArtifactType, Subject: m.Subject, Manifest: m.Content, Caller: reg.gateCaller(r)}
	if !ref.IsDigest() {
		req.Tags = []string{ref.Tag}
	}
	v, err := reg.ask(r, reg.opts.Gate.Pull, req)
	if err != nil {
		return nil, "", err
	}
	if !v.Allow {
		reg.emit(r, nil, Event{Action: ActionPolicyDeny, Repository: repo, Reference: refStr, Digest: m.Digest,
			Outcome: "denied", DecisionID: v.DecisionID, Detail: "pull: " + v.summary()})
		return nil, "", policyDenied("pulling", repo, m.Digest, v)
	}
	if len(v.Warnings) > 0 {
		addWarnings(w, v.Warnings...)
		if r.Method != http.MethodHead {
			reg.emit(r, nil, Event{Action: ActionPolicyWarn, Repository: repo, Reference: refStr, Digest: m.Digest,
				DecisionID: v.DecisionID, Detail: "pull: " + joinWarnings(v.Warnings)})
		}
	}
	return m, v.DecisionID, nil
}

func joinWarnings(ws []string) string {
	b, _ := json.Marshal(ws)
	return string(b)
}

// blobAccess is getBlob's check when a gate is set: the blob must be
// referenced by a manifest of the repository the caller may fetch, or the
// caller must be able to push there. It returns the blob's size.
func (reg *Registry) blobAccess(r *http.Request, repo string, d digest.Digest) (int64, error) {
	a, err := reg.meta.BlobAccess(r.Context(), repo, d)
	if err != nil {
		return 0, err
	}
	if a.Public {
		if c := callerFrom(r.Context()); c != nil && c.Env() != "" {
			if err := reg.blobPullAllowed(r, repo, d); err != nil {
				return 0, err
			}
		}
		return a.Size, nil
	}
	ok, q := reg.blobVisible(r, repo, a)
	if ok {
		return a.Size, nil
	}
	if q == nil || reg.canPush(r, repo) {
		// Unreferenced content, or a pusher: "unknown" sends a push client
		// to upload its own copy, which proves it has the bytes.
		return 0, newError(http.StatusNotFound, CodeBlobUnknown, "blob unknown to registry")
	}
	reg.emit(r, nil, Event{Action: ActionPolicyDeny, Repository: repo, Digest: d, Outcome: "denied",
		DecisionID: q.DecisionID, Detail: "blob of quarantined manifest " + q.Digest.String()})
	return 0, quarantinedError(fmt.Sprintf("blob %s@%s belongs only to manifests that are quarantined; manifest %s", repo, d, q.Digest), q)
}

// maxBlobManifests bounds the manifests a blob check asks the pull policy
// about: a layer shared by more images than this is judged by the first
// ones (in digest order), which is still never more than the caller could
// get through those manifests.
const maxBlobManifests = 8

// blobPullAllowed applies the pull policy to a blob for a caller bound to
// an environment: the blob is served only if the policy lets the caller
// pull some manifest of the repository that references it. Otherwise a
// robot the policy refuses an image could still fetch its layers by
// digest. The decisions are the gate's, cached like manifest pulls.
func (reg *Registry) blobPullAllowed(r *http.Request, repo string, d digest.Digest) error {
	ms, err := reg.meta.BlobManifests(r.Context(), repo, d, maxBlobManifests)
	if err != nil {
		return err
	}
	var denied Verdict
	var deniedDigest digest.Digest
	for _, md := range ms {
		m, err := reg.meta.Manifest(r.Context(), repo, md)
		if errors.Is(err, store.ErrManifestUnknown) {
			continue // deleted since the lookup
		}
		if err != nil {
			return err
		}
		req := &GateRequest{Trigger: TriggerPull, Repository: repo, Digest: m.Digest, MediaType: m.MediaType,
			ArtifactType: m.ArtifactType, Subject: m.Subject, Manifest: m.Content, Caller: reg.gateCaller(r)}
		v, err := reg.ask(r, reg.opts.Gate.Pull, req)
		if err != nil {
			return err
		}
		if v.Allow {
			return nil
		}
		if deniedDigest == "" {
			denied, deniedDigest = v, m.Digest
		}
	}
	if deniedDigest == "" {
		// Referenced by no manifest any more: as for unreferenced content.
		return newError(http.StatusNotFound, CodeBlobUnknown, "blob unknown to registry")
	}
	reg.emit(r, nil, Event{Action: ActionPolicyDeny, Repository: repo, Digest: d, Outcome: "denied",
		DecisionID: denied.DecisionID, Detail: "blob of manifest " + deniedDigest.String() + ": " + denied.summary()})
	return policyDenied("pulling blob "+d.String()+" of", repo, deniedDigest, denied)
}

// blobVisible reports whether the request's caller may read a blob that no
// public manifest references: as the pusher of a quarantined manifest that
// does, as an administrator, or (unreferenced content) as a pusher to repo.
// When it may not, q is a quarantine that hides the blob (nil: no manifest
// references it).
func (reg *Registry) blobVisible(r *http.Request, repo string, a store.BlobAccess) (ok bool, q *store.QuarantineRecord) {
	c := callerFrom(r.Context())
	for _, rec := range a.Quarantined {
		if isPusher(c, rec) {
			return true, nil
		}
	}
	if c != nil && c.Admin(r.Context()) {
		return true, nil
	}
	if len(a.Quarantined) > 0 {
		return false, a.Quarantined[0]
	}
	return reg.canPush(r, repo), nil
}

func (reg *Registry) canPush(r *http.Request, repo string) bool {
	if reg.opts.Authorizer == nil {
		return true
	}
	c := callerFrom(r.Context())
	return c != nil && c.Can("repository", repo, "push")
}

// mountVisible reports whether a mount may take d from repo: a mount is a
// pull from its source, so the blob must be visible to the caller there.
func (reg *Registry) mountVisible(r *http.Request, repo string, d digest.Digest) (bool, error) {
	a, err := reg.meta.BlobAccess(r.Context(), repo, d)
	if errors.Is(err, store.ErrBlobUnknown) {
		return false, nil
	}
	if err != nil || a.Public {
		return err == nil, err
	}
	ok, _ := reg.blobVisible(r, repo, a)
	return ok, nil
}

// visibleReferrers drops referrers quarantined for this caller.
func (reg *Registry) visibleReferrers(r *http.Request, repo string, recs []*store.ManifestRecord) ([]*store.ManifestRecord, error) {
	out := recs[:0]
	for _, m := range recs {
		q, err := reg.meta.Quarantined(r.Context(), repo, m.Digest)
		if err != nil {
			return nil, err
		}
		if q == nil || seesQuarantined(r, q) {
			out = append(out, m)
		}
	}
	return out, nil
}

// gatePush decides a manifest put. It returns the quarantine to store the
// manifest under (nil: store it public) and the verdict, or the error that
// refuses the push.
func (reg *Registry) gatePush(r *http.Request, repo, refStr string, rec *store.ManifestRecord, m *oci.Manifest, tags []string) (*store.QuarantineRecord, Verdict, error) {
	// The policy reads what the manifest names (its config, its children):
	// refuse incomplete content the way PutManifest would, before asking.
	if err := reg.checkReferences(r.Context(), repo, rec); err != nil {
		return nil, Verdict{}, err
	}
	c := reg.gateCaller(r)
	req := &GateRequest{Trigger: TriggerPush, Repository: repo, Digest: rec.Digest, MediaType: rec.MediaType,
		ArtifactType: rec.ArtifactType, Subject: rec.Subject, Manifest: rec.Content, Tags: tags, Caller: c, parsed: m}
	v, err := reg.ask(r, reg.opts.Gate.Push, req)
	if err != nil {
		return nil, v, err
	}
	switch {
	case v.Quarantine:
		return &store.QuarantineRecord{Repository: repo, Digest: rec.Digest, Pusher: c.Name(), PusherKind: c.Kind(),
			Reason: v.Reason, Violations: v.Violations, DecisionID: v.DecisionID}, v, nil
	case !v.Allow:
		reg.emit(r, nil, Event{Action: ActionPolicyDeny, Repository: repo, Reference: refStr, Digest: rec.Digest,
			Outcome: "denied", DecisionID: v.DecisionID, Detail: "push: " + v.summary()})
		return nil, v, policyDenied("pushing", repo, rec.Digest, v)
	}
	return nil, v, nil
}

// checkReferences applies PutManifest's completeness rules ahead of it.
func (reg *Registry) checkReferences(ctx context.Context, repo string, rec *store.ManifestRecord) error {
	for _, b := range rec.Blobs {
		if reg.opts.AllowSparse && b != rec.Config {
			continue
		}
		if _, err := reg.meta.RepoBlob(ctx, repo, b); errors.Is(err, store.ErrBlobUnknown) {
			return &store.BlobUnknownError{Digest: b}
		} else if err != nil {
			return err
		}
	}
	if reg.opts.AllowSparse {
		return nil
	}
	for _, c := range rec.Children {
		if _, err := reg.meta.Manifest(ctx, repo, c); errors.Is(err, store.ErrManifestUnknown) {
			return &store.ManifestUnknownError{Digest: c}
		} else if err != nil {
			return err
		}
	}
	return nil
}

// afterPush completes a gated push once the manifest is stored: it answers
// with the verdict's warnings, audits it, releases an earlier quarantine of
// the same manifest that this decision no longer upholds, and re-decides a
// quarantined subject that this manifest is evidence about.
func (reg *Registry) afterPush(w http.ResponseWriter, r *http.Request, repo, refStr string, rec *store.ManifestRecord, q *store.QuarantineRecord, v Verdict) {
	ctx := context.WithoutCancel(r.Context()) // the manifest is stored: finish even if the client left
	addWarnings(w, v.Warnings...)
	if len(v.Warnings) > 0 {
		reg.emit(r, nil, Event{Action: ActionPolicyWarn, Repository: repo, Reference: refStr, Digest: rec.Digest,
			DecisionID: v.DecisionID, Detail: "push: " + joinWarnings(v.Warnings)})
	}
	if q != nil {
		addWarnings(w, fmt.Sprintf("manifest %s is quarantined by policy, only you and administrators can pull it until it is released: %s",
			rec.Digest, v.summary()))
		reg.emit(r, nil, Event{Action: ActionQuarantine, Repository: repo, Reference: refStr, Digest: rec.Digest,
			Outcome: "denied", DecisionID: v.DecisionID, Detail: v.summary()})
	} else if old, err := reg.meta.Quarantined(ctx, repo, rec.Digest); err != nil {
		reg.log.ErrorContext(ctx, "read quarantine after push", "repository", repo, "digest", rec.Digest.String(), "error", err)
	} else if old != nil {
		if err := reg.meta.Release(ctx, repo, rec.Digest); err != nil && !errors.Is(err, store.ErrNotQuarantined) {
			reg.log.ErrorContext(ctx, "release after passing push", "repository", repo, "digest", rec.Digest.String(), "error", err)
		} else {
			reg.emit(r, nil, Event{Action: ActionRelease, Repository: repo, Reference: refStr, Digest: rec.Digest,
				DecisionID: v.DecisionID, Detail: "pushed again and the push policy passes"})
		}
	}
	c := reg.gateCaller(r)
	by := Actor{Who: c.Name(), Kind: c.Kind(), Remote: r.RemoteAddr}
	if q == nil && len(rec.Children) > 0 {
		res, err := reg.redecideChildren(ctx, by, repo, rec.Digest, rec.Children, 1)
		if err != nil {
			reg.log.ErrorContext(ctx, "re-deciding the children of a passing index", "repository", repo,
				"index", rec.Digest.String(), "error", err)
			addWarnings(w, "quarantined platform manifests of this index stay quarantined: the policy could not re-decide them")
		}
		for _, cr := range res {
			if cr.Released {
				addWarnings(w, fmt.Sprintf("manifest %s released from quarantine", cr.Digest))
			}
		}
	}
	if rec.Subject == "" {
		return
	}
	sq, err := reg.meta.Quarantined(ctx, repo, rec.Subject)
	if err != nil || sq == nil {
		if err != nil {
			reg.log.ErrorContext(ctx, "read subject quarantine", "repository", repo, "digest", rec.Subject.String(), "error", err)
		}
		return
	}
	res, err := reg.redecide(ctx, by, sq, TriggerEvidence, rec.Digest, 0)
	switch {
	case err != nil:
		// The evidence is stored; an administrator can re-decide later.
		reg.log.ErrorContext(ctx, "re-deciding the subject of new evidence", "repository", repo,
			"subject", rec.Subject.String(), "evidence", rec.Digest.String(), "error", err)
		addWarnings(w, fmt.Sprintf("subject %s stays quarantined: the policy could not re-decide it", rec.Subject))
	case res.Released:
		addWarnings(w, fmt.Sprintf("subject %s released from quarantine", rec.Subject))
	default:
		addWarnings(w, fmt.Sprintf("subject %s stays quarantined: %s", rec.Subject,
			violationSummary(res.Reason, res.Violations, res.DecisionID)))
	}
}

// ReleaseResult is the outcome of re-deciding or releasing a quarantined
// manifest.
type ReleaseResult struct {
	Repository string        `json:"repository"`
	Digest     digest.Digest `json:"digest"`
	Released   bool          `json:"released"`
	Forced     bool          `json:"forced,omitempty"`
	DecisionID string        `json:"decision,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	Violations []Violation   `json:"violations,omitempty"`
	Warnings   []string      `json:"warnings,omitempty"`
	// Children are the results for quarantined manifests an index lists,
	// re-decided because the index was released.
	Children []ReleaseResult `json:"children,omitempty"`
}

// maxRedecideDepth bounds the re-decision of an index's children (an index
// of indexes, at most).
const maxRedecideDepth = 2

// redecide asks the gate's push policy again about quarantined manifest q
// and releases it if the verdict no longer quarantines (or refuses); else
// the record is updated with the new decision. Releasing an index
// re-decides its quarantined children.
func (reg *Registry) redecide(ctx context.Context, by Actor, q *store.QuarantineRecord, trigger Trigger, cause digest.Digest, depth int) (ReleaseResult, error) {
	res := ReleaseResult{Repository: q.Repository, Digest: q.Digest}
	m, err := reg.meta.Manifest(ctx, q.Repository, q.Digest)
	if err != nil {
		return res, err
	}
	tags, err := reg.meta.ManifestTags(ctx, q.Repository, q.Digest)
	if err != nil {
		return res, err
	}
	req := &GateRequest{Trigger: trigger, Repository: q.Repository, Digest: q.Digest, MediaType: m.MediaType,
		ArtifactType: m.ArtifactType, Subject: m.Subject, Manifest: m.Content, Tags: tags,
		Caller: recordedPusher{name: q.Pusher, kind: q.PusherKind}, Cause: cause}
	v, err := reg.opts.Gate.Push(ctx, req)
	if err != nil {
		reg.emitAs(ctx, by, Event{Action: ActionPolicyError, Repository: q.Repository, Digest: q.Digest, Outcome: "failed",
			Detail: fmt.Sprintf("%s: %v", trigger, err)})
		return res, fmt.Errorf("re-deciding %s@%s: %w: %w", q.Repository, q.Digest, ErrPolicyFailed, err)
	}
	res.DecisionID, res.Reason, res.Violations, res.Warnings = v.DecisionID, v.Reason, v.Violations, v.Warnings
	if v.Quarantine || !v.Allow {
		// Still refused: keep it, with the latest reasons.
		next := *q
		next.Reason, next.Violations, next.DecisionID = v.Reason, v.Violations, v.DecisionID
		if err := reg.meta.Quarantine(ctx, &next); err != nil {
			return res, err
		}
		return res, nil
	}
	if err := reg.meta.Release(ctx, q.Repository, q.Digest); err != nil && !errors.Is(err, store.ErrNotQuarantined) {
		return res, err
	}
	res.Released = true
	detail := string(trigger)
	if cause != "" {
		detail += " " + cause.String()
	}
	reg.emitAs(ctx, by, Event{Action: ActionRelease, Repository: q.Repository, Digest: q.Digest, DecisionID: v.DecisionID,
		Detail: "re-decided (" + detail + "): the push policy passes"})
	if depth >= maxRedecideDepth || !oci.IsIndexMediaType(m.MediaType) {
		return res, nil
	}
	parsed, err := req.Parsed()
	if err != nil {
		return res, nil // stored manifests were valid; nothing to follow
	}
	children := make([]digest.Digest, 0, len(parsed.Manifests))
	for _, c := range parsed.Manifests {
		children = append(children, c.Digest)
	}
	res.Children, err = reg.redecideChildren(ctx, by, q.Repository, q.Digest, children, depth+1)
	return res, err
}

// redecideChildren re-decides the quarantined manifests among the children
// of an index that has just passed the push policy: a multi-platform image
// is pushed platforms first, each quarantined until the index (which the
// signatures name) passes.
func (reg *Registry) redecideChildren(ctx context.Context, by Actor, repo string, index digest.Digest, children []digest.Digest, depth int) ([]ReleaseResult, error) {
	var out []ReleaseResult
	for _, child := range children {
		cq, err := reg.meta.Quarantined(ctx, repo, child)
		if err != nil {
			return out, err
		}
		if cq == nil {
			continue
		}
		cr, err := reg.redecide(ctx, by, cq, TriggerIndex, index, depth)
		if err != nil {
			return out, err
		}
		out = append(out, cr)
	}
	return out, nil
}

// ReleaseRequest asks to release a quarantined manifest: by a new decision
// of the push policy, or (Force, with a Reason) unconditionally.
type ReleaseRequest struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Force      bool   `json:"force,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// Errors Release callers branch on.
var (
	// ErrNoGate: re-deciding needs a policy, and none is configured.
	ErrNoGate = errors.New("no policy is configured, so nothing can re-decide; release with force and a reason")
	// ErrPolicyFailed: the gate returned an error.
	ErrPolicyFailed = errors.New("the policy could not decide")
	// ErrReasonRequired: a forced release must say why.
	ErrReasonRequired = errors.New("a forced release needs a reason")
)

// Release re-decides a quarantined manifest, or with Force releases it
// unconditionally (an administrator's override, audited with its reason).
// It returns store.ErrNotQuarantined for a manifest that is not quarantined.
func (reg *Registry) Release(ctx context.Context, by Actor, req ReleaseRequest) (ReleaseResult, error) {
	if err := oci.ValidateRepository(req.Repository); err != nil {
		return ReleaseResult{}, err
	}
	d, err := oci.ParseDigest(req.Digest)
	if err != nil {
		return ReleaseResult{}, err
	}
	if req.Force && req.Reason == "" {
		return ReleaseResult{}, ErrReasonRequired
	}
	if !req.Force && reg.opts.Gate == nil {
		return ReleaseResult{}, ErrNoGate
	}
	q, err := reg.meta.Quarantined(ctx, req.Repository, d)
	if err != nil {
		return ReleaseResult{}, err
	}
	if q == nil {
		return ReleaseResult{}, fmt.Errorf("%w: %s@%s", store.ErrNotQuarantined, req.Repository, d)
	}
	if !req.Force {
		return reg.redecide(ctx, by, q, TriggerRelease, "", 0)
	}
	if err := reg.meta.Release(ctx, req.Repository, d); err != nil {
		return ReleaseResult{}, err
	}
	reg.emitAs(ctx, by, Event{Action: ActionRelease, Repository: req.Repository, Digest: d, DecisionID: q.DecisionID,
		Detail: "forced by an administrator: " + req.Reason})
	return ReleaseResult{Repository: req.Repository, Digest: d, Released: true, Forced: true, Reason: req.Reason}, nil
}

// QuarantineEntry is a quarantined manifest as the admin API lists it.
type QuarantineEntry struct {
	Repository string        `json:"repository"`
	Digest     digest.Digest `json:"digest"`
	Pusher     string        `json:"pusher"`
	PusherKind string        `json:"pusherKind"`
	Created    time.Time     `json:"created"`
	Decided    time.Time     `json:"decided"`
	Reason     string        `json:"reason,omitempty"`
	Violations []Violation   `json:"violations"`
	DecisionID string        `json:"decision,omitempty"`
}

// ListQuarantined lists quarantined manifests, of repo or (repo "") of all.
func (reg *Registry) ListQuarantined(ctx context.Context, repo string, p store.Page) ([]QuarantineEntry, error) {
	recs, err := reg.meta.ListQuarantined(ctx, repo, p)
	if err != nil {
		return nil, err
	}
	out := make([]QuarantineEntry, 0, len(recs))
	for _, q := range recs {
		out = append(out, QuarantineEntry{Repository: q.Repository, Digest: q.Digest, Pusher: q.Pusher, PusherKind: q.PusherKind,
			Created: q.Created.UTC(), Decided: q.Decided.UTC(), Reason: q.Reason, Violations: nonNil(q.Violations), DecisionID: q.DecisionID})
	}
	return out, nil
}

// QuarantineAdminOptions configure QuarantineAdminHandler.
type QuarantineAdminOptions struct {
	// Actor names who makes a request, for audit events. The handler does
	// not authenticate: mount it behind the server's administrator check.
	Actor func(*http.Request) Actor
}

// QuarantineList is the admin API's answer to GET /quarantine.
type QuarantineList struct {
	Quarantined []QuarantineEntry `json:"quarantined"`
	// Next is the "last" parameter of the next page; "" on the last page.
	Next string `json:"next,omitempty"`
}

// QuarantineAdminHandler serves the quarantine admin API, relative to the
// admin prefix (/admin/v1):
//
//	GET  /quarantine[?repository=R&n=N&last=REPO@DIGEST]  → QuarantineList
//	POST /quarantine/release  ReleaseRequest               → ReleaseResult
//
// Errors are {"error": "...", "code": "..."} with 400, 404 (not
// quarantined), 409 (no policy to re-decide with), 503 (the policy failed)
// or 500.
func (reg *Registry) QuarantineAdminHandler(opts QuarantineAdminOptions) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /quarantine", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := store.Page{Last: q.Get("last"), N: 1000}
		if ns := q.Get("n"); ns != "" {
			n, err := strconv.Atoi(ns)
			if err != nil || n <= 0 {
				adminError(w, http.StatusBadRequest, "INVALID", "n must be a positive integer")
				return
			}
			p.N = min(n, 1000)
		}
		if p.Last != "" && strings.LastIndexByte(p.Last, '@') <= 0 {
			adminError(w, http.StatusBadRequest, "INVALID", "last must be REPOSITORY@DIGEST, the next of the previous page")
			return
		}
		repo := q.Get("repository")
		if repo != "" && oci.ValidateRepository(repo) != nil {
			adminError(w, http.StatusBadRequest, "INVALID", fmt.Sprintf("invalid repository name %q", repo))
			return
		}
		list, err := reg.ListQuarantined(r.Context(), repo, store.Page{Last: p.Last, N: p.N + 1})
		if err != nil {
			reg.log.ErrorContext(r.Context(), "list quarantine", "error", err)
			adminError(w, http.StatusInternalServerError, "INTERNAL", "listing failed (see the server log)")
			return
		}
		res := QuarantineList{Quarantined: list}
		if len(list) > p.N {
			res.Quarantined = list[:p.N]
			last := res.Quarantined[p.N-1]
			res.Next = last.Repository + "@" + last.Digest.String()
		}
		adminJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST /quarantine/release", func(w http.ResponseWriter, r *http.Request) {
		var req ReleaseRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			adminError(w, http.StatusBadRequest, "INVALID", "body must be {\"repository\",\"digest\",\"force\",\"reason\"}: "+err.Error())
			return
		}
		by := Actor{Who: "anonymous", Kind: "anonymous", Remote: r.RemoteAddr}
		if opts.Actor != nil {
			by = opts.Actor(r)
		}
		res, err := reg.Release(r.Context(), by, req)
		switch {
		case err == nil:
			adminJSON(w, http.StatusOK, res)
		case errors.Is(err, store.ErrNotQuarantined), errors.Is(err, store.ErrManifestUnknown):
			adminError(w, http.StatusNotFound, "NOT_QUARANTINED", err.Error())
		case errors.Is(err, ErrNoGate):
			adminError(w, http.StatusConflict, "NO_POLICY", err.Error())
		case errors.Is(err, ErrReasonRequired), errors.Is(err, oci.ErrNameInvalid),
			errors.Is(err, oci.ErrDigestInvalid), errors.Is(err, oci.ErrDigestUnsupported):
			adminError(w, http.StatusBadRequest, "INVALID", err.Error())
		case errors.Is(err, ErrPolicyFailed):
			reg.log.ErrorContext(r.Context(), "re-decide quarantine", "repository", req.Repository, "digest", req.Digest, "error", err)
			adminError(w, http.StatusServiceUnavailable, "POLICY_FAILED", "the policy could not re-decide (see the server log)")
		default:
			reg.log.ErrorContext(r.Context(), "release from quarantine", "repository", req.Repository, "digest", req.Digest, "error", err)
			adminError(w, http.StatusInternalServerError, "INTERNAL", "release failed (see the server log)")
		}
	})
	return mux
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, status int, code, msg string) {
	adminJSON(w, status, struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}{msg, code})
}
