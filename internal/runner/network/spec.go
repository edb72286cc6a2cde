package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrSpec is returned for a malformed --publish or --allow-egress value or
// profile entry; the message quotes it.
var ErrSpec = errors.New("invalid network option")

// Limits on one container's configuration: far above any real service,
// low enough that a hostile profile cannot make thousands of rules.
const (
	MaxPublish = 64
	MaxEgress  = 256
	// MaxEgressAddrs bounds the addresses names resolve to, all entries
	// together.
	MaxEgressAddrs = 1024
)

// Proto is a transport protocol: "tcp" or "udp".
type Proto string

const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

func (p Proto) number() byte {
	if p == UDP {
		return 17
	}
	return 6
}

// Publish forwards HostIP:HostPort on the host to Port in the container.
// HostIP 0.0.0.0 means every local address of the host, loopback included.
type Publish struct {
	HostIP   netip.Addr `json:"hostIP"`
	HostPort uint16     `json:"hostPort"`
	Port     uint16     `json:"port"`
	Proto    Proto      `json:"proto"`
}

func (p Publish) String() string {
	return fmt.Sprintf("%s:%d:%d/%s", p.HostIP, p.HostPort, p.Port, p.Proto)
}

// Egress allows connections from the container to Host:Port. Host is an
// IPv4 address or a DNS name, resolved once when the container starts.
type Egress struct {
	Host  string `json:"host"`
	Port  uint16 `json:"port"`
	Proto Proto  `json:"proto"`
}

func (e Egress) String() string { return fmt.Sprintf("%s:%d/%s", e.Host, e.Port, e.Proto) }

// Config is one container's network: empty means loopback only.
type Config struct {
	Publish []Publish `json:"publish,omitempty"`
	Egress  []Egress  `json:"egress,omitempty"`
}

// Empty reports whether the container needs no network beyond loopback.
func (c Config) Empty() bool { return len(c.Publish) == 0 && len(c.Egress) == 0 }

// Validate checks limits and conflicts between entries (two publications
// of the same host port).
func (c Config) Validate() error {
	if len(c.Publish) > MaxPublish {
		return fmt.Errorf("%w: %d published ports (at most %d)", ErrSpec, len(c.Publish), MaxPublish)
	}
	if len(c.Egress) > MaxEgress {
		return fmt.Errorf("%w: %d egress entries (at most %d)", ErrSpec, len(c.Egress), MaxEgress)
	}
	for i, a := range c.Publish {
		if !a.HostIP.Is4() || a.HostPort == 0 || a.Port == 0 || (a.Proto != TCP && a.Proto != UDP) {
			return fmt.Errorf("%w: publish %s", ErrSpec, a)
		}
		for _, b := range c.Publish[:i] {
			if a.Proto == b.Proto && a.HostPort == b.HostPort &&
				(a.HostIP == b.HostIP || a.HostIP.IsUnspecified() || b.HostIP.IsUnspecified()) {
				return fmt.Errorf("%w: %s and %s publish the same host port", ErrSpec, b, a)
			}
		}
	}
	for _, e := range c.Egress {
		if _, err := ParseEgress(e.String()); err != nil {
			return err
		}
	}
	return nil
}

// ParsePublish parses HOST_IP:HOST_PORT:PORT[/tcp|/udp] (TCP by default).
// The host address is required, as the CIS Docker Benchmark (5.14) asks:
// 0.0.0.0 must be written out to publish on every address.
func ParsePublish(s string) (Publish, error) {
	bad := func(why string) (Publish, error) {
		return Publish{}, fmt.Errorf("%w: publish %q: %s (want HOST_IP:HOST_PORT:PORT[/tcp|/udp])", ErrSpec, s, why)
	}
	rest, proto, err := cutProto(s)
	if err != nil {
		return bad(err.Error())
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		if strings.Contains(rest, "[") || len(parts) > 3 {
			return bad("IPv6 is not supported")
		}
		return bad("the host address and both ports are required")
	}
	ip, err := netip.ParseAddr(parts[0])
	if err != nil || !ip.Is4() {
		return bad("host address must be an IPv4 address (0.0.0.0 for all)")
	}
	hp, err := parsePort(parts[1])
	if err != nil {
		return bad("host port: " + err.Error())
	}
	cp, err := parsePort(parts[2])
	if err != nil {
		return bad("container port: " + err.Error())
	}
	return Publish{HostIP: ip, HostPort: hp, Port: cp, Proto: proto}, nil
}

// ParseEgress parses HOST:PORT[/tcp|/udp] (TCP by default), HOST being an
// IPv4 address or a DNS name.
func ParseEgress(s string) (Egress, error) {
	bad := func(why string) (Egress, error) {
		return Egress{}, fmt.Errorf("%w: allow-egress %q: %s (want HOST:PORT[/tcp|/udp])", ErrSpec, s, why)
	}
	rest, proto, err := cutProto(s)
	if err != nil {
		return bad(err.Error())
	}
	if strings.HasPrefix(rest, "[") || strings.Count(rest, ":") > 1 {
		return bad("IPv6 is not supported")
	}
	host, port, ok := strings.Cut(rest, ":")
	if !ok {
		return bad("a port is required")
	}
	p, err := parsePort(port)
	if err != nil {
		return bad(err.Error())
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.Is4() {
			return bad("IPv6 is not supported")
		}
		if ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return bad("not a host address")
		}
		return Egress{Host: ip.String(), Port: p, Proto: proto}, nil
	}
	if !validHostname(host) {
		return bad("not an IPv4 address or DNS name")
	}
	return Egress{Host: strings.ToLower(strings.TrimSuffix(host, ".")), Port: p, Proto: proto}, nil
}

func cutProto(s string) (string, Proto, error) {
	rest, p, ok := strings.Cut(s, "/")
	if !ok {
		return s, TCP, nil
	}
	switch Proto(p) {
	case TCP, UDP:
		return rest, Proto(p), nil
	}
	return "", "", fmt.Errorf("protocol %q (tcp or udp)", p)
}

func parsePort(s string) (uint16, error) {
	// strconv accepts "+80"; a port is digits only.
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q (1-65535)", s)
	}
	return uint16(n), nil
}

// validHostname accepts RFC 1123 names: dot-separated labels of letters,
// digits and inner hyphens, at most 253 characters, a trailing dot
// allowed. An all-numeric last label is refused so that a mistyped
// address ("10.0.0.300") is not taken for a name.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}
