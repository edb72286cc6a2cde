package trust

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// fakeClock is a settable clock for the cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// countingFacts returns facts and counts how often it was called.
type countingFacts struct {
	calls atomic.Int64
	facts []SignatureFact
	err   error
}

func (f *countingFacts) compute(ctx context.Context, keys []crypto.PublicKey) ([]SignatureFact, error) {
	f.calls.Add(1)
	return f.facts, f.err
}

func cacheImage(registry, repo, content string) oci.ImageRef {
	return oci.ImageRef{Registry: registry, Repository: repo, Digest: digest.FromString(content)}
}

func TestCacheFacts(t *testing.T) {
	c := NewCache(CacheOptions{})
	ctx := context.Background()
	img := cacheImage("r.example", "dev/app", "a")
	src := &countingFacts{facts: []SignatureFact{{Ref: "sig1"}}}

	get := func(img oci.ImageRef) []SignatureFact {
		t.Helper()
		facts, err := c.Facts(ctx, img, nil, src.compute)
		if err != nil {
			t.Fatal(err)
		}
		return facts
	}
	calls := func(want int64) {
		t.Helper()
		if got := src.calls.Load(); got != want {
			t.Fatalf("facts computed %d times, want %d", got, want)
		}
	}
	if f := get(img); len(f) != 1 || f[0].Ref != "sig1" {
		t.Fatalf("facts %+v", f)
	}
	calls(1)
	f := get(img)
	calls(1) // hit
	f[0].Ref = "modified by the caller"
	if get(img)[0].Ref != "sig1" {
		t.Errorf("a caller's change reached the cache")
	}
	tagged := img
	tagged.Tag = "v1"
	get(tagged)
	calls(1) // the tag plays no part

	get(cacheImage("other.example", "dev/app", "a"))
	calls(2) // another registry's facts are its own
	get(cacheImage("r.example", "dev/app", "b"))
	calls(3)

	// A new signature arrives: everything about repo@digest goes, on every
	// registry.
	c.Invalidate("dev/app", img.Digest)
	get(img)
	calls(4)
	get(cacheImage("other.example", "dev/app", "a"))
	calls(5)
	get(cacheImage("r.example", "dev/app", "b")) // not invalidated
	calls(5)

	if s := c.Stats(); s.Hits != 4 || s.Misses != 5 || s.Images != 2 {
		t.Errorf("stats %+v", s)
	}
}

// TestCacheFactsKeys: facts checked with one set of public keys are not
// reused with another (a key-only signature verifies or not by them).
func TestCacheFactsKeys(t *testing.T) {
	c := NewCache(CacheOptions{})
	ctx := context.Background()
	img := cacheImage("", "dev/app", "a")
	var seen [][]crypto.PublicKey
	compute := func(_ context.Context, keys []crypto.PublicKey) ([]SignatureFact, error) {
		seen = append(seen, keys)
		return nil, nil
	}
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, keys := range [][]crypto.PublicKey{nil, {k1.Public()}, {k1.Public(), k2.Public()}, {k2.Public(), k1.Public()}, {k1.Public()}, nil} {
		if _, err := c.Facts(ctx, img, keys, compute); err != nil {
			t.Fatal(err)
		}
	}
	// nil, {k1}, {k1 k2} miss; the same set in another order and the
	// repeats hit.
	if len(seen) != 3 || len(seen[0]) != 0 || len(seen[1]) != 1 || len(seen[2]) != 2 {
		t.Errorf("computed with key sets %v", seen)
	}
}

