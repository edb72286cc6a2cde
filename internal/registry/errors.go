package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// Code is an error code from the distribution spec.
type Code string

// The distribution spec's error codes.
const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeDenied              Code = "DENIED"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeTooManyRequests     Code = "TOOMANYREQUESTS"
	// CodeUnavailable is distribution's 503 code (not in the OCI spec's
	// table): the policy could not decide, so the request was refused.
	CodeUnavailable Code = "UNAVAILABLE"
)

// Error is a registry error as the client sees it: an HTTP status and one
// entry of the spec's {"errors":[…]} body.
type Error struct {
	Status  int
	Code    Code
	Message string
	Detail  any
	// Header holds extra response headers (Range on 416, for example).
	Header http.Header
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func newError(status int, code Code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the spec's error envelope.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// toError maps any error to a registry Error. This is the one place where
// internal errors become client-visible codes: client mistakes map to 4xx
// codes; anything unrecognised is a 500 whose message hides internals.
func toError(err error) *Error {
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	var bu *store.BlobUnknownError
	if errors.As(err, &bu) {
		return &Error{Status: http.StatusBadRequest, Code: CodeManifestBlobUnknown,
			Message: "manifest references a blob unknown to this repository", Detail: map[string]string{"digest": bu.Digest.String()}}
	}
	var mu *store.ManifestUnknownError
	if errors.As(err, &mu) {
		return &Error{Status: http.StatusBadRequest, Code: CodeManifestBlobUnknown,
			Message: "index references a manifest unknown to this repository", Detail: map[string]string{"digest": mu.Digest.String()}}
	}
	switch {
	case errors.Is(err, oci.ErrNameInvalid):
		return newError(http.StatusBadRequest, CodeNameInvalid, "%v", err)
	case errors.Is(err, oci.ErrTagInvalid):
		return newError(http.StatusBadRequest, CodeManifestInvalid, "%v", err)
	case errors.Is(err, oci.ErrDigestInvalid), errors.Is(err, oci.ErrDigestUnsupported):
		return newError(http.StatusBadRequest, CodeDigestInvalid, "%v", err)
	case errors.Is(err, oci.ErrMediaTypeUnsupported):
		return newError(http.StatusUnsupportedMediaType, CodeManifestInvalid, "%v", err)
	case errors.Is(err, oci.ErrManifestInvalid):
		return newError(http.StatusBadRequest, CodeManifestInvalid, "%v", err)
	case errors.Is(err, store.ErrManifestUnknown), errors.Is(err, store.ErrTagUnknown):
		return newError(http.StatusNotFound, CodeManifestUnknown, "manifest unknown")
	case errors.Is(err, store.ErrBlobUnknown):
		return newError(http.StatusNotFound, CodeBlobUnknown, "blob unknown to registry")
	case errors.Is(err, store.ErrUploadUnknown):
		return newError(http.StatusNotFound, CodeBlobUploadUnknown, "blob upload unknown to registry")
	case errors.Is(err, store.ErrRepoUnknown):
		return newError(http.StatusNotFound, CodeNameUnknown, "repository name not known to registry")
	case errors.Is(err, store.ErrTooLarge):
		return newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "%v", err)
	case errors.Is(err, context.Canceled):
		// The client went away; 499 in the logs, nobody reads the body.
		return newError(499, CodeBlobUploadInvalid, "request canceled")
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "body exceeds %d bytes", mbe.Limit)
	}
	return &Error{Status: http.StatusInternalServerError, Code: "UNKNOWN", Message: "internal error"}
}

// writeError sends err to the client and returns the mapped error for
// logging.
func writeError(w http.ResponseWriter, r *http.Request, err error) *Error {
	re := toError(err)
	h := w.Header()
	for k, vs := range re.Header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	w.WriteHeader(re.Status)
	if r.Method != http.MethodHead {
		json.NewEncoder(w).Encode(errorBody{Errors: []errorEntry{{Code: re.Code, Message: re.Message, Detail: re.Detail}}})
	}
	return re
}
