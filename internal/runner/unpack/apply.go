package unpack

import (
	"archive/tar"
	"context"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
	opaqueMarker   = ".wh..wh..opq"
	copyBufSize    = 1 << 20
)

// Stats describes one layer's extraction.
type Stats struct {
	// Bytes is the length of the uncompressed tar stream.
	Bytes int64 `json:"bytes"`
	// Entries counts the tar entries read, pax global headers included.
	Entries int64 `json:"entries"`
	// Dropped counts entries left out by policy: device nodes, fifos,
	// AUFS metadata.
	Dropped int64 `json:"dropped"`
	// Whiteouts counts whiteouts and opaque markers turned into their
	// overlayfs form.
	Whiteouts int64 `json:"whiteouts"`
	// Stripped counts entries whose setuid/setgid bits were cleared.
	Stripped int64 `json:"stripped"`
	// Clamped counts entries whose owner was clamped (Options.ClampIDs).
	Clamped int64 `json:"clamped"`
	// OpaqueRoot: the layer has an opaque marker at its top, hiding every
	// layer below it. overlayfs ignores the opaque xattr on a layer's root,
	// so Rootfs leaves the lower layers out of the stack instead.
	OpaqueRoot bool `json:"opaqueRoot,omitempty"`
}

// ApplyLayer extracts the uncompressed tar stream r into dir, which must be
// an existing directory that nothing else writes to while this runs (the
// cache gives it a fresh private one). Whiteouts become overlayfs whiteouts
// (character devices 0/0) and opaque markers the trusted.overlay.opaque
// xattr, so dir is meant to be an overlayfs lower layer. ApplyLayer needs
// root (chown, mknod, trusted xattrs).
//
// Nothing is ever written outside dir: see the package documentation for
// the exact rules. On error dir holds a partial extraction and must be
// discarded.
func ApplyLayer(ctx context.Context, dir string, r io.Reader, opts Options) (Stats, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return Stats{}, err
	}
	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("unpack: opening %s: %w", dir, err)
	}
	defer unix.Close(rootfd)
	cr := &countingReader{r: r, max: opts.Limits.MaxLayerBytes}
	a := newApplier(ctx, &opts, rootfd)
	defer a.close()
	err = a.apply(cr)
	a.stats.Bytes = cr.n
	return a.stats, err
}

type applier struct {
	ctx   context.Context
	opts  *Options
	log   *slog.Logger
	root  int
	stats Stats
	buf   []byte

	// One open parent directory, because tar entries come grouped by
	// directory. Invalidated when that directory or an ancestor is removed.
	cachedRel string
	cachedFd  int

	dirTimes []dirTime
	// written counts file bytes written. It exceeds the stream's length
	// only for sparse entries, whose holes archive/tar returns as zeros: a
	// few bytes of tar could otherwise ask for terabytes of writes.
	written int64
}

type dirTime struct {
	rel string
	ts  [2]unix.Timespec
}

func newApplier(ctx context.Context, opts *Options, rootfd int) *applier {
	return &applier{ctx: ctx, opts: opts, log: opts.Logger, root: rootfd, cachedFd: -1}
}

func (a *applier) close() {
	a.setCache("", -1)
}

// apply reads r to the end of the tar archive. It does not drain what
// follows the end-of-archive marker; the caller does.
func (a *applier) apply(cr *countingReader) error {
	tr := tar.NewReader(cr)
	for {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if cr.err != nil { // the limit or the transport, not the tar format
				return cr.err
			}
			return fmt.Errorf("%w: reading tar: %v", ErrInvalidLayer, err)
		}
		a.stats.Entries++
		if a.stats.Entries > a.opts.Limits.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrLimit, a.opts.Limits.MaxEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // pax global header: metadata for the archive, no file
		}
		if err := a.entry(hdr, tr); err != nil {
			if cr.err != nil {
				return cr.err
			}
			return entryErr(hdr.Name, err)
		}
	}
	return a.finish()
}

