// Package server assembles a running bulwark: the data directory, the
// registry handler, operational endpoints (/healthz, /metrics, loopback-only
// admin endpoints) and the background garbage collector.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-dev/bulwark/internal/audit"
	"github.com/bulwark-dev/bulwark/internal/auth"
	"github.com/bulwark-dev/bulwark/internal/config"
	"github.com/bulwark-dev/bulwark/internal/inventory"
	"github.com/bulwark-dev/bulwark/internal/metrics"
	"github.com/bulwark-dev/bulwark/internal/registry"
)

// Server is a configured bulwark server.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	data     *Data
	registry *registry.Registry
	handler  http.Handler
	tls      *tls.Config // nil: plain HTTP
	sec      *security
	// TrustHelp, with --tls auto, tells users how to trust the local CA.
	TrustHelp string
	// Bootstrap reports the administrator created on first start.
	Bootstrap Bootstrap
	// gcMu keeps scheduled and requested GC runs from overlapping.
	gcMu sync.Mutex
	// policies are the enforced policy files; nil without --policy.
	policies *policies
	// inventory records what runs where (/inventory/v1/, inventory.go).
	inventory *inventory.Store
	// scanner scans pushed images (scanner.go); nil with scan.enabled off.
	scanner *scanner
}

// New opens the data directory and builds the server. Close releases it.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	tlsCfg, trustHelp, err := setupTLS(cfg)
	if err != nil {
		return nil, err
	}
	data, err := OpenData(ctx, cfg.Data)
	if err != nil {
		return nil, err
	}
	sec, boot, err := openSecurity(ctx, cfg, log, AdminPasswordFromEnv())
	if err != nil {
		data.Close()
		return nil, err
	}
	metricReg := metrics.NewRegistry()
	metricReg.MustRegister(metrics.NewGoCollector(), metrics.NewProcessCollector())
	opts := registry.Options{
		Logger:       log,
		Metrics:      registry.NewMetrics(metricReg),
		MaxBlobSize:  cfg.MaxBlobSize,
		AllowSparse:  cfg.AllowSparseManifests,
		UploadExpiry: time.Duration(cfg.GC.UploadExpiry),
		GCGrace:      time.Duration(cfg.GC.Grace),
		OnEvent:      sec.registryEvent,
	}
	if cfg.Auth.Enabled {
		opts.Authorizer = sec
	}
	var pols *policies
	if cfg.Policy != "" {
		if pols, err = loadPolicies(cfg.TrustPolicy, cfg.Policy, log); err != nil {
			sec.close()
			data.Close()
			return nil, err
		}
		opts.Gate = newPolicyGate(pols, data.Meta, data.Blobs, sec.audit.Record, log)
	} else if cfg.TrustPolicy != "" {
		// A trust policy alone decides nothing at the registry: the rules
		// that use it live in the policy file. Say so rather than
		// pretending to enforce it.
		log.Warn("trust_policy is set without policy: pushes and pulls are not decided (add --policy with a binding using the rule \"signed\")")
	}
	inv, invHandler, err := openInventory(ctx, cfg.Data, sec)
	if err != nil {
		sec.close()
		data.Close()
		return nil, err
	}
	scn, err := openScanner(ctx, cfg, data, sec, inv, log)
	if err != nil {
		inv.Close()
		sec.close()
		data.Close()
		return nil, err
	}
	opts.OnEvent = scn.observe(opts.OnEvent)
	reg := data.Registry(opts)
	scn.attach(reg, opts.Gate)
	s := &Server{cfg: cfg, log: log, data: data, registry: reg, tls: tlsCfg, TrustHelp: trustHelp, sec: sec, Bootstrap: boot, policies: pols, inventory: inv, scanner: scn}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricReg.Handler())
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("POST /admin/v1/gc", sec.adminOnly(http.HandlerFunc(s.adminGC)))
	mux.Handle("POST /admin/v1/fsck", sec.adminOnly(http.HandlerFunc(s.adminFsck)))
	mux.Handle("/admin/v1/audit", sec.adminOnly(audit.Handler(sec.audit.Path())))
	mux.Handle("/admin/v1/audit/", sec.adminOnly(audit.Handler(sec.audit.Path())))
	quarantine := http.StripPrefix("/admin/v1", reg.QuarantineAdminHandler(registry.QuarantineAdminOptions{Actor: adminActor}))
	mux.Handle("/admin/v1/quarantine", sec.adminOnly(quarantine))
	mux.Handle("/admin/v1/quarantine/", sec.adminOnly(quarantine))
	mux.Handle("/inventory/v1/", invHandler)
	scn.register(mux, sec)
	if cfg.Auth.Enabled {
		mux.Handle("/token", sec.service)
		accounts := http.StripPrefix("/admin/v1", auth.AdminHandler(sec.accounts, auth.AdminOptions{OnChange: sec.adminChange}))
		for _, p := range []string{"/admin/v1/users", "/admin/v1/users/", "/admin/v1/robots", "/admin/v1/robots/", "/admin/v1/grants"} {
			mux.Handle(p, sec.adminOnly(accounts))
		}
	}
	// /v2 requests bypass ServeMux: it would clean and redirect paths with
	// "..", while the registry must see them raw to refuse them.
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
			reg.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Registry returns the registry the server serves.
