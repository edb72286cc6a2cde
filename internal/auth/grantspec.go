package auth

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidGrant reports a malformed grant: a bad glob, an unknown action,
// or no actions at all.
var ErrInvalidGrant = errors.New("invalid grant")

// grantableActions are the actions a grant may hold, in the canonical order
// grants are stored and printed in.
var grantableActions = [...]Action{ActionPull, ActionPush, ActionDelete}

// ParseGrantSpec parses the CLI's grant syntax "REPO_GLOB:ACTIONS", e.g.
// "team/*:pull,push". ACTIONS is a comma-separated subset of pull, push and
// delete; the result's actions are deduplicated and in canonical order.
// Repository names cannot contain ':', so the last ':' separates the parts.
func ParseGrantSpec(s string) (Grant, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Grant{}, fmt.Errorf("%w %q: want REPO_GLOB:ACTIONS, e.g. 'team/*:pull,push'", ErrInvalidGrant, s)
	}
	glob, list := s[:i], s[i+1:]
	if err := ValidateGlob(glob); err != nil {
		return Grant{}, fmt.Errorf("%w %q: %w", ErrInvalidGrant, s, err)
	}
	var actions []Action
	for a := range strings.SplitSeq(list, ",") {
		actions = append(actions, Action(strings.TrimSpace(a)))
	}
	actions, err := normalizeGrantActions(actions)
	if err != nil {
		return Grant{}, fmt.Errorf("%w %q: %w", ErrInvalidGrant, s, err)
	}
	return Grant{Glob: glob, Actions: actions}, nil
}

// FormatGrantSpec is the inverse of ParseGrantSpec.
func FormatGrantSpec(g Grant) string {
	return g.Glob + ":" + joinGrantActions(g.Actions)
}

// normalizeGrantActions checks that actions is a non-empty subset of the
// grantable actions and returns it deduplicated, in canonical order.
func normalizeGrantActions(actions []Action) ([]Action, error) {
	if len(actions) == 0 {
		return nil, errors.New("no actions (want some of pull, push, delete)")
	}
	var have [len(grantableActions)]bool
	for _, a := range actions {
		i := grantableIndex(a)
		if i < 0 {
			return nil, fmt.Errorf("unknown action %q (want pull, push or delete)", a)
		}
		have[i] = true
	}
	out := make([]Action, 0, len(grantableActions))
	for i, a := range grantableActions {
		if have[i] {
			out = append(out, a)
		}
	}
	return out, nil
}

func grantableIndex(a Action) int {
	for i, g := range grantableActions {
		if a == g {
			return i
		}
	}
	return -1
}

func joinGrantActions(actions []Action) string {
	s := make([]string, len(actions))
	for i, a := range actions {
		s[i] = string(a)
	}
	return strings.Join(s, ",")
}

// splitGrantActions reads the stored form; it was written canonically, so
// no validation beyond that is needed.
func splitGrantActions(s string) []Action {
	var out []Action
	for a := range strings.SplitSeq(s, ",") {
		if a != "" {
			out = append(out, Action(a))
		}
	}
	return out
}

// normalizeGrants validates grants and merges entries with the same glob,
// so a robot created with "a/*:pull" and "a/*:push" holds one grant.
func normalizeGrants(grants []Grant) ([]Grant, error) {
	var out []Grant
	index := map[string]int{}
	for _, g := range grants {
		if err := ValidateGlob(g.Glob); err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidGrant, g.Glob, err)
		}
		actions, err := normalizeGrantActions(g.Actions)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidGrant, g.Glob, err)
		}
		if i, ok := index[g.Glob]; ok {
			merged, _ := normalizeGrantActions(append(out[i].Actions, actions...))
			out[i].Actions = merged
			continue
		}
		index[g.Glob] = len(out)
		out = append(out, Grant{Glob: g.Glob, Actions: actions})
	}
	return out, nil
}
