package auth

import (
	"container/list"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Throttle defaults: five free failures per quarter hour, then a wait that
// doubles with every further failure, up to five minutes.
const (
	DefaultMaxFailures     = 5
	DefaultThrottleWindow  = 15 * time.Minute
	DefaultThrottleBase    = time.Second
	DefaultThrottleMax     = 5 * time.Minute
	DefaultThrottleEntries = 10000
)

// ThrottleConfig configures NewThrottle; zero fields take the defaults.
type ThrottleConfig struct {
	// MaxFailures is how many failures within Window are free.
	MaxFailures int
	// Window is how long a failure is remembered: a key's count restarts
	// once Window has passed since its last failure.
	Window time.Duration
	// BaseDelay is the wait after the MaxFailures-th failure; each further
	// failure doubles it, up to MaxDelay. MaxDelay should stay below Window,
	// or a waiting attacker's count would be forgotten by the time it may
	// try again.
	BaseDelay, MaxDelay time.Duration
	// MaxEntries bounds the sources and, separately, the account names
	// tracked, so random names cannot exhaust memory. When full, the key
	// whose last failure is oldest is forgotten.
	MaxEntries int
	// OnThrottle, if set, is called (outside any lock) each time Check
	// refuses an attempt, so the server can audit it.
	OnThrottle func(ThrottleEvent)
}

// ThrottleEvent reports an attempt refused by the throttle.
type ThrottleEvent struct {
	Source   string        // the source as given (an IP address)
	Account  string        // the account name as given, clipped
	By       string        // "source" or "account": which limit applied
	Failures int           // failures counted against that key
	Wait     time.Duration // how long the caller must wait
}

// ThrottleStats are counters for reporting.
type ThrottleStats struct {
	Sources, Accounts int    // keys currently tracked
	Failures          uint64 // failures recorded
	Throttled         uint64 // attempts refused
	Evicted           uint64 // keys forgotten early because the table was full
}

// Throttle slows down password guessing: it counts failed logins per
// source address and per account name, in memory, and after MaxFailures
// failures within Window makes further attempts wait, exponentially
// longer. One source guessing many accounts and many sources guessing one
// account are both caught. A success clears the account's count, not the
// source's: otherwise an attacker holding one valid account could log in
// between guesses to reset its own limit.
//
// Sources are grouped per address, IPv6 per /64 (one host's usual
// allocation). The remote address is the one the HTTP server reports;
// behind a reverse proxy, that proxy must be the one setting it.
type Throttle struct {
	cfg ThrottleConfig

	mu       sync.Mutex
	sources  lru
	accounts lru
	stats    ThrottleStats
}

// NewThrottle returns a Throttle; zero fields of cfg take the defaults.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultThrottleWindow
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = DefaultThrottleBase
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultThrottleMax
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultThrottleEntries
	}
	return &Throttle{cfg: cfg, sources: newLRU(), accounts: newLRU()}
}

// Check returns how long a login attempt from source for account must
// wait; zero means go ahead. A refused attempt should be answered with
// 429 and Retry-After, without checking its credentials (so guesses made
// while throttled teach nothing), and not recorded as a failure. An empty
// source or account is not checked.
func (t *Throttle) Check(source, account string, now time.Time) time.Duration {
	t.mu.Lock()
	sWait, sFails := t.waitLocked(&t.sources, sourceKey(source), now)
	aWait, aFails := t.waitLocked(&t.accounts, accountKey(account), now)
	ev := ThrottleEvent{Source: source, Account: clip(account), By: "source", Failures: sFails, Wait: sWait}
	if aWait > sWait {
		ev.By, ev.Failures, ev.Wait = "account", aFails, aWait
	}
	if ev.Wait > 0 {
		t.stats.Throttled++
	}
	hook := t.cfg.OnThrottle
	t.mu.Unlock()
	if ev.Wait > 0 && hook != nil {
		hook(ev)
	}
	return ev.Wait
}

