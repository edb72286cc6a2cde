package trust

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"

	"golang.org/x/crypto/scrypt"
)

// Private keys are stored as PKCS#8 in PEM: "PRIVATE KEY" in the clear, or
// "ENCRYPTED PRIVATE KEY" (RFC 5958 EncryptedPrivateKeyInfo) protected by
// PBES2 (RFC 8018) with the scrypt key derivation function (RFC 7914) and
// AES-256-CBC. That is the format `openssl pkcs8 -topk8 -scrypt` writes, so
// an operator can inspect, re-encrypt or move a bulwark root key with
// OpenSSL, and bulwark reads keys OpenSSL encrypted (scrypt, or PBKDF2 with
// HMAC-SHA-1/-256/-384/-512, AES-128/192/256-CBC). It is built here from the
// standard library and x/crypto/scrypt rather than taken from a module so
// that go.mod gains nothing; the OpenSSL tests check the encoding both ways.
//
// CBC has no integrity tag: a wrong passphrase is detected by the PKCS#7
// padding and then by PKCS#8 parsing (a random plaintext passes both with
// negligible probability), and LoadCA additionally checks that the key
// matches root.crt, so a damaged or substituted key cannot be used silently.

// PEM block types of private keys.
const (
	pemPrivateKey          = "PRIVATE KEY"
	pemEncryptedPrivateKey = "ENCRYPTED PRIVATE KEY"
	pemECPrivateKey        = "EC PRIVATE KEY"
	pemRSAPrivateKey       = "RSA PRIVATE KEY"
)

// Errors from loading private keys. Callers branch on them: the CLI asks
// for a passphrase on ErrPassphraseRequired and says "wrong passphrase" on
// ErrWrongPassphrase instead of a parsing error.
var (
	ErrPassphraseRequired = errors.New("private key is encrypted: a passphrase is required")
	ErrWrongPassphrase    = errors.New("wrong passphrase (or a damaged key file)")
)

// Parameters for keys bulwark encrypts. scrypt with N=2^14, r=8 uses 16 MiB
// (OpenSSL refuses to derive with more than 32 MiB, so N=2^15 would make
// the file unreadable to `openssl pkey`); p=4 quadruples the work per guess
// without more memory. About 0.2 s per decryption, paid once per `pki
// issue` or `pki revoke`.
const (
	scryptN       = 1 << 14
	scryptR       = 8
	scryptP       = 4
	saltLen       = 16
	minPassphrase = 8
)

// Limits for keys from elsewhere: a hostile file must not make LoadCA
// allocate gigabytes or spin for hours.
const (
	maxScryptMem    = 1 << 30 // bytes, 128*N*r*p
	maxPBKDF2Iter   = 10_000_000
	maxKeyFileBytes = 1 << 20
)

var (
	oidPBES2        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt       = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACSHA1     = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	aesCBCKeyLength = map[string]int{oidAES128CBC.String(): 16, oidAES192CBC.String(): 24, oidAES256CBC.String(): 32}
)

// encryptedPrivateKeyInfo is RFC 5958's EncryptedPrivateKeyInfo.
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

// pbes2Params is RFC 8018's PBES2-params.
type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

// scryptParams is RFC 7914's scrypt-params.
type scryptParams struct {
	Salt                     []byte
	CostParameter            int
	BlockSize                int
	ParallelizationParameter int
	KeyLength                int `asn1:"optional"`
}

