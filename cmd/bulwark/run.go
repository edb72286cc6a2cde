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

	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/runner"
	"github.com/bulwark-dev/bulwark/internal/runner/network"
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

func (f *runnerFlags) manager(cmd *cobra.Command) (*runner.Manager, config.Config, error) {
	cfg, err := f.load(cmd)
	if err != nil {
		return nil, cfg, err
	}
	store, err := runner.OpenStore(cfg.Data)
	if err != nil {
		return nil, cfg, err
	}
	return &runner.Manager{
		Store: store, Runtime: &runner.Runtime{Path: f.runtime, Root: store.RuntimeRoot()},
		// Every removal (stop, an attached run's end) undoes what a
		// --publish/--allow-egress setup made, and sweeps what a crashed
		// bulwark left.
		NetworkTeardown: networkManager(store).Teardown,
	}, cfg, nil
}

func networkManager(store *runner.Store) *network.Manager {
	return network.New(filepath.Join(store.Dir(), "network"))
}

// networkConfig merges --profile with --publish and --allow-egress (the
// flags add to the profile) and returns the capabilities the profile
// adds.
func networkConfig(profile string, publish, egress []string) (network.Config, []string, error) {
	var p network.Profile
	if profile != "" {
		var err error
		if p, err = network.LoadProfile(profile); err != nil {
			return network.Config{}, nil, err
		}
	}
	cfg := p.Network
	for _, s := range publish {
		x, err := network.ParsePublish(s)
		if err != nil {
			return network.Config{}, nil, err
		}
		cfg.Publish = append(cfg.Publish, x)
	}
	for _, s := range egress {
		x, err := network.ParseEgress(s)
		if err != nil {
			return network.Config{}, nil, err
		}
		cfg.Egress = append(cfg.Egress, x)
	}
	return cfg, p.CapAdd, cfg.Validate()
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
		profile    string
		publish    []string
		egress     []string
		checks     runChecks
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
limits and a network namespace with loopback only. --publish, --allow-egress
and --profile give it a veth and an nftables allowlist in its own network
namespace: inbound only to the published ports, outbound only to the allowed
HOST:PORT pairs. docs/runner.md lists every default and the CIS Docker
Benchmark items it covers.

Before anything is unpacked, the reference is resolved to a digest, its
signatures are checked against --trust-policy for --env, and --policy
decides (action run, with the run request: user, capabilities, ports,
egress). A refusal prints every failed rule with its fix and exits 2. With
neither policy (flags or the config's trust_policy and policy) bulwark run
refuses unless --insecure-skip-verify. An admission is reused for a minute
for the same digest, policies, environment and request. --report-to URL
reports the start and the stop to a bulwark server (bulwark report
--running).

Attached (the default) the container's stdout and stderr are bulwark's,
SIGINT and SIGTERM are forwarded to it, and bulwark exits with its status
(125 when it could not start). With -d it runs in the background, its output
goes to a log file (bulwark logs NAME) and bulwark stop NAME ends it.

  bulwark run --trust-policy trust.yaml --policy policy.yaml --env prod 127.0.0.1:5000/prod/app@sha256:…
  bulwark run --config /etc/bulwark/host.yaml --report-to https://registry.example 127.0.0.1:5000/team/app:v1
  bulwark run -d --name web --memory 512m 127.0.0.1:5000/team/web@sha256:…
  bulwark run -d --name api --publish 127.0.0.1:8080:8080 --allow-egress db.internal:5432 127.0.0.1:5000/team/api:v1
  bulwark run -d --name api --profile api.yaml 127.0.0.1:5000/team/api:v1
  bulwark run --user 1000 127.0.0.1:5000/library/busybox:1 -- sh -c 'id'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			timer := newStepTimer(cmd.ErrOrStderr())
			defer timer.done()
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
			netCfg, profileCaps, err := networkConfig(profile, publish, egress)
			if err != nil {
				return err
			}
			caps = append(profileCaps, caps...)
			if name == "" {
				name = defaultName(ref.Repository)
			}
			command := args[1:]
			if len(command) > 0 && command[0] == "--" {
				// Flag parsing stops at IMAGE, so "--" reaches us.
				command = command[1:]
			}
			m, cfg, err := f.manager(cmd)
			if err != nil {
				return err
			}
			data := cfg.Data
			// A detached container runs under `bulwark supervise`, which
			// records its exit status and reports its stop.
			m.Supervisor = supervisorStarter(data)
			timer.step("config")
			if !netCfg.Empty() {
				nm := networkManager(m.Store)
				m.Network = func(ctx context.Context, netns string) error {
					return nm.Setup(ctx, name, netns, netCfg)
				}
			}
			warnRuntime(ctx, cmd.ErrOrStderr(), m)
			timer.step("runtime-version")

			client, err := registryClient()
			if err != nil {
				return err
			}
			// The reference is asked of the registry on every run; what
			// it leads to by digest (a platform's manifest, the config)
			// is kept in DATA/images and asked once.
			img, err := runner.FetchCached(ctx, client, ref, runner.OpenMetadataCache(filepath.Join(data, "images")))
			if err != nil {
				return err
			}
			timer.step("resolve")
			// Verify and decide on the resolved digest and config, before
			// anything is unpacked (runtrust.go): a refusal leaves the
			// layer cache untouched.
			checks.resolve(cmd, cfg)
			checks.cacheDir = filepath.Join(data, "admissions")
			adm, err := admitRun(ctx, cmd.ErrOrStderr(), client, ref, img, checks, runRequest(user, caps, netCfg))
			if err != nil {
				return err
			}
			timer.step("admission")
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
			timer.step("rootfs")

			req := runner.RunRequest{
				Options: runner.Options{
					Name: name, Hostname: hostname,
					Image: img.Config.Config, Args: command, Env: env, User: user,
					AllowRoot: allowRoot, IDMap: ids, Capabilities: caps,
					Memory: mem, Pids: pids, TmpSize: tmp,
				},
				Rootfs: rootfs, Image: ref.String(), ImageDigest: img.Manifest.Digest.String(),
				Detach: detach, Step: timer.step,
			}
			// With --report-to, the start is reported before the
			// container starts (nothing runs unreported) and the stop
			// when it ends (report.go).
			var report *runReport
			if checks.reportTo != "" {
				report, err = newRunReport(checks.reportTo, data, runStartEvent(ref, img, name, effectiveUser, adm, caps, netCfg, mem, pids, detach, f.runtime, profile))
				if err != nil {
					return err
				}
			}
			if report != nil {
				if _, err := m.Store.Get(name); err == nil {
					return fmt.Errorf("%w: %s (bulwark stop %s removes it)", runner.ErrNameInUse, name, name)
				}
				if err := report.started(ctx); err != nil {
					return err
				}
			}
			if detach {
				if _, err := m.Run(ctx, req); err != nil {
					report.stopped(context.WithoutCancel(ctx), cmd.ErrOrStderr(), nil, "did not start: "+err.Error())
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
				report.stopped(context.WithoutCancel(ctx), cmd.ErrOrStderr(), nil, "did not start: "+err.Error())
				return runError(err)
			}
			report.stopped(context.WithoutCancel(ctx), cmd.ErrOrStderr(), &code, "exited")
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f.register(cmd)
	checks.register(cmd)
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
	fl.StringVar(&profile, "profile", "", "run profile (YAML: publish, allow_egress, cap_add; see docs/runner.md)")
	fl.StringArrayVar(&publish, "publish", nil, "publish HOST_IP:HOST_PORT:PORT[/tcp|/udp] (repeatable; 0.0.0.0 for every host address)")
	fl.StringArrayVar(&egress, "allow-egress", nil, "allow connections to HOST:PORT[/tcp|/udp] (repeatable; names are resolved once, at start)")
	return cmd
}

// stepTimer prints, when BULWARK_DEBUG_TIMING is set in the environment,
// how long each step of bulwark run took, as one line on stderr at the
// end: the breakdown behind docs/benchmarks.md's start-up figures.
type stepTimer struct {
	w           io.Writer
	start, last time.Time
	steps       []string
}

func newStepTimer(w io.Writer) *stepTimer {
	if os.Getenv("BULWARK_DEBUG_TIMING") == "" {
		return nil
	}
	now := time.Now()
	return &stepTimer{w: w, start: now, last: now}
}

func (t *stepTimer) step(name string) {
	if t == nil {
		return
	}
	now := time.Now()
	t.steps = append(t.steps, fmt.Sprintf("%s=%.2f", name, float64(now.Sub(t.last).Microseconds())/1000))
	t.last = now
}

func (t *stepTimer) done() {
	if t == nil {
		return
	}
	fmt.Fprintf(t.w, "bulwark: timing (ms): %s total=%.2f\n", strings.Join(t.steps, " "), float64(time.Since(t.start).Microseconds())/1000)
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
bulwark stop removes them (their logs stay readable until then).

A detached container runs under a supervisor process (bulwark
supervise, one per container, like containerd's shim), which records how
it exited — ps shows "exited (CODE)", and -o json the exit's code,
signal and time — and reports its stop, with the code, to the server its
start was reported to (--report-to). If the supervisor is gone (killed,
or the host rebooted), ps reports the stop of a container it finds
exited, once, without a code.

  bulwark ps
  bulwark ps -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", output)
			}
			m, cfg, err := f.manager(cmd)
			if err != nil {
				return err
			}
			sts, err := m.List(cmd.Context())
			if err != nil {
				return err
			}
			for _, s := range sts {
				if s.Status == "stopped" && !s.Supervised {
					reportStopped(context.WithoutCancel(cmd.Context()), cmd.ErrOrStderr(), cfg.Data, s.Name, "exited (found stopped by bulwark ps)", nil)
				}
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
				status := s.Status
				if s.Exit != nil {
					status = fmt.Sprintf("exited (%d)", s.Exit.Code)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Image, shortDigest(s.ImageDigest), status, pid, s.Created.Local().Format(time.DateTime))
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
			m, cfg, err := f.manager(cmd)
			if err != nil {
				return err
			}
			data := cfg.Data
			var errs []error
			for _, name := range args {
				if err := m.Stop(cmd.Context(), name, timeout); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
					continue
				}
				// A start reported with --report-to gets its stop.
				reportStopped(context.WithoutCancel(cmd.Context()), cmd.ErrOrStderr(), data, name, "stopped", nil)
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
