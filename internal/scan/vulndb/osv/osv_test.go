package osv_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/osv"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vulntest"
)

const minimal = `{"id":"GO-2024-0001","modified":"2024-01-02T03:04:05Z","affected":[{"package":{"ecosystem":"Go","name":"example.com/m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}]}]}`

// TestParseGoVulnDB parses every record of the real Go vulnerability
// database.
func TestParseGoVulnDB(t *testing.T) {
	dir := vulntest.GoVulnDB(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) < 4000 {
		t.Fatalf("expected ~4,800 records in %s, found %d (%v)", dir, len(files), err)
	}
	stdlib := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := osv.Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		for _, a := range vs[0].Affected {
			if a.Package.Name == "stdlib" {
				stdlib++
			}
		}
	}
	if stdlib < 100 {
		t.Errorf("only %d stdlib entries", stdlib)
	}
	t.Logf("parsed %d real records (%d stdlib entries)", len(files), stdlib)
}

func TestParseForms(t *testing.T) {
	vs, err := osv.Parse([]byte(minimal))
	if err != nil || len(vs) != 1 || vs[0].ID != "GO-2024-0001" {
		t.Fatalf("single record: %v %+v", err, vs)
	}
	vs, err = osv.Parse([]byte("[" + minimal + "," + strings.Replace(minimal, "0001", "0002", 1) + "]"))
	if err != nil || len(vs) != 2 || vs[1].ID != "GO-2024-0002" {
		t.Fatalf("array: %v %+v", err, vs)
	}
	// The Go database writes the zero time as "modified".
	if _, err := osv.Parse([]byte(strings.Replace(minimal, "2024-01-02T03:04:05Z", "0001-01-01T00:00:00Z", 1))); err != nil {
		t.Fatalf("zero modified: %v", err)
	}
}

// TestParseHostile feeds malformed and hostile records; each must be
// refused with ErrInvalid and without panicking.
func TestParseHostile(t *testing.T) {
	rep := func(old, new string) string { return strings.Replace(minimal, old, new, 1) }
	big := `{"id":"X-1","modified":"2024-01-01T00:00:00Z","summary":"` + strings.Repeat("a", osv.MaxRecordSize) + `"}`
	manyEvents := `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}` + strings.Repeat(`,{"fixed":"1.0.0"}`, osv.MaxEvents) + `]}]}]}`
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	for name, doc := range map[string]string{
		"empty":               "",
		"null":                "null",
		"number":              "42",
		"string":              `"GO-1"`,
		"truncated":           minimal[:len(minimal)-3],
		"trailing data":       minimal + `{}`,
		"trailing garbage":    minimal + `x`,
		"invalid utf8":        rep("example.com/m", "example.com/\xff"),
		"no id":               rep(`"id":"GO-2024-0001",`, ""),
		"bad id":              rep("GO-2024-0001", "GO/../../etc/passwd"),
		"long id":             rep("GO-2024-0001", strings.Repeat("A", 200)),
		"no modified":         rep(`"modified":"2024-01-02T03:04:05Z",`, ""),
		"bad modified":        rep("2024-01-02T03:04:05Z", "yesterday"),
		"id wrong type":       rep(`"GO-2024-0001"`, `1`),
		"aliases wrong type":  rep(`"affected"`, `"aliases":"CVE-1","affected"`),
		"bad alias":           rep(`"affected"`, `"aliases":["CVE 1"],"affected"`),
		"no ecosystem":        rep(`"ecosystem":"Go",`, ""),
		"unknown range type":  rep(`"SEMVER"`, `"CALVER"`),
		"no events":           rep(`[{"introduced":"0"},{"fixed":"1.2.3"}]`, `[]`),
		"no introduced":       rep(`{"introduced":"0"},`, ""),
		"two keys in event":   rep(`{"introduced":"0"}`, `{"introduced":"0","fixed":"1"}`),
		"empty event":         rep(`{"introduced":"0"}`, `{}`),
		"control in version":  rep(`"1.2.3"`, `"1.2\u0000.3"`),
		"long version":        rep(`"1.2.3"`, `"`+strings.Repeat("1", 300)+`"`),
		"events wrong type":   rep(`[{"introduced":"0"},{"fixed":"1.2.3"}]`, `{"introduced":"0"}`),
		"oversized":           big,
		"too many events":     manyEvents,
		"deep nesting":        rep(`"affected"`, `"database_specific":`+deep+`,"affected"`),
		"array of non-object": `[1,2]`,
		"bad severity":        rep(`"affected"`, `"severity":[{"type":"","score":""}],"affected"`),
	} {
		vs, err := osv.Parse([]byte(doc))
		if err == nil {
			t.Errorf("%s: accepted: %+v", name, vs)
			continue
		}
		if !errors.Is(err, osv.ErrInvalid) {
			t.Errorf("%s: error %v does not wrap ErrInvalid", name, err)
		}
	}
}

func TestSeverity(t *testing.T) {
	for name, c := range map[string]struct {
		doc  string
		want osv.Rating
	}{
		"cvss31": {`{"id":"A-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}`, osv.Critical},
		"cvss30": {`{"id":"A-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"}]}`, osv.Low},
		"cvss2":  {`{"id":"A-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V2","score":"AV:N/AC:L/Au:N/C:P/I:P/A:P"}]}`, osv.High},
		"cvss4 wins": {`{"id":"A-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
			{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"}]}`, osv.Medium},
		"bad vector ignored": {`{"id":"A-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/garbage"}],"database_specific":{"severity":"MODERATE"}}`, osv.Medium},
		"github word":        {`{"id":"A-1","modified":"2024-01-01T00:00:00Z","database_specific":{"severity":"HIGH"}}`, osv.High},
		"ubuntu":             {`{"id":"A-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"Ubuntu","score":"medium"}]}`, osv.Medium},
		"none":               {`{"id":"A-1","modified":"2024-01-01T00:00:00Z"}`, osv.Unknown},
		"affected level": {`{"id":"A-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"Ubuntu","score":"low"}],
			"affected":[{"package":{"ecosystem":"npm","name":"x"},"versions":["1.0.0"],"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}]}`, osv.Critical},
	} {
		vs, err := osv.Parse([]byte(c.doc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var a *osv.Affected
		if len(vs[0].Affected) > 0 {
			a = &vs[0].Affected[0]
		}
		if got := vs[0].SeverityOf(a); got.Rating != c.want {
			t.Errorf("%s: %+v, want %s", name, got, c.want)
		}
	}
	for _, s := range []string{"critical", "High", "MODERATE", "low", "unknown"} {
		if _, err := osv.ParseRating(s); err != nil {
			t.Errorf("ParseRating(%q): %v", s, err)
		}
	}
	if _, err := osv.ParseRating("severe"); err == nil {
		t.Error("ParseRating accepted severe")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("[" + minimal + "]"))
	f.Add([]byte(`{"id":"A-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		vs, err := osv.Parse(data)
		if err != nil {
			return
		}
		for i := range vs {
			if err := vs[i].Validate(); err != nil {
				t.Fatalf("Parse returned an invalid record: %v", err)
			}
			for j := range vs[i].Affected {
				vs[i].SeverityOf(&vs[i].Affected[j])
			}
			vs[i].SeverityOf(nil)
		}
	})
}
