package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// forge re-encodes e with a correct hash for its (changed) content, as an
// attacker who knows the format would.
func forge(t *testing.T, e Event) []byte {
	t.Helper()
	line, err := encodeLine(&e)
	if err != nil {
		t.Fatal(err)
	}
	return line[:len(line)-1]
}

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 10
	type lines = [][]byte
	tests := []struct {
		name   string
		tamper func(t *testing.T, l lines) []byte // returns the new file
		kind   string
		line   int64
	}{
		{"edit a field", func(t *testing.T, l lines) []byte {
			l[4] = bytes.Replace(l[4], []byte(`"who":"user4"`), []byte(`"who":"user5"`), 1)
			return join(l)
		}, ProblemEdited, 5},
		{"edit a field and recompute its hash", func(t *testing.T, l lines) []byte {
			e := decode(t, l[4])
			e.Outcome = OutcomeOK
			e.Who = "someone-else"
			l[4] = forge(t, e)
			return join(l)
		}, ProblemEdited, 5},
		{"rewrite seq with a recomputed hash", func(t *testing.T, l lines) []byte {
			e := decode(t, l[4])
			e.Seq = 50
			l[4] = forge(t, e)
			return join(l)
		}, ProblemEdited, 5},
		{"reformat a line", func(t *testing.T, l lines) []byte {
			l[2] = bytes.Replace(l[2], []byte(`,"who":`), []byte(`, "who":`), 1)
			return join(l)
		}, ProblemEdited, 3},
		{"duplicate a key", func(t *testing.T, l lines) []byte {
			l[2] = bytes.Replace(l[2], []byte(`{"seq":3,`), []byte(`{"seq":3,"who":"ghost",`), 1)
			return join(l)
		}, ProblemEdited, 3},
		{"re-case a key", func(t *testing.T, l lines) []byte {
			l[2] = bytes.Replace(l[2], []byte(`"who":`), []byte(`"WHO":`), 1)
			return join(l)
		}, ProblemEdited, 3},
		{"delete a middle line", func(t *testing.T, l lines) []byte {
			return join(append(l[:4], l[5:]...))
		}, ProblemDeleted, 5},
		{"delete three lines", func(t *testing.T, l lines) []byte {
			return join(append(l[:4], l[7:]...))
		}, ProblemDeleted, 5},
		{"delete the first line", func(t *testing.T, l lines) []byte {
			return join(l[1:])
		}, ProblemDeleted, 1},
		{"swap two lines", func(t *testing.T, l lines) []byte {
			l[4], l[5] = l[5], l[4]
			return join(l)
		}, ProblemReordered, 5},
		{"swap the last two lines", func(t *testing.T, l lines) []byte {
			l[n-2], l[n-1] = l[n-1], l[n-2]
			return join(l)
		}, ProblemReordered, n - 1},
		{"move a line to the end", func(t *testing.T, l lines) []byte {
			moved := l[4]
			l = append(l[:4], l[5:]...)
			return join(append(l, moved))
		}, ProblemReordered, 5},
		{"move a line earlier", func(t *testing.T, l lines) []byte {
			moved := l[7]
			l = append(l[:7], l[8:]...)
			l = append(l[:2], append(lines{moved}, l[2:]...)...)
			return join(l)
		}, ProblemReordered, 3},
		{"insert a forged line with a recomputed hash but wrong prev", func(t *testing.T, l lines) []byte {
			e := decode(t, l[4])
			e.Who, e.Action, e.Prev = "mallory", ActionPush, strings.Repeat("0", 64)
			return join(append(l[:4], append(lines{forge(t, e)}, l[4:]...)...))
		}, ProblemInserted, 5},
		{"insert a forged line with the right prev and seq", func(t *testing.T, l lines) []byte {
			e := decode(t, l[4]) // seq 5, prev = hash of seq 4
			e.Who, e.Action = "mallory", ActionPush
			return join(append(l[:4], append(lines{forge(t, e)}, l[4:]...)...))
		}, ProblemInserted, 5},
		{"insert a copy of an earlier line", func(t *testing.T, l lines) []byte {
			return join(append(l[:4], append(lines{bytes.Clone(l[2])}, l[4:]...)...))
		}, ProblemInserted, 5},
		{"append a forged line", func(t *testing.T, l lines) []byte {
			e := decode(t, l[n-1])
			e.Seq++
			e.Who = "mallory"
			return join(append(l, forge(t, e)))
		}, ProblemEdited, n + 1},
		{"truncate a partial last line", func(t *testing.T, l lines) []byte {
			b := join(l)
			return b[:len(b)-40]
		}, ProblemTruncated, n},
		{"strip the final newline", func(t *testing.T, l lines) []byte {
			b := join(l)
			return b[:len(b)-1]
		}, ProblemTruncated, n},
		{"garbage line", func(t *testing.T, l lines) []byte {
			return join(append(l[:3], append(lines{[]byte("\x00\xff garbage")}, l[3:]...)...))
		}, ProblemMalformed, 4},
		{"empty line", func(t *testing.T, l lines) []byte {
			return join(append(l[:3], append(lines{{}}, l[3:]...)...))
		}, ProblemMalformed, 4},
		{"invalid JSON", func(t *testing.T, l lines) []byte {
			l[5] = l[5][:len(l[5])-1]
			return join(l)
		}, ProblemMalformed, 6},
		{"JSON that is not an entry", func(t *testing.T, l lines) []byte {
			l[5] = []byte(`{"seq":6}`)
			return join(l)
		}, ProblemMalformed, 6},
		{"10 MB line", func(t *testing.T, l lines) []byte {
			big := append([]byte(`{"seq":4,"detail":"`), bytes.Repeat([]byte("A"), 10<<20)...)
			return join(append(l[:3], append(lines{append(big, `"}`...)}, l[3:]...)...))
		}, ProblemMalformed, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeEvents(t, path, n)
			if err := os.WriteFile(path, tc.tamper(t, readLines(t, path)), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(context.Background(), path, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Problem == nil {
				t.Fatalf("tampering not detected: %+v", rep)
			}
			t.Log(rep.Problem)
			if rep.Problem.Kind != tc.kind || rep.Problem.Line != tc.line {
				t.Fatalf("problem %v; want %s at line %d", rep.Problem, tc.kind, tc.line)
			}
			if rep.Entries != tc.line-1 || rep.HeadSeq != tc.line-1 {
				t.Fatalf("%d entries verified up to seq %d; want the %d before the problem", rep.Entries, rep.HeadSeq, tc.line-1)
			}
		})
	}
}

