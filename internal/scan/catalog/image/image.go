// Package image opens an image for scanning, from an OCI image layout on
// disk or from a registry: it resolves a reference to one platform's
// manifest, reads and bounds the config, and opens layer blobs verified
// against their digests. Unlike the runner it accepts images of any
// platform (a scan reads files, it runs nothing).
package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"strings"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
)

// Limits on what is read into memory.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 8 << 20
	maxLayerSize    = 64 << 30
)

// ErrImage is wrapped by errors about an image that cannot be scanned: no
// manifest for the platform, a config that is not JSON, layer counts that
// disagree.
var ErrImage = errors.New("image: cannot scan")

// Platform selects a manifest from an index.
type Platform struct {
	OS, Architecture, Variant string
}

// DefaultPlatform is linux on this binary's architecture.
func DefaultPlatform() Platform { return Platform{OS: "linux", Architecture: runtime.GOARCH} }

// ParsePlatform reads "os/arch[/variant]".
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Platform{}, fmt.Errorf("platform %q: want OS/ARCH[/VARIANT]", s)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Image is one platform's image, manifest and config read, no layer yet.
type Image struct {
	// Name is the reference or layout as given.
	Name string
	// Manifest is the platform manifest's descriptor.
	Manifest     v1.Descriptor
	ConfigDigest digest.Digest
	Config       v1.Image
	// ConfigBytes is the config blob as read (for fields the OCI spec
	// leaves out, such as Docker's Healthcheck).
	ConfigBytes []byte
	Layers      []v1.Descriptor

	blob  func(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)
	close func() error
}

// Close releases what the image holds open (a layout's directory).
func (img *Image) Close() error {
	if img.close == nil {
		return nil
	}
	return img.close()
}

// RootfsLayers returns the layers for rootfs.WalkLayers, each opened
// verified: reading a blob whose content does not match its digest (or
// size) fails, at the latest when it is closed.
func (img *Image) RootfsLayers() []rootfs.Layer {
	out := make([]rootfs.Layer, len(img.Layers))
	for i, d := range img.Layers {
		out[i] = rootfs.Layer{Digest: d.Digest, Open: func(ctx context.Context) (io.ReadCloser, error) {
			return img.blob(ctx, d)
		}}
	}
	return out
}

// resolve turns a manifest (or index) into the Image, reading the config
// and child manifests through blob and manifest.
func resolve(ctx context.Context, name string, desc v1.Descriptor, body []byte, platform Platform,
	manifest func(ctx context.Context, d v1.Descriptor) ([]byte, v1.Descriptor, error),
	blob func(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)) (*Image, error) {
	m, err := oci.ParseManifest(desc.MediaType, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrImage, name, err)
	}
	if m.IsIndex() {
		pick, err := pickPlatform(m.Manifests, platform)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrImage, name, err)
		}
		if body, desc, err = manifest(ctx, pick); err != nil {
			return nil, err
		}
		if m, err = oci.ParseManifest(desc.MediaType, body); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrImage, name, err)
		}
		if m.IsIndex() {
			return nil, fmt.Errorf("%w: %s: an index inside an index", ErrImage, name)
		}
	}
	if m.Config == nil {
		return nil, fmt.Errorf("%w: %s: manifest has no config", ErrImage, name)
	}
	if m.Config.Size > maxConfigSize {
		return nil, fmt.Errorf("%w: %s: config of %d bytes", ErrImage, name, m.Config.Size)
	}
	rc, err := blob(ctx, *m.Config)
	if err != nil {
		return nil, err
	}
	cb, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", name, err)
	}
	img := &Image{Name: name, Manifest: desc, ConfigDigest: m.Config.Digest, ConfigBytes: cb, Layers: m.Layers, blob: blob}
	if img.Config, err = ParseConfig(cb); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if n := len(img.Config.RootFS.DiffIDs); n != len(m.Layers) {
		return nil, fmt.Errorf("%w: %s: %d layers but %d diff ids", ErrImage, name, len(m.Layers), n)
	}
	for _, l := range m.Layers {
		if l.Size < 0 || l.Size > maxLayerSize {
			return nil, fmt.Errorf("%w: %s: layer %s of %d bytes", ErrImage, name, l.Digest, l.Size)
		}
	}
	return img, nil
}

// ParseConfig parses an image config blob (untrusted).
func ParseConfig(b []byte) (v1.Image, error) {
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
	for _, d := range img.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return v1.Image{}, fmt.Errorf("%w: config: diff id %q: %w", ErrImage, d, err)
		}
	}
	return img, nil
}

// pickPlatform chooses the platform's manifest from an index, ignoring
// entries without a platform (attestations, signatures).
func pickPlatform(ms []v1.Descriptor, want Platform) (v1.Descriptor, error) {
	for _, d := range ms {
		p := d.Platform
		if p == nil || !oci.IsManifestMediaType(d.MediaType) || oci.IsIndexMediaType(d.MediaType) {
			continue
		}
		if p.OS == want.OS && p.Architecture == want.Architecture && (want.Variant == "" || p.Variant == want.Variant) {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no %s manifest in the index", want)
}

// verified hashes a blob as it is read and judges it at EOF; Close reads
// what the caller left (a tar's end marker comes before the end of the
// blob) so a blob is always judged whole.
type verified struct {
	r    io.ReadCloser
	h    hash.Hash
	want digest.Digest
	size int64
	n    int64
	err  error
}

// ErrDigestMismatch is wrapped when a blob's content does not match its
// descriptor.
var ErrDigestMismatch = errors.New("image: blob content does not match its descriptor")

func newVerified(r io.ReadCloser, d v1.Descriptor) (*verified, error) {
	if err := d.Digest.Validate(); err != nil {
		r.Close()
		return nil, fmt.Errorf("%w: digest %q: %w", ErrImage, d.Digest, err)
	}
	return &verified{r: r, h: d.Digest.Algorithm().Hash(), want: d.Digest, size: d.Size}, nil
}

func (v *verified) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if rem := v.size - v.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.size {
		v.err = fmt.Errorf("%w: %s: more than %d bytes", ErrDigestMismatch, v.want, v.size)
		return n, v.err
	}
	if err == io.EOF {
		if v.n != v.size {
			v.err = fmt.Errorf("%w: %s: %d bytes, descriptor says %d", ErrDigestMismatch, v.want, v.n, v.size)
		} else if got := digest.NewDigest(v.want.Algorithm(), v.h); got != v.want {
			v.err = fmt.Errorf("%w: %s: content is %s", ErrDigestMismatch, v.want, got)
		} else {
			v.err = io.EOF
		}
		return n, v.err
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

func (v *verified) Close() error {
	_, err := io.Copy(io.Discard, v)
	if cerr := v.r.Close(); err == nil {
		err = cerr
	}
	return err
}
