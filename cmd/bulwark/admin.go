package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/config"
)

// adminPrefix is where the server mounts auth.AdminHandler.
const adminPrefix = "/admin/v1"

// adminFlags select where admin commands run: on the data directory's
// auth.db (also while a server runs: unlike meta.db it is made for several
// processes, so no directory lock is taken) or through a server's admin
// API. They are persistent flags of `bulwark admin`, so they go before or
// after the subcommand.
// adminFlags are serverFlags registered as persistent flags, so they may
// stand before or after the subcommand.
type adminFlags struct{ serverFlags }

func (f *adminFlags) register(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.configFile, "config", "", "YAML configuration file (keys documented in docs/configuration.md)")
	fs.StringVar(&f.data, "data", "", `data directory (default "./bulwark-data", env BULWARK_DATA); works while the server runs`)
	fs.StringVar(&f.server, "server", "", "manage accounts through a running server at this URL (e.g. https://registry.example:5000) instead of --data")
	fs.StringVar(&f.username, "username", "", usernameHelp)
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
}

// adminClient speaks the admin API, either to a server or, with --data, to
// an in-process auth.AdminHandler over the data directory's auth.db: one
// code path, so both modes validate, answer and print alike.
type adminClient struct {
	base   string
	http   *http.Client
	header http.Header
	close  func() error
}

// open connects to the server or opens the data directory. A read-only
// command on a data directory without auth.db fails rather than creating
// one, so a mistyped --data does not list an empty, new directory.
func (f *adminFlags) open(cmd *cobra.Command, mutating bool) (*adminClient, error) {
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
	path := auth.AccountsPath(cfg.Data)
	if !mutating {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no accounts in %s: %s does not exist (it is created by 'bulwark serve' or the first 'bulwark admin' change)", cfg.Data, path)
		}
	}
	ctx := cmd.Context()
	accounts, err := auth.OpenAccounts(ctx, path, auth.AccountsOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	closers := []func() error{accounts.Close}
	opts := auth.AdminOptions{InternalErrors: true}
	if mutating {
		// Opened before the change so that a change is never made that
		// cannot be audited.
		log, err := audit.Open(audit.PathIn(cfg.Data), audit.Options{Buffer: 256}) // a few events per command
		if err != nil {
			accounts.Close()
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		closers = append([]func() error{log.Close}, closers...)
		opts.OnChange = cliAuditHook(log)
	}
	h := http.StripPrefix(adminPrefix, auth.AdminHandler(accounts, opts))
	return &adminClient{
		base: "http://local" + adminPrefix,
		http: &http.Client{Transport: handlerTransport{h}},
		close: func() error {
			var errs []error
			for _, c := range closers {
				errs = append(errs, c())
			}
			return errors.Join(errs...)
		},
	}, nil
}

func (f *adminFlags) remote() (*adminClient, error) {
	u, err := url.Parse(strings.TrimRight(f.server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want a URL such as https://registry.example:5000", f.server)
	}
	c := &adminClient{
		base:   u.String() + adminPrefix,
		http:   &http.Client{Timeout: time.Minute},
		header: http.Header{},
		close:  func() error { return nil },
	}
	authz, err := serverAuthorization(f.username)
	if err != nil {
		return nil, err
	}
	if authz != "" {
		c.header.Set("Authorization", authz)
	}
	return c, nil
}

// cliAuditHook records local changes as the OS user who ran the command.
// (Through --server, the server records them as the authenticated admin.)
func cliAuditHook(log *audit.Log) func(context.Context, string, string, string) {
	who := "cli:unknown"
	if u, err := user.Current(); err == nil {
		who = "cli:" + u.Username
	}
	return func(_ context.Context, action, target, detail string) {
		if detail != "" {
			target += ": " + detail
		}
		log.Record(audit.Event{Who: who, Kind: audit.KindSystem, Action: action, Detail: target, Remote: "local", Outcome: audit.OutcomeOK})
	}
}

// do sends one request; in (if not nil) is the JSON body, out (if not nil)
// receives the JSON answer. Error answers become errors with the API's
// message.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("contact server: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e auth.AdminError
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("server answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("unexpected answer from %s: %w", c.base, err)
	}
	return nil
}

// handlerTransport serves requests with an in-process handler.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil {
		req.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		StatusCode: rec.status, Status: fmt.Sprintf("%d %s", rec.status, http.StatusText(rec.status)),
		Header: rec.header, Body: io.NopCloser(&rec.body), Request: req,
		ProtoMajor: 1, ProtoMinor: 1, ContentLength: int64(rec.body.Len()),
	}, nil
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// withAdmin opens the client, runs fn and closes, reporting a failure to
// close (an unwritten audit event) even when fn succeeded.
func (f *adminFlags) withAdmin(cmd *cobra.Command, mutating bool, fn func(context.Context, *adminClient) error) error {
	c, err := f.open(cmd, mutating)
	if err != nil {
		return err
	}
	err = fn(cmd.Context(), c)
	if cerr := c.close(); cerr != nil && err == nil {
		err = fmt.Errorf("the change was made, but closing failed (audit log?): %w", cerr)
	}
	return err
}

