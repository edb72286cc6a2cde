package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/runner"
)

// A detached container runs under a supervisor: `bulwark supervise NAME`,
// started by `bulwark run -d` in a session of its own. It starts the
// container (runner.Manager.Supervise), tells the starter through an
// inherited pipe (fd 3) that it runs, then waits for it to exit, records
// the exit status and reports the stop to the inventory, with the code.

// readiness is the one line the supervisor writes to the starter.
type readiness struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// supervisorStartTimeout bounds how long bulwark run -d waits for the
// supervisor to say the container runs.
const supervisorStartTimeout = 2 * time.Minute

func newSuperviseCmd() *cobra.Command {
	var f runnerFlags
	cmd := &cobra.Command{
		Use:    "supervise NAME",
		Short:  "Start a prepared detached container and wait for it (started by bulwark run -d)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, cfg, err := f.manager(cmd)
			ready := os.NewFile(3, "readiness")
			tell := func(pid int, err error) {
				if ready == nil {
					return
				}
				r := readiness{Pid: pid}
				if err != nil {
					r.Error = err.Error()
				}
				b, _ := json.Marshal(r)
				ready.Write(append(b, '\n'))
				ready.Close()
				ready = nil
			}
			if err != nil {
				tell(0, err)
				return err
			}
			// The container must not lose its supervisor with the
			// terminal or the run that started it (SIGINT and SIGTERM
			// only cancel the command's context, which Supervise does
			// not use).
			signal.Ignore(syscall.SIGHUP, syscall.SIGINT)
			name := args[0]
			c, err := m.Store.Get(name)
			if err != nil {
				tell(0, err)
				return err
			}
			release, err := c.HoldSupervision()
			if err != nil {
				tell(0, err)
				return err
			}
			// Held until the stop is reported: until then bulwark ps
			// leaves the report to this process.
			defer release()
			exit, err := m.Supervise(context.WithoutCancel(cmd.Context()), name, tell)
			if err != nil {
				return err
			}
			reason := "exited"
			if exit.Signal != "" {
				reason = "killed by " + exit.Signal
			}
			code := exit.Code
			reportStopped(context.Background(), cmd.ErrOrStderr(), cfg.Data, name, reason, &code)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// supervisorStarter starts a prepared detached container through `bulwark
// supervise` and returns its init process's pid once the supervisor says
// it runs.
func supervisorStarter(dataDir string) func(ctx context.Context, c *runner.Container) (int, error) {
	return func(ctx context.Context, c *runner.Container) (int, error) {
		exe, err := os.Executable()
		if err != nil {
			return 0, fmt.Errorf("%w: find this executable for the supervisor: %w", runner.ErrStart, err)
		}
		data, err := filepath.Abs(dataDir)
		if err != nil {
			return 0, err
		}
		logPath := filepath.Join(c.Dir, "supervisor.log")
		log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", runner.ErrStart, err)
		}
		defer log.Close()
		r, w, err := os.Pipe()
		if err != nil {
			return 0, fmt.Errorf("%w: %w", runner.ErrStart, err)
		}
		defer r.Close()
		// Not CommandContext: the supervisor outlives this process.
		cmd := exec.Command(exe, "supervise", "--data", data, c.Name)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.ExtraFiles = []*os.File{w}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		err = cmd.Start()
		w.Close()
		if err != nil {
			return 0, fmt.Errorf("%w: start the supervisor: %w", runner.ErrStart, err)
		}
		defer cmd.Process.Release()

		type result struct {
			r   readiness
			err error
		}
		got := make(chan result, 1)
		go func() {
			var res result
			line, err := bufio.NewReader(r).ReadBytes('\n')
			if err == nil {
				err = json.Unmarshal(line, &res.r)
			}
			res.err = err
			got <- res
		}()
		timer := time.NewTimer(supervisorStartTimeout)
		defer timer.Stop()
		select {
		case res := <-got:
			switch {
			case res.err != nil:
				// The supervisor died before it could say: its log says why.
				return 0, fmt.Errorf("%w: the supervisor ended without starting %s: %s", runner.ErrStart, c.Name, runner.Tail(logPath, 2048))
			case res.r.Error != "":
				// The runner's start errors begin with ErrStart's text;
				// keep them recognisable (bulwark run exits 125 for them).
				if rest, ok := strings.CutPrefix(res.r.Error, runner.ErrStart.Error()); ok {
					return 0, fmt.Errorf("%w%s", runner.ErrStart, rest)
				}
				return 0, fmt.Errorf("%w: %s", runner.ErrStart, res.r.Error)
			}
			return res.r.Pid, nil
		case <-timer.C:
			cmd.Process.Kill()
			return 0, fmt.Errorf("%w: the supervisor did not start %s within %v", runner.ErrStart, c.Name, supervisorStartTimeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
