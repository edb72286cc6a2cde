package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrClosed is returned by Sync and Close on a closed Log.
var ErrClosed = errors.New("audit log closed")

// Options configure a Log. Zero values select the defaults.
type Options struct {
	// Logger receives write errors and back-pressure warnings.
	Logger *slog.Logger
	// Buffer is how many events may wait for the writer before Record
	// blocks; default 65536.
	Buffer int
	// FlushInterval is how long the writer gathers events after the first
	// one of a batch before writing it, so that a steady trickle costs one
	// fsync per interval rather than one per event; default 50ms. Sync and
	// Close flush at once.
	FlushInterval time.Duration
}

// maxBatch bounds the events written under one lock; a larger backlog is
// written in several batches so other writers get their turn.
const maxBatch = 8192

// Log appends events to an audit log file. Its methods are safe for
// concurrent use; several Logs, in one process or many, may append to the
// same file.
type Log struct {
	path     string
	f        *os.File
	log      *slog.Logger
	interval time.Duration

	// mu guards closed against Record and Sync: they hold it shared while
	// sending, Close exclusively before closing ch, so no send can follow
	// the close.
	mu      sync.RWMutex
	closed  bool
	ch      chan Event
	syncReq chan chan error
	kick    chan struct{} // a Record found the buffer full
	closing chan struct{} // closed with ch, for a writer that is not receiving
	done    chan struct{}
	err     error  // the last flush's error, read after done
	buf     []byte // the writer's encoding buffer

	recorded, written, batches, blocked, writeErrors, dropped atomic.Uint64
}

// Stats are a Log's counters since Open.
type Stats struct {
	Recorded uint64 `json:"recorded"` // events passed to Record
	Written  uint64 `json:"written"`  // events durable in the file (fsynced)
	Batches  uint64 `json:"batches"`  // successful lock-append-fsync rounds
	// Blocked counts Record calls that found the buffer full and waited
	// (back-pressure) instead of dropping the event.
	Blocked     uint64 `json:"blocked"`
	WriteErrors uint64 `json:"writeErrors"` // failed batch writes (retried)
	// Dropped counts events that were never written: recorded after Close,
	// or still failing to write when Close gave up.
	Dropped uint64 `json:"dropped"`
	Queued  int    `json:"queued"` // events in the buffer now
}

// Open opens (creating it, mode 0600) the audit log at path and starts its
// writer. The directory must exist.
func Open(path string, opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 65536
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 50 * time.Millisecond
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if st.Mode().Perm()&0o022 != 0 {
		opts.Logger.Warn("audit log is writable by other users", "path", path, "mode", st.Mode().Perm().String())
	}
	if st.Size() == 0 {
		// A new file must survive a crash as a directory entry too.
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	l := &Log{
		path:     path,
		f:        f,
		log:      opts.Logger,
		interval: opts.FlushInterval,
		ch:       make(chan Event, opts.Buffer),
		syncReq:  make(chan chan error),
		kick:     make(chan struct{}, 1),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	go l.run()
	return l, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync audit log directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync audit log directory: %w", err)
	}
	return nil
}

// Path returns the file the Log appends to.
func (l *Log) Path() string { return l.path }

// Record queues e for writing and returns; it does not wait for the disk.
// Seq, Prev and Hash are assigned by the writer; a zero Time is set to now
// (the moment of the call, not of the write). If the buffer is full, Record
// blocks until there is room: an audit event is never dropped for load.
// Events recorded after Close are dropped and counted in Stats.
func (l *Log) Record(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.recorded.Add(1)
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.dropped.Add(1)
		l.log.Error("audit event recorded after close; dropped", "action", e.Action, "who", e.Who)
		return
	}
	select {
	case l.ch <- e:
		return
	default:
	}
	if n := l.blocked.Add(1); n&(n-1) == 0 {
		// Powers of two only: the warning must not itself become a flood.
		l.log.Warn("audit buffer full; recording waits for the disk", "times", n)
	}
	// Wake the writer if it is gathering: the buffer is full now.
	select {
	case l.kick <- struct{}{}:
	default:
	}
	l.ch <- e
}

// Sync waits until every event recorded before the call is durable in the
// file. It returns the write error if the flush failed (the events stay
// queued and are retried), or ctx's error.
func (l *Log) Sync(ctx context.Context) error {
	reply := make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	select {
	case l.syncReq <- reply:
	case <-ctx.Done():
		l.mu.RUnlock()
		return ctx.Err()
	}
	l.mu.RUnlock()
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes everything recorded so far, stops the writer and closes the
// file. If the final write keeps failing, Close gives up after a few tries
// and returns the error; the lost events are counted in Stats().Dropped.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.ch)
	close(l.closing)
	l.mu.Unlock()
	<-l.done
	if err := l.f.Close(); err != nil && l.err == nil {
		l.err = fmt.Errorf("close audit log: %w", err)
	}
	return l.err
}