// readPasswordStdin reads a password from stdin: everything up to EOF,
// without one trailing newline, so `echo "$PW" |` and files both work.
// Passwords are never taken as flag values: those end up in shell history
// and in every process listing.
func readPasswordStdin(cmd *cobra.Command) (string, error) {
	b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", errors.New("no password on stdin")
	}
	return s, nil
}

func newAdminCmd() *cobra.Command {
	f := &adminFlags{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Manage users, robots and their repository grants",
		Long: `Manage accounts: human users (password, role admin or member), robot
accounts for CI and hosts (a secret, fixed grants, optional expiry and
deployment environment), and users' grants on repository globs.

Admin users may do everything. Members and robots may do what their grants
allow: a grant is REPO_GLOB:ACTIONS, e.g. 'team/*:pull,push', where ACTIONS
is some of pull, push, delete and the glob's '*' matches one path component
and '**' any number.

Every command works on the data directory (--data, also while 'bulwark
serve' runs) or through a running server (--server URL, as an admin: env
BULWARK_TOKEN, or --username with env BULWARK_PASSWORD). Changes are written
to the audit log (DATA/audit.log).`,
		Example: `  # a member who may push and pull team/ repositories
  echo "$PASSWORD" | bulwark admin user add alice --role member --password-stdin
  bulwark admin grant alice 'team/*:pull,push'

  # a CI robot, valid 90 days, and a pull-only robot for a host
  bulwark admin robot create ci --grant 'team/*:pull,push' --expires 90d
  bulwark admin robot create web1 --grant 'team/web:pull' --env prod --output json

  # the same through a server
  BULWARK_PASSWORD=... bulwark admin --server https://registry.example:5000 --username admin robot list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.register(cmd)
	cmd.AddCommand(newAdminUserCmd(f), newAdminRobotCmd(f), newAdminGrantCmd(f), newAdminRevokeCmd(f), newAdminGrantsCmd(f), newAdminKeysCmd(f), newAdminQuarantineCmd(f))
	return cmd
}

func newAdminUserCmd(f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, list, remove users and set passwords",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		role       string
		fromStdin  bool
		passwdFrom bool
	)
	add := &cobra.Command{
		Use:   "add NAME --role admin|member --password-stdin",
		Short: "Add a user",
		Long: fmt.Sprintf(`Add a human user. NAME is 1 to 64 characters of a-z, 0-9, '.', '_', '-'
(users and robots share names). The password (at least %d characters) is read
from stdin, never from a flag. A member can do nothing until granted:
'bulwark admin grant NAME GLOB:ACTIONS'.`, auth.MinPasswordLength),
		Example: `  echo "$PASSWORD" | bulwark admin user add alice --password-stdin
  bulwark admin user add ops --role admin --password-stdin < ops-password.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !fromStdin {
				return errors.New("the password is read from stdin: pass --password-stdin (e.g. echo \"$PASSWORD\" | bulwark admin user add NAME --password-stdin)")
			}
			password, err := readPasswordStdin(cmd)
			if err != nil {
				return err
			}
			return f.withAdmin(cmd, true, func(ctx context.Context, c *adminClient) error {
				var u auth.AdminUser
				if err := c.do(ctx, http.MethodPost, "/users", auth.AdminNewUser{Name: args[0], Role: auth.Role(role), Password: password}, &u); err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd, u)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added %s %s\n", u.Role, u.Name)
				return nil
			})
		},
	}
	add.Flags().StringVar(&role, "role", string(auth.RoleMember), "admin (may do everything, including managing accounts) or member (only what grants allow)")
	add.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from stdin (required)")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List users with their roles and grants",
		Example: `  bulwark admin user list --output json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.withAdmin(cmd, false, func(ctx context.Context, c *adminClient) error {
				var us []auth.AdminUser
				if err := c.do(ctx, http.MethodGet, "/users", nil, &us); err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd, us)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLE\tGRANTS\tPASSWORD CHANGED")
				for _, u := range us {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, grantList(u.Grants), u.PasswordChanged.Local().Format(time.DateTime))
				}
				return tw.Flush()
			})
		},
	}

	rm := &cobra.Command{
		Use:     "rm NAME",
		Short:   "Remove a user, its grants and its docker logins",
		Long:    "Remove a user, with its grants and refresh tokens (docker logins). The last admin cannot be removed.",
		Example: `  bulwark admin user rm alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withAdmin(cmd, true, func(ctx context.Context, c *adminClient) error {
				if err := c.do(ctx, http.MethodDelete, "/users/"+url.PathEscape(args[0]), nil, nil); err != nil {
					return err
				}
				return printDone(cmd, f, map[string]string{"removed": args[0], "kind": "user"}, "removed user %s\n", args[0])
			})
		},
	}

	passwd := &cobra.Command{
		Use:   "passwd NAME --password-stdin",
		Short: "Set a user's password",
		Long: `Set a user's password, read from stdin. The user's existing docker logins
(refresh tokens) stop working: whoever changes a password wants other
sessions out.`,
		Example: `  echo "$NEW_PASSWORD" | bulwark admin user passwd alice --password-stdin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !passwdFrom {
				return errors.New("the password is read from stdin: pass --password-stdin")
			}
			password, err := readPasswordStdin(cmd)
			if err != nil {
				return err
			}
			return f.withAdmin(cmd, true, func(ctx context.Context, c *adminClient) error {
				if err := c.do(ctx, http.MethodPost, "/users/"+url.PathEscape(args[0])+"/password", auth.AdminPassword{Password: password}, nil); err != nil {
					return err
				}
				return printDone(cmd, f, map[string]string{"password_changed": args[0]},
					"changed the password of %s; its docker logins must log in again\n", args[0])
			})
		},
	}
	passwd.Flags().BoolVar(&passwdFrom, "password-stdin", false, "read the password from stdin (required)")
	cmd.AddCommand(add, list, rm, passwd)
	return cmd
}

func newAdminRobotCmd(f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "robot",
		Short: "Create, list, rotate and remove robot accounts",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		grantSpecs []string
		expires    string
		env        string
	)
	create := &cobra.Command{
		Use:   "create NAME --grant REPO_GLOB:ACTIONS [--grant ...] [--expires 90d] [--env ENV]",
		Short: "Create a robot and print its secret, once",
		Long: `Create a robot account for CI or a host. Its grants are fixed: to change
them, create a new robot and remove the old one. The secret is printed once
and only its hash is stored; if it is lost, 'robot rotate' makes a new one.
A robot logs in like a user, with its name and the secret as the password.

--grant REPO_GLOB:ACTIONS (repeatable, at least one): ACTIONS is some of
pull, push, delete. --expires takes a duration (90d, 12h); without it the
robot never expires. --env binds the robot to a deployment environment,
which policies can check.

With --output json the answer is {"name","secret","expires","grants","env",...}.`,
		Example: `  bulwark admin robot create ci --grant 'team/*:pull,push' --expires 90d
  bulwark admin robot create web1 --grant 'team/web:pull' --grant 'base/**:pull' --env prod
  SECRET=$(bulwark admin robot create ci2 --grant 'team/*:push' --output json | jq -r .secret)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(grantSpecs) == 0 {
				return errors.New("a robot needs at least one --grant REPO_GLOB:ACTIONS (e.g. --grant 'team/*:pull')")
			}
			req := auth.AdminNewRobot{Name: args[0], Env: env}
			for _, s := range grantSpecs {
				g, err := auth.ParseGrantSpec(s)
				if err != nil {
					return fmt.Errorf("--grant: %w", err)
				}
				req.Grants = append(req.Grants, auth.AdminGrant{Glob: g.Glob, Actions: g.Actions})
			}
			if expires != "" {
				d, err := config.ParseDuration(expires)
				if err != nil || d < time.Second {
					return fmt.Errorf("--expires %q: want a duration such as 90d or 12h", expires)
				}
				req.ExpiresInSeconds = int64(d / time.Second)
			}
			return f.withAdmin(cmd, true, func(ctx context.Context, c *adminClient) error {
				var rb auth.AdminRobot
				if err := c.do(ctx, http.MethodPost, "/robots", req, &rb); err != nil {
					return err
				}
				return printSecret(cmd, f, rb, "created")
			})
		},
	}
	create.Flags().StringArrayVar(&grantSpecs, "grant", nil, "REPO_GLOB:ACTIONS, e.g. 'team/*:pull,push' (repeatable)")
	create.Flags().StringVar(&expires, "expires", "", "expire after this long, e.g. 90d (default: never)")
	create.Flags().StringVar(&env, "env", "", "deployment environment the robot is bound to, e.g. prod")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List robots (never their secrets)",
		Example: `  bulwark admin robot list --output json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.withAdmin(cmd, false, func(ctx context.Context, c *adminClient) error {
				var rs []auth.AdminRobot
				if err := c.do(ctx, http.MethodGet, "/robots", nil, &rs); err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd, rs)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tGRANTS\tEXPIRES\tENV\tSECRET ROTATED")
				for _, rb := range rs {
					env := rb.Env
					if env == "" {
						env = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rb.Name, grantList(rb.Grants), expiryText(rb.Expires), env, rb.Rotated.Local().Format(time.DateTime))
				}
				return tw.Flush()
			})
		},
	}

	rm := &cobra.Command{
		Use:     "rm NAME",
		Short:   "Remove a robot; its secret stops working at once",
		Example: `  bulwark admin robot rm ci`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withAdmin(cmd, true, func(ctx context.Context, c *adminClient) error {
				if err := c.do(ctx, http.MethodDelete, "/robots/"+url.PathEscape(args[0]), nil, nil); err != nil {
					return err
				}
				return printDone(cmd, f, map[string]string{"removed": args[0], "kind": "robot"}, "removed robot %s\n", args[0])
			})
		},
	}

	rotate := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Give a robot a new secret; the old one stops working at once",
		Long: `Give a robot a new secret and print it, once. The old secret and the
