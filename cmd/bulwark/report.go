package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/inventory"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/remote"
	"github.com/bulwark-dev/bulwark/internal/runner"
	"github.com/bulwark-dev/bulwark/internal/runner/network"
)

func newReportCmd() *cobra.Command {
	var (
		running                 bool
		sf                      serverFlags
		host, repo, digest, env string
	)
	cmd := &cobra.Command{
		Use:   "report --running [--server URL | --data DIR]",
		Short: "Report what runs where, from the inventory bulwark run reports to",
		Long: `With --running, list the containers that run on every host that reports to
the server (bulwark run --report-to, or run.report_to in the config): host,
container, image and digest, environment, since when, and which account
reported it. A container is listed from its start until its stop is
reported (bulwark stop, or the end of an attached run).

--server asks a running server (GET /inventory/v1/running); every account
sees the containers of the repositories it may pull, administrators see
all. Credentials: BULWARK_TOKEN, or --username with BULWARK_PASSWORD, else
Docker's config for the server's host. --data reads a data directory's
inventory.db directly (also while the server runs).

Filters: --host, --repository, --digest, --env.`,
		Example: `  bulwark report --running --server https://registry.example:5000
  bulwark report --running --server http://127.0.0.1:5000 --digest sha256:… --output json
  bulwark report --running --data /var/lib/bulwark`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !running {
				return errors.New("say what to report: --running (what runs where)")
			}
			if err := sf.checkOutput(); err != nil {
				return err
			}
			q := inventory.Query{Host: host, Repository: repo, Digest: digest, Environment: env}
			recs, err := runningContainers(cmd, &sf, q)
			if err != nil {
				return err
			}
			if sf.output == "json" {
				if recs == nil {
					recs = []inventory.Record{}
				}
				return printJSON(cmd, recs)
			}
			printRunning(cmd.OutOrStdout(), recs)
			return nil
		},
	}
	cmd.Flags().BoolVar(&running, "running", false, "list the containers that run, per host")
	sf.register(cmd, "ask this bulwark server (URL)")
	cmd.Flags().StringVar(&host, "host", "", "only this host")
	cmd.Flags().StringVar(&repo, "repository", "", "only this repository (e.g. prod/app)")
	cmd.Flags().StringVar(&digest, "digest", "", "only this image digest")
	cmd.Flags().StringVar(&env, "env", "", "only this environment")
	return cmd
}

// runningContainers asks the server (--server) or reads the inventory in
// the data directory.
func runningContainers(cmd *cobra.Command, sf *serverFlags, q inventory.Query) ([]inventory.Record, error) {
	ctx := cmd.Context()
	if sf.server != "" {
		authz, err := serverAuthorization(sf.username)
		if err != nil {
			return nil, err
		}
		c, err := inventoryClient(sf.server, authz)
		if err != nil {
			return nil, err
		}
		return c.Running(ctx, q)
	}
	cfg, err := sf.load(cmd)
	if err != nil {
		return nil, err
	}
	path := inventory.Path(cfg.Data)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no inventory in %s (%v): give the server that bulwark run reports to with --server URL", cfg.Data, err)
	}
	store, err := inventory.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	recs, truncated, err := store.Running(ctx, q)
	if truncated {
		fmt.Fprintf(cmd.ErrOrStderr(), "bulwark: warning: only the first %d containers are listed; filter by --host or --repository\n", inventory.MaxRunning)
	}
	return recs, err
}

func printRunning(w io.Writer, recs []inventory.Record) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCONTAINER\tIMAGE\tDIGEST\tENV\tSINCE\tREPORTED BY")
	for _, r := range recs {
		env := r.Environment
		if env == "" {
			env = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Host, r.Container, r.Image, shortDigest(r.Digest), env,
			r.Time.Local().Format(time.DateTime), r.Reporter)
	}
	tw.Flush()
}

// inventoryClient is a client for server; authz "" takes the credentials
// Docker's config has for the server's host (a host's robot, as for its
// pulls).
func inventoryClient(server, authz string) (*inventory.Client, error) {
	opts := inventory.ClientOptions{Authorization: authz, UserAgent: "bulwark/" + version}
	if authz == "" {
		anon, err := inventory.NewClient(server, opts)
		if err != nil {
			return nil, err
		}
		creds, err := remote.DockerConfigCredentials("")
		if err != nil {
			return nil, err
		}
		cred, err := creds.Credentials(anon.Host())
		if err != nil {
			return nil, err
		}
		if cred == (remote.Credential{}) {
			return anon, nil
		}
		opts.Authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte(cred.Username+":"+cred.Secret))
	}
	return inventory.NewClient(server, opts)
}

