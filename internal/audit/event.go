package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one audit entry. The JSON field order is part of the file format
// (see the package documentation): do not reorder, rename or add fields
// without a format version. The one addition so far, decision, is omitted
// when empty, so every line written before it still verifies unchanged.
type Event struct {
	// Seq numbers entries from 1 without gaps; assigned by the writer.
	Seq int64 `json:"seq"`
	// Time is when it happened, UTC. Record sets it if zero.
	Time time.Time `json:"time"`
	// Who is the principal's name, or "anonymous".
	Who string `json:"who"`
	// Kind is KindUser, KindRobot, KindAnonymous or KindSystem.
	Kind string `json:"kind"`
	// Action is what was attempted, e.g. ActionPush.
	Action     string `json:"action"`
	Repository string `json:"repository"`
	// Reference is the tag or digest the client named.
	Reference string `json:"reference"`
	// Digest is the content's digest when known.
	Digest string `json:"digest"`
	// Remote is the client's address.
	Remote string `json:"remote"`
	// Outcome is OutcomeOK, OutcomeDenied or OutcomeFailed.
	Outcome string `json:"outcome"`
	// Detail is a short human-readable explanation.
	Detail string `json:"detail"`
	// Decision is the policy decision behind the entry (internal/policy's
	// Decision as JSON), on ActionDecision entries; absent otherwise, so
	// lines without one encode as before the field existed.
	Decision json.RawMessage `json:"decision,omitempty"`
	// Prev is the previous entry's Hash ("" for the first); assigned by the
	// writer.
	Prev string `json:"prev"`
	// Hash is the hex SHA-256 of this entry's canonical encoding; assigned
	// by the writer.
	Hash string `json:"hash"`
}

// Kinds of principal.
const (
	KindUser      = "user"
	KindRobot     = "robot"
	KindAnonymous = "anonymous"
	KindSystem    = "system"
)

// Outcomes.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// Actions bulwark records. Action is free-form; these are the values its
// own code writes, listed so that queries can rely on them.
const (
	ActionLogin       = "login"        // password or secret checked (basic auth, token endpoint)
	ActionToken       = "token"        // a bearer token was issued
	ActionPush        = "push"         // manifest put
	ActionPull        = "pull"         // manifest get
	ActionDelete      = "delete"       // manifest, tag or blob deleted
	ActionDenied      = "denied"       // a request refused for lack of permission (registry or admin API)
	ActionUserAdd     = "user.add"     //
	ActionUserPasswd  = "user.passwd"  //
	ActionUserRm      = "user.rm"      //
	ActionRobotCreate = "robot.create" //
	ActionRobotRotate = "robot.rotate" //
	ActionRobotRm     = "robot.rm"     //
	ActionGrant       = "grant"        // permission granted
	ActionRevoke      = "revoke"       // permission revoked
	// ActionDecision: a policy decision (push, pull or run), the whole
	// decision in Event.Decision; Outcome is denied when it denied.
	ActionDecision = "decision"
	// ActionRepair: a writer found an incomplete last line (a crash during
	// a write, never acknowledged) and removed it before appending.
	ActionRepair = "audit.repair"
	// ActionRestart: a writer found a last line it could not decode and
	// started a new chain after it; Verify reports that line.
	ActionRestart = "audit.restart"
)

// SystemWho is the Who of events the log writes about itself.
const SystemWho = "bulwark"

// AnonymousWho is the Who of unauthenticated callers.
const AnonymousWho = "anonymous"

// maxField bounds each string field of a recorded event, in bytes, so that
// a hostile client (a 1 MB user name in a failed login) cannot bloat the
// log; longer values are cut at a UTF-8 boundary and marked.
const maxField = 1024

// maxLine bounds a line when reading. Writers never exceed it: 11 string
// fields of maxField bytes, each byte escaped to at most 6 (\u00XX), is
// about 68 KiB, and a decision adds at most maxDecision.
const maxLine = 1 << 20

