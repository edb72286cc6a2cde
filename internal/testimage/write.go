package testimage

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// writer assembles one image inside an OCI layout directory. Blobs are
// content addressed, so images written into the same directory share blobs.
type writer struct {
	dir     string
	o       *options
	layers  []v1.Descriptor
	diffIDs []digest.Digest
	history []v1.History
}

func newWriter(dir string, o *options) (*writer, error) {
	if o.tag == "" {
		return nil, errors.New("testimage: empty tag")
	}
	if err := os.MkdirAll(filepath.Join(dir, v1.ImageBlobsDir, digest.Canonical.String()), 0o755); err != nil {
		return nil, err
	}
	layout, err := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, v1.ImageLayoutFile), layout, 0o644); err != nil {
		return nil, err
	}
	return &writer{dir: dir, o: o}, nil
}

// addLayer streams a gzip-compressed tar layer straight to the blob store,
// hashing both the compressed bytes (the blob digest) and the uncompressed
// tar (the diff_id) on the way, so layers of any size need no buffering.
func (w *writer) addLayer(createdBy string, fill func(tw *tar.Writer) error) (err error) {
	blobs := filepath.Join(w.dir, v1.ImageBlobsDir, digest.Canonical.String())
	f, err := os.CreateTemp(blobs, ".layer-*")
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(f.Name())
		}
	}()

	compressed, uncompressed := digest.Canonical.Digester(), digest.Canonical.Digester()
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &countingWriter{w: io.MultiWriter(bw, compressed.Hash())}
	// BestSpeed: the layers are test fixtures, and random layers do not
	// compress anyway. gzip.Writer's zero header (no name, no mtime) keeps the
	// output deterministic.
	gz, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(io.MultiWriter(gz, uncompressed.Hash()))
	if err := fill(tw); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d := compressed.Digest()
	if err := os.Rename(f.Name(), blobPath(w.dir, d)); err != nil {
		return err
	}
	w.layers = append(w.layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: d, Size: cw.n})
	w.diffIDs = append(w.diffIDs, uncompressed.Digest())
	created := w.o.created
	w.history = append(w.history, v1.History{Created: &created, CreatedBy: createdBy})
	return nil
}

// addFilesLayer adds the WithFile files, if any, as one extra layer.
func (w *writer) addFilesLayer() error {
	if len(w.o.files) == 0 {
		return nil
	}
	files := map[string][]byte{}
	dirs := map[string]bool{}
	for name, data := range w.o.files {
		n, err := cleanEntryName(name)
		if err != nil {
			return err
		}
		files[n] = data
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var entries []entry
	for d := range dirs {
		entries = append(entries, entry{hdr: w.header(tar.TypeDir, d+"/", 0o755)})
	}
	for n, data := range files {
		h := w.header(tar.TypeReg, n, 0o644)
		h.Size = int64(len(data))
		entries = append(entries, entry{hdr: h, data: data})
	}
	return w.addLayer("testimage: WithFile", func(tw *tar.Writer) error { return writeEntries(tw, entries) })
}

// header returns a tar header with every field that could vary between
// machines or runs (owner names, times) pinned.
func (w *writer) header(typ byte, name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: mode, ModTime: w.o.created}
}

// entry is one tar entry; data is used for regular files without a reader.
type entry struct {
	hdr  *tar.Header
	data []byte
	body io.Reader
}

// writeEntries writes entries sorted by name, which puts every directory
// before its contents and makes the tar independent of map iteration order.
func writeEntries(tw *tar.Writer, entries []entry) error {
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.hdr.Name, b.hdr.Name) })
	for _, e := range entries {
		if err := tw.WriteHeader(e.hdr); err != nil {
			return err
		}
		switch {
		case e.body != nil:
			if _, err := io.CopyN(tw, e.body, e.hdr.Size); err != nil {
				return fmt.Errorf("testimage: writing %s: %w", e.hdr.Name, err)
			}
		case len(e.data) > 0:
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish writes the config and manifest blobs and points index.json at the
// manifest under the configured tag, replacing any entry with the same tag.
func (w *writer) finish(arch string, cfg v1.ImageConfig) (Image, error) {
	if err := w.addFilesLayer(); err != nil {
		return Image{}, err
	}
	if len(w.o.labels) > 0 {
		cfg.Labels = w.o.labels
	}
	created := w.o.created
	config := v1.Image{
		Created:  &created,
		Platform: v1.Platform{Architecture: arch, OS: "linux"},
		Config:   cfg,
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: w.diffIDs},
		History:  w.history,
	}
	configBytes, err := json.Marshal(config)
	if err != nil {
		return Image{}, err
	}
	configDesc, err := w.writeBlob(v1.MediaTypeImageConfig, configBytes)
	if err != nil {
		return Image{}, err
	}
	manifest := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    w.layers,
	}
	manifestBytes, err := json.Marshal(manifest)
	if err != nil {
		return Image{}, err
	}
	manifestDesc, err := w.writeBlob(v1.MediaTypeImageManifest, manifestBytes)
	if err != nil {
		return Image{}, err
	}
	if err := w.updateIndex(manifestDesc); err != nil {
		return Image{}, err
	}
	img := Image{
		Dir:            w.dir,
		Tag:            w.o.tag,
		ManifestDigest: manifestDesc.Digest,
		ManifestBytes:  manifestBytes,
		Manifest:       manifest,
		ConfigDigest:   configDesc.Digest,
		ConfigBytes:    configBytes,
		Config:         config,
		DiffIDs:        w.diffIDs,
	}
	for _, l := range w.layers {
		img.LayerDigests = append(img.LayerDigests, l.Digest)
	}
	return img, nil
}

func (w *writer) writeBlob(mediaType string, data []byte) (v1.Descriptor, error) {
	d := digest.Canonical.FromBytes(data)
	if err := os.WriteFile(blobPath(w.dir, d), data, 0o644); err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}, nil
}

func (w *writer) updateIndex(manifest v1.Descriptor) error {
	indexPath := filepath.Join(w.dir, v1.ImageIndexFile)
	index := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex}
	switch b, err := os.ReadFile(indexPath); {
	case err == nil:
		if err := json.Unmarshal(b, &index); err != nil {
			return fmt.Errorf("testimage: existing %s: %w", indexPath, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	index.Manifests = slices.DeleteFunc(index.Manifests, func(d v1.Descriptor) bool {
		return d.Annotations[v1.AnnotationRefName] == w.o.tag
	})
	manifest.Annotations = map[string]string{v1.AnnotationRefName: w.o.tag}
	index.Manifests = append(index.Manifests, manifest)
	b, err := json.Marshal(index)
	if err != nil {
		return err
	}
	return os.WriteFile(indexPath, b, 0o644)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
