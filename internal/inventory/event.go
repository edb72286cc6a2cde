package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// ErrInvalidEvent is returned for a report the server refuses as malformed;
// the message names the field.
var ErrInvalidEvent = errors.New("invalid inventory event")

// MaxEventSize bounds one report's JSON body. Real reports are about a
// kilobyte.
const MaxEventSize = 64 << 10

// Limits on an event's fields: far above what bulwark run sends, small
// enough that a hostile reporter cannot make the store hold megabytes per
// row.
const (
	maxString   = 1024 // any free-text field
	maxRef      = 1024 // an image reference
	maxListLen  = 256  // entries of any list
	maxHostname = 253  // DNS
)

// Kind says whether a container started or stopped.
type Kind string

// The event kinds.
const (
	KindStart Kind = "start"
	KindStop  Kind = "stop"
)

// Event is one report from a host: a container started or stopped. It is
// the JSON body of POST /inventory/v1/events.
type Event struct {
	Kind Kind `json:"kind"`
	// Time is when it happened by the host's clock; the server records
	// its own receive time beside it.
	Time time.Time `json:"time"`
	// Host is the reporting machine's name (os.Hostname).
	Host string `json:"host"`
	// Container is the container's name on that host.
	Container string `json:"container"`
	// Image is the reference as given to bulwark run
	// (HOST/REPOSITORY[:TAG][@DIGEST]).
	Image string `json:"image"`
	// Digest is what the reference resolved to and what was verified.
	Digest string `json:"digest"`
	// Environment is the environment the run was decided for ("" when
	// none was).
	Environment string   `json:"environment,omitempty"`
	Profile     Profile  `json:"profile"`
	Decision    Decision `json:"decision"`
	// ExitCode is the container's exit status, for a stop when known.
	ExitCode *int `json:"exitCode,omitempty"`
	// Reason says why a container stopped ("exited", "stopped", "did not
	// start: …").
	Reason string `json:"reason,omitempty"`
}

// Profile summarises how the container runs: what the policy saw as the
// runtime request, and the limits applied.
type Profile struct {
	User           string   `json:"user,omitempty"`
	Capabilities   []string `json:"capabilities,omitempty"`
	ReadOnlyRootfs bool     `json:"readOnlyRootfs"`
	Publish        []string `json:"publish,omitempty"` // HOST_IP:HOST_PORT:PORT/PROTO
	Egress         []string `json:"egress,omitempty"`  // HOST:PORT/PROTO
	Memory         int64    `json:"memory,omitempty"`  // bytes; -1 unlimited
	Pids           int64    `json:"pids,omitempty"`    // -1 unlimited
	Detached       bool     `json:"detached"`
	Runtime        string   `json:"runtime,omitempty"`
	// File is the --profile file the run used, if any.
	File string `json:"file,omitempty"`
}

// Decision summarises how the run was admitted.
type Decision struct {
	// Verification is "policy" (policy.Decide allowed it), "trust" (the
	// trust policy alone was satisfied) or "skipped"
	// (--insecure-skip-verify).
	Verification       string   `json:"verification"`
	ID                 string   `json:"id,omitempty"` // the policy decision's id
	Mode               string   `json:"mode,omitempty"`
	PolicyVersion      string   `json:"policyVersion,omitempty"`
	TrustPolicyVersion string   `json:"trustPolicyVersion,omitempty"`
	Requirement        string   `json:"requirement,omitempty"` // the trust requirement, e.g. "all of [ci]"
	Satisfied          []string `json:"satisfied,omitempty"`   // authorities that signed
	Warnings           []string `json:"warnings,omitempty"`
}

// The verification values.
const (
	VerifiedByPolicy = "policy"
	VerifiedByTrust  = "trust"
	VerifySkipped    = "skipped"
)

// Record is an event as the server stored it: the event, the repository
// parsed from its image, and what the server itself knows about the
// report.
type Record struct {
	Seq int64 `json:"seq"`
	Event
	Repository   string    `json:"repository"`
	Received     time.Time `json:"received"`
	Reporter     string    `json:"reporter"`
	ReporterKind string    `json:"reporterKind"`
	Remote       string    `json:"remote,omitempty"`
}

// DecodeEvent reads one event from untrusted JSON: at most MaxEventSize
// bytes, exactly one object, no unknown fields (so a client cannot send
// the server's own fields, reporter or received, and have them ignored
// silently), then Validate.
func DecodeEvent(r io.Reader, now time.Time) (Event, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxEventSize+1))
	if err != nil {
		return Event{}, err
	}
	if len(b) > MaxEventSize {
		return Event{}, fmt.Errorf("%w: larger than %d bytes", ErrInvalidEvent, MaxEventSize)
	}
	var e Event
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Event{}, fmt.Errorf("%w: trailing data after the event", ErrInvalidEvent)
	}
	if err := e.Validate(now); err != nil {
		return Event{}, err
	}
	return e, nil
}

