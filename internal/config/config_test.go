package config_test

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulwark-dev/bulwark/internal/config"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bulwark.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefault(t *testing.T) {
	want := config.Config{
		Addr:                 "127.0.0.1:5000",
		Data:                 "./bulwark-data",
		Log:                  config.Log{Level: "info", Format: "auto"},
		MaxBlobSize:          0,
		AllowSparseManifests: false,
		GC: config.GC{
			Interval:     config.Duration(time.Hour),
			Grace:        config.Duration(time.Hour),
			UploadExpiry: config.Duration(24 * time.Hour),
		},
		TLS:          config.TLS{Mode: "off"},
		Auth:         config.Auth{Enabled: true, Service: "bulwark", TokenTTL: config.Duration(5 * time.Minute)},
		PolicyReload: config.Duration(5 * time.Second),
		Scan: config.Scan{Enabled: true, Workers: 1, RematchInterval: config.Duration(30 * time.Second),
			WebhookTimeout: config.Duration(10 * time.Second)},
	}
	got := config.Default()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Default() = %+v\nwant        %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	// No file and no environment is exactly the defaults.
	loaded, err := config.Load("", nil)
	if err != nil {
		t.Fatalf("Load(\"\", nil) = %v", err)
	}
	if !reflect.DeepEqual(loaded, want) {
		t.Errorf("Load(\"\", nil) = %+v, want defaults", loaded)
	}
}

