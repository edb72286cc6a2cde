// Package fs stores blobs as content-addressed files:
//
//	ROOT/blobs/<algorithm>/<first two hex>/<hex>
//	ROOT/uploads/<id>
//
// Upload data is written to its own file while hashing, fsynced, then renamed
// to its content path and the directory fsynced, so a blob path either does
// not exist or holds exactly the bytes its name hashes to, even after a crash.
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

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// Store is a filesystem-backed store.Blobs.
type Store struct {
	blobs   *os.Root
	uploads *os.Root
	root    string
}

var _ store.Blobs = (*Store)(nil)

// Open creates (if needed) and opens a blob store rooted at dir. File access
// goes through os.Root so no name, however crafted, resolves outside it.
func Open(dir string) (*Store, error) {
	for _, sub := range []string{"blobs", "uploads"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("create blob store: %w", err)
		}
	}
	blobs, err := os.OpenRoot(filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	uploads, err := os.OpenRoot(filepath.Join(dir, "uploads"))
	if err != nil {
		blobs.Close()
		return nil, fmt.Errorf("open upload store: %w", err)
	}
	return &Store{blobs: blobs, uploads: uploads, root: dir}, nil
}

// Close releases the store's directory handles.
func (s *Store) Close() error {
	return errors.Join(s.blobs.Close(), s.uploads.Close())
}

func blobDir(d digest.Digest) string {
	return string(d.Algorithm()) + "/" + d.Encoded()[:2]
}

func blobPath(d digest.Digest) string {
	return blobDir(d) + "/" + d.Encoded()
}

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
	fi, err := s.blobs.Stat(blobPath(d))
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
	f, err := s.blobs.Open(blobPath(d))
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
	f, err := s.uploads.OpenFile(id, os.O_WRONLY|os.O_CREATE, 0o640)
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
	buf := make([]byte, 256<<10)
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
	f, err := s.uploads.Open(id)
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
	f, err := s.uploads.OpenFile(id, os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open upload: %w", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("sync upload: %w", err)
	}
	if _, err := s.blobs.Stat(blobPath(d)); err == nil {
		// Identical content is already durable; keep the existing file.
		return s.uploads.Remove(id)
	}
	dir := blobDir(d)
	if err := s.blobs.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create blob directory: %w", err)
	}
	// os.Root has no cross-root rename, so rename by path; both paths are
	// built from validated ids and digests under our own directories.
	src := filepath.Join(s.root, "uploads", id)
	dst := filepath.Join(s.root, "blobs", filepath.FromSlash(blobPath(d)))
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("commit blob: %w", err)
	}
	return syncDir(filepath.Join(s.root, "blobs", filepath.FromSlash(dir)))
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
	if err := s.uploads.Remove(id); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Delete implements store.Blobs.
func (s *Store) Delete(_ context.Context, d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := s.blobs.Remove(blobPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Walk implements store.Blobs. Files whose names are not valid digests (left
// by an operator or another tool) are skipped, never reported as content.
func (s *Store) Walk(ctx context.Context, fn func(digest.Digest, int64) error) error {
	return fs.WalkDir(s.blobs.FS(), ".", func(p string, e fs.DirEntry, err error) error {
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
	entries, err := fs.ReadDir(s.uploads.FS(), ".")
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
