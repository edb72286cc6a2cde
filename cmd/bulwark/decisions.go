package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/policy"
)

// decisionEntry is one logged decision: the audit entry's chain position
// and the decision itself.
type decisionEntry struct {
	Seq      int64           `json:"seq"`
	Who      string          `json:"who"`
	Kind     string          `json:"kind"`
	Hash     string          `json:"hash"`
	Decision policy.Decision `json:"decision"`
}

func newDecisionsCmd() *cobra.Command {
	var (
		f                 auditFlags
		dgst, env, action string
		denied            bool
	)
	cmd := &cobra.Command{
		Use:   "decisions",
		Short: "Show policy decisions from the tamper-evident decision log",
		Long: `Show the decisions the policy engine made at push and pull: the image
(repository, digest), the action, the environment, the policy version,
whether it was allowed, every rule evaluated with its result (pass,
violated, excepted, error), the exceptions applied and the decision id that
registry errors and quarantine records name.

Decisions are entries of the audit log (action "decision"), so the same
hash chain protects them: 'bulwark audit verify' checks it. Read the log of
--data directly, or a server's through --server as an administrator.

Filters: --digest, --repo, --env, --action (push, pull, run), --denied;
--since and --until as for 'bulwark audit'. --limit keeps the most recent N
matching decisions.`,
		Example: `  bulwark decisions --denied --since 24h
  bulwark decisions --digest sha256:3f7a… --output json
  bulwark decisions --env prod --action pull --server https://registry.example:5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			switch action {
			case "", "push", "pull", "run":
			default:
				return fmt.Errorf("--action %q: want push, pull or run", action)
			}
			filter := audit.Filter{Action: audit.ActionDecision, Digest: dgst}
			if denied {
				filter.Outcome = audit.OutcomeDenied
			}
			events, err := f.query(cmd, filter)
			if err != nil {
				return err
			}
			entries := []decisionEntry{}
			for _, e := range events {
				var d policy.Decision
				if len(e.Decision) == 0 || json.Unmarshal(e.Decision, &d) != nil {
					continue // a record dropped for size: nothing to show but the detail
				}
				if (env != "" && d.Environment != env) || (action != "" && string(d.Action) != action) {
					continue
				}
				entries = append(entries, decisionEntry{Seq: e.Seq, Who: e.Who, Kind: e.Kind, Hash: e.Hash, Decision: d})
			}
			if f.limit > 0 && len(entries) > f.limit {
				entries = entries[len(entries)-f.limit:]
			}
			return printListed(cmd, &f, entries, printDecisions, "no matching decisions")
		},
	}
	f.register(cmd, "decisions", 100)
	fl := cmd.Flags()
	fl.StringVar(&dgst, "digest", "", "only decisions about this manifest digest")
	fl.StringVar(&env, "env", "", "only decisions for this environment")
	fl.StringVar(&action, "action", "", "only decisions for this action: push, pull or run")
	fl.BoolVar(&denied, "denied", false, "only denials")
	return cmd
}

// printDecisions writes one block per decision: a summary line, then the
// rules that did not pass and the exceptions used.
func printDecisions(w io.Writer, entries []decisionEntry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDECISION\tACTION\tENV\tIMAGE\tRESULT\tMODE\tWHO")
	for _, e := range entries {
		d := e.Decision
		result := "allowed"
		if !d.Allowed {
			result = "denied"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s@%s\t%s\t%s\t%s\n", d.Time.UTC().Format(time.RFC3339), d.ID, d.Action,
			orDash(d.Environment), d.Repository, decisionDigest(d.Digest), result, orDash(string(d.Mode)), e.Who)
		for _, r := range d.Rules {
			if r.Result == policy.ResultPass {
				continue
			}
			line := fmt.Sprintf("\t  %s %s (%s)", r.ID, r.Result, r.Mode)
			if r.Message != "" {
				line += ": " + oneLine(r.Message)
			}
			if r.Exception != "" {
				line += " [exception " + r.Exception + "]"
			}
			fmt.Fprintln(tw, line)
		}
		if d.DefaultDeny {
			fmt.Fprintln(tw, "\t  default deny: "+oneLine(d.Reason))
		}
	}
	tw.Flush()
}

func decisionDigest(d string) string {
	if algo, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return algo + ":" + hex[:12]
	}
	return d
}
