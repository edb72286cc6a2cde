// Package config loads bulwark's configuration: built-in defaults, then an
// optional YAML file, then BULWARK_* environment variables, then command-line
// flags (applied by the caller). Every key has a default, so an empty
// configuration is a working, safe local registry.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. YAML keys are the `yaml` tags; the
// environment variable for a key is BULWARK_ plus the upper-cased key path
// joined by underscores (gc.interval → BULWARK_GC_INTERVAL).
type Config struct {
	// Addr is the listen address.
	Addr string `yaml:"addr"`
	// Data is the directory holding blobs, metadata and keys.
	Data string `yaml:"data"`
	Log  Log    `yaml:"log"`
	// MaxBlobSize bounds one uploaded blob in bytes; 0 is unlimited.
	MaxBlobSize int64 `yaml:"max_blob_size"`
	// AllowSparseManifests accepts manifests whose layers or child
	// manifests are absent (partial mirrors). Off: every tag names complete
	// content.
	AllowSparseManifests bool `yaml:"allow_sparse_manifests"`
	GC                   GC   `yaml:"gc"`
	TLS                  TLS  `yaml:"tls"`
	// InsecureHTTP allows plain HTTP on a non-loopback address.
	InsecureHTTP bool `yaml:"insecure_http"`
	Auth         Auth `yaml:"auth"`
	// TrustPolicy is the trust policy file (or Notation configuration
	// directory) the policy engine's "signed" rule consults; "" for none.
	TrustPolicy string `yaml:"trust_policy"`
	// Policy is the rule policy (CEL rules, bindings, exceptions) enforced
	// at push and pull; "" serves without a policy gate.
	Policy string `yaml:"policy"`
	// PolicyReload is how often both policy files are checked for changes
	// (SIGHUP reloads at once); 0 only reloads on SIGHUP.
	PolicyReload Duration `yaml:"policy_reload"`
	// Run configures bulwark run on this host. It also reads TrustPolicy
	// and Policy above: a host checks what it runs like the registry
	// checks what it serves.
	Run Run `yaml:"run"`
	// Scan configures the registry's background scanner (serve).
	Scan Scan `yaml:"scan"`
}

// Scan configures the scanning of pushed images in serve.
type Scan struct {
	// Enabled scans every image manifest pushed, once per digest, and
	// keeps its SBOM, lint findings and vulnerability report in
	// DATA/scan.db; the policy engine's scan facts come from there.
	Enabled bool `yaml:"enabled"`
	// Workers is how many images are scanned at once.
	Workers int `yaml:"workers"`
	// RematchInterval is how often the vulnerability database
	// (DATA/vulndb.db) is checked for changes; stored SBOMs are
	// re-matched when it changed. 0 re-matches only on request
	// (POST /admin/v1/scan/rematch).
	RematchInterval Duration `yaml:"rematch_interval"`
	// Webhook is a URL that findings new after a database update are
	// POSTed to (JSON); "" sends nothing.
	Webhook string `yaml:"webhook"`
	// WebhookTimeout bounds one webhook request (it is not retried).
	WebhookTimeout Duration `yaml:"webhook_timeout"`
}

// Run configures bulwark run.
type Run struct {
	// Env is the environment this host's containers are decided for (the
	// default of --env).
	Env string `yaml:"env"`
	// ReportTo is the bulwark server that every start and stop is
	// reported to (the default of --report-to); "" reports nothing.
	ReportTo string `yaml:"report_to"`
}

// TLS configures HTTPS.
type TLS struct {
	// Mode is off, files (Cert and Key), or auto (a local CA and server
	// certificate kept in the data directory).
	Mode string `yaml:"mode"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Auth configures accounts and the token service.
type Auth struct {
	// Enabled requires a token for every registry request (anonymous pulls
	// only where AnonymousPull allows). Off serves everyone.
	Enabled bool `yaml:"enabled"`
	// Service is the token audience and the service name clients request.
	Service string `yaml:"service"`
	// Realm is the token endpoint URL advertised to clients; empty derives it
	// from each request's scheme and Host.
	Realm string `yaml:"realm"`
	// TokenTTL is the lifetime of issued access tokens.
	TokenTTL Duration `yaml:"token_ttl"`
	// AnonymousPull lists repository globs anyone may pull without
	// credentials (e.g. "public/*").
	AnonymousPull []string `yaml:"anonymous_pull"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json, text, or auto (text on a terminal, JSON otherwise).
	Format string `yaml:"format"`
}

// GC configures garbage collection.
type GC struct {
	// Interval between scheduled runs in `serve`; 0 disables the schedule.
	Interval Duration `yaml:"interval"`
	// Grace protects blobs touched this recently.
	Grace Duration `yaml:"grace"`
	// UploadExpiry is how long an idle upload session lives.
	UploadExpiry Duration `yaml:"upload_expiry"`
}

