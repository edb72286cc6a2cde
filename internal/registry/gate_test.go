package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/registry"
	"github.com/bulwark-dev/bulwark/internal/store"
	"github.com/bulwark-dev/bulwark/internal/store/sqlite"
)

// Artifact types the test gate understands.
const (
	approvalType = "application/vnd.test.approval.v1"
	reportType   = "application/vnd.test.untrusted-report.v1"
)

// repoGate is a small real policy that decides by repository name and by
// the evidence in the store:
//
//   - push to prod/*: an image (no subject) is quarantined unless an
//     approval (a referrer of approvalType) of it, or, when re-decided
//     through an index, of that index, is in the repository; evidence is
//     allowed, except reports of reportType, which are quarantined;
//   - push to deny/*: refused outright; to warn/*: allowed with a warning;
//     to broken/*: the gate fails;
//   - pull by a caller bound to environment prod: denied unless approved;
//     pull from broken-pull/*: the gate fails; from warn/*: a warning.
type repoGate struct {
	meta store.Meta

	mu   sync.Mutex
	n    int
	reqs []gateCall
}

type gateCall struct {
	Method, Repo, Caller string
	Trigger              registry.Trigger
	Digest, Cause        digest.Digest
	Subject              digest.Digest
	Tags                 []string
}

func (g *repoGate) record(method string, req *registry.GateRequest) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	g.reqs = append(g.reqs, gateCall{Method: method, Repo: req.Repository, Caller: req.Caller.Name(), Trigger: req.Trigger,
		Digest: req.Digest, Cause: req.Cause, Subject: req.Subject, Tags: req.Tags})
	return fmt.Sprintf("dec-%d", g.n)
}

func (g *repoGate) calls() []gateCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.reqs)
}

func (g *repoGate) approved(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	refs, err := g.meta.Referrers(ctx, repo, d, approvalType)
	return len(refs) > 0, err
}

var errGateBroken = errors.New("policy engine exploded")

func (g *repoGate) Push(ctx context.Context, req *registry.GateRequest) (registry.Verdict, error) {
	id := g.record("push", req)
	if req.Caller == nil {
		return registry.Verdict{}, errors.New("no caller")
	}
	if _, err := req.Parsed(); err != nil {
		return registry.Verdict{}, err
	}
	switch {
	case strings.HasPrefix(req.Repository, "broken/"):
		return registry.Verdict{}, errGateBroken
	case strings.HasPrefix(req.Repository, "deny/"):
		return registry.Verdict{DecisionID: id, Reason: "repository closed",
			Violations: []registry.Violation{{Rule: "closed", Message: "deny/ takes no pushes", Remediation: "push elsewhere"}}}, nil
	case strings.HasPrefix(req.Repository, "warn/"):
		return registry.Verdict{Allow: true, DecisionID: id, Warnings: []string{`image "soon" required to be signed`}}, nil
	case !strings.HasPrefix(req.Repository, "prod/"):
		return registry.Verdict{Allow: true, DecisionID: id}, nil
	}
	if req.Subject != "" {
		if req.ArtifactType == reportType {
			return registry.Verdict{Quarantine: true, DecisionID: id, Reason: "untrusted report",
				Violations: []registry.Violation{{Rule: "trusted-evidence", Message: "reports must come from the scanner"}}}, nil
		}
		return registry.Verdict{Allow: true, DecisionID: id}, nil
	}
	ok, err := g.approved(ctx, req.Repository, req.Digest)
	if err == nil && !ok && req.Trigger == registry.TriggerIndex {
		ok, err = g.approved(ctx, req.Repository, req.Cause)
	}
	if err != nil {
		return registry.Verdict{}, err
	}
	if ok {
		return registry.Verdict{Allow: true, DecisionID: id}, nil
	}
	return registry.Verdict{Quarantine: true, DecisionID: id, Reason: "not approved",
		Violations: []registry.Violation{{Rule: "approved", Message: "prod images need an approval", Remediation: "bulwark promote"}}}, nil
}

func (g *repoGate) Pull(ctx context.Context, req *registry.GateRequest) (registry.Verdict, error) {
	id := g.record("pull", req)
	switch {
	case strings.HasPrefix(req.Repository, "broken-pull/"):
		return registry.Verdict{}, errGateBroken
	case strings.HasPrefix(req.Repository, "warn/"):
		return registry.Verdict{Allow: true, DecisionID: id, Warnings: []string{"pulling from warn/ is deprecated"}}, nil
	case req.Caller.Env() != "prod" || req.Subject != "":
		return registry.Verdict{Allow: true, DecisionID: id}, nil
	}
	ok, err := g.approved(ctx, req.Repository, req.Digest)
	if err != nil {
		return registry.Verdict{}, err
	}
	if ok {
		return registry.Verdict{Allow: true, DecisionID: id}, nil
	}
	return registry.Verdict{DecisionID: id, Reason: "not approved for prod",
		Violations: []registry.Violation{{Rule: "approved", Message: "prod pulls need an approval", Remediation: "bulwark promote --to prod"}}}, nil
}

