package runner

import (
	"errors"
	"fmt"
	"math"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Defaults for Options fields left zero. They are documented in
// docs/runner.md; change both together.
const (
	// DefaultIDMapHostBase and DefaultIDMapSize map container ids
	// 0..65535 onto host ids 100000..165535, the range useradd reserves
	// for the first entry of /etc/subuid. Nothing on the host should own
	// files in it.
	DefaultIDMapHostBase uint32 = 100000
	DefaultIDMapSize     uint32 = 65536
	// DefaultMemory is the cgroup memory limit (bytes); swap is limited to
	// the same value, i.e. no swap.
	DefaultMemory int64 = 256 << 20
	// DefaultPids is the cgroup pids limit: enough for a real service,
	// small enough to stop a fork bomb.
	DefaultPids int64 = 256
	// DefaultTmpSize is the size of the /tmp tmpfs (bytes); it counts
	// against the memory limit.
	DefaultTmpSize int64 = 64 << 20
	// DefaultPath is PATH when the image sets none (Docker's value).
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// CgroupParent groups all bulwark containers' cgroups.
	CgroupParent = "/bulwark"
)

// Docker's default masked and read-only paths (moby's oci defaults, as of
// Docker 28). Masked paths are hidden (a file under /dev/null, a directory
// under an empty read-only tmpfs); read-only paths are remounted ro.
var (
	maskedPaths = []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/sys/devices/virtual/powercap",
		"/sys/firmware",
	}
	readonlyPaths = []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
)

// ErrOptions is returned for invalid Options; the message names the field.
var ErrOptions = errors.New("invalid runner options")

// IDMap is the user-namespace mapping: container ids [0, Size) appear on
// the host as [HostBase, HostBase+Size). The unpacker shifts file
// ownership into the same range.
type IDMap struct {
	HostBase uint32
	Size     uint32
}

// Options say what to run and how much to relax the defaults. The zero
// value of every relaxing field is the strict choice.
type Options struct {
	// Name is the container's name; it is the hostname unless Hostname is
	// set, and names the cgroup.
	Name     string
	Hostname string
	// CgroupID makes the cgroup path unique across data directories
	// (cgroups are host-global, names are per data directory). Empty
	// means Name.
	CgroupID string
	// Rootfs is the absolute path of the unpacked image root, owned by
	// the mapped id range.
	Rootfs string
	// Image is the image config's runtime part: Entrypoint, Cmd, Env,
	// WorkingDir and User are used.
	Image v1.ImageConfig
	// Args replace the image's Cmd (the entrypoint stays), like the
	// arguments after the image in docker run.
	Args []string
	// Env entries (KEY=VALUE) are added after the image's, overriding it.
	Env []string
	// User overrides the image's USER when not empty.
	User string
	// AllowRoot permits uid 0 inside the container. Even then root has no
	// capabilities unless Capabilities adds some, and maps to an
	// unprivileged host uid.
	AllowRoot bool
	// IDMap defaults to DefaultIDMapHostBase/DefaultIDMapSize.
	IDMap IDMap
	// Capabilities are added to an otherwise empty set (e.g.
	// "CAP_NET_BIND_SERVICE"); the policy sees them before this is called.
	Capabilities []string
	// Memory and Pids are cgroup limits; 0 means the default, -1 means
	// unlimited (only for callers whose policy allows it).
	Memory int64
	Pids   int64
	// TmpSize is the /tmp tmpfs size in bytes; 0 means DefaultTmpSize.
	TmpSize int64
	// NetNSPath joins an existing network namespace (made and configured
	// by the network step, see Network) instead of a fresh loopback-only
	// one. Because that namespace belongs to the host's user namespace,
	// sysfs cannot be mounted from inside the container's; /sys is then
	// left out.
	NetNSPath string
	// Terminal allocates a pseudo-terminal for the process.
	Terminal bool
}

