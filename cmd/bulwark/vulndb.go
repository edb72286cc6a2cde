package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
)

func newVulndbCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vulndb",
		Short: "Manage the offline vulnerability database (import OSV data, show status)",
		Long: `bulwark matches packages against a local vulnerability database, DATA/vulndb.db
(the same data directory 'bulwark serve' uses), filled from OSV data you
bring: nothing is fetched at scan time, so scans work air-gapped.

Import osv.dev's per-ecosystem exports (https://osv-vulnerabilities.storage.googleapis.com/ECOSYSTEM/all.zip,
e.g. Debian, Alpine, Go, npm, PyPI), the Go vulnerability database
(golang.org/x/vulndb's data/osv), or any OSV JSON files and directories.
Import again to update: records replace older versions of themselves.`,
	}
	cmd.AddCommand(newVulndbImportCmd(), newVulndbStatusCmd())
	return cmd
}

func newVulndbImportCmd() *cobra.Command {
	var (
		f      configFlags
		strict bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "import PATH...",
		Short: "Import OSV records from JSON files, directories or zip exports",
		Long: `Import OSV vulnerability records into DATA/vulndb.db. PATH is an OSV JSON file
(one record or an array), a directory (searched for *.json and *.zip), or a
zip export such as osv.dev's ECOSYSTEM/all.zip.

Each PATH is imported in one transaction: a scan running meanwhile sees all
of it or none. A record replaces a stored record with the same id unless
the stored one is newer ("modified"); withdrawn records are removed.
Invalid records are skipped and counted (the first reasons are printed);
--strict refuses the whole PATH instead. Safe while 'bulwark serve' runs
and while scans read the database.`,
		Example: `  bulwark vulndb import ~/osv/Debian/all.zip ~/osv/Go/all.zip
  bulwark vulndb import --data /srv/bulwark-data ./advisories/
  go mod download -json golang.org/x/vulndb@latest   # then import its Dir/data/osv`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", output)
			}
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			db, err := vulndb.Open(cmd.Context(), vulndb.PathIn(cfg.Data), vulndb.Options{})
			if err != nil {
				return err
			}
			defer db.Close()
			var results []*vulndb.ImportResult
			for _, p := range args {
				res, err := db.Import(cmd.Context(), p, vulndb.ImportOptions{Strict: strict})
				if err != nil {
					return err
				}
				results = append(results, res)
				if output == "text" {
					printImport(cmd.OutOrStdout(), cmd.ErrOrStderr(), res)
				}
			}
			if output == "json" {
				return printJSON(cmd, results)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&strict, "strict", false, "refuse a PATH holding any invalid record (default: skip and count them)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func printImport(out, errw io.Writer, r *vulndb.ImportResult) {
	fmt.Fprintf(out, "%s: %d records in %d files: %d added, %d updated, %d unchanged, %d older than stored, %d withdrawn, %d rejected (%s); database generation %d\n",
		r.Source, r.Records, r.Files, r.Added, r.Updated, r.Unchanged, r.Older, r.Withdrawn, r.Rejected, r.Duration.Round(time.Millisecond), r.Generation)
	for _, e := range r.Errors {
		fmt.Fprintln(errw, "bulwark: rejected:", e)
	}
	if r.Rejected > len(r.Errors) {
		fmt.Fprintf(errw, "bulwark: and %d more rejected\n", r.Rejected-len(r.Errors))
	}
}

func newVulndbStatusCmd() *cobra.Command {
	var (
		f      configFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the vulnerability database's sources, record counts and age",
		Long: `Show what DATA/vulndb.db holds: each imported source with its import time,
record counts per ecosystem, and how fresh the data is (the newest
"modified" time of any record, and its age). An old database misses recent
advisories: import fresh exports regularly.`,
		Example: `  bulwark vulndb status
  bulwark vulndb status --data /srv/bulwark-data --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", output)
			}
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			db, err := vulndb.Open(cmd.Context(), vulndb.PathIn(cfg.Data), vulndb.Options{ReadOnly: true})
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := db.Status(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd, st)
			}
			printStatus(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func printStatus(w io.Writer, st *vulndb.Status, now time.Time) {
	fmt.Fprintf(w, "database:   %s\n", st.Path)
	fmt.Fprintf(w, "records:    %d (generation %d)\n", st.Records, st.Generation)
	if !st.UpdatedAt.IsZero() {
		fmt.Fprintf(w, "updated:    %s (%s ago)\n", st.UpdatedAt.UTC().Format(time.RFC3339), age(now.Sub(st.UpdatedAt)))
	}
	if st.NewestModified.IsZero() {
		fmt.Fprintln(w, "newest:     unknown (no record has a modified time); age is that of the last import")
	} else {
		fmt.Fprintf(w, "newest:     %s (data age %s)\n", st.NewestModified.UTC().Format(time.RFC3339), age(now.Sub(st.NewestModified)))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSOURCE\tIMPORTED\tRECORDS\tSTORED\tREJECTED")
	for _, s := range st.Sources {
		fmt.Fprintf(tw, "%s\t%s (%s ago)\t%d\t%d\t%d\n", s.Path, s.ImportedAt.UTC().Format(time.RFC3339), age(now.Sub(s.ImportedAt)), s.Records, s.Stored, s.Rejected)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nECOSYSTEM\tRECORDS\tAFFECTED PACKAGES")
	for _, e := range st.Ecosystems {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", e.Ecosystem, e.Records, e.Packages)
	}
	tw.Flush()
}

// age prints a duration in days, hours or minutes.
func age(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return "<1m"
}