// Stats returns the Log's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Recorded:    l.recorded.Load(),
		Written:     l.written.Load(),
		Batches:     l.batches.Load(),
		Blocked:     l.blocked.Load(),
		WriteErrors: l.writeErrors.Load(),
		Dropped:     l.dropped.Load(),
		Queued:      len(l.ch),
	}
}

// run is the writer. Idle, it waits for an event; then it gathers for the
// flush interval without receiving (senders fill the buffer without waking
// it, which keeps Record cheap), drains the buffer, and writes. Sync, Close
// and a Record that finds the buffer full cut the wait short. A failed
// write keeps its events and is retried with backoff; meanwhile the buffer
// fills and Record's back-pressure reaches the callers.
func (l *Log) run() {
	defer close(l.done)
	var (
		pending []Event
		waiters []chan error
		backoff time.Duration
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	drain := func() {
		// Everything sent before now is buffered (a completed send is),
		// ahead of anything later: len(ch) receives cover it. Close cannot
		// close ch meanwhile without the writer seeing closing first, but
		// be safe.
		for n := len(l.ch); n > 0; n-- {
			e, ok := <-l.ch
			if !ok {
				return
			}
			pending = append(pending, e)
		}
	}
	flush := func() {
		drain()
		var err error
		for len(pending) > 0 {
			n := min(len(pending), maxBatch)
			if err = l.appendBatch(pending[:n]); err != nil {
				l.writeErrors.Add(1)
				break
			}
			l.written.Add(uint64(n))
			l.batches.Add(1)
			pending = append(pending[:0], pending[n:]...)
		}
		for _, w := range waiters {
			w <- err
		}
		waiters = waiters[:0]
		if err != nil {
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
			l.log.Error("audit log write failed; retrying", "path", l.path, "queued", len(pending)+len(l.ch), "retry_in", backoff, "err", err)
			timer.Reset(backoff)
			return
		}
		backoff = 0
		if cap(pending) > 4*maxBatch {
			pending = nil // do not keep a burst's memory forever
		}
	}
	for {
		if len(pending) == 0 {
			select {
			case e, ok := <-l.ch:
				if !ok {
					l.err = l.final(&pending)
					return
				}
				pending = append(pending, e)
				timer.Reset(l.interval)
			case w := <-l.syncReq:
				waiters = append(waiters, w)
				flush()
			}
			continue
		}
		kick := l.kick
		if backoff > 0 {
			kick = nil // retrying on the backoff timer, not per blocked Record
		}
		select {
		case <-timer.C:
			flush()
		case <-kick:
			// Since Go 1.23 a stopped timer never delivers a stale tick.
			timer.Stop()
			flush()
		case w := <-l.syncReq:
			timer.Stop()
			waiters = append(waiters, w)
			flush()
		case <-l.closing:
			timer.Stop()
			l.err = l.final(&pending)
			return
		}
	}
}

// final drains the closed channel and writes everything, trying a few
// times before giving up.
func (l *Log) final(pending *[]Event) error {
	for e := range l.ch {
		*pending = append(*pending, e)
	}
	var err error
	for try := range 3 {
		if try > 0 {
			time.Sleep(time.Duration(try) * 100 * time.Millisecond)
		}
		for len(*pending) > 0 {
			n := min(len(*pending), maxBatch)
			if err = l.appendBatch((*pending)[:n]); err != nil {
				l.writeErrors.Add(1)
				break
			}
			l.written.Add(uint64(n))
			l.batches.Add(1)
			*pending = (*pending)[n:]
		}
		if err == nil {
			return nil
		}
	}
	l.dropped.Add(uint64(len(*pending)))
	l.log.Error("audit log: events lost at close", "path", l.path, "events", len(*pending), "err", err)
	return fmt.Errorf("audit log: %d events not written: %w", len(*pending), err)
}

// appendBatch writes events as one batch: lock, find the chain's end,
// append, fsync, unlock. On failure it cuts the file back to where the
// batch began, so a retry neither duplicates nor leaves half an entry.
func (l *Log) appendBatch(events []Event) error {
	ctx := context.Background()
	if err := flock(ctx, l.f, syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("stat audit log: %w", err)
	}
	t, err := readTail(l.f, st.Size())
	if err != nil {
		return err
	}
	size := t.end
	var sys []Event
	if t.partial > 0 {
		// Writers fsync before acknowledging and cut back failed batches,
		// so an incomplete line is a write a crash interrupted: never
		// durable, never acknowledged. Remove it so the chain continues.
		if err := l.f.Truncate(t.end); err != nil {
			return fmt.Errorf("remove incomplete last line of audit log: %w", err)
		}
		l.log.Warn("audit log: removed an incomplete last line", "path", l.path, "bytes", t.partial)
		sys = append(sys, Event{Who: SystemWho, Kind: KindSystem, Action: ActionRepair,
			Detail: fmt.Sprintf("removed %d bytes of an incomplete last line (a write interrupted by a crash)", t.partial)})
	}
	if t.bad {
		l.log.Error("audit log: last line is not a valid entry; starting a new chain after it", "path", l.path)
		sys = append(sys, Event{Who: SystemWho, Kind: KindSystem, Action: ActionRestart,
			Detail: "the previous line is not a valid entry; a new chain starts here at seq 1, prev is that line's sha256"})
	}
	// The writer goroutine is the only caller: reuse its buffer.
	l.buf, err = encodeBatch(l.buf[:0], t.seq, t.hash, sys, events)
	if err != nil {
		return err
	}
	_, err = l.f.Write(l.buf)
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		if terr := l.f.Truncate(size); terr != nil {
			return fmt.Errorf("append to audit log: %w (and cutting back the failed batch: %v)", err, terr)
		}
		return fmt.Errorf("append to audit log: %w", err)
	}
	return nil
}

