package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// upload dispatches /v2/<repo>/blobs/uploads/[<id>].
func (reg *Registry) upload(w http.ResponseWriter, r *http.Request, repo, id string) error {
	if id == "" {
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, "POST")
		}
		return reg.startUpload(w, r, repo)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return reg.uploadStatus(w, r, repo, id)
	case http.MethodPatch:
		return reg.patchUpload(w, r, repo, id)
	case http.MethodPut:
		return reg.finishUpload(w, r, repo, id)
	case http.MethodDelete:
		return reg.cancelUpload(w, r, repo, id)
	}
	return methodNotAllowed(w, "GET, HEAD, PATCH, PUT, DELETE")
}

func newUploadID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (reg *Registry) blobLimit(offset int64) int64 {
	if reg.opts.MaxBlobSize <= 0 {
		return -1
	}
	return max(reg.opts.MaxBlobSize-offset, 0)
}

func (reg *Registry) startUpload(w http.ResponseWriter, r *http.Request, repo string) error {
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		d, err := oci.ParseDigest(mount)
		if err != nil {
			return err
		}
		ok, err := reg.mount(r, repo, d, q.Get("from"))
		if err != nil {
			return err
		}
		if ok {
			return blobCreated(w, repo, d)
		}
		// The spec's fallback: an ordinary upload session.
	}
	if ds := q.Get("digest"); ds != "" {
		d, err := oci.ParseDigest(ds)
		if err != nil {
			return err
		}
		return reg.monolithic(w, r, repo, d)
	}
	u := &store.Upload{ID: newUploadID(), Repository: repo, Instance: reg.instance}
	if err := reg.meta.CreateUpload(r.Context(), u); err != nil {
		return err
	}
	return uploadAccepted(w, http.StatusAccepted, repo, u)
}

// mount links an existing blob into repo (the caller has push there). With
// from the blob must be in from and the caller must be allowed to pull from
// it; without from (the spec's anonymous mount) it must be in some
// repository the caller may pull from. Otherwise a mount would let anyone
// who knows a digest copy content they cannot read. A refused mount is not
// an error: the client falls back to uploading.
func (reg *Registry) mount(r *http.Request, repo string, d digest.Digest, from string) (bool, error) {
	ctx := r.Context()
	gated := reg.opts.Gate != nil
	if from == "" && (reg.opts.Authorizer != nil || gated) {
		repos, err := reg.meta.BlobRepositories(ctx, d)
		if err != nil {
			return false, err
		}
		for _, candidate := range repos {
			if !reg.mayPull(r, candidate) {
				continue
			}
			// With a policy a mount is a pull from its source: the blob
			// must be visible there (not only quarantined).
			if ok, err := reg.mountVisible(r, candidate, d); err != nil || !ok {
				if err != nil {
					return false, err
				}
				continue
			}
			from = candidate
			break
		}
		if from == "" {
			return false, nil
		}
	} else if from != "" {
		if oci.ValidateRepository(from) != nil || !reg.mayPull(r, from) {
			return false, nil
		}
		if gated {
			if ok, err := reg.mountVisible(r, from, d); err != nil || !ok {
				return false, err
			}
		} else if _, err := reg.meta.RepoBlob(ctx, from, d); err != nil {
			if errors.Is(err, store.ErrBlobUnknown) {
				return false, nil
			}
			return false, err
		}
	}
	// LinkBlob checks existence and refreshes the GC clock in one
	// transaction, so a concurrent GC either keeps the blob or the mount
	// falls back to an upload.
	_, err := reg.meta.LinkBlob(ctx, repo, d)
	if errors.Is(err, store.ErrBlobUnknown) {
		return false, nil
	}
	return err == nil, err
}

// monolithic handles a single POST carrying the whole blob.
func (reg *Registry) monolithic(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) error {
	start := reg.now()
	id := newUploadID()
	h := d.Algorithm().Hash()
	n, err := reg.blobs.Append(r.Context(), id, 0, r.Body, h, reg.blobLimit(0))
	if err != nil {
		reg.blobs.Abort(r.Context(), id)
		return bodyError(err)
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		reg.blobs.Abort(r.Context(), id)
		return newError(http.StatusBadRequest, CodeDigestInvalid, "content hashes to %s, not %s", got, d)
	}
	if err := reg.commit(r, id, repo, d, n, false); err != nil {
		return err
	}
	reg.metrics.uploadDuration.Observe(reg.now().Sub(start).Seconds())
	return blobCreated(w, repo, d)
}

