package unpack

import (
	"fmt"
	"log/slog"
)

// Options control how layers are extracted. Fields that change the bytes on
// disk (IDs, AllowSetuid, KeepDevices, KeepFifos, ClampIDs) are part of the
// cache key, so caches built with different options never mix. Limits only
// refuse layers and are not part of the key.
type Options struct {
	// IDs shifts every owner into the container's user-namespace range.
	// The zero value keeps owners as they are in the tar (no user namespace).
	IDs IDMap
	// ClampIDs maps owners beyond IDs.Size to the range's overflow id (the
	// container's 65534 "nobody", or the last id of a smaller range) instead
	// of refusing the layer with ErrIDOutOfRange.
	ClampIDs bool
	// AllowSetuid keeps setuid and setgid bits on files. Off: they are
	// cleared (setgid on directories, which only steers group inheritance of
	// new files, is kept).
	AllowSetuid bool
	// KeepDevices creates character and block device nodes. Off (the
	// default): they are dropped. A kept device node is usable by the
	// container unless the rootfs is mounted nodev, which Rootfs.Mount does.
	KeepDevices bool
	// KeepFifos creates named pipes. Off: they are dropped.
	KeepFifos bool
	// Limits against decompression bombs; zero fields take the defaults.
	Limits Limits
	// Parallel is how many layers Rootfs extracts at once (default: 2).
	Parallel int
	// Logger receives a debug event per extracted layer and per dropped
	// entry, and warnings about damaged or abandoned cache entries
	// (default: slog.Default()).
	Logger *slog.Logger
}

// IDMap is a user-namespace mapping: container ids [0, Size) are host ids
// [UIDBase, UIDBase+Size) and [GIDBase, GIDBase+Size).
type IDMap struct {
	UIDBase, GIDBase, Size uint32
}

// Limits bound what one layer or image may make the host do. A zero field
// takes the default shown; there is no "unlimited".
type Limits struct {
	// MaxLayerBytes bounds one layer's uncompressed tar stream, and the
	// bytes its files add up to (more than the stream only for sparse
	// files) (default 8 GiB).
	MaxLayerBytes int64
	// MaxImageBytes bounds the sum over an image's layers (default 16 GiB).
	MaxImageBytes int64
	// MaxEntries bounds the tar entries in one layer (default 1,000,000).
	MaxEntries int64
	// MaxEntryBytes bounds one file's size (default 4 GiB).
	MaxEntryBytes int64
	// MaxPathLen bounds an entry's or link target's length in bytes
	// (default 4096, Linux's PATH_MAX); each component is also held to 255.
	MaxPathLen int
	// MaxLayers bounds an image's layer count (default 128; overlayfs
	// stacks at most 500).
	MaxLayers int
}

// DefaultLimits are the limits used for zero fields.
var DefaultLimits = Limits{
	MaxLayerBytes: 8 << 30,
	MaxImageBytes: 16 << 30,
	MaxEntries:    1_000_000,
	MaxEntryBytes: 4 << 30,
	MaxPathLen:    4096,
	MaxLayers:     128,
}

const (
	maxNameLen   = 255 // NAME_MAX
	overflowID   = 65534
	maxHostID    = 1<<32 - 2 // (uid_t)-1 means "unchanged" to chown
	maxUserXattr = 64        // per entry
)

func (o Options) withDefaults() Options {
	l, d := &o.Limits, DefaultLimits
	if l.MaxLayerBytes <= 0 {
		l.MaxLayerBytes = d.MaxLayerBytes
	}
	if l.MaxImageBytes <= 0 {
		l.MaxImageBytes = d.MaxImageBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxEntryBytes <= 0 {
		l.MaxEntryBytes = d.MaxEntryBytes
	}
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = d.MaxPathLen
	}
	if l.MaxLayers <= 0 {
		l.MaxLayers = d.MaxLayers
	}
	if o.Parallel <= 0 {
		o.Parallel = 2
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o Options) validate() error {
	m := o.IDs
	if m.Size > 0 && (uint64(m.UIDBase)+uint64(m.Size)-1 > maxHostID || uint64(m.GIDBase)+uint64(m.Size)-1 > maxHostID) {
		return fmt.Errorf("unpack: id range %d/%d+%d overflows 32 bits", m.UIDBase, m.GIDBase, m.Size)
	}
	return nil
}

// variant names the on-disk flavour of an extraction: the cache directory
// for the options that change what is written.
func (o Options) variant() string {
	v := "ids-none"
	if o.IDs.Size > 0 {
		v = fmt.Sprintf("ids-%d-%d-%d", o.IDs.UIDBase, o.IDs.GIDBase, o.IDs.Size)
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{o.ClampIDs, "clamp"}, {o.AllowSetuid, "setuid"}, {o.KeepDevices, "dev"}, {o.KeepFifos, "fifo"}} {
		if f.on {
			v += "+" + f.name
		}
	}
	return v
}

// hostID maps a container id from a tar header to the host id to chown to.
func (o *Options) hostID(id int, base uint32, what string) (int, error) {
	m := o.IDs
	if m.Size == 0 {
		if id < 0 || id > maxHostID {
			return 0, fmt.Errorf("%w: %s %d", ErrIDOutOfRange, what, id)
		}
		return id, nil
	}
	if id < 0 || int64(id) >= int64(m.Size) {
		if !o.ClampIDs {
			return 0, fmt.Errorf("%w: %s %d not below %d", ErrIDOutOfRange, what, id, m.Size)
		}
		id = min(overflowID, int(m.Size)-1)
	}
	return int(base) + id, nil
}

func (o *Options) rootIDs() (uid, gid int) {
	if o.IDs.Size == 0 {
		return 0, 0
	}
	return int(o.IDs.UIDBase), int(o.IDs.GIDBase)
}
