package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// Problem is one inconsistency found by Fsck.
type Problem struct {
	Kind       string        `json:"kind"`
	Repository string        `json:"repository,omitempty"`
	Digest     digest.Digest `json:"digest"`
	Message    string        `json:"message"`
}

// FsckReport is the result of a consistency check.
type FsckReport struct {
	BlobsChecked     int       `json:"blobsChecked"`
	BytesChecked     int64     `json:"bytesChecked"`
	ManifestsChecked int       `json:"manifestsChecked"`
	Problems         []Problem `json:"problems"`
	// Orphans are blob files without metadata. They are harmless (never
	// served) and expected after a crash; GC removes them.
	Orphans []digest.Digest `json:"orphans"`
}

// OK reports whether the check found no problems.
func (r *FsckReport) OK() bool { return len(r.Problems) == 0 }

// Problem kinds.
const (
	ProblemBlobMissing      = "blob-missing"
	ProblemBlobCorrupt      = "blob-corrupt"
	ProblemManifestCorrupt  = "manifest-corrupt"
	ProblemManifestRef      = "manifest-reference-missing"
	ProblemManifestChildRef = "index-child-missing"
)

// Fsck re-verifies every blob's content against its digest and every
// manifest's content and references. Workers bounds concurrent hashing.
func (reg *Registry) Fsck(ctx context.Context, workers int) (*FsckReport, error) {
	if workers <= 0 {
		workers = 2
	}
	rep := &FsckReport{}
	var mu sync.Mutex
	add := func(p Problem) {
		mu.Lock()
		rep.Problems = append(rep.Problems, p)
		mu.Unlock()
	}

	records, err := reg.meta.Blobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	known := make(map[digest.Digest]bool, len(records))
	work := make(chan store.BlobRecord)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := range work {
				n, p := reg.verifyBlob(ctx, b)
				mu.Lock()
				rep.BlobsChecked++
				rep.BytesChecked += n
				mu.Unlock()
				if p != nil {
					add(*p)
				}
			}
		})
	}
	for _, b := range records {
		known[b.Digest] = true
		select {
		case work <- b:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	err = reg.meta.WalkManifests(ctx, func(repo string, m *store.ManifestRecord) error {
		rep.ManifestsChecked++
		for _, p := range reg.checkManifest(ctx, repo, m, known) {
			add(p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk manifests: %w", err)
	}

	err = reg.blobs.Walk(ctx, func(d digest.Digest, _ int64) error {
		if !known[d] {
			rep.Orphans = append(rep.Orphans, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk blob files: %w", err)
	}
	return rep, nil
}

func (reg *Registry) verifyBlob(ctx context.Context, b store.BlobRecord) (int64, *Problem) {
	f, size, err := reg.blobs.Open(ctx, b.Digest)
	if err != nil {
		kind := ProblemBlobCorrupt
		if errors.Is(err, store.ErrBlobUnknown) {
			kind = ProblemBlobMissing
		}
		return 0, &Problem{Kind: kind, Digest: b.Digest, Message: err.Error()}
	}
	defer f.Close()
	if size != b.Size {
		return 0, &Problem{Kind: ProblemBlobCorrupt, Digest: b.Digest,
			Message: fmt.Sprintf("file has %d bytes, recorded size is %d", size, b.Size)}
	}
	v := b.Digest.Verifier()
	n, err := io.Copy(v, f)
	if err != nil {
		return n, &Problem{Kind: ProblemBlobCorrupt, Digest: b.Digest, Message: "read: " + err.Error()}
	}
	if !v.Verified() {
		return n, &Problem{Kind: ProblemBlobCorrupt, Digest: b.Digest, Message: "content does not match its digest"}
	}
	return n, nil
}

func (reg *Registry) checkManifest(ctx context.Context, repo string, m *store.ManifestRecord, known map[digest.Digest]bool) []Problem {
	var out []Problem
	bad := func(kind string, d digest.Digest, format string, args ...any) {
		out = append(out, Problem{Kind: kind, Repository: repo, Digest: d, Message: fmt.Sprintf(format, args...)})
	}
	if got := m.Digest.Algorithm().FromBytes(m.Content); got != m.Digest {
		bad(ProblemManifestCorrupt, m.Digest, "content hashes to %s", got)
	}
	parsed, err := oci.ParseManifest(m.MediaType, m.Content)
	if err != nil {
		bad(ProblemManifestCorrupt, m.Digest, "%v", err)
	} else if parsed.Config != nil {
		m.Config = parsed.Config.Digest
	}
	for _, b := range m.Blobs {
		if !known[b] {
			if reg.opts.AllowSparse && b != m.Config {
				continue
			}
			bad(ProblemManifestRef, m.Digest, "references blob %s, which the store does not hold", b)
		}
		// A blob deliberately unlinked from the repository (DELETE
		// /blobs/) while a manifest still names it is the user's choice,
		// not corruption: GC keeps its content, so it is not reported.
	}
	for _, c := range m.Children {
		if _, err := reg.meta.Manifest(ctx, repo, c); err != nil && !reg.opts.AllowSparse {
			bad(ProblemManifestChildRef, m.Digest, "lists manifest %s, which %s does not hold", c, repo)
		}
	}
	return out
}
