// Package fs stores blobs as content-addressed files:
//
//	ROOT/blobs/<algorithm>/<first two hex>/<hex>
//	ROOT/uploads/<id>
//
// Upload data is written to its own file while hashing, fsynced, then renamed
// to its content path and the directory fsynced, so a blob path either does
// not exist or holds exactly the bytes its name hashes to, even after a crash.
//
// Paths are built only from validated digests (lower-case hex) and upload ids
// ([A-Za-z0-9_-]), so no name can reach outside the root; plain path
// operations are used rather than os.Root, whose per-component openat walk
// cost more than the rest of a small blob's write path.
package fs

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// Store is a filesystem-backed store.Blobs.
type Store struct {
	blobs   string // ROOT/blobs
	uploads string // ROOT/uploads
}

// copyBuffers recycles the buffers that stream request bodies to disk.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

var _ store.Blobs = (*Store)(nil)

// Open creates (if needed) and opens a blob store rooted at dir. The
// two-hex-digit shard directories are created up front, so committing a blob
// never has to create directories.
func Open(dir string) (*Store, error) {
	s := &Store{blobs: filepath.Join(dir, "blobs"), uploads: filepath.Join(dir, "uploads")}
	if err := os.MkdirAll(s.uploads, 0o750); err != nil {
		return nil, fmt.Errorf("create blob store: %w", err)
	}
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		for i := range 256 {
			shard := filepath.Join(s.blobs, string(alg), fmt.Sprintf("%02x", i))
			if err := os.MkdirAll(shard, 0o750); err != nil {
				return nil, fmt.Errorf("create blob store: %w", err)
			}
		}
	}
	return s, nil
}

// Close implements io.Closer; the store holds no open resources.
func (s *Store) Close() error { return nil }

func (s *Store) blobDir(d digest.Digest) string {
	return filepath.Join(s.blobs, string(d.Algorithm()), d.Encoded()[:2])
}

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.blobDir(d), d.Encoded())
}

func (s *Store) uploadPath(id string) string { return filepath.Join(s.uploads, id) }

// validUploadID keeps ids to a safe alphabet; the registry generates them,
// but they arrive back from clients in URLs.
func validUploadID(id string) error {
	if id == "" || len(id) > 128 {
		return store.ErrUploadUnknown
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return store.ErrUploadUnknown
		}
	}
	return nil
}

func checkDigest(d digest.Digest) error {
	if _, err := oci.ParseDigest(string(d)); err != nil {
		return fmt.Errorf("%w: %v", store.ErrBlobUnknown, err)
	}
	return nil
}

// Stat implements store.Blobs.
func (s *Store) Stat(_ context.Context, d digest.Digest) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("%w: %s", store.ErrBlobUnknown, d)
		}
		return 0, err
	}
	return fi.Size(), nil
}

// Open implements store.Blobs.
func (s *Store) Open(_ context.Context, d digest.Digest) (store.ReadSeekCloser, int64, error) {
	if err := checkDigest(d); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("%w: %s", store.ErrBlobUnknown, d)
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Append implements store.Blobs.
func (s *Store) Append(ctx context.Context, id string, offset int64, r io.Reader, h hash.Hash, limit int64) (int64, error) {
	if err := validUploadID(id); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(s.uploadPath(id), os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return 0, fmt.Errorf("open upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() != offset {
		// The metadata and the data disagree (a crash between writing data and
		// recording the offset): drop the tail we never acknowledged.
		if fi.Size() < offset {
			return 0, fmt.Errorf("upload %s has %d bytes, expected %d: %w", id, fi.Size(), offset, store.ErrUploadUnknown)
		}
		if err := f.Truncate(offset); err != nil {
			return 0, err
		}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	w := io.Writer(f)
	if h != nil {
		w = io.MultiWriter(f, h)
	}
	src := r
	if limit >= 0 {
		src = io.LimitReader(r, limit+1)
	}
	n, err := copyContext(ctx, w, src)
	if err != nil {
		return n, err
	}
	if limit >= 0 && n > limit {
		return n, fmt.Errorf("%w: more than %d bytes", store.ErrTooLarge, limit)
	}
	return n, nil
}

// copyContext copies with a large buffer, stopping when ctx ends.
func copyContext(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// Rehash implements store.Blobs.
func (s *Store) Rehash(ctx context.Context, id string, alg digest.Algorithm) (digest.Digest, int64, error) {
	if err := validUploadID(id); err != nil {
		return "", 0, err
	}
	if !alg.Available() {
		return "", 0, fmt.Errorf("digest algorithm %q unavailable", alg)
	}
	f, err := os.Open(s.uploadPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		// An upload with no data yet is the empty blob.
		return alg.FromBytes(nil), 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	dg := alg.Digester()
	n, err := copyContext(ctx, dg.Hash(), f)
	if err != nil {
		return "", 0, err
	}
	return dg.Digest(), n, nil
}

// Commit implements store.Blobs.
func (s *Store) Commit(_ context.Context, id string, d digest.Digest) error {
	if err := validUploadID(id); err != nil {
		return err
	}
	if err := checkDigest(d); err != nil {
		return err
	}
	src := s.uploadPath(id)
	dst := s.blobPath(d)
	if _, err := os.Lstat(dst); err == nil {
		// Identical content is already durable; keep the existing file.
		return os.Remove(src)
	}
	f, err := os.OpenFile(src, os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open upload: %w", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("sync upload: %w", err)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("commit blob: %w", err)
	}
	return syncDir(s.blobDir(d))
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// Abort implements store.Blobs.
func (s *Store) Abort(_ context.Context, id string) error {
	if err := validUploadID(id); err != nil {
		return nil
	}
	if err := os.Remove(s.uploadPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Delete implements store.Blobs.
func (s *Store) Delete(_ context.Context, d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := os.Remove(s.blobPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Walk implements store.Blobs. Files whose names are not valid digests (left
// by an operator or another tool) are skipped, never reported as content.
func (s *Store) Walk(ctx context.Context, fn func(digest.Digest, int64) error) error {
	return fs.WalkDir(os.DirFS(s.blobs), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		parts := strings.Split(p, "/")
		if len(parts) != 3 {
			return nil
		}
		d, perr := oci.ParseDigest(parts[0] + ":" + parts[2])
		if perr != nil || parts[1] != d.Encoded()[:2] {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		return fn(d, fi.Size())
	})
}

// Uploads implements store.Blobs.
func (s *Store) Uploads(_ context.Context) ([]store.UploadData, error) {
	entries, err := os.ReadDir(s.uploads)
	if err != nil {
		return nil, err
	}
	out := make([]store.UploadData, 0, len(entries))
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			continue // removed concurrently
		}
		out = append(out, store.UploadData{ID: e.Name(), Size: fi.Size(), Modified: fi.ModTime()})
	}
	return out, nil
}
