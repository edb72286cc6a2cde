package policy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
)

// FuzzParsePolicy: any bytes either load or are refused with a
// *PolicyError; never a panic, and a policy that loads can decide.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(goodPolicy))
	f.Add([]byte(modesPolicy))
	f.Add([]byte(exceptionsPolicy))
	f.Add([]byte(benchPolicy))
	if b, err := os.ReadFile("../../examples/policy.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("version: 1\nrules:\n  - id: r\n    expression: 'image.config.user == \"\"'\n    message: m\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("version: 1\nbindings: [{environments: ['*'], repositories: ['**'], actions: [run], rules: [max-age], params: {max-age: {max: 1d}}, mode: warn}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v (%T) is not a PolicyError", err, err)
			}
			return
		}
		in := goodInput()
		for _, a := range []Action{ActionPush, ActionPull, ActionRun} {
			in.Action = a
			if _, err := p.Decide(context.Background(), in); err != nil {
				t.Fatalf("decide: %v", err)
			}
		}
		p.Lint(testNow)
	})
}

// FuzzDecide: arbitrary inputs (as JSON) never make Decide panic, and its
// decisions keep their invariants: denied only for an enforce failure or
// default deny, excepted only with an exception, and the fast and counted
// programs agree.
func FuzzDecide(f *testing.F) {
	ex, err := os.ReadFile("../../examples/policy.yaml")
	if err != nil {
		f.Fatal(err)
	}
	policies := []*Policy{mustParse(f, string(ex)), mustParse(f, exceptionsPolicy), mustParse(f, benchPolicy), mustParse(f, modesPolicy)}
	for _, in := range []Input{goodInput(), benchInput(testNow), {}} {
		b, _ := json.Marshal(in)
		f.Add(b, uint8(0), int64(0))
	}
	f.Add([]byte(`{"action":"run","environment":"prod","image":{"repository":"prod/billing/legacy","config":{"user":"0:0","env":["A=1"],"labels":{"team":""}}},"runtime":{"privileged":true,"mounts":[{"source":"/"}]}}`), uint8(1), int64(1e9))
	f.Fuzz(func(t *testing.T, data []byte, which uint8, nowOffset int64) {
		var in Input
		if json.Unmarshal(data, &in) != nil {
			return
		}
		in.Now = testNow.Add(time.Duration(nowOffset))
		p := policies[int(which)%len(policies)]
		d, err := p.Decide(context.Background(), in)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("decide: %v", err)
			}
			return
		}
		denied := d.DefaultDeny
		for _, r := range d.Rules {
			if r.Failed() && r.Mode == ModeEnforce {
				denied = true
			}
			if (r.Result == ResultExcepted) != (r.Exception != "") {
				t.Fatalf("rule %s: result %s with exception %q", r.ID, r.Result, r.Exception)
			}
			if r.Result != ResultPass && r.Message == "" {
				t.Fatalf("rule %s: %s without a message", r.ID, r.Result)
			}
		}
		if d.Allowed == denied {
			t.Fatalf("allowed %v but denied-by-rules %v: %+v", d.Allowed, denied, d)
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		}
		// Differential: where a fast program exists, it agrees with the
		// counted one.
		act := newActivation(&in)
		if !act.small {
			return
		}
		for _, b := range p.Bindings {
			for _, ck := range b.checks {
				if ck.prog.fast == nil {
					continue
				}
				fv, _, ferr := ck.prog.fast.Eval(act)
				tv, _, terr := ck.prog.tracked.Eval(act)
				if (ferr == nil) != (terr == nil) || (ferr == nil && fv.Equal(tv) != types.True) {
					t.Fatalf("rule %s: fast %v/%v, counted %v/%v", ck.rule.ID, fv, ferr, tv, terr)
				}
			}
		}
	})
}
