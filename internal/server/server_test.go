package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/registry"
)

func newTestServer(t *testing.T) (*Server, config.Config) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Auth.Enabled = false // these tests are about the open registry; auth_test.go covers auth
	s, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg
}

func TestDataDirectoryIsExclusive(t *testing.T) {
	_, cfg := newTestServer(t)
	_, err := OpenData(t.Context(), cfg.Data)
	if !errors.Is(err, ErrDataBusy) {
		t.Fatalf("second OpenData = %v, want ErrDataBusy", err)
	}
}

func TestHealthzMetricsAndAdmin(t *testing.T) {
	s, _ := newTestServer(t)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("/healthz = %s %q", resp.Status, body)
	}

	// One monolithic blob push, then the metrics must show it.
	content := []byte("metrics")
	d := digest.FromBytes(content)
	resp, err = http.Post(ts.URL+"/v2/m/r/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %s", resp.Status)
	}
	resp, err = http.Get(ts.URL + "/v2/m/r/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	resp, err = http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`bulwark_http_requests_total{method="POST",route="upload",status="201"} 1`,
		`bulwark_http_requests_total{method="GET",route="blob",status="200"} 1`,
		`bulwark_http_received_bytes_total{route="upload"} 7`,
		`bulwark_http_sent_bytes_total{route="blob"} 7`,
		`bulwark_blob_upload_duration_seconds_count 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The admin endpoint works from loopback and reports through metrics.
	resp, err = http.Post(ts.URL+"/admin/v1/gc?dry-run=true", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var res registry.GCResult
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !res.DryRun {
		t.Fatalf("admin gc: %s %v %+v", resp.Status, err, res)
	}
	resp, _ = http.Get(ts.URL + "/metrics")
	metrics, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `bulwark_gc_runs_total{mode="dry-run",result="ok"} 1`) {
		t.Errorf("/metrics lacks the GC run")
	}

	// From anywhere else it is refused.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/admin/v1/gc", nil)
	req.RemoteAddr = "192.0.2.7:4000"
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("admin gc from a remote address = %d, want 403", rec.Code)
	}
}

// TestRegistryPathsBypassCleaning checks that /v2 paths reach the registry
// unmodified: ServeMux would redirect "/v2/a/../b" to a cleaned path, hiding
// the traversal attempt instead of refusing it.
func TestRegistryPathsBypassCleaning(t *testing.T) {
	s, _ := newTestServer(t)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v2/a/../b/manifests/latest", nil)
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "NAME_INVALID") {
		t.Fatalf("traversal = %d %s, want 400 NAME_INVALID", rec.Code, rec.Body)
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	s, _ := newTestServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, 5*time.Second) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("/v2/ = %s %v", resp.Status, resp.Header)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}