func (a *applier) entry(hdr *tar.Header, data io.Reader) error {
	name, err := a.cleanName(hdr.Name)
	if err != nil {
		return err
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(name, dir, base)
	}
	if name == "" && hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("%w: a non-directory entry names the root", ErrInvalidLayer)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return a.regular(hdr, name, dir, base, data)
	case tar.TypeDir:
		return a.directory(hdr, name, dir, base)
	case tar.TypeSymlink:
		return a.symlink(hdr, name, dir, base)
	case tar.TypeLink:
		return a.hardlink(hdr, name, dir, base)
	case tar.TypeChar, tar.TypeBlock:
		if !a.opts.KeepDevices {
			return a.drop(name, "device node")
		}
		return a.node(hdr, name, dir, base)
	case tar.TypeFifo:
		if !a.opts.KeepFifos {
			return a.drop(name, "fifo")
		}
		return a.node(hdr, name, dir, base)
	}
	return fmt.Errorf("%w: entry type %q", ErrInvalidLayer, string(hdr.Typeflag))
}

// cleanName maps a tar name to a clean path relative to the root ("" for
// the root itself). Leading slashes are dropped, as Docker, containerd and
// GNU tar do; a name that still climbs above the root is refused.
func (a *applier) cleanName(name string) (string, error) {
	if len(name) > a.opts.Limits.MaxPathLen {
		return "", fmt.Errorf("%w: name longer than %d bytes", ErrLimit, a.opts.Limits.MaxPathLen)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL in name", ErrUnsafePath)
	}
	n := path.Clean(strings.TrimLeft(name, "/"))
	if n == ".." || strings.HasPrefix(n, "../") {
		return "", fmt.Errorf("%w: name climbs out of the root", ErrUnsafePath)
	}
	if n == "." {
		return "", nil
	}
	for c := range strings.SplitSeq(n, "/") {
		if len(c) > maxNameLen {
			return "", fmt.Errorf("%w: a name component is longer than %d bytes", ErrLimit, maxNameLen)
		}
	}
	return n, nil
}

func (a *applier) drop(name, what string) error {
	a.stats.Dropped++
	a.log.Debug("unpack: entry dropped", "name", truncate(name), "type", what)
	return nil
}

// parent returns a descriptor for the directory rel, creating missing
// directories (owned by the container's root, mode 0755). The descriptor
// belongs to the applier and stays valid until the next call.
func (a *applier) parent(rel string) (int, error) {
	if rel == "" {
		return a.root, nil
	}
	if a.cachedFd >= 0 && a.cachedRel == rel {
		return a.cachedFd, nil
	}
	fd, err := openDirBeneath(a.root, rel)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		fd, err = a.mkdirAll(rel)
	}
	if err != nil {
		return -1, classify(rel, err)
	}
	a.setCache(rel, fd)
	return fd, nil
}

func (a *applier) setCache(rel string, fd int) {
	if a.cachedFd >= 0 {
		unix.Close(a.cachedFd)
	}
	a.cachedRel, a.cachedFd = rel, fd
}

// forget drops the cached descriptor if it is rel or below it (rel is
// about to be removed).
func (a *applier) forget(rel string) {
	if a.cachedFd >= 0 && (a.cachedRel == rel || strings.HasPrefix(a.cachedRel, rel+"/")) {
		a.setCache("", -1)
	}
}

// mkdirAll walks rel one component at a time, creating what is missing. A
// whiteout in the way (".wh.d" then "d/f" without a "d/" entry) is replaced
// by an opaque directory, as an explicit "d/" entry would be.
func (a *applier) mkdirAll(rel string) (int, error) {
	cur := a.root
	release := func() {
		if cur != a.root {
			unix.Close(cur)
		}
	}
	for c := range strings.SplitSeq(rel, "/") {
		fd, err := openDirBeneath(cur, c)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			fd, err = a.mkdirReplacingWhiteout(cur, c, err == unix.ENOTDIR)
		}
		release()
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

func (a *applier) mkdirReplacingWhiteout(dirfd int, name string, exists bool) (int, error) {
	opaque := false
	if exists {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return -1, err
		}
		if !isWhiteoutDev(&st) {
			return -1, unix.ENOTDIR
		}
		if err := unix.Unlinkat(dirfd, name, 0); err != nil {
			return -1, err
		}
		opaque = true
	}
	if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
		return -1, err
	}
	fd, err := openDirBeneath(dirfd, name)
	if err != nil {
		return -1, err
	}
	uid, gid := a.opts.rootIDs()
	err = unix.Fchown(fd, uid, gid)
	if err == nil {
		err = unix.Fchmod(fd, 0o755)
	}
	if err == nil && opaque {
		err = setOpaque(fd)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// clear makes room at base in dirfd for a new entry: last entry wins, as in
// Docker. An existing directory is kept when the new entry is a directory
// too (its metadata is then updated); anything else is removed, a
// directory with all it holds. wasWhiteout reports that a whiteout was
// replaced.
func (a *applier) clear(dirfd int, rel, base string, newDir bool) (kept, wasWhiteout bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, false, nil
		}
		return false, false, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if newDir {
			return true, false, nil
		}
		a.forget(rel)
		return false, false, removeAllAt(dirfd, base)
	}
	return false, isWhiteoutDev(&st), unix.Unlinkat(dirfd, base, 0)
}

