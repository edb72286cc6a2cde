package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/trust"
)

// runPKI runs `bulwark pki ARGS` with stdin and returns stdout and stderr.
func runPKI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := newPKICmd()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// noPassphraseEnv keeps a BULWARK_PASSPHRASE of the environment the tests
// run in out of them (and restores it afterwards).
func noPassphraseEnv(t *testing.T) {
	t.Setenv(pkiPassphraseEnv, "x")
	os.Unsetenv(pkiPassphraseEnv)
}

func mustRunPKI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := runPKI(t, stdin, args...)
	if err != nil {
		t.Fatalf("pki %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func loadChain(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := trust.ParseCertificates(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func TestPKIInitIssueRevoke(t *testing.T) {
	noPassphraseEnv(t)
	tmp := t.TempDir()
	ca, keys := filepath.Join(tmp, "ca"), filepath.Join(tmp, "keys")
	passFile := filepath.Join(tmp, "pass")
	os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600)

	out := mustRunPKI(t, "", "init", "--dir", ca, "--org", "Example Corp", "--country", "US", "--state", "WA", "--passphrase-file", passFile)
	if !strings.Contains(out, `"Example Corp Root CA"`) || !strings.Contains(out, "encrypted with the passphrase") || !strings.Contains(out, "Next: bulwark pki issue") {
		t.Errorf("init output:\n%s", out)
	}
	keyData, _ := os.ReadFile(filepath.Join(ca, trust.RootKeyFile))
	if !trust.IsEncryptedKey(keyData) {
		t.Fatal("root.key is not encrypted")
	}
	// The trailing newline of the file is not part of the passphrase.
	if _, err := trust.LoadCA(ca, []byte("correct horse battery staple")); err != nil {
		t.Fatalf("LoadCA with the passphrase: %v", err)
	}

	out = mustRunPKI(t, "", "issue", "--ca", ca, "--passphrase-file", passFile, "--name", "ci",
		"--subject", "C=US, ST=WA, O=Example Corp, CN=ci", "--uri", "https://ci.example.com/pipelines/release", "--out", keys)
	if !strings.Contains(out, `"C=US, ST=WA, O=Example Corp, CN=ci"`) || !strings.Contains(out, "https://ci.example.com/pipelines/release") {
		t.Errorf("issue output:\n%s", out)
	}
	out, errOut, err := runPKI(t, "", "issue", "--ca", ca, "--passphrase-file", passFile, "--name", "security",
		"--subject", "C=US, ST=WA, O=Example Corp, OU=Security, CN=security", "--key-type", "ecdsa-p384", "--valid", "90d", "--out", keys)
	if err != nil {
		t.Fatalf("issue security: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "no --uri") {
		t.Errorf("no note about the missing URI SAN (cosign needs one):\n%s", errOut)
	}

	root := loadChain(t, filepath.Join(ca, trust.RootCertFile))[0]
	roots := x509.NewCertPool()
	roots.AddCert(root)
	for _, name := range []string{"ci", "security"} {
		fi, err := os.Stat(filepath.Join(keys, name+".key"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s.key: %v %v", name, err, fi)
		}
		chain := loadChain(t, filepath.Join(keys, name+".crt"))
		if len(chain) != 2 || !chain[1].Equal(root) {
			t.Fatalf("%s.crt: %d certificates, second is root: %v", name, len(chain), len(chain) == 2 && chain[1].Equal(root))
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if sec := loadChain(t, filepath.Join(keys, "security.crt"))[0]; sec.NotAfter.Sub(time.Now()) > 91*24*time.Hour {
		t.Errorf("--valid 90d gave %v", sec.NotAfter)
	}
	if fi, err := os.Stat(keys); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("--out directory: %v %v", err, fi)
	}

	ciCrt := filepath.Join(keys, "ci.crt")
	ci := loadChain(t, ciCrt)[0]
	out = mustRunPKI(t, "", "revoke", "--ca", ca, "--passphrase-file", passFile, "--reason", "keyCompromise", ciCrt)
	if !strings.Contains(out, "Revoked") || !strings.Contains(out, "keyCompromise") || !strings.Contains(out, "CRL #1") {
		t.Errorf("revoke output:\n%s", out)
	}
	crlPath := filepath.Join(ca, trust.CRLFile)
	crl, err := trust.LoadCRL(crlPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.CheckCRL(crl, root, time.Now()); err != nil || !trust.IsRevoked(crl, ci) {
		t.Fatalf("CRL: %v, ci revoked=%v", err, trust.IsRevoked(crl, ci))
	}
	if d := time.Until(crl.NextUpdate); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("default next update in %v, want 30 days", d)
	}

	// Again: idempotent, says so, CRL untouched.
	before, _ := os.ReadFile(crlPath)
	out = mustRunPKI(t, "", "revoke", "--ca", ca, "--passphrase-file", passFile, ciCrt)
	if !strings.Contains(out, "already revoked") || strings.Contains(out, "Revoked") || !strings.Contains(out, "CRL #1") {
		t.Errorf("second revoke output:\n%s", out)
	}
	if after, _ := os.ReadFile(crlPath); !bytes.Equal(before, after) {
		t.Error("second revoke rewrote the CRL")
	}

	// Re-sign: number 2, new next update.
	out = mustRunPKI(t, "", "crl", "--ca", ca, "--passphrase-file", passFile, "--next-update", "7d")
	crl, _ = trust.LoadCRL(crlPath)
	if !strings.Contains(out, "CRL #2") || crl.Number.Int64() != 2 || time.Until(crl.NextUpdate) > 8*24*time.Hour || !trust.IsRevoked(crl, ci) {
		t.Errorf("crl output:\n%s\nCRL #%v next %v", out, crl.Number, crl.NextUpdate)
	}
}

func TestPKIPassphraseSources(t *testing.T) {
	noPassphraseEnv(t)
	tmp := t.TempDir()
	ca := filepath.Join(tmp, "ca")
	subject := "C=US, ST=WA, O=Example, CN=ci"

	// From the environment.
	t.Setenv(pkiPassphraseEnv, "env passphrase")
	mustRunPKI(t, "", "init", "--dir", ca, "--org", "Example")
	os.Unsetenv(pkiPassphraseEnv)

	tests := []struct {
		name  string
		env   string
		stdin string
		args  []string
		want  string // "" = success; else part of the error
	}{
		{"no passphrase", "", "", nil, "--passphrase-file"},
		{"env", "env passphrase", "", nil, ""},
		{"stdin", "", "env passphrase\n", []string{"--passphrase-file", "-"}, ""},
		{"stdin CRLF", "", "env passphrase\r\n", []string{"--passphrase-file", "-"}, ""},
		{"file wins over env", "wrong one", "env passphrase", []string{"--passphrase-file", "-"}, ""},
		{"wrong", "not the passphrase", "", nil, "wrong passphrase"},
		{"empty stdin", "", "\n", []string{"--passphrase-file", "-"}, "empty"},
		{"missing file", "", "", []string{"--passphrase-file", filepath.Join(tmp, "nope")}, "no such file"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(pkiPassphraseEnv, tt.env)
			} else {
				noPassphraseEnv(t)
			}
			name := "k" + string(rune('a'+i))
			args := append([]string{"issue", "--ca", ca, "--name", name, "--subject", subject, "--out", tmp}, tt.args...)
			out, errOut, err := runPKI(t, tt.stdin, args...)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("%v\n%s%s", err, out, errOut)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(tmp, name+".key")); err == nil {
				t.Fatal("a failed issue wrote a key")
			}
		})
	}
}

