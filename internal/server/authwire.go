package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/registry"
)

// security is the server's authentication, authorization and audit wiring.
type security struct {
	cfg      config.Auth
	accounts *auth.Accounts
	keys     *auth.KeySet
	issuer   *auth.Issuer
	throttle *auth.Throttle
	service  *auth.Service
	audit    *audit.Log
	tokens   *tokenCache
	log      *slog.Logger
	now      func() time.Time
}

// Bootstrap reports the admin account created on first start.
type Bootstrap struct {
	Created  bool
	Password string // generated; empty when taken from BULWARK_ADMIN_PASSWORD
}

func openSecurity(ctx context.Context, cfg config.Config, log *slog.Logger, adminPassword string) (*security, Bootstrap, error) {
	var boot Bootstrap
	// 4096 queued events (about 1 MiB) absorb bursts far beyond what one
	// batch's fsync takes to drain; the default 65536 would cost ~13 MiB of
	// resident memory for nothing.
	al, err := audit.Open(audit.PathIn(cfg.Data), audit.Options{Logger: log, Buffer: 4096})
	if err != nil {
		return nil, boot, fmt.Errorf("open audit log: %w", err)
	}
	s := &security{cfg: cfg.Auth, audit: al, log: log, now: time.Now, tokens: newTokenCache(10000)}
	if !cfg.Auth.Enabled {
		return s, boot, nil
	}
	fail := func(err error) (*security, Bootstrap, error) {
		s.close()
		return nil, boot, err
	}
	if s.accounts, err = auth.OpenAccounts(ctx, auth.AccountsPath(cfg.Data), auth.AccountsOptions{Logger: log}); err != nil {
		return fail(err)
	}
	created, generated, err := s.accounts.EnsureAdmin(ctx, adminPassword)
	if err != nil {
		return fail(fmt.Errorf("bootstrap admin: %w", err))
	}
	boot = Bootstrap{Created: created, Password: generated}
	if created {
		al.Record(audit.Event{Who: audit.SystemWho, Kind: audit.KindSystem, Action: audit.ActionUserAdd, Outcome: audit.OutcomeOK,
			Detail: "admin: bootstrap administrator created on first start", Remote: "local"})
	}
	if s.keys, err = auth.OpenKeySet(filepath.Join(cfg.Data, "auth", "keys"), auth.KeySetOptions{Logger: log}); err != nil {
		return fail(err)
	}
	if s.issuer, err = auth.NewIssuer(auth.IssuerConfig{Keys: s.keys, Issuer: "bulwark", Service: cfg.Auth.Service,
		TTL: time.Duration(cfg.Auth.TokenTTL)}); err != nil {
		return fail(err)
	}
	s.throttle = auth.NewThrottle(auth.ThrottleConfig{OnThrottle: func(e auth.ThrottleEvent) {
		al.Record(audit.Event{Who: e.Account, Kind: audit.KindUser, Action: "login", Remote: e.Source,
			Outcome: audit.OutcomeDenied, Detail: fmt.Sprintf("throttled by %s after %d failures, wait %s", e.By, e.Failures, e.Wait)})
	}})
	s.service = auth.NewService(auth.ServiceConfig{
		Issuer: s.issuer, Authenticator: s.accounts, AnonymousPull: cfg.Auth.AnonymousPull,
		Throttle: s.throttle, Logger: log, OnEvent: s.tokenEvent,
	})
	return s, boot, nil
}

func (s *security) close() error {
	var errs []error
	if s.accounts != nil {
		errs = append(errs, s.accounts.Close())
	}
	if s.audit != nil {
		errs = append(errs, s.audit.Close())
	}
	return errors.Join(errs...)
}

