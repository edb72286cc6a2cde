package policy

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/yamlnode"
)

// The policy file is walked as a yaml.Node tree rather than decoded into
// structs: that gives every error its line, refuses unknown keys (what
// KnownFields does for structs) and duplicate keys in every mapping, and
// refuses anchors and aliases, which a policy never needs and which make
// "what does this file say" harder to answer.

// namePattern is the grammar of rule, exception and environment names:
// safe in log lines, HTTP headers and command-line flags.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

const maxNameLength = 64

type loader struct {
	c *compiler
	p *Policy
	// checks shares a built-in's compiled check between bindings that give
	// it the same parameters, so a decision evaluates it once.
	checks map[string]*check
}

// Bounds on a policy's size: far beyond any real policy, they keep a
// hostile file from costing minutes of compilation.
const (
	MaxRules      = 1000
	MaxBindings   = 1000
	MaxExceptions = 5000
)

func errAt(n *yaml.Node, format string, args ...any) error {
	return &PolicyError{Line: n.Line, Err: fmt.Errorf(format, args...)}
}

func (l *loader) load(data []byte) error {
	root, err := singleDocument(data)
	if err != nil {
		return err
	}
	f, err := mapping(root, "the policy", "version", "rules", "bindings", "exceptions")
	if err != nil {
		return err
	}
	if f["version"] == nil {
		return errAt(root, `missing "version" (the only version is 1)`)
	}
	if n := f["version"]; n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Value != "1" {
		return errAt(n, "version must be the integer 1, not %s", nodeKind(n))
	}
	if n := f["rules"]; n != nil {
		items, err := sequence(n, "rules", true)
		if err != nil {
			return err
		}
		if len(items) > MaxRules {
			return errAt(n, "more than %d rules", MaxRules)
		}
		for i, item := range items {
			if err := l.rule(item, i); err != nil {
				return err
			}
		}
	}
	if n := f["bindings"]; n != nil {
		items, err := sequence(n, "bindings", true)
		if err != nil {
			return err
		}
		if len(items) > MaxBindings {
			return errAt(n, "more than %d bindings", MaxBindings)
		}
		for i, item := range items {
			if err := l.binding(item, i); err != nil {
				return err
			}
		}
	}
	if n := f["exceptions"]; n != nil {
		items, err := sequence(n, "exceptions", true)
		if err != nil {
			return err
		}
		if len(items) > MaxExceptions {
			return errAt(n, "more than %d exceptions", MaxExceptions)
		}
		for i, item := range items {
			if err := l.exception(item, i); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *loader) rule(n *yaml.Node, i int) error {
	what := fmt.Sprintf("rules[%d]", i)
	f, err := mapping(n, what, "id", "expression", "message", "message_expression", "remediation", "severity")
	if err != nil {
		return err
	}
	id, err := name(n, f["id"], what+": id")
	if err != nil {
		return err
	}
	what = fmt.Sprintf("rule %q", id)
	if prev, ok := l.p.byID[id]; ok {
		if prev.Builtin {
			return errAt(f["id"], "rule id %q is a built-in rule; use it in a binding as is, or choose another id", id)
		}
		return errAt(f["id"], "rule %q is defined twice (first on line %d)", id, prev.Line)
	}
	r := &Rule{ID: id, Line: n.Line, Severity: SeverityMedium}
	if f["expression"] == nil {
		return errAt(n, "%s: missing expression", what)
	}
	if r.Expression, err = str(f["expression"], what+": expression"); err != nil {
		return err
	}
	if f["message"] == nil && f["message_expression"] == nil {
		return errAt(n, "%s: missing message (or message_expression)", what)
	}
	if m := f["message"]; m != nil {
		if r.Message, err = str(m, what+": message"); err != nil {
			return err
		}
	}
	if m := f["message_expression"]; m != nil {
		if r.MessageExpression, err = str(m, what+": message_expression"); err != nil {
			return err
		}
	}
	if m := f["remediation"]; m != nil {
		if r.Remediation, err = str(m, what+": remediation"); err != nil {
			return err
		}
	}
	if m := f["severity"]; m != nil {
		s, err := str(m, what+": severity")
		if err != nil {
			return err
		}
		if !slices.Contains(severities, Severity(s)) {
			return errAt(m, "%s: severity %q is not one of %s", what, s, joinSeverities())
		}
		r.Severity = Severity(s)
	}
	r.check, err = l.c.compileRule(r, r.Expression, r.MessageExpression, nil, f["expression"], f["message_expression"])
	if err != nil {
		return err
	}
	l.p.Rules = append(l.p.Rules, r)
	l.p.byID[id] = r
	return nil
}

func joinSeverities() string {
	s := make([]string, len(severities))
	for i, v := range severities {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func (l *loader) binding(n *yaml.Node, i int) error {
	what := fmt.Sprintf("bindings[%d]", i)
	f, err := mapping(n, what, "name", "environments", "repositories", "actions", "rules", "params", "mode")
	if err != nil {
		return err
	}
	b := &Binding{Index: i, Line: n.Line, self: []int{i}}
	if m := f["name"]; m != nil {
		if b.Name, err = name(n, m, what+": name"); err != nil {
			return err
		}
		what = fmt.Sprintf("binding %q", b.Name)
	}
	for _, k := range []string{"environments", "repositories", "actions", "rules", "mode"} {
		if f[k] == nil {
			return errAt(n, "%s: missing %s", what, k)
		}
	}
	if b.Environments, err = environments(f["environments"], what+": environments"); err != nil {
		return err
	}
	if b.Repositories, err = globs(f["repositories"], what+": repositories"); err != nil {
		return err
	}
	actions, nodes, err := strs(f["actions"], what+": actions")
	if err != nil {
		return err
	}
	for j, a := range actions {
		if !Action(a).valid() {
			return errAt(nodes[j], "%s: action %q is not one of push, pull, run", what, a)
		}
		if slices.Contains(b.Actions, Action(a)) {
			return errAt(nodes[j], "%s: action %q is listed twice", what, a)
		}
		b.Actions = append(b.Actions, Action(a))
	}
	mode, err := str(f["mode"], what+": mode")
	if err != nil {
		return err
	}
	b.Mode = Mode(mode)
	if b.Mode.rank() == 0 {
		return errAt(f["mode"], "%s: mode %q is not one of audit, warn, enforce", what, mode)
	}

	ids, idNodes, err := strs(f["rules"], what+": rules")
	if err != nil {
		return err
	}
	params, paramNodes, err := bindingParams(f["params"], what)
	if err != nil {
		return err
	}
	for id, pn := range paramNodes {
		if !slices.Contains(ids, id) {
			return errAt(pn, "%s: params for rule %q, which the binding does not apply", what, id)
		}
	}
	for j, id := range ids {
		r, ok := l.p.byID[id]
		if !ok {
			return errAt(idNodes[j], "%s: unknown rule %q (define it under rules, or use a built-in: %s)", what, id, strings.Join(builtinIDs(), ", "))
		}
		if slices.Contains(b.Rules, id) {
			return errAt(idNodes[j], "%s: rule %q is listed twice", what, id)
		}
		c := r.check
		if p := params[id]; p != nil {
			if !r.Builtin || len(r.Params) == 0 {
				return errAt(paramNodes[id], "%s: rule %q takes no parameters", what, id)
			}
			key := paramsKey(id, p)
			if c = l.checks[key]; c == nil {
				if c, err = l.c.builtinCheck(r, p, paramNodes[id]); err != nil {
					return err
				}
				if l.checks == nil {
					l.checks = map[string]*check{}
				}
				l.checks[key] = c
			}
		}
		b.Rules = append(b.Rules, id)
		b.checks = append(b.checks, c)
	}
	b.Params = params
	l.p.Bindings = append(l.p.Bindings, b)
	return nil
}

// paramsKey identifies a built-in with parameters.
func paramsKey(id string, p map[string]string) string {
	keys := slices.Sorted(maps.Keys(p))
	var b strings.Builder
	b.WriteString(id)
	for _, k := range keys {
		fmt.Fprintf(&b, "\x00%s=%s", k, p[k])
	}
	return b.String()
}

// bindingParams reads "params: {rule-id: {name: value}}".
func bindingParams(n *yaml.Node, what string) (map[string]map[string]string, map[string]*yaml.Node, error) {
	if n == nil {
		return nil, nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, nil, errAt(n, "%s: params must be a mapping of rule id to parameters, not %s", what, nodeKind(n))
	}
	out := map[string]map[string]string{}
	nodes := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		id, err := str(k, what+": params key")
		if err != nil {
			return nil, nil, err
		}
		if out[id] != nil {
			return nil, nil, errAt(k, "%s: params for rule %q given twice", what, id)
		}
		if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
			return nil, nil, errAt(v, "%s: params for rule %q must be a non-empty mapping, not %s", what, id, nodeKind(v))
		}
		ps := map[string]string{}
		for j := 0; j+1 < len(v.Content); j += 2 {
			pk, pv := v.Content[j], v.Content[j+1]
			key, err := str(pk, what+": params key")
			if err != nil {
				return nil, nil, err
			}
			if _, dup := ps[key]; dup {
				return nil, nil, errAt(pk, "%s: parameter %q of rule %q given twice", what, key, id)
			}
			val, err := paramValue(pv, fmt.Sprintf("%s: params: %s: %s", what, id, key))
			if err != nil {
				return nil, nil, err
			}
			ps[key] = val
		}
		out[id], nodes[id] = ps, v
	}
	return out, nodes, nil
}

// paramValue reads a scalar or a list of scalars; a list is kept as its
// items joined by newlines (no parameter item may contain one).
func paramValue(n *yaml.Node, what string) (string, error) {
	if n.Kind == yaml.SequenceNode {
		items, nodes, err := strs(n, what)
		if err != nil {
			return "", err
		}
		for i, s := range items {
			if strings.ContainsAny(s, "\n\r") {
				return "", errAt(nodes[i], "%s: an item may not contain a line break", what)
			}
		}
		return strings.Join(items, "\n"), nil
	}
	return str(n, what)
}

func (l *loader) exception(n *yaml.Node, i int) error {
	what := fmt.Sprintf("exceptions[%d]", i)
	f, err := mapping(n, what, "id", "digest", "repositories", "environments", "rules", "reason",
		"requested_by", "approved_by", "expires", "created")
	if err != nil {
		return err
	}
	x := &Exception{Line: n.Line}
	if x.ID, err = name(n, f["id"], what+": id"); err != nil {
		return err
	}
	what = fmt.Sprintf("exception %q", x.ID)
	for _, prev := range l.p.Exceptions {
		if prev.ID == x.ID {
			return errAt(f["id"], "exception %q is defined twice (first on line %d)", x.ID, prev.Line)
		}
	}
	switch d, r := f["digest"], f["repositories"]; {
	case d != nil && r != nil:
		return errAt(r, "%s: give digest or repositories, not both", what)
	case d != nil:
		s, err := str(d, what+": digest")
		if err != nil {
			return err
		}
		dg, err := oci.ParseDigest(s)
		if err != nil {
			return errAt(d, "%s: digest: %v", what, err)
		}
		x.Digest = dg.String()
	case r != nil:
		if x.Repositories, err = globs(r, what+": repositories"); err != nil {
			return err
		}
	default:
		return errAt(n, "%s: missing scope: give digest (one image) or repositories (globs)", what)
	}
	if e := f["environments"]; e != nil {
		if x.Environments, err = environments(e, what+": environments"); err != nil {
			return err
		}
	}
	if f["rules"] == nil {
		return errAt(n, "%s: missing rules (the rule ids it waives)", what)
	}
	ids, nodes, err := strs(f["rules"], what+": rules")
	if err != nil {
		return err
	}
	for j, id := range ids {
		if _, ok := l.p.byID[id]; !ok {
			return errAt(nodes[j], "%s: unknown rule %q", what, id)
		}
		if slices.Contains(x.Rules, id) {
			return errAt(nodes[j], "%s: rule %q is listed twice", what, id)
		}
		x.Rules = append(x.Rules, id)
	}
	for _, k := range []string{"reason", "requested_by", "approved_by", "expires"} {
		if f[k] == nil {
			return errAt(n, "%s: missing %s (an exception needs a reason, a requester, a different approver and an expiry)", what, k)
		}
	}
	if x.Reason, err = str(f["reason"], what+": reason"); err != nil {
		return err
	}
	if strings.TrimSpace(x.Reason) == "" {
		return errAt(f["reason"], "%s: reason is blank", what)
	}
	if x.RequestedBy, err = str(f["requested_by"], what+": requested_by"); err != nil {
		return err
	}
	if x.ApprovedBy, err = str(f["approved_by"], what+": approved_by"); err != nil {
		return err
	}
	if strings.TrimSpace(x.ApprovedBy) == "" || strings.TrimSpace(x.RequestedBy) == "" {
		return errAt(n, "%s: requested_by and approved_by must name people", what)
	}
	if strings.EqualFold(strings.TrimSpace(x.ApprovedBy), strings.TrimSpace(x.RequestedBy)) {
		return errAt(f["approved_by"], "%s: approved by its requester %q: an exception needs a second person's approval", what, x.RequestedBy)
	}
	if x.Expires, err = timestamp(f["expires"], what+": expires"); err != nil {
		return err
	}
	if c := f["created"]; c != nil {
		if x.Created, err = timestamp(c, what+": created"); err != nil {
			return err
		}
		if !x.Created.Before(x.Expires) {
			return errAt(c, "%s: created %s is not before expires %s", what,
				x.Created.Format(time.RFC3339), x.Expires.Format(time.RFC3339))
		}
	}
	l.p.Exceptions = append(l.p.Exceptions, x)
	return nil
}

// timestamp reads an RFC 3339 time. YAML would resolve an unquoted
// timestamp itself (and accept forms without a zone); the value is taken
// as written and parsed strictly.
func timestamp(n *yaml.Node, what string) (time.Time, error) {
	if n.Kind != yaml.ScalarNode {
		return time.Time{}, errAt(n, "%s: expected an RFC 3339 time, not %s", what, nodeKind(n))
	}
	t, err := time.Parse(time.RFC3339, n.Value)
	if err != nil {
		return time.Time{}, errAt(n, "%s: %q is not an RFC 3339 time with a zone (e.g. 2025-07-01T00:00:00Z)", what, n.Value)
	}
	return t.UTC(), nil
}

func name(parent, n *yaml.Node, what string) (string, error) {
	if n == nil {
		return "", errAt(parent, "%s: missing", what)
	}
	s, err := str(n, what)
	if err != nil {
		return "", err
	}
	if len(s) > maxNameLength || !namePattern.MatchString(s) {
		return "", errAt(n, "%s: %q must match [a-z0-9][a-z0-9._-]* and be at most %d characters", what, s, maxNameLength)
	}
	return s, nil
}

func environments(n *yaml.Node, what string) ([]string, error) {
	envs, nodes, err := strs(n, what)
	if err != nil {
		return nil, err
	}
	for i, e := range envs {
		if e != "*" && (len(e) > maxNameLength || !namePattern.MatchString(e)) {
			return nil, errAt(nodes[i], "%s: %q is not an environment name ([a-z0-9][a-z0-9._-]*) or \"*\"", what, e)
		}
		if slices.Contains(envs[:i], e) {
			return nil, errAt(nodes[i], "%s: %q is listed twice", what, e)
		}
	}
	return envs, nil
}

func globs(n *yaml.Node, what string) ([]string, error) {
	gs, nodes, err := strs(n, what)
	if err != nil {
		return nil, err
	}
	for i, g := range gs {
		if err := auth.ValidateGlob(g); err != nil {
			return nil, errAt(nodes[i], "%s: %v", what, err)
		}
	}
	return gs, nil
}

func matchAny(globs []string, repo string) bool {
	for _, g := range globs {
		if auth.MatchGlob(g, repo) {
			return true
		}
	}
	return false
}

// The strict YAML reading is yamlnode's; these put its errors' lines into
// PolicyError.

func lineErr(err error) error {
	var ye *yamlnode.Error
	if errors.As(err, &ye) {
		return &PolicyError{Line: ye.Line, Err: ye.Err}
	}
	return err
}

func singleDocument(data []byte) (*yaml.Node, error) {
	n, err := yamlnode.SingleDocument(data)
	return n, lineErr(err)
}

func mapping(n *yaml.Node, what string, known ...string) (map[string]*yaml.Node, error) {
	m, err := yamlnode.Mapping(n, what, known...)
	return m, lineErr(err)
}

func sequence(n *yaml.Node, what string, allowEmpty bool) ([]*yaml.Node, error) {
	items, err := yamlnode.Sequence(n, what, allowEmpty)
	return items, lineErr(err)
}

func strs(n *yaml.Node, what string) ([]string, []*yaml.Node, error) {
	out, items, err := yamlnode.Strings(n, what)
	return out, items, lineErr(err)
}

func str(n *yaml.Node, what string) (string, error) {
	v, err := yamlnode.String(n, what)
	return v, lineErr(err)
}

func nodeKind(n *yaml.Node) string { return yamlnode.Kind(n) }
