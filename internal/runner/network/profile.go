package network

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrProfile is returned for a profile file that cannot be used; the
// message says why.
var ErrProfile = errors.New("invalid run profile")

// MaxProfileSize bounds a profile file.
const MaxProfileSize = 64 << 10

// Profile is what one container may do beyond bulwark run's defaults, in
// the spirit of an SELinux MCS label: which ports it serves, which
// connections it opens and which capabilities it keeps. The file is YAML:
//
//	publish:            # HOST_IP:HOST_PORT:PORT[/tcp|/udp]
//	  - 127.0.0.1:8080:8080
//	allow_egress:       # HOST:PORT[/tcp|/udp], names resolved at start
//	  - db.internal:5432
//	cap_add:            # capabilities added to the empty set
//	  - CAP_NET_BIND_SERVICE
//
// Every key is optional; unknown keys, repeated keys, more than one
// document and malformed entries are errors.
type Profile struct {
	Network Config
	CapAdd  []string
}

type profileFile struct {
	Publish     stringList `yaml:"publish"`
	AllowEgress stringList `yaml:"allow_egress"`
	CapAdd      stringList `yaml:"cap_add"`
}

// stringList is a YAML sequence of strings, strictly: no nulls, numbers
// or nested collections that the YAML library would otherwise turn into
// strings or skip.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: want a list of strings", n.Line)
	}
	for _, e := range n.Content {
		if e.Kind != yaml.ScalarNode || e.ShortTag() != "!!str" {
			return fmt.Errorf("line %d: want a string, got %s", e.Line, e.ShortTag())
		}
		*l = append(*l, e.Value)
	}
	return nil
}

// validCapName is ^CAP_[A-Z_]{1,32}$ without a regular expression compiled
// at start-up.
func validCapName(s string) bool {
	rest, ok := strings.CutPrefix(s, "CAP_")
	if !ok || len(rest) == 0 || len(rest) > 32 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; (c < 'A' || c > 'Z') && c != '_' {
			return false
		}
	}
	return true
}

// LoadProfile reads and parses a profile file.
func LoadProfile(path string) (Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return Profile{}, fmt.Errorf("%w: %w", ErrProfile, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxProfileSize+1))
	if err != nil {
		return Profile{}, fmt.Errorf("%w: %s: %w", ErrProfile, path, err)
	}
	p, err := ParseProfile(b)
	if err != nil {
		return Profile{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// ParseProfile parses a profile document (see Profile).
func ParseProfile(b []byte) (Profile, error) {
	if len(b) > MaxProfileSize {
		return Profile{}, fmt.Errorf("%w: larger than %d bytes", ErrProfile, MaxProfileSize)
	}
	var raw profileFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	switch err := dec.Decode(&raw); {
	case errors.Is(err, io.EOF):
		// An empty file: the defaults.
	case err != nil:
		return Profile{}, fmt.Errorf("%w: %w", ErrProfile, err)
	default:
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return Profile{}, fmt.Errorf("%w: more than one YAML document", ErrProfile)
		}
	}
	if len(raw.Publish) > MaxPublish || len(raw.AllowEgress) > MaxEgress || len(raw.CapAdd) > 64 {
		return Profile{}, fmt.Errorf("%w: too many entries", ErrProfile)
	}
	var p Profile
	for _, s := range raw.Publish {
		pub, err := ParsePublish(s)
		if err != nil {
			return Profile{}, fmt.Errorf("%w: %w", ErrProfile, err)
		}
		p.Network.Publish = append(p.Network.Publish, pub)
	}
	for _, s := range raw.AllowEgress {
		e, err := ParseEgress(s)
		if err != nil {
			return Profile{}, fmt.Errorf("%w: %w", ErrProfile, err)
		}
		p.Network.Egress = append(p.Network.Egress, e)
	}
	for _, c := range raw.CapAdd {
		// The runner checks the name against the capabilities it knows;
		// here only the shape, so the error points at the profile.
		if !validCapName(c) {
			return Profile{}, fmt.Errorf("%w: cap_add %q: use the CAP_ name, e.g. CAP_NET_BIND_SERVICE", ErrProfile, c)
		}
		p.CapAdd = append(p.CapAdd, c)
	}
	if err := p.Network.Validate(); err != nil {
		return Profile{}, fmt.Errorf("%w: %w", ErrProfile, err)
	}
	return p, nil
}
