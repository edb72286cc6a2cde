package main

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
	"time"
)

// Media types used by the benchmark image.
const (
	mtOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex      = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig     = "application/vnd.oci.image.config.v1+json"
	mtOCILayer      = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerV2      = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	manifestAccept  = mtOCIManifest + ", " + mtOCIIndex + ", " + mtDockerV2 + ", " + mtDockerList
	headerDigest    = "Docker-Content-Digest"
	maxErrorSnippet = 256
)

// newHTTPClient returns the one HTTP client implementation used against every
// server: plain HTTP/1.1 with keep-alives and an idle pool large enough that
// no worker ever has to dial again after its first request.
func newHTTPClient(maxConns int) *http.Client {
	t := &http.Transport{
		Proxy:               nil, // loopback only; never use an environment proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
	}
	return &http.Client{
		Transport: t,
		// Registries answer uploads with Location headers that the client
		// follows itself; a redirect on a blob GET would hide a missing
		// "redirect: disable" and change what is measured, so refuse it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// regClient speaks the parts of the OCI distribution API the benchmark needs.
type regClient struct {
	hc   *http.Client
	base *url.URL
	user string // optional HTTP basic credentials
	pass string
}

func newRegClient(hc *http.Client, base, user, pass string) (*regClient, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	return &regClient{hc: hc, base: u, user: user, pass: pass}, nil
}

// statusError is a non-2xx answer (or any other unexpected one).
type statusError struct {
	op   string
	code int
	body string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.op, e.code, e.body)
}

func (c *regClient) newRequest(ctx context.Context, method, ref string, body io.Reader, size int64) (*http.Request, error) {
	u, err := c.base.Parse(ref)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	return req, nil
}

// do sends req and returns the response if its status is want; otherwise it
// drains and closes the body and returns a *statusError.
func (c *regClient) do(req *http.Request, op string, want int) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode == want {
		return resp, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorSnippet))
	closeBody(resp)
	return nil, &statusError{op: op, code: resp.StatusCode, body: strings.TrimSpace(string(snippet))}
}

// closeBody drains what is left of a body (bounded) so the connection can be
// reused, then closes it.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
}

// ping checks that path answers 200.
func (c *regClient) ping(ctx context.Context, path string) error {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil, 0)
	if err != nil {
		return err
	}
	resp, err := c.do(req, "GET "+path, http.StatusOK)
	if err != nil {
		return err
	}
	closeBody(resp)
	return nil
}

// pushBlob uploads a blob monolithically the way docker does: POST to open an
// upload session, then a single PUT of the whole content with ?digest=.
func (c *regClient) pushBlob(ctx context.Context, repo, digest string, size int64, body io.Reader) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	u, err := c.base.Parse(loc)
	if err != nil {
		return fmt.Errorf("upload location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	req, err := c.newRequest(ctx, http.MethodPut, u.String(), body, size)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(req, "PUT blob", http.StatusCreated)
	if err != nil {
		return err
	}
	closeBody(resp)
	return nil
}

func (c *regClient) startUpload(ctx context.Context, repo string) (string, error) {
	req, err := c.newRequest(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, 0)
	if err != nil {
		return "", err
	}
	resp, err := c.do(req, "POST upload", http.StatusAccepted)
	if err != nil {
		return "", err
	}
	closeBody(resp)
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.New("POST upload: no Location header")
	}
	return loc, nil
}

// getBlob fetches a blob, reading the whole body through buf, and returns the
// number of bytes read.
func (c *regClient) getBlob(ctx context.Context, repo, digest string, buf []byte) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+digest, nil, 0)
	if err != nil {
		return 0, err
	}
	resp, err := c.do(req, "GET blob", http.StatusOK)
	if err != nil {
		return 0, err
	}
	return readBody(resp, buf)
}

// putManifest uploads a manifest under ref and returns the digest the server
// reports.
func (c *regClient) putManifest(ctx context.Context, repo, ref, mediaType string, body []byte) (string, error) {
	req, err := c.newRequest(ctx, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.do(req, "PUT manifest", http.StatusCreated)
	if err != nil {
		return "", err
	}
	closeBody(resp)
	return resp.Header.Get(headerDigest), nil
}

// getManifest fetches a manifest by tag or digest with the Accept header
// docker sends, reading the whole body through buf.
func (c *regClient) getManifest(ctx context.Context, repo, ref string, buf []byte) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, 0)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.do(req, "GET manifest", http.StatusOK)
	if err != nil {
		return 0, err
	}
	return readBody(resp, buf)
}

// readBody reads and closes resp.Body using buf, and checks the byte count
// against Content-Length when the server sent one.
func readBody(resp *http.Response, buf []byte) (int64, error) {
	defer resp.Body.Close()
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("reading body: %w", err)
		}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("short body: %d of %d bytes", n, resp.ContentLength)
	}
	return n, nil
}
