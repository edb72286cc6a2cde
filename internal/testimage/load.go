package testimage

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's layer media type; skopeo and registries treat it as equivalent to
// the OCI gzip layer type, so the reader accepts it too.
const dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"

// Load reads the image tagged tag from the OCI layout at dir and verifies it
// completely: every blob's size and digest, the manifest and config media
// types, that each layer decompresses to a well-formed tar, and that the
// digests of the uncompressed tars equal the config's rootfs.diff_ids. An
// empty tag selects the only manifest in index.json.
//
// It is the independent check for layouts written by this package and by
// other tools (e.g. what `skopeo copy docker://... oci:DIR:TAG` pulled).
func Load(dir, tag string) (Image, error) {
	img := Image{Dir: dir, Tag: tag}
	if err := checkLayoutFile(dir); err != nil {
		return Image{}, err
	}
	desc, err := findManifest(dir, tag)
	if err != nil {
		return Image{}, err
	}
	if img.Tag == "" {
		img.Tag = desc.Annotations[v1.AnnotationRefName]
	}

	if img.ManifestBytes, err = readSmallBlob(dir, desc); err != nil {
		return Image{}, fmt.Errorf("testimage: manifest: %w", err)
	}
	img.ManifestDigest = desc.Digest
	if err := json.Unmarshal(img.ManifestBytes, &img.Manifest); err != nil {
		return Image{}, fmt.Errorf("testimage: manifest: %w", err)
	}
	m := img.Manifest
	if m.SchemaVersion != 2 || (m.MediaType != "" && m.MediaType != v1.MediaTypeImageManifest) {
		return Image{}, fmt.Errorf("testimage: manifest: schemaVersion %d, mediaType %q", m.SchemaVersion, m.MediaType)
	}
	if m.Config.MediaType != v1.MediaTypeImageConfig {
		return Image{}, fmt.Errorf("testimage: config media type %q", m.Config.MediaType)
	}

	if img.ConfigBytes, err = readSmallBlob(dir, m.Config); err != nil {
		return Image{}, fmt.Errorf("testimage: config: %w", err)
	}
	img.ConfigDigest = m.Config.Digest
	if err := json.Unmarshal(img.ConfigBytes, &img.Config); err != nil {
		return Image{}, fmt.Errorf("testimage: config: %w", err)
	}
	if img.Config.RootFS.Type != "layers" || len(img.Config.RootFS.DiffIDs) != len(m.Layers) {
		return Image{}, fmt.Errorf("testimage: config rootfs: type %q with %d diff_ids for %d layers",
			img.Config.RootFS.Type, len(img.Config.RootFS.DiffIDs), len(m.Layers))
	}

	for i, l := range m.Layers {
		diffID, err := verifyLayer(dir, l)
		if err != nil {
			return Image{}, fmt.Errorf("testimage: layer %d (%s): %w", i, l.Digest, err)
		}
		if want := img.Config.RootFS.DiffIDs[i]; diffID != want {
			return Image{}, fmt.Errorf("testimage: layer %d (%s): diff_id %s, config says %s", i, l.Digest, diffID, want)
		}
		img.LayerDigests = append(img.LayerDigests, l.Digest)
		img.DiffIDs = append(img.DiffIDs, diffID)
	}
	return img, nil
}

func checkLayoutFile(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, v1.ImageLayoutFile))
	if err != nil {
		return fmt.Errorf("testimage: not an OCI layout: %w", err)
	}
	var l v1.ImageLayout
	if err := json.Unmarshal(b, &l); err != nil || l.Version != v1.ImageLayoutVersion {
		return fmt.Errorf("testimage: %s: unsupported layout %q (%v)", v1.ImageLayoutFile, b, err)
	}
	return nil
}

// findManifest returns the index.json descriptor for tag.
func findManifest(dir, tag string) (v1.Descriptor, error) {
	b, err := os.ReadFile(filepath.Join(dir, v1.ImageIndexFile))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("testimage: %w", err)
	}
	var index v1.Index
	if err := json.Unmarshal(b, &index); err != nil {
		return v1.Descriptor{}, fmt.Errorf("testimage: %s: %w", v1.ImageIndexFile, err)
	}
	if index.SchemaVersion != 2 {
		return v1.Descriptor{}, fmt.Errorf("testimage: %s: schemaVersion %d", v1.ImageIndexFile, index.SchemaVersion)
	}
	var found []v1.Descriptor
	for _, d := range index.Manifests {
		if tag == "" || d.Annotations[v1.AnnotationRefName] == tag {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		return v1.Descriptor{}, fmt.Errorf("testimage: %s: %d manifests match tag %q", v1.ImageIndexFile, len(found), tag)
	}
	if found[0].MediaType != v1.MediaTypeImageManifest {
		return v1.Descriptor{}, fmt.Errorf("testimage: %s: tag %q is a %q, want an image manifest", v1.ImageIndexFile, tag, found[0].MediaType)
	}
	return found[0], nil
}

// readSmallBlob reads a JSON blob and checks it against its descriptor.
func readSmallBlob(dir string, desc v1.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(blobPath(dir, desc.Digest))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != desc.Size {
		return nil, fmt.Errorf("size %d, descriptor says %d", len(b), desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("content digest %s", got)
	}
	return b, nil
}

// verifyLayer streams a layer blob, checking its size and digest, walks the
// tar inside it, and returns the digest of the uncompressed tar (diff_id).
func verifyLayer(dir string, desc v1.Descriptor) (digest.Digest, error) {
	if err := desc.Digest.Validate(); err != nil {
		return "", err
	}
	f, err := os.Open(blobPath(dir, desc.Digest))
	if err != nil {
		return "", err
	}
	defer f.Close()
	verifier := desc.Digest.Verifier()
	counter := &countingWriter{w: verifier}
	raw := bufio.NewReaderSize(io.TeeReader(f, counter), 1<<20)

	var tarStream io.Reader = raw
	switch desc.MediaType {
	case v1.MediaTypeImageLayerGzip, dockerLayerGzip:
		gz, err := gzip.NewReader(raw)
		if err != nil {
			return "", err
		}
		defer gz.Close()
		tarStream = gz
	case v1.MediaTypeImageLayer:
	default:
		return "", fmt.Errorf("unsupported layer media type %q", desc.MediaType)
	}

	diffID := digest.Canonical.Digester()
	tee := io.TeeReader(tarStream, diffID.Hash())
	tr := tar.NewReader(tee)
	for {
		if _, err := tr.Next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("tar: %w", err)
		}
	}
	// The diff_id covers the whole stream, including padding after the tar
	// end-of-archive marker, and the blob digest covers every byte.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return "", err
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return "", err
	}
	if counter.n != desc.Size {
		return "", fmt.Errorf("size %d, descriptor says %d", counter.n, desc.Size)
	}
	if !verifier.Verified() {
		return "", errors.New("content does not match digest")
	}
	return diffID.Digest(), nil
}
