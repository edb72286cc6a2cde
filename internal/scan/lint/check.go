package lint

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

// Input is what Check looks at. Every field may be missing: a directory
// has no Config, a config alone no Tree.
type Input struct {
	// Config is the image config; nil for a directory.
	Config *v1.Image
	// RawConfig is the config blob: Docker's HEALTHCHECK, which the OCI
	// config has no field for, is read from it.
	RawConfig []byte
	// Tag is the tag the image was named by ("" for a digest or a
	// directory), for the "latest" check.
	Tag string
	// SBOM is the catalog's result, for installed packages (sudo).
	SBOM *sbom.SBOM
	// Tree is the walk that Analyzer took part in.
	Tree     *rootfs.Tree
	Analyzer *Analyzer
}

// Check runs every check and returns the findings, sorted.
func Check(in Input) []Finding {
	var fs []Finding
	if c := in.Config; c != nil {
		fs = append(fs, checkUser(c)...)
		fs = append(fs, checkHealthcheck(in.RawConfig)...)
		fs = append(fs, checkConfigSecrets(c)...)
		fs = append(fs, checkHistory(c)...)
	}
	fs = append(fs, checkLatest(in)...)
	fs = append(fs, checkFiles(in)...)
	Sort(fs)
	return fs
}

// userIsRoot: an empty USER runs as root, and so do "root" and uid 0 with
// any group.
func userIsRoot(u string) bool {
	name, _, _ := strings.Cut(strings.TrimSpace(u), ":")
	return name == "" || name == "root" || strings.TrimLeft(name, "0") == "" && name != ""
}

func checkUser(c *v1.Image) []Finding {
	if !userIsRoot(c.Config.User) {
		return nil
	}
	u := c.Config.User
	if u == "" {
		u = "(unset)"
	}
	return []Finding{{ID: IDRootUser, Severity: Medium, Benchmark: benchUser,
		Message:     fmt.Sprintf("the image runs as root (USER %s)", u),
		Remediation: "Create an unprivileged user in the image and switch to it: RUN useradd -r -u 10001 app, then USER 10001 (a numeric uid lets runtimes verify it is not root).",
		Evidence:    []string{"USER " + u}}}
}

// healthcheck is the part of Docker's config that the OCI image spec
// leaves out.
type healthcheck struct {
	Config struct {
		Healthcheck *struct {
			Test []string `json:"Test"`
		} `json:"Healthcheck"`
	} `json:"config"`
}

func checkHealthcheck(raw []byte) []Finding {
	var hc healthcheck
	json.Unmarshal(raw, &hc) // already parsed once as a v1.Image; a failure here means no health check
	h := hc.Config.Healthcheck
	if h != nil && len(h.Test) > 0 && h.Test[0] != "NONE" {
		return nil
	}
	msg := "the image has no HEALTHCHECK"
	if h != nil && len(h.Test) > 0 {
		msg = "the image disables its health check (HEALTHCHECK NONE)"
	}
	return []Finding{{ID: IDHealthcheck, Severity: Low, Benchmark: benchHealth, Message: msg,
		Remediation: "Add a HEALTHCHECK instruction that exercises the service (HEALTHCHECK CMD [\"/app\", \"-healthcheck\"]), so runtimes and orchestrators can restart a hung container."}}
}

// patterns are compiled on first use, not at package init: every bulwark
// command links this package, and only a scan needs them.
var patterns = sync.OnceValue(func() *lintPatterns {
	return &lintPatterns{
		secretName:    regexp.MustCompile(`(?i)(passw(or)?d|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth)`),
		notSecretName: regexp.MustCompile(`(?i)(_file|_path|_dir|_url_file|_location)$`),
		addRemote:     regexp.MustCompile(`(^|\s)ADD\s+(--[^\s]+\s+)*(https?|ftp)://`),
		latestTag:     regexp.MustCompile(`[A-Za-z0-9][A-Za-z0-9._/-]*:latest\b`),
		aptUpdate:     regexp.MustCompile(`\b(apt-get|apt|apk|yum|dnf)\s+(-[^\s]+\s+)*update\b`),
		install:       regexp.MustCompile(`\b(install|add|upgrade)\b`),
	}
})

type lintPatterns struct {
	// secretName matches environment variable and label names that hold
	// credentials; notSecretName, names that point at a secret instead of
	// holding it.
	secretName, notSecretName *regexp.Regexp
	// History: ADD of a remote URL, a :latest reference, a package index
	// update with no install in the same step.
	addRemote, latestTag, aptUpdate, install *regexp.Regexp
}

// secretKey reports whether an ENV or LABEL name looks like it holds a
// credential.
func secretKey(k string) bool {
	p := patterns()
	return p.secretName.MatchString(k) && !p.notSecretName.MatchString(k)
}

