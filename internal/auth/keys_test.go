package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// authClock is a settable clock for tests.
type authClock struct {
	mu sync.Mutex
	t  time.Time
}

func newAuthClock() *authClock { return &authClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *authClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *authClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openKeys(t testing.TB, dir string, clock *authClock) *KeySet {
	t.Helper()
	ks, err := OpenKeySet(dir, KeySetOptions{Now: clock.Now, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// keyFiles lists the directory's key files by prefix.
func keyFiles(t *testing.T, dir string) (priv, pub []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), keyPrefix):
			priv = append(priv, e.Name())
		case strings.HasPrefix(e.Name(), pubPrefix):
			pub = append(pub, e.Name())
		}
	}
	return priv, pub
}

func TestKeySetCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth", "keys")
	ks := openKeys(t, dir, newAuthClock())
	kid := ks.CurrentKID()
	if len(kid) != 43 {
		t.Fatalf("kid %q is not a base64url SHA-256", kid)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("key directory mode %v, %v; want 0700", st.Mode().Perm(), err)
	}
	priv, pub := keyFiles(t, dir)
	if len(priv) != 1 || len(pub) != 0 {
		t.Fatalf("files %v %v; want one private key", priv, pub)
	}
	fst, err := os.Stat(filepath.Join(dir, priv[0]))
	if err != nil || fst.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, %v; want 0600", fst.Mode().Perm(), err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, priv[0]))
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatal("private key is not a PKCS#8 PEM block")
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Fatal(err)
	}

	// Opening again finds the same key instead of making another.
	again := openKeys(t, dir, newAuthClock())
	if again.CurrentKID() != kid {
		t.Fatalf("reopened kid %s, want %s", again.CurrentKID(), kid)
	}
	if priv2, _ := keyFiles(t, dir); len(priv2) != 1 {
		t.Fatalf("reopening made keys: %v", priv2)
	}
}

func TestKeySetRotate(t *testing.T) {
	dir := t.TempDir()
	clock := newAuthClock()
	ks := openKeys(t, dir, clock)
	old := ks.CurrentKID()
	oldPub, _ := ks.PublicKey(old)

	clock.Add(time.Hour)
	kid, err := ks.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if kid == old || ks.CurrentKID() != kid {
		t.Fatalf("rotate returned %s, current %s, old %s", kid, ks.CurrentKID(), old)
	}
	// The old key is still there for verification, as a public key only.
	if pub, ok := ks.PublicKey(old); !ok || !pub.Equal(oldPub) {
		t.Fatal("old public key lost after rotation")
	}
	priv, pub := keyFiles(t, dir)
	if len(priv) != 1 || !strings.Contains(priv[0], kid) {
		t.Fatalf("private keys after rotation: %v", priv)
	}
	if len(pub) != 1 || !strings.Contains(pub[0], old) {
		t.Fatalf("public keys after rotation: %v", pub)
	}
	infos := ks.Keys()
	if len(infos) != 2 || infos[0].KID != old || infos[0].Current || !infos[0].Retired.Equal(infos[1].Created) ||
		infos[1].KID != kid || !infos[1].Current || !infos[1].Retired.IsZero() {
		t.Fatalf("Keys() = %+v", infos)
	}
}

func TestKeySetPrune(t *testing.T) {
	dir := t.TempDir()
	clock := newAuthClock()
	ks := openKeys(t, dir, clock)
	k1 := ks.CurrentKID()
	clock.Add(time.Minute)
	k2, err := ks.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	k3, err := ks.Rotate()
	if err != nil {
		t.Fatal(err)
	}

	// k1 retired at k2's creation, k2 at k3's. Just inside the retention
	// everything stays; just past it for k1 only, k1 goes.
	clock.Add(DefaultKeyRetention - time.Minute)
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := ks.PublicKey(k1); !ok {
		t.Fatal("k1 pruned before its retention ended")
	}
	clock.Add(time.Second)
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := ks.PublicKey(k1); ok {
		t.Fatal("k1 kept after its retention ended")
	}
	if _, ok := ks.PublicKey(k2); !ok {
		t.Fatal("k2 pruned too early")
	}
	if _, pub := keyFiles(t, dir); len(pub) != 1 {
		t.Fatalf("public key files after prune: %v", pub)
	}

	// The current key is never pruned, however old.
	clock.Add(365 * 24 * time.Hour)
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	if ks.CurrentKID() != k3 || len(ks.Keys()) != 1 {
		t.Fatalf("after a year: current %s, keys %+v", ks.CurrentKID(), ks.Keys())
	}
}

// TestKeySetTwoProcesses: the admin CLI and the server each hold a KeySet
// on the same directory. A rotation by one is picked up by the other on a
// verification miss and for signing, without a restart.
func TestKeySetTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	clock := newAuthClock()
	server := openKeys(t, dir, clock)
	cli := openKeys(t, dir, clock)
	if server.CurrentKID() != cli.CurrentKID() {
		t.Fatal("two key sets on one directory disagree")
	}
	clock.Add(time.Minute)
	kid, err := cli.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	// The server has not looked yet; an unknown kid makes it look.
	if _, ok := server.PublicKey(kid); !ok {
		t.Fatal("server did not find the key the CLI made")
	}
	if server.CurrentKID() != kid {
		t.Fatalf("server signs with %s after reload, want %s", server.CurrentKID(), kid)
	}
}

