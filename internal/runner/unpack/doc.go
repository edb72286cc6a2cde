// Package unpack turns verified OCI image layers into a root filesystem
// without trusting their content: a content-addressed cache of extracted
// layers, stacked read-only with overlayfs.
//
// # Use
//
// The runner calls it after the image is verified and the policy said yes
// (nothing is written to the cache before that):
//
//	cache, err := unpack.Open(filepath.Join(dataDir, "layers"), unpack.Options{
//		IDs: unpack.IDMap{UIDBase: 100000, GIDBase: 100000, Size: 65536},
//	})
//	rootfs, err := cache.Rootfs(ctx, manifest.Layers, fetch) // fetch(ctx, desc) opens a blob
//	err = rootfs.CheckDiffIDs(config.RootFS.DiffIDs)
//	err = rootfs.Mount(bundle + "/rootfs")                    // read-only, nodev, nosuid
//	defer unpack.Unmount(bundle + "/rootfs")
//
// Rootfs.Lowerdirs holds the overlayfs lower directories (top first) for a
// caller that mounts itself. Cache.Layer extracts one layer, Cache.Lookup
// checks the cache without fetching, and ApplyLayer applies an
// uncompressed tar to a directory (the same code, no cache).
//
// # Guarantees
//
//   - A layer is extracted once per digest (and per Options variant) into a
//     private temporary directory and renamed into the cache only when it
//     is complete, its compressed bytes matched the descriptor's size and
//     digest, and it was synced to disk. A failed, refused or interrupted
//     extraction leaves nothing in the cache; what a crash leaves behind is
//     removed by the next Open.
//   - Nothing is written outside the layer's directory. Every path is
//     resolved by the kernel (openat2 with RESOLVE_BENEATH and
//     RESOLVE_NO_SYMLINKS) below the layer's root, and the last component
//     is created with *at calls that do not follow symlinks. Names that
//     climb out with ".." are refused; leading "/" is dropped (so absolute
//     names land inside, as with Docker and GNU tar); a path through a
//     symlink, even one pointing inside, is refused; hardlink targets obey
//     the same rules and a hardlink to a symlink links the symlink itself.
//     Symlinks are created with whatever target they carry and never
//     followed.
//   - Device nodes and fifos are dropped, setuid/setgid bits cleared, xattrs
//     other than user.* dropped, owners shifted into the user-namespace
//     range (refused, or clamped, beyond it), unless Options say otherwise.
//   - Limits bound the uncompressed bytes of a layer and of an image, the
//     entries of a layer, one file's size, path lengths and the layer count.
//   - Whiteouts become overlayfs whiteouts (character devices 0/0) and
//     opaque markers the trusted.overlay.opaque xattr, honouring the OCI
//     rule that a whiteout hides lower layers only. Duplicate entries: the
//     last one wins, as in Docker.
//
// Errors wrap the sentinel errors of this package (ErrUnsafePath, ErrLimit,
// ErrDigestMismatch, ...) so callers can tell a hostile image from a broken
// download. docs/runner.md explains the design and its trade-offs.
//
// Requirements: Linux 5.6 or later (openat2), overlayfs, root (chown,
// mknod, trusted xattrs, mount), and a cache directory on a filesystem with
// device nodes and trusted xattrs (ext4, xfs, btrfs, tmpfs; not overlayfs).
// Open checks the filesystem; CheckOverlay checks the kernel.
package unpack