// runReport reports one container's start and stop. The start is
// remembered in DATA/reported/NAME.json until the stop is reported, so
// bulwark stop, a later process, knows where to report it.
type runReport struct {
	server string
	client *inventory.Client
	start  inventory.Event
	spool  string
}

// spooled is what DATA/reported/NAME.json holds.
type spooled struct {
	Server string          `json:"server"`
	Start  inventory.Event `json:"start"`
}

func reportSpool(dataDir, name string) string {
	return filepath.Join(dataDir, "reported", name+".json")
}

// newRunReport prepares the reports of a container; nil when server is
// empty (nothing to report).
func newRunReport(server, dataDir string, start inventory.Event) (*runReport, error) {
	if server == "" {
		return nil, nil
	}
	if !runner.ValidName(start.Container) {
		return nil, fmt.Errorf("%w: name %q", runner.ErrOptions, start.Container)
	}
	c, err := inventoryClient(server, "")
	if err != nil {
		return nil, fmt.Errorf("--report-to: %w", err)
	}
	return &runReport{server: server, client: c, start: start, spool: reportSpool(dataDir, start.Container)}, nil
}

// started reports the start. It fails the run when the report fails: a
// host that reports what it runs runs nothing unreported.
func (r *runReport) started(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.start.Time = time.Now().UTC()
	if _, err := r.client.Report(ctx, r.start); err != nil {
		return fmt.Errorf("not starting %s: reporting its start to %s failed (the run was to be reported: --report-to): %w", r.start.Container, r.server, err)
	}
	b, err := json.Marshal(spooled{Server: r.server, Start: r.start})
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(r.spool), 0o700); err == nil {
			err = writeReportFile(r.spool, b)
		}
	}
	if err != nil {
		return fmt.Errorf("remember the report of %s: %w", r.start.Container, err)
	}
	return nil
}

// stopped reports the stop; a failure is a warning, since the container
// has stopped either way.
func (r *runReport) stopped(ctx context.Context, w io.Writer, exitCode *int, reason string) {
	if r == nil {
		return
	}
	reportStop(ctx, w, r.client, r.server, r.start, exitCode, reason)
	os.Remove(r.spool)
}

func reportStop(ctx context.Context, w io.Writer, c *inventory.Client, server string, start inventory.Event, exitCode *int, reason string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	e := start
	e.Kind, e.Time, e.ExitCode, e.Reason = inventory.KindStop, time.Now().UTC(), exitCode, reportReason(reason, 900)
	if _, err := c.Report(ctx, e); err != nil {
		fmt.Fprintf(w, "bulwark: warning: reporting the stop of %s to %s: %v\n", start.Container, server, err)
	}
}

// reportStopped reports the stop of a container bulwark stop removed, if
// its start was reported.
func reportStopped(ctx context.Context, w io.Writer, dataDir, name string) {
	if !runner.ValidName(name) {
		return
	}
	path := reportSpool(dataDir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var s spooled
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		fmt.Fprintf(w, "bulwark: warning: %s: %v; its stop is not reported\n", path, err)
		os.Remove(path)
		return
	}
	c, err := inventoryClient(s.Server, "")
	if err != nil {
		fmt.Fprintf(w, "bulwark: warning: reporting the stop of %s: %v\n", name, err)
		return
	}
	reportStop(ctx, w, c, s.Server, s.Start, nil, "stopped")
	os.Remove(path)
}

func writeReportFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// runStartEvent is the start report of a container bulwark run is about
// to start.
func runStartEvent(ref oci.ImageRef, img *runner.Image, name, user string, adm admission, caps []string,
	net network.Config, memory, pids int64, detached bool, runtime, profile string) inventory.Event {
	p := inventory.Profile{User: user, Capabilities: caps, ReadOnlyRootfs: true, Memory: memory, Pids: pids,
		Detached: detached, Runtime: runtime, File: profile}
	if p.Memory == 0 {
		p.Memory = runner.DefaultMemory
	}
	if p.Pids == 0 {
		p.Pids = runner.DefaultPids
	}
	for _, x := range net.Publish {
		p.Publish = append(p.Publish, x.String())
	}
	for _, x := range net.Egress {
		p.Egress = append(p.Egress, x.String())
	}
	return inventory.Event{Kind: inventory.KindStart, Host: hostName(), Container: name, Image: ref.String(),
		Digest: img.Ref.Digest.String(), Environment: adm.env, Profile: p, Decision: adm.decision}
}

// reportReason makes an error message a report's reason: one line, no control
// characters, at most max bytes.
func reportReason(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return s
}

// hostName is this machine's name as reports give it.
func hostName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	if i := strings.IndexByte(h, ' '); i >= 0 {
		h = h[:i]
	}
	return h
}