func TestPKIInitUnencryptedWarnsAndRefusesOverwrite(t *testing.T) {
	noPassphraseEnv(t)
	ca := filepath.Join(t.TempDir(), "ca")
	out, errOut, err := runPKI(t, "", "init", "--dir", ca, "--org", "Example", "--valid", "365d")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "not encrypted") || !strings.Contains(out, "NOT encrypted") {
		t.Errorf("no warning about the unencrypted key:\n%s\n%s", out, errOut)
	}
	root := loadChain(t, filepath.Join(ca, trust.RootCertFile))[0]
	if d := time.Until(root.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("--valid 365d gave %v", root.NotAfter)
	}
	_, _, err = runPKI(t, "", "init", "--dir", ca, "--org", "Other")
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second init: %v; want a refusal mentioning --force", err)
	}
	if again := loadChain(t, filepath.Join(ca, trust.RootCertFile))[0]; !again.Equal(root) {
		t.Fatal("refused init replaced root.crt")
	}
	mustRunPKI(t, "", "init", "--dir", ca, "--org", "Other", "--force")
	if again := loadChain(t, filepath.Join(ca, trust.RootCertFile))[0]; again.Equal(root) {
		t.Fatal("--force did not replace root.crt")
	}
}

func TestPKIRejects(t *testing.T) {
	noPassphraseEnv(t)
	tmp := t.TempDir()
	ca := filepath.Join(tmp, "ca")
	mustRunPKI(t, "", "init", "--dir", ca, "--org", "Example")
	mustRunPKI(t, "", "issue", "--ca", ca, "--name", "ci", "--subject", "C=US, ST=WA, O=Example, CN=ci", "--out", tmp)
	other := filepath.Join(tmp, "other")
	mustRunPKI(t, "", "init", "--dir", other, "--org", "Other")
	mustRunPKI(t, "", "issue", "--ca", other, "--name", "foreign", "--subject", "C=US, ST=WA, O=Other", "--out", tmp)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"subject without ST", []string{"issue", "--ca", ca, "--name", "x", "--subject", "C=US, O=Example, CN=x", "--out", tmp}, "ST (state or province)"},
		{"subject with unknown attribute", []string{"issue", "--ca", ca, "--name", "x", "--subject", "C=US, ST=WA, O=Example, E=x@example.com", "--out", tmp}, `unknown attribute type "E"`},
		{"subject with injected attribute", []string{"issue", "--ca", ca, "--name", "x", "--subject", "C=US, ST=WA, O=Example, CN=x, O=Evil", "--out", tmp}, "O given twice"},
		{"bad key type", []string{"issue", "--ca", ca, "--name", "x", "--subject", "C=US, ST=WA, O=Example", "--key-type", "ed25519", "--out", tmp}, "unknown key type"},
		{"bad validity", []string{"issue", "--ca", ca, "--name", "x", "--subject", "C=US, ST=WA, O=Example", "--valid", "1y", "--out", tmp}, "--valid"},
		{"relative URI", []string{"issue", "--ca", ca, "--name", "x", "--subject", "C=US, ST=WA, O=Example", "--uri", "ci", "--out", tmp}, "absolute URI"},
		{"name with a slash", []string{"issue", "--ca", ca, "--name", "../x", "--subject", "C=US, ST=WA, O=Example", "--out", tmp}, "name"},
		{"existing key", []string{"issue", "--ca", ca, "--name", "ci", "--subject", "C=US, ST=WA, O=Example", "--out", tmp}, "--force"},
		{"no CA", []string{"issue", "--ca", filepath.Join(tmp, "none"), "--name", "x", "--subject", "C=US, ST=WA, O=Example", "--out", tmp}, "pki init"},
		{"subject missing", []string{"issue", "--ca", ca, "--name", "x"}, "subject"},
		{"revoke foreign cert", []string{"revoke", "--ca", ca, filepath.Join(tmp, "foreign.crt")}, "not issued by this CA"},
		{"revoke bad reason", []string{"revoke", "--ca", ca, "--reason", "certificateHold", filepath.Join(tmp, "ci.crt")}, "--reason"},
		{"revoke a key file", []string{"revoke", "--ca", ca, filepath.Join(tmp, "ci.key")}, "no certificate"},
		{"revoke without CERT", []string{"revoke", "--ca", ca}, "arg"},
		{"init bad country", []string{"init", "--dir", filepath.Join(tmp, "c2"), "--org", "X", "--country", "usa"}, "two-letter"},
		{"init no org", []string{"init", "--dir", filepath.Join(tmp, "c3")}, "org"},
		{"crl bad next update", []string{"crl", "--ca", ca, "--next-update", "soon"}, "--next-update"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runPKI(t, "", tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "x.key")); err == nil {
		t.Error("a refused issue wrote x.key")
	}
	if _, err := os.Stat(filepath.Join(ca, trust.RevokedFile)); err == nil {
		t.Error("a refused revoke wrote revoked.json")
	}
}

// Every pki command teaches by example.
func TestPKIHelp(t *testing.T) {
	root := newPKICmd()
	if root.Example == "" {
		t.Error("pki has no examples")
	}
	for _, c := range root.Commands() {
		if c.Example == "" || c.Long == "" {
			t.Errorf("pki %s lacks a long help or examples", c.Name())
		}
		for _, line := range strings.Split(c.Example, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") &&
				!strings.HasPrefix(l, "bulwark pki "+c.Name()) && !strings.Contains(l, "| bulwark pki "+c.Name()) &&
				!strings.HasPrefix(l, "BULWARK_PASSPHRASE=") && !strings.HasPrefix(l, "--") {
				t.Errorf("pki %s example line %q does not run the command", c.Name(), l)
			}
		}
	}
	out, _, err := runPKI(t, "", "issue", "--help")
	if err != nil || !strings.Contains(out, "signingkeys.json") || !strings.Contains(out, "cosign import-key-pair") {
		t.Errorf("issue --help: %v\n%s", err, out)
	}
}