// gateEnv is a registry with a repoGate and a token authorizer behind a
// real HTTP server.
type gateEnv struct {
	*authEnv
	gate *repoGate
	reg  *registry.Registry
	meta *sqlite.DB
}

func newGateEnv(t *testing.T, az tokenAuthorizer) *gateEnv {
	t.Helper()
	blobs, meta := openStores(t)
	e := &gateEnv{authEnv: &authEnv{}, gate: &repoGate{meta: meta}, meta: meta}
	opts := registry.Options{
		Gate: e.gate,
		OnEvent: func(_ context.Context, ev registry.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
	}
	if az != nil {
		opts.Authorizer = az
	}
	e.reg = registry.New(blobs, meta, opts)
	srv := httptest.NewServer(e.reg)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// resp is a response with its body read.
type resp struct {
	*http.Response
	body string
}

func (e *gateEnv) call(t *testing.T, token, method, path string, body []byte, header ...string) resp {
	t.Helper()
	r, b := e.do(t, token, method, path, body, header...)
	return resp{r, b}
}

func (r resp) errCode() string {
	var eb apiErrorBody
	if json.Unmarshal([]byte(r.body), &eb) != nil || len(eb.Errors) == 0 {
		return ""
	}
	return eb.Errors[0].Code
}

func (e *gateEnv) pushBlob(t *testing.T, token, repo string, content []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(content)
	if r := e.call(t, token, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), content); r.StatusCode != http.StatusCreated {
		t.Fatalf("push blob to %s as %s: %d %s", repo, token, r.StatusCode, r.body)
	}
	return d
}

// pushImage pushes img's blobs and manifest under ref and returns the
// manifest response.
func (e *gateEnv) pushImage(t *testing.T, token, repo, ref string, img *testImage) resp {
	t.Helper()
	e.pushBlob(t, token, repo, img.Config)
	for _, l := range img.Layers {
		e.pushBlob(t, token, repo, l)
	}
	return e.call(t, token, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, img.Manifest, "Content-Type", v1.MediaTypeImageManifest)
}

// pushEvidence pushes an artifact of artifactType about subject and
// returns its digest and the response.
func (e *gateEnv) pushEvidence(t *testing.T, token, repo, artifactType string, subject v1.Descriptor, name string) (digest.Digest, resp) {
	t.Helper()
	empty := v1.DescriptorEmptyJSON
	e.pushBlob(t, token, repo, empty.Data)
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: artifactType,
		Config:  v1.Descriptor{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size},
		Layers:  []v1.Descriptor{{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size}},
		Subject: &subject, Annotations: map[string]string{"name": name}}
	m.SchemaVersion = 2
	b := apiJSON(m)
	d := digest.FromBytes(b)
	return d, e.call(t, token, http.MethodPut, "/v2/"+repo+"/manifests/"+d.String(), b, "Content-Type", v1.MediaTypeImageManifest)
}

func (e *gateEnv) eventLines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		out = append(out, fmt.Sprintf("%s %s %s %s %s", ev.Who, ev.Action, ev.Repository, ev.Outcome, ev.DecisionID))
	}
	return out
}

func (e *gateEnv) wantEvent(t *testing.T, prefix string) {
	t.Helper()
	for _, l := range e.eventLines() {
		if strings.HasPrefix(l, prefix) {
			return
		}
	}
	t.Errorf("no audit event starting %q; got:\n%s", prefix, strings.Join(e.eventLines(), "\n"))
}

func wantDenied(t *testing.T, what string, r resp, parts ...string) {
	t.Helper()
	if r.StatusCode != http.StatusForbidden || (r.Request.Method != http.MethodHead && r.errCode() != "DENIED") {
		t.Fatalf("%s = %d %s, want 403 DENIED", what, r.StatusCode, r.body)
	}
	for _, p := range parts {
		if r.Request.Method != http.MethodHead && !strings.Contains(r.body, p) {
			t.Errorf("%s: message %s lacks %q", what, r.body, p)
		}
	}
}

func warnings(r resp) string { return strings.Join(r.Header.Values("Warning"), "\n") }

