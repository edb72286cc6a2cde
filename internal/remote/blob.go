package remote

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Blob opens blob d of repo's repository (repo's tag and digest are
// ignored). The reader fails with ErrDigestMismatch at EOF if the content
// does not match d, and with ErrTooLarge past maxSize bytes; callers must
// read to EOF before trusting what they read. size is the announced
// length, -1 when the registry sent none.
func (c *Client) Blob(ctx context.Context, repo oci.ImageRef, d digest.Digest, maxSize int64) (io.ReadCloser, int64, error) {
	if err := d.Validate(); err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", d, err)
	}
	u, err := c.endpoint(repo, "/v2/"+repo.Repository+"/blobs/"+d.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, url: u, scope: repoScope(repo.Repository, false)})
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("blob %s@%s: %w", repo.Repository, d, responseError(resp))
	}
	if resp.ContentLength > maxSize {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("blob %s: %w: %d bytes, limit %d", d, ErrTooLarge, resp.ContentLength, maxSize)
	}
	return &verifier{body: resp.Body, h: d.Algorithm().Hash(), want: d, left: maxSize, size: resp.ContentLength}, resp.ContentLength, nil
}

// verifier hashes what passes through it and judges at EOF.
type verifier struct {
	body io.ReadCloser
	h    hash.Hash
	want digest.Digest
	left int64 // bytes still allowed
	size int64 // announced, -1 unknown
	n    int64
	err  error // sticky
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if int64(len(p)) > v.left+1 {
		p = p[:v.left+1]
	}
	n, err := v.body.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	v.left -= int64(n)
	if v.left < 0 {
		v.err = fmt.Errorf("blob %s: %w", v.want, ErrTooLarge)
		return n, v.err
	}
	if errors.Is(err, io.EOF) {
		if got := digest.NewDigest(v.want.Algorithm(), v.h); got != v.want {
			v.err = fmt.Errorf("blob %s: %w: content is %s", v.want, ErrDigestMismatch, got)
			return n, v.err
		}
		if v.size >= 0 && v.n != v.size {
			v.err = fmt.Errorf("blob %s: %d bytes, announced %d", v.want, v.n, v.size)
			return n, v.err
		}
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

func (v *verifier) Close() error { return v.body.Close() }

// PushBlob uploads content to repo's repository unless the registry already
// has it (HEAD), with a POST for an upload session and a monolithic PUT.
// The descriptor has no media type: the caller knows what the blob is.
func (c *Client) PushBlob(ctx context.Context, repo oci.ImageRef, content []byte) (v1.Descriptor, error) {
	d := digest.FromBytes(content)
	desc := v1.Descriptor{Digest: d, Size: int64(len(content))}
	scope := repoScope(repo.Repository, true)
	u, err := c.endpoint(repo, "/v2/"+repo.Repository+"/blobs/"+d.String(), nil)
	if err != nil {
		return v1.Descriptor{}, err
	}
	resp, err := c.do(ctx, request{method: http.MethodHead, url: u, scope: scope})
	if err != nil {
		return v1.Descriptor{}, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return desc, nil
	}

	u, _ = c.endpoint(repo, "/v2/"+repo.Repository+"/blobs/uploads/", nil)
	resp, err = c.do(ctx, request{method: http.MethodPost, url: u, scope: scope, body: []byte{}})
	if err != nil {
		return v1.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return v1.Descriptor{}, fmt.Errorf("push blob %s: start upload: %w", d, responseError(resp))
	}
	resp.Body.Close()
	loc, err := u.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host != u.Host || (loc.Scheme != "http" && loc.Scheme != "https") {
		// Uploads stay on the registry: a Location elsewhere would carry
		// this host's token to a third party.
		return v1.Descriptor{}, fmt.Errorf("push blob %s: upload location %q not on %s", d, resp.Header.Get("Location"), u.Host)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = c.do(ctx, request{method: http.MethodPut, url: loc, scope: scope, body: content,
		header: http.Header{"Content-Type": {"application/octet-stream"}}})
	if err != nil {
		return v1.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return v1.Descriptor{}, fmt.Errorf("push blob %s: %w", d, responseError(resp))
	}
	resp.Body.Close()
	return desc, nil
}
