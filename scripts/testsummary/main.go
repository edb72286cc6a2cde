// Command testsummary turns machine-readable test results into readable
// output and a one-line count for CI. It uses only the standard library so
// that it builds on a fresh machine without fetching anything.
//
// Usage:
//
//	testsummary gotest [-label gotest] [-summary FILE] [JSONFILE]
//	testsummary junit  [-label conformance] [-summary FILE] [-max-failures 40] XMLFILE
//
// gotest reads a `go test -json` stream (JSONFILE or stdin) and prints what a
// non-verbose `go test` would show: the `ok`/`FAIL`/`?` line of every package,
// build errors, and the full output of every failing test. Lines that are not
// test2json events (for example "go: downloading ..." on stderr) are passed
// through unchanged.
//
// junit reads a JUnit XML report (as written by the OCI conformance suite)
// and prints the failing cases with their messages.
//
// Both finish with a line of the form
//
//	LABEL: N passed, N failed[, N skipped]
//
// which is also written to -summary FILE when given, and exit 1 when anything
// failed (2 on bad input).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "gotest":
		os.Exit(runGoTest(os.Args[2:]))
	case "junit":
		os.Exit(runJUnit(os.Args[2:]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testsummary gotest [-label L] [-summary FILE] [JSONFILE]")
	fmt.Fprintln(os.Stderr, "       testsummary junit [-label L] [-summary FILE] [-max-failures N] XMLFILE")
	os.Exit(2)
}

// counts is the result of one test run.
type counts struct {
	Passed, Failed, Skipped int
}

// Line renders the CI summary line.
func (c counts) Line(label string) string {
	s := fmt.Sprintf("%s: %d passed, %d failed", label, c.Passed, c.Failed)
	if c.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", c.Skipped)
	}
	return s
}

// finish prints the summary line, writes it to summaryFile if set, and
// returns the process exit code.
func finish(c counts, label, summaryFile string) int {
	line := c.Line(label)
	fmt.Println(line)
	if summaryFile != "" {
		if err := os.WriteFile(summaryFile, []byte(line+"\n"), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
			return 2
		}
	}
	if c.Failed > 0 {
		return 1
	}
	return 0
}

func runGoTest(args []string) int {
	fs := flag.NewFlagSet("gotest", flag.ExitOnError)
	label := fs.String("label", "gotest", "label for the summary line")
	summary := fs.String("summary", "", "also write the summary line to this file")
	_ = fs.Parse(args)

	var in io.Reader = os.Stdin
	if fs.NArg() > 0 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	c, err := summarizeGoTest(in, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: reading go test output: %v\n", err)
		return 2
	}
	return finish(c, *label, *summary)
}

func runJUnit(args []string) int {
	fs := flag.NewFlagSet("junit", flag.ExitOnError)
	label := fs.String("label", "conformance", "label for the summary line")
	summary := fs.String("summary", "", "also write the summary line to this file")
	maxFail := fs.Int("max-failures", 40, "print at most this many failing cases")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		return 2
	}
	defer f.Close()
	c, err := summarizeJUnit(f, os.Stdout, *maxFail)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %s: %v\n", fs.Arg(0), err)
		return 2
	}
	return finish(c, *label, *summary)
}
