package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/trust"
)

// benchServer starts a server with or without authentication (and its
// audit log) and pushes one small image tagged bench/app:v1. It returns the
// base URL and the Authorization header value to use ("" when open).
func benchServer(b *testing.B, withAuth bool) (string, string) {
	base, authz, _ := benchServerFull(b, withAuth)
	return base, authz
}

func benchServerFull(b *testing.B, withAuth bool) (string, string, *Server) {
	return benchServerWith(b, withAuth, nil)
}

// benchServerWith is benchServerFull with a chance to change the
// configuration first.
func benchServerWith(b *testing.B, withAuth bool, configure func(*config.Config)) (string, string, *Server) {
	b.Helper()
	cfg := config.Default()
	cfg.Data = b.TempDir()
	cfg.Auth.Enabled = withAuth
	if configure != nil {
		configure(&cfg)
	}
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

// BenchmarkManifestPullPolicy compares a manifest pull by a robot bound to
// prod without a policy with the same pull decided by the policy engine
// (issue 5's target: on/off ≤ 1.2 at the median):
// the image's facts and its trust decision cached (a digest pulled before),
// Decide run, the decision appended to the audit log. The binding is in
// audit mode so the unsigned bench image is allowed while every rule,
// "signed" included, is still evaluated.
func BenchmarkManifestPullPolicy(b *testing.B) {
	dir := b.TempDir()
	if _, err := trust.InitCA(trust.CAOptions{Dir: filepath.Join(dir, "ca"), Organization: "Bench"}); err != nil {
		b.Fatal(err)
	}
	trustPath, rulesPath := filepath.Join(dir, "trust.yaml"), filepath.Join(dir, "policy.yaml")
	os.WriteFile(trustPath, []byte(`version: 1
authorities:
  - name: ci
    roots: [ca/root.crt]
    identities: ["*"]
environments:
  - name: prod
    repositories: ["bench/**"]
    require: [ci]
`), 0o600)
	os.WriteFile(rulesPath, []byte(`version: 1
rules:
  - id: linux
    expression: 'image.config.os == "linux"'
    message: not a Linux image
  - id: from-us
    expression: 'image.repository.startsWith("bench/")'
    message: foreign repository
bindings:
  - environments: [prod]
    repositories: ["bench/**"]
    actions: [pull]
    rules: [signed, non-root, linux, from-us, max-severity]
    mode: audit
`), 0o600)
	// Both servers run side by side and each iteration pulls from one then
	// the other, so load from anything else on the machine hits both alike;
	// the medians and their ratio are reported.
	pullURL := func(policy bool) (string, string) {
		base, _, s := benchServerWith(b, true, func(cfg *config.Config) {
			if policy {
				cfg.TrustPolicy, cfg.Policy = trustPath, rulesPath
			}
		})
		secret, err := s.sec.accounts.CreateRobot(b.Context(), "host", []auth.Grant{{Glob: "bench/**", Actions: []auth.Action{auth.ActionPull}}}, time.Time{}, "prod")
		if err != nil {
			b.Fatal(err)
		}
		q := url.Values{"service": {"bulwark"}, "scope": {"repository:bench/app:pull"}}
		req, _ := http.NewRequest(http.MethodGet, base+"/token?"+q.Encode(), nil)
		req.SetBasicAuth("host", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var tr struct{ Token string }
		json.NewDecoder(resp.Body).Decode(&tr)
		resp.Body.Close()
		return base + "/v2/bench/app/manifests/v1", "Bearer " + tr.Token
	}
	offURL, offAuth := pullURL(false)
	onURL, onAuth := pullURL(true)
	pull := func(u, authz string) time.Duration {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", v1.MediaTypeImageManifest)
		req.Header.Set("Authorization", authz)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
		return time.Since(start)
	}
	pull(onURL, onAuth) // the first decision computes the facts; later ones are the cached case
	var off, on []time.Duration
	b.ResetTimer()
	for range b.N {
		off = append(off, pull(offURL, offAuth))
		on = append(on, pull(onURL, onAuth))
	}
	b.StopTimer()
	slices.Sort(off)
	slices.Sort(on)
	mOff, mOn := off[len(off)/2], on[len(on)/2]
	b.ReportMetric(float64(mOff.Microseconds()), "off-p50-µs")
	b.ReportMetric(float64(mOn.Microseconds()), "on-p50-µs")
	b.ReportMetric(float64(mOn)/float64(mOff), "on/off")

}