// TestKeySetSignerPicksUpRotation: a server that only signs (never sees an
// unknown kid) still switches to a key rotated by another process.
func TestKeySetSignerPicksUpRotation(t *testing.T) {
	dir := t.TempDir()
	clock := newAuthClock()
	server := openKeys(t, dir, clock)
	old := server.CurrentKID()
	cli := openKeys(t, dir, clock)
	clock.Add(time.Minute)
	kid, err := cli.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := server.signer()
		if got == kid {
			break
		}
		if got != old || time.Now().After(deadline) {
			t.Fatalf("server signs with %s; want %s after the CLI's rotation", got, kid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKeySetConcurrentRotations: processes rotating at once must not lose
// a key anyone signed with, and end with exactly one private key.
func TestKeySetConcurrentRotations(t *testing.T) {
	dir := t.TempDir()
	clock := newAuthClock()
	openKeys(t, dir, clock)
	const n = 8
	kids := make([]string, n)
	sets := make([]*KeySet, n)
	for i := range sets {
		sets[i] = openKeys(t, dir, clock)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			kid, err := sets[i].Rotate()
			if err != nil {
				t.Error(err)
			}
			kids[i] = kid
		})
	}
	wg.Wait()
	final := openKeys(t, dir, clock)
	for _, kid := range kids {
		if _, ok := final.PublicKey(kid); !ok {
			t.Errorf("key %s made by a concurrent rotation was lost", kid)
		}
	}
	if priv, _ := keyFiles(t, dir); len(priv) != 1 {
		t.Fatalf("private keys after concurrent rotations: %v", priv)
	}
}

func TestKeySetIgnoresForeignAndForgedFiles(t *testing.T) {
	dir := t.TempDir()
	clock := newAuthClock()
	ks := openKeys(t, dir, clock)
	kid := ks.CurrentKID()

	// A key file whose name claims a kid that is not its thumbprint is
	// ignored, not trusted under that name.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	forged := pubPrefix + clock.Now().Add(-time.Hour).UTC().Format(createdLayout) + "-" + strings.Repeat("A", 43) + keySuffix
	if err := os.WriteFile(filepath.Join(dir, forged), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"README":          "not a key",
		"key-garbage.pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		pubPrefix + clock.Now().UTC().Format(createdLayout) + "-x" + keySuffix: "junk",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	if ks.CurrentKID() != kid {
		t.Fatalf("current key changed to %s", ks.CurrentKID())
	}
	if _, ok := ks.PublicKey(strings.Repeat("A", 43)); ok {
		t.Fatal("forged kid accepted")
	}
	if len(ks.Keys()) != 1 {
		t.Fatalf("keys: %+v", ks.Keys())
	}
	if _, err := os.Stat(filepath.Join(dir, "README")); err != nil {
		t.Fatal("a foreign file was removed")
	}
}

func TestKeySetRecreatesDeletedKey(t *testing.T) {
	dir := t.TempDir()
	clock := newAuthClock()
	ks := openKeys(t, dir, clock)
	old := ks.CurrentKID()
	clock.Add(time.Minute)
	if _, err := ks.Rotate(); err != nil {
		t.Fatal(err)
	}
	priv, _ := keyFiles(t, dir)
	if err := os.Remove(filepath.Join(dir, priv[0])); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	fresh := openKeys(t, dir, clock)
	if cur := fresh.CurrentKID(); cur == "" || cur == old {
		t.Fatalf("current after deleting the private key: %q", cur)
	}
	if _, ok := fresh.PublicKey(old); !ok {
		t.Fatal("older public key lost")
	}
}

// TestThumbprint checks the kid against RFC 7638 computed independently:
// encoding/json of the JWK's required members, which it sorts by name.
func TestThumbprint(t *testing.T) {
	for range 5 {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		point, _ := key.PublicKey.Bytes()
		jwk, _ := json.Marshal(map[string]string{
			"kty": "EC", "crv": "P-256",
			"x": base64.RawURLEncoding.EncodeToString(point[1:33]),
			"y": base64.RawURLEncoding.EncodeToString(point[33:]),
		})
		sum := sha256.Sum256(jwk)
		want := base64.RawURLEncoding.EncodeToString(sum[:])
		got, err := Thumbprint(&key.PublicKey)
		if err != nil || got != want {
			t.Fatalf("Thumbprint = %q, %v; want %q", got, err, want)
		}
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := Thumbprint(&p384.PublicKey); err == nil {
		t.Fatal("P-384 key accepted")
	}
	if _, err := Thumbprint(nil); err == nil {
		t.Fatal("nil key accepted")
	}
}

func TestParseKeyName(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	name := keyPrefix + ts.Format(createdLayout) + "-ab-c_d" + keySuffix
	f, ok := parseKeyName(name)
	if !ok || !f.private || f.kid != "ab-c_d" || !f.created.Equal(ts) {
		t.Fatalf("parseKeyName(%q) = %+v, %v", name, f, ok)
	}
	for _, bad := range []string{"key-.pem", "key-2026-x.pem", "pub-" + ts.Format(createdLayout) + ".pem", "other", name + ".bak"} {
		if _, ok := parseKeyName(bad); ok {
			t.Errorf("parseKeyName(%q) accepted", bad)
		}
	}
	if !slices.IsSorted([]string{
		ts.Format(createdLayout), ts.Add(time.Nanosecond).Format(createdLayout), ts.Add(time.Hour).Format(createdLayout),
	}) {
		t.Fatal("created timestamps do not sort as strings")
	}
}
