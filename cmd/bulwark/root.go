package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/config"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "bulwark",
		Short: "A trusted container supply chain in one binary",
		Long: `bulwark is an OCI registry with accounts, content trust, one policy engine,
a hardened runner and vulnerability inventory.

Start a local registry with everything kept in ./bulwark-data (the first
start creates the administrator "admin" and prints its one-time password):

  bulwark serve

Give CI a robot account limited to some repositories, then push with any
OCI client:

  bulwark admin robot create ci --grant 'team/*:pull,push'
  skopeo copy --dest-tls-verify=false --dest-creds ci:SECRET oci:./layout:latest docker://127.0.0.1:5000/team/app:v1`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newAdminCmd(), newAuditCmd(), newPKICmd(), newSignCmd(), newVerifyCmd(), newPolicyCmd(), newPromoteCmd(), newApprovalsCmd(), newDecisionsCmd(), newRunCmd(), newPsCmd(), newStopCmd(), newLogsCmd(), newSuperviseCmd(), newReportCmd(), newSBOMCmd(), newScanCmd(), newVulndbCmd(), newGCCmd(), newFsckCmd(), newVersionCmd())
	return root
}

// configFlags are the flags every command that opens a data directory has.
type configFlags struct {
	configFile string
	data       string
}

func (f *configFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.configFile, "config", "", "YAML configuration file (keys documented in docs/configuration.md)")
	cmd.Flags().StringVar(&f.data, "data", "", `data directory (default "./bulwark-data", env BULWARK_DATA)`)
}

// load reads the configuration: defaults, file, BULWARK_* environment, then
// flags given on the command line.
func (f *configFlags) load(cmd *cobra.Command) (config.Config, error) {
	cfg, err := config.Load(f.configFile, os.Environ())
	if err != nil {
		return cfg, err
	}
	if cmd.Flags().Changed("data") {
		cfg.Data = f.data
	}
	return cfg, cfg.Validate()
}

func newLogger(cfg config.Log) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Format
	if format == "auto" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print bulwark's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			cmd.Println("bulwark", version)
		},
	}
}
