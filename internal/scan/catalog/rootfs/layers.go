package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

// Layer is one image layer to walk.
type Layer struct {
	// Digest identifies the layer in errors and problems.
	Digest digest.Digest
	// Open returns the layer blob: a tar, gzip- or zstd-compressed or not
	// (told apart by its first bytes, whatever a media type says). The
	// caller verifies the content against Digest if it needs to (a
	// registry client and OCI layout reader in internal/scan/catalog/image
	// do).
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// ErrInvalidLayer is wrapped by errors about a layer that is not a
// readable (compressed) tar.
var ErrInvalidLayer = errors.New("rootfs: invalid layer")

// zstd frames may ask for a window of up to 3.75 TB; real layers use 8 MiB
// (128 MiB with --long). Anything larger is refused, so a hostile header
// cannot make the decoder allocate.
const zstdMaxWindow = 128 << 20

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// WalkLayers reads the layers bottom first and returns the final tree's
// entries, each with the index of the layer that last wrote its file.
func WalkLayers(ctx context.Context, layers []Layer, analyzers []Analyzer, opts Options) (*Tree, error) {
	opts = opts.withDefaults()
	if len(layers) > opts.MaxLayers {
		return nil, fmt.Errorf("%w: %d layers, at most %d", ErrLimit, len(layers), opts.MaxLayers)
	}
	f := newFold(analyzers, opts)
	for i, l := range layers {
		if err := walkLayer(ctx, f, i, l); err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	return f.tree(), nil
}

func walkLayer(ctx context.Context, f *fold, layer int, l Layer) error {
	rc, err := l.Open(ctx)
	if err != nil {
		return err
	}
	// Three stages on their own goroutines: reading (and the opener's
	// digest check), decompressing, and the tar walk here.
	raw := newReadahead(rc, 4, 256<<10)
	r, closeDec, err := decompress(raw)
	if err != nil {
		raw.stop()
		rc.Close()
		return err
	}
	ra := newReadahead(&limitReader{r: r, left: f.opts.MaxLayerBytes}, 4, 256<<10)
	err = walkTar(ctx, f, layer, ra)
	ra.stop()
	closeDec()
	raw.stop()
	// Close is where a verifying reader judges the rest of the blob
	// (what follows the tar's end marker still belongs to it).
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}

// decompress sniffs the compression from the first bytes.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidLayer, err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %w", ErrInvalidLayer, err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: zstd: %w", ErrInvalidLayer, err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

func walkTar(ctx context.Context, f *fold, layer int, r io.Reader) error {
	tr := tar.NewReader(r)
	var buf bytes.Buffer
	for entries := int64(0); ; entries++ {
		if entries&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if entries >= f.opts.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrLimit, f.opts.MaxEntries)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", ErrInvalidLayer, err)
		}
		p, err := cleanName(hdr.Name)
		if err != nil {
			f.problem(strings.ToValidUTF8(hdr.Name, "?"), layer, err)
			continue
		}
		if p == "/" {
			if hdr.Typeflag != tar.TypeDir {
				f.problem(p, layer, errors.New("root entry is not a directory"))
			}
			continue
		}
		dir, base := path.Split(p)
		if base != opaqueMarker && strings.Contains(p, "/"+whiteoutMeta) {
			continue // AUFS bookkeeping (/.wh..wh.plnk/...), not content
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			f.whiteout(path.Clean(dir), base, layer)
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			prev := f.nodes[p]
			f.replaced(p, layer, false)
			file := File{Path: p, Mode: hdr.FileInfo().Mode() &^ fs.ModeType, Size: hdr.Size, UID: hdr.Uid, GID: hdr.Gid, Layer: layer}
			wants := f.wanted(&file)
			if len(wants) == 0 {
				continue
			}
			open := onceReader(tr)
			if len(wants) > 1 {
				if file.Size > f.opts.MaxFileSize {
					f.problem(p, layer, fmt.Errorf("%d bytes: wanted by %d analyzers, read by the first only (limit %d)", file.Size, len(wants), f.opts.MaxFileSize))
					wants = wants[:1]
				} else {
					buf.Reset()
					if _, err := io.Copy(&buf, tr); err != nil {
						return fmt.Errorf("%w: %s: %w", ErrInvalidLayer, p, err)
					}
					content := buf.Bytes()
					open = func() (io.Reader, error) { return bytes.NewReader(content), nil }
				}
			}
			if err := f.analyze(ctx, file, wants, prev, open); err != nil {
				return err
			}
		case tar.TypeLink:
			target, err := cleanName(hdr.Linkname)
			if err != nil {
				f.problem(p, layer, fmt.Errorf("hardlink target: %w", err))
				f.replaced(p, layer, false)
				continue
			}
			tn := f.nodes[target]
			f.replaced(p, layer, false)
			if tn != nil && target != p {
				// A hardlink is the same file: its values are the
				// target's, and it was written by this layer.
				n := &node{file: tn.file, values: tn.values}
				n.file.Path, n.file.Layer = p, layer
				f.put(p, n)
			}
		case tar.TypeDir:
			f.replaced(p, layer, true)
		default:
			// Symlinks, devices, fifos: not read, but they replace what a
			// lower layer had here.
			f.replaced(p, layer, false)
		}
	}
}

// limitReader fails with ErrLimit past left bytes.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	if l.left -= int64(n); l.left < 0 {
		return n, fmt.Errorf("%w: uncompressed layer larger than the limit", ErrLimit)
	}
	return n, err
}

// onceReader hands out r to the first caller only.
func onceReader(r io.Reader) func() (io.Reader, error) {
	used := false
	return func() (io.Reader, error) {
		if used {
			return nil, errors.New("content already read")
		}
		used = true
		return r, nil
	}
}

// readahead decompresses on another goroutine (another core) while the tar
// is walked on this one: a layer walk is mostly decompression.
type readahead struct {
	full  chan []byte
	free  chan []byte
	done  chan struct{}
	buf   []byte // the buffer being read, whole
	off   int
	err   error
	errCh chan error
}

func newReadahead(r io.Reader, n, size int) *readahead {
	ra := &readahead{full: make(chan []byte, n), free: make(chan []byte, n), done: make(chan struct{}), errCh: make(chan error, 1)}
	for range n {
		ra.free <- make([]byte, size)
	}
	go ra.produce(r)
	return ra
}

func (ra *readahead) produce(r io.Reader) {
	defer close(ra.full)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.done:
			return
		}
		n, err := io.ReadFull(r, b[:cap(b)])
		if n > 0 {
			select {
			case ra.full <- b[:n]:
			case <-ra.done:
				return
			}
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			ra.errCh <- err
			return
		}
	}
}

func (ra *readahead) Read(p []byte) (int, error) {
	if ra.off == len(ra.buf) {
		if ra.buf != nil {
			ra.free <- ra.buf
			ra.buf = nil
		}
		if ra.err != nil {
			return 0, ra.err
		}
		b, ok := <-ra.full
		if !ok {
			ra.err = <-ra.errCh
			return 0, ra.err
		}
		ra.buf, ra.off = b, 0
	}
	n := copy(p, ra.buf[ra.off:])
	ra.off += n
	return n, nil
}

// stop ends the producer and waits for it, so the source is no longer
// read; Read must not be called afterwards.
func (ra *readahead) stop() {
	select {
	case <-ra.done:
	default:
		close(ra.done)
	}
	for range ra.full {
	}
}
