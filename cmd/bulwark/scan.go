package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
	"github.com/bulwark-dev/bulwark/internal/scan/lint"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/aptindex"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vex"
)

// scanOutput is `bulwark scan --format json`: the vulnerability report
// and the image lint's findings.
type scanOutput struct {
	*vulndb.Report
	Lint []lint.Finding `json:"lint"`
}

const scanLong = `Scan an image or root filesystem: catalog its packages (as 'bulwark sbom'),
match them against the offline vulnerability database in DATA/vulndb.db
(fill it with 'bulwark vulndb import'), apply OpenVEX statements, and run
the image lint (CIS Docker Benchmark section 4 and Dockle's checks).

Each finding names the advisory and its aliases (CVE, GHSA), the severity
(from its CVSS vector or the database's own rating; UNKNOWN when the
advisory gives none, as the Go and Debian databases do), the version that
fixes it, the package and the layer that introduced it. Debian packages
are matched by their source package, as Debian's advisories are written.

--packages-index FILE (repeatable) also reports every installed Debian
package older than the version in an APT Packages index — e.g. this
machine's /var/lib/apt/lists/*bookworm-security*_Packages.lz4 — which
answers "which security updates is this image missing" without any CVE
feed (works without a vulnerability database).

--vex FILE (repeatable) reads OpenVEX documents: findings a statement marks
not_affected or fixed for this image (by digest or OCI purl, optionally
naming the package as a subcomponent) or for the package's purl are moved
to "suppressed" and do not count for --fail-on.

An image's catalog is kept in DATA/scan-cache by manifest digest (when the
data directory exists): scanning the same image again, e.g. after a
database update, reads no layer. --no-cache reads them anyway.

--from-registry matches the SBOM that a bulwark registry made when the
image was pushed (GET /scan/v1/sbom, with the lint findings it stored)
against this machine's database, without reading a layer: fast, but it
trusts the registry's catalog instead of checking the image's content.

--fail-on SEVERITY exits with status 2 when a vulnerability or lint finding
at or above SEVERITY (CRITICAL, HIGH, MEDIUM, LOW; UNKNOWN or INFO for any)
remains; --fail-on-behind exits 2 when a package is behind the archive.`

