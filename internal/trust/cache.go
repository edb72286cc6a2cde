package trust

import (
	"container/list"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// Cache remembers the two expensive steps of deciding whether an image is
// trusted: its signature facts (discovery and cryptographic verification,
// per registry/repository@digest and the public keys key-only signatures
// were checked with) and the decisions a policy made over them (per image,
// policy version and environment). A decision is computed once per (image
// digest, policy version, environment) and reused until
//
//   - Invalidate is called for the image, when a signature (or an approval)
//     is added to it or removed from it;
//   - the policy changes: its Version covers every file it was loaded from,
//     so a new version is a new key and old decisions are never consulted;
//   - time moves past a point where the decision could change: a
//     certificate of a signature or of the policy expiring or becoming
//     valid, a CRL's next update;
//   - MaxAge passes (facts too: a signature's own expiry time is not part
//     of its facts, so MaxAge bounds how long an expired signature can
//     still be counted).
//
// Concurrent misses for the same key compute once; callers that give up
// (context done) stop waiting, and the computation is cancelled when no
// caller waits for it any more. A Cache has no global state; it is safe for
// concurrent use. The zero value is not usable: call NewCache.
type Cache struct {
	maxImages int
	maxAge    time.Duration
	now       func() time.Time

	mu      sync.Mutex
	lru     *list.List // of *cachedImage, most recently used first
	images  map[imageKey]*list.Element
	flights map[flightKey]*flight
	gen     uint64 // last generation handed to a cachedImage
	hits    uint64
	misses  uint64
}

// CacheOptions configure a Cache. Zero values take the defaults.
type CacheOptions struct {
	// MaxImages is how many images (repository@digest) the cache keeps,
	// least recently used forgotten first. Default 1024.
	MaxImages int
	// MaxAge is the longest a fact or decision is reused. Default 5
	// minutes.
	MaxAge time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Bounds per image: facts from a few registries (mirrors) and key sets,
// decisions for a few policies and environments. Beyond them the oldest
// entry goes.
const (
	maxCachedFacts     = 8
	maxCachedDecisions = 64
)

// FactsFunc computes an image's signature facts on a cache miss, checking
// key-only (cosign) signatures with keys; typically
//
//	func(ctx context.Context, keys []crypto.PublicKey) ([]SignatureFact, error) {
//		return trust.Facts(ctx, fetcher, ref, ref.Digest, trust.WithKeys(keys...))
//	}
//
// The cache passes the keys so that facts are only ever reused with the
// keys they were computed with.
type FactsFunc func(ctx context.Context, keys []crypto.PublicKey) ([]SignatureFact, error)

// CacheStats count lookups since the cache was made.
type CacheStats struct {
	Hits, Misses uint64
	Images       int // images currently remembered
}

// NewCache makes an empty cache.
func NewCache(opts CacheOptions) *Cache {
	c := &Cache{maxImages: opts.MaxImages, maxAge: opts.MaxAge, now: opts.Now,
		lru: list.New(), images: map[imageKey]*list.Element{}, flights: map[flightKey]*flight{}}
	if c.maxImages <= 0 {
		c.maxImages = 1024
	}
	if c.maxAge <= 0 {
		c.maxAge = 5 * time.Minute
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// imageKey identifies an image across registries: Invalidate(repo, digest)
// must reach what every registry name of it cached.
type imageKey struct {
	repo   string
	digest digest.Digest
}

// cachedImage is everything cached about one image.
type cachedImage struct {
	key imageKey
	// gen changes when the image is forgotten and cached anew, so a
	// computation that started before Invalidate never stores its result.
	gen       uint64
	facts     map[factsKey]cachedFacts
	decisions map[decisionKey]cachedDecision
}

// factsKey: the registry the facts were read from, and the fingerprints of
// the keys they were checked with.
type factsKey struct{ registry, keys string }

type cachedFacts struct {
	facts []SignatureFact
	at    time.Time
}

type decisionKey struct{ registry, policy, env string }

type cachedDecision struct {
	d         Decision
	at, until time.Time
}

// flightKey names one computation under way: facts (factsKey set) or a
// decision (decisionKey set).
type flightKey struct {
	image imageKey
	gen   uint64
	factsKey
	decisionKey
}

// flight is one computation and the callers waiting for it.
type flight struct {
	done    chan struct{} // closed when val and err are set
	val     any
	err     error
	waiters int
	cancel  context.CancelFunc
}

// Facts returns the signature facts of img (its Registry, Repository and
// Digest; the tag is ignored) with key-only signatures checked with keys,
// calling compute on a miss. Failed computations are not cached. The facts
// are shared: do not modify them.
func (c *Cache) Facts(ctx context.Context, img oci.ImageRef, keys []crypto.PublicKey, compute FactsFunc) ([]SignatureFact, error) {
	e, err := c.facts(ctx, img, keys, compute)
	if err != nil {
		return nil, err
	}
	return slices.Clone(e.facts), nil
}

// facts is Facts, also returning when the facts were computed (when the
// computation started, to be conservative). The facts are not copied.
func (c *Cache) facts(ctx context.Context, img oci.ImageRef, keys []crypto.PublicKey, compute FactsFunc) (cachedFacts, error) {
	key, err := cacheImageKey(img)
	if err != nil {
		return cachedFacts{}, err
	}
	fkey := factsKey{registry: img.Registry, keys: keySetID(keys)}
	c.mu.Lock()
	rec := c.image(key)
	if e, ok := rec.facts[fkey]; ok && c.fresh(e.at, c.now()) {
		c.hits++
		c.mu.Unlock()
		return e, nil
	}
	c.misses++
	fk := flightKey{image: key, gen: rec.gen, factsKey: fkey}
	v, err := c.do(ctx, fk, func(ctx context.Context) (any, error) {
		at := c.now()
		facts, err := compute(ctx, slices.Clone(keys))
		return cachedFacts{facts: facts, at: at}, err
	}, func(v any) {
		if rec := c.current(fk); rec != nil {
			if len(rec.facts) >= maxCachedFacts {
				deleteOldest(rec.facts, func(e cachedFacts) time.Time { return e.at })
			}
			rec.facts[fkey] = v.(cachedFacts)
		}
	})
	if err != nil {
		return cachedFacts{}, err
	}
	return v.(cachedFacts), nil
}

// Decision returns p's decision for img (Registry, Repository, Digest) in
// environment env ("" for the one covering the repository), evaluated at
// the cache's clock over the image's facts (Facts, with compute and the
// policy's PublicKeys). The policy is resolved for img.Registry first
// (Policy.ForRegistry), so a Notation directory's registry scopes apply.
// Errors (an unknown environment, failed discovery) are not cached.
func (c *Cache) Decision(ctx context.Context, p *Policy, img oci.ImageRef, env string, compute FactsFunc) (Decision, error) {
	key, err := cacheImageKey(img)
	if err != nil {
		return Decision{}, err
	}
	type result struct {
		d     Decision
		facts cachedFacts
		at    time.Time
	}
	evaluate := func(ctx context.Context) (any, error) {
		facts, err := c.facts(ctx, img, p.PublicKeys(), compute)
		if err != nil {
			return nil, err
		}
		now := c.now()
		d, err := p.ForRegistry(img.Registry).Evaluate(img.Repository, img.Digest, env, facts.facts, now)
		return result{d, facts, now}, err
	}
	if p.Version() == "" {
		// A policy not loaded from files has no identity to key on.
		v, err := evaluate(ctx)
		if err != nil {
			return Decision{}, err
		}
		return v.(result).d, nil
	}

	dk := decisionKey{registry: img.Registry, policy: p.Version(), env: env}
	c.mu.Lock()
	rec := c.image(key)
	now := c.now()
	if e, ok := rec.decisions[dk]; ok && !now.Before(e.at) && now.Before(e.until) {
		c.hits++
		c.mu.Unlock()
		return cloneDecision(e.d), nil
	}
	c.misses++
	fk := flightKey{image: key, gen: rec.gen, decisionKey: dk}
	v, err := c.do(ctx, fk, evaluate, func(v any) {
		r := v.(result)
		if rec := c.current(fk); rec != nil {
			if len(rec.decisions) >= maxCachedDecisions {
				deleteOldest(rec.decisions, func(e cachedDecision) time.Time { return e.at })
			}
			// Not past the facts' own age limit either.
			until := decisionValidUntil(p, r.facts.facts, r.at, c.maxAge)
			if limit := r.facts.at.Add(c.maxAge); limit.Before(until) {
				until = limit
			}
			rec.decisions[dk] = cachedDecision{d: r.d, at: r.at, until: until}
		}
	})
	if err != nil {
		return Decision{}, err
	}
	return cloneDecision(v.(result).d), nil
}

// Invalidate forgets everything cached about repo@d, on every registry:
// call it when a signature or approval of the image is added or removed.
// Computations under way when it is called do not store their results.
func (c *Cache) Invalidate(repo string, d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := imageKey{repo: repo, digest: d}
	if el, ok := c.images[key]; ok {
		c.lru.Remove(el)
		delete(c.images, key)
	}
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Hits: c.hits, Misses: c.misses, Images: len(c.images)}
}

func cacheImageKey(img oci.ImageRef) (imageKey, error) {
	if img.Repository == "" {
		return imageKey{}, errors.New("trust cache: no repository")
	}
	if _, err := oci.ParseDigest(img.Digest.String()); err != nil {
		return imageKey{}, fmt.Errorf("trust cache: image digest: %w", err)
	}
	return imageKey{repo: img.Repository, digest: img.Digest}, nil
}

// image returns the record for key, making it (and evicting the least
// recently used beyond maxImages) if needed. c.mu must be held.
func (c *Cache) image(key imageKey) *cachedImage {
	if el, ok := c.images[key]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*cachedImage)
	}
	c.gen++
	rec := &cachedImage{key: key, gen: c.gen, facts: map[factsKey]cachedFacts{}, decisions: map[decisionKey]cachedDecision{}}
	c.images[key] = c.lru.PushFront(rec)
	for c.lru.Len() > c.maxImages {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.images, old.Value.(*cachedImage).key)
	}
	return rec
}

