package runner

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNameInUse is returned when a container of that name already exists
// in the data directory (running, or stopped and not yet removed).
var ErrNameInUse = errors.New("container name in use")

// ErrNoContainer is returned for a name the data directory does not know.
var ErrNoContainer = errors.New("no such container")

// Store is the runner's part of the data directory:
//
//	DATA/runc/                    the runtime's --root (its own state)
//	DATA/init/BASE-SIZE/          bulwark's top layer (mount points) for
//	                              one user-namespace mapping, shared by
//	                              every container using it (read-only)
//	DATA/containers/NAME/         one directory per container
//	    state.json                Record
//	    bundle/config.json        the generated runtime spec
//	    rootfs/                   the read-only overlay (init + image)
//	    netns                     bind mount of a prepared netns (if any)
//	    pid                       the init process's host pid
//	    container.log             stdout+stderr of a detached container
//
// Directories are 0711: the runtime resolves the rootfs path from inside
// the container's user namespace, as an unprivileged host uid that must be
// able to traverse (but not list) them.
type Store struct{ dir string }

// OpenStore opens (creating) the runner's directories under the data
// directory.
func OpenStore(dataDir string) (*Store, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: abs}
	for _, d := range []string{abs, s.containers()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("runner: %w", err)
		}
		if err := ensureTraversable(d); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(s.RuntimeRoot(), 0o700); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	return s, nil
}

// ensureTraversable adds o+x to a directory of ours that lacks it (a data
// directory created by hand with 0700, say); nothing else is changed.
func ensureTraversable(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	if fi.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
			return fmt.Errorf("runner: %w", err)
		}
	}
	return nil
}

// Dir is the data directory (absolute).
func (s *Store) Dir() string { return s.dir }

// RuntimeRoot is the OCI runtime's state directory (--root).
func (s *Store) RuntimeRoot() string { return filepath.Join(s.dir, "runc") }

func (s *Store) containers() string { return filepath.Join(s.dir, "containers") }

// Record is what bulwark remembers about a container; ps shows it.
type Record struct {
	Name        string    `json:"name"`
	Image       string    `json:"image"`
	ImageDigest string    `json:"imageDigest"`
	Created     time.Time `json:"created"`
	Detached    bool      `json:"detached"`
	// CgroupID names the container's cgroup (CgroupParent/CgroupID):
	// cgroups are host-wide, names only per data directory.
	CgroupID string `json:"cgroupID"`
	// Runtime is the runtime binary that runs it; stop uses the same.
	Runtime string `json:"runtime"`
	// Pid is the init process's host pid, once started.
	Pid int `json:"pid,omitempty"`
	// RootfsMounted and NetNS say what cleanup must undo.
	RootfsMounted bool `json:"rootfsMounted,omitempty"`
	NetNS         bool `json:"netns,omitempty"`
}

// Container is one container's directory and record.
type Container struct {
	Dir string
	Record
}

func (c *Container) BundleDir() string  { return filepath.Join(c.Dir, "bundle") }
func (c *Container) RootfsDir() string  { return filepath.Join(c.Dir, "rootfs") }
func (c *Container) NetNSPath() string  { return filepath.Join(c.Dir, "netns") }
func (c *Container) PidFile() string    { return filepath.Join(c.Dir, "pid") }
func (c *Container) LogPath() string    { return filepath.Join(c.Dir, "container.log") }
func (c *Container) recordPath() string { return filepath.Join(c.Dir, "state.json") }

// Create reserves name (an atomic mkdir) and returns the new container's
// directory; the caller saves the record once it has filled it in.
func (s *Store) Create(rec Record) (*Container, error) {
	if !ValidName(rec.Name) {
		return nil, fmt.Errorf("%w: name %q: use 1-63 letters, digits, '_', '.', '-', starting with a letter or digit", ErrOptions, rec.Name)
	}
	c := &Container{Dir: filepath.Join(s.containers(), rec.Name), Record: rec}
	if err := os.Mkdir(c.Dir, 0o711); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: %s (bulwark stop %s removes it)", ErrNameInUse, rec.Name, rec.Name)
		}
		return nil, fmt.Errorf("runner: %w", err)
	}
	if c.CgroupID == "" {
		var b [4]byte
		rand.Read(b[:])
		c.CgroupID = rec.Name + "-" + hex.EncodeToString(b[:])
		if !ValidName(c.CgroupID) {
			c.CgroupID = "c-" + hex.EncodeToString(b[:])
		}
	}
	if c.Created.IsZero() {
		c.Created = time.Now().UTC()
	}
	if err := os.Mkdir(c.BundleDir(), 0o711); err != nil {
		os.RemoveAll(c.Dir)
		return nil, fmt.Errorf("runner: %w", err)
	}
	return c, nil
}

