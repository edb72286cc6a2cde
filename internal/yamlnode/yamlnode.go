// Package yamlnode reads hand-written YAML configuration strictly, node by
// node: exactly one document, mappings whose keys are known and unique,
// no anchors or aliases, strings taken as written (a name may be "2024" or
// "no"), and every error tied to its line. The policy engine's bundles and
// the trust policy are read with it.
//
// Errors are *Error, carrying the line; callers move the line into their
// own error types.
package yamlnode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a problem at a line of the document (0: not tied to a line).
type Error struct {
	Line int
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// At is an error at n's line.
func At(n *yaml.Node, format string, args ...any) error {
	return &Error{Line: n.Line, Err: fmt.Errorf(format, args...)}
}

// ErrEmpty is wrapped by SingleDocument's error for a document with no
// content.
var ErrEmpty = errors.New("empty")

// SingleDocument parses data into its one YAML document's root node. A
// second document would silently be ignored by a decoder, so it is refused
// like a typo.
func SingleDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Err: ErrEmpty}
		}
		return nil, syntaxError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(err)
	default:
		return nil, &Error{Line: extra.Line, Err: errors.New("only one YAML document is allowed")}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Error{Err: ErrEmpty}
	}
	return doc.Content[0], nil
}

// syntaxError lifts the line out of the YAML library's "yaml: line N: …".
func syntaxError(err error) error {
	msg, ok := strings.CutPrefix(err.Error(), "yaml: line ")
	if ok {
		if num, rest, ok := strings.Cut(msg, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil && line > 0 {
				return &Error{Line: line, Err: fmt.Errorf("YAML: %s", rest)}
			}
		}
	}
	return &Error{Err: err}
}

// Mapping checks that n is a mapping whose keys are all known and unique
// and whose values are not aliases, and returns the values by key.
func Mapping(n *yaml.Node, what string, known ...string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, At(n, "%s must be a mapping, not %s", what, Kind(n))
	}
	f := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, At(k, "%s: keys must be plain strings, not %s", what, Kind(k))
		}
		if !slices.Contains(known, k.Value) {
			return nil, At(k, "%s: unknown key %q (known: %s)", what, k.Value, strings.Join(known, ", "))
		}
		if f[k.Value] != nil {
			return nil, At(k, "%s: key %q is given twice", what, k.Value)
		}
		if v.Kind == yaml.AliasNode {
			return nil, At(v, "%s: %s: anchors and aliases are not supported", what, k.Value)
		}
		f[k.Value] = v
	}
	return f, nil
}

// Sequence checks that n is a list, and a non-empty one unless allowEmpty.
func Sequence(n *yaml.Node, what string, allowEmpty bool) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, At(n, "%s must be a list, not %s", what, Kind(n))
	}
	if len(n.Content) == 0 && !allowEmpty {
		return nil, At(n, "%s must not be empty", what)
	}
	return n.Content, nil
}

// Strings reads a non-empty list of non-empty strings, and each item's
// node (for the line of a later error).
func Strings(n *yaml.Node, what string) ([]string, []*yaml.Node, error) {
	items, err := Sequence(n, what, false)
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, len(items))
	for i, item := range items {
		if out[i], err = String(item, what); err != nil {
			return nil, nil, err
		}
	}
	return out, items, nil
}

// String reads a non-empty scalar as written: a plain scalar YAML would
// resolve to a number or boolean is taken as its text; null, binary and
// application-specific tags are refused.
func String(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", At(n, "%s: expected a string, not %s", what, Kind(n))
	}
	switch tag := n.ShortTag(); {
	case tag == "!!null":
		return "", At(n, "%s: missing value", what)
	case tag == "!!binary" || !strings.HasPrefix(tag, "!!"):
		return "", At(n, "%s: tag %s is not supported", what, tag)
	}
	if n.Value == "" {
		return "", At(n, "%s: empty string", what)
	}
	return n.Value, nil
}

// Kind describes n for an error message.
func Kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch {
		case n.ShortTag() == "!!null":
			return "nothing"
		case n.ShortTag() == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
			return fmt.Sprintf("the string %q", n.Value)
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias (anchors and aliases are not supported)"
	default:
		return "an empty document"
	}
}

// ReadFile reads a hand-written configuration file: a regular file of at
// most max bytes. Devices and FIFOs are refused before they are opened
// (opening a FIFO blocks; a device may never end). Errors do not repeat
// the path, since callers name the file as their user wrote it, but still
// wrap fs.ErrNotExist and the like.
func ReadFile(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, WithoutPath(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, WithoutPath(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, WithoutPath(err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}

// WithoutPath drops the path an *fs.PathError repeats.
func WithoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
