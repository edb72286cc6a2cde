// Package catalogcache keeps what cataloging an image produced, per image
// manifest digest, in DATA/scan-cache/, so that scanning the same image
// again (after a vulnerability database update, with another --vex or
// output format) matches its SBOM without reading a layer.
//
// An image is content-addressed: the manifest digest fixes every layer, so
// the catalog of a digest never changes, except when the code that
// produced it does. Entries are therefore keyed by the digest, the
// producer (the binary that wrote it) and the options that shape the
// result; anything else (a different binary, a corrupt or foreign file) is
// a miss, and the image is read again.
package catalogcache

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/scan/lint"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

// DirName is the cache's directory in a data directory.
const DirName = "scan-cache"

// DefaultMaxEntries bounds the directory; the oldest entries go first.
const DefaultMaxEntries = 256

// maxEntrySize bounds what Get reads: an SBOM of an image with tens of
// thousands of packages is a few MiB.
const maxEntrySize = 64 << 20

// Key names an entry. Every field must match for a hit.
type Key struct {
	// Manifest is the image manifest's digest (of the platform image, not
	// of an index).
	Manifest digest.Digest `json:"manifest"`
	// Producer identifies the code that catalogs: its version, and for
	// development builds something that changes with every build.
	Producer string `json:"producer"`
	// Options are the catalog options that change the result (file size
	// limits), in any stable text form.
	Options string `json:"options"`
}

func (k Key) file() string {
	b, _ := json.Marshal(k)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]) + ".json"
}

// Entry is a cached catalog: what does not depend on how the image was
// named. The caller sets the SBOM's source name and adds the tag's lint
// findings (lint.WithTag).
type Entry struct {
	Key  Key        `json:"key"`
	SBOM *sbom.SBOM `json:"sbom"`
	// Lint are lint.Check's findings with no tag.
	Lint []lint.Finding `json:"lint"`
	// Problems are the files the walk could not read, as reported.
	Problems []string `json:"problems,omitempty"`
}

// Cache is a directory of entries. It is safe for concurrent use by
// several processes: entries are written to a temporary file and renamed.
type Cache struct {
	dir string
	max int
}

// New returns the cache in dataDir/scan-cache; the directory is created on
// the first Put.
func New(dataDir string) *Cache {
	return &Cache{dir: filepath.Join(dataDir, DirName), max: DefaultMaxEntries}
}

// ErrMiss is returned by Get when there is no usable entry.
var ErrMiss = errors.New("catalogcache: not cached")

// Get returns the entry for k, or an error wrapping ErrMiss when there is
// none, it is unreadable, or it was written for another key. A damaged
// entry is removed.
func (c *Cache) Get(k Key) (*Entry, error) {
	if err := k.Manifest.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMiss, err)
	}
	path := filepath.Join(c.dir, k.file())
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrMiss
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMiss, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEntrySize+1))
	if err == nil && len(b) > maxEntrySize {
		err = fmt.Errorf("entry larger than %d bytes", maxEntrySize)
	}
	var e Entry
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err = dec.Decode(&e)
	}
	if err == nil {
		err = e.check(k)
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("%w: %s: %w", ErrMiss, path, err)
	}
	// Used entries are the last to be trimmed.
	now := time.Now()
	os.Chtimes(path, now, now)
	return &e, nil
}

func (e *Entry) check(k Key) error {
	switch {
	case e.Key != k:
		return errors.New("written for another image or producer")
	case e.SBOM == nil:
		return errors.New("no SBOM")
	case e.SBOM.Source.Digest != k.Manifest:
		return fmt.Errorf("SBOM of %s", e.SBOM.Source.Digest)
	}
	return nil
}

// Put stores e under e.Key, replacing an older entry, and trims the
// directory to its bound.
func (c *Cache) Put(e *Entry) error {
	if err := e.Key.Manifest.Validate(); err != nil {
		return fmt.Errorf("catalogcache: %w", err)
	}
	if err := e.check(e.Key); err != nil {
		return fmt.Errorf("catalogcache: %w", err)
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("catalogcache: %w", err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("catalogcache: %w", err)
	}
	tmp, err := os.CreateTemp(c.dir, ".put-*")
	if err != nil {
		return fmt.Errorf("catalogcache: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// No fsync: losing an entry to a crash costs one re-read.
		err = os.Rename(tmp.Name(), filepath.Join(c.dir, e.Key.file()))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("catalogcache: %w", err)
	}
	return c.trim()
}

// trim removes the oldest entries beyond the bound, and temporary files a
// crashed writer left.
func (c *Cache) trim() error {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("catalogcache: %w", err)
	}
	type aged struct {
		name string
		mod  int64
	}
	var entries []aged
	for _, de := range des {
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if strings.HasPrefix(de.Name(), ".put-") {
			if info.ModTime().Unix() < time.Now().Add(-time.Hour).Unix() {
				os.Remove(filepath.Join(c.dir, de.Name()))
			}
			continue
		}
		entries = append(entries, aged{de.Name(), info.ModTime().UnixNano()})
	}
	if len(entries) <= c.max {
		return nil
	}
	slices.SortFunc(entries, func(a, b aged) int { return cmp.Compare(a.mod, b.mod) })
	for _, e := range entries[:len(entries)-c.max] {
		os.Remove(filepath.Join(c.dir, e.name))
	}
	return nil
}
