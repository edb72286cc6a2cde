package oci_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

const (
	mtLayer         = v1.MediaTypeImageLayerGzip
	mtConfig        = v1.MediaTypeImageConfig
	mtDockerConfig  = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer   = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mtDockerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mtArtifact      = "application/vnd.example.sbom.v1"
)

// obj is a JSON object under construction; keys are kept exactly as written.
type obj map[string]any

func desc(mediaType, content string) obj {
	return obj{"mediaType": mediaType, "digest": digest.FromString(content).String(), "size": len(content)}
}

// with returns a copy of o with the given keys set (a nil value deletes).
func (o obj) with(kv ...any) obj {
	c := obj{}
	for k, v := range o {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func (o obj) json(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	cfgDesc     = desc(mtConfig, "config")
	layer1      = desc(mtLayer, "layer1")
	layer2      = desc(mtLayer, "layer2")
	foreignDesc = desc("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "foreign").with("urls", []string{"https://example.com/layer"})
	childDesc   = desc(oci.MediaTypeOCIManifest, "child")

	ociManifest = obj{
		"schemaVersion": 2,
		"mediaType":     oci.MediaTypeOCIManifest,
		"config":        cfgDesc,
		"layers":        []obj{layer1, layer2},
	}
	ociIndex = obj{
		"schemaVersion": 2,
		"mediaType":     oci.MediaTypeOCIIndex,
		"manifests":     []obj{childDesc, desc(oci.MediaTypeOCIManifest, "child2").with("platform", obj{"os": "linux", "architecture": "arm64"})},
	}
	dockerManifest = obj{
		"schemaVersion": 2,
		"mediaType":     oci.MediaTypeDockerManifest,
		"config":        desc(mtDockerConfig, "config"),
		"layers":        []obj{desc(mtDockerLayer, "layer1")},
	}
	dockerList = obj{
		"schemaVersion": 2,
		"mediaType":     oci.MediaTypeDockerManifestList,
		"manifests":     []obj{desc(oci.MediaTypeDockerManifest, "child")},
	}
)

func digests(ds []v1.Descriptor) []digest.Digest {
	out := make([]digest.Digest, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Digest)
	}
	return out
}

func dg(content string) digest.Digest { return digest.FromString(content) }

func TestParseManifestAccepted(t *testing.T) {
	tests := []struct {
		name          string
		contentType   string
		body          obj
		raw           []byte // used instead of body when set
		wantMediaType string
		wantIndex     bool
		wantBlobs     []digest.Digest // BlobReferences, in order
		wantChildren  []digest.Digest
		wantArtifact  string // EffectiveArtifactType
		wantSubject   digest.Digest
	}{
		{
			name: "OCI manifest, header and body agree", contentType: oci.MediaTypeOCIManifest, body: ociManifest,
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1"), dg("layer2")},
			wantArtifact: mtConfig,
		},
		{
			name: "OCI manifest, media type from header only", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("mediaType", nil),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1"), dg("layer2")},
			wantArtifact: mtConfig,
		},
		{
			name: "OCI manifest, media type from body only", contentType: "", body: ociManifest,
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1"), dg("layer2")},
			wantArtifact: mtConfig,
		},
		{
			name: "OCI manifest, generic header", contentType: "application/json", body: ociManifest,
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1"), dg("layer2")},
			wantArtifact: mtConfig,
		},
		{
			name: "OCI manifest, header with parameters", contentType: oci.MediaTypeOCIManifest + "; charset=utf-8", body: ociManifest,
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1"), dg("layer2")},
			wantArtifact: mtConfig,
		},
		{
			name: "OCI manifest without layers", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", nil),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config")}, wantArtifact: mtConfig,
		},
		{
			name: "OCI index", contentType: oci.MediaTypeOCIIndex, body: ociIndex,
			wantMediaType: oci.MediaTypeOCIIndex, wantIndex: true, wantChildren: []digest.Digest{dg("child"), dg("child2")},
		},
		{
			name: "OCI index with artifactType", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("artifactType", mtArtifact),
			wantMediaType: oci.MediaTypeOCIIndex, wantIndex: true, wantChildren: []digest.Digest{dg("child"), dg("child2")},
			wantArtifact: mtArtifact,
		},
		{
			name: "OCI index, media type from header only", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("mediaType", nil),
			wantMediaType: oci.MediaTypeOCIIndex, wantIndex: true, wantChildren: []digest.Digest{dg("child"), dg("child2")},
		},
		{
			name: "empty OCI index", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("manifests", []obj{}),
			wantMediaType: oci.MediaTypeOCIIndex, wantIndex: true,
		},
		{
			name: "OCI index with null layers", contentType: oci.MediaTypeOCIIndex, raw: []byte(`{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIIndex + `","layers":null,"manifests":[]}`),
			wantMediaType: oci.MediaTypeOCIIndex, wantIndex: true,
		},
		{
			name: "Docker schema2 manifest", contentType: oci.MediaTypeDockerManifest, body: dockerManifest,
			wantMediaType: oci.MediaTypeDockerManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1")}, wantArtifact: mtDockerConfig,
		},
		{
			name: "Docker manifest list", contentType: oci.MediaTypeDockerManifestList, body: dockerList,
			wantMediaType: oci.MediaTypeDockerManifestList, wantIndex: true, wantChildren: []digest.Digest{dg("child")},
		},
		{
			name: "artifact with subject and artifactType", contentType: oci.MediaTypeOCIManifest,
			body: ociManifest.with(
				"artifactType", mtArtifact,
				"config", obj{"mediaType": oci.MediaTypeEmptyJSON, "digest": digest.FromString("{}").String(), "size": 2},
				"layers", []obj{desc(mtArtifact, "sbom")},
				"subject", desc(oci.MediaTypeOCIManifest, "subject"),
			),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("{}"), dg("sbom")},
			wantArtifact: mtArtifact, wantSubject: dg("subject"),
		},
		{
			name: "index with subject", contentType: oci.MediaTypeOCIIndex,
			body:          ociIndex.with("subject", desc(oci.MediaTypeOCIIndex, "subject")),
			wantMediaType: oci.MediaTypeOCIIndex, wantIndex: true, wantChildren: []digest.Digest{dg("child"), dg("child2")},
			wantSubject: dg("subject"),
		},
		{
			name: "foreign layers are not blob references", contentType: oci.MediaTypeOCIManifest,
			body:          ociManifest.with("layers", []obj{layer1, foreignDesc, layer2}),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1"), dg("layer2")},
			wantArtifact: mtConfig,
		},
		{
			name: "Docker foreign layer is not a blob reference", contentType: oci.MediaTypeDockerManifest,
			body: dockerManifest.with("layers", []obj{
				desc(mtDockerForeign, "windows-base").with("urls", []string{"https://mcr.microsoft.com/x"}),
				desc(mtDockerLayer, "layer1"),
			}),
			wantMediaType: oci.MediaTypeDockerManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1")}, wantArtifact: mtDockerConfig,
		},
		{
			// The config is required content whatever its descriptor says:
			// the store checks it even for sparse manifests and GC keeps it
			// through this list, so urls on it must not drop it.
			name: "config with urls stays a blob reference", contentType: oci.MediaTypeOCIManifest,
			body:          ociManifest.with("config", cfgDesc.with("urls", []string{"https://example.com/c"})),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1"), dg("layer2")},
			wantArtifact: mtConfig,
		},
		{
			name: "empty urls list is not foreign", contentType: oci.MediaTypeOCIManifest,
			body:          ociManifest.with("layers", []obj{layer1.with("urls", []string{})}),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1")}, wantArtifact: mtConfig,
		},
		{
			name: "sha512 descriptors", contentType: oci.MediaTypeOCIManifest,
			body: ociManifest.with("layers", []obj{
				{"mediaType": mtLayer, "digest": digest.SHA512.FromString("big").String(), "size": 3},
			}),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), digest.SHA512.FromString("big")}, wantArtifact: mtConfig,
		},
		{
			name: "zero size descriptor", contentType: oci.MediaTypeOCIManifest,
			body:          ociManifest.with("layers", []obj{layer1.with("size", 0)}),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1")}, wantArtifact: mtConfig,
		},
		{
			name: "unknown fields are ignored", contentType: oci.MediaTypeOCIManifest,
			body:          ociManifest.with("x-extension", obj{"a": []int{1, 2}}),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1"), dg("layer2")},
			wantArtifact: mtConfig,
		},
		{
			name: "exactly MaxManifestSize bytes", contentType: oci.MediaTypeOCIManifest,
			raw: func() []byte {
				b, _ := json.Marshal(ociManifest)
				return append(b, bytes.Repeat([]byte(" "), oci.MaxManifestSize-len(b))...)
			}(),
			wantMediaType: oci.MediaTypeOCIManifest, wantBlobs: []digest.Digest{dg("config"), dg("layer1"), dg("layer2")},
			wantArtifact: mtConfig,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.raw
			if body == nil {
				body = tt.body.json(t)
			}
			m, err := oci.ParseManifest(tt.contentType, body)
			if err != nil {
				t.Fatalf("ParseManifest(%q, %.200s) = %v", tt.contentType, body, err)
			}
			if m.MediaType != tt.wantMediaType {
				t.Errorf("MediaType = %q, want %q", m.MediaType, tt.wantMediaType)
			}
			if m.IsIndex() != tt.wantIndex {
				t.Errorf("IsIndex() = %v, want %v", m.IsIndex(), tt.wantIndex)
			}
			if got := digests(m.BlobReferences()); !slices.Equal(got, tt.wantBlobs) {
				t.Errorf("BlobReferences() = %v, want %v", got, tt.wantBlobs)
			}
			for _, b := range m.BlobReferences() {
				if len(b.URLs) > 0 && b.Digest != m.Config.Digest {
					t.Errorf("BlobReferences() includes foreign layer %s", b.Digest)
				}
			}
			if got := digests(m.Manifests); !slices.Equal(got, tt.wantChildren) {
				t.Errorf("Manifests = %v, want %v", got, tt.wantChildren)
			}
			if got := m.EffectiveArtifactType(); got != tt.wantArtifact {
				t.Errorf("EffectiveArtifactType() = %q, want %q", got, tt.wantArtifact)
			}
			var subject digest.Digest
			if m.Subject != nil {
				subject = m.Subject.Digest
			}
			if subject != tt.wantSubject {
				t.Errorf("Subject = %q, want %q", subject, tt.wantSubject)
			}
			if tt.wantIndex && (m.Config != nil || m.Layers != nil) {
				t.Errorf("index has config %v / layers %v", m.Config, m.Layers)
			}
			if !tt.wantIndex && m.Config == nil {
				t.Errorf("image manifest has no config")
			}
		})
	}
}

