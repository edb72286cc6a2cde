package oci_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

var (
	hex64  = strings.Repeat("0123456789abcdef", 4)
	hex96  = strings.Repeat("0123456789abcdef", 6)
	hex128 = strings.Repeat("0123456789abcdef", 8)
)

// maxErrLen bounds error messages built from hostile input: truncate keeps
// at most 100 bytes of it, and %q can quadruple that.
const maxErrLen = 1024

func TestParseDigest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error // nil means the digest must parse
		wantAlg digest.Algorithm
	}{
		{name: "sha256", in: "sha256:" + hex64, wantAlg: digest.SHA256},
		{name: "sha256 of content", in: digest.FromString("hello").String(), wantAlg: digest.SHA256},
		{name: "sha512", in: "sha512:" + hex128, wantAlg: digest.SHA512},
		{name: "sha512 of content", in: digest.SHA512.FromString("hello").String(), wantAlg: digest.SHA512},

		{name: "md5 unsupported", in: "md5:d41d8cd98f00b204e9800998ecf8427e", wantErr: oci.ErrDigestUnsupported},
		{name: "sha384 unsupported", in: "sha384:" + hex96, wantErr: oci.ErrDigestUnsupported},
		{name: "blake3 unsupported", in: "blake3:" + hex64, wantErr: oci.ErrDigestUnsupported},
		{name: "sha1 unsupported", in: "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709", wantErr: oci.ErrDigestUnsupported},

		{name: "sha256 short", in: "sha256:" + hex64[:63], wantErr: oci.ErrDigestInvalid},
		{name: "sha256 long", in: "sha256:" + hex64 + "0", wantErr: oci.ErrDigestInvalid},
		{name: "sha256 with sha512 length", in: "sha256:" + hex128, wantErr: oci.ErrDigestInvalid},
		{name: "sha512 with sha256 length", in: "sha512:" + hex64, wantErr: oci.ErrDigestInvalid},
		{name: "uppercase hex", in: "sha256:" + strings.ToUpper(hex64), wantErr: oci.ErrDigestInvalid},
		{name: "one uppercase hex digit", in: "sha256:A" + hex64[1:], wantErr: oci.ErrDigestInvalid},
		{name: "non-hex", in: "sha256:" + strings.Repeat("g", 64), wantErr: oci.ErrDigestInvalid},
		{name: "uppercase algorithm", in: "SHA256:" + hex64, wantErr: oci.ErrDigestInvalid},
		{name: "trailing newline", in: "sha256:" + hex64 + "\n", wantErr: oci.ErrDigestInvalid},
		{name: "leading space", in: " sha256:" + hex64, wantErr: oci.ErrDigestInvalid},
		{name: "empty", in: "", wantErr: oci.ErrDigestInvalid},
		{name: "missing colon", in: "sha256" + hex64, wantErr: oci.ErrDigestInvalid},
		{name: "colon only", in: ":", wantErr: oci.ErrDigestInvalid},
		{name: "empty algorithm", in: ":" + hex64, wantErr: oci.ErrDigestInvalid},
		{name: "empty encoded", in: "sha256:", wantErr: oci.ErrDigestInvalid},
		{name: "two colons", in: "sha256:" + hex64[:32] + ":" + hex64[:31], wantErr: oci.ErrDigestInvalid},
		{name: "10 KB garbage", in: strings.Repeat("\x00\xff%/:", 2048), wantErr: oci.ErrDigestInvalid},
		{name: "10 KB hex", in: "sha256:" + strings.Repeat("a", 10240), wantErr: oci.ErrDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := oci.ParseDigest(tt.in)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseDigest(%q) = %v, want success", tt.in, err)
				}
				if d.String() != tt.in {
					t.Errorf("ParseDigest(%q) = %q, want the input unchanged", tt.in, d)
				}
				if d.Algorithm() != tt.wantAlg {
					t.Errorf("algorithm = %q, want %q", d.Algorithm(), tt.wantAlg)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseDigest(%q) = %q, want error %v", tt.in, d, tt.wantErr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseDigest(%q) error = %v, want errors.Is %v", tt.in, err, tt.wantErr)
			}
			if d != "" {
				t.Errorf("ParseDigest(%q) returned %q alongside an error", tt.in, d)
			}
			if len(err.Error()) > maxErrLen {
				t.Errorf("error message is %d bytes; hostile input must be truncated", len(err.Error()))
			}
		})
	}
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		"sha256:" + hex64, "sha512:" + hex128, "sha384:" + hex96,
		"md5:d41d8cd98f00b204e9800998ecf8427e", "blake3:" + hex64,
		"sha256:" + strings.ToUpper(hex64), "sha256:" + hex64[:63], "",
		":", "sha256:", "a+b.c_d-e:" + hex64, "sha256:" + hex64 + "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := oci.ParseDigest(s)
		if err != nil {
			if !errors.Is(err, oci.ErrDigestInvalid) && !errors.Is(err, oci.ErrDigestUnsupported) {
				t.Fatalf("ParseDigest(%q) error %v wraps neither ErrDigestInvalid nor ErrDigestUnsupported", s, err)
			}
			if d != "" {
				t.Fatalf("ParseDigest(%q) returned %q alongside an error", s, d)
			}
			if len(err.Error()) > maxErrLen {
				t.Fatalf("error message is %d bytes for %d bytes of input", len(err.Error()), len(s))
			}
			return
		}
		if string(d) != s {
			t.Fatalf("ParseDigest(%q) = %q, want the input unchanged", s, d)
		}
		if verr := d.Validate(); verr != nil {
			t.Fatalf("ParseDigest(%q) accepted a digest go-digest rejects: %v", s, verr)
		}
		want := 0
		switch d.Algorithm() {
		case digest.SHA256:
			want = 64
		case digest.SHA512:
			want = 128
		default:
			t.Fatalf("ParseDigest(%q) accepted algorithm %q", s, d.Algorithm())
		}
		enc := d.Encoded()
		if len(enc) != want {
			t.Fatalf("ParseDigest(%q): encoded part has %d characters, want %d", s, len(enc), want)
		}
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				t.Fatalf("ParseDigest(%q): encoded part has non lower-hex byte %q", s, c)
			}
		}
	})
}
