package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit report structure. The OCI conformance suite writes
// <testsuites><testsuite><testcase status="passed|skipped|failure|error">
// and puts a case's error messages in <system-out> (its request/response log
// goes to <system-err>); other JUnit writers mark results with <failure>,
// <error> and <skipped> child elements. Both forms are understood.
type junitSuite struct {
	XMLName  xml.Name
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Disabled int          `xml:"disabled,attr"`
	Cases    []junitCase  `xml:"testcase"`
	Suites   []junitSuite `xml:"testsuite"` // <testsuites> children or nested suites
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Status    string        `xml:"status,attr"`
	Failure   *junitMessage `xml:"failure"`
	Error     *junitMessage `xml:"error"`
	Skipped   *junitMessage `xml:"skipped"`
	SystemOut string        `xml:"system-out"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// result classifies a test case as "passed", "failed" or "skipped".
func (tc junitCase) result() string {
	switch strings.ToLower(tc.Status) {
	case "failure", "failed", "error":
		return "failed"
	case "skipped", "disabled":
		return "skipped"
	case "passed", "pass", "success":
		return "passed"
	}
	switch {
	case tc.Failure != nil || tc.Error != nil:
		return "failed"
	case tc.Skipped != nil:
		return "skipped"
	}
	return "passed"
}

// message is the best available explanation of a failed case.
func (tc junitCase) message() string {
	var parts []string
	for _, m := range []*junitMessage{tc.Failure, tc.Error} {
		if m == nil {
			continue
		}
		for _, s := range []string{m.Message, m.Text} {
			if s = strings.TrimSpace(s); s != "" {
				parts = append(parts, s)
			}
		}
	}
	if s := strings.TrimSpace(tc.SystemOut); s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, "\n")
}

// summarizeJUnit counts the test cases of a JUnit report read from in and
// prints the first maxFail failing cases with their messages to out.
// Skipped cases include those the suite reports as disabled by configuration.
// A report without any test case is an error.
func summarizeJUnit(in io.Reader, out io.Writer, maxFail int) (counts, error) {
	var root junitSuite
	if err := xml.NewDecoder(in).Decode(&root); err != nil {
		return counts{}, fmt.Errorf("parsing JUnit XML: %w", err)
	}
	var suites []junitSuite
	switch root.XMLName.Local {
	case "testsuites":
		suites = root.Suites
	case "testsuite":
		suites = []junitSuite{root}
	default:
		return counts{}, fmt.Errorf("unexpected root element <%s>", root.XMLName.Local)
	}

	var c counts
	var failed []junitCase
	suiteFailures := 0
	var walk func([]junitSuite)
	walk = func(ss []junitSuite) {
		for _, s := range ss {
			if len(s.Suites) == 0 { // a parent suite's totals include its children's
				suiteFailures += s.Failures + s.Errors
			}
			for _, tc := range s.Cases {
				switch tc.result() {
				case "passed":
					c.Passed++
				case "skipped":
					c.Skipped++
				default:
					c.Failed++
					failed = append(failed, tc)
				}
			}
			walk(s.Suites)
		}
	}
	walk(suites)
	if c.Passed+c.Failed+c.Skipped == 0 {
		return c, fmt.Errorf("no test cases in report")
	}

	if len(failed) > 0 {
		fmt.Fprintf(out, "Failing cases (%d):\n", len(failed))
	}
	for i, tc := range failed {
		if i == maxFail {
			fmt.Fprintf(out, "... and %d more, see the full report\n", len(failed)-maxFail)
			break
		}
		name := tc.Name
		if tc.Classname != "" && !strings.HasPrefix(name, tc.Classname) {
			name = tc.Classname + "/" + name
		}
		fmt.Fprintf(out, "FAIL: %s\n", name)
		if msg := tc.message(); msg != "" {
			fmt.Fprintf(out, "      %s\n", indent(truncateLines(msg, 12, 400), "      "))
		}
	}

	// The conformance suite's own totals count checks, not test cases (one
	// case can run several), and also count errors of steps that have no
	// case of their own. Show them, and never let a report whose totals
	// list failures pass as "0 failed".
	if len(suites) == 1 && len(suites[0].Suites) == 0 {
		s := suites[0]
		fmt.Fprintf(out, "suite totals (checks, not cases): tests=%d failures=%d errors=%d skipped=%d disabled=%d\n",
			s.Tests, s.Failures, s.Errors, s.Skipped, s.Disabled)
	}
	if c.Failed == 0 && suiteFailures > 0 {
		fmt.Fprintf(out, "note: no test case failed but the suite totals list %d failures/errors; counting those\n", suiteFailures)
		c.Failed = suiteFailures
	}
	return c, nil
}

// truncateLines keeps at most maxLines lines of at most maxLen bytes each.
func truncateLines(s string, maxLines, maxLen int) string {
	lines := strings.Split(s, "\n")
	extra := 0
	if len(lines) > maxLines {
		extra = len(lines) - maxLines
		lines = lines[:maxLines]
	}
	for i, l := range lines {
		if len(l) > maxLen {
			lines[i] = l[:maxLen] + "..."
		}
	}
	if extra > 0 {
		lines = append(lines, fmt.Sprintf("... (%d more lines)", extra))
	}
	return strings.Join(lines, "\n")
}

func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
