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
		cf   configFlags
		addr string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry",
		Long: `Run bulwark's OCI Distribution 1.1 registry.

With no flags it listens on 127.0.0.1:5000 and keeps blobs, metadata and keys
under ./bulwark-data. Settings come from, in increasing precedence: built-in
defaults, the --config YAML file, BULWARK_* environment variables
(BULWARK_ADDR, BULWARK_DATA, BULWARK_GC_INTERVAL, ...), and flags.

Endpoints: /v2/ (the registry), /healthz, /metrics (Prometheus), and on
loopback only /admin/v1/gc and /admin/v1/fsck.`,
		Example: `  bulwark serve
  bulwark serve --addr 127.0.0.1:5001 --data /srv/bulwark
  BULWARK_GC_INTERVAL=15m bulwark serve --config bulwark.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load(cmd)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("addr") {
				cfg.Addr = addr
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
			log.Info("bulwark serving", "addr", ln.Addr().String(), "data", cfg.Data, "version", version)
			return srv.Serve(ctx, ln, 30*time.Second)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&addr, "addr", "", `listen address (default "127.0.0.1:5000", env BULWARK_ADDR)`)
	return cmd
}
