package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/remote"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/server"
)

// pushLayout copies the only image of an OCI layout to ref, blob by blob.
func pushLayout(t *testing.T, client *remote.Client, dir string, ref oci.ImageRef) {
	t.Helper()
	ctx := context.Background()
	read := func(d v1.Descriptor) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var index v1.Index
	ib, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if err := json.Unmarshal(ib, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v", err)
	}
	mb := read(index.Manifests[0])
	var m v1.Manifest
	json.Unmarshal(mb, &m)
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if _, err := client.PushBlob(ctx, ref, read(d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.PushManifest(ctx, ref, v1.MediaTypeImageManifest, mb); err != nil {
		t.Fatal(err)
	}
}

// TestSBOMCommand catalogs the debootstrap bookworm image three ways:
// pulled from an in-process registry, from its OCI layout, and from the
// extracted root; all list the same packages, dpkg's own count.
func TestSBOMCommand(t *testing.T) {
	unsetDataEnv(t)
	out, err := exec.Command("../../scripts/fixtures.sh", "bookworm-minbase").Output()
	if err != nil {
		t.Fatalf("scripts/fixtures.sh: %v", err)
	}
	fx := strings.TrimSpace(string(out))
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker"))
	cfg := config.Default()
	cfg.Data = filepath.Join(dir, "data")
	cfg.Auth.Enabled = false
	s, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pushLayout(t, remote.New(remote.Options{}), filepath.Join(fx, "oci"), oci.ImageRef{Registry: host, Repository: "library/bookworm", Tag: "minbase"})

	decode := func(args ...string) *sbom.SBOM {
		t.Helper()
		stdout, stderr, err := runCobra(t, newSBOMCmd(), args...)
		if err != nil || stderr != "" {
			t.Fatalf("sbom %q: %v, stderr %q", args, err, stderr)
		}
		doc, err := sbom.Decode(strings.NewReader(stdout))
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	fromRegistry := decode(host + "/library/bookworm:minbase")
	fromLayout := decode("--oci-layout", filepath.Join(fx, "oci")+":bookworm-minbase")
	fromRootfs := decode("--rootfs", filepath.Join(fx, "rootfs"))
	if len(fromRootfs.Packages) < 80 || len(fromRegistry.Packages) != len(fromRootfs.Packages) {
		t.Fatalf("%d packages from the registry, %d from the root", len(fromRegistry.Packages), len(fromRootfs.Packages))
	}
	if fromRegistry.Source.Digest != fromLayout.Source.Digest || fromRegistry.Source.Kind != sbom.SourceImage {
		t.Fatalf("sources %+v %+v", fromRegistry.Source, fromLayout.Source)
	}
	for i := range fromRegistry.Packages {
		a, b, c := fromRegistry.Packages[i], fromLayout.Packages[i], fromRootfs.Packages[i]
		if !reflect.DeepEqual(a, b) || a.Layer == "" {
			t.Fatalf("registry and layout disagree:\n%+v\n%+v", a, b)
		}
		a.Layer = ""
		if !reflect.DeepEqual(a, c) {
			t.Fatalf("image and root disagree:\n%+v\n%+v", a, c)
		}
	}

	for _, format := range []string{"cyclonedx", "spdx"} {
		stdout, _, err := runCobra(t, newSBOMCmd(), "--rootfs", filepath.Join(fx, "rootfs"), "--format", format)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if format == "cyclonedx" && (doc["specVersion"] != "1.5" || len(doc["components"].([]any)) != len(fromRootfs.Packages)+1) {
			t.Fatalf("cyclonedx: %v components", len(doc["components"].([]any)))
		}
		if format == "spdx" && (doc["spdxVersion"] != "SPDX-2.3" || len(doc["packages"].([]any)) != len(fromRootfs.Packages)+2) {
			t.Fatalf("spdx: %v packages", len(doc["packages"].([]any)))
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "exactly one of"},
		{[]string{"--rootfs", dir, "--oci-layout", dir}, "exactly one of"},
		{[]string{"--rootfs", dir, "--format", "xml"}, "--format must be"},
		{[]string{"--oci-layout", dir}, "not an OCI image layout"},
		{[]string{"--oci-layout", filepath.Join(fx, "oci") + ":nope"}, `no manifest tagged "nope"`},
		{[]string{"--rootfs", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"--rootfs", dir, "--platform", "linux"}, "OS/ARCH"},
		{[]string{host + "/library/bookworm:missing"}, "manifest unknown"},
		{[]string{"library/bookworm:minbase"}, "names no registry"},
		{[]string{"--oci-layout", filepath.Join(fx, "oci"), "--platform", "linux/s390x"}, ""},
	} {
		_, _, err := runCobra(t, newSBOMCmd(), tc.args...)
		if tc.want == "" {
			// A single-platform image is scanned whatever --platform says:
			// only an index is chosen from.
			if err != nil {
				t.Errorf("%q: %v", tc.args, err)
			}
			continue
		}
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestSplitLayoutTag(t *testing.T) {
	for in, want := range map[string][2]string{
		"./layout":       {"./layout", ""},
		"./layout:v1":    {"./layout", "v1"},
		"/a:b/layout":    {"/a:b/layout", ""},
		"/a:b/layout:v1": {"/a:b/layout", "v1"},
		"layout:":        {"layout:", ""},
		"C:\\x":          {"C:\\x", ""},
	} {
		if d, tag := splitLayoutTag(in); d != want[0] || tag != want[1] {
			t.Errorf("%q: %q %q", in, d, tag)
		}
	}
	var b bytes.Buffer
	reportProblems(&b, nil)
	if b.Len() != 0 {
		t.Fatal("problems printed for nothing")
	}
}
