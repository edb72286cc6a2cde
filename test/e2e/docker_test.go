package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

// TestDockerRoundTrip drives a private dockerd 20.10 (Docker's own registry
// client, which pushes schema 2 and uploads and mounts differently from
// containers/image) against bulwark: push an image docker loaded from an
// archive (so docker compresses the layers itself), pull it back into a
// daemon that no longer has it, push it to a second repo (cross-repo mount),
// and pull an OCI manifest that skopeo pushed.
func TestDockerRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	d := startDockerd(t, ctx)
	sk := newSkopeo(t)
	srv := startServer(t)

	img, err := testimage.Busybox(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Get the image into docker without any registry (never Docker Hub):
	// skopeo writes a `docker save` style archive from the OCI layout.
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	sk.mustRun(t, ctx, "copy", img.OCIRef(), "docker-archive:"+archive+":e2e/busybox:v1")
	d.mustRun(t, ctx, "load", "-i", archive)
	loadedID := d.imageID(t, ctx, "e2e/busybox:v1")

	const repo = "e2e/dockerpushed"
	ref := srv.ref(repo, "v1")
	d.mustRun(t, ctx, "tag", "e2e/busybox:v1", ref)
	out := d.mustRun(t, ctx, "push", ref)
	pushed := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if pushed == nil {
		t.Fatalf("no digest in docker push output:\n%s", out)
	}

	// Untag everything so the image is gone and the pull must fetch every
	// blob rather than reuse local layers.
	d.mustRun(t, ctx, "rmi", ref, "e2e/busybox:v1")
	if _, err := d.run(ctx, "image", "inspect", loadedID); err == nil {
		t.Fatalf("image %s still present after rmi", loadedID)
	}

	out = d.mustRun(t, ctx, "pull", ref)
	if !strings.Contains(out, "Digest: "+pushed[1]) {
		t.Errorf("docker pull reported a digest other than the pushed %s:\n%s", pushed[1], out)
	}
	if id := d.imageID(t, ctx, ref); id != loadedID {
		t.Errorf("pulled image ID %s, want loaded image ID %s", id, loadedID)
	}

	resp, body, err := srv.get(ctx, "/v2/"+repo+"/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	var tags struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &tags); resp.StatusCode != http.StatusOK || err != nil ||
		tags.Name != repo || !slices.Equal(tags.Tags, []string{"v1"}) {
		t.Errorf("GET tags/list: %s %s (%v); want name %q, tags [v1]", resp.Status, body, err, repo)
	}

	resp, _, err = srv.get(ctx, "/v2/"+repo+"/manifests/v1", "Accept: "+dockerManifestV2)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != http.StatusOK || got != pushed[1] {
		t.Errorf("GET manifest: %s, Docker-Content-Digest %q, want 200 and %s", resp.Status, got, pushed[1])
	}

	// Docker now knows the blobs live in e2e/dockerpushed, so pushing to
	// another repo tries a cross-repo mount (POST ...?mount=&from=). The
	// registry may instead answer with a plain upload; both must work.
	mountRef := srv.ref("e2e/dockermounted", "v1")
	d.mustRun(t, ctx, "tag", ref, mountRef)
	out = d.mustRun(t, ctx, "push", mountRef)
	t.Logf("cross-repo push mounted blobs: %v", strings.Contains(out, "Mounted from"))

	t.Run("pull OCI manifest", func(t *testing.T) {
		// docker 20.10 also pulls OCI manifests; skopeo pushes the layout
		// unchanged, so the image ID must be the OCI config digest.
		ociRef := srv.ref("e2e/ocibusybox", "v1")
		sk.push(t, ctx, img, ociRef, "--preserve-digests")
		// Empty the daemon so every blob is fetched from the registry.
		d.mustRun(t, ctx, "rmi", ref, mountRef)
		out := d.mustRun(t, ctx, "pull", ociRef)
		if !strings.Contains(out, "Digest: "+img.ManifestDigest.String()) {
			t.Errorf("docker pull did not report digest %s:\n%s", img.ManifestDigest, out)
		}
		if id := d.imageID(t, ctx, ociRef); id != img.ConfigDigest.String() {
			t.Errorf("pulled image ID %s, want config digest %s", id, img.ConfigDigest)
		}
	})
}

// dockerd is a private Docker daemon with its own state, socket and client
// config, so the test neither needs nor touches a system docker.
type dockerd struct {
	client string   // docker CLI
	env    []string // the CLI's environment, pointing it at the daemon
}

// startDockerd starts dockerd with every path in a fresh temp dir, waits
// until it answers, and tears it down (processes, mounts, files) at cleanup.
// A daemon that cannot start fails the test with its log: skipping would
// hide a broken CI machine.
func startDockerd(t *testing.T, ctx context.Context) *dockerd {
	t.Helper()
	bin := requireTool(t, "dockerd")
	client := requireTool(t, "docker")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("dockerd needs root under CI")
		}
		t.Skip("dockerd needs root")
	}
	// Not t.TempDir: unix socket paths are limited to 108 bytes and the
	// daemon nests containerd's sockets under exec-root.
	root, err := os.MkdirTemp("", "e2e-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	path := func(name string) string { return filepath.Join(root, name) }
	if err := os.Mkdir(path("client"), 0o700); err != nil {
		t.Fatal(err)
	}
	// An empty client config keeps credential helpers from ~/.docker out.
	files := map[string]string{
		"client/config.json": "{}",
		// Keep 20.10's libtrust key out of /etc/docker.
		"daemon.json": fmt.Sprintf(`{"deprecated-key-path": %q}`, path("key.json")),
	}
	for name, content := range files {
		if err := os.WriteFile(path(name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sock := path("docker.sock")
	logPath := path("dockerd.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()

	// vfs: the test moves a 2 MB image, and vfs needs no overlay support and
	// leaves no mounts behind. No bridge or iptables: nothing here needs
	// container networking, and it must not alter the host's firewall.
	cmd := exec.Command(bin,
		"--data-root", path("data"),
		"--exec-root", path("exec"),
		"--pidfile", path("docker.pid"),
		"-H", "unix://"+sock,
		"--config-file", path("daemon.json"),
		"--storage-driver", "vfs",
		"--iptables=false", "--ip-masq=false", "--bridge=none",
	)
	cmd.Stdout, cmd.Stderr = log, log
	// Own process group, so cleanup can also reach the containerd dockerd
	// spawns if dockerd dies without stopping it; Pdeathsig so a test
	// binary killed by -timeout does not leave the daemon running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()

	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Logf("dockerd ignored SIGTERM for 20s, killing it")
			_ = cmd.Process.Kill()
			<-done
		}
		// Whatever is left in the group is ours (containerd, shims).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("dockerd log (%s):\n%s", logPath, tail(logPath, 60))
		}
		unmountUnder(t, root)
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("removing dockerd root: %v", err)
		}
	})

	d := &dockerd{client: client, env: append(os.Environ(),
		"DOCKER_HOST=unix://"+sock,
		"DOCKER_CONFIG="+path("client"),
		// Empty means unset to the CLI; a context or TLS settings from the
		// caller's environment would redirect or break the connection.
		"DOCKER_CONTEXT=", "DOCKER_TLS_VERIFY=",
	)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := d.run(pingCtx, "version", "--format", "{{.Server.Version}}")
		cancel()
		if err == nil {
			t.Logf("dockerd %s ready", strings.TrimSpace(out))
			return d
		}
		select {
		case <-done:
			t.Fatalf("dockerd exited during startup (%v); its log:\n%s", waitErr, tail(logPath, 60))
		case <-ctx.Done():
			t.Fatalf("dockerd not ready: %v; last error: %v\nits log:\n%s", ctx.Err(), err, tail(logPath, 60))
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd not ready after 60s: %v\nits log:\n%s", err, tail(logPath, 60))
		}
	}
}

// run runs the docker CLI against the private daemon and returns stdout.
func (d *dockerd) run(ctx context.Context, args ...string) (string, error) {
	return runCmd(ctx, d.env, d.client, args...)
}

func (d *dockerd) mustRun(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := d.run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// imageID returns docker's image ID (the config digest) for ref.
func (d *dockerd) imageID(t *testing.T, ctx context.Context, ref string) string {
	t.Helper()
	return strings.TrimSpace(d.mustRun(t, ctx, "image", "inspect", "--format", "{{.Id}}", ref))
}

// unmountUnder detaches any mount left below dir, deepest first, so that
// removing dir cannot descend into (and delete through) a live mount.
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Field 5 is the mount point (octal-escaped, which the temp dir
		// names never need).
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", m, err)
		}
	}
}

// tail returns the last n lines of a file, for logs in failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
