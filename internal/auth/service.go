package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Request limits of the token endpoint. Real credentials are far smaller;
// the limits keep hostile requests cheap to refuse.
const (
	// MaxAuthorizationHeader bounds the Authorization header(s) of a token
	// request; larger is answered 431.
	MaxAuthorizationHeader = 8 << 10
	// MaxFormBody bounds a POST body; larger is answered 413.
	MaxFormBody = 64 << 10
)

// Authenticator is what the token service needs from the account store.
type Authenticator interface {
	// Authenticate checks a user's password or a robot's secret and returns
	// the account. Wrong credentials, an unknown name, an expired robot and
	// a removed or rotated secret must all return an error wrapping
	// ErrBadCredentials (or ErrNotFound/ErrUnauthenticated): the service
	// treats them alike, so a client cannot tell which it was. remote is the
	// client's address, for the store's own records.
	Authenticate(ctx context.Context, name, secret, remote string) (Principal, error)
	// Grants returns the principal's grants (a robot's own, a user's from
	// the store).
	Grants(ctx context.Context, p Principal) ([]Grant, error)
	// IssueRefreshToken makes a long-lived refresh token for p, which
	// `docker login` stores instead of the password.
	IssueRefreshToken(ctx context.Context, p Principal) (string, error)
	// RedeemRefreshToken returns the account a refresh token belongs to; an
	// unknown, expired or revoked token must return an error wrapping
	// ErrBadCredentials.
	RedeemRefreshToken(ctx context.Context, token, remote string) (Principal, error)
}

// Event actions and outcomes reported to ServiceConfig.OnEvent.
const (
	EventLogin = "login" // credentials or a refresh token were checked
	EventToken = "token" // an access token was issued

	OutcomeSuccess   = "success"
	OutcomeFailure   = "failure"   // bad credentials or refresh token
	OutcomeThrottled = "throttled" // refused by the login throttle
	OutcomeDenied    = "denied"    // token issued without some requested access
)

// Event is one auditable thing the token service did. It never contains a
// secret.
type Event struct {
	Time    time.Time
	Who     string // account name as claimed or authenticated; "" for anonymous
	Kind    Kind   // known once authenticated
	Action  string // EventLogin or EventToken
	Outcome string // OutcomeSuccess, OutcomeFailure, OutcomeThrottled, OutcomeDenied
	Remote  string // client address
	Detail  string // e.g. "password", "refresh_token", "basic", the failure
	Scopes  []string
	Granted []string // EventToken: the access granted, in scope syntax
}

// ServiceConfig configures NewService.
type ServiceConfig struct {
	Issuer        *Issuer
	Authenticator Authenticator
	// AnonymousPull lists repository globs anyone may pull.
	AnonymousPull []string
	// Throttle limits login attempts; a default one is made when nil.
	Throttle *Throttle
	// Logger gets one line per refused request and debug lines per token
	// (slog.Default when nil).
	Logger *slog.Logger
	// OnEvent, if set, receives every login and token event (the audit log).
	// It is called synchronously: it must be quick.
	OnEvent func(Event)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Realm is the Basic realm sent with 401 answers ("bulwark" when empty).
	Realm string
}

// Service is the token endpoint of the Docker token spec: GET with
// optional Basic credentials, and the OAuth2 POST form (password and
// refresh_token grants) that `docker login` uses. Mount it where the
// registry's Bearer challenge realm points, e.g. /token.
type Service struct {
	cfg ServiceConfig
	log *slog.Logger
}

