package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/inventory"
	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/policy"
	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/image"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
	"github.com/bulwark-dev/bulwark/internal/scan/lint"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
	scanstore "github.com/bulwark-dev/bulwark/internal/scan/store"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// The registry's scanner (docs/scanning.md, "Registry scanning and
// maintenance"):
//
//   - Every image manifest the registry accepts is queued once per digest
//     (scanQueue: bounded, deduplicated, never blocking the push). Evidence
//     (a manifest with a subject), artifacts whose config is not an image
//     config, and indexes are not scanned: an index's platforms arrive as
//     pushes of their own, and its scan facts are theirs.
//   - A worker reads the layers straight from the blob store (no HTTP, no
//     quarantine: the scanner is part of the registry), catalogs them and
//     runs the image lint in the same pass, matches the SBOM against
//     DATA/vulndb.db (the file `bulwark vulndb import --data DATA` writes),
//     and stores all three in DATA/scan.db (internal/scan/store).
//   - Nothing is persisted about the queue: on start, and whenever the
//     queue overflowed, a sweep walks the registry's manifests and queues
//     every image without a stored result. A failed scan is retried by
//     later sweeps up to maxScanAttempts times.
//   - The policy gate reads the stored results as the policy input's scan
//     facts. A completed scan or a changed report drops the gate's cached
//     pull decisions for the digest and re-decides it where it is
//     quarantined (Registry.Redecide), together with indexes that list it.
//   - The maintenance loop polls the vulnerability database; when its
//     generation moves, every stored SBOM is re-matched (no layer is read
//     again), reports are diffed, and each image with new findings gets
//     one audit event (scan.findings) and a place in one webhook POST.

// Audit actions of the scanner.
const (
	auditScan         = "scan"
	auditScanFindings = "scan.findings"
)

const (
	// maxScanAttempts bounds how often sweeps retry a failed scan.
	maxScanAttempts = 3
	// scanQueueMax bounds the digests waiting to be scanned; beyond it a
	// push is not queued and the next sweep finds it.
	scanQueueMax = 10000
	// rematchBatch is how many SBOMs are re-matched and stored per
	// transaction (a scan waits at most one batch for the matcher).
	rematchBatch = 64
	// webhook bounds: one POST per re-match, never unbounded.
	webhookMaxImages   = 1000
	webhookMaxFindings = 100
	webhookMaxRunning  = 100
)

// scannerName is the policy input's scan.scanner.
const scannerName = "bulwark"

// scanner is the server's background scanner; nil when scan.enabled is
// off. See the comment above.
type scanner struct {
	cfg     config.Scan
	dataDir string
	meta    store.Meta
	fetch   *localFetcher
	results *scanstore.Store
	record  func(audit.Event)
	log     *slog.Logger
	queue   *scanQueue
	now     func() time.Time

	// Set by attach once the registry exists.
	gate      *policyGate // nil without a policy
	redecide  func(ctx context.Context, repo string, d digest.Digest) (registry.ReleaseResult, error)
	inventory *inventory.Store

	dbMu    sync.Mutex // guards db, dbIno, matcher
	db      *vulndb.DB
	dbIno   uint64
	matcher *vulndb.Matcher

	// matchMu makes matching and storing one image's report atomic with
	// respect to a re-match batch, so a report never regresses to an
	// older database generation.
	matchMu sync.Mutex
	// rematchMu runs one re-match at a time.
	rematchMu   sync.Mutex
	lastRematch atomic.Pointer[RematchResult]
	// layerScans counts images whose layers were read (tests and status:
	// a re-match must not read layers).
	layerScans atomic.Int64

	webhook *http.Client
	kick    chan struct{} // wakes the maintenance loop (overflow)
}

// openScanner opens DATA/scan.db; nil when scanning is off.
func openScanner(ctx context.Context, cfg config.Config, data *Data, sec *security, inv *inventory.Store, log *slog.Logger) (*scanner, error) {
	if !cfg.Scan.Enabled {
		return nil, nil
	}
	results, err := scanstore.Open(ctx, scanstore.Path(cfg.Data), scanstore.Options{})
	if err != nil {
		return nil, err
	}
	return &scanner{
		cfg:       cfg.Scan,
		dataDir:   cfg.Data,
		meta:      data.Meta,
		fetch:     &localFetcher{meta: data.Meta, blobs: data.Blobs},
		results:   results,
		record:    sec.audit.Record,
		log:       log.With("component", "scanner"),
		queue:     newScanQueue(scanQueueMax),
		now:       time.Now,
		inventory: inv,
		webhook:   &http.Client{Timeout: time.Duration(cfg.Scan.WebhookTimeout)},
		kick:      make(chan struct{}, 1),
	}, nil
}

