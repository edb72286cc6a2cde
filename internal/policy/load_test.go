package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const goodPolicy = `version: 1
rules:
  - id: own-non-root
    expression: 'image.config.user != "" && !(image.config.user in ["root", "0", "0:0"])'
    message: 'image runs as root'
    remediation: 'add USER 1000 to the Dockerfile'
    severity: high
bindings:
  - name: prod-gate
    environments: [prod]
    repositories: ["prod/*"]
    actions: [push, pull, run]
    rules: [signed, own-non-root]
    mode: enforce
exceptions:
  - id: legacy-root
    repositories: ["prod/legacy"]
    rules: [own-non-root]
    reason: migrating off root, ticket SEC-12
    requested_by: alice
    approved_by: bob
    expires: 2030-01-01T00:00:00Z
    created: 2025-01-01T00:00:00Z
`

func TestParseGood(t *testing.T) {
	p, err := Parse([]byte(goodPolicy), "good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 1 || p.Rules[0].ID != "own-non-root" || p.Rules[0].Line != 3 || p.Rules[0].Severity != SeverityHigh {
		t.Errorf("rules: %+v", p.Rules[0])
	}
	b := p.Bindings[0]
	if b.Name != "prod-gate" || b.Line != 9 || b.Mode != ModeEnforce || len(b.Actions) != 3 || strings.Join(b.Rules, ",") != "signed,own-non-root" {
		t.Errorf("binding: %+v", b)
	}
	x := p.Exceptions[0]
	if x.ID != "legacy-root" || !x.Expires.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) || x.Created.Year() != 2025 || x.Line != 16 {
		t.Errorf("exception: %+v", x)
	}
	if !strings.HasPrefix(p.Version(), "sha256:") || len(p.Version()) != 71 {
		t.Errorf("version %q", p.Version())
	}
	p2, _ := Parse([]byte(goodPolicy+"\n# a comment changes the file\n"), "good.yaml")
	if p2.Version() == p.Version() {
		t.Error("version does not change with the file")
	}
	if r, ok := p.Rule("signed"); !ok || !r.Builtin {
		t.Error("built-in signed not found")
	}
	if !p.Enforced("prod") || p.Enforced("dev") {
		t.Error("Enforced")
	}
}

