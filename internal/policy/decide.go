package policy

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// ErrInvalidInput is returned by Decide for an input that cannot be
// decided (unknown action, zero time). Callers must treat it as a denial.
var ErrInvalidInput = errors.New("invalid policy input")

// Result is what became of one rule.
type Result string

// The rule results.
const (
	ResultPass     Result = "pass"
	ResultViolated Result = "violated"
	// ResultExcepted: the rule was violated (or failed to evaluate) and a
	// valid exception waived it. Never reported as pass.
	ResultExcepted Result = "excepted"
	// ResultError: the rule could not be evaluated (cost limit, a missing
	// map key, …). It counts as a violation: the engine fails closed.
	ResultError Result = "error"
)

// Decision is the outcome of Decide. Its JSON form is stable (field names
// and order are fixed, lists are never null) because it is recorded in the
// hash-chained audit log and printed by `--output json`.
type Decision struct {
	ID            string    `json:"id"`   // unique: 48-bit ms time of Now + 80 random bits, hex
	Time          time.Time `json:"time"` // Input.Now, in UTC
	PolicyVersion string    `json:"policyVersion"`
	Action        Action    `json:"action"`
	Environment   string    `json:"environment"`
	Repository    string    `json:"repository"`
	Digest        string    `json:"digest"`
	Allowed       bool      `json:"allowed"`
	// Mode is the mode that decided: enforce if an enforce binding matched
	// (or default deny applied), else warn if a warn binding matched, else
	// audit; "" when no binding matched and the environment is not enforced.
	Mode Mode `json:"mode"`
	// DefaultDeny: no binding covers the image and action in an
	// environment that has an enforce binding.
	DefaultDeny bool           `json:"defaultDeny"`
	Reason      string         `json:"reason"` // one line for people
	Bindings    []BindingMatch `json:"bindings"`
	Rules       []RuleResult   `json:"rules"`
	Exceptions  []ExceptionUse `json:"exceptions"`
	Warnings    []string       `json:"warnings"`
	Trust       *TrustSummary  `json:"trust,omitempty"`
	Scan        *ScanSummary   `json:"scan,omitempty"`
	Principal   Principal      `json:"principal"`
}

// BindingMatch names a binding that matched.
type BindingMatch struct {
	Index int    `json:"index"` // position in the policy file, from 0
	Name  string `json:"name,omitempty"`
	Line  int    `json:"line"`
	Mode  Mode   `json:"mode"`
}

// RuleResult is one evaluated rule.
type RuleResult struct {
	ID     string `json:"id"`
	Result Result `json:"result"`
	// Mode is the strongest mode among the matched bindings that apply the
	// rule (with the same parameters).
	Mode     Mode     `json:"mode"`
	Severity Severity `json:"severity"`
	Builtin  bool     `json:"builtin"`
	// Message says what is wrong (violated, excepted, error); empty on pass.
	Message     string            `json:"message,omitempty"`
	Remediation string            `json:"remediation,omitempty"`
	Error       string            `json:"error,omitempty"`     // the evaluation error, for error (and excepted errors)
	Exception   string            `json:"exception,omitempty"` // the exception that waived it
	Params      map[string]string `json:"params,omitempty"`    // a built-in's parameters as the binding gave them
	Bindings    []int             `json:"bindings"`            // indexes of the matched bindings applying it
}

// Failed reports whether the rule counts against the image: violated or
// error, and not excepted.
func (r *RuleResult) Failed() bool { return r.Result == ResultViolated || r.Result == ResultError }

// ExceptionUse records an exception that waived rules in this decision.
type ExceptionUse struct {
	ID          string    `json:"id"`
	Rules       []string  `json:"rules"` // the rules it waived here
	Reason      string    `json:"reason"`
	RequestedBy string    `json:"requestedBy"`
	ApprovedBy  string    `json:"approvedBy"`
	Expires     time.Time `json:"expires"`
}