func secretValue(v string) string {
	b := []byte(v)
	switch {
	case hasPrivateKey(b):
		return "private key"
	case hasAWSAccessKeyID(b):
		return "AWS access key id"
	}
	return ""
}

func checkConfigSecrets(c *v1.Image) []Finding {
	var ev []string
	for _, kv := range c.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" {
			continue
		}
		switch {
		case secretValue(v) != "":
			ev = append(ev, fmt.Sprintf("ENV %s (%s)", k, secretValue(v)))
		case secretKey(k):
			ev = append(ev, "ENV "+k)
		}
	}
	keys := make([]string, 0, len(c.Config.Labels))
	for k := range c.Config.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := c.Config.Labels[k]
		switch {
		case v == "":
		case secretValue(v) != "":
			ev = append(ev, fmt.Sprintf("LABEL %s (%s)", k, secretValue(v)))
		case secretKey(k):
			ev = append(ev, "LABEL "+k)
		}
	}
	if len(ev) == 0 {
		return nil
	}
	return []Finding{{ID: IDSecrets, Severity: High, Benchmark: benchSecrets,
		Message:     fmt.Sprintf("%d environment variables or labels look like credentials (values are not shown)", len(ev)),
		Remediation: "Do not bake secrets into the image config, which every puller can read: pass them at run time (bulwark run --env, a mounted secret file), and rotate the exposed ones.",
		Evidence:    evidence(ev)}}
}

func checkHistory(c *v1.Image) []Finding {
	var remote, latest, alone []string
	p := patterns()
	addRemote, latestTag, aptUpdate, install := p.addRemote, p.latestTag, p.aptUpdate, p.install
	for _, h := range c.History {
		cmd := strings.TrimSpace(h.CreatedBy)
		short := cmd
		if len(short) > 160 {
			short = short[:160] + "…"
		}
		if addRemote.MatchString(cmd) {
			remote = append(remote, short)
		}
		if latestTag.MatchString(cmd) || latestTag.MatchString(h.Comment) {
			latest = append(latest, short)
		}
		if aptUpdate.MatchString(cmd) && !install.MatchString(cmd[aptUpdate.FindStringIndex(cmd)[1]:]) {
			alone = append(alone, short)
		}
	}
	var fs []Finding
	if len(remote) > 0 {
		fs = append(fs, Finding{ID: IDAddRemote, Severity: Medium, Benchmark: benchAdd,
			Message:     fmt.Sprintf("%d layers were built by ADD from a remote URL", len(remote)),
			Remediation: "Download with a verified checksum in a RUN step (curl -fsSLO URL && echo 'SHA256  file' | sha256sum -c), or COPY a vetted file; ADD fetches whatever the URL serves at build time.",
			Evidence:    evidence(remote)})
	}
	if len(latest) > 0 {
		fs = append(fs, Finding{ID: IDLatestTag, Severity: Low,
			Message:     fmt.Sprintf("%d build steps use a :latest tag", len(latest)),
			Remediation: "Pin images by digest (image@sha256:…) or at least a version tag, so rebuilds are reproducible and reviewed.",
			Evidence:    evidence(latest)})
	}
	if len(alone) > 0 {
		fs = append(fs, Finding{ID: IDUpdateAlone, Severity: Low, Benchmark: benchUpdate,
			Message:     fmt.Sprintf("%d build steps update package lists without installing in the same step", len(alone)),
			Remediation: "Update and install in one RUN (apt-get update && apt-get install -y --no-install-recommends PKG && rm -rf /var/lib/apt/lists/*), so a cached update layer cannot leave installs stale.",
			Evidence:    evidence(alone)})
	}
	return fs
}

// WithTag adds to findings that Check returned for an image with no tag
// (the registry's stored lint, a cached scan) what naming the image by
// tag adds: scanning it as :latest. The result equals Check with that Tag.
func WithTag(findings []Finding, tag string) []Finding {
	if tag != "latest" {
		return findings
	}
	const ev = "scanned as :latest"
	out := slices.Clone(findings)
	for i, f := range out {
		if f.ID == IDLatestTag && f.Message == latestMessage { // not the history's finding of the same id
			out[i].Evidence = append([]string{ev}, f.Evidence...)
			return out
		}
	}
	out = append(out, latestFinding([]string{ev}))
	Sort(out)
	return out
}

const latestMessage = "the image or its base is referenced by the mutable tag latest"

func latestFinding(ev []string) Finding {
	return Finding{ID: IDLatestTag, Severity: Low, Message: latestMessage,
		Remediation: "Reference images by digest or a version tag; latest moves, so what was scanned and what runs can differ.",
		Evidence:    ev}
}

// baseNameLabel is where buildkit and OCI tooling record the base image.
const baseNameLabel = "org.opencontainers.image.base.name"

