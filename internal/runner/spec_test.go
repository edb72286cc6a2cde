package runner

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
toor:x:0:0:another root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
big:x:70000:70000::/:/bin/sh
`

const testGroup = `root:x:0:
app:x:1000:
extra:x:2000:app
`

// accountRootfs is a directory with only /etc/passwd and /etc/group, enough
// for Spec (it does not run anything).
func accountRootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(testPasswd), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte(testGroup), 0o644)
	return dir
}

func TestSpec(t *testing.T) {
	rootfs := accountRootfs(t)
	base := func() Options {
		return Options{
			Name:   "web",
			Rootfs: rootfs,
			Image: v1.ImageConfig{
				User:       "app",
				Entrypoint: []string{"/bin/server"},
				Cmd:        []string{"--port", "8080"},
				Env:        []string{"PATH=/app/bin", "MODE=prod"},
				WorkingDir: "srv",
			},
		}
	}
	tests := []struct {
		name   string
		mutate func(*Options)
		err    error
		check  func(t *testing.T, s *specs.Spec)
	}{
		{
			name: "defaults are strict",
			check: func(t *testing.T, s *specs.Spec) {
				p := s.Process
				if p.User.UID != 1000 || p.User.GID != 1000 || !slices.Equal(p.User.AdditionalGids, []uint32{2000}) {
					t.Errorf("user = %+v", p.User)
				}
				if !slices.Equal(p.Args, []string{"/bin/server", "--port", "8080"}) {
					t.Errorf("args = %q", p.Args)
				}
				if p.Cwd != "/srv" {
					t.Errorf("cwd = %q", p.Cwd)
				}
				wantEnv := []string{"PATH=/app/bin", "MODE=prod", "HOSTNAME=web", "HOME=/home/app"}
				if !slices.Equal(p.Env, wantEnv) {
					t.Errorf("env = %q, want %q", p.Env, wantEnv)
				}
				if !p.NoNewPrivileges {
					t.Error("noNewPrivileges is off")
				}
				c := p.Capabilities
				if c == nil {
					t.Fatal("capabilities nil: the runtime would keep its own set")
				}
				for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
					if len(set) != 0 {
						t.Errorf("capability set not empty: %v", set)
					}
				}
				if s.Root == nil || !s.Root.Readonly || s.Root.Path != rootfs {
					t.Errorf("root = %+v", s.Root)
				}
				if s.Hostname != "web" {
					t.Errorf("hostname = %q", s.Hostname)
				}
				l := s.Linux
				wantMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
				if !slices.Equal(l.UIDMappings, wantMap) || !slices.Equal(l.GIDMappings, wantMap) {
					t.Errorf("id maps = %v / %v", l.UIDMappings, l.GIDMappings)
				}
				var ns []specs.LinuxNamespaceType
				for _, n := range l.Namespaces {
					if n.Path != "" {
						t.Errorf("namespace %s joins %s", n.Type, n.Path)
					}
					ns = append(ns, n.Type)
				}
				for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.NetworkNamespace} {
					if !slices.Contains(ns, want) {
						t.Errorf("namespace %s missing", want)
					}
				}
				if l.Resources.Memory == nil || *l.Resources.Memory.Limit != DefaultMemory || *l.Resources.Memory.Swap != DefaultMemory {
					t.Errorf("memory = %+v", l.Resources.Memory)
				}
				if l.Resources.Pids == nil || l.Resources.Pids.Limit != DefaultPids {
					t.Errorf("pids = %+v", l.Resources.Pids)
				}
				if l.CgroupsPath != "/bulwark/web" {
					t.Errorf("cgroupsPath = %q", l.CgroupsPath)
				}
				if !slices.Equal(l.MaskedPaths, maskedPaths) || !slices.Equal(l.ReadonlyPaths, readonlyPaths) {
					t.Errorf("masked %v readonly %v", l.MaskedPaths, l.ReadonlyPaths)
				}
				if len(l.Resources.Devices) != 1 || l.Resources.Devices[0].Allow {
					t.Errorf("device cgroup = %+v", l.Resources.Devices)
				}
				tmp := mountAt(s, "/tmp")
				if tmp == nil || tmp.Type != "tmpfs" {
					t.Fatalf("/tmp mount = %+v", tmp)
				}
				for _, o := range []string{"noexec", "nosuid", "nodev", "mode=1777", "uid=1000", "gid=1000", "size=67108864"} {
					if !slices.Contains(tmp.Options, o) {
						t.Errorf("/tmp options %v lack %s", tmp.Options, o)
					}
				}
				if m := mountAt(s, "/sys"); m == nil || !slices.Contains(m.Options, "ro") {
					t.Errorf("/sys mount = %+v", m)
				}
			},
		},
		{
			name: "seccomp is Docker's profile for the native architecture only",
			check: func(t *testing.T, s *specs.Spec) {
				sc := s.Linux.Seccomp
				if sc == nil {
					t.Fatal("no seccomp")
				}
				if sc.DefaultAction != specs.ActErrno {
					t.Errorf("default action %s", sc.DefaultAction)
				}
				if len(sc.Architectures) != 1 || sc.Architectures[0] != nativeArch[runtime.GOARCH] {
					t.Errorf("architectures %v", sc.Architectures)
				}
				allowed := allowedSyscalls(sc)
				for _, name := range []string{"read", "write", "execve", "exit_group"} {
					if !allowed[name] {
						t.Errorf("%s not allowed", name)
					}
				}
				// Gated on CAP_SYS_ADMIN / CAP_SYS_MODULE / CAP_SYS_BOOT,
				// which the container does not have.
				for _, name := range []string{"mount", "umount2", "unshare", "setns", "init_module", "bpf", "kexec_load", "reboot"} {
					if allowed[name] {
						t.Errorf("%s allowed without the capability", name)
					}
				}
			},
		},
		{
			name:   "capability added through options unlocks its syscalls",
			mutate: func(o *Options) { o.Capabilities = []string{"CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"} },
			check: func(t *testing.T, s *specs.Spec) {
				want := []string{"CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"}
				c := s.Process.Capabilities
				for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
					if !slices.Equal(set, want) {
						t.Errorf("set %v, want %v", set, want)
					}
				}
				if !allowedSyscalls(s.Linux.Seccomp)["setns"] {
					t.Error("setns still blocked with CAP_SYS_ADMIN")
				}
			},
		},
		{
			name:   "args replace cmd, keep entrypoint",
			mutate: func(o *Options) { o.Args = []string{"--help"} },
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Equal(s.Process.Args, []string{"/bin/server", "--help"}) {
					t.Errorf("args = %q", s.Process.Args)
				}
			},
		},
		{
			name: "cmd only, extra env overrides, no PATH in image",
			mutate: func(o *Options) {
				o.Image.Entrypoint = nil
				o.Image.Env = []string{"MODE=prod", "HOME=/data"}
				o.Env = []string{"MODE=test", "NEW=1"}
				o.Image.WorkingDir = ""
				o.Hostname = "box"
			},
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Equal(s.Process.Args, []string{"--port", "8080"}) {
					t.Errorf("args = %q", s.Process.Args)
				}
				want := []string{"MODE=test", "HOME=/data", "NEW=1", "PATH=" + DefaultPath, "HOSTNAME=box"}
				if !slices.Equal(s.Process.Env, want) {
					t.Errorf("env = %q, want %q", s.Process.Env, want)
				}
				if s.Process.Cwd != "/" || s.Hostname != "box" {
					t.Errorf("cwd %q hostname %q", s.Process.Cwd, s.Hostname)
				}
			},
		},
		{
			name: "numeric user:group without passwd entry",
			mutate: func(o *Options) {
				o.Image.User = "4242:4343"
			},
			check: func(t *testing.T, s *specs.Spec) {
				u := s.Process.User
				if u.UID != 4242 || u.GID != 4343 || len(u.AdditionalGids) != 0 {
					t.Errorf("user = %+v", u)
				}
				if !slices.Contains(mountAt(s, "/tmp").Options, "uid=4242") {
					t.Errorf("/tmp not owned by the user: %v", mountAt(s, "/tmp").Options)
				}
			},
		},
		{
			name: "custom id map, limits, cgroup id",
			mutate: func(o *Options) {
				o.IDMap = IDMap{HostBase: 500000, Size: 3000}
				o.Memory, o.Pids, o.TmpSize = 64<<20, 32, 1<<20
				o.CgroupID = "web-1234"
			},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.UIDMappings[0] != (specs.LinuxIDMapping{HostID: 500000, Size: 3000}) {
					t.Errorf("uid map %+v", s.Linux.UIDMappings)
				}
				if *s.Linux.Resources.Memory.Limit != 64<<20 || s.Linux.Resources.Pids.Limit != 32 {
					t.Errorf("resources %+v", s.Linux.Resources)
				}
				if !slices.Contains(mountAt(s, "/tmp").Options, "size=1048576") {
					t.Errorf("tmp options %v", mountAt(s, "/tmp").Options)
				}
				if s.Linux.CgroupsPath != "/bulwark/web-1234" {
					t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name:   "unlimited memory and pids when asked",
			mutate: func(o *Options) { o.Memory, o.Pids = -1, -1 },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Resources.Memory != nil || s.Linux.Resources.Pids != nil {
					t.Errorf("resources %+v", s.Linux.Resources)
				}
			},
		},
		{
			name:   "joined network namespace drops sysfs",
			mutate: func(o *Options) { o.NetNSPath = "/run/netns/x" },
			check: func(t *testing.T, s *specs.Spec) {
				for _, n := range s.Linux.Namespaces {
					if n.Type == specs.NetworkNamespace && n.Path != "/run/netns/x" {
						t.Errorf("netns path %q", n.Path)
					}
				}
				if mountAt(s, "/sys") != nil || mountAt(s, "/sys/fs/cgroup") != nil {
					t.Error("sysfs mounted in a netns the user namespace does not own")
				}
			},
		},
		{name: "USER root refused", mutate: func(o *Options) { o.Image.User = "root" }, err: ErrRootUser},
		{name: "no USER refused", mutate: func(o *Options) { o.Image.User = "" }, err: ErrRootUser},
		{name: "uid 0 with a group refused", mutate: func(o *Options) { o.Image.User = "0:1000" }, err: ErrRootUser},
		{name: "name mapping to uid 0 refused", mutate: func(o *Options) { o.Image.User = "toor" }, err: ErrRootUser},
		{name: "override user to root refused", mutate: func(o *Options) { o.User = "0" }, err: ErrRootUser},
		{
			name:   "root allowed explicitly, still without capabilities",
			mutate: func(o *Options) { o.Image.User = "root"; o.AllowRoot = true },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.User.UID != 0 || len(s.Process.Capabilities.Bounding) != 0 {
					t.Errorf("user %+v caps %+v", s.Process.User, s.Process.Capabilities)
				}
			},
		},
		{name: "unknown user", mutate: func(o *Options) { o.Image.User = "nobody-here" }, err: ErrUser},
		{name: "uid outside the namespace", mutate: func(o *Options) { o.Image.User = "big" }, err: ErrUser},
		{name: "numeric uid outside a small namespace", mutate: func(o *Options) { o.Image.User = "1500"; o.IDMap = IDMap{HostBase: 1 << 20, Size: 1000} }, err: ErrUser},
		{name: "no command", mutate: func(o *Options) { o.Image.Entrypoint, o.Image.Cmd = nil, nil }, err: ErrOptions},
		{name: "bad name", mutate: func(o *Options) { o.Name = "../x" }, err: ErrOptions},
		{name: "relative rootfs", mutate: func(o *Options) { o.Rootfs = "rootfs" }, err: ErrOptions},
		{name: "host root in id map", mutate: func(o *Options) { o.IDMap = IDMap{HostBase: 0, Size: 10} }, err: ErrOptions},
		{name: "id map overflow", mutate: func(o *Options) { o.IDMap = IDMap{HostBase: 1 << 31, Size: 1 << 31} }, err: ErrOptions},
		{name: "unknown capability", mutate: func(o *Options) { o.Capabilities = []string{"NET_ADMIN"} }, err: ErrOptions},
		{name: "tiny memory", mutate: func(o *Options) { o.Memory = 1024 }, err: ErrOptions},
		{name: "bad env", mutate: func(o *Options) { o.Env = []string{"=x"} }, err: ErrOptions},
		{name: "relative netns path", mutate: func(o *Options) { o.NetNSPath = "netns" }, err: ErrOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			if tt.mutate != nil {
				tt.mutate(&o)
			}
			s, err := Spec(o)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func mountAt(s *specs.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

// allowedSyscalls are the syscalls the profile allows unconditionally.
func allowedSyscalls(sc *specs.LinuxSeccomp) map[string]bool {
	m := map[string]bool{}
	for _, s := range sc.Syscalls {
		if s.Action == specs.ActAllow && len(s.Args) == 0 {
			for _, n := range s.Names {
				m[n] = true
			}
		}
	}
	return m
}

func TestUserIsRoot(t *testing.T) {
	for spec, want := range map[string]bool{
		"": true, "root": true, "0": true, "00": true, "0:0": true, "root:app": true,
		"app": false, "1000": false, "1000:0": false, "rooty": false, "10": false,
	} {
		if got := UserIsRoot(spec); got != want {
			t.Errorf("UserIsRoot(%q) = %v, want %v", spec, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"web": true, "web-1.2_3": true, "A": true, strings.Repeat("a", 63): true,
		"": false, "-x": false, ".x": false, "a/b": false, "..": false, strings.Repeat("a", 64): false, "a b": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v", name, got)
		}
	}
}

// FuzzValidName: the hand-written check accepts exactly what the
// documented regular expression does.
func FuzzValidName(f *testing.F) {
	re := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
	for _, s := range []string{"web", "web-1.2_3", "", "-x", "a/b", "é", "a\n", strings.Repeat("a", 63), strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := ValidName(name), re.MatchString(name); got != want {
			t.Errorf("ValidName(%q) = %v, the expression says %v", name, got, want)
		}
	})
}
