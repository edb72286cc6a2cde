package auth

import (
	"fmt"
	"strings"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Resource types of the Docker token spec that bulwark understands.
const (
	// ScopeRepository is the type of "repository:NAME:ACTIONS" scopes.
	ScopeRepository = "repository"
	// ScopeRegistry is the type of the one registry scope, "registry:catalog:*".
	ScopeRegistry = "registry"
	// CatalogName is the name in "registry:catalog:*".
	CatalogName = "catalog"
)

// ActionAll is "*" in a scope. In a repository scope it is shorthand for
// every repository action and is expanded when parsed; it survives only in
// "registry:catalog:*", whose one action it is.
const ActionAll Action = "*"

// Limits on what a client may request. Real clients ask for one scope, two
// for a cross-repository mount; the limits only stop abuse.
const (
	// MaxScopeLength bounds one scope: "repository:" + a 255-character name
	// + ":pull,push,delete" fits with room to spare.
	MaxScopeLength = 512
	// MaxScopes bounds the scopes of one token request.
	MaxScopes = 32
)

// repositoryActions is every repository action, in canonical order.
var repositoryActions = []Action{ActionPull, ActionPush, ActionDelete}

// Scope is one parsed scope of the Docker token spec.
type Scope struct {
	Type string // ScopeRepository or ScopeRegistry
	Name string // a repository name, or CatalogName
	// Actions are distinct and in canonical order (pull, push, delete);
	// for registry:catalog exactly [ActionAll].
	Actions []Action
}

// String renders the scope in the spec's grammar; ParseScope(s.String())
// gives s back.
func (s Scope) String() string {
	acts := make([]string, len(s.Actions))
	for i, a := range s.Actions {
		acts[i] = string(a)
	}
	return s.Type + ":" + s.Name + ":" + strings.Join(acts, ",")
}

// ParseScope parses one scope:
//
//	repository:NAME:ACTION[,ACTION...]   ACTION in pull, push, delete, *
//	registry:catalog:*
//
// It is deliberately stricter than the spec's general grammar, and every
// refusal wraps ErrInvalidScope:
//   - NAME must be a valid repository name (oci.ValidateRepository), which
//     refuses traversal ("team/../prod"), percent-escapes ("%2e%2e"), empty
//     components ("a//b"), upper case, and wildcards ("team/*"): a scope asks
//     for one repository, globs belong to grants only. The grammar has no
//     ':' in names, so a scope has exactly two colons (the registry host
//     never appears in a scope).
//   - Resource classes ("repository(plugin):…") and other types are refused.
//   - Unknown actions are refused rather than silently dropped: the spec
//     lets a token server ignore them, but no client bulwark serves sends
//     any, and a clear 400 is easier to debug than a token that silently
//     lacks what was asked for. Empty actions ("pull,") are refused too.
//
// "*" expands to pull, push and delete; duplicates collapse.
func ParseScope(s string) (Scope, error) {
	if len(s) > MaxScopeLength {
		return Scope{}, fmt.Errorf("%w: longer than %d characters", ErrInvalidScope, MaxScopeLength)
	}
	typ, rest, ok1 := strings.Cut(s, ":")
	name, acts, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return Scope{}, fmt.Errorf("%w: %q: want TYPE:NAME:ACTIONS", ErrInvalidScope, clip(s))
	}
	switch typ {
	case ScopeRepository:
		if err := oci.ValidateRepository(name); err != nil {
			return Scope{}, fmt.Errorf("%w: %q: %w", ErrInvalidScope, clip(s), err)
		}
		actions, err := parseActions(acts)
		if err != nil {
			return Scope{}, fmt.Errorf("%w: %q: %v", ErrInvalidScope, clip(s), err)
		}
		return Scope{Type: typ, Name: name, Actions: actions}, nil
	case ScopeRegistry:
		if name != CatalogName || acts != string(ActionAll) {
			return Scope{}, fmt.Errorf("%w: %q: the only registry scope is registry:catalog:*", ErrInvalidScope, clip(s))
		}
		return Scope{Type: typ, Name: name, Actions: []Action{ActionAll}}, nil
	default:
		return Scope{}, fmt.Errorf("%w: %q: unknown resource type %q", ErrInvalidScope, clip(s), clip(typ))
	}
}

// parseActions parses a comma-separated action list into canonical order.
func parseActions(list string) ([]Action, error) {
	var want [3]bool // indexed like repositoryActions
	for a := range strings.SplitSeq(list, ",") {
		switch Action(a) {
		case ActionPull:
			want[0] = true
		case ActionPush:
			want[1] = true
		case ActionDelete:
			want[2] = true
		case ActionAll:
			want = [3]bool{true, true, true}
		case "":
			return nil, fmt.Errorf("empty action in %q", clip(list))
		default:
			return nil, fmt.Errorf("unknown action %q (want pull, push, delete or *)", clip(a))
		}
	}
	out := make([]Action, 0, 3)
	for i, ok := range want {
		if ok {
			out = append(out, repositoryActions[i])
		}
	}
	return out, nil
}

