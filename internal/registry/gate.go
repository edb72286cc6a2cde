package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// Gate is the policy engine as the registry sees it: asked whether a
// manifest may enter (Push) and leave (Pull). It is defined here, where it
// is consumed; internal/server adapts the policy engine to it.
//
// With a Gate set (Options.Gate) the registry:
//   - asks Push for every manifest put. A verdict that quarantines stores
//     the manifest quarantined: it is served only to its pusher and to
//     administrators (manifests by tag and digest, referrers listings,
//     blobs no other manifest of the repository references, mounts from
//     the repository); others get 403 DENIED naming the rules. A verdict
//     that neither allows nor quarantines refuses the push (403 DENIED,
//     nothing stored). A passing verdict releases an earlier quarantine of
//     the same manifest.
//   - asks Push again for a quarantined manifest when evidence about it (a
//     manifest whose subject it is) arrives, and releases it if the verdict
//     no longer quarantines; likewise for the quarantined manifests an index
//     lists, once the index is released.
//   - asks Pull for every manifest GET and HEAD after authorization; a deny
//     is 403 DENIED with the rules in the message and the violations in the
//     error's detail.
//   - serves a blob only to callers who may fetch some manifest of the
//     repository that references it, or who may push there (uploads HEAD
//     and GET their blobs before any manifest names them); for a caller
//     bound to an environment, "may fetch" includes the pull policy: Pull
//     must allow one of those manifests (blobPullAllowed).
//
// Warnings of either verdict become `Warning: 299 - "…"` response headers.
// A Gate error fails closed: 503 UNAVAILABLE, nothing stored or served.
// Quarantine is enforced only while a Gate is set: without a policy the
// registry serves everything, and the records wait for the next policy.
type Gate interface {
	Push(ctx context.Context, req *GateRequest) (Verdict, error)
	Pull(ctx context.Context, req *GateRequest) (Verdict, error)
}

// Trigger says why a Gate is asked.
type Trigger string

const (
	// TriggerPush: a client puts the manifest.
	TriggerPush Trigger = "push"
	// TriggerPull: a client fetches the manifest (GET or HEAD).
	TriggerPull Trigger = "pull"
	// TriggerEvidence: the manifest is quarantined and evidence about it
	// (Cause, a manifest whose subject it is) has just been pushed.
	TriggerEvidence Trigger = "evidence"
	// TriggerIndex: the manifest is quarantined and an index listing it
	// (Cause) has just been released.
	TriggerIndex Trigger = "index"
	// TriggerRelease: an administrator asked to re-decide the quarantined
	// manifest.
	TriggerRelease Trigger = "release"
)

// GateRequest describes the manifest a Gate decides about.
type GateRequest struct {
	Trigger      Trigger
	Repository   string
	Digest       digest.Digest
	MediaType    string
	ArtifactType string // the effective artifact type (see oci.Manifest)
	// Subject is set when the manifest refers to another one (OCI
	// subject): a signature, approval, SBOM or attestation is evidence
	// about Subject, not an image, and image rules should not apply to it.
	Subject digest.Digest
	// Manifest is the manifest's exact bytes; Parsed returns its parse.
	Manifest []byte
	// Tags: on push, the tags it sets; on pull by tag, that tag; on a
	// re-decision, the tags that point at the manifest now.
	Tags []string
	// Caller is who asks, never nil: in a registry without authentication
	// an anonymous caller allowed everything; on a re-decision the pusher
	// recorded with the quarantine, holding no permissions.
	Caller Caller
	// Cause is the manifest that prompted a re-decision (TriggerEvidence,
	// TriggerIndex).
	Cause digest.Digest

	parseOnce sync.Once
	parsed    *oci.Manifest
	parseErr  error
}

// Parsed returns the parsed manifest, parsing it on first use: a gate that
// decides without looking inside (a caller bound to no environment) costs
// no parse.
func (g *GateRequest) Parsed() (*oci.Manifest, error) {
	g.parseOnce.Do(func() {
		if g.parsed == nil {
			g.parsed, g.parseErr = oci.ParseManifest(g.MediaType, g.Manifest)
		}
	})
	return g.parsed, g.parseErr
}

// Violation is one rule a manifest failed.
type Violation = store.Violation

// Verdict is a Gate's answer.
type Verdict struct {
	// Allow lets the push or pull proceed.
	Allow bool
	// Quarantine (push only) stores the manifest quarantined. It wins over
	// Allow.
	Quarantine bool
	// Warnings are sent to the client as Warning headers.
	Warnings []string
	// Violations are the rules that failed, for the client's error message
	// and the quarantine record.
	Violations []Violation
	// DecisionID names the decision in the decision log.
	DecisionID string
	// Reason summarises the verdict in a sentence.
	Reason string
}

// summary is the verdict's rules and messages in one line.
func (v Verdict) summary() string {
	return violationSummary(v.Reason, v.Violations, v.DecisionID)
}

func violationSummary(reason string, vs []Violation, decision string) string {
	var b strings.Builder
	for i, x := range vs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(x.Rule)
		if x.Message != "" {
			b.WriteString(": ")
			b.WriteString(x.Message)
		}
		if x.Remediation != "" {
			b.WriteString(" (fix: ")
			b.WriteString(x.Remediation)
			b.WriteString(")")
		}
	}
	if b.Len() == 0 {
		b.WriteString(reason)
	}
	if b.Len() == 0 {
		b.WriteString("no reason given")
	}
	if decision != "" {
		b.WriteString(" [decision ")
		b.WriteString(decision)
		b.WriteString("]")
	}
	return b.String()
}