// A rewritten last entry with a recomputed hash and a correct prev is a
// valid chain: only the head recorded earlier reveals it. The table above
// has the variant whose prev no longer matches.
func TestVerifyHead(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.log")
	writeEvents(t, path, 10)
	rep := mustVerify(t, path, 10)
	head := rep.Head

	// The log grows: the recorded head is still in it.
	writeEvents(t, path, 5)
	rep, err := Verify(ctx, path, VerifyOptions{Head: head})
	if err != nil || !rep.OK || !rep.HeadFound || rep.ExpectedHeadSeq != 10 || rep.Entries != 15 {
		t.Fatalf("grown log: %+v %v", rep, err)
	}

	tests := []struct {
		name   string
		tamper func([][]byte) [][]byte
	}{
		{"tail truncated at a line boundary", func(l [][]byte) [][]byte { return l[:8] }},
		{"whole file emptied", func(l [][]byte) [][]byte { return nil }},
		{"tail rewritten with recomputed hashes", func(l [][]byte) [][]byte {
			for i := 8; i < len(l); i++ {
				e := decode(t, l[i])
				e.Who = "mallory"
				e.Prev = decode(t, l[i-1]).Hash
				l[i] = forge(t, e)
			}
			return l
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(p, join(tc.tamper(readLines(t, path))), 0o600); err != nil {
				t.Fatal(err)
			}
			// Without the head the remaining chain is valid: the limit
			// the documentation states.
			if rep, err := Verify(ctx, p, VerifyOptions{}); err != nil || !rep.OK {
				t.Fatalf("without head: %+v %v", rep, err)
			}
			rep, err := Verify(ctx, p, VerifyOptions{Head: head})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Problem.Kind != ProblemHeadMissing || rep.HeadFound {
				t.Fatalf("with head: %+v %v", rep, rep.Problem)
			}
		})
	}

	if _, err := Verify(ctx, path, VerifyOptions{Head: "ABC"}); err == nil {
		t.Fatal("malformed head accepted")
	}
	// A missing file is an empty log, which a head reveals.
	missing := filepath.Join(t.TempDir(), "none.log")
	if rep, err := Verify(ctx, missing, VerifyOptions{}); err != nil || !rep.OK || rep.Entries != 0 || rep.Head != "" {
		t.Fatalf("missing file: %+v %v", rep, err)
	}
	if rep, err := Verify(ctx, missing, VerifyOptions{Head: head}); err != nil || rep.OK {
		t.Fatalf("missing file with head: %+v %v", rep, err)
	}
}

func TestVerifyCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeEvents(t, path, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, path, VerifyOptions{}); err == nil {
		t.Fatal("Verify ignored a cancelled context")
	}
	if _, err := Query(ctx, path, Filter{}); err == nil {
		t.Fatal("Query ignored a cancelled context")
	}
}

func join(l [][]byte) []byte {
	if len(l) == 0 {
		return nil
	}
	return append(bytes.Join(l, []byte("\n")), '\n')
}

// TestReadersWaitForWriters: a reader waits while a writer holds the lock
// (mid-batch), gives up when its context ends, and reads once it is free.
func TestReadersWaitForWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeEvents(t, path, 3)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Verify(ctx, path, VerifyOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify under a held lock = %v, want deadline exceeded", err)
	}
	done := make(chan error)
	go func() {
		_, err := Query(context.Background(), path, Filter{})
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
