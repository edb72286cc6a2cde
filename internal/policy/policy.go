package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-dev/bulwark/internal/yamlnode"
)

// ErrInvalidPolicy is wrapped by every error Load and Parse return for a
// policy that cannot be used.
var ErrInvalidPolicy = errors.New("invalid policy")

// PolicyError says where a policy is wrong: the file, the line (of the
// offending YAML node; for an expression that does not compile, the line
// of the expression, or of the failing line inside a block scalar) and
// why, with the CEL compiler's message for expressions. It wraps
// ErrInvalidPolicy and the cause.
type PolicyError struct {
	File string // the name given to Parse, or the path given to Load
	Line int    // 1-based; 0 when not tied to a line
	Rule string // the rule whose expression failed, if any
	Err  error
}

func (e *PolicyError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.File == "" {
		b.WriteString("policy")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *PolicyError) Unwrap() []error { return []error{ErrInvalidPolicy, e.Err} }

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 1 << 20

// Mode is what a binding does with a violation.
type Mode string

// The modes, weakest first.
const (
	ModeAudit   Mode = "audit"   // record the decision only; always allow
	ModeWarn    Mode = "warn"    // allow, and tell the client (Decision.Warnings)
	ModeEnforce Mode = "enforce" // deny
)

func (m Mode) rank() int {
	switch m {
	case ModeAudit:
		return 1
	case ModeWarn:
		return 2
	case ModeEnforce:
		return 3
	}
	return 0
}

// Severity grades a rule; it is reported, it does not change the decision.
type Severity string

// The severities a rule may have.
const (
	SeverityCritical Severity = "critical"
	SeverityHigh     Severity = "high"
	SeverityMedium   Severity = "medium"
	SeverityLow      Severity = "low"
	SeverityInfo     Severity = "info"
)

var severities = []Severity{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo}

// Policy is a loaded, compiled policy. It must not be modified; it is
// safe for concurrent use, and Decide does no I/O and no compilation.
type Policy struct {
	// Rules are the rules the file defines, in file order (built-ins are
	// not listed; see Rule and Builtins).
	Rules []*Rule
	// Bindings are in file order.
	Bindings []*Binding
	// Exceptions are in file order, expired ones included: expiry is
	// checked at each decision.
	Exceptions []*Exception

	name     string
	version  string
	byID     map[string]*Rule // defined rules and every built-in
	enforced map[string]bool  // environments named by an enforce binding
	// enforceAll: an enforce binding names "*", so every environment is
	// enforced.
	enforceAll bool
}

// Version is "sha256:" and the hex SHA-256 of the policy file: what
// decisions record, so a decision can be traced to the exact policy.
func (p *Policy) Version() string { return p.version }

// Name is the file name the policy was loaded from (or given to Parse).
func (p *Policy) Name() string { return p.name }

// Rule returns a rule by id: one the file defines or a built-in.
func (p *Policy) Rule(id string) (*Rule, bool) {
	r, ok := p.byID[id]
	return r, ok
}

// Enforced reports whether env has an enforce binding (naming it or "*"):
// in such an environment an image no binding covers is denied.
func (p *Policy) Enforced(env string) bool { return p.enforceAll || p.enforced[env] }

// Rule is one named check.
type Rule struct {
	ID string
	// Expression is CEL returning bool: true means the image complies.
	// For a built-in with parameters this is the expression with the
	// default parameters; Binding.Expression gives a binding's own.
	Expression string
	// Message says what is wrong when the rule is violated.
	Message string
	// MessageExpression is CEL returning a string, evaluated on violation
	// for a message with the facts in it; Message is the fallback if it
	// fails.
	MessageExpression string
	Remediation       string
	Severity          Severity
	Builtin           bool
	// Description says what a built-in checks (empty for defined rules).
	Description string
	// Params are the parameters a built-in accepts; nil for defined rules.
	Params []Param
	Line   int // where the file defines it; 0 for built-ins

	check *check // compiled with default parameters
}

// Param describes one built-in parameter.
type Param struct {
	Name        string
	Kind        string // "duration", "severity", "bool", "list", "regex"
	Default     string
	Description string
}

// Binding applies rules to environments × repositories × actions.
type Binding struct {
	Name         string // optional, for people reading decisions
	Index        int    // position in the file, from 0
	Line         int
	Environments []string // names, or "*" for every environment
	Repositories []string // globs, see auth.MatchGlob
	Actions      []Action
	Rules        []string // rule ids, in order
	// Params are the parameters given to built-in rules: rule id → name →
	// value as written.
	Params map[string]map[string]string
	Mode   Mode

	checks []*check // one per Rules entry
	self   []int    // []int{Index}, capacity 1, for RuleResult.Bindings
}

// Covers reports whether the binding applies to the triple.
func (b *Binding) Covers(env, repo string, action Action) bool {
	return slices.Contains(b.Actions, action) && b.coversEnv(env) && matchAny(b.Repositories, repo)
}

func (b *Binding) coversEnv(env string) bool {
	for _, e := range b.Environments {
		if e == "*" || e == env {
			return true
		}
	}
	return false
}

// Exception waives rules for a digest or for repositories until it
// expires. Load refuses exceptions without expiry or reason, and those
// whose approver is empty or the requester.
type Exception struct {
	ID           string
	Line         int
	Digest       string   // exactly one of Digest and Repositories is set
	Repositories []string // globs
	Environments []string // empty: every environment
	Rules        []string
	Reason       string
	RequestedBy  string
	ApprovedBy   string
	Expires      time.Time
	Created      time.Time // zero when not given
}

// MaxClockSkew is how far in the future an exception's created time may
// be before the exception is treated as not yet valid: clocks of the
// machine that wrote it and the one deciding differ a little, but an
// exception "created" tomorrow is a mistake or a forgery. Expiry gets no
// allowance: an exception stops applying at Expires exactly.
const MaxClockSkew = 5 * time.Minute

// validAt says why the exception does not apply at now, or "".
func (x *Exception) validAt(now time.Time) string {
	switch {
	case !now.Before(x.Expires):
		return fmt.Sprintf("exception %s expired at %s", x.ID, x.Expires.UTC().Format(time.RFC3339))
	case !x.Created.IsZero() && x.Created.After(now.Add(MaxClockSkew)):
		return fmt.Sprintf("exception %s is not valid yet: created %s is in the future (more than %s ahead of %s)",
			x.ID, x.Created.UTC().Format(time.RFC3339), MaxClockSkew, now.UTC().Format(time.RFC3339))
	}
	return ""
}

// covers reports whether the exception's scope includes the rule for this
// image in this environment (validity in time aside).
func (x *Exception) covers(rule, env, repo, digest string) bool {
	if !slices.Contains(x.Rules, rule) {
		return false
	}
	if len(x.Environments) > 0 && !slices.Contains(x.Environments, env) && !slices.Contains(x.Environments, "*") {
		return false
	}
	if x.Digest != "" {
		return x.Digest == digest
	}
	return matchAny(x.Repositories, repo)
}

// Load reads, parses and compiles the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := yamlnode.ReadFile(path, MaxPolicySize)
	if err != nil {
		return nil, &PolicyError{File: path, Err: err}
	}
	return Parse(data, path)
}

