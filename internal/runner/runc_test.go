package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/bulwark-dev/bulwark/internal/runner/unpack"
)

// These tests run real containers with the machine's runc, as root, from
// a rootfs made of the static busybox. They need runc and busybox-static
// (scripts/test.sh installs both); a missing tool fails the test.

var testIDs = IDMap{HostBase: DefaultIDMapHostBase, Size: DefaultIDMapSize}

type testEnv struct {
	m      *Manager
	rootfs string // the image's single layer
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the runner tests run containers and must run as root")
	}
	runc := requireRunc(t)
	if err := unpack.CheckOverlay(); err != nil {
		t.Fatal(err)
	}
	data := traversableTempDir(t)
	store, err := OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{Store: store, Runtime: &Runtime{Path: runc, Root: store.RuntimeRoot()}}
	t.Cleanup(func() {
		cs, _ := store.List()
		for _, c := range cs {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := m.Stop(ctx, c.Name, time.Second); err != nil {
				t.Errorf("cleanup %s: %v", c.Name, err)
			}
			cancel()
		}
	})
	return &testEnv{m: m, rootfs: busyboxRootfs(t, testIDs)}
}

// traversableTempDir is a temp dir whose parents the container's mapped
// root can traverse (the testing package makes them 0700).
func traversableTempDir(t testing.TB) string {
	d := t.TempDir()
	for p := d; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// busyboxRootfs builds an image layer by hand: the static busybox with a
// link per applet, an /etc/passwd with root and app (1000), all owned by
// the mapped range as the unpacker would leave it.
func busyboxRootfs(t testing.TB, ids IDMap) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox is required (apt-get install busybox-static)")
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	if fi, err := os.Stat(bb); err != nil || fi.Size() < 500_000 {
		t.Fatalf("%s does not look like the static busybox", bb)
	}
	dir := filepath.Join(t.TempDir(), "layer")
	for _, d := range []string{"", "bin", "etc", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" && !strings.ContainsRune(applet, '/') {
			os.Symlink("busybox", filepath.Join(dir, "bin", applet))
		}
	}
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\napp:x:1000:\n"), 0o644)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		id := int(ids.HostBase)
		if strings.HasPrefix(p, filepath.Join(dir, "home/app")) {
			id += 1000
		}
		return os.Lchown(p, id, id)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

var nameClean = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

func (e *testEnv) request(t testing.TB, script string) RunRequest {
	name := nameClean.ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	name = strings.TrimLeft(name, "-.")
	return RunRequest{
		Options: Options{
			Name:  name,
			Image: v1.ImageConfig{User: "app", Cmd: []string{"/bin/sh", "-c", script}},
		},
		Rootfs:      &unpack.Rootfs{Lowerdirs: []string{e.rootfs}, NoSuid: true},
		Image:       "test/busybox:latest",
		ImageDigest: "sha256:" + strings.Repeat("0", 64),
	}
}

// run runs req attached and returns the exit code and the output.
func (e *testEnv) run(t testing.TB, req RunRequest) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	req.IO = IO{Stdout: &stdout, Stderr: &stderr}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, err := e.m.Run(ctx, req)
	if err != nil {
		t.Fatalf("run: %v\nstdout: %s\nstderr: %s", err, &stdout, &stderr)
	}
	return code, stdout.String(), stderr.String()
}