// current returns the record a flight may store into: the same image,
// not invalidated (or evicted) since the flight started. c.mu must be held.
func (c *Cache) current(fk flightKey) *cachedImage {
	if el, ok := c.images[fk.image]; ok {
		if rec := el.Value.(*cachedImage); rec.gen == fk.gen {
			return rec
		}
	}
	return nil
}

func (c *Cache) fresh(at, now time.Time) bool {
	return !now.Before(at) && now.Sub(at) < c.maxAge
}

// do joins the computation for key, starting run in its own goroutine if
// none is under way, and waits for it or for ctx. store is called with the
// result, under c.mu, when run succeeds. c.mu must be held on entry; it is
// released on return.
//
// run gets a context carrying the first caller's values but not its
// cancellation: it is cancelled when every caller has stopped waiting.
func (c *Cache) do(ctx context.Context, key flightKey, run func(context.Context) (any, error), store func(any)) (any, error) {
	f, ok := c.flights[key]
	if !ok {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[key] = f
		go func() {
			defer cancel()
			v, err := runRecovered(fctx, run)
			c.mu.Lock()
			f.val, f.err = v, err
			if err == nil {
				store(v)
			}
			if c.flights[key] == f {
				delete(c.flights, key)
			}
			c.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		c.mu.Lock()
		if f.waiters--; f.waiters == 0 {
			f.cancel()
			// Later callers start afresh rather than join a cancelled run.
			if c.flights[key] == f {
				delete(c.flights, key)
			}
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// runRecovered turns a panic in run into an error: waiters must not hang,
// and a bad signature must not take a server down.
func runRecovered(ctx context.Context, run func(context.Context) (any, error)) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("trust cache: computation panicked: %v", r)
		}
	}()
	return run(ctx)
}

// keySetID identifies a set of public keys, whatever their order.
func keySetID(keys []crypto.PublicKey) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = keyFingerprint(k)
	}
	slices.Sort(ids)
	return strings.Join(slices.Compact(ids), ",")
}

