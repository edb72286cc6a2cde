package inventory

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testDigest = "sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"

func validEvent() Event {
	return Event{
		Kind: KindStart, Time: testNow.Add(-time.Second), Host: "web1.example", Container: "app-1a2b3c",
		Image: "registry.example:5000/prod/app:v1", Digest: testDigest, Environment: "prod",
		Profile: Profile{User: "1000", ReadOnlyRootfs: true, Memory: 256 << 20, Pids: 256, Runtime: "runc",
			Publish: []string{"127.0.0.1:8080:8080/tcp"}, Egress: []string{"db.internal:5432/tcp"}},
		Decision: Decision{Verification: VerifiedByPolicy, ID: "0190aabbccddeeff0011223344", Mode: "enforce",
			PolicyVersion: "sha256:1234", Satisfied: []string{"ci"}},
	}
}

func TestValidate(t *testing.T) {
	code := func(n int) *int { return &n }
	tests := []struct {
		name   string
		change func(e *Event)
		field  string // "" = valid
	}{
		{"valid", func(e *Event) {}, ""},
		{"stop with exit code", func(e *Event) { e.Kind, e.ExitCode, e.Reason = KindStop, code(137), "stopped" }, ""},
		{"no environment", func(e *Event) { e.Environment = "" }, ""},
		{"pinned reference", func(e *Event) { e.Image = "registry.example:5000/prod/app@" + testDigest }, ""},
		{"unknown kind", func(e *Event) { e.Kind = "restart" }, "kind"},
		{"zero time", func(e *Event) { e.Time = time.Time{} }, "time"},
		{"time far ahead", func(e *Event) { e.Time = testNow.Add(25 * time.Hour) }, "time"},
		{"time before 2000", func(e *Event) { e.Time = time.Unix(0, 0) }, "time"},
		{"empty host", func(e *Event) { e.Host = "" }, "host"},
		{"host with slash", func(e *Event) { e.Host = "web1/../../etc" }, "host"},
		{"host with space", func(e *Event) { e.Host = "web 1" }, "host"},
		{"host too long", func(e *Event) { e.Host = strings.Repeat("a", 254) }, "host"},
		{"container traversal", func(e *Event) { e.Container = "../x" }, "container"},
		{"container too long", func(e *Event) { e.Container = strings.Repeat("c", 64) }, "container"},
		{"container newline", func(e *Event) { e.Container = "a\nb" }, "container"},
		{"image not a reference", func(e *Event) { e.Image = "Not A Ref!!" }, "image"},
		{"image empty", func(e *Event) { e.Image = "" }, "image"},
		{"image huge", func(e *Event) { e.Image = "r.example/" + strings.Repeat("a/", 600) + "x:v1" }, "image"},
		{"digest malformed", func(e *Event) { e.Digest = "sha256:xyz" }, "digest"},
		{"digest missing", func(e *Event) { e.Digest = "" }, "digest"},
		{"digest differs from reference", func(e *Event) {
			e.Image = "registry.example:5000/prod/app@sha256:" + strings.Repeat("cd", 32)
		}, "digest"},
		{"environment with slash", func(e *Event) { e.Environment = "prod/../dev" }, "environment"},
		{"start with exit code", func(e *Event) { e.ExitCode = code(0) }, "exitCode"},
		{"exit code out of range", func(e *Event) { e.Kind, e.ExitCode = KindStop, code(300) }, "exitCode"},
		{"negative exit code", func(e *Event) { e.Kind, e.ExitCode = KindStop, code(-1) }, "exitCode"},
		{"reason with escape", func(e *Event) { e.Kind, e.Reason = KindStop, "exited \x1b[31mred" }, "reason"},
		{"reason too long", func(e *Event) { e.Kind, e.Reason = KindStop, strings.Repeat("r", 1025) }, "reason"},
		{"user invalid UTF-8", func(e *Event) { e.Profile.User = "\xff\xfe" }, "profile.user"},
		{"too many capabilities", func(e *Event) { e.Profile.Capabilities = make([]string, 257) }, "profile.capabilities"},
		{"egress control char", func(e *Event) { e.Profile.Egress = []string{"a\x00b"} }, "profile.egress"},
		{"negative memory", func(e *Event) { e.Profile.Memory = -5 }, "profile"},
		{"no verification", func(e *Event) { e.Decision.Verification = "" }, "decision.verification"},
		{"bad verification", func(e *Event) { e.Decision.Verification = "trust-me" }, "decision.verification"},
		{"decision id with space", func(e *Event) { e.Decision.ID = "a b" }, "decision.id"},
		{"warnings too long", func(e *Event) { e.Decision.Warnings = []string{strings.Repeat("w", 2000)} }, "decision.warnings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent()
			tt.change(&e)
			err := e.Validate(testNow)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), tt.field+":") {
				t.Fatalf("Validate = %v, want ErrInvalidEvent naming %s", err, tt.field)
			}
		})
	}
}

