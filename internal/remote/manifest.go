package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// MaxManifestSize is the largest manifest the client reads or pushes, the
// limit the distribution spec recommends registries accept.
const MaxManifestSize = 4 << 20

// Docker's manifest types, accepted alongside OCI's.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

var manifestAccept = strings.Join([]string{
	v1.MediaTypeImageManifest, v1.MediaTypeImageIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList,
}, ", ")

// manifestRef is the URL reference: the digest when given (it is what the
// caller trusts), else the tag.
func manifestRef(ref oci.ImageRef) (string, error) {
	switch {
	case ref.Digest != "":
		return ref.Digest.String(), nil
	case ref.Tag != "":
		return ref.Tag, nil
	}
	return "", fmt.Errorf("%s: %w: neither tag nor digest", ref, oci.ErrTagInvalid)
}

func (c *Client) manifestRequest(ref oci.ImageRef, method string) (request, error) {
	r, err := manifestRef(ref)
	if err != nil {
		return request{}, err
	}
	u, err := c.endpoint(ref, "/v2/"+ref.Repository+"/manifests/"+r, nil)
	if err != nil {
		return request{}, err
	}
	return request{method: method, url: u, header: http.Header{"Accept": {manifestAccept}},
		scope: repoScope(ref.Repository, false)}, nil
}

// Resolve returns the descriptor of ref's manifest, by HEAD when the
// registry announces the digest and by a verified GET otherwise. When ref
// carries a digest, a different announced digest is ErrDigestMismatch.
func (c *Client) Resolve(ctx context.Context, ref oci.ImageRef) (v1.Descriptor, error) {
	r, err := c.manifestRequest(ref, http.MethodHead)
	if err != nil {
		return v1.Descriptor{}, err
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return v1.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, responseError(resp))
	}
	resp.Body.Close()
	d, derr := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	size := resp.ContentLength
	mt := mediaType(resp.Header.Get("Content-Type"))
	if derr != nil || size < 0 || mt == "" {
		desc, _, err := c.Manifest(ctx, ref)
		return desc, err
	}
	if ref.Digest != "" && d != ref.Digest {
		return v1.Descriptor{}, fmt.Errorf("resolve %s: %w: registry announced %s", ref, ErrDigestMismatch, d)
	}
	if size > MaxManifestSize {
		return v1.Descriptor{}, fmt.Errorf("resolve %s: %w: manifest of %d bytes", ref, ErrTooLarge, size)
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, nil
}

func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(mt)
}

// Manifest fetches ref's manifest. The body is verified against ref.Digest
// when given and against the registry's Docker-Content-Digest when sent;
// either mismatch is ErrDigestMismatch. The descriptor's digest is
// ref.Digest, else the announced digest, else the body's sha256.
func (c *Client) Manifest(ctx context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error) {
	r, err := c.manifestRequest(ref, http.MethodGet)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w", ref, responseError(resp))
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w: %d bytes", ref, ErrTooLarge, resp.ContentLength)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w", ref, err)
	}
	if len(body) > MaxManifestSize {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w: over %d bytes", ref, ErrTooLarge, MaxManifestSize)
	}
	desc := v1.Descriptor{MediaType: mediaType(resp.Header.Get("Content-Type")), Size: int64(len(body))}
	if err := verifyBytes(body, ref.Digest); err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w", ref, err)
	}
	desc.Digest = ref.Digest
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
		announced, err := digest.Parse(h)
		if err != nil {
			return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w: bad Docker-Content-Digest %q", ref, ErrDigestMismatch, h)
		}
		if err := verifyBytes(body, announced); err != nil {
			return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: Docker-Content-Digest: %w", ref, err)
		}
		if desc.Digest == "" {
			desc.Digest = announced
		}
	}
	if desc.Digest == "" {
		desc.Digest = digest.FromBytes(body)
	}
	if desc.MediaType == "" || desc.MediaType == "application/json" || desc.MediaType == "application/octet-stream" {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.MediaType != "" {
			desc.MediaType = probe.MediaType
		}
	}
	return desc, body, nil
}

// verifyBytes checks b against want; an empty want passes.
func verifyBytes(b []byte, want digest.Digest) error {
	if want == "" {
		return nil
	}
	if !want.Algorithm().Available() {
		return fmt.Errorf("%w: unsupported algorithm in %s", ErrDigestMismatch, want)
	}
	if got := want.Algorithm().FromBytes(b); got != want {
		return fmt.Errorf("%w: content is %s, want %s", ErrDigestMismatch, got, want)
	}
	return nil
}

// Pushed is the result of PushManifest.
type Pushed struct {
	v1.Descriptor
	// SubjectProcessed is true when the registry answered with OCI-Subject,
	// i.e. it indexes this manifest's subject in its referrers API itself.
	// When a manifest with a subject is pushed to a registry that did not,
	// PushManifest has updated the referrers tag schema index instead.
	SubjectProcessed bool
}

