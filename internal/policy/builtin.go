package policy

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The built-in rule library. Each built-in is CEL like any rule (so
// `bulwark policy check --explain` and docs/policy.md can show exactly what
// it tests), built from Go so that parameters are validated and turned
// into CEL literals, never pasted as text.
//
// Rules about the runtime request pass trivially for push and pull: there
// is no container yet. Rules about the image hold at every action.

// builtinDef defines one built-in rule.
type builtinDef struct {
	id          string
	severity    Severity
	description string
	message     string // fallback when the message expression fails
	remediation string
	params      []Param
	// build returns the expression and message expression for parameter
	// values (defaults applied, validated by kind).
	build func(p map[string]string) (expr, msg string)
	// fields are the input paths the default expressions read, deepest
	// only, sorted: what Explain lists before the rule's programs are
	// compiled (see compiler). TestBuiltinFields checks them against the
	// compiled expressions.
	fields []string
}

func (d *builtinDef) rule() *Rule {
	p := d.defaults()
	expr, msg := d.build(p)
	return &Rule{ID: d.id, Expression: expr, Message: d.message, MessageExpression: msg, Remediation: d.remediation,
		Severity: d.severity, Builtin: true, Description: d.description, Params: d.params}
}

func (d *builtinDef) defaults() map[string]string {
	p := map[string]string{}
	for _, pd := range d.params {
		p[pd.Name] = pd.Default
	}
	return p
}

// privilegedCapabilities are capabilities that amount to root on the host
// (mount, load modules, raw devices, trace other processes, BPF, bypass
// MAC): keeping one is refused like --privileged.
var privilegedCapabilities = []string{"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "SYS_BOOT",
	"BPF", "PERFMON", "MAC_ADMIN", "MAC_OVERRIDE", "DAC_READ_SEARCH"}

// severityRanks orders vulnerability severities.
var severityRanks = map[string]int{"critical": 5, "high": 4, "medium": 3, "low": 2, "negligible": 1}

var builtinDefs = []*builtinDef{
	{
		id:       "signed",
		severity: SeverityCritical,
		description: "The trust policy's signature requirement for the environment is satisfied (k of n authorities). " +
			"The caller evaluates the trust policy (internal/trust) and passes its decision as input.trust; " +
			"no trust decision, or one for another environment, is a violation.",
		message:     "signature requirement not satisfied",
		remediation: "sign the image's digest with the authorities the trust policy requires for this environment (bulwark sign REF --key … --cert …) and check with bulwark verify",
		build: func(map[string]string) (string, string) {
			return `trust.evaluated && trust.allowed && (environment == "" || trust.environment == environment)`,
				`!trust.evaluated ? "no trust decision: the image's signatures were not checked against a trust policy" : ` +
					`!trust.allowed ? "signature requirement for " + environment + ": " + trust.reason + ` +
					`(size(trust.signatures) == 0 ? "" : " [" + trust.signatures.map(s, (s.signer == "" ? s.ref : s.signer) + ": " + s.why).join("; ") + "]") : ` +
					`"the trust decision is for environment \"" + trust.environment + "\", not \"" + environment + "\""`
		},
		fields: []string{"environment", "trust.allowed", "trust.environment", "trust.evaluated", "trust.reason", "trust.signatures"},
	},
	{
		id:       "non-root",
		severity: SeverityHigh,
		description: "The container does not run as root: the run's user (or, when the run sets none, the image's USER) is set " +
			"and its user part is neither root nor 0. A user name is taken at its word (it is not resolved in /etc/passwd).",
		message:     "runs as root",
		remediation: "add USER 1000 (any non-zero uid) to the Dockerfile, or run with --user 1000",
		build: func(map[string]string) (string, string) {
			u := `cel.bind(u, action == "run" && runtime.user != "" ? runtime.user : image.config.user, `
			return u + `u != "" && !(u.split(":")[0].trim() in ["root", "0"]))`,
				u + `u == "" ? "the image sets no USER, so it runs as root" : "runs as root (user \"" + u + "\")")`
		},
		fields: []string{"action", "image.config.user", "runtime.user"},
	},
	{
		id:       "no-privileged",
		severity: SeverityCritical,
		description: "At run: the container is not privileged and keeps none of the capabilities that amount to root on the host (" +
			strings.Join(privilegedCapabilities, ", ") + "; with or without the CAP_ prefix). Passes at push and pull.",
		message:     "privileged container",
		remediation: "drop --privileged and the listed capabilities; grant only the narrow capabilities the program needs",
		build: func(map[string]string) (string, string) {
			set := make([]string, 0, 2*len(privilegedCapabilities))
			for _, c := range privilegedCapabilities {
				set = append(set, strconv.Quote(c)+": true", strconv.Quote("CAP_"+c)+": true")
			}
			// A map literal: membership costs one lookup, not a scan.
			bad := `runtime.capabilities.filter(c, c.upperAscii() in {` + strings.Join(set, ", ") + `})`
			return `action != "run" || (!runtime.privileged && size(` + bad + `) == 0)`,
				`runtime.privileged ? "the run asks for a privileged container" : "the run keeps capabilities that amount to root on the host: " + ` + bad + `.join(", ")`
		},
		fields: []string{"action", "runtime.capabilities", "runtime.privileged"},
	},
	{
		id:          "no-host-namespaces",
		severity:    SeverityCritical,
		description: "At run: the container shares no namespace with the host (network, pid, ipc, uts, user, cgroup). Passes at push and pull.",
		message:     "shares host namespaces",
		remediation: "run in the container's own namespaces (no --network host, --pid host, --ipc host)",
		build: func(map[string]string) (string, string) {
			return `action != "run" || size(runtime.hostNamespaces) == 0`,
				`"the container shares host namespaces: " + runtime.hostNamespaces.join(", ")`
		},
		fields: []string{"action", "runtime.hostNamespaces"},
	},
	{
		id:       "no-host-path-mounts",
		severity: SeverityCritical,
		description: "At run: no host path is mounted into the container (a bind mount, or any mount whose source is an absolute path), " +
			"in particular not the container runtime's socket (docker.sock, containerd.sock), which gives full control of the host. Passes at push and pull.",
		message:     "mounts host paths",
		remediation: "use volumes or tmpfs instead of host paths; never mount the container runtime socket",
		build: func(map[string]string) (string, string) {
			host := `runtime.mounts.filter(m, m.type == "bind" || m.source.startsWith("/"))`
			return `action != "run" || size(` + host + `) == 0`,
				`cel.bind(h, ` + host + `, (h.exists(m, m.source.endsWith(".sock")) ? "the container mounts a host socket (" + ` +
					`h.filter(m, m.source.endsWith(".sock")).map(m, m.source).join(", ") + "), which gives control of the host; " : "") + ` +
					`"host paths mounted: " + h.map(m, m.source + " -> " + m.destination).join(", "))`
		},
		fields: []string{"action", "runtime.mounts"},
	},
	{
		id:          "read-only-rootfs",
		severity:    SeverityMedium,
		description: "At run: the container's root filesystem is mounted read-only. Passes at push and pull.",
		message:     "the container's root filesystem is writable",
		remediation: "run with a read-only root filesystem (--read-only) and tmpfs or volumes for the paths the program writes",
		build: func(map[string]string) (string, string) {
			return `action != "run" || runtime.readOnlyRootfs`, ""
		},
		fields: []string{"action", "runtime.readOnlyRootfs"},
	},
	{
		id:       "declared-ports-only",
		severity: SeverityMedium,
		description: "At run: every published container port is one the image declares (EXPOSE, image.config.exposedPorts; " +
			"a port without protocol is tcp). Passes at push and pull.",
		message:     "publishes ports the image does not declare",
		remediation: "publish only the ports the image EXPOSEs, or declare the port in the Dockerfile",
		build: func(map[string]string) (string, string) {
			port := `string(p.containerPort) + "/" + (p.protocol == "" ? "tcp" : p.protocol.lowerAscii())`
			undeclared := `runtime.publishedPorts.filter(p, !(` + port + ` in image.config.exposedPorts)).map(p, ` + port + `)`
			return `action != "run" || runtime.publishedPorts.all(p, ` + port + ` in image.config.exposedPorts)`,
				`"the run publishes ports the image does not declare: " + ` + undeclared + `.join(", ") + ` +
					`(size(image.config.exposedPorts) == 0 ? " (the image declares none)" : " (declared: " + image.config.exposedPorts.join(", ") + ")")`
		},
		fields: []string{"action", "image.config.exposedPorts", "runtime.publishedPorts"},
	},
	{
		id:       "pinned-tag",
		severity: SeverityMedium,
		description: "At run: the image is named by digest (repo@sha256:…), so what runs is what was checked. " +
			"Parameter tags admits tags matching an RE2 regular expression (e.g. release tags that the registry keeps immutable); " +
			"\"latest\" is never admitted. Passes at push and pull.",
		message:     "runs a mutable tag",
		remediation: "run by digest: REPO@sha256:… (bulwark verify and the registry print it)",
		params: []Param{{Name: "tags", Kind: "regex", Default: "",
			Description: "RE2 expression; tags matching it count as pinned (\"latest\" never does). Default: none, only digests"}},
		build: func(p map[string]string) (string, string) {
			expr := `action != "run" || image.byDigest`
			if re := p["tags"]; re != "" {
				expr += ` || (image.tag != "" && image.tag != "latest" && image.tag.matches(` + strconv.Quote(re) + `))`
			}
			return expr, `image.tag == "latest" ? "runs the floating tag \"latest\"" : image.tag == "" ? "the run names neither a tag nor a digest" : ` +
				`"runs by tag \"" + image.tag + "\", which can be moved to other content"`
		},
		fields: []string{"action", "image.byDigest", "image.tag"},
	},
	{
		id:       "max-age",
		severity: SeverityMedium,
		description: "The image was built at most max ago (image.config.created against the decision time). " +
			"An image without a creation time fails.",
		message:     "the image is too old",
		remediation: "rebuild the image from an up-to-date base and redeploy",
		params: []Param{{Name: "max", Kind: "duration", Default: "90d",
			Description: "the maximum age: a Go duration (720h) or a number of days (30d)"}},
		build: func(p map[string]string) (string, string) {
			d, _ := parseDuration(p["max"])
			max := `duration("` + strconv.FormatInt(int64(d/time.Second), 10) + `s")`
			return `has(image.config.created) && now - image.config.created <= ` + max,
				`!has(image.config.created) ? "the image config has no creation time, so its age is unknown" : ` +
					`"the image was built " + string((now - image.config.created).getHours() / 24) + " days ago (" + string(image.config.created) + "); the maximum is " + ` + strconv.Quote(p["max"])
		},
		fields: []string{"image.config.created", "now"},
	},
	{
		id:       "approved",
		severity: SeverityHigh,
		description: "A verified approval (promotion record) of this digest for the decision's environment exists. " +
			"Parameter authorities requires the approver to belong to one of the named trust authorities.",
		message:     "no approval for this environment",
		remediation: "have an approver promote the digest: bulwark promote REF --to ENV --key … --cert …",
		params: []Param{{Name: "authorities", Kind: "list", Default: "",
			Description: "trust authority names, at least one of which must have approved; default: any"}},
		build: func(p map[string]string) (string, string) {
			cond := `a.verified && a.environment == environment`
			by := ""
			if p["authorities"] != "" {
				auths := strings.Split(p["authorities"], "\n")
				cond += ` && a.authority in ` + celList(auths)
				by = " by " + strings.Join(auths, " or ")
			}
			by = strconv.Quote("no verified approval" + by + " for environment ")
			return `environment != "" && approvals.exists(a, ` + cond + `)`,
				by + ` + "\"" + environment + "\"" + ` +
					`(size(approvals) == 0 ? " (no approvals found)" : " (found: " + approvals.map(a, a.approver + " for " + a.environment + ` +
					`(a.authority == "" ? "" : " as " + a.authority) + (a.verified ? "" : ", not verified")).join("; ") + ")")`
		},
		fields: []string{"approvals", "environment"},
	},
	{
		id:       "max-severity",
		severity: SeverityHigh,
		description: "The scan found no vulnerability more severe than severity (critical > high > medium > low > negligible). " +
			"No scan result is a violation unless allow_unscanned is true.",
		message:     "vulnerabilities above the allowed severity",
		remediation: "update the affected packages (rebuild on a patched base image) or request an exception",
		params: []Param{
			{Name: "severity", Kind: "severity", Default: "medium", Description: "the highest severity allowed"},
			{Name: "ignore_unfixed", Kind: "bool", Default: "false", Description: "do not count vulnerabilities without a fixed version"},
			{Name: "unknown", Kind: "severity", Default: "critical", Description: "the severity counted for findings whose severity is unknown or unrecognised"},
			{Name: "allow_unscanned", Kind: "bool", Default: "false", Description: "pass when there is no scan result"},
		},
		build: func(p map[string]string) (string, string) {
			ranks := `{"critical": 5, "high": 4, "medium": 3, "low": 2, "negligible": 1}`
			rank := `(v.severity.lowerAscii() in r ? r[v.severity.lowerAscii()] : ` + strconv.Itoa(severityRanks[p["unknown"]]) + `)`
			over := rank + ` > ` + strconv.Itoa(severityRanks[p["severity"]])
			if p["ignore_unfixed"] == "true" {
				over = `v.fixedVersion != "" && ` + over
			}
			bad := `scan.vulnerabilities.filter(v, ` + over + `)`
			return `(scan.available || ` + p["allow_unscanned"] + `) && cel.bind(r, ` + ranks + `, !scan.vulnerabilities.exists(v, ` + over + `))`,
				`!scan.available ? "no scan result for this image" : cel.bind(r, ` + ranks + `, cel.bind(bad, ` + bad + `, ` +
					`string(size(bad)) + ` + strconv.Quote(" vulnerabilities above "+p["severity"]+": ") + ` + ` +
					`(size(bad) > 10 ? bad.slice(0, 10) : bad).map(v, v.id + " (" + v.severity + ", " + v.package + " " + v.version + ` +
					`(v.fixedVersion == "" ? ", no fix" : ", fixed in " + v.fixedVersion) + ")").join(", ") + (size(bad) > 10 ? ", …" : "")))`
		},
		fields: []string{"scan.available", "scan.vulnerabilities"},
	},
}

// Builtins returns the built-in rules, sorted by id, each compiled (it is
// for listing and checking the library, not for deciding).
func Builtins() ([]*Rule, error) {
	c, err := sharedCompiler()
	if err != nil {
		return nil, err
	}
	rs := slices.Collect(maps.Values(c.builtins))
	for _, r := range rs {
		err := r.check.prog.ready()
		if r.check.msg != nil {
			err = errors.Join(err, r.check.msg.ready())
		}
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	slices.SortFunc(rs, func(a, b *Rule) int { return strings.Compare(a.ID, b.ID) })
	return rs, nil
}

func builtinIDs() []string {
	ids := make([]string, len(builtinDefs))
	for i, d := range builtinDefs {
		ids[i] = d.id
	}
	return ids
}

func findBuiltin(id string) *builtinDef {
	for _, d := range builtinDefs {
		if d.id == id {
			return d
		}
	}
	return nil
}

// builtinCheck compiles built-in r with the parameters given (nil: the
// defaults), validating each against its kind.
func (c *compiler) builtinCheck(r *Rule, given map[string]string, n *yaml.Node) (*check, error) {
	def := findBuiltin(r.ID)
	values := def.defaults()
	for k, v := range given {
		i := slices.IndexFunc(def.params, func(p Param) bool { return p.Name == k })
		if i < 0 {
			names := make([]string, len(def.params))
			for j, p := range def.params {
				names[j] = p.Name
			}
			return nil, errAt(n, "rule %q has no parameter %q (parameters: %s)", r.ID, k, strings.Join(names, ", "))
		}
		if err := validParam(def.params[i], v); err != nil {
			return nil, errAt(n, "rule %q: parameter %s: %v", r.ID, k, err)
		}
		values[k] = v
	}
	expr, msg := def.build(values)
	ck, err := c.compileRule(r, expr, msg, given, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("built-in %s with parameters %v: %w", r.ID, given, err)
	}
	return ck, nil
}

var maxRegexLength = 1024

func validParam(p Param, v string) error {
	switch p.Kind {
	case "duration":
		_, err := parseDuration(v)
		return err
	case "severity":
		if _, ok := severityRanks[v]; !ok {
			return fmt.Errorf("%q is not one of critical, high, medium, low, negligible", v)
		}
	case "bool":
		if v != "true" && v != "false" {
			return fmt.Errorf("%q is not true or false", v)
		}
	case "regex":
		if len(v) > maxRegexLength {
			return fmt.Errorf("longer than %d bytes", maxRegexLength)
		}
		if _, err := regexp.Compile(v); err != nil {
			return err
		}
	case "list":
		for _, s := range strings.Split(v, "\n") {
			if s == "" {
				return fmt.Errorf("empty item")
			}
		}
	}
	return nil
}

// parseDuration reads a Go duration or a whole number of days ("30d"),
// positive and at most 100 years.
func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 36500 {
			return 0, fmt.Errorf("%q: want a number of days between 1 and 36500 (30d) or a Go duration (720h)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want a number of days (30d) or a Go duration (720h)", s)
		}
	}
	if d < time.Second || d > 36500*24*time.Hour {
		return 0, fmt.Errorf("%q: must be between 1s and 100 years", s)
	}
	return d, nil
}

// celList writes strings as a CEL list literal. strconv.Quote's escapes
// are all valid in CEL string literals.
func celList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
