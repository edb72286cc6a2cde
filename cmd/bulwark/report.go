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

	godigest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/inventory"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/remote"
	"github.com/bulwark-dev/bulwark/internal/runner"
	"github.com/bulwark-dev/bulwark/internal/runner/network"
	scanstore "github.com/bulwark-dev/bulwark/internal/scan/store"
)

func newReportCmd() *cobra.Command {
	var (
		running, vulns, fixable bool
		sf                      serverFlags
		host, repo, digest, env string
	)
	cmd := &cobra.Command{
		Use:   "report --running [--vulnerabilities] [--server URL | --data DIR]",
		Short: "Report what runs where, from the inventory bulwark run reports to, and what is wrong with it",
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

Filters: --host, --repository, --digest, --env.

With --vulnerabilities, list what the registry's scanner found in each
running container's image: one line per container and vulnerability
(host, container, image, advisory, severity, package and version, fixed
version, and the days since the fix was available), or the image's scan
state when it has no report (pending, not scanned, failed, no
vulnerability database). "Days since the fix" counts from the
advisory's publication date when its record has one (OSV "published":
for Debian DSA/DLA, Go and GHSA advisories, about when the fixed version
was released), else from when the registry first saw the advisory with
that fixed version (see docs/scanning.md).
--fixable lists only vulnerabilities that have a fix. With --server the
results come from GET /scan/v1/report (the same access as the
inventory); with --data from DATA/scan.db.`,
		Example: `  bulwark report --running --server https://registry.example:5000
  bulwark report --running --server http://127.0.0.1:5000 --digest sha256:… --output json
  bulwark report --running --data /var/lib/bulwark
  bulwark report --running --vulnerabilities --fixable --server https://registry.example:5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !running {
				return errors.New("say what to report: --running (what runs where)")
			}
			if fixable && !vulns {
				return errors.New("--fixable goes with --vulnerabilities")
			}
			if err := sf.checkOutput(); err != nil {
				return err
			}
			q := inventory.Query{Host: host, Repository: repo, Digest: digest, Environment: env}
			recs, err := runningContainers(cmd, &sf, q)
			if err != nil {
				return err
			}
			if vulns {
				rows, err := runningVulnerabilities(cmd, &sf, recs, fixable, time.Now())
				if err != nil {
					return err
				}
				if sf.output == "json" {
					return printJSON(cmd, rows)
				}
				printRunningVulnerabilities(cmd.OutOrStdout(), rows)
				return nil
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
	cmd.Flags().BoolVar(&vulns, "vulnerabilities", false, "with --running: the vulnerabilities of each running container's image, from the registry's scans")
	cmd.Flags().BoolVar(&fixable, "fixable", false, "with --vulnerabilities: only vulnerabilities that have a fix")
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
		if opts.Authorization, err = dockerConfigAuthorization(anon.Host()); err != nil {
			return nil, err
		}
	}
	return inventory.NewClient(server, opts)
}

// dockerConfigAuthorization is the Basic Authorization Docker's config
// has for host, "" when none.
func dockerConfigAuthorization(host string) (string, error) {
	creds, err := remote.DockerConfigCredentials("")
	if err != nil {
		return "", err
	}
	cred, err := creds.Credentials(host)
	if err != nil || cred == (remote.Credential{}) {
		return "", err
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(cred.Username+":"+cred.Secret)), nil
}

// scanClient is a client of server's scan API, with credentials as for
// inventoryClient.
func scanClient(server, authz string) (*scanstore.Client, error) {
	opts := scanstore.ClientOptions{Authorization: authz, UserAgent: "bulwark/" + version}
	if authz == "" {
		anon, err := scanstore.NewClient(server, opts)
		if err != nil {
			return nil, err
		}
		if opts.Authorization, err = dockerConfigAuthorization(anon.Host()); err != nil {
			return nil, err
		}
	}
	return scanstore.NewClient(server, opts)
}

// runningVuln is one line of `report --running --vulnerabilities`: a
// running container and one vulnerability of its image, or (ID "") the
// image's scan state when it has none to show.
type runningVuln struct {
	Host        string `json:"host"`
	Container   string `json:"container"`
	Image       string `json:"image"`
	Digest      string `json:"digest"`
	Repository  string `json:"repository"`
	Environment string `json:"environment,omitempty"`
	// Scan is the image's scan state: scanned, pending, not scanned,
	// failed, no vulnerability database, not visible.
	Scan     string `json:"scan"`
	ID       string `json:"id,omitempty"`
	Severity string `json:"severity,omitempty"`
	Package  string `json:"package,omitempty"`
	Version  string `json:"version,omitempty"`
	Fixed    string `json:"fixed,omitempty"`
	// FixSince is since when the fix is available (the advisory's
	// publication, or when the registry first saw the fix); DaysSinceFix
	// the whole days from then to now.
	FixSince     time.Time `json:"fixSince,omitzero"`
	DaysSinceFix *int      `json:"daysSinceFix,omitempty"`
}

// imageScan is an image's scan result, or why there is none.
type imageScan struct {
	state  string
	result *scanstore.Result
}

