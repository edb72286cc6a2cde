package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxJSONDepth bounds nesting in manifests. Real manifests nest four or five
// levels; the bound keeps hostile input from costing deep recursion anywhere
// downstream.
const maxJSONDepth = 64

// descriptorFields are the struct field names of manifests, indexes,
// descriptors and platforms. encoding/json matches them case-insensitively
// and lets the last duplicate win; other parsers (a signature verifier in
// another language, say) may take the first or match exactly. Refusing
// duplicates and case variants removes that ambiguity: every JSON parser
// reads an accepted manifest the same way.
var descriptorFields = func() map[string]string {
	m := map[string]string{}
	for _, f := range []string{"schemaVersion", "mediaType", "artifactType", "config", "layers", "manifests",
		"subject", "annotations", "digest", "size", "urls", "data", "platform", "architecture", "os",
		"os.version", "os.features", "variant", "features", "fsLayers"} {
		m[strings.ToLower(f)] = f
	}
	return m
}()

// checkStrictJSON rejects duplicate object keys, case variants of manifest
// field names, nesting deeper than maxJSONDepth, and trailing data after the
// top-level value.
func checkStrictJSON(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := strictValue(dec, 0, false); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// strictValue consumes one value. inMap is set for the values of an
// annotations object, whose keys are free-form.
func strictValue(dec *json.Decoder, depth int, freeKeys bool) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("nesting deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '[':
		for dec.More() {
			if err := strictValue(dec, depth+1, false); err != nil {
				return err
			}
		}
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key := kt.(string)
			if seen[key] {
				return fmt.Errorf("duplicate key %q", truncate(key))
			}
			seen[key] = true
			if !freeKeys {
				if canon, ok := descriptorFields[strings.ToLower(key)]; ok && canon != key {
					return fmt.Errorf("key %q must be spelled %q", truncate(key), canon)
				}
			}
			if err := strictValue(dec, depth+1, key == "annotations" && !freeKeys); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}