// PushManifest uploads body under ref's tag, or its digest when it has no
// tag (a digest given with a tag must match body). A manifest with a
// "subject" pushed to a registry without the referrers API is also added
// to the subject's fallback index tag ("sha256-<hex>"), as the distribution
// spec asks clients to do.
func (c *Client) PushManifest(ctx context.Context, ref oci.ImageRef, mediaType string, body []byte) (Pushed, error) {
	if len(body) > MaxManifestSize {
		return Pushed{}, fmt.Errorf("push manifest %s: %w: %d bytes", ref, ErrTooLarge, len(body))
	}
	d := digest.FromBytes(body)
	if ref.Digest != "" {
		if err := verifyBytes(body, ref.Digest); err != nil {
			return Pushed{}, fmt.Errorf("push manifest %s: %w", ref, err)
		}
		d = ref.Digest
	}
	target := ref
	if ref.Tag != "" {
		target.Digest = ""
	} else {
		target.Digest = d
	}
	r, err := c.manifestRequest(target, http.MethodPut)
	if err != nil {
		return Pushed{}, err
	}
	r.header = http.Header{"Content-Type": {mediaType}}
	r.body = body
	r.scope = repoScope(ref.Repository, true)
	resp, err := c.do(ctx, r)
	if err != nil {
		return Pushed{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return Pushed{}, fmt.Errorf("push manifest %s: %w", ref, responseError(resp))
	}
	resp.Body.Close()
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != d.String() {
		return Pushed{}, fmt.Errorf("push manifest %s: %w: registry stored %s, sent %s", ref, ErrDigestMismatch, h, d)
	}
	out := Pushed{Descriptor: v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(body))},
		SubjectProcessed: resp.Header.Get("OCI-Subject") != ""}
	var m struct {
		ArtifactType string            `json:"artifactType"`
		Config       *v1.Descriptor    `json:"config"`
		Subject      *v1.Descriptor    `json:"subject"`
		Annotations  map[string]string `json:"annotations"`
	}
	if json.Unmarshal(body, &m) != nil || m.Subject == nil || out.SubjectProcessed {
		return out, nil
	}
	entry := out.Descriptor
	entry.ArtifactType = m.ArtifactType
	if entry.ArtifactType == "" && m.Config != nil {
		entry.ArtifactType = m.Config.MediaType
	}
	entry.Annotations = m.Annotations
	if err := c.addToReferrersTag(ctx, ref, m.Subject.Digest, entry); err != nil {
		return out, fmt.Errorf("push manifest %s: referrers tag: %w", ref, err)
	}
	return out, nil
}

// ReferrersTag is the fallback tag schema's tag for subject: "<alg>-<hex>".
func ReferrersTag(subject digest.Digest) string {
	return subject.Algorithm().String() + "-" + subject.Encoded()
}

// addToReferrersTag adds entry to the subject's fallback index. It is a
// read-modify-write without a lock: concurrent pushers can lose entries,
// a limit the spec's tag schema shares with every client.
func (c *Client) addToReferrersTag(ctx context.Context, ref oci.ImageRef, subject digest.Digest, entry v1.Descriptor) error {
	tagRef := oci.ImageRef{Registry: ref.Registry, Repository: ref.Repository, Tag: ReferrersTag(subject)}
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{}}
	idx.SchemaVersion = 2
	_, body, err := c.Manifest(ctx, tagRef)
	switch {
	case err == nil:
		if err := json.Unmarshal(body, &idx); err != nil {
			return fmt.Errorf("existing index %s: %w", tagRef, err)
		}
	case !isNotFound(err):
		return err
	}
	for _, m := range idx.Manifests {
		if m.Digest == entry.Digest {
			return nil
		}
	}
	idx.Manifests = append(idx.Manifests, entry)
	out, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	_, err = c.PushManifest(ctx, tagRef, v1.MediaTypeImageIndex, out)
	return err
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// Tag points tag at the manifest src names (by digest or tag), copying it
// within src's repository.
func (c *Client) Tag(ctx context.Context, src oci.ImageRef, tag string) (v1.Descriptor, error) {
	if err := oci.ValidateTag(tag); err != nil {
		return v1.Descriptor{}, err
	}
	desc, body, err := c.Manifest(ctx, src)
	if err != nil {
		return v1.Descriptor{}, err
	}
	dst := oci.ImageRef{Registry: src.Registry, Repository: src.Repository, Tag: tag, Digest: desc.Digest}
	p, err := c.PushManifest(ctx, dst, desc.MediaType, body)
	return p.Descriptor, err
}