func TestCacheFactsErrorsAndBadKeys(t *testing.T) {
	c := NewCache(CacheOptions{})
	ctx := context.Background()
	src := &countingFacts{err: errors.New("registry down")}
	img := cacheImage("", "dev/app", "a")
	for range 2 {
		if _, err := c.Facts(ctx, img, nil, src.compute); err == nil || !strings.Contains(err.Error(), "registry down") {
			t.Fatalf("error not returned: %v", err)
		}
	}
	if src.calls.Load() != 2 {
		t.Errorf("a failure was cached")
	}
	for _, bad := range []oci.ImageRef{{Repository: "dev/app"}, {Repository: "dev/app", Digest: "sha256:short"}, {Digest: img.Digest}} {
		if _, err := c.Facts(ctx, bad, nil, src.compute); err == nil {
			t.Errorf("Facts(%+v) accepted", bad)
		}
	}
	panics := func(context.Context, []crypto.PublicKey) ([]SignatureFact, error) { panic("boom") }
	if _, err := c.Facts(ctx, cacheImage("", "dev/app", "p"), nil, panics); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("panic: %v", err)
	}
}

func TestCacheEviction(t *testing.T) {
	c := NewCache(CacheOptions{MaxImages: 2})
	ctx := context.Background()
	src := &countingFacts{}
	a, b, d := cacheImage("", "x", "a"), cacheImage("", "x", "b"), cacheImage("", "x", "d")
	for _, img := range []oci.ImageRef{a, b, a, d, a, b} {
		if _, err := c.Facts(ctx, img, nil, src.compute); err != nil {
			t.Fatal(err)
		}
	}
	// a, b miss; a hits; d evicts b (least recently used); a hits; b misses.
	if got := src.calls.Load(); got != 4 {
		t.Errorf("%d computations, want 4", got)
	}
	if s := c.Stats(); s.Images != 2 {
		t.Errorf("%d images kept, want 2", s.Images)
	}
}

func TestCacheMaxAge(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	c := NewCache(CacheOptions{MaxAge: time.Minute, Now: clock.Now})
	ctx := context.Background()
	src := &countingFacts{}
	img := cacheImage("", "x", "a")
	for _, step := range []struct {
		advance time.Duration
		calls   int64
	}{{0, 1}, {59 * time.Second, 1}, {time.Second, 2}, {-time.Hour, 3}} {
		clock.Set(clock.Now().Add(step.advance))
		if _, err := c.Facts(ctx, img, nil, src.compute); err != nil {
			t.Fatal(err)
		}
		if got := src.calls.Load(); got != step.calls {
			t.Errorf("after %v: %d computations, want %d", step.advance, got, step.calls)
		}
	}
}

