package metrics

import (
	"runtime"
	"runtime/debug"
	"time"
)

// goCollector writes Go runtime metrics under client_golang's names. It
// reads runtime.MemStats and debug.GCStats rather than runtime/metrics: the
// values are the same for these names, and runtime/metrics (imported by
// nothing else in bulwark) builds its description table at init.
type goCollector struct{}

// NewGoCollector returns a collector of Go runtime metrics: go_goroutines,
// go_threads, go_info, go_gc_duration_seconds (a summary of stop-the-world
// pause durations, quantiles 0, 0.25, 0.5, 0.75, 1; its _count is the number
// of completed GC cycles), go_gc_gomemlimit_bytes,
// go_sched_gomaxprocs_threads and the go_memstats_* family. Everything is
// read at scrape time; ReadMemStats stops the world for a few microseconds.
func NewGoCollector() Collector { return goCollector{} }

type memstat struct {
	name, help, typ string
	value           func(*runtime.MemStats) float64
}

// memstats are client_golang's go_memstats_* metrics, with its help texts.
var memstats = []memstat{
	{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.Alloc) }},
	{"go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", "counter", func(m *runtime.MemStats) float64 { return float64(m.TotalAlloc) }},
	{"go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.Sys) }},
	{"go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", "counter", func(m *runtime.MemStats) float64 { return float64(m.Mallocs) }},
	{"go_memstats_frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", "counter", func(m *runtime.MemStats) float64 { return float64(m.Frees) }},
	{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapAlloc) }},
	{"go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapSys) }},
	{"go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapIdle) }},
	{"go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapInuse) }},
	{"go_memstats_heap_released_bytes", "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapReleased) }},
	{"go_memstats_heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.HeapObjects) }},
	{"go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.StackInuse) }},
	{"go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.StackSys) }},
	{"go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.MSpanInuse) }},
	{"go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.MSpanSys) }},
	{"go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.MCacheInuse) }},
	{"go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.MCacheSys) }},
	{"go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.BuckHashSys) }},
	{"go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.GCSys) }},
	{"go_memstats_other_sys_bytes", "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.OtherSys) }},
	{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.NextGC) }},
	{"go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", "gauge", func(m *runtime.MemStats) float64 { return float64(m.LastGC) / 1e9 }},
}

var (
	goGoroutines = &desc{name: "go_goroutines", help: "Number of goroutines that currently exist."}
	goThreads    = &desc{name: "go_threads", help: "Number of OS threads created."}
	goGC         = &desc{name: "go_gc_duration_seconds", help: "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."}
	goInfo       = &desc{name: "go_info", help: "Information about the Go environment.", labels: []string{"version"}, order: []int{0}}
	goMemLimit   = &desc{name: "go_gc_gomemlimit_bytes", help: "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes."}
	goMaxProcs   = &desc{name: "go_sched_gomaxprocs_threads", help: "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads."}
	// gcQuantiles are the quantiles of go_gc_duration_seconds, as labels.
	gcQuantiles = []string{"0", "0.25", "0.5", "0.75", "1"}
)

func (goCollector) names() []string {
	n := []string{goGoroutines.name, goThreads.name, goGC.name, goInfo.name, goMemLimit.name, goMaxProcs.name}
	for _, m := range memstats {
		n = append(n, m.name)
	}
	return n
}

func gauge(fams []family, d *desc, v float64, values ...string) []family {
	return append(fams, family{name: d.name, help: d.help, typ: "gauge", samples: appendSample(nil, d, "", values, "", "", v)})
}

func (goCollector) collect(fams []family) []family {
	fams = gauge(fams, goGoroutines, float64(runtime.NumGoroutine()))
	threads, _ := runtime.ThreadCreateProfile(nil)
	fams = gauge(fams, goThreads, float64(threads))
	fams = gauge(fams, goInfo, 1, runtime.Version())
	fams = gauge(fams, goMaxProcs, float64(runtime.GOMAXPROCS(0)))
	fams = gauge(fams, goMemLimit, float64(debug.SetMemoryLimit(-1))) // -1 reads without setting

	gc := debug.GCStats{PauseQuantiles: make([]time.Duration, len(gcQuantiles))}
	debug.ReadGCStats(&gc)
	var b []byte
	for i, q := range gcQuantiles {
		b = appendSample(b, goGC, "", nil, "quantile", q, gc.PauseQuantiles[i].Seconds())
	}
	b = appendSample(b, goGC, "_sum", nil, "", "", gc.PauseTotal.Seconds())
	b = appendSample(b, goGC, "_count", nil, "", "", float64(gc.NumGC))
	fams = append(fams, family{name: goGC.name, help: goGC.help, typ: "summary", samples: b})

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, m := range memstats {
		d := desc{name: m.name}
		fams = append(fams, family{name: m.name, help: m.help, typ: m.typ, samples: appendSample(nil, &d, "", nil, "", "", m.value(&ms))})
	}
	return fams
}