func TestParseManifestRejected(t *testing.T) {
	huge := func() []byte {
		b, _ := json.Marshal(ociManifest)
		return append(b, bytes.Repeat([]byte(" "), oci.MaxManifestSize+1-len(b))...)
	}()
	tests := []struct {
		name        string
		contentType string
		body        obj
		raw         []byte
		wantErr     error
		wantMsg     string // substring of the error, when the location matters
	}{
		// Content-Type versus body.
		{name: "header manifest, body index", contentType: oci.MediaTypeOCIManifest, body: ociIndex, wantErr: oci.ErrManifestInvalid, wantMsg: "does not match"},
		{name: "header index, body manifest", contentType: oci.MediaTypeOCIIndex, body: ociManifest, wantErr: oci.ErrManifestInvalid, wantMsg: "does not match"},
		{name: "header Docker, body OCI", contentType: oci.MediaTypeDockerManifest, body: ociManifest, wantErr: oci.ErrManifestInvalid, wantMsg: "does not match"},
		{name: "header Docker list, body OCI index", contentType: oci.MediaTypeDockerManifestList, body: ociIndex, wantErr: oci.ErrManifestInvalid, wantMsg: "does not match"},
		{name: "header index, untyped manifest body", contentType: oci.MediaTypeOCIIndex, body: ociManifest.with("mediaType", nil), wantErr: oci.ErrManifestInvalid, wantMsg: "config or layers"},
		{name: "header manifest, untyped index body", contentType: oci.MediaTypeOCIManifest, body: ociIndex.with("mediaType", nil), wantErr: oci.ErrManifestInvalid, wantMsg: "must not have manifests"},
		{name: "no header, untyped body", contentType: "", body: ociManifest.with("mediaType", nil), wantErr: oci.ErrManifestInvalid, wantMsg: "no Content-Type"},
		{name: "generic header, untyped body", contentType: "application/json", body: ociManifest.with("mediaType", nil), wantErr: oci.ErrMediaTypeUnsupported},
		{name: "foreign header, untyped body", contentType: "text/plain", body: ociManifest.with("mediaType", nil), wantErr: oci.ErrMediaTypeUnsupported},
		{name: "body media type is a config type", contentType: "", body: ociManifest.with("mediaType", mtConfig), wantErr: oci.ErrMediaTypeUnsupported},
		{name: "body media type is schema1", contentType: "", body: ociManifest.with("mediaType", "application/vnd.docker.distribution.manifest.v1+prettyjws"), wantErr: oci.ErrMediaTypeUnsupported},
		{name: "body media type differs in case", contentType: "", body: ociManifest.with("mediaType", strings.ToUpper(oci.MediaTypeOCIManifest)), wantErr: oci.ErrMediaTypeUnsupported},

		// schemaVersion.
		{name: "missing schemaVersion", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("schemaVersion", nil), wantErr: oci.ErrManifestInvalid, wantMsg: "schemaVersion"},
		{name: "schemaVersion 1", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("schemaVersion", 1), wantErr: oci.ErrManifestInvalid, wantMsg: "schemaVersion"},
		{name: "schemaVersion 3", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("schemaVersion", 3), wantErr: oci.ErrManifestInvalid, wantMsg: "schemaVersion"},
		{name: "schemaVersion string", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("schemaVersion", "2"), wantErr: oci.ErrManifestInvalid},
		{name: "schemaVersion float", contentType: oci.MediaTypeOCIManifest, raw: []byte(`{"schemaVersion":2.5,"mediaType":"` + oci.MediaTypeOCIManifest + `"}`), wantErr: oci.ErrManifestInvalid},
		{name: "schemaVersion null", contentType: oci.MediaTypeOCIManifest, raw: []byte(`{"schemaVersion":null}`), wantErr: oci.ErrManifestInvalid, wantMsg: "schemaVersion"},
		{
			name: "Docker schema1", contentType: "application/vnd.docker.distribution.manifest.v1+prettyjws",
			raw:     []byte(`{"schemaVersion":1,"name":"a","tag":"b","architecture":"amd64","fsLayers":[{"blobSum":"` + dg("x").String() + `"}],"history":[],"signatures":[]}`),
			wantErr: oci.ErrMediaTypeUnsupported, wantMsg: "schema1",
		},
		{
			name: "fsLayers in a schemaVersion 2 body", contentType: oci.MediaTypeOCIManifest,
			body:    ociManifest.with("fsLayers", []obj{{"blobSum": dg("x").String()}}),
			wantErr: oci.ErrMediaTypeUnsupported, wantMsg: "schema1",
		},

		// Shape.
		{name: "index with config", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("config", cfgDesc), wantErr: oci.ErrManifestInvalid, wantMsg: "config or layers"},
		{name: "index with layers", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("layers", []obj{layer1}), wantErr: oci.ErrManifestInvalid, wantMsg: "config or layers"},
		{name: "index with empty layers", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("layers", []obj{}), wantErr: oci.ErrManifestInvalid, wantMsg: "config or layers"},
		{name: "Docker list with config", contentType: oci.MediaTypeDockerManifestList, body: dockerList.with("config", cfgDesc), wantErr: oci.ErrManifestInvalid, wantMsg: "config or layers"},
		{name: "manifest with manifests", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("manifests", []obj{childDesc}), wantErr: oci.ErrManifestInvalid, wantMsg: "must not have manifests"},
		{name: "manifest with empty manifests", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("manifests", []obj{}), wantErr: oci.ErrManifestInvalid, wantMsg: "must not have manifests"},
		{name: "manifest missing config", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("config", nil), wantErr: oci.ErrManifestInvalid, wantMsg: "config descriptor is required"},
		{name: "Docker manifest missing config", contentType: oci.MediaTypeDockerManifest, body: dockerManifest.with("config", nil), wantErr: oci.ErrManifestInvalid, wantMsg: "config descriptor is required"},
		{name: "layers is an object", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", obj{}), wantErr: oci.ErrManifestInvalid},
		{name: "config is a string", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("config", "x"), wantErr: oci.ErrManifestInvalid},

		// Descriptors.
		{name: "config without digest", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("config", cfgDesc.with("digest", nil)), wantErr: oci.ErrManifestInvalid, wantMsg: "config"},
		{name: "config with bad digest", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("config", cfgDesc.with("digest", "sha256:abc")), wantErr: oci.ErrManifestInvalid, wantMsg: "config"},
		{name: "config without media type", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("config", cfgDesc.with("mediaType", nil)), wantErr: oci.ErrManifestInvalid, wantMsg: "config: mediaType"},
		{name: "layer with uppercase digest", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1, layer2.with("digest", strings.ToUpper(dg("layer2").String()))}), wantErr: oci.ErrManifestInvalid, wantMsg: "layers[1]"},
		{name: "layer with sha384 digest", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1.with("digest", "sha384:"+hex96)}), wantErr: oci.ErrManifestInvalid, wantMsg: "layers[0]"},
		{name: "layer with md5 digest", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1.with("digest", "md5:d41d8cd98f00b204e9800998ecf8427e")}), wantErr: oci.ErrManifestInvalid, wantMsg: "layers[0]"},
		{name: "layer with empty digest", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1.with("digest", "")}), wantErr: oci.ErrManifestInvalid, wantMsg: "layers[0]"},
		{name: "foreign layer with bad digest", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{foreignDesc.with("digest", "sha256:zz")}), wantErr: oci.ErrManifestInvalid, wantMsg: "layers[0]"},
		{name: "layer with negative size", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1.with("size", -1)}), wantErr: oci.ErrManifestInvalid, wantMsg: "negative size"},
		{name: "layer with fractional size", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1.with("size", 1.5)}), wantErr: oci.ErrManifestInvalid},
		{name: "layer with huge size", contentType: oci.MediaTypeOCIManifest, raw: []byte(`{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIManifest + `","config":{"mediaType":"a/b","digest":"` + dg("c").String() + `","size":1e30}}`), wantErr: oci.ErrManifestInvalid},
		{name: "layer with empty media type", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1.with("mediaType", "")}), wantErr: oci.ErrManifestInvalid, wantMsg: "layers[0]: mediaType"},
		{name: "layer media type without slash", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1.with("mediaType", "tar")}), wantErr: oci.ErrManifestInvalid, wantMsg: "layers[0]: mediaType"},
		{name: "layer media type with parameters", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1.with("mediaType", mtLayer+"; x=y")}), wantErr: oci.ErrManifestInvalid, wantMsg: "layers[0]: mediaType"},
		{name: "layer with bad artifactType", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("layers", []obj{layer1.with("artifactType", "nope")}), wantErr: oci.ErrManifestInvalid, wantMsg: "layers[0]: artifactType"},
		{name: "index child with bad digest", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("manifests", []obj{childDesc, childDesc.with("digest", "sha256:"+hex64[:60])}), wantErr: oci.ErrManifestInvalid, wantMsg: "manifests[1]"},
		{name: "index child with negative size", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("manifests", []obj{childDesc.with("size", -5)}), wantErr: oci.ErrManifestInvalid, wantMsg: "manifests[0]"},
		{name: "index child without media type", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("manifests", []obj{childDesc.with("mediaType", nil)}), wantErr: oci.ErrManifestInvalid, wantMsg: "manifests[0]: mediaType"},
		{name: "subject with bad digest", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("subject", childDesc.with("digest", "sha256:nothex")), wantErr: oci.ErrManifestInvalid, wantMsg: "subject"},
		{name: "subject without media type", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("subject", childDesc.with("mediaType", nil)), wantErr: oci.ErrManifestInvalid, wantMsg: "subject"},
		{name: "index subject with bad digest", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("subject", childDesc.with("digest", "x")), wantErr: oci.ErrManifestInvalid, wantMsg: "subject"},
		{name: "bad artifactType", contentType: oci.MediaTypeOCIManifest, body: ociManifest.with("artifactType", "sbom"), wantErr: oci.ErrManifestInvalid, wantMsg: "artifactType"},
		{name: "bad index artifactType", contentType: oci.MediaTypeOCIIndex, body: ociIndex.with("artifactType", "a/b/c"), wantErr: oci.ErrManifestInvalid, wantMsg: "artifactType"},

		// Hostile bodies.
		{name: "MaxManifestSize + 1 bytes", contentType: oci.MediaTypeOCIManifest, raw: huge, wantErr: oci.ErrManifestInvalid, wantMsg: "limit"},
		{name: "empty body", contentType: oci.MediaTypeOCIManifest, raw: []byte{}, wantErr: oci.ErrManifestInvalid, wantMsg: "empty"},
		{name: "whitespace body", contentType: oci.MediaTypeOCIManifest, raw: []byte(" \n\t "), wantErr: oci.ErrManifestInvalid, wantMsg: "empty"},
		{name: "null", contentType: oci.MediaTypeOCIManifest, raw: []byte("null"), wantErr: oci.ErrManifestInvalid},
		{name: "empty object", contentType: oci.MediaTypeOCIManifest, raw: []byte("{}"), wantErr: oci.ErrManifestInvalid},
		{name: "JSON array", contentType: oci.MediaTypeOCIManifest, raw: []byte("[]"), wantErr: oci.ErrManifestInvalid},
		{name: "JSON array of a manifest", contentType: oci.MediaTypeOCIManifest, raw: append(append([]byte("["), ociManifest.json(t)...), ']'), wantErr: oci.ErrManifestInvalid},
		{name: "JSON string", contentType: oci.MediaTypeOCIManifest, raw: []byte(`"manifest"`), wantErr: oci.ErrManifestInvalid},
		{name: "JSON number", contentType: oci.MediaTypeOCIManifest, raw: []byte(`2`), wantErr: oci.ErrManifestInvalid},
		{name: "not JSON", contentType: oci.MediaTypeOCIManifest, raw: []byte("schemaVersion: 2"), wantErr: oci.ErrManifestInvalid},
		{name: "truncated JSON", contentType: oci.MediaTypeOCIManifest, raw: ociManifest.json(t)[:40], wantErr: oci.ErrManifestInvalid},
		{name: "trailing data", contentType: oci.MediaTypeOCIManifest, raw: append(ociManifest.json(t), "{}"...), wantErr: oci.ErrManifestInvalid},
		{name: "100k nested arrays", contentType: oci.MediaTypeOCIManifest, raw: bytes.Repeat([]byte("["), 100_000), wantErr: oci.ErrManifestInvalid},
		{name: "100k nested arrays, closed", contentType: oci.MediaTypeOCIManifest, raw: append(bytes.Repeat([]byte("["), 100_000), bytes.Repeat([]byte("]"), 100_000)...), wantErr: oci.ErrManifestInvalid},
		{
			name: "100k nested objects inside an unknown field", contentType: oci.MediaTypeOCIManifest,
			raw:     append([]byte(`{"schemaVersion":2,"x":`), append(bytes.Repeat([]byte(`{"a":`), 100_000), append([]byte("1"), bytes.Repeat([]byte("}"), 100_001)...)...)...),
			wantErr: oci.ErrManifestInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.raw
			if body == nil {
				body = tt.body.json(t)
			}
			m, err := oci.ParseManifest(tt.contentType, body)
			if err == nil {
				t.Fatalf("ParseManifest(%q, %.200s) = %+v, want error", tt.contentType, body, m)
			}
			if m != nil {
				t.Errorf("ParseManifest returned %+v alongside error %v", m, err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want errors.Is %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestManifestEffectiveArtifactType(t *testing.T) {
	cfg := &v1.Descriptor{MediaType: mtConfig}
	tests := []struct {
		name string
		m    oci.Manifest
		want string
	}{
		{"manifest artifactType wins", oci.Manifest{MediaType: oci.MediaTypeOCIManifest, ArtifactType: mtArtifact, Config: cfg}, mtArtifact},
		{"manifest falls back to config", oci.Manifest{MediaType: oci.MediaTypeOCIManifest, Config: cfg}, mtConfig},
		{"Docker manifest falls back to config", oci.Manifest{MediaType: oci.MediaTypeDockerManifest, Config: &v1.Descriptor{MediaType: mtDockerConfig}}, mtDockerConfig},
		{"manifest without config", oci.Manifest{MediaType: oci.MediaTypeOCIManifest}, ""},
		{"index without artifactType", oci.Manifest{MediaType: oci.MediaTypeOCIIndex}, ""},
		{"index ignores a config", oci.Manifest{MediaType: oci.MediaTypeOCIIndex, Config: cfg}, ""},
		{"index with artifactType", oci.Manifest{MediaType: oci.MediaTypeOCIIndex, ArtifactType: mtArtifact}, mtArtifact},
		{"Docker list", oci.Manifest{MediaType: oci.MediaTypeDockerManifestList, Config: cfg}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.EffectiveArtifactType(); got != tt.want {
				t.Errorf("EffectiveArtifactType() = %q, want %q", got, tt.want)
			}
			d := tt.m.Descriptor(dg("m"), 42)
			if d.ArtifactType != tt.want || d.MediaType != tt.m.MediaType || d.Digest != dg("m") || d.Size != 42 {
				t.Errorf("Descriptor() = %+v", d)
			}
		})
	}
}

func TestBlobReferencesOfIndexIsEmpty(t *testing.T) {
	// Even a hand-built index with layers reports no blobs: an index
	// references manifests, never blobs.
	m := oci.Manifest{MediaType: oci.MediaTypeDockerManifestList, Layers: []v1.Descriptor{{Digest: dg("l")}}}
	if refs := m.BlobReferences(); len(refs) != 0 {
		t.Errorf("BlobReferences() = %v, want none", refs)
	}
}

func TestManifestMediaTypePredicates(t *testing.T) {
	for _, mt := range []string{oci.MediaTypeOCIManifest, oci.MediaTypeOCIIndex, oci.MediaTypeDockerManifest, oci.MediaTypeDockerManifestList} {
		if !oci.IsManifestMediaType(mt) {
			t.Errorf("IsManifestMediaType(%q) = false", mt)
		}
		want := mt == oci.MediaTypeOCIIndex || mt == oci.MediaTypeDockerManifestList
		if oci.IsIndexMediaType(mt) != want {
			t.Errorf("IsIndexMediaType(%q) = %v", mt, !want)
		}
	}
	for _, mt := range []string{"", "application/json", mtConfig, oci.MediaTypeEmptyJSON, "application/vnd.docker.distribution.manifest.v1+prettyjws", strings.ToUpper(oci.MediaTypeOCIManifest)} {
		if oci.IsManifestMediaType(mt) || oci.IsIndexMediaType(mt) {
			t.Errorf("%q is classed as a manifest media type", mt)
		}
	}
}

func TestValidateMediaType(t *testing.T) {
	tests := []struct {
		mt    string
		valid bool
	}{
		{oci.MediaTypeOCIManifest, true},
		{oci.MediaTypeDockerManifestList, true},
		{mtLayer, true},
		{"a/b", true},
		{"A/B", true},
		{"text/plain", true},
		{"application/vnd.a!#$&^_.+-b", true},
		{strings.Repeat("a", 127) + "/" + strings.Repeat("b", 127), true},

		{"", false},
		{"application", false},
		{"/json", false},
		{"application/", false},
		{"/", false},
		{"a/b/c", false},
		{"+a/b", false},
		{"a/.b", false},
		{"a/b c", false},
		{"a/b;charset=utf-8", false},
		{"a /b", false},
		{"a/b\n", false},
		{"a/b\x00", false},
		{"a/é", false},
		{strings.Repeat("a", 128) + "/b", false},
		{"a/" + strings.Repeat("b", 128), false},
	}
	for _, tt := range tests {
		name := tt.mt
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			err := oci.ValidateMediaType(tt.mt)
			if tt.valid && err != nil {
				t.Errorf("ValidateMediaType(%q) = %v, want nil", tt.mt, err)
			}
			if !tt.valid && err == nil {
				t.Errorf("ValidateMediaType(%q) = nil, want error", tt.mt)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	j := func(o obj) []byte { return o.json(f) }
	seeds := []struct {
		ct   string
		body []byte
	}{
		{oci.MediaTypeOCIManifest, j(ociManifest)},
		{"", j(ociManifest.with("layers", []obj{layer1, foreignDesc, layer2}))},
		{oci.MediaTypeOCIManifest, j(ociManifest.with("mediaType", nil, "artifactType", mtArtifact, "subject", childDesc))},
		{oci.MediaTypeOCIManifest + "; charset=utf-8", j(ociManifest.with("config", cfgDesc.with("urls", []string{"https://x/"})))},
		{oci.MediaTypeOCIIndex, j(ociIndex)},
		{"", j(ociIndex.with("artifactType", mtArtifact))},
		{oci.MediaTypeDockerManifest, j(dockerManifest)},
		{oci.MediaTypeDockerManifestList, j(dockerList)},
		{oci.MediaTypeDockerManifest, j(dockerManifest.with("layers", []obj{desc(mtDockerForeign, "w").with("urls", []string{"https://x/"})}))},
		{oci.MediaTypeOCIIndex, j(ociManifest)},
		{oci.MediaTypeOCIManifest, j(ociIndex.with("mediaType", nil))},
		{"application/json", j(ociManifest)},
		{"", []byte(`{"schemaVersion":1,"fsLayers":[]}`)},
		{"", []byte(`{"schemaVersion":2}`)},
		{oci.MediaTypeOCIManifest, []byte(`null`)},
		{oci.MediaTypeOCIManifest, []byte(`[]`)},
		{oci.MediaTypeOCIManifest, []byte(``)},
		{oci.MediaTypeOCIManifest, []byte(`[[[[[[[[[[`)},
		{oci.MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:` + hex64 + `","size":-1}}`)},
	}
	for _, s := range seeds {
		f.Add(s.ct, s.body)
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		m, err := oci.ParseManifest(contentType, body)
		if err != nil {
			if m != nil {
				t.Fatalf("returned %+v alongside error %v", m, err)
			}
			if !errors.Is(err, oci.ErrManifestInvalid) && !errors.Is(err, oci.ErrMediaTypeUnsupported) {
				t.Fatalf("error %v wraps neither ErrManifestInvalid nor ErrMediaTypeUnsupported", err)
			}
			return
		}
		if !oci.IsManifestMediaType(m.MediaType) {
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		if m.IsIndex() {
			if m.Config != nil || m.Layers != nil {
				t.Fatalf("accepted index with config or layers")
			}
			if len(m.BlobReferences()) != 0 {
				t.Fatalf("index has blob references %v", m.BlobReferences())
			}
		} else {
			if m.Config == nil {
				t.Fatalf("accepted image manifest without config")
			}
			if m.Manifests != nil {
				t.Fatalf("accepted image manifest with manifests")
			}
		}
		refs := m.BlobReferences()
		for i, d := range refs {
			// The config is required content even when its descriptor
			// carries urls; only layers can be foreign.
			if len(d.URLs) > 0 && i != 0 {
				t.Fatalf("BlobReferences()[%d] is a foreign layer %+v", i, d)
			}
			if _, err := oci.ParseDigest(string(d.Digest)); err != nil {
				t.Fatalf("BlobReferences()[%d] digest %q: %v", i, d.Digest, err)
			}
			if err := oci.ValidateMediaType(d.MediaType); err != nil {
				t.Fatalf("BlobReferences()[%d] media type: %v", i, err)
			}
			if d.Size < 0 {
				t.Fatalf("BlobReferences()[%d] size %d", i, d.Size)
			}
		}
		if !m.IsIndex() && (len(refs) == 0 || refs[0].Digest != m.Config.Digest) {
			t.Fatalf("BlobReferences() = %v does not start with the config", refs)
		}
		nonForeign := 0
		for _, l := range m.Layers {
			if len(l.URLs) == 0 {
				nonForeign++
			}
		}
		if !m.IsIndex() && len(refs) != 1+nonForeign {
			t.Fatalf("BlobReferences() has %d entries, want config + %d layers", len(refs), nonForeign)
		}
		for i, d := range m.Manifests {
			if _, err := oci.ParseDigest(string(d.Digest)); err != nil {
				t.Fatalf("manifests[%d] digest %q: %v", i, d.Digest, err)
			}
		}
		if m.Subject != nil {
			if _, err := oci.ParseDigest(string(m.Subject.Digest)); err != nil {
				t.Fatalf("subject digest %q: %v", m.Subject.Digest, err)
			}
		}
		if at := m.EffectiveArtifactType(); at != "" {
			if err := oci.ValidateMediaType(at); err != nil {
				t.Fatalf("EffectiveArtifactType() = %q: %v", at, err)
			}
		} else if !m.IsIndex() && m.ArtifactType == "" {
			t.Fatalf("image manifest has no effective artifact type (config media type %q)", m.Config.MediaType)
		}
	})
}