// tokenEvent audits logins and token issuance.
func (s *security) tokenEvent(e auth.Event) {
	outcome := audit.OutcomeOK
	switch e.Outcome {
	case auth.OutcomeFailure:
		outcome = audit.OutcomeFailed
	case auth.OutcomeThrottled, auth.OutcomeDenied:
		outcome = audit.OutcomeDenied
	}
	who, kind := e.Who, string(e.Kind)
	if who == "" {
		who, kind = "anonymous", audit.KindAnonymous
	}
	if kind == "" {
		kind = audit.KindUser
	}
	detail := e.Detail
	if len(e.Granted) > 0 || len(e.Scopes) > 0 {
		detail = strings.TrimSpace(fmt.Sprintf("%s requested=[%s] granted=[%s]", detail,
			strings.Join(e.Scopes, " "), strings.Join(e.Granted, " ")))
	}
	s.audit.Record(audit.Event{Time: e.Time, Who: who, Kind: kind, Action: e.Action, Remote: e.Remote,
		Outcome: outcome, Detail: detail})
}

// registryEvent audits registry operations.
func (s *security) registryEvent(_ context.Context, e registry.Event) {
	s.audit.Record(AuditEvent(e))
}

// AuditEvent maps a registry event to its audit entry. Policy events carry
// their decision id at the start of Detail ("decision ID: …"), since the
// audit format has no field for it; `bulwark audit` and the decision log
// find it there.
func AuditEvent(e registry.Event) audit.Event {
	outcome := audit.OutcomeOK
	switch e.Outcome {
	case "denied":
		outcome = audit.OutcomeDenied
	case "failed":
		outcome = audit.OutcomeFailed
	}
	detail := e.Detail
	if e.DecisionID != "" {
		detail = "decision " + e.DecisionID + ": " + detail
	}
	return audit.Event{Who: e.Who, Kind: e.Kind, Action: e.Action, Repository: e.Repository,
		Reference: e.Reference, Digest: e.Digest.String(), Remote: remoteIP(e.Remote), Outcome: outcome, Detail: detail}
}

func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// Authenticate implements registry.Authorizer: a Bearer token from the
// token service, or nothing (then the registry challenges).
func (s *security) Authenticate(r *http.Request) (registry.Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	if len(h) > auth.MaxAuthorizationHeader {
		return nil, fmt.Errorf("%w: Authorization header too large", auth.ErrInvalidToken)
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, fmt.Errorf("%w: the registry takes Bearer tokens from its token service", auth.ErrInvalidToken)
	}
	token = strings.TrimSpace(token)
	now := s.now()
	claims := s.tokens.get(token, now)
	if claims == nil {
		var err error
		if claims, err = s.issuer.Verify(token, now); err != nil {
			return nil, err
		}
		s.tokens.put(token, claims, now)
	}
	return &tokenCaller{c: claims, sec: s}, nil
}

// Challenge implements registry.Authorizer.
func (s *security) Challenge(r *http.Request, scope string, insufficient bool) string {
	var scopes []auth.Scope
	for _, sc := range strings.Fields(scope) {
		if parsed, err := auth.ParseScope(sc); err == nil {
			scopes = append(scopes, parsed)
		}
	}
	code := ""
	if insufficient {
		code = "insufficient_scope"
	}
	return auth.BearerChallenge(s.realm(r), s.cfg.Service, scopes, code)
}

