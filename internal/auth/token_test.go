package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	tokenIssuerName  = "bulwark"
	tokenServiceName = "registry.test:5000"
)

func newTestIssuer(t testing.TB) (*Issuer, *KeySet, *authClock) {
	t.Helper()
	clock := newAuthClock()
	ks := openKeys(t, t.TempDir(), clock)
	iss, err := NewIssuer(IssuerConfig{Keys: ks, Issuer: tokenIssuerName, Service: tokenServiceName})
	if err != nil {
		t.Fatal(err)
	}
	return iss, ks, clock
}

var testAlice = Principal{Name: "alice", Kind: KindUser, Role: RoleMember}

func TestIssueVerify(t *testing.T) {
	iss, ks, clock := newTestIssuer(t)
	now := clock.Now()
	access := []Access{{Type: "repository", Name: "team/a", Actions: []string{"pull", "push"}}}
	tok, exp, err := iss.Issue(Principal{Name: "ci", Kind: KindRobot, Env: "prod"}, access, now)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(DefaultTokenTTL)) {
		t.Fatalf("expiry %v, want %v", exp, now.Add(DefaultTokenTTL))
	}

	// The wire format is the Docker token spec's.
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var hdr map[string]any
	var payload map[string]any
	decodeSegment(t, parts[0], &hdr)
	decodeSegment(t, parts[1], &payload)
	if !reflect.DeepEqual(hdr, map[string]any{"alg": "ES256", "typ": "JWT", "kid": ks.CurrentKID()}) {
		t.Fatalf("header %v", hdr)
	}
	for k, want := range map[string]any{
		"iss": tokenIssuerName, "sub": "ci", "aud": tokenServiceName, "kind": "robot", "env": "prod",
		"exp": float64(exp.Unix()), "nbf": float64(now.Unix()), "iat": float64(now.Unix()),
	} {
		if payload[k] != want {
			t.Errorf("claim %s = %v, want %v", k, payload[k], want)
		}
	}
	if jti, _ := payload["jti"].(string); len(jti) < 20 {
		t.Errorf("jti %q", jti)
	}

	c, err := iss.Verify(tok, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := &Claims{Issuer: tokenIssuerName, Subject: "ci", Audience: tokenServiceName, ExpiresAt: exp, NotBefore: now,
		IssuedAt: now, ID: payload["jti"].(string), KeyID: ks.CurrentKID(), Access: access, Kind: KindRobot, Env: "prod"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("claims %+v\nwant %+v", c, want)
	}
	if p := c.Principal(); p != (Principal{Name: "ci", Kind: KindRobot, Env: "prod"}) {
		t.Fatalf("principal %+v", p)
	}

	// Two tokens for the same request differ (jti).
	tok2, _, _ := iss.Issue(Principal{Name: "ci", Kind: KindRobot, Env: "prod"}, access, now)
	if tok2 == tok {
		t.Fatal("two tokens are identical")
	}
}

