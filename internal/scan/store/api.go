package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/apiclient"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
)

// API paths.
const (
	ReportPath = "/scan/v1/report"
	SBOMPath   = "/scan/v1/sbom"
)

// Errors an Access returns; the handler maps them to 401, 403 and 404.
var (
	ErrUnauthenticated = errors.New("authentication required")
	ErrForbidden       = errors.New("forbidden")
	// ErrNoImage: the repository does not hold the digest (or the caller
	// may not know that it does).
	ErrNoImage = errors.New("no such image")
	// ErrUnavailable: access could not be checked (503).
	ErrUnavailable = errors.New("unavailable")
)

// Access decides who may read a result. Results are per digest, so the
// decision is about a repository that holds it: what its permissions let
// the caller pull.
type Access interface {
	// Authorize returns nil if the request may read the results of d as
	// an image of repo, else an error wrapping ErrUnauthenticated,
	// ErrForbidden, ErrNoImage or ErrUnavailable.
	Authorize(r *http.Request, repo string, d digest.Digest) error
	// Challenge is the WWW-Authenticate value of a 401.
	Challenge(r *http.Request) string
}

// HandlerOptions configure Handler.
type HandlerOptions struct {
	Logger *slog.Logger
	// Pending reports whether d waits to be scanned (then a missing
	// result is 404 with code PENDING rather than NOT_SCANNED).
	Pending func(d digest.Digest) bool
}

// Error codes of API answers.
const (
	CodeInvalid         = "INVALID"
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeDenied          = "DENIED"
	CodeNotFound        = "NOT_FOUND"
	CodePending         = "PENDING"
	CodeNotScanned      = "NOT_SCANNED"
	CodeUnavailable     = "UNAVAILABLE"
	CodeInternal        = "INTERNAL"
)

// SBOM formats the API serves.
var sbomFormats = []string{"json", "cyclonedx", "spdx"}

// Handler serves stored results:
//
//	GET /scan/v1/report?repository=R&digest=D   → Result
//	GET /scan/v1/sbom?repository=R&digest=D[&format=json|cyclonedx|spdx]
//
// Errors are JSON {"error": "…", "code": "…"}: 400 INVALID, 401, 403
// DENIED, 404 NOT_FOUND (the repository does not hold the digest), 404
// PENDING (queued, not scanned yet), 404 NOT_SCANNED (not an image, or
// unknown to the scanner), 503.
func Handler(st *Store, access Access, opts HandlerOptions) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{st: st, access: access, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ReportPath, h.report)
	mux.HandleFunc("GET "+SBOMPath, h.sbom)
	return mux
}

type handler struct {
	st     *Store
	access Access
	opts   HandlerOptions
}

