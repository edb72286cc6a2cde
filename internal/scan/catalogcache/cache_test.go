package catalogcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/scan/lint"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

func entry(d digest.Digest, producer string) *Entry {
	return &Entry{
		Key: Key{Manifest: d, Producer: producer, Options: "max-file=64MiB"},
		SBOM: &sbom.SBOM{SchemaVersion: 1, Created: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
			Source:   sbom.Source{Kind: sbom.SourceImage, Name: "layout", Digest: d},
			Packages: []sbom.Package{{Type: sbom.Deb, Name: "libc6", Version: "2.36-9+deb12u13"}}},
		Lint:     []lint.Finding{{ID: lint.IDRootUser, Severity: lint.Medium, Message: "root"}},
		Problems: []string{"layer 0: /var/lib/dpkg/status: too large"},
	}
}

func TestPutGet(t *testing.T) {
	c := New(t.TempDir())
	d := digest.FromString("image")
	if _, err := c.Get(entry(d, "p").Key); !errors.Is(err, ErrMiss) {
		t.Fatalf("empty cache: %v", err)
	}
	e := entry(d, "p")
	if err := c.Put(e); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(e.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("got %+v\nwant %+v", got, e)
	}
	// Any other key is a miss: another image, producer or options.
	for name, k := range map[string]Key{
		"image":    {Manifest: digest.FromString("other"), Producer: "p", Options: e.Key.Options},
		"producer": {Manifest: d, Producer: "q", Options: e.Key.Options},
		"options":  {Manifest: d, Producer: "p", Options: "max-file=1MiB"},
	} {
		if _, err := c.Get(k); !errors.Is(err, ErrMiss) {
			t.Errorf("other %s: %v", name, err)
		}
	}
}

// A damaged or foreign file is a miss, and is removed; it never yields
// an SBOM of another image.
func TestHostileEntries(t *testing.T) {
	d := digest.FromString("image")
	k := entry(d, "p").Key
	foreign := entry(digest.FromString("other"), "p")
	foreign.Key = k // claims the key, describes another image
	foreignJSON := mustJSON(t, foreign)
	wrongKey := entry(d, "q")
	for name, content := range map[string][]byte{
		"empty":         nil,
		"not json":      []byte("{"),
		"trailing":      append(mustJSON(t, entry(d, "p")), []byte("garbage")...),
		"unknown field": []byte(`{"key":{},"sbom":{},"extra":1}`),
		"no sbom":       []byte(fmt.Sprintf(`{"key":{"manifest":%q,"producer":"p","options":"max-file=64MiB"}}`, d)),
		"other image":   foreignJSON,
		"other key":     mustJSON(t, wrongKey),
		"array":         []byte(`[]`),
	} {
		t.Run(name, func(t *testing.T) {
			c := New(t.TempDir())
			if err := os.MkdirAll(c.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(c.dir, k.file())
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := c.Get(k)
			if name == "trailing" {
				// json.Decoder reads one value; what follows is ignored,
				// and the entry is intact.
				if err != nil {
					t.Fatalf("trailing bytes after a valid entry: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrMiss) || got != nil {
				t.Fatalf("got %v, %v; want a miss", got, err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("damaged entry left in place: %v", err)
			}
		})
	}
	if _, err := New(t.TempDir()).Get(Key{Manifest: "sha256:zz"}); !errors.Is(err, ErrMiss) {
		t.Errorf("invalid digest: %v", err)
	}
	if err := New(t.TempDir()).Put(&Entry{Key: Key{Manifest: "nope"}}); err == nil {
		t.Error("Put accepted an invalid digest")
	}
}

func TestTrim(t *testing.T) {
	c := New(t.TempDir())
	c.max = 3
	var keys []Key
	for i := range 5 {
		e := entry(digest.FromString(fmt.Sprint(i)), "p")
		if err := c.Put(e); err != nil {
			t.Fatal(err)
		}
		// Distinct modification times, oldest first.
		old := time.Now().Add(time.Duration(i-10) * time.Minute)
		os.Chtimes(filepath.Join(c.dir, e.Key.file()), old, old)
		keys = append(keys, e.Key)
		if i == 2 {
			// Reading entry 0 makes it the most recently used.
			if _, err := c.Get(keys[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	des, _ := os.ReadDir(c.dir)
	if len(des) != 3 {
		t.Fatalf("%d entries, want 3", len(des))
	}
	for i, want := range []bool{true, false, false, true, true} {
		_, err := c.Get(keys[i])
		if (err == nil) != want {
			t.Errorf("entry %d kept = %v, want %v", i, err == nil, want)
		}
	}
}

func mustJSON(t *testing.T, e *Entry) []byte {
	t.Helper()
	c := New(t.TempDir())
	if err := c.Put(e); err != nil {
		// Put refuses inconsistent entries; write them by hand.
		b, merr := jsonMarshal(e)
		if merr != nil {
			t.Fatal(merr)
		}
		return b
	}
	b, err := os.ReadFile(filepath.Join(c.dir, e.Key.file()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzGet(f *testing.F) {
	d := digest.FromString("image")
	k := entry(d, "p").Key
	f.Add([]byte(`{}`))
	b, _ := jsonMarshal(entry(d, "p"))
	f.Add(b)
	f.Fuzz(func(t *testing.T, content []byte) {
		c := New(t.TempDir())
		os.MkdirAll(c.dir, 0o700)
		os.WriteFile(filepath.Join(c.dir, k.file()), content, 0o600)
		e, err := c.Get(k)
		if err != nil {
			if !errors.Is(err, ErrMiss) {
				t.Fatalf("error not a miss: %v", err)
			}
			return
		}
		if e.SBOM == nil || e.SBOM.Source.Digest != d || e.Key != k {
			t.Fatalf("accepted an entry for something else: %+v", e)
		}
	})
}

func jsonMarshal(e *Entry) ([]byte, error) { return json.Marshal(e) }