func gateCallers() tokenAuthorizer {
	rw := func(repos ...string) map[string]bool {
		m := map[string]bool{}
		for _, r := range repos {
			m["repository:"+r+":pull"], m["repository:"+r+":push"] = true, true
		}
		return m
	}
	all := []string{"prod/app", "prod/multi", "prod/copy", "deny/app", "warn/app", "broken/app", "broken-pull/app", "pull/app"}
	return tokenAuthorizer{
		"alice": {name: "alice", perms: rw(all...)},
		"carol": {name: "carol", perms: rw("prod/app")},
		"bob":   {name: "bob", perms: perms("repository:prod/app:pull", "repository:prod/multi:pull", "repository:prod/copy:pull", "repository:prod/copy:push", "repository:warn/app:pull", "repository:broken-pull/app:pull")},
		"admin": {name: "admin", admin: true, perms: perms("repository:prod/app:pull", "repository:prod/multi:pull")},
		"host":  {name: "host", env: "prod", perms: perms("repository:prod/app:pull", "repository:pull/app:pull", "repository:prod/multi:pull")},
	}
}

func TestGateQuarantine(t *testing.T) {
	e := newGateEnv(t, gateCallers())
	img := newImage("quarantined", 2)
	r := e.pushImage(t, "alice", "prod/app", "v1", img)
	if r.StatusCode != http.StatusCreated || !strings.Contains(warnings(r), "quarantined") || !strings.Contains(warnings(r), "approved") {
		t.Fatalf("push to prod/app = %d %s, Warning %q; want 201 with a quarantine warning", r.StatusCode, r.body, warnings(r))
	}
	if q, err := e.meta.Quarantined(t.Context(), "prod/app", img.Digest); err != nil || q == nil || q.Pusher != "alice" || q.DecisionID == "" {
		t.Fatalf("quarantine record = %+v, %v", q, err)
	}
	e.wantEvent(t, "alice push prod/app ok")
	e.wantEvent(t, "alice quarantine prod/app denied dec-")

	// An untrusted report about the image is quarantined too: it shows in
	// referrers only to its pusher and admins. An approval is evidence
	// that passes, and is pushed later.
	reportDigest, r := e.pushEvidence(t, "alice", "prod/app", reportType, img.descriptor(), "report")
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("push report = %d %s", r.StatusCode, r.body)
	}
	layer := digest.FromBytes(img.Layers[0])
	mpath := "/v2/prod/app/manifests/"
	tests := []struct {
		name, method, path string
		visible            []string // callers answered 200
		denied             []string // callers answered 403 DENIED
		unknown            []string // callers answered 404
	}{
		{"manifest by tag", http.MethodGet, mpath + "v1", []string{"alice", "admin"}, []string{"bob", "carol", "host"}, nil},
		{"manifest by digest", http.MethodGet, mpath + img.Digest.String(), []string{"alice", "admin"}, []string{"bob", "carol", "host"}, nil},
		{"manifest HEAD", http.MethodHead, mpath + "v1", []string{"alice", "admin"}, []string{"bob", "host"}, nil},
		{"layer", http.MethodGet, "/v2/prod/app/blobs/" + layer.String(), []string{"alice", "admin"}, []string{"bob", "host"}, []string{"carol"}},
		{"config HEAD", http.MethodHead, "/v2/prod/app/blobs/" + digest.FromBytes(img.Config).String(), []string{"alice", "admin"}, []string{"bob"}, []string{"carol"}},
		{"report", http.MethodGet, mpath + reportDigest.String(), []string{"alice", "admin"}, []string{"bob"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, who := range tc.visible {
				if r := e.call(t, who, tc.method, tc.path, nil); r.StatusCode != http.StatusOK {
					t.Errorf("%s as %s = %d %s, want 200", tc.path, who, r.StatusCode, r.body)
				} else if strings.Contains(tc.path, "manifests") && !strings.Contains(warnings(r), "quarantined") {
					t.Errorf("%s as %s: no Warning that it is quarantined", tc.path, who)
				}
			}
			for _, who := range tc.denied {
				wantDenied(t, tc.path+" as "+who, e.call(t, who, tc.method, tc.path, nil), "quarantined", "only its pusher and administrators")
			}
			for _, who := range tc.unknown {
				if r := e.call(t, who, tc.method, tc.path, nil); r.StatusCode != http.StatusNotFound {
					t.Errorf("%s as %s = %d %s, want 404 (a pusher uploads its own copy)", tc.path, who, r.StatusCode, r.body)
				}
			}
		})
	}
	r = e.call(t, "bob", http.MethodGet, mpath+"v1", nil)
	wantDenied(t, "bob's pull", r, "approved: prod images need an approval", "fix: bulwark promote", "[decision dec-")
	var eb apiErrorBody
	json.Unmarshal([]byte(r.body), &eb)
	var detail struct {
		Quarantined bool
		Decision    string
		Violations  []registry.Violation
	}
	if err := json.Unmarshal(eb.Errors[0].Detail, &detail); err != nil || !detail.Quarantined || !strings.HasPrefix(detail.Decision, "dec-") ||
		len(detail.Violations) != 1 || detail.Violations[0].Rule != "approved" {
		t.Errorf("DENIED detail = %s (%v)", eb.Errors[0].Detail, err)
	}
	e.wantEvent(t, "bob policy.deny prod/app denied dec-")

	// Tags are names, not content: the list still shows v1.
	if r := e.call(t, "bob", http.MethodGet, "/v2/prod/app/tags/list", nil); r.StatusCode != http.StatusOK || !strings.Contains(r.body, `"v1"`) {
		t.Errorf("tags list as bob = %d %s", r.StatusCode, r.body)
	}

	// A mount is a pull from its source: bob may pull prod/app and push
	// prod/copy, but the layer is only in a quarantined manifest.
	for _, q := range []string{"?mount=" + layer.String() + "&from=prod/app", "?mount=" + layer.String()} {
		if r := e.call(t, "bob", http.MethodPost, "/v2/prod/copy/blobs/uploads/"+q, nil); r.StatusCode != http.StatusAccepted {
			t.Errorf("mount %s as bob = %d %s, want 202 (upload instead)", q, r.StatusCode, r.body)
		}
	}
	if r := e.call(t, "bob", http.MethodHead, "/v2/prod/copy/blobs/"+layer.String(), nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("quarantined layer reached prod/copy through a mount: HEAD = %d", r.StatusCode)
	}
	// Its pusher may mount it.
	if r := e.call(t, "alice", http.MethodPost, "/v2/prod/copy/blobs/uploads/?mount="+layer.String()+"&from=prod/app", nil); r.StatusCode != http.StatusCreated {
		t.Errorf("mount as alice = %d %s, want 201", r.StatusCode, r.body)
	}

	// The approval arrives: its push re-decides the image, which is
	// released; the report stays quarantined and hidden.
	approvalDigest, r := e.pushEvidence(t, "carol", "prod/app", approvalType, img.descriptor(), "approval")
	if r.StatusCode != http.StatusCreated || !strings.Contains(warnings(r), "released from quarantine") {
		t.Fatalf("push approval = %d %s, Warning %q", r.StatusCode, r.body, warnings(r))
	}
	redecided := false
	for _, c := range e.gate.calls() {
		if c.Trigger == registry.TriggerEvidence && c.Digest == img.Digest && c.Cause == approvalDigest && c.Caller == "alice" && slices.Equal(c.Tags, []string{"v1"}) {
			redecided = true
		}
	}
	if !redecided {
		t.Errorf("no evidence re-decision of the image as its pusher alice, with its tags; gate calls: %+v", e.gate.calls())
	}
	e.wantEvent(t, "carol release prod/app ok")
	for _, p := range []string{mpath + "v1", mpath + img.Digest.String(), "/v2/prod/app/blobs/" + layer.String()} {
		if r := e.call(t, "bob", http.MethodGet, p, nil); r.StatusCode != http.StatusOK {
			t.Errorf("GET %s as bob after release = %d %s", p, r.StatusCode, r.body)
		}
	}
	refs := func(who string) []digest.Digest {
		r := e.call(t, who, http.MethodGet, "/v2/prod/app/referrers/"+img.Digest.String(), nil)
		var idx v1.Index
		if r.StatusCode != http.StatusOK || json.Unmarshal([]byte(r.body), &idx) != nil {
			t.Fatalf("referrers as %s = %d %s", who, r.StatusCode, r.body)
		}
		var out []digest.Digest
		for _, m := range idx.Manifests {
			out = append(out, m.Digest)
		}
		slices.Sort(out)
		return out
	}
	both := []digest.Digest{approvalDigest, reportDigest}
	slices.Sort(both)
	for who, want := range map[string][]digest.Digest{"alice": both, "admin": both, "bob": {approvalDigest}} {
		if got := refs(who); !slices.Equal(got, want) {
			t.Errorf("referrers as %s = %v, want %v", who, got, want)
		}
	}
	wantDenied(t, "report as bob", e.call(t, "bob", http.MethodGet, mpath+reportDigest.String(), nil), "trusted-evidence")

	// Pull policy: the prod host may pull the approved image, but not an
	// unapproved one from a repository without push policy.
	if r := e.call(t, "host", http.MethodGet, mpath+"v1", nil); r.StatusCode != http.StatusOK {
		t.Errorf("host pull of the approved image = %d %s", r.StatusCode, r.body)
	}
	other := newImage("unapproved", 1)
	if r := e.pushImage(t, "alice", "pull/app", "v1", other); r.StatusCode != http.StatusCreated || warnings(r) != "" {
		t.Fatalf("push to pull/app = %d %s %q", r.StatusCode, r.body, warnings(r))
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		wantDenied(t, m+" pull/app as host", e.call(t, "host", m, "/v2/pull/app/manifests/v1", nil),
			"policy denies pulling pull/app@"+other.Digest.String(), "approved: prod pulls need an approval", "fix: bulwark promote --to prod")
	}
	e.wantEvent(t, "host policy.deny pull/app denied")
	if r := e.call(t, "alice", http.MethodGet, "/v2/pull/app/manifests/v1", nil); r.StatusCode != http.StatusOK {
		t.Errorf("alice (no environment) pull of pull/app = %d", r.StatusCode)
	}
	// Nor its blobs, fetched by digest without the manifest: the pull
	// policy covers them too for a caller bound to an environment, while
	// a caller without one still gets them.
	for _, blob := range []digest.Digest{digest.FromBytes(other.Layers[0]), digest.FromBytes(other.Config)} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			wantDenied(t, m+" blob of pull/app as host", e.call(t, "host", m, "/v2/pull/app/blobs/"+blob.String(), nil),
				"policy denies pulling blob "+blob.String(), "approved: prod pulls need an approval")
		}
		if r := e.call(t, "alice", http.MethodGet, "/v2/pull/app/blobs/"+blob.String(), nil); r.StatusCode != http.StatusOK {
			t.Errorf("alice (no environment) GET blob %s of pull/app = %d", blob, r.StatusCode)
		}
	}
	// The approved image's blobs are the host's to fetch.
	if r := e.call(t, "host", http.MethodGet, "/v2/prod/app/blobs/"+layer.String(), nil); r.StatusCode != http.StatusOK {
		t.Errorf("host GET of the approved image's layer = %d %s", r.StatusCode, r.body)
	}

	// Pushing the released image again with a decision that still passes
	// keeps it public; deleting a quarantined manifest removes its record.
	if err := e.meta.DeleteManifest(t.Context(), "prod/app", reportDigest); err != nil {
		t.Fatal(err)
	}
	if q, err := e.meta.Quarantined(t.Context(), "prod/app", reportDigest); err != nil || q != nil {
		t.Errorf("record of a deleted manifest = %+v, %v", q, err)
	}
}

