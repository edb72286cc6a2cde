package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// userHZ is the unit of the clock-tick fields of /proc/PID/stat. It is 100
// on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) is fixed by
// the kernel ABI); client_golang's procfs assumes the same.
const userHZ = 100

// processCollector writes process_* metrics from procfs (Linux). Anything it
// cannot read is left out of the scrape, never failing it; on systems
// without /proc it writes nothing.
type processCollector struct {
	self     string // e.g. /proc/self
	procStat string // e.g. /proc/stat, for the boot time
	pageSize int

	mu       sync.Mutex
	bootTime float64 // 0 until read successfully; constant after
}

// NewProcessCollector returns a collector of this process's
// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_virtual_memory_max_bytes,
// process_open_fds, process_max_fds and process_start_time_seconds, read
// from /proc at scrape time.
func NewProcessCollector() Collector {
	return newProcessCollector("/proc/self", "/proc/stat")
}

func newProcessCollector(self, procStat string) *processCollector {
	return &processCollector{self: self, procStat: procStat, pageSize: os.Getpagesize()}
}

var (
	procCPU       = &desc{name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds."}
	procOpenFDs   = &desc{name: "process_open_fds", help: "Number of open file descriptors."}
	procMaxFDs    = &desc{name: "process_max_fds", help: "Maximum number of open file descriptors."}
	procVsize     = &desc{name: "process_virtual_memory_bytes", help: "Virtual memory size in bytes."}
	procMaxVsize  = &desc{name: "process_virtual_memory_max_bytes", help: "Maximum amount of virtual memory available in bytes."}
	procRSS       = &desc{name: "process_resident_memory_bytes", help: "Resident memory size in bytes."}
	procStartTime = &desc{name: "process_start_time_seconds", help: "Start time of the process since unix epoch in seconds."}
)

func (*processCollector) names() []string {
	return []string{procCPU.name, procOpenFDs.name, procMaxFDs.name, procVsize.name, procMaxVsize.name, procRSS.name, procStartTime.name}
}

func (p *processCollector) collect(fams []family) []family {
	if b, err := os.ReadFile(filepath.Join(p.self, "stat")); err == nil {
		if st, err := parseProcStat(b); err == nil {
			cpu := float64(st.utime+st.stime) / userHZ
			fams = append(fams, family{name: procCPU.name, help: procCPU.help, typ: "counter", samples: appendSample(nil, procCPU, "", nil, "", "", cpu)})
			fams = gauge(fams, procVsize, float64(st.vsize))
			fams = gauge(fams, procRSS, float64(st.rss*int64(p.pageSize)))
			if boot, ok := p.boot(); ok {
				fams = gauge(fams, procStartTime, boot+float64(st.starttime)/userHZ)
			}
		}
	}
	if d, err := os.Open(filepath.Join(p.self, "fd")); err == nil {
		names, err := d.Readdirnames(-1)
		d.Close()
		if err == nil {
			// The directory handle itself was one of them while listing.
			fams = gauge(fams, procOpenFDs, float64(len(names)-1))
		}
	}
	if b, err := os.ReadFile(filepath.Join(p.self, "limits")); err == nil {
		if l, err := parseLimits(b); err == nil {
			if v, ok := l["Max open files"]; ok {
				fams = gauge(fams, procMaxFDs, v)
			}
			if v, ok := l["Max address space"]; ok {
				fams = gauge(fams, procMaxVsize, v)
			}
		}
	}
	return fams
}

// boot returns the system boot time from /proc/stat's btime line, read on
// the first scrape that succeeds and kept (it never changes).
func (p *processCollector) boot() (float64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bootTime > 0 {
		return p.bootTime, true
	}
	b, err := os.ReadFile(p.procStat)
	if err != nil {
		return 0, false
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			v, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
			if err != nil || v == 0 {
				return 0, false
			}
			p.bootTime = float64(v)
			return p.bootTime, true
		}
	}
	return 0, false
}

// procStat holds the fields of /proc/PID/stat that we use.
type procStat struct {
	utime, stime uint64 // clock ticks
	starttime    uint64 // clock ticks after boot
	vsize        uint64 // bytes
	rss          int64  // pages
}

var errProcStat = errors.New("metrics: malformed /proc/PID/stat")

// parseProcStat parses /proc/PID/stat (proc(5)). The command name, field 2,
// is in parentheses and may itself contain spaces and parentheses, so the
// fields after it are found from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errProcStat
	}
	// Fields from 3 (state) on; field k is f[k-3].
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 24-2 {
		return procStat{}, fmt.Errorf("%w: %d fields after the command name", errProcStat, len(f))
	}
	var st procStat
	var err error
	u := func(k int) uint64 {
		v, e := strconv.ParseUint(f[k-3], 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("%w: field %d: %v", errProcStat, k, e)
		}
		return v
	}
	st.utime, st.stime, st.starttime, st.vsize = u(14), u(15), u(22), u(23)
	rss, e := strconv.ParseInt(f[24-3], 10, 64)
	if e != nil && err == nil {
		err = fmt.Errorf("%w: field 24: %v", errProcStat, e)
	}
	st.rss = rss
	return st, err
}

// parseLimits parses /proc/PID/limits into soft limits by name; "unlimited"
// is 2^64-1 as a float, which is what client_golang reports.
func parseLimits(b []byte) (map[string]float64, error) {
	lines := strings.Split(string(b), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "Limit") {
		return nil, errors.New("metrics: malformed /proc/PID/limits: no header")
	}
	// Columns are fixed-width, aligned with the header; names contain
	// spaces, so the soft limit's column comes from the header.
	soft := strings.Index(lines[0], "Soft Limit")
	if soft <= 0 {
		return nil, errors.New("metrics: malformed /proc/PID/limits: no Soft Limit column")
	}
	l := map[string]float64{}
	for _, line := range lines[1:] {
		if len(line) <= soft {
			continue
		}
		name := strings.TrimSpace(line[:soft])
		f := strings.Fields(line[soft:])
		if name == "" || len(f) == 0 {
			continue
		}
		if f[0] == "unlimited" {
			l[name] = math.MaxUint64
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue // one odd line does not spoil the others
		}
		l[name] = float64(v)
	}
	return l, nil
}
