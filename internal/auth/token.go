package auth

import (
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// MaxTokenLength bounds a token before any parsing. Tokens bulwark issues
	// are well under 2 KiB even with many scopes; anything longer is not ours.
	MaxTokenLength = 8 << 10
	// ClockSkew is the leeway for nbf and iat, for a registry whose clock is
	// a little behind the token service's. There is none beyond exp: a
	// token's lifetime is exactly what was issued.
	ClockSkew = 30 * time.Second
)

// signingAlg is the only algorithm bulwark issues or accepts.
const signingAlg = "ES256"

// p256N and p256HalfN are the P-256 group order and half of it. ECDSA
// signatures are malleable: (r, s) and (r, N−s) both verify. Tokens are
// issued with the low s and only the low s is accepted, so a token has
// exactly one valid encoding and a copy cannot be told apart from the
// original by anything but the string itself.
var (
	p256N     = elliptic.P256().Params().N
	p256HalfN = new(big.Int).Rsh(p256N, 1)
)

// IssuerConfig configures NewIssuer.
type IssuerConfig struct {
	Keys *KeySet
	// Issuer is the "iss" claim, e.g. "bulwark".
	Issuer string
	// Service is the "aud" claim: the registry's service name, the same
	// string its WWW-Authenticate challenge sends as service=…
	Service string
	// TTL is the tokens' lifetime (DefaultTokenTTL when zero). It must not
	// exceed the key set's retention.
	TTL time.Duration
}

// Issuer issues and verifies the registry's access tokens: JWTs as the
// Docker token spec defines them, signed with ES256.
type Issuer struct {
	keys    *KeySet
	issuer  string
	service string
	ttl     time.Duration
}

// NewIssuer checks cfg and returns an Issuer.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTokenTTL
	}
	switch {
	case cfg.Keys == nil:
		return nil, errors.New("auth: issuer needs a key set")
	case cfg.Issuer == "" || cfg.Service == "":
		return nil, errors.New("auth: issuer needs an issuer and a service name")
	case cfg.TTL < time.Second:
		return nil, fmt.Errorf("auth: token TTL %v is too short", cfg.TTL)
	case cfg.TTL+ClockSkew > cfg.Keys.Retention():
		// A token must never outlive the key that verifies it.
		return nil, fmt.Errorf("auth: token TTL %v exceeds the key retention %v", cfg.TTL, cfg.Keys.Retention())
	}
	return &Issuer{keys: cfg.Keys, issuer: cfg.Issuer, service: cfg.Service, ttl: cfg.TTL}, nil
}

// Service returns the service name tokens are issued for (their audience).
func (i *Issuer) Service() string { return i.service }

// Name returns the issuer name ("iss").
func (i *Issuer) Name() string { return i.issuer }

// TTL returns the lifetime of issued tokens.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Claims are a verified token's claims.
type Claims struct {
	Issuer    string
	Subject   string // the principal's name; empty for anonymous
	Audience  string // the service
	ExpiresAt time.Time
	NotBefore time.Time
	IssuedAt  time.Time
	ID        string // jti, unique per token
	KeyID     string // kid of the key that signed it
	Access    []Access
	Kind      Kind
	Env       string
}

// Allows reports whether the token grants action a on the resource typ:name,
// e.g. Allows("repository", "team/app", ActionPush) or, for the catalog,
// Allows("registry", "catalog", ActionAll). Actions match exactly; the
// token service never puts "*" in a repository entry.
func (c *Claims) Allows(typ, name string, a Action) bool {
	if c == nil {
		return false
	}
	for _, acc := range c.Access {
		if acc.Type == typ && acc.Name == name && slices.Contains(acc.Actions, string(a)) {
			return true
		}
	}
	return false
}

// Principal returns who the token was issued to. Role is not carried in
// tokens (an admin's rights are already in Access), so it is empty.
func (c *Claims) Principal() Principal {
	return Principal{Name: c.Subject, Kind: c.Kind, Env: c.Env}
}

