package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultPool is the private range container addresses come from: one
// /30 per container (host end .1, container .2 of each block), 16384
// containers at once.
var DefaultPool = netip.MustParsePrefix("10.88.0.0/16")

const (
	// vethPrefix names the host ends: bw0, bw1, … (the lease index). The
	// kernel refuses a second link of the same name, which is what keeps
	// two data directories on one host from taking the same block.
	vethPrefix = "bw"
	// aliasPrefix marks a host veth as this lease's (IFLA_IFALIAS), so a
	// stale lease never deletes a link that someone else now owns.
	aliasPrefix = "bulwark:"
	// tablePrefix names the per-container host tables.
	tablePrefix = "bulwark-"
	// containerIf is the container's end of the veth pair.
	containerIf = "eth0"
)

// ErrPoolExhausted is returned when every block of the pool is leased or
// overlaps an address of the host.
var ErrPoolExhausted = errors.New("network: no free address block")

// Resolver turns egress host names into addresses (net.DefaultResolver).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Manager sets up and tears down container networks. Its state (one
// lease file per container and a lock) lives in Dir; the host side is
// made in the network namespace of the calling process.
type Manager struct {
	// Dir holds leases/ and the lock, e.g. DATA/network.
	Dir string
	// Pool defaults to DefaultPool; it must be IPv4 and at most a /30.
	Pool netip.Prefix
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
}

// New returns a Manager keeping its state in dir.
func New(dir string) *Manager { return &Manager{Dir: dir} }

// Lease is what Setup made for one container, recorded before any of it
// exists so that Teardown can undo it after a crash.
type Lease struct {
	Index     int    `json:"index"`
	Token     string `json:"token"`
	Container string `json:"container"`
	// NetNS and NetNSInode identify the container's namespace: a lease
	// whose namespace is gone (the file unmounted or the inode changed)
	// is stale and swept.
	NetNS      string     `json:"netns"`
	NetNSInode uint64     `json:"netnsInode"`
	HostVeth   string     `json:"hostVeth"`
	HostAddr   netip.Addr `json:"hostAddr"`
	Addr       netip.Addr `json:"addr"`
	HostTable  string     `json:"hostTable"`
	Publish    []Publish  `json:"publish,omitempty"`
	// Egress lists the allowed pairs with the addresses their names had
	// when the container started.
	Egress  []ResolvedEgress `json:"egress,omitempty"`
	Created time.Time        `json:"created"`
}

// ResolvedEgress is an egress entry with its addresses.
type ResolvedEgress struct {
	Egress
	Addrs []netip.Addr `json:"addrs"`
}

func (m *Manager) pool() (netip.Prefix, error) {
	p := m.Pool
	if !p.IsValid() {
		p = DefaultPool
	}
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("network: pool %s: want an IPv4 prefix of /30 or larger", p)
	}
	return p.Masked(), nil
}

// block returns the host and container addresses of block i, or false
// when the pool has no such block.
func block(pool netip.Prefix, i int) (host, ctr netip.Addr, ok bool) {
	if i < 0 || i >= 1<<(30-pool.Bits()) {
		return netip.Addr{}, netip.Addr{}, false
	}
	b := pool.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i) * 4
	mk := func(v uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return mk(v + 1), mk(v + 2), true
}

