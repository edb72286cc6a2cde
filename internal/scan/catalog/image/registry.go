package image

import (
	"context"
	"io"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Registry is the part of a registry client a scan needs (remote.Client
// has it). Both methods verify what they return against the digest asked
// for.
type Registry interface {
	Manifest(ctx context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error)
	Blob(ctx context.Context, repo oci.ImageRef, d digest.Digest, maxSize int64) (io.ReadCloser, int64, error)
}

// Fetch resolves ref to the platform's image in a registry.
func Fetch(ctx context.Context, reg Registry, ref oci.ImageRef, platform Platform) (*Image, error) {
	desc, body, err := reg.Manifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	blob := func(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
		rc, _, err := reg.Blob(ctx, ref, d.Digest, d.Size)
		if err != nil {
			return nil, err
		}
		// The client judges the digest at EOF; verified also holds the
		// blob to its descriptor's size and reads it whole on Close.
		return newVerified(rc, d)
	}
	manifest := func(ctx context.Context, d v1.Descriptor) ([]byte, v1.Descriptor, error) {
		byDigest := ref
		byDigest.Tag, byDigest.Digest = "", d.Digest
		got, b, err := reg.Manifest(ctx, byDigest)
		return b, got, err
	}
	img, err := resolve(ctx, ref.String(), desc, body, platform, manifest, blob)
	if err != nil {
		return nil, err
	}
	return img, nil
}
