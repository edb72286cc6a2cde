// Package e2e runs the real bulwark binary against real clients (skopeo,
// docker). The harness in this file is shared by every test in the package:
// startServer for a registry process that can be killed and restarted on the
// same address and data dir, requireTool for external binaries, runCmd for
// running them, and newSkopeo for a skopeo isolated from /etc/containers.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/testimage"
)

const (
	// healthTimeout bounds how long a (re)started server may take to answer
	// /healthz with 200.
	healthTimeout = 20 * time.Second
	// stopGrace is how long the server gets to exit after SIGTERM before it
	// is SIGKILLed.
	stopGrace = 5 * time.Second
)

// bulwarkBin is the binary under test: $BULWARK_BIN, or built by TestMain.
var bulwarkBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	if bin := os.Getenv("BULWARK_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		bulwarkBin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "bulwark-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bulwarkBin = filepath.Join(dir, "bulwark")

	// Build once for the whole package. BULWARK_BUILD_FLAGS (e.g. "-race")
	// lets crash tests run an instrumented server. `go test` puts its own
	// toolchain first in PATH, so "go" is the toolchain running the tests.
	args := append([]string{"build", "-o", bulwarkBin}, strings.Fields(os.Getenv("BULWARK_BUILD_FLAGS"))...)
	args = append(args, "github.com/bulwark-dev/bulwark/cmd/bulwark")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	build := exec.CommandContext(ctx, "go", args...)
	// The binary as the README builds it: static, no cgo (pure-Go SQLite,
	// netlink and nftables need none; it starts ~8 ms faster without the
	// dynamic loader). The race detector needs cgo.
	if os.Getenv("CGO_ENABLED") == "" && !strings.Contains(os.Getenv("BULWARK_BUILD_FLAGS"), "-race") {
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built bulwark in %v\n", time.Since(start).Round(time.Millisecond))
	return m.Run()
}

// server is one bulwark registry process bound to a loopback address. The
// address and data dir survive kill and restart, so tests can crash the
// server mid-operation and bring it back on the same state.
type server struct {
	addr    string   // host:port, e.g. 127.0.0.1:41234
	dataDir string   // --data; kept across restarts, removed after the test
	logPath string   // stdout+stderr of every run, appended
	args    []string // extra `bulwark serve` flags
	env     []string // extra environment, e.g. BULWARK_ADMIN_PASSWORD

	mu   sync.Mutex
	proc *proc // nil when not running

	// logShown is set when a failed start already put the output in its
	// error, so cleanup does not print it twice.
	logShown bool
}

// proc is one run of the server process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's result, valid after done
}

// startServer starts `bulwark serve` on a free loopback port with an empty
// data dir, waits until it is healthy, and stops it when the test ends. On
// failure the test log gets the server's output. extraArgs are appended to
// the serve command line (e.g. for GC tuning flags).
func startServer(t testing.TB, extraArgs ...string) *server {
	t.Helper()
	// The registry-core tests run without accounts; auth tests use
	// startAuthServer.
	return startServerEnv(t, nil, append([]string{"--auth=false"}, extraArgs...)...)
}

// startAuthServer starts a server with authentication on (the default) and
// the bootstrap administrator "admin" with adminPassword.
func startAuthServer(t testing.TB, adminPassword string, extraArgs ...string) *server {
	t.Helper()
	return startServerEnv(t, []string{"BULWARK_ADMIN_PASSWORD=" + adminPassword}, extraArgs...)
}

