package network

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// helperMain is the child process of TestContainerRootCannotChangeRules.
// It runs inside the container's network namespace, either as the real
// root (mode "probe", the control) or as root of a user namespace mapped
// like a container's (mode "tamper"), with every capability of that user
// namespace, CAP_NET_ADMIN included. It prints a JSON object: operation
// -> "ok" or the error.
func helperMain(mode string) int {
	res := map[string]string{}
	record := func(op string, err error) {
		if err != nil {
			res[op] = err.Error()
		} else {
			res[op] = "ok"
		}
	}
	c, err := nftables.New()
	if err != nil {
		record("nft-conn", err)
	} else {
		_, err := c.ListTables()
		record("nft-list", err)
	}
	if mode == "tamper" {
		res["uid_map"] = readFile("/proc/self/uid_map")
		res["capeff"] = capEff()

		c.FlushRuleset()
		record("nft-flush-ruleset", c.Flush())
		delTable(c, containerTable, nftables.TableFamilyINet)
		record("nft-delete-table", c.Flush())
		t := c.AddTable(&nftables.Table{Name: "evil", Family: nftables.TableFamilyINet})
		pol := nftables.ChainPolicyAccept
		c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFirst, Policy: &pol})
		record("nft-add-table", c.Flush())
		if eth, err := netlink.LinkByName(containerIf); err != nil {
			record("link-lookup", err)
		} else {
			record("link-down", netlink.LinkSetDown(eth))
			record("addr-add", netlink.AddrAdd(eth, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(192, 0, 2, 99), Mask: net.CIDRMask(32, 32)}}))
			record("route-del-default", netlink.RouteDel(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IPv4(10, 88, 0, 1)}))
		}
		record("link-add", netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "evil0"}, PeerName: "evil1"}))
		record("sysctl", setSysctl("ipv4/conf/"+containerIf+"/forwarding", "1"))
		if nft, err := exec.LookPath("nft"); err == nil {
			out, err := exec.Command(nft, "flush", "ruleset").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, out)
			}
			record("nft-cli-flush-ruleset", err)
		}
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func capEff() string {
	b, _ := os.ReadFile("/proc/self/status")
	var v string
	for _, line := range splitLines(string(b)) {
		if _, err := fmt.Sscanf(line, "CapEff:\t%s", &v); err == nil {
			return v
		}
	}
	return ""
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// runHelper runs helperMain(mode) inside the namespace ns; with userns
// the child gets a user namespace mapping 0-65535 onto host ids
// 100000-165535, as the runner maps containers. The fork happens on a
// thread that has joined ns, so the child starts in it: it joins the
// network namespace first and creates its user namespace second, in the
// order runc uses.
func runHelper(t *testing.T, ns, mode string, userns bool) map[string]string {
	t.Helper()
	var out []byte
	err := inNetNS(ns, func() error {
		cmd := exec.Command("/proc/self/exe", "-test.run=^$")
		cmd.Env = append(os.Environ(), envHelper+"="+mode)
		cmd.Stderr = os.Stderr
		if userns {
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Cloneflags:  syscall.CLONE_NEWUSER,
				UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
				GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
				// Become the namespace's root (host uid 100000) before
				// exec, so the helper keeps every capability of its user
				// namespace, as a container's root with --cap-add would.
				Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
			}
		}
		var err error
		out, err = cmd.Output()
		return err
	})
	if err != nil {
		t.Fatalf("helper %s: %v", mode, err)
	}
	res := map[string]string{}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%s %s: %s", mode, k, res[k])
	}
	return res
}

func hostTables(t testing.TB) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range ts {
		names = append(names, x.Name)
	}
	sort.Strings(names)
	return names
}
