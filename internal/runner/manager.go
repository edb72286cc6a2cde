package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-dev/bulwark/internal/runner/unpack"
)

// NetworkSetup configures a container's network namespace before the
// container starts: the seam for published ports and egress allowlists.
// It receives the path of a fresh network namespace that belongs to the
// host's user namespace (so root inside the container cannot change what
// is set up there) and has only a loopback interface, still down. It must
// not keep the path open after returning an error.
type NetworkSetup func(ctx context.Context, netnsPath string) error

// Manager runs containers from a Store with a Runtime.
type Manager struct {
	Store   *Store
	Runtime *Runtime
	// Network, when set, is called with a prepared network namespace for
	// every container; when nil the runtime creates a loopback-only one.
	Network NetworkSetup
	// NetworkTeardown, when set, is called with the container's network
	// namespace path whenever a container is removed (after it exits, on
	// stop, or when Prepare fails), before the namespace is unmounted, so
	// the network step can remove what it made outside the namespace. It
	// is called whether or not the record says a namespace was made (a
	// crash can leave the record behind), so it must be idempotent and
	// cheap when it has nothing to do.
	NetworkTeardown func(ctx context.Context, netnsPath string) error
	// Supervisor, when set, starts a prepared detached container through
	// a supervisor process (see Supervise) and returns the init process's
	// pid once it runs; when nil the runtime starts it directly and the
	// exit status is lost.
	Supervisor func(ctx context.Context, c *Container) (pid int, err error)
}

// release undoes the network setup, then unmounts and deletes the
// container's directory. The directory goes even if the teardown failed:
// the network step keeps its own record for a later attempt.
func (m *Manager) release(ctx context.Context, c *Container) error {
	var nerr error
	if m.NetworkTeardown != nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		nerr = m.NetworkTeardown(tctx, c.NetNSPath())
		cancel()
	}
	return errors.Join(nerr, c.release())
}

// RunRequest is one bulwark run.
type RunRequest struct {
	// Spec options; Name is required, Rootfs is filled in by Run.
	Options Options
	// Rootfs is the image's layer stack from the unpack cache. Run adds
	// its own top layer of mount points and mounts the stack read-only.
	Rootfs *unpack.Rootfs
	// Image and ImageDigest are recorded for ps.
	Image, ImageDigest string
	// Detach runs the container in the background with its output in
	// the container's log file; Run then returns as soon as it runs.
	Detach bool
	// IO and Signals are used when attached (see Runtime.Run).
	IO      IO
	Signals <-chan os.Signal
	// Step, when set, is called as each phase ends ("prepared", "runtime",
	// "released"): bulwark run's BULWARK_DEBUG_TIMING breakdown.
	Step func(name string)
}

func (r *RunRequest) step(name string) {
	if r.Step != nil {
		r.Step(name)
	}
}

// Run creates the container directory, mounts the rootfs, writes the
// hardened spec and runs it. Attached, it returns the container's exit
// status and removes the container afterwards; detached, it returns 0 once
// the container runs, and stop removes it.
//
// Errors before the container starts (ErrRootUser, ErrNameInUse,
// ErrOptions, ErrStart, …) leave nothing behind.
func (m *Manager) Run(ctx context.Context, req RunRequest) (exitCode int, err error) {
	c, err := m.Prepare(ctx, req)
	if err != nil {
		return 0, err
	}
	req.step("prepared")
	keep := false
	defer func() {
		if !keep {
			if rerr := m.release(ctx, c); rerr != nil && err == nil {
				err = rerr
			}
			req.step("released")
		}
	}()
	name := c.Name
	if req.Detach {
		start := m.Supervisor
		if start == nil {
			start = m.startDetached
		}
		pid, err := start(ctx, c)
		if err != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			m.Runtime.Delete(dctx, name, true)
			cancel()
			return 0, err
		}
		c.Pid = pid
		keep = true
		return 0, c.Save()
	}

	code, err := m.Runtime.Run(ctx, name, c.BundleDir(), c.PidFile(), req.IO, req.Signals)
	req.step("runtime")
	// `run` deletes the container when it exits (runc and crun both); a
	// failed start may leave the runtime's record behind. Asking the
	// runtime in the common case would cost a process per run.
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		m.Runtime.Delete(dctx, name, true)
		cancel()
	}
	return code, err
}

