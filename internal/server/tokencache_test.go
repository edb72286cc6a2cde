package server

import (
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/auth"
)

func TestTokenCacheNeverExtendsValidity(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newTokenCache(2)
	claims := &auth.Claims{Subject: "ci", NotBefore: now, ExpiresAt: now.Add(time.Minute)}
	c.put("tok", claims, now)
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"valid", now.Add(30 * time.Second), true},
		{"at expiry", now.Add(time.Minute), false},
		{"after expiry", now.Add(time.Hour), false},
		{"long before nbf", now.Add(-time.Hour), false},
	}
	for _, tt := range tests {
		if got := c.get("tok", tt.at) != nil; got != tt.want {
			t.Errorf("%s: cached=%v, want %v", tt.name, got, tt.want)
		}
	}
	if c.get("tok2", now) != nil {
		t.Error("a different token string hit the cache")
	}
	// Full: expired entries go first, then everything.
	c.put("a", &auth.Claims{ExpiresAt: now.Add(time.Minute)}, now)
	c.put("b", &auth.Claims{ExpiresAt: now.Add(time.Minute)}, now.Add(2*time.Minute))
	if len(c.entries) > 2 {
		t.Fatalf("cache grew to %d entries past its bound of 2", len(c.entries))
	}
	if c.get("b", now.Add(2*time.Minute)) != nil {
		t.Error("an entry put after its expiry was served")
	}
}
