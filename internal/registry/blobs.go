package registry

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

func (reg *Registry) getBlob(w http.ResponseWriter, r *http.Request, repo, ds string) error {
	d, err := oci.ParseDigest(ds)
	if err != nil {
		return err
	}
	// The repository link is the access boundary: content is served only
	// from repositories it was pushed or mounted into. With a policy, also
	// only to callers who may fetch a manifest that references it there
	// (or push there), in the same single query.
	if reg.opts.Gate != nil {
		if _, err := reg.blobAccess(r, repo, d); err != nil {
			return err
		}
	} else if _, err := reg.meta.RepoBlob(r.Context(), repo, d); err != nil {
		return err
	}
	f, size, err := reg.blobs.Open(r.Context(), d)
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	if r.Header.Get("Range") == "" && r.Header.Get("If-None-Match") == "" {
		// The common case skips ServeContent's header parsing and sniffing.
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			io.Copy(w, f) // a client that goes away mid-body is logged by its byte count
		}
		return nil
	}
	// ServeContent implements Range (single and multi), If-Range and
	// If-None-Match against the ETag set above.
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

func (reg *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, repo, ds string) error {
	d, err := oci.ParseDigest(ds)
	if err != nil {
		return err
	}
	if err := reg.meta.UnlinkBlob(r.Context(), repo, d); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	reg.emit(r, nil, Event{Action: "delete", Repository: repo, Digest: d, Detail: "blob"})
	return nil
}
