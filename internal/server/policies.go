package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulwark-dev/bulwark/internal/policy"
	"github.com/bulwark-dev/bulwark/internal/trust"
)

// policies holds the trust policy and the rule policy serve enforces, and
// replaces them when their files change. Readers take a snapshot with
// current(); a reload builds a whole new snapshot and swaps it in, so a
// request decides with one consistent pair and none waits for a reload.
type policies struct {
	trustPath, rulesPath string
	log                  *slog.Logger

	cur atomic.Pointer[policySnapshot]
	mu  sync.Mutex // serialises reloads
}

// policySnapshot is one loaded pair. Either may be nil: no trust policy
// (the built-in rule "signed" then fails closed), or no rule policy (no
// gate at all; serve does not build one).
type policySnapshot struct {
	trust *trust.Policy
	rules *policy.Policy
	// rulesSum is the SHA-256 of the rule file as read, to tell a change
	// without recompiling.
	rulesSum string
}

// loadPolicies loads both files. A policy that does not load stops the
// server from starting: serving without the policy the operator asked for
// would be failing open.
func loadPolicies(trustPath, rulesPath string, log *slog.Logger) (*policies, error) {
	p := &policies{trustPath: trustPath, rulesPath: rulesPath, log: log}
	snap, err := p.load(nil)
	if err != nil {
		return nil, err
	}
	p.cur.Store(snap)
	return p, nil
}

func (p *policies) current() *policySnapshot { return p.cur.Load() }

// load reads both files, reusing prev's compiled rules when the rule file
// is byte-identical (compiling CEL is the expensive part of a reload).
func (p *policies) load(prev *policySnapshot) (*policySnapshot, error) {
	snap := &policySnapshot{}
	if p.trustPath != "" {
		tp, err := trust.LoadPolicy(p.trustPath)
		if err != nil {
			return nil, fmt.Errorf("--trust-policy: %w", err)
		}
		snap.trust = tp
	}
	if p.rulesPath != "" {
		data, err := os.ReadFile(p.rulesPath)
		if err != nil {
			return nil, fmt.Errorf("--policy: %w", err)
		}
		sum := sha256.Sum256(data)
		snap.rulesSum = hex.EncodeToString(sum[:])
		if prev != nil && prev.rules != nil && prev.rulesSum == snap.rulesSum {
			snap.rules = prev.rules
		} else {
			rp, err := policy.Parse(data, p.rulesPath)
			if err != nil {
				return nil, fmt.Errorf("--policy: %w", err)
			}
			snap.rules = rp
		}
	}
	return snap, nil
}

// reload re-reads both files and swaps them in if either changed. On
// error the previous policies stay in force, and the error says why.
func (p *policies) reload() (changed bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.cur.Load()
	next, err := p.load(prev)
	if err != nil {
		return false, err
	}
	if version(next.trust) == version(prev.trust) && next.rulesSum == prev.rulesSum {
		return false, nil
	}
	p.cur.Store(next)
	return true, nil
}

func version(tp *trust.Policy) string {
	if tp == nil {
		return ""
	}
	return tp.Version()
}

// watch reloads on SIGHUP and every interval (the trust policy's version
// covers the roots, keys and CRLs it names, so a new CRL dropped next to
// it is picked up too). A failed reload is logged and retried at the next
// tick; the running policies stay. It returns when ctx ends.
func (p *policies) watch(ctx context.Context, interval time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	lastErr := ""
	for {
		var why string
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case <-tick:
			why = "file check"
		}
		changed, err := p.reload()
		switch {
		case err != nil:
			// Log a persistent error once, not at every tick.
			if msg := err.Error(); msg != lastErr || why == "SIGHUP" {
				p.log.Error("policy reload failed; the previous policies stay in force", "trigger", why, "err", err)
				lastErr = msg
			}
		case changed:
			lastErr = ""
			s := p.current()
			p.log.Info("policies reloaded", "trigger", why, "trust_policy", version(s.trust), "policy", rulesVersion(s.rules))
		default:
			lastErr = ""
		}
	}
}

func rulesVersion(rp *policy.Policy) string {
	if rp == nil {
		return ""
	}
	return rp.Version()
}