// pbkdf2Params is RFC 8018's PBKDF2-params with a specified salt (the
// otherSource alternative is reserved and never used).
type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// MarshalPrivateKey encodes key as an unencrypted PKCS#8 "PRIVATE KEY" PEM
// block: what notation (signingkeys.json keyPath), `cosign import-key-pair`
// and OpenSSL read.
func MarshalPrivateKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// EncryptPrivateKey encodes key as an "ENCRYPTED PRIVATE KEY" PEM block:
// PKCS#8 under PBES2 with scrypt and AES-256-CBC (see the top of this
// file). The passphrase must be at least 8 bytes.
func EncryptPrivateKey(key crypto.Signer, passphrase []byte) ([]byte, error) {
	if len(passphrase) < minPassphrase {
		return nil, fmt.Errorf("passphrase too short: %d bytes, need at least %d", len(passphrase), minPassphrase)
	}
	plain, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	salt := make([]byte, saltLen)
	iv := make([]byte, aes.BlockSize)
	rand.Read(salt)
	rand.Read(iv)
	dk, err := scrypt.Key(passphrase, salt, scryptN, scryptR, scryptP, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, err
	}
	padded := pkcs7Pad(plain, aes.BlockSize)
	clear(plain)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	clear(padded)

	kdf, err := asn1.Marshal(scryptParams{Salt: salt, CostParameter: scryptN, BlockSize: scryptR,
		ParallelizationParameter: scryptP, KeyLength: 32})
	if err != nil {
		return nil, err
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, err
	}
	params, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidScrypt, Parameters: asn1.RawValue{FullBytes: kdf}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, err
	}
	der, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: ct,
	})
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedPrivateKey, Bytes: der}), nil
}

// ParsePrivateKey decodes the first private key PEM block in data: PKCS#8
// ("PRIVATE KEY"), encrypted PKCS#8 ("ENCRYPTED PRIVATE KEY", needs the
// passphrase), SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"). Only
// ECDSA and RSA keys are accepted. A passphrase given for an unencrypted key
// is ignored. Errors: ErrPassphraseRequired, ErrWrongPassphrase, or a
// description of what is wrong with the file.
func ParsePrivateKey(data, passphrase []byte) (crypto.Signer, error) {
	var block *pem.Block
	for rest := data; ; {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no private key PEM block found")
		}
		if block.Type == pemPrivateKey || block.Type == pemEncryptedPrivateKey ||
			block.Type == pemECPrivateKey || block.Type == pemRSAPrivateKey {
			break
		}
	}
	if _, ok := block.Headers["DEK-Info"]; ok {
		// Legacy OpenSSL "Proc-Type: 4,ENCRYPTED" encryption (MD5-based
		// key derivation); Go rightly no longer supports it.
		return nil, errors.New("legacy PEM encryption (DEK-Info) is not supported: convert with `openssl pkcs8 -topk8 -scrypt`")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case pemPrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemECPrivateKey:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case pemRSAPrivateKey:
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case pemEncryptedPrivateKey:
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		var plain []byte
		plain, err = decryptPKCS8(block.Bytes, passphrase)
		if err != nil {
			return nil, err
		}
		key, err = x509.ParsePKCS8PrivateKey(plain)
		clear(plain)
		if err != nil {
			// The padding happened to be valid but the plaintext is
			// garbage: the passphrase was wrong.
			return nil, ErrWrongPassphrase
		}
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported private key type %T (want ECDSA or RSA)", key)
	}
}

// IsEncryptedKey reports whether data holds an encrypted PKCS#8 key.
func IsEncryptedKey(data []byte) bool {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return false
		}
		if block.Type == pemEncryptedPrivateKey {
			return true
		}
	}
}

// decryptPKCS8 decrypts an EncryptedPrivateKeyInfo (PBES2 only).
func decryptPKCS8(der, passphrase []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("encrypted private key: malformed EncryptedPrivateKeyInfo")
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encrypted private key: unsupported scheme %v (want PBES2)", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if rest, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil || len(rest) != 0 {
		return nil, errors.New("encrypted private key: malformed PBES2 parameters")
	}
	keyLen, ok := aesCBCKeyLength[params.EncryptionScheme.Algorithm.String()]
	if !ok {
		return nil, fmt.Errorf("encrypted private key: unsupported cipher %v (want AES-CBC)", params.EncryptionScheme.Algorithm)
	}
	var iv []byte
	if rest, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil || len(rest) != 0 || len(iv) != aes.BlockSize {
		return nil, errors.New("encrypted private key: malformed AES-CBC IV")
	}
	ct := info.EncryptedData
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, errors.New("encrypted private key: ciphertext is not a whole number of blocks")
	}
	dk, err := deriveKey(params.KeyDerivationFunc, passphrase, keyLen)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ct)
	out, ok := pkcs7Unpad(plain, aes.BlockSize)
	if !ok {
		clear(plain)
		return nil, ErrWrongPassphrase
	}
	return out, nil
}