// TestCacheDecision: a decision is computed once per (image, policy
// version, environment), over facts computed once per image.
func TestCacheDecision(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image for the cache")
	env, mt, err := SignNotation(ctx, target, k.key, k.chain, nil, "jws")
	if err != nil {
		t.Fatal(err)
	}
	src := &countingFacts{facts: []SignatureFact{VerifyNotation(ctx, env, mt, "sha256:sig")}}
	img := oci.ImageRef{Registry: "r.example", Repository: "dev/app", Digest: target.Digest}
	c := NewCache(CacheOptions{})

	decide := func(p *Policy, env string) Decision {
		t.Helper()
		d, err := c.Decision(ctx, p, img, env, src.compute)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	stats := func(hits, misses uint64, calls int64) {
		t.Helper()
		if s := c.Stats(); s.Hits != hits || s.Misses != misses || src.calls.Load() != calls {
			t.Fatalf("hits %d misses %d computations %d; want %d %d %d", s.Hits, s.Misses, src.calls.Load(), hits, misses, calls)
		}
	}

	d := decide(k.policy, "dev")
	if !d.Allowed {
		t.Fatalf("not allowed: %s", d.Reason)
	}
	stats(0, 2, 1) // decision and facts missed
	d.Signatures[0].Why = "modified by the caller"
	if d2 := decide(k.policy, "dev"); d2.Signatures[0].Why != "counted for authority ci" {
		t.Errorf("a caller's change reached the cache: %q", d2.Signatures[0].Why)
	}
	stats(1, 2, 1)
	decide(k.policy, "") // another environment key, same facts
	stats(2, 3, 1)

	// The same policy loaded again has the same version: still a hit.
	same, err := ParsePolicy([]byte(notationTestPolicy), k.dir)
	if err != nil {
		t.Fatal(err)
	}
	decide(same, "dev")
	stats(3, 3, 1)

	// A changed policy misses, and decides anew over the cached facts.
	strict, err := ParsePolicy([]byte(strings.Replace(notationTestPolicy, "CN=ci, O=Example", "CN=release, O=Example", 1)), k.dir)
	if err != nil {
		t.Fatal(err)
	}
	if strict.Version() == k.policy.Version() {
		t.Fatal("test policies have the same version")
	}
	if decide(strict, "dev").Allowed {
		t.Errorf("the changed policy's decision came from the old one")
	}
	stats(4, 4, 1)
	if !decide(k.policy, "dev").Allowed {
		t.Errorf("the old policy's decision was overwritten")
	}
	stats(5, 4, 1)

	// A signature arrives (here: the only one goes): recomputed.
	c.Invalidate(img.Repository, img.Digest)
	src.facts = nil
	if decide(k.policy, "dev").Allowed {
		t.Errorf("decision survived Invalidate")
	}
	stats(5, 6, 2)

	// Evaluation errors are returned, not cached.
	for range 2 {
		if _, err := c.Decision(ctx, k.policy, img, "nope", src.compute); !errors.Is(err, ErrUnknownEnvironment) {
			t.Errorf("unknown environment: %v", err)
		}
	}
}

// TestCacheDecisionTime: a cached decision is not used past the moment a
// certificate it depends on expires, even within MaxAge.
func TestCacheDecisionTime(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image")
	env, mt, err := SignNotation(ctx, target, k.key, k.chain, nil, "jws")
	if err != nil {
		t.Fatal(err)
	}
	src := &countingFacts{facts: []SignatureFact{VerifyNotation(ctx, env, mt, "sha256:sig")}}
	img := oci.ImageRef{Repository: "dev/app", Digest: target.Digest}
	notAfter := k.chain[0].NotAfter
	clock := &fakeClock{t: notAfter.Add(-time.Minute)}
	c := NewCache(CacheOptions{MaxAge: 24 * time.Hour, Now: clock.Now})

	d, err := c.Decision(ctx, k.policy, img, "dev", src.compute)
	if err != nil || !d.Allowed {
		t.Fatalf("before expiry: %v %s", err, d.Reason)
	}
	clock.Set(notAfter.Add(-time.Second))
	if d, _ := c.Decision(ctx, k.policy, img, "dev", src.compute); !d.Allowed || c.Stats().Hits != 1 {
		t.Fatalf("just before expiry: allowed %v, stats %+v", d.Allowed, c.Stats())
	}
	clock.Set(notAfter.Add(time.Second))
	d, err = c.Decision(ctx, k.policy, img, "dev", src.compute)
	if err != nil || d.Allowed || !strings.Contains(d.Signatures[0].Why, "expired") {
		t.Fatalf("after the leaf expired: %v allowed %v: %s", err, d.Allowed, d.Signatures[0].Why)
	}
	if s := c.Stats(); s.Hits != 2 { // the facts, not the decision
		t.Errorf("stats %+v", s)
	}
}

// TestCacheSingleflight: concurrent misses for one key compute once; other
// keys are not held up.
func TestCacheSingleflight(t *testing.T) {
	c := NewCache(CacheOptions{})
	ctx := context.Background()
	release := make(chan struct{})
	var calls atomic.Int64
	slow := func(context.Context, []crypto.PublicKey) ([]SignatureFact, error) {
		calls.Add(1)
		<-release
		return []SignatureFact{{Ref: "sig"}}, nil
	}
	img := cacheImage("", "x", "a")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			f, err := c.Facts(ctx, img, nil, slow)
			if err == nil && (len(f) != 1 || f[0].Ref != "sig") {
				err = fmt.Errorf("facts %+v", f)
			}
			errs <- err
		})
	}
	// Another image is computed meanwhile.
	if _, err := c.Facts(ctx, cacheImage("", "x", "b"), nil, (&countingFacts{}).compute); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return c.Stats().Misses == n+1 })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("computed %d times, want once", calls.Load())
	}
}

