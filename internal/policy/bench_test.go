package policy

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. The benchmarks report it
// per operation next to ns/op: on a shared machine wall time includes
// waiting for a core, CPU time does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPolicy binds ten rules, built-in and defined, to run in prod.
const benchPolicy = `version: 1
rules:
  - id: has-version-label
    expression: '"org.opencontainers.image.version" in image.config.labels'
    message: the image has no version label
  - id: no-debug-env
    expression: '!image.config.env.exists(e, e.startsWith("DEBUG="))'
    message: the image sets DEBUG
bindings:
  - environments: [prod]
    repositories: ["prod/**"]
    actions: [run]
    rules: [signed, non-root, no-privileged, no-host-namespaces, no-host-path-mounts,
            declared-ports-only, pinned-tag, max-age, has-version-label, no-debug-env]
    mode: enforce
`

// benchInput passes every rule of benchPolicy.
func benchInput(now time.Time) Input {
	return Input{
		Action:      ActionRun,
		Environment: "prod",
		Principal:   Principal{Name: "deployer", Kind: "robot", Environment: "prod"},
		Now:         now,
		Image: Image{
			Repository: "prod/shop/api",
			Digest:     "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ByDigest:   true,
			Tags:       []string{"v1.4.2"},
			Config: ImageConfig{
				User:         "1000:1000",
				ExposedPorts: []string{"8080/tcp"},
				Env:          []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "APP_MODE=prod"},
				Labels:       map[string]string{"org.opencontainers.image.version": "1.4.2"},
				Created:      now.Add(-72 * time.Hour),
			},
		},
		Trust: Trust{Evaluated: true, Allowed: true, Environment: "prod", Requirement: "2 of [ci security]", Satisfied: []string{"ci", "security"}},
		Runtime: Runtime{
			User:           "1000",
			Capabilities:   []string{"NET_BIND_SERVICE"},
			Mounts:         []Mount{{Type: "volume", Source: "data", Destination: "/data"}, {Type: "tmpfs", Destination: "/tmp"}},
			PublishedPorts: []PortMapping{{HostPort: 8080, ContainerPort: 8080, Protocol: "tcp"}},
			ReadOnlyRootfs: true,
		},
	}
}

// BenchmarkDecide10Rules is one decision over ten rules that all pass,
// the steady state of a pull or run gate. Target: ≤ 20 µs p50. Besides
// ns/op (the mean) it reports the median and 99th percentile of the
// individual decisions, and CPU time per decision.
func BenchmarkDecide10Rules(b *testing.B) {
	p, err := Parse([]byte(benchPolicy), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	in := benchInput(time.Now())
	ctx := context.Background()
	d, err := p.Decide(ctx, in)
	if err != nil || !d.Allowed || len(d.Rules) != 10 {
		b.Fatalf("setup: %v %+v", err, d)
	}
	var lat []time.Duration
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		t0 := time.Now()
		if _, err := p.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
}

// BenchmarkDecide10RulesDenied is the same with every rule violated, so
// every message expression runs too.
func BenchmarkDecide10RulesDenied(b *testing.B) {
	p, err := Parse([]byte(benchPolicy), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Action: ActionRun, Environment: "prod", Now: time.Now(), Image: Image{Repository: "prod/shop/api", Tag: "latest",
		Config: ImageConfig{Env: []string{"DEBUG=1"}}},
		Runtime: Runtime{Privileged: true, HostNamespaces: []string{"network"}, Mounts: []Mount{{Type: "bind", Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"}},
			PublishedPorts: []PortMapping{{ContainerPort: 22}}}}
	ctx := context.Background()
	d, err := p.Decide(ctx, in)
	if err != nil || d.Allowed || len(d.Failed()) != 10 {
		b.Fatalf("setup: %v %+v", err, d.Failed())
	}
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		if _, err := p.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
