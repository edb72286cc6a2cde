// Command registry benchmarks bulwark against distribution (docker-registry
// 2.8) side by side: both run on loopback with filesystem storage and are
// driven by the same HTTP client through the same cells (blob push and pull
// at two sizes and two concurrencies, manifest GETs, and process RSS).
//
//	go run ./bench/registry [--bulwark BIN] [--quick] [--json FILE] [--only bulwark|distribution]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const bulwarkPkg = "github.com/bulwark-dev/bulwark/cmd/bulwark"

type options struct {
	bulwarkBin  string
	bulwarkArgs []string
	user, pass  string
	distBin     string
	cache       string
	only        string
	cells       string
	jsonPath    string
	quick       bool
	keep        bool
	warmup      time.Duration
	duration    time.Duration
	idle        time.Duration
	rounds      int
	// distAsBulwark runs a second docker-registry in the bulwark column, to
	// check the harness itself: ratios should then be close to 1.
	distAsBulwark bool
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, opts, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bulwarkBin, "bulwark", "", "bulwark binary (default: go build "+bulwarkPkg+")")
	fs.Func("bulwark-arg", "extra `arg` for bulwark serve (repeatable)", func(s string) error {
		o.bulwarkArgs = append(o.bulwarkArgs, s)
		return nil
	})
	fs.StringVar(&o.user, "bulwark-user", "", "HTTP basic auth user for bulwark, if it requires one")
	fs.StringVar(&o.pass, "bulwark-password", "", "HTTP basic auth password for bulwark")
	fs.StringVar(&o.distBin, "distribution", "/usr/bin/docker-registry", "docker-registry (distribution 2.8) binary")
	fs.StringVar(&o.cache, "cache", "inmemory", "distribution blobdescriptor cache: inmemory or none")
	fs.StringVar(&o.only, "only", "", "run only one server: bulwark or distribution")
	fs.StringVar(&o.cells, "cells", "", "run only cells whose id contains one of these comma-separated strings (e.g. push-64k,manifest)")
	fs.StringVar(&o.jsonPath, "json", "", "also write results as JSON to this file")
	fs.BoolVar(&o.quick, "quick", false, "short smoke-test run")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (data, configs, server logs)")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "warm-up per duration-bound cell")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "measurement per duration-bound cell")
	fs.IntVar(&o.rounds, "rounds", 2, "measure each cell in this many slices per server, alternating server order")
	fs.DurationVar(&o.idle, "idle", 2*time.Second, "idle time before each RSS reading")
	fs.BoolVar(&o.distAsBulwark, "x-distribution-as-bulwark", false, "")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, o.validate()
}

// usage prints the flags except hidden ones (named x-…).
func usage(fs *flag.FlagSet) {
	visible := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	visible.SetOutput(fs.Output())
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.HasPrefix(f.Name, "x-") {
			visible.Var(f.Value, f.Name, f.Usage)
		}
	})
	fmt.Fprintf(fs.Output(), "usage: go run ./bench/registry [flags]\n\n")
	visible.PrintDefaults()
}

func (o *options) validate() error {
	if o.only != "" && o.only != colBulwark && o.only != colDist {
		return fmt.Errorf("--only must be %q or %q", colBulwark, colDist)
	}
	if o.cache != "inmemory" && o.cache != "none" {
		return errors.New("--cache must be inmemory or none")
	}
	if o.rounds < 1 {
		return errors.New("--rounds must be at least 1")
	}
	if o.quick {
		o.warmup, o.duration, o.idle = min(o.warmup, 100*time.Millisecond),
			min(o.duration, 500*time.Millisecond), min(o.idle, 500*time.Millisecond)
	}
	return nil
}

