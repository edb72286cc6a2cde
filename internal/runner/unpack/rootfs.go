package unpack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Fetcher opens a layer blob. Rootfs calls it only for layers not cached.
type Fetcher func(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error)

// Rootfs is an image's root filesystem as a stack of cached layers.
type Rootfs struct {
	// Layers in manifest order (bottom first).
	Layers []Layer
	// Lowerdirs in overlayfs order (top first). Without an upper directory
	// overlayfs needs at least two, so a one-layer image gets the cache's
	// empty directory below its layer. Layers below one whose root is
	// opaque are left out: nothing of them is visible.
	Lowerdirs []string
	// NoSuid is set unless the cache keeps setuid bits; Mount then adds
	// nosuid.
	NoSuid bool
}

// Rootfs makes sure every layer of an image is extracted (fetching missing
// ones, up to Options.Parallel at a time) and returns the stack. Layers are
// given in manifest order. The image as a whole is held to
// Limits.MaxImageBytes and Limits.MaxLayers. Nothing is mounted.
func (c *Cache) Rootfs(ctx context.Context, layers []v1.Descriptor, fetch Fetcher) (*Rootfs, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("%w: an image without layers", ErrInvalidLayer)
	}
	if len(layers) > c.opts.Limits.MaxLayers {
		return nil, fmt.Errorf("%w: %d layers (limit %d)", ErrLimit, len(layers), c.opts.Limits.MaxLayers)
	}
	for _, d := range layers {
		if _, err := checkDescriptor(d); err != nil {
			return nil, err
		}
	}
	// The image budget starts from what cached layers already use; layers
	// extracted now draw on it as they stream.
	out := make([]Layer, len(layers))
	var missing []int
	var used int64
	for i, d := range layers {
		l, err := c.lookup(d)
		switch {
		case err == nil:
			out[i] = l
			used += l.Stats.Bytes
		case errors.Is(err, ErrNotCached):
			missing = append(missing, i)
		default:
			return nil, err
		}
	}
	budget := new(atomic.Int64)
	budget.Store(c.opts.Limits.MaxImageBytes - used)
	if used > c.opts.Limits.MaxImageBytes {
		return nil, fmt.Errorf("%w: the image's layers exceed their uncompressed size limit", ErrLimit)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, c.opts.Parallel)
	var wg sync.WaitGroup
	errs := make([]error, len(layers))
	for _, i := range missing {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = context.Cause(ctx)
				return
			}
			defer func() { <-sem }()
			d := layers[i]
			open := func() (io.ReadCloser, error) { return fetch(ctx, d) }
			l, err := c.layer(ctx, d, open, budget)
			if err != nil {
				errs[i] = err
				cancel(err)
				return
			}
			out[i] = l
		})
	}
	wg.Wait()
	// Report the first failure, not the cancellations it caused.
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	r := &Rootfs{Layers: out, NoSuid: !c.opts.AllowSetuid}
	for i := len(out) - 1; i >= 0; i-- {
		r.Lowerdirs = append(r.Lowerdirs, out[i].Dir)
		if out[i].Stats.OpaqueRoot {
			break // hides everything below; see Stats.OpaqueRoot
		}
	}
	if len(r.Lowerdirs) == 1 {
		r.Lowerdirs = append(r.Lowerdirs, filepath.Join(c.dir, "empty"))
	}
	return r, nil
}

// CheckDiffIDs compares the layers' diffIDs (digests of the uncompressed
// tars, computed while extracting) with an image config's
// rootfs.diff_ids, as Docker does: a mismatch means the manifest and the
// config describe different content.
func (r *Rootfs) CheckDiffIDs(diffIDs []digest.Digest) error {
	if len(diffIDs) != len(r.Layers) {
		return fmt.Errorf("%w: the config lists %d diff_ids for %d layers", ErrInvalidLayer, len(diffIDs), len(r.Layers))
	}
	for i, l := range r.Layers {
		if l.DiffID != diffIDs[i] {
			return fmt.Errorf("%w: layer %d (%s) uncompresses to %s, the config says %s", ErrDigestMismatch, i, l.Digest, l.DiffID, diffIDs[i])
		}
	}
	return nil
}

// CheckOverlay reports ErrUnsupported when the kernel has no overlayfs.
func CheckOverlay() error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return overlayErr(err)
	}
	unix.Close(fd)
	return nil
}

