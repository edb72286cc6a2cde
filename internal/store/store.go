// Package store defines where the registry keeps things: Blobs holds
// content-addressed bytes, Meta holds everything that names or relates them
// (repositories, tags, manifests, referrers, upload sessions).
//
// The split follows containerd's content store and metadata: bytes are
// immutable and verified once on the way in, metadata is transactional and
// commits only after the bytes it names are durable. Implementations live in
// sub-packages (fs and sqlite today; s3 and postgres can follow) and all pass
// the shared suite in storetest.
package store

import (
	"context"
	"errors"
	"hash"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Errors callers branch on. Implementations wrap them with detail.
var (
	ErrBlobUnknown     = errors.New("blob unknown")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrUploadUnknown   = errors.New("upload unknown")
	ErrRepoUnknown     = errors.New("repository unknown")
	ErrTagUnknown      = errors.New("tag unknown")
	// ErrNotQuarantined: Release found no quarantine record.
	ErrNotQuarantined = errors.New("manifest not quarantined")
)

// BlobUnknownError names the digest a manifest referenced but the repository
// does not hold, so the registry can report it to the client.
type BlobUnknownError struct{ Digest digest.Digest }

func (e *BlobUnknownError) Error() string { return "blob unknown to repository: " + e.Digest.String() }
func (e *BlobUnknownError) Unwrap() error { return ErrBlobUnknown }

// ManifestUnknownError names the child manifest an index referenced but the
// repository does not hold.
type ManifestUnknownError struct{ Digest digest.Digest }

func (e *ManifestUnknownError) Error() string {
	return "manifest unknown to repository: " + e.Digest.String()
}
func (e *ManifestUnknownError) Unwrap() error { return ErrManifestUnknown }

// ReadSeekCloser is what Blobs.Open returns: enough for Range requests.
type ReadSeekCloser interface {
	io.ReadSeeker
	io.Closer
}

// Blobs is content-addressed storage. Content enters only through an upload
// that is verified against its digest and made durable before Commit
// returns; nothing can be read under a digest it does not hash to.
type Blobs interface {
	// Stat returns the size of a committed blob, or ErrBlobUnknown.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns a reader over a committed blob and its size.
	Open(ctx context.Context, d digest.Digest) (ReadSeekCloser, int64, error)
	// Append writes r to upload id starting at offset, feeding every byte to
	// h, and returns the number of bytes written. It writes at most limit
	// bytes and returns ErrTooLarge past that. The upload's data is created
	// on first use.
	Append(ctx context.Context, id string, offset int64, r io.Reader, h hash.Hash, limit int64) (int64, error)
	// Rehash recomputes the digest of upload id's data with algorithm alg.
	Rehash(ctx context.Context, id string, alg digest.Algorithm) (digest.Digest, int64, error)
	// Commit makes upload id durable under digest d. The caller has verified
	// the digest. Committing content that already exists discards the upload.
	Commit(ctx context.Context, id string, d digest.Digest) error
	// Abort discards an upload's data. Unknown ids are not an error.
	Abort(ctx context.Context, id string) error
	// Delete removes a committed blob. Unknown digests are not an error.
	Delete(ctx context.Context, d digest.Digest) error
	// Walk calls fn for every committed blob.
	Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error
	// Uploads lists upload data with its last modification time, so stale
	// uploads can be found even if their metadata was lost.
	Uploads(ctx context.Context) ([]UploadData, error)
}

// UploadData describes bytes of an unfinished upload.
type UploadData struct {
	ID       string
	Size     int64
	Modified time.Time
}

// ErrTooLarge reports a body beyond a size limit.
var ErrTooLarge = errors.New("content too large")

// Upload is an upload session's metadata.
type Upload struct {
	ID         string
	Repository string
	Offset     int64  // bytes received so far
	HashState  []byte // marshalled sha256 state of those bytes
	// Instance identifies the registry process that created the session.
	// Upload data is not fsynced between requests, so after a restart the
	// saved hash state is not trusted: the data is re-hashed at the end.
	Instance string
	Started  time.Time
	Updated  time.Time
}

// ManifestRecord is a stored manifest: its bytes and what the registry derived
// from them when it was accepted.
type ManifestRecord struct {
	Digest       digest.Digest
	MediaType    string
	ArtifactType string // effective artifact type (see oci.Manifest)
	Subject      digest.Digest
	Annotations  map[string]string
	Content      []byte
	Config       digest.Digest   // image manifests: the config blob
	Blobs        []digest.Digest // config and layers the manifest needs
	Children     []digest.Digest // manifests an index lists
	Created      time.Time
}

// Size is the length of the manifest's content.
func (m *ManifestRecord) Size() int64 { return int64(len(m.Content)) }

// BlobRecord is a blob known to the metadata store.
type BlobRecord struct {
	Digest  digest.Digest
	Size    int64
	Touched time.Time // last upload, link or mount: the GC grace clock
}

// Violation is one policy rule a manifest failed.
type Violation struct {
	Rule        string `json:"rule"`
	Message     string `json:"message"`
	Remediation string `json:"remediation,omitempty"`
}

// QuarantineRecord says why a stored manifest is quarantined: a push policy
// refused it, so the registry serves it only to its pusher and to
// administrators until a later decision, or an administrator, releases it.
type QuarantineRecord struct {
	Repository string
	Digest     digest.Digest
	// Pusher and PusherKind name the account whose push was quarantined
	// (kind user, robot or anonymous).
	Pusher     string
	PusherKind string
	Created    time.Time // first quarantined
	Decided    time.Time // the decision recorded here
	Reason     string
	Violations []Violation
	DecisionID string
}

// BlobAccess is what a registry that enforces quarantine needs to decide
// whether to serve a blob linked into a repository.
type BlobAccess struct {
	Size int64
	// Public: a manifest in the repository that is not quarantined
	// references the blob.
	Public bool
	// Quarantined, when not Public, holds the quarantine records of the
	// manifests that reference the blob (at most 100). Empty: no manifest
	// in the repository references it (yet: an upload in progress).
	Quarantined []*QuarantineRecord
}

// Page bounds a listing: at most N entries after Last (exclusive). N < 0
// means no limit.
type Page struct {
	Last string
	N    int
}

// Meta is the metadata store. Every method is safe for concurrent use.
type Meta interface {
	// PutBlob records committed content of the given size and links it into
	// repo (creating the repository), refreshing its GC grace clock.
	PutBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	// CompleteUpload is PutBlob followed by the deletion of upload session
	// id. The blob record is durable first; a crash between the two leaves a
	// stale session that expires like any abandoned one.
	CompleteUpload(ctx context.Context, id, repo string, d digest.Digest, size int64) error
	// LinkBlob links content that the store already knows into repo and
	// returns its size; ErrBlobUnknown if the content is unknown.
	LinkBlob(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// RepoBlob returns the size of a blob linked into repo.
	RepoBlob(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// BlobRepositories lists repositories a blob is linked into.
	BlobRepositories(ctx context.Context, d digest.Digest) ([]string, error)
	// UnlinkBlob removes a blob from a repository.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error

	// PutManifest stores m in repo and points every tag in tags at it,
	// atomically. Unless sparse is set it fails with *BlobUnknownError or
	// *ManifestUnknownError if a layer, config or child manifest is not in
	// the repository; with sparse, only the config must be present.
	PutManifest(ctx context.Context, repo string, m *ManifestRecord, tags []string, sparse bool) error
	// PutQuarantinedManifest is PutManifest that also records q (for this
	// repository and m's digest) in the same transaction, so a manifest a
	// policy refused is never visible unquarantined, even after a crash. A
	// manifest already stored is quarantined in place.
	PutQuarantinedManifest(ctx context.Context, repo string, m *ManifestRecord, tags []string, sparse bool, q *QuarantineRecord) error
	// Manifest returns a manifest by digest.
	Manifest(ctx context.Context, repo string, d digest.Digest) (*ManifestRecord, error)
	// ManifestWithQuarantine is Manifest plus the manifest's quarantine
	// record (nil when it is not quarantined), in one lookup: the pull path
	// of a registry that enforces quarantine.
	ManifestWithQuarantine(ctx context.Context, repo string, d digest.Digest) (*ManifestRecord, *QuarantineRecord, error)
	// Tag resolves a tag to a digest.
	Tag(ctx context.Context, repo, tag string) (digest.Digest, error)
	// DeleteManifest removes a manifest and every tag pointing at it.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// DeleteTag removes one tag.
	DeleteTag(ctx context.Context, repo, tag string) error
	// Tags lists a repository's tags in lexical order.
	Tags(ctx context.Context, repo string, p Page) ([]string, error)
	// Repositories lists repository names in lexical order.
	Repositories(ctx context.Context, p Page) ([]string, error)
	// Referrers lists manifests in repo whose subject is d, optionally only
	// those of one artifact type.
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]*ManifestRecord, error)
	// ManifestTags lists the tags pointing at d in repo, in lexical order.
	ManifestTags(ctx context.Context, repo string, d digest.Digest) ([]string, error)
	// WalkManifests calls fn for every stored manifest (for fsck).
	WalkManifests(ctx context.Context, fn func(repo string, m *ManifestRecord) error) error

	// Quarantine records or replaces q for a stored manifest (the store
	// sets Created, kept from an earlier record, and Decided from its
	// clock); ErrManifestUnknown if q.Repository does not hold
	// q.Digest. Deleting the manifest deletes its record. Quarantined
	// manifests are live for GC like any other.
	Quarantine(ctx context.Context, q *QuarantineRecord) error
	// Release deletes the quarantine record of d in repo, or returns
	// ErrNotQuarantined.
	Release(ctx context.Context, repo string, d digest.Digest) error
	// Quarantined returns the quarantine record of d in repo, or nil (and
	// no error) when it is not quarantined.
	Quarantined(ctx context.Context, repo string, d digest.Digest) (*QuarantineRecord, error)
	// ListQuarantined lists quarantine records ordered by repository and
	// digest, of one repository or (repo "") of all. Page.Last is the
	// "repository@digest" of the last record of the previous page.
	ListQuarantined(ctx context.Context, repo string, p Page) ([]*QuarantineRecord, error)
	// BlobAccess returns the size of a blob linked into repo and how the
	// repository's manifests reference it, in one indexed lookup when a
	// manifest that is not quarantined references it; ErrBlobUnknown if the
	// blob is not linked into repo.
	BlobAccess(ctx context.Context, repo string, d digest.Digest) (BlobAccess, error)
	// BlobManifests lists up to limit manifests of repo, not quarantined,
	// that reference blob d (as config or layer), in digest order: the
	// manifests through which a pull policy may let a caller read d.
	BlobManifests(ctx context.Context, repo string, d digest.Digest, limit int) ([]digest.Digest, error)

	// CreateUpload, Upload, UpdateUpload and DeleteUpload manage upload
	// sessions. Upload returns ErrUploadUnknown for unknown ids.
	CreateUpload(ctx context.Context, u *Upload) error
	Upload(ctx context.Context, id string) (*Upload, error)
	UpdateUpload(ctx context.Context, u *Upload) error
	DeleteUpload(ctx context.Context, id string) error
	// StaleUploads lists sessions not updated since before.
	StaleUploads(ctx context.Context, before time.Time) ([]*Upload, error)

	// Blob returns the record of content known to the store, in any
	// repository, or ErrBlobUnknown.
	Blob(ctx context.Context, d digest.Digest) (BlobRecord, error)
	// Blobs lists every blob record (for fsck).
	Blobs(ctx context.Context) ([]BlobRecord, error)
	// UnusedBlobs lists blobs no manifest references that were not touched
	// since before: the garbage collector's candidates.
	UnusedBlobs(ctx context.Context, before time.Time) ([]BlobRecord, error)
	// DeleteBlobIfUnused deletes the record of d if no manifest references it
	// and it was not touched since before, and reports whether it did. The
	// check and the delete are one transaction, so a manifest that commits
	// concurrently either sees the blob or keeps it alive.
	DeleteBlobIfUnused(ctx context.Context, d digest.Digest, before time.Time) (bool, error)

	Close() error
}