func TestGatePushVerdicts(t *testing.T) {
	e := newGateEnv(t, gateCallers())
	tests := []struct {
		repo     string
		status   int
		code     string
		warning  string
		stored   bool
		inAnswer string
	}{
		{"deny/app", http.StatusForbidden, "DENIED", "", false, "closed: deny/ takes no pushes (fix: push elsewhere)"},
		{"warn/app", http.StatusCreated, "", `299 - "image \"soon\" required to be signed"`, true, ""},
		{"broken/app", http.StatusServiceUnavailable, "UNAVAILABLE", "", false, "policy could not decide"},
	}
	for _, tc := range tests {
		t.Run(tc.repo, func(t *testing.T) {
			img := newImage(tc.repo, 1)
			r := e.pushImage(t, "alice", tc.repo, "v1", img)
			if r.StatusCode != tc.status || r.errCode() != tc.code || !strings.Contains(r.body, tc.inAnswer) {
				t.Fatalf("push = %d %s, want %d %s containing %q", r.StatusCode, r.body, tc.status, tc.code, tc.inAnswer)
			}
			if got := warnings(r); got != tc.warning {
				t.Errorf("Warning = %q, want %q", got, tc.warning)
			}
			if strings.Contains(r.body, errGateBroken.Error()) {
				t.Errorf("answer leaks the engine's error: %s", r.body)
			}
			_, err := e.meta.Manifest(t.Context(), tc.repo, img.Digest)
			if stored := err == nil; stored != tc.stored {
				t.Errorf("stored = %v (%v), want %v", stored, err, tc.stored)
			}
			if _, err := e.meta.Tag(t.Context(), tc.repo, "v1"); (err == nil) != tc.stored {
				t.Errorf("tag v1 exists = %v, want %v", err == nil, tc.stored)
			}
		})
	}
	// Incomplete content is refused as without a policy, before the policy
	// is asked (it would read what is missing).
	calls := len(e.gate.calls())
	incomplete := newImage("incomplete", 1)
	e.pushBlob(t, "alice", "prod/app", incomplete.Config)
	r := e.call(t, "alice", http.MethodPut, "/v2/prod/app/manifests/v1", incomplete.Manifest, "Content-Type", v1.MediaTypeImageManifest)
	if r.StatusCode != http.StatusBadRequest || r.errCode() != "MANIFEST_BLOB_UNKNOWN" || len(e.gate.calls()) != calls {
		t.Errorf("incomplete manifest = %d %s, gate asked %d times; want 400 MANIFEST_BLOB_UNKNOWN without asking",
			r.StatusCode, r.body, len(e.gate.calls())-calls)
	}

	e.wantEvent(t, "alice policy.deny deny/app denied dec-")
	e.wantEvent(t, "alice policy.warn warn/app ok dec-")
	e.wantEvent(t, "alice policy.error broken/app failed")

	// Warn at pull: allowed, with the warning; audited on GET.
	r = e.call(t, "bob", http.MethodGet, "/v2/warn/app/manifests/v1", nil)
	if r.StatusCode != http.StatusOK || warnings(r) != `299 - "pulling from warn/ is deprecated"` {
		t.Errorf("pull from warn/app = %d, Warning %q", r.StatusCode, warnings(r))
	}
	e.wantEvent(t, "bob policy.warn warn/app ok")

	// A failing gate at pull fails closed.
	img := newImage("pull broken", 1)
	if r := e.pushImage(t, "alice", "broken-pull/app", "v1", img); r.StatusCode != http.StatusCreated {
		t.Fatalf("push to broken-pull/app = %d %s", r.StatusCode, r.body)
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r := e.call(t, "bob", m, "/v2/broken-pull/app/manifests/v1", nil)
		if r.StatusCode != http.StatusServiceUnavailable || (m == http.MethodGet && r.errCode() != "UNAVAILABLE") || r.Header.Get("Docker-Content-Digest") != "" {
			t.Errorf("%s with a failing gate = %d %s, want 503 UNAVAILABLE without the digest", m, r.StatusCode, r.body)
		}
	}
}

