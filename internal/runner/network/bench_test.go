package network

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/runner"
	"github.com/bulwark-dev/bulwark/internal/runner/unpack"
)

var benchCfg = Config{
	Publish: []Publish{{HostIP: remoteHost, HostPort: 18080, Port: 8080, Proto: TCP}},
	Egress:  []Egress{{Host: "192.0.2.2", Port: 5432, Proto: TCP}, {Host: "192.0.2.3", Port: 53, Proto: UDP}},
}

// BenchmarkSetupTeardown: the network step alone, per container: Setup
// (lease, veth, addresses, route, both rulesets) and Teardown, on a fresh
// namespace each time (its creation is not timed).
//
//	go test ./internal/runner/network/ -run '^$' -bench SetupTeardown -benchtime 50x
func BenchmarkSetupTeardown(b *testing.B) {
	requireTestHost(b)
	m := New(b.TempDir())
	ctx := context.Background()
	var setup, teardown time.Duration
	for b.Loop() {
		b.StopTimer()
		ns := newNetNS(b)
		b.StartTimer()
		t0 := time.Now()
		if err := m.Setup(ctx, "bench", ns, benchCfg); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Teardown(ctx, ns); err != nil {
			b.Fatal(err)
		}
		setup += t1.Sub(t0)
		teardown += time.Since(t1)
		b.StopTimer()
		removeNetNS(ns)
		b.StartTimer()
	}
	b.ReportMetric(float64(setup.Microseconds())/1000/float64(b.N), "setup-ms/op")
	b.ReportMetric(float64(teardown.Microseconds())/1000/float64(b.N), "teardown-ms/op")
}

// BenchmarkRunTrue: an attached run of /bin/true through the runner's
// Manager with runc, with the default loopback-only network and with
// this package's network (publish + two egress pairs): the difference is
// what the network adds to a container's start and removal.
//
//	go test ./internal/runner/network/ -run '^$' -bench RunTrue -benchtime 20x
func BenchmarkRunTrue(b *testing.B) {
	requireTestHost(b)
	runc, err := exec.LookPath("runc")
	if err != nil {
		b.Fatal("runc is required")
	}
	data := traversableDir(b)
	store, err := runner.OpenStore(data)
	if err != nil {
		b.Fatal(err)
	}
	layer := busyboxLayer(b)
	nm := New(filepath.Join(data, "network"))
	for _, withNet := range []bool{false, true} {
		name := "loopback"
		if withNet {
			name = "network"
		}
		b.Run(name, func(b *testing.B) {
			m := &runner.Manager{Store: store, Runtime: &runner.Runtime{Path: runc, Root: store.RuntimeRoot()}}
			if withNet {
				m.NetworkTeardown = nm.Teardown
				m.Network = func(ctx context.Context, ns string) error { return nm.Setup(ctx, "bench", ns, benchCfg) }
			}
			req := runner.RunRequest{
				Options: runner.Options{Name: "bench", Image: v1.ImageConfig{User: "app", Cmd: []string{"/bin/true"}}},
				Rootfs:  &unpack.Rootfs{Lowerdirs: []string{layer}, NoSuid: true},
				Image:   "test/busybox", ImageDigest: "sha256:" + strings.Repeat("0", 64),
			}
			for b.Loop() {
				if code, err := m.Run(context.Background(), req); err != nil || code != 0 {
					b.Fatal(code, err)
				}
			}
		})
	}
}
