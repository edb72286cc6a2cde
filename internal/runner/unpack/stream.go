package unpack

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

type compression int

const (
	compNone compression = iota
	compGzip
	compZstd
)

// Layer media types accepted. Docker's names are what Docker and older
// registries still serve; the non-distributable OCI types are deprecated but
// have the same format.
var layerMediaTypes = map[string]compression{
	v1.MediaTypeImageLayer:                                         compNone,
	v1.MediaTypeImageLayerGzip:                                     compGzip,
	v1.MediaTypeImageLayerZstd:                                     compZstd,
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      compNone,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": compGzip,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": compZstd,
	"application/vnd.docker.image.rootfs.diff.tar.gzip":            compGzip,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    compGzip,
}

// SupportedMediaType reports whether Layer can extract layers of media type mt.
func SupportedMediaType(mt string) bool {
	_, ok := layerMediaTypes[mt]
	return ok
}

// zstd frames may ask for a window of up to 3.75 TB; real layers use 8 MiB
// (128 MiB with --long). The decoder refuses anything larger, so a hostile
// header cannot make it allocate.
const zstdMaxWindow = 128 << 20

// checkDescriptor validates what the stream will be checked against.
func checkDescriptor(desc v1.Descriptor) (compression, error) {
	c, ok := layerMediaTypes[desc.MediaType]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrMediaType, truncate(desc.MediaType))
	}
	if _, err := oci.ParseDigest(desc.Digest.String()); err != nil {
		return 0, fmt.Errorf("unpack: layer digest: %w", err)
	}
	if desc.Size <= 0 {
		return 0, fmt.Errorf("%w: descriptor size %d", ErrSizeMismatch, desc.Size)
	}
	return c, nil
}

// verifyReader hashes the compressed bytes and refuses to read past the
// descriptor's size, so a hostile server cannot stream forever.
type verifyReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	size int64
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if rem := v.size - v.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.n > v.size {
		return n, fmt.Errorf("%w: more than the descriptor's %d bytes", ErrSizeMismatch, v.size)
	}
	return n, err
}

// check is called once the stream is drained.
func (v *verifyReader) check(want digest.Digest) error {
	if v.n != v.size {
		return fmt.Errorf("%w: got %d bytes, descriptor says %d", ErrSizeMismatch, v.n, v.size)
	}
	if got := digest.NewDigest(want.Algorithm(), v.h); got != want {
		return fmt.Errorf("%w: got %s, want %s", ErrDigestMismatch, got, want)
	}
	return nil
}

// decodeErrReader marks decompression failures as ErrInvalidLayer while
// letting the verifier's and the caller's own errors through unchanged.
type decodeErrReader struct{ r io.Reader }

func (d decodeErrReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, ErrSizeMismatch) {
		err = fmt.Errorf("%w: decompressing: %w", ErrInvalidLayer, err)
	}
	return n, err
}

// layerStream is a layer blob opened for extraction: raw bytes verified
// against the descriptor and decompressed by a producer goroutine
// (readahead), then counted, bounded and hashed into the diffID on the
// reader's side. Decompression thus runs on one core while the tar is
// applied on another.
type layerStream struct {
	desc   v1.Descriptor
	raw    io.Closer
	verify *verifyReader
	dec    io.ReadCloser // nil for an uncompressed layer
	ra     *readahead
	count  *countingReader
}

func newLayerStream(desc v1.Descriptor, raw io.ReadCloser, maxBytes int64) (*layerStream, error) {
	c, err := checkDescriptor(desc)
	if err != nil {
		return nil, err
	}
	s := &layerStream{desc: desc, raw: raw, verify: &verifyReader{r: raw, h: desc.Digest.Algorithm().Hash(), size: desc.Size}}
	src := io.Reader(bufio.NewReaderSize(s.verify, 256<<10))
	switch c {
	case compGzip:
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, s.fail(context.Background(), fmt.Errorf("%w: gzip header: %w", ErrInvalidLayer, err))
		}
		s.dec = zr
	case compZstd:
		zr, err := zstd.NewReader(src, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrInvalidLayer, err)
		}
		s.dec = zr.IOReadCloser()
	}
	if s.dec != nil {
		src = decodeErrReader{s.dec}
	}
	s.ra = newReadahead(src, 4, 256<<10)
	s.count = &countingReader{r: s.ra, h: sha256.New(), max: maxBytes}
	return s, nil
}

// fail reports why an extraction failed. The blob's verdict comes first:
// a tampered or truncated download that made the tar unreadable is reported
// as the digest or size mismatch it is, so the rest of the raw stream
// (bounded by the descriptor's size, never decompressed) is read to check.
// Cancellation is reported as is.
func (s *layerStream) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrSizeMismatch) {
		return err
	}
	if s.ra != nil {
		s.ra.stop() // the producer must not read the blob concurrently
	}
	if _, derr := io.Copy(io.Discard, s.verify); derr != nil {
		if errors.Is(derr, ErrSizeMismatch) {
			return derr
		}
		return err
	}
	if verr := s.verify.check(s.desc.Digest); verr != nil {
		return verr
	}
	return err
}

// finish drains the stream after the tar's end-of-archive marker (padding,
// and anything a hostile layer hides there, still counts against the limit
// and into the diffID) and checks size and digest. It returns the diffID.
func (s *layerStream) finish() (digest.Digest, error) {
	if _, err := io.Copy(io.Discard, s.count); err != nil {
		return "", err
	}
	// The producer has seen the end of the decompressed stream and exited.
	// A decompressor may stop before the end of the raw stream: trailing
	// bytes still belong to the blob and its digest.
	s.ra.stop()
	if _, err := io.Copy(io.Discard, s.verify); err != nil {
		return "", err
	}
	if err := s.verify.check(s.desc.Digest); err != nil {
		return "", err
	}
	return digest.NewDigest(digest.SHA256, s.count.h), nil
}

// close stops the producer (closing the blob first unblocks a read in
// flight) and releases the decompressor.
func (s *layerStream) close() {
	if s.ra != nil {
		s.ra.signal()
	}
	s.raw.Close()
	if s.ra != nil {
		s.ra.stop()
	}
	if s.dec != nil {
		s.dec.Close()
	}
}

// readahead reads src in a goroutine into a few fixed buffers.
type readahead struct {
	src    io.Reader
	full   chan []byte
	free   chan []byte
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
	err    error // written by the producer before full is closed

	cur, held []byte
}

var errStopped = errors.New("readahead stopped")

func newReadahead(src io.Reader, bufs, size int) *readahead {
	ra := &readahead{src: src, full: make(chan []byte, bufs), free: make(chan []byte, bufs),
		done: make(chan struct{}), exited: make(chan struct{})}
	for range bufs {
		ra.free <- make([]byte, size)
	}
	go ra.run()
	return ra
}

func (ra *readahead) run() {
	defer close(ra.exited)
	defer close(ra.full)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.done:
			ra.err = errStopped
			return
		}
		n, err := io.ReadFull(ra.src, b[:cap(b)])
		if n > 0 {
			ra.full <- b[:n] // never blocks: full holds every buffer
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			ra.err = err
			return
		}
	}
}

func (ra *readahead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.held != nil {
			ra.free <- ra.held // never blocks: free holds every buffer
			ra.held = nil
		}
		b, ok := <-ra.full
		if !ok {
			return 0, ra.err
		}
		ra.cur, ra.held = b, b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// signal asks the producer to stop after its current read.
func (ra *readahead) signal() { ra.once.Do(func() { close(ra.done) }) }

// stop signals and waits until the producer no longer touches src.
func (ra *readahead) stop() {
	ra.signal()
	<-ra.exited
}
