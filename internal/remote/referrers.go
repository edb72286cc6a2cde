package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Referrers lists the manifests in repo's repository whose subject is
// subject, optionally only those of artifactType. It uses the referrers
// API, and the referrers tag schema ("sha256-<hex>" index) when the
// registry answers 404 there; no referrers is an empty list, not an error.
// Entries are as the registry lists them: callers fetch and verify each
// manifest (by digest) before trusting anything it says.
func (c *Client) Referrers(ctx context.Context, repo oci.ImageRef, subject digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	if err := subject.Validate(); err != nil {
		return nil, fmt.Errorf("referrers: %w", err)
	}
	var q url.Values
	if artifactType != "" {
		q = url.Values{"artifactType": {artifactType}}
	}
	u, err := c.endpoint(repo, "/v2/"+repo.Repository+"/referrers/"+subject.String(), q)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, url: u, scope: repoScope(repo.Repository, false),
		header: http.Header{"Accept": {v1.MediaTypeImageIndex}}})
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
		if err != nil {
			return nil, fmt.Errorf("referrers %s: %w", subject, err)
		}
		if len(body) > MaxManifestSize {
			return nil, fmt.Errorf("referrers %s: %w", subject, ErrTooLarge)
		}
		var idx v1.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return nil, fmt.Errorf("referrers %s: %w", subject, err)
		}
		if strings.Contains(resp.Header.Get("OCI-Filters-Applied"), "artifactType") {
			return nonNil(idx.Manifests), nil
		}
		return filter(idx.Manifests, artifactType), nil
	case http.StatusNotFound:
		resp.Body.Close()
	default:
		return nil, fmt.Errorf("referrers %s: %w", subject, responseError(resp))
	}

	tagRef := oci.ImageRef{Registry: repo.Registry, Repository: repo.Repository, Tag: ReferrersTag(subject)}
	_, body, err := c.Manifest(ctx, tagRef)
	if isNotFound(err) {
		return []v1.Descriptor{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("referrers %s: tag schema: %w", subject, err)
	}
	var idx v1.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		return nil, fmt.Errorf("referrers %s: tag schema index: %w", subject, err)
	}
	return filter(idx.Manifests, artifactType), nil
}

func filter(ds []v1.Descriptor, artifactType string) []v1.Descriptor {
	out := []v1.Descriptor{}
	for _, d := range ds {
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out
}

func nonNil(ds []v1.Descriptor) []v1.Descriptor {
	if ds == nil {
		return []v1.Descriptor{}
	}
	return ds
}