func (s *Server) Registry() *registry.Registry { return s.registry }

// Close flushes the audit log and releases the data directory.
func (s *Server) Close() error {
	return errors.Join(s.scanner.close(), s.inventory.Close(), s.sec.close(), s.data.Close())
}

// Serve serves on ln until ctx ends, then shuts down gracefully: in-flight
// requests get up to grace to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	gcCtx, stopGC := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if iv := time.Duration(s.cfg.GC.Interval); iv > 0 {
		wg.Go(func() { s.gcLoop(gcCtx, iv) })
	}
	if s.policies != nil {
		wg.Go(func() { s.policies.watch(gcCtx, time.Duration(s.cfg.PolicyReload)) })
	}
	if s.scanner != nil {
		wg.Go(func() { s.scanner.run(gcCtx) })
	}
	errc := make(chan error, 1)
	go func() {
		if s.tls != nil {
			srv.TLSConfig = s.tls
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		err = srv.Shutdown(sctx)
		cancel()
	}
	stopGC()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// TLS reports whether the server serves HTTPS.
func (s *Server) TLS() bool { return s.tls != nil }

// setupTLS applies tls.mode, and refuses plain HTTP beyond loopback unless
// insecure_http says the operator knows.
func setupTLS(cfg config.Config) (*tls.Config, string, error) {
	switch cfg.TLS.Mode {
	case TLSAuto:
		a, err := EnsureAutoTLS(filepath.Join(cfg.Data, "tls"), cfg.Addr, time.Now())
		if err != nil {
			return nil, "", err
		}
		c, err := TLSConfig(a.ServerCert, a.ServerKey)
		if err != nil {
			return nil, "", err
		}
		return c, TrustInstructions(a.CACert, advertisedHostPort(cfg.Addr)), nil
	case TLSFiles:
		c, err := TLSConfig(cfg.TLS.Cert, cfg.TLS.Key)
		return c, "", err
	}
	if !IsLoopback(cfg.Addr) && !cfg.InsecureHTTP {
		return nil, "", fmt.Errorf("%w: %s", ErrPlainHTTPExposed, cfg.Addr)
	}
	return nil, "", nil
}

// advertisedHostPort is how clients reach a listen address: an unspecified
// host (":5000", "0.0.0.0:5000") becomes this machine's name.
func advertisedHostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if hn, err := os.Hostname(); err == nil {
			host = hn
		}
	}
	return net.JoinHostPort(host, port)
}

func (s *Server) gcLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.RunGC(ctx, registry.GCOptions{}); err != nil && ctx.Err() == nil {
				s.log.Error("scheduled gc failed", "error", err)
			}
		}
	}
}

// RunGC runs one garbage collection, never two at once.
func (s *Server) RunGC(ctx context.Context, opts registry.GCOptions) (registry.GCResult, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	return s.registry.GC(ctx, opts)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.data.Meta.Repositories(ctx, storePage1); err != nil {
		http.Error(w, "metadata store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("ok\n"))
}

func (s *Server) adminGC(w http.ResponseWriter, r *http.Request) {
	dry, _ := strconv.ParseBool(r.URL.Query().Get("dry-run"))
	res, err := s.RunGC(r.Context(), registry.GCOptions{DryRun: dry})
	if err != nil {
		http.Error(w, fmt.Sprintf("gc: %v", err), http.StatusInternalServerError)
		return
	}
	writeJSON(w, res)
}

func (s *Server) adminFsck(w http.ResponseWriter, r *http.Request) {
	rep, err := s.registry.Fsck(r.Context(), 2)
	if err != nil {
		http.Error(w, fmt.Sprintf("fsck: %v", err), http.StatusInternalServerError)
		return
	}
	writeJSON(w, rep)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// loopbackOnly guards operational endpoints until accounts exist: only a
// process on the same host may trigger GC or fsck.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			http.Error(w, "admin endpoints are only served to loopback clients", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
