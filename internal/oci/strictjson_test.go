package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestParseManifestRefusesAmbiguousJSON(t *testing.T) {
	const cfg = `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}`
	tests := []struct {
		name, body, want string
	}{
		{"duplicate top-level key",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"config":` + cfg + `,"layers":[]}`,
			`duplicate key "config"`},
		{"duplicate mediaType with different values",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[]}`,
			`duplicate key "mediaType"`},
		{"case variant of a field name",
			`{"schemaVersion":2,"MediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[]}`,
			`key "MediaType" must be spelled "mediaType"`},
		{"case variant inside a descriptor",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","Digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`,
			`key "Digest" must be spelled "digest"`},
		{"duplicate annotation",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[],"annotations":{"a":"1","a":"2"}}`,
			`duplicate key "a"`},
		{"trailing data",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[]} {}`,
			`trailing data`},
		{"deep nesting",
			`{"schemaVersion":2,"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
			`nesting deeper than 64`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest("", []byte(tt.body))
			if !errors.Is(err, ErrManifestInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseManifest = %v, want ErrManifestInvalid mentioning %q", err, tt.want)
			}
		})
	}

	// Annotation keys are free-form: case variants of field names are
	// ordinary, distinct keys there.
	ok := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg +
		`,"layers":[],"annotations":{"MediaType":"x","mediatype":"y"}}`
	m, err := ParseManifest("", []byte(ok))
	if err != nil {
		t.Fatalf("annotations with case-variant keys: %v", err)
	}
	if m.Annotations["MediaType"] != "x" || m.Annotations["mediatype"] != "y" {
		t.Fatalf("annotations = %v", m.Annotations)
	}
}
