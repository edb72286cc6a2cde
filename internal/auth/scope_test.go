package auth

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var all3 = []Action{ActionPull, ActionPush, ActionDelete}

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want Scope // zero: must be refused
	}{
		{"repository:team/app:pull", Scope{"repository", "team/app", []Action{ActionPull}}},
		{"repository:team/app:pull,push", Scope{"repository", "team/app", []Action{ActionPull, ActionPush}}},
		{"repository:team/app:push,pull", Scope{"repository", "team/app", []Action{ActionPull, ActionPush}}},
		{"repository:team/app:pull,pull", Scope{"repository", "team/app", []Action{ActionPull}}},
		{"repository:team/app:delete", Scope{"repository", "team/app", []Action{ActionDelete}}},
		{"repository:team/app:*", Scope{"repository", "team/app", all3}},
		{"repository:team/app:pull,*", Scope{"repository", "team/app", all3}},
		{"repository:a:pull", Scope{"repository", "a", []Action{ActionPull}}},
		{"repository:a.b_c__d--e/f:pull", Scope{"repository", "a.b_c__d--e/f", []Action{ActionPull}}},
		{"registry:catalog:*", Scope{"registry", "catalog", []Action{ActionAll}}},

		// Hostile or malformed: each must be refused.
		{"repository:team/*:pull", Scope{}},           // wildcard in the name
		{"repository:*:pull", Scope{}},                // wildcard name
		{"repository:team/**:push", Scope{}},          // glob in the name
		{"repository:team/../prod:push", Scope{}},     // traversal
		{"repository:../prod:push", Scope{}},          // traversal at the start
		{"repository:team/%2e%2e/prod:push", Scope{}}, // escaped traversal
		{"repository:%2e%2e:push", Scope{}},
		{"repository:team/%2fprod:push", Scope{}}, // escaped slash
		{"repository:team//app:pull", Scope{}},    // double slash
		{"repository:/team:pull", Scope{}},        // leading slash
		{"repository:team/:pull", Scope{}},        // trailing slash
		{"repository:Team/App:pull", Scope{}},     // upper case
		{"repository::pull", Scope{}},             // empty name
		{"repository:team/app:", Scope{}},         // empty actions
		{"repository:team/app:pull,", Scope{}},    // empty action
		{"repository:team/app:,pull", Scope{}},
		{"repository:team/app:pull,,push", Scope{}},
		{"repository:team/app:pull, push", Scope{}},                      // space inside
		{"repository:team/app:PULL", Scope{}},                            // actions are lower case
		{"repository:team/app:admin", Scope{}},                           // unknown action
		{"repository:team/app:pull,metadata_read", Scope{}},              // unknown action next to a known one
		{"repository:team/app", Scope{}},                                 // no actions part
		{"repository", Scope{}},                                          // no name
		{"", Scope{}},                                                    // empty
		{"::", Scope{}},                                                  // empty parts
		{":team/app:pull", Scope{}},                                      // empty type
		{"repo:team/app:pull", Scope{}},                                  // unknown type
		{"Repository:team/app:pull", Scope{}},                            // type is case sensitive
		{"repository(plugin):team/app:pull", Scope{}},                    // resource class
		{"registry:catalog:pull", Scope{}},                               // catalog has one action
		{"registry:catalog:", Scope{}},                                   // likewise
		{"registry:other:*", Scope{}},                                    // only the catalog
		{"repository:localhost:5000/team/app:pull", Scope{}},             // extra colon (host:port)
		{"repository:team/app:pull:push", Scope{}},                       // extra colon
		{"repository:team/app@sha256:abc:pull", Scope{}},                 // digest in name
		{"repository:team/app:latest:pull", Scope{}},                     // tag in name
		{"repository:team/app\x00:pull", Scope{}},                        // NUL
		{"repository:team/app\n:pull", Scope{}},                          // newline
		{"repository:" + strings.Repeat("a", 256) + ":pull", Scope{}},    // name too long
		{"repository:" + strings.Repeat("a/", 5000) + "a:pull", Scope{}}, // 10 KB scope
		{"repository:a:" + strings.Repeat("pull,", 2000) + "pull", Scope{}},
	}
	for _, tc := range tests {
		got, err := ParseScope(tc.in)
		name := tc.in
		if len(name) > 80 {
			name = name[:80] + "…"
		}
		if tc.want.Type == "" {
			if err == nil {
				t.Errorf("ParseScope(%q) = %+v, want an error", name, got)
			} else if !errors.Is(err, ErrInvalidScope) {
				t.Errorf("ParseScope(%q) error %v does not wrap ErrInvalidScope", name, err)
			} else if len(err.Error()) > 400 {
				t.Errorf("ParseScope(%q) error echoes too much input: %d bytes", name, len(err.Error()))
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseScope(%q): %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseScope(%q) = %+v, want %+v", name, got, tc.want)
		}
		back, err := ParseScope(got.String())
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("ParseScope(%q).String() = %q does not round-trip: %+v, %v", name, got.String(), back, err)
		}
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		name    string
		params  []string
		want    []string // rendered; nil with wantErr
		wantErr bool
	}{
		{"none", nil, nil, false},
		{"empty param", []string{""}, nil, false},
		{"one", []string{"repository:a:pull"}, []string{"repository:a:pull"}, false},
		{"docker mount: two params", []string{"repository:dst:pull,push", "repository:src:pull"},
			[]string{"repository:dst:pull,push", "repository:src:pull"}, false},
		{"space separated", []string{"repository:a:pull repository:b:push"},
			[]string{"repository:a:pull", "repository:b:push"}, false},
		{"extra spaces ignored", []string{" repository:a:pull  registry:catalog:* "},
			[]string{"repository:a:pull", "registry:catalog:*"}, false},
		{"same repository merged", []string{"repository:a:push", "repository:b:pull repository:a:pull"},
			[]string{"repository:a:pull,push", "repository:b:pull"}, false},
		{"catalog twice", []string{"registry:catalog:* registry:catalog:*"}, []string{"registry:catalog:*"}, false},
		{"one bad spoils all", []string{"repository:a:pull", "repository:team/../prod:push"}, nil, true},
		{"bad inside a list", []string{"repository:a:pull repository:a//b:pull"}, nil, true},
		{"tab is not a separator", []string{"repository:a:pull\trepository:b:pull"}, nil, true},
		{"too many", []string{strings.TrimSpace(strings.Repeat("repository:a:pull ", 1) + manyScopes(MaxScopes))}, nil, true},
		{"huge param", []string{strings.Repeat(" ", MaxScopes*(MaxScopeLength+1)+1)}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseScopes(tc.params)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidScope) {
					t.Fatalf("got %v, %v; want ErrInvalidScope", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var rendered []string
			for _, s := range got {
				rendered = append(rendered, s.String())
			}
			if !reflect.DeepEqual(rendered, tc.want) {
				t.Fatalf("got %q, want %q", rendered, tc.want)
			}
		})
	}
}

