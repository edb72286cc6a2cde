package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/audit"
)

// auditFlags select the log: DATA/audit.log read directly (safe while a
// server appends to it), or a server's /admin/v1/audit endpoint.
// auditFlags are where the log is read (--data or --server) and the
// window both audit and decisions ask for: --since, --until, --repo and
// --limit.
type auditFlags struct {
	serverFlags
	since, until, repo string
	limit              int
}

// register adds the flags; noun says what is listed ("events",
// "decisions") and defaultLimit is --limit's default.
func (f *auditFlags) register(cmd *cobra.Command, noun string, defaultLimit int) {
	f.registerSource(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.since, "since", "", "only "+noun+" at or after this time (RFC 3339, date, or duration back from now: 24h, 7d)")
	fl.StringVar(&f.until, "until", "", "only "+noun+" before this time (same forms as --since)")
	fl.StringVar(&f.repo, "repo", "", "only "+noun+" about this repository (exact name)")
	fl.IntVar(&f.limit, "limit", defaultLimit, "show the most recent N matching "+noun+"; 0 for all")
}

// registerSource adds only where the log is read: --data or --server.
func (f *auditFlags) registerSource(cmd *cobra.Command) {
	f.serverFlags.register(cmd, "read through a server at this URL (e.g. https://registry.example:5000) instead of --data")
}

// check validates the output format and the window.
func (f *auditFlags) check() error {
	if err := f.checkOutput(); err != nil {
		return err
	}
	if f.limit < 0 {
		return fmt.Errorf("--limit must not be negative")
	}
	return nil
}

// printListed writes items as JSON or with text, and says on stderr when there
// are none.
func printListed[T any](cmd *cobra.Command, f *auditFlags, items []T, text func(io.Writer, []T), none string) error {
	if f.output == "json" {
		return printJSON(cmd, items)
	}
	text(cmd.OutOrStdout(), items)
	if len(items) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), none)
	}
	return nil
}

// localPath is the audit log of the configured data directory. A missing
// directory is an error (a mistyped --data must not look like an empty
// log); a missing log in an existing directory is an empty log.
func (f *auditFlags) localPath(cmd *cobra.Command) (string, error) {
	cfg, err := f.load(cmd)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(cfg.Data)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("data directory %s does not exist (set --data or BULWARK_DATA)", cfg.Data)
	}
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("data directory %s is not a directory", cfg.Data)
	}
	return audit.PathIn(cfg.Data), nil
}

// query reads the events matching filter, with --since and --until as
// written (a duration back from now, a date, RFC 3339): from the log in
// --data, or through --server, which resolves them itself. Only the
// filter's exact-match fields and Limit (0: all a server returns) go to
// the server.
func (f *auditFlags) query(cmd *cobra.Command, filter audit.Filter) ([]audit.Event, error) {
	since, until := f.since, f.until
	filter.Repository = f.repo
	now := time.Now()
	var err error
	if since != "" {
		if filter.Since, err = audit.ParseTime(since, now); err != nil {
			return nil, fmt.Errorf("--since: %w", err)
		}
	}
	if until != "" {
		if filter.Until, err = audit.ParseTime(until, now); err != nil {
			return nil, fmt.Errorf("--until: %w", err)
		}
	}
	if f.server == "" {
		path, err := f.localPath(cmd)
		if err != nil {
			return nil, err
		}
		return audit.Query(cmd.Context(), path, filter)
	}
	q := url.Values{"limit": {strconv.Itoa(filter.Limit)}}
	for k, v := range map[string]string{"since": since, "until": until, "repo": filter.Repository, "who": filter.Who,
		"action": filter.Action, "digest": filter.Digest, "outcome": filter.Outcome} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var events []audit.Event
	err = f.get(cmd.Context(), "/admin/v1/audit", q, &events)
	return events, err
}

// get fetches endpoint from the server and decodes its JSON answer.
func (f *auditFlags) get(ctx context.Context, endpoint string, q url.Values, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	u := strings.TrimRight(f.server, "/") + endpoint
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	authz, err := serverAuthorization(f.username)
	if err != nil {
		return err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("contact server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("server answered %s: %s", resp.Status, oneLine(string(body)))
	}
	// A full answer is at most audit.MaxHTTPLimit events of a few hundred
	// bytes; the bound only stops a misbehaving server.
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<30)).Decode(out); err != nil {
		return fmt.Errorf("decode server answer: %w", err)
	}
	return nil
}

const auditLong = `Show the audit log: every login, token issued, manifest push, pull and
delete, account and permission change, and every denial, with who
(principal and kind: user, robot, anonymous, system), what (action,
repository, reference, digest), when (UTC), from where (client address),
the outcome (ok, denied, failed) and a short detail.

The log is DATA/audit.log, one JSON object per line, appended by the server
and by admin commands. Each entry carries a sequence number (1, 2, 3, …
without gaps), the SHA-256 of its own canonical encoding ("hash") and the
hash of the entry before it ("prev"), so editing, deleting, reordering or
inserting a line breaks the chain: 'bulwark audit verify' finds and names
the first broken line. docs/audit.md describes the format and a shell
verifier that needs no bulwark.

The chain cannot reveal entries cut from the end, or a log rewritten from
some line on with freshly computed hashes: the rest is still a valid chain.
For that, keep the head (the last entry's hash, printed by 'audit verify')
somewhere the registry's host cannot change (a ticket, another machine, a
signed commit), and later check that the log still contains it with
'bulwark audit verify --head HASH'.

--since and --until take an RFC 3339 time, a date (2006-01-02, UTC), or a
duration back from now (90m, 24h, 7d). --limit keeps the most recent N
matching events (0: all; a server returns at most 100000). Reading the log
directly is safe while the server runs.`

