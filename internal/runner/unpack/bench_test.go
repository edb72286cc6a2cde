package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// benchImage is a deterministic image of about 100 MB uncompressed in four
// gzip layers, shaped like a real application image: a base OS layer of
// small config and text files plus binaries, a runtime layer of shared
// libraries, a dependency layer of thousands of small source files, and an
// application layer with whiteouts. Text is drawn from a vocabulary and
// binaries mix random, zero and repetitive stretches, so gzip's ratio is
// realistic (about 3:1 overall).
type benchImage struct {
	descs        []v1.Descriptor
	blobs        map[digest.Digest][]byte
	uncompressed int64
	compressed   int64
	entries      int
}

var benchOnce = sync.OnceValue(func() *benchImage { return makeBenchImage() })

func makeBenchImage() *benchImage {
	img := &benchImage{blobs: map[digest.Digest][]byte{}}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], 0xb01a4c)
	rng := rand.New(rand.NewChaCha8(key))
	g := &gen{rng: rng}
	layers := []func(*layerWriter){
		func(w *layerWriter) { // base OS, ~40 MB
			for _, d := range []string{"bin", "etc", "lib", "usr", "usr/bin", "usr/lib", "usr/share", "usr/share/doc", "var", "tmp"} {
				w.dir(d)
			}
			for i := range 1500 {
				w.file(fmt.Sprintf("etc/conf.d/%03d/file%d.conf", i%40, i), g.text(512+rng.IntN(6<<10)), 0o644)
			}
			for i := range 1200 {
				w.file(fmt.Sprintf("usr/share/doc/pkg%03d/README%d", i%300, i), g.text(2<<10+rng.IntN(12<<10)), 0o644)
			}
			for i := range 60 {
				w.file(fmt.Sprintf("usr/bin/tool%02d", i), g.binary(100<<10+rng.IntN(400<<10)), 0o755)
				w.symlink(fmt.Sprintf("bin/tool%02d", i), fmt.Sprintf("../usr/bin/tool%02d", i))
			}
			w.hardlink("usr/bin/tool-alias", "usr/bin/tool00")
		},
		func(w *layerWriter) { // runtime libraries, ~30 MB
			w.dir("usr/lib/runtime")
			for i := range 40 {
				w.file(fmt.Sprintf("usr/lib/runtime/lib%02d.so.1", i), g.binary(200<<10+rng.IntN(1200<<10)), 0o755)
				w.symlink(fmt.Sprintf("usr/lib/runtime/lib%02d.so", i), fmt.Sprintf("lib%02d.so.1", i))
			}
		},
		func(w *layerWriter) { // dependencies, ~25 MB of small files
			for i := range 6000 {
				w.file(fmt.Sprintf("app/node_modules/m%03d/lib/f%d.js", i%400, i), g.text(512+rng.IntN(7<<10)), 0o644)
			}
		},
		func(w *layerWriter) { // application, ~5 MB, deleting some of the above
			w.file("app/server", g.binary(4<<20), 0o755)
			for i := range 100 {
				w.file(fmt.Sprintf("app/static/s%d.css", i), g.text(4<<10), 0o644)
			}
			w.file("etc/conf.d/000/.wh.file0.conf", "", 0o600)
			w.file("usr/share/doc/.wh..wh..opq", "", 0o600)
		},
	}
	for _, fill := range layers {
		var tarBuf bytes.Buffer
		w := &layerWriter{tw: tar.NewWriter(&tarBuf), dirs: map[string]bool{}}
		fill(w)
		w.tw.Close()
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(tarBuf.Bytes())
		zw.Close()
		blob := gz.Bytes()
		d := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
		img.descs = append(img.descs, d)
		img.blobs[d.Digest] = blob
		img.uncompressed += int64(tarBuf.Len())
		img.compressed += int64(len(blob))
		img.entries += w.n
	}
	return img
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type gen struct {
	rng *rand.Rand
}

var vocabulary = strings.Fields(`the of and to in is that for it as with was on be by this are or from at
	which an not have has but all were when we there can been one would their if more will other so what
	config value enable disable default option path user group server client request response error
	function return const let var import export module require string number object array true false null
	undefined class extends static async await promise resolve reject callback buffer stream event listener`)

