package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// TLS modes.
const (
	TLSOff   = "off"
	TLSFiles = "files"
	TLSAuto  = "auto"
)

// ErrPlainHTTPExposed refuses to serve plain HTTP beyond loopback: registry
// credentials and tokens would cross the network in clear text.
var ErrPlainHTTPExposed = errors.New("refusing plain HTTP on a non-loopback address (use --tls auto, --tls-cert/--tls-key, or --insecure-http)")

// IsLoopback reports whether a listen address only accepts local
// connections. An empty host ("":5000) listens everywhere.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// AutoTLS is the result of preparing the --tls auto certificates.
type AutoTLS struct {
	CACert, ServerCert, ServerKey string // file paths
	Created                       bool   // the CA was created now
}

// EnsureAutoTLS makes (once) a local CA and (when missing, expiring within
// 30 days, or lacking a name) a server certificate for the listen address,
// under dir. The CA key never leaves dir; clients trust ca.crt.
func EnsureAutoTLS(dir, addr string, now time.Time) (*AutoTLS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	a := &AutoTLS{
		CACert:     filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "server.crt"),
		ServerKey:  filepath.Join(dir, "server.key"),
	}
	caKeyPath := filepath.Join(dir, "ca.key")
	caCert, caKey, err := loadPair(a.CACert, caKeyPath)
	if errors.Is(err, os.ErrNotExist) {
		caCert, caKey, err = newCA(now)
		if err != nil {
			return nil, err
		}
		if err := writePair(a.CACert, caKeyPath, caCert, caKey); err != nil {
			return nil, err
		}
		a.Created = true
	} else if err != nil {
		return nil, fmt.Errorf("tls: local CA: %w", err)
	}

	names, ips := serverNames(addr)
	cert, _, err := loadPair(a.ServerCert, a.ServerKey)
	if err == nil && cert.NotAfter.After(now.Add(30*24*time.Hour)) && covers(cert, names, ips) &&
		cert.CheckSignatureFrom(caCert) == nil {
		return a, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"bulwark"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(397 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tls: issue server certificate: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	if err := writePair(a.ServerCert, a.ServerKey, leaf, key); err != nil {
		return nil, err
	}
	return a, nil
}

// serverNames lists the names a server certificate for addr must carry:
// localhost and loopback always, the host's name, and the listen host.
func serverNames(addr string) ([]string, []net.IP) {
	names := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if hn, err := os.Hostname(); err == nil && hn != "" && hn != "localhost" {
		names = append(names, strings.ToLower(hn))
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(names, strings.ToLower(host)) {
			names = append(names, strings.ToLower(host))
		}
	}
	return names, ips
}

func covers(c *x509.Certificate, names []string, ips []net.IP) bool {
	for _, n := range names {
		if c.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "bulwark local CA " + host, Organization: []string{"bulwark"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: create local CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s is not an ECDSA key", keyPath)
	}
	return cert, key, nil
}

func writePair(certPath, keyPath string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// TLSConfig loads a certificate pair for serving. Modern settings only: TLS
// 1.2 and later, Go's default cipher suites.
func TLSConfig(certFile, keyFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s / %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
}

// TrustInstructions tells a user how to make docker and skopeo trust the
// local CA for a registry at hostport.
func TrustInstructions(caCert, hostport string) string {
	return fmt.Sprintf(`TLS: certificates from the local CA %[1]s
  docker:  sudo mkdir -p /etc/docker/certs.d/%[2]s && sudo cp %[1]s /etc/docker/certs.d/%[2]s/ca.crt
  skopeo:  mkdir -p ~/.config/bulwark-certs && cp %[1]s ~/.config/bulwark-certs/ca.crt, then pass --cert-dir ~/.config/bulwark-certs (or --creds/--dest-cert-dir)
  curl:    curl --cacert %[1]s https://%[2]s/v2/`, caCert, hostport)
}