func TestDecodeEvent(t *testing.T) {
	good, err := json.Marshal(validEvent())
	if err != nil {
		t.Fatal(err)
	}
	spoof := func(field, value string) string {
		return strings.Replace(string(good), `{"kind"`, `{"`+field+`":`+value+`,"kind"`, 1)
	}
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"valid", string(good), true},
		{"valid with trailing space", string(good) + "\n  ", true},
		{"empty", "", false},
		{"not JSON", "kind=start", false},
		{"array", "[" + string(good) + "]", false},
		{"truncated", string(good[:len(good)/2]), false},
		{"two objects", string(good) + string(good), false},
		{"trailing garbage", string(good) + "x", false},
		{"spoofed reporter", spoof("reporter", `"admin"`), false},
		{"spoofed received", spoof("received", `"2020-01-01T00:00:00Z"`), false},
		{"spoofed seq", spoof("seq", `1`), false},
		{"spoofed repository", spoof("repository", `"other/repo"`), false},
		{"wrong type", strings.Replace(string(good), `"host":"web1.example"`, `"host":42`, 1), false},
		{"null kind", strings.Replace(string(good), `"kind":"start"`, `"kind":null`, 1), false},
		{"oversized", `{"kind":"start","reason":"` + strings.Repeat("a", MaxEventSize) + `"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEvent(strings.NewReader(tt.body), testNow)
			if tt.ok {
				if err != nil {
					t.Fatalf("DecodeEvent: %v", err)
				}
				if e.Host != "web1.example" || e.Repository() != "prod/app" {
					t.Fatalf("decoded %+v", e)
				}
				return
			}
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("DecodeEvent = %v, want ErrInvalidEvent", err)
			}
		})
	}
}

// FuzzDecodeEvent: whatever arrives, DecodeEvent either refuses it with
// ErrInvalidEvent or returns an event that validates, whose repository is
// known and that survives a JSON round trip unchanged.
func FuzzDecodeEvent(f *testing.F) {
	good, _ := json.Marshal(validEvent())
	f.Add(good)
	stop := validEvent()
	stop.Kind, stop.Reason = KindStop, "exited"
	b, _ := json.Marshal(stop)
	f.Add(b)
	f.Add([]byte(`{"kind":"start"}`))
	f.Add([]byte(`{"kind":"stop","time":"2026-01-01T00:00:00Z","host":"h","container":"c","image":"a/b:c","digest":"sha256:00","decision":{"verification":"skipped"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEvent(strings.NewReader(string(data)), testNow)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error not ErrInvalidEvent: %v", err)
			}
			return
		}
		if err := e.Validate(testNow); err != nil {
			t.Fatalf("decoded event does not validate: %v", err)
		}
		if e.Repository() == "" {
			t.Fatalf("valid event without repository: %+v", e)
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := DecodeEvent(strings.NewReader(string(again)), testNow)
		if err != nil {
			t.Fatalf("re-encoded event refused: %v\n%s", err, again)
		}
		if again2, _ := json.Marshal(e2); string(again2) != string(again) {
			t.Fatalf("round trip changed the event:\n%s\n%s", again, again2)
		}
	})
}