// owner maps the header's owner into the user-namespace range.
func (a *applier) owner(hdr *tar.Header) (uid, gid int, err error) {
	clamped := false
	check := func(id int, base uint32, what string) (int, error) {
		h, err := a.opts.hostID(id, base, what)
		if err == nil && a.opts.IDs.Size > 0 && (id < 0 || int64(id) >= int64(a.opts.IDs.Size)) {
			clamped = true
		}
		return h, err
	}
	if uid, err = check(hdr.Uid, a.opts.IDs.UIDBase, "uid"); err != nil {
		return 0, 0, err
	}
	if gid, err = check(hdr.Gid, a.opts.IDs.GIDBase, "gid"); err != nil {
		return 0, 0, err
	}
	if clamped {
		a.stats.Clamped++
	}
	return uid, gid, nil
}

// mode returns the permission bits to set, setuid/setgid cleared unless
// allowed. Setgid stays on directories: there it only makes new files
// inherit the group.
func (a *applier) mode(hdr *tar.Header, dir bool) uint32 {
	m := uint32(hdr.Mode) & 0o7777
	if a.opts.AllowSetuid {
		return m
	}
	strip := uint32(unix.S_ISUID | unix.S_ISGID)
	if dir {
		strip = unix.S_ISUID
	}
	if m&strip != 0 {
		a.stats.Stripped++
		m &^= strip
	}
	return m
}

func (a *applier) regular(hdr *tar.Header, name, dir, base string, data io.Reader) error {
	if hdr.Size > a.opts.Limits.MaxEntryBytes {
		return fmt.Errorf("%w: file of %d bytes (limit %d)", ErrLimit, hdr.Size, a.opts.Limits.MaxEntryBytes)
	}
	if a.written += hdr.Size; a.written > a.opts.Limits.MaxLayerBytes {
		return fmt.Errorf("%w: files add up to more than %d bytes", ErrLimit, a.opts.Limits.MaxLayerBytes)
	}
	uid, gid, err := a.owner(hdr)
	if err != nil {
		return err
	}
	mode := a.mode(hdr, false)
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pfd, base, flags, 0o600)
	if err == unix.EEXIST {
		if _, _, err = a.clear(pfd, name, base, false); err == nil {
			fd, err = unix.Openat(pfd, base, flags, 0o600)
		}
	}
	if err != nil {
		return classify(name, err)
	}
	defer unix.Close(fd)
	if err := a.copyData(fd, data, hdr.Size); err != nil {
		return err
	}
	// chown before chmod: chown clears setuid/setgid.
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	a.xattrs(fd, hdr)
	return a.times(pfd, base, hdr)
}