// TestGateIndex: a multi-platform image is pushed children first; all are
// quarantined. Approving the index releases it, and its release re-decides
// the children.
func TestGateIndex(t *testing.T) {
	e := newGateEnv(t, gateCallers())
	var descs []v1.Descriptor
	var children []*testImage
	for _, arch := range []string{"amd64", "arm64"} {
		c := newImage("multi "+arch, 1)
		children = append(children, c)
		if r := e.pushImage(t, "alice", "prod/multi", c.Digest.String(), c); r.StatusCode != http.StatusCreated {
			t.Fatalf("push child = %d %s", r.StatusCode, r.body)
		}
		descs = append(descs, c.descriptor())
	}
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	body := apiJSON(idx)
	id := digest.FromBytes(body)
	if r := e.call(t, "alice", http.MethodPut, "/v2/prod/multi/manifests/v1", body, "Content-Type", v1.MediaTypeImageIndex); r.StatusCode != http.StatusCreated {
		t.Fatalf("push index = %d %s", r.StatusCode, r.body)
	}
	list, err := e.reg.ListQuarantined(t.Context(), "prod/multi", store.Page{N: -1})
	if err != nil || len(list) != 3 {
		t.Fatalf("quarantined in prod/multi = %+v, %v; want the index and both children", list, err)
	}
	wantDenied(t, "child before approval", e.call(t, "bob", http.MethodGet, "/v2/prod/multi/manifests/"+children[0].Digest.String(), nil), "approved")

	_, r := e.pushEvidence(t, "alice", "prod/multi", approvalType, v1.Descriptor{MediaType: v1.MediaTypeImageIndex, Digest: id, Size: int64(len(body))}, "approval")
	if r.StatusCode != http.StatusCreated || !strings.Contains(warnings(r), "released") {
		t.Fatalf("approve index = %d %s %q", r.StatusCode, r.body, warnings(r))
	}
	for _, p := range []string{"v1", children[0].Digest.String(), children[1].Digest.String()} {
		if r := e.call(t, "bob", http.MethodGet, "/v2/prod/multi/manifests/"+p, nil); r.StatusCode != http.StatusOK {
			t.Errorf("GET %s after approving the index = %d %s", p, r.StatusCode, r.body)
		}
	}
	if list, _ := e.reg.ListQuarantined(t.Context(), "", store.Page{N: -1}); len(list) != 0 {
		t.Errorf("still quarantined: %+v", list)
	}

	// The approval may also come first: then the index passes at its push,
	// which re-decides (and releases) its quarantined platforms.
	c := newImage("multi riscv64", 1)
	if r := e.pushImage(t, "alice", "prod/multi", c.Digest.String(), c); r.StatusCode != http.StatusCreated {
		t.Fatalf("push child = %d %s", r.StatusCode, r.body)
	}
	idx2 := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{c.descriptor()}}
	idx2.SchemaVersion = 2
	body2 := apiJSON(idx2)
	id2 := digest.FromBytes(body2)
	e.pushEvidence(t, "alice", "prod/multi", approvalType, v1.Descriptor{MediaType: v1.MediaTypeImageIndex, Digest: id2, Size: int64(len(body2))}, "early approval")
	r = e.call(t, "alice", http.MethodPut, "/v2/prod/multi/manifests/v2", body2, "Content-Type", v1.MediaTypeImageIndex)
	if r.StatusCode != http.StatusCreated || !strings.Contains(warnings(r), "manifest "+c.Digest.String()+" released") {
		t.Fatalf("push of an approved index = %d %s, Warning %q", r.StatusCode, r.body, warnings(r))
	}
	if r := e.call(t, "bob", http.MethodGet, "/v2/prod/multi/manifests/"+c.Digest.String(), nil); r.StatusCode != http.StatusOK {
		t.Errorf("child of an index that passed at push = %d %s", r.StatusCode, r.body)
	}
}

