package policy

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// TestBuiltinFields: the input paths a built-in declares (what Explain
// lists before its programs are compiled) are exactly those its compiled
// default expressions read.
func TestBuiltinFields(t *testing.T) {
	c, err := newCompiler()
	if err != nil {
		t.Fatal(err)
	}
	for _, def := range builtinDefs {
		r := def.rule()
		ck, err := c.compileRule(r, r.Expression, r.MessageExpression, nil, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", def.id, err)
		}
		if !slices.Equal(ck.fields, def.fields) {
			t.Errorf("%s: declares fields %q, its expressions read %q", def.id, def.fields, ck.fields)
		}
	}
}

// TestBuiltinsCompiledLazily: a built-in's programs are compiled on first
// evaluation (the message expression only when the rule fails), once,
// whichever goroutines evaluate it first; unused built-ins stay
// uncompiled.
func TestBuiltinsCompiledLazily(t *testing.T) {
	c, err := newCompiler()
	if err != nil {
		t.Fatal(err)
	}
	for id, r := range c.builtins {
		if r.check.prog.tracked != nil || (r.check.msg != nil && r.check.msg.tracked != nil) {
			t.Fatalf("%s compiled before use", id)
		}
	}
	in := Input{Action: ActionRun, Environment: "prod", Now: time.Now(), Runtime: Runtime{User: "1000", ReadOnlyRootfs: true}}
	tests := []struct {
		id   string
		want bool
	}{
		{"non-root", true},
		{"signed", false}, // no trust decision
	}
	var wg sync.WaitGroup
	for range 8 {
		for _, tt := range tests {
			wg.Go(func() {
				ck := c.builtins[tt.id].check
				act := newActivation(&in)
				got, err := evalBool(&ck.prog, act)
				if err != nil || got != tt.want {
					t.Errorf("%s: got %v, %v; want %v", tt.id, got, err, tt.want)
				}
				if !got {
					if msg, err := evalString(ck.msg, act); err != nil || msg == "" {
						t.Errorf("%s: message %q, %v", tt.id, msg, err)
					}
				}
			})
		}
	}
	wg.Wait()
	for id, r := range c.builtins {
		compiled := r.check.prog.tracked != nil
		msgCompiled := r.check.msg != nil && r.check.msg.tracked != nil
		switch id {
		case "signed":
			if !compiled || !msgCompiled {
				t.Errorf("%s: expression compiled %v, message %v; want both", id, compiled, msgCompiled)
			}
		case "non-root":
			if !compiled || msgCompiled {
				t.Errorf("%s: expression compiled %v, message %v; want the expression only", id, compiled, msgCompiled)
			}
		default:
			if compiled || msgCompiled {
				t.Errorf("%s was compiled without being evaluated", id)
			}
		}
	}
}

// TestLazyBuiltinBroken: a built-in that does not compile is an
// evaluation error (a violation), never a pass.
func TestLazyBuiltinBroken(t *testing.T) {
	c, err := newCompiler()
	if err != nil {
		t.Fatal(err)
	}
	r := &Rule{ID: "broken", Expression: `image.config.usr == ""`, Builtin: true}
	ck := c.lazyCheck(r, nil)
	in := Input{Action: ActionRun, Now: time.Now()}
	for range 2 {
		if ok, err := evalBool(&ck.prog, newActivation(&in)); err == nil || ok {
			t.Fatalf("got %v, %v; want an error", ok, err)
		}
	}
}
