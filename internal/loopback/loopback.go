// Package loopback tells loopback hosts apart: where bulwark's clients
// speak plain HTTP by default, as docker does, and may send credentials
// without TLS.
package loopback

import (
	"net"
	"strings"
)

// Host reports whether host ("host" or "host:port", IPv6 in brackets) is
// localhost or a loopback address (127.0.0.0/8, ::1).
func Host(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
