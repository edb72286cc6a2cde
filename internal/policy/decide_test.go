package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const modesPolicy = `version: 1
rules:
  - id: has-label
    expression: '"team" in image.config.labels'
    message: the image has no team label
bindings:
  - name: prod-enforce
    environments: [prod]
    repositories: ["prod/**"]
    actions: [pull, run]
    rules: [non-root]
    mode: enforce
  - name: prod-warn
    environments: [prod]
    repositories: ["prod/**", "shared/*"]
    actions: [pull]
    rules: [has-label, non-root]
    mode: warn
  - name: staging-warn
    environments: [staging]
    repositories: ["**"]
    actions: [pull]
    rules: [has-label]
    mode: warn
  - name: dev-audit
    environments: [dev]
    repositories: ["**"]
    actions: [push, pull, run]
    rules: [non-root, has-label]
    mode: audit
  - name: everywhere
    environments: ["*"]
    repositories: ["global/*"]
    actions: [push]
    rules: [has-label]
    mode: audit
`

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type ruleWant struct {
	id     string
	result Result
	mode   Mode
}

func TestBindingsAndModes(t *testing.T) {
	p := mustParse(t, modesPolicy)
	root := func(in *Input) { in.Image.Config.User = "root" }
	labelled := func(in *Input) { in.Image.Config.Labels = map[string]string{"team": "shop"} }
	tests := []struct {
		name        string
		env, repo   string
		action      Action
		change      func(*Input)
		allowed     bool
		mode        Mode
		defaultDeny bool
		bindings    []int
		rules       []ruleWant
		warnings    int
	}{
		{"enforce violation denies; warn binding adds its own rule", "prod", "prod/app", ActionPull, root, false, ModeEnforce, false, []int{0, 1},
			[]ruleWant{{"non-root", ResultViolated, ModeEnforce}, {"has-label", ResultViolated, ModeWarn}}, 1},
		{"warn violation allows with a warning", "prod", "prod/app", ActionPull, nil, true, ModeEnforce, false, []int{0, 1},
			[]ruleWant{{"non-root", ResultPass, ModeEnforce}, {"has-label", ResultViolated, ModeWarn}}, 1},
		{"all pass", "prod", "prod/team/app", ActionPull, labelled, true, ModeEnforce, false, []int{0, 1},
			[]ruleWant{{"non-root", ResultPass, ModeEnforce}, {"has-label", ResultPass, ModeWarn}}, 0},
		{"default deny: enforced env, action not bound", "prod", "prod/app", ActionPush, nil, false, ModeEnforce, true, nil, nil, 0},
		{"default deny: enforced env, repository not bound", "prod", "other/app", ActionRun, labelled, false, ModeEnforce, true, nil, nil, 0},
		{"warn-only binding in an enforced env", "prod", "shared/lib", ActionPull, root, true, ModeWarn, false, []int{1},
			[]ruleWant{{"has-label", ResultViolated, ModeWarn}, {"non-root", ResultViolated, ModeWarn}}, 2},
		{"warn environment", "staging", "any/thing", ActionPull, nil, true, ModeWarn, false, []int{2},
			[]ruleWant{{"has-label", ResultViolated, ModeWarn}}, 1},
		{"unenforced environment without binding allows", "staging", "any/thing", ActionRun, nil, true, "", false, nil, nil, 0},
		{"audit records, allows, warns nobody", "dev", "x", ActionRun, root, true, ModeAudit, false, []int{3},
			[]ruleWant{{"non-root", ResultViolated, ModeAudit}, {"has-label", ResultViolated, ModeAudit}}, 0},
		{"unknown environment", "qa", "prod/app", ActionPull, root, true, "", false, nil, nil, 0},
		{"star binding matches no environment too", "", "global/base", ActionPush, nil, true, ModeAudit, false, []int{4},
			[]ruleWant{{"has-label", ResultViolated, ModeAudit}}, 0},
		{"star binding in an enforced env", "prod", "global/base", ActionPush, nil, true, ModeAudit, false, []int{4},
			[]ruleWant{{"has-label", ResultViolated, ModeAudit}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Action: tt.action, Environment: tt.env, Now: testNow,
				Image: Image{Repository: tt.repo, Digest: testDigest, Config: ImageConfig{User: "1000"}}}
			if tt.change != nil {
				tt.change(&in)
			}
			d, err := p.Decide(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tt.allowed || d.Mode != tt.mode || d.DefaultDeny != tt.defaultDeny {
				t.Errorf("allowed %v mode %q defaultDeny %v, want %v %q %v (%s)", d.Allowed, d.Mode, d.DefaultDeny, tt.allowed, tt.mode, tt.defaultDeny, d.Reason)
			}
			var bs []int
			for _, b := range d.Bindings {
				bs = append(bs, b.Index)
			}
			if !slices.Equal(bs, tt.bindings) {
				t.Errorf("bindings %v, want %v", bs, tt.bindings)
			}
			var rs []ruleWant
			for _, r := range d.Rules {
				rs = append(rs, ruleWant{r.ID, r.Result, r.Mode})
			}
			if !slices.Equal(rs, tt.rules) {
				t.Errorf("rules %v, want %v", rs, tt.rules)
			}
			if len(d.Warnings) != tt.warnings {
				t.Errorf("warnings %q, want %d", d.Warnings, tt.warnings)
			}
			if tt.defaultDeny && !strings.Contains(d.Reason, "denied by default") {
				t.Errorf("reason %q", d.Reason)
			}
			if !d.Allowed && len(d.Failed()) == 0 && !d.DefaultDeny {
				t.Error("denied without a failed rule")
			}
		})
	}
}

