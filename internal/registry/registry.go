// Package registry implements the OCI Distribution Specification v1.1 over
// a store.Blobs and a store.Meta: pull, push (monolithic, chunked, mounts),
// tags, catalog, deletes and referrers, plus garbage collection and
// consistency checks of the stored content.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/bulwark-dev/bulwark/internal/store"
)

// Options configure a Registry. Zero values select the defaults.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics
	// MaxBlobSize bounds one blob; 0 means unlimited.
	MaxBlobSize int64
	// UploadExpiry is how long an upload session may sit idle before GC
	// removes it (default 24h).
	UploadExpiry time.Duration
	// GCGrace protects blobs touched this recently from GC, so a push that
	// uploaded its layers but has not yet put its manifest keeps them
	// (default 1h).
	GCGrace time.Duration
	// AllowSparse accepts image manifests whose layers, and indexes whose
	// child manifests, are not in the repository (mirrors that copy only
	// some platforms). The config blob is always required. Off by default:
	// a trusted registry holds everything its tags name.
	AllowSparse bool
	// Authorizer authenticates and authorizes requests; nil serves everyone.
	Authorizer Authorizer
	// Gate, when set, decides pushes and pulls by policy and makes the
	// registry enforce quarantine (see Gate). Nil: no policy, and no
	// per-request cost.
	Gate Gate
	// OnEvent receives auditable operations (pushes, manifest pulls,
	// deletes, denials). It must not block.
	OnEvent func(context.Context, Event)
	// Now overrides the clock for tests.
	Now func() time.Time
}

// Registry is an http.Handler serving the /v2/ API.
type Registry struct {
	blobs   store.Blobs
	meta    store.Meta
	log     *slog.Logger
	metrics *Metrics
	opts    Options
	now     func() time.Time
	// digests serialises committing and deleting the same content, so GC
	// never unlinks a file that an upload has just re-created.
	digests *keyLocks
	// uploads serialises requests on one upload session.
	uploads *keyLocks
	// instance tells this process's upload sessions from a previous one's.
	instance string
}

// New returns a Registry serving content from blobs and meta.
func New(blobs store.Blobs, meta store.Meta, opts Options) *Registry {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.UploadExpiry <= 0 {
		opts.UploadExpiry = 24 * time.Hour
	}
	if opts.GCGrace <= 0 {
		opts.GCGrace = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Registry{
		blobs: blobs, meta: meta, log: opts.Logger, metrics: opts.Metrics, opts: opts, now: opts.Now,
		digests: newKeyLocks(), uploads: newKeyLocks(), instance: newUploadID(),
	}
}

// ServeHTTP implements http.Handler.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w}
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	rw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")

	rt, err := parseRoute(r.URL.EscapedPath())
	var apiErr *Error
	if err != nil {
		apiErr = writeError(rw, r, err)
	} else {
		apiErr = reg.serveRecovered(rw, r, rt)
	}

	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := time.Since(start)
	m := reg.metrics
	method := metricMethod(r.Method)
	m.requests.WithLabelValues(rt.Kind, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(rt.Kind, method).Observe(elapsed.Seconds())
	m.bytesIn.WithLabelValues(rt.Kind).Add(float64(body.n))
	m.bytesOut.WithLabelValues(rt.Kind).Add(float64(rw.n))

	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", rt.Kind),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("in", body.n),
		slog.Int64("out", rw.n),
		slog.Float64("ms", float64(elapsed.Microseconds())/1000),
		slog.String("remote", r.RemoteAddr),
	}
	level := slog.LevelInfo
	if apiErr != nil {
		attrs = append(attrs, slog.String("code", string(apiErr.Code)), slog.String("error", apiErr.Message))
		if status >= 500 {
			level = slog.LevelError
		}
	}
	reg.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// serveRecovered dispatches, turning a handler panic into a logged 500
// instead of a dropped connection with no trace. A panic is a bug; this only
// makes it visible and keeps the server serving.
func (reg *Registry) serveRecovered(w *recorder, r *http.Request, rt route) (apiErr *Error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		reg.log.ErrorContext(r.Context(), "handler panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		if w.status == 0 {
			apiErr = writeError(w, r, errors.New("panic"))
		} else {
			apiErr = &Error{Status: w.status, Code: "UNKNOWN", Message: "handler panic after the response started"}
		}
	}()
	ar, err := reg.authorize(w, r, rt)
	if err != nil {
		return writeError(w, r, err)
	}
	return reg.dispatch(w, ar, rt)
}

// dispatch routes a parsed request. Handlers return errors instead of writing
// them so that every failure goes through toError.
func (reg *Registry) dispatch(w http.ResponseWriter, r *http.Request, rt route) *Error {
	var err error
	switch rt.Kind {
	case RouteBase:
		err = reg.base(w, r)
	case RouteCatalog:
		err = onlyMethods(r, http.MethodGet)
		if err == nil {
			err = reg.catalog(w, r)
		}
	case RouteTags:
		err = onlyMethods(r, http.MethodGet)
		if err == nil {
			err = reg.tags(w, r, rt.Repo)
		}
	case RouteManifest:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = reg.getManifest(w, r, rt.Repo, rt.Ref)
		case http.MethodPut:
			err = reg.putManifest(w, r, rt.Repo, rt.Ref)
		case http.MethodDelete:
			err = reg.deleteManifest(w, r, rt.Repo, rt.Ref)
		default:
			err = methodNotAllowed(w, "GET, HEAD, PUT, DELETE")
		}
	case RouteBlob:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = reg.getBlob(w, r, rt.Repo, rt.Ref)
		case http.MethodDelete:
			err = reg.deleteBlob(w, r, rt.Repo, rt.Ref)
		default:
			err = methodNotAllowed(w, "GET, HEAD, DELETE")
		}
	case RouteUpload:
		err = reg.upload(w, r, rt.Repo, rt.Ref)
	case RouteReferrers:
		err = onlyMethods(r, http.MethodGet)
		if err == nil {
			err = reg.referrers(w, r, rt.Repo, rt.Ref)
		}
	default:
		err = newError(http.StatusNotFound, CodeNameUnknown, "no such endpoint: %s", r.URL.Path)
	}
	if err != nil {
		return writeError(w, r, err)
	}
	return nil
}

func onlyMethods(r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
			return nil
		}
	}
	return &Error{Status: http.StatusMethodNotAllowed, Code: CodeUnsupported, Message: "method not allowed",
		Header: http.Header{"Allow": {methods[0]}}}
}

func methodNotAllowed(_ http.ResponseWriter, allow string) error {
	return &Error{Status: http.StatusMethodNotAllowed, Code: CodeUnsupported, Message: "method not allowed",
		Header: http.Header{"Allow": {allow}}}
}

func (reg *Registry) base(w http.ResponseWriter, r *http.Request) error {
	if err := onlyMethods(r, http.MethodGet); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.WriteString(w, "{}")
	}
	return nil
}

// recorder captures the status and body size for logs and metrics. It keeps
// io.ReaderFrom so blob downloads still use sendfile.
type recorder struct {
	http.ResponseWriter
	status int
	n      int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.n += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := io.Copy(r.ResponseWriter, src)
	r.n += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}