// selectCells keeps the cells whose id contains one of the comma-separated
// filters; an empty filter keeps all.
func selectCells(cells []cell, filter string) []cell {
	if filter == "" {
		return cells
	}
	var out []cell
	for _, c := range cells {
		for f := range strings.SplitSeq(filter, ",") {
			if f != "" && strings.Contains(c.id, f) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

func (o *options) wants(name string) bool { return o.only == "" || o.only == name }

// target is a started server plus the client bound to it.
type target struct {
	srv  *server
	c    *regClient
	info *serverInfo
}

func run(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	started := time.Now()
	tmp, err := os.MkdirTemp("", "bulwark-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Fprintln(stderr, "kept", tmp)
		} else {
			err = errors.Join(err, os.RemoveAll(tmp))
		}
	}()
	specs, err := serverSpecs(ctx, o, tmp, stderr)
	if err != nil {
		return err
	}
	hc := newHTTPClient(64)
	defer hc.CloseIdleConnections()
	var targets []*target
	defer func() {
		for _, t := range targets {
			err = errors.Join(err, t.srv.stop())
		}
	}()
	for _, sp := range specs {
		t, err := startTarget(ctx, sp, hc, o)
		if t != nil {
			targets = append(targets, t)
		}
		if err != nil {
			return err
		}
	}
	rep, err := measure(ctx, o, targets, stderr)
	if err != nil {
		return err
	}
	rep.Started, rep.RuntimeS = started, time.Since(started).Seconds()
	rep.print(stdout)
	if o.jsonPath != "" {
		return rep.writeJSON(o.jsonPath)
	}
	return nil
}

// measure reads idle RSS, runs the cells, and reads RSS again.
func measure(ctx context.Context, o *options, targets []*target, progress io.Writer) (*report, error) {
	rep := &report{Quick: o.quick, Warmup: o.warmup.String(), Duration: o.duration.String(), Rounds: o.rounds}
	for _, t := range targets {
		rep.Servers = append(rep.Servers, t.info)
	}
	if err := readRSS(ctx, targets, o.idle, func(i *serverInfo, rss, _ int64) { i.IdleRSSKiB = rss }); err != nil {
		return nil, err
	}
	t := timing{warmup: o.warmup, duration: o.duration, quick: o.quick, rounds: o.rounds}
	if err := runCells(ctx, selectCells(plan(t), o.cells), targets, o.rounds, rep, progress); err != nil {
		return nil, err
	}
	err := readRSS(ctx, targets, o.idle, func(i *serverInfo, rss, hwm int64) { i.LoadRSSKiB, i.PeakRSSKiB = rss, hwm })
	return rep, err
}

// serverSpecs decides what runs in each column, building bulwark if needed.
func serverSpecs(ctx context.Context, o *options, tmp string, stderr io.Writer) ([]serverSpec, error) {
	var specs []serverSpec
	if o.wants(colBulwark) {
		dir := filepath.Join(tmp, colBulwark)
		switch {
		case o.distAsBulwark:
			sp := distributionSpec(colBulwark, o.distBin, dir, o.cache)
			sp.note = "(harness check: docker-registry in the bulwark column) " + sp.note
			specs = append(specs, sp)
		default:
			bin, err := bulwarkBinary(ctx, o.bulwarkBin, tmp, stderr)
			if err != nil {
				return nil, err
			}
			specs = append(specs, bulwarkSpec(colBulwark, bin, dir, o.bulwarkArgs))
		}
	}
	if o.wants(colDist) {
		specs = append(specs, distributionSpec(colDist, o.distBin, filepath.Join(tmp, colDist), o.cache))
	}
	return specs, nil
}

// bulwarkBinary returns bin, or builds bulwark into tmp when bin is empty.
func bulwarkBinary(ctx context.Context, bin, tmp string, stderr io.Writer) (string, error) {
	if bin != "" {
		return filepath.Abs(bin)
	}
	out := filepath.Join(tmp, "bin", "bulwark")
	fmt.Fprintln(stderr, "building", bulwarkPkg)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, bulwarkPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as the README builds it
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building bulwark: %w", err)
	}
	return out, nil
}

// startTarget starts one server on a fresh loopback port. On error the
// returned target, if any, still has to be stopped.
func startTarget(ctx context.Context, sp serverSpec, hc *http.Client, o *options) (*target, error) {
	var user, pass string
	if sp.name == colBulwark && !o.distAsBulwark {
		user, pass = o.user, o.pass
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c, err := newRegClient(hc, "http://"+addr, user, pass)
	if err != nil {
		return nil, err
	}
	srv, err := sp.start(ctx, addr, c)
	if srv == nil {
		return nil, err
	}
	return &target{srv: srv, c: c, info: &serverInfo{Name: sp.name, Note: sp.note}}, err
}
