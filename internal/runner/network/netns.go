package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// nsInode identifies a network namespace file: (0, nil) when nothing
// lives at path any more (the container was removed), an error when path
// is something else than a namespace.
func nsInode(path string) (uint64, error) {
	var fsst unix.Statfs_t
	if err := unix.Statfs(path, &fsst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("network: %s: %w", path, err)
	}
	if fsst.Type != unix.NSFS_MAGIC {
		// The runner's placeholder file after the namespace was
		// unmounted: the namespace is gone.
		return 0, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("network: %s: %w", path, err)
	}
	return st.Ino, nil
}

// inNetNS runs fn on an OS thread that has joined the network namespace
// at path. The thread is never handed back to the Go scheduler (the
// goroutine exits locked), so no other goroutine ever runs in that
// namespace by accident.
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("network: open %s: %w", path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("network: setns %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// setSysctl writes a /proc/sys/net value for the calling thread's network
// namespace (/proc/sys/net follows the namespace of the task that opens
// it). name uses slashes: "ipv4/ip_forward".
func setSysctl(name, value string) error {
	p := filepath.Join("/proc/sys/net", name)
	if err := os.WriteFile(p, []byte(value), 0); err != nil {
		return fmt.Errorf("network: sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
