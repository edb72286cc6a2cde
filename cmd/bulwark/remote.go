package main

import (
	"errors"
	"net/http"
	"os"
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
