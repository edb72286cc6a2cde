package remote

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// hostile is a registry that lies: each test gives it a handler.
func hostile(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

func TestHostileRegistryContent(t *testing.T) {
	genuine := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	evil := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","evil":true}`)
	huge := bytes.Repeat([]byte(" "), MaxManifestSize+10)

	tests := []struct {
		name    string
		handler http.HandlerFunc
		ref     string // appended to host/
		wantErr error
	}{
		{"substituted content for a digest", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", v1.MediaTypeImageManifest)
			w.Write(evil)
		}, "app@" + digest.FromBytes(genuine).String(), ErrDigestMismatch},
		{"substituted content and a matching header", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", v1.MediaTypeImageManifest)
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(evil).String())
			w.Write(evil)
		}, "app@" + digest.FromBytes(genuine).String(), ErrDigestMismatch},
		{"header disagreeing with the body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", v1.MediaTypeImageManifest)
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(genuine).String())
			w.Write(evil)
		}, "app:v1", ErrDigestMismatch},
		{"huge manifest with a length", func(w http.ResponseWriter, r *http.Request) {
			w.Write(huge)
		}, "app:v1", ErrTooLarge},
		{"huge manifest streamed", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "chunked")
			for i := 0; i < len(huge); i += 1 << 20 {
				w.Write(huge[i:min(i+1<<20, len(huge))])
				w.(http.Flusher).Flush()
			}
		}, "app:v1", ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := hostile(t, tt.handler)
			_, _, err := New(Options{}).Manifest(t.Context(), mustRef(t, host+"/"+tt.ref))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Manifest = %v, want %v", err, tt.wantErr)
			}
			if strings.Contains(tt.ref, "@") {
				if _, err := New(Options{}).Resolve(t.Context(), mustRef(t, host+"/"+tt.ref)); !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve = %v, want %v", err, tt.wantErr)
				}
			}
		})
	}
}

