package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

func putBlob(t *testing.T, dir string, b []byte, mt string) v1.Descriptor {
	d := digest.FromBytes(b)
	p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

func oneFileTar(name, body string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))})
	tw.Write([]byte(body))
	tw.Close()
	return b.Bytes()
}

// writeImage writes an image manifest for arch with one uncompressed
// layer and returns its descriptor.
func writeImage(t *testing.T, dir, arch, body string) v1.Descriptor {
	layer := oneFileTar("etc/arch", body)
	ld := putBlob(t, dir, layer, v1.MediaTypeImageLayer)
	cfg, _ := json.Marshal(v1.Image{Platform: v1.Platform{OS: "linux", Architecture: arch}, RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{ld.Digest}}})
	cd := putBlob(t, dir, cfg, v1.MediaTypeImageConfig)
	m, _ := json.Marshal(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: cd, Layers: []v1.Descriptor{ld}})
	md := putBlob(t, dir, m, v1.MediaTypeImageManifest)
	md.Platform = &v1.Platform{OS: "linux", Architecture: arch}
	return md
}

func writeIndex(t *testing.T, dir string, top ...v1.Descriptor) {
	ib, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: top})
	os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func readLayer(t *testing.T, img *Image) (string, error) {
	rc, err := img.RootfsLayers()[0].Open(context.Background())
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return string(b), err
}

func TestLayoutPlatforms(t *testing.T) {
	dir := t.TempDir()
	amd, arm := writeImage(t, dir, "amd64", "amd64"), writeImage(t, dir, "arm64", "arm64")
	ib, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{amd, arm}})
	idx := putBlob(t, dir, ib, v1.MediaTypeImageIndex)
	idx.Annotations = map[string]string{v1.AnnotationRefName: "multi"}
	writeIndex(t, dir, idx)
	ctx := context.Background()
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := Layout(ctx, dir, "multi", Platform{OS: "linux", Architecture: arch})
		if err != nil {
			t.Fatal(err)
		}
		if img.Config.Architecture != arch || len(img.Layers) != 1 || len(img.ConfigBytes) == 0 {
			t.Fatalf("%s: %+v", arch, img.Config.Platform)
		}
		content, err := readLayer(t, img)
		if err != nil || !strings.Contains(content, arch) {
			t.Fatalf("%s: layer %v", arch, err)
		}
		img.Close()
	}
	if _, err := Layout(ctx, dir, "multi", Platform{OS: "linux", Architecture: "s390x"}); !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "no linux/s390x manifest") {
		t.Fatalf("missing platform: %v", err)
	}
}

func TestLayoutHostile(t *testing.T) {
	ctx := context.Background()
	amd := Platform{OS: "linux", Architecture: "amd64"}
	t.Run("tampered layer", func(t *testing.T) {
		dir := t.TempDir()
		md := writeImage(t, dir, "amd64", "original")
		writeIndex(t, dir, md)
		img, err := Layout(ctx, dir, "", amd)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		p := filepath.Join(dir, "blobs", "sha256", img.Layers[0].Digest.Encoded())
		b, _ := os.ReadFile(p)
		os.WriteFile(p, bytes.Replace(b, []byte("original"), []byte("tampered"), 1), 0o644)
		if _, err := readLayer(t, img); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("tampered: %v", err)
		}
		os.WriteFile(p, append(b, 0), 0o644)
		if _, err := readLayer(t, img); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("longer: %v", err)
		}
	})
	t.Run("blob symlinked out of the layout", func(t *testing.T) {
		dir := t.TempDir()
		md := writeImage(t, dir, "amd64", "x")
		writeIndex(t, dir, md)
		outside := filepath.Join(t.TempDir(), "manifest")
		p := filepath.Join(dir, "blobs", "sha256", md.Digest.Encoded())
		os.Rename(p, outside)
		os.Symlink(outside, p)
		if _, err := Layout(ctx, dir, "", amd); err == nil || !strings.Contains(err.Error(), "escapes") {
			t.Fatalf("symlink out: %v", err)
		}
	})
	for _, tc := range []struct {
		name  string
		index string
		want  string
	}{
		{"no layout file", "", "not an OCI image layout"},
		{"two untagged manifests", "two", "2 manifests"},
		{"bad digest", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../etc/passwd","size":10}]}`, "digest"},
		{"huge manifest", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":99999999}]}`, "bytes"},
		{"not JSON", `{`, "index.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			switch tc.index {
			case "":
			case "two":
				writeIndex(t, dir, writeImage(t, dir, "amd64", "a"), writeImage(t, dir, "amd64", "b"))
			default:
				os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
				os.WriteFile(filepath.Join(dir, "index.json"), []byte(tc.index), 0o644)
			}
			if _, err := Layout(ctx, dir, "", amd); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLayoutBusybox opens what internal/testimage writes: the layout
// format other tests push with skopeo.
func TestLayoutBusybox(t *testing.T) {
	dir := t.TempDir()
	want, err := testimage.Busybox(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Layout(context.Background(), dir, want.Tag, DefaultPlatform())
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Manifest.Digest != want.ManifestDigest || img.ConfigDigest != want.ConfigDigest || len(img.Layers) != len(want.LayerDigests) {
		t.Fatalf("got %s %s, want %s %s", img.Manifest.Digest, img.ConfigDigest, want.ManifestDigest, want.ConfigDigest)
	}
}

func TestParsePlatform(t *testing.T) {
	for in, ok := range map[string]bool{"linux/amd64": true, "linux/arm/v7": true, "linux": false, "/amd64": false, "a/b/c/d": false} {
		p, err := ParsePlatform(in)
		if (err == nil) != ok || ok && p.String() != in {
			t.Errorf("%q: %+v %v", in, p, err)
		}
	}
}