// TestGateOpenRegistry: without authentication nobody is the pusher, so
// quarantined content is served to nobody until released, while uploads
// keep working.
func TestGateOpenRegistry(t *testing.T) {
	e := newGateEnv(t, nil)
	img := newImage("open", 1)
	if r := e.pushImage(t, "", "prod/app", "v1", img); r.StatusCode != http.StatusCreated {
		t.Fatalf("push = %d %s", r.StatusCode, r.body)
	}
	wantDenied(t, "GET quarantined", e.call(t, "", http.MethodGet, "/v2/prod/app/manifests/v1", nil), "approved")
	// Unreferenced blobs are readable by pushers (here: everyone).
	loose := e.pushBlob(t, "", "prod/app", []byte("loose"))
	if r := e.call(t, "", http.MethodGet, "/v2/prod/app/blobs/"+loose.String(), nil); r.StatusCode != http.StatusOK {
		t.Errorf("GET unreferenced blob = %d", r.StatusCode)
	}
	layer := digest.FromBytes(img.Layers[0])
	if r := e.call(t, "", http.MethodGet, "/v2/prod/app/blobs/"+layer.String(), nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET quarantined layer as a pusher = %d, want 404", r.StatusCode)
	}
	// An anonymous mount (no from) must not find the quarantined layer.
	if r := e.call(t, "", http.MethodPost, "/v2/other/app/blobs/uploads/?mount="+layer.String(), nil); r.StatusCode != http.StatusAccepted {
		t.Errorf("anonymous mount of a quarantined layer = %d, want 202", r.StatusCode)
	}
	// A caller without an environment is allowed by the pull policy.
	other := newImage("allowed", 1)
	e.pushImage(t, "", "plain/app", "v1", other)
	if r := e.call(t, "", http.MethodGet, "/v2/plain/app/manifests/v1", nil); r.StatusCode != http.StatusOK {
		t.Errorf("GET plain/app = %d %s", r.StatusCode, r.body)
	}
}