func TestLoadEveryKey(t *testing.T) {
	p := writeConfig(t, `
addr: 0.0.0.0:6000
data: /var/lib/bulwark
log:
  level: debug
  format: json
max_blob_size: 1073741824
allow_sparse_manifests: true
gc:
  interval: 90s
  grace: 7d
  upload_expiry: 1h
tls:
  mode: files
  cert: /etc/bulwark/tls.crt
  key: /etc/bulwark/tls.key
insecure_http: true
auth:
  enabled: false
  service: registry.example
  realm: https://registry.example/token
  token_ttl: 10m
  anonymous_pull: ["public/*", "mirror/**"]
trust_policy: /etc/bulwark/trust.yaml
policy: /etc/bulwark/policy.yaml
policy_reload: 1m
run:
  env: prod
  report_to: https://registry.example:5000
scan:
  enabled: false
  workers: 4
  rematch_interval: 5m
  webhook: https://hooks.example/bulwark
  webhook_timeout: 3s
`)
	got, err := config.Load(p, nil)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := config.Config{
		Addr:                 "0.0.0.0:6000",
		Data:                 "/var/lib/bulwark",
		Log:                  config.Log{Level: "debug", Format: "json"},
		MaxBlobSize:          1 << 30,
		AllowSparseManifests: true,
		GC: config.GC{
			Interval:     config.Duration(90 * time.Second),
			Grace:        config.Duration(7 * 24 * time.Hour),
			UploadExpiry: config.Duration(time.Hour),
		},
		TLS:          config.TLS{Mode: "files", Cert: "/etc/bulwark/tls.crt", Key: "/etc/bulwark/tls.key"},
		InsecureHTTP: true,
		Auth: config.Auth{Enabled: false, Service: "registry.example", Realm: "https://registry.example/token",
			TokenTTL: config.Duration(10 * time.Minute), AnonymousPull: []string{"public/*", "mirror/**"}},
		TrustPolicy:  "/etc/bulwark/trust.yaml",
		Policy:       "/etc/bulwark/policy.yaml",
		PolicyReload: config.Duration(time.Minute),
		Run:          config.Run{Env: "prod", ReportTo: "https://registry.example:5000"},
		Scan: config.Scan{Enabled: false, Workers: 4, RematchInterval: config.Duration(5 * time.Minute),
			Webhook: "https://hooks.example/bulwark", WebhookTimeout: config.Duration(3 * time.Second)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load = %+v\nwant   %+v", got, want)
	}
}

func TestLoadPartialFileKeepsOtherDefaults(t *testing.T) {
	p := writeConfig(t, "gc:\n  grace: 2h\n")
	got, err := config.Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.GC.Grace = config.Duration(2 * time.Hour)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load = %+v, want %+v", got, want)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	for _, content := range []string{"", "\n", "# only a comment\n", "---\n"} {
		t.Run(content, func(t *testing.T) {
			got, err := config.Load(writeConfig(t, content), nil)
			if err != nil {
				t.Fatalf("Load(%q) = %v", content, err)
			}
			if !reflect.DeepEqual(got, config.Default()) {
				t.Errorf("Load(%q) = %+v, want defaults", content, got)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantMsg []string // substrings the error must contain
	}{
		{"unknown top-level key", "adress: 1.2.3.4:5000\n", []string{"adress"}},
		{"unknown nested key", "gc:\n  intervall: 1h\n", []string{"intervall"}},
		{"unknown log key", "log:\n  levle: debug\n", []string{"levle"}},
		{"env-style key", "max-blob-size: 10\n", []string{"max-blob-size"}},
		{"syntax error", "addr: [\n", []string{"bulwark.yaml"}},
		{"wrong type", "max_blob_size: 1KB\n", []string{"1KB"}},
		{"wrong bool", "allow_sparse_manifests: sometimes\n", []string{"sometimes"}},
		{"bad duration", "gc:\n  interval: soon\n", []string{"soon", "line 2"}},
		{"duration without unit", "gc:\n  grace: 90\n", []string{`"90"`}},
		{"negative duration", "gc:\n  upload_expiry: -1h\n", []string{"-1h"}},
		{"duration as list", "gc:\n  interval: [1h]\n", []string{"invalid duration"}},
		{"bad log level", "log:\n  level: verbose\n", []string{"log.level", "verbose"}},
		{"bad log format", "log:\n  format: xml\n", []string{"log.format", "xml"}},
		{"empty addr", "addr: \"\"\n", []string{"addr"}},
		{"negative max blob size", "max_blob_size: -1\n", []string{"max_blob_size"}},
		{"second document", "addr: a:1\n---\nlog:\n  level: debug\n", []string{"one YAML document", "line 2"}},
		{"no scan workers", "scan:\n  workers: 0\n", []string{"scan.workers"}},
		{"too many scan workers", "scan:\n  workers: 65\n", []string{"scan.workers"}},
		{"webhook not a URL", "scan:\n  webhook: hooks.example/x\n", []string{"scan.webhook"}},
		{"webhook not http", "scan:\n  webhook: ftp://hooks.example/x\n", []string{"scan.webhook"}},
		{"webhook timeout zero", "scan:\n  webhook_timeout: 0s\n", []string{"scan.webhook_timeout"}},
		{"webhook timeout long", "scan:\n  webhook_timeout: 1h\n", []string{"scan.webhook_timeout"}},
		{"bad rematch interval", "scan:\n  rematch_interval: often\n", []string{"often"}},
		{"broken second document", "addr: a:1\n---\naddr: [\n", []string{"bulwark.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(writeConfig(t, tt.content), nil)
			if err == nil {
				t.Fatalf("Load(%q) = nil error", tt.content)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := config.Load(p, nil)
	if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("Load(missing) = %v, want an error naming the file", err)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"90s", 90 * time.Second},
		{"1h", time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"500ms", 500 * time.Millisecond},
		{"0", 0},
		{"0s", 0},
		{"7d", 7 * 24 * time.Hour},
		{"1d", 24 * time.Hour},
		{"0d", 0},
		{"0.5d", 12 * time.Hour},
		{"  2d  ", 48 * time.Hour},
		{"106751d", 106751 * 24 * time.Hour}, // the largest whole number of days that fits
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.ParseDuration(tt.in)
			if err != nil {
				t.Fatalf("ParseDuration(%q) = %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	for _, in := range []string{
		"", "d", "s", "abc", "7 days", "7days", "1w", "1y", "-1s", "-1h", "-1d", "-0.5d",
		"1h1d", "1dd", "d1", "1e", "0x", "0x1.8p",
		// Floats that are not finite, or whose day count overflows int64
		// nanoseconds, must not wrap into negative durations.
		"NaNd", "nand", "Infd", "+Infd", "-Infd", "infd", "1e300d", "106752d", "9223372036854775807d",
		"9999999999h",
	} {
		t.Run("invalid "+in, func(t *testing.T) {
			got, err := config.ParseDuration(in)
			if err == nil {
				t.Fatalf("ParseDuration(%q) = %v, want error", in, got)
			}
			if !strings.Contains(err.Error(), "invalid duration") {
				t.Errorf("error %q does not say the duration is invalid", err)
			}
		})
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "1h", "7d", "0.5d", "-1d", "NaNd", "1e300d", "106751.9d", "106752d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := config.ParseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		}
		if err != nil && d != 0 {
			t.Fatalf("ParseDuration(%q) returned %v alongside error", s, d)
		}
	})
}

func TestDurationYAMLRoundTrip(t *testing.T) {
	d := config.Duration(36 * time.Hour)
	if d.String() != "36h0m0s" {
		t.Errorf("String() = %q", d.String())
	}
	out, err := yaml.Marshal(config.GC{Interval: d, Grace: config.Duration(90 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var back config.GC
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("unmarshal %q: %v", out, err)
	}
	if back.Interval != d || back.Grace != config.Duration(90*time.Second) || back.UploadExpiry != 0 {
		t.Errorf("round trip of %q = %+v", out, back)
	}
}

func TestEnvOverrides(t *testing.T) {
	tests := []struct {
		env  string
		want func(*config.Config)
	}{
		{"BULWARK_ADDR=:9999", func(c *config.Config) { c.Addr = ":9999" }},
		{"BULWARK_DATA=/srv/b", func(c *config.Config) { c.Data = "/srv/b" }},
		{"BULWARK_LOG_LEVEL=warn", func(c *config.Config) { c.Log.Level = "warn" }},
		{"BULWARK_LOG_FORMAT=text", func(c *config.Config) { c.Log.Format = "text" }},
		{"BULWARK_MAX_BLOB_SIZE=1048576", func(c *config.Config) { c.MaxBlobSize = 1 << 20 }},
		{"BULWARK_ALLOW_SPARSE_MANIFESTS=true", func(c *config.Config) { c.AllowSparseManifests = true }},
		{"BULWARK_ALLOW_SPARSE_MANIFESTS=1", func(c *config.Config) { c.AllowSparseManifests = true }},
		{"BULWARK_GC_INTERVAL=30m", func(c *config.Config) { c.GC.Interval = config.Duration(30 * time.Minute) }},
		{"BULWARK_GC_INTERVAL=0", func(c *config.Config) { c.GC.Interval = 0 }},
		{"BULWARK_GC_GRACE=2d", func(c *config.Config) { c.GC.Grace = config.Duration(48 * time.Hour) }},
		{"BULWARK_GC_UPLOAD_EXPIRY=90s", func(c *config.Config) { c.GC.UploadExpiry = config.Duration(90 * time.Second) }},
		{"BULWARK_SCAN_ENABLED=false", func(c *config.Config) { c.Scan.Enabled = false }},
		{"BULWARK_SCAN_WORKERS=3", func(c *config.Config) { c.Scan.Workers = 3 }},
		{"BULWARK_SCAN_REMATCH_INTERVAL=0", func(c *config.Config) { c.Scan.RematchInterval = 0 }},
		{"BULWARK_SCAN_WEBHOOK=http://127.0.0.1:9/hook", func(c *config.Config) { c.Scan.Webhook = "http://127.0.0.1:9/hook" }},
		{"BULWARK_SCAN_WEBHOOK_TIMEOUT=30s", func(c *config.Config) { c.Scan.WebhookTimeout = config.Duration(30 * time.Second) }},
		// A value may itself contain '='.
		{"BULWARK_DATA=/a=b", func(c *config.Config) { c.Data = "/a=b" }},
		// Not configuration: ignored.
		{"BULWARK_UNKNOWN=1", func(*config.Config) {}},
		{"BULWARK_LOG=debug", func(*config.Config) {}},
		{"BULWARK_GC=1h", func(*config.Config) {}},
		{"bulwark_addr=:1", func(*config.Config) {}},
		{"ADDR=:1", func(*config.Config) {}},
		{"BULWARK_ADDR", func(*config.Config) {}},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			got, err := config.Load("", []string{"PATH=/usr/bin", tt.env})
			if err != nil {
				t.Fatalf("Load with %s = %v", tt.env, err)
			}
			want := config.Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load with %s = %+v\nwant %+v", tt.env, got, want)
			}
		})
	}
}

func TestEnvBadValues(t *testing.T) {
	tests := []struct {
		env     string
		wantMsg string
	}{
		{"BULWARK_GC_INTERVAL=soon", "BULWARK_GC_INTERVAL"},
		{"BULWARK_GC_INTERVAL=-1h", "BULWARK_GC_INTERVAL"},
		{"BULWARK_GC_GRACE=NaNd", "BULWARK_GC_GRACE"},
		{"BULWARK_GC_GRACE=1e300d", "BULWARK_GC_GRACE"},
		{"BULWARK_GC_UPLOAD_EXPIRY=", "BULWARK_GC_UPLOAD_EXPIRY"},
		{"BULWARK_MAX_BLOB_SIZE=1GB", "BULWARK_MAX_BLOB_SIZE"},
		{"BULWARK_MAX_BLOB_SIZE=1.5", "BULWARK_MAX_BLOB_SIZE"},
		{"BULWARK_MAX_BLOB_SIZE=99999999999999999999", "BULWARK_MAX_BLOB_SIZE"},
		{"BULWARK_ALLOW_SPARSE_MANIFESTS=yes", "BULWARK_ALLOW_SPARSE_MANIFESTS"},
		{"BULWARK_ALLOW_SPARSE_MANIFESTS=", "BULWARK_ALLOW_SPARSE_MANIFESTS"},
		// Well-typed but invalid values fail validation, naming the key.
		{"BULWARK_MAX_BLOB_SIZE=-1", "max_blob_size"},
		{"BULWARK_LOG_LEVEL=trace", "log.level"},
		{"BULWARK_LOG_FORMAT=yaml", "log.format"},
		{"BULWARK_ADDR=", "addr"},
		{"BULWARK_DATA=", "data"},
		{"BULWARK_SCAN_WORKERS=many", "BULWARK_SCAN_WORKERS"},
		{"BULWARK_SCAN_WORKERS=-2", "scan.workers"},
		{"BULWARK_SCAN_WEBHOOK=not a url", "scan.webhook"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := config.Load("", []string{tt.env})
			if err == nil {
				t.Fatalf("Load with %s = nil error", tt.env)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not name %q", err, tt.wantMsg)
			}
		})
	}
}

func TestPrecedenceFileThenEnv(t *testing.T) {
	p := writeConfig(t, `
addr: file:1
data: /from/file
max_blob_size: 100
gc:
  interval: 2h
  grace: 3h
`)
	got, err := config.Load(p, []string{
		"BULWARK_ADDR=env:2",
		"BULWARK_GC_INTERVAL=5m",
		"BULWARK_ALLOW_SPARSE_MANIFESTS=true",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Addr = "env:2"                                 // env beats file
	want.Data = "/from/file"                            // file beats default
	want.MaxBlobSize = 100                              // file beats default
	want.AllowSparseManifests = true                    // env beats default
	want.GC.Interval = config.Duration(5 * time.Minute) // env beats file
	want.GC.Grace = config.Duration(3 * time.Hour)      // file beats default
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load = %+v\nwant   %+v", got, want)
	}

	// The environment can also repair a value the file got wrong, because
	// validation runs after both.
	p = writeConfig(t, "log:\n  level: loud\n")
	got, err = config.Load(p, []string{"BULWARK_LOG_LEVEL=error"})
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if got.Log.Level != "error" {
		t.Errorf("log.level = %q, want error", got.Log.Level)
	}

	// A bad environment value is an error even when the file is fine.
	if _, err := config.Load(writeConfig(t, "addr: x:1\n"), []string{"BULWARK_MAX_BLOB_SIZE=lots"}); err == nil {
		t.Error("bad env value over a good file: nil error")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*config.Config)
		wantMsg string // "" means valid
	}{
		{"defaults", func(*config.Config) {}, ""},
		{"every level", func(c *config.Config) { c.Log.Level = "warn" }, ""},
		{"json format", func(c *config.Config) { c.Log.Format = "json" }, ""},
		{"text format", func(c *config.Config) { c.Log.Format = "text" }, ""},
		{"max blob size", func(c *config.Config) { c.MaxBlobSize = math.MaxInt64 }, ""},
		{"zero durations", func(c *config.Config) { c.GC = config.GC{} }, ""},
		{"bad level", func(c *config.Config) { c.Log.Level = "verbose" }, "log.level"},
		{"uppercase level", func(c *config.Config) { c.Log.Level = "INFO" }, "log.level"},
		{"empty level", func(c *config.Config) { c.Log.Level = "" }, "log.level"},
		{"bad format", func(c *config.Config) { c.Log.Format = "logfmt" }, "log.format"},
		{"empty format", func(c *config.Config) { c.Log.Format = "" }, "log.format"},
		{"empty addr", func(c *config.Config) { c.Addr = "" }, "addr"},
		{"empty data", func(c *config.Config) { c.Data = "" }, "data"},
		{"negative max blob size", func(c *config.Config) { c.MaxBlobSize = -1 }, "max_blob_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error about %s", tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Validate() = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestEnvListAndTLSValidation(t *testing.T) {
	got, err := config.Load("", []string{"BULWARK_AUTH_ANONYMOUS_PULL= public/* , mirror/** ,", "BULWARK_TLS_MODE=auto"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"public/*", "mirror/**"}; !reflect.DeepEqual(got.Auth.AnonymousPull, want) {
		t.Fatalf("anonymous_pull from env = %q, want %q", got.Auth.AnonymousPull, want)
	}
	if got.TLS.Mode != "auto" {
		t.Fatalf("tls.mode = %q", got.TLS.Mode)
	}
	for _, env := range [][]string{
		{"BULWARK_TLS_MODE=files"},     // no cert and key
		{"BULWARK_TLS_MODE=sometimes"}, // unknown mode
		{"BULWARK_AUTH_TOKEN_TTL=48h"}, // too long
		{"BULWARK_AUTH_SERVICE="},      // empty service with auth on
	} {
		if _, err := config.Load("", env); err == nil {
			t.Errorf("Load with %v succeeded, want an error", env)
		}
	}
}