// ParseImageQuery reads the repository and digest parameters (untrusted).
func ParseImageQuery(q url.Values) (string, digest.Digest, error) {
	repos, ds := q["repository"], q["digest"]
	if len(repos) != 1 || len(ds) != 1 {
		return "", "", errors.New("give repository and digest once each")
	}
	if err := oci.ValidateRepository(repos[0]); err != nil {
		return "", "", err
	}
	d, err := oci.ParseDigest(ds[0])
	if err != nil {
		return "", "", err
	}
	return repos[0], d, nil
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}{msg, code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := encode(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// authorize parses and checks the request; false when it answered.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request) (digest.Digest, bool) {
	repo, d, err := ParseImageQuery(r.URL.Query())
	if err != nil {
		apiError(w, http.StatusBadRequest, CodeInvalid, err.Error())
		return "", false
	}
	err = h.access.Authorize(r, repo, d)
	switch {
	case err == nil:
		return d, true
	case errors.Is(err, ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", h.access.Challenge(r))
		apiError(w, http.StatusUnauthorized, CodeUnauthenticated, err.Error())
	case errors.Is(err, ErrForbidden):
		apiError(w, http.StatusForbidden, CodeDenied, err.Error())
	case errors.Is(err, ErrNoImage):
		apiError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("%s@%s: %v", repo, d, err))
	case errors.Is(err, ErrUnavailable):
		h.opts.Logger.ErrorContext(r.Context(), "scan API: access check failed", "error", err)
		apiError(w, http.StatusServiceUnavailable, CodeUnavailable, "cannot check access now; try again later")
	default:
		h.opts.Logger.ErrorContext(r.Context(), "scan API: access check failed", "error", err)
		apiError(w, http.StatusInternalServerError, CodeInternal, "access check failed (see the server log)")
	}
	return "", false
}

// missing answers for a digest without a stored result.
func (h *handler) missing(w http.ResponseWriter, r *http.Request, d digest.Digest, err error) {
	if !errors.Is(err, ErrNotFound) {
		h.opts.Logger.ErrorContext(r.Context(), "scan API: read result", "digest", d.String(), "error", err)
		apiError(w, http.StatusInternalServerError, CodeInternal, "reading the result failed (see the server log)")
		return
	}
	if h.opts.Pending != nil && h.opts.Pending(d) {
		apiError(w, http.StatusNotFound, CodePending, d.String()+" is queued for scanning")
		return
	}
	apiError(w, http.StatusNotFound, CodeNotScanned, d.String()+" has not been scanned (not an image, or not scanned yet)")
}

func (h *handler) report(w http.ResponseWriter, r *http.Request) {
	d, ok := h.authorize(w, r)
	if !ok {
		return
	}
	res, err := h.st.Result(r.Context(), d)
	if err != nil {
		h.missing(w, r, d, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (h *handler) sbom(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	if !slices.Contains(sbomFormats, format) {
		apiError(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("format must be one of %s", strings.Join(sbomFormats, ", ")))
		return
	}
	d, ok := h.authorize(w, r)
	if !ok {
		return
	}
	s, err := h.st.SBOM(r.Context(), d)
	if err != nil {
		h.missing(w, r, d, err)
		return
	}
	var buf bytes.Buffer
	switch format {
	case "cyclonedx":
		err = s.EncodeCycloneDX(&buf)
	case "spdx":
		err = s.EncodeSPDX(&buf)
	default:
		err = s.Encode(&buf)
	}
	if err != nil {
		h.opts.Logger.ErrorContext(r.Context(), "scan API: encode SBOM", "digest", d.String(), "error", err)
		apiError(w, http.StatusInternalServerError, CodeInternal, "encoding the SBOM failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// SortFindings orders findings by severity (highest first), then
// advisory, package and version.
func SortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		ra, _ := osv.ParseRating(a.Severity)
		rb, _ := osv.ParseRating(b.Severity)
		return cmp.Or(cmp.Compare(rb, ra), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Package, b.Package), cmp.Compare(a.Version, b.Version))
	})
}

// APIError is an answer other than success from the scan API.
type APIError = apiclient.Error

// ErrInsecure refuses to send credentials in clear text to a server that
// is not on this machine.
var ErrInsecure = apiclient.ErrInsecure

// ClientOptions configure a Client.
type ClientOptions = apiclient.Options

// Client reads stored results from a bulwark server.
type Client struct{ *apiclient.Client }

// MaxResultSize bounds an answer the client reads: a report of an image
// with thousands of findings is a few MiB.
const MaxResultSize = 256 << 20

// NewClient returns a client for server (http(s)://HOST[:PORT], or a
// bare HOST[:PORT]: HTTPS except on loopback).
func NewClient(server string, opts ClientOptions) (*Client, error) {
	c, err := apiclient.New("scan API", server, opts)
	if err != nil {
		return nil, err
	}
	return &Client{c}, nil
}

// Result fetches the stored result of repo@d.
func (c *Client) Result(ctx context.Context, repo string, d digest.Digest) (*Result, error) {
	b, err := c.get(ctx, ReportPath, url.Values{"repository": {repo}, "digest": {d.String()}})
	if err != nil {
		return nil, err
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("scan API: result of %s@%s: %w", repo, d, err)
	}
	return &res, nil
}

// SBOM fetches the stored SBOM of repo@d in format (json, cyclonedx or
// spdx).
func (c *Client) SBOM(ctx context.Context, repo string, d digest.Digest, format string) ([]byte, error) {
	return c.get(ctx, SBOMPath, url.Values{"repository": {repo}, "digest": {d.String()}, "format": {format}})
}

func (c *Client) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	return c.Do(ctx, http.MethodGet, path, q, nil, http.StatusOK, MaxResultSize)
}