func (a *applier) copyData(fd int, r io.Reader, size int64) error {
	// Grown on demand: layers of small files never need the full buffer.
	if int64(len(a.buf)) < size && len(a.buf) < copyBufSize {
		a.buf = make([]byte, min(copyBufSize, max(size, 64<<10)))
	}
	var done int64
	for done < size {
		n, err := r.Read(a.buf[:min(int64(len(a.buf)), size-done)])
		if n > 0 {
			if werr := writeAll(fd, a.buf[:n]); werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
			done += int64(n)
		}
		if err == io.EOF && done < size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("%w: file data: %v", ErrInvalidLayer, err)
		}
		if err := a.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) directory(hdr *tar.Header, name, dir, base string) error {
	uid, gid, err := a.owner(hdr)
	if err != nil {
		return err
	}
	mode := a.mode(hdr, true)
	fd := a.root
	if name != "" {
		pfd, err := a.parent(dir)
		if err != nil {
			return err
		}
		opaque := false
		err = unix.Mkdirat(pfd, base, 0o700)
		if err == unix.EEXIST {
			var kept bool
			if kept, opaque, err = a.clear(pfd, name, base, true); err == nil && !kept {
				err = unix.Mkdirat(pfd, base, 0o700)
			}
		}
		if err != nil {
			return classify(name, err)
		}
		if fd, err = openDirBeneath(pfd, base); err != nil {
			return classify(name, err)
		}
		defer unix.Close(fd)
		// A directory that replaces a whiteout of the same layer is a new
		// directory: nothing of the lower layers' one may show through.
		if opaque {
			if err := setOpaque(fd); err != nil {
				return err
			}
		}
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	a.xattrs(fd, hdr)
	// Entries written below it later change its mtime: set times at the end.
	a.dirTimes = append(a.dirTimes, dirTime{rel: name, ts: timespecs(hdr)})
	return nil
}

func (a *applier) symlink(hdr *tar.Header, name, dir, base string) error {
	// The target is stored, never resolved: any value is safe.
	if len(hdr.Linkname) > a.opts.Limits.MaxPathLen {
		return fmt.Errorf("%w: symlink target longer than %d bytes", ErrLimit, a.opts.Limits.MaxPathLen)
	}
	if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return fmt.Errorf("%w: empty symlink target or NUL in it", ErrInvalidLayer)
	}
	uid, gid, err := a.owner(hdr)
	if err != nil {
		return err
	}
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	err = unix.Symlinkat(hdr.Linkname, pfd, base)
	if err == unix.EEXIST {
		if _, _, err = a.clear(pfd, name, base, false); err == nil {
			err = unix.Symlinkat(hdr.Linkname, pfd, base)
		}
	}
	if err != nil {
		return classify(name, err)
	}
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return a.times(pfd, base, hdr)
}

// hardlink links name to an earlier entry of the same layer. The target is
// resolved like any entry name (below the root, through no symlink), and
// linkat does not follow a symlink target: a hardlink to a symlink is a
// second name for that symlink, never for what it points to.
func (a *applier) hardlink(hdr *tar.Header, name, dir, base string) error {
	target, err := a.cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if target == "" {
		return fmt.Errorf("%w: hardlink to the root", ErrInvalidLayer)
	}
	tdir, tbase := path.Split(target)
	tdir = strings.TrimSuffix(tdir, "/")
	tfd := a.root
	if tdir != "" {
		if tfd, err = openDirBeneath(a.root, tdir); err != nil {
			return classify(target, err)
		}
		defer unix.Close(tfd)
	}
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	err = unix.Linkat(tfd, tbase, pfd, base, 0)
	if err == unix.EEXIST {
		if _, _, err = a.clear(pfd, name, base, false); err == nil {
			err = unix.Linkat(tfd, tbase, pfd, base, 0)
		}
	}
	switch {
	case err == unix.ENOENT:
		return fmt.Errorf("%w: hardlink target %q is not in this layer", ErrInvalidLayer, truncate(target))
	case err == unix.EPERM:
		return fmt.Errorf("%w: hardlink target %q is a directory", ErrInvalidLayer, truncate(target))
	case err != nil:
		return classify(name, err)
	}
	return nil
}

// node creates a device node or fifo (only when the options keep them).
func (a *applier) node(hdr *tar.Header, name, dir, base string) error {
	uid, gid, err := a.owner(hdr)
	if err != nil {
		return err
	}
	mode := a.mode(hdr, false)
	var typ uint32 = unix.S_IFIFO
	var dev uint64
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Devmajor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor < 0 || hdr.Devminor > 1<<32-1 {
			return fmt.Errorf("%w: device number %d:%d", ErrInvalidLayer, hdr.Devmajor, hdr.Devminor)
		}
		typ = unix.S_IFCHR
		if hdr.Typeflag == tar.TypeBlock {
			typ = unix.S_IFBLK
		}
		dev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	}
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	err = unix.Mknodat(pfd, base, typ|0o600, int(dev))
	if err == unix.EEXIST {
		if _, _, err = a.clear(pfd, name, base, false); err == nil {
			err = unix.Mknodat(pfd, base, typ|0o600, int(dev))
		}
	}
	if err != nil {
		return classify(name, err)
	}
	// We just created it in a directory only we write: no race to a symlink.
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return a.times(pfd, base, hdr)
}

