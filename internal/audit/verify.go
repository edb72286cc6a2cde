package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Head is a hash recorded earlier from a Report (or `bulwark audit
	// verify`). If set, Verify also fails unless an entry with this hash
	// is still in the chain: the only way to detect that entries were
	// removed from the end, or the file rewritten from some point on.
	Head string
}

// Report is the outcome of Verify.
type Report struct {
	// OK is true when every line verified (and Head, if given, was found).
	OK bool `json:"ok"`
	// Entries is the number of entries verified, all of them if OK, else
	// those before the problem.
	Entries int64 `json:"entries"`
	// Head is the hash of the last verified entry ("" if none): record it
	// somewhere the log's writers cannot change, and pass it back as
	// VerifyOptions.Head later.
	Head string `json:"head"`
	// HeadSeq is the Seq of that entry.
	HeadSeq int64 `json:"headSeq"`
	// ExpectedHead echoes VerifyOptions.Head; HeadFound says whether an
	// entry with that hash was verified, and at which Seq.
	ExpectedHead    string `json:"expectedHead,omitempty"`
	HeadFound       bool   `json:"headFound,omitempty"`
	ExpectedHeadSeq int64  `json:"expectedHeadSeq,omitempty"`
	// Problem is the first problem found; nil when OK.
	Problem *Problem `json:"problem,omitempty"`
}

// Problem kinds. A chain cannot always tell an attacker's edit from its
// cause (a line rewritten with a recomputed hash looks like the next line
// was replaced), so Message says what was observed.
const (
	ProblemMalformed   = "malformed"    // not a JSON entry of this format, or longer than 1 MiB
	ProblemEdited      = "edited"       // content does not match its hash, is not canonical, or was rewritten with a recomputed hash
	ProblemDeleted     = "deleted"      // entries are missing: seq jumps forward
	ProblemReordered   = "reordered"    // an entry appears out of order
	ProblemInserted    = "inserted"     // a line that is not part of the chain sits between two linked entries
	ProblemTruncated   = "truncated"    // the last line is incomplete (no newline)
	ProblemHeadMissing = "head-missing" // VerifyOptions.Head is not in the chain: the tail was removed or rewritten
)

