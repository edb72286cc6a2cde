package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxConfigSize bounds the image configuration blob ConfigFacts reads.
// Real configs are a few KiB; long histories stay far below this.
const MaxConfigSize = 4 << 20

// ConfigFacts extracts the facts rules can see from an image configuration
// blob (OCI application/vnd.oci.image.config.v1+json, or Docker's
// identical container config). Unknown fields are ignored: configs carry
// builder-specific extras.
func ConfigFacts(blob []byte) (ImageConfig, error) {
	if len(blob) > MaxConfigSize {
		return ImageConfig{}, fmt.Errorf("image config of %d bytes exceeds %d", len(blob), MaxConfigSize)
	}
	var img v1.Image
	dec := json.NewDecoder(bytes.NewReader(blob))
	if err := dec.Decode(&img); err != nil {
		return ImageConfig{}, fmt.Errorf("image config: %w", err)
	}
	c := ImageConfig{
		User:         img.Config.User,
		Env:          img.Config.Env,
		Entrypoint:   img.Config.Entrypoint,
		Cmd:          img.Config.Cmd,
		WorkingDir:   img.Config.WorkingDir,
		Labels:       img.Config.Labels,
		StopSignal:   img.Config.StopSignal,
		OS:           img.OS,
		Architecture: img.Architecture,
	}
	if img.Created != nil {
		c.Created = img.Created.UTC()
	}
	for p := range img.Config.ExposedPorts {
		c.ExposedPorts = append(c.ExposedPorts, NormalizePort(p))
	}
	slices.Sort(c.ExposedPorts)
	c.ExposedPorts = slices.Compact(c.ExposedPorts)
	for _, h := range img.History {
		e := History{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if h.Created != nil {
			e.Created = h.Created.UTC()
		}
		c.History = append(c.History, e)
	}
	return c, nil
}

// NormalizePort writes an exposed port as "PORT/PROTO" in lower case,
// tcp when the protocol is missing, the form rules compare against.
func NormalizePort(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if !strings.Contains(p, "/") {
		p += "/tcp"
	}
	return p
}
