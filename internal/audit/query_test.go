package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// queryLog writes 20 events an hour apart from t0: who alternates
// alice/bob, repo cycles a/b/c, action alternates pull/push.
func queryLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		l.Record(Event{
			Time:       t0.Add(time.Duration(i) * time.Hour),
			Who:        []string{"alice", "bob"}[i%2],
			Kind:       KindUser,
			Action:     []string{ActionPull, ActionPush}[i%2],
			Repository: []string{"team/a", "team/b", "team/c"}[i%3],
		})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func seqs(events []Event) []int64 {
	out := []int64{}
	for _, e := range events {
		out = append(out, e.Seq)
	}
	return out
}

func TestQueryFilters(t *testing.T) {
	path := queryLog(t)
	tests := []struct {
		name string
		f    Filter
		want []int64
	}{
		{"all", Filter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
		{"since inclusive", Filter{Since: t0.Add(17 * time.Hour)}, []int64{18, 19, 20}},
		{"until exclusive", Filter{Until: t0.Add(2 * time.Hour)}, []int64{1, 2}},
		{"window", Filter{Since: t0.Add(5 * time.Hour), Until: t0.Add(8 * time.Hour)}, []int64{6, 7, 8}},
		{"repository", Filter{Repository: "team/b"}, []int64{2, 5, 8, 11, 14, 17, 20}},
		{"who and action", Filter{Who: "bob", Action: ActionPush}, []int64{2, 4, 6, 8, 10, 12, 14, 16, 18, 20}},
		{"who and wrong action", Filter{Who: "bob", Action: ActionPull}, []int64{}},
		{"repository and who", Filter{Repository: "team/a", Who: "alice"}, []int64{1, 7, 13, 19}},
		{"limit keeps the most recent", Filter{Limit: 3}, []int64{18, 19, 20}},
		{"limit with filter", Filter{Repository: "team/c", Limit: 2}, []int64{15, 18}},
		{"limit larger than matches", Filter{Repository: "team/c", Limit: 100}, []int64{3, 6, 9, 12, 15, 18}},
		{"limit 1", Filter{Who: "alice", Limit: 1}, []int64{19}},
		{"no such repository", Filter{Repository: "team"}, []int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Query(context.Background(), path, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if g := seqs(got); !slices.Equal(g, tc.want) {
				t.Fatalf("seqs %v, want %v", g, tc.want)
			}
		})
	}
	if _, err := Query(context.Background(), path, Filter{Limit: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
	if got, err := Query(context.Background(), filepath.Join(t.TempDir(), "none"), Filter{}); err != nil || len(got) != 0 {
		t.Fatalf("missing file: %v %v", got, err)
	}
}

func TestQueryHostileInput(t *testing.T) {
	good := queryLog(t)
	valid, _ := os.ReadFile(good)
	tests := []struct {
		name    string
		content []byte
		wantErr string // "" means no error
		want    int
	}{
		{"garbage line", append(append(bytes.Clone(valid), "\x00\x01garbage\n"...), valid...), "line 21", 0},
		{"10 MB line", append(bytes.Repeat([]byte("x"), 10<<20), '\n'), "line 1: line longer than", 0},
		{"invalid JSON", []byte(`{"seq":1,` + "\n"), "line 1 is not an entry", 0},
		{"JSON but not an entry", []byte("{}\n"), "line 1 is not an entry", 0},
		{"wrong types", []byte(`{"seq":"one"}` + "\n"), "line 1 is not an entry", 0},
		{"empty file", nil, "", 0},
		{"only an incomplete line", []byte(`{"seq":1`), "", 0},
		{"valid then incomplete line", append(bytes.Clone(valid), `{"seq":21,"ti`...), "", 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Query(context.Background(), path, Filter{})
			if tc.wantErr == "" {
				if err != nil || len(got) != tc.want {
					t.Fatalf("got %d events, %v; want %d", len(got), err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"24h", now.Add(-24 * time.Hour), true},
		{"90m", now.Add(-90 * time.Minute), true},
		{"7d", now.Add(-7 * 24 * time.Hour), true},
		{"2026-05-01T10:00:00Z", time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), true},
		{"2026-05-01T10:00:00.5+02:00", time.Date(2026, 5, 1, 8, 0, 0, 5e8, time.UTC), true},
		{"2026-05-01", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), true},
		{"-1h", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tc := range tests {
		got, err := ParseTime(tc.in, now)
		if (err == nil) != tc.ok || (tc.ok && !got.Equal(tc.want)) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestHandler(t *testing.T) {
	path := queryLog(t)
	srv := httptest.NewServer(http.StripPrefix("/admin/v1/audit", Handler(path)))
	defer srv.Close()
	get := func(t *testing.T, method, target string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+target, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp, b.Bytes()
	}
	tests := []struct {
		name   string
		target string
		status int
		want   []int64
	}{
		{"all", "/admin/v1/audit", 200, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
		{"filters", "/admin/v1/audit?repo=team/a&who=alice&since=2026-03-01T12:00:00Z&until=2026-03-02T07:00:00Z", 200, []int64{1, 7, 13, 19}},
		{"limit", "/admin/v1/audit?action=push&limit=2", 200, []int64{18, 20}},
		{"limit 0 is the maximum", "/admin/v1/audit?who=bob&limit=0", 200, []int64{2, 4, 6, 8, 10, 12, 14, 16, 18, 20}},
		{"relative since, nothing recent", "/admin/v1/audit?since=1h", 200, []int64{}},
		{"trailing slash", "/admin/v1/audit/?repo=team/c&limit=1", 200, []int64{18}},
		{"bad since", "/admin/v1/audit?since=yesterday", 400, nil},
		{"bad limit", "/admin/v1/audit?limit=-3", 400, nil},
		{"unknown parameter", "/admin/v1/audit?repository=team/a", 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, http.MethodGet, tc.target)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				return
			}
			var got []Event
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if g := seqs(got); !slices.Equal(g, tc.want) {
				t.Fatalf("seqs %v, want %v", g, tc.want)
			}
		})
	}

	t.Run("verify", func(t *testing.T) {
		resp, body := get(t, http.MethodGet, "/admin/v1/audit/verify")
		var rep Report
		if err := json.Unmarshal(body, &rep); resp.StatusCode != 200 || err != nil || !rep.OK || rep.Entries != 20 {
			t.Fatalf("%d %s %v", resp.StatusCode, body, err)
		}
		resp, body = get(t, http.MethodGet, "/admin/v1/audit/verify?head="+rep.Head)
		if err := json.Unmarshal(body, &rep); resp.StatusCode != 200 || err != nil || !rep.OK || !rep.HeadFound {
			t.Fatalf("%d %s %v", resp.StatusCode, body, err)
		}
		resp, body = get(t, http.MethodGet, "/admin/v1/audit/verify?head="+strings.Repeat("0", 64))
		if err := json.Unmarshal(body, &rep); resp.StatusCode != 200 || err != nil || rep.OK || rep.Problem.Kind != ProblemHeadMissing {
			t.Fatalf("%d %s %v", resp.StatusCode, body, err)
		}
		if resp, _ := get(t, http.MethodGet, "/admin/v1/audit/verify?head=zz"); resp.StatusCode != 400 {
			t.Fatalf("bad head: status %d", resp.StatusCode)
		}
	})
	t.Run("method", func(t *testing.T) {
		resp, _ := get(t, http.MethodPost, "/admin/v1/audit")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
			t.Fatalf("POST: status %d", resp.StatusCode)
		}
	})
}
