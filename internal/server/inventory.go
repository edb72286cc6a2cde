package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/inventory"
)

// The inventory API (/inventory/v1/…) records what bulwark run starts and
// stops on each host. Who may use it is the registry's business, so this
// file adapts the accounts to inventory.Authenticator:
//
//   - with authentication on, a request carries HTTP Basic credentials
//     (a user's password or a robot's secret, what `docker login` stores)
//     or a bearer token from /token; the caller's grants then decide
//     (inventory reporters need pull on the image's repository, readers
//     see what they may pull);
//   - with authentication off, like the admin endpoints, only loopback
//     clients are served, as an administrator.
//
// Every stored event is also appended to the audit log
// (inventory.start / inventory.stop).

// Audit actions of inventory events.
const (
	auditInventoryStart = "inventory.start"
	auditInventoryStop  = "inventory.stop"
)

// openInventory opens the data directory's inventory and returns its
// handler.
func openInventory(ctx context.Context, dataDir string, sec *security) (*inventory.Store, http.Handler, error) {
	store, err := inventory.Open(ctx, inventory.Path(dataDir))
	if err != nil {
		return nil, nil, err
	}
	h := inventory.Handler(store, inventoryAuthn{sec: sec}, inventory.Options{
		Logger:   sec.log,
		OnRecord: sec.inventoryEvent,
	})
	return store, h, nil
}

// inventoryEvent audits a stored inventory record.
func (s *security) inventoryEvent(_ context.Context, rec inventory.Record) {
	action := auditInventoryStart
	if rec.Kind == inventory.KindStop {
		action = auditInventoryStop
	}
	detail := fmt.Sprintf("host %s container %s", rec.Host, rec.Container)
	if rec.Environment != "" {
		detail += " environment " + rec.Environment
	}
	if rec.Decision.ID != "" {
		detail = "decision " + rec.Decision.ID + ": " + detail
	}
	if rec.Reason != "" {
		detail += ": " + rec.Reason
	}
	s.audit.Record(audit.Event{Who: rec.Reporter, Kind: rec.ReporterKind, Action: action, Repository: rec.Repository,
		Reference: rec.Image, Digest: rec.Digest, Remote: rec.Remote, Outcome: audit.OutcomeOK, Detail: detail})
}

type inventoryAuthn struct{ sec *security }

func (a inventoryAuthn) Challenge(*http.Request) string { return `Basic realm="bulwark inventory"` }

func (a inventoryAuthn) Authenticate(r *http.Request) (inventory.Caller, error) {
	s := a.sec
	if s.accounts == nil {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("%w: without authentication the inventory API only answers loopback clients", inventory.ErrForbidden)
		}
		return localCaller{}, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	if len(h) > auth.MaxAuthorizationHeader {
		return nil, errors.New("Authorization header too large")
	}
	var p auth.Principal
	if name, secret, ok := r.BasicAuth(); ok {
		source := remoteIP(r.RemoteAddr)
		now := s.now()
		if wait := s.throttle.Check(source, name, now); wait > 0 {
			return nil, fmt.Errorf("%w (retry in %s)", auth.ErrThrottled, wait.Round(time.Second))
		}
		var err error
		p, err = s.accounts.Authenticate(r.Context(), name, secret, source)
		var ce *auth.CredentialError
		switch {
		case errors.As(err, &ce):
			s.throttle.Failure(source, name, now)
			s.audit.Record(audit.Event{Who: name, Kind: audit.KindUser, Action: audit.ActionLogin, Remote: source,
				Outcome: audit.OutcomeFailed, Detail: "inventory API: " + ce.Reason})
			return nil, auth.ErrBadCredentials
		case err != nil:
			return nil, fmt.Errorf("%w: %w", inventory.ErrUnavailable, err)
		}
		s.throttle.Success(source, name, now)
	} else if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		claims, err := s.issuer.Verify(strings.TrimSpace(token), s.now())
		if err != nil {
			return nil, err
		}
		p = claims.Principal()
	} else {
		return nil, errors.New("send Basic credentials or a bearer token from /token")
	}
	if p.Kind != auth.KindUser && p.Kind != auth.KindRobot {
		return nil, auth.ErrUnauthenticated
	}
	return &accountCaller{p: p, sec: s}, nil
}

// localCaller is a loopback client of a server without accounts: it is
// the administrator, as for the admin endpoints.
type localCaller struct{}

func (localCaller) Name() string                         { return "local" }
func (localCaller) Kind() string                         { return audit.KindSystem }
func (localCaller) Env() string                          { return "" }
func (localCaller) Admin(context.Context) bool           { return true }
func (localCaller) MayPull(context.Context, string) bool { return true }

// accountCaller is an authenticated user or robot. Its role and grants
// are read once per request, from the accounts database (not the token),
// so a revoked grant stops working at once.
type accountCaller struct {
	p   auth.Principal
	sec *security

	once   sync.Once
	admin  bool
	grants []auth.Grant
}

func (c *accountCaller) Name() string { return c.p.Name }
func (c *accountCaller) Kind() string { return string(c.p.Kind) }
func (c *accountCaller) Env() string  { return c.p.Env }

func (c *accountCaller) load(ctx context.Context) {
	c.once.Do(func() {
		if c.p.Kind == auth.KindUser {
			if u, err := c.sec.accounts.User(ctx, c.p.Name); err == nil && u.Role == auth.RoleAdmin {
				c.admin = true
				return
			}
		}
		c.grants, _ = c.sec.accounts.Grants(ctx, c.p) // an error leaves no grants: deny
	})
}

func (c *accountCaller) Admin(ctx context.Context) bool {
	c.load(ctx)
	return c.admin
}

func (c *accountCaller) MayPull(ctx context.Context, repo string) bool {
	c.load(ctx)
	if c.admin {
		return true
	}
	p := c.p
	p.Role = "" // the role is the database's, checked above
	return auth.Allowed(p, c.grants, c.sec.cfg.AnonymousPull, repo, auth.ActionPull)
}
