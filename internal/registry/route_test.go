package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

func TestParseRoute(t *testing.T) {
	d := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		path    string
		want    route
		wantErr error // nil: must succeed
	}{
		// Fixed routes.
		{"/v2", route{Kind: RouteBase}, nil},
		{"/v2/", route{Kind: RouteBase}, nil},
		{"/v2/_catalog", route{Kind: RouteCatalog}, nil},

		// Repository routes.
		{"/v2/a/manifests/latest", route{Kind: RouteManifest, Repo: "a", Ref: "latest"}, nil},
		{"/v2/team/app/manifests/" + d, route{Kind: RouteManifest, Repo: "team/app", Ref: d}, nil},
		{"/v2/a/b/c/d/manifests/v1", route{Kind: RouteManifest, Repo: "a/b/c/d", Ref: "v1"}, nil},
		{"/v2/a/manifests/", route{Kind: RouteManifest, Repo: "a", Ref: ""}, nil},
		{"/v2/a/blobs/" + d, route{Kind: RouteBlob, Repo: "a", Ref: d}, nil},
		{"/v2/a/tags/list", route{Kind: RouteTags, Repo: "a"}, nil},
		{"/v2/a.b_c__d---e/f/tags/list", route{Kind: RouteTags, Repo: "a.b_c__d---e/f"}, nil},
		{"/v2/a/referrers/" + d, route{Kind: RouteReferrers, Repo: "a", Ref: d}, nil},
		{"/v2/a/blobs/uploads/", route{Kind: RouteUpload, Repo: "a", Ref: ""}, nil},
		{"/v2/a/blobs/uploads/abc-123", route{Kind: RouteUpload, Repo: "a", Ref: "abc-123"}, nil},
		// Escaped segments are unescaped one at a time.
		{"/v2/%61/manifests/v%31", route{Kind: RouteManifest, Repo: "a", Ref: "v1"}, nil},
		{"/v2/a/manifests/sha256%3A" + d[7:], route{Kind: RouteManifest, Repo: "a", Ref: d}, nil},

		// Names whose components look like route keywords: the route is
		// recognised from the end, so the keywords are part of the name.
		{"/v2/a/blobs/blobs/" + d, route{Kind: RouteBlob, Repo: "a/blobs", Ref: d}, nil},
		{"/v2/blobs/blobs/" + d, route{Kind: RouteBlob, Repo: "blobs", Ref: d}, nil},
		{"/v2/manifests/manifests/x", route{Kind: RouteManifest, Repo: "manifests", Ref: "x"}, nil},
		{"/v2/a/manifests/manifests/x", route{Kind: RouteManifest, Repo: "a/manifests", Ref: "x"}, nil},
		{"/v2/a/manifests/tags/list", route{Kind: RouteTags, Repo: "a/manifests"}, nil},
		{"/v2/tags/tags/list", route{Kind: RouteTags, Repo: "tags"}, nil},
		{"/v2/tags/list/tags/list", route{Kind: RouteTags, Repo: "tags/list"}, nil},
		{"/v2/a/blobs/uploads/manifests/x", route{Kind: RouteManifest, Repo: "a/blobs/uploads", Ref: "x"}, nil},
		{"/v2/a/blobs/blobs/uploads/id", route{Kind: RouteUpload, Repo: "a/blobs", Ref: "id"}, nil},
		{"/v2/blobs/uploads/blobs/uploads/id", route{Kind: RouteUpload, Repo: "blobs/uploads", Ref: "id"}, nil},
		{"/v2/blobs/uploads/blobs/uploads/", route{Kind: RouteUpload, Repo: "blobs/uploads", Ref: ""}, nil},
		{"/v2/a/referrers/referrers/" + d, route{Kind: RouteReferrers, Repo: "a/referrers", Ref: d}, nil},
		{"/v2/_catalog/manifests/x", route{Kind: RouteManifest, Repo: "_catalog", Ref: "x"}, oci.ErrNameInvalid},
		// Without the trailing slash this is a blob route whose digest is
		// "uploads"; the blob handler rejects it as a digest.
		{"/v2/a/blobs/uploads", route{Kind: RouteBlob, Repo: "a", Ref: "uploads"}, nil},

		// Unknown routes.
		{"", route{Kind: RouteUnknown}, nil},
		{"/", route{Kind: RouteUnknown}, nil},
		{"/v1/a/manifests/x", route{Kind: RouteUnknown}, nil},
		{"/v2x", route{Kind: RouteUnknown}, nil},
		{"/v2x/a/manifests/x", route{Kind: RouteUnknown}, nil},
		{"v2/a/manifests/x", route{Kind: RouteUnknown}, nil},
		{"/V2/a/manifests/x", route{Kind: RouteUnknown}, nil},
		{"/v2/_catalog/", route{Kind: RouteUnknown}, nil},
		{"/v2/a", route{Kind: RouteUnknown}, nil},
		{"/v2/a/b", route{Kind: RouteUnknown}, nil},
		{"/v2/a/tags", route{Kind: RouteUnknown}, nil},
		{"/v2/tags/list", route{Kind: RouteUnknown}, nil},
		{"/v2/a/tags/list/", route{Kind: RouteUnknown}, nil},
		{"/v2/a/tags/lists", route{Kind: RouteUnknown}, nil},
		{"/v2/manifests/x", route{Kind: RouteUnknown}, nil},
		{"/v2/a/manifests/x/", route{Kind: RouteUnknown}, nil},
		{"/v2/a/unknown/x", route{Kind: RouteUnknown}, nil},
		{"/v2/a/Manifests/x", route{Kind: RouteUnknown}, nil},
		{"/v2/../x", route{Kind: RouteUnknown}, nil},
		{"/v2/..", route{Kind: RouteUnknown}, nil},

		// Invalid names: the route is recognised but the name is refused.
		{"/v2/../manifests/x", route{Kind: RouteManifest, Repo: "..", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/a/../b/manifests/x", route{Kind: RouteManifest, Repo: "a/../b", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/a/./b/manifests/x", route{Kind: RouteManifest, Repo: "a/./b", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/%2e%2e/manifests/x", route{Kind: RouteManifest, Repo: "..", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/%2E%2E/blobs/" + d, route{Kind: RouteBlob, Repo: "..", Ref: d}, oci.ErrNameInvalid},
		{"/v2/a/%2e%2e/%2e%2e/etc/tags/list", route{Kind: RouteTags, Repo: "a/../../etc"}, oci.ErrNameInvalid},
		{"/v2/%252e%252e/manifests/x", route{Kind: RouteManifest, Repo: "%2e%2e", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2//manifests/x", route{Kind: RouteManifest, Repo: "", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2//a/manifests/x", route{Kind: RouteManifest, Repo: "/a", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/a//b/manifests/x", route{Kind: RouteManifest, Repo: "a//b", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/a//manifests/x", route{Kind: RouteManifest, Repo: "a/", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/A/manifests/x", route{Kind: RouteManifest, Repo: "A", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/%41/manifests/x", route{Kind: RouteManifest, Repo: "A", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/a_/tags/list", route{Kind: RouteTags, Repo: "a_"}, oci.ErrNameInvalid},
		{"/v2/a%00/manifests/x", route{Kind: RouteManifest, Repo: "a\x00", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/caf%C3%A9/manifests/x", route{Kind: RouteManifest, Repo: "café", Ref: "x"}, oci.ErrNameInvalid},
		{"/v2/" + strings.Repeat("a/", 127) + "a/manifests/x", route{Kind: RouteManifest, Repo: strings.Repeat("a/", 127) + "a", Ref: "x"}, nil}, // 255 characters
		{"/v2/" + strings.Repeat("a/", 128) + "a/manifests/x", route{Kind: RouteManifest, Repo: strings.Repeat("a/", 128) + "a", Ref: "x"}, oci.ErrNameInvalid},

		// An encoded slash must never become a segment boundary: the path
		// is refused before any route is chosen.
		{"/v2/a%2Fb/manifests/x", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		{"/v2/a%2fb/manifests/x", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		{"/v2/a/%2F/b/manifests/x", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		{"/v2/a%2Fmanifests%2Fx", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		{"/v2/a%2Ftags%2Flist/tags/list", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		{"/v2/%2e%2e%2F%2e%2e/manifests/x", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		{"/v2/a/manifests/x%2Fy", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		{"/v2/a%2Fblobs%2Fuploads%2F", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		// Malformed escapes.
		{"/v2/a%zz/manifests/x", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		{"/v2/a%/manifests/x", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
		{"/v2/a/manifests/x%2", route{Kind: RouteUnknown}, oci.ErrNameInvalid},
	}
	for _, tt := range tests {
		name := tt.path
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			got, err := parseRoute(tt.path)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("parseRoute(%q) = %+v, %v; want success", tt.path, got, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseRoute(%q) = %+v, %v; want errors.Is %v", tt.path, got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

// repoKinds are the route kinds that carry a repository name.
var repoKinds = map[string]bool{
	RouteTags: true, RouteManifest: true, RouteBlob: true, RouteUpload: true, RouteReferrers: true,
}

func FuzzParseRoute(f *testing.F) {
	d := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{
		"/v2", "/v2/", "/v2/_catalog", "/v2/a/manifests/latest", "/v2/team/app/blobs/" + d,
		"/v2/a/tags/list", "/v2/a/referrers/" + d, "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/id",
		"/v2/a/blobs/blobs/" + d, "/v2/a%2Fb/manifests/x", "/v2/%2e%2e/manifests/x", "/v2/../x",
		"/v2/a/../b/tags/list", "/v2//manifests/x", "/v2/a%zz/blobs/x", "/v2/%252e/manifests/x",
		"/v1/a", "", "/v2/blobs/uploads/blobs/uploads/", "/v2/%61/manifests/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		if err != nil {
			if !errors.Is(err, oci.ErrNameInvalid) {
				t.Fatalf("parseRoute(%q) error %v does not wrap ErrNameInvalid", path, err)
			}
			return
		}
		if !repoKinds[rt.Kind] {
			if rt.Repo != "" || rt.Ref != "" {
				t.Fatalf("parseRoute(%q) = %+v: kind %q has no repository or reference", path, rt, rt.Kind)
			}
			switch rt.Kind {
			case RouteBase, RouteCatalog, RouteUnknown:
			default:
				t.Fatalf("parseRoute(%q) returned unknown kind %q", path, rt.Kind)
			}
			return
		}
		if verr := oci.ValidateRepository(rt.Repo); verr != nil {
			t.Fatalf("parseRoute(%q) = %+v with invalid repository: %v", path, rt, verr)
		}
		if strings.Contains(rt.Repo, "..") {
			t.Fatalf("parseRoute(%q) = %+v: repository contains \"..\"", path, rt)
		}
		if strings.Contains(rt.Ref, "/") {
			t.Fatalf("parseRoute(%q) = %+v: reference contains '/'", path, rt)
		}
		if rt.Kind == RouteTags && rt.Ref != "" {
			t.Fatalf("parseRoute(%q) = %+v: tags route with a reference", path, rt)
		}
		// The route must be recognisable again from a canonical spelling.
		canon := "/v2/" + rt.Repo
		switch rt.Kind {
		case RouteTags:
			canon += "/tags/list"
		case RouteManifest:
			canon += "/manifests/" + rt.Ref
		case RouteBlob:
			canon += "/blobs/" + rt.Ref
		case RouteUpload:
			canon += "/blobs/uploads/" + rt.Ref
		case RouteReferrers:
			canon += "/referrers/" + rt.Ref
		}
		if strings.ContainsAny(rt.Ref, "%?#") {
			return // would need escaping to round-trip
		}
		again, err := parseRoute(canon)
		if err != nil || again != rt {
			t.Fatalf("parseRoute(%q) = %+v, but its canonical path %q parses to %+v, %v", path, rt, canon, again, err)
		}
	})
}

func TestContentRange(t *testing.T) {
	tests := []struct {
		in         string
		start, end int64
		ok         bool
	}{
		{"0-0", 0, 0, true},
		{"0-99", 0, 99, true},
		{"100-199", 100, 199, true},
		{"bytes 0-99", 0, 99, true},
		{"bytes 0-99/100", 0, 99, true},
		{"bytes 0-99/*", 0, 99, true},
		{"0-99/*", 0, 99, true},
		{"  5-9  ", 5, 9, true},
		{"0-9223372036854775806", 0, 9223372036854775806, true},

		{"", 0, 0, false},
		{"bytes ", 0, 0, false},
		{"0", 0, 0, false},
		{"-", 0, 0, false},
		{"-5", 0, 0, false},
		{"5-", 0, 0, false},
		{"a-b", 0, 0, false},
		{"1-0", 0, 0, false},
		{"10-9", 0, 0, false},
		{"-1-5", 0, 0, false},
		{"0-1-2", 0, 0, false},
		{"0 - 9", 0, 0, false},
		{"bytes=0-9", 0, 0, false},
		{"/0-9", 0, 0, false},
		{"0x10-0x20", 0, 0, false},
		{"0-99999999999999999999", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			start, end, err := contentRange(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("contentRange(%q) = %d, %d; want error", tt.in, start, end)
				}
				return
			}
			if err != nil {
				t.Fatalf("contentRange(%q) = %v", tt.in, err)
			}
			if start != tt.start || end != tt.end {
				t.Errorf("contentRange(%q) = %d-%d, want %d-%d", tt.in, start, end, tt.start, tt.end)
			}
		})
	}
}