// TestCacheDecisionSingleflight: concurrent decisions for one key evaluate
// once.
func TestCacheDecisionSingleflight(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image")
	env, mt, err := SignNotation(ctx, target, k.key, k.chain, nil, "jws")
	if err != nil {
		t.Fatal(err)
	}
	fact := VerifyNotation(ctx, env, mt, "sha256:sig")
	release := make(chan struct{})
	var calls atomic.Int64
	slow := func(context.Context, []crypto.PublicKey) ([]SignatureFact, error) {
		calls.Add(1)
		<-release
		return []SignatureFact{fact}, nil
	}
	c := NewCache(CacheOptions{})
	img := oci.ImageRef{Repository: "dev/app", Digest: target.Digest}
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for range 8 {
		wg.Go(func() {
			if d, err := c.Decision(ctx, k.policy, img, "dev", slow); err == nil && d.Allowed {
				allowed.Add(1)
			}
		})
	}
	waitFor(t, func() bool { return c.Stats().Misses == 9 }) // 8 decisions, 1 facts
	close(release)
	wg.Wait()
	if calls.Load() != 1 || allowed.Load() != 8 {
		t.Errorf("facts computed %d times, %d of 8 allowed", calls.Load(), allowed.Load())
	}
	if _, err := c.Decision(ctx, k.policy, img, "dev", slow); err != nil || c.Stats().Hits != 1 {
		t.Errorf("not cached after the flight: %v %+v", err, c.Stats())
	}
}

// TestCacheInvalidateDuringComputation: facts computed while a signature
// arrived may miss it, so they are not stored.
func TestCacheInvalidateDuringComputation(t *testing.T) {
	c := NewCache(CacheOptions{})
	ctx := context.Background()
	img := cacheImage("", "x", "a")
	started, release := make(chan struct{}), make(chan struct{})
	stale := func(context.Context, []crypto.PublicKey) ([]SignatureFact, error) {
		close(started)
		<-release
		return []SignatureFact{{Ref: "before the new signature"}}, nil
	}
	done := make(chan error)
	go func() {
		_, err := c.Facts(ctx, img, nil, stale)
		done <- err
	}()
	<-started
	c.Invalidate(img.Repository, img.Digest)
	// A caller after Invalidate does not join the stale computation.
	fresh := &countingFacts{facts: []SignatureFact{{Ref: "with the new signature"}}}
	f, err := c.Facts(ctx, img, nil, fresh.compute)
	if err != nil || f[0].Ref != "with the new signature" {
		t.Fatalf("after Invalidate: %v %+v", err, f)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f, err = c.Facts(ctx, img, nil, fresh.compute)
	if err != nil || f[0].Ref != "with the new signature" || fresh.calls.Load() != 1 {
		t.Errorf("the stale computation was stored: %+v (%d computations)", f, fresh.calls.Load())
	}
}

// TestCacheCancel: a caller that gives up does not cancel the computation
// others wait for; when all give up it is cancelled, and the next caller
// starts afresh.
func TestCacheCancel(t *testing.T) {
	c := NewCache(CacheOptions{})
	img := cacheImage("", "x", "a")
	started := make(chan struct{}, 4)
	cancelled := make(chan struct{}, 4)
	release := make(chan struct{})
	compute := func(ctx context.Context, _ []crypto.PublicKey) ([]SignatureFact, error) {
		started <- struct{}{}
		select {
		case <-release:
			return []SignatureFact{{Ref: "sig"}}, nil
		case <-ctx.Done():
			cancelled <- struct{}{}
			return nil, ctx.Err()
		}
	}

	ctx1, cancel1 := context.WithCancel(context.Background())
	err1 := make(chan error)
	go func() { _, err := c.Facts(ctx1, img, nil, compute); err1 <- err }()
	<-started
	res2 := make(chan error)
	go func() { _, err := c.Facts(context.Background(), img, nil, compute); res2 <- err }()
	waitFor(t, func() bool { return c.Stats().Misses == 2 })
	cancel1()
	if err := <-err1; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v", err)
	}
	close(release)
	if err := <-res2; err != nil {
		t.Errorf("the remaining caller got %v", err)
	}
	if len(cancelled) != 0 || len(started) != 0 {
		t.Errorf("the computation was cancelled or restarted")
	}

	// Everyone gives up: the computation is cancelled.
	img2 := cacheImage("", "x", "b")
	ctx3, cancel3 := context.WithCancel(context.Background())
	block := make(chan struct{})
	compute2 := func(ctx context.Context, _ []crypto.PublicKey) ([]SignatureFact, error) {
		started <- struct{}{}
		select {
		case <-block:
			return nil, nil
		case <-ctx.Done():
			cancelled <- struct{}{}
			return nil, ctx.Err()
		}
	}
	err3 := make(chan error)
	go func() { _, err := c.Facts(ctx3, img2, nil, compute2); err3 <- err }()
	<-started
	cancel3()
	<-err3
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("abandoned computation not cancelled")
	}
	close(block)
	if _, err := c.Facts(context.Background(), img2, nil, (&countingFacts{}).compute); err != nil {
		t.Errorf("a caller after the abandoned computation: %v", err)
	}
}

