// Package apiclient is the client side of bulwark's own JSON APIs (the
// inventory API, the scan results API): one server, one Authorization
// header, bounded answers, and errors that carry the server's message.
// Registries are spoken to with internal/remote instead.
package apiclient

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bulwark-dev/bulwark/internal/loopback"
)

// ErrInsecure refuses to send credentials in clear text to a server that
// is not on this machine.
var ErrInsecure = errors.New("refusing to send credentials over plain HTTP to a non-loopback server")

// Error is an answer other than the one expected.
type Error struct {
	Status int
	// Code and Message are the server's {"code": …, "error": …}, or the
	// start of whatever else it answered.
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// Options configure a Client.
type Options struct {
	// HTTP is the client; nil means one with a 30 s timeout.
	HTTP *http.Client
	// Authorization is the Authorization header sent with every request
	// ("Basic …" or "Bearer …"); empty for none.
	Authorization string
	// UserAgent is sent with every request; empty means "bulwark".
	UserAgent string
}

// Client talks to one bulwark server.
type Client struct {
	name  string // the API's name in errors
	base  *url.URL
	http  *http.Client
	authz string
	ua    string
}

// New returns a client of the API called name for server: a URL
// (http://127.0.0.1:5000, https://registry.example) or a bare
// HOST[:PORT], which means HTTPS except on loopback, as for registries.
// Credentials are never sent over plain HTTP beyond loopback
// (ErrInsecure).
func New(name, server string, opts Options) (*Client, error) {
	s := strings.TrimRight(server, "/")
	if !strings.Contains(s, "://") {
		scheme := "https"
		if loopback.Host(s) {
			scheme = "http"
		}
		s = scheme + "://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s server %q: want http(s)://HOST[:PORT]", name, server)
	}
	if u.Scheme == "http" && opts.Authorization != "" && !loopback.Host(u.Host) {
		return nil, fmt.Errorf("%w: %s (use https)", ErrInsecure, u.Host)
	}
	hc := opts.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{name: name, base: u, http: hc, authz: opts.Authorization, ua: cmp.Or(opts.UserAgent, "bulwark")}, nil
}

// Host is the server's host[:port], for looking up its credentials.
func (c *Client) Host() string { return c.base.Host }

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 16 << 10

// Do sends a request (body, if not nil, as JSON) to path with query and
// returns the answer's body, of at most limit bytes, if its status is
// want; any other status is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body []byte, want int, limit int64) ([]byte, error) {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if c.authz != "" {
		req.Header.Set("Authorization", c.authz)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		var e struct{ Error, Code string }
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
			if len(e.Error) > 512 {
				e.Error = strings.ToValidUTF8(e.Error[:512], "") + "…"
			}
		}
		return nil, fmt.Errorf("%s %s %s: %w", c.name, method, u.Redacted(), &Error{Status: resp.StatusCode, Code: e.Code, Message: e.Error})
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", c.name, method, u.Redacted(), err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s %s %s: answer larger than %d bytes", c.name, method, u.Redacted(), limit)
	}
	return b, nil
}
