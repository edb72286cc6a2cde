package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Column names; the table always has both, even when one did not run.
const (
	colBulwark = "bulwark"
	colDist    = "distribution"
)

// rssTargetBytes is the idle RSS budget for bulwark (40 MB).
const rssTargetBytes = 40e6

// report is everything the run produced; it is also the --json document.
type report struct {
	Started  time.Time     `json:"started"`
	RuntimeS float64       `json:"runtime_s"`
	Quick    bool          `json:"quick"`
	Warmup   string        `json:"warmup"`
	Duration string        `json:"duration"`
	Rounds   int           `json:"rounds"`
	Servers  []*serverInfo `json:"servers"`
	Cells    []*cellReport `json:"cells"`
}

type serverInfo struct {
	Name       string `json:"name"`
	Note       string `json:"note"`
	IdleRSSKiB int64  `json:"idle_rss_kib"`
	LoadRSSKiB int64  `json:"after_load_rss_kib"` // idle again, after all cells
	PeakRSSKiB int64  `json:"peak_rss_kib"`       // VmHWM at the end
}

type cellReport struct {
	ID       string             `json:"id"`
	Title    string             `json:"title"`
	Unit     unit               `json:"unit"`
	Conc     int                `json:"concurrency"`
	MinRatio float64            `json:"target_min_ratio"`
	Results  map[string]*result `json:"results"`
	Ratio    float64            `json:"ratio,omitempty"` // bulwark/distribution
	Status   string             `json:"status"`
}

func (r *report) server(name string) *serverInfo {
	for _, s := range r.Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// judge fills in a cell's ratio and target status once all servers ran.
func (c *cellReport) judge() {
	b, d := c.Results[colBulwark], c.Results[colDist]
	switch {
	case (b != nil && b.Errors+b.WarmupErr > 0) || (d != nil && d.Errors+d.WarmupErr > 0):
		c.Status = "INVALID (errors)"
	case b == nil || d == nil:
		c.Status = "n/a"
	case d.value(c.Unit) == 0:
		c.Status = "n/a (no distribution ops)"
	default:
		c.Ratio = b.value(c.Unit) / d.value(c.Unit)
		c.Status = metStatus(c.Ratio >= c.MinRatio)
	}
}

func metStatus(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// printSummary writes the main table: metric | bulwark | distribution |
// ratio | target | status.
func (r *report) printSummary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tbulwark\tdistribution\tratio (b/d)\ttarget\tstatus")
	for _, c := range r.Cells {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t≥ %g×\t%s\n", c.Title,
			cellValue(c, colBulwark), cellValue(c, colDist), ratioText(c.Ratio), c.MinRatio, c.Status)
	}
	r.printRSS(tw)
	tw.Flush()
}

func cellValue(c *cellReport, name string) string {
	res := c.Results[name]
	if res == nil {
		return "-"
	}
	v := fmt.Sprintf("%.1f", res.value(c.Unit))
	if n := res.Errors + res.WarmupErr; n > 0 {
		v += fmt.Sprintf(" ERR×%d", n)
	}
	return v
}

func ratioText(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", r)
}

func (r *report) printRSS(tw io.Writer) {
	b, d := r.server(colBulwark), r.server(colDist)
	rows := []struct {
		label string
		get   func(*serverInfo) int64
	}{
		{"idle RSS before load (MB, lower is better)", func(s *serverInfo) int64 { return s.IdleRSSKiB }},
		{"idle RSS after load (MB, lower is better)", func(s *serverInfo) int64 { return s.LoadRSSKiB }},
		{"peak RSS, VmHWM (MB, lower is better)", func(s *serverInfo) int64 { return s.PeakRSSKiB }},
	}
	for i, row := range rows {
		target, status := "-", "info"
		if i == 0 {
			target, status = "bulwark ≤ 40 MB", "n/a"
			if b != nil {
				status = metStatus(float64(row.get(b))*1024 <= rssTargetBytes)
			}
		}
		ratio := "-"
		if b != nil && d != nil && row.get(d) > 0 {
			ratio = fmt.Sprintf("%.2f×", float64(row.get(b))/float64(row.get(d)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row.label, mb(b, row.get), mb(d, row.get), ratio, target, status)
	}
}

func mb(s *serverInfo, get func(*serverInfo) int64) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(get(s))*1024/1e6)
}

// printDetails writes per-server figures behind every cell.
func (r *report) printDetails(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cell\tserver\tops\terrors\tsecs\tops/s\tMiB/s\tp50 ms\tp99 ms\tsrv cores\tsrv CPU µs/op\t")
	for _, c := range r.Cells {
		for _, name := range []string{colBulwark, colDist} {
			res := c.Results[name]
			if res == nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t%.0f\t\n",
				c.ID, name, res.Ops, res.Errors+res.WarmupErr, res.ElapsedS, res.OpsPerS, res.MiBPerS,
				res.P50Ms, res.P99Ms, res.CPUCores, res.CPUUsOp)
		}
	}
	tw.Flush()
	for _, c := range r.Cells {
		for name, res := range c.Results {
			if res.FirstErr != "" {
				fmt.Fprintf(w, "errors in %s on %s (first): %s\n", c.ID, name, oneLine(res.FirstErr))
			}
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// print writes the whole human-readable report.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nRegistry benchmark, %s: warm-up %s + %s per duration-bound cell and server, in %d alternating slices%s\n",
		r.Started.Format(time.RFC3339), r.Warmup, r.Duration, r.Rounds, map[bool]string{true: " (quick)"}[r.Quick])
	for _, s := range r.Servers {
		fmt.Fprintf(w, "  %-12s %s\n", s.Name+":", s.Note)
	}
	fmt.Fprintln(w)
	r.printSummary(w)
	fmt.Fprintln(w)
	r.printDetails(w)
	fmt.Fprintf(w, "\ntotal runtime %.1f s\n", r.RuntimeS)
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
