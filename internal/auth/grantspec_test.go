package auth

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseGrantSpec(t *testing.T) {
	tests := []struct {
		in   string
		want string // fmt of the Grant; "" = error
	}{
		{"team/*:pull,push", "{team/* [pull push]}"},
		{"team/*:push,pull", "{team/* [pull push]}"},
		{"prod/**:pull", "{prod/** [pull]}"},
		{"app:delete,pull,push", "{app [pull push delete]}"},
		{"app:pull,pull", "{app [pull]}"},
		{"app: pull , push", "{app [pull push]}"},
		{"**:pull", "{** [pull]}"},
		{"team/app-*:push", "{team/app-* [push]}"},
		{"", ""},
		{"team/*", ""},
		{"team/*:", ""},
		{":pull", ""},
		{"team/*:pull,", ""},
		{"team/*:*", ""},
		{"team/*:admin", ""},
		{"team/*:PULL", ""},
		{"team/../prod:push", ""},
		{"team//app:pull", ""},
		{"%2e%2e/x:pull", ""},
		{"Team/*:pull", ""},
		{"a:b:pull", ""},
		{"/team:pull", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g, err := ParseGrantSpec(tt.in)
			if tt.want == "" {
				if err == nil || !errors.Is(err, ErrInvalidGrant) {
					t.Fatalf("ParseGrantSpec(%q) = %v, %v; want ErrInvalidGrant", tt.in, g, err)
				}
				return
			}
			if err != nil || fmt.Sprint(g) != tt.want {
				t.Fatalf("ParseGrantSpec(%q) = %v, %v; want %s", tt.in, g, err, tt.want)
			}
		})
	}
}

func FuzzParseGrantSpec(f *testing.F) {
	for _, s := range []string{"team/*:pull,push", "prod/**:pull", "a:delete", "a:b:c", ":", "x/../y:push", "a:pull,,push"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGrantSpec(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidGrant) {
				t.Fatalf("error %v is not ErrInvalidGrant", err)
			}
			return
		}
		if ValidateGlob(g.Glob) != nil || len(g.Actions) == 0 || len(g.Actions) > 3 {
			t.Fatalf("accepted %q as %v", s, g)
		}
		if _, err := normalizeGrantActions(g.Actions); err != nil {
			t.Fatalf("accepted %q with bad actions: %v", s, err)
		}
		// Formatting is canonical and round-trips.
		spec := FormatGrantSpec(g)
		g2, err := ParseGrantSpec(spec)
		if err != nil || fmt.Sprint(g2) != fmt.Sprint(g) || FormatGrantSpec(g2) != spec {
			t.Fatalf("%q → %v → %q → %v, %v", s, g, spec, g2, err)
		}
	})
}
