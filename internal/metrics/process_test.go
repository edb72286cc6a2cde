package metrics

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

const realStat = "3435 (cat) R 3419 3419 435 0 -1 4194304 97 0 0 0 250 125 0 0 20 0 1 0 1826992 3133440 381 18446744073709551615 94678317060096 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

const realLimits = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            1024                 524288               files     
Max address space         unlimited            unlimited            bytes     
Max pending signals       95541                95541                signals   
`

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    procStat
		wantErr bool
	}{
		{name: "real", in: realStat, want: procStat{utime: 250, stime: 125, starttime: 1826992, vsize: 3133440, rss: 381}},
		{name: "command with spaces and parentheses", in: strings.Replace(realStat, "(cat)", "(a) R 1 (b c))", 1), want: procStat{utime: 250, stime: 125, starttime: 1826992, vsize: 3133440, rss: 381}},
		{name: "negative rss", in: strings.Replace(realStat, " 381 ", " -1 ", 1), want: procStat{utime: 250, stime: 125, starttime: 1826992, vsize: 3133440, rss: -1}},
		{name: "no parenthesis", in: "3435 cat R 1 2 3", wantErr: true},
		{name: "truncated", in: realStat[:60], wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "non-numeric utime", in: strings.Replace(realStat, " 250 ", " x ", 1), wantErr: true},
		{name: "overflowing vsize", in: strings.Replace(realStat, " 3133440 ", " 99999999999999999999999 ", 1), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]float64
		wantErr bool
	}{
		{name: "real", in: realLimits, want: map[string]float64{"Max cpu time": math.MaxUint64, "Max open files": 1024, "Max address space": math.MaxUint64, "Max pending signals": 95541}},
		{name: "odd lines skipped", in: strings.SplitAfter(realLimits, "\n")[0] + "short\nMax open files            lots                 x\nMax processes             7                    7                    processes\n", want: map[string]float64{"Max processes": 7}},
		{name: "no header", in: "Max open files 1024 1024 files\n", wantErr: true},
		{name: "header without soft limit", in: "Limit Hard\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLimits([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

// TestProcessCollectorFiles runs the collector over fake procfs trees:
// whatever is missing or malformed is left out, the rest is written.
func TestProcessCollectorFiles(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		fds    int // entries in fd/; -1: no fd directory
		want   []string
		absent []string
	}{
		{
			name:  "complete",
			files: map[string]string{"stat": realStat, "limits": realLimits, "/stat": "cpu 1 2 3\nbtime 1700000000\n"},
			fds:   2,
			want: []string{
				"process_cpu_seconds_total 3.75\n",
				"process_virtual_memory_bytes 3.13344e+06\n",
				"process_resident_memory_bytes " + string(appendFloat(nil, float64(381*os.Getpagesize()))) + "\n",
				"process_start_time_seconds 1.70001826992e+09\n",
				"process_open_fds 2\n",
				"process_max_fds 1024\n",
				"process_virtual_memory_max_bytes 1.8446744073709552e+19\n",
			},
		},
		{
			name:   "no boot time",
			files:  map[string]string{"stat": realStat, "/stat": "cpu 1 2 3\nbtime x\n"},
			fds:    -1,
			want:   []string{"process_cpu_seconds_total 3.75\n"},
			absent: []string{"process_start_time_seconds", "process_max_fds", "process_open_fds"},
		},
		{
			name:   "malformed stat and limits",
			files:  map[string]string{"stat": "garbage", "limits": "garbage", "/stat": "btime 1\n"},
			fds:    0,
			want:   []string{"process_open_fds 0\n"},
			absent: []string{"process_cpu_seconds_total", "process_start_time_seconds", "process_max_fds"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			self := filepath.Join(root, "self")
			if err := os.Mkdir(self, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range tc.files {
				p := filepath.Join(self, name)
				if strings.HasPrefix(name, "/") {
					p = filepath.Join(root, name)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.fds >= 0 {
				fd := filepath.Join(self, "fd")
				if err := os.Mkdir(fd, 0o755); err != nil {
					t.Fatal(err)
				}
				// One more entry than fds: the collector discounts the
				// handle it lists the directory with.
				for i := range tc.fds + 1 {
					if err := os.WriteFile(filepath.Join(fd, string(rune('0'+i))), nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			r := NewRegistry()
			r.MustRegister(newProcessCollector(self, filepath.Join(root, "stat")))
			out := text(t, r)
			if _, err := parseExposition(out); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, "\n"+w) {
					t.Errorf("lacks %q:\n%s", w, out)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out, "\n"+a+" ") {
					t.Errorf("has %s:\n%s", a, out)
				}
			}
		})
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte(realStat))
	f.Add([]byte("1 ()) ) R"))
	f.Add([]byte(strings.Replace(realStat, "(cat)", "(\n)\x00)", 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		// It must not panic, and accept only a line with the command's
		// closing parenthesis and enough fields after it.
		if _, err := parseProcStat(b); err == nil {
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || len(bytes.Fields(b[i+1:])) < 22 {
				t.Errorf("accepted %q", b)
			}
		}
	})
}

func FuzzParseLimits(f *testing.F) {
	f.Add([]byte(realLimits))
	f.Add([]byte("Limit Soft Limit\nx"))
	f.Add([]byte("Limit                     Soft Limit\n\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLimits(b)
		if err != nil && l != nil {
			t.Errorf("error %v with a result", err)
		}
		for k, v := range l {
			if k == "" || v < 0 || math.IsNaN(v) {
				t.Errorf("limit %q = %v", k, v)
			}
		}
	})
}

// FuzzLabelValue writes any string as a label value and help text: the
// output must pass the strict line check, and the value must read back as
// itself (with invalid UTF-8 replaced).
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\\", "\\n", "\n", "x\xff", "}", "\",le=\"1", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := NewRegistry()
		cv := NewCounterVec(Opts{Name: "f_total", Help: v}, []string{"v", "a"})
		hv := NewHistogramVec(HistogramOpts{Name: "h", Help: v, Buckets: []float64{1}}, []string{"v"})
		r.MustRegister(cv, hv)
		cv.WithLabelValues(v, "x").Inc()
		hv.WithLabelValues(v).Observe(0.5)
		samples, err := parseExposition(string(r.AppendText(nil)))
		if err != nil {
			t.Fatal(err)
		}
		want := strings.ToValidUTF8(v, string(utf8.RuneError))
		for _, s := range samples {
			if got, _ := s.label("v"); got != want {
				t.Fatalf("label value %q read back as %q", v, got)
			}
		}
		if len(samples) != 1+4 {
			t.Fatalf("%d samples", len(samples))
		}
	})
}