// encodeBatch appends the lines of events to dst, chained after the entry
// with seq and hash.
func encodeBatch(dst []byte, seq int64, prev string, batches ...[]Event) ([]byte, error) {
	for _, events := range batches {
		for _, e := range events {
			normalize(&e)
			seq++
			e.Seq, e.Prev = seq, prev
			var err error
			if dst, err = appendLine(dst, &e); err != nil {
				return dst, fmt.Errorf("encode audit event: %w", err)
			}
			prev = e.Hash
		}
	}
	return dst, nil
}

// tail is what a writer needs to know about the end of the file.
type tail struct {
	end     int64  // size without an incomplete last line
	partial int64  // bytes of an incomplete last line (no "\n")
	seq     int64  // last entry's Seq (0: empty file)
	hash    string // last entry's Hash ("" for an empty file)
	bad     bool   // the last line is not an entry; seq, hash restart
}

// readTail reads backwards from the end of the file to its last complete
// line, without reading the whole file.
func readTail(f io.ReaderAt, size int64) (tail, error) {
	t := tail{end: size}
	if size == 0 {
		return t, nil
	}
	var last [1]byte
	if err := readAt(f, last[:], size-1); err != nil {
		return t, err
	}
	if last[0] != '\n' {
		nl, err := lastNewline(f, size, -1)
		if err != nil {
			return t, err
		}
		t.end = nl + 1
		t.partial = size - t.end
	}
	if t.end == 0 {
		return t, nil
	}
	// The last complete line is between the newline before it and t.end-1.
	nl, err := lastNewline(f, t.end-1, maxLine+1)
	if err != nil {
		return t, err
	}
	if nl < 0 && t.end-1 > maxLine {
		// Too long to be an entry. Hash it in place for the new chain's
		// prev, as for any other bad line.
		t.bad = true
		if nl, err = lastNewline(f, t.end-1, -1); err != nil {
			return t, err
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, nl+1, t.end-1-(nl+1))); err != nil {
			return t, fmt.Errorf("read audit log tail: %w", err)
		}
		t.seq, t.hash = 0, hex.EncodeToString(h.Sum(nil))
		return t, nil
	}
	line := make([]byte, t.end-1-(nl+1))
	if err := readAt(f, line, nl+1); err != nil {
		return t, err
	}
	var e struct {
		Seq  int64  `json:"seq"`
		Hash string `json:"hash"`
	}
	if json.Unmarshal(line, &e) != nil || e.Seq <= 0 || !isHash(e.Hash) {
		t.bad = true
		sum := sha256.Sum256(line)
		t.seq, t.hash = 0, hex.EncodeToString(sum[:])
		return t, nil
	}
	// Chain to what the line claims even if it was edited: Verify reports
	// the edit there, and the new entries stay verifiable.
	t.seq, t.hash = e.Seq, e.Hash
	return t, nil
}

// lastNewline returns the offset of the last '\n' before pos, or -1 if
// there is none; it looks at most limit bytes back (limit < 0: no limit),
// returning -1 also when the limit is reached.
func lastNewline(f io.ReaderAt, pos, limit int64) (int64, error) {
	buf := make([]byte, 16<<10)
	start := int64(0)
	if limit >= 0 {
		start = max(0, pos-limit)
	}
	for pos > start {
		n := min(int64(len(buf)), pos-start)
		b := buf[:n]
		if err := readAt(f, b, pos-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return pos - n + int64(i), nil
		}
		pos -= n
	}
	return -1, nil
}

// readAt fills b from off; io.ReaderAt may report io.EOF with a full read.
func readAt(f io.ReaderAt, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read audit log tail: %w", err)
}
