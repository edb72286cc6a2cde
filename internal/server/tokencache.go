package server

import (
	"sync"
	"time"

	"github.com/bulwark-dev/bulwark/internal/auth"
)

// tokenCache remembers tokens whose signature has been verified, so a
// client's many requests with one token (every layer of a pull) pay for
// one ECDSA verification instead of one each. Tokens are immutable and
// short-lived; an entry is used only while its token is within its
// validity, so the cache never extends one.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[string]*auth.Claims
	max     int
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{entries: make(map[string]*auth.Claims), max: max}
}

func (c *tokenCache) get(token string, now time.Time) *auth.Claims {
	c.mu.RLock()
	claims := c.entries[token]
	c.mu.RUnlock()
	if claims == nil || !now.Before(claims.ExpiresAt) || now.Add(auth.ClockSkew).Before(claims.NotBefore) {
		return nil
	}
	return claims
}

func (c *tokenCache) put(token string, claims *auth.Claims, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Drop expired entries; if the cache is still full, start over
		// rather than track recency: a verification costs ~80 µs, so a
		// rare full reset is cheaper than bookkeeping on every hit.
		for k, v := range c.entries {
			if !now.Before(v.ExpiresAt) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[token] = claims
}