func TestQuarantineAdminAPI(t *testing.T) {
	e := newGateEnv(t, gateCallers())
	img := newImage("admin api", 1)
	e.pushImage(t, "alice", "prod/app", "v1", img)
	h := httptest.NewServer(http.StripPrefix("/admin/v1", e.reg.QuarantineAdminHandler(registry.QuarantineAdminOptions{
		Actor: func(r *http.Request) registry.Actor {
			return registry.Actor{Who: "root", Kind: "user", Remote: r.RemoteAddr}
		},
	})))
	t.Cleanup(h.Close)
	call := func(method, path string, body any) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(apiJSON(body))
		}
		req, _ := http.NewRequest(method, h.URL+"/admin/v1"+path, rd)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	status, body := call(http.MethodGet, "/quarantine", nil)
	var list registry.QuarantineList
	if status != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Quarantined) != 1 ||
		list.Quarantined[0].Digest != img.Digest || list.Quarantined[0].Pusher != "alice" || list.Quarantined[0].Violations[0].Rule != "approved" {
		t.Fatalf("list = %d %s", status, body)
	}
	ref := registry.ReleaseRequest{Repository: "prod/app", Digest: img.Digest.String()}
	tests := []struct {
		name   string
		req    any
		status int
		want   string
	}{
		{"re-decide, still refused", ref, http.StatusOK, `"released":false`},
		{"force without reason", registry.ReleaseRequest{Repository: "prod/app", Digest: img.Digest.String(), Force: true}, http.StatusBadRequest, "needs a reason"},
		{"bad digest", registry.ReleaseRequest{Repository: "prod/app", Digest: "sha256:xyz"}, http.StatusBadRequest, "INVALID"},
		{"bad repository", registry.ReleaseRequest{Repository: "../x", Digest: img.Digest.String()}, http.StatusBadRequest, "INVALID"},
		{"unknown field", map[string]any{"repository": "prod/app", "digest": img.Digest.String(), "forse": true}, http.StatusBadRequest, "unknown field"},
		{"not quarantined", registry.ReleaseRequest{Repository: "prod/app", Digest: digest.FromString("x").String()}, http.StatusNotFound, "NOT_QUARANTINED"},
		{"force", registry.ReleaseRequest{Repository: "prod/app", Digest: img.Digest.String(), Force: true, Reason: "INC-7 hotfix"}, http.StatusOK, `"released":true`},
		{"again", ref, http.StatusNotFound, "not quarantined"},
	}
	for _, tc := range tests {
		status, body := call(http.MethodPost, "/quarantine/release", tc.req)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.name, status, body, tc.status, tc.want)
		}
	}
	e.wantEvent(t, "root release prod/app ok")
	if r := e.call(t, "bob", http.MethodGet, "/v2/prod/app/manifests/v1", nil); r.StatusCode != http.StatusOK {
		t.Errorf("GET after a forced release = %d", r.StatusCode)
	}
	if status, body := call(http.MethodGet, "/quarantine?n=0", nil); status != http.StatusBadRequest {
		t.Errorf("n=0: %d %s", status, body)
	}

	// Pages.
	for i := range 3 {
		e.pushImage(t, "alice", "prod/app", fmt.Sprintf("p%d", i), newImage(fmt.Sprintf("page %d", i), 1))
	}
	var seen []digest.Digest
	last := ""
	for range 5 {
		status, body := call(http.MethodGet, "/quarantine?repository=prod/app&n=2&last="+last, nil)
		var page registry.QuarantineList
		if status != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil {
			t.Fatalf("page: %d %s", status, body)
		}
		for _, q := range page.Quarantined {
			seen = append(seen, q.Digest)
		}
		if last = page.Next; last == "" {
			break
		}
	}
	if len(seen) != 3 || !slices.IsSorted(seen) {
		t.Errorf("paged list = %v, want 3 sorted digests", seen)
	}
}

