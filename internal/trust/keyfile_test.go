package trust

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testKeys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	r2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.Signer{"p256": p256, "p384": p384, "rsa2048": r2048}
}

func TestEncryptPrivateKeyRoundTrip(t *testing.T) {
	pass := []byte("a passphrase ☃ with unicode")
	for name, key := range testKeys(t) {
		t.Run(name, func(t *testing.T) {
			enc, err := EncryptPrivateKey(key, pass)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParsePrivateKey(enc, pass)
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if !publicKeysEqual(got.Public(), key.Public()) {
				t.Fatal("decrypted another key")
			}
			// Fresh salt and IV each time.
			enc2, _ := EncryptPrivateKey(key, pass)
			if bytes.Equal(enc, enc2) {
				t.Fatal("two encryptions are identical")
			}
			plain, err := MarshalPrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			got, err = ParsePrivateKey(plain, nil)
			if err != nil || !publicKeysEqual(got.Public(), key.Public()) {
				t.Fatalf("unencrypted round trip: %v", err)
			}
		})
	}
	if _, err := EncryptPrivateKey(testKeys(t)["p256"], []byte("1234567")); err == nil {
		t.Error("accepted a 7-byte passphrase")
	}
}

// encryptedPEM builds an EncryptedPrivateKeyInfo with arbitrary
// parameters, for the hostile-file cases.
func encryptedPEM(t *testing.T, kdf, enc pkix.AlgorithmIdentifier, ct []byte) []byte {
	t.Helper()
	params, err := asn1.Marshal(pbes2Params{KeyDerivationFunc: kdf, EncryptionScheme: enc})
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: ct,
	})
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
}

func algID(t *testing.T, oid asn1.ObjectIdentifier, params any) pkix.AlgorithmIdentifier {
	t.Helper()
	b, err := asn1.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.RawValue{FullBytes: b}}
}

// pbkdf2Encrypt encrypts key the way `openssl pkcs8 -topk8 -v2 aes-256-cbc`
// does (PBKDF2-HMAC-SHA256), written out here independently of the code
// under test.
func pbkdf2Encrypt(t *testing.T, key crypto.Signer, pass []byte, iter int, prf asn1.ObjectIdentifier) []byte {
	t.Helper()
	plain, _ := x509.MarshalPKCS8PrivateKey(key)
	salt, iv := make([]byte, 8), make([]byte, 16)
	rand.Read(salt)
	rand.Read(iv)
	dk, err := pbkdf2.Key(sha256.New, string(pass), salt, iter, 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(dk)
	n := 16 - len(plain)%16
	plain = append(plain, bytes.Repeat([]byte{byte(n)}, n)...)
	ct := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, plain)
	return encryptedPEM(t,
		algID(t, oidPBKDF2, pbkdf2Params{Salt: salt, IterationCount: iter, PRF: pkix.AlgorithmIdentifier{Algorithm: prf, Parameters: asn1.NullRawValue}}),
		algID(t, oidAES256CBC, iv), ct)
}