// Failure records a failed login from source for account.
func (t *Throttle) Failure(source, account string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stats.Failures++
	t.failLocked(&t.sources, sourceKey(source), now)
	t.failLocked(&t.accounts, accountKey(account), now)
}

// Success records a successful login: the account's failures are
// forgotten. The source's are kept (see Throttle).
func (t *Throttle) Success(source, account string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := accountKey(account); k != "" {
		t.accounts.remove(k)
	}
}

// Stats returns the counters.
func (t *Throttle) Stats() ThrottleStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Sources, s.Accounts = t.sources.len(), t.accounts.len()
	return s
}

// waitLocked returns the wait a key is under and its failure count.
func (t *Throttle) waitLocked(l *lru, key string, now time.Time) (time.Duration, int) {
	if key == "" {
		return 0, 0
	}
	e := l.get(key)
	if e == nil || t.expired(e, now) || e.count < t.cfg.MaxFailures {
		return 0, 0
	}
	until := e.last.Add(t.delay(e.count))
	if !now.Before(until) {
		return 0, e.count
	}
	return until.Sub(now), e.count
}

func (t *Throttle) failLocked(l *lru, key string, now time.Time) {
	if key == "" {
		return
	}
	e := l.get(key)
	if e == nil {
		// Make room: first anything expired (the least recently failed keys
		// are at the back), then, if still full, the oldest key.
		for l.len() >= t.cfg.MaxEntries {
			if back := l.back(); back != nil && !t.expired(back, now) {
				t.stats.Evicted++
			}
			l.removeBack()
		}
		e = l.add(key)
	} else if t.expired(e, now) {
		e.count = 0
	}
	e.count++
	e.last = now
	l.touch(key)
}

func (t *Throttle) expired(e *throttleEntry, now time.Time) bool {
	return now.Sub(e.last) >= t.cfg.Window
}

// delay is BaseDelay·2^(count−MaxFailures), capped at MaxDelay.
func (t *Throttle) delay(count int) time.Duration {
	d := t.cfg.BaseDelay
	for i := t.cfg.MaxFailures; i < count && d < t.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.cfg.MaxDelay)
}

// sourceKey groups a remote address: the IP without port, IPv4-mapped
// IPv6 as IPv4, other IPv6 by /64.
func sourceKey(source string) string {
	if source == "" {
		return ""
	}
	host := source
	if h, _, err := net.SplitHostPort(source); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return boundedKey(source)
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String()
}

func accountKey(account string) string { return boundedKey(account) }

// boundedKey keeps keys small whatever the client sends: long ones are
// replaced by their hash.
func boundedKey(s string) string {
	if len(s) <= 128 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ConstantTimeEqual compares two secrets in time that depends on neither
// their contents nor their lengths (both are hashed first, so unequal
// lengths do not return early).
func ConstantTimeEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// throttleEntry is one tracked key.
type throttleEntry struct {
	key   string
	count int
	last  time.Time
}

// lru is a map of entries ordered by last failure, most recent first.
type lru struct {
	order *list.List
	index map[string]*list.Element
}

func newLRU() lru { return lru{order: list.New(), index: map[string]*list.Element{}} }

func (l *lru) len() int { return l.order.Len() }

func (l *lru) get(key string) *throttleEntry {
	if el, ok := l.index[key]; ok {
		return el.Value.(*throttleEntry)
	}
	return nil
}

func (l *lru) add(key string) *throttleEntry {
	e := &throttleEntry{key: key}
	l.index[key] = l.order.PushFront(e)
	return e
}

func (l *lru) touch(key string) {
	if el, ok := l.index[key]; ok {
		l.order.MoveToFront(el)
	}
}

func (l *lru) back() *throttleEntry {
	if el := l.order.Back(); el != nil {
		return el.Value.(*throttleEntry)
	}
	return nil
}

func (l *lru) removeBack() {
	if el := l.order.Back(); el != nil {
		delete(l.index, el.Value.(*throttleEntry).key)
		l.order.Remove(el)
	}
}

func (l *lru) remove(key string) {
	if el, ok := l.index[key]; ok {
		delete(l.index, key)
		l.order.Remove(el)
	}
}
