package lint

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/image"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

func ids(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	slices.Sort(out)
	return out
}

func find(fs []Finding, id string) *Finding {
	for i := range fs {
		if fs[i].ID == id {
			return &fs[i]
		}
	}
	return nil
}

func rawConfig(t *testing.T, c v1.Image, healthcheck []string) []byte {
	b, _ := json.Marshal(c)
	if healthcheck == nil {
		return b
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	cfg, _ := m["config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
	}
	cfg["Healthcheck"] = map[string]any{"Test": healthcheck}
	m["config"] = cfg
	b, _ = json.Marshal(m)
	return b
}

func TestUserAndHealthcheck(t *testing.T) {
	for _, tc := range []struct {
		user string
		hc   []string
		want []string
	}{
		{"", nil, []string{IDRootUser, IDHealthcheck}},
		{"root", []string{"CMD", "true"}, []string{IDRootUser}},
		{"0", []string{"NONE"}, []string{IDRootUser, IDHealthcheck}},
		{"0:0", []string{"CMD-SHELL", "curl -f localhost"}, []string{IDRootUser}},
		{"00:1000", []string{"CMD", "x"}, []string{IDRootUser}},
		{"root:app", []string{"CMD", "x"}, []string{IDRootUser}},
		{"1000", []string{"CMD", "x"}, nil},
		{"app:app", []string{"CMD", "x"}, nil},
		{"10001", nil, []string{IDHealthcheck}},
	} {
		c := v1.Image{Config: v1.ImageConfig{User: tc.user}}
		got := ids(Check(Input{Config: &c, RawConfig: rawConfig(t, c, tc.hc)}))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("USER %q healthcheck %q: %q, want %q", tc.user, tc.hc, got, tc.want)
		}
	}
}

const awsKeyID = "AKIAIOSFODNN7EXAMPLE"
const awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
const rsaKey = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"

func TestConfigSecrets(t *testing.T) {
	c := v1.Image{Config: v1.ImageConfig{User: "1000",
		Env: []string{"PATH=/usr/bin", "DB_PASSWORD=hunter2", "MYSQL_ROOT_PASSWORD_FILE=/run/secrets/db", "GITHUB_TOKEN=", "HARMLESS=" + awsKeyID,
			"TLS_KEY=" + rsaKey, "API_KEY=abc", "LANG=C.UTF-8"},
		Labels: map[string]string{"org.opencontainers.image.source": "https://example.com", "deploy.secret": "s3cr3t", "note": "AKIA is a prefix"}}}
	fs := Check(Input{Config: &c, RawConfig: rawConfig(t, c, []string{"CMD", "x"})})
	f := find(fs, IDSecrets)
	if f == nil || f.Severity != High {
		t.Fatalf("findings %+v", fs)
	}
	want := []string{"ENV DB_PASSWORD", "ENV HARMLESS (AWS access key id)", "ENV TLS_KEY (private key)", "ENV API_KEY", "LABEL deploy.secret"}
	if !reflect.DeepEqual(f.Evidence, want) {
		t.Fatalf("evidence %q, want %q", f.Evidence, want)
	}
	for _, e := range f.Evidence {
		if strings.Contains(e, "hunter2") || strings.Contains(e, "abc") {
			t.Fatalf("a secret value leaked into the finding: %q", e)
		}
	}
}

func TestHistory(t *testing.T) {
	c := v1.Image{Config: v1.ImageConfig{User: "1000", Labels: map[string]string{baseNameLabel: "docker.io/library/debian"}},
		History: []v1.History{
			{CreatedBy: "/bin/sh -c #(nop) ADD file:5f6b1c in / "},
			{CreatedBy: "ADD https://example.com/tool.tar.gz /opt/ # buildkit"},
			{CreatedBy: "ADD --chown=1000 http://example.com/x /x # buildkit"},
			{CreatedBy: "COPY --from=golang:latest /usr/local/go /usr/local/go # buildkit"},
			{CreatedBy: "RUN /bin/sh -c apt-get update # buildkit"},
			{CreatedBy: "RUN /bin/sh -c apt-get update && apt-get install -y curl # buildkit"},
			{CreatedBy: "RUN /bin/sh -c apk update && apk add --no-cache git # buildkit"},
			{CreatedBy: "RUN /bin/sh -c echo downloading-latest-version # buildkit"},
		}}
	fs := Check(Input{Config: &c, RawConfig: rawConfig(t, c, []string{"CMD", "x"}), Tag: "latest"})
	if got := ids(fs); !reflect.DeepEqual(got, []string{IDUpdateAlone, IDAddRemote, IDLatestTag, IDLatestTag}) {
		t.Fatalf("ids %q", got)
	}
	if f := find(fs, IDAddRemote); len(f.Evidence) != 2 {
		t.Errorf("ADD evidence %q", f.Evidence)
	}
	if f := find(fs, IDUpdateAlone); len(f.Evidence) != 1 || !strings.Contains(f.Evidence[0], "apt-get update #") {
		t.Errorf("update evidence %q", f.Evidence)
	}
	var latest []string
	for _, f := range fs {
		if f.ID == IDLatestTag {
			latest = append(latest, f.Evidence...)
		}
	}
	slices.Sort(latest)
	if want := []string{"COPY --from=golang:latest /usr/local/go /usr/local/go # buildkit", "base image docker.io/library/debian", "scanned as :latest"}; !reflect.DeepEqual(latest, want) {
		t.Errorf("latest evidence %q", latest)
	}
}