robot's docker logins (refresh tokens) stop working immediately; access
tokens already issued run out within minutes. Grants, expiry and environment
stay.`,
		Example: `  bulwark admin robot rotate ci
  bulwark admin robot rotate ci --output json | jq -r .secret`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withAdmin(cmd, true, func(ctx context.Context, c *adminClient) error {
				var rb auth.AdminRobot
				if err := c.do(ctx, http.MethodPost, "/robots/"+url.PathEscape(args[0])+"/rotate", nil, &rb); err != nil {
					return err
				}
				return printSecret(cmd, f, rb, "rotated the secret of")
			})
		},
	}
	cmd.AddCommand(create, list, rm, rotate)
	return cmd
}

func newAdminGrantCmd(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "grant USER REPO_GLOB:ACTIONS",
		Short: "Allow a user actions on repositories matching a glob",
		Long: `Allow USER the ACTIONS (some of pull, push, delete) on repositories
matching REPO_GLOB. Actions add to what the user already holds on the same
glob. '*' matches one path component, '**' any number. Robots' grants are
fixed at creation.`,
		Example: `  bulwark admin grant alice 'team/*:pull,push'
  bulwark admin grant alice 'base/**:pull'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := auth.ParseGrantSpec(args[1])
			if err != nil {
				return err
			}
			return f.withAdmin(cmd, true, func(ctx context.Context, c *adminClient) error {
				var ag auth.AdminGrants
				if err := c.do(ctx, http.MethodPost, "/grants", auth.AdminGrantChange{User: args[0], Glob: g.Glob, Actions: g.Actions}, &ag); err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd, ag)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "granted %s to %s; %s now holds: %s\n", auth.FormatGrantSpec(g), ag.Name, ag.Name, grantList(ag.Grants))
				return nil
			})
		},
	}
}

