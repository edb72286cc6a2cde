package yamlnode

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSingleDocument(t *testing.T) {
	tests := []struct {
		doc, err string
		line     int
	}{
		{"a: 1\n", "", 0},
		{"", "empty", 0},
		{"# only a comment\n", "empty", 0},
		{"a: 1\n---\nb: 2\n", "only one YAML document", 2}, // the line of the second "---"
		{"a: [1\nb: 2\n", "YAML:", 1},
		{"a:\n\t- b\n", "YAML:", 2},
	}
	for _, tt := range tests {
		n, err := SingleDocument([]byte(tt.doc))
		if tt.err == "" {
			if err != nil || n == nil {
				t.Errorf("%q: %v", tt.doc, err)
			}
			continue
		}
		var ye *Error
		if !errors.As(err, &ye) || !strings.Contains(err.Error(), tt.err) || ye.Line != tt.line {
			t.Errorf("%q: %v (line %v), want %q at line %d", tt.doc, err, ye, tt.err, tt.line)
		}
	}
}

func root(t *testing.T, doc string) *yaml.Node {
	t.Helper()
	n, err := SingleDocument([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMapping(t *testing.T) {
	tests := []struct {
		doc, err string
		line     int
	}{
		{"name: a\nrules: [x]\n", "", 0},
		{"- a\n", "must be a mapping, not a list", 1},
		{"name: a\nnmae: b\n", `unknown key "nmae" (known: name, rules)`, 2},
		{"name: a\nname: b\n", `key "name" is given twice`, 2},
		{"? [a]\n: b\n", "keys must be plain strings", 1},
		{"name: &x a\nrules: *x\n", "anchors and aliases are not supported", 2},
	}
	for _, tt := range tests {
		_, err := Mapping(root(t, tt.doc), "policy", "name", "rules")
		if tt.err == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.doc, err)
			}
			continue
		}
		var ye *Error
		if !errors.As(err, &ye) || !strings.Contains(err.Error(), tt.err) || ye.Line != tt.line {
			t.Errorf("%q: %v, want %q at line %d", tt.doc, err, tt.err, tt.line)
		}
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		doc  string
		want []string
		err  string
	}{
		{"[a, b]", []string{"a", "b"}, ""},
		{"[2024, no, 1.5]", []string{"2024", "no", "1.5"}, ""}, // as written
		{"[]", nil, "must not be empty"},
		{"a", nil, "must be a list"},
		{"[a, ~]", nil, "missing value"},
		{"[a, '']", nil, "empty string"},
		{"[!!binary aGk=]", nil, "tag !!binary is not supported"},
		{"[!custom x]", nil, "tag !custom is not supported"},
		{"[[a]]", nil, "expected a string, not a list"},
	}
	for _, tt := range tests {
		got, nodes, err := Strings(root(t, tt.doc), "names")
		if tt.err == "" {
			if err != nil || strings.Join(got, ",") != strings.Join(tt.want, ",") || len(nodes) != len(got) {
				t.Errorf("%q: %q %v", tt.doc, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: %v, want %q", tt.doc, err, tt.err)
		}
	}
	if _, err := Sequence(root(t, "[]"), "x", true); err != nil {
		t.Errorf("empty list allowed: %v", err)
	}
}

func TestKind(t *testing.T) {
	for doc, want := range map[string]string{
		"{a: 1}": "a mapping", "[1]": "a list", "~": "nothing", "'7'": `the string "7"`, "7": `"7"`,
	} {
		if got := Kind(root(t, doc)); got != want {
			t.Errorf("Kind(%s) = %s, want %s", doc, got, want)
		}
	}
}

// FuzzSingleDocument: any input is a root node or an *Error, and the
// readers never panic on what the parser returns.
func FuzzSingleDocument(f *testing.F) {
	for _, s := range []string{"a: 1\n", "name: &x a\nrules: *x\n", "- [a, b]\n", "a: 1\n---\nb: 2\n", "? [a]\n: b\n", "{a: {b: {c: [1, 2, ~]}}}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := SingleDocument(data)
		if err != nil {
			var ye *Error
			if !errors.As(err, &ye) {
				t.Fatalf("error is not an *Error: %v", err)
			}
			return
		}
		Kind(n)
		if m, err := Mapping(n, "doc", "a", "name", "rules"); err == nil {
			for _, v := range m {
				Strings(v, "v")
				String(v, "v")
			}
		}
		Sequence(n, "doc", true)
	})
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.yaml")
	os.WriteFile(ok, []byte("a: 1\n"), 0o600)
	if b, err := ReadFile(ok, 5); err != nil || string(b) != "a: 1\n" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if _, err := ReadFile(ok, 4); err == nil || !strings.Contains(err.Error(), "larger than 4 bytes") {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 5); !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), dir) {
		t.Errorf("missing file: %v (want ErrNotExist without the path)", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(fifo, 5); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO: %v", err)
	}
	if _, err := ReadFile(dir, 5); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}
