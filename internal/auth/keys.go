package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultKeyRetention is how long a signing key stays available for
// verification after a newer key replaced it. It must exceed the longest
// token TTL (DefaultTokenTTL is minutes), so no valid token ever loses its
// key; a day also covers a server that picks up a rotation late.
const DefaultKeyRetention = 24 * time.Hour

// Key file layout in the key directory (the server uses DATA/auth/keys):
//
//	key-<created>-<kid>.pem   the private key, PKCS#8 PEM, mode 0600
//	pub-<created>-<kid>.pem   a retired key's public half, PKIX PEM
//	.tmp-*                    a write in progress (renamed when complete)
//
// <created> is a fixed-width UTC timestamp, so names sort by age. There is
// no "current" pointer to update: the newest key is the signing key. A
// rotation is therefore one atomic file creation, and two processes
// rotating at once cannot lose a key — the older of the two new keys simply
// becomes a retired one. A key is retired when the next newer key was
// created, and pruned Retention after that.
const (
	keyPrefix     = "key-"
	pubPrefix     = "pub-"
	tmpPrefix     = ".tmp-"
	keySuffix     = ".pem"
	createdLayout = "20060102T150405.000000000Z"
	maxKeyFile    = 64 << 10
	// reloadEvery rate-limits the re-reads a verification miss (unknown kid)
	// or a signing call may trigger, so random kids cannot make every
	// request hit the disk.
	reloadEvery = time.Second
	staleTmp    = time.Hour
)

// ErrKeys reports an unusable key directory or key file.
var ErrKeys = errors.New("signing keys")

// KeySetOptions configure OpenKeySet.
type KeySetOptions struct {
	// Retention is how long a retired key is kept for verification
	// (DefaultKeyRetention when zero).
	Retention time.Duration
	// Now is the clock for key ages (time.Now when nil).
	Now func() time.Time
	// Logger receives warnings about odd files (slog.Default when nil).
	Logger *slog.Logger
}

// KeyInfo describes one key of a KeySet.
type KeyInfo struct {
	KID     string    // RFC 7638 JWK thumbprint
	Created time.Time // when the key was made
	Retired time.Time // when a newer key replaced it; zero for the current key
	Current bool      // this key signs new tokens
}

// KeySet holds the ES256 signing key and the public keys of recently
// retired ones, backed by a directory that several processes (the server
// and `bulwark admin`) may use at once: every write is a complete file
// renamed into place, so readers need no lock.
type KeySet struct {
	dir  string
	opts KeySetOptions

	reloadMu  sync.Mutex
	mu        sync.RWMutex
	current   *ecdsa.PrivateKey
	currentID string
	public    map[string]*ecdsa.PublicKey
	infos     []KeyInfo
	dirMtime  time.Time

	checkMu   sync.Mutex
	lastCheck time.Time // wall clock of the last rate-limited reload check
}

// OpenKeySet loads the key set in dir, creating the directory (0700) and a
// first key when there is none, and pruning keys retired longer than the
// retention ago.
func OpenKeySet(dir string, opts KeySetOptions) (*KeySet, error) {
	if opts.Retention <= 0 {
		opts.Retention = DefaultKeyRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: create key directory: %w", ErrKeys, err)
	}
	k := &KeySet{dir: dir, opts: opts}
	if err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Dir returns the key directory.
func (k *KeySet) Dir() string { return k.dir }

// Retention returns how long retired keys are kept.
func (k *KeySet) Retention() time.Duration { return k.opts.Retention }

// CurrentKID returns the kid of the signing key.
func (k *KeySet) CurrentKID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.currentID
}

// Keys lists the keys, oldest first.
func (k *KeySet) Keys() []KeyInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return slices.Clone(k.infos)
}