// TestCacheConcurrent hammers a small cache from many goroutines, with
// invalidations, for the race detector.
func TestCacheConcurrent(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image")
	env, mt, err := SignNotation(ctx, target, k.key, k.chain, nil, "jws")
	if err != nil {
		t.Fatal(err)
	}
	fact := VerifyNotation(ctx, env, mt, "sha256:sig")
	c := NewCache(CacheOptions{MaxImages: 3})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				img := oci.ImageRef{Repository: fmt.Sprintf("dev/app%d", i%5), Digest: target.Digest}
				switch (g + i) % 7 {
				case 0:
					c.Invalidate(img.Repository, img.Digest)
				case 1, 2:
					if _, err := c.Facts(ctx, img, nil, func(context.Context, []crypto.PublicKey) ([]SignatureFact, error) { return []SignatureFact{fact}, nil }); err != nil {
						t.Error(err)
						return
					}
				default:
					d, err := c.Decision(ctx, k.policy, img, "dev", func(context.Context, []crypto.PublicKey) ([]SignatureFact, error) { return []SignatureFact{fact}, nil })
					if err != nil || !d.Allowed {
						t.Errorf("decision: %v %s", err, d.Reason)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if s := c.Stats(); s.Images > 3 {
		t.Errorf("%d images kept, bound 3", s.Images)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCacheDecisionFactsAge: a decision is not reused past the age limit
// of the facts it was made over, even when it was made later.
func TestCacheDecisionFactsAge(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("image")
	env, mt, err := SignNotation(ctx, target, k.key, k.chain, nil, "jws")
	if err != nil {
		t.Fatal(err)
	}
	src := &countingFacts{facts: []SignatureFact{VerifyNotation(ctx, env, mt, "sha256:sig")}}
	img := oci.ImageRef{Repository: "dev/app", Digest: target.Digest}
	clock := &fakeClock{t: time.Now()}
	c := NewCache(CacheOptions{MaxAge: time.Minute, Now: clock.Now})
	if _, err := c.Facts(ctx, img, k.policy.PublicKeys(), src.compute); err != nil {
		t.Fatal(err)
	}
	start := clock.Now()
	for _, step := range []struct {
		at    time.Duration
		calls int64
	}{{50 * time.Second, 1}, {59 * time.Second, 1}, {61 * time.Second, 2}} {
		clock.Set(start.Add(step.at))
		if d, err := c.Decision(ctx, k.policy, img, "dev", src.compute); err != nil || !d.Allowed {
			t.Fatalf("%v: %v %s", step.at, err, d.Reason)
		}
		if got := src.calls.Load(); got != step.calls {
			t.Errorf("at %v: facts computed %d times, want %d", step.at, got, step.calls)
		}
	}
}