func (g *gen) text(n int) string {
	var b strings.Builder
	b.Grow(n + 16)
	for b.Len() < n {
		b.WriteString(vocabulary[g.rng.IntN(len(vocabulary))])
		switch g.rng.IntN(12) {
		case 0:
			b.WriteString("\n")
		case 1:
			b.WriteString(fmt.Sprintf(" %d ", g.rng.IntN(100000)))
		default:
			b.WriteByte(' ')
		}
	}
	return b.String()[:n]
}

func (g *gen) binary(n int) string {
	b := make([]byte, 0, n)
	for len(b) < n {
		chunk := min(n-len(b), 256+g.rng.IntN(4096))
		switch g.rng.IntN(10) {
		case 0, 1, 2, 3: // code-like: random
			for range chunk {
				b = append(b, byte(g.rng.Uint32()))
			}
		case 4, 5, 6: // padding
			b = append(b, make([]byte, chunk)...)
		default: // tables and strings: a short pattern repeated
			pat := []byte(vocabulary[g.rng.IntN(len(vocabulary))])
			for i := range chunk {
				b = append(b, pat[i%len(pat)])
			}
		}
	}
	return string(b)
}

type layerWriter struct {
	tw   *tar.Writer
	dirs map[string]bool
	n    int
}

func (w *layerWriter) hdr(h *tar.Header) {
	h.ModTime = testTime
	if err := w.tw.WriteHeader(h); err != nil {
		panic(err)
	}
	w.n++
}

func (w *layerWriter) dir(name string) {
	if name == "." || w.dirs[name] {
		return
	}
	w.dir(filepath.Dir(name))
	w.dirs[name] = true
	w.hdr(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
}

func (w *layerWriter) file(name, body string, mode int64) {
	w.dir(filepath.Dir(name))
	w.hdr(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), Uid: 0, Gid: 0})
	io.WriteString(w.tw, body)
}

func (w *layerWriter) symlink(name, target string) {
	w.dir(filepath.Dir(name))
	w.hdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
}

func (w *layerWriter) hardlink(name, target string) {
	w.dir(filepath.Dir(name))
	w.hdr(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o755})
}

// BenchmarkUnpack extracts the ~100 MB image into a fresh cache per
// iteration: fetch from memory, digest verification, gzip, tar, file
// writes, ownership shift, syncfs and rename, as `bulwark run` does on a
// cold cache. MB/s is uncompressed tar bytes (10^6) per second; gzipMB/s
// is the same time over the compressed size.
//
// "disk" extracts under the test's temporary directory (the machine's
// disk filesystem), "tmpfs" under /dev/shm, which shows what the code
// costs without the disk filesystem's inode allocation. Caches are removed
// only at the end: deleting thousands of inodes right before creating
// thousands more makes ext4's allocator slow (it skips recently deleted
// inodes), which is the benchmark measuring itself.
//
//	go test ./internal/runner/unpack -bench Unpack -run ^$ -benchtime 3x
func BenchmarkUnpack(b *testing.B) {
	requireRoot(b)
	img := benchOnce()
	b.Logf("image: %d layers, %d entries, %.1f MB uncompressed, %.1f MB gzip",
		len(img.descs), img.entries, float64(img.uncompressed)/1e6, float64(img.compressed)/1e6)
	fetch := func(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(img.blobs[d.Digest])), nil
	}
	// One directory per filesystem for all sub-benchmarks, removed at the
	// end: see above for why nothing is deleted in between.
	bases := map[string]string{"disk": b.TempDir()}
	shm, err := os.MkdirTemp("/dev/shm", "unpack-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(shm)
	bases["tmpfs"] = shm
	for _, fs := range []string{"disk", "tmpfs"} {
		for _, par := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/layers-in-parallel=%d", fs, par), func(b *testing.B) {
				base, err := os.MkdirTemp(bases[fs], "")
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(img.uncompressed)
				i := 0
				var cpu time.Duration
				for b.Loop() {
					b.StopTimer()
					dir := filepath.Join(base, fmt.Sprint(i))
					i++
					c, err := Open(dir, Options{IDs: testIDs, Parallel: par})
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					before := cpuTime()
					if _, err := c.Rootfs(context.Background(), img.descs, fetch); err != nil {
						b.Fatal(err)
					}
					cpu += cpuTime() - before
				}
				b.ReportMetric(float64(img.compressed)*float64(b.N)/1e6/b.Elapsed().Seconds(), "gzipMB/s")
				// CPU time (user+system, all threads) does not depend on how
				// busy the machine is, wall time does.
				b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
				b.ReportMetric(float64(img.uncompressed)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
			})
		}
	}
}