func TestEnforceEverywhere(t *testing.T) {
	p := mustParse(t, `version: 1
bindings:
  - environments: ["*"]
    repositories: ["base/*"]
    actions: [pull]
    rules: [non-root]
    mode: enforce
`)
	for _, env := range []string{"", "prod", "anything"} {
		if !p.Enforced(env) {
			t.Errorf("Enforced(%q) = false", env)
		}
		d, err := p.Decide(context.Background(), Input{Action: ActionPull, Environment: env, Now: testNow, Image: Image{Repository: "app/x"}})
		if err != nil || d.Allowed || !d.DefaultDeny {
			t.Errorf("%q: %v %+v", env, err, d)
		}
	}
}

// TestDefaultDenyIsPerEnvironment: an enforce binding for prod's pushes
// makes every uncovered prod action a denial, and nothing elsewhere.
func TestDefaultDenyIsPerEnvironment(t *testing.T) {
	p := mustParse(t, `version: 1
bindings:
  - environments: [prod]
    repositories: ["prod/*"]
    actions: [push]
    rules: [signed]
    mode: enforce
  - environments: [dev]
    repositories: ["**"]
    actions: [push]
    rules: [signed]
    mode: warn
`)
	cases := []struct {
		env     string
		action  Action
		allowed bool
	}{{"prod", ActionPull, false}, {"prod", ActionRun, false}, {"dev", ActionPull, true}, {"dev", ActionRun, true}, {"", ActionPull, true}}
	for _, c := range cases {
		d, err := p.Decide(context.Background(), Input{Action: c.action, Environment: c.env, Now: testNow, Image: Image{Repository: "prod/app"}})
		if err != nil || d.Allowed != c.allowed {
			t.Errorf("%s %s: allowed %v (%s), want %v", c.env, c.action, d.Allowed, d.Reason, c.allowed)
		}
	}
}

