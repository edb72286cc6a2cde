package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/store"
)

// maxPage caps one page of tags or repositories so a single request cannot
// make the server build an unbounded response.
const maxPage = 10000

// page reads the n and last parameters. Without n the whole list is
// returned (up to maxPage, with a Link to the rest).
func page(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Last: q.Get("last"), N: maxPage}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return p, newError(http.StatusBadRequest, CodeUnsupported, "n must be a non-negative integer")
		}
		p.N = min(n, maxPage)
	}
	return p, nil
}

// listPage fetches one page plus one extra entry to learn whether a Link to
// the next page is needed.
func listPage(p store.Page, fetch func(store.Page) ([]string, error)) (items []string, more bool, err error) {
	if p.N == 0 {
		return []string{}, false, nil
	}
	items, err = fetch(store.Page{Last: p.Last, N: p.N + 1})
	if err != nil {
		return nil, false, err
	}
	if len(items) > p.N {
		return items[:p.N], true, nil
	}
	if items == nil {
		items = []string{}
	}
	return items, false, nil
}

func setNextLink(w http.ResponseWriter, path string, items []string, n int) {
	q := url.Values{}
	q.Set("n", strconv.Itoa(n))
	q.Set("last", items[len(items)-1])
	w.Header().Set("Link", `<`+path+`?`+q.Encode()+`>; rel="next"`)
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return nil
}

func (reg *Registry) tags(w http.ResponseWriter, r *http.Request, repo string) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	tags, more, err := listPage(p, func(p store.Page) ([]string, error) { return reg.meta.Tags(r.Context(), repo, p) })
	if err != nil {
		return err
	}
	if more {
		setNextLink(w, "/v2/"+repo+"/tags/list", tags, p.N)
	}
	return writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo, tags})
}

func (reg *Registry) catalog(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	repos, more, err := listPage(p, func(p store.Page) ([]string, error) { return reg.visibleRepositories(r, p) })
	if err != nil {
		return err
	}
	if more {
		setNextLink(w, "/v2/_catalog", repos, p.N)
	}
	return writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// visibleRepositories pages through the repositories the caller may pull
// from: the catalog never reveals a repository's name to someone who cannot
// read it.
func (reg *Registry) visibleRepositories(r *http.Request, p store.Page) ([]string, error) {
	if reg.opts.Authorizer == nil {
		return reg.meta.Repositories(r.Context(), p)
	}
	var out []string
	last := p.Last
	for p.N < 0 || len(out) < p.N {
		batch, err := reg.meta.Repositories(r.Context(), store.Page{Last: last, N: 1000})
		if err != nil {
			return nil, err
		}
		for _, repo := range batch {
			if reg.mayPull(r, repo) {
				out = append(out, repo)
				if p.N >= 0 && len(out) == p.N {
					return out, nil
				}
			}
		}
		if len(batch) < 1000 {
			break
		}
		last = batch[len(batch)-1]
	}
	return out, nil
}

// referrers answers the OCI 1.1 referrers API. It never answers 404: an
// unknown subject or repository has an empty list of referrers.
func (reg *Registry) referrers(w http.ResponseWriter, r *http.Request, repo, ds string) error {
	d, err := oci.ParseDigest(ds)
	if err != nil {
		return err
	}
	artifactType := r.URL.Query().Get("artifactType")
	recs, err := reg.meta.Referrers(r.Context(), repo, d, artifactType)
	if err != nil && !errors.Is(err, store.ErrRepoUnknown) {
		return err
	}
	if reg.opts.Gate != nil {
		if recs, err = reg.visibleReferrers(r, repo, recs); err != nil {
			return err
		}
	}
	idx := v1.Index{
		MediaType: v1.MediaTypeImageIndex,
		Manifests: make([]v1.Descriptor, 0, len(recs)),
	}
	idx.SchemaVersion = 2
	for _, m := range recs {
		idx.Manifests = append(idx.Manifests, v1.Descriptor{
			MediaType:    m.MediaType,
			ArtifactType: m.ArtifactType,
			Digest:       m.Digest,
			Size:         m.Size(),
			Annotations:  m.Annotations,
		})
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, r, v1.MediaTypeImageIndex, idx)
}
