package vulndb

import (
	"strings"

	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/version"
)

// query is what the matcher looks up for one SBOM package.
type query struct {
	// ecosystems are the OSV ecosystems whose advisories apply, most
	// specific first ("Debian:12", then release-less "Debian").
	ecosystems []string
	// name is the advisory's package name: the source package for
	// Debian and Alpine, the module path for Go, the PEP 503 name for
	// PyPI.
	name    string
	version string
	order   version.Order
}

func (q query) key() string {
	return strings.Join(q.ecosystems, ",") + "\x00" + q.name
}

// queryFor maps an SBOM package to its advisory lookup; ok is false (with
// a reason, or "" when there is nothing to say) for packages no advisory
// can match.
func queryFor(p *sbom.Package, d *sbom.Distro) (q query, ok bool, why string) {
	switch p.Type {
	case sbom.Deb:
		q.name, q.version = p.Name, p.Version
		if p.SourceName != "" {
			q.name = p.SourceName
		}
		if p.SourceVersion != "" {
			q.version = p.SourceVersion
		}
		q.ecosystems = debEcosystems(d)
	case sbom.Apk:
		q.name, q.version = p.Name, p.Version
		if p.SourceName != "" {
			q.name = p.SourceName
		}
		q.ecosystems = apkEcosystems(d)
	case sbom.Golang:
		if p.Version == "(devel)" || p.Version == "" {
			return q, false, "" // built outside version control: no version to compare
		}
		q.name, q.version, q.ecosystems = p.Name, p.Version, []string{"Go"}
	case sbom.Npm:
		q.name, q.version, q.ecosystems = p.Name, p.Version, []string{"npm"}
	case sbom.PyPI:
		q.name, q.version, q.ecosystems = lookupName("PyPI", p.Name), p.Version, []string{"PyPI"}
	default:
		return q, false, "no vulnerability data for package type " + string(p.Type)
	}
	if len(q.ecosystems) == 0 {
		return q, false, ""
	}
	q.order, _ = version.ForEcosystem(q.ecosystems[0])
	return q, true, ""
}

// debEcosystems: Debian's OSV records name the release ("Debian:12");
// Ubuntu's name it with an LTS suffix when there is one.
func debEcosystems(d *sbom.Distro) []string {
	if d == nil {
		return []string{"Debian"}
	}
	switch d.ID {
	case "ubuntu":
		if d.VersionID == "" {
			return []string{"Ubuntu"}
		}
		return []string{"Ubuntu:" + d.VersionID, "Ubuntu:" + d.VersionID + ":LTS"}
	default:
		// Debian and its derivatives that keep Debian's versions
		// (distroless images say "debian").
		major, _, _ := strings.Cut(d.VersionID, ".")
		if major == "" {
			return []string{"Debian"}
		}
		return []string{"Debian:" + major, "Debian"}
	}
}

// apkEcosystems: Alpine's records name the minor release ("Alpine:v3.19");
// Wolfi and Chainguard have one rolling ecosystem each.
func apkEcosystems(d *sbom.Distro) []string {
	if d == nil {
		return nil
	}
	switch d.ID {
	case "wolfi":
		return []string{"Wolfi"}
	case "chainguard":
		return []string{"Chainguard"}
	case "alpine":
		parts := strings.SplitN(d.VersionID, ".", 3)
		if len(parts) < 2 {
			return []string{"Alpine"}
		}
		return []string{"Alpine:v" + parts[0] + "." + parts[1], "Alpine"}
	}
	return nil
}