// NewService returns the token endpoint. Issuer and Authenticator are
// required.
func NewService(cfg ServiceConfig) *Service {
	if cfg.Issuer == nil || cfg.Authenticator == nil {
		panic("auth: NewService needs an Issuer and an Authenticator")
	}
	if cfg.Throttle == nil {
		cfg.Throttle = NewThrottle(ThrottleConfig{})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Realm == "" {
		cfg.Realm = "bulwark"
	}
	return &Service{cfg: cfg, log: cfg.Logger}
}

// tokenResponse is the JSON answer. GET answers carry token and
// access_token (the same value: older clients read one, newer the other);
// POST answers access_token and scope, as OAuth2 has it.
type tokenResponse struct {
	Token        string `json:"token,omitempty"`
	AccessToken  string `json:"access_token"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// ServeHTTP answers GET and POST token requests.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if n := authorizationLength(r); n > MaxAuthorizationHeader {
		oauth, code := r.Method == http.MethodPost, "INVALID_REQUEST"
		if oauth {
			code = "invalid_request"
		}
		s.fail(w, r, oauth, http.StatusRequestHeaderFieldsTooLarge, code,
			fmt.Sprintf("Authorization header larger than %d bytes", MaxAuthorizationHeader))
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.serveGet(w, r)
	case http.MethodPost:
		s.servePost(w, r)
	default:
		h.Set("Allow", "GET, POST")
		s.fail(w, r, false, http.StatusMethodNotAllowed, "UNSUPPORTED", "use GET or POST")
	}
}

// request is what both forms of token request boil down to.
type request struct {
	remote string
	scopes []Scope
	raw    []string // scopes as requested, for events
}

func (s *Service) serveGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := single(q, "service", "account", "offline_token", "client_id"); err != nil {
		s.fail(w, r, false, http.StatusBadRequest, "INVALID_REQUEST", err.Error())
		return
	}
	req, err := s.common(r, q)
	if err != nil {
		s.fail(w, r, false, http.StatusBadRequest, "INVALID_REQUEST", err.Error())
		return
	}
	name, secret, present, err := basicAuth(r)
	if err != nil {
		s.fail(w, r, false, http.StatusBadRequest, "INVALID_REQUEST", err.Error())
		return
	}
	ctx := r.Context()
	if !present {
		s.issue(w, r, req, Principal{Kind: KindAnonymous}, "", "anonymous", false)
		return
	}
	if acct := q.Get("account"); acct != "" && acct != name {
		s.fail(w, r, false, http.StatusBadRequest, "INVALID_REQUEST", "account parameter does not match the credentials")
		return
	}
	p, ok := s.login(w, r, req, false, name, "basic", func() (Principal, error) {
		return s.cfg.Authenticator.Authenticate(ctx, name, secret, req.remote)
	})
	if !ok {
		return
	}
	refresh := ""
	if q.Get("offline_token") == "true" {
		if refresh, ok = s.refreshToken(w, r, p, false); !ok {
			return
		}
	}
	s.issue(w, r, req, p, refresh, "basic", false)
}

func (s *Service) servePost(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		s.fail(w, r, true, http.StatusUnsupportedMediaType, "invalid_request", "body must be application/x-www-form-urlencoded")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxFormBody))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			s.fail(w, r, true, http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("body larger than %d bytes", MaxFormBody))
			return
		}
		s.fail(w, r, true, http.StatusBadRequest, "invalid_request", "cannot read body")
		return
	}
	form, err := url.ParseQuery(string(data))
	if err != nil {
		s.fail(w, r, true, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	if err := single(form, "grant_type", "service", "client_id", "access_type", "username", "password", "refresh_token"); err != nil {
		s.fail(w, r, true, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	req, err := s.common(r, form)
	if err != nil {
		code := "invalid_request"
		if errors.Is(err, ErrInvalidScope) {
			code = "invalid_scope"
		}
		s.fail(w, r, true, http.StatusBadRequest, code, err.Error())
		return
	}
	if form.Get("client_id") == "" {
		s.fail(w, r, true, http.StatusBadRequest, "invalid_request", "client_id is required")
		return
	}
	ctx := r.Context()
	switch gt := form.Get("grant_type"); gt {
	case "password":
		name, secret := form.Get("username"), form.Get("password")
		if name == "" || secret == "" {
			s.fail(w, r, true, http.StatusBadRequest, "invalid_request", "username and password are required")
			return
		}
		p, ok := s.login(w, r, req, true, name, "password", func() (Principal, error) {
			return s.cfg.Authenticator.Authenticate(ctx, name, secret, req.remote)
		})
		if !ok {
			return
		}
		refresh := ""
		if form.Get("access_type") == "offline" {
			if refresh, ok = s.refreshToken(w, r, p, true); !ok {
				return
			}
		}
		s.issue(w, r, req, p, refresh, "password", true)
	case "refresh_token":
		rt := form.Get("refresh_token")
		if rt == "" {
			s.fail(w, r, true, http.StatusBadRequest, "invalid_request", "refresh_token is required")
			return
		}
		// The account is unknown until the token is redeemed, so only the
		// source is throttled.
		p, ok := s.login(w, r, req, true, "", "refresh_token", func() (Principal, error) {
			return s.cfg.Authenticator.RedeemRefreshToken(ctx, rt, req.remote)
		})
		if !ok {
			return
		}
		// The refresh token stays valid: docker keeps using the one it stored
		// at login, so it is handed back unchanged.
		s.issue(w, r, req, p, rt, "refresh_token", true)
	case "":
		s.fail(w, r, true, http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		s.fail(w, r, true, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported", clip(gt)))
	}
}

// common checks what GET and POST share: the service name and the scopes.
// Its errors are client-facing messages.
func (s *Service) common(r *http.Request, params url.Values) (request, error) {
	req := request{remote: remoteHost(r)}
	if svc := params.Get("service"); svc != s.cfg.Issuer.Service() {
		return req, fmt.Errorf("service %q is not %q", clip(svc), s.cfg.Issuer.Service())
	}
	scopes, err := ParseScopes(params["scope"])
	if err != nil {
		return req, err
	}
	req.scopes = scopes
	for _, sc := range scopes {
		req.raw = append(req.raw, sc.String())
	}
	return req, nil
}

// login runs one credential check under the throttle and reports it. It
// writes the error answer itself and returns ok=false when the request is
// over.
func (s *Service) login(w http.ResponseWriter, r *http.Request, req request, oauth bool, name, how string, check func() (Principal, error)) (Principal, bool) {
	now := s.cfg.Now()
	ev := Event{Time: now, Who: clip(name), Action: EventLogin, Remote: req.remote, Detail: how, Scopes: req.raw}
	if wait := s.cfg.Throttle.Check(req.remote, name, now); wait > 0 {
		ev.Outcome = OutcomeThrottled
		s.emit(ev)
		s.throttled(w, r, oauth, wait)
		return Principal{}, false
	}
	p, err := check()
	switch {
	case err == nil && (p.Kind == KindUser || p.Kind == KindRobot) && p.Name != "":
	case err == nil:
		s.internal(w, r, oauth, fmt.Errorf("authenticator returned principal %q of kind %q", p.Name, p.Kind))
		return Principal{}, false
	case errors.Is(err, ErrThrottled):
		// The store has a limit of its own; its wait is unknown.
		ev.Outcome = OutcomeThrottled
		s.emit(ev)
		s.throttled(w, r, oauth, time.Minute)
		return Principal{}, false
	case errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnauthenticated):
		s.cfg.Throttle.Failure(req.remote, name, now)
		ev.Outcome = OutcomeFailure
		ev.Detail = how + ": " + err.Error()
		s.emit(ev)
		if oauth {
			s.fail(w, r, true, http.StatusBadRequest, "invalid_grant", "invalid credentials")
		} else {
			w.Header().Set("WWW-Authenticate", `Basic realm=`+quote(s.cfg.Realm))
			s.fail(w, r, false, http.StatusUnauthorized, "UNAUTHORIZED", "invalid username or password")
		}
		return Principal{}, false
	default:
		s.internal(w, r, oauth, fmt.Errorf("authenticate: %w", err))
		return Principal{}, false
	}
	s.cfg.Throttle.Success(req.remote, name, now)
	ev.Who, ev.Kind, ev.Outcome = p.Name, p.Kind, OutcomeSuccess
	s.emit(ev)
	return p, true
}

func (s *Service) refreshToken(w http.ResponseWriter, r *http.Request, p Principal, oauth bool) (string, bool) {
	rt, err := s.cfg.Authenticator.IssueRefreshToken(r.Context(), p)
	if err != nil {
		s.internal(w, r, oauth, fmt.Errorf("issue refresh token: %w", err))
		return "", false
	}
	return rt, true
}

// issue computes the access, signs the token and writes the answer.
func (s *Service) issue(w http.ResponseWriter, r *http.Request, req request, p Principal, refresh, how string, oauth bool) {
	var grants []Grant
	if p.Kind != KindAnonymous {
		var err error
		if grants, err = s.cfg.Authenticator.Grants(r.Context(), p); err != nil {
			s.internal(w, r, oauth, fmt.Errorf("grants of %s: %w", p.Name, err))
			return
		}
	}
	now := s.cfg.Now()
	access := Intersect(req.scopes, p, grants, s.cfg.AnonymousPull)
	token, exp, err := s.cfg.Issuer.Issue(p, access, now)
	if err != nil {
		s.internal(w, r, oauth, err)
		return
	}
	granted := make([]string, len(access))
	for i, a := range access {
		granted[i] = a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
	}
	ev := Event{Time: now, Who: p.Name, Kind: p.Kind, Action: EventToken, Outcome: OutcomeSuccess,
		Remote: req.remote, Detail: how, Scopes: req.raw, Granted: granted}
	if !coversAll(req.scopes, access) {
		ev.Outcome = OutcomeDenied
	}
	s.emit(ev)
	s.log.Debug("token issued", "who", p.Name, "kind", p.Kind, "remote", req.remote, "granted", granted, "outcome", ev.Outcome)

	resp := tokenResponse{
		AccessToken:  token,
		ExpiresIn:    int(exp.Sub(now.Truncate(time.Second)) / time.Second),
		IssuedAt:     now.UTC().Format(time.RFC3339),
		RefreshToken: refresh,
	}
	if oauth {
		resp.Scope = strings.Join(granted, " ")
	} else {
		resp.Token = token
	}
	writeJSON(w, http.StatusOK, resp)
}

// coversAll reports whether access grants every action requested.
func coversAll(requested []Scope, access []Access) bool {
	c := &Claims{Access: access}
	for _, sc := range requested {
		for _, a := range sc.Actions {
			if !c.Allows(sc.Type, sc.Name, a) {
				return false
			}
		}
	}
	return true
}

func (s *Service) emit(ev Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

func (s *Service) throttled(w http.ResponseWriter, r *http.Request, oauth bool, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	code := "TOOMANYREQUESTS"
	if oauth {
		code = "too_many_requests"
	}
	s.fail(w, r, oauth, http.StatusTooManyRequests, code, ErrThrottled.Error())
}

func (s *Service) internal(w http.ResponseWriter, r *http.Request, oauth bool, err error) {
	s.log.Error("token service", "err", err, "remote", remoteHost(r))
	code := "UNKNOWN"
	if oauth {
		code = "server_error"
	}
	s.fail(w, r, oauth, http.StatusInternalServerError, code, "internal error")
}

// fail writes an error answer: {"error","error_description"} for the OAuth2
// POST form, the registry's {"errors":[{"code","message"}]} envelope for GET
// (which docker prints as "unauthorized: …").
func (s *Service) fail(w http.ResponseWriter, r *http.Request, oauth bool, status int, code, msg string) {
	if status < 500 {
		s.log.Info("token request refused", "status", status, "code", code, "msg", msg, "remote", remoteHost(r), "method", r.Method)
	}
	if oauth {
		writeJSON(w, status, map[string]string{"error": code, "error_description": msg})
		return
	}
	type entry struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, status, map[string][]entry{"errors": {{Code: code, Message: msg}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// basicAuth parses Basic credentials. present is false when there is no
// Authorization header; anything else that is not well-formed Basic
// credentials with a non-empty user name is an error, never "anonymous".
func basicAuth(r *http.Request) (name, secret string, present bool, err error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", "", false, nil
	case 1:
	default:
		return "", "", true, errors.New("more than one Authorization header")
	}
	scheme, creds, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", true, errors.New("the token endpoint takes Basic credentials only")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(creds))
	if err != nil {
		return "", "", true, errors.New("malformed Basic credentials: bad base64")
	}
	name, secret, ok := strings.Cut(string(raw), ":")
	switch {
	case !ok:
		return "", "", true, errors.New("malformed Basic credentials: no ':' between user and password")
	case name == "":
		return "", "", true, errors.New("malformed Basic credentials: empty user name")
	}
	return name, secret, true, nil
}

func authorizationLength(r *http.Request) int {
	n := 0
	for _, v := range r.Header.Values("Authorization") {
		n += len(v)
	}
	return n
}

// single refuses parameters given more than once: which one counts would
// otherwise depend on the parser (OAuth2 §3.1 forbids repeats too).
func single(params url.Values, names ...string) error {
	for _, n := range names {
		if len(params[n]) > 1 {
			return fmt.Errorf("parameter %q given more than once", n)
		}
	}
	return nil
}

// remoteHost is the client's IP address, without port.
func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// BearerChallenge renders the WWW-Authenticate value the registry sends
// with a 401, pointing clients at the token service:
//
//	Bearer realm="https://host/token",service="host",scope="repository:a:pull"
//
// realm is the token endpoint's absolute URL; scopes (may be empty) are
// what the refused request needs; errCode, if not empty, is added as
// error="…" ("insufficient_scope" when a token lacked access,
// "invalid_token" when it did not verify).
func BearerChallenge(realm, service string, scopes []Scope, errCode string) string {
	var b strings.Builder
	b.WriteString("Bearer realm=" + quote(realm) + ",service=" + quote(service))
	if len(scopes) > 0 {
		parts := make([]string, len(scopes))
		for i, sc := range scopes {
			parts[i] = sc.String()
		}
		b.WriteString(",scope=" + quote(strings.Join(parts, " ")))
	}
	if errCode != "" {
		b.WriteString(",error=" + quote(errCode))
	}
	return b.String()
}

// quote makes an RFC 9110 quoted-string.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