// commit makes upload data durable as blob d and records it, under the
// digest's lock so GC cannot interleave.
func (reg *Registry) commit(r *http.Request, id, repo string, d digest.Digest, size int64, session bool) error {
	unlock := reg.digests.lock(d.String())
	defer unlock()
	ctx := r.Context()
	if err := reg.blobs.Commit(ctx, id, d); err != nil {
		reg.blobs.Abort(ctx, id)
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	if session {
		return reg.meta.CompleteUpload(ctx, id, repo, d, size)
	}
	return reg.meta.PutBlob(ctx, repo, d, size)
}

// session loads upload id and checks it belongs to repo: an id is not a
// capability to write into another repository.
func (reg *Registry) session(r *http.Request, repo, id string) (*store.Upload, error) {
	u, err := reg.meta.Upload(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if u.Repository != repo {
		return nil, fmt.Errorf("%w: %s", store.ErrUploadUnknown, id)
	}
	return u, nil
}

func (reg *Registry) uploadStatus(w http.ResponseWriter, r *http.Request, repo, id string) error {
	u, err := reg.session(r, repo, id)
	if err != nil {
		return err
	}
	return uploadAccepted(w, http.StatusNoContent, repo, u)
}

// contentRange parses a chunk's Content-Range: "start-end", optionally with
// a "bytes " prefix and "/total" suffix as some clients send.
func contentRange(s string) (start, end int64, err error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "bytes ")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	// end-start+1 must fit in an int64: "0-9223372036854775807" would
	// overflow to a negative length that disables the length checks.
	if err1 != nil || err2 != nil || start < 0 || end < start || end-start == math.MaxInt64 {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	return start, end, nil
}

// appendChunk writes the request body to the session, enforcing that a
// declared Content-Range starts where the upload left off.
func (reg *Registry) appendChunk(r *http.Request, u *store.Upload, repo string) error {
	expect := int64(-1)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, err := contentRange(cr)
		if err != nil {
			return newError(http.StatusBadRequest, CodeBlobUploadInvalid, "%v", err)
		}
		if start != u.Offset {
			e := newError(http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid,
				"chunk starts at %d but the upload has %d bytes", start, u.Offset)
			e.Header = http.Header{"Location": {uploadLocation(repo, u.ID)}, "Range": {rangeHeader(u.Offset)}}
			return e
		}
		expect = end - start + 1
		if r.ContentLength >= 0 && r.ContentLength != expect {
			return newError(http.StatusBadRequest, CodeBlobUploadInvalid,
				"Content-Range covers %d bytes but Content-Length is %d", expect, r.ContentLength)
		}
	}
	h, err := restoreHash(u.HashState)
	if err != nil {
		return err
	}
	n, err := reg.blobs.Append(r.Context(), u.ID, u.Offset, r.Body, h, reg.blobLimit(u.Offset))
	if err != nil {
		return bodyError(err)
	}
	if expect >= 0 && n != expect {
		return newError(http.StatusBadRequest, CodeBlobUploadInvalid, "chunk has %d bytes, Content-Range declared %d", n, expect)
	}
	u.Offset += n
	u.HashState, err = saveHash(h)
	return err
}

func (reg *Registry) patchUpload(w http.ResponseWriter, r *http.Request, repo, id string) error {
	defer reg.uploads.lock(id)()
	u, err := reg.session(r, repo, id)
	if err != nil {
		return err
	}
	if err := reg.appendChunk(r, u, repo); err != nil {
		return err
	}
	if err := reg.meta.UpdateUpload(r.Context(), u); err != nil {
		return err
	}
	return uploadAccepted(w, http.StatusAccepted, repo, u)
}

func (reg *Registry) finishUpload(w http.ResponseWriter, r *http.Request, repo, id string) error {
	defer reg.uploads.lock(id)()
	u, err := reg.session(r, repo, id)
	if err != nil {
		return err
	}
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "the digest query parameter is required to finish an upload")
	}
	d, err := oci.ParseDigest(ds)
	if err != nil {
		return err
	}
	if err := reg.appendChunk(r, u, repo); err != nil {
		return err
	}
	got := digest.Digest("")
	// The incremental hash is trusted only for sessions this process
	// started: after a crash the data may not match the saved state.
	if d.Algorithm() == digest.SHA256 && u.Instance == reg.instance {
		h, err := restoreHash(u.HashState)
		if err != nil {
			return err
		}
		got = digest.NewDigest(digest.SHA256, h)
	} else {
		if got, _, err = reg.blobs.Rehash(r.Context(), id, d.Algorithm()); err != nil {
			return err
		}
	}
	if got != d {
		// The session stays usable: the client may resume or cancel it.
		reg.meta.UpdateUpload(r.Context(), u)
		return newError(http.StatusBadRequest, CodeDigestInvalid, "uploaded content hashes to %s, not %s", got, d)
	}
	if err := reg.commit(r, id, repo, d, u.Offset, true); err != nil {
		return err
	}
	reg.metrics.uploadDuration.Observe(reg.now().Sub(u.Started).Seconds())
	return blobCreated(w, repo, d)
}

func (reg *Registry) cancelUpload(w http.ResponseWriter, r *http.Request, repo, id string) error {
	defer reg.uploads.lock(id)()
	if _, err := reg.session(r, repo, id); err != nil {
		return err
	}
	if err := reg.blobs.Abort(r.Context(), id); err != nil {
		return err
	}
	if err := reg.meta.DeleteUpload(r.Context(), id); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// bodyError classifies a failure while reading a request body.
func bodyError(err error) error {
	switch {
	case errors.Is(err, store.ErrTooLarge):
		return err
	case errors.Is(err, store.ErrUploadUnknown):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newError(http.StatusBadRequest, CodeBlobUploadInvalid, "request body ended early: %v", err)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return fmt.Errorf("write upload: %w", err)
}

func restoreHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("restore upload hash state: %w", err)
	}
	return h, nil
}

func saveHash(h hash.Hash) ([]byte, error) {
	return h.(encoding.BinaryMarshaler).MarshalBinary()
}

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

// rangeHeader is the spec's Range for an upload of n bytes: the inclusive
// range received so far, "0-0" when nothing has been.
func rangeHeader(n int64) string {
	if n <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(n-1, 10)
}

func uploadAccepted(w http.ResponseWriter, status int, repo string, u *store.Upload) error {
	h := w.Header()
	h.Set("Location", uploadLocation(repo, u.ID))
	h.Set("Range", rangeHeader(u.Offset))
	h.Set("Docker-Upload-UUID", u.ID)
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) error {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}