func TestIssueAnonymousAndBadPrincipals(t *testing.T) {
	iss, _, clock := newTestIssuer(t)
	tok, _, err := iss.Issue(Principal{Name: "ignored", Kind: KindAnonymous}, nil, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.Verify(tok, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "" || c.Kind != KindAnonymous || c.Access == nil || len(c.Access) != 0 {
		t.Fatalf("anonymous claims %+v", c)
	}
	for _, p := range []Principal{{}, {Kind: KindUser}, {Name: "x", Kind: "admin"}} {
		if _, _, err := iss.Issue(p, nil, clock.Now()); err == nil {
			t.Errorf("Issue(%+v) succeeded", p)
		}
	}
}

func TestNewIssuerChecks(t *testing.T) {
	ks := openKeys(t, t.TempDir(), newAuthClock())
	for _, cfg := range []IssuerConfig{
		{Issuer: "a", Service: "b"},
		{Keys: ks, Service: "b"},
		{Keys: ks, Issuer: "a"},
		{Keys: ks, Issuer: "a", Service: "b", TTL: time.Millisecond},
		{Keys: ks, Issuer: "a", Service: "b", TTL: DefaultKeyRetention}, // would outlive its key
	} {
		if _, err := NewIssuer(cfg); err == nil {
			t.Errorf("NewIssuer(%+v) accepted", cfg)
		}
	}
}

func decodeSegment(t *testing.T, seg string, v any) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// forge builds a token with arbitrary header and claims, signed by any
// method and key the jwt package supports.
func forge(t *testing.T, m jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	if m == jwt.SigningMethodES256 {
		s = lowS(t, s)
	}
	return s
}

// lowS rewrites an ES256 token's signature to its low-s form, as Issue
// does, so forged tokens fail for the reason a test means, not by chance.
func lowS(t *testing.T, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("ES256 signature: %v", err)
	}
	n := elliptic.P256().Params().N
	if s := new(big.Int).SetBytes(sig[32:]); s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		s.Sub(n, s).FillBytes(sig[32:])
	}
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// rawToken assembles a token from raw header and payload JSON and a raw
// signature, for cases the jwt package will not produce.
func rawToken(header, payload string, sig []byte) string {
	e := base64.RawURLEncoding
	return e.EncodeToString([]byte(header)) + "." + e.EncodeToString([]byte(payload)) + "." + e.EncodeToString(sig)
}

func TestVerifyHostile(t *testing.T) {
	iss, ks, clock := newTestIssuer(t)
	now := clock.Now()
	kid, priv := ks.signer()
	pubDER, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubPoint, _ := priv.PublicKey.Bytes()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)

	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": tokenIssuerName, "sub": "alice", "aud": tokenServiceName,
			"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Unix(), "iat": now.Unix(), "jti": "x",
			"access": []map[string]any{{"type": "repository", "name": "team/a", "actions": []string{"pull", "push"}}},
			"kind":   "user",
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	hdr := map[string]any{"kid": kid}
	es256 := func(mod func(jwt.MapClaims)) string { return forge(t, jwt.SigningMethodES256, priv, hdr, claims(mod)) }

	good := es256(nil)
	if _, err := iss.Verify(good, now); err != nil {
		t.Fatalf("control token made by forge() does not verify, so the cases below prove nothing: %v", err)
	}
	issued, _, _ := iss.Issue(testAlice, nil, now)
	parts := strings.Split(issued, ".")

	tamperedPayload := func() string {
		var c map[string]any
		decodeSegment(t, parts[1], &c)
		c["access"] = []map[string]any{{"type": "repository", "name": "prod/app", "actions": []string{"push"}}}
		b, _ := json.Marshal(c)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}()
	flipped := []byte(parts[2])
	flipped[10] ^= 0x01
	if flipped[10] == '.' || flipped[10] == '=' {
		flipped[10] ^= 0x03
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	highS := func() string {
		s := new(big.Int).SetBytes(sig[32:])
		s.Sub(elliptic.P256().Params().N, s)
		alt := append([]byte(nil), sig...)
		s.FillBytes(alt[32:])
		// The malleated signature is valid ECDSA: only the low-s rule stops it.
		h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if !ecdsa.Verify(&priv.PublicKey, h[:], new(big.Int).SetBytes(alt[:32]), s) {
			t.Fatal("high-s variant does not verify with plain ECDSA; test is wrong")
		}
		return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(alt)
	}()
	// The signature is 64 bytes = 85⅓ base64 characters: the last character
	// carries 4 unused bits. Setting them gives another spelling of the same
	// bytes, which lax decoders accept.
	nonCanonical := func() string {
		s := []byte(parts[2])
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, s[len(s)-1])
		s[len(s)-1] = alphabet[i|0x0f]
		if string(s) == parts[2] {
			s[len(s)-1] = alphabet[i&^0x0f|0x01]
		}
		return parts[0] + "." + parts[1] + "." + string(s)
	}()
	big := func(size int) string {
		return es256(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", size) })
	}
	nowJSON := now.Unix()

	tests := []struct {
		name  string
		token string
	}{
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr, claims(nil))},
		{"alg None, empty signature", rawToken(`{"alg":"None","typ":"JWT","kid":"`+kid+`"}`, `{"iss":"bulwark"}`, nil)},
		{"alg none with the real signature", func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + kid + `"}`))
			return h + "." + parts[1] + "." + parts[2]
		}()},
		{"HS256 keyed with the public key PEM", forge(t, jwt.SigningMethodHS256, pubPEM, hdr, claims(nil))},
		{"HS256 keyed with the public key DER", forge(t, jwt.SigningMethodHS256, pubDER, hdr, claims(nil))},
		{"HS256 keyed with the public point", forge(t, jwt.SigningMethodHS256, pubPoint, hdr, claims(nil))},
		{"HS256 keyed with the kid", forge(t, jwt.SigningMethodHS256, []byte(kid), hdr, claims(nil))},
		{"RS256", forge(t, jwt.SigningMethodRS256, rsaKey, hdr, claims(nil))},
		{"PS256", forge(t, jwt.SigningMethodPS256, rsaKey, hdr, claims(nil))},
		{"ES384", forge(t, jwt.SigningMethodES384, p384, hdr, claims(nil))},
		{"ES256 by another key under our kid", forge(t, jwt.SigningMethodES256, otherKey, hdr, claims(nil))},
		{"missing kid", forge(t, jwt.SigningMethodES256, priv, map[string]any{"kid": nil}, claims(nil))},
		{"empty kid", forge(t, jwt.SigningMethodES256, priv, map[string]any{"kid": ""}, claims(nil))},
		{"numeric kid", forge(t, jwt.SigningMethodES256, priv, map[string]any{"kid": 1}, claims(nil))},
		{"unknown kid", forge(t, jwt.SigningMethodES256, priv, map[string]any{"kid": strings.Repeat("Z", 43)}, claims(nil))},
		{"crit header", forge(t, jwt.SigningMethodES256, priv, map[string]any{"kid": kid, "crit": []string{"exp"}}, claims(nil))},
		{"odd typ", forge(t, jwt.SigningMethodES256, priv, map[string]any{"kid": kid, "typ": "at+jwt"}, claims(nil))},
		{"expired", es256(func(c jwt.MapClaims) { c["exp"] = nowJSON - 1 })},
		{"expires exactly now", es256(func(c jwt.MapClaims) { c["exp"] = nowJSON })},
		{"expired within the nbf leeway (no leeway on exp)", es256(func(c jwt.MapClaims) { c["exp"] = nowJSON - 10 })},
		{"no exp", es256(func(c jwt.MapClaims) { delete(c, "exp") })},
		{"not yet valid", es256(func(c jwt.MapClaims) { c["nbf"] = nowJSON + 60 })},
		{"nbf just beyond the leeway", es256(func(c jwt.MapClaims) { c["nbf"] = nowJSON + 31 })},
		{"no nbf", es256(func(c jwt.MapClaims) { delete(c, "nbf") })},
		{"issued in the future", es256(func(c jwt.MapClaims) { c["iat"] = nowJSON + 120 })},
		{"no iat", es256(func(c jwt.MapClaims) { delete(c, "iat") })},
		{"exp as a string", es256(func(c jwt.MapClaims) { c["exp"] = "9999999999" })},
		{"exp as a float", es256(func(c jwt.MapClaims) { c["exp"] = float64(nowJSON) + 300.5 })},
		{"exp null", es256(func(c jwt.MapClaims) { c["exp"] = nil })},
		{"wrong aud", es256(func(c jwt.MapClaims) { c["aud"] = "other.registry" })},
		{"no aud", es256(func(c jwt.MapClaims) { delete(c, "aud") })},
		{"two auds", es256(func(c jwt.MapClaims) { c["aud"] = []string{tokenServiceName, "other"} })},
		{"wrong iss", es256(func(c jwt.MapClaims) { c["iss"] = "evil" })},
		{"no iss", es256(func(c jwt.MapClaims) { delete(c, "iss") })},
		{"unknown kind", es256(func(c jwt.MapClaims) { c["kind"] = "admin" })},
		{"no kind", es256(func(c jwt.MapClaims) { delete(c, "kind") })},
		{"user without subject", es256(func(c jwt.MapClaims) { c["sub"] = "" })},
		{"anonymous with a subject", es256(func(c jwt.MapClaims) { c["kind"] = "anonymous" })},
		{"access of the wrong type", es256(func(c jwt.MapClaims) { c["access"] = "everything" })},
		{"tampered payload", tamperedPayload},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(flipped)},
		{"high-s signature", highS},
		{"non-canonical base64 signature", nonCanonical},
		{"padded signature", issued + "=="},
		{"signature of another token", func() string {
			other, _, _ := iss.Issue(testAlice, nil, now)
			return parts[0] + "." + parts[1] + "." + strings.Split(other, ".")[2]
		}()},
		{"truncated by one", issued[:len(issued)-1]},
		{"truncated to half", issued[:len(issued)/2]},
		{"two segments", parts[0] + "." + parts[1]},
		{"empty signature", parts[0] + "." + parts[1] + "."},
		{"four segments", issued + ".x"},
		{"trailing dot", issued + "."},
		{"trailing garbage", issued + "x"},
		{"trailing space", issued + " "},
		{"trailing newline", issued + "\n"},
		{"CRLF inside the signature", parts[0] + "." + parts[1] + "." + parts[2][:20] + "\r\n" + parts[2][20:]},
		{"newline inside the payload", parts[0] + "." + parts[1][:10] + "\n" + parts[1][10:] + "." + parts[2]},
		{"leading space", " " + issued},
		{"Bearer prefix left on", "Bearer " + issued},
		{"9 KB token, validly signed", big(9 << 10)},
		{"100 KB token, validly signed", big(100 << 10)},
		{"100 KB of dots", strings.Repeat(".", 100<<10)},
		{"empty", ""},
		{"garbage", "not a token"},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("{")) + "." + parts[1] + "." + parts[2]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := iss.Verify(tc.token, now)
			if err == nil {
				t.Fatalf("verified: %+v", c)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
			if c != nil {
				t.Fatal("claims returned with an error")
			}
		})
	}

	// Boundaries on the accepting side: the leeway exists where documented.
	for name, tok := range map[string]string{
		"nbf within the leeway":   es256(func(c jwt.MapClaims) { c["nbf"] = nowJSON + 25 }),
		"iat within the leeway":   es256(func(c jwt.MapClaims) { c["iat"] = nowJSON + 25 }),
		"expires in one second":   es256(func(c jwt.MapClaims) { c["exp"] = nowJSON + 1 }),
		"aud as a one-item array": es256(func(c jwt.MapClaims) { c["aud"] = []string{tokenServiceName} }),
		"7 KB token":              big(5 << 10),
	} {
		if _, err := iss.Verify(tok, now); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerifyLifetime(t *testing.T) {
	iss, _, clock := newTestIssuer(t)
	now := clock.Now()
	tok, exp, err := iss.Issue(testAlice, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at time.Time
		ok bool
	}{
		{now.Add(-ClockSkew), true}, // a registry clock slightly behind
		{now.Add(-ClockSkew - time.Second), false},
		{now, true},
		{exp.Add(-time.Second), true},
		{exp, false},
		{exp.Add(time.Second), false},
	}
	for _, tc := range tests {
		_, err := iss.Verify(tok, tc.at)
		if (err == nil) != tc.ok {
			t.Errorf("Verify at %v: %v, want ok=%v", tc.at.Sub(now), err, tc.ok)
		}
		if err != nil && tc.at.After(now) && !errors.Is(err, jwt.ErrTokenExpired) {
			t.Errorf("expiry error %v does not wrap jwt.ErrTokenExpired", err)
		}
	}
}

func TestVerifyOtherIssuers(t *testing.T) {
	iss, ks, clock := newTestIssuer(t)
	now := clock.Now()
	tok, _, _ := iss.Issue(testAlice, nil, now)

	// Same keys, other service or issuer name: refused.
	for _, cfg := range []IssuerConfig{
		{Keys: ks, Issuer: tokenIssuerName, Service: "other:5000"},
		{Keys: ks, Issuer: "other", Service: tokenServiceName},
	} {
		other, err := NewIssuer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Verify(tok, now); err == nil {
			t.Errorf("token accepted by %+v", cfg)
		}
	}
	// Same names, other keys (another bulwark): refused.
	stranger, _, _ := newTestIssuer(t)
	if _, err := stranger.Verify(tok, now); err == nil {
		t.Error("token accepted by an issuer with other keys")
	}
}

func TestVerifyAcrossRotation(t *testing.T) {
	iss, ks, clock := newTestIssuer(t)
	before, _, _ := iss.Issue(testAlice, nil, clock.Now())
	clock.Add(time.Minute)
	if _, err := ks.Rotate(); err != nil {
		t.Fatal(err)
	}
	after, _, _ := iss.Issue(testAlice, nil, clock.Now())
	for name, tok := range map[string]string{"before": before, "after": after} {
		if _, err := iss.Verify(tok, clock.Now()); err != nil {
			t.Errorf("token issued %s the rotation: %v", name, err)
		}
	}
	if strings.Split(before, ".")[0] == strings.Split(after, ".")[0] {
		t.Fatal("rotation did not change the signing key")
	}
	// After the retention the old key is gone; its token long expired anyway.
	clock.Add(DefaultKeyRetention + time.Minute)
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Verify(before, clock.Now().Add(-DefaultKeyRetention)); err == nil {
		t.Fatal("token of a pruned key verified")
	}
}

func TestClaimsAllows(t *testing.T) {
	iss, _, clock := newTestIssuer(t)
	access := []Access{
		{Type: "repository", Name: "team/a", Actions: []string{"pull"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}
	tok, _, _ := iss.Issue(testAlice, access, clock.Now())
	c, err := iss.Verify(tok, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ, name string
		a         Action
		want      bool
	}{
		{"repository", "team/a", ActionPull, true},
		{"repository", "team/b", ActionPull, false}, // a token for A used on B
		{"repository", "team/a", ActionPush, false},
		{"repository", "team/a", ActionAll, false},
		{"repository", "team", ActionPull, false},
		{"repository", "team/a/b", ActionPull, false},
		{"registry", "team/a", ActionPull, false},
		{"registry", "catalog", ActionAll, true},
		{"registry", "catalog", ActionPull, false},
		{"repository", "catalog", ActionAll, false},
	}
	for _, tc := range tests {
		if got := c.Allows(tc.typ, tc.name, tc.a); got != tc.want {
			t.Errorf("Allows(%s, %s, %s) = %v, want %v", tc.typ, tc.name, tc.a, got, tc.want)
		}
	}
	var nilClaims *Claims
	if nilClaims.Allows("repository", "team/a", ActionPull) {
		t.Error("nil claims allow")
	}
}

func FuzzVerifyToken(f *testing.F) {
	clock := newAuthClock()
	ks, err := OpenKeySet(f.TempDir(), KeySetOptions{Now: clock.Now, Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	iss, err := NewIssuer(IssuerConfig{Keys: ks, Issuer: tokenIssuerName, Service: tokenServiceName})
	if err != nil {
		f.Fatal(err)
	}
	now := clock.Now()
	valid, _, err := iss.Issue(testAlice, []Access{{Type: "repository", Name: "team/a", Actions: []string{"pull"}}}, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid + "x")
	f.Add(valid[:len(valid)-2])
	f.Add(strings.Replace(valid, ".", "..", 1))
	p := strings.Split(valid, ".")
	f.Add(p[0] + "." + p[1] + ".")
	f.Add(p[1] + "." + p[0] + "." + p[2])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("")
	f.Add("...")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := iss.Verify(s, now)
		if err == nil && s != valid {
			t.Fatalf("a token other than the one issued verified: %q → %+v", s, c)
		}
		if err != nil && (c != nil || !errors.Is(err, ErrInvalidToken)) {
			t.Fatalf("bad failure: %v, %+v", err, c)
		}
	})
}

func BenchmarkIssue(b *testing.B) {
	iss, _, clock := newTestIssuer(b)
	access := []Access{{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}}
	now := clock.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := iss.Issue(testAlice, access, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkVerify(b *testing.B) {
	iss, _, clock := newTestIssuer(b)
	access := []Access{{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}}
	now := clock.Now()
	tok, _, err := iss.Issue(testAlice, access, now)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Verify(tok, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
