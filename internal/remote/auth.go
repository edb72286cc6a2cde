package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Authentication, and why it is shaped this way:
//
//   - Credentials are looked up only on a 401, so hosts that need none never
//     cause a credential-store error.
//   - A Bearer realm receives the user's credentials only over HTTPS, or over
//     plain HTTP when the realm is the registry's own host:port and the
//     registry itself is spoken to over plain HTTP (a loopback registry).
//     Otherwise the token is requested anonymously: a malicious or spoofed
//     registry must not be able to point clients at a plain-HTTP realm it
//     controls and collect passwords in clear text.
//   - Basic challenges are answered with the host's own credentials, which
//     only ever go to that host.
//   - Tokens are cached per (host, scope set) until shortly before they
//     expire; a request is retried once after a challenge, never more.

type cachedAuth struct {
	header  string
	expires time.Time // zero: no expiry (Basic)
}

const maxTokenBody = 1 << 20

func authKey(host, scope string) string { return host + "|" + scope }

func (c *Client) cachedAuth(host, scope string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range []string{authKey(host, "basic"), authKey(host, scope)} {
		if a, ok := c.auths[k]; ok {
			if a.expires.IsZero() || time.Now().Before(a.expires) {
				return a.header
			}
			delete(c.auths, k)
		}
	}
	return ""
}

func (c *Client) store(keys []string, a cachedAuth) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.auths[k] = a
	}
}

func (c *Client) credentials(host string) (Credential, error) {
	if c.creds == nil {
		return Credential{}, nil
	}
	return c.creds.Credentials(host)
}

// authenticate answers the challenge of a 401 from u with an Authorization
// header value, or fails with ErrUnauthorized.
func (c *Client) authenticate(ctx context.Context, u *url.URL, header, scope string) (string, error) {
	if header == "" {
		return "", fmt.Errorf("%w: 401 without a challenge", ErrUnauthorized)
	}
	challenges, err := ParseChallenges(header)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	for _, ch := range challenges {
		if ch.Scheme == "bearer" {
			return c.bearer(ctx, u, ch, scope)
		}
	}
	for _, ch := range challenges {
		if ch.Scheme == "basic" {
			cred, err := c.credentials(u.Host)
			if err != nil {
				return "", err
			}
			if cred == (Credential{}) {
				return "", fmt.Errorf("%w: %s requires credentials", ErrUnauthorized, u.Host)
			}
			h := "Basic " + base64.StdEncoding.EncodeToString([]byte(cred.Username+":"+cred.Secret))
			c.store([]string{authKey(u.Host, "basic")}, cachedAuth{header: h})
			return h, nil
		}
	}
	return "", fmt.Errorf("%w: no supported challenge in %q", ErrUnauthorized, header)
}

func (c *Client) bearer(ctx context.Context, u *url.URL, ch Challenge, scope string) (string, error) {
	realm, err := url.Parse(ch.Params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", fmt.Errorf("%w %q: not an http(s) URL", ErrInsecureRealm, ch.Params["realm"])
	}
	scopes := strings.Fields(ch.Params["scope"])
	if len(scopes) == 0 && scope != "" {
		scopes = []string{scope}
	}
	sort.Strings(scopes)
	q := realm.Query()
	if s := ch.Params["service"]; s != "" {
		q.Set("service", s)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	realm.RawQuery = q.Encode()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", c.userAgent)
	sameHost := strings.EqualFold(realm.Host, u.Host)
	safe := realm.Scheme == "https" || (sameHost && u.Scheme == "http" && c.plainHTTP(u.Host))
	cred, err := c.credentials(u.Host)
	if err != nil {
		return "", err
	}
	if cred != (Credential{}) && safe {
		req.SetBasicAuth(cred.Username, cred.Secret)
	}
	// Go forwards Authorization on same-host redirects, even from https to
	// http; a realm must not be able to downgrade the credentials it got.
	hc := *c.http
	hc.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		plainOK := u.Scheme == "http" && c.plainHTTP(u.Host) && strings.EqualFold(r.URL.Host, u.Host)
		if r.URL.Scheme != "https" && req.Header.Get("Authorization") != "" && !plainOK {
			return fmt.Errorf("%w: redirect to %s", ErrInsecureRealm, redact(r.URL))
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("token from %s: %w", redact(realm), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token from %s: %w", redact(realm), errors.Join(ErrUnauthorized, responseError(resp)))
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenBody)).Decode(&tr); err != nil {
		return "", fmt.Errorf("token from %s: %w", redact(realm), err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return "", fmt.Errorf("token from %s: %w: empty token", redact(realm), ErrUnauthorized)
	}
	// The spec's default lifetime is 60 s; keep a margin for clock skew
	// and request latency.
	life := time.Duration(max(tr.ExpiresIn, 60)) * time.Second
	h := "Bearer " + tok
	// Cached under the scope set the token was issued for, which is the
	// request's own scope when the registry asked for exactly that: a
	// token for less must not be reused for requests that need more.
	c.store([]string{authKey(u.Host, strings.Join(scopes, " "))},
		cachedAuth{header: h, expires: time.Now().Add(life - 10*time.Second)})
	return h, nil
}