// initLayer returns the init layer (writeInitLayer) for ids, making it on
// first use. The overlay mounts it read-only below nothing writable and
// the runtime mounts over its directories without writing into it, so one
// copy serves every container with that mapping; sharing it saves every
// start five directories and their ownership changes. It is made under a
// temporary name, synced, then renamed: unlike a per-run copy, a layer
// left incomplete by a crash would break every later run, so it is either
// whole or absent. Temporary copies that a crashed bulwark left behind
// are removed when the next one is made.
func (s *Store) initLayer(ids IDMap) (string, error) {
	parent := filepath.Join(s.dir, "init")
	dir := filepath.Join(parent, fmt.Sprintf("%d-%d", ids.HostBase, ids.Size))
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
		return dir, nil
	}
	if err := os.MkdirAll(parent, 0o711); err != nil {
		return "", fmt.Errorf("runner: %w", err)
	}
	if stale, err := filepath.Glob(filepath.Join(parent, "*.tmp-*")); err == nil {
		for _, p := range stale {
			// A minute old: not another bulwark's creation in progress.
			if fi, err := os.Lstat(p); err == nil && time.Since(fi.ModTime()) > time.Minute {
				os.RemoveAll(p)
			}
		}
	}
	var b [8]byte
	rand.Read(b[:])
	tmp := dir + ".tmp-" + hex.EncodeToString(b[:])
	if err := writeInitLayer(tmp, ids); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := syncDirs(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		// Another bulwark made it first (rename onto a non-empty
		// directory fails).
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.IsDir() {
			return dir, nil
		}
		return "", fmt.Errorf("runner: init layer: %w", err)
	}
	if err := syncDirs(parent); err != nil {
		return "", err
	}
	return dir, nil
}

// syncDirs makes the directory tree at dir durable: one syncfs for the
// entries and inodes under it (their modes and owners), then an fsync of
// dir itself.
func syncDirs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("runner: syncfs %s: %w", dir, err)
	}
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("runner: fsync %s: %w", dir, err)
	}
	return nil
}

// Save writes the record atomically.
func (c *Container) Save() error {
	b, err := json.MarshalIndent(c.Record, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(c.recordPath(), append(b, '\n'), 0o600)
}

// Get loads a container's record.
func (s *Store) Get(name string) (*Container, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%w: %q", ErrNoContainer, name)
	}
	c := &Container{Dir: filepath.Join(s.containers(), name)}
	b, err := os.ReadFile(c.recordPath())
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(c.Dir); derr == nil {
			// A directory without a record: a create that died halfway.
			c.Name = name
			return c, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrNoContainer, name)
	}
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	if err := json.Unmarshal(b, &c.Record); err != nil {
		return nil, fmt.Errorf("runner: %s: %w", c.recordPath(), err)
	}
	c.Name = name
	return c, nil
}

// List returns every container in the data directory, by name.
func (s *Store) List() ([]*Container, error) {
	ents, err := os.ReadDir(s.containers())
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c, err := s.Get(e.Name())
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Container) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}

// release unmounts what the container mounted and removes its directory.
// It refuses to remove anything while a mount is still in place, so a
// failed unmount can never turn into deleting through a mount.
func (c *Container) release() error {
	for _, m := range []string{c.RootfsDir(), c.NetNSPath()} {
		if err := unmountIfMounted(m); err != nil {
			return err
		}
	}
	return os.RemoveAll(c.Dir)
}

// unmountIfMounted unmounts p if something is mounted on it (lazily when
// busy) and checks that nothing is left.
func unmountIfMounted(p string) error {
	for range 8 {
		mounted, err := isMountpoint(p)
		if err != nil || !mounted {
			return err
		}
		err = unix.Unmount(p, 0)
		if err == unix.EBUSY {
			err = unix.Unmount(p, unix.MNT_DETACH)
		}
		if err != nil && err != unix.EINVAL {
			return fmt.Errorf("runner: unmount %s: %w", p, err)
		}
	}
	return fmt.Errorf("runner: %s is still mounted", p)
}

// isMountpoint compares p's mount id with its parent's (statx), which also
// catches bind mounts of the same filesystem and nsfs file mounts.
func isMountpoint(p string) (bool, error) {
	mid := func(name string) (uint64, error) {
		var st unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
			return 0, err
		}
		return st.Mnt_id, nil
	}
	id, err := mid(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("runner: %w", err)
	}
	pid, err := mid(filepath.Dir(p))
	if err != nil {
		return false, fmt.Errorf("runner: %w", err)
	}
	return id != pid, nil
}

// writeFileAtomic replaces name so that readers (ps, a concurrent stop)
// see the old or the new content, never a torn one. It does not fsync: a
// container does not survive a host crash (its mounts, namespaces and
// processes are gone), so its record need not either, and two fsyncs per
// start were most of the runner's own start-up time.
func writeFileAtomic(name string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	// CreateTemp made it 0600.
	if perm != 0o600 {
		if err := f.Chmod(perm); err != nil {
			return fmt.Errorf("runner: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	return nil
}