// realm is the token endpoint clients are sent to: configured, or this
// server as the client reached it.
func (s *security) realm(r *http.Request) string {
	if s.cfg.Realm != "" {
		return s.cfg.Realm
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/token"
}

// tokenCaller is a caller proven by a token. Its account's permissions are
// looked up only when a request asks about repositories the token does not
// name (catalog, anonymous mounts), and then once per request.
type tokenCaller struct {
	c   *auth.Claims
	sec *security

	once   sync.Once
	admin  bool
	grants []auth.Grant
}

func (t *tokenCaller) Name() string {
	if t.c.Subject == "" {
		return "anonymous"
	}
	return t.c.Subject
}

func (t *tokenCaller) Kind() string {
	if t.c.Kind == "" {
		return string(auth.KindAnonymous)
	}
	return string(t.c.Kind)
}

func (t *tokenCaller) Can(typ, name, action string) bool {
	return t.c.Allows(typ, name, auth.Action(action))
}

func (t *tokenCaller) MayPull(ctx context.Context, repo string) bool {
	t.load(ctx)
	if t.admin {
		return true
	}
	return auth.Allowed(t.c.Principal(), t.grants, t.sec.cfg.AnonymousPull, repo, auth.ActionPull)
}

// Env implements registry.Caller: the environment a robot's token carries.
func (t *tokenCaller) Env() string { return t.c.Env }

// Admin implements registry.Caller. The role is looked up now, not taken
// from the token, so a demoted administrator stops seeing quarantined
// content at once.
func (t *tokenCaller) Admin(ctx context.Context) bool {
	t.load(ctx)
	return t.admin
}

// load looks the account's role and grants up, once per request.
func (t *tokenCaller) load(ctx context.Context) {
	p := t.c.Principal()
	t.once.Do(func() {
		if p.Name == "" || t.sec.accounts == nil {
			return
		}
		if p.Kind == auth.KindUser {
			if u, err := t.sec.accounts.User(ctx, p.Name); err == nil && u.Role == auth.RoleAdmin {
				t.admin = true
				return
			}
		}
		t.grants, _ = t.sec.accounts.Grants(ctx, p) // an error leaves no grants: deny
	})
}

// adminOnly lets through requests from an administrator: HTTP Basic
// credentials of an admin user (throttled like logins), or a token issued to
// one. Without auth, only loopback clients.
func (s *security) adminOnly(next http.Handler) http.Handler {
	if s.accounts == nil {
		return loopbackOnly(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, err := s.admin(r)
		if err != nil {
			s.audit.Record(audit.Event{Who: orAnonymous(name), Kind: audit.KindUser, Action: audit.ActionDenied,
				Remote: remoteIP(r.RemoteAddr), Outcome: audit.OutcomeDenied, Detail: r.Method + " " + r.URL.Path + ": " + err.Error()})
			w.Header().Set("WWW-Authenticate", `Basic realm="bulwark admin"`)
			http.Error(w, "administrator credentials required: "+err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, name)))
	})
}

type adminKey struct{}

// adminActor is who an admin API request acts as, for audit events: the
// administrator adminOnly authenticated, or (without accounts) the
// loopback client.
func adminActor(r *http.Request) registry.Actor {
	who, _ := r.Context().Value(adminKey{}).(string)
	kind := audit.KindUser
	if who == "" {
		who, kind = "local", audit.KindSystem
	}
	return registry.Actor{Who: who, Kind: kind, Remote: r.RemoteAddr}
}

func orAnonymous(name string) string {
	if name == "" {
		return "anonymous"
	}
	return name
}

func (s *security) admin(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if len(h) > auth.MaxAuthorizationHeader {
		return "", errors.New("Authorization header too large")
	}
	var p auth.Principal
	if name, secret, ok := r.BasicAuth(); ok {
		source := remoteIP(r.RemoteAddr)
		if wait := s.throttle.Check(source, name, s.now()); wait > 0 {
			return name, fmt.Errorf("%w (retry in %s)", auth.ErrThrottled, wait.Round(time.Second))
		}
		var err error
		if p, err = s.accounts.Authenticate(r.Context(), name, secret, source); err != nil {
			s.throttle.Failure(source, name, s.now())
			return name, auth.ErrBadCredentials
		}
		s.throttle.Success(source, name, s.now())
	} else if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		claims, err := s.issuer.Verify(strings.TrimSpace(token), s.now())
		if err != nil {
			return "", err
		}
		p = claims.Principal()
	} else {
		return "", auth.ErrUnauthenticated
	}
	if p.Kind != auth.KindUser {
		return p.Name, errors.New("only administrators may do this")
	}
	u, err := s.accounts.User(r.Context(), p.Name)
	if err != nil || u.Role != auth.RoleAdmin {
		return p.Name, errors.New("only administrators may do this")
	}
	return p.Name, nil
}

// adminChange audits an account change made through the admin API.
func (s *security) adminChange(ctx context.Context, action, target, detail string) {
	who, _ := ctx.Value(adminKey{}).(string)
	s.audit.Record(audit.Event{Who: orAnonymous(who), Kind: audit.KindUser, Action: action, Outcome: audit.OutcomeOK,
		Detail: target + ": " + detail})
}

// AdminPasswordFromEnv is where the first start takes the bootstrap
// administrator's password from, if set.
func AdminPasswordFromEnv() string { return os.Getenv("BULWARK_ADMIN_PASSWORD") }
