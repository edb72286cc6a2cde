package policy

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// step is one move from a value to a part of it.
type step struct {
	kind  byte // 'f' struct field, 'e' slice element, 'k' map key, 'v' map value
	field int
	name  string
}

// leaf is a string, slice or map somewhere in Input.
type leaf struct {
	path  []step
	kind  reflect.Kind
	short bool
}

func (l leaf) String() string {
	var b strings.Builder
	for _, s := range l.path {
		switch s.kind {
		case 'f':
			b.WriteString("." + s.name)
		case 'e':
			b.WriteString("[]")
		case 'k':
			b.WriteString("{key}")
		case 'v':
			b.WriteString("{value}")
		}
	}
	return b.String()
}

func leaves(t reflect.Type, path []step, short bool, out *[]leaf) {
	switch t.Kind() {
	case reflect.String:
		*out = append(*out, leaf{slices.Clone(path), reflect.String, short})
	case reflect.Slice:
		*out = append(*out, leaf{slices.Clone(path), reflect.Slice, short})
		leaves(t.Elem(), append(path, step{kind: 'e'}), short, out)
	case reflect.Map:
		*out = append(*out, leaf{slices.Clone(path), reflect.Map, short})
		leaves(t.Key(), append(path, step{kind: 'k'}), short, out)
		leaves(t.Elem(), append(path, step{kind: 'v'}), short, out)
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			leaves(f.Type, append(path, step{kind: 'f', field: i, name: f.Name}), f.Tag.Get("policy") == "short", out)
		}
	}
}

// at walks to path in v (creating one slice element or map entry on the
// way) and calls set on what it finds.
func at(v reflect.Value, path []step, set func(reflect.Value)) {
	if len(path) == 0 {
		set(v)
		return
	}
	switch s := path[0]; s.kind {
	case 'f':
		at(v.Field(s.field), path[1:], set)
	case 'e':
		if v.Len() == 0 {
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		}
		at(v.Index(0), path[1:], set)
	case 'k', 'v':
		k := reflect.New(v.Type().Key()).Elem()
		e := reflect.New(v.Type().Elem()).Elem()
		if s.kind == 'k' {
			at(k, path[1:], set)
		} else {
			at(e, path[1:], set)
		}
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}

// fill makes a string, list or map of n characters or entries.
func fill(v reflect.Value, n int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(strings.Repeat("x", n))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), n, n))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := range n {
			m.SetMapIndex(reflect.ValueOf(fmt.Sprint(i)).Convert(v.Type().Key()), reflect.New(v.Type().Elem()).Elem())
		}
		v.Set(m)
	}
}

// TestWithinCapsCoversEveryField: withinCaps is written out by hand; this
// walks Input by reflection and makes each string, list and map in turn
// one over its cap, so a field added to Input and forgotten in withinCaps
// fails here.
func TestWithinCapsCoversEveryField(t *testing.T) {
	var ls []leaf
	leaves(reflect.TypeFor[Input](), nil, false, &ls)
	if len(ls) < 60 {
		t.Fatalf("only %d leaves found", len(ls))
	}
	for _, l := range ls {
		limit := capString
		switch {
		case l.kind != reflect.String:
			limit = capList
		case l.short:
			limit = capShort
		}
		var in Input
		at(reflect.ValueOf(&in).Elem(), l.path, func(v reflect.Value) { fill(v, limit) })
		if !withinCaps(&in) {
			t.Errorf("%s at its cap (%d) is refused", l, limit)
		}
		in = Input{}
		at(reflect.ValueOf(&in).Elem(), l.path, func(v reflect.Value) { fill(v, limit+1) })
		if withinCaps(&in) {
			t.Errorf("%s over its cap (%d) is not noticed by withinCaps", l, limit+1)
		}
	}
}

// maxInput fills every list and map to capList entries and every string
// to its cap: the largest input the fast path accepts.
func maxInput() Input {
	var in Input
	var fillAll func(v reflect.Value, short bool)
	fillAll = func(v reflect.Value, short bool) {
		switch v.Kind() {
		case reflect.String:
			n := capString
			if short {
				n = capShort
			}
			v.SetString(strings.Repeat("a", n))
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), capList, capList))
			for i := range capList {
				fillAll(v.Index(i), short)
			}
		case reflect.Map:
			m := reflect.MakeMap(v.Type())
			for i := range capList {
				k := fmt.Sprintf("%04d%s", i, strings.Repeat("k", capString-4))
				val := strings.Repeat("v", capString)
				m.SetMapIndex(reflect.ValueOf(k), reflect.ValueOf(val))
			}
			v.Set(m)
		case reflect.Struct:
			if v.Type() == reflect.TypeFor[time.Time]() {
				return
			}
			for i := range v.NumField() {
				fillAll(v.Field(i), v.Type().Field(i).Tag.Get("policy") == "short")
			}
		}
	}
	fillAll(reflect.ValueOf(&in).Elem(), false)
	in.Action, in.Now = ActionRun, testNow
	return in
}

// TestFastPathIsSound: every expression allowed to run uncounted stays
// within CostLimit on the largest input the fast path accepts, measured
// by the counting program on the same input.
func TestFastPathIsSound(t *testing.T) {
	in := maxInput()
	if !withinCaps(&in) {
		t.Fatal("maxInput is not within the caps")
	}
	act := newActivation(&in)
	p := mustParse(t, benchPolicy)
	// Rules whose cost grows with the square and cube of a list: the
	// estimate must keep them off the fast path.
	heavy := mustParse(t, `version: 1
rules:
  - id: square
    expression: 'image.config.env.all(a, image.config.env.all(b, a != b || a == b))'
    message: m
  - id: cube
    expression: 'image.config.env.all(a, image.config.env.all(b, image.config.env.all(c, a != "")))'
    message: m
  - id: labels-square
    expression: 'image.config.labels.all(k, image.config.labels.exists(j, j.contains(k)))'
    message: m
bindings:
  - environments: [prod]
    repositories: ["**"]
    actions: [run]
    rules: [square, cube, labels-square]
    mode: enforce
`)
	rules, _ := Builtins()
	var checks []*check
	for _, r := range rules {
		checks = append(checks, r.check)
	}
	checks = append(checks, p.Bindings[0].checks...)
	checks = append(checks, heavy.Bindings[0].checks...)
	fast := 0
	for _, ck := range checks {
		for what, pr := range map[string]*program{"expression": &ck.prog, "message": ck.msg} {
			if pr == nil || pr.fast == nil {
				continue
			}
			fast++
			_, det, err := pr.tracked.Eval(act)
			if err != nil && strings.Contains(err.Error(), "cost limit") {
				t.Errorf("%s %s: the fast path was allowed but the counted run exceeds the limit", ck.rule.ID, what)
				continue
			}
			if det == nil || det.ActualCost() == nil {
				t.Fatalf("%s: no cost recorded", ck.rule.ID)
			}
			if *det.ActualCost() > CostLimit {
				t.Errorf("%s %s: actual cost %d > limit", ck.rule.ID, what, *det.ActualCost())
			}
		}
	}
	if fast < 12 {
		t.Errorf("only %d expressions run uncounted; the caps are too tight to help", fast)
	}
}
