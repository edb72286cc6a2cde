package network

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// deny is how long a connection that must not get through is given: a
// dropped SYN takes that long to fail.
const deny = 700 * time.Millisecond

func mustParseEgress(t testing.TB, s ...string) []Egress {
	var out []Egress
	for _, x := range s {
		e, err := ParseEgress(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func mustParsePublish(t testing.TB, s ...string) []Publish {
	var out []Publish
	for _, x := range s {
		p, err := ParsePublish(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func setup(t *testing.T, m *Manager, name string, cfg Config) (string, *Lease) {
	t.Helper()
	ns := newNetNS(t)
	if err := m.Setup(testCtx(t), name, ns, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Teardown(testCtx(t), ns); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	ls, err := m.Leases()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.NetNS == ns {
			return ns, l
		}
	}
	t.Fatalf("no lease for %s", ns)
	return "", nil
}

// TestEgressAllowlist: from inside the container only the allowed
// address:port pairs connect, and they leave the host masqueraded.
func TestEgressAllowlist(t *testing.T) {
	requireTestHost(t)
	remote := newRemote(t)
	allowed := listenIn(t, remote, "192.0.2.2:7001", "allowed")
	other := listenIn(t, remote, "192.0.2.2:7002", "other")
	hostSrv := listenIn(t, "", "0.0.0.0:7001", "host")
	m := New(t.TempDir())
	ctr, l := setup(t, m, "egress", Config{Egress: mustParseEgress(t, "192.0.2.2:7001")})

	got, err := dialIn(ctr, "192.0.2.2:7001", 5*time.Second)
	if err != nil || got != "allowed from 192.0.2.1" {
		t.Fatalf("allowed egress: %q, %v (want it masqueraded to the host's address)", got, err)
	}
	start := time.Now()
	if got, err := dialIn(ctr, "192.0.2.2:7002", deny); err == nil {
		t.Errorf("egress to another port connected: %q", got)
	} else if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > deny/2 {
		t.Errorf("denied egress should be refused at once, got %v after %v", err, time.Since(start))
	}
	// The same port on another address (the host's end of the veth and
	// the host's remote-facing address) is not allowed either.
	for _, a := range []string{l.HostAddr.String() + ":7001", "192.0.2.1:7001"} {
		if got, err := dialIn(ctr, a, deny); err == nil {
			t.Errorf("egress to %s connected: %q", a, got)
		}
	}
	// UDP is not TCP: the allowed pair is TCP only.
	if err := inNetNS(ctr, func() error {
		c, err := net.DialTimeout("udp4", "192.0.2.2:7001", deny)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}); err == nil {
		t.Error("a UDP datagram to the TCP-only pair was sent")
	}
	select {
	case p := <-other.accepted:
		t.Errorf("the denied server accepted a connection from %s", p)
	case p := <-hostSrv.accepted:
		t.Errorf("the host server accepted a connection from %s", p)
	default:
	}
	if n := len(allowed.accepted); n != 1 {
		t.Errorf("allowed server accepted %d connections", n)
	}
	// No IPv6 on the container's link.
	inNetNS(ctr, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv6/conf/eth0/disable_ipv6")
		if err == nil && strings.TrimSpace(string(b)) != "1" {
			t.Errorf("eth0 disable_ipv6 = %s", b)
		}
		return nil
	})
}

// TestPublish: published ports are reachable through the host's address
// (from the remote and from the host itself, loopback included);
// unpublished container ports are not, even on the container's own
// address.
func TestPublish(t *testing.T) {
	requireTestHost(t)
	remote := newRemote(t)
	m := New(t.TempDir())
	ctr := newNetNS(t)
	// The container's servers exist before its network does, as a
	// container's do not, but that changes nothing for the rules.
	listenIn(t, ctr, "0.0.0.0:8080", "web")
	listenIn(t, ctr, "0.0.0.0:9090", "admin")
	listenIn(t, remote, "192.0.2.2:7001", "remote")
	cfg := Config{Publish: mustParsePublish(t, "192.0.2.1:18080:8080", "127.0.0.1:18081:8080", "0.0.0.0:18082:8080")}
	if err := m.Setup(testCtx(t), "publish", ctr, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown(testCtx(t), ctr) })
	ls, _ := m.Leases()
	addr := ls[0].Addr.String()

	for _, c := range []struct {
		from, to string
		want     string // "" = must fail
	}{
		{remote, "192.0.2.1:18080", "web from 192.0.2.2"},
		{remote, "192.0.2.1:18082", "web from 192.0.2.2"},
		{remote, "192.0.2.1:18081", ""}, // published on the host's loopback only
		{"", "127.0.0.1:18081", "web from " + ls[0].HostAddr.String()},
		{"", "127.0.0.1:18082", "web from " + ls[0].HostAddr.String()},
		{"", "192.0.2.1:18080", "web from 192.0.2.1"},
		{"", addr + ":8080", "web from " + ls[0].HostAddr.String()},
		{"", addr + ":9090", ""}, // unpublished: dropped in the container
		{remote, addr + ":9090", ""},
		{remote, "192.0.2.1:19090", ""},
	} {
		timeout := 3 * time.Second
		if c.want == "" {
			timeout = deny
		}
		got, err := dialIn(c.from, c.to, timeout)
		if c.want == "" {
			if err == nil {
				t.Errorf("from %q to %s: connected (%q), want refused", c.from, c.to, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("from %q to %s: %q, %v; want %q", c.from, c.to, got, err, c.want)
		}
	}
	// Publishing opens nothing outwards.
	if got, err := dialIn(ctr, "192.0.2.2:7001", deny); err == nil {
		t.Errorf("a publish-only container connected out: %q", got)
	}
}

// TestContainerRootCannotChangeRules: root of a user namespace mapped like
// a container's, with CAP_NET_ADMIN in it, inside the container's network
// namespace, can neither read nor change the allowlist, the links, the
// addresses, the routes or the sysctls. The same helper as real root can
// read the rules, so the test would see a failure to protect them.
func TestContainerRootCannotChangeRules(t *testing.T) {
	requireTestHost(t)
	remote := newRemote(t)
	listenIn(t, remote, "192.0.2.2:7001", "allowed")
	listenIn(t, remote, "192.0.2.2:7002", "other")
	m := New(t.TempDir())
	ctr, _ := setup(t, m, "tamper", Config{Egress: mustParseEgress(t, "192.0.2.2:7001")})

	if res := runHelper(t, ctr, "probe", false); res["nft-list"] != "ok" {
		t.Fatalf("control: real root cannot list the container's rules: %s", res["nft-list"])
	}
	res := runHelper(t, ctr, "tamper", true)
	if !strings.Contains(res["uid_map"], "100000") {
		t.Fatalf("helper is not in a mapped user namespace: %q", res["uid_map"])
	}
	if res["capeff"] == "" || strings.Trim(res["capeff"], "0") == "" {
		t.Fatalf("helper has no capabilities in its user namespace (CapEff %q): the test would prove nothing", res["capeff"])
	}
	for _, op := range []string{"nft-list", "nft-flush-ruleset", "nft-delete-table", "nft-add-table", "link-down", "addr-add", "route-del-default", "link-add", "sysctl"} {
		v, ok := res[op]
		if !ok {
			t.Errorf("%s: not attempted", op)
			continue
		}
		if v == "ok" || !(strings.Contains(v, "not permitted") || strings.Contains(v, "permission denied")) {
			t.Errorf("container root %s: %s (want a permission error)", op, v)
		}
	}
	if v, ok := res["nft-cli-flush-ruleset"]; ok && v == "ok" {
		t.Errorf("container root: nft flush ruleset succeeded")
	}
	// The rules are intact and still bite.
	c, err := nftables.New(nftables.WithNetNSFd(nsFd(t, ctr)))
	if err != nil {
		t.Fatal(err)
	}
	tabs, err := c.ListTables()
	if err != nil || len(tabs) != 1 || tabs[0].Name != containerTable {
		t.Errorf("tables after the attempt: %v, %v", tabs, err)
	}
	if _, err := dialIn(ctr, "192.0.2.2:7001", 3*time.Second); err != nil {
		t.Errorf("allowed egress after the attempt: %v", err)
	}
	if got, err := dialIn(ctr, "192.0.2.2:7002", deny); err == nil {
		t.Errorf("denied egress connected after the attempt: %q", got)
	}
}

func nsFd(t testing.TB, p string) int {
	h, err := netns.GetFromPath(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return int(h)
}

// TestCleanup: teardown leaves the host as it was, twice in a row; what a
// crashed bulwark left is removed by a later stop (namespace still there)
// or by the sweep of a later run (namespace gone).
func TestCleanup(t *testing.T) {
	requireTestHost(t)
	before := hostState(t)
	dir := t.TempDir()
	cfg := Config{
		Publish: mustParsePublish(t, "127.0.0.1:18080:8080", "0.0.0.0:18443:8443/udp"),
		Egress:  mustParseEgress(t, "192.0.2.2:5432", "192.0.2.3:53/udp"),
	}
	m := New(dir)
	ctx := testCtx(t)
	a, b, c := newNetNS(t), newNetNS(t), newNetNS(t)
	for i, ns := range []string{a, b, c} {
		if err := m.Setup(ctx, "c"+string(rune('a'+i)), ns, cfg); err != nil {
			t.Fatal(err)
		}
	}
	ls, _ := m.Leases()
	if len(ls) != 3 || ls[0].Index != 0 || ls[1].Index != 1 || ls[2].Index != 2 {
		t.Fatalf("leases %+v", ls)
	}
	if got := hostTables(t); len(got) != 3 {
		t.Errorf("host tables %v", got)
	}
	if err := m.Teardown(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, a); err != nil {
		t.Errorf("second teardown: %v", err)
	}
	if _, err := netlink.LinkByName("bw0"); err == nil {
		t.Error("bw0 left after teardown")
	}

	// Crash with the namespace alive: a new process's teardown (bulwark
	// stop) cleans up from the lease alone.
	if err := New(dir).Teardown(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Crash and the namespace is gone too (the runner removed the
	// container, or the machine lost its state): the next sweep.
	removeNetNS(c)
	if err := New(dir).Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if ls, _ := m.Leases(); len(ls) != 0 {
		t.Errorf("%d leases left", len(ls))
	}
	// A dead namespace's veth goes with the namespace, which the kernel
	// frees asynchronously.
	deadline := time.Now().Add(5 * time.Second)
	for hostState(t) != before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := hostState(t); after != before {
		t.Errorf("host state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestSetupFailureLeavesNothing: a setup that fails halfway (the
// container already has an eth0) removes what it made and its lease.
func TestSetupFailureLeavesNothing(t *testing.T) {
	requireTestHost(t)
	before := hostState(t)
	m := New(t.TempDir())
	ns := newNetNS(t)
	nsh, _ := netns.GetFromPath(ns)
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}))
	h.Close()
	nsh.Close()
	err = m.Setup(testCtx(t), "fail", ns, Config{Egress: mustParseEgress(t, "192.0.2.2:80")})
	if err == nil {
		t.Fatal("setup succeeded with eth0 taken")
	}
	if ls, _ := m.Leases(); len(ls) != 0 {
		t.Errorf("%d leases left", len(ls))
	}
	if after := hostState(t); after != before {
		t.Errorf("host state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Not a namespace at all.
	f := t.TempDir() + "/plain"
	os.WriteFile(f, nil, 0o600)
	if err := m.Setup(testCtx(t), "fail", f, Config{Egress: mustParseEgress(t, "192.0.2.2:80")}); err == nil {
		t.Error("setup accepted a plain file as a namespace")
	}
}

// TestAllocation: blocks that overlap a host address, or whose veth
// name another data directory holds, are skipped; two data directories
// never share a block.
func TestAllocation(t *testing.T) {
	requireTestHost(t)
	cfg := Config{Egress: mustParseEgress(t, "192.0.2.2:80")}
	// The host already uses 10.88.0.0/30 on a link of its own (this
	// kernel has no dummy links; a veth does as well).
	must(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "taken0"}, PeerName: "taken1"}))
	t.Cleanup(func() {
		if l, err := netlink.LinkByName("taken0"); err == nil {
			netlink.LinkDel(l)
		}
	})
	d, _ := netlink.LinkByName("taken0")
	must(t, netlink.AddrAdd(d, &netlink.Addr{IPNet: ipNet(netip.MustParseAddr("10.88.0.1"), 30)}))

	_, l1 := setup(t, New(t.TempDir()), "one", cfg)
	_, l2 := setup(t, New(t.TempDir()), "two", cfg)
	if l1.Index != 1 || l2.Index != 2 || l1.Addr.String() != "10.88.0.6" || l2.HostAddr.String() != "10.88.0.9" {
		t.Errorf("blocks: %d %s/%s, %d %s/%s", l1.Index, l1.HostAddr, l1.Addr, l2.Index, l2.HostAddr, l2.Addr)
	}
	// A small pool runs out.
	m := &Manager{Dir: t.TempDir(), Pool: netip.MustParsePrefix("10.99.0.0/30")}
	setup(t, m, "only", cfg)
	if err := m.Setup(testCtx(t), "more", newNetNS(t), cfg); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("second container in a /30 pool: %v", err)
	}
}

// TestResolve: names are resolved once (IPv4 only); loopback is refused.
func TestResolve(t *testing.T) {
	requireTestHost(t) // no DNS query may leave the test's namespace
	m := New(t.TempDir())
	got, err := m.Resolve(testCtx(t), mustParseEgress(t, "192.0.2.7:443"))
	if err != nil || len(got) != 1 || got[0].Addrs[0].String() != "192.0.2.7" {
		t.Errorf("literal: %+v %v", got, err)
	}
	for _, s := range []string{"localhost:5432", "127.0.0.1:5432"} {
		if _, err := m.Resolve(testCtx(t), mustParseEgress(t, s)); err == nil {
			t.Errorf("%s: accepted", s)
		}
	}
	if _, err := m.Resolve(testCtx(t), mustParseEgress(t, "no-such-host.invalid:80")); err == nil {
		t.Error("an unresolvable name was accepted")
	}
}