func TestHostileRegistryBlobs(t *testing.T) {
	want := []byte("the real layer")
	d := digest.FromBytes(want)
	tests := []struct {
		name    string
		body    []byte
		max     int64
		chunked bool
		wantErr error
	}{
		{"substituted", []byte("a fake layer!!"), 100, false, ErrDigestMismatch},
		{"substituted, streamed", []byte("a fake layer!!"), 100, true, ErrDigestMismatch},
		{"too large, streamed", bytes.Repeat([]byte("x"), 1000), 100, true, ErrTooLarge},
		{"truncated then padded", append(want[:5:5], bytes.Repeat([]byte{0}, 9)...), 100, false, ErrDigestMismatch},
		{"genuine", want, int64(len(want)), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := hostile(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.chunked {
					w.Header().Set("Transfer-Encoding", "chunked")
				}
				w.Write(tt.body)
			})
			rc, _, err := New(Options{}).Blob(t.Context(), mustRef(t, host+"/app"), d, tt.max)
			if err == nil {
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("read = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// realmRecorder is a token endpoint that records the Authorization headers
// it receives.
type realmRecorder struct {
	mu    sync.Mutex
	authz []string
}

func (rr *realmRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rr.mu.Lock()
	rr.authz = append(rr.authz, r.Header.Get("Authorization"))
	rr.mu.Unlock()
	w.Write([]byte(`{"token":"t0ken"}`))
}

// TestRealmSafety: credentials reach a plain-HTTP realm only when it is the
// registry's own host; a registry pointing elsewhere gets an anonymous
// token request.
func TestRealmSafety(t *testing.T) {
	rec := &realmRecorder{}
	other := httptest.NewServer(rec)
	defer other.Close()

	tests := []struct {
		name      string
		realm     func(self string) string
		wantCreds bool
	}{
		{"realm on another host over http", func(string) string { return other.URL + "/token" }, false},
		{"realm on the registry itself", func(self string) string { return "http://" + self + "/token" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var self string
			var selfRec realmRecorder
			self = hostile(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/token" {
					selfRec.ServeHTTP(w, r)
					return
				}
				if r.Header.Get("Authorization") == "Bearer t0ken" {
					w.WriteHeader(http.StatusNotFound) // authenticated; nothing here
					return
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+tt.realm(self)+`",service="evil",scope="repository:app:pull"`)
				w.WriteHeader(http.StatusUnauthorized)
			})
			rec.authz, selfRec.authz = nil, nil
			c := New(Options{Credentials: StaticCredentials{self: {Username: "admin", Secret: "hunter2"}}})
			_, err := c.Resolve(t.Context(), mustRef(t, self+"/app:v1"))
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Resolve = %v, want ErrNotFound after authenticating", err)
			}
			got := append(rec.authz, selfRec.authz...)
			if len(got) != 1 {
				t.Fatalf("token requests: %q, want 1", got)
			}
			if sent := got[0] != ""; sent != tt.wantCreds {
				t.Fatalf("credentials sent to the realm: %v (%q), want %v", sent, got[0], tt.wantCreds)
			}
		})
	}
}

func TestMalformedChallenges(t *testing.T) {
	for _, h := range []string{
		"",
		`Bearer realm="unterminated`,
		`Bearer realm="ftp://x/token"`,
		`Bearer realm="http://"`,
		`Bearer realm=a, realm=b`,
		`Negotiate abc`,
		`"quoted-scheme"`,
		strings.Repeat("Bearer ", 10000),
	} {
		t.Run(h[:min(len(h), 30)], func(t *testing.T) {
			host := hostile(t, func(w http.ResponseWriter, r *http.Request) {
				if h != "" {
					w.Header().Set("WWW-Authenticate", h)
				}
				w.WriteHeader(http.StatusUnauthorized)
			})
			c := New(Options{Credentials: StaticCredentials{host: {Username: "u", Secret: "p"}}})
			_, err := c.Resolve(t.Context(), mustRef(t, host+"/app:v1"))
			if !errors.Is(err, ErrUnauthorized) && !errors.Is(err, ErrInsecureRealm) {
				t.Fatalf("Resolve = %v, want ErrUnauthorized or ErrInsecureRealm", err)
			}
		})
	}
}

// TestUploadLocationStaysOnRegistry: an upload Location on another host
// would receive the registry's token; PushBlob refuses it.
func TestUploadLocationStaysOnRegistry(t *testing.T) {
	host := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodHead:
			w.WriteHeader(http.StatusNotFound)
		case http.MethodPost:
			w.Header().Set("Location", "http://attacker.example/upload")
			w.WriteHeader(http.StatusAccepted)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
	})
	_, err := New(Options{}).PushBlob(t.Context(), mustRef(t, host+"/app"), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "upload location") {
		t.Fatalf("PushBlob = %v, want a refused location", err)
	}
}

func TestRegistryErrorCode(t *testing.T) {
	host := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"errors":[{"code":"DENIED","message":"not for you"}]}`))
	})
	_, _, err := New(Options{}).Manifest(t.Context(), mustRef(t, host+"/app:v1"))
	var re *Error
	if !errors.As(err, &re) || re.Code != "DENIED" || re.Status != 403 || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Manifest = %#v", err)
	}
}

// TestRealmRedirectDowngrade: an HTTPS realm gets the credentials, but may
// not redirect them to plain HTTP (Go would forward Authorization to the
// same host name on another port).
func TestRealmRedirectDowngrade(t *testing.T) {
	plain := &realmRecorder{}
	plainSrv := httptest.NewServer(plain)
	defer plainSrv.Close()
	var tlsAuthz []string
	var mu sync.Mutex
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tlsAuthz = append(tlsAuthz, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Redirect(w, r, plainSrv.URL+"/token?"+r.URL.RawQuery, http.StatusFound)
	}))
	defer tlsSrv.Close()
	host := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+tlsSrv.URL+`/token",service="evil"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	c := New(Options{HTTP: tlsSrv.Client(), Credentials: StaticCredentials{host: {Username: "admin", Secret: "hunter2"}}})
	_, err := c.Resolve(t.Context(), mustRef(t, host+"/app:v1"))
	if !errors.Is(err, ErrInsecureRealm) {
		t.Fatalf("Resolve = %v, want ErrInsecureRealm", err)
	}
	if len(tlsAuthz) != 1 || tlsAuthz[0] == "" {
		t.Fatalf("HTTPS realm got %q, want the credentials once", tlsAuthz)
	}
	if len(plain.authz) != 0 {
		t.Fatalf("plain-HTTP redirect target got %q", plain.authz)
	}
}
