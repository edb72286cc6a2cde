// Package runner turns a verified, unpacked image into a hardened OCI
// runtime bundle and runs it with an OCI runtime (runc by default).
//
// The pieces, in the order bulwark run uses them:
//
//   - Spec builds the runtime-spec config: the image's process (USER
//     resolved through the rootfs's own /etc/passwd and /etc/group, uid 0
//     refused unless allowed), a user namespace onto an unprivileged host
//     range, no capabilities, noNewPrivileges, Docker's default seccomp
//     profile for the native architecture only, a read-only rootfs with a
//     noexec tmpfs at /tmp, Docker's masked and read-only paths, pids and
//     memory limits, and private namespaces (loopback-only network).
//   - Runtime drives the runtime binary: a version check against known
//     vulnerable runc releases, then run attached (stdio and signals
//     forwarded, exit code returned) or detached (output to a log file).
//   - Store keeps one directory per container name under the data
//     directory: the bundle, the log and a small state record that ps,
//     stop and logs read.
//
// Secure layer unpacking lives in the unpack subpackage; signature checks
// and policy decisions happen before anything here is called.
package runner
