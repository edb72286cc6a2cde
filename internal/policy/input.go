package policy

import (
	"time"

	"github.com/bulwark-dev/bulwark/internal/trust"
)

// Action is what is being done with an image.
type Action string

// The actions a binding can name.
const (
	ActionPush Action = "push" // a manifest arrives in the registry
	ActionPull Action = "pull" // a manifest is fetched from the registry
	ActionRun  Action = "run"  // the runner is about to start a container
)

func (a Action) valid() bool { return a == ActionPush || a == ActionPull || a == ActionRun }

// Input is everything a decision may look at. Callers fill what they know;
// a zero field means "no such fact" (see docs/policy.md for what each
// built-in rule does with missing facts: rules fail closed).
//
// The JSON names are also the names rule expressions use: Input.Image is
// the CEL variable image, Image.Config.User is image.config.user. Each
// top-level field is one CEL variable (action, environment, principal,
// now, image, trust, approvals, scan, runtime); the schema is fixed at
// compile time, so a rule that names a field that does not exist is
// refused when the policy loads.
type Input struct {
	Action      Action     `json:"action" policy:"short"`
	Environment string     `json:"environment" policy:"short"`
	Principal   Principal  `json:"principal"`
	Now         time.Time  `json:"now"` // when the decision is made; required, exceptions expire against it
	Image       Image      `json:"image"`
	Trust       Trust      `json:"trust"`
	Approvals   []Approval `json:"approvals"`
	Scan        Scan       `json:"scan"`
	Runtime     Runtime    `json:"runtime"` // only for action run
}

// Principal is who asks.
type Principal struct {
	Name        string `json:"name"`
	Kind        string `json:"kind" policy:"short"`        // "user", "robot", "anonymous"; "" when unknown
	Environment string `json:"environment" policy:"short"` // the environment a robot is bound to; "" if none
}

// Image is what is known about the image the action is about.
type Image struct {
	Repository string `json:"repository"` // e.g. "prod/app", without the registry host
	Digest     string `json:"digest"`     // the manifest digest, "sha256:…"
	// Tag is the tag the action named ("" when it named only a digest).
	Tag string `json:"tag" policy:"short"`
	// ByDigest says the action named the digest (repo@sha256:… or
	// repo:tag@sha256:…), i.e. it is pinned.
	ByDigest     bool        `json:"byDigest"`
	Tags         []string    `json:"tags"` // tags pointing at the digest, when the caller knows them
	MediaType    string      `json:"mediaType"`
	ArtifactType string      `json:"artifactType"`
	Config       ImageConfig `json:"config"`
}

// ImageConfig is the image configuration blob's facts (OCI image spec
// "config" and top-level fields). [ConfigFacts] fills it from the blob.
type ImageConfig struct {
	User string `json:"user"`
	// ExposedPorts are "PORT/PROTO" in lower case, e.g. "8080/tcp"; a port
	// without protocol in the image is recorded as tcp.
	ExposedPorts []string          `json:"exposedPorts"`
	Env          []string          `json:"env"` // "KEY=VALUE"
	Entrypoint   []string          `json:"entrypoint"`
	Cmd          []string          `json:"cmd"`
	WorkingDir   string            `json:"workingDir"`
	Labels       map[string]string `json:"labels"`
	StopSignal   string            `json:"stopSignal" policy:"short"`
	Created      time.Time         `json:"created"` // zero when the image does not say
	OS           string            `json:"os" policy:"short"`
	Architecture string            `json:"architecture" policy:"short"`
	History      []History         `json:"history"`
}

// History is one entry of the image's build history.
type History struct {
	Created    time.Time `json:"created"`
	CreatedBy  string    `json:"createdBy"`
	Comment    string    `json:"comment"`
	EmptyLayer bool      `json:"emptyLayer"`
}

