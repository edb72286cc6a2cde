package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/server"
)

// quarantineClient speaks the quarantine admin API: to a server (--server)
// or, with --data, to an in-process handler over the data directory, so
// both modes answer alike. Re-deciding needs the policy the server runs,
// so locally only a forced release is possible.
func (f *adminFlags) quarantineClient(cmd *cobra.Command) (*adminClient, error) {
	if err := f.checkOutput(); err != nil {
		return nil, err
	}
	if f.server != "" {
		return f.remote()
	}
	cfg, err := f.load(cmd)
	if err != nil {
		return nil, err
	}
	// A mistyped --data must not create an empty registry to list.
	if _, err := os.Stat(filepath.Join(cfg.Data, "meta.db")); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no registry in %s: %s/meta.db does not exist", cfg.Data, cfg.Data)
	}
	data, err := server.OpenData(cmd.Context(), cfg.Data)
	if errors.Is(err, server.ErrDataBusy) {
		return nil, fmt.Errorf("%w; while the server runs use --server URL", err)
	}
	if err != nil {
		return nil, err
	}
	log, err := audit.Open(audit.PathIn(cfg.Data), audit.Options{Buffer: 256})
	if err != nil {
		data.Close()
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	who := "cli:unknown"
	if u, err := user.Current(); err == nil {
		who = "cli:" + u.Username
	}
	reg := data.Registry(registry.Options{
		Logger:  slog.New(slog.DiscardHandler),
		OnEvent: func(_ context.Context, e registry.Event) { log.Record(server.AuditEvent(e)) },
	})
	h := http.StripPrefix(adminPrefix, reg.QuarantineAdminHandler(registry.QuarantineAdminOptions{
		Actor: func(*http.Request) registry.Actor {
			return registry.Actor{Who: who, Kind: audit.KindSystem, Remote: "local"}
		},
	}))
	return &adminClient{
		base:  "http://local" + adminPrefix,
		http:  &http.Client{Transport: handlerTransport{h}},
		close: func() error { return errors.Join(log.Close(), data.Close()) },
	}, nil
}

func (f *adminFlags) withQuarantine(cmd *cobra.Command, fn func(context.Context, *adminClient) error) error {
	c, err := f.quarantineClient(cmd)
	if err != nil {
		return err
	}
	err = fn(cmd.Context(), c)
	if cerr := c.close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing the data directory or the audit log: %w", cerr)
	}
	return err
}