// tarLayer builds a layer; a mode with the setuid bit is written as such.
func tarLayer(t *testing.T, files map[string]string, modes map[string]int64) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		mode := int64(0o644)
		if m, ok := modes[n]; ok {
			mode = m
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: mode, Size: int64(len(files[n]))})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return b.Bytes()
}

func walkLayers(t *testing.T, blobs ...[]byte) (*rootfs.Tree, *Analyzer) {
	var ls []rootfs.Layer
	for _, b := range blobs {
		ls = append(ls, rootfs.Layer{Digest: "sha256:x", Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }})
	}
	a := NewAnalyzer()
	tree, err := rootfs.WalkLayers(context.Background(), ls, []rootfs.Analyzer{a}, rootfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tree, a
}

func TestFiles(t *testing.T) {
	l0 := tarLayer(t, map[string]string{
		"usr/bin/passwd":        "elf",
		"usr/bin/wall":          "elf",
		"usr/bin/sudo":          "elf",
		"root/.ssh/id_rsa":      rsaKey,
		"root/.aws/credentials": "[default]\naws_access_key_id = " + awsKeyID + "\naws_secret_access_key = " + awsSecret + "\n",
		"app/.npmrc":            "//registry.npmjs.org/:_authToken=npm_abc\n",
		"app/config.yaml":       "token: ghp_" + strings.Repeat("a", 36) + "\n",
		"app/notes.txt":         "AKIA is how AWS key ids start; AKIAIOSFODNN7EXAMPLEX is too long\n",
		"usr/lib/python3/dist-packages/test/k.pem":                         rsaKey,
		"app/node_modules/x/test/key.pem":                                  rsaKey,
		"build/leaked.pem":                                                 rsaKey,
		"var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": strings.Repeat("x", 1000),
		"var/lib/apt/lists/lock":                                           "",
		"var/cache/apt/archives/curl_7.88.1_amd64.deb":                     strings.Repeat("x", 2000),
		"var/cache/apk/APKINDEX.tar.gz":                                    "x",
	}, map[string]int64{"usr/bin/passwd": 0o4755, "usr/bin/wall": 0o2755, "usr/bin/sudo": 0o6755})
	l1 := tarLayer(t, map[string]string{"build/.wh.leaked.pem": ""}, nil)
	tree, a := walkLayers(t, l0, l1)
	fs := Check(Input{Tree: tree, Analyzer: a, SBOM: &sbom.SBOM{Packages: []sbom.Package{{Type: sbom.Deb, Name: "sudo", Version: "1.9.13p3-1+deb12u1"}}}})
	if got := ids(fs); !reflect.DeepEqual(got, []string{IDSetuid, IDSecrets, IDSudo, IDPackageCache}) {
		t.Fatalf("ids %q", got)
	}
	check := func(id string, want []string) {
		t.Helper()
		if got := find(fs, id).Evidence; !reflect.DeepEqual(got, want) {
			t.Errorf("%s evidence:\n%q\nwant\n%q", id, got, want)
		}
	}
	check(IDSecrets, []string{
		"/app/.npmrc (npm token)",
		"/app/config.yaml (GitHub token)",
		"/root/.aws/credentials (AWS access key id, AWS secret access key)",
		"/root/.ssh/id_rsa (private key)",
		"/build/leaked.pem (private key; in layer 0, removed or replaced by a later layer)",
	})
	check(IDSetuid, []string{"/usr/bin/passwd (setuid)", "/usr/bin/sudo (setuid, setgid)", "/usr/bin/wall (setgid)"})
	check(IDSudo, []string{"deb package sudo 1.9.13p3-1+deb12u1", "/usr/bin/sudo"})
	check(IDPackageCache, []string{"apk cache (/var/cache/apk): 1 files, 1 B", "apt archives (/var/cache/apt/archives): 1 files, 2.0 KiB", "apt lists (/var/lib/apt/lists): 1 files, 1000 B"})
	if fs[0].ID != IDSecrets || fs[0].Severity != High {
		t.Errorf("not sorted by severity: %+v", fs[0])
	}
}

