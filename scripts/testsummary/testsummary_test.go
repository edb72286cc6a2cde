package main

import (
	"strings"
	"testing"
)

// A trimmed `go test -json` stream covering passes, a failing subtest, a
// skip, a build failure, a test cut short by a panic elsewhere in its
// package, a TestMain failure and a stderr line from the go command.
const goTestJSON = `go: downloading example.com/dep v1.0.0
{"ImportPath":"ex/build [ex/build.test]","Action":"build-output","Output":"# ex/build [ex/build.test]\n"}
{"ImportPath":"ex/build [ex/build.test]","Action":"build-output","Output":"build/a_test.go:3:27: declared and not used: x\n"}
{"ImportPath":"ex/build [ex/build.test]","Action":"build-fail"}
{"Action":"start","Package":"ex/build"}
{"Action":"output","Package":"ex/build","Output":"FAIL\tex/build [build failed]\n"}
{"Action":"fail","Package":"ex/build","FailedBuild":"ex/build [ex/build.test]"}
{"Action":"start","Package":"ex/fail"}
{"Action":"run","Package":"ex/fail","Test":"TestF"}
{"Action":"output","Package":"ex/fail","Test":"TestF","Output":"=== RUN   TestF\n"}
{"Action":"run","Package":"ex/fail","Test":"TestF/sub"}
{"Action":"output","Package":"ex/fail","Test":"TestF/sub","Output":"=== RUN   TestF/sub\n"}
{"Action":"output","Package":"ex/fail","Test":"TestF/sub","Output":"    a_test.go:3: boom\n"}
{"Action":"output","Package":"ex/fail","Test":"TestF/sub","Output":"--- FAIL: TestF/sub (0.00s)\n"}
{"Action":"fail","Package":"ex/fail","Test":"TestF/sub"}
{"Action":"output","Package":"ex/fail","Test":"TestF","Output":"--- FAIL: TestF (0.00s)\n"}
{"Action":"fail","Package":"ex/fail","Test":"TestF"}
{"Action":"run","Package":"ex/fail","Test":"TestP"}
{"Action":"output","Package":"ex/fail","Test":"TestP","Output":"    a_test.go:4: quiet when passing\n"}
{"Action":"pass","Package":"ex/fail","Test":"TestP"}
{"Action":"output","Package":"ex/fail","Output":"FAIL\n"}
{"Action":"output","Package":"ex/fail","Output":"FAIL\tex/fail\t0.021s\n"}
{"Action":"fail","Package":"ex/fail"}
{"Action":"output","Package":"ex/none","Output":"?   \tex/none\t[no test files]\n"}
{"Action":"skip","Package":"ex/none"}
{"Action":"run","Package":"ex/ok","Test":"TestA"}
{"Action":"run","Package":"ex/ok","Test":"TestA/s2"}
{"Action":"output","Package":"ex/ok","Test":"TestA/s2","Output":"--- SKIP: TestA/s2 (0.00s)\n"}
{"Action":"skip","Package":"ex/ok","Test":"TestA/s2"}
{"Action":"pass","Package":"ex/ok","Test":"TestA"}
{"Action":"output","Package":"ex/ok","Output":"PASS\n"}
{"Action":"output","Package":"ex/ok","Output":"ok  \tex/ok\t0.023s\n"}
{"Action":"pass","Package":"ex/ok"}
{"Action":"run","Package":"ex/hang","Test":"TestHang"}
{"Action":"output","Package":"ex/hang","Test":"TestHang","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"ex/hang","Output":"FAIL\tex/hang\t1.002s\n"}
{"Action":"fail","Package":"ex/hang"}
{"Action":"run","Package":"ex/tmain","Test":"TestX"}
{"Action":"pass","Package":"ex/tmain","Test":"TestX"}
{"Action":"output","Package":"ex/tmain","Output":"FAIL\tex/tmain\t0.009s\n"}
{"Action":"fail","Package":"ex/tmain"}
`

func TestSummarizeGoTest(t *testing.T) {
	var out strings.Builder
	c, err := summarizeGoTest(strings.NewReader(goTestJSON), &out)
	if err != nil {
		t.Fatal(err)
	}
	// passed: TestP, TestA, TestX; failed: the build, TestF/sub, TestF,
	// TestHang (never finished), ex/tmain (no failing test); skipped: TestA/s2.
	want := counts{Passed: 3, Failed: 5, Skipped: 1}
	if c != want {
		t.Errorf("counts = %+v, want %+v", c, want)
	}
	if got, want := c.Line("gotest"), "gotest: 3 passed, 5 failed, 1 skipped"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}

	text := out.String()
	for _, s := range []string{
		"go: downloading example.com/dep v1.0.0\n",
		"build/a_test.go:3:27: declared and not used: x\n",
		"FAIL\tex/build [build failed]\n",
		"    a_test.go:3: boom\n--- FAIL: TestF/sub (0.00s)\n",
		"FAIL\tex/fail\t0.021s\n",
		"?   \tex/none\t[no test files]\n",
		"ok  \tex/ok\t0.023s\n",
		"--- FAIL: TestHang (did not finish)\npanic: test timed out after 1s\n",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("output lacks %q; output:\n%s", s, text)
		}
	}
	for _, s := range []string{"=== RUN", "quiet when passing", "SKIP", "PASS\n"} {
		if strings.Contains(text, s) {
			t.Errorf("output should not contain %q; output:\n%s", s, text)
		}
	}
}

