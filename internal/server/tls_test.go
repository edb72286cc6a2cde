package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/config"
)

func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		addr     string
		insecure bool
		wantErr  bool
	}{
		{"127.0.0.1:5000", false, false},
		{"[::1]:5000", false, false},
		{"localhost:5000", false, false},
		{"0.0.0.0:5000", false, true},
		{":5000", false, true},
		{"192.0.2.1:5000", false, true},
		{"registry.example:5000", false, true},
		{"0.0.0.0:5000", true, false},
	}
	for _, tt := range tests {
		cfg := config.Default()
		cfg.Addr, cfg.InsecureHTTP = tt.addr, tt.insecure
		_, _, err := setupTLS(cfg)
		if gotErr := errors.Is(err, ErrPlainHTTPExposed); gotErr != tt.wantErr {
			t.Errorf("setupTLS(%s, insecure=%v) = %v, want refusal %v", tt.addr, tt.insecure, err, tt.wantErr)
		}
	}
}

func TestAutoTLS(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.TLS.Mode = TLSAuto
	s, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.TLS() || s.TrustHelp == "" {
		t.Fatalf("auto TLS: TLS()=%v help=%q", s.TLS(), s.TrustHelp)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go s.Serve(ctx, ln, time.Second)

	ca, err := os.ReadFile(filepath.Join(cfg.Data, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("ca.crt holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/healthz")
		if err != nil {
			t.Fatalf("HTTPS to %s with the local CA: %v", host, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTPS /healthz via %s = %s", host, resp.Status)
		}
	}
	// Without the CA the certificate is not trusted.
	if _, err := http.Get("https://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatal("a client without the local CA trusted the server")
	}

	// A second start reuses the CA and the still-valid certificate.
	a1, err := EnsureAutoTLS(filepath.Join(cfg.Data, "tls"), cfg.Addr, time.Now())
	if err != nil || a1.Created {
		t.Fatalf("second EnsureAutoTLS: created=%v err=%v", a1 != nil && a1.Created, err)
	}
	after, _ := os.ReadFile(filepath.Join(cfg.Data, "tls", "ca.crt"))
	if string(after) != string(ca) {
		t.Fatal("the local CA was replaced on restart; every client would have to trust it again")
	}
}