// observe wraps the registry's event hook: every accepted manifest push is
// queued for scanning. It never blocks.
func (s *scanner) observe(next func(context.Context, registry.Event)) func(context.Context, registry.Event) {
	if s == nil {
		return next
	}
	return func(ctx context.Context, e registry.Event) {
		if next != nil {
			next(ctx, e)
		}
		if e.Action == audit.ActionPush && e.Digest != "" && e.Outcome != "denied" && e.Outcome != "failed" {
			if !s.queue.add(e.Repository, e.Digest) {
				s.wake()
			}
		}
	}
}

func (s *scanner) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// attach connects the scanner to the registry and its gate, once both
// exist.
func (s *scanner) attach(reg *registry.Registry, gate registry.Gate) {
	if s == nil {
		return
	}
	g, ok := gate.(*policyGate)
	if !ok {
		return
	}
	s.gate = g
	g.scans = s
	actor := registry.Actor{Who: audit.SystemWho, Kind: audit.KindSystem, Remote: "local"}
	s.redecide = func(ctx context.Context, repo string, d digest.Digest) (registry.ReleaseResult, error) {
		return reg.Redecide(ctx, actor, repo, d, registry.TriggerScan)
	}
}

// register mounts the scan API and its admin endpoints.
func (s *scanner) register(mux *http.ServeMux, sec *security) {
	if s == nil {
		return
	}
	api := scanstore.Handler(s.results, scanAccess{sec: sec, meta: s.meta}, scanstore.HandlerOptions{
		Logger: s.log, Pending: s.queue.pending})
	mux.Handle("/scan/v1/", api)
	mux.Handle("POST /admin/v1/scan/rematch", sec.adminOnly(http.HandlerFunc(s.adminRematch)))
	mux.Handle("GET /admin/v1/scan/status", sec.adminOnly(http.HandlerFunc(s.adminStatus)))
}

func (s *scanner) close() error {
	if s == nil {
		return nil
	}
	s.dbMu.Lock()
	var errs []error
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db, s.matcher = nil, nil
	}
	s.dbMu.Unlock()
	return errors.Join(append(errs, s.results.Close())...)
}

// run scans until ctx ends: the workers, and the maintenance loop (first
// a sweep, then the database poll).
func (s *scanner) run(ctx context.Context) {
	if s == nil {
		return
	}
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() { s.work(ctx) })
	}
	wg.Go(func() { s.maintain(ctx) })
	wg.Wait()
}

func (s *scanner) work(ctx context.Context) {
	for {
		d, repos, ok := s.queue.next(ctx)
		if !ok {
			return
		}
		s.process(ctx, d, repos)
		if waiting, _ := s.queue.length(); waiting == 0 {
			s.wake() // drained: if pushes were refused meanwhile, sweep for them now
		}
	}
}

func (s *scanner) maintain(ctx context.Context) {
	if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("scan sweep failed", "error", err)
	}
	s.rematchLogged(ctx)
	var tick <-chan time.Time
	if iv := time.Duration(s.cfg.RematchInterval); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			s.rematchLogged(ctx)
		case <-s.kick:
		}
		if s.queue.takeOverflow() {
			if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("scan sweep failed", "error", err)
			}
		}
	}
}

func (s *scanner) rematchLogged(ctx context.Context) {
	if _, err := s.Rematch(ctx, false); err != nil && ctx.Err() == nil && !errors.Is(err, vulndb.ErrNoDatabase) {
		s.log.Error("re-match after a vulnerability database change failed", "error", err)
	}
}

// manifestKind says what the scanner does with a stored manifest.
type manifestKind int

const (
	kindSkip  manifestKind = iota // evidence, artifacts
	kindImage                     // scanned
	kindIndex                     // its children are recorded
)

// dockerImageConfig is Docker's image config media type.
const dockerImageConfig = "application/vnd.docker.container.image.v1+json"

func classifyManifest(m *store.ManifestRecord) manifestKind {
	switch {
	case m.Subject != "":
		return kindSkip
	case oci.IsIndexMediaType(m.MediaType):
		return kindIndex
	case m.ArtifactType == v1.MediaTypeImageConfig || m.ArtifactType == dockerImageConfig:
		return kindImage
	}
	return kindSkip
}