// keyValues parses "key=value" lines.
func keyValues(out string) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// TestHardenedContainer checks the sandbox from inside one container.
func TestHardenedContainer(t *testing.T) {
	e := newTestEnv(t)
	script := `
echo uid=$(id -u)
echo gid=$(id -g)
echo uidmap=$(cat /proc/self/uid_map)
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr -d ' \t' | sed 's/:/=/'
touch /written 2>/dev/null; echo rootwrite=$?
touch /bin/written 2>/dev/null; echo binwrite=$?
echo hello > /tmp/f && echo tmpwrite=0
echo tmpmode=$(stat -c %a /tmp)
cp /bin/busybox /tmp/bb && chmod 755 /tmp/bb && /tmp/bb true 2>/dev/null; echo tmpexec=$?
timeout 1 nc -l -p 80 2>/dev/null; echo bind80=$?
timeout 1 nc -l -p 8080 2>/dev/null; echo bind8080=$?
unshare -U true 2>/dev/null; echo unshare=$?
echo hostname=$(hostname)
echo keys=$(stat -c %t:%T /proc/keys)
echo timerlist=$(stat -c %t:%T /proc/timer_list)
echo acpi=$(stat -f -c %T /proc/acpi)
grep -q ' /proc/sys ro,' /proc/self/mountinfo; echo procsysro=$?
echo netdevs=$(ls /sys/class/net | tr '\n' ,)
echo done=1
`
	code, out, stderr := e.run(t, e.request(t, script))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("inside:\n%s", out)
	kv := keyValues(out)
	want := map[string]string{
		"uid": "1000", "gid": "1000",
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2",
		"tmpwrite": "0", "tmpmode": "1777",
		"bind8080":  "143", // nc listened until timeout's SIGTERM
		"keys":      "1:3", // masked with /dev/null
		"timerlist": "1:3",
		"acpi":      "tmpfs", // a masked directory: an empty read-only tmpfs
		"procsysro": "0",
		"netdevs":   "lo,",
		"done":      "1",
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
	// Failures: the exact code differs by applet, success is 0.
	for _, k := range []string{"rootwrite", "binwrite", "tmpexec", "bind80", "unshare"} {
		if kv[k] == "" || kv[k] == "0" || kv[k] == "143" {
			t.Errorf("%s = %q: the operation was not refused", k, kv[k])
		}
	}
	if kv["hostname"] != e.request(t, "").Options.Name {
		t.Errorf("hostname = %q", kv["hostname"])
	}
	// uid 1000 inside is host uid 101000: not root, inside the range.
	f := strings.Fields(kv["uidmap"])
	if len(f) != 3 || f[0] != "0" || f[1] != "100000" || f[2] != "65536" {
		t.Errorf("uid_map = %q", kv["uidmap"])
	}
}

func TestExitCodePropagates(t *testing.T) {
	e := newTestEnv(t)
	for _, tt := range []struct {
		script string
		code   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"echo out; echo err >&2; exit 3", 3},
		// pid 1 cannot SIGKILL itself; a child can, and the shell reports it.
		{"sh -c 'kill -9 $$'; exit $?", 137},
	} {
		req := e.request(t, tt.script)
		code, out, errOut := e.run(t, req)
		if code != tt.code {
			t.Errorf("%q: exit %d, want %d (%s %s)", tt.script, code, tt.code, out, errOut)
		}
		if tt.code == 3 && (out != "out\n" || !strings.Contains(errOut, "err")) {
			t.Errorf("stdio: stdout %q stderr %q", out, errOut)
		}
	}
	// Nothing is left behind by attached runs.
	if cs, _ := e.m.Store.List(); len(cs) != 0 {
		t.Errorf("containers left: %d", len(cs))
	}
}

// syncBuffer is a bytes.Buffer safe to read while the container writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSignalsForwarded(t *testing.T) {
	e := newTestEnv(t)
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 42}, {syscall.SIGINT, 43}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			req := e.request(t, `trap "exit 42" TERM; trap "exit 43" INT; echo ready; while :; do sleep 1 & wait; done`)
			var out syncBuffer
			sigs := make(chan os.Signal, 1)
			req.IO = IO{Stdout: &out, Stderr: io.Discard}
			req.Signals = sigs
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				code, err := e.m.Run(context.Background(), req)
				done <- result{code, err}
			}()
			waitFor(t, "the container to start", time.Minute, func() bool { return strings.Contains(out.String(), "ready") })
			sigs <- tt.sig
			select {
			case r := <-done:
				if r.err != nil || r.code != tt.code {
					t.Fatalf("exit %d, %v; want %d", r.code, r.err, tt.code)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the signal did not stop the container")
			}
		})
	}

	// A signal sent before the container exists is delivered once it does.
	req := e.request(t, `trap "exit 44" TERM; while :; do sleep 1 & wait; done`)
	req.Options.Name = "early-signal"
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	req.Signals = sigs
	req.IO = IO{Stdout: io.Discard, Stderr: io.Discard}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, err := e.m.Run(ctx, req)
	// The signal may land before the trap is set (default action: for
	// pid 1 SIGTERM is then ignored, and the ctx deadline kills it) or
	// after; either way it must not wedge or kill bulwark.
	if err != nil {
		t.Fatalf("early signal: %v", err)
	}
	t.Logf("early signal: exit %d", code)
}