// TestParseBad: every broken policy is refused with the line of the
// mistake and a message that names it.
func TestParseBad(t *testing.T) {
	const head = "version: 1\n"
	bind := func(rules string) string {
		return "bindings:\n  - environments: [prod]\n    repositories: [\"**\"]\n    actions: [run]\n    rules: [" + rules + "]\n    mode: enforce\n"
	}
	rule := func(expr string) string {
		return "rules:\n  - id: r\n    expression: '" + expr + "'\n    message: m\n"
	}
	exc := func(fields string) string {
		return "exceptions:\n  - id: x\n    rules: [signed]\n" + fields
	}
	const excOK = "    digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n    reason: r\n    requested_by: alice\n    approved_by: bob\n    expires: 2030-01-01T00:00:00Z\n"
	tests := []struct {
		name, policy string
		line         int
		want         string
	}{
		{"empty", "", 0, "empty"},
		{"yaml syntax", head + "rules: [\n  - id: x\n", 2, "YAML"},
		{"yaml tab", head + "rules:\n\t- id: x\n", 3, "YAML"},
		{"two documents", head + "---\nversion: 1\n", 2, "only one YAML document"},
		{"not a mapping", "- a\n", 1, "must be a mapping"},
		{"no version", "rules: []\n", 1, `missing "version"`},
		{"version 2", "version: 2\n", 1, "version must be the integer 1"},
		{"version string", "version: \"1\"\n", 1, "version must be the integer 1"},
		{"unknown top key", head + "rulez: []\n", 2, `unknown key "rulez"`},
		{"duplicate top key", head + "rules: []\nrules: []\n", 3, `key "rules" is given twice`},
		{"unknown rule key", head + "rules:\n  - id: r\n    expresion: 'true'\n    message: m\n", 4, `unknown key "expresion"`},
		{"duplicate rule key", head + "rules:\n  - id: r\n    expression: 'true'\n    expression: 'false'\n    message: m\n", 5, `key "expression" is given twice`},
		{"alias", head + "rules:\n  - &a {id: r, expression: 'true', message: m}\n  - *a\n", 4, "alias"},
		{"missing expression", head + "rules:\n  - id: r\n    message: m\n", 3, "missing expression"},
		{"missing message", head + "rules:\n  - id: r\n    expression: 'true'\n", 3, "missing message"},
		{"bad id", head + "rules:\n  - id: Has Space\n    expression: 'true'\n    message: m\n", 3, "must match"},
		{"bad severity", head + "rules:\n  - id: r\n    expression: 'true'\n    message: m\n    severity: urgent\n", 6, `severity "urgent"`},
		{"syntax error", head + rule(`image.config.user ==`), 4, "Syntax error"},
		{"unknown variable", head + rule(`img.config.user == ""`), 4, "undeclared reference to 'img'"},
		{"unknown field", head + rule(`image.config.usr == ""`), 4, "undefined field 'usr'"},
		{"unknown nested field", head + rule(`runtime.mounts.all(m, m.src != "")`), 4, "undefined field 'src'"},
		{"not bool", head + rule(`image.config.user`), 4, "must evaluate to bool, but evaluates to string"},
		{"not bool dyn", head + rule(`image.config.labels["a"]`), 4, "must evaluate to bool"},
		{"type error", head + rule(`image.config.user == 1`), 4, "no matching overload"},
		{"message expression not string", head + "rules:\n  - id: r\n    expression: 'true'\n    message_expression: '1'\n", 5, "message_expression must evaluate to string"},
		{"message expression unknown field", head + "rules:\n  - id: r\n    expression: 'true'\n    message_expression: 'image.nope'\n", 5, "undefined field 'nope'"},
		{"error in block scalar", head + "rules:\n  - id: r\n    expression: |\n      image.config.user != \"\" &&\n      image.config.nope\n    message: m\n", 6, "undefined field 'nope'"},
		{"cost always exceeded", head + rule(`size([1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, [1,2,3,4,5,6,7,8,9,10].map(d, [1,2,3,4,5,6,7,8,9,10].map(e, a+b+c+d+e)))))) > 0`), 4, "always exceeds the evaluation cost limit"},
		{"duplicate rule id", head + "rules:\n  - id: r\n    expression: 'true'\n    message: m\n  - id: r\n    expression: 'true'\n    message: m\n", 6, `rule "r" is defined twice (first on line 3)`},
		{"redefine built-in", head + "rules:\n  - id: signed\n    expression: 'true'\n    message: m\n", 3, "is a built-in rule"},
		{"unknown rule in binding", head + bind("signed, nope"), 6, `unknown rule "nope"`},
		{"rule twice in binding", head + bind("signed, signed"), 6, `rule "signed" is listed twice`},
		{"binding without mode", head + "bindings:\n  - environments: [prod]\n    repositories: [\"**\"]\n    actions: [run]\n    rules: [signed]\n", 3, "missing mode"},
		{"bad mode", head + strings.Replace(bind("signed"), "enforce", "block", 1), 7, `mode "block"`},
		{"bad action", head + strings.Replace(bind("signed"), "[run]", "[exec]", 1), 5, `action "exec"`},
		{"bad glob", head + strings.Replace(bind("signed"), `"**"`, `"a**"`, 1), 4, "invalid repository glob"},
		{"bad environment", head + strings.Replace(bind("signed"), "[prod]", "[Prod]", 1), 3, "not an environment name"},
		{"empty rules list", head + bind(""), 6, "must not be empty"},
		{"params for unlisted rule", head + strings.Replace(bind("signed"), "mode:", "params: {max-age: {max: 30d}}\n    mode:", 1), 7, "which the binding does not apply"},
		{"params unknown", head + strings.Replace(bind("max-age"), "mode:", "params: {max-age: {maximum: 30d}}\n    mode:", 1), 7, `no parameter "maximum"`},
		{"params bad duration", head + strings.Replace(bind("max-age"), "mode:", "params: {max-age: {max: soon}}\n    mode:", 1), 7, "want a number of days"},
		{"params bad severity", head + strings.Replace(bind("max-severity"), "mode:", "params: {max-severity: {severity: huge}}\n    mode:", 1), 7, `"huge" is not one of`},
		{"params bad regex", head + strings.Replace(bind("pinned-tag"), "mode:", "params: {pinned-tag: {tags: \"(\"}}\n    mode:", 1), 7, "missing closing"},
		{"params for own rule", head + rule("true") + strings.Replace(bind("r"), "mode:", "params: {r: {x: y}}\n    mode:", 1), 11, "takes no parameters"},
		{"exception without expiry", head + exc(strings.Replace(excOK, "    expires: 2030-01-01T00:00:00Z\n", "", 1)), 3, "missing expires"},
		{"exception without reason", head + exc(strings.Replace(excOK, "    reason: r\n", "", 1)), 3, "missing reason"},
		{"exception blank reason", head + exc(strings.Replace(excOK, "reason: r", "reason: '  '", 1)), 6, "reason is blank"},
		{"exception without approver", head + exc(strings.Replace(excOK, "    approved_by: bob\n", "", 1)), 3, "missing approved_by"},
		{"exception self-approved", head + exc(strings.Replace(excOK, "approved_by: bob", "approved_by: Alice", 1)), 8, "approved by its requester"},
		{"exception empty approver", head + exc(strings.Replace(excOK, "approved_by: bob", "approved_by: ''", 1)), 8, "empty string"},
		{"exception bad expiry", head + exc(strings.Replace(excOK, "2030-01-01T00:00:00Z", "2030-01-01", 1)), 9, "not an RFC 3339 time"},
		{"exception created after expiry", head + exc(excOK+"    created: 2031-01-01T00:00:00Z\n"), 10, "is not before expires"},
		{"exception no scope", head + exc(strings.Replace(excOK, "    digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", "", 1)), 3, "missing scope"},
		{"exception both scopes", head + exc(excOK+"    repositories: [\"a/*\"]\n"), 10, "not both"},
		{"exception bad digest", head + exc(strings.Replace(excOK, "sha256:0123", "sha256:zz23", 1)), 5, "digest"},
		{"exception unknown rule", head + strings.Replace(exc(excOK), "[signed]", "[nope]", 1), 4, `unknown rule "nope"`},
		{"exception twice", head + exc(excOK) + strings.TrimPrefix(exc(excOK), "exceptions:\n"), 10, `exception "x" is defined twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.policy), "p.yaml")
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *PolicyError", err)
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Error("error does not wrap ErrInvalidPolicy")
			}
			if pe.Line != tt.line || pe.File != "p.yaml" || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got line %d: %v\nwant line %d containing %q", pe.Line, err, tt.line, tt.want)
			}
			if tt.line > 0 && !strings.HasPrefix(err.Error(), "p.yaml:"+strconv.Itoa(tt.line)+": ") {
				t.Errorf("error %q does not start with file:line", err)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(goodPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil || p.Name() != path {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) || !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, []byte("version: 1\n#"+strings.Repeat("x", MaxPolicySize)), 0o600)
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

// TestExamplePolicy keeps examples/policy.yaml valid.
func TestExamplePolicy(t *testing.T) {
	p, err := Load("../../examples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Bindings) == 0 || len(p.Rules) == 0 || len(p.Exceptions) == 0 {
		t.Errorf("the example should show rules, bindings and exceptions: %d %d %d", len(p.Rules), len(p.Bindings), len(p.Exceptions))
	}
}

func TestLint(t *testing.T) {
	src := `version: 1
rules:
  - id: unused
    expression: 'true'
    message: m
bindings:
  - environments: [prod]
    repositories: ["**"]
    actions: [run]
    rules: [signed]
    mode: enforce
exceptions:
  - id: old
    digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    rules: [signed]
    reason: r
    requested_by: a
    approved_by: b
    expires: 2024-01-01T00:00:00Z
  - id: soon
    repositories: ["**"]
    rules: [non-root]
    reason: r
    requested_by: a
    approved_by: b
    expires: 2025-01-03T00:00:00Z
`
	p, err := Parse([]byte(src), "lint.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ws := p.Lint(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	var got []string
	for _, w := range ws {
		got = append(got, strconv.Itoa(w.Line)+": "+w.Message)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{`3: rule "unused" is not used`, "13: exception old expired at 2024-01-01T00:00:00Z", "20: exception soon expires in 48h0m0s",
		`20: exception soon waives rule "non-root", which no binding applies`} {
		if !strings.Contains(all, want) {
			t.Errorf("lint output lacks %q:\n%s", want, all)
		}
	}
	if len(ws) != 4 {
		t.Errorf("%d warnings:\n%s", len(ws), all)
	}
}