// manyScopes returns n distinct scopes, space-separated.
func manyScopes(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("repository:r")
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(":pull ")
	}
	return b.String()
}

func TestIntersect(t *testing.T) {
	admin := Principal{Name: "root", Kind: KindUser, Role: RoleAdmin}
	member := Principal{Name: "alice", Kind: KindUser, Role: RoleMember}
	robot := Principal{Name: "ci", Kind: KindRobot, Env: "prod"}
	anon := Principal{Kind: KindAnonymous}
	memberGrants := []Grant{
		{Glob: "team/*", Actions: []Action{ActionPull, ActionPush}},
		{Glob: "shared/**", Actions: []Action{ActionPull}},
	}
	robotGrants := []Grant{{Glob: "team/app", Actions: []Action{ActionPull, ActionPush}}}
	public := []string{"public/**"}

	scopes := func(s ...string) []Scope {
		out, err := ParseScopes(s)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	acc := func(name string, acts ...string) Access {
		typ := ScopeRepository
		if name == CatalogName {
			typ = ScopeRegistry
		}
		return Access{Type: typ, Name: name, Actions: acts}
	}

	tests := []struct {
		name   string
		req    []Scope
		p      Principal
		grants []Grant
		anon   []string
		want   []Access
	}{
		{"admin gets all it asks", scopes("repository:any/thing:*", "registry:catalog:*"), admin, nil, nil,
			[]Access{acc("any/thing", "pull", "push", "delete"), acc(CatalogName, "*")}},
		{"admin gets only what it asks", scopes("repository:a:pull"), admin, nil, nil,
			[]Access{acc("a", "pull")}},
		{"member within grant", scopes("repository:team/app:pull,push"), member, memberGrants, nil,
			[]Access{acc("team/app", "pull", "push")}},
		{"member: delete not granted", scopes("repository:team/app:*"), member, memberGrants, nil,
			[]Access{acc("team/app", "pull", "push")}},
		{"member: pull-only grant", scopes("repository:shared/x/y:pull,push"), member, memberGrants, nil,
			[]Access{acc("shared/x/y", "pull")}},
		{"member: * stays in its component", scopes("repository:team/app/sub:pull"), member, memberGrants, nil,
			[]Access{}},
		{"member: no grant", scopes("repository:other/app:pull"), member, memberGrants, nil, []Access{}},
		{"member: grants of the wrong case do nothing", scopes("repository:team/app:pull"), member,
			[]Grant{{Glob: "Team/*", Actions: []Action{ActionPull}}}, nil, []Access{}},
		{"robot inside its grant", scopes("repository:team/app:push"), robot, robotGrants, nil,
			[]Access{acc("team/app", "push")}},
		{"robot pushing outside its grant", scopes("repository:team/other:push", "repository:prod/app:push"), robot, robotGrants, nil,
			[]Access{}},
		{"robot with a user's grants passed by mistake gets no admin", scopes("repository:x:pull"),
			Principal{Name: "ci", Kind: KindRobot, Role: RoleAdmin}, nil, nil, []Access{}},
		{"anonymous without globs", scopes("repository:public/app:pull"), anon, nil, nil, []Access{}},
		{"anonymous with globs: pull only", scopes("repository:public/app:pull,push"), anon, nil, public,
			[]Access{acc("public/app", "pull")}},
		{"anonymous outside the globs", scopes("repository:private/app:pull"), anon, nil, public, []Access{}},
		{"anonymous ignores grants", scopes("repository:team/app:pull"), anon, memberGrants, nil, []Access{}},
		{"zero principal is anonymous", scopes("repository:team/app:pull"), Principal{}, memberGrants, public, []Access{}},
		{"members may pull what anyone may", scopes("repository:public/app:pull,push"), member, memberGrants, public,
			[]Access{acc("public/app", "pull")}},
		{"catalog for members", scopes("registry:catalog:*"), member, nil, nil, []Access{acc(CatalogName, "*")}},
		{"catalog for robots", scopes("registry:catalog:*"), robot, nil, nil, []Access{acc(CatalogName, "*")}},
		{"no catalog for anonymous", scopes("registry:catalog:*"), anon, nil, public, []Access{}},
		{"no catalog for a nameless user", scopes("registry:catalog:*"), Principal{Kind: KindUser}, nil, nil, []Access{}},
		{"nothing requested", nil, admin, nil, nil, []Access{}},
		{"mount: pull source, push target", scopes("repository:team/new:pull,push", "repository:shared/base:pull"), member, memberGrants, nil,
			[]Access{acc("team/new", "pull", "push"), acc("shared/base", "pull")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Intersect(tc.req, tc.p, tc.grants, tc.anon)
			if got == nil {
				t.Fatal("Intersect returned nil; want an empty slice so the claim is []")
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	member := Principal{Name: "alice", Kind: KindUser, Role: RoleMember}
	admin := Principal{Name: "root", Kind: KindUser, Role: RoleAdmin}
	grants := []Grant{{Glob: "team/**", Actions: []Action{ActionPull}}}
	tests := []struct {
		p    Principal
		repo string
		a    Action
		want bool
	}{
		{member, "team/a/b", ActionPull, true},
		{member, "team/a/b", ActionPush, false},
		{member, "team", ActionPull, false},
		{member, "team/../x", ActionPull, false},
		{member, "team/a", ActionAll, false}, // "*" is not a repository action
		{member, "team/a", "admin", false},
		{admin, "anything/at/all", ActionDelete, true},
		{admin, "Invalid", ActionPull, false},
		{admin, "x", ActionAll, false},
	}
	for _, tc := range tests {
		if got := Allowed(tc.p, grants, nil, tc.repo, tc.a); got != tc.want {
			t.Errorf("Allowed(%s, %q, %q) = %v, want %v", tc.p.Name, tc.repo, tc.a, got, tc.want)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"repository:team/app:pull,push", "registry:catalog:*", "repository:a:*",
		"repository:team/../prod:push", "repository:%2e%2e:pull", "repository:a//b:pull",
		"repository(plugin):a:pull", "repository:a:b:c", "repository:a:pull,,push", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidScope) {
				t.Fatalf("error %v does not wrap ErrInvalidScope", err)
			}
			return
		}
		// Whatever parses is canonical, round-trips, and names one real
		// repository (or the catalog): never a glob, never a path trick.
		if got := sc.String(); got != s {
			if back, err := ParseScope(got); err != nil || !reflect.DeepEqual(back, sc) {
				t.Fatalf("%q parsed to %+v which renders as %q and reparses to %+v, %v", s, sc, got, back, err)
			}
		}
		switch sc.Type {
		case ScopeRepository:
			if strings.ContainsAny(sc.Name, "*%:\\") || strings.Contains(sc.Name, "..") || strings.Contains(sc.Name, "//") {
				t.Fatalf("%q: dangerous name %q accepted", s, sc.Name)
			}
			if len(sc.Actions) == 0 {
				t.Fatalf("%q: no actions", s)
			}
			for _, a := range sc.Actions {
				if a != ActionPull && a != ActionPush && a != ActionDelete {
					t.Fatalf("%q: action %q", s, a)
				}
			}
		case ScopeRegistry:
			if sc.Name != CatalogName || !reflect.DeepEqual(sc.Actions, []Action{ActionAll}) {
				t.Fatalf("%q: registry scope %+v", s, sc)
			}
		default:
			t.Fatalf("%q: type %q", s, sc.Type)
		}
	})
}
