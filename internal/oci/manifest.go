package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types bulwark stores as manifests. Docker schema1 is deliberately
// absent: it is unsigned-by-digest legacy that no current client pushes.
const (
	MediaTypeOCIManifest        = v1.MediaTypeImageManifest
	MediaTypeOCIIndex           = v1.MediaTypeImageIndex
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeEmptyJSON          = v1.MediaTypeEmptyJSON
)

// MaxManifestSize bounds manifest bodies. The distribution spec suggests
// registries accept at least 4 MiB; bulwark accepts exactly that, so that a
// hostile client cannot make the server buffer more.
const MaxManifestSize = 4 << 20

// ErrManifestInvalid reports a manifest body that cannot be accepted. The
// wrapped message says why; callers map it to MANIFEST_INVALID.
var ErrManifestInvalid = errors.New("invalid manifest")

// ErrMediaTypeUnsupported reports a manifest media type bulwark does not store.
var ErrMediaTypeUnsupported = errors.New("unsupported manifest media type")

// IsManifestMediaType reports whether mt is one of the media types that
// bulwark stores as a manifest.
func IsManifestMediaType(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList:
		return true
	}
	return false
}

// IsIndexMediaType reports whether mt lists other manifests.
func IsIndexMediaType(mt string) bool {
	return mt == MediaTypeOCIIndex || mt == MediaTypeDockerManifestList
}

// Manifest is the registry's view of an image manifest or index: only the
// fields that decide storage, references and referrers. The original bytes
// are what gets stored and served; this is never re-serialised.
type Manifest struct {
	MediaType    string
	ArtifactType string
	Config       *v1.Descriptor  // image manifests only
	Layers       []v1.Descriptor // image manifests only
	Manifests    []v1.Descriptor // indexes only
	Subject      *v1.Descriptor
	Annotations  map[string]string
}

// IsIndex reports whether the manifest lists other manifests.
func (m *Manifest) IsIndex() bool { return IsIndexMediaType(m.MediaType) }

// BlobReferences returns the blobs the manifest needs present in its
// repository: the config and every layer that is not a foreign (URL-hosted)
// layer, which by definition a registry does not hold.
func (m *Manifest) BlobReferences() []v1.Descriptor {
	if m.IsIndex() {
		return nil
	}
	refs := make([]v1.Descriptor, 0, 1+len(m.Layers))
	if m.Config != nil {
		refs = append(refs, *m.Config)
	}
	for _, l := range m.Layers {
		if len(l.URLs) > 0 {
			continue
		}
		refs = append(refs, l)
	}
	return refs
}

// EffectiveArtifactType is the artifact type the referrers API reports: the
// manifest's artifactType, else for an image manifest its config media type.
func (m *Manifest) EffectiveArtifactType() string {
	if m.ArtifactType != "" || m.IsIndex() || m.Config == nil {
		return m.ArtifactType
	}
	return m.Config.MediaType
}

// rawManifest is the union of manifest and index fields. Using one struct lets
// a single decode pass detect bodies that claim one kind but carry the other.
type rawManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
	FSLayers      json.RawMessage   `json:"fsLayers"` // schema1 marker
}

// ParseManifest validates body as a manifest of the given Content-Type.
// contentType may be empty or generic when the body names its own media type;
// when both are present and are manifest types they must agree, since a
// disagreement means one party will interpret the content differently.
func ParseManifest(contentType string, body []byte) (*Manifest, error) {
	if len(body) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", ErrManifestInvalid, len(body), MaxManifestSize)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrManifestInvalid)
	}
	if err := checkStrictJSON(body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifestInvalid, err)
	}
	var raw rawManifest
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %v", ErrManifestInvalid, err)
	}
	if raw.FSLayers != nil {
		return nil, fmt.Errorf("%w: Docker schema1 manifests are not accepted", ErrMediaTypeUnsupported)
	}
	if raw.SchemaVersion == nil || *raw.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: schemaVersion must be 2", ErrManifestInvalid)
	}

	mt, err := effectiveMediaType(contentType, raw.MediaType)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		MediaType:    mt,
		ArtifactType: raw.ArtifactType,
		Subject:      raw.Subject,
		Annotations:  raw.Annotations,
	}
	if raw.ArtifactType != "" {
		if err := ValidateMediaType(raw.ArtifactType); err != nil {
			return nil, fmt.Errorf("%w: artifactType: %v", ErrManifestInvalid, err)
		}
	}
	if raw.Subject != nil {
		if err := validateDescriptor(*raw.Subject); err != nil {
			return nil, fmt.Errorf("%w: subject: %v", ErrManifestInvalid, err)
		}
	}

	if IsIndexMediaType(mt) {
		if raw.Config != nil || raw.Layers != nil {
			return nil, fmt.Errorf("%w: an index must not have config or layers", ErrManifestInvalid)
		}
		for i, d := range raw.Manifests {
			if err := validateDescriptor(d); err != nil {
				return nil, fmt.Errorf("%w: manifests[%d]: %v", ErrManifestInvalid, i, err)
			}
		}
		m.Manifests = raw.Manifests
		return m, nil
	}

	if raw.Manifests != nil {
		return nil, fmt.Errorf("%w: an image manifest must not have manifests", ErrManifestInvalid)
	}
	if raw.Config == nil {
		return nil, fmt.Errorf("%w: config descriptor is required", ErrManifestInvalid)
	}
	if err := validateDescriptor(*raw.Config); err != nil {
		return nil, fmt.Errorf("%w: config: %v", ErrManifestInvalid, err)
	}
	for i, d := range raw.Layers {
		if err := validateDescriptor(d); err != nil {
			return nil, fmt.Errorf("%w: layers[%d]: %v", ErrManifestInvalid, i, err)
		}
	}
	m.Config = raw.Config
	m.Layers = raw.Layers
	return m, nil
}

