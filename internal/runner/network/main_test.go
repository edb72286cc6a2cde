package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The tests that touch the network run as root inside a network namespace
// of their own: TestMain re-executes the test binary in a fresh one, which
// plays the host. Nothing they do reaches the machine's real interfaces,
// routes or nftables. The container namespaces and a "remote" namespace
// (192.0.2.2, a server on the far side of the host) are made by the tests
// below it.

const (
	envInNetNS = "BULWARK_NETWORK_TEST_NETNS"
	envHelper  = "BULWARK_NETWORK_TEST_HELPER"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envHelper); mode != "" {
		os.Exit(helperMain(mode))
	}
	if os.Geteuid() == 0 && os.Getenv(envInNetNS) == "" {
		cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
		cmd.Env = append(os.Environ(), envInNetNS+"=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "re-executing in a network namespace:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	if os.Getenv(envInNetNS) != "" {
		if lo, err := netlink.LinkByName("lo"); err == nil {
			netlink.LinkSetUp(lo)
		}
	}
	os.Exit(m.Run())
}

// requireTestHost fails a test that needs root and the private "host"
// namespace TestMain provides.
func requireTestHost(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 || os.Getenv(envInNetNS) == "" {
		t.Fatal("the network tests run as root, in the network namespace TestMain creates")
	}
}

// newNetNS makes a network namespace (owned by the initial user
// namespace, like the runner's) bind-mounted on a temp file; it is
// removed when the test ends.
func newNetNS(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(p, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), p, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNetNS(p) })
	return p
}

func removeNetNS(p string) {
	unix.Unmount(p, unix.MNT_DETACH)
	os.Remove(p)
}

var (
	remoteHost = netip.MustParseAddr("192.0.2.1") // the host's address towards the remote
	remoteAddr = netip.MustParseAddr("192.0.2.2")
)

// newRemote makes the "remote" namespace: a veth r0 (192.0.2.1/24) in the
// host towards eth0 (192.0.2.2/24) in it.
func newRemote(t testing.TB) string {
	t.Helper()
	ns := newNetNS(t)
	nsh, err := netns.GetFromPath(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "r0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(nsh)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName("r0"); err == nil {
			netlink.LinkDel(l)
		}
	})
	r0, err := netlink.LinkByName("r0")
	if err != nil {
		t.Fatal(err)
	}
	must(t, netlink.AddrAdd(r0, &netlink.Addr{IPNet: ipNet(remoteHost, 24)}))
	must(t, netlink.LinkSetUp(r0))
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	lo, _ := h.LinkByName("lo")
	must(t, h.LinkSetUp(lo))
	must(t, h.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(remoteAddr, 24)}))
	must(t, h.LinkSetUp(eth))
	return ns
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// server accepts TCP connections, writes "NAME from PEER" and closes.
type server struct {
	ln       net.Listener
	accepted chan string
}

// listenIn starts a server in the namespace ns ("" for the host).
func listenIn(t testing.TB, ns, addr, name string) *server {
	t.Helper()
	var ln net.Listener
	listen := func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}
	var err error
	if ns == "" {
		err = listen()
	} else {
		err = inNetNS(ns, listen)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, accepted: make(chan string, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peer := c.RemoteAddr().(*net.TCPAddr).IP.String()
			select {
			case s.accepted <- peer:
			default:
			}
			fmt.Fprintf(c, "%s from %s", name, peer)
			c.Close()
		}
	}()
	return s
}

// dialIn connects from the namespace ns ("" for the host) and returns
// what the server wrote.
func dialIn(ns, addr string, timeout time.Duration) (string, error) {
	var got string
	dial := func() error {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	}
	var err error
	if ns == "" {
		err = dial()
	} else {
		err = inNetNS(ns, dial)
	}
	return got, err
}

// hostState is what the tests compare before and after: links, IPv4
// addresses and routes and nftables tables of the (test) host.
func hostState(t testing.TB) string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	s := ""
	for _, l := range links {
		s += "link " + l.Attrs().Name + "\n"
	}
	addrs, _ := netlink.AddrList(nil, netlink.FAMILY_V4)
	for _, a := range addrs {
		s += "addr " + a.IPNet.String() + "\n"
	}
	routes, _ := netlink.RouteList(nil, netlink.FAMILY_V4)
	for _, r := range routes {
		s += "route " + r.String() + "\n"
	}
	s += "tables " + fmt.Sprint(hostTables(t)) + "\n"
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