// startDetached starts a prepared detached container through the runtime,
// its output appended to the container's log.
func (m *Manager) startDetached(ctx context.Context, c *Container) (int, error) {
	log, err := os.OpenFile(c.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("runner: %w", err)
	}
	defer log.Close()
	return m.runtimeFor(c).RunDetached(ctx, c.Name, c.BundleDir(), c.PidFile(), log)
}

// Prepare does everything Run does short of starting the runtime: it
// reserves the name, mounts the rootfs, prepares the network and writes
// the bundle (Container.BundleDir). On error nothing is left behind; on
// success the caller starts the bundle or calls Remove.
func (m *Manager) Prepare(ctx context.Context, req RunRequest) (_ *Container, err error) {
	if req.Rootfs == nil || len(req.Rootfs.Lowerdirs) == 0 {
		return nil, fmt.Errorf("%w: no rootfs", ErrOptions)
	}
	o := req.Options.withDefaults()
	// Validate before reserving the name so a bad request leaves nothing.
	probe := o
	probe.Rootfs = "/"
	if err := probe.validate(); err != nil {
		return nil, err
	}
	c, err := m.Store.Create(Record{
		Name: o.Name, Image: req.Image, ImageDigest: req.ImageDigest,
		Detached: req.Detach, Runtime: m.Runtime.path(),
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if rerr := m.release(ctx, c); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()

	initLayer, err := m.Store.initLayer(o.IDMap)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(c.RootfsDir(), 0o711); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	stack := *req.Rootfs
	stack.Lowerdirs = append([]string{initLayer}, req.Rootfs.Lowerdirs...)
	if err := stack.Mount(c.RootfsDir()); err != nil {
		return nil, err
	}
	c.RootfsMounted = true
	if m.Network != nil {
		if err := createNetNS(c.NetNSPath()); err != nil {
			return nil, err
		}
		c.NetNS = true
		if err := m.Network(ctx, c.NetNSPath()); err != nil {
			return nil, fmt.Errorf("runner: network setup: %w", err)
		}
		o.NetNSPath = c.NetNSPath()
	}
	o.Rootfs = c.RootfsDir()
	o.CgroupID = c.CgroupID
	spec, err := Spec(o)
	if err != nil {
		return nil, err
	}
	// Compact: runc parses it on every start, and jq reads it as well.
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(c.BundleDir(), "config.json"), b, 0o600); err != nil {
		return nil, err
	}
	// The record is written once, here, before anything can run: until
	// then a crash leaves a directory without a record, which Get and
	// stop handle (release finds the mounts by looking, not by the
	// record).
	if err := c.Save(); err != nil {
		return nil, err
	}
	return c, nil
}

// Remove unmounts and deletes a prepared container that is not running
// (use Stop for one that may be).
func (m *Manager) Remove(c *Container) error { return m.release(context.Background(), c) }

// Status is one line of ps.
type Status struct {
	Record
	// Status is the runtime's word (created, running, paused, stopped),
	// or "stopped" once the runtime has forgotten the container.
	Status string `json:"status"`
	// Exit is how a stopped detached container ended, when its
	// supervisor recorded it.
	Exit *Exit `json:"exit,omitempty"`
	// Supervised says a live supervisor waits for it (and will record
	// and report its exit).
	Supervised bool `json:"supervised,omitempty"`
}

// List reports every container with its runtime status.
func (m *Manager) List(ctx context.Context) ([]Status, error) {
	cs, err := m.Store.List()
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(cs))
	for _, c := range cs {
		st := Status{Record: c.Record, Status: "stopped"}
		rs, err := m.runtimeFor(c).State(ctx, c.Name)
		switch {
		case err == nil:
			st.Status = rs.Status
			st.Pid = rs.Pid
		case errors.Is(err, ErrNotExist):
		default:
			st.Status = "unknown"
		}
		st.Supervised = c.Supervised()
		if st.Status == "stopped" {
			st.Pid = 0
			st.Exit, _ = c.ReadExit() // an unreadable record is as good as none
		}
		out = append(out, st)
	}
	return out, nil
}