func TestContextCancelKills(t *testing.T) {
	e := newTestEnv(t)
	req := e.request(t, `echo ready; sleep 1000`)
	var out syncBuffer
	req.IO = IO{Stdout: &out, Stderr: io.Discard}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _ := e.m.Run(ctx, req)
		done <- code
	}()
	waitFor(t, "ready", time.Minute, func() bool { return strings.Contains(out.String(), "ready") })
	cancel()
	select {
	case code := <-done:
		if code != 137 {
			t.Errorf("exit %d, want 137", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancel did not kill the container")
	}
}

func TestPidsLimit(t *testing.T) {
	e := newTestEnv(t)
	// At the limit even $(...) cannot fork, so everything after the loop
	// uses shell builtins only. ash gives up a loop whose fork fails, hence
	// the subshell.
	req := e.request(t, `
( i=0; while [ $i -lt 64 ]; do sleep 30 & i=$((i+1)); echo $i > /tmp/n; done ) 2>/tmp/err
read n < /tmp/n; echo started=$n
read -r err < /tmp/err; echo err=$err
echo ok=1`)
	req.Options.Pids = 16
	code, out, errOut := e.run(t, req)
	kv := keyValues(out)
	if code != 0 || kv["ok"] != "1" {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	started, _ := strconv.Atoi(kv["started"])
	t.Logf("pids limit 16: %d sleeps started, then %q", started, kv["err"])
	// 16 pids: the shell, the subshell and at most 14 sleeps.
	if started > 14 || started < 8 || !strings.Contains(kv["err"], "fork") {
		t.Errorf("pids limit did not bite: %d sleeps started, error %q", started, kv["err"])
	}
}

func TestMemoryLimit(t *testing.T) {
	e := newTestEnv(t)
	// dd's buffer is touched on every read, so it is charged in full.
	req := e.request(t, `
dd if=/dev/zero of=/dev/null bs=4M count=4 2>/dev/null && echo small=ok
dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null; echo big=$?`)
	req.Options.Memory = 48 << 20
	code, out, errOut := e.run(t, req)
	kv := keyValues(out)
	if kv["small"] != "ok" {
		t.Fatalf("control allocation failed: exit %d: %s %s", code, out, errOut)
	}
	t.Logf("memory limit 48 MiB: 96 MiB dd: shell saw %q, container exit %d", kv["big"], code)
	// Either dd is OOM-killed (the shell reports 137) or the kill takes
	// the whole container (runc reports 137).
	if kv["big"] != "137" && code != 137 {
		t.Errorf("memory limit did not bite: exit %d, %q", code, out)
	}
}

func TestRootUserRefused(t *testing.T) {
	e := newTestEnv(t)
	for _, user := range []string{"", "root", "0", "0:1000"} {
		req := e.request(t, "id -u")
		req.Options.Image.User = user
		_, err := e.m.Run(context.Background(), req)
		if !errors.Is(err, ErrRootUser) {
			t.Errorf("USER %q: err = %v, want ErrRootUser", user, err)
		}
	}
	if cs, _ := e.m.Store.List(); len(cs) != 0 {
		t.Errorf("a refused run left %d containers", len(cs))
	}
	ents, _ := os.ReadDir(filepath.Join(e.m.Store.Dir(), "containers"))
	if len(ents) != 0 {
		t.Errorf("a refused run left %d directories", len(ents))
	}

	// Allowed: root inside, still no capabilities, an unprivileged host uid.
	req := e.request(t, `echo uid=$(id -u); grep CapEff /proc/self/status | tr -d ' \t' | sed 's/:/=/'; touch /x 2>/dev/null; echo rootwrite=$?`)
	req.Options.Image.User = "root"
	req.Options.AllowRoot = true
	code, out, errOut := e.run(t, req)
	kv := keyValues(out)
	if code != 0 || kv["uid"] != "0" || kv["CapEff"] != "0000000000000000" || kv["rootwrite"] == "0" {
		t.Errorf("allowed root: exit %d %q %q", code, out, errOut)
	}
}

func TestDetachedPsLogsStop(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	req := e.request(t, `echo hello; echo oops >&2; trap "echo bye; exit 0" TERM; while :; do sleep 1 & wait; done`)
	req.Detach = true
	if code, err := e.m.Run(ctx, req); err != nil || code != 0 {
		t.Fatalf("detached run: %d, %v", code, err)
	}
	name := req.Options.Name
	sts, err := e.m.List(ctx)
	if err != nil || len(sts) != 1 {
		t.Fatalf("ps: %v %+v", err, sts)
	}
	st := sts[0]
	if st.Name != name || st.Status != "running" || st.Pid <= 0 || st.ImageDigest != req.ImageDigest || st.Created.IsZero() {
		t.Errorf("ps: %+v", st)
	}
	// From the host: the container's process runs as an unprivileged uid
	// inside the mapped range.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)\s+(\d+)`).FindSubmatch(status)
	if m == nil || string(m[1]) != "101000" || string(m[2]) != "101000" {
		t.Errorf("host uid of the container process: %q", m)
	}
	// A second container by the same name is refused.
	if _, err := e.m.Run(ctx, req); !errors.Is(err, ErrNameInUse) {
		t.Errorf("duplicate name: %v", err)
	}

	waitFor(t, "the log", 30*time.Second, func() bool {
		rc, err := e.m.Logs(name)
		if err != nil {
			return false
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return strings.Contains(string(b), "hello\n") && strings.Contains(string(b), "oops\n")
	})
	start := time.Now()
	if err := e.m.Stop(ctx, name, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stop of a container that handles SIGTERM took %v", d)
	}
	if _, err := e.m.Store.Get(name); !errors.Is(err, ErrNoContainer) {
		t.Errorf("after stop: %v", err)
	}
	if _, err := e.m.Runtime.State(ctx, name); !errors.Is(err, ErrNotExist) {
		t.Errorf("runtime still knows it: %v", err)
	}

	// pid 1 ignores SIGTERM without a handler: stop must escalate.
	req = e.request(t, `sleep 1000`)
	req.Options.Name = "stubborn"
	req.Detach = true
	if _, err := e.m.Run(ctx, req); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := e.m.Stop(ctx, "stubborn", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stop with SIGKILL escalation took %v", d)
	}
	if sts, _ := e.m.List(ctx); len(sts) != 0 {
		t.Errorf("left: %+v", sts)
	}

	// A detached container that exits by itself shows as stopped and keeps
	// its log until stop.
	req = e.request(t, `echo short-lived`)
	req.Options.Name = "short"
	req.Detach = true
	if _, err := e.m.Run(ctx, req); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container to exit", 30*time.Second, func() bool {
		sts, _ := e.m.List(ctx)
		return len(sts) == 1 && sts[0].Status == "stopped"
	})
	rc, err := e.m.Logs("short")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "short-lived\n" {
		t.Errorf("log %q", b)
	}
	if err := e.m.Stop(ctx, "short", time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestNetworkSeam: with a NetworkSetup, the container joins the namespace
// it was given (owned by the host's user namespace), and /sys is left
// unmounted since sysfs cannot be mounted from the container's.
func TestNetworkSeam(t *testing.T) {
	e := newTestEnv(t)
	var got string
	var ino uint64
	e.m.Network = func(ctx context.Context, netns string) error {
		got = netns
		var st unix.Stat_t
		if err := unix.Stat(netns, &st); err != nil {
			return err
		}
		ino = st.Ino
		var fs unix.Statfs_t
		if err := unix.Statfs(netns, &fs); err != nil {
			return err
		}
		if fs.Type != unix.NSFS_MAGIC {
			return fmt.Errorf("%s is not a namespace file", netns)
		}
		return nil
	}
	code, out, errOut := e.run(t, e.request(t, `echo netns=$(readlink /proc/self/ns/net); echo sys=$(ls /sys | wc -l)`))
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	kv := keyValues(out)
	if got == "" || kv["netns"] != fmt.Sprintf("net:[%d]", ino) {
		t.Errorf("container netns %q, prepared %s inode %d", kv["netns"], got, ino)
	}
	if kv["sys"] != "0" {
		t.Errorf("/sys has %s entries", kv["sys"])
	}
	if _, err := os.Stat(got); err == nil {
		t.Errorf("netns %s left behind", got)
	}

	// A failing setup refuses the run and cleans up.
	e.m.Network = func(context.Context, string) error { return errors.New("no veth today") }
	_, err := e.m.Run(context.Background(), e.request(t, "true"))
	if err == nil || !strings.Contains(err.Error(), "no veth today") {
		t.Errorf("err = %v", err)
	}
	if cs, _ := e.m.Store.List(); len(cs) != 0 {
		t.Errorf("left %d containers", len(cs))
	}
}

// TestStartFailure: a runtime failure is ErrStart, not an exit code.
func TestStartFailure(t *testing.T) {
	e := newTestEnv(t)
	req := e.request(t, "")
	req.Options.Image.Cmd = []string{"/no/such/binary"}
	var stderr bytes.Buffer
	req.IO = IO{Stdout: io.Discard, Stderr: &stderr}
	code, err := e.m.Run(context.Background(), req)
	// runc 1.1 reports a missing binary before the pid file exists; newer
	// runtimes may report it as the process's exit (127 or 1).
	if err == nil && code == 0 {
		t.Fatalf("a missing binary ran: %s", &stderr)
	}
	t.Logf("missing binary: code %d err %v stderr %q", code, err, stderr.String())
	if cs, _ := e.m.Store.List(); len(cs) != 0 {
		t.Errorf("left %d containers", len(cs))
	}
}