// whiteout turns ".wh.NAME" and ".wh..wh..opq" into their overlayfs form.
// As the OCI image spec says, a whiteout hides only lower layers: an entry
// of this same layer stays visible (a directory becomes opaque instead).
func (a *applier) whiteout(name, dir, base string) error {
	if base == opaqueMarker {
		if dir == "" {
			a.stats.OpaqueRoot = true
		}
		pfd, err := a.parent(dir)
		if err != nil {
			return err
		}
		a.stats.Whiteouts++
		return setOpaque(pfd)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return a.drop(name, "AUFS metadata")
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return fmt.Errorf("%w: whiteout of %q", ErrUnsafePath, target)
	}
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	a.stats.Whiteouts++
	var st unix.Stat_t
	err = unix.Fstatat(pfd, target, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT:
		if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("%w: creating a whiteout: %v", ErrUnsupported, err)
		}
		return nil
	case err != nil:
		return classify(path.Join(dir, target), err)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		fd, err := openDirBeneath(pfd, target)
		if err != nil {
			return classify(path.Join(dir, target), err)
		}
		defer unix.Close(fd)
		return setOpaque(fd)
	}
	return nil // a non-directory of this layer already hides the lower path
}

// xattrs applies the entry's user.* extended attributes. Other namespaces
// are dropped: trusted.* would let a layer forge overlayfs metadata,
// security.capability is a privilege like setuid, and system.* ACLs carry
// unshifted ids. Failures (filesystem without user xattrs) are ignored.
func (a *applier) xattrs(fd int, hdr *tar.Header) {
	const prefix = "SCHILY.xattr."
	n := 0
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, prefix+"user.") {
			continue
		}
		if n++; n > maxUserXattr {
			return
		}
		_ = unix.Fsetxattr(fd, k[len(prefix):], []byte(v), 0)
	}
}

func (a *applier) times(dirfd int, base string, hdr *tar.Header) error {
	ts := timespecs(hdr)
	if err := unix.UtimesNanoAt(dirfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimes: %w", err)
	}
	return nil
}

// finish sets directory times, in entry order so that the last entry for
// a directory wins.
func (a *applier) finish() error {
	for _, d := range a.dirTimes {
		fd := a.root
		if d.rel != "" {
			var err error
			if fd, err = openDirBeneath(a.root, d.rel); err != nil {
				continue // replaced by a later non-directory entry
			}
		}
		err := unix.UtimesNanoAt(fd, ".", d.ts[:], 0)
		if fd != a.root {
			unix.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("utimes %q: %w", truncate(d.rel), err)
		}
	}
	return nil
}

// timespecs returns atime and mtime, clamped to what every filesystem
// stores (pax headers can carry any value).
func timespecs(hdr *tar.Header) [2]unix.Timespec {
	m := hdr.ModTime
	at := hdr.AccessTime
	if at.IsZero() {
		at = m
	}
	return [2]unix.Timespec{clampTime(at), clampTime(m)}
}

var maxTime = time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

func clampTime(t time.Time) unix.Timespec {
	s := t.Unix()
	switch {
	case s < 0:
		return unix.Timespec{}
	case s > maxTime:
		return unix.Timespec{Sec: maxTime}
	}
	return unix.Timespec{Sec: s, Nsec: int64(t.Nanosecond())}
}

// countingReader counts and bounds the uncompressed stream. Its error is
// sticky, so the limit surfaces as ErrLimit whatever the tar reader makes
// of it.
type countingReader struct {
	r      io.Reader
	h      hash.Hash     // diffID; nil when not wanted
	budget *atomic.Int64 // bytes left for the whole image; nil: no image limit
	n      int64
	max    int64
	err    error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if rem := c.max - c.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	if c.n > c.max {
		c.err = fmt.Errorf("%w: more than %d uncompressed bytes", ErrLimit, c.max)
		return n, c.err
	}
	if c.budget != nil && c.budget.Add(-int64(n)) < 0 {
		c.err = fmt.Errorf("%w: the image's layers exceed their uncompressed size limit", ErrLimit)
		return n, c.err
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}