const exceptionsPolicy = `version: 1
rules:
  - id: team-label
    expression: 'image.config.labels["team"] != ""'
    message: the team label is empty
bindings:
  - environments: [prod, staging]
    repositories: ["prod/**"]
    actions: [run]
    rules: [non-root, signed, team-label]
    mode: enforce
exceptions:
  - id: by-digest
    digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    rules: [non-root]
    reason: vendor image, root needed until v2
    requested_by: alice
    approved_by: bob
    created: 2025-05-01T00:00:00Z
    expires: 2025-07-01T00:00:00Z
  - id: expired
    repositories: ["prod/old"]
    rules: [non-root]
    reason: was needed
    requested_by: alice
    approved_by: bob
    expires: 2025-05-01T00:00:00Z
  - id: from-the-future
    repositories: ["prod/future"]
    rules: [non-root]
    reason: suspicious
    requested_by: alice
    approved_by: bob
    created: 2025-06-01T12:10:00Z
    expires: 2026-01-01T00:00:00Z
  - id: small-skew
    repositories: ["prod/skew"]
    rules: [non-root]
    reason: written on a clock 2 minutes fast
    requested_by: alice
    approved_by: bob
    created: 2025-06-01T12:02:00Z
    expires: 2026-01-01T00:00:00Z
  - id: staging-only
    repositories: ["prod/**"]
    environments: [staging]
    rules: [signed]
    reason: staging runs unsigned builds this week
    requested_by: alice
    approved_by: bob
    expires: 2026-01-01T00:00:00Z
  - id: label-errors
    repositories: ["prod/nolabels"]
    rules: [team-label]
    reason: third-party image without labels
    requested_by: alice
    approved_by: bob
    expires: 2026-01-01T00:00:00Z
`

func TestExceptions(t *testing.T) {
	p := mustParse(t, exceptionsPolicy)
	const otherDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	base := func(repo, digest string) Input {
		in := goodInput()
		in.Image.Repository, in.Image.Digest = repo, digest
		in.Image.Config.User, in.Runtime.User = "root", ""
		in.Image.Config.Labels = map[string]string{"team": "a"}
		return in
	}
	tests := []struct {
		name      string
		in        Input
		now       time.Time
		allowed   bool
		nonRoot   Result
		exception string
		warning   string
	}{
		{"digest exception applies", base("prod/app", testDigest), testNow, true, ResultExcepted, "by-digest", "waived by exception by-digest until 2025-07-01T00:00:00Z"},
		{"digest exception: other digest", base("prod/app", otherDigest), testNow, false, ResultViolated, "", ""},
		{"digest exception: just before expiry", base("prod/app", testDigest), time.Date(2025, 6, 30, 23, 59, 59, 999999999, time.UTC), true, ResultExcepted, "by-digest", ""},
		{"digest exception: at expiry", base("prod/app", testDigest), time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), false, ResultViolated, "", "exception by-digest expired at 2025-07-01T00:00:00Z"},
		{"expired exception", base("prod/old", otherDigest), testNow, false, ResultViolated, "", "exception expired expired at 2025-05-01T00:00:00Z, so it does not apply"},
		{"created beyond the skew", base("prod/future", otherDigest), testNow, false, ResultViolated, "", "exception from-the-future is not valid yet"},
		{"created within the skew", base("prod/skew", otherDigest), testNow, true, ResultExcepted, "small-skew", ""},
		{"exception passes no rule that passes", func() Input { in := base("prod/app", testDigest); in.Runtime.User = "1000"; return in }(), testNow, true, ResultPass, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = tt.now
			d, err := p.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			r := d.Rules[slices.IndexFunc(d.Rules, func(r RuleResult) bool { return r.ID == "non-root" })]
			if d.Allowed != tt.allowed || r.Result != tt.nonRoot || r.Exception != tt.exception {
				t.Errorf("allowed %v non-root %s exception %q, want %v %s %q (%s)", d.Allowed, r.Result, r.Exception, tt.allowed, tt.nonRoot, tt.exception, d.Reason)
			}
			if tt.exception != "" {
				if len(d.Exceptions) != 1 || d.Exceptions[0].ID != tt.exception || !slices.Equal(d.Exceptions[0].Rules, []string{"non-root"}) ||
					d.Exceptions[0].ApprovedBy != "bob" || d.Exceptions[0].Reason == "" {
					t.Errorf("exceptions %+v", d.Exceptions)
				}
				if r.Message == "" || !strings.Contains(d.Reason, "excepted: non-root") {
					t.Errorf("an excepted rule keeps its message and is named: %q, %q", r.Message, d.Reason)
				}
			} else if len(d.Exceptions) != 0 {
				t.Errorf("exceptions %+v", d.Exceptions)
			}
			if tt.warning != "" && !slices.ContainsFunc(d.Warnings, func(w string) bool { return strings.Contains(w, tt.warning) }) {
				t.Errorf("warnings %q lack %q", d.Warnings, tt.warning)
			}
		})
	}

	t.Run("environment-scoped exception", func(t *testing.T) {
		in := base("prod/app", otherDigest)
		in.Runtime.User, in.Trust = "1000", Trust{}
		d, _ := p.Decide(context.Background(), in)
		if d.Allowed || d.Rules[1].Result != ResultViolated {
			t.Errorf("prod: %+v", d.Rules[1])
		}
		in.Environment = "staging"
		in.Trust.Environment = "staging"
		d, _ = p.Decide(context.Background(), in)
		if !d.Allowed || d.Rules[1].Result != ResultExcepted || d.Rules[1].Exception != "staging-only" {
			t.Errorf("staging: %+v", d.Rules[1])
		}
	})

	t.Run("an exception covers a rule that errors", func(t *testing.T) {
		in := base("prod/nolabels", otherDigest)
		in.Runtime.User, in.Image.Config.Labels = "1000", nil
		d, _ := p.Decide(context.Background(), in)
		r := d.Rules[2]
		if !d.Allowed || r.Result != ResultExcepted || !strings.Contains(r.Error, "no such key") {
			t.Errorf("%+v", r)
		}
		in.Image.Repository = "prod/app"
		d, _ = p.Decide(context.Background(), in)
		if r := d.Rules[2]; d.Allowed || r.Result != ResultError || !strings.Contains(r.Message, "could not be evaluated, which counts as a violation") {
			t.Errorf("without the exception the error denies: %+v", r)
		}
	})
}

