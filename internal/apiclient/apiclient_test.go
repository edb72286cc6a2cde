package apiclient

import (
	"errors"
	"strings"
	"testing"
)

// New picks the scheme as for registries (HTTPS except on loopback) and
// never sends credentials over plain HTTP beyond loopback.
func TestNew(t *testing.T) {
	tests := []struct {
		server, authz string
		wantURL       string
		err           error
	}{
		{"http://127.0.0.1:5000", "Basic x", "http://127.0.0.1:5000", nil},
		{"127.0.0.1:5000", "Basic x", "http://127.0.0.1:5000", nil},
		{"localhost:5000/", "Basic x", "http://localhost:5000", nil},
		{"registry.example", "Basic x", "https://registry.example", nil},
		{"http://registry.example:5000", "", "http://registry.example:5000", nil},
		{"http://registry.example:5000", "Basic x", "", ErrInsecure},
		{"ftp://registry.example", "", "", errors.New("want http")},
		{"https://user:pw@registry.example", "", "", errors.New("want http")},
	}
	for _, tt := range tests {
		c, err := New("inventory", tt.server, Options{Authorization: tt.authz})
		switch {
		case tt.err == nil && err != nil:
			t.Errorf("New(%q): %v", tt.server, err)
		case tt.err != nil && err == nil:
			t.Errorf("New(%q) accepted, want %v", tt.server, tt.err)
		case tt.err != nil && !errors.Is(err, tt.err) && !strings.Contains(err.Error(), tt.err.Error()):
			t.Errorf("New(%q) = %v, want %v", tt.server, err, tt.err)
		case err == nil && c.base.String() != tt.wantURL:
			t.Errorf("New(%q) URL %s, want %s", tt.server, c.base, tt.wantURL)
		}
	}
}
