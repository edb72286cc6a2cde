package audit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits of the HTTP query: a response is held in memory, so it is bounded.
const (
	DefaultHTTPLimit = 1000
	MaxHTTPLimit     = 100000
)

// Handler serves the log at path read-only:
//
//	GET …            the events, as a JSON array; query parameters since,
//	                 until (RFC 3339, a date, or a duration back from now
//	                 such as 24h or 7d), repo, who, action, digest, outcome,
//	                 limit (default
//	                 1000; 0 or more than 100000 means 100000)
//	GET …/verify     the Verify Report as JSON; parameter head
//
// It answers on any path, choosing by the final element, so it can be
// mounted at a prefix (/admin/v1/audit and /admin/v1/audit/verify) with
// or without http.StripPrefix. It does no authentication: mount it behind
// the admin check.
func Handler(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		if strings.HasSuffix(r.URL.Path, "/verify") {
			if err := onlyParams(q, "head"); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			head := q.Get("head")
			if head != "" && !isHash(head) {
				http.Error(w, "head must be a lowercase hex sha256", http.StatusBadRequest)
				return
			}
			rep, err := Verify(r.Context(), path, VerifyOptions{Head: head})
			if err != nil {
				http.Error(w, fmt.Sprintf("verify: %v", err), http.StatusInternalServerError)
				return
			}
			writeJSON(w, rep)
			return
		}
		f, err := filterFromQuery(q, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		events, err := Query(r.Context(), path, f)
		if err != nil {
			http.Error(w, fmt.Sprintf("query: %v", err), http.StatusInternalServerError)
			return
		}
		writeJSON(w, events)
	})
}

// onlyParams refuses unknown query parameters: a misspelt filter must not
// silently return everything.
func onlyParams(q url.Values, allowed ...string) error {
	for k := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return fmt.Errorf("unknown query parameter %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func filterFromQuery(q url.Values, now time.Time) (Filter, error) {
	if err := onlyParams(q, "since", "until", "repo", "who", "action", "digest", "outcome", "limit"); err != nil {
		return Filter{}, err
	}
	f := Filter{Repository: q.Get("repo"), Who: q.Get("who"), Action: q.Get("action"),
		Digest: q.Get("digest"), Outcome: q.Get("outcome"), Limit: DefaultHTTPLimit}
	var err error
	if s := q.Get("since"); s != "" {
		if f.Since, err = ParseTime(s, now); err != nil {
			return f, fmt.Errorf("since: %w", err)
		}
	}
	if s := q.Get("until"); s != "" {
		if f.Until, err = ParseTime(s, now); err != nil {
			return f, fmt.Errorf("until: %w", err)
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return f, fmt.Errorf("limit %q is not a non-negative integer", s)
		}
		f.Limit = n
		if n == 0 || n > MaxHTTPLimit {
			f.Limit = MaxHTTPLimit
		}
	}
	return f, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
