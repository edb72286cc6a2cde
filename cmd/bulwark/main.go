// Command bulwark is a trusted container supply chain in one binary. This
// package only parses flags and prints; the work is done by the packages
// under internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "bulwark:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "bulwark:", err)
		os.Exit(1)
	}
}

// exitError carries a specific exit status (fsck uses 2 for "problems
// found" so scripts can tell it from "could not run").
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