// Duration is a time.Duration written as "90s", "1h", or "7d".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration accepts Go durations plus a "d" (day) unit.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		d := n * float64(24*time.Hour)
		// !(d >= 0) also rejects NaN; d >= 2^63 would overflow int64 and
		// wrap to a negative duration.
		if err != nil || !(d >= 0) || d >= math.MaxInt64 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(d), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 30s, 1h, 7d)", s)
	}
	return d, nil
}

// Default returns the built-in configuration.
func Default() Config {
	return Config{
		Addr: "127.0.0.1:5000",
		Data: "./bulwark-data",
		Log:  Log{Level: "info", Format: "auto"},
		GC: GC{
			Interval:     Duration(time.Hour),
			Grace:        Duration(time.Hour),
			UploadExpiry: Duration(24 * time.Hour),
		},
		TLS:          TLS{Mode: "off"},
		PolicyReload: Duration(5 * time.Second),
		Scan: Scan{
			Enabled:         true,
			Workers:         1,
			RematchInterval: Duration(30 * time.Second),
			WebhookTimeout:  Duration(10 * time.Second),
		},
		Auth: Auth{
			Enabled:  true,
			Service:  "bulwark",
			TokenTTL: Duration(5 * time.Minute),
		},
	}
}

// Load returns defaults overlaid with the YAML file at path (if path is not
// empty) and then with the environment. Unknown keys in the file are errors:
// a typo must not silently leave a setting at its default.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		// An empty file decodes to io.EOF and leaves the defaults.
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		// A second document would be silently ignored; refuse it like a typo.
		var extra yaml.Node
		switch err := dec.Decode(&extra); {
		case errors.Is(err, io.EOF):
		case err != nil:
			return cfg, fmt.Errorf("config %s: %w", path, err)
		case len(extra.Content) > 0:
			return cfg, fmt.Errorf("config %s: line %d: only one YAML document is allowed", path, extra.Line)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Validate checks values that are well-typed but unusable.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return errors.New("config: addr must not be empty")
	}
	if c.Data == "" {
		return errors.New("config: data must not be empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "text":
	default:
		return fmt.Errorf("config: log.format %q is not one of auto, json, text", c.Log.Format)
	}
	switch c.TLS.Mode {
	case "off", "auto":
	case "files":
		if c.TLS.Cert == "" || c.TLS.Key == "" {
			return errors.New("config: tls.mode files needs tls.cert and tls.key")
		}
	default:
		return fmt.Errorf("config: tls.mode %q is not one of off, files, auto", c.TLS.Mode)
	}
	if c.Auth.Enabled && c.Auth.Service == "" {
		return errors.New("config: auth.service must not be empty")
	}
	if c.Auth.TokenTTL <= 0 || time.Duration(c.Auth.TokenTTL) > 24*time.Hour {
		return errors.New("config: auth.token_ttl must be between 1s and 24h")
	}
	if c.MaxBlobSize < 0 {
		return errors.New("config: max_blob_size must not be negative")
	}
	return c.Scan.validate()
}

func (s *Scan) validate() error {
	if s.Workers < 1 || s.Workers > 64 {
		return fmt.Errorf("config: scan.workers %d is not between 1 and 64", s.Workers)
	}
	if s.Webhook != "" {
		u, err := url.Parse(s.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: scan.webhook %q is not an http(s) URL", s.Webhook)
		}
	}
	if s.WebhookTimeout < Duration(time.Second) || s.WebhookTimeout > Duration(5*time.Minute) {
		return errors.New("config: scan.webhook_timeout must be between 1s and 5m")
	}
	return nil
}

// applyEnv sets fields from BULWARK_* variables, walking the struct by its
// yaml tags so every key is overridable without a hand-kept list.
func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "BULWARK_") {
			env[k] = v
		}
	}
	return walk(reflect.ValueOf(cfg).Elem(), "BULWARK", env)
}

var durationType = reflect.TypeFor[Duration]()

func walk(v reflect.Value, prefix string, env map[string]string) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := prefix + "_" + strings.ToUpper(strings.Split(f.Tag.Get("yaml"), ",")[0])
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if err := walk(fv, key, env); err != nil {
				return err
			}
			continue
		}
		s, ok := env[key]
		if !ok {
			continue
		}
		if err := setValue(fv, s); err != nil {
			return fmt.Errorf("environment %s=%q: %w", key, s, err)
		}
	}
	return nil
}

func setValue(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported slice of %s", v.Type().Elem().Kind())
		}
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		v.Set(reflect.ValueOf(items))
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	default:
		return fmt.Errorf("unsupported kind %s", v.Kind())
	}
	return nil
}