// process scans one digest pushed to repos (or, if it has a result,
// records the new repositories).
func (s *scanner) process(ctx context.Context, d digest.Digest, repos []string) {
	finish := func() []string { return s.queue.done(d) }
	im, err := s.results.Image(ctx, d)
	switch {
	case err == nil && (im.State == scanstore.StateScanned || im.Attempts >= maxScanAttempts):
		all := finish()
		if err := s.results.AddRepositories(ctx, d, all); err != nil {
			s.log.Error("record repositories of a scanned image", "digest", d.String(), "error", err)
		}
		// A push to another repository may have been decided before the
		// scan completed; give it the result.
		s.resultChanged(ctx, d, all, false)
		return
	case err != nil && !errors.Is(err, scanstore.ErrNotFound):
		finish()
		s.log.Error("read scan state", "digest", d.String(), "error", err)
		return
	}
	var (
		m    *store.ManifestRecord
		repo string
	)
	for _, r := range repos {
		if m, err = s.meta.Manifest(ctx, r, d); err == nil {
			repo = r
			break
		}
	}
	if m == nil {
		finish() // deleted meanwhile
		return
	}
	switch classifyManifest(m) {
	case kindSkip:
		finish()
		return
	case kindIndex:
		all := finish()
		for _, r := range all {
			if err := s.results.SetIndex(ctx, r, d, m.Children); err != nil {
				s.log.Error("record index", "digest", d.String(), "error", err)
			}
		}
		s.resultChanged(ctx, d, all, false)
		return
	}

	sc, err := s.scanImage(ctx, repo, d)
	if err != nil {
		all := finish()
		if ctx.Err() != nil {
			return // shutting down: the next start's sweep scans it
		}
		attempts, serr := s.results.PutFailure(ctx, d, all, err.Error())
		if serr != nil {
			s.log.Error("record failed scan", "digest", d.String(), "error", serr)
		}
		s.log.Warn("scan failed", "repository", repo, "digest", d.String(), "attempt", attempts, "error", err)
		s.record(audit.Event{Who: audit.SystemWho, Kind: audit.KindSystem, Action: auditScan, Repository: repo,
			Digest: d.String(), Outcome: audit.OutcomeFailed, Detail: fmt.Sprintf("attempt %d: %v", attempts, err)})
		return
	}
	sc.Repositories = repos
	s.matchMu.Lock()
	matcher, err := s.matcherNow(ctx)
	if err != nil {
		s.log.Error("open vulnerability database", "error", err)
	}
	if matcher != nil {
		if sc.Report, err = matcher.Match(ctx, sc.SBOM); err != nil {
			s.log.Error("match", "digest", d.String(), "error", err)
			sc.Report = nil // stored without; the next re-match fills it in
		}
	}
	_, err = s.results.PutScan(ctx, sc)
	s.matchMu.Unlock()
	all := finish()
	if err != nil {
		s.log.Error("store scan", "digest", d.String(), "error", err)
		return
	}
	if extra := slices.DeleteFunc(slices.Clone(all), func(r string) bool { return slices.Contains(repos, r) }); len(extra) > 0 {
		if err := s.results.AddRepositories(ctx, d, extra); err != nil {
			s.log.Error("record repositories of a scanned image", "digest", d.String(), "error", err)
		}
	}
	s.record(audit.Event{Who: audit.SystemWho, Kind: audit.KindSystem, Action: auditScan, Repository: repo,
		Digest: d.String(), Outcome: audit.OutcomeOK, Detail: scanSummary(sc)})
	s.resultChanged(ctx, d, all, true)
}

// scanImage reads the image's layers from the blob store, once, for its
// SBOM and lint findings.
func (s *scanner) scanImage(ctx context.Context, repo string, d digest.Digest) (*scanstore.Scan, error) {
	s.layerScans.Add(1)
	img, err := image.Fetch(ctx, s.fetch, oci.ImageRef{Repository: repo, Digest: d}, image.DefaultPlatform())
	if err != nil {
		return nil, err
	}
	defer img.Close()
	la := lint.NewAnalyzer()
	sb, tree, err := catalog.Image(ctx, img, catalog.Options{Tool: scannerName, Walk: rootfs.Options{Logger: slog.New(slog.DiscardHandler)}}, la)
	if err != nil {
		return nil, err
	}
	sb.Source.Name = repo + "@" + d.String()
	sc := &scanstore.Scan{Digest: d, SBOM: sb,
		Lint: lint.Check(lint.Input{SBOM: sb, Tree: tree, Analyzer: la, Config: &img.Config, RawConfig: img.ConfigBytes})}
	for _, p := range tree.Problems {
		sc.Problems = append(sc.Problems, p.String())
	}
	return sc, nil
}

