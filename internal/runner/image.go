package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	return FetchCached(ctx, reg, ref, nil)
}

// FetchCached is Fetch keeping manifests and configs in cache (nil for
// none), by digest. The reference itself, tag or digest, is asked of the
// registry on every call: a moved tag must be seen, and the registry's
// own checks (credentials, its pull policy) apply to every run. What it
// reaches by digest from there (an index's platform manifest, the config)
// is content-addressed and read from the registry once.
func FetchCached(ctx context.Context, reg Registry, ref oci.ImageRef, cache *MetadataCache) (*Image, error) {
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
		if desc, body, err = cache.manifest(ctx, reg, byDigest); err != nil {
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
	cb, err := cache.config(ctx, reg, ref, *m.Config)
	if err != nil {
		return nil, err
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

// MetadataCache keeps image manifests and configs by digest, one file
// each: DIR/sha256/HEX. They are content-addressed and checked against
// their digest on every read, so a damaged or altered file is a miss,
// never a different image. It is nil-safe: a nil cache asks the registry.
type MetadataCache struct{ dir string }

// OpenMetadataCache returns the cache in dir, created on first write.
func OpenMetadataCache(dir string) *MetadataCache { return &MetadataCache{dir: dir} }

func (c *MetadataCache) path(d digest.Digest) string {
	return filepath.Join(c.dir, d.Algorithm().String(), d.Encoded())
}

// get returns the content stored for d, if it is there and intact.
func (c *MetadataCache) get(d digest.Digest, maxSize int64) ([]byte, bool) {
	if c == nil || d.Validate() != nil || !d.Algorithm().Available() {
		return nil, false
	}
	f, err := os.Open(c.path(d))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil || int64(len(b)) > maxSize || d.Algorithm().FromBytes(b) != d {
		return nil, false
	}
	return b, true
}

// put stores b, which the caller verified to be d's content. Failing to
// is harmless: the next run asks the registry again.
func (c *MetadataCache) put(d digest.Digest, b []byte) {
	if c == nil || d.Validate() != nil {
		return
	}
	p := c.path(d)
	if os.MkdirAll(filepath.Dir(p), 0o700) == nil {
		writeFileAtomic(p, b, 0o600)
	}
}

// manifest is reg.Manifest for a manifest named by digest in a verified
// index, answered from the cache when it holds it. Only manifests that
// carry their media type in the body are kept (the registry's
// Content-Type must agree with it), so the cached bytes alone say what
// they are.
func (c *MetadataCache) manifest(ctx context.Context, reg Registry, ref oci.ImageRef) (v1.Descriptor, []byte, error) {
	if ref.Digest != "" {
		if b, ok := c.get(ref.Digest, maxManifestSize); ok {
			if mt := bodyMediaType(b); mt != "" {
				return v1.Descriptor{MediaType: mt, Digest: ref.Digest, Size: int64(len(b))}, b, nil
			}
		}
	}
	desc, body, err := reg.Manifest(ctx, ref)
	if mt := bodyMediaType(body); err == nil && c != nil && mt != "" && mt == desc.MediaType && desc.Digest == ref.Digest &&
		int64(len(body)) <= maxManifestSize && ref.Digest.Algorithm().FromBytes(body) == ref.Digest {
		c.put(desc.Digest, body)
	}
	return desc, body, err
}

// maxManifestSize bounds a cached manifest (the distribution spec's
// recommended limit, which remote.Client enforces too).
const maxManifestSize = 4 << 20

// bodyMediaType is a manifest's own mediaType field, if it is a manifest
// or index type.
func bodyMediaType(b []byte) string {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(b, &probe) != nil || !oci.IsManifestMediaType(probe.MediaType) {
		return ""
	}
	return probe.MediaType
}

// config is the image config blob for desc, from the cache or the
// registry (then stored).
func (c *MetadataCache) config(ctx context.Context, reg Registry, ref oci.ImageRef, desc v1.Descriptor) ([]byte, error) {
	if b, ok := c.get(desc.Digest, desc.Size); ok && int64(len(b)) == desc.Size {
		return b, nil
	}
	rc, _, err := reg.Blob(ctx, ref, desc.Digest, desc.Size)
	if err != nil {
		return nil, err
	}
	cb, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", ref, err)
	}
	if int64(len(cb)) != desc.Size {
		return nil, fmt.Errorf("%w: %s: config is %d bytes, manifest says %d", ErrImage, ref, len(cb), desc.Size)
	}
	// reg.Blob verified the digest as it streamed.
	c.put(desc.Digest, cb)
	return cb, nil
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