// Resolve looks up every egress entry's IPv4 addresses. A name must have
// at least one; loopback addresses are refused, because inside the
// container they are the container's own loopback.
func (m *Manager) Resolve(ctx context.Context, egress []Egress) ([]ResolvedEgress, error) {
	r := m.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	out := make([]ResolvedEgress, 0, len(egress))
	total := 0
	for _, e := range egress {
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(e.Host); err == nil {
			addrs = []netip.Addr{a}
		} else {
			got, err := r.LookupNetIP(ctx, "ip4", e.Host)
			if err != nil {
				return nil, fmt.Errorf("network: allow-egress %s: %w", e, err)
			}
			for _, a := range got {
				if a = a.Unmap(); a.Is4() && !slices.Contains(addrs, a) {
					addrs = append(addrs, a)
				}
			}
			if len(addrs) == 0 {
				return nil, fmt.Errorf("network: allow-egress %s: no IPv4 address", e)
			}
		}
		for _, a := range addrs {
			if a.IsLoopback() {
				return nil, fmt.Errorf("%w: allow-egress %s: %s is the container's own loopback, which is always allowed; the host is not reachable through it", ErrSpec, e, a)
			}
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		total += len(addrs)
		if total > MaxEgressAddrs {
			return nil, fmt.Errorf("%w: egress names resolve to more than %d addresses", ErrSpec, MaxEgressAddrs)
		}
		out = append(out, ResolvedEgress{Egress: e, Addrs: addrs})
	}
	return out, nil
}

// validTableName is ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$, written out: a
// regular expression compiled at package init cost every bulwark command
// 0.8 ms of start-up (GODEBUG=inittrace=1).
func validTableName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// Setup gives the container whose network namespace is at netnsPath the
// network cfg describes (see the package comment). name is the
// container's name, used in the host table's name. On error nothing is
// left behind.
func (m *Manager) Setup(ctx context.Context, name, netnsPath string, cfg Config) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	pool, err := m.pool()
	if err != nil {
		return err
	}
	if !validTableName(name) {
		name = "c"
	}
	egress, err := m.Resolve(ctx, cfg.Egress)
	if err != nil {
		return err
	}
	ino, err := nsInode(netnsPath)
	if err != nil {
		return err
	}
	if ino == 0 {
		return fmt.Errorf("network: %s is not a network namespace", netnsPath)
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := m.sweep(); err != nil {
		return err
	}

	leases, err := m.leases()
	if err != nil {
		return err
	}
	used := map[int]bool{}
	for _, l := range leases {
		used[l.Index] = true
	}
	hostNets, err := hostPrefixes()
	if err != nil {
		return err
	}
	nsh, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	defer nsh.Close()

	var tok [4]byte
	rand.Read(tok[:])
	l := &Lease{
		Token: hex.EncodeToString(tok[:]), Container: name,
		NetNS: netnsPath, NetNSInode: ino,
		Publish: cfg.Publish, Egress: egress, Created: time.Now().UTC(),
	}
	l.HostTable = tablePrefix + name + "-" + l.Token
	for i := 0; ; i++ {
		host, ctr, ok := block(pool, i)
		if !ok {
			return fmt.Errorf("%w in %s", ErrPoolExhausted, pool)
		}
		if used[i] || overlaps(hostNets, netip.PrefixFrom(host, 30).Masked()) {
			continue
		}
		l.Index, l.HostAddr, l.Addr, l.HostVeth = i, host, ctr, vethPrefix+strconv.Itoa(i)
		if _, err := netlink.LinkByName(l.HostVeth); err == nil {
			// Another data directory on this host holds block i.
			continue
		}
		// The lease goes to disk before anything exists in the kernel.
		if err := m.writeLease(l); err != nil {
			return err
		}
		err := netlink.LinkAdd(&netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: l.HostVeth, Alias: aliasPrefix + l.Token},
			PeerName:      containerIf,
			PeerNamespace: netlink.NsFd(nsh),
		})
		if errors.Is(err, unix.EEXIST) {
			if _, lerr := netlink.LinkByName(l.HostVeth); lerr == nil {
				// Taken between the check and the add.
				os.Remove(m.leasePath(l.Index))
				continue
			}
		}
		if err != nil {
			os.Remove(m.leasePath(l.Index))
			return fmt.Errorf("network: create veth %s: %w", l.HostVeth, err)
		}
		break
	}
	defer func() {
		if err != nil {
			if terr := m.teardownLease(l); terr != nil {
				err = errors.Join(err, terr)
			}
		}
	}()
	if err := configureHost(l); err != nil {
		return err
	}
	return configureContainer(nsh, l)
}

// configureHost addresses and raises the host end, enables forwarding
// and writes the host table.
func configureHost(l *Lease) error {
	link, err := netlink.LinkByName(l.HostVeth)
	if err != nil {
		return fmt.Errorf("network: %s: %w", l.HostVeth, err)
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(l.HostAddr, 30)}); err != nil {
		return fmt.Errorf("network: address %s: %w", l.HostVeth, err)
	}
	// No IPv6 on the link at all (no link-local address either); the
	// container drops IPv6 anyway. Hosts without IPv6 have no such file.
	if err := setSysctl("ipv6/conf/"+l.HostVeth+"/disable_ipv6", "1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if publishesLoopback(l.Publish) {
		// A connection to 127.0.0.1:HOST_PORT is DNATed to the container
		// with its loopback source (then masqueraded): the kernel routes
		// such packets only on links that allow it. Only this link does.
		if err := setSysctl("ipv4/conf/"+l.HostVeth+"/route_localnet", "1"); err != nil {
			return err
		}
	}
	// Forwarding is host-wide; it is turned on and never off again, as
	// other things on the host may rely on it by then.
	if err := setSysctl("ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("network: up %s: %w", l.HostVeth, err)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("network: nftables: %w", err)
	}
	hostRules(c, l.HostTable, l.HostVeth, l.Addr, l.Publish, len(l.Egress) > 0)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: host table %s: %w", l.HostTable, err)
	}
	return nil
}

