package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// resolve turns a manifest reference into the stored record.
func (reg *Registry) resolve(r *http.Request, repo string, ref oci.Reference) (*store.ManifestRecord, error) {
	d := ref.Digest
	if !ref.IsDigest() {
		var err error
		if d, err = reg.meta.Tag(r.Context(), repo, ref.Tag); err != nil {
			return nil, err
		}
	}
	return reg.meta.Manifest(r.Context(), repo, d)
}

func (reg *Registry) getManifest(w http.ResponseWriter, r *http.Request, repo, refStr string) error {
	ref, err := oci.ParseReference(refStr)
	if err != nil {
		return err
	}
	var (
		m        *store.ManifestRecord
		decision string
	)
	if reg.opts.Gate == nil {
		m, err = reg.resolve(r, repo, ref)
	} else {
		m, decision, err = reg.gatePull(w, r, repo, refStr, ref)
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", strconv.Itoa(len(m.Content)))
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("ETag", `"`+m.Digest.String()+`"`)
	if match := r.Header.Get("If-None-Match"); match != "" && (match == `"`+m.Digest.String()+`"` || match == m.Digest.String()) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(m.Content)
		reg.emit(r, nil, Event{Action: "pull", Repository: repo, Reference: refStr, Digest: m.Digest, DecisionID: decision})
	}
	return nil
}

func (reg *Registry) putManifest(w http.ResponseWriter, r *http.Request, repo, refStr string) error {
	ref, err := oci.ParseReference(refStr)
	if err != nil {
		return err
	}
	body, err := readLimited(r.Body, oci.MaxManifestSize)
	if err != nil {
		return err
	}
	alg := digest.Canonical
	if ref.IsDigest() {
		alg = ref.Digest.Algorithm()
	}
	d := alg.FromBytes(body)
	if ref.IsDigest() && d != ref.Digest {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "manifest content hashes to %s, not %s", d, ref.Digest)
	}
	m, err := oci.ParseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	rec := &store.ManifestRecord{
		Digest:       d,
		MediaType:    m.MediaType,
		ArtifactType: m.EffectiveArtifactType(),
		Annotations:  m.Annotations,
		Content:      body,
	}
	if m.Subject != nil {
		rec.Subject = m.Subject.Digest
	}
	if m.Config != nil {
		rec.Config = m.Config.Digest
	}
	for _, b := range m.BlobReferences() {
		rec.Blobs = append(rec.Blobs, b.Digest)
	}
	for _, c := range m.Manifests {
		rec.Children = append(rec.Children, c.Digest)
	}
	tags, err := manifestTags(r, ref)
	if err != nil {
		return err
	}
	var (
		q *store.QuarantineRecord
		v Verdict
	)
	if reg.opts.Gate != nil {
		if q, v, err = reg.gatePush(r, repo, refStr, rec, m, tags); err != nil {
			return err
		}
	}
	if q != nil {
		err = reg.meta.PutQuarantinedManifest(r.Context(), repo, rec, tags, reg.opts.AllowSparse, q)
	} else {
		err = reg.meta.PutManifest(r.Context(), repo, rec, tags, reg.opts.AllowSparse)
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", fmt.Sprintf("/v2/%s/manifests/%s", repo, d))
	h.Set("Docker-Content-Digest", d.String())
	if rec.Subject != "" {
		h.Set("OCI-Subject", rec.Subject.String())
	}
	if ref.IsDigest() {
		for _, t := range tags {
			h.Add("OCI-Tag", t)
		}
	}
	h.Set("Content-Length", "0")
	reg.emit(r, nil, Event{Action: "push", Repository: repo, Reference: refStr, Digest: d,
		Detail: strings.Join(tags, ",")})
	if reg.opts.Gate != nil {
		reg.afterPush(w, r, repo, refStr, rec, q, v) // adds headers: before the status line
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// manifestTags returns the tags a PUT applies: the reference when it is a
// tag, or the repeated ?tag= parameters of a push by digest (the spec's way
// to tag content whose digest is not sha256, and to set several tags in one
// atomic step).
func manifestTags(r *http.Request, ref oci.Reference) ([]string, error) {
	params := r.URL.Query()["tag"]
	if !ref.IsDigest() {
		if len(params) > 0 {
			return nil, newError(http.StatusBadRequest, CodeManifestInvalid, "tag parameters are only accepted on a push by digest")
		}
		return []string{ref.Tag}, nil
	}
	for _, t := range params {
		if err := oci.ValidateTag(t); err != nil {
			return nil, newError(http.StatusBadRequest, CodeManifestInvalid, "%v", err)
		}
	}
	return params, nil
}

// readLimited reads a whole body of at most max bytes. A longer body is
// refused without reading it all; a body shorter than its Content-Length
// surfaces as the transport's unexpected-EOF error.
func readLimited(body io.Reader, max int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(body, max+1))
	if err != nil {
		return nil, newError(http.StatusBadRequest, CodeManifestInvalid, "reading body: %v", err)
	}
	if n > max {
		return nil, newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest exceeds %d bytes", max)
	}
	return buf.Bytes(), nil
}

func (reg *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, repo, refStr string) error {
	ref, err := oci.ParseReference(refStr)
	if err != nil {
		return err
	}
	if ref.IsDigest() {
		err = reg.meta.DeleteManifest(r.Context(), repo, ref.Digest)
	} else {
		err = reg.meta.DeleteTag(r.Context(), repo, ref.Tag)
	}
	if err != nil {
		if errors.Is(err, store.ErrRepoUnknown) {
			return newError(http.StatusNotFound, CodeManifestUnknown, "manifest unknown")
		}
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	e := Event{Action: "delete", Repository: repo, Reference: refStr}
	if ref.IsDigest() {
		e.Digest = ref.Digest
	}
	reg.emit(r, nil, e)
	return nil
}
