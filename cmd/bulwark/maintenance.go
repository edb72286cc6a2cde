package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/server"
)

// maintenanceFlags select where gc and fsck run: on a data directory no
// server holds, or through a running server's admin endpoint.
type maintenanceFlags struct{ serverFlags }

func (f *maintenanceFlags) register(cmd *cobra.Command) {
	f.serverFlags.register(cmd, "run through a running server at this URL (e.g. http://127.0.0.1:5000) instead of opening --data")
}

// run opens the data directory, or posts to the server's admin endpoint
// when --server is given, and decodes the result into out.
func (f *maintenanceFlags) run(cmd *cobra.Command, endpoint string, out any, local func(context.Context, *registry.Registry) (any, error)) error {
	if err := f.checkOutput(); err != nil {
		return err
	}
	ctx := cmd.Context()
	if f.server != "" {
		authz, err := serverAuthorization(f.username)
		if err != nil {
			return err
		}
		return postAdmin(ctx, strings.TrimRight(f.server, "/")+endpoint, authz, out)
	}
	cfg, err := f.load(cmd)
	if err != nil {
		return err
	}
	data, err := server.OpenData(ctx, cfg.Data)
	if errors.Is(err, server.ErrDataBusy) {
		return fmt.Errorf("%w; while the server runs use --server http://ADDR", err)
	}
	if err != nil {
		return err
	}
	defer data.Close()
	reg := data.Registry(registry.Options{
		Logger:       slog.New(slog.DiscardHandler),
		UploadExpiry: time.Duration(cfg.GC.UploadExpiry),
		GCGrace:      time.Duration(cfg.GC.Grace),
		AllowSparse:  cfg.AllowSparseManifests,
	})
	res, err := local(ctx, reg)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(res)
	return json.Unmarshal(b, out)
}

func postAdmin(ctx context.Context, url, authorization string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("contact server: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newGCCmd() *cobra.Command {
	var (
		f      maintenanceFlags
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete unreferenced blobs and expired uploads",
		Long: `Delete blobs that no manifest references and that were not uploaded or
mounted within the grace period (gc.grace, default 1h), upload sessions idle
longer than gc.upload_expiry (default 24h), and blob files a crash left
without metadata.

GC is safe while pushes continue. 'bulwark serve' also runs it every
gc.interval (default 1h). A data directory held by a running server is
collected through that server with --server.`,
		Example: `  bulwark gc --dry-run
  bulwark gc --data /srv/bulwark
  bulwark gc --server http://127.0.0.1:5000 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res registry.GCResult
			endpoint := "/admin/v1/gc"
			if dryRun {
				endpoint += "?dry-run=true"
			}
			err := f.run(cmd, endpoint, &res, func(ctx context.Context, reg *registry.Registry) (any, error) {
				return reg.GC(ctx, registry.GCOptions{DryRun: dryRun})
			})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd, res)
			}
			verb := "deleted"
			if res.DryRun {
				verb = "would delete"
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "gc %s %d blobs, %d orphaned files and %d expired uploads, freeing %d bytes (%s)\n",
				verb, len(res.BlobsDeleted), len(res.OrphanFiles), len(res.UploadsExpired), res.BytesFreed, res.Duration.Round(time.Millisecond))
			if res.DryRun {
				for _, d := range res.BlobsDeleted {
					fmt.Fprintln(w, "  blob", d)
				}
				for _, d := range res.OrphanFiles {
					fmt.Fprintln(w, "  orphan", d)
				}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be deleted without deleting")
	return cmd
}

func newFsckCmd() *cobra.Command {
	var f maintenanceFlags
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Verify every stored blob and manifest",
		Long: `Re-hash every blob against its digest and check every manifest's content and
references. Exit status: 0 when consistent, 2 when problems were found, 1 when
the check could not run. Blob files without metadata (left by a crash, never
served, removed by gc) are listed but are not problems.`,
		Example: `  bulwark fsck
  bulwark fsck --data /srv/bulwark --output json
  bulwark fsck --server http://127.0.0.1:5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep registry.FsckReport
			err := f.run(cmd, "/admin/v1/fsck", &rep, func(ctx context.Context, reg *registry.Registry) (any, error) {
				return reg.Fsck(ctx, 2)
			})
			if err != nil {
				return err
			}
			if f.output == "json" {
				if err := printJSON(cmd, rep); err != nil {
					return err
				}
			} else {
				w := cmd.OutOrStdout()
				for _, p := range rep.Problems {
					repo := ""
					if p.Repository != "" {
						repo = " in " + p.Repository
					}
					fmt.Fprintf(w, "PROBLEM %s %s%s: %s\n", p.Kind, p.Digest, repo, p.Message)
				}
				fmt.Fprintf(w, "fsck: %d blobs (%d bytes) and %d manifests checked, %d problems, %d orphaned files\n",
					rep.BlobsChecked, rep.BytesChecked, rep.ManifestsChecked, len(rep.Problems), len(rep.Orphans))
			}
			if !rep.OK() {
				return &exitError{code: 2, msg: fmt.Sprintf("%d problems found", len(rep.Problems))}
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