// deriveKey runs the PBES2 key derivation function kdf.
func deriveKey(kdf pkix.AlgorithmIdentifier, passphrase []byte, keyLen int) ([]byte, error) {
	switch {
	case kdf.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if rest, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil || len(rest) != 0 {
			return nil, errors.New("encrypted private key: malformed scrypt parameters")
		}
		if p.KeyLength != 0 && p.KeyLength != keyLen {
			return nil, errors.New("encrypted private key: scrypt key length does not match the cipher")
		}
		n, r, par := p.CostParameter, p.BlockSize, p.ParallelizationParameter
		if n <= 1 || n&(n-1) != 0 || r <= 0 || par <= 0 || r > maxScryptMem/128 || par > maxScryptMem/128 ||
			n > maxScryptMem/128/r || n*r*par > maxScryptMem/128 {
			return nil, fmt.Errorf("encrypted private key: scrypt parameters N=%d r=%d p=%d out of range", n, r, par)
		}
		return scrypt.Key(passphrase, p.Salt, n, r, par, keyLen)
	case kdf.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if rest, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil || len(rest) != 0 {
			return nil, errors.New("encrypted private key: malformed PBKDF2 parameters")
		}
		if p.KeyLength != 0 && p.KeyLength != keyLen {
			return nil, errors.New("encrypted private key: PBKDF2 key length does not match the cipher")
		}
		if p.IterationCount <= 0 || p.IterationCount > maxPBKDF2Iter {
			return nil, fmt.Errorf("encrypted private key: PBKDF2 iteration count %d out of range", p.IterationCount)
		}
		var h func() hash.Hash
		switch prf := p.PRF.Algorithm; {
		case len(prf) == 0 || prf.Equal(oidHMACSHA1): // the DEFAULT
			h = sha1.New
		case prf.Equal(oidHMACSHA256):
			h = sha256.New
		case prf.Equal(oidHMACSHA384):
			h = sha512.New384
		case prf.Equal(oidHMACSHA512):
			h = sha512.New
		default:
			return nil, fmt.Errorf("encrypted private key: unsupported PBKDF2 PRF %v", prf)
		}
		return pbkdf2.Key(h, string(passphrase), p.Salt, p.IterationCount, keyLen)
	default:
		return nil, fmt.Errorf("encrypted private key: unsupported key derivation %v (want scrypt or PBKDF2)", kdf.Algorithm)
	}
}

func pkcs7Pad(b []byte, size int) []byte {
	n := size - len(b)%size
	out := make([]byte, len(b)+n)
	copy(out, b)
	for i := len(b); i < len(out); i++ {
		out[i] = byte(n)
	}
	return out
}

func pkcs7Unpad(b []byte, size int) ([]byte, bool) {
	if len(b) == 0 || len(b)%size != 0 {
		return nil, false
	}
	n := int(b[len(b)-1])
	if n == 0 || n > size {
		return nil, false
	}
	if !bytes.Equal(b[len(b)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, false
	}
	return b[:len(b)-n], true
}

// publicKeysEqual reports whether a private key belongs to a certificate's
// public key.
func publicKeysEqual(a crypto.PublicKey, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// readSmallFile reads a small file (a key, a certificate, a CRL) and
// refuses anything larger than limit, so a wrong path (a disk image, a
// FIFO) fails fast instead of filling memory.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a key, certificate or CRL file may have", path, fi.Size(), limit)
	}
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()))
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, fsyncs it and renames it into place, so a crash leaves either
// the old file or the new one, never half of a key. perm is applied at
// creation (a private key is never readable by others, not even briefly).
// With exclusive, an existing path is an error wrapping os.ErrExist.
func writeFileAtomic(path string, data []byte, perm os.FileMode, exclusive bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // after a successful rename this is a no-op
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if exclusive {
		// link(2) fails if path exists: no window in which a concurrent
		// writer's file could be replaced.
		if err := os.Link(name, path); err != nil {
			return err
		}
	} else if err := os.Rename(name, path); err != nil {
		return err
	}
	return syncCADir(dir)
}

func syncCADir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
