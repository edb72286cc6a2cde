package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Caller is an authenticated client of the inventory API, as the server's
// account system sees it.
type Caller interface {
	Name() string
	Kind() string // "user" or "robot"
	// Env is the environment a robot is bound to ("" for none).
	Env() string
	Admin(ctx context.Context) bool
	// MayPull reports whether the caller may pull repo from this registry.
	MayPull(ctx context.Context, repo string) bool
}

// ErrForbidden is an Authenticator's answer for a client that may not use
// the API at all (say, a remote client of a server without accounts): 403
// rather than a challenge.
var ErrForbidden = errors.New("forbidden")

// ErrUnavailable is an Authenticator's answer when it could not check the
// credentials (the account database failed): 503, so an outage does not
// look like a wrong password.
var ErrUnavailable = errors.New("authentication unavailable")

// Authenticator tells who sent a request.
type Authenticator interface {
	// Authenticate returns the request's caller; (nil, nil) when the
	// request carries no credentials (the handler then challenges), an
	// error when they are wrong or the caller may not use the API at all.
	Authenticate(r *http.Request) (Caller, error)
	// Challenge is the WWW-Authenticate value of a 401.
	Challenge(r *http.Request) string
}

// Options configure Handler.
type Options struct {
	Logger *slog.Logger
	// OnRecord is called with every stored record (the server audits
	// them).
	OnRecord func(ctx context.Context, rec Record)
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// API paths.
const (
	EventsPath  = "/inventory/v1/events"
	RunningPath = "/inventory/v1/running"
)

// Handler serves the inventory API:
//
//	POST /inventory/v1/events    an Event → 201 and the stored Record
//	GET  /inventory/v1/running   running containers: [Record] (their start events)
//	GET  /inventory/v1/events    events, newest first: [Record]
//
// GET takes the filters host, container, repository, digest and
// environment as query parameters; events also takes limit (default 100,
// at most 10000). Errors are JSON: {"error": "…"}.
func Handler(store *Store, authn Authenticator, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &handler{store: store, authn: authn, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+EventsPath, h.post)
	mux.HandleFunc("GET "+EventsPath, h.events)
	mux.HandleFunc("GET "+RunningPath, h.running)
	return mux
}

type handler struct {
	store *Store
	authn Authenticator
	opts  Options
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// caller authenticates r or answers it (401/403) and returns nil.
func (h *handler) caller(w http.ResponseWriter, r *http.Request) Caller {
	c, err := h.authn.Authenticate(r)
	if err == nil && c == nil {
		err = errors.New("authentication required")
	}
	if errors.Is(err, ErrForbidden) {
		writeError(w, http.StatusForbidden, err.Error())
		return nil
	}
	if errors.Is(err, ErrUnavailable) {
		h.opts.Logger.Error("inventory: authentication", "error", err)
		writeError(w, http.StatusServiceUnavailable, ErrUnavailable.Error())
		return nil
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", h.authn.Challenge(r))
		writeError(w, http.StatusUnauthorized, err.Error())
		return nil
	}
	return c
}

func (h *handler) post(w http.ResponseWriter, r *http.Request) {
	c := h.caller(w, r)
	if c == nil {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		writeError(w, http.StatusUnsupportedMediaType, "send the event as application/json")
		return
	}
	now := h.opts.Now()
	body := http.MaxBytesReader(w, r.Body, MaxEventSize)
	e, err := DecodeEvent(body, now)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("an event is at most %d bytes", MaxEventSize))
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	admin := c.Admin(ctx)
	repo := e.Repository()
	if !admin {
		if !c.MayPull(ctx, repo) {
			h.deny(w, c, e, fmt.Sprintf("%s may not pull %s, so it cannot report running it (grant it pull on the repository)", c.Name(), repo))
			return
		}
		if env := c.Env(); env != "" && e.Environment != env {
			h.deny(w, c, e, fmt.Sprintf("%s is bound to environment %q and cannot report for %q", c.Name(), env, e.Environment))
			return
		}
	}
	rec, err := h.store.Append(ctx, NewRecord(e, c.Name(), c.Kind(), remoteIP(r.RemoteAddr), now), admin)
	if errors.Is(err, ErrNotOwner) {
		h.deny(w, c, e, err.Error())
		return
	}
	if err != nil {
		h.opts.Logger.Error("inventory: store event", "error", err)
		writeError(w, http.StatusServiceUnavailable, "the inventory could not store the event")
		return
	}
	h.opts.Logger.Info("inventory event", "kind", rec.Kind, "host", rec.Host, "container", rec.Container,
		"repository", rec.Repository, "digest", rec.Digest, "environment", rec.Environment, "reporter", rec.Reporter, "seq", rec.Seq)
	if h.opts.OnRecord != nil {
		h.opts.OnRecord(ctx, rec)
	}
	writeJSON(w, http.StatusCreated, rec)
}

func (h *handler) deny(w http.ResponseWriter, c Caller, e Event, msg string) {
	h.opts.Logger.Warn("inventory event refused", "reporter", c.Name(), "host", e.Host, "container", e.Container, "reason", msg)
	writeError(w, http.StatusForbidden, msg)
}

// query reads the filters; it answers 400 and returns false on bad ones.
func query(w http.ResponseWriter, r *http.Request) (Query, bool) {
	v := r.URL.Query()
	q := Query{Host: v.Get("host"), Container: v.Get("container"), Repository: v.Get("repository"),
		Digest: v.Get("digest"), Environment: v.Get("environment")}
	for _, s := range []string{q.Host, q.Container, q.Repository, q.Digest, q.Environment} {
		if len(s) > maxRef {
			writeError(w, http.StatusBadRequest, "filter too long")
			return q, false
		}
	}
	return q, true
}

func (h *handler) running(w http.ResponseWriter, r *http.Request) {
	c := h.caller(w, r)
	if c == nil {
		return
	}
	q, ok := query(w, r)
	if !ok {
		return
	}
	recs, truncated, err := h.store.Running(r.Context(), q)
	if err != nil {
		h.opts.Logger.Error("inventory: running", "error", err)
		writeError(w, http.StatusServiceUnavailable, "the inventory could not be read")
		return
	}
	if truncated {
		w.Header().Set("Warning", `299 - "truncated: more containers run than one answer holds; filter by host or repository"`)
	}
	writeJSON(w, http.StatusOK, visible(r.Context(), c, recs))
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	c := h.caller(w, r)
	if c == nil {
		return
	}
	q, ok := query(w, r)
	if !ok {
		return
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "limit: want 1-10000")
			return
		}
		limit = n
	}
	recs, err := h.store.Events(r.Context(), q, limit)
	if err != nil {
		h.opts.Logger.Error("inventory: events", "error", err)
		writeError(w, http.StatusServiceUnavailable, "the inventory could not be read")
		return
	}
	writeJSON(w, http.StatusOK, visible(r.Context(), c, recs))
}

// visible keeps the records of repositories c may pull (everything for an
// administrator), asking once per repository.
func visible(ctx context.Context, c Caller, recs []Record) []Record {
	if c.Admin(ctx) {
		return recs
	}
	may := map[string]bool{}
	out := recs[:0]
	for _, rec := range recs {
		ok, seen := may[rec.Repository]
		if !seen {
			ok = c.MayPull(ctx, rec.Repository)
			may[rec.Repository] = ok
		}
		if ok {
			out = append(out, rec)
		}
	}
	return out
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
