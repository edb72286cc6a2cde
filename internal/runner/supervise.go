package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// A detached container's init process outlives the runtime command that
// started it (`runc run --detach` exits once it runs), and its exit status
// would go to whoever adopts it: the host's init. A supervisor — one small
// process per detached container, like containerd's shim or conmon —
// starts the runtime as a child subreaper, so the orphaned init is
// reparented to it, waits for it, and records how it ended in the
// container's directory (exit.json), where ps finds it.

// Exit is how a detached container's init process ended.
type Exit struct {
	// Code is the exit status; for a process killed by a signal, 128 plus
	// the signal's number, as a shell reports it.
	Code int `json:"code"`
	// Signal names the signal that killed it, if one did.
	Signal string    `json:"signal,omitempty"`
	Time   time.Time `json:"time"`
}

// ExitPath is where the supervisor records the exit.
func (c *Container) ExitPath() string { return filepath.Join(c.Dir, "exit.json") }

// ReadExit returns the recorded exit, or nil when none is recorded (the
// container runs, was started without a supervisor, or its supervisor was
// killed).
func (c *Container) ReadExit() (*Exit, error) {
	b, err := os.ReadFile(c.ExitPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	var e Exit
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("runner: %s: %w", c.ExitPath(), err)
	}
	return &e, nil
}

// Supervise is the supervisor's work: it starts the prepared detached
// container name through the runtime, calls ready with the init
// process's pid (or the start's error) as soon as that is known, then
// waits for the init process to exit and records the exit. It makes the
// calling process a child subreaper and reaps every child it gets, so it
// must run in a process of its own (bulwark's hidden supervise command),
// never in one that waits for other children.
func (m *Manager) Supervise(ctx context.Context, name string, ready func(pid int, err error)) (*Exit, error) {
	c, err := m.Store.Get(name)
	if err != nil {
		ready(0, err)
		return nil, err
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		err = fmt.Errorf("runner: become a subreaper: %w", err)
		ready(0, err)
		return nil, err
	}
	pid, err := m.startDetached(ctx, c)
	ready(pid, err)
	if err != nil {
		return nil, err
	}
	e, err := waitExit(pid)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(e)
	tmp := c.ExitPath() + ".tmp"
	// The directory is gone if bulwark stop removed the container
	// meanwhile; the exit is then nobody's to read.
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		os.Rename(tmp, c.ExitPath())
	}
	return e, nil
}

// waitExit reaps children until pid exits. Others (the runtime's own
// intermediate processes, reparented to the subreaper) are reaped on the
// way.
func waitExit(pid int) (*Exit, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// ECHILD: the runtime did not leave its init to us (a
			// runtime that keeps a monitor process of its own).
			return nil, fmt.Errorf("runner: waiting for the container's init process %d: %w", pid, err)
		}
		if got != pid || !(ws.Exited() || ws.Signaled()) {
			continue
		}
		e := &Exit{Code: ws.ExitStatus(), Time: time.Now().UTC()}
		if ws.Signaled() {
			e.Code, e.Signal = 128+int(ws.Signal()), unix.SignalName(ws.Signal())
		}
		return e, nil
	}
}

func (c *Container) supervisorLock() string { return filepath.Join(c.Dir, "supervisor.lock") }

// HoldSupervision marks the calling process as c's supervisor (an
// exclusive lock on a file in its directory) until release is called or
// the process ends, however it ends.
func (c *Container) HoldSupervision() (release func(), err error) {
	f, err := os.OpenFile(c.supervisorLock(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("runner: %s already has a supervisor: %w", c.Name, err)
	}
	return func() { f.Close() }, nil
}

// Supervised reports whether a live process supervises c: then it, not
// ps, reports c's exit.
func (c *Container) Supervised() bool {
	f, err := os.Open(c.supervisorLock())
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	return false
}
