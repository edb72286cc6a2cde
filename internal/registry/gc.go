package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/store"
)

// GCOptions control one garbage collection run.
type GCOptions struct {
	// DryRun reports what would be deleted without deleting it.
	DryRun bool
}

// GCResult reports what a run deleted (or, in a dry run, would delete).
type GCResult struct {
	DryRun         bool            `json:"dryRun"`
	BlobsDeleted   []digest.Digest `json:"blobsDeleted"`
	BytesFreed     int64           `json:"bytesFreed"`
	UploadsExpired []string        `json:"uploadsExpired"`
	// OrphanFiles are blob files with no metadata: content whose commit was
	// interrupted by a crash before its record was written.
	OrphanFiles []digest.Digest `json:"orphanFiles"`
	Duration    time.Duration   `json:"duration"`
}

// GC deletes blobs that no manifest references and that were not uploaded,
// mounted or linked within the grace period, removes upload sessions idle
// past their expiry, and removes blob files left without metadata by a crash.
//
// It runs online: pushes continue during a run. Safety rests on two facts.
// A blob's metadata row is deleted in a transaction that re-checks it is
// unreferenced and old, so a manifest committing concurrently either sees
// the blob (and fails cleanly with MANIFEST_BLOB_UNKNOWN) or keeps it alive.
// And the row and the file are deleted under the same per-digest lock that
// an upload holds while it commits the same content, so GC never unlinks a
// file that an upload has just made durable.
func (reg *Registry) GC(ctx context.Context, opts GCOptions) (res GCResult, err error) {
	start := reg.now()
	res.DryRun = opts.DryRun
	mode := "run"
	if opts.DryRun {
		mode = "dry-run"
	}
	defer func() {
		res.Duration = reg.now().Sub(start)
		result := "ok"
		if err != nil {
			result = "error"
		}
		reg.metrics.gcRuns.WithLabelValues(result, mode).Inc()
		if err == nil && !opts.DryRun {
			reg.metrics.gcLast.SetToCurrentTime()
			reg.metrics.gcBlobs.Add(float64(len(res.BlobsDeleted)))
			reg.metrics.gcBytes.Add(float64(res.BytesFreed))
			reg.metrics.gcUploads.Add(float64(len(res.UploadsExpired)))
		}
	}()

	if err := reg.expireUploads(ctx, start.Add(-reg.opts.UploadExpiry), opts.DryRun, &res); err != nil {
		return res, err
	}

	cutoff := start.Add(-reg.opts.GCGrace)
	candidates, err := reg.meta.UnusedBlobs(ctx, cutoff)
	if err != nil {
		return res, fmt.Errorf("list unused blobs: %w", err)
	}
	for _, b := range candidates {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if opts.DryRun {
			res.BlobsDeleted = append(res.BlobsDeleted, b.Digest)
			res.BytesFreed += b.Size
			continue
		}
		deleted, err := reg.collectBlob(ctx, b.Digest, cutoff)
		if err != nil {
			return res, err
		}
		if deleted {
			res.BlobsDeleted = append(res.BlobsDeleted, b.Digest)
			res.BytesFreed += b.Size
		}
	}

	err = reg.blobs.Walk(ctx, func(d digest.Digest, size int64) error {
		orphan, err := reg.sweepOrphan(ctx, d, opts.DryRun)
		if orphan {
			res.OrphanFiles = append(res.OrphanFiles, d)
			res.BytesFreed += size
		}
		return err
	})
	if err != nil {
		return res, fmt.Errorf("sweep blob files: %w", err)
	}
	reg.log.InfoContext(ctx, "gc", "dry_run", opts.DryRun, "blobs", len(res.BlobsDeleted),
		"orphans", len(res.OrphanFiles), "uploads", len(res.UploadsExpired), "bytes", res.BytesFreed,
		"duration", reg.now().Sub(start))
	return res, nil
}

func (reg *Registry) collectBlob(ctx context.Context, d digest.Digest, cutoff time.Time) (bool, error) {
	defer reg.digests.lock(d.String())()
	deleted, err := reg.meta.DeleteBlobIfUnused(ctx, d, cutoff)
	if err != nil || !deleted {
		return false, err
	}
	if err := reg.blobs.Delete(ctx, d); err != nil {
		// The record is gone, so the file is now an orphan the next run
		// removes; report it but keep collecting.
		reg.log.WarnContext(ctx, "gc: delete blob file", "digest", d, "error", err)
	}
	return true, nil
}

// sweepOrphan removes a blob file that has no metadata. Under the digest
// lock no commit of d is in flight, so a missing record means a crash
// interrupted the commit, never that one is about to be written.
func (reg *Registry) sweepOrphan(ctx context.Context, d digest.Digest, dryRun bool) (bool, error) {
	defer reg.digests.lock(d.String())()
	_, err := reg.meta.Blob(ctx, d)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, store.ErrBlobUnknown) {
		return false, err
	}
	if dryRun {
		return true, nil
	}
	return true, reg.blobs.Delete(ctx, d)
}

// expireUploads removes upload sessions idle since before, and upload data
// with no session (from monolithic pushes interrupted by a crash).
func (reg *Registry) expireUploads(ctx context.Context, before time.Time, dryRun bool, res *GCResult) error {
	stale, err := reg.meta.StaleUploads(ctx, before)
	if err != nil {
		return fmt.Errorf("list stale uploads: %w", err)
	}
	for _, u := range stale {
		res.UploadsExpired = append(res.UploadsExpired, u.ID)
		if dryRun {
			continue
		}
		if err := reg.dropUpload(ctx, u.ID); err != nil {
			return err
		}
	}
	data, err := reg.blobs.Uploads(ctx)
	if err != nil {
		return fmt.Errorf("list upload data: %w", err)
	}
	for _, ud := range data {
		if !ud.Modified.Before(before) {
			continue
		}
		if _, err := reg.meta.Upload(ctx, ud.ID); err == nil || !errors.Is(err, store.ErrUploadUnknown) {
			continue // a live session, or a session handled above
		}
		res.UploadsExpired = append(res.UploadsExpired, ud.ID)
		if !dryRun {
			if err := reg.blobs.Abort(ctx, ud.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (reg *Registry) dropUpload(ctx context.Context, id string) error {
	defer reg.uploads.lock(id)()
	if err := reg.blobs.Abort(ctx, id); err != nil {
		return fmt.Errorf("expire upload %s: %w", id, err)
	}
	return reg.meta.DeleteUpload(ctx, id)
}
