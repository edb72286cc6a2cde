package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Layout opens the image tagged tag (the org.opencontainers.image.ref.name
// annotation) in the OCI image layout at dir; an empty tag selects the
// only manifest of index.json. Blobs are read through os.Root, so a
// symlink in the layout cannot make it read outside dir.
func Layout(ctx context.Context, dir, tag string, platform Platform) (*Image, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			root.Close()
		}
	}()
	readSmall := func(name string, max int64) ([]byte, error) {
		f, err := root.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, max+1))
		if err != nil {
			return nil, err
		}
		if int64(len(b)) > max {
			return nil, fmt.Errorf("%w: %s: over %d bytes", ErrImage, name, max)
		}
		return b, nil
	}
	b, err := readSmall(v1.ImageLayoutFile, 4096)
	if err != nil {
		return nil, fmt.Errorf("%s: not an OCI image layout: %w", dir, err)
	}
	var lf v1.ImageLayout
	if err := json.Unmarshal(b, &lf); err != nil || lf.Version != v1.ImageLayoutVersion {
		return nil, fmt.Errorf("%w: %s: unsupported %s %q", ErrImage, dir, v1.ImageLayoutFile, b)
	}
	ib, err := readSmall(v1.ImageIndexFile, maxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var index v1.Index
	if err := json.Unmarshal(ib, &index); err != nil {
		return nil, fmt.Errorf("%w: %s: %s: %w", ErrImage, dir, v1.ImageIndexFile, err)
	}
	var found []v1.Descriptor
	for _, d := range index.Manifests {
		if tag == "" || d.Annotations[v1.AnnotationRefName] == tag {
			found = append(found, d)
		}
	}
	name := dir
	if tag != "" {
		name += ":" + tag
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("%w: %s: no manifest tagged %q", ErrImage, dir, tag)
	case len(found) > 1 && tag == "":
		return nil, fmt.Errorf("%w: %s: %d manifests, name one with DIR:TAG", ErrImage, dir, len(found))
	case len(found) > 1:
		return nil, fmt.Errorf("%w: %s: %d manifests tagged %q", ErrImage, dir, len(found), tag)
	}
	blob := func(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
		if _, err := oci.ParseDigest(d.Digest.String()); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrImage, err)
		}
		f, err := root.Open(filepath.Join(v1.ImageBlobsDir, d.Digest.Algorithm().String(), d.Digest.Encoded()))
		if err != nil {
			return nil, err
		}
		return newVerified(f, d)
	}
	readBlob := func(ctx context.Context, d v1.Descriptor, max int64) ([]byte, error) {
		if d.Size > max {
			return nil, fmt.Errorf("%w: blob %s of %d bytes", ErrImage, d.Digest, d.Size)
		}
		rc, err := blob(ctx, d)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		return b, err
	}
	top := found[0]
	body, err := readBlob(ctx, top, maxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", name, err)
	}
	manifest := func(ctx context.Context, d v1.Descriptor) ([]byte, v1.Descriptor, error) {
		b, err := readBlob(ctx, d, maxManifestSize)
		return b, d, err
	}
	img, err := resolve(ctx, name, top, body, platform, manifest, blob)
	if err != nil {
		return nil, err
	}
	img.close, ok = root.Close, true
	return img, nil
}