// issuedClaims is the JWT payload, in the Docker token spec's shape plus
// bulwark's private claims kind and env. aud is a plain string, as in the
// spec's examples.
type issuedClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	NotBefore int64    `json:"nbf"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	Access    []Access `json:"access"`
	Kind      Kind     `json:"kind"`
	Env       string   `json:"env,omitempty"`
}

type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

// Issue signs a token for p granting access, valid from now for the TTL.
// It returns the token and its expiry. access should come from Intersect;
// Issue does not second-guess it.
func (i *Issuer) Issue(p Principal, access []Access, now time.Time) (string, time.Time, error) {
	switch p.Kind {
	case KindUser, KindRobot:
		if p.Name == "" {
			return "", time.Time{}, fmt.Errorf("auth: issue token: %s without a name", p.Kind)
		}
	case KindAnonymous:
		p.Name = "" // the spec's anonymous subject
	default:
		return "", time.Time{}, fmt.Errorf("auth: issue token: unknown principal kind %q", p.Kind)
	}
	if access == nil {
		access = []Access{}
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue token: %w", err)
	}
	iat := now.Unix()
	exp := now.Add(i.ttl).Unix()
	kid, key := i.keys.signer()
	hdr, err := json.Marshal(header{Alg: signingAlg, Typ: "JWT", Kid: kid})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue token: %w", err)
	}
	payload, err := json.Marshal(issuedClaims{
		Issuer: i.issuer, Subject: p.Name, Audience: i.service,
		ExpiresAt: exp, NotBefore: iat, IssuedAt: iat,
		ID:     base64.RawURLEncoding.EncodeToString(jti[:]),
		Access: access, Kind: p.Kind, Env: p.Env,
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue token: %w", err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload)
	sig, err := jwt.SigningMethodES256.Sign(signing, key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign token: %w", err)
	}
	if len(sig) != 64 {
		return "", time.Time{}, fmt.Errorf("auth: sign token: signature of %d bytes", len(sig))
	}
	if sv := new(big.Int).SetBytes(sig[32:]); sv.Cmp(p256HalfN) > 0 {
		sv.Sub(p256N, sv).FillBytes(sig[32:])
	}
	return signing + "." + enc.EncodeToString(sig), time.Unix(exp, 0).UTC(), nil
}

// verifiedClaims is what Verify decodes a payload into. It spells out the
// registered claims instead of embedding jwt.RegisteredClaims because that
// type's dates also accept JSON strings ("exp":"9999999999"); ours accept
// only what Issue writes, integers.
type verifiedClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.ClaimStrings `json:"aud"`
	ExpiresAt *unixTime        `json:"exp"`
	NotBefore *unixTime        `json:"nbf"`
	IssuedAt  *unixTime        `json:"iat"`
	ID        string           `json:"jti"`
	Access    []Access         `json:"access"`
	Kind      Kind             `json:"kind"`
	Env       string           `json:"env"`
}

// unixTime is a NumericDate that must be a JSON integer.
type unixTime struct{ time.Time }

// UnmarshalJSON accepts an integer number of seconds only.
func (u *unixTime) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("date %.20q is not an integer", b)
	}
	u.Time = time.Unix(n, 0).UTC()
	return nil
}

func (u *unixTime) numeric() *jwt.NumericDate {
	if u == nil {
		return nil
	}
	return jwt.NewNumericDate(u.Time)
}

// The jwt.Claims interface, for the parser's registered-claim checks.
func (c *verifiedClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return c.ExpiresAt.numeric(), nil
}
func (c *verifiedClaims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore.numeric(), nil }
func (c *verifiedClaims) GetIssuedAt() (*jwt.NumericDate, error)  { return c.IssuedAt.numeric(), nil }
func (c *verifiedClaims) GetIssuer() (string, error)              { return c.Issuer, nil }
func (c *verifiedClaims) GetSubject() (string, error)             { return c.Subject, nil }
func (c *verifiedClaims) GetAudience() (jwt.ClaimStrings, error)  { return c.Audience, nil }

// Validate checks bulwark's own claims; the jwt parser calls it after the
// registered ones.
func (c *verifiedClaims) Validate() error {
	switch c.Kind {
	case KindUser, KindRobot:
		if c.Subject == "" {
			return errors.New("account token without a subject")
		}
	case KindAnonymous:
		if c.Subject != "" {
			return errors.New("anonymous token with a subject")
		}
	default:
		return fmt.Errorf("unknown principal kind %q", c.Kind)
	}
	if c.IssuedAt == nil {
		return errors.New("token has no iat")
	}
	if len(c.Audience) != 1 {
		return errors.New("token must have exactly one audience")
	}
	return nil
}

// Verify checks a token and returns its claims. It accepts only tokens
// this service could have issued:
//   - at most MaxTokenLength bytes, checked before anything is parsed;
//   - exactly three canonical base64url segments (no padding, no stray
//     bits, no whitespace or line breaks, nothing after the signature);
//   - alg ES256 and a kid of a key in the key set, nothing else: "none",
//     HS256 (including HS256 keyed with the public key), RS256 and a
//     missing kid are all refused, as is any "crit" header;
//   - a low-s signature (see p256HalfN): a token has one valid encoding;
//   - iss and aud equal to this issuer's, exp, nbf and iat present; nbf
//     and iat may be up to ClockSkew in the future, exp has no leeway.
//
// Every failure wraps ErrInvalidToken (and the jwt package's error, e.g.
// jwt.ErrTokenExpired, for callers that want the reason).
func (i *Issuer) Verify(token string, now time.Time) (*Claims, error) {
	if len(token) > MaxTokenLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenLength)
	}
	// Go's base64 decoders skip '\r' and '\n' even in strict mode, so
	// "token\n" would verify: allow only the base64url alphabet and dots.
	for i := 0; i < len(token); i++ {
		if c := token[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return nil, fmt.Errorf("%w: invalid character at offset %d", ErrInvalidToken, i)
		}
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{signingAlg}),
		jwt.WithIssuer(i.issuer),
		jwt.WithAudience(i.service),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		// The leeway applies to exp too; the strict exp check follows below.
		jwt.WithLeeway(ClockSkew),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	var kid string
	var claims verifiedClaims
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		// WithValidMethods has already refused every other alg; checking
		// again costs nothing and keeps this function safe on its own.
		if t.Method != jwt.SigningMethodES256 || t.Header["alg"] != signingAlg {
			return nil, fmt.Errorf("alg %v not accepted", t.Header["alg"])
		}
		if len(t.Signature) != 64 || new(big.Int).SetBytes(t.Signature[32:]).Cmp(p256HalfN) > 0 {
			return nil, errors.New("non-canonical ES256 signature")
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New(`"crit" header not supported`)
		}
		if typ, ok := t.Header["typ"]; ok && typ != "JWT" {
			return nil, fmt.Errorf("typ %v not accepted", typ)
		}
		k, _ := t.Header["kid"].(string)
		if k == "" {
			return nil, errors.New("no kid")
		}
		pub, ok := i.keys.PublicKey(k)
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", clip(k))
		}
		kid = k
		return pub, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	exp := claims.ExpiresAt.Time // present: WithExpirationRequired
	if !now.Before(exp) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenExpired)
	}
	return &Claims{
		Issuer:    claims.Issuer,
		Subject:   claims.Subject,
		Audience:  claims.Audience[0],
		ExpiresAt: exp,
		NotBefore: claims.NotBefore.Time,
		IssuedAt:  claims.IssuedAt.Time,
		ID:        claims.ID,
		KeyID:     kid,
		Access:    claims.Access,
		Kind:      claims.Kind,
		Env:       claims.Env,
	}, nil
}
