package network

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/runner"
	"github.com/bulwark-dev/bulwark/internal/runner/unpack"
)

// TestRunnerContainers runs real busybox containers through the runner's
// Manager with runc, wired the way bulwark run wires this package: an
// allowed egress port connects and another does not, a published port
// answers and an unpublished one does not, container root with
// CAP_NET_ADMIN cannot take its link down or drop its route, and stop
// leaves the host as it was.
func TestRunnerContainers(t *testing.T) {
	requireTestHost(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal("runc is required (apt-get install runc)")
	}
	if err := unpack.CheckOverlay(); err != nil {
		t.Fatal(err)
	}
	remote := newRemote(t)
	listenIn(t, remote, "192.0.2.2:7001", "allowed")
	other := listenIn(t, remote, "192.0.2.2:7002", "other")
	before := hostState(t)

	data := traversableDir(t)
	store, err := runner.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	nm := New(filepath.Join(data, "network"))
	m := &runner.Manager{Store: store, Runtime: &runner.Runtime{Path: runc, Root: store.RuntimeRoot()}, NetworkTeardown: nm.Teardown}
	t.Cleanup(func() {
		cs, _ := store.List()
		for _, c := range cs {
			m.Stop(context.Background(), c.Name, time.Second)
		}
	})
	layer := busyboxLayer(t)
	request := func(name string, cfg Config, script string) runner.RunRequest {
		m.Network = func(ctx context.Context, netns string) error { return nm.Setup(ctx, name, netns, cfg) }
		return runner.RunRequest{
			Options: runner.Options{
				Name:  name,
				Image: v1.ImageConfig{User: "app", Cmd: []string{"/bin/sh", "-c", script}},
			},
			Rootfs: &unpack.Rootfs{Lowerdirs: []string{layer}, NoSuid: true},
			Image:  "test/busybox", ImageDigest: "sha256:" + strings.Repeat("0", 64),
		}
	}
	run := func(req runner.RunRequest) string {
		t.Helper()
		var out bytes.Buffer
		req.IO = runner.IO{Stdout: &out, Stderr: &out}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		code, err := m.Run(ctx, req)
		if err != nil || code != 0 {
			t.Fatalf("run %s: %d %v\n%s", req.Options.Name, code, err, &out)
		}
		return out.String()
	}

	// Egress: 7001 allowed, 7002 not.
	out := run(request("egress", Config{Egress: mustParseEgress(t, "192.0.2.2:7001")}, `
echo "one=$(nc 192.0.2.2 7001 </dev/null)"
nc 192.0.2.2 7002 </dev/null >/dev/null 2>&1; echo "two=$?"
echo "route=$(ip route | grep default)"
`))
	t.Logf("egress container:\n%s", out)
	kv := keyValues(out)
	if kv["one"] != "allowed from 192.0.2.1" {
		t.Errorf("allowed egress: %q", kv["one"])
	}
	if kv["two"] == "0" || len(other.accepted) > 0 {
		t.Errorf("denied egress connected (nc status %s)", kv["two"])
	}
	if !strings.Contains(kv["route"], "default via 10.88.0.1 dev eth0") {
		t.Errorf("route %q", kv["route"])
	}

	// Root with CAP_NET_ADMIN in its user namespace cannot touch the
	// network it was given.
	req := request("netadmin", Config{Egress: mustParseEgress(t, "192.0.2.2:7001")}, `
ip link set eth0 down 2>/dev/null; echo "down=$?"
ip route del default 2>/dev/null; echo "routedel=$?"
ip addr add 10.88.0.99/32 dev eth0 2>/dev/null; echo "addradd=$?"
grep CapEff /proc/self/status | tr -d ' \t' | sed 's/:/=/'
echo "after=$(nc 192.0.2.2 7001 </dev/null)"
`)
	req.Options.Image.User = "0"
	req.Options.AllowRoot = true
	req.Options.Capabilities = []string{"CAP_NET_ADMIN"}
	out = run(req)
	t.Logf("netadmin container:\n%s", out)
	kv = keyValues(out)
	if kv["CapEff"] != "0000000000001000" {
		t.Errorf("CapEff %q: CAP_NET_ADMIN was not granted, the check proves nothing", kv["CapEff"])
	}
	for _, k := range []string{"down", "routedel", "addradd"} {
		if kv[k] == "0" {
			t.Errorf("container root with CAP_NET_ADMIN: %s succeeded", k)
		}
	}
	if kv["after"] != "allowed from 192.0.2.1" {
		t.Errorf("egress after the attempts: %q", kv["after"])
	}

	// Publish: a detached web server on 8080 (published) and 9090 (not).
	req = request("web", Config{Publish: mustParsePublish(t, "192.0.2.1:18080:8080")},
		`httpd -p 8080 -h /etc; httpd -p 9090 -h /etc; sleep 1000`)
	req.Detach = true
	if _, err := m.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got, err = httpGet(remote, "192.0.2.1:18080", "/group"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(got, "app:x:1000:") {
		t.Errorf("published port: %q, %v", got, err)
	}
	ls, _ := nm.Leases()
	if len(ls) != 1 {
		t.Fatalf("leases %d", len(ls))
	}
	if got, err := httpGet("", ls[0].Addr.String()+":9090", "/group"); err == nil {
		t.Errorf("unpublished port answered: %q", got)
	}
	if got, err := httpGet(remote, "192.0.2.1:19090", "/group"); err == nil {
		t.Errorf("unpublished host port answered: %q", got)
	}
	if err := m.Stop(context.Background(), "web", time.Second); err != nil {
		t.Fatal(err)
	}
	if ls, _ := nm.Leases(); len(ls) != 0 {
		t.Errorf("%d leases after stop", len(ls))
	}
	deadline = time.Now().Add(5 * time.Second)
	for hostState(t) != before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := hostState(t); after != before {
		t.Errorf("host state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// httpGet fetches path from addr over HTTP/1.0, from the namespace ns
// ("" for the host), with a short timeout.
func httpGet(ns, addr, path string) (string, error) {
	var got string
	get := func() error {
		c, err := net.DialTimeout("tcp4", addr, deny)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.0\r\n\r\n", path)
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	}
	if ns == "" {
		return got, get()
	}
	err := inNetNS(ns, get)
	return got, err
}

func keyValues(out string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// traversableDir is a temp dir whose parents the container's mapped root
// can traverse (the testing package makes them 0700).
func traversableDir(t testing.TB) string {
	d := t.TempDir()
	for p := d; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// busyboxLayer is an image layer made by hand: the static busybox with a
// link per applet and an /etc/passwd with root and app (1000), owned by
// the default mapped range as the unpacker would leave it.
func busyboxLayer(t testing.TB) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox is required (apt-get install busybox-static)")
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	dir := filepath.Join(traversableDir(t), "layer")
	for _, d := range []string{"bin", "etc", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755))
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" && !strings.ContainsRune(applet, '/') {
			os.Symlink("busybox", filepath.Join(dir, "bin", applet))
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\napp:x:1000:\n"), 0o644))
	base := int(runner.DefaultIDMapHostBase)
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, base, base)
	}))
	return dir
}
