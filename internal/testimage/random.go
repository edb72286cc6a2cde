package testimage

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Random writes an image of `layers` layers into the OCI layout at dir. Layer
// i holds one file, random/layer-NNNN, of sizeEach pseudo-random bytes derived
// from (seed, i) with ChaCha8, whose output is fixed by the Go spec: the same
// arguments give the same digests, different seeds give disjoint blobs.
// Random data does not compress, so each layer blob is a little larger than
// sizeEach, which makes the on-the-wire size predictable for load tests.
//
// Layers are streamed to disk, so sizeEach may exceed memory. ctx is checked
// while writing. The image has no command; it is meant to be pushed, not run.
func Random(ctx context.Context, dir string, layers int, sizeEach, seed int64, opts ...Option) (Image, error) {
	if layers < 1 || sizeEach < 0 {
		return Image{}, fmt.Errorf("testimage: Random needs layers >= 1 and sizeEach >= 0, got %d, %d", layers, sizeEach)
	}
	o := newOptions(opts)
	w, err := newWriter(dir, o)
	if err != nil {
		return Image{}, err
	}
	for i := range layers {
		var key [32]byte
		binary.LittleEndian.PutUint64(key[0:], uint64(seed))
		binary.LittleEndian.PutUint64(key[8:], uint64(i))
		body := &ctxReader{ctx: ctx, r: rand.NewChaCha8(key)}
		h := w.header(tar.TypeReg, fmt.Sprintf("random/layer-%04d", i), 0o644)
		h.Size = sizeEach
		entries := []entry{{hdr: w.header(tar.TypeDir, "random/", 0o755)}, {hdr: h, body: body}}
		createdBy := fmt.Sprintf("testimage: random seed=%d layer=%d size=%d", seed, i, sizeEach)
		if err := w.addLayer(createdBy, func(tw *tar.Writer) error { return writeEntries(tw, entries) }); err != nil {
			return Image{}, err
		}
	}
	return w.finish(runtime.GOARCH, v1.ImageConfig{})
}

// ctxReader makes a long io.Copy from an endless reader cancellable.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