func TestSummarizeGoTestAllPass(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}
{"Action":"pass","Package":"p"}` // no trailing newline
	var out strings.Builder
	c, err := summarizeGoTest(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if c != (counts{Passed: 1}) {
		t.Errorf("counts = %+v", c)
	}
	if out.String() != "ok  \tp\t0.1s\n" {
		t.Errorf("output = %q", out.String())
	}
}

// The shape written by the OCI conformance suite: status attributes, errors
// in system-out, suite totals that count checks rather than cases.
const conformanceJUnit = `<testsuites time="1.0" tests="7" failures="3" skipped="1">
  <testsuite name="OCI Conformance Test" tests="7" failures="3" errors="0" skipped="1" time="1.0">
    <properties><property name="Config" value="x"></property></properties>
    <testcase name="OCI Conformance Test/ping" classname="" time="0.1" status="passed"></testcase>
    <testcase name="OCI Conformance Test/empty/tag list" classname="" time="0.1" status="passed"><system-err>GET /v2/...</system-err></testcase>
    <testcase name="OCI Conformance Test/empty/referrers" classname="" time="0.1" status="failure"><system-out>unexpected status code, expected one of [200], received 404</system-out><system-err>request log</system-err></testcase>
    <testcase name="OCI Conformance Test/sha512 blobs/post" classname="" time="0.1" status="error"><system-out>line1
line2</system-out></testcase>
    <testcase name="OCI Conformance Test/tag param" classname="" time="0.1" status="skipped"></testcase>
    <testcase name="OCI Conformance Test/sparse" classname="" time="0.1" status="skipped"></testcase>
  </testsuite>
</testsuites>`

func TestSummarizeJUnitConformance(t *testing.T) {
	var out strings.Builder
	c, err := summarizeJUnit(strings.NewReader(conformanceJUnit), &out, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := (counts{Passed: 2, Failed: 2, Skipped: 2}); c != want {
		t.Errorf("counts = %+v, want %+v", c, want)
	}
	text := out.String()
	for _, s := range []string{
		"Failing cases (2):\n",
		"FAIL: OCI Conformance Test/empty/referrers\n      unexpected status code, expected one of [200], received 404\n",
		"... and 1 more",
		"tests=7 failures=3",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("output lacks %q; output:\n%s", s, text)
		}
	}
	if strings.Contains(text, "request log") {
		t.Errorf("output should not include system-err:\n%s", text)
	}
}

func TestSummarizeJUnitGeneric(t *testing.T) {
	in := `<testsuite name="s" tests="4" failures="1" errors="1">
  <testcase name="a" classname="pkg"/>
  <testcase name="b" classname="pkg"><failure message="expected 1">got 2</failure></testcase>
  <testcase name="c" classname="pkg"><error message="boom"/></testcase>
  <testcase name="d" classname="pkg"><skipped/></testcase>
</testsuite>`
	var out strings.Builder
	c, err := summarizeJUnit(strings.NewReader(in), &out, 40)
	if err != nil {
		t.Fatal(err)
	}
	if want := (counts{Passed: 1, Failed: 2, Skipped: 1}); c != want {
		t.Errorf("counts = %+v, want %+v", c, want)
	}
	if !strings.Contains(out.String(), "FAIL: pkg/b\n      expected 1\n      got 2\n") {
		t.Errorf("unexpected output:\n%s", out.String())
	}
}

func TestSummarizeJUnitSuiteTotalsOnly(t *testing.T) {
	// Failures counted by the suite but attached to no case still fail.
	in := `<testsuites><testsuite name="s" tests="2" failures="0" errors="1">
  <testcase name="a" status="passed"/>
</testsuite></testsuites>`
	c, err := summarizeJUnit(strings.NewReader(in), &strings.Builder{}, 40)
	if err != nil {
		t.Fatal(err)
	}
	if c.Failed != 1 || c.Passed != 1 {
		t.Errorf("counts = %+v, want 1 passed, 1 failed", c)
	}
}

func TestSummarizeJUnitBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":    ``,
		"no cases": `<testsuites><testsuite name="s" tests="0"></testsuite></testsuites>`,
		"other":    `<html></html>`,
		"broken":   `<testsuites><testsuite>`,
	} {
		if _, err := summarizeJUnit(strings.NewReader(in), &strings.Builder{}, 40); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestTruncateLines(t *testing.T) {
	got := truncateLines("a\nbbbbbb\nc\nd", 2, 3)
	want := "a\nbbb...\n... (2 more lines)"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