func TestFindSecretsHostile(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"header alone", "PRIVATE KEY-----", nil},
		{"public key", "-----BEGIN PUBLIC KEY-----\n", nil},
		{"certificate", "-----BEGIN CERTIFICATE-----\n", nil},
		{"openssh key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn", []string{"private key"}},
		{"encrypted key", "x\n-----BEGIN ENCRYPTED PRIVATE KEY-----\n", []string{"private key"}},
		{"key id at the end", "id=" + awsKeyID, []string{"AWS access key id"}},
		{"key id lower case", "id=akiaiosfodnn7example", nil},
		{"key id too short", "AKIAIOSFODNN7EXAMP", nil},
		{"secret without value", "aws_secret_access_key =\n", nil},
		{"secret too short", "AWS_SECRET_ACCESS_KEY=abc\n", nil},
		{"secret", "AWS_SECRET_ACCESS_KEY: \"" + awsSecret + "\"", []string{"AWS secret access key"}},
		{"github token in a word", "xghp_" + strings.Repeat("a", 36), nil},
		{"binary noise", string(bytes.Repeat([]byte{0xff, 'A', 'K', 'I', 'A', 0}, 1000)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := findSecrets("/app/x", []byte(tc.in)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzFindSecrets(f *testing.F) {
	f.Add("/app/x", []byte(rsaKey))
	f.Add("/root/.docker/config.json", []byte(`{"auths":{"x":{"auth":"eA=="}}}`))
	f.Add("/x", []byte("aws_secret_access_key="+awsSecret+" "+awsKeyID))
	f.Fuzz(func(t *testing.T, p string, b []byte) {
		for _, k := range findSecrets(p, b) {
			if k == "" {
				t.Fatal("empty kind")
			}
		}
	})
}

// FuzzCheckConfig runs the config checks on arbitrary config JSON.
func FuzzCheckConfig(f *testing.F) {
	c := v1.Image{Config: v1.ImageConfig{Env: []string{"A=B"}, Labels: map[string]string{baseNameLabel: "x:latest"}}, History: []v1.History{{CreatedBy: "ADD https://x /"}}}
	b, _ := json.Marshal(c)
	f.Add(b)
	f.Add([]byte(`{"config":{"Healthcheck":{"Test":["NONE"]}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := image.ParseConfig(raw)
		if err != nil {
			return
		}
		for _, fd := range Check(Input{Config: &cfg, RawConfig: raw, Tag: "latest"}) {
			if fd.ID == "" || fd.Message == "" || fd.Remediation == "" || len(fd.Evidence) > maxEvidence+1 {
				t.Fatalf("malformed finding %+v", fd)
			}
		}
	})
}

// TestBookwormMinbase lints the real debootstrap image: root, no
// healthcheck, Debian's setuid programs, the apt lists and .debs
// debootstrap leaves; no secrets, no sudo.
func TestBookwormMinbase(t *testing.T) {
	out, err := exec.Command("../../../scripts/fixtures.sh", "bookworm-minbase").Output()
	if err != nil {
		t.Fatalf("scripts/fixtures.sh: %v", err)
	}
	fx := strings.TrimSpace(string(out))
	ctx := context.Background()
	img, err := image.Layout(ctx, filepath.Join(fx, "oci"), "", image.Platform{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	a := NewAnalyzer()
	s, tree, err := catalog.Image(ctx, img, catalog.Options{}, a)
	if err != nil {
		t.Fatal(err)
	}
	fs := Check(Input{Config: &img.Config, RawConfig: img.ConfigBytes, SBOM: s, Tree: tree, Analyzer: a})
	if got := ids(fs); !reflect.DeepEqual(got, []string{IDRootUser, IDHealthcheck, IDSetuid, IDPackageCache}) {
		for _, f := range fs {
			t.Logf("%+v", f)
		}
		t.Fatalf("ids %q", got)
	}
	// The setuid list is exactly what find(1) sees in the extracted root.
	fout, err := exec.Command("find", filepath.Join(fx, "rootfs"), "-xdev", "-type", "f", "-perm", "/6000").Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Fields(string(fout)) {
		want = append(want, strings.TrimPrefix(l, filepath.Join(fx, "rootfs")))
	}
	slices.Sort(want)
	var got []string
	for _, e := range find(fs, IDSetuid).Evidence {
		got = append(got, strings.Fields(e)[0])
	}
	if !reflect.DeepEqual(got, want) || len(want) < 5 {
		t.Fatalf("setuid files %q, find says %q", got, want)
	}
	debs, _ := filepath.Glob(filepath.Join(fx, "rootfs/var/cache/apt/archives/*.deb"))
	if ev := strings.Join(find(fs, IDPackageCache).Evidence, "\n"); !strings.Contains(ev, "apt archives (/var/cache/apt/archives): "+itoa(len(debs))+" files") {
		t.Fatalf("cache evidence %s; %d debs on disk", ev, len(debs))
	}
	// The same root as a directory gives the same file findings.
	a2 := NewAnalyzer()
	s2, tree2, err := catalog.Dir(ctx, filepath.Join(fx, "rootfs"), catalog.Options{}, a2)
	if err != nil {
		t.Fatal(err)
	}
	fs2 := Check(Input{SBOM: s2, Tree: tree2, Analyzer: a2})
	if got := ids(fs2); !reflect.DeepEqual(got, []string{IDSetuid, IDPackageCache}) {
		t.Fatalf("directory: %q", got)
	}
	if !reflect.DeepEqual(find(fs2, IDSetuid).Evidence, find(fs, IDSetuid).Evidence) {
		t.Fatalf("directory and image disagree on setuid files")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// BenchmarkBookwormCatalogAndLint: the catalogers and the lint in one
// pass, as `bulwark scan` runs them.
func BenchmarkBookwormCatalogAndLint(b *testing.B) {
	out, err := exec.Command("../../../scripts/fixtures.sh", "bookworm-minbase").Output()
	if err != nil {
		b.Fatalf("scripts/fixtures.sh: %v", err)
	}
	fx := strings.TrimSpace(string(out))
	ctx := context.Background()
	b.Run("rootfs", func(b *testing.B) {
		for b.Loop() {
			a := NewAnalyzer()
			s, tree, err := catalog.Dir(ctx, filepath.Join(fx, "rootfs"), catalog.Options{}, a)
			if err != nil {
				b.Fatal(err)
			}
			Check(Input{SBOM: s, Tree: tree, Analyzer: a})
		}
	})
	b.Run("image", func(b *testing.B) {
		for b.Loop() {
			img, err := image.Layout(ctx, filepath.Join(fx, "oci"), "", image.Platform{OS: "linux", Architecture: runtime.GOARCH})
			if err != nil {
				b.Fatal(err)
			}
			a := NewAnalyzer()
			s, tree, err := catalog.Image(ctx, img, catalog.Options{}, a)
			img.Close()
			if err != nil {
				b.Fatal(err)
			}
			Check(Input{Config: &img.Config, RawConfig: img.ConfigBytes, SBOM: s, Tree: tree, Analyzer: a})
		}
	})
}

// WithTag on the findings of an untagged check gives what Check gives for
// the tag: the registry and the scan cache store untagged findings.
func TestWithTagEqualsCheck(t *testing.T) {
	configs := map[string]v1.Image{
		"no base":      {Config: v1.ImageConfig{User: "1000"}},
		"latest base":  {Config: v1.ImageConfig{Labels: map[string]string{baseNameLabel: "docker.io/library/debian"}}},
		"pinned base":  {Config: v1.ImageConfig{Labels: map[string]string{baseNameLabel: "debian:12"}}},
		"history only": {History: []v1.History{{CreatedBy: "COPY --from=golang:latest /a /b"}}},
		"both": {Config: v1.ImageConfig{Labels: map[string]string{baseNameLabel: "debian:latest"}},
			History: []v1.History{{CreatedBy: "COPY --from=golang:latest /a /b"}}},
	}
	for name, c := range configs {
		for _, tag := range []string{"", "v1", "latest"} {
			raw := rawConfig(t, c, []string{"CMD", "x"})
			want := Check(Input{Config: &c, RawConfig: raw, Tag: tag})
			got := WithTag(Check(Input{Config: &c, RawConfig: raw}), tag)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, tag %q:\n got %+v\nwant %+v", name, tag, got, want)
			}
		}
	}
}
