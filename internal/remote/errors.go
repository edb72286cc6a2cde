package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

var (
	// ErrNotFound reports a 404: no such repository, manifest, blob or tag.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized reports a 401 or 403 that authentication could not
	// cure: no credentials, wrong credentials, or not enough permissions.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrDigestMismatch reports content that does not match the digest it
	// was asked for or announced with: a broken or hostile registry.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrTooLarge reports a response over the caller's or the package's
	// size limit.
	ErrTooLarge = errors.New("response too large")
	// ErrInsecureRealm reports a token realm the client refuses to use.
	ErrInsecureRealm = errors.New("refusing token realm")
	// ErrCredentialHelper reports a docker config that keeps the host's
	// credentials in a credential helper, which this package does not run.
	ErrCredentialHelper = errors.New("credential helpers are not supported")
)

// Error is a registry's answer to a failed request: the HTTP status and,
// when the body carried the spec's {"errors":[…]} document, the first
// error's code and message. It matches ErrNotFound and ErrUnauthorized with
// errors.Is according to its status.
type Error struct {
	Status  int
	Code    string // e.g. MANIFEST_UNKNOWN, DENIED; empty when the body had none
	Message string
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("registry: %d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("registry: %d %s", e.Status, http.StatusText(e.Status))
}

// Is lets callers branch on the sentinel errors without knowing codes.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	}
	return false
}

// maxErrorBody bounds how much of an error body is read: it is only ever
// parsed for a code and message.
const maxErrorBody = 64 << 10

// responseError turns an unexpected response into an *Error and closes it.
func responseError(resp *http.Response) error {
	defer resp.Body.Close()
	e := &Error{Status: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 {
		e.Code, e.Message = doc.Errors[0].Code, doc.Errors[0].Message
	}
	return e
}
