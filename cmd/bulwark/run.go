package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/runner"
	"github.com/bulwark-dev/bulwark/internal/runner/unpack"
)

// exitRuntimeFailure is the status when the container could not be
// started at all, as docker run uses 125, so scripts can tell it from the
// container's own exit codes.
const exitRuntimeFailure = 125

// runnerFlags open the runner's part of the data directory.
type runnerFlags struct {
	configFlags
	runtime string
}

func (f *runnerFlags) register(cmd *cobra.Command) {
	f.configFlags.register(cmd)
}

func (f *runnerFlags) manager(cmd *cobra.Command) (*runner.Manager, string, error) {
	cfg, err := f.load(cmd)
	if err != nil {
		return nil, "", err
	}
	store, err := runner.OpenStore(cfg.Data)
	if err != nil {
		return nil, "", err
	}
	return &runner.Manager{Store: store, Runtime: &runner.Runtime{Path: f.runtime, Root: store.RuntimeRoot()}}, cfg.Data, nil
}

func newRunCmd() *cobra.Command {
	var (
		f          runnerFlags
		name       string
		detach     bool
		user       string
		allowRoot  bool
		caps       []string
		env        []string
		hostname   string
		memory     string
		pids       int64
		tmpSize    string
		usernsBase uint32
		usernsSize uint32
	)
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [-- COMMAND [ARG...]]",
		Short: "Run an image in a hardened container (runc, no root, no capabilities)",
		Long: `Run fetches IMAGE, unpacks it into the layer cache under --data and runs it
with an OCI runtime (runc unless --runtime says otherwise) under strict
defaults: a non-root user (an image whose USER is root, or unset, is refused
unless --allow-root), a user namespace mapping the container onto host ids
100000-165535, no capabilities, no new privileges, Docker's seccomp profile,
a read-only root with a noexec /tmp, Docker's masked paths, memory and pids
limits and a network namespace with loopback only. docs/runner.md lists
every default and the CIS Docker Benchmark items it covers.

Attached (the default) the container's stdout and stderr are bulwark's,
SIGINT and SIGTERM are forwarded to it, and bulwark exits with its status
(125 when it could not start). With -d it runs in the background, its output
goes to a log file (bulwark logs NAME) and bulwark stop NAME ends it.

  bulwark run 127.0.0.1:5000/team/app:v1
  bulwark run -d --name web --memory 512m 127.0.0.1:5000/team/web@sha256:…
  bulwark run --user 1000 127.0.0.1:5000/library/busybox:1 -- sh -c 'id'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ref, err := parseRemoteRef(args[0])
			if err != nil {
				return err
			}
			mem, err := runner.ParseSize(memory)
			if err != nil {
				return fmt.Errorf("--memory: %w", err)
			}
			tmp, err := runner.ParseSize(tmpSize)
			if err != nil || tmp < 0 {
				return fmt.Errorf("--tmp-size: %v", err)
			}
			if name == "" {
				name = defaultName(ref.Repository)
			}
			command := args[1:]
			if len(command) > 0 && command[0] == "--" {
				// Flag parsing stops at IMAGE, so "--" reaches us.
				command = command[1:]
			}
			m, data, err := f.manager(cmd)
			if err != nil {
				return err
			}
			warnRuntime(ctx, cmd.ErrOrStderr(), m)

			client, err := registryClient()
			if err != nil {
				return err
			}
			img, err := runner.Fetch(ctx, client, ref)
			if err != nil {
				return err
			}
			// Signature verification (trust policy for --env) and
			// policy.Decide(action=run) go here: on the resolved digest
			// and config, before anything is unpacked.
			effectiveUser := img.Config.Config.User
			if user != "" {
				effectiveUser = user
			}
			if runner.UserIsRoot(effectiveUser) && !allowRoot {
				return fmt.Errorf("%s@%s: %w (USER %q); pass --user UID or --allow-root", ref, img.Manifest.Digest, runner.ErrRootUser, effectiveUser)
			}
			ids := runner.IDMap{HostBase: usernsBase, Size: usernsSize}
			cache, err := unpack.Open(filepath.Join(data, "cache"), unpack.Options{
				IDs:    unpack.IDMap{UIDBase: ids.HostBase, GIDBase: ids.HostBase, Size: ids.Size},
				Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})),
			})
			if err != nil {
				return err
			}
			rootfs, err := img.Rootfs(ctx, cache, client)
			if err != nil {
				return err
			}

			req := runner.RunRequest{
				Options: runner.Options{
					Name: name, Hostname: hostname,
					Image: img.Config.Config, Args: command, Env: env, User: user,
					AllowRoot: allowRoot, IDMap: ids, Capabilities: caps,
					Memory: mem, Pids: pids, TmpSize: tmp,
				},
				Rootfs: rootfs, Image: ref.String(), ImageDigest: img.Manifest.Digest.String(),
				Detach: detach,
			}
			if detach {
				if _, err := m.Run(ctx, req); err != nil {
					return runError(err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
				return nil
			}
			// main cancels ctx on SIGINT/SIGTERM; here those signals are
			// forwarded to the container instead, and its exit decides.
			sigs := make(chan os.Signal, 8)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
			defer signal.Stop(sigs)
			req.IO = runner.IO{Stdin: os.Stdin, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
			req.Signals = sigs
			code, err := m.Run(context.WithoutCancel(ctx), req)
			if err != nil {
				return runError(err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.StringVar(&f.runtime, "runtime", "runc", "OCI runtime binary (runc, crun, or a path)")
	fl.StringVar(&name, "name", "", "container name (default: the repository's last component and a random suffix)")
	fl.BoolVarP(&detach, "detach", "d", false, "run in the background; output goes to the log (bulwark logs NAME)")
	fl.StringVar(&user, "user", "", "run as USER[:GROUP] (name or id) instead of the image's USER")
	fl.BoolVar(&allowRoot, "allow-root", false, "allow uid 0 inside the container (still without capabilities, mapped to an unprivileged host uid)")
	fl.StringSliceVar(&caps, "cap-add", nil, "add a capability (e.g. CAP_NET_BIND_SERVICE); none by default")
	fl.StringArrayVar(&env, "set-env", nil, "set an environment variable KEY=VALUE in the container (repeatable)")
	fl.StringVar(&hostname, "hostname", "", "container hostname (default: the name)")
	fl.StringVar(&memory, "memory", "256m", "memory limit (k, m, g suffixes); swap is not allowed; -1 for none")
	fl.Int64Var(&pids, "pids", runner.DefaultPids, "maximum number of processes and threads; -1 for none")
	fl.StringVar(&tmpSize, "tmp-size", "64m", "size of the /tmp tmpfs (counts against --memory)")
	fl.Uint32Var(&usernsBase, "userns-base", runner.DefaultIDMapHostBase, "first host uid/gid of the container's user namespace")
	fl.Uint32Var(&usernsSize, "userns-size", runner.DefaultIDMapSize, "number of ids mapped (container ids 0..size-1)")
	return cmd
}

// runError maps runner failures to exit statuses: 125 when the runtime
// could not start the container, 1 for refusals and everything else.
func runError(err error) error {
	if errors.Is(err, runner.ErrStart) {
		return &exitError{code: exitRuntimeFailure, msg: err.Error()}
	}
	return err
}

// warnRuntime prints a warning when the runtime is a runc release with
// known container-breakout fixes missing. It never fails the run: the
// operator decides (docs/runner.md shows how to install a current runc).
func warnRuntime(ctx context.Context, w io.Writer, m *runner.Manager) {
	v, err := m.Runtime.CachedVersion(ctx, filepath.Join(m.Store.Dir(), "runtime-version.json"))
	if err != nil {
		fmt.Fprintf(w, "bulwark: warning: %v\n", err)
		return
	}
	if msg := v.Vulnerabilities(); msg != "" {
		fmt.Fprintf(w, "bulwark: warning: %s\n", msg)
	}
}

func defaultName(repo string) string {
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, path.Base(repo))
	base = strings.TrimLeft(base, "-_.")
	if len(base) > 40 {
		base = base[:40]
	}
	var b [3]byte
	rand.Read(b[:])
	if base == "" {
		base = "c"
	}
	return base + "-" + hex.EncodeToString(b[:])
}

func newPsCmd() *cobra.Command {
	var (
		f      runnerFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List the containers bulwark run started from this data directory",
		Long: `List containers with their image digest, status (running, stopped, …),
host pid and creation time. Stopped detached containers stay listed until
bulwark stop removes them.

  bulwark ps
  bulwark ps -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", output)
			}
			m, _, err := f.manager(cmd)
			if err != nil {
				return err
			}
			sts, err := m.List(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				if sts == nil {
					sts = []runner.Status{}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(sts)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tIMAGE\tDIGEST\tSTATUS\tPID\tCREATED")
			for _, s := range sts {
				pid := "-"
				if s.Pid > 0 {
					pid = fmt.Sprint(s.Pid)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Image, shortDigest(s.ImageDigest), s.Status, pid, s.Created.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func newStopCmd() *cobra.Command {
	var (
		f       runnerFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stop [flags] NAME...",
		Short: "Stop containers (SIGTERM, then SIGKILL after --time) and remove them",
		Long: `Stop sends SIGTERM to each container's main process, waits up to --time for
it to exit, sends SIGKILL if it has not, then removes the container: its
runtime state, cgroup, rootfs mount, directory and log. A container that
already exited is just removed.

  bulwark stop web
  bulwark stop --time 30s web worker`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, _, err := f.manager(cmd)
			if err != nil {
				return err
			}
			var errs []error
			for _, name := range args {
				if err := m.Stop(cmd.Context(), name, timeout); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return errors.Join(errs...)
		},
	}
	f.register(cmd)
	cmd.Flags().DurationVarP(&timeout, "time", "t", 10*time.Second, "how long to wait after SIGTERM before SIGKILL")
	return cmd
}

func newLogsCmd() *cobra.Command {
	var (
		f      runnerFlags
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs [flags] NAME",
		Short: "Print a detached container's output",
		Long: `Logs prints what a container started with bulwark run -d wrote to stdout and
stderr, interleaved as written. With -f it keeps printing until the
container stops.

  bulwark logs web
  bulwark logs -f web`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, _, err := f.manager(cmd)
			if err != nil {
				return err
			}
			rc, err := m.Logs(args[0])
			if err != nil {
				return err
			}
			defer rc.Close()
			out := cmd.OutOrStdout()
			for {
				if _, err := io.Copy(out, rc); err != nil {
					return err
				}
				if !follow || !running(cmd.Context(), m, args[0]) {
					// One last copy: output written just before the exit.
					_, err := io.Copy(out, rc)
					return err
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(250 * time.Millisecond):
				}
			}
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the container stops")
	return cmd
}

func running(ctx context.Context, m *runner.Manager, name string) bool {
	sts, err := m.List(ctx)
	if err != nil {
		return false
	}
	for _, s := range sts {
		if s.Name == name {
			return s.Status == "running" || s.Status == "created" || s.Status == "paused"
		}
	}
	return false
}