// configureContainer writes the allowlist first, then brings up
// loopback and eth0 with the address and the default route.
func configureContainer(nsh netns.NsHandle, l *Lease) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(nsh)))
	if err != nil {
		return fmt.Errorf("network: nftables: %w", err)
	}
	containerRules(c, l.Addr, l.Publish, l.Egress)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: container allowlist: %w", err)
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("network: container lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("network: container lo: %w", err)
	}
	eth, err := h.LinkByName(containerIf)
	if err != nil {
		return fmt.Errorf("network: container %s: %w", containerIf, err)
	}
	err = inNetNS(l.NetNS, func() error {
		err := setSysctl("ipv6/conf/"+containerIf+"/disable_ipv6", "1")
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(l.Addr, 30)}); err != nil {
		return fmt.Errorf("network: container address: %w", err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("network: container %s: %w", containerIf, err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(l.HostAddr.AsSlice())}); err != nil {
		return fmt.Errorf("network: container default route: %w", err)
	}
	return nil
}

// Teardown removes what Setup made for the namespace at netnsPath: the
// veth pair (with its address and routes), the host table and the lease.
// It also sweeps leases of containers that no longer exist. Calling it
// for a namespace without a lease, or twice, does nothing.
func (m *Manager) Teardown(ctx context.Context, netnsPath string) error {
	if _, err := os.Stat(m.leaseDir()); errors.Is(err, fs.ErrNotExist) {
		// No container of this data directory ever had a network: the
		// common case of a stop, kept free of locks and files.
		return nil
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	leases, err := m.leases()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range leases {
		if l.NetNS == netnsPath {
			errs = append(errs, m.teardownLease(l))
		}
	}
	errs = append(errs, m.sweep())
	return errors.Join(errs...)
}

// Sweep tears down every lease whose container namespace is gone: what a
// bulwark that crashed, or was killed, left behind.
func (m *Manager) Sweep(ctx context.Context) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return m.sweep()
}

func (m *Manager) sweep() error {
	leases, err := m.leases()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range leases {
		ino, err := nsInode(l.NetNS)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ino == l.NetNSInode {
			continue
		}
		errs = append(errs, m.teardownLease(l))
	}
	return errors.Join(errs...)
}

// teardownLease deletes the lease's kernel objects that still exist and
// are still its own, then the lease file. A missing object is not an
// error; the file stays when something could not be removed, for the
// next attempt.
func (m *Manager) teardownLease(l *Lease) error {
	var errs []error
	if ino, err := nsInode(l.NetNS); err == nil && ino != 0 && ino == l.NetNSInode {
		// Deleting the container's end deletes the pair, whichever
		// name the host end has.
		if nsh, err := netns.GetFromPath(l.NetNS); err == nil {
			if h, err := netlink.NewHandleAt(nsh); err == nil {
				if link, err := h.LinkByName(containerIf); err == nil {
					if err := h.LinkDel(link); err != nil {
						errs = append(errs, fmt.Errorf("network: delete container %s: %w", containerIf, err))
					}
				}
				h.Close()
			}
			nsh.Close()
		}
	}
	if link, err := netlink.LinkByName(l.HostVeth); err == nil && link.Attrs().Alias == aliasPrefix+l.Token {
		if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("network: delete %s: %w", l.HostVeth, err))
		}
	}
	if l.HostTable != "" {
		c, err := nftables.New()
		if err == nil {
			delTable(c, l.HostTable, nftables.TableFamilyIPv4)
			err = c.Flush()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("network: delete host table %s: %w", l.HostTable, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.Remove(m.leasePath(l.Index)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}

// Leases lists the current leases (ps-style inspection and tests).
func (m *Manager) Leases() ([]*Lease, error) { return m.leases() }

func (m *Manager) leaseDir() string { return filepath.Join(m.Dir, "leases") }
func (m *Manager) leasePath(i int) string {
	return filepath.Join(m.leaseDir(), strconv.Itoa(i)+".json")
}
func (m *Manager) writeLease(l *Lease) error { return writeJSON(m.leasePath(l.Index), l) }

func (m *Manager) leases() ([]*Lease, error) {
	ents, err := os.ReadDir(m.leaseDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	var out []*Lease
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.leaseDir(), e.Name()))
		if err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
		var l Lease
		if err := json.Unmarshal(b, &l); err != nil || l.Index != i {
			return nil, fmt.Errorf("network: lease %s is corrupt: remove it after checking `ip link` and `nft list tables`", e.Name())
		}
		out = append(out, &l)
	}
	return out, nil
}

// lock takes the data directory's network lock (flock, so it is released
// if the process dies), polling so that ctx can cancel the wait.
func (m *Manager) lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(m.leaseDir(), 0o700); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(m.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			f.Close()
			return nil, fmt.Errorf("network: lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("network: waiting for the lock: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// hostPrefixes lists the host's IPv4 interface networks, which a block
// must not overlap.
func hostPrefixes() ([]netip.Prefix, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("network: list addresses: %w", err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, bits).Masked())
	}
	return out, nil
}

func overlaps(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q.Overlaps(p) {
			return true
		}
	}
	return false
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, 32)}
}

func writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}
