// Package oci holds the pure, dependency-free parts of the OCI model that the
// rest of bulwark builds on: media types, digests, repository names and
// references, and validation of manifests and indexes received from clients.
//
// Everything here parses untrusted input, so every entry point returns a typed
// error instead of panicking and is covered by fuzz targets.
package oci
