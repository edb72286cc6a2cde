package remote

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Credential is what a CredentialStore knows about a host. The zero value
// means anonymous.
type Credential struct {
	Username string
	Secret   string
}

// CredentialStore gives credentials for a registry host ("host[:port]").
// It is asked only when a registry demands authentication. It returns the
// zero Credential for hosts it knows nothing about, and an error only when
// it knows the host has credentials it cannot produce.
type CredentialStore interface {
	Credentials(host string) (Credential, error)
}

// StaticCredentials is a CredentialStore from a map host → credential,
// for tests and for callers with credentials in hand.
type StaticCredentials map[string]Credential

// Credentials implements CredentialStore.
func (s StaticCredentials) Credentials(host string) (Credential, error) { return s[host], nil }

// DefaultDockerConfigPath is $DOCKER_CONFIG/config.json, else
// ~/.docker/config.json, as docker itself looks it up.
func DefaultDockerConfigPath() (string, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("docker config: %w", err)
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

type dockerConfig struct {
	Auths       map[string]dockerAuth `json:"auths"`
	CredsStore  string                `json:"credsStore"`
	CredHelpers map[string]string     `json:"credHelpers"`
}

type dockerStore struct {
	path  string
	cfg   dockerConfig
	auths map[string]dockerAuth // keyed by normalised host
}

// DockerConfigCredentials reads docker's config.json (path "" means
// DefaultDockerConfigPath). A missing file is an empty store: anonymous
// access, as docker behaves. Credential helpers are not run; a host whose
// credentials live in one yields ErrCredentialHelper when it is asked for.
func DockerConfigCredentials(path string) (CredentialStore, error) {
	if path == "" {
		p, err := DefaultDockerConfigPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	s := &dockerStore{path: path, auths: map[string]dockerAuth{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	if err := json.Unmarshal(data, &s.cfg); err != nil {
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	for k, v := range s.cfg.Auths {
		s.auths[normaliseHost(k)] = v
	}
	return s, nil
}

// normaliseHost maps docker's historical keys ("https://host/v1/") to
// "host".
func normaliseHost(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i]
	}
	return strings.ToLower(k)
}

func (s *dockerStore) Credentials(host string) (Credential, error) {
	host = strings.ToLower(host)
	if h, ok := s.cfg.CredHelpers[host]; ok {
		return Credential{}, fmt.Errorf("%w: %s uses docker-credential-%s (%s)", ErrCredentialHelper, host, h, s.path)
	}
	a, ok := s.auths[host]
	if !ok {
		return Credential{}, nil
	}
	switch {
	case a.Auth != "":
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return Credential{}, fmt.Errorf("docker config %s: auth for %s: %w", s.path, host, err)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return Credential{}, fmt.Errorf("docker config %s: auth for %s is not user:password", s.path, host)
		}
		return Credential{Username: user, Secret: pass}, nil
	case a.Username != "" || a.Password != "":
		return Credential{Username: a.Username, Secret: a.Password}, nil
	case a.IdentityToken != "":
		// OAuth2 refresh-token grants are not implemented: say so rather
		// than silently falling back to anonymous.
		return Credential{}, fmt.Errorf("docker config %s: %s has only an identity token (OAuth2), which is not supported; log in with a password", s.path, host)
	case s.cfg.CredsStore != "":
		// docker records a login kept in the store as an empty entry.
		return Credential{}, fmt.Errorf("%w: %s uses docker-credential-%s (%s)", ErrCredentialHelper, host, s.cfg.CredsStore, s.path)
	}
	return Credential{}, nil
}