// Problem locates the first break in the chain.
type Problem struct {
	Line    int64  `json:"line"`          // 1-based line number in the file (0: the file as a whole)
	Seq     int64  `json:"seq,omitempty"` // the entry's seq, when the line decoded
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func (p *Problem) String() string {
	if p.Line == 0 {
		return fmt.Sprintf("%s: %s", p.Kind, p.Message)
	}
	return fmt.Sprintf("line %d: %s: %s", p.Line, p.Kind, p.Message)
}

// entryAt is a decoded line and what checking it alone found.
type entryAt struct {
	line  int64
	e     Event
	valid bool // decoded, canonical and matching its hash
	why   *Problem
}

// check decodes one line and verifies it on its own: canonical encoding
// and hash. Chain links are checked by the caller.
func check(n int64, line []byte, terminated bool, readErr error) entryAt {
	ea := entryAt{line: n}
	switch {
	case errors.Is(readErr, errLineTooLong):
		ea.why = &Problem{Line: n, Kind: ProblemMalformed, Message: readErr.Error()}
		return ea
	case !terminated:
		ea.why = &Problem{Line: n, Kind: ProblemTruncated, Message: fmt.Sprintf("the last line is incomplete (%d bytes, no newline): a write was cut short or the file was truncated", len(line))}
		if json.Unmarshal(line, &ea.e) == nil {
			ea.why.Seq = ea.e.Seq
		}
		return ea
	}
	if len(line) == 0 {
		ea.why = &Problem{Line: n, Kind: ProblemMalformed, Message: "empty line"}
		return ea
	}
	if err := json.Unmarshal(line, &ea.e); err != nil {
		ea.why = &Problem{Line: n, Kind: ProblemMalformed, Message: "not a JSON audit entry: " + err.Error()}
		return ea
	}
	if ea.e.Seq <= 0 || !isHash(ea.e.Hash) || (ea.e.Prev != "" && !isHash(ea.e.Prev)) {
		ea.why = &Problem{Line: n, Seq: ea.e.Seq, Kind: ProblemMalformed, Message: "seq, prev or hash missing or not well-formed"}
		return ea
	}
	hash := ea.e.Hash
	enc, err := encodeLine(&ea.e)
	if err != nil {
		ea.why = &Problem{Line: n, Seq: ea.e.Seq, Kind: ProblemMalformed, Message: err.Error()}
		return ea
	}
	if ea.e.Hash != hash {
		ea.e.Hash = hash
		ea.why = &Problem{Line: n, Seq: ea.e.Seq, Kind: ProblemEdited, Message: "content does not match its hash: the entry was changed after it was written"}
		return ea
	}
	if !bytes.Equal(enc[:len(enc)-1], line) {
		ea.why = &Problem{Line: n, Seq: ea.e.Seq, Kind: ProblemEdited, Message: "the line is not in canonical encoding (reformatted, or keys duplicated or re-cased): it was changed after it was written"}
		return ea
	}
	ea.valid = true
	return ea
}

// Verify reads the log at path and checks every entry's hash, that each
// links to the one before it, and that seq counts from 1 without gaps. It
// stops at the first problem and classifies it as well as a chain allows.
// Tampering is reported in the Report (OK false); the error is for I/O
// failures and bad options. A missing file verifies as empty. Memory is
// bounded: the file is streamed once (and the rest of it scanned once more
// to classify a break).
func Verify(ctx context.Context, path string, opts VerifyOptions) (Report, error) {
	rep := Report{ExpectedHead: opts.Head}
	if opts.Head != "" && !isHash(opts.Head) {
		return rep, fmt.Errorf("expected head %q is not a lowercase hex sha256", opts.Head)
	}
	r, closeFn, err := openSnapshot(ctx, path)
	if err != nil {
		return rep, err
	}
	defer closeFn()
	return verifyStream(ctx, r, opts)
}

// verifyStream is Verify on the log's bytes.
func verifyStream(ctx context.Context, r io.Reader, opts VerifyOptions) (Report, error) {
	rep := Report{ExpectedHead: opts.Head}
	lr := newLineReader(r)

	var (
		prevSeq  int64
		prevHash string
		// The hash before prevHash: to recognise an inserted line once the
		// line after it shows that it was skipped.
		prevPrevHash string
		have         *entryAt // read ahead
	)
	read := func() (*entryAt, error) {
		if have != nil {
			ea := have
			have = nil
			return ea, nil
		}
		line, terminated, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil && !errors.Is(err, errLineTooLong) {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		ea := check(lr.n, line, terminated, err)
		return &ea, nil
	}
	peek := func() (*entryAt, error) {
		if have == nil {
			ea, err := read()
			if err != nil {
				return nil, err
			}
			have = ea
		}
		return have, nil
	}
	accept := func(e Event) {
		rep.Entries++
		prevPrevHash, prevSeq, prevHash = prevHash, e.Seq, e.Hash
		if opts.Head != "" && e.Hash == opts.Head {
			rep.HeadFound, rep.ExpectedHeadSeq = true, e.Seq
		}
	}
	for {
		if rep.Entries%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
		}
		cur, err := read()
		if err != nil {
			return rep, err
		}
		if cur == nil {
			break
		}
		if !cur.valid {
			rep.Problem = cur.why
			break
		}
		e := cur.e
		if e.Prev == prevHash && e.Seq == prevSeq+1 {
			accept(e)
			continue
		}
		next, err := peek()
		if err != nil {
			return rep, err
		}
		rep.Problem, err = classify(cur, next, prevSeq, prevHash, prevPrevHash, read)
		if err != nil {
			return rep, err
		}
		if rep.Problem.Line < cur.line {
			// The previous line was the culprit: it is not verified.
			rep.Entries--
			prevSeq--
			prevHash = prevPrevHash
			if rep.HeadFound && rep.ExpectedHeadSeq == prevSeq+1 {
				rep.HeadFound, rep.ExpectedHeadSeq = false, 0
			}
		}
		break
	}
	rep.Head, rep.HeadSeq = prevHash, prevSeq
	if rep.Problem == nil && opts.Head != "" && !rep.HeadFound {
		rep.Problem = &Problem{Kind: ProblemHeadMissing, Message: fmt.Sprintf(
			"the expected head %s is not in the log (%d entries): entries were removed from the end, or the log was rewritten", opts.Head, rep.Entries)}
	}
	rep.OK = rep.Problem == nil
	return rep, nil
}

// classify explains why cur, a valid entry, does not continue the chain
// that ended at prevSeq/prevHash. next is the line after it (nil at the
// end); read yields the lines after next, for a scan.
func classify(cur, next *entryAt, prevSeq int64, prevHash, prevPrevHash string, read func() (*entryAt, error)) (*Problem, error) {
	e := cur.e
	p := func(line, seq int64, kind, format string, args ...any) *Problem {
		return &Problem{Line: line, Seq: seq, Kind: kind, Message: fmt.Sprintf(format, args...)}
	}
	// scan looks through the rest of the file, from next on, for an entry.
	scan := func(found func(Event) bool) (*entryAt, error) {
		for ea := next; ea != nil; {
			if ea.valid && found(ea.e) {
				return ea, nil
			}
			var err error
			if ea, err = read(); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	nextLinks := next != nil && next.valid && next.e.Prev == prevHash && next.e.Seq == prevSeq+1
	switch {
	case nextLinks && next.e.Hash == e.Prev:
		return p(cur.line, e.Seq, ProblemReordered, "seq %d comes before seq %d: lines %d and %d are swapped", e.Seq, next.e.Seq, cur.line, next.line), nil
	case nextLinks && e.Seq > prevSeq+1:
		// A later entry may be cur's successor: then cur was moved here.
		succ, err := scan(func(x Event) bool { return x.Prev == e.Hash })
		if err != nil {
			return nil, err
		}
		if succ != nil {
			return p(cur.line, e.Seq, ProblemReordered, "seq %d belongs before seq %d at line %d: entries were moved", e.Seq, succ.e.Seq, succ.line), nil
		}
		return p(cur.line, e.Seq, ProblemInserted, "line %d is not part of the chain: line %d links directly to line %d", cur.line, next.line, cur.line-1), nil
	case nextLinks:
		return p(cur.line, e.Seq, ProblemInserted, "line %d is not part of the chain: line %d links directly to line %d", cur.line, next.line, cur.line-1), nil
	case prevSeq > 0 && e.Seq == prevSeq && e.Prev == prevPrevHash:
		// cur links past the previous line, which claimed cur's place.
		return p(cur.line-1, e.Seq, ProblemInserted, "line %d is not part of the chain: line %d links directly to line %d", cur.line-1, cur.line, cur.line-2), nil
	case e.Prev == prevHash:
		return p(cur.line, e.Seq, ProblemEdited, "seq %d follows seq %d: the entry was rewritten with a recomputed hash", e.Seq, prevSeq), nil
	case e.Seq > prevSeq+1:
		// Deleted, unless the missing entry turns up later (moved).
		want := prevSeq + 1
		moved, err := scan(func(x Event) bool { return x.Seq == want && x.Prev == prevHash })
		if err != nil {
			return nil, err
		}
		if moved != nil {
			return p(cur.line, e.Seq, ProblemReordered, "seq %d is at line %d, after seq %d at line %d: entries were moved", want, moved.line, e.Seq, cur.line), nil
		}
		if want == e.Seq-1 {
			return p(cur.line, e.Seq, ProblemDeleted, "entry seq %d is missing before line %d: it was deleted", want, cur.line), nil
		}
		return p(cur.line, e.Seq, ProblemDeleted, "entries seq %d to %d are missing before line %d: they were deleted", want, e.Seq-1, cur.line), nil
	case e.Seq <= prevSeq:
		return p(cur.line, e.Seq, ProblemReordered, "seq %d appears after seq %d: entries were moved or duplicated", e.Seq, prevSeq), nil
	case next != nil && next.valid && next.e.Prev == e.Hash:
		// cur is intact and linked to by its successor, so what it links
		// to (the previous line's original hash) was replaced.
		if cur.line == 1 {
			return p(cur.line, e.Seq, ProblemEdited, "the first entry has prev %s: entries before it were removed", e.Prev), nil
		}
		return p(cur.line-1, prevSeq, ProblemEdited, "line %d does not link to line %d: line %d was rewritten with a recomputed hash", cur.line, cur.line-1, cur.line-1), nil
	default:
		return p(cur.line, e.Seq, ProblemEdited, "does not link to the previous entry (prev %s, expected %s): the entry was replaced, or line %d was rewritten with a recomputed hash", short(e.Prev), short(prevHash), cur.line-1), nil
	}
}

func short(h string) string {
	if h == "" {
		return `""`
	}
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
