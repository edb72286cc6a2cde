package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulwark-dev/bulwark/internal/apiclient"
)

// ErrInsecure refuses to send credentials in clear text to a server that
// is not on this machine.
var ErrInsecure = apiclient.ErrInsecure

// APIError is an answer other than success from the inventory API.
type APIError = apiclient.Error

// maxListBody bounds a list answer: MaxRunning records of a few KiB.
const maxListBody = 512 << 20

// ClientOptions configure a Client.
type ClientOptions = apiclient.Options

// Client talks to a bulwark server's inventory API.
type Client struct{ *apiclient.Client }

// NewClient returns a client for server: a URL (http://127.0.0.1:5000,
// https://registry.example) or a bare HOST[:PORT], which means HTTPS
// except on loopback, as for registries. Credentials are never sent over
// plain HTTP beyond loopback (ErrInsecure).
func NewClient(server string, opts ClientOptions) (*Client, error) {
	c, err := apiclient.New("inventory", server, opts)
	if err != nil {
		return nil, err
	}
	return &Client{c}, nil
}

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
	b, err := c.Do(ctx, method, path, query, body, want, maxListBody)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("inventory %s %s: %w", method, path, err)
	}
	return nil
}