// ValidName reports whether name is usable as a container name: it becomes
// a directory name, a runc container id and part of a cgroup path. It is
// ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$, written out: that regular expression,
// compiled at package initialisation, cost every bulwark command 0.7 ms.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func (o Options) withDefaults() Options {
	if o.IDMap == (IDMap{}) {
		o.IDMap = IDMap{HostBase: DefaultIDMapHostBase, Size: DefaultIDMapSize}
	}
	if o.Memory == 0 {
		o.Memory = DefaultMemory
	}
	if o.Pids == 0 {
		o.Pids = DefaultPids
	}
	if o.TmpSize == 0 {
		o.TmpSize = DefaultTmpSize
	}
	if o.Hostname == "" {
		o.Hostname = o.Name
	}
	if o.CgroupID == "" {
		o.CgroupID = o.Name
	}
	return o
}

func (o Options) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, a...))
	}
	switch {
	case !ValidName(o.Name):
		return bad("name %q: use 1-63 letters, digits, '_', '.', '-', starting with a letter or digit", o.Name)
	case !ValidName(o.Hostname):
		return bad("hostname %q", o.Hostname)
	case !ValidName(o.CgroupID):
		return bad("cgroup id %q", o.CgroupID)
	case !filepath.IsAbs(o.Rootfs):
		return bad("rootfs %q is not an absolute path", o.Rootfs)
	case o.IDMap.HostBase == 0:
		// Mapping container root onto host root would undo the user
		// namespace's whole point.
		return bad("user namespace host base must not be 0")
	case o.IDMap.Size == 0:
		return bad("user namespace size must not be 0")
	case uint64(o.IDMap.HostBase)+uint64(o.IDMap.Size) > math.MaxUint32:
		return bad("user namespace range %d+%d overflows", o.IDMap.HostBase, o.IDMap.Size)
	case o.Memory < -1 || (o.Memory > 0 && o.Memory < 4<<20):
		return bad("memory limit %d: at least 4 MiB, or -1 for none", o.Memory)
	case o.Pids < -1:
		return bad("pids limit %d", o.Pids)
	case o.TmpSize < 0:
		return bad("tmp size %d", o.TmpSize)
	case o.NetNSPath != "" && !filepath.IsAbs(o.NetNSPath):
		return bad("network namespace path %q is not absolute", o.NetNSPath)
	}
	for _, c := range o.Capabilities {
		if !slices.Contains(knownCaps, c) {
			return bad("unknown capability %q (use the CAP_ name, e.g. CAP_NET_BIND_SERVICE)", c)
		}
	}
	for _, e := range slices.Concat(o.Image.Env, o.Env) {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" || strings.ContainsRune(e, 0) {
			return bad("environment entry %q is not KEY=VALUE", e)
		}
	}
	return nil
}

// Spec builds the hardened runtime-spec configuration for o. It reads the
// rootfs's /etc/passwd and /etc/group (see ResolveUser) and returns
// ErrRootUser when the process would run as uid 0 without AllowRoot.
func Spec(o Options) (*specs.Spec, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	userSpec := o.Image.User
	if o.User != "" {
		userSpec = o.User
	}
	u, err := ResolveUser(o.Rootfs, userSpec, o.IDMap.Size)
	if err != nil {
		return nil, err
	}
	if u.UID == 0 && !o.AllowRoot {
		shown := userSpec
		if shown == "" {
			shown = "(none: the image sets no USER)"
		}
		return nil, fmt.Errorf("%w: USER %s; use an image with a non-root USER or allow root explicitly", ErrRootUser, shown)
	}
	args := slices.Concat(o.Image.Entrypoint, o.Image.Cmd)
	if len(o.Args) > 0 {
		args = slices.Concat(o.Image.Entrypoint, o.Args)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: the image has no entrypoint or command and none was given", ErrOptions)
	}
	caps := slices.Clone(o.Capabilities)
	slices.Sort(caps)
	caps = slices.Compact(caps)
	if caps == nil {
		caps = []string{}
	}

	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: o.Hostname,
		Root:     &specs.Root{Path: o.Rootfs, Readonly: true},
		Process: &specs.Process{
			Terminal: o.Terminal,
			User: specs.User{
				UID:            u.UID,
				GID:            u.GID,
				AdditionalGids: u.AdditionalGIDs,
			},
			Args: args,
			Env:  buildEnv(o.Image.Env, o.Env, o.Hostname, u.Home),
			Cwd:  workdir(o.Image.WorkingDir),
			// A non-nil, empty set: runc drops everything. A nil
			// Capabilities would leave runc's own set in place.
			// Additions go into every set so they survive execve for a
			// non-root user too (through the ambient set).
			Capabilities: &specs.LinuxCapabilities{
				Bounding:    caps,
				Effective:   caps,
				Permitted:   caps,
				Inheritable: caps,
				Ambient:     caps,
			},
			NoNewPrivileges: true,
		},
		Mounts: mounts(o, u),
		Linux: &specs.Linux{
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: o.IDMap.HostBase, Size: o.IDMap.Size}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: o.IDMap.HostBase, Size: o.IDMap.Size}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.UserNamespace},
				{Type: specs.CgroupNamespace},
				{Type: specs.NetworkNamespace, Path: o.NetNSPath},
			},
			CgroupsPath: CgroupParent + "/" + o.CgroupID,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			MaskedPaths:       slices.Clone(maskedPaths),
			ReadonlyPaths:     slices.Clone(readonlyPaths),
			RootfsPropagation: "rprivate",
		},
	}
	if o.Memory > 0 {
		limit, swap := o.Memory, o.Memory
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	}
	if o.Pids > 0 {
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: o.Pids}
	}
	if s.Linux.Seccomp, err = defaultSeccomp(s); err != nil {
		return nil, err
	}
	return s, nil
}