// PathIn returns the audit log's path in a data directory.
func PathIn(dataDir string) string { return filepath.Join(dataDir, "audit.log") }

// canonical returns e's canonical encoding (e.Hash ignored) and its hash.
func canonical(e Event) ([]byte, string, error) {
	e.Hash = ""
	b, err := json.Marshal(e)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// hashSuffix ends every canonical encoding: Hash is the last field.
var hashSuffix = []byte(`"hash":""}`)

// encodeLine returns e's line (with "\n"), e.Hash filled in.
func encodeLine(e *Event) ([]byte, error) { return appendLine(nil, e) }

// appendLine appends e's line (with "\n") to dst and fills in e.Hash: the
// canonical encoding with the hash written between the final quotes.
func appendLine(dst []byte, e *Event) ([]byte, error) {
	c, h, err := canonical(*e)
	if err != nil {
		return dst, err
	}
	if !bytes.HasSuffix(c, hashSuffix) {
		// Unreachable unless Event's field order changes.
		return dst, fmt.Errorf("audit: canonical encoding does not end with %s", hashSuffix)
	}
	e.Hash = h
	dst = append(dst, c[:len(c)-2]...)
	dst = append(dst, h...)
	return append(dst, '"', '}', '\n'), nil
}

// normalize makes e safe and canonical to write: UTC time within JSON's
// range, defaults for Who, Kind and Outcome, bounded fields.
func normalize(e *Event) {
	if e.Time.IsZero() || e.Time.Year() < 1 || e.Time.Year() > 9999 {
		e.Time = time.Now()
	}
	// UTC also drops the monotonic reading; Round(0) makes that explicit.
	e.Time = e.Time.UTC().Round(0)
	if e.Who == "" {
		e.Who = AnonymousWho
		if e.Kind == "" {
			e.Kind = KindAnonymous
		}
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeOK
	}
	for _, p := range []*string{&e.Who, &e.Kind, &e.Action, &e.Repository, &e.Reference, &e.Digest, &e.Remote, &e.Outcome, &e.Detail} {
		// encoding/json would escape invalid bytes as \ufffd, which decodes
		// to a U+FFFD that re-encodes unescaped: replace them first so the
		// canonical encoding of a decoded line is the line.
		if !utf8.ValidString(*p) {
			*p = strings.ToValidUTF8(*p, "\uFFFD")
		}
		*p = clip(*p)
	}
	if len(e.Decision) > 0 {
		e.Decision, e.Detail = normalizeDecision(e.Decision, e.Detail)
	}
}

// maxDecision bounds a recorded decision. A decision lists every rule it
// evaluated with its message, a few KiB in practice; a policy with
// hundreds of long messages is cut rather than bloating every line.
const maxDecision = 64 << 10

// normalizeDecision returns the decision, or nil with a note in detail
// when it is not valid JSON, not valid UTF-8, or too large: the entry is
// still recorded, without the decision. It need not be compact: the
// canonical encoding (encoding/json) compacts and escapes a RawMessage,
// and what a decoded line holds is that compacted text, which re-encodes
// unchanged.
func normalizeDecision(d json.RawMessage, detail string) (json.RawMessage, string) {
	switch {
	case len(d) > maxDecision:
		return nil, clip(fmt.Sprintf("%s [decision record dropped: %d bytes exceeds %d]", detail, len(d), maxDecision))
	case !utf8.Valid(d):
		return nil, clip(detail + " [decision record dropped: invalid UTF-8]")
	case !json.Valid(d):
		return nil, clip(detail + " [decision record dropped: not valid JSON]")
	}
	return d, detail
}

// clip cuts s to maxField bytes at a rune boundary, marking the cut.
func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	const mark = "…[cut]"
	i := maxField - len(mark)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + mark
}

// isHash reports whether s is a lowercase hex SHA-256.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