// PublicKey returns the verification key for kid. An unknown kid triggers
// a re-read of the directory (at most once per second), so a key that
// another process created is found without a restart.
func (k *KeySet) PublicKey(kid string) (*ecdsa.PublicKey, bool) {
	k.mu.RLock()
	pub, ok := k.public[kid]
	k.mu.RUnlock()
	if ok || !k.mayCheck() {
		return pub, ok
	}
	if err := k.Reload(); err != nil {
		k.opts.Logger.Warn("reload signing keys", "err", err)
		return nil, false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	pub, ok = k.public[kid]
	return pub, ok
}

// signer returns the signing key. At most once per second it checks
// whether the directory changed (a rotation by another process) and
// reloads if so.
func (k *KeySet) signer() (string, *ecdsa.PrivateKey) {
	if k.mayCheck() {
		k.mu.RLock()
		seen := k.dirMtime
		k.mu.RUnlock()
		if st, err := os.Stat(k.dir); err == nil && !st.ModTime().Equal(seen) {
			if err := k.Reload(); err != nil {
				// Keep signing with the key we have: it is still valid.
				k.opts.Logger.Warn("reload signing keys", "err", err)
			}
		}
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.currentID, k.current
}

// mayCheck rate-limits directory checks, on the real clock (the option
// clock may be a test's frozen one).
func (k *KeySet) mayCheck() bool {
	k.checkMu.Lock()
	defer k.checkMu.Unlock()
	now := time.Now()
	if !k.lastCheck.IsZero() && now.Sub(k.lastCheck) < reloadEvery {
		return false
	}
	k.lastCheck = now
	return true
}

// Rotate makes a new signing key and returns its kid. The previous key
// stays available for verification for the retention period. Tokens
// signed before the rotation stay valid until they expire.
func (k *KeySet) Rotate() (string, error) {
	k.mu.RLock()
	var newest time.Time
	if n := len(k.infos); n > 0 {
		newest = k.infos[n-1].Created
	}
	k.mu.RUnlock()
	kid, err := createKey(k.dir, k.opts.Now(), newest)
	if err != nil {
		return "", err
	}
	if err := k.Reload(); err != nil {
		return "", err
	}
	return kid, nil
}

// keyFile is one parsed key file.
type keyFile struct {
	name    string
	created time.Time
	kid     string
	private bool
	priv    *ecdsa.PrivateKey
	pub     *ecdsa.PublicKey
}

// Reload re-reads the key directory: it picks up keys other processes
// created, creates a key if there is no private one, retires (converts to
// public-only) every private key but the newest, and prunes expired ones.
func (k *KeySet) Reload() error {
	// One reload at a time in this process, so an older view of the
	// directory never replaces a newer one.
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	now := k.opts.Now()
	var files []keyFile
	var st os.FileInfo
	var err error
	for attempt := 0; ; attempt++ {
		// The directory's mtime is taken before it is read: a change made
		// after this point then shows as a different mtime to signer().
		if st, err = os.Stat(k.dir); err != nil {
			return fmt.Errorf("%w: %w", ErrKeys, err)
		}
		files, err = k.readDir(now)
		switch {
		case errors.Is(err, fs.ErrNotExist) && attempt < 5:
			// A concurrent rotation converted or pruned a file between
			// listing and reading it: list again.
			continue
		case err != nil:
			return err
		case len(files) > 0 && files[len(files)-1].private:
		case attempt < 5:
			// No usable private key (a fresh directory, or the current key
			// was deleted): make one, then read the directory again.
			var newest time.Time
			if len(files) > 0 {
				newest = files[len(files)-1].created
			}
			if _, err := createKey(k.dir, now, newest); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("%w: %s has no usable private key", ErrKeys, k.dir)
		}
		break
	}
	cur := files[len(files)-1]
	public := make(map[string]*ecdsa.PublicKey, len(files))
	infos := make([]KeyInfo, 0, len(files))
	for i, f := range files {
		info := KeyInfo{KID: f.kid, Created: f.created, Current: i == len(files)-1}
		if !info.Current {
			info.Retired = files[i+1].created
			if now.Sub(info.Retired) > k.opts.Retention {
				k.remove(f.name)
				continue
			}
			if f.private {
				k.retire(f)
			}
		}
		public[f.kid] = f.pub
		infos = append(infos, info)
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	k.current, k.currentID = cur.priv, cur.kid
	k.public, k.infos = public, infos
	k.dirMtime = st.ModTime()
	return nil
}

// readDir lists and parses the key files, oldest first, one per kid.
func (k *KeySet) readDir(now time.Time) ([]keyFile, error) {
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return nil, fmt.Errorf("%w: read key directory: %w", ErrKeys, err)
	}
	byKID := map[string]keyFile{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			k.removeStaleTmp(name, now)
			continue
		}
		f, ok := parseKeyName(name)
		if !ok {
			continue // not ours; leave it alone
		}
		if err := k.readKey(&f); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			k.opts.Logger.Warn("ignoring unusable key file", "file", filepath.Join(k.dir, name), "err", err)
			continue
		}
		// A crash between writing a retired key's public file and removing
		// its private file leaves both: keep the private one, retire() will
		// finish the job if it is not the newest.
		if prev, dup := byKID[f.kid]; !dup || f.private && !prev.private {
			byKID[f.kid] = f
		}
	}
	files := make([]keyFile, 0, len(byKID))
	for _, f := range byKID {
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b keyFile) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.kid, b.kid)
	})
	return files, nil
}

// parseKeyName parses "key-<created>-<kid>.pem" or "pub-<created>-<kid>.pem".
func parseKeyName(name string) (keyFile, bool) {
	f := keyFile{name: name}
	switch {
	case strings.HasPrefix(name, keyPrefix):
		f.private = true
		name = name[len(keyPrefix):]
	case strings.HasPrefix(name, pubPrefix):
		name = name[len(pubPrefix):]
	default:
		return f, false
	}
	name, ok := strings.CutSuffix(name, keySuffix)
	if !ok || len(name) < len(createdLayout)+2 || name[len(createdLayout)] != '-' {
		return f, false
	}
	created, err := time.Parse(createdLayout, name[:len(createdLayout)])
	if err != nil {
		return f, false
	}
	f.created, f.kid = created, name[len(createdLayout)+1:]
	return f, true
}

