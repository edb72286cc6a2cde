package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Authorizer identifies the caller of a request. The registry defines what
// it needs; the auth package provides it. A nil Authorizer serves everyone
// (the open mode, for tests and explicitly unauthenticated deployments).
type Authorizer interface {
	// Authenticate returns the caller the request's credentials prove. A
	// request without credentials yields (nil, nil); invalid credentials an
	// error, which is answered 401.
	Authenticate(r *http.Request) (Caller, error)
	// Challenge is the WWW-Authenticate value that tells a client where to get
	// a token for scope ("" for none) and, when insufficient is set, that the
	// token it presented lacked that scope.
	Challenge(r *http.Request, scope string, insufficient bool) string
}

// Caller is an authenticated (or anonymous) caller and what its credentials
// allow.
type Caller interface {
	// Name identifies the caller in logs and audit events.
	Name() string
	// Kind is "user", "robot" or "anonymous".
	Kind() string
	// Can reports whether the caller's credentials for this request allow
	// action ("pull", "push", "delete", or "*" for registry:catalog) on the
	// named resource of typ ("repository" or "registry").
	Can(typ, name, action string) bool
	// MayPull reports whether the caller's account may pull from repo at
	// all, whatever this request's token covers. The catalog and anonymous
	// mounts ask about repositories no token names.
	MayPull(ctx context.Context, repo string) bool
	// Env is the deployment environment the caller is bound to (a robot
	// created with --env), "" for none. Pull policies decide for it.
	Env() string
	// Admin reports whether the caller is an administrator: one may fetch
	// quarantined content and release it. Asked only when content is
	// quarantined, so an implementation may look the account up.
	Admin(ctx context.Context) bool
}

// Event is an auditable registry operation, reported to Options.OnEvent.
type Event struct {
	Who  string
	Kind string
	// Action is "push", "pull", "delete", "denied" or, with a Gate, one of
	// the Action* policy actions.
	Action     string
	Repository string
	Reference  string
	Digest     digest.Digest
	Remote     string
	Outcome    string // "ok", "denied", "failed"
	Detail     string
	// DecisionID names the policy decision behind a policy event.
	DecisionID string
}

// Policy enforcement events (Event.Action).
const (
	// ActionQuarantine: a pushed manifest was stored quarantined.
	ActionQuarantine = "quarantine"
	// ActionRelease: a quarantined manifest was released, by a passing
	// decision or by an administrator.
	ActionRelease = "release"
	// ActionPolicyDeny: a request was refused by a policy decision or
	// because the content it asked for is quarantined.
	ActionPolicyDeny = "policy.deny"
	// ActionPolicyWarn: a request was allowed with policy warnings.
	ActionPolicyWarn = "policy.warn"
	// ActionPolicyError: the policy could not decide; the request was
	// refused.
	ActionPolicyError = "policy.error"
)

type callerKey struct{}

// callerFrom returns the request's caller (nil in open mode or anonymous).
func callerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// need is one scope a request requires.
type need struct {
	typ, name, action string
}

func (n need) scope() string { return n.typ + ":" + n.name + ":" + n.action }

// needs lists what a request requires, from its route and method. Mounts
// additionally need pull on their source, checked in the mount itself.
func needs(r *http.Request, rt route) []need {
	repo := func(a string) []need { return []need{{"repository", rt.Repo, a}} }
	switch rt.Kind {
	case RouteBase:
		return nil // any valid credentials, even anonymous ones
	case RouteCatalog:
		return []need{{"registry", "catalog", "*"}}
	case RouteTags, RouteReferrers:
		return repo("pull")
	case RouteManifest, RouteBlob:
		switch r.Method {
		case http.MethodPut:
			return repo("push")
		case http.MethodDelete:
			return repo("delete")
		}
		return repo("pull")
	case RouteUpload:
		return repo("push")
	}
	return nil
}

// authorize authenticates the request and checks its needs, answering with
// the challenge the Docker token flow expects when it falls short. It
// returns the request to continue with (carrying the caller) or an error.
func (reg *Registry) authorize(w http.ResponseWriter, r *http.Request, rt route) (*http.Request, error) {
	az := reg.opts.Authorizer
	if az == nil {
		return r, nil
	}
	caller, err := az.Authenticate(r)
	ns := needs(r, rt)
	scopes := make([]string, 0, len(ns))
	for _, n := range ns {
		scopes = append(scopes, n.scope())
	}
	scope := strings.Join(scopes, " ")
	if err != nil || caller == nil {
		msg := "authentication required"
		if err != nil {
			msg = err.Error()
		}
		w.Header().Set("WWW-Authenticate", az.Challenge(r, scope, false))
		return nil, newError(http.StatusUnauthorized, CodeUnauthorized, "%s", msg)
	}
	for _, n := range ns {
		if !caller.Can(n.typ, n.name, n.action) {
			reg.emit(r, caller, Event{Action: "denied", Repository: rt.Repo, Reference: rt.Ref, Outcome: "denied",
				Detail: fmt.Sprintf("%s %s needs %s", r.Method, rt.Kind, n.scope())})
			w.Header().Set("WWW-Authenticate", az.Challenge(r, scope, true))
			return nil, newError(http.StatusUnauthorized, CodeDenied, "requested access to the resource is denied: %s", n.scope())
		}
	}
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, caller)), nil
}

// mayPull reports whether the request's caller may pull from repo: by this
// request's token, or else by its account's permissions.
func (reg *Registry) mayPull(r *http.Request, repo string) bool {
	if reg.opts.Authorizer == nil {
		return true
	}
	c := callerFrom(r.Context())
	return c != nil && (c.Can("repository", repo, "pull") || c.MayPull(r.Context(), repo))
}

// emit reports an auditable event of a request.
func (reg *Registry) emit(r *http.Request, c Caller, e Event) {
	if reg.opts.OnEvent == nil {
		return
	}
	if c == nil {
		c = callerFrom(r.Context())
	}
	a := Actor{Who: "anonymous", Kind: "anonymous", Remote: r.RemoteAddr}
	if c != nil {
		a.Who, a.Kind = c.Name(), c.Kind()
	}
	reg.emitAs(r.Context(), a, e)
}

// Actor is who an event is attributed to outside a registry request (an
// administrator's release through the admin API, for example).
type Actor struct {
	Who, Kind, Remote string
}

func (reg *Registry) emitAs(ctx context.Context, a Actor, e Event) {
	if reg.opts.OnEvent == nil {
		return
	}
	e.Who, e.Kind, e.Remote = a.Who, a.Kind, a.Remote
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	reg.opts.OnEvent(ctx, e)
}
