package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"
)

// serverAuthorization is the Authorization header for commands that work
// through a running server (--server): a bearer token from env
// BULWARK_TOKEN, else Basic credentials of username with the password from
// env BULWARK_PASSWORD, else none (a server without authentication, or one
// that only accepts loopback clients for these endpoints).
func serverAuthorization(username string) (string, error) {
	if token := os.Getenv("BULWARK_TOKEN"); token != "" {
		return "Bearer " + token, nil
	}
	if username == "" {
		return "", nil
	}
	password := os.Getenv("BULWARK_PASSWORD")
	if password == "" {
		return "", errors.New("--username needs the password in env BULWARK_PASSWORD (or set BULWARK_TOKEN)")
	}
	req := http.Request{Header: http.Header{}}
	req.SetBasicAuth(username, password)
	return req.Header.Get("Authorization"), nil
}

const usernameHelp = "with --server: authenticate as this administrator, password from env BULWARK_PASSWORD (env BULWARK_TOKEN, a bearer token, takes precedence)"

// serverFlags are shared by commands that work on a data directory or
// through a running server (--server, as an administrator).
type serverFlags struct {
	configFlags
	server   string
	username string
	output   string
}

// register adds --config, --data, --server, --username and --output;
// serverHelp says what --server does for this command.
func (f *serverFlags) register(cmd *cobra.Command, serverHelp string) {
	f.configFlags.register(cmd)
	cmd.Flags().StringVar(&f.server, "server", "", serverHelp+" (as an administrator, see --username)")
	cmd.Flags().StringVar(&f.username, "username", "", usernameHelp)
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
}

func (f *serverFlags) checkOutput() error {
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("--output must be text or json, not %q", f.output)
	}
	return nil
}