// ParseScopes parses the scope parameters of a token request. Docker sends
// one "scope" parameter per scope; the spec also allows several scopes in
// one parameter, separated by spaces. Empty strings between spaces are
// ignored (an empty "scope=" asks for nothing). Scopes for the same
// resource are merged, keeping the order of first appearance. Any invalid
// scope fails the whole request.
func ParseScopes(params []string) ([]Scope, error) {
	var out []Scope
	index := map[string]int{} // "type:name" → position in out
	for _, p := range params {
		if len(p) > MaxScopes*(MaxScopeLength+1) {
			return nil, fmt.Errorf("%w: scope parameter longer than %d characters", ErrInvalidScope, MaxScopes*(MaxScopeLength+1))
		}
		for raw := range strings.SplitSeq(p, " ") {
			if raw == "" {
				continue
			}
			sc, err := ParseScope(raw)
			if err != nil {
				return nil, err
			}
			key := sc.Type + ":" + sc.Name
			if i, ok := index[key]; ok {
				out[i].Actions = unionActions(out[i].Actions, sc.Actions)
				continue
			}
			if len(out) == MaxScopes {
				return nil, fmt.Errorf("%w: more than %d scopes", ErrInvalidScope, MaxScopes)
			}
			index[key] = len(out)
			out = append(out, sc)
		}
	}
	return out, nil
}

// unionActions merges two canonical action lists into one.
func unionActions(a, b []Action) []Action {
	if len(a) == 1 && a[0] == ActionAll {
		return a
	}
	var out []Action
	for _, x := range repositoryActions {
		if hasAction(a, x) || hasAction(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func hasAction(list []Action, a Action) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// Intersect computes a token's access: the requested scopes intersected
// with what the principal may do.
//
//   - Admin users get every repository action they ask for.
//   - Other users and robots get the actions of grants whose glob matches
//     the repository (a robot's grants are its own, a user's come from the
//     account store: the caller passes them in), plus pull where
//     anonymousPull allows it to anyone.
//   - Anonymous principals (and a zero Principal) get pull on repositories
//     matching an anonymousPull glob, and nothing else.
//   - registry:catalog:* goes to every authenticated principal; the
//     registry then lists only repositories the caller may pull (Allowed).
//
// Scopes granted nothing are left out, so the result may be empty (never
// nil): that is how an anonymous `docker pull` of a public image starts.
func Intersect(requested []Scope, p Principal, grants []Grant, anonymousPull []string) []Access {
	out := []Access{}
	for _, sc := range requested {
		switch sc.Type {
		case ScopeRegistry:
			if sc.Name == CatalogName && authenticated(p) {
				out = append(out, Access{Type: ScopeRegistry, Name: CatalogName, Actions: []string{string(ActionAll)}})
			}
		case ScopeRepository:
			var acts []string
			for _, a := range sc.Actions {
				if Allowed(p, grants, anonymousPull, sc.Name, a) {
					acts = append(acts, string(a))
				}
			}
			if len(acts) > 0 {
				out = append(out, Access{Type: ScopeRepository, Name: sc.Name, Actions: acts})
			}
		}
	}
	return out
}

// Allowed reports whether p may perform action a on repository repo. It is
// the one permission rule: Intersect uses it for tokens, and the registry
// uses it to filter the catalog and for any check it makes without a token.
// Anything unknown (an invalid name, an action other than pull, push or
// delete, an unknown principal kind) is denied.
func Allowed(p Principal, grants []Grant, anonymousPull []string, repo string, a Action) bool {
	if !hasAction(repositoryActions, a) || oci.ValidateRepository(repo) != nil {
		return false
	}
	if p.Kind == KindUser && p.Role == RoleAdmin {
		return true
	}
	// What anyone may pull, an account may pull too: logging in must never
	// lose access that anonymous callers have.
	if a == ActionPull {
		for _, g := range anonymousPull {
			if MatchGlob(g, repo) {
				return true
			}
		}
	}
	if !authenticated(p) {
		return false
	}
	for _, g := range grants {
		if hasAction(g.Actions, a) && MatchGlob(g.Glob, repo) {
			return true
		}
	}
	return false
}

// authenticated reports whether p is a real account, as opposed to an
// anonymous caller or a zero Principal.
func authenticated(p Principal) bool {
	return (p.Kind == KindUser || p.Kind == KindRobot) && p.Name != ""
}

// clip shortens client input echoed in errors, so a 10 KB scope is not
// reflected back in full.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