func startServerEnv(t testing.TB, env []string, extraArgs ...string) *server {
	t.Helper()
	s := &server{dataDir: t.TempDir(), logPath: filepath.Join(t.TempDir(), "bulwark.log"), args: extraArgs, env: env}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Logf("bulwark shutdown: %v", err)
		}
		if t.Failed() && !s.logShown {
			t.Logf("bulwark output (%s):\n%s", s.logPath, s.logs())
		}
	})
	// The port is free when picked but could be taken before bulwark binds
	// it, so retry a port clash a few times.
	var err error
	for range 3 {
		s.addr = freeAddr(t)
		if err = s.start(); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// url returns the base URL, e.g. http://127.0.0.1:41234.
func (s *server) url() string {
	if s.tls() {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// tls reports whether the server was started with --tls.
func (s *server) tls() bool { return slices.Contains(s.args, "--tls") }

// ref returns a registry reference such as 127.0.0.1:41234/e2e/app:v1.
func (s *server) ref(repo, tag string) string { return s.addr + "/" + repo + ":" + tag }

// start launches the server and waits for /healthz. On failure the process
// is stopped and the error includes the server's output.
func (s *server) start() error {
	s.mu.Lock()
	if s.proc != nil {
		s.mu.Unlock()
		return errors.New("bulwark already running")
	}
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	offset, _ := log.Seek(0, io.SeekEnd)
	// A marker per run keeps restarts apart in the log.
	args := append([]string{"serve", "--addr", s.addr, "--data", s.dataDir}, s.args...)
	fmt.Fprintf(log, "=== e2e: %s bulwark %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(bulwarkBin, args...)
	cmd.Env = append(serverEnv(), s.env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Own process group so kill takes down anything the server spawned,
	// as a real crash would; Pdeathsig so a test binary killed by
	// -timeout leaves no server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	log.Close() // the child has its own descriptor
	if err != nil {
		s.mu.Unlock()
		return err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	s.proc = p
	s.mu.Unlock()

	if err := s.waitHealthy(p); err != nil {
		s.kill()
		s.logShown = true
		return fmt.Errorf("%w\nbulwark output:\n%s", err, s.logsFrom(offset))
	}
	s.logShown = false
	return nil
}

// serverEnv is the environment minus BULWARK_* settings, so a developer's
// shell (e.g. BULWARK_GC_INTERVAL) cannot change what the tests run against;
// tests pass settings explicitly via startServer's extraArgs.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BULWARK_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitHealthy polls /healthz until it returns 200, the process exits, or
// healthTimeout passes.
func (s *server) waitHealthy(p *proc) error {
	// Health only: whether the certificate is trusted is the tests' business.
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(healthTimeout)
	var last string
	for {
		resp, err := client.Get(s.url() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bulwark at %s not healthy after %v (last: %s)", s.addr, healthTimeout, last)
		}
		select {
		case <-p.done:
			return fmt.Errorf("bulwark exited before becoming healthy: %v", p.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts the server down gracefully: SIGTERM, then SIGKILL after
// stopGrace. It returns an error if the server had to be killed or exited
// with a failure status; stopping a stopped server is a no-op.
func (s *server) stop() error {
	p := s.take()
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		p.killGroup() // stragglers, if the server spawned any
		return p.err
	case <-time.After(stopGrace):
	}
	p.killGroup()
	<-p.done
	return fmt.Errorf("bulwark ignored SIGTERM for %v and was killed", stopGrace)
}

// kill crashes the server with SIGKILL and waits for it to be gone, leaving
// the data dir as the crash left it.
func (s *server) kill() {
	if p := s.take(); p != nil {
		p.killGroup()
		<-p.done
	}
}

// killGroup SIGKILLs the server's process group (its pgid is its pid).
func (p *proc) killGroup() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// restart stops the server if it is running (gracefully) and starts it again
// on the same address and data dir, failing the test if it does not come
// back healthy. Use kill first to restart after a crash.
func (s *server) restart(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Logf("bulwark shutdown before restart: %v", err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("restarting bulwark: %v", err)
	}
}

// running reports whether the server process is alive.
func (s *server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// take detaches the current process from s so exactly one caller stops it.
func (s *server) take() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	return p
}

// fsck runs `bulwark fsck` on the data dir and returns its output; err is
// non-nil if it exits non-zero. Stop or kill the server first unless the
// test means to check fsck against a live server.
func (s *server) fsck(ctx context.Context) (string, error) {
	return runCmd(ctx, serverEnv(), bulwarkBin, "fsck", "--data", s.dataDir)
}

// logs returns everything the server has written so far, across restarts.
func (s *server) logs() string { return s.logsFrom(0) }

// logsFrom returns the server's output from byte offset on.
func (s *server) logsFrom(offset int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", s.logPath, err)
	}
	return string(b[min(offset, int64(len(b))):])
}

// get performs a GET against the registry (path like "/v2/") with optional
// headers as "Key: value" strings and returns the response with its body
// read.
func (s *server) get(ctx context.Context, path string, headers ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url()+path, nil)
	if err != nil {
		return nil, nil, err
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// requireTool returns the path of an external program. Locally a missing
// program skips the test; under CI (CI set) it fails, so a CI image that
// lost a package cannot pass by skipping everything.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI: %v", name, err)
	}
	t.Skipf("%s not installed: %v", name, err)
	return ""
}

// runCmd runs a program and returns its stdout. On failure the error holds
// the command line, exit status and the interleaved stdout+stderr, which is
// what one needs to debug a client/registry disagreement. A nil env
// inherits the test's environment.
func runCmd(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout bytes.Buffer
	combined := &lockedBuffer{}
	cmd.Stdout = io.MultiWriter(&stdout, combined)
	cmd.Stderr = combined
	// Don't hang on grandchildren holding the pipes after a timeout.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w (after %v)\n%s",
			name, strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), combined)
	}
	return stdout.String(), nil
}

// lockedBuffer is a bytes.Buffer safe for exec's concurrent stdout and
// stderr copiers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// skopeo runs skopeo with private auth, registries and policy files, so the
// tests see neither /etc/containers nor the invoking user's credentials.
type skopeo struct {
	bin    string
	env    []string
	global []string
}

func newSkopeo(t testing.TB) *skopeo {
	t.Helper()
	bin := requireTool(t, "skopeo")
	dir := t.TempDir()
	files := map[string]string{
		"auth.json":       `{"auths":{}}`,
		"registries.conf": "",
		"policy.json":     `{"default":[{"type":"insecureAcceptAnything"}]}`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"registries.d", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return &skopeo{
		bin: bin,
		env: append(os.Environ(),
			"REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"),
			"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		),
		global: []string{
			"--policy", filepath.Join(dir, "policy.json"),
			"--registries.d", filepath.Join(dir, "registries.d"),
			"--tmpdir", filepath.Join(dir, "tmp"),
		},
	}
}

// run runs `skopeo <global flags> args...` and returns stdout.
func (s *skopeo) run(ctx context.Context, args ...string) (string, error) {
	return runCmd(ctx, s.env, s.bin, append(append([]string{}, s.global...), args...)...)
}

// mustRun is run that fails the test on error.
func (s *skopeo) mustRun(t testing.TB, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := s.run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// push copies img from its OCI layout to docker://ref (e.g. srv.ref(...))
// over plain HTTP and returns the manifest digest the registry ended up
// with. extra flags go to `skopeo copy`, e.g. "--format", "v2s2".
func (s *skopeo) push(t testing.TB, ctx context.Context, img testimage.Image, ref string, extra ...string) string {
	t.Helper()
	digestFile := filepath.Join(t.TempDir(), "digest")
	args := append([]string{"copy", "--dest-tls-verify=false", "--digestfile", digestFile}, extra...)
	s.mustRun(t, ctx, append(args, img.OCIRef(), "docker://"+ref)...)
	d, err := os.ReadFile(digestFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(d))
}

// TestServerRestart exercises the harness against the real binary, and the
// basics that crash and GC tests build on: pushed content survives a graceful
// restart and a SIGKILL on the same address and data dir, SIGTERM shuts the
// server down cleanly, and fsck then finds the data dir clean.
func TestServerRestart(t *testing.T) {
	sk := newSkopeo(t)
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	img, err := testimage.Random(ctx, t.TempDir(), 2, 256<<10, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := srv.ref("e2e/restart", "v1")
	sk.push(t, ctx, img, ref, "--preserve-digests")

	srv.restart(t)
	resp, body, err := srv.get(ctx, "/v2/e2e/restart/manifests/v1", "Accept: "+v1.MediaTypeImageManifest)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.ManifestBytes) {
		t.Errorf("after restart: GET manifest %s, body %q; want 200 and the pushed manifest", resp.Status, body)
	}

	srv.kill()
	if srv.running() {
		t.Fatal("server still running after kill")
	}
	srv.restart(t)
	dir := t.TempDir()
	sk.mustRun(t, ctx, "copy", "--src-tls-verify=false", "--preserve-digests", "docker://"+ref, "oci:"+dir+":v1")
	if got, err := testimage.Load(dir, "v1"); err != nil || got.ManifestDigest != img.ManifestDigest {
		t.Errorf("after kill and restart: pulled %s (%v), want %s", got.ManifestDigest, err, img.ManifestDigest)
	}

	if err := srv.stop(); err != nil {
		t.Errorf("SIGTERM shutdown: %v", err)
	}
	if out, err := srv.fsck(ctx); err != nil {
		t.Errorf("fsck after clean shutdown: %v", err)
	} else if out != "" {
		t.Logf("fsck: %s", out)
	}
}
