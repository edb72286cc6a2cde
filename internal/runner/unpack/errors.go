package unpack

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is; the message of the
// wrapping error names the entry and the reason.
var (
	// ErrDigestMismatch: the layer's bytes do not hash to its descriptor's
	// digest. Nothing is cached.
	ErrDigestMismatch = errors.New("layer digest mismatch")
	// ErrSizeMismatch: the layer is longer or shorter than its descriptor says.
	ErrSizeMismatch = errors.New("layer size mismatch")
	// ErrMediaType: the layer's media type is not a tar, tar+gzip or tar+zstd
	// layer.
	ErrMediaType = errors.New("unsupported layer media type")
	// ErrInvalidLayer: the stream is not a well-formed compressed tar, or an
	// entry cannot be applied (hardlink to a missing file, a path whose parent
	// is a regular file, an entry type bulwark does not know).
	ErrInvalidLayer = errors.New("invalid layer")
	// ErrUnsafePath: an entry would be written outside the layer's root (a
	// ".." escape, a path or hardlink target through a symlink), or is a
	// whiteout of ".", ".." or "". The whole layer is refused.
	ErrUnsafePath = errors.New("unsafe path in layer")
	// ErrLimit: a decompression-bomb limit (Limits) was exceeded.
	ErrLimit = errors.New("layer exceeds a limit")
	// ErrIDOutOfRange: an entry's owner lies outside the user-namespace range
	// and Options.ClampIDs is off.
	ErrIDOutOfRange = errors.New("owner outside the user-namespace range")
	// ErrNotCached: Lookup found no extracted layer for the digest.
	ErrNotCached = errors.New("layer not in cache")
	// ErrUnsupported: the kernel or the cache's filesystem lacks something the
	// cache needs (overlayfs, openat2, whiteout device nodes, trusted xattrs).
	ErrUnsupported = errors.New("unsupported by this system")
)

// EntryError locates a failure at one tar entry.
type EntryError struct {
	Name string // the entry's name as it appears in the tar (truncated)
	Err  error
}

func (e *EntryError) Error() string { return fmt.Sprintf("tar entry %q: %v", e.Name, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

func entryErr(name string, err error) error {
	return &EntryError{Name: truncate(name), Err: err}
}

// truncate keeps hostile names out of logs and messages at full length.
func truncate(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