func ruleIDs(vs []Violation) string {
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.Rule
	}
	return strings.Join(ids, ",")
}

// denialDetail is the detail of a policy DENIED error: what a client or a
// script needs to act on it.
type denialDetail struct {
	Repository  string      `json:"repository"`
	Digest      string      `json:"digest"`
	Quarantined bool        `json:"quarantined,omitempty"`
	DecisionID  string      `json:"decision,omitempty"`
	Reason      string      `json:"reason,omitempty"`
	Violations  []Violation `json:"violations"`
}

// policyDenied is the 403 DENIED answer to a policy refusal. docker and
// skopeo print the message, so it names the rules.
func policyDenied(what, repo string, d digest.Digest, v Verdict) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeDenied,
		Message: fmt.Sprintf("policy denies %s %s@%s: %s", what, repo, d, v.summary()),
		Detail: denialDetail{Repository: repo, Digest: d.String(), DecisionID: v.DecisionID, Reason: v.Reason,
			Violations: nonNil(v.Violations)}}
}

// quarantinedError is the 403 DENIED answer to content that is quarantined
// for this caller.
func quarantinedError(what string, q *store.QuarantineRecord) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeDenied,
		Message: fmt.Sprintf("%s is quarantined by policy (only its pusher and administrators may pull it until it is released): %s",
			what, violationSummary(q.Reason, q.Violations, q.DecisionID)),
		Detail: denialDetail{Repository: q.Repository, Digest: q.Digest.String(), Quarantined: true, DecisionID: q.DecisionID,
			Reason: q.Reason, Violations: nonNil(q.Violations)}}
}

func nonNil(vs []Violation) []Violation {
	if vs == nil {
		return []Violation{}
	}
	return vs
}

// errPolicyUnavailable is the answer when the gate fails: fail closed,
// without the engine's internals.
var errPolicyUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
	Message: "the policy could not decide, so the request is refused; try again later or ask an administrator (see the server log)"}

// ask calls the gate, logging and auditing a failure, which it turns into
// errPolicyUnavailable.
func (reg *Registry) ask(r *http.Request, decide func(context.Context, *GateRequest) (Verdict, error), req *GateRequest) (Verdict, error) {
	v, err := decide(r.Context(), req)
	if err != nil {
		reg.log.ErrorContext(r.Context(), "policy gate failed; refusing", "trigger", req.Trigger,
			"repository", req.Repository, "digest", req.Digest.String(), "error", err)
		reg.emit(r, nil, Event{Action: ActionPolicyError, Repository: req.Repository, Digest: req.Digest,
			Outcome: "failed", Detail: fmt.Sprintf("%s: %v", req.Trigger, err)})
		return v, errPolicyUnavailable
	}
	return v, nil
}

// maxWarnings and maxWarningLen bound what a verdict puts into response
// headers.
const (
	maxWarnings   = 16
	maxWarningLen = 1024
)

// addWarnings sets one RFC 7234 Warning header per warning: code 299
// (miscellaneous persistent warning), agent "-", the text quoted. docker
// prints these to its user.
func addWarnings(w http.ResponseWriter, warnings ...string) {
	h := w.Header()
	for i, text := range warnings {
		if i == maxWarnings {
			h.Add("Warning", warningValue(fmt.Sprintf("%d more policy warnings not shown", len(warnings)-i)))
			return
		}
		h.Add("Warning", warningValue(text))
	}
}

func warningValue(text string) string {
	if len(text) > maxWarningLen {
		text = text[:maxWarningLen] + "…"
	}
	var b strings.Builder
	b.Grow(len(text) + 10)
	b.WriteString(`299 - "`)
	for _, c := range text {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case unicode.IsControl(c) || c == unicode.ReplacementChar:
			b.WriteByte(' ')
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// gateCaller is the caller a GateRequest names: never nil.
func (reg *Registry) gateCaller(r *http.Request) Caller {
	if c := callerFrom(r.Context()); c != nil {
		return c
	}
	return openCaller{}
}

// openCaller is everyone in a registry without authentication: anonymous,
// allowed everything, no environment, not an administrator.
type openCaller struct{}

func (openCaller) Name() string                             { return "anonymous" }
func (openCaller) Kind() string                             { return "anonymous" }
func (openCaller) Can(string, string, string) bool          { return true }
func (openCaller) MayPull(context.Context, string) bool     { return true }
func (openCaller) Env() string                              { return "" }
func (openCaller) Admin(context.Context) bool               { return false }
func (recordedPusher) Can(string, string, string) bool      { return false }
func (recordedPusher) MayPull(context.Context, string) bool { return false }
func (recordedPusher) Env() string                          { return "" }
func (recordedPusher) Admin(context.Context) bool           { return false }

// recordedPusher is the caller of a re-decision: the account whose push was
// quarantined, as recorded. It holds no permissions; a policy may look at
// its name.
type recordedPusher struct{ name, kind string }

func (p recordedPusher) Name() string { return p.name }
func (p recordedPusher) Kind() string { return p.kind }
