package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one registry process under test.
type server struct {
	name    string // column name: "bulwark" or "distribution"
	note    string // how it was configured, printed with the results
	base    string // http://127.0.0.1:PORT
	health  string // path that answers 200 once the server is ready
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid after exited is closed
}

// serverSpec describes how to launch a server; start turns it into a server.
type serverSpec struct {
	name   string
	note   string
	health string
	dir    string // private directory for data, config and log
	// args builds the command line for the given listen address.
	args func(addr string) ([]string, error)
}

// bulwarkSpec launches `BIN serve --auth=false --addr ADDR --data DIR/data`.
// Authentication is off by default to match distribution's configuration
// (none); `--bulwark-arg=--auth=true` with --bulwark-user/--bulwark-password
// measures it on.
func bulwarkSpec(name, bin, dir string, extra []string) serverSpec {
	extra = append([]string{"--auth=false"}, extra...)
	return serverSpec{
		name:   name,
		note:   strings.TrimSpace(fmt.Sprintf("%s; serve --addr 127.0.0.1:<port> --data <tmp> %s", binVersion(bin, "version"), strings.Join(extra, " "))),
		health: "/healthz",
		dir:    dir,
		args: func(addr string) ([]string, error) {
			data := filepath.Join(dir, "data")
			if err := os.MkdirAll(data, 0o755); err != nil {
				return nil, err
			}
			args := []string{bin, "serve", "--addr", addr, "--data", data}
			return append(args, extra...), nil
		},
	}
}

// distributionConfig is the docker-registry configuration: filesystem
// storage, deletes on, no redirects, quiet logs, no access log, and the
// background upload purger off so it cannot wake up mid-measurement.
const distributionConfig = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  redirect:
    disable: true
%s  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`

// distributionSpec launches `BIN serve CONFIG.yml`. cache is "inmemory" for
// the stock blob-descriptor cache or "none" for no cache layer.
func distributionSpec(name, bin, dir, cache string) serverSpec {
	cacheYAML := ""
	if cache == "inmemory" {
		cacheYAML = "  cache:\n    blobdescriptor: inmemory\n"
	}
	return serverSpec{
		name:   name,
		note:   fmt.Sprintf("%s; filesystem storage, blobdescriptor cache: %s", binVersion(bin, "--version"), cache),
		health: "/v2/",
		dir:    dir,
		args: func(addr string) ([]string, error) {
			data := filepath.Join(dir, "data")
			if err := os.MkdirAll(data, 0o755); err != nil {
				return nil, err
			}
			conf := filepath.Join(dir, "config.yml")
			body := fmt.Sprintf(distributionConfig, data, cacheYAML, addr)
			if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
				return nil, err
			}
			return []string{bin, "serve", conf}, nil
		},
	}
}

// binVersion returns the first line a binary prints for its version command,
// or its file name if that fails.
func binVersion(bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil || line == "" {
		return filepath.Base(bin)
	}
	return line
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start launches the server on addr and waits until its health path answers 200.
// The caller must call stop, also when start fails.
func (sp serverSpec) start(ctx context.Context, addr string, c *regClient) (*server, error) {
	if err := os.MkdirAll(sp.dir, 0o755); err != nil {
		return nil, err
	}
	args, err := sp.args(addr)
	if err != nil {
		return nil, err
	}
	s := &server{
		name:    sp.name,
		note:    sp.note,
		base:    "http://" + addr,
		health:  sp.health,
		logPath: filepath.Join(sp.dir, "server.log"),
		exited:  make(chan struct{}),
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child keeps its own descriptor
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Dir = sp.dir
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a terminal Ctrl-C reaches us, and we stop it in order
		Pdeathsig: syscall.SIGKILL, // never outlive the benchmark
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", sp.name, err)
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, c, 20*time.Second); err != nil {
		return s, fmt.Errorf("%s not ready: %w\n%s", sp.name, err, s.logTail(20))
	}
	return s, nil
}

func (s *server) waitReady(ctx context.Context, c *regClient, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("process exited: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-tick.C:
			if last = c.ping(ctx, s.health); last == nil {
				return nil
			}
		}
	}
}

// stop asks the server to terminate and kills it if it does not within 5 s.
// It is safe to call more than once.
func (s *server) stop() error {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	// The server leads its own process group (Setpgid), so signalling the
	// group reaches it and any helper it started, and nothing else.
	pgid := -s.pid()
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-s.exited
		return fmt.Errorf("%s ignored SIGTERM; killed", s.name)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// alive reports an error if the process has exited.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%s exited: %v\n%s", s.name, s.waitErr, s.logTail(20))
	default:
		return nil
	}
}

// logTail returns the last n lines of the server log, for error messages.
func (s *server) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}

// memKiB returns VmRSS and VmHWM (peak RSS) of the process, in KiB.
func (s *server) memKiB() (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.pid()))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			rss, err = parseKiB(v)
		case "VmHWM":
			hwm, err = parseKiB(v)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc status")
	}
	return rss, hwm, sc.Err()
}

func parseKiB(v string) (int64, error) {
	return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
}

// clockTick is USER_HZ, which is 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime returns the user+system CPU time the process (all threads) used.
func (s *server) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid()))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; fields resume after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state is field 3 of stat(5); utime and stime are 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * clockTick, nil
}