// TestWithoutGate: a registry without a policy enforces no quarantine (the
// records wait for the next policy) and can only force a release.
func TestWithoutGate(t *testing.T) {
	e := newAPIEnv(t, registry.Options{})
	img := newImage("no gate", 1)
	e.pushImage("prod/app", "v1", img)
	if err := e.meta.Quarantine(t.Context(), &store.QuarantineRecord{Repository: "prod/app", Digest: img.Digest, Pusher: "a", PusherKind: "user"}); err != nil {
		t.Fatal(err)
	}
	want(t, "GET without a gate", e.get("/v2/prod/app/manifests/v1"), http.StatusOK, "")
	want(t, "GET layer without a gate", e.get("/v2/prod/app/blobs/"+digest.FromBytes(img.Layers[0]).String()), http.StatusOK, "")
	_, err := e.reg.Release(t.Context(), registry.Actor{Who: "x"}, registry.ReleaseRequest{Repository: "prod/app", Digest: img.Digest.String()})
	if !errors.Is(err, registry.ErrNoGate) {
		t.Errorf("Release without a gate = %v, want ErrNoGate", err)
	}
	res, err := e.reg.Release(t.Context(), registry.Actor{Who: "x"}, registry.ReleaseRequest{Repository: "prod/app", Digest: img.Digest.String(), Force: true, Reason: "r"})
	if err != nil || !res.Released {
		t.Errorf("forced Release without a gate = %+v, %v", res, err)
	}
}

func TestWarningHeaderEscaping(t *testing.T) {
	g := &fixedGate{v: registry.Verdict{Allow: true, Warnings: []string{"a \"quoted\" \\ back\r\nInjected: yes", strings.Repeat("x", 3000)}}}
	for range 20 {
		g.v.Warnings = append(g.v.Warnings, "more")
	}
	blobs, meta := openStores(t)
	srv := httptest.NewServer(registry.New(blobs, meta, registry.Options{Gate: g}))
	t.Cleanup(srv.Close)
	e := &gateEnv{authEnv: &authEnv{url: srv.URL}}
	img := newImage("warned", 1)
	r := e.pushImage(t, "", "any/app", "v1", img)
	ws := r.Header.Values("Warning")
	if r.StatusCode != http.StatusCreated || len(ws) != 17 || r.Header.Get("Injected") != "" {
		t.Fatalf("push = %d, %d Warning headers %q", r.StatusCode, len(ws), ws)
	}
	if ws[0] != `299 - "a \"quoted\" \\ back  Injected: yes"` || len(ws[1]) > 1100 || !strings.Contains(ws[16], "6 more policy warnings") {
		t.Errorf("Warning values = %q", ws)
	}
}

type fixedGate struct{ v registry.Verdict }

func (g *fixedGate) Push(context.Context, *registry.GateRequest) (registry.Verdict, error) {
	return g.v, nil
}
func (g *fixedGate) Pull(context.Context, *registry.GateRequest) (registry.Verdict, error) {
	return g.v, nil
}
