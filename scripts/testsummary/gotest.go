package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// testEvent is one line of `go test -json` (see `go doc test2json`).
type testEvent struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // set on build-output / build-fail events
}

type testKey struct{ pkg, test string }

// goTestSummary holds the state of one `go test -json` stream.
type goTestSummary struct {
	out         io.Writer
	c           counts
	output      map[testKey][]string // output of tests that have not finished
	running     map[testKey]int      // unfinished tests, with their start order
	failedTests map[string]int       // failing tests per package
	n           int
}

// summarizeGoTest reads a `go test -json` stream from in, writes readable
// output to out and counts the results.
//
// Counting rules:
//   - every test that reports pass/fail/skip counts once, top-level tests and
//     subtests alike (a failing subtest also fails its parent, so both count);
//   - a test that started but never reported a result in a package that
//     failed (a panic in another goroutine, -timeout, os.Exit) counts as failed;
//   - a package that failed without any failing test (build error, TestMain
//     exit code, crash before tests ran) counts as one failure, so a broken
//     package can never be summarised as "0 failed".
func summarizeGoTest(in io.Reader, out io.Writer) (counts, error) {
	s := &goTestSummary{
		out:         out,
		output:      map[testKey][]string{},
		running:     map[testKey]int{},
		failedTests: map[string]int{},
	}
	r := bufio.NewReader(in) // no line-length limit, unlike bufio.Scanner
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			s.handle(line)
		}
		if errors.Is(err, io.EOF) {
			return s.c, nil
		}
		if err != nil {
			return s.c, err
		}
	}
}

func (s *goTestSummary) handle(line string) {
	s.n++
	var ev testEvent
	trimmed := strings.TrimSpace(line)
	if !strings.HasPrefix(trimmed, "{") || json.Unmarshal([]byte(trimmed), &ev) != nil || ev.Action == "" {
		// Not a test2json event: stderr of the go command, such as module
		// download messages or package loading errors. Show it as is.
		if !strings.HasSuffix(line, "\n") {
			line += "\n"
		}
		io.WriteString(s.out, line)
		return
	}

	switch {
	case ev.Action == "build-output":
		io.WriteString(s.out, ev.Output)
	case ev.Action == "build-fail":
		// The package's own "fail" event follows and is counted there.
	case ev.Test == "":
		s.packageEvent(ev)
	default:
		s.testEvent(ev)
	}
}

func (s *goTestSummary) packageEvent(ev testEvent) {
	switch ev.Action {
	case "output":
		// A lone "PASS"/"FAIL" precedes the "ok"/"FAIL pkg" line and only
		// adds noise, as in non-verbose go test.
		if o := strings.TrimSpace(ev.Output); o == "PASS" || o == "FAIL" {
			return
		}
		io.WriteString(s.out, ev.Output)
	case "fail":
		// Tests that never finished were cut short by whatever made the
		// package fail: show their output and count them.
		var left []testKey
		for k := range s.running {
			if k.pkg == ev.Package {
				left = append(left, k)
			}
		}
		sort.Slice(left, func(i, j int) bool { return s.running[left[i]] < s.running[left[j]] })
		for _, k := range left {
			fmt.Fprintf(s.out, "--- FAIL: %s (did not finish)\n", k.test)
			s.finishTest(k, "fail")
		}
		if s.failedTests[ev.Package] == 0 {
			s.c.Failed++
		}
	}
}

func (s *goTestSummary) testEvent(ev testEvent) {
	k := testKey{ev.Package, ev.Test}
	switch ev.Action {
	case "run":
		s.running[k] = s.n
	case "output":
		s.output[k] = append(s.output[k], ev.Output)
	case "pass", "skip", "fail":
		s.finishTest(k, ev.Action)
	}
}

func (s *goTestSummary) finishTest(k testKey, action string) {
	switch action {
	case "pass":
		s.c.Passed++
	case "skip":
		s.c.Skipped++
	case "fail":
		s.c.Failed++
		s.failedTests[k.pkg]++
		// Print the failing test's output without the verbose-mode framing
		// lines (=== RUN/PAUSE/CONT/NAME), which carry no information here.
		for _, l := range s.output[k] {
			if !strings.HasPrefix(l, "=== ") {
				io.WriteString(s.out, l)
			}
		}
	}
	delete(s.running, k)
	delete(s.output, k)
}