// TrustSummary is the part of the trust facts a decision record keeps.
type TrustSummary struct {
	PolicyVersion string   `json:"policyVersion"`
	Allowed       bool     `json:"allowed"`
	Environment   string   `json:"environment"`
	Requirement   string   `json:"requirement"`
	Satisfied     []string `json:"satisfied"`
}

// ScanSummary is the part of the scan facts a decision record keeps.
type ScanSummary struct {
	Scanner         string    `json:"scanner"`
	Time            time.Time `json:"time"`
	Vulnerabilities int       `json:"vulnerabilities"`
}

// Failed returns the rules that count against the image (violated or
// error, not excepted), in decision order: what a denial reports.
func (d *Decision) Failed() []RuleResult {
	var out []RuleResult
	for _, r := range d.Rules {
		if r.Failed() {
			out = append(out, r)
		}
	}
	return out
}

// Decide evaluates the policy for one action on one image.
//
// Semantics (docs/policy.md has the long form):
//
//  1. The bindings that match are those naming the environment (or "*"),
//     a repository glob matching the image's repository, and the action.
//  2. No binding matches: if the environment has any enforce binding (for
//     any repository or action), the image is denied (default deny);
//     otherwise it is allowed with mode "".
//  3. Every rule of every matched binding is evaluated once per distinct
//     parameters; its mode is the strongest of the bindings applying it.
//  4. A violated or failed rule covered by a valid exception is excepted.
//  5. Allowed unless some rule in enforce mode failed. Failures in warn
//     mode become Warnings; in audit mode they are only recorded.
//
// The error is for a decision that could not be made: invalid input or a
// cancelled context. Rule failures are never errors: they are results.
func (p *Policy) Decide(ctx context.Context, in Input) (Decision, error) {
	if !in.Action.valid() {
		return Decision{}, fmt.Errorf("%w: action %q is not push, pull or run", ErrInvalidInput, in.Action)
	}
	if in.Now.IsZero() {
		return Decision{}, fmt.Errorf("%w: zero decision time", ErrInvalidInput)
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	d := Decision{
		ID:   decisionID(in.Now),
		Time: in.Now.UTC(), // one zone in the audit log, whatever the caller's

		PolicyVersion: p.version,
		Action:        in.Action,
		Environment:   in.Environment,
		Repository:    in.Image.Repository,
		Digest:        in.Image.Digest,
		Principal:     in.Principal,
		Bindings:      []BindingMatch{},
		Rules:         []RuleResult{},
		Exceptions:    []ExceptionUse{},
		Warnings:      []string{},
	}
	if in.Trust.Evaluated {
		d.Trust = &TrustSummary{PolicyVersion: in.Trust.PolicyVersion, Allowed: in.Trust.Allowed, Environment: in.Trust.Environment,
			Requirement: in.Trust.Requirement, Satisfied: nonNil(in.Trust.Satisfied)}
	}
	if in.Scan.Available {
		d.Scan = &ScanSummary{Scanner: in.Scan.Scanner, Time: in.Scan.Time.UTC(), Vulnerabilities: len(in.Scan.Vulnerabilities)}
	}

	// Match bindings; gather each distinct check with its strongest mode.
	type pending struct {
		ck       *check
		mode     Mode
		bindings []int
	}
	var buf [16]pending
	checks := buf[:0]
	for _, b := range p.Bindings {
		if !b.Covers(in.Environment, in.Image.Repository, in.Action) {
			continue
		}
		d.Bindings = append(d.Bindings, BindingMatch{Index: b.Index, Name: b.Name, Line: b.Line, Mode: b.Mode})
		if b.Mode.rank() > d.Mode.rank() {
			d.Mode = b.Mode
		}
	next:
		for _, ck := range b.checks {
			for i := range checks {
				if checks[i].ck == ck {
					if b.Mode.rank() > checks[i].mode.rank() {
						checks[i].mode = b.Mode
					}
					checks[i].bindings = append(checks[i].bindings, b.Index)
					continue next
				}
			}
			// b.self has capacity 1: the append above copies it, so
			// decisions never share a mutable slice.
			checks = append(checks, pending{ck: ck, mode: b.Mode, bindings: b.self})
		}
	}
	if len(d.Bindings) == 0 {
		if p.Enforced(in.Environment) {
			d.Mode, d.DefaultDeny = ModeEnforce, true
			d.Reason = fmt.Sprintf("denied by default: environment %q enforces policy and no binding covers %s of repository %q",
				in.Environment, in.Action, in.Image.Repository)
		} else {
			d.Allowed = true
			d.Reason = fmt.Sprintf("no binding covers %s of repository %q in environment %q, which enforces nothing", in.Action, in.Image.Repository, in.Environment)
		}
		return d, nil
	}

	act := newActivation(&in)
	d.Rules = make([]RuleResult, 0, len(checks))
	for _, pc := range checks {
		if err := ctx.Err(); err != nil {
			return Decision{}, err
		}
		r := p.evaluate(pc.ck, act)
		r.Mode, r.Bindings = pc.mode, pc.bindings
		if r.Failed() {
			p.except(&d, &r, &in)
		}
		d.Rules = append(d.Rules, r)
	}
	p.conclude(&d)
	return d, nil
}

// evaluate runs one check. Evaluation is bounded by CostLimit, so the
// context is only checked between rules.
func (p *Policy) evaluate(ck *check, act *activation) RuleResult {
	r := ck.rule
	res := RuleResult{ID: r.ID, Severity: r.Severity, Builtin: r.Builtin, Params: maps.Clone(ck.params), Result: ResultPass}
	ok, err := evalBool(&ck.prog, act)
	if err != nil {
		res.Result, res.Error = ResultError, err.Error()
		res.Message = fmt.Sprintf("rule %s could not be evaluated, which counts as a violation: %v", r.ID, err)
		res.Remediation = r.Remediation
		return res
	}
	if ok {
		return res
	}
	res.Result, res.Remediation = ResultViolated, r.Remediation
	res.Message = r.Message
	if ck.msg != nil {
		m, err := evalString(ck.msg, act)
		switch {
		case err != nil && res.Message == "":
			res.Message = fmt.Sprintf("rule %s violated (its message expression failed: %v)", r.ID, err)
		case err == nil && m != "":
			res.Message = m
		}
	}
	if res.Message == "" {
		res.Message = fmt.Sprintf("rule %s violated", r.ID)
	}
	return res
}

// except applies the first valid exception covering a failed rule, and
// notes exceptions that would cover it but are expired or not yet valid.
func (p *Policy) except(d *Decision, r *RuleResult, in *Input) {
	for _, x := range p.Exceptions {
		if !x.covers(r.ID, in.Environment, in.Image.Repository, in.Image.Digest) {
			continue
		}
		if why := x.validAt(in.Now); why != "" {
			d.Warnings = append(d.Warnings, fmt.Sprintf("rule %s: %s, so it does not apply", r.ID, why))
			continue
		}
		r.Result, r.Exception = ResultExcepted, x.ID
		i := slices.IndexFunc(d.Exceptions, func(u ExceptionUse) bool { return u.ID == x.ID })
		if i < 0 {
			d.Exceptions = append(d.Exceptions, ExceptionUse{ID: x.ID, Reason: x.Reason, RequestedBy: x.RequestedBy,
				ApprovedBy: x.ApprovedBy, Expires: x.Expires, Rules: []string{}})
			i = len(d.Exceptions) - 1
		}
		if !slices.Contains(d.Exceptions[i].Rules, r.ID) {
			d.Exceptions[i].Rules = append(d.Exceptions[i].Rules, r.ID)
		}
		d.Warnings = append(d.Warnings, fmt.Sprintf("rule %s (%s) is waived by exception %s until %s: %s",
			r.ID, r.Message, x.ID, x.Expires.UTC().Format(time.RFC3339), x.Reason))
		return
	}
}

// conclude sets Allowed, Reason and the warn-mode warnings.
func (p *Policy) conclude(d *Decision) {
	var denied, warned, audited, excepted []string
	for i := range d.Rules {
		r := &d.Rules[i]
		switch {
		case r.Result == ResultExcepted:
			excepted = append(excepted, r.ID)
		case !r.Failed():
		case r.Mode == ModeEnforce:
			denied = append(denied, r.ID)
		case r.Mode == ModeWarn:
			warned = append(warned, r.ID)
			d.Warnings = append(d.Warnings, fmt.Sprintf("policy warning: rule %s: %s", r.ID, r.Message))
		default:
			audited = append(audited, r.ID)
		}
	}
	d.Allowed = len(denied) == 0
	var b strings.Builder
	if d.Allowed {
		fmt.Fprintf(&b, "allowed: %d of %d rules pass", len(d.Rules)-len(warned)-len(audited)-len(excepted), len(d.Rules))
	} else {
		fmt.Fprintf(&b, "denied: %s failed (enforce)", strings.Join(denied, ", "))
	}
	if len(warned) > 0 {
		fmt.Fprintf(&b, "; warnings: %s", strings.Join(warned, ", "))
	}
	if len(audited) > 0 {
		fmt.Fprintf(&b, "; audit only: %s", strings.Join(audited, ", "))
	}
	if len(excepted) > 0 {
		fmt.Fprintf(&b, "; excepted: %s", strings.Join(excepted, ", "))
	}
	d.Reason = b.String()
}

// decisionID is 48 bits of milliseconds since the epoch (so IDs sort by
// decision time) and 80 random bits, as 32 hex digits.
func decisionID(now time.Time) string {
	var b [16]byte
	// math/rand/v2's global source is ChaCha8, seeded by the runtime from
	// the kernel: unpredictable enough for an identifier, and without
	// crypto/rand's system call per decision.
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16|uint64(rand.Uint32()&0xffff))
	binary.BigEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Explanation is what one rule looked at: its expression and the input
// fields it reads, with their values in this input.
type Explanation struct {
	ID         string            `json:"id"`
	Expression string            `json:"expression"`
	Params     map[string]string `json:"params,omitempty"`
	Facts      []Fact            `json:"facts"`
}

// Fact is one input field a rule reads.
type Fact struct {
	Path  string `json:"path"` // e.g. image.config.user
	Value any    `json:"value"`
}

// Explain returns, for every rule result in d (made by Decide from in),
// the expression evaluated and the input fields it reads with their
// values. It is for people (`bulwark policy check --explain`), not for
// the hot path: it marshals the input.
func (p *Policy) Explain(in Input, d Decision) ([]Explanation, error) {
	tree, err := inputTree(&in)
	if err != nil {
		return nil, err
	}
	out := make([]Explanation, 0, len(d.Rules))
	for _, r := range d.Rules {
		ck := p.findCheck(r)
		if ck == nil {
			continue
		}
		e := Explanation{ID: r.ID, Expression: ck.expression, Params: ck.params, Facts: []Fact{}}
		for _, path := range ck.fields {
			e.Facts = append(e.Facts, Fact{Path: path, Value: lookup(tree, path)})
		}
		out = append(out, e)
	}
	return out, nil
}

// findCheck finds the check a result came from.
func (p *Policy) findCheck(r RuleResult) *check {
	for _, bi := range r.Bindings {
		if bi < 0 || bi >= len(p.Bindings) {
			continue
		}
		b := p.Bindings[bi]
		for i, id := range b.Rules {
			if id == r.ID && maps.Equal(b.checks[i].params, r.Params) {
				return b.checks[i]
			}
		}
	}
	return nil
}

// inputTree is the input's JSON form as nested maps: the same names and
// shapes the rules see.
func inputTree(in *Input) (map[string]any, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// lookup follows a dotted path; nil when a step is missing.
func lookup(tree map[string]any, path string) any {
	var v any = tree
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
