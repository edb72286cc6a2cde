package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/store"
	"github.com/bulwark-dev/bulwark/internal/store/fs"
	"github.com/bulwark-dev/bulwark/internal/store/sqlite"
)

// ErrDataBusy reports a data directory another process (normally a running
// `bulwark serve`) holds.
var ErrDataBusy = errors.New("data directory is in use by another bulwark process")

// Data is an opened data directory: the blob store, the metadata database,
// and the exclusive lock that makes this process their only writer.
type Data struct {
	Dir   string
	Blobs *fs.Store
	Meta  *sqlite.DB
	lock  *os.File
}

// OpenData opens (creating if needed) a data directory and takes its lock.
// One process owns a data directory at a time: GC's safety relies on
// in-process locks, so a second writer must be refused, not merely warned.
func OpenData(ctx context.Context, dir string) (*Data, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open data directory lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDataBusy, dir)
		}
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	blobs, err := fs.Open(dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	meta, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"), sqlite.Options{})
	if err != nil {
		blobs.Close()
		lock.Close()
		return nil, err
	}
	return &Data{Dir: dir, Blobs: blobs, Meta: meta, lock: lock}, nil
}

// Registry returns a registry over the data directory's stores.
func (d *Data) Registry(opts registry.Options) *registry.Registry {
	return registry.New(d.Blobs, d.Meta, opts)
}

// Close closes the stores and releases the lock.
func (d *Data) Close() error {
	return errors.Join(d.Meta.Close(), d.Blobs.Close(), d.lock.Close())
}

var storePage1 = store.Page{N: 1}