// TestRuleErrorsFailClosed: a rule that errors or exceeds the cost limit
// is a failure, not a pass, and the decision still comes back quickly.
func TestRuleErrorsFailClosed(t *testing.T) {
	p := mustParse(t, `version: 1
rules:
  - id: quadratic
    expression: 'image.config.env.all(a, image.config.env.all(b, a == b || a != b))'
    message: never shown
  - id: missing-key
    expression: 'image.config.labels["team"] == "shop"'
    message: wrong team
  - id: bad-message
    expression: 'false'
    message: the fallback message
    message_expression: 'image.config.labels["nope"]'
bindings:
  - environments: [prod]
    repositories: ["**"]
    actions: [run]
    rules: [quadratic, missing-key, bad-message]
    mode: enforce
`)
	in := Input{Action: ActionRun, Environment: "prod", Now: testNow, Image: Image{Repository: "a"}}
	for i := range 2000 {
		in.Image.Config.Env = append(in.Image.Config.Env, fmt.Sprintf("V%d=%d", i, i))
	}
	start := time.Now()
	d, err := p.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s: the cost limit did not stop the loop", took)
	}
	if d.Allowed {
		t.Error("allowed")
	}
	if r := d.Rules[0]; r.Result != ResultError || !strings.Contains(r.Error, "cost limit exceeded") {
		t.Errorf("quadratic: %+v", r)
	}
	if r := d.Rules[1]; r.Result != ResultError || !strings.Contains(r.Error, "no such key: team") {
		t.Errorf("missing-key: %+v", r)
	}
	if r := d.Rules[2]; r.Result != ResultViolated || r.Message != "the fallback message" {
		t.Errorf("bad-message: %+v", r)
	}

	// The same rule on a small input passes: the limit is about work done.
	in.Image.Config.Env = in.Image.Config.Env[:10]
	in.Image.Config.Labels = map[string]string{"team": "shop"}
	d, _ = p.Decide(context.Background(), in)
	if d.Rules[0].Result != ResultPass || d.Rules[1].Result != ResultPass {
		t.Errorf("small input: %+v", d.Rules[:2])
	}
}

