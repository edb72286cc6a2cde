// Package rootfs reads a container's root filesystem for scanners without
// extracting it: from a directory (through os.Root, never leaving it) or
// from an image's layer tar streams, one pass per layer, nothing written to
// disk. Analyzers choose files by path, mode and size and turn each into a
// value; the walk keeps the values of files that survive in the final tree
// (whiteouts, opaque directories and overwrites in later layers remove
// them, as the OCI image spec says) along with the layer that last wrote
// each file.
//
// One pass serves every analyzer, so the catalogers and the image lint
// decompress a layer once. A file wanted by two analyzers is buffered (up
// to Options.MaxFileSize) so both read it; a file wanted by one is streamed.
package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
)

// File describes one regular file of the root filesystem.
type File struct {
	// Path is clean and "/"-rooted: "/usr/bin/env".
	Path string
	// Mode has the permission, setuid, setgid and sticky bits; the type
	// is always regular.
	Mode fs.FileMode
	Size int64
	UID  int
	GID  int
	// Layer is the index of the layer that wrote the file, -1 when a
	// directory is walked.
	Layer int
}

// Analyzer looks at chosen files. Implementations must not keep r.
type Analyzer interface {
	// Wants reports whether Analyze should see this file.
	Wants(f *File) bool
	// Analyze reads a wanted file (r yields f.Size bytes at most; when a
	// directory is walked it is also an io.ReaderAt) and returns what to
	// keep for it, or nil to keep nothing (a value and an error: the
	// value is kept and the error recorded). prev is the value this
	// analyzer returned for the same path in a lower layer, if that file
	// was still there: an analyzer can carry facts across versions of a
	// file (the layer that introduced a package). An error is recorded as
	// a Problem and the walk goes on: a hostile file must not stop a scan.
	// Values should not depend on the file's path: a hardlink shares its
	// target's values.
	Analyze(ctx context.Context, f *File, r io.Reader, prev any) (any, error)
}

// Entry is the value one analyzer kept for one file of the final tree.
type Entry struct {
	File     File
	Analyzer int // index in the analyzers given to the walk
	Value    any
}

// Problem is a file or tar entry that could not be read or analyzed.
type Problem struct {
	Path  string
	Layer int
	Err   error
}

func (p Problem) String() string {
	if p.Layer >= 0 {
		return fmt.Sprintf("layer %d: %s: %v", p.Layer, p.Path, p.Err)
	}
	return fmt.Sprintf("%s: %v", p.Path, p.Err)
}

// Tree is the result of a walk.
type Tree struct {
	// Entries, sorted by path, then analyzer.
	Entries []Entry
	// Problems found on the way, in walk order.
	Problems []Problem
	// Files counts the regular files of the final tree that any analyzer
	// looked at.
	Files int
}

// Of returns the entries of analyzer a.
func (t *Tree) Of(a int) []Entry {
	var out []Entry
	for _, e := range t.Entries {
		if e.Analyzer == a {
			out = append(out, e)
		}
	}
	return out
}

// Options tune a walk; zero values take the defaults.
type Options struct {
	// MaxFileSize bounds the bytes buffered for a file two analyzers want
	// (default 32 MiB); analyzers bound their own reads.
	MaxFileSize int64
	// MaxEntries bounds the tar entries of one layer (default 1,000,000).
	MaxEntries int64
	// MaxLayerBytes bounds one layer's uncompressed tar stream, against
	// decompression bombs (default 16 GiB).
	MaxLayerBytes int64
	// MaxLayers bounds the layers of an image (default 256).
	MaxLayers int
	// Logger gets a debug event per problem (default: discard).
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultMaxFileSize   = 32 << 20
	DefaultMaxEntries    = 1_000_000
	DefaultMaxLayerBytes = 16 << 30
	DefaultMaxLayers     = 256
)

func (o Options) withDefaults() Options {
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxLayerBytes <= 0 {
		o.MaxLayerBytes = DefaultMaxLayerBytes
	}
	if o.MaxLayers <= 0 {
		o.MaxLayers = DefaultMaxLayers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// ErrLimit is wrapped by errors about a layer or image over a limit.
var ErrLimit = errors.New("rootfs: limit exceeded")

// node is what the walk keeps for one path: the file and the analyzers'
// values.
type node struct {
	file   File
	values []value
}

type value struct {
	analyzer int
	v        any
}

// fold is the final-tree state of a walk: nodes by path, and for every
// directory the number of nodes below it, so that a whiteout or a file
// replacing a directory finds what it removes without scanning all nodes.
type fold struct {
	analyzers []Analyzer
	opts      Options
	nodes     map[string]*node
	below     map[string]int
	problems  []Problem
	wants     []int // scratch: the analyzers wanting the current file
}

func newFold(analyzers []Analyzer, opts Options) *fold {
	return &fold{analyzers: analyzers, opts: opts, nodes: map[string]*node{}, below: map[string]int{}}
}

func (f *fold) problem(p string, layer int, err error) {
	f.opts.Logger.Debug("rootfs: problem", "path", p, "layer", layer, "err", err)
	f.problems = append(f.problems, Problem{Path: p, Layer: layer, Err: err})
}

// parents calls fn for every ancestor directory of p except "/".
func parents(p string, fn func(dir string)) {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			fn(p[:i])
		}
	}
}

