package unpack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Cache is a content-addressed store of extracted layers under one
// directory:
//
//	DIR/layers/VARIANT/ALG/HEX/fs          the layer's tree (an overlayfs lower dir)
//	DIR/layers/VARIANT/ALG/HEX/layer.json  digest, diffID, stats
//	DIR/tmp/                                extractions in progress
//	DIR/empty/                              bottom lower dir for one-layer images
//
// VARIANT names the options that change what is written (Options.variant),
// so caches for different user-namespace ranges never mix. A layer
// directory appears only by an atomic rename of a complete, verified,
// synced extraction, so a directory that exists is whole. A Cache is safe
// for concurrent use, and several processes may share DIR: the same layer
// extracted twice at once is renamed into place once, the loser's copy
// discarded.
type Cache struct {
	dir     string
	opts    Options
	variant string
	layers  string // DIR/layers/VARIANT
	tmp     string

	mu       sync.Mutex
	inflight map[digest.Digest]chan struct{}
}

// Layer is an extracted, verified layer in the cache.
type Layer struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`   // compressed, as in the descriptor
	DiffID    digest.Digest `json:"diffID"` // sha256 of the uncompressed tar
	Variant   string        `json:"variant"`
	Stats     Stats         `json:"stats"`
	// Dir is the extracted tree, for use as an overlayfs lower directory.
	// Nothing may write to it.
	Dir string `json:"-"`
}

// Opener returns the layer blob's bytes; Layer calls it only on a miss.
type Opener func() (io.ReadCloser, error)

// staleAfter: a temporary directory nobody holds a lock on is removed at
// Open once it is this old (younger ones may be between mkdir and flock).
const staleAfter = time.Minute

// Open opens (creating it) the cache at dir. It removes extractions that a
// crashed process left behind and checks that the filesystem can hold
// overlayfs lower layers (whiteout device nodes, trusted.* xattrs): that
// needs root on a local filesystem such as ext4, xfs, btrfs or tmpfs.
func Open(dir string, opts Options) (*Cache, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &Cache{dir: dir, opts: opts, variant: opts.variant(), tmp: filepath.Join(dir, "tmp"), inflight: map[digest.Digest]chan struct{}{}}
	c.layers = filepath.Join(dir, "layers", c.variant)
	for _, d := range []string{dir, c.tmp, c.layers, filepath.Join(dir, "empty")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("unpack: %w", err)
		}
	}
	// The empty lower dir is the merged root's parent-most layer; it must be
	// traversable like any root directory.
	if err := os.Chmod(filepath.Join(dir, "empty"), 0o755); err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	c.removeStale()
	if err := c.probe(); err != nil {
		return nil, err
	}
	return c, nil
}

// Dir returns the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// Options returns the options in force, defaults filled in.
func (c *Cache) Options() Options { return c.opts }

func (c *Cache) path(d digest.Digest) string {
	return filepath.Join(c.layers, string(d.Algorithm()), d.Encoded())
}

// probe checks, once, everything an extraction needs from the kernel and
// the filesystem, so a missing capability fails at Open with a clear reason
// rather than halfway through a layer.
func (c *Cache) probe() error {
	d, err := os.MkdirTemp(c.tmp, "probe-")
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer os.RemoveAll(d)
	fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer unix.Close(fd)
	fd2, err := openDirBeneath(fd, ".")
	if err != nil {
		return fmt.Errorf("unpack: confined lookup: %w", err)
	}
	unix.Close(fd2)
	if err := unix.Mknodat(fd, "wh", unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("%w: cannot create overlayfs whiteouts (device nodes) in %s: %v (root on a local filesystem is needed)", ErrUnsupported, c.dir, err)
	}
	if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("%w: cannot set %s in %s: %v (root on a filesystem with trusted xattrs, not overlayfs, is needed)", ErrUnsupported, opaqueXattr, c.dir, err)
	}
	return nil
}

// removeStale deletes temporary directories whose owner is gone: each
// extraction holds an flock on its directory, which the kernel releases
// when the process dies.
func (c *Cache) removeStale() {
	entries, err := os.ReadDir(c.tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(c.tmp, e.Name())
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < staleAfter {
			continue
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			os.Remove(p)
			continue
		}
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
			c.opts.Logger.Info("unpack: removing an abandoned extraction", "dir", p)
			os.RemoveAll(p)
		}
		unix.Close(fd)
	}
}

// Lookup returns the cached layer for desc, or ErrNotCached. It never
// fetches.
func (c *Cache) Lookup(desc v1.Descriptor) (Layer, error) {
	if _, err := checkDescriptor(desc); err != nil {
		return Layer{}, err
	}
	return c.lookup(desc)
}

func (c *Cache) lookup(desc v1.Descriptor) (Layer, error) {
	p := c.path(desc.Digest)
	b, err := os.ReadFile(filepath.Join(p, "layer.json"))
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Lstat(p); serr == nil {
			c.discard(p, "no layer.json")
		}
		return Layer{}, ErrNotCached
	}
	if err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	var l Layer
	if err := json.Unmarshal(b, &l); err != nil || l.Digest != desc.Digest || l.Variant != c.variant {
		c.discard(p, "bad layer.json")
		return Layer{}, ErrNotCached
	}
	l.Dir = filepath.Join(p, "fs")
	return l, nil
}

// discard moves a damaged cache entry out of the way (it cannot happen
// without outside interference, since entries are synced before rename).
func (c *Cache) discard(p, why string) {
	c.opts.Logger.Warn("unpack: discarding a damaged cache entry", "dir", p, "reason", why)
	trash, err := os.MkdirTemp(c.tmp, "trash-")
	if err != nil {
		return
	}
	if os.Rename(p, filepath.Join(trash, "x")) == nil {
		os.RemoveAll(trash)
	}
}

// Layer returns the extracted layer for desc, extracting it on a miss from
// the bytes open returns. The bytes are verified against desc's size and
// digest while they stream; a layer that fails verification, breaks a
// limit or holds an unsafe entry leaves nothing in the cache. Concurrent
// calls for the same digest extract it once.
func (c *Cache) Layer(ctx context.Context, desc v1.Descriptor, open Opener) (Layer, error) {
	return c.layer(ctx, desc, open, nil)
}

func (c *Cache) layer(ctx context.Context, desc v1.Descriptor, open Opener, budget *atomic.Int64) (Layer, error) {
	if _, err := checkDescriptor(desc); err != nil {
		return Layer{}, err
	}
	for {
		l, err := c.lookup(desc)
		if !errors.Is(err, ErrNotCached) {
			return l, err
		}
		c.mu.Lock()
		if ch, ok := c.inflight[desc.Digest]; ok {
			c.mu.Unlock()
			select {
			case <-ch:
				continue // done, or failed: look again, maybe extract ourselves
			case <-ctx.Done():
				return Layer{}, ctx.Err()
			}
		}
		ch := make(chan struct{})
		c.inflight[desc.Digest] = ch
		c.mu.Unlock()

		l, err = c.extract(ctx, desc, open, budget)

		c.mu.Lock()
		delete(c.inflight, desc.Digest)
		close(ch)
		c.mu.Unlock()
		return l, err
	}
}

func (c *Cache) extract(ctx context.Context, desc v1.Descriptor, open Opener, budget *atomic.Int64) (_ Layer, err error) {
	start := time.Now()
	tmp, err := os.MkdirTemp(c.tmp, "layer-")
	if err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	lockfd, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.RemoveAll(tmp)
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	renamed := false
	defer func() {
		unix.Close(lockfd)
		if !renamed {
			os.RemoveAll(tmp)
		}
	}()
	if err := unix.Flock(lockfd, unix.LOCK_EX); err != nil {
		return Layer{}, fmt.Errorf("unpack: lock: %w", err)
	}

	fsDir := filepath.Join(tmp, "fs")
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	uid, gid := c.opts.rootIDs()
	if err := os.Chown(fsDir, uid, gid); err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}

	stats, diffID, err := c.apply(ctx, desc, open, fsDir, budget)
	if err != nil {
		return Layer{}, fmt.Errorf("unpack: layer %s: %w", desc.Digest, err)
	}
	l := Layer{Digest: desc.Digest, MediaType: desc.MediaType, Size: desc.Size, DiffID: diffID, Variant: c.variant, Stats: stats}
	b, err := json.Marshal(l)
	if err != nil {
		return Layer{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "layer.json"), b, 0o600); err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	// One syncfs makes every file of the extraction durable before the
	// rename publishes it; per-file fsyncs would cost a disk flush each.
	if err := unix.Syncfs(lockfd); err != nil {
		return Layer{}, fmt.Errorf("unpack: syncfs: %w", err)
	}
	final := c.path(desc.Digest)
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	err = os.Rename(tmp, final)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
		// Another process won the race; its copy is as good as ours.
		if l, lerr := c.lookup(desc); !errors.Is(lerr, ErrNotCached) {
			return l, lerr
		}
		// What was there was damaged and has been discarded.
		err = os.Rename(tmp, final)
	}
	if err != nil {
		return Layer{}, fmt.Errorf("unpack: %w", err)
	}
	renamed = true
	if err := syncDir(parent); err != nil {
		return Layer{}, err
	}
	l.Dir = filepath.Join(final, "fs")
	c.opts.Logger.Debug("unpack: layer extracted", "digest", desc.Digest, "bytes", stats.Bytes,
		"entries", stats.Entries, "dropped", stats.Dropped, "stripped", stats.Stripped, "elapsed", time.Since(start))
	return l, nil
}

// apply streams the blob through verification and decompression into dir.
func (c *Cache) apply(ctx context.Context, desc v1.Descriptor, open Opener, dir string, budget *atomic.Int64) (Stats, digest.Digest, error) {
	rc, err := open()
	if err != nil {
		return Stats{}, "", fmt.Errorf("opening blob: %w", err)
	}
	s, err := newLayerStream(desc, rc, c.opts.Limits.MaxLayerBytes)
	if err != nil {
		rc.Close()
		return Stats{}, "", err
	}
	defer s.close()
	s.count.budget = budget

	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, "", err
	}
	defer unix.Close(rootfd)
	a := newApplier(ctx, &c.opts, rootfd)
	defer a.close()
	if err := a.apply(s.count); err != nil {
		return Stats{}, "", s.fail(ctx, err)
	}
	diffID, err := s.finish()
	if err != nil {
		return Stats{}, "", s.fail(ctx, err)
	}
	a.stats.Bytes = s.count.n
	return a.stats, diffID, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("unpack: fsync %s: %w", dir, err)
	}
	return nil
}