// Parse parses and compiles a policy held in memory; name is used in error
// messages and by Name.
func Parse(data []byte, name string) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, &PolicyError{File: name, Err: fmt.Errorf("larger than %d bytes", MaxPolicySize)}
	}
	c, err := sharedCompiler()
	if err != nil {
		return nil, &PolicyError{File: name, Err: err}
	}
	sum := sha256.Sum256(data)
	p := &Policy{name: name, version: "sha256:" + hex.EncodeToString(sum[:]), byID: map[string]*Rule{}, enforced: map[string]bool{}}
	for id, r := range c.builtins {
		p.byID[id] = r
	}
	l := &loader{c: c, p: p}
	if err := l.load(data); err != nil {
		var pe *PolicyError
		if errors.As(err, &pe) {
			pe.File = name
			return nil, pe
		}
		return nil, &PolicyError{File: name, Err: err}
	}
	for _, b := range p.Bindings {
		if b.Mode != ModeEnforce {
			continue
		}
		for _, e := range b.Environments {
			if e == "*" {
				p.enforceAll = true
			}
			p.enforced[e] = true
		}
	}
	return p, nil
}

// Expression returns the CEL expression the binding evaluates for rule id
// (a built-in's with this binding's parameters), or "" if the binding
// does not apply it.
func (b *Binding) Expression(id string) string {
	for i, r := range b.Rules {
		if r == id {
			return b.checks[i].expression
		}
	}
	return ""
}

// Warning is something Lint thinks is probably a mistake, not an error.
type Warning struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// Lint returns what is legal but suspicious, as of now: expired or soon
// expiring exceptions, rules no binding uses, exceptions for rules no
// binding applies, and a policy without bindings.
func (p *Policy) Lint(now time.Time) []Warning {
	var ws []Warning
	if len(p.Bindings) == 0 {
		ws = append(ws, Warning{Message: "the policy has no bindings: it applies no rule anywhere"})
	}
	used := map[string]bool{}
	for _, b := range p.Bindings {
		for _, id := range b.Rules {
			used[id] = true
		}
	}
	for _, r := range p.Rules {
		if !used[r.ID] {
			ws = append(ws, Warning{Line: r.Line, Message: fmt.Sprintf("rule %q is not used by any binding", r.ID)})
		}
	}
	for _, x := range p.Exceptions {
		if why := x.validAt(now); why != "" {
			ws = append(ws, Warning{Line: x.Line, Message: why + ": it no longer applies; remove it"})
		} else if left := x.Expires.Sub(now); left < 7*24*time.Hour {
			ws = append(ws, Warning{Line: x.Line, Message: fmt.Sprintf("exception %s expires in %s (%s)",
				x.ID, left.Round(time.Minute), x.Expires.UTC().Format(time.RFC3339))})
		}
		for _, id := range x.Rules {
			if !used[id] {
				ws = append(ws, Warning{Line: x.Line, Message: fmt.Sprintf("exception %s waives rule %q, which no binding applies", x.ID, id)})
			}
		}
	}
	return ws
}