func scanSummary(sc *scanstore.Scan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d packages", len(sc.SBOM.Packages))
	if r := sc.Report; r != nil {
		fmt.Fprintf(&b, "; %d vulnerabilities", len(r.Findings))
		if max, ok := r.MaxSeverity(); ok {
			fmt.Fprintf(&b, " (max %s, %d fixable)", max, r.Fixable())
		}
		fmt.Fprintf(&b, ", database generation %d", r.Database.Generation)
	} else {
		b.WriteString("; not matched (no vulnerability database yet)")
	}
	fmt.Fprintf(&b, "; %d lint findings", len(sc.Lint))
	if max, ok := lint.Max(sc.Lint); ok {
		fmt.Fprintf(&b, " (max %s)", max)
	}
	if n := len(sc.Problems); n > 0 {
		fmt.Fprintf(&b, "; %d files not read", n)
	}
	return b.String()
}

// resultChanged makes decisions see a digest's new scan result: cached
// pull decisions about it (and about indexes listing it) are dropped, and
// where it or such an index is quarantined, the push policy re-decides.
// Without a policy there is nothing to tell. When changed is false (a
// push of an already scanned digest) only quarantines are re-decided.
func (s *scanner) resultChanged(ctx context.Context, d digest.Digest, repos []string, changed bool) {
	if s.gate == nil {
		return
	}
	targets := make([]scanstore.RepoDigest, 0, len(repos))
	for _, r := range repos {
		targets = append(targets, scanstore.RepoDigest{Repository: r, Digest: d})
	}
	parents, err := s.results.Indexes(ctx, d)
	if err != nil {
		s.log.Error("read indexes of a scanned image", "digest", d.String(), "error", err)
	}
	targets = append(targets, parents...)
	for _, t := range targets {
		if changed {
			s.gate.forgetScan(t.Digest)
		}
		q, err := s.meta.Quarantined(ctx, t.Repository, t.Digest)
		if err != nil || q == nil {
			if err != nil && !errors.Is(err, store.ErrManifestUnknown) {
				s.log.Error("read quarantine", "repository", t.Repository, "digest", t.Digest.String(), "error", err)
			}
			continue
		}
		res, err := s.redecide(ctx, t.Repository, t.Digest)
		switch {
		case errors.Is(err, store.ErrNotQuarantined):
		case err != nil:
			s.log.Error("re-decide after scan", "repository", t.Repository, "digest", t.Digest.String(), "error", err)
		default:
			s.log.Info("re-decided after scan", "repository", t.Repository, "digest", t.Digest.String(), "released", res.Released,
				"decision", res.DecisionID)
		}
	}
}

// matcherNow returns a matcher for the vulnerability database as it is
// now, or nil when there is no database. The file is re-opened when it
// was replaced (a new inode), and a new matcher made when its generation
// moved.
func (s *scanner) matcherNow(ctx context.Context) (*vulndb.Matcher, error) {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	path := vulndb.PathIn(s.dataDir)
	fi, err := os.Stat(path)
	var ino uint64
	if err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
	}
	if s.db != nil && (err != nil || ino != s.dbIno) {
		s.db.Close()
		s.db, s.matcher = nil, nil
	}
	if err != nil {
		return nil, nil // no database (yet)
	}
	if s.db == nil {
		db, err := vulndb.Open(ctx, path, vulndb.Options{ReadOnly: true})
		if errors.Is(err, vulndb.ErrNoDatabase) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		s.db, s.dbIno = db, ino
	}
	gen, err := s.db.Generation(ctx)
	if err != nil {
		return nil, fmt.Errorf("read vulnerability database generation: %w", err)
	}
	if s.matcher == nil || s.matcher.Database().Generation != gen {
		if s.matcher, err = s.db.NewMatcher(ctx); err != nil {
			return nil, err
		}
	}
	return s.matcher, nil
}