// runningVulnerabilities joins the running containers with their images'
// stored scan results (each image fetched once).
func runningVulnerabilities(cmd *cobra.Command, sf *serverFlags, recs []inventory.Record, fixable bool, now time.Time) ([]runningVuln, error) {
	ctx := cmd.Context()
	var lookup func(repo string, d godigest.Digest) (imageScan, error)
	if sf.server != "" {
		authz, err := serverAuthorization(sf.username)
		if err != nil {
			return nil, err
		}
		c, err := scanClient(sf.server, authz)
		if err != nil {
			return nil, err
		}
		lookup = func(repo string, d godigest.Digest) (imageScan, error) {
			res, err := c.Result(ctx, repo, d)
			var apiErr *scanstore.APIError
			switch {
			case err == nil:
				return imageScan{result: res}, nil
			case !errors.As(err, &apiErr):
				return imageScan{}, err
			case apiErr.Code == scanstore.CodePending:
				return imageScan{state: "pending"}, nil
			case apiErr.Code == scanstore.CodeNotScanned:
				return imageScan{state: "not scanned"}, nil
			case apiErr.Status == 403 || apiErr.Status == 404:
				return imageScan{state: "not visible"}, nil
			}
			return imageScan{}, err
		}
	} else {
		cfg, err := sf.load(cmd)
		if err != nil {
			return nil, err
		}
		st, err := scanstore.Open(ctx, scanstore.Path(cfg.Data), scanstore.Options{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		defer st.Close()
		lookup = func(_ string, d godigest.Digest) (imageScan, error) {
			res, err := st.Result(ctx, d)
			if errors.Is(err, scanstore.ErrNotFound) {
				return imageScan{state: "not scanned"}, nil
			}
			return imageScan{result: res}, err
		}
	}
	scans := map[string]imageScan{}
	out := []runningVuln{}
	for _, r := range recs {
		key := r.Repository + "@" + r.Digest
		sc, ok := scans[key]
		if !ok {
			d, err := godigest.Parse(r.Digest)
			if err != nil {
				sc = imageScan{state: "not scanned"}
			} else if sc, err = lookup(r.Repository, d); err != nil {
				return nil, fmt.Errorf("scan result of %s: %w", key, err)
			}
			scans[key] = sc
		}
		base := runningVuln{Host: r.Host, Container: r.Container, Image: r.Image, Digest: r.Digest, Repository: r.Repository,
			Environment: r.Environment, Scan: sc.state}
		res := sc.result
		switch {
		case res == nil:
		case res.State == scanstore.StateFailed:
			base.Scan = "failed: " + res.Error
		case !res.HasReport():
			base.Scan = "no vulnerability database"
		default:
			base.Scan = "scanned"
		}
		n := 0
		if res != nil && res.HasReport() {
			for _, f := range res.Findings {
				if fixable && f.Fixed == "" {
					continue
				}
				v := base
				v.ID, v.Severity, v.Package, v.Version, v.Fixed = f.ID, f.Severity, f.Package, f.Version, f.Fixed
				if f.Fixed != "" && !f.FixSince.IsZero() {
					days := max(0, int(now.Sub(f.FixSince)/(24*time.Hour)))
					v.FixSince, v.DaysSinceFix = f.FixSince, &days
				}
				out = append(out, v)
				n++
			}
		}
		if n == 0 {
			out = append(out, base)
		}
	}
	return out, nil
}

func printRunningVulnerabilities(w io.Writer, rows []runningVuln) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCONTAINER\tIMAGE\tVULNERABILITY\tSEVERITY\tPACKAGE\tVERSION\tFIXED\tFIX AVAILABLE FOR")
	for _, r := range rows {
		if r.ID == "" {
			what := "none"
			if r.Scan != "scanned" {
				what = "(" + r.Scan + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\n", r.Host, r.Container, r.Image, what)
			continue
		}
		fixed, age := "-", "-"
		if r.Fixed != "" {
			fixed = r.Fixed
			if r.DaysSinceFix != nil {
				age = fmt.Sprintf("%d days", *r.DaysSinceFix)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Host, r.Container, r.Image, r.ID, r.Severity, r.Package, r.Version, fixed, age)
	}
	tw.Flush()
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

// reportStopped reports the stop of a container (bulwark stop removed it,
// its supervisor saw it exit, or bulwark ps found it exited), if its start
// was reported and its stop not yet. Reporters race (a stop kills the
// container, whose supervisor then reports its exit): the one that renames
// the spool file away first reports, once.
func reportStopped(ctx context.Context, w io.Writer, dataDir, name, reason string, exitCode *int) {
	if !runner.ValidName(name) {
		return
	}
	path := reportSpool(dataDir, name)
	claimed := fmt.Sprintf("%s.%d.claimed", path, os.Getpid())
	if err := os.Rename(path, claimed); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(w, "bulwark: warning: %s: %v; its stop is not reported\n", path, err)
		}
		return
	}
	defer os.Remove(claimed)
	b, err := os.ReadFile(claimed)
	var s spooled
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		fmt.Fprintf(w, "bulwark: warning: %s: %v; its stop is not reported\n", path, err)
		return
	}
	c, err := inventoryClient(s.Server, "")
	if err != nil {
		fmt.Fprintf(w, "bulwark: warning: reporting the stop of %s: %v\n", name, err)
		return
	}
	reportStop(ctx, w, c, s.Server, s.Start, exitCode, reason)
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