func newAdminQuarantineCmd(f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "List and release manifests the push policy quarantined",
		Long: `A manifest whose push the policy refuses is stored but quarantined: only its
pusher and administrators can pull it (by tag or digest, its blobs, through
referrers or mounts); everyone else gets a DENIED error naming the rules.
Evidence pushed later (a signature, an approval) re-decides it and releases
it when the policy passes.

'list' shows what is quarantined and why. 'release' asks the policy again
(through the server, which runs it), or with --force and --reason releases
without a decision; forced releases are audited with the reason.`,
		Example: `  bulwark admin quarantine list --server https://registry.example:5000 --username admin
  bulwark admin quarantine release prod/app@sha256:4f5e... --server https://registry.example:5000
  bulwark admin quarantine release prod/app@sha256:4f5e... --force --reason "INC-42: approved by security"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var repo string
	list := &cobra.Command{
		Use:   "list [--repository REPO]",
		Short: "List quarantined manifests with their pusher and violated rules",
		Example: `  bulwark admin quarantine list
  bulwark admin quarantine list --repository prod/app --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repo != "" {
				if err := oci.ValidateRepository(repo); err != nil {
					return fmt.Errorf("--repository: %w", err)
				}
			}
			return f.withQuarantine(cmd, func(ctx context.Context, c *adminClient) error {
				var all []registry.QuarantineEntry
				last := ""
				for {
					q := url.Values{"n": {"1000"}}
					if repo != "" {
						q.Set("repository", repo)
					}
					if last != "" {
						q.Set("last", last)
					}
					var page registry.QuarantineList
					if err := c.do(ctx, http.MethodGet, "/quarantine?"+q.Encode(), nil, &page); err != nil {
						return err
					}
					all = append(all, page.Quarantined...)
					if last = page.Next; last == "" {
						break
					}
				}
				if f.output == "json" {
					if all == nil {
						all = []registry.QuarantineEntry{}
					}
					return printJSON(cmd, all)
				}
				if len(all) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "nothing is quarantined")
					return nil
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "MANIFEST\tPUSHER\tSINCE\tRULES\tDECISION")
				for _, e := range all {
					fmt.Fprintf(tw, "%s@%s\t%s %s\t%s\t%s\t%s\n", e.Repository, e.Digest, e.PusherKind, e.Pusher,
						e.Created.Local().Format(time.DateTime), rulesText(e.Reason, e.Violations), orDash(e.DecisionID))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&repo, "repository", "", "only this repository")

	var (
		force  bool
		reason string
	)
	release := &cobra.Command{
		Use:   "release REPO@DIGEST [--force --reason TEXT]",
		Short: "Re-decide a quarantined manifest, or force its release",
		Long: `Ask the push policy again about a quarantined manifest and release it if it
passes now (exit status 1, with the rules, when it still fails). Re-deciding
needs the policy the server runs: use --server. With --force and --reason
the manifest is released without a decision, by an administrator, and the
audit log records who and why.`,
		Example: `  bulwark admin quarantine release prod/app@sha256:4f5e... --server https://registry.example:5000 --username admin
  bulwark admin quarantine release prod/app@sha256:4f5e... --force --reason "INC-42: approved by security"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repoName, d, ok := strings.Cut(args[0], "@")
			if !ok {
				return fmt.Errorf("%q: want REPO@DIGEST, e.g. prod/app@sha256:4f5e…", args[0])
			}
			if err := oci.ValidateRepository(repoName); err != nil {
				return err
			}
			if _, err := oci.ParseDigest(d); err != nil {
				return err
			}
			if force && strings.TrimSpace(reason) == "" {
				return errors.New("--force needs --reason TEXT: a forced release is audited with why")
			}
			if !force && reason != "" {
				return errors.New("--reason goes with --force (a re-decision records the policy's own reasons)")
			}
			return f.withQuarantine(cmd, func(ctx context.Context, c *adminClient) error {
				var res registry.ReleaseResult
				req := registry.ReleaseRequest{Repository: repoName, Digest: d, Force: force, Reason: reason}
				if err := c.do(ctx, http.MethodPost, "/quarantine/release", req, &res); err != nil {
					if !force && f.server == "" && strings.Contains(err.Error(), "no policy") {
						return fmt.Errorf("%w (a data directory has no policy to re-decide with: use --server URL, or --force --reason)", err)
					}
					return err
				}
				if f.output == "json" {
					if err := printJSON(cmd, res); err != nil {
						return err
					}
				} else {
					printRelease(cmd, res, "")
				}
				if !res.Released {
					return &exitError{code: 1, msg: fmt.Sprintf("%s@%s stays quarantined: %s", res.Repository, res.Digest, rulesText(res.Reason, res.Violations))}
				}
				return nil
			})
		},
	}
	release.Flags().BoolVar(&force, "force", false, "release without a policy decision (needs --reason)")
	release.Flags().StringVar(&reason, "reason", "", "why a forced release is right (recorded in the audit log)")
	cmd.AddCommand(list, release)
	return cmd
}

func printRelease(cmd *cobra.Command, res registry.ReleaseResult, indent string) {
	w := cmd.OutOrStdout()
	switch {
	case res.Forced:
		fmt.Fprintf(w, "%sreleased %s@%s (forced: %s)\n", indent, res.Repository, res.Digest, res.Reason)
	case res.Released:
		fmt.Fprintf(w, "%sreleased %s@%s: the policy passes [decision %s]\n", indent, res.Repository, res.Digest, orDash(res.DecisionID))
	default:
		fmt.Fprintf(w, "%sstill quarantined %s@%s: %s [decision %s]\n", indent, res.Repository, res.Digest,
			rulesText(res.Reason, res.Violations), orDash(res.DecisionID))
	}
	for _, warning := range res.Warnings {
		fmt.Fprintf(w, "%s  warning: %s\n", indent, warning)
	}
	for _, c := range res.Children {
		printRelease(cmd, c, indent+"  ")
	}
}

// rulesText is the violated rules in one line, or the reason.
func rulesText(reason string, vs []registry.Violation) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		parts = append(parts, v.Rule+": "+v.Message)
	}
	if len(parts) == 0 {
		return orDash(reason)
	}
	return strings.Join(parts, "; ")
}