// sweep queues every image manifest without a stored result (a push the
// queue refused, a scan a restart interrupted, a retry of a failure) and
// forgets results of digests the registry no longer holds.
func (s *scanner) sweep(ctx context.Context) error {
	start := s.now()
	images, err := s.results.Images(ctx)
	if err != nil {
		return err
	}
	known := make(map[digest.Digest]scanstore.Image, len(images))
	for _, im := range images {
		known[im.Digest] = im
	}
	type item struct {
		repo string
		d    digest.Digest
	}
	var (
		todo    []item
		indexes []*store.ManifestRecord
		idxRepo []string
		seen    = map[digest.Digest]bool{}
	)
	err = s.meta.WalkManifests(ctx, func(repo string, m *store.ManifestRecord) error {
		seen[m.Digest] = true
		switch classifyManifest(m) {
		case kindIndex:
			indexes, idxRepo = append(indexes, m), append(idxRepo, repo)
		case kindImage:
			if im, ok := known[m.Digest]; !ok || (im.State == scanstore.StateFailed && im.Attempts < maxScanAttempts) {
				todo = append(todo, item{repo, m.Digest})
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk manifests: %w", err)
	}
	var gone []digest.Digest
	for d, im := range known {
		if !seen[d] && im.Updated.Before(start) {
			gone = append(gone, d)
		}
	}
	if len(gone) > 0 {
		if err := s.results.Delete(ctx, gone); err != nil {
			return err
		}
	}
	for i, m := range indexes {
		if err := s.results.SetIndex(ctx, idxRepo[i], m.Digest, m.Children); err != nil {
			return err
		}
	}
	queued := 0
	for _, it := range todo {
		if !s.queue.add(it.repo, it.d) {
			break // full: the overflow flag brings another sweep
		}
		queued++
	}
	if queued > 0 || len(gone) > 0 {
		s.log.Info("scan sweep", "queued", queued, "unscanned", len(todo), "forgotten", len(gone))
	}
	return nil
}

// RematchResult is what one re-match did.
type RematchResult struct {
	Generation int64     `json:"generation"`
	Started    time.Time `json:"started"`
	Seconds    float64   `json:"seconds"`
	// Images is how many stored SBOMs were re-matched; Changed how many
	// reports changed findings; NewFindings the findings added over all.
	Images      int `json:"images"`
	Changed     int `json:"changed"`
	NewFindings int `json:"newFindings"`
	// Webhook is the notification's outcome ("" when none was due).
	Webhook string `json:"webhook,omitempty"`
}

// Rematch re-matches the stored SBOMs whose report does not answer for
// the vulnerability database's current generation (all of them with
// all), stores the new reports, and reports what changed: an audit event
// per image with new findings, one webhook POST for all of them. It
// returns vulndb.ErrNoDatabase when there is no database.
func (s *scanner) Rematch(ctx context.Context, all bool) (RematchResult, error) {
	s.rematchMu.Lock()
	defer s.rematchMu.Unlock()
	res := RematchResult{Started: s.now().UTC()}
	s.matchMu.Lock()
	m, err := s.matcherNow(ctx)
	s.matchMu.Unlock()
	if err != nil {
		return res, err
	}
	if m == nil {
		return res, vulndb.ErrNoDatabase
	}
	res.Generation = m.Database().Generation
	stale, err := s.results.Stale(ctx, res.Generation, all)
	if err != nil || len(stale) == 0 {
		return res, err
	}
	start := time.Now()
	var changes []scanstore.Change
	for batch := range slices.Chunk(stale, rematchBatch) {
		sboms, err := s.results.SBOMs(ctx, batch)
		if err != nil {
			return res, err
		}
		var matched []scanstore.Matched
		s.matchMu.Lock()
		n, err := vulndb.Rematch(ctx, m, slicesSeq2(sboms), func(sb *sbom.SBOM, r *vulndb.Report) error {
			matched = append(matched, scanstore.Matched{Digest: sb.Source.Digest, Report: r})
			return nil
		})
		if err == nil {
			var chs []scanstore.Change
			chs, err = s.results.PutReports(ctx, matched)
			for _, ch := range chs {
				if ch.Changed() {
					changes = append(changes, ch)
				}
			}
		}
		s.matchMu.Unlock()
		res.Images += n
		if err != nil {
			return res, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.Changed = len(changes)
	notice := findingsNotice{Event: auditScanFindings, Time: s.now().UTC(), Database: m.Database()}
	for _, ch := range changes {
		repos, err := s.results.Repositories(ctx, ch.Digest)
		if err != nil {
			s.log.Error("read repositories of a re-matched image", "digest", ch.Digest.String(), "error", err)
		}
		s.resultChanged(ctx, ch.Digest, repos, true)
		if len(ch.Added) == 0 {
			continue
		}
		res.NewFindings += len(ch.Added)
		running := s.runningOn(ctx, ch.Digest)
		s.record(audit.Event{Who: audit.SystemWho, Kind: audit.KindSystem, Action: auditScanFindings,
			Repository: firstOr(repos, ""), Digest: ch.Digest.String(), Outcome: audit.OutcomeOK,
			Detail: findingsSummary(ch, res.Generation, running)})
		if len(notice.Images) < webhookMaxImages {
			notice.Images = append(notice.Images, imageNoticeOf(ch, repos, running))
		} else {
			notice.OmittedImages++
		}
	}
	s.log.Info("re-matched stored SBOMs", "generation", res.Generation, "images", res.Images, "changed", res.Changed,
		"new_findings", res.NewFindings, "seconds", res.Seconds)
	if s.cfg.Webhook != "" && len(notice.Images) > 0 {
		res.Webhook = s.notify(ctx, &notice)
	}
	s.lastRematch.Store(&res)
	return res, nil
}

func slicesSeq2(sboms []*sbom.SBOM) func(func(*sbom.SBOM, error) bool) {
	return func(yield func(*sbom.SBOM, error) bool) {
		for _, sb := range sboms {
			if !yield(sb, nil) {
				return
			}
		}
	}
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// runningOn lists the containers the inventory says run d.
func (s *scanner) runningOn(ctx context.Context, d digest.Digest) []runningRef {
	if s.inventory == nil {
		return nil
	}
	recs, _, err := s.inventory.Running(ctx, inventory.Query{Digest: d.String()})
	if err != nil {
		s.log.Error("read inventory", "digest", d.String(), "error", err)
		return nil
	}
	out := make([]runningRef, 0, min(len(recs), webhookMaxRunning))
	for _, r := range recs[:min(len(recs), webhookMaxRunning)] {
		out = append(out, runningRef{Host: r.Host, Container: r.Container, Environment: r.Environment, Image: r.Image})
	}
	return out
}

func findingsSummary(ch scanstore.Change, gen int64, running []runningRef) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d new findings (vulnerability database generation %d", len(ch.Added), gen)
	if ch.First {
		b.WriteString(", the image's first report")
	}
	b.WriteString("): ")
	for i, f := range ch.Added {
		if i == 10 {
			fmt.Fprintf(&b, ", and %d more", len(ch.Added)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s, %s %s", f.ID, f.Severity.Rating, f.Package.Name, f.Package.Version)
		if f.Fixed != "" {
			b.WriteString(", fixed in " + f.Fixed)
		}
		b.WriteString(")")
	}
	if len(running) > 0 {
		fmt.Fprintf(&b, "; running in %d containers:", len(running))
		for i, r := range running {
			if i == 5 {
				b.WriteString(" …")
				break
			}
			b.WriteString(" " + r.Host + "/" + r.Container)
		}
	}
	return b.String()
}

// findingsNotice is the webhook's JSON body.
type findingsNotice struct {
	Event    string             `json:"event"`
	Time     time.Time          `json:"time"`
	Database vulndb.DatabaseRef `json:"database"`
	Images   []imageNotice      `json:"images"`
	// OmittedImages counts images with new findings beyond the first
	// 1,000 (the audit log has every one).
	OmittedImages int `json:"omittedImages,omitempty"`
}

type imageNotice struct {
	Digest       digest.Digest   `json:"digest"`
	Repositories []string        `json:"repositories"`
	New          []noticeFinding `json:"new"`
	NewCount     int             `json:"newCount"`
	RemovedCount int             `json:"removedCount"`
	Running      []runningRef    `json:"running"`
}

type noticeFinding struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases,omitempty"`
	Severity string   `json:"severity"`
	Package  string   `json:"package"`
	Version  string   `json:"version"`
	Fixed    string   `json:"fixed,omitempty"`
	URL      string   `json:"url,omitempty"`
}

type runningRef struct {
	Host        string `json:"host"`
	Container   string `json:"container"`
	Image       string `json:"image"`
	Environment string `json:"environment,omitempty"`
}

func imageNoticeOf(ch scanstore.Change, repos []string, running []runningRef) imageNotice {
	n := imageNotice{Digest: ch.Digest, Repositories: repos, NewCount: len(ch.Added), RemovedCount: len(ch.Removed), Running: running}
	if n.Repositories == nil {
		n.Repositories = []string{}
	}
	if n.Running == nil {
		n.Running = []runningRef{}
	}
	for _, f := range ch.Added[:min(len(ch.Added), webhookMaxFindings)] {
		n.New = append(n.New, noticeFinding{ID: f.ID, Aliases: f.Aliases, Severity: f.Severity.Rating.String(),
			Package: f.Package.Name, Version: f.Package.Version, Fixed: f.Fixed, URL: f.URL})
	}
	return n
}

// notify POSTs the notice to the webhook once: a failure is logged, not
// retried (the audit log has every event; a retry loop against a broken
// receiver helps nobody).
func (s *scanner) notify(ctx context.Context, n *findingsNotice) string {
	body, err := json.Marshal(n)
	if err != nil {
		return "failed: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.WebhookTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.Webhook, bytes.NewReader(body))
	if err != nil {
		return "failed: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", scannerName)
	resp, err := s.webhook.Do(req)
	if err != nil {
		s.log.Warn("scan webhook failed", "error", err)
		return "failed: " + err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.log.Warn("scan webhook refused", "status", resp.Status)
		return "failed: " + resp.Status
	}
	return "sent"
}

// facts are the policy input's scan facts for the manifest req is about:
// its stored report, or for an index its platforms' reports together.
// Anything short of a report for every image is "not available" (rules
// then fail closed); a store error is logged and also "not available",
// so a broken scan store fails scan rules, not every decision.
func (s *scanner) facts(ctx context.Context, req *registry.GateRequest) policy.Scan {
	ds := []digest.Digest{req.Digest}
	if oci.IsIndexMediaType(req.MediaType) {
		m, err := req.Parsed()
		if err != nil {
			return policy.Scan{}
		}
		ds = ds[:0]
		for _, c := range m.Manifests {
			if oci.IsManifestMediaType(c.MediaType) && !oci.IsIndexMediaType(c.MediaType) {
				ds = append(ds, c.Digest)
			}
		}
		if len(ds) == 0 {
			return policy.Scan{}
		}
	}
	out := policy.Scan{Available: true, Scanner: scannerName, Vulnerabilities: []policy.Vulnerability{}, Lint: []policy.LintFinding{}}
	seen := map[policy.Vulnerability]bool{}
	seenLint := map[policy.LintFinding]bool{}
	for _, d := range ds {
		f, err := s.results.Facts(ctx, d)
		if err != nil {
			if !errors.Is(err, scanstore.ErrNotFound) {
				s.log.Error("read scan facts", "digest", d.String(), "error", err)
			}
			return policy.Scan{}
		}
		if !f.Image.HasReport() {
			return policy.Scan{}
		}
		if f.Image.Matched.After(out.Time) {
			out.Time = f.Image.Matched
		}
		for _, x := range f.Findings {
			v := policy.Vulnerability{ID: x.ID, Severity: strings.ToLower(x.Severity), Package: x.Package,
				Version: x.Version, FixedVersion: x.Fixed}
			if !seen[v] {
				seen[v] = true
				out.Vulnerabilities = append(out.Vulnerabilities, v)
			}
		}
		for _, x := range f.Lint {
			l := policy.LintFinding{ID: x.ID, Severity: strings.ToLower(x.Severity.String()), Message: x.Message}
			if !seenLint[l] {
				seenLint[l] = true
				out.Lint = append(out.Lint, l)
			}
		}
	}
	return out
}

// scanFacts fills the policy input's scan facts (policygate.go).
func (g *policyGate) scanFacts(ctx context.Context, req *registry.GateRequest) policy.Scan {
	if g.scans == nil {
		return policy.Scan{}
	}
	return g.scans.facts(ctx, req)
}

// forgetScan drops what the gate remembers that depends on d's scan
// facts: its pull decisions (image facts hold no scan facts).
func (g *policyGate) forgetScan(d digest.Digest) { g.pulls.invalidateDigest(d) }

func (c *pullCache) invalidateDigest(d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.digest == d {
			delete(c.m, k)
		}
	}
}

// scanStatus is GET /admin/v1/scan/status.
type scanStatus struct {
	Waiting     int                 `json:"waiting"`
	Running     int                 `json:"running"`
	LayerScans  int64               `json:"layerScans"` // images whose layers this process read
	Stored      scanstore.Stats     `json:"stored"`
	Database    *vulndb.DatabaseRef `json:"database,omitempty"`
	LastRematch *RematchResult      `json:"lastRematch,omitempty"`
}

func (s *scanner) status(ctx context.Context) (scanStatus, error) {
	st := scanStatus{LayerScans: s.layerScans.Load(), LastRematch: s.lastRematch.Load()}
	st.Waiting, st.Running = s.queue.length()
	var err error
	if st.Stored, err = s.results.Stats(ctx); err != nil {
		return st, err
	}
	s.matchMu.Lock()
	m, err := s.matcherNow(ctx)
	s.matchMu.Unlock()
	if err != nil {
		return st, err
	}
	if m != nil {
		ref := m.Database()
		st.Database = &ref
	}
	return st, nil
}

func (s *scanner) adminStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	if err != nil {
		s.log.Error("scan status", "error", err)
		http.Error(w, "scan status failed (see the server log)", http.StatusInternalServerError)
		return
	}
	writeJSON(w, st)
}

// adminRematch is POST /admin/v1/scan/rematch[?all=true]: re-match now
// (all: every stored SBOM, not only those behind the database).
func (s *scanner) adminRematch(w http.ResponseWriter, r *http.Request) {
	all, _ := strconv.ParseBool(r.URL.Query().Get("all"))
	res, err := s.Rematch(r.Context(), all)
	switch {
	case errors.Is(err, vulndb.ErrNoDatabase):
		http.Error(w, err.Error(), http.StatusConflict)
	case err != nil:
		s.log.Error("re-match", "error", err)
		http.Error(w, "re-match failed (see the server log)", http.StatusInternalServerError)
	default:
		writeJSON(w, res)
	}
}

// scanAccess is the scan API's access rule: a result is readable by whoever
// may pull the repository named, if it holds the digest; a quarantined
// manifest's only by its pusher and administrators (as the manifest
// itself). Credentials are those of the inventory API (Basic or a bearer
// token; loopback only without accounts).
type scanAccess struct {
	sec  *security
	meta store.Meta
}

func (a scanAccess) Challenge(*http.Request) string { return `Basic realm="bulwark"` }

func (a scanAccess) Authorize(r *http.Request, repo string, d digest.Digest) error {
	c, err := inventoryAuthn{sec: a.sec}.Authenticate(r)
	switch {
	case errors.Is(err, inventory.ErrForbidden):
		return fmt.Errorf("%w: %w", scanstore.ErrForbidden, err)
	case errors.Is(err, inventory.ErrUnavailable):
		return fmt.Errorf("%w: %w", scanstore.ErrUnavailable, err)
	case err != nil:
		return fmt.Errorf("%w: %w", scanstore.ErrUnauthenticated, err)
	case c == nil:
		return scanstore.ErrUnauthenticated
	}
	ctx := r.Context()
	if !c.MayPull(ctx, repo) {
		return fmt.Errorf("%w: %s may not pull %s", scanstore.ErrForbidden, c.Name(), repo)
	}
	_, q, err := a.meta.ManifestWithQuarantine(ctx, repo, d)
	switch {
	case errors.Is(err, store.ErrManifestUnknown), errors.Is(err, store.ErrRepoUnknown):
		return scanstore.ErrNoImage
	case err != nil:
		return fmt.Errorf("%w: %w", scanstore.ErrUnavailable, err)
	}
	if q != nil && !c.Admin(ctx) && !(q.PusherKind != audit.KindAnonymous && q.Pusher == c.Name() && q.PusherKind == c.Kind()) {
		return fmt.Errorf("%w: %s@%s is quarantined (only its pusher and administrators may see it)", scanstore.ErrForbidden, repo, d)
	}
	return nil
}

// scanQueue holds the digests waiting to be scanned, each once: a digest
// pushed again (another tag, another repository) while it waits or is
// being scanned only adds its repository. add never blocks; beyond max
// waiting digests it refuses and remembers that it did (overflow), and
// the scanner's next sweep finds what was refused.
type scanQueue struct {
	mu       sync.Mutex
	max      int
	waiting  map[digest.Digest][]string
	order    []digest.Digest
	running  map[digest.Digest][]string
	overflow bool
	wake     chan struct{}
}

// maxQueuedRepos bounds the repositories remembered per queued digest.
const maxQueuedRepos = 64

func newScanQueue(max int) *scanQueue {
	return &scanQueue{max: max, waiting: map[digest.Digest][]string{}, running: map[digest.Digest][]string{},
		wake: make(chan struct{}, 1)}
}

func appendRepo(repos []string, repo string) []string {
	if repo == "" || slices.Contains(repos, repo) || len(repos) >= maxQueuedRepos {
		return repos
	}
	return append(repos, repo)
}

func (q *scanQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// add queues d, pushed to repo; false when the queue is full.
func (q *scanQueue) add(repo string, d digest.Digest) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if repos, ok := q.running[d]; ok {
		q.running[d] = appendRepo(repos, repo)
		return true
	}
	if repos, ok := q.waiting[d]; ok {
		q.waiting[d] = appendRepo(repos, repo)
		return true
	}
	if len(q.waiting) >= q.max {
		q.overflow = true
		return false
	}
	q.waiting[d] = appendRepo(nil, repo)
	q.order = append(q.order, d)
	q.signal()
	return true
}

// next waits for a digest to scan, marks it running and returns it with
// its repositories; false when ctx ended.
func (q *scanQueue) next(ctx context.Context) (digest.Digest, []string, bool) {
	for {
		q.mu.Lock()
		if len(q.order) > 0 {
			d := q.order[0]
			q.order = q.order[1:]
			if len(q.order) == 0 {
				q.order = nil // let the backing array go
			} else {
				q.signal() // another worker may take the next one
			}
			repos := q.waiting[d]
			delete(q.waiting, d)
			q.running[d] = slices.Clone(repos)
			q.mu.Unlock()
			return d, repos, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", nil, false
		case <-q.wake:
		}
	}
}

// done ends d's scan and returns every repository it was pushed to
// meanwhile, the first ones included.
func (q *scanQueue) done(d digest.Digest) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	repos := q.running[d]
	delete(q.running, d)
	return repos
}

// pending reports whether d waits or is being scanned.
func (q *scanQueue) pending(d digest.Digest) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, w := q.waiting[d]
	_, r := q.running[d]
	return w || r
}

// takeOverflow reports (and clears) whether add refused something.
func (q *scanQueue) takeOverflow() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	o := q.overflow
	q.overflow = false
	return o
}

func (q *scanQueue) length() (waiting, running int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting), len(q.running)
}
