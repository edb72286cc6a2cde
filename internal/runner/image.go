package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/runner/unpack"
)

// maxConfigSize bounds an image config blob; real ones are a few KiB, the
// history of a large image a few hundred.
const maxConfigSize = 8 << 20

// ErrImage is returned for an image bulwark cannot run here: an index
// without a manifest for this platform, a config for another OS or
// architecture, a config that is not valid JSON or disagrees with its
// manifest.
var ErrImage = errors.New("image not runnable")

// Registry is the part of a registry client the runner needs
// (remote.Client has it). Both methods verify what they return against
// the digest asked for.
type Registry interface {
	Manifest(ctx context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error)
	Blob(ctx context.Context, repo oci.ImageRef, d digest.Digest, maxSize int64) (io.ReadCloser, int64, error)
}

// Image is an image resolved to digests, with its manifest and config read
// but no layer fetched: signature checks and the policy decision happen on
// it before Rootfs writes anything.
type Image struct {
	// Ref is the reference as given, with Digest set to what was resolved
	// (the index's digest when the reference named an index).
	Ref oci.ImageRef
	// Manifest is the descriptor of the platform's image manifest; it
	// differs from Ref.Digest when Ref names an index.
	Manifest v1.Descriptor
	Config   v1.Image
	Layers   []v1.Descriptor
}

// Fetch resolves ref to a digest, picks this platform's manifest from an
// index, and reads and checks the image config.
func Fetch(ctx context.Context, reg Registry, ref oci.ImageRef) (*Image, error) {
	desc, body, err := reg.Manifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	img := &Image{Ref: ref}
	img.Ref.Digest = desc.Digest
	m, err := oci.ParseManifest(desc.MediaType, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrImage, ref, err)
	}
	if m.IsIndex() {
		pick, err := pickPlatform(m.Manifests)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrImage, ref, err)
		}
		byDigest := ref
		byDigest.Tag, byDigest.Digest = "", pick.Digest
		if desc, body, err = reg.Manifest(ctx, byDigest); err != nil {
			return nil, err
		}
		if m, err = oci.ParseManifest(desc.MediaType, body); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrImage, ref, err)
		}
		if m.IsIndex() {
			return nil, fmt.Errorf("%w: %s: an index inside an index", ErrImage, ref)
		}
	}
	img.Manifest = desc
	if m.Config == nil {
		return nil, fmt.Errorf("%w: %s: manifest has no config", ErrImage, ref)
	}
	if m.Config.Size > maxConfigSize {
		return nil, fmt.Errorf("%w: %s: config of %d bytes", ErrImage, ref, m.Config.Size)
	}
	rc, _, err := reg.Blob(ctx, ref, m.Config.Digest, m.Config.Size)
	if err != nil {
		return nil, err
	}
	cb, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", ref, err)
	}
	if int64(len(cb)) != m.Config.Size {
		return nil, fmt.Errorf("%w: %s: config is %d bytes, manifest says %d", ErrImage, ref, len(cb), m.Config.Size)
	}
	if img.Config, err = ParseImageConfig(cb); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if n := len(img.Config.RootFS.DiffIDs); n != len(m.Layers) {
		return nil, fmt.Errorf("%w: %s: %d layers but %d diff ids", ErrImage, ref, len(m.Layers), n)
	}
	img.Layers = m.Layers
	return img, nil
}

// pickPlatform chooses linux on this binary's architecture from an
// index, ignoring entries without a platform (attestations, signatures).
func pickPlatform(ms []v1.Descriptor) (v1.Descriptor, error) {
	for _, d := range ms {
		p := d.Platform
		if p != nil && p.OS == "linux" && p.Architecture == runtime.GOARCH && oci.IsManifestMediaType(d.MediaType) && !oci.IsIndexMediaType(d.MediaType) {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no linux/%s manifest in the index", runtime.GOARCH)
}

// ParseImageConfig parses an image config blob (untrusted) and checks that
// it is for Linux on this architecture.
func ParseImageConfig(b []byte) (v1.Image, error) {
	var img v1.Image
	if len(b) > maxConfigSize {
		return img, fmt.Errorf("%w: config of %d bytes", ErrImage, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&img); err != nil {
		return v1.Image{}, fmt.Errorf("%w: config: %w", ErrImage, err)
	}
	if dec.More() {
		return v1.Image{}, fmt.Errorf("%w: config: trailing data", ErrImage)
	}
	if img.OS != "linux" || img.Architecture != runtime.GOARCH {
		return v1.Image{}, fmt.Errorf("%w: the image is for %s/%s, this host runs linux/%s", ErrImage, img.OS, img.Architecture, runtime.GOARCH)
	}
	for _, d := range img.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return v1.Image{}, fmt.Errorf("%w: config: diff id %q: %w", ErrImage, d, err)
		}
	}
	return img, nil
}

// Rootfs extracts the image's layers into the cache (each once, by its
// digest, fetched from reg on a miss) and returns the stack to run.
func (img *Image) Rootfs(ctx context.Context, cache *unpack.Cache, reg Registry) (*unpack.Rootfs, error) {
	fetch := func(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
		rc, _, err := reg.Blob(ctx, img.Ref, d.Digest, d.Size)
		return rc, err
	}
	rootfs, err := cache.Rootfs(ctx, img.Layers, fetch)
	if err != nil {
		return nil, err
	}
	// The layers' digests were verified; their uncompressed content must
	// also be what the (verified) config says, as Docker checks, so a
	// config cannot describe one filesystem while the layers hold another.
	if err := rootfs.CheckDiffIDs(img.Config.RootFS.DiffIDs); err != nil {
		return nil, err
	}
	return rootfs, nil
}
