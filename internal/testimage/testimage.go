// Package testimage builds small, deterministic OCI image layouts on local
// disk for tests. Images are written in the OCI image-layout format
// (oci-layout, index.json, blobs/sha256/...) so they can be fed to tools such
// as skopeo ("oci:DIR:TAG") or pushed blob by blob over HTTP.
//
// Every input that affects a digest (timestamps, entry order, ownership,
// compression settings) is fixed, so the same inputs always produce the same
// manifest digest. That lets tests assert exact digests after a round trip
// through a registry.
package testimage

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultTag is the index.json ref name used when WithTag is not given.
const DefaultTag = "latest"

// DefaultCreated is the creation time recorded in configs and used as the
// mtime of every tar entry, unless WithCreated overrides it.
var DefaultCreated = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Image describes one image written to (or read from) an OCI image layout.
type Image struct {
	// Dir is the root of the OCI image layout.
	Dir string
	// Tag is the org.opencontainers.image.ref.name of the manifest in
	// index.json.
	Tag string

	ManifestDigest digest.Digest
	ManifestBytes  []byte
	Manifest       v1.Manifest

	ConfigDigest digest.Digest
	ConfigBytes  []byte
	Config       v1.Image

	// LayerDigests are the digests of the (compressed) layer blobs, in
	// manifest order.
	LayerDigests []digest.Digest
	// DiffIDs are the digests of the uncompressed layer tars, in order; they
	// equal Config.RootFS.DiffIDs.
	DiffIDs []digest.Digest
}

// OCIRef returns the containers-image transport reference for the image,
// e.g. "oci:/tmp/x:latest", as understood by skopeo.
func (img Image) OCIRef() string { return "oci:" + img.Dir + ":" + img.Tag }

// BlobPath returns where the blob with digest d lives in the layout.
func (img Image) BlobPath(d digest.Digest) string { return blobPath(img.Dir, d) }

// Blob reads the blob with digest d from the layout.
func (img Image) Blob(d digest.Digest) ([]byte, error) { return os.ReadFile(img.BlobPath(d)) }

// Size returns the total size in bytes of the manifest, config and layers.
func (img Image) Size() int64 {
	n := int64(len(img.ManifestBytes)) + img.Manifest.Config.Size
	for _, l := range img.Manifest.Layers {
		n += l.Size
	}
	return n
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, v1.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// Option customises a generated image.
type Option func(*options)

type options struct {
	tag         string
	created     time.Time
	labels      map[string]string
	files       map[string][]byte
	busyboxPath string
}

func newOptions(opts []Option) *options {
	o := &options{tag: DefaultTag, created: DefaultCreated, busyboxPath: "/bin/busybox"}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// WithTag sets the ref name recorded in index.json. Writing several tags into
// the same directory yields one layout holding several images.
func WithTag(tag string) Option { return func(o *options) { o.tag = tag } }

// WithCreated sets the config creation time and the mtime of tar entries.
func WithCreated(t time.Time) Option {
	return func(o *options) { o.created = t.UTC().Truncate(time.Second) }
}

// WithLabel adds a config label. Labels change only the config blob, which
// gives distinct manifests that share all layer blobs (handy for GC and
// dedup tests).
func WithLabel(key, value string) Option {
	return func(o *options) {
		if o.labels == nil {
			o.labels = map[string]string{}
		}
		o.labels[key] = value
	}
}

// WithFile adds a regular file (mode 0644) at name. All such files go into
// one extra layer on top of the base layers, so variants of an image still
// share their base layer blobs.
func WithFile(name string, data []byte) Option {
	return func(o *options) {
		if o.files == nil {
			o.files = map[string][]byte{}
		}
		o.files[name] = data
	}
}

// WithBusyboxPath sets the busybox binary that Busybox copies (default
// /bin/busybox, from Debian's busybox-static package).
func WithBusyboxPath(p string) Option { return func(o *options) { o.busyboxPath = p } }

// cleanEntryName turns a user-supplied path into a tar entry name relative
// to the image root, rejecting paths that escape it.
func cleanEntryName(name string) (string, error) {
	c := path.Clean("/" + name)
	if c == "/" || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("testimage: invalid file name %q", name)
	}
	return strings.TrimPrefix(c, "/"), nil
}