// runtimeFor is the runtime that started c: stop and ps must ask the same
// binary, whatever --runtime says now.
func (m *Manager) runtimeFor(c *Container) *Runtime {
	if c.Runtime == "" || c.Runtime == m.Runtime.path() {
		return m.Runtime
	}
	return &Runtime{Path: c.Runtime, Root: m.Runtime.Root}
}

// Stop sends SIGTERM to the container's init process, waits up to timeout
// for it to exit, then sends SIGKILL, and removes the container: runtime
// state, cgroup, mounts and directory (its log included).
func (m *Manager) Stop(ctx context.Context, name string, timeout time.Duration) error {
	c, err := m.Store.Get(name)
	if err != nil {
		return err
	}
	rt := m.runtimeFor(c)
	running := func() (bool, error) {
		st, err := rt.State(ctx, name)
		if errors.Is(err, ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return st.Status != "stopped", nil
	}
	waitStopped := func(d time.Duration) (bool, error) {
		deadline := time.Now().Add(d)
		for {
			up, err := running()
			if err != nil || !up {
				return !up, err
			}
			if time.Now().After(deadline) {
				return false, nil
			}
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if up, err := running(); err != nil {
		return err
	} else if up {
		rt.Kill(ctx, name, syscall.SIGTERM)
		stopped, err := waitStopped(timeout)
		if err != nil {
			return err
		}
		if !stopped {
			rt.Kill(ctx, name, syscall.SIGKILL)
			if stopped, err := waitStopped(10 * time.Second); err != nil {
				return err
			} else if !stopped {
				return fmt.Errorf("runner: %s survived SIGKILL for 10s", name)
			}
		}
	}
	if _, err := rt.State(ctx, name); err == nil {
		if err := rt.Delete(ctx, name, true); err != nil {
			return err
		}
	}
	return m.release(ctx, c)
}

// Logs opens a detached container's log (stdout and stderr interleaved as
// written).
func (m *Manager) Logs(name string) (io.ReadCloser, error) {
	c, err := m.Store.Get(name)
	if err != nil {
		return nil, err
	}
	if !c.Detached {
		return nil, fmt.Errorf("runner: %s runs attached: its output goes to the terminal that started it", name)
	}
	f, err := os.Open(c.LogPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no log yet", ErrNoContainer, name)
	}
	return f, err
}

// writeInitLayer makes bulwark's top layer: the mount points the spec
// needs, owned by the container's root. It guarantees they exist as real
// directories whatever the image has there (a missing /proc, a symlinked
// /dev), since the runtime cannot create them in a read-only rootfs, and
// gives /tmp mode 1777, which runc 1.1 copies onto the tmpfs mounted there
// (it ignores the tmpfs's own mode= option). dir must not exist.
func writeInitLayer(dir string, ids IDMap) error {
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"tmp", os.ModeSticky | 0o777}} {
		p := dir + "/" + d.name
		if err := os.Mkdir(p, 0o700); err != nil {
			return fmt.Errorf("runner: init layer: %w", err)
		}
		if err := os.Lchown(p, int(ids.HostBase), int(ids.HostBase)); err != nil {
			return fmt.Errorf("runner: init layer: %w", err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("runner: init layer: %w", err)
		}
	}
	return nil
}

// createNetNS creates a network namespace owned by the host's user
// namespace and bind-mounts it on target. The namespace is made on a
// dedicated OS thread that is never returned to the Go scheduler: the
// goroutine exits still locked, so the runtime discards the thread.
func createNetNS(target string) error {
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o400)
	if err != nil {
		return fmt.Errorf("runner: netns: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("runner: netns: unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("runner: netns: bind mount: %w", err)
			return
		}
		errc <- nil
	}()
	return <-errc
}