func newAuditCmd() *cobra.Command {
	var (
		f           auditFlags
		who, action string
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the tamper-evident audit log (and verify it)",
		Long:  auditLong,
		Example: `  bulwark audit --since 24h
  bulwark audit --repo team/app --action push --output json
  bulwark audit --who ci-robot --since 2026-05-01 --until 2026-05-02
  bulwark audit --server https://registry.example:5000 --since 1h
  bulwark audit verify
  bulwark audit verify --head 3f7a…   # the head you recorded last time`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			events, err := f.query(cmd, audit.Filter{Who: who, Action: action, Limit: f.limit})
			if err != nil {
				return err
			}
			if events == nil {
				events = []audit.Event{}
			}
			return printListed(cmd, &f, events, printEvents, "no matching audit events")
		},
	}
	f.register(cmd, "events", audit.DefaultHTTPLimit)
	fl := cmd.Flags()
	fl.StringVar(&who, "who", "", "only events by this principal (exact name; \"anonymous\" for unauthenticated)")
	fl.StringVar(&action, "action", "", "only this action: login, token, push, pull, delete, user.add, user.rm, robot.create, robot.rotate, robot.rm, grant, revoke")
	cmd.AddCommand(newAuditVerifyCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var (
		f    auditFlags
		head string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain",
		Long: `Recompute every entry's hash, check that each entry links to the one before
it and that sequence numbers run from 1 without gaps. Prints the number of
entries verified and the head: the last entry's hash.

Record the head somewhere the registry's host cannot change. Tampering in
the middle of the log is found without it, but entries cut from the end, or
a log rewritten from some point on with recomputed hashes, still form a
valid chain: only '--head' with a head recorded earlier reveals them (the
recorded entry must still be in the log; later entries are fine).

Exit status: 0 when intact, 2 when tampering is found (the reason, with the
line number, on stderr), 1 when the check could not run.`,
		Example: `  bulwark audit verify
  bulwark audit verify --output json | jq -r .head >> ~/bulwark-heads.txt
  bulwark audit verify --head "$(tail -1 ~/bulwark-heads.txt)"
  bulwark audit verify --server https://registry.example:5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			head = strings.TrimSpace(head)
			var (
				rep audit.Report
				err error
			)
			if f.server != "" {
				q := url.Values{}
				if head != "" {
					q.Set("head", head)
				}
				err = f.get(cmd.Context(), "/admin/v1/audit/verify", q, &rep)
			} else {
				var path string
				if path, err = f.localPath(cmd); err == nil {
					rep, err = audit.Verify(cmd.Context(), path, audit.VerifyOptions{Head: head})
				}
			}
			if err != nil {
				return err
			}
			if f.output == "json" {
				if err := printJSON(cmd, rep); err != nil {
					return err
				}
			} else {
				printReport(cmd.OutOrStdout(), rep)
			}
			if !rep.OK {
				reason := "tampering found"
				if rep.Problem != nil {
					reason = oneLine(rep.Problem.String())
				}
				return &exitError{code: 2, msg: "audit log: " + reason}
			}
			return nil
		},
	}
	f.registerSource(cmd)
	cmd.Flags().StringVar(&head, "head", "", "a head hash recorded earlier: fail unless the log still contains that entry")
	return cmd
}

func printReport(w io.Writer, rep audit.Report) {
	if !rep.OK {
		fmt.Fprintf(w, "audit log NOT intact: %d entries verified before the problem (up to seq %d, hash %s)\n", rep.Entries, rep.HeadSeq, orDash(rep.Head))
		return
	}
	fmt.Fprintf(w, "audit log intact: %d entries verified\nhead: %s (seq %d)\n", rep.Entries, orDash(rep.Head), rep.HeadSeq)
	if rep.ExpectedHead != "" {
		fmt.Fprintf(w, "recorded head %s found at seq %d\n", rep.ExpectedHead, rep.ExpectedHeadSeq)
	}
}

// printEvents writes one aligned line per event: time, who, action,
// target, outcome, remote, detail.
func printEvents(w io.Writer, events []audit.Event) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), field(e.Who), field(e.Action),
			field(target(e)), field(e.Outcome), field(e.Remote), field(e.Detail))
	}
	tw.Flush()
}

// target is repo[:tag][@digest], or repo@digest when the reference is one.
func target(e audit.Event) string {
	s := e.Repository
	switch {
	case e.Reference == "":
	case strings.Contains(e.Reference, ":"):
		s += "@" + e.Reference
	default:
		s += ":" + e.Reference
	}
	if e.Digest != "" && e.Digest != e.Reference {
		s += "@" + e.Digest
	}
	return s
}

// field makes a value safe for a terminal: names and details come from
// clients (a failed login's user name is whatever the client sent), so
// control and formatting characters (escape sequences, tabs that would
// break the columns, bidirectional overrides) are shown quoted and
// escaped.
func field(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) || (unicode.IsSpace(r) && r != ' ') }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps an error message to one line, escaping what is not text.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) && r != ' ' }) >= 0 {
		q := strconv.Quote(s)
		return q[1 : len(q)-1]
	}
	return s
}
