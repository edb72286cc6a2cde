package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/config"
)

// benchServer starts a server with or without authentication (and its
// audit log) and pushes one small image tagged bench/app:v1. It returns the
// base URL and the Authorization header value to use ("" when open).
func benchServer(b *testing.B, withAuth bool) (string, string) {
	base, authz, _ := benchServerFull(b, withAuth)
	return base, authz
}

func benchServerFull(b *testing.B, withAuth bool) (string, string, *Server) {
	b.Helper()
	cfg := config.Default()
	cfg.Data = b.TempDir()
	cfg.Auth.Enabled = withAuth
	b.Setenv("BULWARK_ADMIN_PASSWORD", "bench-admin-password")
	s, err := New(b.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	b.Cleanup(func() { ts.Close(); s.Close() })
	authz := ""
	if withAuth {
		q := url.Values{"service": {"bulwark"}, "scope": {"repository:bench/app:pull,push"}}
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/token?"+q.Encode(), nil)
		req.SetBasicAuth("admin", "bench-admin-password")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var tr struct{ Token string }
		json.NewDecoder(resp.Body).Decode(&tr)
		resp.Body.Close()
		authz = "Bearer " + tr.Token
	}
	do := func(method, path string, body []byte, ct string) {
		req, _ := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			b.Fatalf("%s %s: %s", method, path, resp.Status)
		}
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := digest.FromBytes(config)
	do(http.MethodPost, "/v2/bench/app/blobs/uploads/?digest="+cd.String(), config, "")
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cd, Size: int64(len(config))}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	do(http.MethodPut, "/v2/bench/app/manifests/v1", mb, v1.MediaTypeImageManifest)
	return ts.URL, authz, s
}

// BenchmarkManifestPull compares a manifest pull (GET by tag) without
// authentication with the same pull carrying a token that is verified,
// checked against the route's scope, and audited.
func BenchmarkManifestPull(b *testing.B) {
	for _, mode := range []struct {
		name string
		auth bool
	}{{"open", false}, {"auth+audit", true}} {
		b.Run(mode.name, func(b *testing.B) {
			base, authz := benchServer(b, mode.auth)
			u := base + "/v2/bench/app/manifests/v1"
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, u, nil)
					req.Header.Set("Accept", v1.MediaTypeImageManifest)
					if authz != "" {
						req.Header.Set("Authorization", authz)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Error(resp.Status)
						return
					}
				}
			})
		})
	}
}

// BenchmarkTokenIssue measures the token endpoint for a robot (Basic auth
// with its secret, one scope): what CI and hosts pay per login. Users pay an
// argon2id hash on top (deliberately slow, ~25 ms).
func BenchmarkTokenIssue(b *testing.B) {
	base, _, s := benchServerFull(b, true)
	secret, err := s.sec.accounts.CreateRobot(b.Context(), "ci", []auth.Grant{{Glob: "bench/*", Actions: []auth.Action{auth.ActionPull, auth.ActionPush}}}, time.Time{}, "")
	if err != nil {
		b.Fatal(err)
	}
	u := base + "/token?" + url.Values{"service": {"bulwark"}, "scope": {"repository:bench/app:pull,push"}}.Encode()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.SetBasicAuth("ci", secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Error(resp.Status)
				return
			}
		}
	})
}
