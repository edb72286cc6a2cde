package main

import (
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/inventory"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/runner"
	"github.com/bulwark-dev/bulwark/internal/runner/network"
)

// TestRunRequest: what the policy sees is what bulwark run asks for.
func TestRunRequest(t *testing.T) {
	net := network.Config{
		Publish: []network.Publish{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, Port: 80, Proto: network.TCP}},
		Egress:  []network.Egress{{Host: "db.internal", Port: 5432, Proto: network.TCP}, {Host: "db.internal", Port: 5433, Proto: network.TCP}},
	}
	rt := runRequest("1000", []string{"net_bind_service", "CAP_NET_BIND_SERVICE", " cap_chown "}, net)
	if rt.User != "1000" || rt.Privileged || len(rt.HostNamespaces) != 0 || !rt.ReadOnlyRootfs {
		t.Errorf("run request %+v", rt)
	}
	if !slices.Equal(rt.Capabilities, []string{"CAP_NET_BIND_SERVICE", "CAP_CHOWN"}) {
		t.Errorf("capabilities %v", rt.Capabilities)
	}
	if len(rt.PublishedPorts) != 1 || rt.PublishedPorts[0].ContainerPort != 80 || rt.PublishedPorts[0].HostIP != "127.0.0.1" {
		t.Errorf("published %+v", rt.PublishedPorts)
	}
	if !slices.Equal(rt.Egress, []string{"db.internal"}) {
		t.Errorf("egress %v", rt.Egress)
	}
	for _, m := range rt.Mounts {
		if m.Type != "tmpfs" || strings.HasPrefix(m.Source, "/") {
			t.Errorf("mount %+v is not a tmpfs: the rule no-host-path-mounts would see a host path", m)
		}
	}
	// Nothing asked: empty lists (the JSON the decision log records).
	b, _ := json.Marshal(runRequest("", nil, network.Config{}))
	for _, f := range []string{`"capabilities":[]`, `"hostNamespaces":[]`, `"egress":[]`, `"readOnlyRootfs":true`, `"privileged":false`} {
		if !strings.Contains(string(b), f) {
			t.Errorf("empty request %s lacks %s", b, f)
		}
	}
}

// TestAdmissionCache: an admission is reused only for the very same key,
// within admissionTTL, and never when the entry was tampered with to live
// longer or the clock went back.
func TestAdmissionCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "admissions")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	adm := admission{env: "prod", decided: now, decision: inventory.Decision{Verification: inventory.VerifiedByPolicy, ID: "d1"}}
	c := newAdmissionCache(dir, "key-1")
	if _, _, ok := c.get(now); ok {
		t.Fatal("hit in an empty cache")
	}
	c.put(adm, "summary", io.Discard)

	tests := []struct {
		name string
		key  string
		at   time.Time
		edit func(e *cachedAdmission)
		hit  bool
	}{
		{"same key, a moment later", "key-1", now.Add(time.Second), nil, true},
		{"same key, just before expiry", "key-1", now.Add(admissionTTL - time.Millisecond), nil, true},
		{"expired", "key-1", now.Add(admissionTTL), nil, false},
		{"clock set back", "key-1", now.Add(-time.Second), nil, false},
		{"another key", "key-2", now.Add(time.Second), nil, false},
		{"entry edited to live a day", "key-1", now.Add(2 * admissionTTL), func(e *cachedAdmission) { e.Expires = now.Add(24 * time.Hour) }, false},
		{"entry for another key under this name", "key-1", now.Add(time.Second), func(e *cachedAdmission) { e.Key = "key-1 " }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAdmissionCache(dir, tt.key)
			if tt.edit != nil {
				c0 := newAdmissionCache(dir, "key-1")
				b, err := os.ReadFile(c0.path)
				if err != nil {
					t.Fatal(err)
				}
				var e cachedAdmission
				json.Unmarshal(b, &e)
				tt.edit(&e)
				b, _ = json.Marshal(e)
				os.WriteFile(c0.path, b, 0o600)
				t.Cleanup(func() { c0.put(adm, "summary", io.Discard) })
			}
			got, summary, ok := c.get(tt.at)
			if ok != tt.hit {
				t.Fatalf("hit = %v, want %v", ok, tt.hit)
			}
			if ok && (got.env != "prod" || got.decision.ID != "d1" || summary != "summary" || !got.decided.Equal(now)) {
				t.Fatalf("cached %+v %q", got, summary)
			}
		})
	}
	// No directory: no cache, and no error.
	none := newAdmissionCache("", "key-1")
	none.put(adm, "summary", io.Discard)
	if _, _, ok := none.get(now); ok {
		t.Fatal("a cache without a directory hit")
	}
}

// TestAdmissionKey: every input of the decision is in the key.
func TestAdmissionKey(t *testing.T) {
	ref, _ := oci.ParseImageRef("127.0.0.1:5000/prod/app:v1")
	img := &runner.Image{Ref: ref, Manifest: v1.Descriptor{Digest: digest.FromString("m")}}
	img.Ref.Digest = digest.FromString("m")
	base := admissionKey(ref, img, "prod", nil, []byte("version: 1\n"), runRequest("", nil, network.Config{}))
	if again := admissionKey(ref, img, "prod", nil, []byte("version: 1\n"), runRequest("", nil, network.Config{})); again != base {
		t.Fatal("the key is not deterministic")
	}
	pinned, _ := oci.ParseImageRef("127.0.0.1:5000/prod/app@" + digest.FromString("m").String())
	other := *img
	other.Ref.Digest = digest.FromString("other")
	for name, k := range map[string]string{
		"environment":  admissionKey(ref, img, "dev", nil, []byte("version: 1\n"), runRequest("", nil, network.Config{})),
		"policy bytes": admissionKey(ref, img, "prod", nil, []byte("version: 1\n# changed\n"), runRequest("", nil, network.Config{})),
		"no policy":    admissionKey(ref, img, "prod", nil, nil, runRequest("", nil, network.Config{})),
		"user":         admissionKey(ref, img, "prod", nil, []byte("version: 1\n"), runRequest("0", nil, network.Config{})),
		"capabilities": admissionKey(ref, img, "prod", nil, []byte("version: 1\n"), runRequest("", []string{"CAP_CHOWN"}, network.Config{})),
		"by digest":    admissionKey(pinned, img, "prod", nil, []byte("version: 1\n"), runRequest("", nil, network.Config{})),
		"digest":       admissionKey(ref, &other, "prod", nil, []byte("version: 1\n"), runRequest("", nil, network.Config{})),
	} {
		if k == base {
			t.Errorf("changing the %s leaves the key unchanged", name)
		}
	}
}

func TestReportReason(t *testing.T) {
	for in, want := range map[string]string{
		"exited":                                "exited",
		"did not start: runc:\n\tfailed\x1b[0m": "did not start: runc: failed [0m",
		strings.Repeat("é", 600):                strings.Repeat("é", 450) + "…",
	} {
		got := reportReason(in, 900)
		if got != want {
			t.Errorf("reportReason(%q) = %q, want %q", in, got, want)
		}
	}
}