// Trust is the trust policy's decision for the image in the decision's
// environment, computed by the caller with internal/trust (Facts then
// Policy.Evaluate); [TrustFacts] converts it. Evaluated false means no
// trust policy was evaluated, which the built-in rule "signed" treats as
// not signed.
type Trust struct {
	Evaluated     bool                    `json:"evaluated"`
	PolicyVersion string                  `json:"policyVersion"`
	Allowed       bool                    `json:"allowed"`
	Environment   string                  `json:"environment" policy:"short"`
	Requirement   string                  `json:"requirement"`
	Satisfied     []string                `json:"satisfied" policy:"short"`
	Reason        string                  `json:"reason"`
	Signatures    []trust.SignatureResult `json:"signatures"`
}

// TrustFacts turns a trust decision into the policy input's trust facts.
func TrustFacts(d trust.Decision, policyVersion string) Trust {
	return Trust{
		Evaluated:     true,
		PolicyVersion: policyVersion,
		Allowed:       d.Allowed,
		Environment:   d.Environment,
		Requirement:   d.Requirement,
		Satisfied:     d.Satisfied,
		Reason:        d.Reason,
		Signatures:    d.Signatures,
	}
}

// Approval is a promotion record for the image's digest: a signed
// statement that someone approved it for an environment. Only approvals
// whose signature the caller verified should have Verified set; the
// built-in rule "approved" counts no other.
type Approval struct {
	Environment string    `json:"environment" policy:"short"`
	Approver    string    `json:"approver"`                 // the signer's identity
	Authority   string    `json:"authority" policy:"short"` // the trust authority the signer belongs to; "" if none
	Time        time.Time `json:"time"`
	Verified    bool      `json:"verified"`
	Ref         string    `json:"ref"` // where the record is: the referrer's digest
}

// Scan is the scanner's report for the digest. Available false means
// there is none (not scanned yet, or no scanner).
type Scan struct {
	Available       bool            `json:"available"`
	Scanner         string          `json:"scanner"`
	Time            time.Time       `json:"time"`
	Vulnerabilities []Vulnerability `json:"vulnerabilities"`
	// Lint are the image lint findings (CIS Docker Benchmark section 4,
	// Dockle ids): "runs as root", "secret in ENV", "setuid file", ….
	Lint []LintFinding `json:"lint"`
}

// LintFinding is one image lint finding. Severity is one of critical,
// high, medium, low, info (lower case).
type LintFinding struct {
	ID       string `json:"id" policy:"short"`
	Severity string `json:"severity" policy:"short"`
	Message  string `json:"message"`
}

// Vulnerability is one finding. Severity is one of critical, high,
// medium, low, negligible, unknown (lower case).
type Vulnerability struct {
	ID           string `json:"id"`
	Severity     string `json:"severity" policy:"short"`
	Package      string `json:"package"`
	Version      string `json:"version"`
	FixedVersion string `json:"fixedVersion"` // "" when no fix is known
}

// Runtime is what a run asks for; zero for push and pull.
type Runtime struct {
	// User overrides the image's user when not empty ("uid[:gid]" or a name).
	User string `json:"user"`
	// Capabilities are the capabilities the container keeps, "CAP_" prefix
	// optional, upper case; "ALL" means every capability.
	Capabilities []string `json:"capabilities" policy:"short"`
	Privileged   bool     `json:"privileged"`
	// HostNamespaces are namespaces shared with the host: any of
	// "network", "pid", "ipc", "uts", "user", "cgroup".
	HostNamespaces []string `json:"hostNamespaces" policy:"short"`
	Mounts         []Mount  `json:"mounts"`
	// PublishedPorts are container ports reachable from outside.
	PublishedPorts []PortMapping `json:"publishedPorts"`
	// Egress is where the container may connect: CIDRs or host names; "*"
	// means anywhere, empty means nowhere.
	Egress         []string `json:"egress"`
	ReadOnlyRootfs bool     `json:"readOnlyRootfs"`
}

// Mount is one mount the run asks for.
type Mount struct {
	Type        string `json:"type" policy:"short"` // "bind" (a host path), "volume", "tmpfs"
	Source      string `json:"source"`              // host path for bind mounts
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly"`
}

// PortMapping publishes a container port.
type PortMapping struct {
	HostIP        string `json:"hostIP" policy:"short"`
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol" policy:"short"` // "tcp" (also when empty) or "udp"
}
