package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrInsecure refuses to send credentials in clear text to a server that
// is not on this machine.
var ErrInsecure = errors.New("refusing to send credentials over plain HTTP to a non-loopback server")

// APIError is an answer other than success from the inventory API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// maxListBody bounds a list answer: MaxRunning records of a few KiB.
const maxListBody = 512 << 20

// ClientOptions configure a Client.
type ClientOptions struct {
	// HTTP is the client; nil means one with a 30 s timeout.
	HTTP *http.Client
	// Authorization is the Authorization header sent with every request
	// ("Basic …" or "Bearer …"); empty for none.
	Authorization string
	// UserAgent is sent with every request.
	UserAgent string
}

// Client talks to a bulwark server's inventory API.
type Client struct {
	base  *url.URL
	http  *http.Client
	authz string
	ua    string
}

// NewClient returns a client for server: a URL (http://127.0.0.1:5000,
// https://registry.example) or a bare HOST[:PORT], which means HTTPS
// except on loopback, as for registries. Credentials are never sent over
// plain HTTP beyond loopback (ErrInsecure).
func NewClient(server string, opts ClientOptions) (*Client, error) {
	s := strings.TrimRight(server, "/")
	if !strings.Contains(s, "://") {
		scheme := "https"
		if isLoopback(s) {
			scheme = "http"
		}
		s = scheme + "://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("inventory server %q: want http(s)://HOST[:PORT]", server)
	}
	if u.Scheme == "http" && opts.Authorization != "" && !isLoopback(u.Host) {
		return nil, fmt.Errorf("%w: %s (use https)", ErrInsecure, u.Host)
	}
	hc := opts.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "bulwark"
	}
	return &Client{base: u, http: hc, authz: opts.Authorization, ua: ua}, nil
}

// Host is the server's host[:port], for looking up its credentials.
func (c *Client) Host() string { return c.base.Host }

// Report sends one event and returns the record the server stored.
func (c *Client) Report(ctx context.Context, e Event) (Record, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := c.do(ctx, http.MethodPost, EventsPath, nil, body, http.StatusCreated, &rec); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// Running lists the containers that run, filtered by q.
func (c *Client) Running(ctx context.Context, q Query) ([]Record, error) {
	var recs []Record
	err := c.do(ctx, http.MethodGet, RunningPath, q.values(), nil, http.StatusOK, &recs)
	return recs, err
}

// Events lists events, newest first, filtered by q; limit 0 means the
// server's default.
func (c *Client) Events(ctx context.Context, q Query, limit int) ([]Record, error) {
	v := q.values()
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var recs []Record
	err := c.do(ctx, http.MethodGet, EventsPath, v, nil, http.StatusOK, &recs)
	return recs, err
}

func (q Query) values() url.Values {
	v := url.Values{}
	for _, f := range []struct{ k, v string }{{"host", q.Host}, {"container", q.Container}, {"repository", q.Repository},
		{"digest", q.Digest}, {"environment", q.Environment}} {
		if f.v != "" {
			v.Set(f.k, f.v)
		}
	}
	return v
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, want int, out any) error {
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
		return err
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
		return fmt.Errorf("inventory: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var e apiError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
			if len(e.Error) > 512 {
				e.Error = e.Error[:512] + "…"
			}
		}
		return fmt.Errorf("inventory %s %s: %w", method, u.Redacted(), &APIError{Status: resp.StatusCode, Message: e.Error})
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(out); err != nil {
		return fmt.Errorf("inventory %s %s: %w", method, u.Redacted(), err)
	}
	return nil
}

// isLoopback reports whether host ("host[:port]") is localhost or a
// loopback address.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