func TestParsePBKDF2Key(t *testing.T) {
	key := testKeys(t)["p256"]
	pass := []byte("pbkdf2-passphrase")
	got, err := ParsePrivateKey(pbkdf2Encrypt(t, key, pass, 2048, oidHMACSHA256), pass)
	if err != nil || !publicKeysEqual(got.Public(), key.Public()) {
		t.Fatalf("PBKDF2-SHA256 key: %v", err)
	}
	if _, err := ParsePrivateKey(pbkdf2Encrypt(t, key, pass, 2048, oidHMACSHA256), []byte("other-passphrase")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

func TestParsePrivateKeyRefuses(t *testing.T) {
	key := testKeys(t)["p256"]
	pass := []byte("the right passphrase")
	good, err := EncryptPrivateKey(key, pass)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(good)
	tampered := bytes.Clone(block.Bytes)
	tampered[len(tampered)-1] ^= 1 // last ciphertext byte: breaks the padding
	tamperedPEM := pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: tampered})
	ed := func() []byte {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}()
	iv := make([]byte, 16)
	scryptOK := func(n, r, p int) pkix.AlgorithmIdentifier {
		return algID(t, oidScrypt, scryptParams{Salt: []byte("saltsalt"), CostParameter: n, BlockSize: r, ParallelizationParameter: p})
	}
	aes256 := algID(t, oidAES256CBC, iv)
	ct := make([]byte, 64)

	tests := []struct {
		name string
		data []byte
		pass []byte
		is   error  // or nil, then want must match
		want string // part of the message
	}{
		{"wrong passphrase", good, []byte("the wrong passphrase"), ErrWrongPassphrase, "wrong passphrase"},
		{"no passphrase", good, nil, ErrPassphraseRequired, "passphrase is required"},
		{"tampered ciphertext", tamperedPEM, pass, ErrWrongPassphrase, ""},
		{"not PEM", []byte("hello"), nil, nil, "no private key PEM block"},
		{"certificate only", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), nil, nil, "no private key"},
		{"garbage PKCS#8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), nil, nil, "parse PRIVATE KEY"},
		{"legacy DEK-Info", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1}}), pass, nil, "legacy PEM encryption"},
		{"ed25519", ed, nil, nil, "unsupported private key type"},
		{"not PBES2", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: mustMarshal(t, encryptedPrivateKeyInfo{
			Algorithm: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}}, EncryptedData: ct})}), pass, nil, "want PBES2"},
		{"trailing garbage", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: append(bytes.Clone(block.Bytes), 0)}), pass, nil, "malformed"},
		{"scrypt N not a power of two", encryptedPEM(t, scryptOK(1000, 8, 1), aes256, ct), pass, nil, "out of range"},
		{"scrypt N huge", encryptedPEM(t, scryptOK(1<<30, 8, 1), aes256, ct), pass, nil, "out of range"},
		{"scrypt r*p huge", encryptedPEM(t, scryptOK(1<<10, 1<<20, 1<<20), aes256, ct), pass, nil, "out of range"},
		{"scrypt negative", encryptedPEM(t, scryptOK(-2, 8, 1), aes256, ct), pass, nil, "out of range"},
		{"scrypt key length mismatch", encryptedPEM(t, algID(t, oidScrypt, scryptParams{Salt: []byte("s"), CostParameter: 1024, BlockSize: 8, ParallelizationParameter: 1, KeyLength: 16}), aes256, ct), pass, nil, "key length"},
		{"PBKDF2 iterations huge", encryptedPEM(t, algID(t, oidPBKDF2, pbkdf2Params{Salt: []byte("s"), IterationCount: 1 << 40}), aes256, ct), pass, nil, "out of range"},
		{"PBKDF2 unknown PRF", encryptedPEM(t, algID(t, oidPBKDF2, pbkdf2Params{Salt: []byte("s"), IterationCount: 1, PRF: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 3}}}), aes256, ct), pass, nil, "PRF"},
		{"unknown KDF", encryptedPEM(t, algID(t, asn1.ObjectIdentifier{1, 2, 3}, 1), aes256, ct), pass, nil, "key derivation"},
		{"DES cipher", encryptedPEM(t, scryptOK(1024, 8, 1), algID(t, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}, iv[:8]), ct), pass, nil, "want AES-CBC"},
		{"short IV", encryptedPEM(t, scryptOK(1024, 8, 1), algID(t, oidAES256CBC, iv[:8]), ct), pass, nil, "IV"},
		{"partial block", encryptedPEM(t, scryptOK(1024, 8, 1), aes256, ct[:20]), pass, nil, "whole number of blocks"},
		{"empty ciphertext", encryptedPEM(t, scryptOK(1024, 8, 1), aes256, nil), pass, nil, "whole number of blocks"},
		{"random ciphertext", encryptedPEM(t, scryptOK(1024, 8, 1), aes256, ct), pass, ErrWrongPassphrase, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			k, err := ParsePrivateKey(tt.data, tt.pass)
			if k != nil || err == nil {
				t.Fatalf("ParsePrivateKey accepted it: %T", k)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v to refuse", d)
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPKCS7Unpad(t *testing.T) {
	tests := []struct {
		in []byte
		ok bool
	}{
		{append(bytes.Repeat([]byte{7}, 15), 1), true},
		{bytes.Repeat([]byte{16}, 16), true},
		{append(bytes.Repeat([]byte{0}, 14), 2, 2), true},
		{append(bytes.Repeat([]byte{0}, 15), 0), false},
		{append(bytes.Repeat([]byte{0}, 15), 17), false},
		{append(bytes.Repeat([]byte{0}, 14), 1, 2), false},
		{nil, false},
		{[]byte{1}, false},
	}
	for _, tt := range tests {
		if _, ok := pkcs7Unpad(tt.in, 16); ok != tt.ok {
			t.Errorf("pkcs7Unpad(%v) ok=%v, want %v", tt.in, ok, tt.ok)
		}
	}
}

// OpenSSL reads the keys bulwark encrypts, and bulwark reads the ones
// OpenSSL encrypts: the format is standard PKCS#8, not something of ours.
func TestOpenSSLKeyInterop(t *testing.T) {
	bin := requireOpenSSL(t)
	dir := t.TempDir()
	pass := "interop passphrase"
	passFile := filepath.Join(dir, "pass")
	os.WriteFile(passFile, []byte(pass+"\n"), 0o600)
	key := testKeys(t)["p256"]
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	wantPub := strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))

	t.Run("openssl decrypts ours", func(t *testing.T) {
		enc, err := EncryptPrivateKey(key, []byte(pass))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "ours.key")
		os.WriteFile(p, enc, 0o600)
		out, err := runOpenSSL(t, bin, "pkey", "-in", p, "-passin", "file:"+passFile, "-pubout")
		if err != nil || strings.TrimSpace(out) != wantPub {
			t.Fatalf("openssl pkey: %v\n%s", err, out)
		}
		out, err = runOpenSSL(t, bin, "asn1parse", "-in", p)
		if err != nil || !strings.Contains(out, ":PBES2") || !strings.Contains(out, ":scrypt") || !strings.Contains(out, ":aes-256-cbc") {
			t.Fatalf("openssl asn1parse: %v\n%s", err, out)
		}
		if out, err := runOpenSSL(t, bin, "pkey", "-in", p, "-passin", "pass:wrong passphrase", "-noout"); err == nil {
			t.Fatalf("openssl accepted a wrong passphrase\n%s", out)
		}
	})

	plain, _ := MarshalPrivateKey(key)
	plainPath := filepath.Join(dir, "plain.key")
	os.WriteFile(plainPath, plain, 0o600)
	for name, args := range map[string][]string{
		"scrypt":               {"-scrypt"},
		"pbkdf2 sha256 aes256": {"-v2", "aes-256-cbc"},
		"pbkdf2 sha1 aes128":   {"-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"},
		"pbkdf2 sha512 aes192": {"-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA512"},
	} {
		t.Run("ours decrypts openssl "+name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".key")
			cmd := append([]string{"pkcs8", "-topk8", "-in", plainPath, "-out", p, "-passout", "file:" + passFile}, args...)
			if out, err := runOpenSSL(t, bin, cmd...); err != nil {
				t.Fatalf("openssl %v: %v\n%s", cmd, err, out)
			}
			data := mustRead(t, p)
			got, err := ParsePrivateKey(data, []byte(pass))
			if err != nil || !publicKeysEqual(got.Public(), key.Public()) {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if _, err := ParsePrivateKey(data, []byte("not the passphrase")); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("wrong passphrase: %v", err)
			}
		})
	}
}