// readKey reads and checks one key file; the kid in its name must be the
// key's thumbprint, so a renamed or swapped file cannot pose as another key.
func (k *KeySet) readKey(f *keyFile) error {
	path := filepath.Join(k.dir, f.name)
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return err
	}
	if f.private && st.Mode().Perm()&0o077 != 0 {
		k.opts.Logger.Warn("private signing key is readable by others; chmod 600", "file", path, "mode", st.Mode().Perm().String())
	}
	data, err := io.ReadAll(io.LimitReader(file, maxKeyFile+1))
	if err != nil {
		return err
	}
	if len(data) > maxKeyFile {
		return errors.New("file too large")
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return errors.New("no PEM block")
	}
	if f.private {
		if block.Type != "PRIVATE KEY" {
			return fmt.Errorf("PEM type %q, want PRIVATE KEY", block.Type)
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return err
		}
		priv, ok := key.(*ecdsa.PrivateKey)
		if !ok || priv.Curve != elliptic.P256() {
			return errors.New("not an ECDSA P-256 key")
		}
		f.priv, f.pub = priv, &priv.PublicKey
	} else {
		if block.Type != "PUBLIC KEY" {
			return fmt.Errorf("PEM type %q, want PUBLIC KEY", block.Type)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return err
		}
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return errors.New("not an ECDSA P-256 key")
		}
		f.pub = pub
	}
	kid, err := Thumbprint(f.pub)
	if err != nil {
		return err
	}
	if kid != f.kid {
		return fmt.Errorf("file name says kid %s, key is %s", f.kid, kid)
	}
	return nil
}

// retire replaces a private key that is no longer the newest by its public
// half: verification needs nothing more, and a retired private key left
// on disk could only ever be stolen. Failures are logged, not fatal: the
// key set works either way.
func (k *KeySet) retire(f keyFile) {
	der, err := x509.MarshalPKIXPublicKey(f.pub)
	if err == nil {
		name := pubPrefix + f.created.UTC().Format(createdLayout) + "-" + f.kid + keySuffix
		data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		err = writeFileAtomic(k.dir, name, data, 0o644)
	}
	if err == nil {
		err = os.Remove(filepath.Join(k.dir, f.name))
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		k.opts.Logger.Warn("retire signing key", "kid", f.kid, "err", err)
	}
}

func (k *KeySet) remove(name string) {
	if err := os.Remove(filepath.Join(k.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		k.opts.Logger.Warn("prune signing key", "file", name, "err", err)
	}
}

// removeStaleTmp deletes what a crashed writer left; a fresh temporary file
// may be another process's write in progress.
func (k *KeySet) removeStaleTmp(name string, now time.Time) {
	st, err := os.Stat(filepath.Join(k.dir, name))
	if err == nil && now.Sub(st.ModTime()) > staleTmp {
		k.remove(name)
	}
}

// createKey generates a P-256 key and writes it as the newest key. Its
// creation time is kept after newest even if the clock stepped back, so
// it really becomes the signing key.
func createKey(dir string, now, newest time.Time) (string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("%w: generate: %w", ErrKeys, err)
	}
	kid, err := Thumbprint(&priv.PublicKey)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("%w: encode: %w", ErrKeys, err)
	}
	created := now.UTC()
	if !created.After(newest) {
		created = newest.Add(time.Microsecond)
	}
	name := keyPrefix + created.Format(createdLayout) + "-" + kid + keySuffix
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFileAtomic(dir, name, data, 0o600); err != nil {
		return "", err
	}
	return kid, nil
}

// writeFileAtomic writes data to dir/name so that readers see either no
// file or the complete one, durably: temporary file, fsync, rename, fsync
// of the directory.
func writeFileAtomic(dir, name string, data []byte, mode os.FileMode) (err error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeys, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrKeys, name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Thumbprint returns the RFC 7638 JWK thumbprint of a P-256 public key,
// base64url without padding: the kid of tokens it verifies. A standard
// thumbprint lets anyone recompute the kid from the public key alone.
func Thumbprint(pub *ecdsa.PublicKey) (string, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return "", fmt.Errorf("%w: not a P-256 key", ErrKeys)
	}
	point, err := pub.Bytes() // 0x04 || X || Y, each 32 bytes
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrKeys, err)
	}
	enc := base64.RawURLEncoding
	// The members in lexical order, no whitespace, as RFC 7638 §3 requires.
	jwk := `{"crv":"P-256","kty":"EC","x":"` + enc.EncodeToString(point[1:33]) +
		`","y":"` + enc.EncodeToString(point[33:65]) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return enc.EncodeToString(sum[:]), nil
}
