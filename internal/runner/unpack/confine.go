package unpack

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Every path below a layer root is resolved by the kernel with openat2 and
// these flags: no "..", absolute path or symlink can take a lookup out of the
// root, and no symlink is followed at all, even one that stays inside (the
// tar's view of its own entries never goes through a symlink). The final
// component of a path is never resolved by path: it is created, opened,
// linked or unlinked relative to its parent directory's descriptor with the
// *at system calls and O_NOFOLLOW / AT_SYMLINK_NOFOLLOW.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// openDirBeneath opens the directory rel (clean, slash-separated, relative)
// below dirfd.
func openDirBeneath(dirfd int, rel string) (int, error) {
	how := unix.OpenHow{
		// No O_NOFOLLOW: with RESOLVE_NO_SYMLINKS a symlink anywhere,
		// last component included, fails with ELOOP, which names the cause.
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: resolveBeneath,
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, rel, &how)
		// EAGAIN: a rename elsewhere on the system raced the lookup; the
		// kernel asks for a retry.
		if (err == unix.EAGAIN || err == unix.EINTR) && i < 16 {
			continue
		}
		if err == unix.ENOSYS {
			return -1, fmt.Errorf("%w: openat2 (Linux 5.6 or later is needed)", ErrUnsupported)
		}
		return fd, err
	}
}

// classify turns the errno of a confined lookup into the package's errors.
func classify(rel string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%w: %q goes through a symlink or out of the root", ErrUnsafePath, truncate(rel))
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: a parent of %q is not a directory", ErrInvalidLayer, truncate(rel))
	case errors.Is(err, unix.ENAMETOOLONG):
		return fmt.Errorf("%w: %q is too long", ErrLimit, truncate(rel))
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %q does not exist", ErrInvalidLayer, truncate(rel))
	}
	return fmt.Errorf("%q: %w", truncate(rel), err)
}

// removeAllAt removes name (of any type) from dirfd without following
// symlinks: directories are opened with openDirBeneath and emptied through
// their descriptors.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := openDirBeneath(dirfd, name)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	// Read every name before unlinking, so deletion cannot make getdents
	// skip entries.
	var names []string
	for {
		batch, err := f.Readdirnames(1024)
		names = append(names, batch...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	for _, n := range names {
		if err := removeAllAt(fd, n); err != nil {
			return err
		}
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// isWhiteoutDev reports whether st is an overlayfs whiteout (char 0/0).
func isWhiteoutDev(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

const (
	opaqueXattr = "trusted.overlay.opaque"
)

func setOpaque(dirfd int) error {
	if err := unix.Fsetxattr(dirfd, opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("%w: setting %s: %v", ErrUnsupported, opaqueXattr, err)
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