func newAdminRevokeCmd(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke USER REPO_GLOB",
		Short: "Remove a user's grant on a glob",
		Long: `Remove USER's grant on REPO_GLOB, all its actions. The glob must be written
as it was granted ('bulwark admin grants USER' lists them). Access tokens
already issued run out within minutes.`,
		Example: `  bulwark admin revoke alice 'team/*'`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.Contains(args[1], ":") {
				return fmt.Errorf("revoke takes a glob without actions (it removes the whole grant): 'bulwark admin revoke %s %s'", args[0], args[1][:strings.IndexByte(args[1], ':')])
			}
			return f.withAdmin(cmd, true, func(ctx context.Context, c *adminClient) error {
				q := url.Values{"user": {args[0]}, "glob": {args[1]}}
				if err := c.do(ctx, http.MethodDelete, "/grants?"+q.Encode(), nil, nil); err != nil {
					return err
				}
				return printDone(cmd, f, map[string]string{"user": args[0], "revoked": args[1]}, "revoked %s's grant on %s\n", args[0], args[1])
			})
		},
	}
}

func newAdminGrantsCmd(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "grants [USER]",
		Short: "List grants, of every account or of one",
		Long: `List grants: of USER (a user or a robot), or of every account. Admins may
do everything whatever their grants.`,
		Example: `  bulwark admin grants
  bulwark admin grants alice --output json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/grants"
			if len(args) == 1 {
				path += "?" + url.Values{"user": {args[0]}}.Encode()
			}
			return f.withAdmin(cmd, false, func(ctx context.Context, c *adminClient) error {
				var all []auth.AdminGrants
				if err := c.do(ctx, http.MethodGet, path, nil, &all); err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd, all)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tKIND\tGRANTS")
				for _, g := range all {
					kind := string(g.Kind)
					if g.Role == auth.RoleAdmin {
						kind += " (admin: everything)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Name, kind, grantList(g.Grants))
				}
				return tw.Flush()
			})
		},
	}
}

// printSecret reports a robot whose secret was just made.
func printSecret(cmd *cobra.Command, f *adminFlags, rb auth.AdminRobot, verb string) error {
	if f.output == "json" {
		return printJSON(cmd, rb)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s robot %s (grants %s; expires %s", verb, rb.Name, grantList(rb.Grants), expiryText(rb.Expires))
	if rb.Env != "" {
		fmt.Fprintf(w, "; env %s", rb.Env)
	}
	fmt.Fprintf(w, ").\n\nSecret (shown only this once; store it now, e.g. as a CI secret):\n\n  %s\n\n", rb.Secret)
	fmt.Fprintf(w, "Log in with the robot's name and the secret as password, e.g.\n  echo \"$SECRET\" | docker login REGISTRY -u %s --password-stdin\n", rb.Name)
	fmt.Fprintf(w, "A lost secret cannot be recovered: 'bulwark admin robot rotate %s' makes a new one.\n", rb.Name)
	return nil
}

// printDone reports a change without a result of its own: json prints v.
func printDone(cmd *cobra.Command, f *adminFlags, v any, format string, args ...any) error {
	if f.output == "json" {
		return printJSON(cmd, v)
	}
	fmt.Fprintf(cmd.OutOrStdout(), format, args...)
	return nil
}

func grantList(gs []auth.AdminGrant) string {
	if len(gs) == 0 {
		return "-"
	}
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = auth.FormatGrantSpec(auth.Grant{Glob: g.Glob, Actions: g.Actions})
	}
	return strings.Join(s, " ")
}

func expiryText(t *time.Time) string {
	switch {
	case t == nil:
		return "never"
	case !time.Now().Before(*t):
		return "EXPIRED " + t.Local().Format(time.DateTime)
	}
	return t.Local().Format(time.DateTime)
}
