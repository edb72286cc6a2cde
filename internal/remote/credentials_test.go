package remote

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDockerConfigCredentials(t *testing.T) {
	const cfg = `{
		"auths": {
			"a.example": {"auth": "dXNlcjpwYXNzOndpdGg6Y29sb25z"},
			"https://b.example/v1/": {"username": "bob", "password": "pw"},
			"c.example": {"identitytoken": "refresh"},
			"d.example": {},
			"e.example": {"auth": "!!notbase64"}
		},
		"credsStore": "desktop",
		"credHelpers": {"gcr.example": "gcloud"}
	}`
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := DockerConfigCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host    string
		want    Credential
		wantErr error // nil: no error; errAny: some error
	}{
		{"a.example", Credential{"user", "pass:with:colons"}, nil},
		{"B.example", Credential{"bob", "pw"}, nil},
		{"unknown.example", Credential{}, nil},
		{"gcr.example", Credential{}, ErrCredentialHelper},
		{"d.example", Credential{}, ErrCredentialHelper},
		{"c.example", Credential{}, errAny},
		{"e.example", Credential{}, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, err := s.Credentials(tt.host)
			switch {
			case tt.wantErr == nil && err != nil, tt.wantErr != nil && err == nil:
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestDockerConfigDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	if p, _ := DefaultDockerConfigPath(); p != filepath.Join(dir, "config.json") {
		t.Fatalf("path = %s", p)
	}
	s, err := DockerConfigCredentials("") // absent: anonymous, not an error
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Credentials("x.example"); err != nil || c != (Credential{}) {
		t.Fatalf("absent config: %+v %v", c, err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{not json"), 0o600)
	if _, err := DockerConfigCredentials(""); err == nil {
		t.Fatal("malformed config accepted")
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:5000": true, "127.0.0.1": true, "127.1.2.3:443": true,
		"[::1]:5000": true, "::1": true, "registry.example": false, "10.0.0.1:5000": false,
		"127.0.0.1.nip.io": false, "localhost.example:5000": false, "[::2]:80": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
