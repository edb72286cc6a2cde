package network

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// containerTable is the allowlist's table in the container's namespace.
const containerTable = "bulwark"

// Small builders for the expressions the rulesets use; each returns the
// expressions of one match, to be concatenated into a rule.

func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func matchMeta(key expr.MetaKey, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data},
	}
}

func matchIIF(name string) []expr.Any { return matchMeta(expr.MetaKeyIIFNAME, ifname(name)) }
func matchOIF(name string) []expr.Any { return matchMeta(expr.MetaKeyOIFNAME, ifname(name)) }

func notOIF(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(name)},
	}
}

func matchIPv4() []expr.Any { return matchMeta(expr.MetaKeyNFPROTO, []byte{unix.NFPROTO_IPV4}) }
func matchIPv6() []expr.Any { return matchMeta(expr.MetaKeyNFPROTO, []byte{unix.NFPROTO_IPV6}) }

func matchL4(p Proto) []expr.Any { return matchMeta(expr.MetaKeyL4PROTO, []byte{p.number()}) }

// matchIP compares the IPv4 source (offset 12) or destination (16).
func matchIP(offset uint32, a netip.Addr) []expr.Any {
	b := a.As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
	}
}

func matchSaddr(a netip.Addr) []expr.Any { return matchIP(12, a) }
func matchDaddr(a netip.Addr) []expr.Any { return matchIP(16, a) }

// matchSaddrPrefix matches the IPv4 source against a prefix.
func matchSaddrPrefix(p netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	b := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
	}
}

// matchDport compares the destination port, at the same offset in TCP
// and UDP headers (nft's "th dport"); callers match the protocol first.
func matchDport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// matchLocal is "fib daddr type local": any address of the host.
func matchLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// matchCtState is "ct state & bits != 0".
func matchCtState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func accept() expr.Any { return &expr.Verdict{Kind: expr.VerdictAccept} }
func drop() expr.Any   { return &expr.Verdict{Kind: expr.VerdictDrop} }

func dnat(to netip.Addr, port uint16) []expr.Any {
	b := to.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: b[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

func rule(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func one(e ...expr.Any) []expr.Any { return e }

// containerRules writes the allowlist into the container's namespace:
//
//	table inet bulwark {
//	  chain input  { type filter hook input priority filter; policy drop;
//	    ct state invalid drop
//	    ct state established,related accept
//	    iifname "lo" accept
//	    meta nfproto ipv4 ip daddr ADDR meta l4proto P th dport PORT accept   # each published port
//	  }
//	  chain output { type filter hook output priority filter; policy drop;
//	    ct state invalid drop
//	    ct state established,related accept
//	    oifname "lo" accept
//	    meta nfproto ipv4 ip daddr A meta l4proto P th dport PORT accept      # each allowed pair
//	    meta l4proto tcp reject with tcp reset
//	    reject with icmpx admin-prohibited
//	  }
//	  chain forward { type filter hook forward priority filter; policy drop; }
//	}
//
// Denied connections out are rejected rather than dropped so that a
// program learns at once instead of after a timeout; denied packets in
// are dropped, which tells a scanner nothing.
func containerRules(c *nftables.Conn, addr netip.Addr, publish []Publish, egress []ResolvedEgress) {
	t := c.AddTable(&nftables.Table{Name: containerTable, Family: nftables.TableFamilyINet})
	// Replace whatever a previous attempt left: add+delete+add in one
	// batch is idempotent.
	c.DelTable(t)
	t = c.AddTable(&nftables.Table{Name: containerTable, Family: nftables.TableFamilyINet})
	policy := nftables.ChainPolicyDrop
	base := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &policy})
	}
	add := func(ch *nftables.Chain, e []expr.Any) { c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e}) }

	in := base("input", nftables.ChainHookInput)
	add(in, rule(matchCtState(expr.CtStateBitINVALID), one(drop())))
	add(in, rule(matchCtState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), one(accept())))
	add(in, rule(matchIIF("lo"), one(accept())))
	for _, p := range publish {
		add(in, rule(matchIPv4(), matchDaddr(addr), matchL4(p.Proto), matchDport(p.Port), one(accept())))
	}

	out := base("output", nftables.ChainHookOutput)
	add(out, rule(matchCtState(expr.CtStateBitINVALID), one(drop())))
	add(out, rule(matchCtState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), one(accept())))
	add(out, rule(matchOIF("lo"), one(accept())))
	for _, e := range egress {
		for _, a := range e.Addrs {
			add(out, rule(matchIPv4(), matchDaddr(a), matchL4(e.Proto), matchDport(e.Port), one(accept())))
		}
	}
	add(out, rule(matchL4(TCP), one(&expr.Reject{Type: unix.NFT_REJECT_TCP_RST})))
	add(out, one(&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}))

	base("forward", nftables.ChainHookForward)
}

// hostRules writes the container's table in the host's namespace:
//
//	table ip bulwark-NAME-TOKEN {
//	  chain prerouting  { type nat hook prerouting priority dstnat;
//	    ip daddr HOST_IP meta l4proto P th dport HOST_PORT dnat to ADDR:PORT  # each published port
//	  }                                       # (fib daddr type local for 0.0.0.0)
//	  chain output      { type nat hook output priority dstnat; same rules }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ip saddr ADDR oifname != VETH masquerade           # with egress
//	    oifname VETH ip saddr 127.0.0.0/8 masquerade       # published on loopback
//	  }
//	}
func hostRules(c *nftables.Conn, table, veth string, addr netip.Addr, publish []Publish, egress bool) {
	t := c.AddTable(&nftables.Table{Name: table, Family: nftables.TableFamilyIPv4})
	c.DelTable(t)
	t = c.AddTable(&nftables.Table{Name: table, Family: nftables.TableFamilyIPv4})
	nat := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio})
	}
	add := func(ch *nftables.Chain, e []expr.Any) { c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e}) }

	if len(publish) > 0 {
		pre := nat("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
		out := nat("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
		for _, p := range publish {
			dst := matchDaddr(p.HostIP)
			if p.HostIP.IsUnspecified() {
				dst = matchLocal()
			}
			e := rule(dst, matchL4(p.Proto), matchDport(p.HostPort), dnat(addr, p.Port))
			add(pre, e)
			add(out, e)
		}
	}
	post := nat("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	if egress {
		add(post, rule(matchSaddr(addr), notOIF(veth), one(&expr.Masq{})))
	}
	if publishesLoopback(publish) {
		add(post, rule(matchOIF(veth), matchSaddrPrefix(netip.MustParsePrefix("127.0.0.0/8")), one(&expr.Masq{})))
	}
}

func publishesLoopback(publish []Publish) bool {
	for _, p := range publish {
		if p.HostIP.IsLoopback() || p.HostIP.IsUnspecified() {
			return true
		}
	}
	return false
}

// delTable removes a table if it exists, in the same idempotent way.
func delTable(c *nftables.Conn, name string, family nftables.TableFamily) {
	t := c.AddTable(&nftables.Table{Name: name, Family: family})
	c.DelTable(t)
}