func checkLatest(in Input) []Finding {
	var ev []string
	if in.Tag == "latest" {
		ev = append(ev, "scanned as :latest")
	}
	if c := in.Config; c != nil {
		if base := c.Config.Labels[baseNameLabel]; base != "" && !strings.Contains(base, "@") {
			last := base[strings.LastIndexByte(base, '/')+1:]
			if _, tag, ok := strings.Cut(last, ":"); !ok || tag == "latest" {
				ev = append(ev, "base image "+base)
			}
		}
	}
	if len(ev) == 0 {
		return nil
	}
	return []Finding{latestFinding(ev)}
}

func checkFiles(in Input) []Finding {
	if in.Tree == nil {
		return nil
	}
	var (
		setuid, secrets []string
		caches          = map[string][2]int64{} // kind -> files, bytes
		sudoFile        string
	)
	for _, e := range in.Tree.Entries {
		v, ok := e.Value.(fileFacts)
		if !ok {
			continue
		}
		switch {
		case v.setuid && v.setgid:
			setuid = append(setuid, e.File.Path+" (setuid, setgid)")
		case v.setuid:
			setuid = append(setuid, e.File.Path+" (setuid)")
		case v.setgid:
			setuid = append(setuid, e.File.Path+" (setgid)")
		}
		if len(v.secrets) > 0 {
			secrets = append(secrets, e.File.Path+" ("+strings.Join(v.secrets, ", ")+")")
		}
		if v.cache != "" {
			c := caches[v.cache]
			caches[v.cache] = [2]int64{c[0] + 1, c[1] + v.size}
		}
		if v.sudo {
			sudoFile = e.File.Path
		}
	}
	if in.Analyzer != nil {
		// Secrets a later layer deleted are still in the image.
		final := map[string]bool{}
		for _, e := range in.Tree.Entries {
			if v, ok := e.Value.(fileFacts); ok && len(v.secrets) > 0 {
				final[fmt.Sprint(e.File.Path, e.File.Layer)] = true
			}
		}
		for _, s := range in.Analyzer.secrets {
			if !final[fmt.Sprint(s.path, s.layer)] {
				secrets = append(secrets, fmt.Sprintf("%s (%s; in layer %d, removed or replaced by a later layer)", s.path, strings.Join(s.kinds, ", "), s.layer))
			}
		}
	}
	var fs []Finding
	if len(setuid) > 0 {
		fs = append(fs, Finding{ID: IDSetuid, Severity: Low, Benchmark: benchSetuid,
			Message:     fmt.Sprintf("%d files are setuid or setgid", len(setuid)),
			Remediation: "Remove the bits the application does not need (RUN find / -xdev -perm /6000 -type f -exec chmod a-s {} +); bulwark run also clears them and sets no-new-privileges.",
			Evidence:    evidence(setuid)})
	}
	if len(secrets) > 0 {
		fs = append(fs, Finding{ID: IDSecrets, Severity: High, Benchmark: benchSecrets,
			Message:     fmt.Sprintf("%d files contain credentials or private keys", len(secrets)),
			Remediation: "Remove the files from every layer (a later rm leaves them in the layer that added them: rebuild, or use build secrets: RUN --mount=type=secret), and rotate the exposed credentials.",
			Evidence:    evidence(secrets)})
	}
	if len(caches) > 0 {
		kinds := make([]string, 0, len(caches))
		for k := range caches {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		var ev []string
		var files, bytes int64
		for _, k := range kinds {
			c := caches[k]
			files, bytes = files+c[0], bytes+c[1]
			ev = append(ev, fmt.Sprintf("%s: %d files, %s", k, c[0], humanBytes(c[1])))
		}
		fs = append(fs, Finding{ID: IDPackageCache, Severity: Low,
			Message:     fmt.Sprintf("package manager caches left in the image: %d files, %s", files, humanBytes(bytes)),
			Remediation: "Clean up in the same RUN that installs: apt-get install … && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb; apk add --no-cache; pip install --no-cache-dir; npm ci && npm cache clean --force.",
			Evidence:    ev})
	}
	sudoPkg := ""
	if in.SBOM != nil {
		for _, p := range in.SBOM.Packages {
			if p.Name == "sudo" && (p.Type == sbom.Deb || p.Type == sbom.Apk) {
				sudoPkg = string(p.Type) + " package sudo " + p.Version
			}
		}
	}
	if sudoPkg != "" || sudoFile != "" {
		var ev []string
		for _, s := range []string{sudoPkg, sudoFile} {
			if s != "" {
				ev = append(ev, s)
			}
		}
		fs = append(fs, Finding{ID: IDSudo, Severity: Medium, Message: "sudo is installed",
			Remediation: "Remove sudo; a container needs no privilege escalation inside it. Run what needs root at build time, or grant capabilities to the one binary that needs them.",
			Evidence:    ev})
	}
	return fs
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
