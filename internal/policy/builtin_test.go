package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/trust"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// builtinPolicy binds one built-in rule in enforce mode for every action
// in environment prod, with params (a YAML flow mapping) if given.
func builtinPolicy(t testing.TB, id, params string) *Policy {
	t.Helper()
	src := "version: 1\nbindings:\n  - environments: [prod]\n    repositories: [\"**\"]\n    actions: [push, pull, run]\n    rules: [" + id + "]\n"
	if params != "" {
		src += "    params: {" + id + ": " + params + "}\n"
	}
	src += "    mode: enforce\n"
	p, err := Parse([]byte(src), "builtin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// goodInput passes every built-in at run in prod.
func goodInput() Input {
	return Input{
		Action:      ActionRun,
		Environment: "prod",
		Principal:   Principal{Name: "deploy", Kind: "robot", Environment: "prod"},
		Now:         testNow,
		Image: Image{
			Repository: "prod/app", Digest: testDigest, ByDigest: true, Tag: "v1.2.3",
			Config: ImageConfig{User: "1000", ExposedPorts: []string{"8080/tcp", "53/udp"}, Created: testNow.Add(-24 * time.Hour)},
		},
		Trust: TrustFacts(trust.Decision{Allowed: true, Environment: "prod", Requirement: "2 of [ci security]",
			Satisfied: []string{"ci", "security"}, Reason: "satisfied"}, "sha256:tp"),
		Approvals: []Approval{{Environment: "prod", Approver: "CN=sec", Authority: "security", Time: testNow.Add(-time.Hour), Verified: true}},
		Scan:      Scan{Available: true, Scanner: "bulwark", Vulnerabilities: []Vulnerability{{ID: "CVE-1", Severity: "low", Package: "zlib", Version: "1.2"}}},
		Runtime: Runtime{User: "1000", Capabilities: []string{"NET_BIND_SERVICE"}, ReadOnlyRootfs: true,
			Mounts:         []Mount{{Type: "volume", Source: "data", Destination: "/data"}, {Type: "tmpfs", Destination: "/tmp"}},
			PublishedPorts: []PortMapping{{HostPort: 80, ContainerPort: 8080}, {ContainerPort: 53, Protocol: "UDP"}}},
	}
}

func TestBuiltins(t *testing.T) {
	type tc struct {
		name   string
		id     string
		params string
		change func(*Input)
		want   Result
		msg    string // substring of the message when not pass
	}
	run := func(f func(*Input)) func(*Input) { return f }
	tests := []tc{
		{"signed ok", "signed", "", nil, ResultPass, ""},
		{"signed no trust decision", "signed", "", func(in *Input) { in.Trust = Trust{} }, ResultViolated, "no trust decision"},
		{"signed not satisfied", "signed", "", func(in *Input) {
			in.Trust = TrustFacts(trust.Decision{Environment: "prod", Requirement: "2 of [ci security]", Satisfied: []string{"ci"},
				Reason:     "not satisfied: 2 of [ci security]: 1 of 2 required authorities counted (ci); missing security",
				Signatures: []trust.SignatureResult{{Ref: "sha256:s1", Signer: "CN=ci", Authority: "ci", Counted: true, Why: "counted for authority ci"}}}, "v")
		}, ResultViolated, "missing security [CN=ci: counted for authority ci]"},
		{"signed other environment", "signed", "", func(in *Input) { in.Trust.Environment = "dev" }, ResultViolated, `for environment "dev", not "prod"`},
		{"signed at push too", "signed", "", func(in *Input) { in.Action = ActionPush; in.Trust = Trust{} }, ResultViolated, "no trust decision"},

		{"non-root ok", "non-root", "", nil, ResultPass, ""},
		{"non-root image user used when run sets none", "non-root", "", func(in *Input) { in.Runtime.User = "" }, ResultPass, ""},
		{"non-root no user", "non-root", "", func(in *Input) { in.Runtime.User = ""; in.Image.Config.User = "" }, ResultViolated, "sets no USER"},
		{"non-root root name", "non-root", "", func(in *Input) { in.Runtime.User = "root" }, ResultViolated, `user "root"`},
		{"non-root uid 0 with group", "non-root", "", func(in *Input) { in.Runtime.User = "0:1000" }, ResultViolated, "runs as root"},
		{"non-root run overrides image root", "non-root", "", func(in *Input) { in.Image.Config.User = "root" }, ResultPass, ""},
		{"non-root image root at push", "non-root", "", func(in *Input) { in.Action = ActionPush; in.Image.Config.User = "0" }, ResultViolated, `user "0"`},
		{"non-root run user ignored at pull", "non-root", "", func(in *Input) { in.Action = ActionPull; in.Image.Config.User = "" }, ResultViolated, "sets no USER"},

		{"no-privileged ok", "no-privileged", "", nil, ResultPass, ""},
		{"no-privileged privileged", "no-privileged", "", func(in *Input) { in.Runtime.Privileged = true }, ResultViolated, "privileged container"},
		{"no-privileged sys_admin", "no-privileged", "", func(in *Input) { in.Runtime.Capabilities = []string{"CHOWN", "cap_sys_admin"} }, ResultViolated, "cap_sys_admin"},
		{"no-privileged all", "no-privileged", "", func(in *Input) { in.Runtime.Capabilities = []string{"ALL"} }, ResultViolated, "ALL"},
		{"no-privileged passes at push", "no-privileged", "", func(in *Input) { in.Action = ActionPush; in.Runtime.Privileged = true }, ResultPass, ""},

		{"no-host-namespaces ok", "no-host-namespaces", "", nil, ResultPass, ""},
		{"no-host-namespaces network", "no-host-namespaces", "", func(in *Input) { in.Runtime.HostNamespaces = []string{"network", "pid"} }, ResultViolated, "network, pid"},
		{"no-host-namespaces passes at pull", "no-host-namespaces", "", func(in *Input) { in.Action = ActionPull; in.Runtime.HostNamespaces = []string{"pid"} }, ResultPass, ""},

		{"no-host-path-mounts ok", "no-host-path-mounts", "", nil, ResultPass, ""},
		{"no-host-path-mounts bind", "no-host-path-mounts", "", func(in *Input) {
			in.Runtime.Mounts = append(in.Runtime.Mounts, Mount{Type: "bind", Source: "/etc", Destination: "/host-etc"})
		}, ResultViolated, "/etc -> /host-etc"},
		{"no-host-path-mounts docker.sock", "no-host-path-mounts", "", func(in *Input) {
			in.Runtime.Mounts = []Mount{{Type: "bind", Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"}}
		}, ResultViolated, "host socket (/var/run/docker.sock)"},
		{"no-host-path-mounts untyped absolute source", "no-host-path-mounts", "", func(in *Input) {
			in.Runtime.Mounts = []Mount{{Source: "/", Destination: "/host"}}
		}, ResultViolated, "/ -> /host"},
		{"no-host-path-mounts passes at push", "no-host-path-mounts", "", func(in *Input) {
			in.Action = ActionPush
			in.Runtime.Mounts = []Mount{{Type: "bind", Source: "/", Destination: "/host"}}
		}, ResultPass, ""},

		{"read-only-rootfs ok", "read-only-rootfs", "", nil, ResultPass, ""},
		{"read-only-rootfs writable", "read-only-rootfs", "", func(in *Input) { in.Runtime.ReadOnlyRootfs = false }, ResultViolated, "writable"},
		{"read-only-rootfs passes at pull", "read-only-rootfs", "", func(in *Input) { in.Action = ActionPull; in.Runtime.ReadOnlyRootfs = false }, ResultPass, ""},

		{"declared-ports-only ok", "declared-ports-only", "", nil, ResultPass, ""},
		{"declared-ports-only undeclared", "declared-ports-only", "", func(in *Input) {
			in.Runtime.PublishedPorts = append(in.Runtime.PublishedPorts, PortMapping{HostPort: 2222, ContainerPort: 22})
		}, ResultViolated, "22/tcp (declared: 8080/tcp, 53/udp)"},
		{"declared-ports-only wrong protocol", "declared-ports-only", "", func(in *Input) {
			in.Runtime.PublishedPorts = []PortMapping{{ContainerPort: 8080, Protocol: "udp"}}
		}, ResultViolated, "8080/udp"},
		{"declared-ports-only image declares none", "declared-ports-only", "", func(in *Input) { in.Image.Config.ExposedPorts = nil }, ResultViolated, "declares none"},
		{"declared-ports-only nothing published", "declared-ports-only", "", func(in *Input) { in.Image.Config.ExposedPorts = nil; in.Runtime.PublishedPorts = nil }, ResultPass, ""},

		{"pinned-tag by digest", "pinned-tag", "", nil, ResultPass, ""},
		{"pinned-tag latest", "pinned-tag", "", func(in *Input) { in.Image.ByDigest = false; in.Image.Tag = "latest" }, ResultViolated, `floating tag "latest"`},
		{"pinned-tag other tag", "pinned-tag", "", func(in *Input) { in.Image.ByDigest = false }, ResultViolated, `by tag "v1.2.3"`},
		{"pinned-tag release tags admitted", "pinned-tag", `{tags: '^v[0-9]+\.[0-9]+\.[0-9]+$'}`, func(in *Input) { in.Image.ByDigest = false }, ResultPass, ""},
		{"pinned-tag regex never admits latest", "pinned-tag", `{tags: '.*'}`, func(in *Input) { in.Image.ByDigest = false; in.Image.Tag = "latest" }, ResultViolated, "latest"},
		{"pinned-tag regex not matching", "pinned-tag", `{tags: '^v[0-9]+$'}`, func(in *Input) { in.Image.ByDigest = false; in.Image.Tag = "main" }, ResultViolated, `"main"`},
		{"pinned-tag passes at pull", "pinned-tag", "", func(in *Input) { in.Action = ActionPull; in.Image.ByDigest = false; in.Image.Tag = "latest" }, ResultPass, ""},

		{"max-age ok", "max-age", "", nil, ResultPass, ""},
		{"max-age too old", "max-age", "{max: 30d}", func(in *Input) { in.Image.Config.Created = testNow.Add(-45 * 24 * time.Hour) }, ResultViolated, "built 45 days ago (2025-04-17T12:00:00Z); the maximum is 30d"},
		{"max-age go duration", "max-age", "{max: 12h}", func(in *Input) { in.Image.Config.Created = testNow.Add(-13 * time.Hour) }, ResultViolated, "maximum is 12h"},
		{"max-age exactly max", "max-age", "{max: 30d}", func(in *Input) { in.Image.Config.Created = testNow.Add(-30 * 24 * time.Hour) }, ResultPass, ""},
		{"max-age no created", "max-age", "", func(in *Input) { in.Image.Config.Created = time.Time{} }, ResultViolated, "no creation time"},
		{"max-age default 90d", "max-age", "", func(in *Input) { in.Image.Config.Created = testNow.Add(-91 * 24 * time.Hour) }, ResultViolated, "the maximum is 90d"},

		{"approved ok", "approved", "", nil, ResultPass, ""},
		{"approved none", "approved", "", func(in *Input) { in.Approvals = nil }, ResultViolated, `no verified approval for environment "prod" (no approvals found)`},
		{"approved other environment", "approved", "", func(in *Input) { in.Approvals[0].Environment = "staging" }, ResultViolated, "CN=sec for staging as security"},
		{"approved unverified", "approved", "", func(in *Input) { in.Approvals[0].Verified = false }, ResultViolated, "not verified"},
		{"approved by authority", "approved", "{authorities: [security, release]}", nil, ResultPass, ""},
		{"approved wrong authority", "approved", "{authorities: [release]}", nil, ResultViolated, "by release for environment"},

		{"max-severity ok", "max-severity", "", nil, ResultPass, ""},
		{"max-severity high", "max-severity", "", run(func(in *Input) {
			in.Scan.Vulnerabilities = append(in.Scan.Vulnerabilities, Vulnerability{ID: "CVE-2", Severity: "HIGH", Package: "openssl", Version: "3.0.1", FixedVersion: "3.0.2"})
		}), ResultViolated, "1 vulnerabilities above medium: CVE-2 (HIGH, openssl 3.0.1, fixed in 3.0.2)"},
		{"max-severity threshold", "max-severity", "{severity: high}", func(in *Input) {
			in.Scan.Vulnerabilities = append(in.Scan.Vulnerabilities, Vulnerability{ID: "CVE-2", Severity: "high", Package: "openssl"})
		}, ResultPass, ""},
		{"max-severity unknown counts as critical", "max-severity", "{severity: high}", func(in *Input) {
			in.Scan.Vulnerabilities = append(in.Scan.Vulnerabilities, Vulnerability{ID: "GHSA-x", Severity: "unknown", Package: "p"})
		}, ResultViolated, "GHSA-x (unknown, p , no fix)"},
		{"max-severity unknown as low", "max-severity", "{unknown: low}", func(in *Input) {
			in.Scan.Vulnerabilities = append(in.Scan.Vulnerabilities, Vulnerability{ID: "GHSA-x", Severity: "", Package: "p"})
		}, ResultPass, ""},
		{"max-severity ignore unfixed", "max-severity", "{ignore_unfixed: true}", func(in *Input) {
			in.Scan.Vulnerabilities = append(in.Scan.Vulnerabilities, Vulnerability{ID: "CVE-3", Severity: "critical", Package: "glibc"})
		}, ResultPass, ""},
		{"max-severity unscanned", "max-severity", "", func(in *Input) { in.Scan = Scan{} }, ResultViolated, "no scan result"},
		{"max-severity allow unscanned", "max-severity", "{allow_unscanned: true}", func(in *Input) { in.Scan = Scan{} }, ResultPass, ""},
		{"max-severity many", "max-severity", "", func(in *Input) {
			for i := range 12 {
				in.Scan.Vulnerabilities = append(in.Scan.Vulnerabilities, Vulnerability{ID: "CVE-" + strings.Repeat("9", i+1), Severity: "critical"})
			}
		}, ResultViolated, "12 vulnerabilities above medium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := builtinPolicy(t, tt.id, tt.params)
			in := goodInput()
			if tt.change != nil {
				tt.change(&in)
			}
			d, err := p.Decide(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Rules) != 1 {
				t.Fatalf("%d rules", len(d.Rules))
			}
			r := d.Rules[0]
			if r.Result != tt.want || !strings.Contains(r.Message, tt.msg) {
				t.Errorf("%s: %s %q, want %s %q", r.ID, r.Result, r.Message, tt.want, tt.msg)
			}
			if d.Allowed != (tt.want == ResultPass) {
				t.Errorf("allowed = %v with result %s", d.Allowed, r.Result)
			}
			if r.Result != ResultPass && r.Remediation == "" {
				t.Error("no remediation")
			}
		})
	}
}

// TestBuiltinsDocumented: every built-in has a description, message,
// remediation and severity, and its parameters have defaults that compile.
func TestBuiltinsDocumented(t *testing.T) {
	rs, err := Builtins()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(builtinDefs) {
		t.Fatalf("%d built-ins", len(rs))
	}
	for _, r := range rs {
		if r.Description == "" || r.Message == "" || r.Remediation == "" || r.Severity == "" || r.check == nil || r.check.prog.tracked == nil {
			t.Errorf("%s is incomplete: %+v", r.ID, r)
		}
		for _, p := range r.Params {
			if p.Description == "" {
				t.Errorf("%s: parameter %s undocumented", r.ID, p.Name)
			}
		}
	}
}