func (f *fold) put(p string, n *node) {
	if old, ok := f.nodes[p]; ok && old != nil {
		f.nodes[p] = n
		return
	}
	f.nodes[p] = n
	parents(p, func(d string) { f.below[d]++ })
}

func (f *fold) remove(p string) {
	if _, ok := f.nodes[p]; !ok {
		return
	}
	delete(f.nodes, p)
	parents(p, func(d string) {
		if f.below[d]--; f.below[d] <= 0 {
			delete(f.below, d)
		}
	})
}

// removeBelow removes the nodes strictly below directory dir ("/" for
// all) written by layers lower than layer.
func (f *fold) removeBelow(dir string, layer int) {
	if dir != "/" && f.below[dir] == 0 {
		return
	}
	prefix := dir + "/"
	if dir == "/" {
		prefix = "/"
	}
	var gone []string
	for p, n := range f.nodes {
		if strings.HasPrefix(p, prefix) && n.file.Layer < layer {
			gone = append(gone, p)
		}
	}
	for _, p := range gone {
		f.remove(p)
	}
}

// replaced is called for every entry at p of layer: whatever a lower
// layer had at p (and below it, unless the entry is a directory, which
// merges with a lower directory) is gone.
func (f *fold) replaced(p string, layer int, isDir bool) {
	if n, ok := f.nodes[p]; ok && (n.file.Layer < layer || !isDir) {
		f.remove(p)
	}
	if !isDir {
		f.removeBelow(p, layer)
	}
}

// whiteout applies ".wh.NAME" (hide dir/NAME) or the opaque marker (hide
// everything below dir) from layer: only lower layers are hidden.
func (f *fold) whiteout(dir, base string, layer int) {
	if base == opaqueMarker {
		f.removeBelow(dir, layer)
		return
	}
	p := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
	if n, ok := f.nodes[p]; ok && n.file.Layer < layer {
		f.remove(p)
	}
	f.removeBelow(p, layer)
}

// wanted fills f.wants with the analyzers that want file.
func (f *fold) wanted(file *File) []int {
	f.wants = f.wants[:0]
	for i, a := range f.analyzers {
		if a.Wants(file) {
			f.wants = append(f.wants, i)
		}
	}
	return f.wants
}

// analyze runs the analyzers in wants over the file read by open (called
// once per analyzer; each call must return a fresh reader) and records the
// node. prev is the node the file replaces, if any.
func (f *fold) analyze(ctx context.Context, file File, wants []int, prev *node, open func() (io.Reader, error)) error {
	n := &node{file: file}
	for _, ai := range wants {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := open()
		if err != nil {
			f.problem(file.Path, file.Layer, err)
			break
		}
		var pv any
		if prev != nil {
			for _, v := range prev.values {
				if v.analyzer == ai {
					pv = v.v
				}
			}
		}
		v, err := f.analyzers[ai].Analyze(ctx, &file, r, pv)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.problem(file.Path, file.Layer, err)
		}
		if v != nil {
			n.values = append(n.values, value{ai, v})
		}
	}
	if len(n.values) > 0 {
		f.put(file.Path, n)
	}
	return nil
}

func (f *fold) tree() *Tree {
	t := &Tree{Problems: f.problems, Files: len(f.nodes)}
	paths := make([]string, 0, len(f.nodes))
	for p := range f.nodes {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		n := f.nodes[p]
		for _, v := range n.values {
			t.Entries = append(t.Entries, Entry{File: n.file, Analyzer: v.analyzer, Value: v.v})
		}
	}
	return t
}

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // AUFS bookkeeping and the opaque marker
	opaqueMarker   = ".wh..wh..opq"
)

// cleanName turns a tar entry name into a "/"-rooted clean path. Names
// that climb with ".." are refused (a runtime refuses them too), and so
// are NUL bytes.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("NUL in entry name")
	}
	rel := strings.TrimLeft(name, "/")
	for _, c := range strings.Split(rel, "/") {
		if c == ".." {
			return "", errors.New("entry name climbs out with ..")
		}
	}
	return path.Clean("/" + rel), nil
}