// effectiveMediaType reconciles the Content-Type header with the body's
// mediaType field.
func effectiveMediaType(contentType, bodyType string) (string, error) {
	ct := contentType
	if ct != "" {
		if parsed, _, err := mime.ParseMediaType(ct); err == nil {
			ct = parsed
		}
	}
	headerIsManifest := IsManifestMediaType(ct)
	switch {
	case bodyType != "" && !IsManifestMediaType(bodyType):
		return "", fmt.Errorf("%w: %q", ErrMediaTypeUnsupported, truncate(bodyType))
	case bodyType != "" && headerIsManifest && bodyType != ct:
		return "", fmt.Errorf("%w: Content-Type %q does not match the body's mediaType %q", ErrManifestInvalid, ct, bodyType)
	case bodyType != "":
		return bodyType, nil
	case headerIsManifest:
		return ct, nil
	case ct == "":
		return "", fmt.Errorf("%w: no Content-Type and no mediaType in the body", ErrManifestInvalid)
	default:
		return "", fmt.Errorf("%w: %q", ErrMediaTypeUnsupported, truncate(ct))
	}
}

func validateDescriptor(d v1.Descriptor) error {
	if err := ValidateMediaType(d.MediaType); err != nil {
		return fmt.Errorf("mediaType: %w", err)
	}
	if _, err := ParseDigest(string(d.Digest)); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("negative size %d", d.Size)
	}
	if d.ArtifactType != "" {
		if err := ValidateMediaType(d.ArtifactType); err != nil {
			return fmt.Errorf("artifactType: %w", err)
		}
	}
	return nil
}

// ValidateMediaType checks the RFC 6838 shape type "/" subtype, with the
// restricted name characters, which is what the image spec requires of
// descriptor media types.
func ValidateMediaType(mt string) error {
	if mt == "" {
		return errors.New("empty media type")
	}
	slash := -1
	for i := 0; i < len(mt); i++ {
		if mt[i] == '/' {
			if slash >= 0 {
				return fmt.Errorf("%q has more than one '/'", truncate(mt))
			}
			slash = i
		}
	}
	if slash < 0 {
		return fmt.Errorf("%q is not of the form type/subtype", truncate(mt))
	}
	for _, part := range []string{mt[:slash], mt[slash+1:]} {
		if len(part) == 0 || len(part) > 127 || !isAlnumMixed(part[0]) {
			return fmt.Errorf("%q is not a valid media type", truncate(mt))
		}
		for i := 1; i < len(part); i++ {
			c := part[i]
			if !isAlnumMixed(c) && bytes.IndexByte([]byte("!#$&^_.+-"), c) < 0 {
				return fmt.Errorf("%q has invalid character %q", truncate(mt), c)
			}
		}
	}
	return nil
}

func isAlnumMixed(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Descriptor builds the descriptor of stored manifest content, as listed by
// the referrers API.
func (m *Manifest) Descriptor(d digest.Digest, size int64) v1.Descriptor {
	return v1.Descriptor{
		MediaType:    m.MediaType,
		ArtifactType: m.EffectiveArtifactType(),
		Digest:       d,
		Size:         size,
		Annotations:  m.Annotations,
	}
}
