package oci

import (
	_ "crypto/sha256" // registers sha256 with go-digest
	_ "crypto/sha512" // registers sha512 with go-digest
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// ErrDigestInvalid reports a digest string that is malformed or uses an
// algorithm bulwark does not accept.
var ErrDigestInvalid = errors.New("invalid digest")

// ErrDigestUnsupported reports a well-formed digest whose algorithm bulwark
// does not implement (anything but sha256 and sha512).
var ErrDigestUnsupported = errors.New("unsupported digest algorithm")

// ParseDigest validates s as a sha256 or sha512 digest. Unlike
// digest.Parse it refuses algorithms that the registry cannot verify, so a
// caller never stores content under a digest nobody can check.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return "", fmt.Errorf("%w: %q", ErrDigestUnsupported, truncate(s))
		}
		return "", fmt.Errorf("%w: %q: %v", ErrDigestInvalid, truncate(s), err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return d, nil
	default:
		return "", fmt.Errorf("%w: %q", ErrDigestUnsupported, d.Algorithm())
	}
}

// truncate keeps hostile input out of log lines and error bodies at full length.
func truncate(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
