// Package remote is a small OCI Distribution client: the part of bulwark
// that talks to registries, bulwark's own or anyone else's, for "bulwark
// sign", "bulwark verify" and "bulwark run".
//
// Everything it returns from a registry is checked against a digest before
// callers see it: manifests against the digest the caller asked for and the
// one the registry announced, blobs as they are read. A registry can refuse
// to answer, but it cannot substitute content.
//
// Credentials are looked up lazily, only when a registry answers 401, and
// are never sent in clear text to a host other than the registry itself
// (see auth.go).
package remote