func overlayErr(err error) error {
	switch err {
	case unix.ENODEV:
		return fmt.Errorf("%w: the kernel has no overlay filesystem (modprobe overlay, or a kernel with CONFIG_OVERLAY_FS)", ErrUnsupported)
	case unix.ENOSYS:
		return fmt.Errorf("%w: the kernel has no fsopen (Linux 5.2 or later is needed)", ErrUnsupported)
	case unix.EPERM:
		return fmt.Errorf("%w: mounting overlayfs needs CAP_SYS_ADMIN", ErrUnsupported)
	}
	return fmt.Errorf("unpack: overlayfs: %w", err)
}

// Mount mounts the stack read-only on target (an existing directory) as
// overlayfs, with nodev, nosuid unless setuid bits are kept, and
// overlayfs' redirect and metacopy features off: bulwark never writes
// those xattrs, so nothing in a lower layer can use them. Unmount it with
// Unmount.
func (r *Rootfs) Mount(target string) error { return r.mount(target, layersByFd) }

// How lower directories reach the kernel; Mount falls back from the first
// to the last as the kernel requires. Tests force each one.
const (
	layersByFd = iota
	layersByPath
	layersLegacy
)

func (r *Rootfs) mount(target string, how int) error {
	if how == layersLegacy {
		return r.legacyMount(target)
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return overlayErr(err)
	}
	defer unix.Close(fsfd)
	fail := func(what string, err error) error {
		if msg := fsLog(fsfd); msg != "" {
			return fmt.Errorf("unpack: overlayfs %s: %w (%s)", what, err, msg)
		}
		return fmt.Errorf("unpack: overlayfs %s: %w", what, err)
	}
	for _, kv := range [][2]string{{"redirect_dir", "nofollow"}, {"metacopy", "off"}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return fail(kv[0], err)
		}
	}
	if err := addLowerdirs(fsfd, r.Lowerdirs, how == layersByPath); err != nil {
		if errors.Is(err, errLegacyMount) {
			return r.legacyMount(target)
		}
		return fail("lowerdir", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fail("create", err)
	}
	attrs := unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV
	if r.NoSuid {
		attrs |= unix.MOUNT_ATTR_NOSUID
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fail("fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("unpack: mounting on %s: %w", target, err)
	}
	return nil
}

var errLegacyMount = errors.New("lowerdir+ unsupported")

// addLowerdirs passes each layer as its own "lowerdir+" parameter, by
// descriptor where the kernel takes one (6.13+; no path length or escaping
// concerns), else by path (6.8+). Older kernels get mount(2).
func addLowerdirs(fsfd int, dirs []string, byPath bool) error {
	for i, d := range dirs {
		var err error = unix.EINVAL
		if !byPath {
			fd, oerr := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if oerr != nil {
				return oerr
			}
			err = unix.FsconfigSetFd(fsfd, "lowerdir+", fd)
			unix.Close(fd)
		}
		// fsconfig takes strings of at most 255 bytes.
		if err == unix.EINVAL && len(d) < 256 {
			err = unix.FsconfigSetString(fsfd, "lowerdir+", d)
		}
		if err == unix.EINVAL && i == 0 {
			return errLegacyMount
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// legacyMount is mount(2) with a "lowerdir=a:b" option string, limited to
// a page.
func (r *Rootfs) legacyMount(target string) error {
	esc := make([]string, len(r.Lowerdirs))
	for i, d := range r.Lowerdirs {
		esc[i] = strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(d)
	}
	data := "redirect_dir=nofollow,metacopy=off,lowerdir=" + strings.Join(esc, ":")
	if len(data) >= unix.Getpagesize() {
		return fmt.Errorf("%w: overlayfs options exceed a page on a kernel without lowerdir+ (use a shorter cache path)", ErrLimit)
	}
	flags := uintptr(unix.MS_RDONLY | unix.MS_NODEV)
	if r.NoSuid {
		flags |= unix.MS_NOSUID
	}
	if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
		return overlayErr(err)
	}
	return nil
}

// fsLog reads the messages the kernel queued on an fs context: overlayfs
// says there why a parameter or the mount was refused.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

// Unmount unmounts what Mount mounted on target, lazily if it is busy.
func Unmount(target string) error {
	err := unix.Unmount(target, 0)
	if err == unix.EBUSY {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unpack: unmount %s: %w", target, err)
	}
	return nil
}
