package inventory

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), Path(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func record(kind Kind, host, container, image, reporter string) Record {
	e := validEvent()
	e.Kind, e.Host, e.Container, e.Image = kind, host, container, image
	if kind == KindStop {
		e.Reason = "stopped"
	}
	return NewRecord(e, reporter, "robot", "127.0.0.1", testNow)
}

func names(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Host+"/"+r.Container)
	}
	return out
}

func TestStoreRunning(t *testing.T) {
	type step struct {
		kind            Kind
		host, container string
		image, reporter string
		override        bool
		wantErr         error
	}
	tests := []struct {
		name    string
		steps   []step
		running []string
	}{
		{"one start", []step{{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"}}, []string{"h1/a"}},
		{"start then stop", []step{
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
			{kind: KindStop, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
		}, nil},
		{"stop without start is history only", []step{
			{kind: KindStop, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
		}, nil},
		{"same name on two hosts", []step{
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
			{kind: KindStart, host: "h2", container: "a", image: "r.example/prod/app:v1", reporter: "h2bot"},
			{kind: KindStop, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
		}, []string{"h2/a"}},
		{"restart by the same reporter", []step{
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v2", reporter: "h1bot"},
		}, []string{"h1/a"}},
		{"another reporter cannot stop it", []step{
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
			{kind: KindStop, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "evil", wantErr: ErrNotOwner},
		}, []string{"h1/a"}},
		{"another reporter cannot replace it", []step{
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/evil:v1", reporter: "evil", wantErr: ErrNotOwner},
		}, []string{"h1/a"}},
		{"an administrator can stop it", []step{
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
			{kind: KindStop, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "admin", override: true},
		}, nil},
		{"anyone may reuse a stopped name", []step{
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
			{kind: KindStop, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "h1bot"},
			{kind: KindStart, host: "h1", container: "a", image: "r.example/prod/app:v1", reporter: "other"},
		}, []string{"h1/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t)
			ctx := t.Context()
			var last Record
			for i, st := range tt.steps {
				rec, err := s.Append(ctx, record(st.kind, st.host, st.container, st.image, st.reporter), st.override)
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d: Append = %v, want %v", i, err, st.wantErr)
				}
				if err == nil {
					if rec.Seq <= last.Seq {
						t.Fatalf("step %d: seq %d after %d", i, rec.Seq, last.Seq)
					}
					last = rec
				}
			}
			got, truncated, err := s.Running(ctx, Query{})
			if err != nil || truncated {
				t.Fatalf("Running: %v, truncated %v", err, truncated)
			}
			if fmt.Sprint(names(got)) != fmt.Sprint(tt.running) {
				t.Fatalf("running %v, want %v", names(got), tt.running)
			}
			for _, r := range got {
				if r.Kind != KindStart || r.Repository == "" || r.Reporter == "" {
					t.Errorf("running record %+v", r)
				}
			}
		})
	}
}

func TestStoreQueries(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	other := "sha256:" + fmt.Sprintf("%064x", 7)
	for _, r := range []Record{
		record(KindStart, "h1", "a", "r.example/prod/app:v1", "bot"),
		record(KindStart, "h2", "b", "r.example/prod/db:v1", "bot"),
		record(KindStart, "h2", "c", "r.example/prod/app:v1", "bot"),
	} {
		if _, err := s.Append(ctx, r, false); err != nil {
			t.Fatal(err)
		}
	}
	r := record(KindStart, "h3", "d", "r.example/dev/app:v1", "bot")
	r.Digest, r.Environment = other, "dev"
	if _, err := s.Append(ctx, r, false); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		q    Query
		want []string
	}{
		{Query{}, []string{"h1/a", "h2/b", "h2/c", "h3/d"}},
		{Query{Host: "h2"}, []string{"h2/b", "h2/c"}},
		{Query{Repository: "prod/app"}, []string{"h1/a", "h2/c"}},
		{Query{Digest: other}, []string{"h3/d"}},
		{Query{Environment: "dev"}, []string{"h3/d"}},
		{Query{Host: "h2", Container: "c"}, []string{"h2/c"}},
		{Query{Host: "nope"}, nil},
		{Query{Host: "' OR 1=1 --"}, nil},
	}
	for _, tt := range tests {
		got, _, err := s.Running(ctx, tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(names(got)) != fmt.Sprint(tt.want) {
			t.Errorf("Running(%+v) = %v, want %v", tt.q, names(got), tt.want)
		}
	}
	evs, err := s.Events(ctx, Query{Host: "h2"}, 1)
	if err != nil || len(evs) != 1 || evs[0].Container != "c" {
		t.Fatalf("Events(h2, 1) = %v, %v; want the newest, h2/c", names(evs), err)
	}
}

// TestStoreReopenAndConcurrency: records survive reopening, a second
// process-like handle sees them, and concurrent writers never lose one.
func TestStoreReopenAndConcurrency(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path) // another process: bulwark report --data
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			st := s
			if i%2 == 1 {
				st = s2
			}
			_, err := st.Append(ctx, record(KindStart, fmt.Sprintf("h%d", i%4), fmt.Sprintf("c%d", i), "r.example/prod/app:v1", "bot"), false)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	got, _, err := s3.Running(ctx, Query{})
	if err != nil || len(got) != 40 {
		t.Fatalf("after reopen: %d running, %v; want 40", len(got), err)
	}
	if !got[0].Received.Equal(testNow) || !got[0].Time.Equal(testNow.Add(-time.Second)) {
		t.Errorf("times not kept: %+v", got[0])
	}
}