func TestDecideInvalidInput(t *testing.T) {
	p := mustParse(t, modesPolicy)
	ctx := context.Background()
	if _, err := p.Decide(ctx, Input{Action: "delete", Now: testNow}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("bad action: %v", err)
	}
	if _, err := p.Decide(ctx, Input{Action: ActionPull}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("zero time: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Decide(cctx, Input{Action: ActionPull, Now: testNow, Environment: "prod", Image: Image{Repository: "prod/a"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestDecisionJSON pins the decision's JSON shape: the audit log chains
// these bytes, so field names and order must not drift, and lists are
// never null.
func TestDecisionJSON(t *testing.T) {
	p := mustParse(t, exceptionsPolicy)
	in := goodInput()
	in.Image.Config.User, in.Runtime.User = "root", ""
	in.Image.Config.Labels = map[string]string{"team": "a"}
	d, err := p.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	const str = `"(?:[^"\\]|\\.)*"`
	keys := regexp.MustCompile(`^\{"id":"[0-9a-f]{32}","time":"2025-06-01T12:00:00Z","policyVersion":"sha256:[0-9a-f]{64}","action":"run","environment":"prod",` +
		`"repository":"prod/app","digest":"sha256:0123[0-9a-f]+","allowed":true,"mode":"enforce","defaultDeny":false,"reason":` + str + `,` +
		`"bindings":\[\{"index":0,"line":7,"mode":"enforce"\}\],"rules":\[\{"id":"non-root","result":"excepted","mode":"enforce","severity":"high","builtin":true,` +
		`"message":` + str + `,"remediation":` + str + `,"exception":"by-digest","bindings":\[0\]\},.*\],` +
		`"exceptions":\[\{"id":"by-digest","rules":\["non-root"\],"reason":"vendor image, root needed until v2","requestedBy":"alice","approvedBy":"bob","expires":"2025-07-01T00:00:00Z"\}\],` +
		`"warnings":\[.*\],"trust":\{"policyVersion":"sha256:tp","allowed":true,"environment":"prod","requirement":"2 of \[ci security\]","satisfied":\["ci","security"\]\},` +
		`"scan":\{"scanner":"bulwark","time":"0001-01-01T00:00:00Z","vulnerabilities":1\},"principal":\{"name":"deploy","kind":"robot","environment":"prod"\}\}$`)
	if !keys.Match(b) {
		t.Errorf("decision JSON drifted:\n%s", b)
	}
	// An empty decision still has lists, not nulls.
	d, _ = p.Decide(context.Background(), Input{Action: ActionPull, Environment: "qa", Now: testNow})
	b, _ = json.Marshal(d)
	for _, k := range []string{`"bindings":[]`, `"rules":[]`, `"exceptions":[]`, `"warnings":[]`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
	var back Decision
	if err := json.Unmarshal(b, &back); err != nil || back.ID != d.ID || back.PolicyVersion != d.PolicyVersion {
		t.Errorf("round trip: %v", err)
	}
}

func TestDecisionIDs(t *testing.T) {
	p := mustParse(t, modesPolicy)
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		d, err := p.Decide(context.Background(), Input{Action: ActionPull, Environment: "qa", Now: testNow.Add(time.Duration(i) * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.ID) != 32 || seen[d.ID] {
			t.Fatalf("id %q (len %d, seen %v)", d.ID, len(d.ID), seen[d.ID])
		}
		if d.ID[:12] <= prev {
			t.Fatalf("ids do not sort by time: %s after %s", d.ID[:12], prev)
		}
		seen[d.ID], prev = true, d.ID[:12]
	}
}

func TestExplain(t *testing.T) {
	p := mustParse(t, modesPolicy)
	in := Input{Action: ActionPull, Environment: "prod", Now: testNow, Image: Image{Repository: "prod/app", Config: ImageConfig{User: "root"}}}
	d, _ := p.Decide(context.Background(), in)
	ex, err := p.Explain(in, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 2 || ex[0].ID != "non-root" || ex[1].ID != "has-label" {
		t.Fatalf("%+v", ex)
	}
	facts := map[string]any{}
	for _, f := range ex[0].Facts {
		facts[f.Path] = f.Value
	}
	if facts["image.config.user"] != "root" || facts["action"] != "pull" || len(facts) != 3 {
		t.Errorf("non-root facts: %v", facts)
	}
	if !strings.Contains(ex[0].Expression, "image.config.user") {
		t.Errorf("expression %q", ex[0].Expression)
	}
	if ex[1].Facts[0].Path != "image.config.labels" {
		t.Errorf("has-label facts: %+v", ex[1].Facts)
	}
}

// TestBuiltinParamsKeptApart: one built-in with different parameters in
// two bindings is two checks, each with its own mode.
func TestBuiltinParamsKeptApart(t *testing.T) {
	p := mustParse(t, `version: 1
bindings:
  - environments: [prod]
    repositories: ["**"]
    actions: [run]
    rules: [max-age]
    params: {max-age: {max: 30d}}
    mode: warn
  - environments: [prod]
    repositories: ["**"]
    actions: [run]
    rules: [max-age]
    params: {max-age: {max: 60d}}
    mode: enforce
`)
	in := goodInput()
	in.Image.Config.Created = testNow.Add(-45 * 24 * time.Hour)
	d, _ := p.Decide(context.Background(), in)
	if len(d.Rules) != 2 || d.Rules[0].Result != ResultViolated || d.Rules[0].Mode != ModeWarn || d.Rules[1].Result != ResultPass ||
		d.Rules[0].Params["max"] != "30d" || !d.Allowed || len(d.Warnings) != 1 {
		t.Errorf("%+v", d)
	}
	ex, _ := p.Explain(in, d)
	if !strings.Contains(ex[0].Expression, `duration("2592000s")`) || !strings.Contains(ex[1].Expression, `duration("5184000s")`) {
		t.Errorf("%+v", ex)
	}
}

// TestDecideConcurrently: one Policy serves many goroutines (run with
// -race).
func TestDecideConcurrently(t *testing.T) {
	p := mustParse(t, exceptionsPolicy)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				in := goodInput()
				in.Image.Config.Labels = map[string]string{"team": "a"}
				want := ResultPass
				if (g+i)%2 == 0 {
					in.Runtime.User, want = "root", ResultExcepted
				}
				d, err := p.Decide(context.Background(), in)
				if err != nil || !d.Allowed || d.Rules[0].Result != want {
					t.Errorf("%v %+v", err, d)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSameParamsEvaluatedOnce: two bindings giving a built-in the same
// parameters share one check; the decision lists it once, under both.
func TestSameParamsEvaluatedOnce(t *testing.T) {
	p := mustParse(t, `version: 1
bindings:
  - environments: [prod]
    repositories: ["**"]
    actions: [run]
    rules: [max-age]
    params: {max-age: {max: 30d}}
    mode: warn
  - environments: [prod]
    repositories: ["prod/**"]
    actions: [run]
    rules: [max-age]
    params: {max-age: {max: 30d}}
    mode: enforce
`)
	in := goodInput()
	in.Image.Config.Created = testNow.Add(-45 * 24 * time.Hour)
	d, _ := p.Decide(context.Background(), in)
	if len(d.Rules) != 1 || d.Rules[0].Mode != ModeEnforce || !slices.Equal(d.Rules[0].Bindings, []int{0, 1}) || d.Allowed {
		t.Errorf("%+v", d.Rules)
	}
}
