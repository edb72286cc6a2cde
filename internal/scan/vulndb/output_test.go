package vulndb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vex"
	"github.com/bulwark-dev/bulwark/internal/scan/vulndb/vulntest"
)

// TestVEXAndFormats suppresses one real Go finding with an OpenVEX
// statement and checks how every format shows the rest.
func TestVEXAndFormats(t *testing.T) {
	db := openShared(t)
	s, _, err := catalog.Dir(context.Background(), vulntest.VulnerableGoRoot(t), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Source.Name = "127.0.0.1:5000/team/app:v1"
	r := match(t, db, s)
	before := len(r.Findings)
	doc, err := vex.Parse([]byte(`{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://example.com/vex/9","timestamp":"2026-01-01T00:00:00Z",
		"statements":[{"vulnerability":{"name":"CVE-2021-38561"},"products":[{"@id":"127.0.0.1:5000/team/app:v1","subcomponents":[{"@id":"pkg:golang/golang.org/x/text"}]}],
		"status":"not_affected","justification":"vulnerable_code_not_in_execute_path"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r.ApplyVEX([]*vex.Document{doc})
	if len(r.Suppressed) != 1 || r.Suppressed[0].ID != "GO-2021-0113" || r.Suppressed[0].VEX.Justification != "vulnerable_code_not_in_execute_path" || len(r.Findings) != before-1 {
		t.Fatalf("suppressed %+v, %d of %d findings left", r.Suppressed, len(r.Findings), before)
	}

	var table, js, sarif, cdx bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "GO-2022-1059") || strings.Contains(table.String(), "GO-2021-0113") || !strings.Contains(table.String(), "1 suppressed by VEX") {
		t.Errorf("table:\n%s", table.String())
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back vulndb.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Findings) != len(r.Findings) || back.Suppressed[0].VEX == nil {
		t.Fatalf("json round trip: %v", err)
	}
	if err := r.WriteSARIF(&sarif, "test", vulndb.SARIFResult{RuleID: "CIS-DI-0001", Level: "warning", Message: "runs as root"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sarif.String(), `"uri": "usr/local/bin/vulnbin"`) || !strings.Contains(sarif.String(), `"uri": "./127.0.0.1:5000/team/app:v1"`) {
		t.Errorf("sarif locations:\n%s", sarif.String())
	}
	if err := r.WriteCycloneDX(&cdx, s); err != nil {
		t.Fatal(err)
	}
	var doc2 struct {
		Vulnerabilities []struct {
			ID       string
			Analysis *struct{ State, Justification string }
			Affects  []struct {
				Versions []struct{ Status string }
			}
		}
	}
	if err := json.Unmarshal(cdx.Bytes(), &doc2); err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, v := range doc2.Vulnerabilities {
		if v.ID == "GO-2021-0113" {
			seen = true
			if v.Analysis == nil || v.Analysis.State != "not_affected" || v.Analysis.Justification != "code_not_reachable" || v.Affects[0].Versions[0].Status != "unaffected" {
				t.Errorf("cyclonedx suppressed: %+v", v)
			}
		}
	}
	if !seen || len(doc2.Vulnerabilities) != before {
		t.Errorf("cyclonedx: %d vulnerabilities, want %d", len(doc2.Vulnerabilities), before)
	}
}
