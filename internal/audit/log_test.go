package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sample returns the i-th test event: varied, including strings that JSON
// escapes (HTML, control characters, invalid UTF-8, U+2028).
func sample(i int) Event {
	actions := []string{ActionPull, ActionPush, ActionLogin, ActionToken, ActionDelete, ActionGrant}
	e := Event{
		Who:        fmt.Sprintf("user%d", i%7),
		Kind:       KindUser,
		Action:     actions[i%len(actions)],
		Repository: fmt.Sprintf("team/app%d", i%3),
		Reference:  "v" + strconv.Itoa(i),
		Digest:     "sha256:" + strings.Repeat("ab", 32),
		Remote:     "192.0.2.1:" + strconv.Itoa(1000+i),
		Outcome:    OutcomeOK,
	}
	switch i % 5 {
	case 1:
		e.Detail = "<script>&\u2028\"quoted\"\\"
	case 2:
		e.Detail = "bad utf8 \xff\xfe and \x00\x1b[2J"
		e.Outcome = OutcomeDenied
	case 3:
		e.Who, e.Kind = "", ""
	case 4:
		e.Detail = strings.Repeat("é", 2000) // clipped
	}
	return e
}

// writeEvents records n sample events into a new log at path and closes it.
func writeEvents(t testing.TB, path string, n int) {
	t.Helper()
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		l.Record(sample(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustVerify(t *testing.T, path string, wantEntries int64) Report {
	t.Helper()
	rep, err := Verify(context.Background(), path, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Entries != wantEntries {
		t.Fatalf("Verify = ok %v, %d entries, problem %v; want ok, %d entries", rep.OK, rep.Entries, rep.Problem, wantEntries)
	}
	return rep
}

func TestChainIntegrity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeEvents(t, path, 3000)
	rep := mustVerify(t, path, 3000)

	all, err := Query(context.Background(), path, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3000 {
		t.Fatalf("Query returned %d events, want 3000", len(all))
	}
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if i > 0 && e.Prev != all[i-1].Hash {
			t.Fatalf("event %d prev %s, want %s", i, e.Prev, all[i-1].Hash)
		}
		if e.Time.Location() != time.UTC || e.Time.IsZero() {
			t.Fatalf("event %d time %v not UTC", i, e.Time)
		}
		if len(e.Detail) > maxField {
			t.Fatalf("event %d detail is %d bytes, not clipped", i, len(e.Detail))
		}
	}
	if all[0].Prev != "" || rep.Head != all[2999].Hash || rep.HeadSeq != 3000 {
		t.Fatalf("first prev %q, head %s/%d, last hash %s", all[0].Prev, rep.Head, rep.HeadSeq, all[2999].Hash)
	}
	if all[3].Who != AnonymousWho || all[3].Kind != KindAnonymous {
		t.Fatalf("empty Who recorded as %q/%q", all[3].Who, all[3].Kind)
	}

	// A reopened log continues the chain.
	writeEvents(t, path, 10)
	mustVerify(t, path, 3010)

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
}

// TestCanonicalEncoding pins the documented format: a line is the
// canonical encoding with the hash between the final quotes.
func TestCanonicalEncoding(t *testing.T) {
	e := Event{Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC), Who: "alice", Kind: KindUser,
		Action: ActionPush, Repository: "team/app", Reference: "v1", Digest: "sha256:00", Remote: "127.0.0.1:1",
		Outcome: OutcomeOK, Detail: "<&>"}
	line, err := encodeLine(&e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":1,"time":"2026-01-02T03:04:05.0000006Z","who":"alice","kind":"user","action":"push",` +
		`"repository":"team/app","reference":"v1","digest":"sha256:00","remote":"127.0.0.1:1","outcome":"ok",` +
		`"detail":"\u003c\u0026\u003e","prev":"","hash":"` + e.Hash + `"}` + "\n"
	if string(line) != want {
		t.Fatalf("line\n%s\nwant\n%s", line, want)
	}
	canon := strings.Replace(want[:len(want)-1], e.Hash, "", 1)
	if got := sha256hex([]byte(canon)); got != e.Hash {
		t.Fatalf("hash %s, sha256 of canonical encoding %s", e.Hash, got)
	}
}

func TestConcurrentRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 32, 300
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Record(sample(g*each + i))
				if i%100 == 99 {
					if err := l.Sync(context.Background()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Written != goroutines*each || st.Recorded != goroutines*each || st.Queued != 0 {
		t.Fatalf("stats after Sync: %+v", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, path, goroutines*each)
}

// TestTwoWriters appends through two Logs on one file at once, as the
// server and an admin command would: separate open files, so the flock
// serialises them exactly as it would two processes.
func TestTwoWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	const writers, each = 2, 2000
	var wg sync.WaitGroup
	for w := range writers {
		l, err := Open(path, Options{FlushInterval: time.Millisecond, Buffer: 64})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range each {
				e := sample(i)
				e.Remote = fmt.Sprint("writer", w)
				l.Record(e)
				if i%50 == 0 {
					l.Sync(context.Background())
				}
			}
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mustVerify(t, path, writers*each)
	got, err := Query(context.Background(), path, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	switches := 0
	for i, e := range got {
		counts[e.Remote]++
		if i > 0 && e.Remote != got[i-1].Remote {
			switches++
		}
	}
	for w := range writers {
		if n := counts[fmt.Sprint("writer", w)]; n != each {
			t.Fatalf("writer %d has %d events, want %d", w, n, each)
		}
	}
	// Otherwise the test did not test concurrent appends.
	if switches < 2 {
		t.Fatalf("writers' batches did not interleave (%d switches)", switches)
	}
	t.Logf("%d switches between writers", switches)
}

// TestMultiProcess runs real processes (this test binary re-executed)
// appending to one file alongside this one.
func TestMultiProcess(t *testing.T) {
	if path := os.Getenv("BULWARK_AUDIT_CHILD"); path != "" {
		l, err := Open(path, Options{FlushInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 500 {
			l.Record(sample(i))
			if i%25 == 0 {
				l.Sync(context.Background())
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	const children = 3
	var cmds []*exec.Cmd
	for range children {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMultiProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "BULWARK_AUDIT_CHILD="+path)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(out.String())
			}
		})
		cmds = append(cmds, cmd)
	}
	l, err := Open(path, Options{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		l.Record(sample(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	mustVerify(t, path, (children+1)*500)
}

func TestCloseFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	// An hour's flush interval: only Close can have written the events.
	l, err := Open(path, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		l.Record(sample(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, path, 100)
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Sync(context.Background()); err != ErrClosed {
		t.Fatalf("Sync after Close = %v, want ErrClosed", err)
	}
	l.Record(sample(0))
	if st := l.Stats(); st.Dropped != 1 || st.Written != 100 {
		t.Fatalf("stats after Record on a closed log: %+v", st)
	}
	mustVerify(t, path, 100)
}

func TestSyncMakesDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for round := 1; round <= 3; round++ {
		l.Record(sample(round))
		if err := l.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, path, int64(round))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Sync(ctx); err == nil {
		// The writer may answer before noticing; either is fine, but a
		// cancelled Sync must not hang.
		t.Log("Sync with a cancelled context returned nil")
	}
}

func TestBackPressure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{Buffer: 1, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	for i := range n {
		l.Record(sample(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Blocked == 0 || st.Written != n || st.Dropped != 0 {
		t.Fatalf("stats %+v: want some blocked, all %d written, none dropped", st, n)
	}
	mustVerify(t, path, n)
}

func TestCallerCannotSetChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2020, 5, 6, 7, 8, 9, 0, time.FixedZone("X", 3600))
	l.Record(Event{Seq: 99, Prev: "x", Hash: "y", Time: at, Who: "a", Action: ActionLogin})
	l.Record(Event{Time: time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC), Who: "b"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, path, 2)
	got, _ := Query(context.Background(), path, Filter{})
	if got[0].Seq != 1 || got[0].Prev != "" || !got[0].Time.Equal(at) || got[0].Time.Location() != time.UTC {
		t.Fatalf("first event %+v", got[0])
	}
	if got[1].Time.Year() != time.Now().Year() {
		t.Fatalf("out-of-range time recorded as %v", got[1].Time)
	}
}

// TestRepairIncompleteLine: a crash mid-write leaves a line without its
// newline; the next writer removes it, says so in the log, and the chain
// verifies.
func TestRepairIncompleteLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeEvents(t, path, 5)
	appendRaw(t, path, `{"seq":6,"time":"2026-`)
	rep, _ := Verify(context.Background(), path, VerifyOptions{})
	if rep.OK || rep.Problem.Kind != ProblemTruncated || rep.Problem.Line != 6 {
		t.Fatalf("before repair: %+v", rep)
	}
	// Query skips an incomplete last line.
	if got, err := Query(context.Background(), path, Filter{}); err != nil || len(got) != 5 {
		t.Fatalf("Query = %d events, %v", len(got), err)
	}
	writeEvents(t, path, 2)
	mustVerify(t, path, 8)
	got, _ := Query(context.Background(), path, Filter{Action: ActionRepair})
	if len(got) != 1 || got[0].Seq != 6 || got[0].Kind != KindSystem || !strings.Contains(got[0].Detail, "22 bytes") {
		t.Fatalf("repair events: %+v", got)
	}
}

// TestRestartAfterGarbage: a last line that is not an entry cannot be
// chained to; the writer records anyway, starting a new chain, and Verify
// points at the bad line.
func TestRestartAfterGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeEvents(t, path, 3)
	appendRaw(t, path, "not json\n")
	writeEvents(t, path, 2)
	rep, err := Verify(context.Background(), path, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Problem.Line != 4 || rep.Problem.Kind != ProblemMalformed || rep.Entries != 3 {
		t.Fatalf("Verify: %+v %v", rep, rep.Problem)
	}
	lines := readLines(t, path)
	if len(lines) != 7 || !strings.Contains(string(lines[4]), ActionRestart) || !strings.Contains(string(lines[4]), sha256hex([]byte("not json"))) {
		t.Fatalf("after garbage:\n%s", bytes.Join(lines, []byte("\n")))
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, path string }{
		{"missing directory", filepath.Join(dir, "nope", "audit.log")},
		{"a directory", dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := Open(tc.path, Options{}); err == nil {
				l.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func appendRaw(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// readLines returns the file's lines without their newlines.
func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	for i := range lines {
		lines[i] = bytes.Clone(lines[i])
	}
	return lines
}

func decode(t *testing.T, line []byte) Event {
	t.Helper()
	var e Event
	if err := json.Unmarshal(line, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestWriteFailure: when the file cannot be written, Sync reports the
// error, the writer keeps the events and retries, and Close gives up after
// a few tries, counting what was lost.
func TestWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l.f.Close() // every write now fails with EBADF
	l.Record(sample(0))
	l.Record(sample(1))
	if err := l.Sync(context.Background()); err == nil {
		t.Fatal("Sync succeeded on a closed file")
	}
	time.Sleep(120 * time.Millisecond) // at least one retry on the backoff timer
	err = l.Close()
	st := l.Stats()
	if err == nil || !strings.Contains(err.Error(), "2 events not written") || st.Dropped != 2 || st.WriteErrors < 3 || st.Written != 0 {
		t.Fatalf("Close = %v, stats %+v", err, st)
	}
}

// TestReadTail covers the writer's view of the end of the file.
func TestReadTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeEvents(t, path, 3)
	valid, _ := os.ReadFile(path)
	last := decode(t, readLines(t, path)[2])
	long := bytes.Repeat([]byte("x"), maxLine+10)
	tests := []struct {
		name    string
		content []byte
		want    tail
	}{
		{"empty", nil, tail{}},
		{"valid", valid, tail{end: int64(len(valid)), seq: 3, hash: last.Hash}},
		{"incomplete last line", append(bytes.Clone(valid), `{"seq":4`...), tail{end: int64(len(valid)), partial: 8, seq: 3, hash: last.Hash}},
		{"only an incomplete line", []byte(`{"seq":1`), tail{end: 0, partial: 8}},
		{"garbage last line", append(bytes.Clone(valid), "junk\n"...), tail{end: int64(len(valid)) + 5, bad: true, hash: sha256hex([]byte("junk"))}},
		{"over-long last line", append(append(bytes.Clone(valid), long...), '\n'), tail{end: int64(len(valid)+len(long)) + 1, bad: true, hash: sha256hex(long)}},
		{"over-long first line", append(bytes.Clone(long), '\n'), tail{end: int64(len(long)) + 1, bad: true, hash: sha256hex(long)}},
		{"empty last line", append(bytes.Clone(valid), '\n'), tail{end: int64(len(valid)) + 1, bad: true, hash: sha256hex(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readTail(bytes.NewReader(tc.content), int64(len(tc.content)))
			if err != nil || got != tc.want {
				t.Fatalf("readTail = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestDecisionField: a decision travels with its entry in canonical form
// (so the entry verifies after decoding), filters find it, and a decision
// that is not JSON or too large is dropped with a note, never the entry.
func TestDecisionField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	huge := `{"rules":"` + strings.Repeat("x", maxDecision) + `"}`
	cases := []struct {
		decision   string
		want       string // the stored decision; "" for dropped
		detailNote string
	}{
		{`{ "id": "d1", "allowed": false, "reason": "<script>\u2028" }`, `{"id":"d1","allowed":false,"reason":"\u003cscript\u003e\u2028"}`, ""},
		{`{"id": "d2"`, "", "not valid JSON"},
		{huge, "", "exceeds"},
	}
	for i, c := range cases {
		l.Record(Event{Who: "bulwark", Kind: KindSystem, Action: ActionDecision, Digest: fmt.Sprintf("sha256:%02d", i),
			Outcome: OutcomeDenied, Detail: "decided", Decision: json.RawMessage(c.decision)})
	}
	l.Record(Event{Who: "alice", Action: ActionPush}) // no decision: no field
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, path, int64(len(cases)+1))
	got, err := Query(context.Background(), path, Filter{Action: ActionDecision, Outcome: OutcomeDenied})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cases) {
		t.Fatalf("query found %d decisions, want %d", len(got), len(cases))
	}
	for i, c := range cases {
		if string(got[i].Decision) != c.want {
			t.Errorf("case %d: decision %s, want %s", i, got[i].Decision, c.want)
		}
		if !strings.Contains(got[i].Detail, c.detailNote) {
			t.Errorf("case %d: detail %q lacks %q", i, got[i].Detail, c.detailNote)
		}
	}
	one, err := Query(context.Background(), path, Filter{Digest: "sha256:01"})
	if err != nil || len(one) != 1 {
		t.Fatalf("digest filter: %d events, %v", len(one), err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(raw)), "\n"); strings.Contains(lines[len(lines)-1], `"decision"`) {
		t.Fatalf("an entry without a decision encodes the field: %s", lines[len(lines)-1])
	}
}
