package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
)

// ErrStart is returned when the runtime failed before the container's
// process existed (bad bundle, cgroup or mount failure, missing binary):
// there is no container exit code to report.
var ErrStart = errors.New("container did not start")

// ErrNotExist is returned by State when the runtime knows no container by
// that id.
var ErrNotExist = errors.New("no such container in the runtime")

// Runtime drives an OCI runtime binary with runc's command line (runc and
// crun share it).
type Runtime struct {
	// Path is the binary, looked up in PATH when it has no slash.
	// Empty means "runc".
	Path string
	// Root is the runtime's own state directory (--root), kept under
	// bulwark's data directory so bulwark's containers are separate from
	// anything else the host runs with the same runtime.
	Root string
}

func (r *Runtime) path() string {
	if r.Path == "" {
		return "runc"
	}
	return r.Path
}

func (r *Runtime) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, r.path(), append([]string{"--root", r.Root}, args...)...)
}

// output runs a short runtime command and returns its stdout; the error
// carries stderr.
func (r *Runtime) output(ctx context.Context, args ...string) ([]byte, error) {
	cmd := r.command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", filepath.Base(r.path()), args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Version runs `RUNTIME --version`.
func (r *Runtime) Version(ctx context.Context) (RuntimeVersion, error) {
	out, err := exec.CommandContext(ctx, r.path(), "--version").Output()
	if err != nil {
		return RuntimeVersion{}, fmt.Errorf("%s --version: %w", r.path(), err)
	}
	return ParseRuntimeVersion(string(out)), nil
}

// IO is the container's standard streams in attached mode. Nil fields
// mean /dev/null.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Run runs the bundle's container attached, the way `docker run` without
// -d does, and returns the container's exit status (128+N when it died of
// signal N).
//
// Every signal received on signals is delivered to the container's init
// process through `RUNTIME kill` (runc's own forwarding is not relied on:
// runc and the container run in their own process group, so a terminal's
// Ctrl-C reaches bulwark alone and is delivered exactly once). A signal
// that arrives before the container exists is held until it does.
// Cancelling ctx kills the container with SIGKILL; callers that want
// SIGINT to be forwarded rather than to cancel should pass
// context.WithoutCancel and a signal channel.
//
// pidFile is written by the runtime with the init process's host pid.
// ErrStart means the runtime failed before that happened.
func (r *Runtime) Run(ctx context.Context, id, bundle, pidFile string, stdio IO, signals <-chan os.Signal) (int, error) {
	// The runtime's own lifetime must not be tied to ctx: killing runc
	// would orphan the container. ctx cancellation is turned into a kill
	// of the container instead, below.
	cmd := exec.Command(r.path(), "--root", r.Root, "run", "--bundle", bundle, "--pid-file", pidFile, id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = stdio.Stdout, stdio.Stderr
	stop := func() {}
	if f, ok := stdio.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		// A process outside the terminal's foreground group that reads
		// the terminal is stopped with SIGTTIN, so the container gets a
		// pipe fed from the terminal instead.
		pr, pw, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		// The copy ends at the terminal's EOF or on the first read after
		// the container is gone (EPIPE); until then it sits in a read,
		// which is harmless for a CLI that exits right after.
		go func() {
			io.Copy(pw, f)
			pw.Close()
		}()
		cmd.Stdin = pr
		stop = func() { pr.Close(); pw.Close() }
	} else {
		cmd.Stdin = stdio.Stdin
	}
	defer stop()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrStart, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	started := false
	deliver := func(sig syscall.Signal) {
		if !started {
			started = waitPidFile(pidFile, exited)
		}
		if started {
			// The container may have exited meanwhile; nothing to do then.
			kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			r.Kill(kctx, id, sig)
			cancel()
		}
	}
	done := ctx.Done()
	for {
		select {
		case s, ok := <-signals:
			if !ok {
				signals = nil
				continue
			}
			if sig, isSys := s.(syscall.Signal); isSys {
				deliver(sig)
			}
		case <-done:
			done = nil
			deliver(syscall.SIGKILL)
		case <-exited:
			if !pidFileWritten(pidFile) {
				return 0, fmt.Errorf("%w: %s run exited: %v", ErrStart, filepath.Base(r.path()), waitErr)
			}
			return exitStatus(cmd, waitErr)
		}
	}
}

func exitStatus(cmd *exec.Cmd, err error) (int, error) {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, err
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return cmd.ProcessState.ExitCode(), nil
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

func pidFileWritten(p string) bool {
	b, err := os.ReadFile(p)
	return err == nil && len(bytes.TrimSpace(b)) > 0
}

// waitPidFile polls for the runtime's pid file until it appears (true) or
// the runtime exits (false). runc writes it once the container exists,
// before its process is started.
func waitPidFile(p string, exited <-chan struct{}) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if pidFileWritten(p) {
			return true
		}
		select {
		case <-exited:
			return pidFileWritten(p)
		case <-t.C:
		}
	}
}

// RunDetached starts the container in the background with its stdout and
// stderr appended to log, and returns the init process's host pid once it
// runs. The runtime's own error messages land in the same log, so a
// failure quotes its tail.
func (r *Runtime) RunDetached(ctx context.Context, id, bundle, pidFile string, log *os.File) (int, error) {
	cmd := r.command(ctx, "run", "--detach", "--bundle", bundle, "--pid-file", pidFile, id)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%w: %s run --detach: %w: %s", ErrStart, filepath.Base(r.path()), err, Tail(log.Name(), 2048))
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("%w: read pid file: %w", ErrStart, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%w: pid file %q: %w", ErrStart, b, err)
	}
	return pid, nil
}

// Tail returns up to the last n bytes of the file name ("" if it cannot
// be read): what a failure quotes of a log.
func Tail(name string, n int64) string {
	f, err := os.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return strings.TrimSpace(string(b))
}

// RuntimeState is the part of `RUNTIME state` bulwark uses.
type RuntimeState struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Status  string    `json:"status"` // creating, created, running, paused, stopped
	Bundle  string    `json:"bundle"`
	Created time.Time `json:"created"`
}

// State asks the runtime about a container; ErrNotExist when it has none
// by that id (never created, or deleted).
func (r *Runtime) State(ctx context.Context, id string) (RuntimeState, error) {
	out, err := r.output(ctx, "state", id)
	if err != nil {
		if isNotExist(err) {
			return RuntimeState{}, fmt.Errorf("%w: %s", ErrNotExist, id)
		}
		return RuntimeState{}, err
	}
	var st RuntimeState
	if err := json.Unmarshal(out, &st); err != nil {
		return RuntimeState{}, fmt.Errorf("parse %s state: %w", filepath.Base(r.path()), err)
	}
	return st, nil
}

// isNotExist recognises the runtimes' "no such container" messages (runc:
// "container does not exist"; crun: its status file is missing).
func isNotExist(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found") || strings.Contains(msg, "No such file or directory")
}

// Kill sends sig to the container's init process.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	_, err := r.output(ctx, "kill", id, strconv.Itoa(int(sig)))
	return err
}

// Delete removes the runtime's record of a stopped container (and its
// cgroups); force kills it first if it still runs.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.output(ctx, append(args, id)...)
	if err != nil && isNotExist(err) {
		// Already gone (runc run deletes its container as it exits).
		return nil
	}
	return err
}