// mounts are Docker's default mounts, tightened: /tmp is added as a
// noexec tmpfs, /sys is read-only (and left out when the network
// namespace is not the container's own, where sysfs cannot be mounted).
func mounts(o Options, u User) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
	}
	if o.NetNSPath == "" {
		ms = append(ms,
			specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		)
	}
	// runc 1.1.x ignores mode= on a tmpfs whose mount point already exists
	// in the rootfs: it chmods the new tmpfs to the mount point's mode
	// (0755 in many images), so /tmp would not be writable by a non-root
	// user. Owning the tmpfs by the process's uid/gid keeps it writable
	// for the container's user whatever the runtime does with mode=; the
	// mode is still passed for runtimes that honour it (runc >= 1.2,
	// crun). No hook, no write to the shared rootfs.
	ms = append(ms, specs.Mount{
		Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"nosuid", "nodev", "noexec", "mode=1777",
			"size=" + strconv.FormatInt(o.TmpSize, 10),
			"uid=" + strconv.FormatUint(uint64(u.UID), 10),
			"gid=" + strconv.FormatUint(uint64(u.GID), 10)},
	})
	return ms
}

// buildEnv merges the image's environment with the caller's (later keys
// win, order of first appearance kept) and fills PATH, HOSTNAME and HOME
// the way Docker does when absent.
func buildEnv(image, extra []string, hostname, home string) []string {
	var keys []string
	vals := map[string]string{}
	set := func(kv string) {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, kv := range image {
		set(kv)
	}
	for _, kv := range extra {
		set(kv)
	}
	for _, d := range [][2]string{{"PATH", DefaultPath}, {"HOSTNAME", hostname}, {"HOME", home}} {
		if _, ok := vals[d[0]]; !ok {
			keys = append(keys, d[0])
			vals[d[0]] = d[1]
		}
	}
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		env = append(env, k+"="+vals[k])
	}
	return env
}

// workdir makes the image's WorkingDir absolute and clean; Docker treats a
// relative one as relative to /.
func workdir(wd string) string {
	if wd == "" {
		return "/"
	}
	return path.Clean("/" + wd)
}

// knownCaps are the capability names runc accepts (Linux 6.x).
var knownCaps = []string{
	"CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_AUDIT_WRITE", "CAP_BLOCK_SUSPEND",
	"CAP_BPF", "CAP_CHECKPOINT_RESTORE", "CAP_CHOWN", "CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_KILL", "CAP_LEASE", "CAP_LINUX_IMMUTABLE",
	"CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_MKNOD", "CAP_NET_ADMIN",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_RAW", "CAP_PERFMON",
	"CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYSLOG",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT", "CAP_SYS_MODULE",
	"CAP_SYS_NICE", "CAP_SYS_PACCT", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_WAKE_ALARM",
}
