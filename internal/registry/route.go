package registry

import (
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Route names, used as metric labels and in logs.
const (
	RouteBase      = "base"
	RouteCatalog   = "catalog"
	RouteTags      = "tags"
	RouteManifest  = "manifest"
	RouteBlob      = "blob"
	RouteUpload    = "upload"
	RouteReferrers = "referrers"
	RouteUnknown   = "unknown"
)

// route is a parsed /v2/ request path.
type route struct {
	Kind string
	Repo string
	Ref  string // manifest reference, blob digest, upload id (may be "")
}

// parseRoute splits a /v2/ path into its route. Repository names contain
// slashes, so the route is recognised from the end of the path. The path is
// taken still escaped and each segment unescaped separately, so an encoded
// "/" (%2F) can never create or hide a path segment; the grammar check that
// follows then rejects "..", "%2e%2e" and anything else outside
// [a-z0-9._-/].
func parseRoute(escapedPath string) (route, error) {
	p, ok := strings.CutPrefix(escapedPath, "/v2/")
	if !ok {
		if escapedPath == "/v2" {
			return route{Kind: RouteBase}, nil
		}
		return route{Kind: RouteUnknown}, nil
	}
	if p == "" {
		return route{Kind: RouteBase}, nil
	}
	if p == "_catalog" {
		return route{Kind: RouteCatalog}, nil
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil || strings.Contains(u, "/") {
			return route{Kind: RouteUnknown}, oci.ErrNameInvalid
		}
		segs[i] = u
	}
	n := len(segs)
	var rt route
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		rt = route{Kind: RouteTags, Repo: strings.Join(segs[:n-2], "/")}
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		rt = route{Kind: RouteUpload, Repo: strings.Join(segs[:n-3], "/"), Ref: segs[n-1]}
	case n >= 3 && segs[n-2] == "manifests":
		rt = route{Kind: RouteManifest, Repo: strings.Join(segs[:n-2], "/"), Ref: segs[n-1]}
	case n >= 3 && segs[n-2] == "blobs":
		rt = route{Kind: RouteBlob, Repo: strings.Join(segs[:n-2], "/"), Ref: segs[n-1]}
	case n >= 3 && segs[n-2] == "referrers":
		rt = route{Kind: RouteReferrers, Repo: strings.Join(segs[:n-2], "/"), Ref: segs[n-1]}
	default:
		return route{Kind: RouteUnknown}, nil
	}
	if err := oci.ValidateRepository(rt.Repo); err != nil {
		return rt, err
	}
	return rt, nil
}

// parseDigestParam validates a digest from a URL.
func parseDigestParam(s string) (digest.Digest, error) {
	return oci.ParseDigest(s)
}
