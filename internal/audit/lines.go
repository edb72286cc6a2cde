package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// errLineTooLong marks a line longer than maxLine; the reader skips the
// rest of it, so the caller may go on.
var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLine)

// lineReader yields the lines of a file one at a time in bounded memory.
type lineReader struct {
	r   *bufio.Reader
	buf []byte
	n   int64 // number of the line last returned, from 1
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its "\n" and whether it had one (only
// the last line of a file can lack it). The slice is valid until the next
// call. At the end it returns io.EOF; a line over maxLine returns
// errLineTooLong after consuming it.
func (lr *lineReader) next() (line []byte, terminated bool, err error) {
	lr.buf = lr.buf[:0]
	tooLong := false
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if !tooLong {
			if len(lr.buf)+len(chunk) > maxLine+1 {
				tooLong = true
				lr.buf = lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			lr.n++
			if tooLong {
				return nil, true, errLineTooLong
			}
			return lr.buf[:len(lr.buf)-1], true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(lr.buf) == 0 && !tooLong {
				return nil, false, io.EOF
			}
			lr.n++
			if tooLong {
				return nil, false, errLineTooLong
			}
			return lr.buf, false, nil
		default:
			return nil, false, err
		}
	}
}

// openSnapshot opens the log for reading and returns a reader over the
// bytes it held when no writer was mid-batch: writers append whole batches
// under an exclusive flock, so taking a shared one for a moment yields a
// size at which every line is complete, without stalling writers for the
// whole scan. A missing file reads as empty.
func openSnapshot(ctx context.Context, path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return eofReader{}, func() {}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open audit log: %w", err)
	}
	size, err := sharedSize(ctx, f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return io.NewSectionReader(f, 0, size), func() { f.Close() }, nil
}

func sharedSize(ctx context.Context, f *os.File) (int64, error) {
	// Poll rather than block, so a cancelled request (a client that went
	// away) does not wait on a writer stuck holding the lock.
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return 0, fmt.Errorf("lock audit log: %w", err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat audit log: %w", err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("audit log %s is not a regular file", f.Name())
	}
	return st.Size(), nil
}

// flock takes a lock, retrying when a signal interrupts the wait. It blocks
// while another process holds a conflicting lock; that process only holds
// it for one batch (a write and an fsync), and the kernel queues waiters
// fairly, which polling would not.
func flock(ctx context.Context, f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("lock audit log: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
