package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/auth"
)

// newAdminKeysCmd manages the token signing keys in DATA/auth/keys. It works
// on the data directory only: a running server picks up a rotation within
// about a second, and keeps verifying tokens signed by the retired key
// until they have expired.
func newAdminKeysCmd(f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List or rotate the token signing keys",
		Long: `Access tokens are ES256 JWTs signed with a key kept in DATA/auth/keys.
'rotate' makes a new signing key; the previous one is kept, public part only,
for 24 hours so tokens it signed stay valid until they expire. A running
server picks the new key up by itself. Works on --data only.`,
		Example: `  bulwark admin keys list
  bulwark admin keys rotate --data /srv/bulwark`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	open := func(cmd *cobra.Command) (*auth.KeySet, error) {
		if f.server != "" {
			return nil, errors.New("keys are managed on the data directory (--data), not through --server")
		}
		cfg, err := f.load(cmd)
		if err != nil {
			return nil, err
		}
		return auth.OpenKeySet(filepath.Join(cfg.Data, "auth", "keys"), auth.KeySetOptions{})
	}
	print := func(cmd *cobra.Command, ks *auth.KeySet) error {
		keys := ks.Keys()
		if f.output == "json" {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(keys)
		}
		for _, k := range keys {
			state := "retired " + k.Retired.UTC().Format(time.RFC3339)
			if k.Current {
				state = "current (signs new tokens)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s  created %s  %s\n", k.KID, k.Created.UTC().Format(time.RFC3339), state)
		}
		return nil
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List signing keys (current and retired)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := open(cmd)
			if err != nil {
				return err
			}
			return print(cmd, ks)
		},
	}, &cobra.Command{
		Use:   "rotate",
		Short: "Make a new signing key; tokens signed by the old one stay valid until they expire",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := open(cmd)
			if err != nil {
				return err
			}
			if _, err := ks.Rotate(); err != nil {
				return err
			}
			return print(cmd, ks)
		},
	})
	return cmd
}