func newScanCmd() *cobra.Command {
	var (
		f            configFlags
		src          scanSource
		format       string
		failOn       string
		failBehind   bool
		indexes      []string
		vexFiles     []string
		maxFile      int64
		skipLint     bool
		withoutVulns bool
	)
	cmd := &cobra.Command{
		Use:   "scan REF | --oci-layout DIR[:TAG] | --rootfs DIR",
		Short: "Find known vulnerabilities, missing security updates and lint findings in an image",
		Long:  scanLong,
		Example: `  bulwark vulndb import ~/osv/Debian/all.zip && bulwark scan 127.0.0.1:5000/team/app:v1
  bulwark scan --oci-layout ./layout:v1 --format sarif > scan.sarif
  bulwark scan --rootfs /srv/chroot --packages-index /var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages.lz4
  bulwark scan --oci-layout ./layout --vex ./app.openvex.json --fail-on HIGH`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "table", "json", "sarif", "cyclonedx", "spdx":
			default:
				return fmt.Errorf("--format must be table, json, sarif, cyclonedx or spdx, not %q", format)
			}
			var (
				vulnMin osv.Rating
				lintMin lint.Severity
			)
			if failOn != "" {
				var err error
				if vulnMin, lintMin, err = parseFailOn(failOn); err != nil {
					return fmt.Errorf("--fail-on: %w", err)
				}
			}
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var docs []*vex.Document
			for _, p := range vexFiles {
				d, err := vex.ReadFile(p)
				if err != nil {
					return fmt.Errorf("--vex: %w", err)
				}
				docs = append(docs, d)
			}
			var ix *aptindex.Index
			if len(indexes) > 0 {
				if ix, err = aptindex.Load(ctx, indexes...); err != nil {
					return fmt.Errorf("--packages-index: %w", err)
				}
			}
			// Open the database before the (slower) catalog step, so a
			// missing database fails fast.
			var db *vulndb.DB
			if !withoutVulns {
				db, err = vulndb.Open(ctx, vulndb.PathIn(cfg.Data), vulndb.Options{ReadOnly: true})
				if errors.Is(err, vulndb.ErrNoDatabase) && ix != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "bulwark: warning: %v; only the archive check runs\n", err)
					db, err = nil, nil
				}
				if err != nil {
					return fmt.Errorf("%w (or use --packages-index alone, or --no-vulndb)", err)
				}
				if db != nil {
					defer db.Close()
				}
			}

			opts := catalog.Options{Tool: "bulwark/" + version, MaxFileSize: maxFile << 20,
				Walk: rootfs.Options{Logger: slog.New(slog.DiscardHandler)}}
			res, err := src.read(ctx, args, opts, scanCache(cfg.Data))
			if err != nil {
				return err
			}
			reportProblems(cmd.ErrOrStderr(), res)

			report := &vulndb.Report{Source: res.SBOM.Source, Distro: res.SBOM.Distro, Findings: []vulndb.Finding{}}
			if db != nil {
				m, err := db.NewMatcher(ctx)
				if err != nil {
					return err
				}
				if report, err = m.Match(ctx, res.SBOM); err != nil {
					return err
				}
				report.ApplyVEX(docs)
			}
			if ix != nil {
				report.CheckArchive(res.SBOM, ix, indexes)
			}
			var lintFindings []lint.Finding
			if !skipLint {
				lintFindings = res.Findings()
			}
			if lintFindings == nil {
				lintFindings = []lint.Finding{}
			}

			w := cmd.OutOrStdout()
			switch format {
			case "json":
				err = printJSON(cmd, scanOutput{Report: report, Lint: lintFindings})
			case "sarif":
				err = report.WriteSARIF(w, version, lintSARIF(lintFindings)...)
			case "cyclonedx":
				err = report.WriteCycloneDX(w, res.SBOM)
			case "spdx":
				// SPDX 2.3 has no place for vulnerabilities: the document is
				// the SBOM the findings were matched on; --fail-on still
				// judges the findings.
				err = res.SBOM.EncodeSPDX(w)
			default:
				err = report.WriteTable(w)
				if err == nil {
					printLint(w, lintFindings)
				}
			}
			if err != nil {
				return err
			}

			var fail []string
			if failOn != "" {
				if n := report.AtLeast(vulnMin); n > 0 {
					fail = append(fail, fmt.Sprintf("%d vulnerabilities at or above %s", n, vulnMin))
				}
				n := 0
				for _, l := range lintFindings {
					if l.Severity >= lintMin {
						n++
					}
				}
				if n > 0 {
					fail = append(fail, fmt.Sprintf("%d lint findings at or above %s", n, lintMin))
				}
			}
			if failBehind && report.Archive != nil && len(report.Archive.Behind) > 0 {
				fail = append(fail, fmt.Sprintf("%d packages behind the archive", len(report.Archive.Behind)))
			}
			if len(fail) > 0 {
				return &exitError{code: 2, msg: strings.Join(fail, "; ")}
			}
			return nil
		},
	}
	f.register(cmd)
	src.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "table", "output format: table, json, sarif (SARIF 2.1.0), cyclonedx (CycloneDX 1.5 with vulnerabilities) or spdx (SPDX 2.3: the SBOM only, as SPDX 2.3 has no vulnerability section)")
	fl.StringVar(&failOn, "fail-on", "", "exit 2 if a finding at or above this severity remains: CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN/INFO")
	fl.BoolVar(&failBehind, "fail-on-behind", false, "exit 2 if a package is older than the --packages-index archive's")
	fl.StringArrayVar(&indexes, "packages-index", nil, "APT Packages index (plain, .gz, .bz2 or .lz4) to compare installed Debian packages with; repeatable")
	fl.StringArrayVar(&vexFiles, "vex", nil, "OpenVEX document whose not_affected and fixed statements suppress findings; repeatable")
	fl.Int64Var(&maxFile, "max-file-size", catalog.DefaultMaxFileSize>>20, "package databases and manifests larger than this many MiB are not parsed (and reported)")
	fl.BoolVar(&skipLint, "no-lint", false, "skip the image lint")
	fl.BoolVar(&withoutVulns, "no-vulndb", false, "skip vulnerability matching (SBOM, archive check and lint only)")
	return cmd
}

// parseFailOn reads a severity for both vulnerability ratings and lint
// severities: UNKNOWN (vulnerabilities) and INFO (lint) both mean "any".
func parseFailOn(s string) (osv.Rating, lint.Severity, error) {
	switch strings.ToUpper(s) {
	case "UNKNOWN", "INFO", "ANY":
		return osv.Unknown, lint.Info, nil
	}
	r, err := osv.ParseRating(s)
	if err != nil {
		return 0, 0, err
	}
	l, err := lint.ParseSeverity(r.String())
	if err != nil {
		return 0, 0, err
	}
	return r, l, nil
}

func lintSARIF(fs []lint.Finding) []vulndb.SARIFResult {
	var out []vulndb.SARIFResult
	for _, f := range fs {
		level := "note"
		switch f.Severity {
		case lint.Critical, lint.High:
			level = "error"
		case lint.Medium:
			level = "warning"
		}
		desc := f.Message
		if f.Benchmark != "" {
			desc = "CIS Docker Benchmark " + f.Benchmark + ": " + f.Message
		}
		var paths []string
		for _, e := range f.Evidence {
			if strings.HasPrefix(e, "/") {
				paths = append(paths, e)
			}
		}
		out = append(out, vulndb.SARIFResult{RuleID: f.ID, Level: level, Message: f.Message, Description: desc, Help: f.Remediation, Paths: paths})
	}
	return out
}

func printLint(w io.Writer, fs []lint.Finding) {
	if len(fs) == 0 {
		fmt.Fprintln(w, "\nlint: no findings")
		return
	}
	fmt.Fprintf(w, "\nlint: %d findings\n", len(fs))
	for _, f := range fs {
		fmt.Fprintf(w, "  %-11s %-8s %s\n", f.ID, f.Severity, f.Message)
		if f.Remediation != "" {
			fmt.Fprintf(w, "  %11s %8s fix: %s\n", "", "", f.Remediation)
		}
	}
}
