package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary log contents to Verify and Query (they must
// not panic, and must agree), and checks that what the writer appends,
// with arbitrary field values, verifies: alone, and after a valid log. It
// works on the bytes in memory (the file wrappers are tested elsewhere):
// file system calls would make it a hundred times slower.
//
// Run it with a bounded minimisation: its seeds are whole log lines, and
// the default 60 s spent minimising each new input stalls a short run:
//
//	go test ./internal/audit -run '^$' -fuzz FuzzVerify -fuzztime 20s -fuzzminimizetime 200x
func FuzzVerify(f *testing.F) {
	valid := filepath.Join(f.TempDir(), "valid.log")
	writeEvents(f, valid, 4)
	good, err := os.ReadFile(valid)
	if err != nil {
		f.Fatal(err)
	}
	lines := bytes.SplitAfter(good, []byte("\n"))
	f.Add(good, "alice", "pushed")
	f.Add(good[:len(good)-7], "", "")
	f.Add(bytes.Join([][]byte{lines[0], lines[2], lines[1]}, nil), "bob", "<&>")
	f.Add(bytes.Join([][]byte{lines[0], lines[1], lines[3]}, nil), "x\x00y", "\xff\xfe")
	f.Add([]byte("{}\n"), "\u2028", "\"")
	f.Add([]byte(`{"seq":1,"hash":"`+string(bytes.Repeat([]byte("0"), 64))+`"}`+"\n"), "a", "b")
	f.Add([]byte("\n\n\n"), "", "")
	f.Add([]byte(nil), "anonymous", "")

	// A fixed time: with time.Now, formatting would take other paths from
	// run to run and the fuzzer would see unstable coverage.
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte, who, detail string) {
		ctx := context.Background()
		rep, err := verifyStream(ctx, bytes.NewReader(data), VerifyOptions{})
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if rep.OK != (rep.Problem == nil) || rep.Entries != rep.HeadSeq || rep.Entries < 0 {
			t.Fatalf("inconsistent report %+v", rep)
		}
		events, qerr := queryStream(ctx, bytes.NewReader(data), Filter{})
		if rep.OK {
			if qerr != nil || int64(len(events)) != rep.Entries {
				t.Fatalf("Verify OK with %d entries, Query %d events, %v", rep.Entries, len(events), qerr)
			}
			if rep.Entries > 0 && events[len(events)-1].Hash != rep.Head {
				t.Fatalf("head %s, last hash %s", rep.Head, events[len(events)-1].Hash)
			}
		}

		// Append as the writer would, chained to the tail it finds.
		tl, err := readTail(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if tl.end+tl.partial != int64(len(data)) {
			t.Fatalf("tail %+v of %d bytes", tl, len(data))
		}
		add := []Event{
			{Time: at, Who: who, Detail: detail, Action: ActionLogin},
			{Time: at, Who: detail, Repository: who, Outcome: OutcomeDenied},
		}
		buf, err := encodeBatch(nil, tl.seq, tl.hash, add)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK {
			if tl.bad || tl.partial != 0 || tl.seq != rep.HeadSeq || tl.hash != rep.Head {
				t.Fatalf("tail %+v disagrees with a valid log's report %+v", tl, rep)
			}
			grown := append(bytes.Clone(data), buf...)
			if rep2, _ := verifyStream(ctx, bytes.NewReader(grown), VerifyOptions{Head: rep.Head}); !rep2.OK || rep2.Entries != rep.Entries+2 {
				t.Fatalf("valid log plus appended events: %+v %v", rep2, rep2.Problem)
			}
		}
		if buf, err = encodeBatch(buf[:0], 0, "", add); err != nil {
			t.Fatal(err)
		}
		if rep2, _ := verifyStream(ctx, bytes.NewReader(buf), VerifyOptions{}); !rep2.OK || rep2.Entries != 2 {
			t.Fatalf("writer's own output does not verify: %+v %v\n%s", rep2, rep2.Problem, buf)
		}
	})
}