// name reports whether s is 1 to max of letters, digits, '_', '.', '-',
// starting with a letter or digit: host, container and environment names.
// (A regular expression with a counted repetition would cost milliseconds
// to compile at every start of the binary.)
func name(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// decisionID reports whether s can be a decision id: 1-128 of letters,
// digits, '_', '.', ':', '-'.
func decisionID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == ':' || r == '-')
	})
}

// maxClockSkew is how far in the future a host's clock may put an event.
const maxClockSkew = 24 * time.Hour

// Validate checks an event as the server receives it. now is the server's
// clock.
func (e *Event) Validate(now time.Time) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidEvent, field, fmt.Sprintf(format, args...))
	}
	switch e.Kind {
	case KindStart, KindStop:
	default:
		return bad("kind", "%q is not start or stop", clip(string(e.Kind)))
	}
	if e.Time.IsZero() {
		return bad("time", "missing")
	}
	if e.Time.After(now.Add(maxClockSkew)) {
		return bad("time", "%s is more than %s ahead of the server's clock", e.Time.Format(time.RFC3339), maxClockSkew)
	}
	if e.Time.Year() < 2000 {
		return bad("time", "%s is before 2000", e.Time.Format(time.RFC3339))
	}
	if !name(e.Host, maxHostname) {
		return bad("host", "%q: want a host name (letters, digits, '.', '-', '_', at most %d)", clip(e.Host), maxHostname)
	}
	if !name(e.Container, 63) {
		return bad("container", "%q: want 1-63 of letters, digits, '_', '.', '-', starting with a letter or digit", clip(e.Container))
	}
	if len(e.Image) > maxRef {
		return bad("image", "longer than %d bytes", maxRef)
	}
	ref, err := oci.ParseImageRef(e.Image)
	if err != nil {
		return bad("image", "%q: %v", clip(e.Image), err)
	}
	d, err := oci.ParseDigest(e.Digest)
	if err != nil {
		return bad("digest", "%q: %v", clip(e.Digest), err)
	}
	if ref.Digest != "" && ref.Digest != d {
		return bad("digest", "%s differs from the digest the image reference names (%s)", d, ref.Digest)
	}
	if e.Environment != "" && !name(e.Environment, 63) {
		return bad("environment", "%q: want 1-63 of letters, digits, '_', '.', '-'", clip(e.Environment))
	}
	if e.Kind == KindStart && (e.ExitCode != nil || e.Reason != "") {
		return bad("exitCode", "a start has no exit code or reason")
	}
	if e.ExitCode != nil && (*e.ExitCode < 0 || *e.ExitCode > 255) {
		return bad("exitCode", "%d is not 0-255", *e.ExitCode)
	}
	if err := text("reason", e.Reason); err != nil {
		return err
	}
	p := &e.Profile
	if err := text("profile.user", p.User); err != nil {
		return err
	}
	if err := text("profile.runtime", p.Runtime); err != nil {
		return err
	}
	if err := text("profile.file", p.File); err != nil {
		return err
	}
	for _, l := range []struct {
		field string
		list  []string
	}{{"profile.capabilities", p.Capabilities}, {"profile.publish", p.Publish}, {"profile.egress", p.Egress},
		{"decision.satisfied", e.Decision.Satisfied}, {"decision.warnings", e.Decision.Warnings}} {
		if err := textList(l.field, l.list); err != nil {
			return err
		}
	}
	if p.Memory < -1 || p.Pids < -1 {
		return bad("profile", "memory and pids are -1 (unlimited) or positive")
	}
	dc := &e.Decision
	switch dc.Verification {
	case VerifiedByPolicy, VerifiedByTrust, VerifySkipped:
	default:
		return bad("decision.verification", "%q is not policy, trust or skipped", clip(dc.Verification))
	}
	if dc.ID != "" && !decisionID(dc.ID) {
		return bad("decision.id", "%q", clip(dc.ID))
	}
	for _, f := range []struct{ field, v string }{{"decision.mode", dc.Mode}, {"decision.policyVersion", dc.PolicyVersion},
		{"decision.trustPolicyVersion", dc.TrustPolicyVersion}, {"decision.requirement", dc.Requirement}} {
		if err := text(f.field, f.v); err != nil {
			return err
		}
	}
	return nil
}

// Repository is the repository part of the event's image reference; the
// event must be valid.
func (e *Event) Repository() string {
	ref, _ := oci.ParseImageRef(e.Image)
	return ref.Repository
}

// text checks a free-text field: bounded, valid UTF-8, no control
// characters (they would reach terminals through bulwark report).
func text(field, s string) error {
	if len(s) > maxString {
		return fmt.Errorf("%w: %s: longer than %d bytes", ErrInvalidEvent, field, maxString)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s: not UTF-8", ErrInvalidEvent, field)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%w: %s: control characters", ErrInvalidEvent, field)
	}
	return nil
}

func textList(field string, l []string) error {
	if len(l) > maxListLen {
		return fmt.Errorf("%w: %s: more than %d entries", ErrInvalidEvent, field, maxListLen)
	}
	for _, s := range l {
		if err := text(field, s); err != nil {
			return err
		}
	}
	return nil
}

// clip shortens untrusted input echoed in errors.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
