package main

import (
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/server"
)

func newServeCmd() *cobra.Command {
	var (
		cf              configFlags
		addr            string
		tlsMode         string
		tlsCert, tlsKey string
		trustPolicy     string
		rulePolicy      string
		insecureHTTP    bool
		authEnabled     bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry",
		Long: `Run bulwark's OCI Distribution 1.1 registry.

With no flags it listens on 127.0.0.1:5000 and keeps blobs, metadata and keys
under ./bulwark-data. Settings come from, in increasing precedence: built-in
defaults, the --config YAML file, BULWARK_* environment variables
(BULWARK_ADDR, BULWARK_DATA, BULWARK_GC_INTERVAL, ...), and flags.

Access is denied by default: clients log in (docker login, skopeo --creds)
and get short-lived tokens from /token. The first start on an empty data
directory creates the administrator "admin" and prints its one-time password
(or takes it from BULWARK_ADMIN_PASSWORD). Create robot accounts for CI and
hosts with 'bulwark admin robot create'; allow anonymous pulls of some
repositories with auth.anonymous_pull in the config file.

Endpoints: /v2/ (the registry), /token (Docker token service), /healthz,
/metrics (Prometheus), and for administrators /admin/v1/ (accounts, audit,
gc, fsck, quarantine).

With --policy, every manifest pushed is decided by the policy engine for
the environments its repository belongs to; one the policy denies is
stored quarantined (served only to its pusher and administrators) until a
later decision passes, e.g. when the signatures it lacked arrive. Robots
bound to an environment (admin robot create --env prod) have every
manifest they pull decided for that environment. Decisions go to the audit
log ('bulwark decisions').`,
		Example: `  bulwark serve
  bulwark serve --addr 127.0.0.1:5001 --data /srv/bulwark
  bulwark serve --addr 0.0.0.0:5000 --tls auto
  bulwark serve --addr 0.0.0.0:443 --tls-cert /etc/bulwark/tls.crt --tls-key /etc/bulwark/tls.key
  BULWARK_GC_INTERVAL=15m bulwark serve --config bulwark.yaml
  bulwark serve --trust-policy trust.yaml --policy policy.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load(cmd)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("addr") {
				cfg.Addr = addr
			}
			if cmd.Flags().Changed("tls") {
				cfg.TLS.Mode = tlsMode
			}
			if cmd.Flags().Changed("tls-cert") || cmd.Flags().Changed("tls-key") {
				cfg.TLS.Mode, cfg.TLS.Cert, cfg.TLS.Key = "files", tlsCert, tlsKey
			}
			if cmd.Flags().Changed("auth") {
				cfg.Auth.Enabled = authEnabled
			}
			if cmd.Flags().Changed("insecure-http") {
				cfg.InsecureHTTP = insecureHTTP
			}
			if cmd.Flags().Changed("trust-policy") {
				cfg.TrustPolicy = trustPolicy
			}
			if cmd.Flags().Changed("policy") {
				cfg.Policy = rulePolicy
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(cfg.Log)
			ctx := cmd.Context()
			srv, err := server.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer srv.Close()
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			if b := srv.Bootstrap; b.Created && b.Password != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "Created the administrator account \"admin\" with the one-time password:\n\n    %s\n\nLog in with it (docker login / skopeo --creds admin:PASSWORD) and change it with\n'bulwark admin user passwd admin --password-stdin'. It is not shown again.\n", b.Password)
			} else if b.Created {
				fmt.Fprintln(cmd.ErrOrStderr(), `Created the administrator account "admin" with the password from BULWARK_ADMIN_PASSWORD.`)
			}
			if srv.TrustHelp != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), srv.TrustHelp)
			}
			log.Info("bulwark serving", "addr", ln.Addr().String(), "tls", srv.TLS(), "data", cfg.Data, "version", version)
			return srv.Serve(ctx, ln, 30*time.Second)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&addr, "addr", "", `listen address (default "127.0.0.1:5000", env BULWARK_ADDR)`)
	cmd.Flags().StringVar(&tlsMode, "tls", "", `"auto": serve HTTPS with a local CA and certificate kept in DATA/tls (prints how to trust it); "off": plain HTTP`)
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM, leaf first)")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "private key for --tls-cert (PEM)")
	cmd.Flags().BoolVar(&authEnabled, "auth", true, "require credentials (Docker token auth); --auth=false serves everyone, for a private loopback registry or tests")
	cmd.Flags().StringVar(&trustPolicy, "trust-policy", "", "trust policy file or Notation configuration directory: whose signatures count where (docs/trust-policy.md; env BULWARK_TRUST_POLICY)")
	cmd.Flags().StringVar(&rulePolicy, "policy", "", "policy file enforced at push and pull: CEL rules, bindings, exceptions (docs/policy.md; env BULWARK_POLICY); both files reload on change and on SIGHUP")
	cmd.Flags().BoolVar(&insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (credentials would cross the network in clear)")
	return cmd
}
