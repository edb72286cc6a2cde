package catalog

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

// bookworm returns the cached debootstrap bookworm minbase fixture
// (rootfs/ and oci/), building it with scripts/fixtures.sh when missing.
func bookworm(t testing.TB) string {
	t.Helper()
	fixtureOnce.Do(func() {
		out, err := exec.Command("../../../scripts/fixtures.sh", "bookworm-minbase").Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = &fixtureError{err, string(ee.Stderr)}
			}
			fixtureErr = err
			return
		}
		fixtureDir = strings.TrimSpace(string(out))
	})
	if fixtureErr != nil {
		t.Fatalf("scripts/fixtures.sh bookworm-minbase: %v", fixtureErr)
	}
	return fixtureDir
}

type fixtureError struct {
	err    error
	stderr string
}

func (e *fixtureError) Error() string { return e.err.Error() + ": " + e.stderr }

// tent is a tar entry for test layers.
type tent struct {
	typ  byte
	name string
	body []byte
	link string
	mode int64
}

func tfile(name string, body string) tent {
	return tent{typ: tar.TypeReg, name: name, body: []byte(body), mode: 0o644}
}
func texec(name string, body []byte) tent {
	return tent{typ: tar.TypeReg, name: name, body: body, mode: 0o755}
}
func tlink(name, target string) tent { return tent{typ: tar.TypeLink, name: name, link: target} }

func tarLayer(t testing.TB, es ...tent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeLayout writes an OCI layout with one image of the given tar layers
// (gzipped) and config, and returns the layer digests.
func writeLayout(t testing.TB, dir string, cfg v1.Image, tars ...[]byte) []digest.Digest {
	t.Helper()
	put := func(b []byte) v1.Descriptor {
		d := digest.FromBytes(b)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{Digest: d, Size: int64(len(b))}
	}
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest}
	cfg.RootFS = v1.RootFS{Type: "layers"}
	if cfg.OS == "" {
		cfg.OS, cfg.Architecture = "linux", "amd64"
	}
	var layers []digest.Digest
	for _, tb := range tars {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(tb)
		zw.Close()
		d := put(zb.Bytes())
		d.MediaType = v1.MediaTypeImageLayerGzip
		m.Layers = append(m.Layers, d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(tb))
		layers = append(layers, d.Digest)
	}
	cb, _ := json.Marshal(cfg)
	m.Config = put(cb)
	m.Config.MediaType = v1.MediaTypeImageConfig
	mb, _ := json.Marshal(m)
	md := put(mb)
	md.MediaType = v1.MediaTypeImageManifest
	md.Annotations = map[string]string{v1.AnnotationRefName: "test"}
	ib, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{md}})
	os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return layers
}