func deleteOldest[K comparable, V any](m map[K]V, at func(V) time.Time) {
	var oldest K
	first := true
	for k, v := range m {
		if first || at(v).Before(at(m[oldest])) {
			oldest, first = k, false
		}
	}
	delete(m, oldest)
}

// cloneDecision copies the slices a caller might modify.
func cloneDecision(d Decision) Decision {
	d.Satisfied = slices.Clone(d.Satisfied)
	d.Signatures = slices.Clone(d.Signatures)
	return d
}

// decisionValidUntil is when a decision made at "at" stops being reusable:
// after maxAge, or at the first moment after "at" when time alone could
// change it. Evaluate checks every certificate it uses (the signatures'
// chains and the policy's roots) for validity at the evaluation time, and
// refuses CRLs past their next update; a certificate becoming valid or
// expiring, or a CRL going stale, can turn the decision either way.
func decisionValidUntil(p *Policy, facts []SignatureFact, at time.Time, maxAge time.Duration) time.Time {
	until := at.Add(maxAge)
	earlier := func(t time.Time) {
		if t.After(at) && t.Before(until) {
			until = t
		}
	}
	certs := func(cs []*x509.Certificate) {
		for _, c := range cs {
			earlier(c.NotBefore)
			earlier(c.NotAfter)
		}
	}
	for _, a := range p.Authorities {
		certs(a.Roots)
		for _, crl := range a.CRLs {
			earlier(crl.List.NextUpdate)
		}
	}
	for _, f := range facts {
		certs(f.Chain)
	}
	return until
}
