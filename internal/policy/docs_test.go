package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// codeBlocks returns the bodies of the ```lang blocks of doc.
func codeBlocks(doc, lang string) []string {
	var out []string
	for rest := doc; ; {
		_, after, ok := strings.Cut(rest, "```"+lang+"\n")
		if !ok {
			return out
		}
		body, tail, _ := strings.Cut(after, "```\n")
		out = append(out, body)
		rest = tail
	}
}

// TestDocExamplesLoad: every policy (or top-level fragment of one) shown
// in docs/policy.md loads.
func TestDocExamplesLoad(t *testing.T) {
	n := 0
	for _, block := range codeBlocks(readDoc(t), "yaml") {
		src := block
		for strings.HasPrefix(src, "#") {
			_, src, _ = strings.Cut(src, "\n")
		}
		switch {
		case strings.HasPrefix(src, "version: 1"):
		case strings.HasPrefix(src, "rules:"), strings.HasPrefix(src, "exceptions:"), strings.HasPrefix(src, "bindings:"):
			src = "version: 1\n" + src
		default:
			continue // an indented fragment
		}
		n++
		if _, err := Parse([]byte(src), "docs/policy.md"); err != nil {
			t.Errorf("%v\n%s", err, block)
		}
	}
	if n < 5 {
		t.Errorf("only %d policies found in the doc", n)
	}
}

// TestDocCoversSchema: the input table names every field rules can read,
// the built-in table every built-in and parameter, and the decision
// example is a Decision.
func TestDocCoversSchema(t *testing.T) {
	doc := readDoc(t)
	var walk func(ty reflect.Type, prefix string)
	walk = func(ty reflect.Type, prefix string) {
		for i := range ty.NumField() {
			f := ty.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			path := prefix + name
			if !strings.Contains(doc, "| `"+path+"` |") {
				t.Errorf("docs/policy.md: the input table lacks %s", path)
			}
			switch ft := f.Type; {
			case ft == reflect.TypeFor[time.Time]():
			case ft.Kind() == reflect.Struct:
				walk(ft, path+".")
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), path+"[].")
			}
		}
	}
	walk(reflect.TypeFor[Input](), "")

	start := strings.Index(doc, "| id | severity |")
	if start < 0 {
		t.Fatal("docs/policy.md has no built-in table")
	}
	table := doc[start:]
	rs, _ := Builtins()
	for _, r := range rs {
		i := strings.Index(table, "| `"+r.ID+"` | "+string(r.Severity)+" |")
		if i < 0 {
			t.Errorf("docs/policy.md: the built-in table lacks %s (severity %s)", r.ID, r.Severity)
			continue
		}
		line, _, _ := strings.Cut(table[i:], "\n")
		for _, p := range r.Params {
			if !strings.Contains(line, "`"+p.Name+"`") || (p.Default != "" && !strings.Contains(line, p.Default)) {
				t.Errorf("docs/policy.md: %s's row lacks parameter %s (default %q)", r.ID, p.Name, p.Default)
			}
		}
	}

	blocks := codeBlocks(doc, "json")
	if len(blocks) == 0 {
		t.Fatal("no decision example")
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(blocks[0])))
	dec.DisallowUnknownFields()
	var d Decision
	if err := dec.Decode(&d); err != nil || d.ID == "" || len(d.Rules) == 0 || d.Trust == nil {
		t.Errorf("the decision example is not a Decision: %v", err)
	}
}
