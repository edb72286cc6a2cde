package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-dev/bulwark/internal/loopback"
	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// HTTP is the client used for every request; nil means one with dial,
	// TLS and response-header timeouts but no overall timeout, since blob
	// downloads may legitimately take long (use the context for that).
	HTTP *http.Client
	// Credentials are asked for a host's credentials when it answers 401;
	// nil means anonymous everywhere.
	Credentials CredentialStore
	// UserAgent is sent with every request; empty means "bulwark".
	UserAgent string
	// PlainHTTP reports whether a registry host ("host[:port]") is spoken
	// to over plain HTTP; nil means loopback hosts only, as docker does.
	PlainHTTP func(host string) bool
}

// Client talks to OCI registries. It is safe for concurrent use; it caches
// tokens per host and scope.
type Client struct {
	http      *http.Client
	creds     CredentialStore
	userAgent string
	plainHTTP func(string) bool

	mu    sync.Mutex
	auths map[string]cachedAuth // authKey → Authorization header value
}

// New returns a Client.
func New(opts Options) *Client {
	c := &Client{http: opts.HTTP, creds: opts.Credentials, userAgent: opts.UserAgent,
		plainHTTP: opts.PlainHTTP, auths: map[string]cachedAuth{}}
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSHandshakeTimeout = 10 * time.Second
		t.ResponseHeaderTimeout = time.Minute
		t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		c.http = &http.Client{Transport: t}
	}
	if c.userAgent == "" {
		c.userAgent = "bulwark"
	}
	if c.plainHTTP == nil {
		c.plainHTTP = IsLoopback
	}
	return c
}

// IsLoopback reports whether host ("host[:port]") is localhost or a
// loopback address (127.0.0.0/8, ::1): the default for plain HTTP.
func IsLoopback(host string) bool { return loopback.Host(host) }

// errNoRegistry: bulwark never guesses a default registry.
var errNoRegistry = errors.New("image reference names no registry host")

func (c *Client) scheme(host string) string {
	if c.plainHTTP(host) {
		return "http"
	}
	return "https"
}

// endpoint is the URL of path (starting "/v2/") on ref's registry.
func (c *Client) endpoint(ref oci.ImageRef, path string, query url.Values) (*url.URL, error) {
	if ref.Registry == "" {
		return nil, fmt.Errorf("%s: %w", ref, errNoRegistry)
	}
	if err := oci.ValidateRepository(ref.Repository); err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: c.scheme(ref.Registry), Host: ref.Registry, Path: path}
	if query != nil {
		u.RawQuery = query.Encode()
	}
	return u, nil
}

// request is one registry request, replayable for the retry after a 401.
type request struct {
	method string
	url    *url.URL
	header http.Header
	body   []byte
	scope  string // token scope the request needs, e.g. repository:a/b:pull
}

// do sends r, answering one authentication challenge. Any status is
// returned: callers decide which ones they expect.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	host := r.url.Host
	resp, err := c.send(ctx, r, c.cachedAuth(host, r.scope))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	challenge := resp.Header.Values("WWW-Authenticate")
	// Read the (small) error body so the connection goes back to the pool
	// and the retry does not open a new one.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	authz, err := c.authenticate(ctx, r.url, strings.Join(challenge, ", "), r.scope)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, redact(r.url), err)
	}
	return c.send(ctx, r, authz)
}

func (c *Client) send(ctx context.Context, r request, authz string) (*http.Response, error) {
	var body *bytes.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	var req *http.Request
	var err error
	if body != nil {
		req, err = http.NewRequestWithContext(ctx, r.method, r.url.String(), body)
	} else {
		req, err = http.NewRequestWithContext(ctx, r.method, r.url.String(), nil)
	}
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.userAgent)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, redact(r.url), err)
	}
	return resp, nil
}

// redact drops the query, which may carry upload state, from error text.
func redact(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	return v.String()
}

func repoScope(repo string, push bool) string {
	if push {
		return "repository:" + repo + ":pull,push"
	}
	return "repository:" + repo + ":pull"
}
