package runner

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/moby/sys/user"
)

// maxAccountFile bounds how much of the image's /etc/passwd or /etc/group
// is read: both come from the image, so they are untrusted input.
const maxAccountFile = 1 << 20

// ErrRootUser is returned when the image (or the caller) asks for uid 0 and
// root was not allowed. Callers branch on it to print a policy-style refusal.
var ErrRootUser = errors.New("container would run as root (uid 0)")

// ErrUser is returned when the USER spec cannot be resolved against the
// image's account files, or resolves to ids outside the user namespace.
var ErrUser = errors.New("cannot resolve the image's user")

// User is a resolved USER spec: ids as seen inside the container.
type User struct {
	UID, GID       uint32
	AdditionalGIDs []uint32
	Home           string
}

// ResolveUser resolves an image USER spec ("name", "uid", "name:group",
// "uid:gid", …, the same forms as Docker) against the rootfs's /etc/passwd
// and /etc/group. The files are opened through an os.Root on rootfs, so a
// symlinked /etc/passwd (or /etc) pointing outside the rootfs is refused
// instead of followed; only regular files are read, at most 1 MiB each.
// Missing files are fine for numeric specs, as in Docker. An empty spec
// means root. Every resolved id must lie in [0, idRange) so that it is
// mapped by the user namespace.
func ResolveUser(rootfs, spec string, idRange uint32) (User, error) {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return User{}, fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	passwd, err := readAccountFile(root, "etc/passwd")
	if err != nil {
		return User{}, err
	}
	group, err := readAccountFile(root, "etc/group")
	if err != nil {
		return User{}, err
	}
	return resolveUser(spec, passwd, group, idRange)
}

// resolveUser is ResolveUser on already-read file contents; a nil slice
// means the file does not exist.
func resolveUser(spec string, passwd, group []byte, idRange uint32) (User, error) {
	if strings.ContainsAny(spec, "\x00\n") {
		return User{}, fmt.Errorf("%w: invalid USER %q", ErrUser, spec)
	}
	var pr, gr io.Reader
	if passwd != nil {
		pr = strings.NewReader(string(passwd))
	}
	if group != nil {
		gr = strings.NewReader(string(group))
	}
	eu, err := user.GetExecUser(spec, &user.ExecUser{Home: "/"}, pr, gr)
	if err != nil {
		return User{}, fmt.Errorf("%w %q: %w", ErrUser, spec, err)
	}
	u := User{Home: eu.Home}
	if u.Home == "" || !strings.HasPrefix(u.Home, "/") {
		u.Home = "/"
	}
	check := func(kind string, id int) (uint32, error) {
		if id < 0 || uint64(id) >= uint64(idRange) {
			return 0, fmt.Errorf("%w %q: %s %d is outside the user namespace (0..%d)", ErrUser, spec, kind, id, int64(idRange)-1)
		}
		return uint32(id), nil
	}
	if u.UID, err = check("uid", eu.Uid); err != nil {
		return User{}, err
	}
	if u.GID, err = check("gid", eu.Gid); err != nil {
		return User{}, err
	}
	for _, g := range eu.Sgids {
		id, err := check("gid", g)
		if err != nil {
			return User{}, err
		}
		u.AdditionalGIDs = append(u.AdditionalGIDs, id)
	}
	return u, nil
}

// readAccountFile reads name inside root: nil if it does not exist, an
// error if it is not a regular file (a FIFO would block the open, a device
// could be anything) or is too large.
func readAccountFile(root *os.Root, name string) ([]byte, error) {
	// O_NONBLOCK so that a FIFO planted at /etc/passwd cannot hang the open;
	// the type check below then refuses it.
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: open /%s: %w", ErrUser, name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: stat /%s: %w", ErrUser, name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: /%s is not a regular file", ErrUser, name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxAccountFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read /%s: %w", ErrUser, name, err)
	}
	if len(b) > maxAccountFile {
		return nil, fmt.Errorf("%w: /%s is larger than %d bytes", ErrUser, name, maxAccountFile)
	}
	return b, nil
}

// UserIsRoot reports whether an image USER spec names uid 0 without
// needing the image's /etc/passwd: "", "0", "root" and those with any
// group. It lets a caller refuse a root image before unpacking it; a name
// that maps to uid 0 through /etc/passwd is still caught by Spec.
func UserIsRoot(spec string) bool {
	u, _, _ := strings.Cut(spec, ":")
	return u == "" || u == "root" || strings.TrimLeft(u, "0") == ""
}
