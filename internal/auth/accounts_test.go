package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testArgon2 keeps tests fast; the real cost is checked once, in
// TestDefaultArgon2Params.
var testArgon2 = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

const testPassword = "correct horse battery"

// acctClock is a settable clock for expiry tests.
type acctClock struct {
	mu sync.Mutex
	t  time.Time
}

func newAcctClock() *acctClock {
	return &acctClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *acctClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *acctClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openTestAccounts(t *testing.T, path string, clock *acctClock) *Accounts {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "auth.db")
	}
	opts := AccountsOptions{Argon2: testArgon2}
	if clock != nil {
		opts.Now = clock.Now
	}
	a, err := OpenAccounts(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func mustCredentialError(t *testing.T, err error, reason string) {
	t.Helper()
	var ce *CredentialError
	if !errors.As(err, &ce) || !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("err = %v, want a CredentialError (%s)", err, reason)
	}
	if reason != "" && ce.Reason != reason {
		t.Fatalf("reason = %q, want %q", ce.Reason, reason)
	}
	if err.Error() != ErrBadCredentials.Error() {
		t.Fatalf("message %q reveals more than %q", err.Error(), ErrBadCredentials.Error())
	}
}

func TestAddUserValidation(t *testing.T) {
	ctx := context.Background()
	a := openTestAccounts(t, "", nil)
	if err := a.AddUser(ctx, "taken", RoleMember, testPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateRobot(ctx, "bot", []Grant{{Glob: "a/*", Actions: []Action{ActionPull}}}, time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, password string
		role                 Role
		want                 error
	}{
		{"ok", "alice", testPassword, RoleMember, nil},
		{"ok admin", "root.ops_1-x", testPassword, RoleAdmin, nil},
		{"64 chars", strings.Repeat("a", 64), testPassword, RoleMember, nil},
		{"unicode password of 12 runes", "uni", "ääääääääääää", RoleMember, nil},
		{"65 chars", strings.Repeat("a", 65), testPassword, RoleMember, ErrInvalidName},
		{"empty name", "", testPassword, RoleMember, ErrInvalidName},
		{"upper case", "Alice", testPassword, RoleMember, ErrInvalidName},
		{"leading dot", ".alice", testPassword, RoleMember, ErrInvalidName},
		{"leading dash", "-alice", testPassword, RoleMember, ErrInvalidName},
		{"slash", "a/b", testPassword, RoleMember, ErrInvalidName},
		{"colon", "a:b", testPassword, RoleMember, ErrInvalidName},
		{"space", "a b", testPassword, RoleMember, ErrInvalidName},
		{"11 chars", "bob", "12345678901", RoleMember, ErrWeakPassword},
		{"empty password", "bob", "", RoleMember, ErrWeakPassword},
		{"invalid utf-8", "bob", "\xff\xfe123456789012", RoleMember, ErrWeakPassword},
		{"huge password", "bob", strings.Repeat("x", maxSecretLength+1), RoleMember, ErrWeakPassword},
		{"no role", "bob", testPassword, "", ErrInvalidRole},
		{"unknown role", "bob", testPassword, "owner", ErrInvalidRole},
		{"duplicate user", "taken", testPassword, RoleMember, ErrExists},
		{"name of a robot", "bot", testPassword, RoleMember, ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.AddUser(ctx, tt.user, tt.role, tt.password)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("AddUser(%q) = %v, want %v", tt.user, err, tt.want)
			}
			if tt.want != nil {
				return
			}
			if _, err := a.Authenticate(ctx, tt.user, tt.password, "test"); err != nil {
				t.Fatalf("Authenticate after AddUser: %v", err)
			}
		})
	}
}

func TestUsersCRUD(t *testing.T) {
	ctx := context.Background()
	clock := newAcctClock()
	a := openTestAccounts(t, "", clock)
	for _, u := range []struct {
		name string
		role Role
	}{{"carol", RoleMember}, {"admin", RoleAdmin}, {"bob", RoleMember}} {
		if err := a.AddUser(ctx, u.name, u.role, testPassword); err != nil {
			t.Fatal(err)
		}
	}
	us, err := a.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range us {
		names = append(names, u.Name+":"+string(u.Role))
	}
	if got, want := strings.Join(names, " "), "admin:admin bob:member carol:member"; got != want {
		t.Fatalf("ListUsers = %s, want %s", got, want)
	}
	u, err := a.User(ctx, "bob")
	if err != nil || u.Role != RoleMember || !u.Created.Equal(clock.Now()) {
		t.Fatalf("User(bob) = %+v, %v", u, err)
	}

	clock.Advance(time.Hour)
	if err := a.SetPassword(ctx, "bob", "a new password!"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "bob", testPassword, ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password after SetPassword: %v", err)
	}
	if p, err := a.Authenticate(ctx, "bob", "a new password!", ""); err != nil || p != (Principal{Name: "bob", Kind: KindUser, Role: RoleMember}) {
		t.Fatalf("new password: %+v, %v", p, err)
	}
	if u, _ := a.User(ctx, "bob"); !u.PasswordChanged.Equal(clock.Now()) {
		t.Fatalf("PasswordChanged = %v, want %v", u.PasswordChanged, clock.Now())
	}
	for _, tt := range []struct {
		name, user, password string
		want                 error
	}{
		{"short", "bob", "short", ErrWeakPassword},
		{"unknown", "nobody", testPassword, ErrNotFound},
	} {
		if err := a.SetPassword(ctx, tt.user, tt.password); !errors.Is(err, tt.want) {
			t.Errorf("%s: SetPassword = %v, want %v", tt.name, err, tt.want)
		}
	}

	if err := a.RemoveUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveUser(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second RemoveUser = %v", err)
	}
	if _, err := a.User(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("User after remove = %v", err)
	}
	if _, err := a.Authenticate(ctx, "bob", "a new password!", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("removed user authenticated: %v", err)
	}
	// The name is free again.
	if err := a.AddUser(ctx, "bob", RoleMember, testPassword); err != nil {
		t.Fatal(err)
	}

	// The last admin stays; with a second one, either may go.
	if err := a.RemoveUser(ctx, "admin"); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("removing the last admin = %v", err)
	}
	if err := a.AddUser(ctx, "admin2", RoleAdmin, testPassword); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveUser(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
}

func TestUserRobotNamesAreDistinct(t *testing.T) {
	ctx := context.Background()
	a := openTestAccounts(t, "", nil)
	if err := a.AddUser(ctx, "alice", RoleMember, testPassword); err != nil {
		t.Fatal(err)
	}
	grants := []Grant{{Glob: "a/*", Actions: []Action{ActionPull}}}
	if _, err := a.CreateRobot(ctx, "ci", grants, time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fn   func() error
		want error
	}{
		{"robot named like a user", func() error { _, err := a.CreateRobot(ctx, "alice", grants, time.Time{}, ""); return err }, ErrExists},
		{"user rm on a robot", func() error { return a.RemoveUser(ctx, "ci") }, ErrNotFound},
		{"robot rm on a user", func() error { return a.RemoveRobot(ctx, "alice") }, ErrNotFound},
		{"rotate a user", func() error { _, err := a.RotateRobot(ctx, "alice"); return err }, ErrNotFound},
		{"passwd a robot", func() error { return a.SetPassword(ctx, "ci", testPassword) }, ErrNotFound},
		{"User of a robot", func() error { _, err := a.User(ctx, "ci"); return err }, ErrNotFound},
		{"Robot of a user", func() error { _, err := a.Robot(ctx, "alice"); return err }, ErrNotFound},
	}
	for _, tt := range tests {
		if err := tt.fn(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestRobots(t *testing.T) {
	ctx := context.Background()
	clock := newAcctClock()
	a := openTestAccounts(t, "", clock)
	grants := []Grant{
		{Glob: "team/*", Actions: []Action{ActionPush, ActionPull}},
		{Glob: "team/*", Actions: []Action{ActionDelete, ActionPull}}, // merged
		{Glob: "base/**", Actions: []Action{ActionPull}},
	}
	secret, err := a.CreateRobot(ctx, "ci", grants, clock.Now().Add(90*24*time.Hour), "prod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "bwk_") || len(secret) != 4+43 {
		t.Fatalf("secret %q: want bwk_ + 43 base64url characters", secret)
	}
	p, err := a.Authenticate(ctx, "ci", secret, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Principal{Name: "ci", Kind: KindRobot, Env: "prod"}); p != want {
		t.Fatalf("principal = %+v, want %+v", p, want)
	}
	rb, err := a.Robot(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rb.Grants); got != "[{base/** [pull]} {team/* [pull push delete]}]" {
		t.Fatalf("grants = %s", got)
	}
	if g, err := a.Grants(ctx, p); err != nil || fmt.Sprint(g) != fmt.Sprint(rb.Grants) {
		t.Fatalf("Grants(robot) = %v, %v", g, err)
	}
	if !rb.Expires.Equal(clock.Now().Add(90*24*time.Hour)) || rb.Env != "prod" {
		t.Fatalf("robot = %+v", rb)
	}
	// The database holds only a hash.
	var stored string
	if err := a.r.QueryRow(`SELECT secret FROM accounts WHERE name = 'ci'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, secret) || len(stored) != 64 {
		t.Fatalf("stored secret %q is not a sha256", stored)
	}

	// Rotate: old secret fails at once, new one works, grants unchanged.
	newSecret, err := a.RotateRobot(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if newSecret == secret {
		t.Fatal("rotation returned the same secret")
	}
	_, err = a.Authenticate(ctx, "ci", secret, "")
	mustCredentialError(t, err, "wrong secret")
	if _, err := a.Authenticate(ctx, "ci", newSecret, ""); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	if rb2, _ := a.Robot(ctx, "ci"); fmt.Sprint(rb2.Grants) != fmt.Sprint(rb.Grants) {
		t.Fatalf("grants changed by rotation: %v", rb2.Grants)
	}

	// Expiry.
	clock.Advance(90*24*time.Hour - time.Second)
	if _, err := a.Authenticate(ctx, "ci", newSecret, ""); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	clock.Advance(time.Second)
	_, err = a.Authenticate(ctx, "ci", newSecret, "")
	mustCredentialError(t, err, "robot expired")
	if rs, _ := a.ListRobots(ctx); len(rs) != 1 || !rs[0].Expired(clock.Now()) {
		t.Fatalf("ListRobots = %+v, want one expired robot", rs)
	}

	// Remove.
	if err := a.RemoveRobot(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveRobot(ctx, "ci"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second RemoveRobot = %v", err)
	}
	if _, err := a.Grants(ctx, p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Grants of a removed robot = %v", err)
	}
	var n int
	a.r.QueryRow(`SELECT count(*) FROM grants`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d grants left after RemoveRobot", n)
	}
}

func TestCreateRobotValidation(t *testing.T) {
	ctx := context.Background()
	clock := newAcctClock()
	a := openTestAccounts(t, "", clock)
	pull := []Grant{{Glob: "a/*", Actions: []Action{ActionPull}}}
	tests := []struct {
		name, robot string
		grants      []Grant
		expires     time.Time
		env         string
		want        error
	}{
		{"ok", "ok", pull, time.Time{}, "", nil},
		{"ok with env", "ok2", pull, clock.Now().Add(time.Minute), "staging", nil},
		{"bad name", "CI", pull, time.Time{}, "", ErrInvalidName},
		{"no grants", "r1", nil, time.Time{}, "", ErrInvalidGrant},
		{"bad glob", "r2", []Grant{{Glob: "team/../prod", Actions: []Action{ActionPull}}}, time.Time{}, "", ErrInvalidGrant},
		{"empty glob", "r3", []Grant{{Glob: "", Actions: []Action{ActionPull}}}, time.Time{}, "", ErrInvalidGrant},
		{"unknown action", "r4", []Grant{{Glob: "a", Actions: []Action{"admin"}}}, time.Time{}, "", ErrInvalidGrant},
		{"wildcard action", "r5", []Grant{{Glob: "a", Actions: []Action{"*"}}}, time.Time{}, "", ErrInvalidGrant},
		{"no actions", "r6", []Grant{{Glob: "a"}}, time.Time{}, "", ErrInvalidGrant},
		{"expired already", "r7", pull, clock.Now(), "", ErrInvalidExpiry},
		{"bad env", "r8", pull, time.Time{}, "Prod Env", ErrInvalidEnv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret, err := a.CreateRobot(ctx, tt.robot, tt.grants, tt.expires, tt.env)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CreateRobot = %v, want %v", err, tt.want)
			}
			if err != nil && secret != "" {
				t.Fatal("secret returned with an error")
			}
		})
	}
}

func TestGrantMergeAndRevoke(t *testing.T) {
	ctx := context.Background()
	a := openTestAccounts(t, "", nil)
	if err := a.AddUser(ctx, "alice", RoleMember, testPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateRobot(ctx, "ci", []Grant{{Glob: "a", Actions: []Action{ActionPull}}}, time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	alice := Principal{Name: "alice", Kind: KindUser, Role: RoleMember}
	steps := []struct {
		name string
		do   func() error
		want error
		// grants after the step, printed
		after string
	}{
		{"none yet", func() error { return nil }, nil, "[]"},
		{"grant pull", func() error { return a.Grant(ctx, "alice", "team/*", []Action{ActionPull}) }, nil, "[{team/* [pull]}]"},
		{"merge push", func() error { return a.Grant(ctx, "alice", "team/*", []Action{ActionPush, ActionPull}) }, nil, "[{team/* [pull push]}]"},
		{"second glob", func() error { return a.Grant(ctx, "alice", "base/**", []Action{ActionDelete}) }, nil, "[{base/** [delete]} {team/* [pull push]}]"},
		{"bad action", func() error { return a.Grant(ctx, "alice", "x", []Action{"write"}) }, ErrInvalidGrant, "[{base/** [delete]} {team/* [pull push]}]"},
		{"no action", func() error { return a.Grant(ctx, "alice", "x", nil) }, ErrInvalidGrant, "[{base/** [delete]} {team/* [pull push]}]"},
		{"bad glob", func() error { return a.Grant(ctx, "alice", "a//b", []Action{ActionPull}) }, ErrInvalidGrant, "[{base/** [delete]} {team/* [pull push]}]"},
		{"unknown user", func() error { return a.Grant(ctx, "nobody", "x", []Action{ActionPull}) }, ErrNotFound, "[{base/** [delete]} {team/* [pull push]}]"},
		{"robot", func() error { return a.Grant(ctx, "ci", "x", []Action{ActionPull}) }, ErrRobotGrants, "[{base/** [delete]} {team/* [pull push]}]"},
		{"revoke", func() error { return a.Revoke(ctx, "alice", "team/*") }, nil, "[{base/** [delete]}]"},
		{"revoke again", func() error { return a.Revoke(ctx, "alice", "team/*") }, ErrNoGrant, "[{base/** [delete]}]"},
		{"revoke robot", func() error { return a.Revoke(ctx, "ci", "a") }, ErrRobotGrants, "[{base/** [delete]}]"},
		{"revoke unknown user", func() error { return a.Revoke(ctx, "nobody", "a") }, ErrNotFound, "[{base/** [delete]}]"},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
		g, err := a.Grants(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(g); got != s.after && !(s.after == "[]" && g == nil) {
			t.Fatalf("%s: grants = %s, want %s", s.name, got, s.after)
		}
	}
	// Admins' grants are returned as stored; anonymous has none here.
	if g, err := a.Grants(ctx, Principal{Kind: KindAnonymous}); err != nil || g != nil {
		t.Fatalf("Grants(anonymous) = %v, %v", g, err)
	}
	// A stale principal of the wrong kind is not found.
	if _, err := a.Grants(ctx, Principal{Name: "alice", Kind: KindRobot}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Grants(wrong kind) = %v", err)
	}
	// Removing the user removes the grants.
	if err := a.RemoveUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddUser(ctx, "alice", RoleMember, testPassword); err != nil {
		t.Fatal(err)
	}
	if g, _ := a.Grants(ctx, alice); len(g) != 0 {
		t.Fatalf("re-created user inherited grants %v", g)
	}
}

func TestAuthenticateRefusals(t *testing.T) {
	ctx := context.Background()
	clock := newAcctClock()
	a := openTestAccounts(t, "", clock)
	if err := a.AddUser(ctx, "alice", RoleMember, testPassword); err != nil {
		t.Fatal(err)
	}
	pull := []Grant{{Glob: "a", Actions: []Action{ActionPull}}}
	removed, _ := a.CreateRobot(ctx, "removed", pull, time.Time{}, "")
	if err := a.RemoveRobot(ctx, "removed"); err != nil {
		t.Fatal(err)
	}
	expiring, _ := a.CreateRobot(ctx, "expiring", pull, clock.Now().Add(time.Hour), "")
	live, _ := a.CreateRobot(ctx, "live", pull, time.Time{}, "")
	clock.Advance(time.Hour)

	tests := []struct {
		name, user, secret string
		reason             string // "" = success
		hashes             int64  // argon2 runs this login must cost
	}{
		{"user ok", "alice", testPassword, "", 1},
		{"wrong password", "alice", testPassword + "x", "wrong password", 1},
		{"empty password", "alice", "", "wrong password", 1},
		{"password with extra bytes", "alice", testPassword + strings.Repeat("x", maxSecretLength), "wrong password", 1},
		{"unknown user", "mallory", testPassword, "unknown account", 1},
		{"malformed name", "../Admin", testPassword, "unknown account", 1},
		{"empty name", "", "", "unknown account", 1},
		{"removed robot", "removed", removed, "unknown account", 1},
		{"expired robot", "expiring", expiring, "robot expired", 0},
		{"robot ok", "live", live, "", 0},
		{"robot wrong secret", "live", expiring, "wrong secret", 0},
		{"robot secret with suffix", "live", live + "x", "wrong secret", 0},
		{"robot empty secret", "live", "", "wrong secret", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.hashes.Load()
			p, err := a.Authenticate(ctx, tt.user, tt.secret, "192.0.2.1")
			if got := a.hashes.Load() - before; got != tt.hashes {
				t.Errorf("argon2 ran %d times, want %d (unknown names must cost what users cost)", got, tt.hashes)
			}
			if tt.reason == "" {
				if err != nil || p.Name != tt.user {
					t.Fatalf("Authenticate = %+v, %v", p, err)
				}
				return
			}
			mustCredentialError(t, err, tt.reason)
			if p != (Principal{}) {
				t.Fatalf("refusal returned principal %+v", p)
			}
		})
	}
}

func TestAuthenticateCanceled(t *testing.T) {
	a := openTestAccounts(t, "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Authenticate(ctx, "nobody", "x", "")
	if err == nil || errors.Is(err, ErrBadCredentials) {
		t.Fatalf("canceled Authenticate = %v, want a non-credential error", err)
	}
}

func TestRefreshTokens(t *testing.T) {
	ctx := context.Background()
	clock := newAcctClock()
	a := openTestAccounts(t, "", clock)
	if err := a.AddUser(ctx, "alice", RoleMember, testPassword); err != nil {
		t.Fatal(err)
	}
	if err := a.AddUser(ctx, "bob", RoleAdmin, testPassword); err != nil {
		t.Fatal(err)
	}
	pull := []Grant{{Glob: "a", Actions: []Action{ActionPull}}}
	for _, name := range []string{"ci", "gone"} {
		if _, err := a.CreateRobot(ctx, name, pull, time.Time{}, "prod"); err != nil {
			t.Fatal(err)
		}
	}
	issue := func(p Principal) string {
		t.Helper()
		tok, err := a.IssueRefreshToken(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	alice := Principal{Name: "alice", Kind: KindUser, Role: RoleMember}
	bob := Principal{Name: "bob", Kind: KindUser, Role: RoleAdmin}
	ci := Principal{Name: "ci", Kind: KindRobot, Env: "prod"}

	tests := []struct {
		name   string
		p      Principal
		change func() // between issue and redeem
		reason string // "" = redeemed
	}{
		{"user ok", alice, func() {}, ""},
		{"robot ok", ci, func() {}, ""},
		{"after 29 days", alice, func() { clock.Advance(29 * 24 * time.Hour) }, ""},
		{"after 30 days", alice, func() { clock.Advance(30 * 24 * time.Hour) }, "refresh token expired"},
		{"after password change", alice, func() {
			if err := a.SetPassword(ctx, "alice", "another password"); err != nil {
				t.Fatal(err)
			}
		}, "unknown refresh token"},
		{"after robot rotation", ci, func() {
			if _, err := a.RotateRobot(ctx, "ci"); err != nil {
				t.Fatal(err)
			}
		}, "unknown refresh token"},
		{"after robot removal", Principal{Name: "gone", Kind: KindRobot, Env: "prod"}, func() {
			if err := a.RemoveRobot(ctx, "gone"); err != nil {
				t.Fatal(err)
			}
		}, "unknown refresh token"},
		{"after user removal", bob, func() {
			if err := a.AddUser(ctx, "admin2", RoleAdmin, testPassword); err != nil {
				t.Fatal(err)
			}
			if err := a.RemoveUser(ctx, "bob"); err != nil {
				t.Fatal(err)
			}
			// Re-creating the name does not revive the token.
			if err := a.AddUser(ctx, "bob", RoleAdmin, testPassword); err != nil {
				t.Fatal(err)
			}
		}, "unknown refresh token"},
		{"after robot expiry", Principal{Name: "short", Kind: KindRobot}, func() { clock.Advance(time.Hour) }, "robot expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.p.Name == "short" {
				if _, err := a.CreateRobot(ctx, "short", pull, clock.Now().Add(time.Hour), ""); err != nil {
					t.Fatal(err)
				}
			}
			tok := issue(tt.p)
			if !strings.HasPrefix(tok, "bwr_") {
				t.Fatalf("token %q lacks its prefix", tok)
			}
			tt.change()
			p, err := a.RedeemRefreshToken(ctx, tok, "192.0.2.1")
			if tt.reason == "" {
				if err != nil || p != tt.p {
					t.Fatalf("Redeem = %+v, %v, want %+v", p, err, tt.p)
				}
				// Redeemable more than once, until it expires.
				if _, err := a.RedeemRefreshToken(ctx, tok, ""); err != nil {
					t.Fatalf("second redeem: %v", err)
				}
				return
			}
			mustCredentialError(t, err, tt.reason)
		})
	}

	// The generation check alone (without the delete) refuses a token of an
	// older password: simulate a row that escaped deletion.
	tok := issue(alice)
	if _, err := a.w.Exec(`UPDATE accounts SET generation = generation + 1 WHERE name = 'alice'`); err != nil {
		t.Fatal(err)
	}
	_, err := a.RedeemRefreshToken(ctx, tok, "")
	mustCredentialError(t, err, "credentials changed since the refresh token was issued")

	for _, bad := range []string{"", "bwr_", "garbage", strings.Repeat("x", 5000)} {
		_, err := a.RedeemRefreshToken(ctx, bad, "")
		mustCredentialError(t, err, "unknown refresh token")
	}
	if _, err := a.IssueRefreshToken(ctx, Principal{Kind: KindAnonymous}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("refresh token for anonymous: %v", err)
	}
	if _, err := a.IssueRefreshToken(ctx, Principal{Name: "nobody", Kind: KindUser}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refresh token for unknown account: %v", err)
	}
	// Stored as hashes; expired ones are pruned at the next issue.
	clock.Advance(31 * 24 * time.Hour)
	fresh := issue(alice)
	var n int
	a.r.QueryRow(`SELECT count(*) FROM refresh_tokens`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d refresh tokens stored after pruning, want 1", n)
	}
	var stored []byte
	a.r.QueryRow(`SELECT hash FROM refresh_tokens`).Scan(&stored)
	if len(stored) != 32 || strings.Contains(string(stored), fresh) {
		t.Fatalf("stored refresh token is not a sha256: %q", stored)
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		setup    func(a *Accounts)
		password string
		created  bool
		err      error
	}{
		{"generated", func(*Accounts) {}, "", true, nil},
		{"given", func(*Accounts) {}, "from the environment", true, nil},
		{"given too short", func(*Accounts) {}, "short", false, ErrWeakPassword},
		{"an admin exists", func(a *Accounts) {
			if err := a.AddUser(ctx, "root", RoleAdmin, testPassword); err != nil {
				t.Fatal(err)
			}
		}, "", false, nil},
		{"admin name taken by a member", func(a *Accounts) {
			if err := a.AddUser(ctx, "admin", RoleMember, testPassword); err != nil {
				t.Fatal(err)
			}
		}, "", false, ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := openTestAccounts(t, "", nil)
			tt.setup(a)
			created, generated, err := a.EnsureAdmin(ctx, tt.password)
			if created != tt.created || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("EnsureAdmin = %v, %q, %v; want created %v, err %v", created, generated, err, tt.created, tt.err)
			}
			if !created {
				if generated != "" {
					t.Fatal("a password was generated but not used")
				}
				return
			}
			password := tt.password
			if password == "" {
				if len(generated) < MinPasswordLength {
					t.Fatalf("generated password %q too short", generated)
				}
				password = generated
			} else if generated != "" {
				t.Fatal("generated a password although one was given")
			}
			p, err := a.Authenticate(ctx, "admin", password, "")
			if err != nil || p.Role != RoleAdmin {
				t.Fatalf("bootstrap admin login: %+v, %v", p, err)
			}
			// Idempotent: the next start does nothing.
			created, generated, err = a.EnsureAdmin(ctx, "")
			if created || generated != "" || err != nil {
				t.Fatalf("second EnsureAdmin = %v, %q, %v", created, generated, err)
			}
			if _, err := a.Authenticate(ctx, "admin", password, ""); err != nil {
				t.Fatalf("second EnsureAdmin changed the password: %v", err)
			}
		})
	}
}

// TestTwoProcesses simulates the server and `bulwark admin` on one file:
// two *Accounts, each with its own connections, writing and reading at
// once. Changes made through one are visible to the other at once.
func TestTwoProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "auth.db")
	server := openTestAccounts(t, path, nil)
	cli := openTestAccounts(t, path, nil)

	secret, err := cli.CreateRobot(ctx, "ci", []Grant{{Glob: "a", Actions: []Action{ActionPull}}}, time.Time{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Authenticate(ctx, "ci", secret, ""); err != nil {
		t.Fatalf("server does not see the CLI's robot: %v", err)
	}
	rotated, err := cli.RotateRobot(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Authenticate(ctx, "ci", secret, ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("server still accepts the rotated secret: %v", err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 4 {
		wg.Go(func() { // the CLI: account changes
			for j := range 5 {
				name := fmt.Sprintf("u%d-%d", i, j)
				if err := cli.AddUser(ctx, name, RoleMember, testPassword); err != nil {
					errs <- err
					return
				}
				if err := cli.Grant(ctx, name, "team/*", []Action{ActionPull}); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() { // the server: logins, refresh tokens, grants
			for range 10 {
				p, err := server.Authenticate(ctx, "ci", rotated, "")
				if err != nil {
					errs <- err
					return
				}
				tok, err := server.IssueRefreshToken(ctx, p)
				if err != nil {
					errs <- err
					return
				}
				if _, err := server.RedeemRefreshToken(ctx, tok, ""); err != nil {
					errs <- err
					return
				}
				if _, err := server.Grants(ctx, p); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	us, err := server.ListUsers(ctx)
	if err != nil || len(us) != 20 {
		t.Fatalf("server sees %d users (%v), want 20", len(us), err)
	}
	for _, u := range us {
		if len(u.Grants) != 1 {
			t.Fatalf("user %s has grants %v", u.Name, u.Grants)
		}
	}
}

// TestTwoRealProcesses is TestTwoProcesses with a real second process (this
// test binary, re-executed): SQLite's locking between processes is not the
// same code path as between connections of one process.
func TestTwoRealProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "auth.db")
	server := openTestAccounts(t, path, nil)
	secret, err := server.CreateRobot(ctx, "ci", []Grant{{Glob: "a", Actions: []Action{ActionPull}}}, time.Time{}, "")
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "BULWARK_TEST_ACCOUNTS_CHILD="+path)
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	// The server's side: logins, refresh tokens and grants while the child
	// writes.
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out.String())
			}
			running = false
		default:
		}
		p, err := server.Authenticate(ctx, "ci", secret, "")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := server.IssueRefreshToken(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := server.RedeemRefreshToken(ctx, tok, ""); err != nil {
			t.Fatal(err)
		}
	}
	us, err := server.ListUsers(ctx)
	if err != nil || len(us) != 30 {
		t.Fatalf("server sees %d users (%v), want 30\n%s", len(us), err, out.String())
	}
}

// accountsChild is TestTwoRealProcesses' second process, entered from
// TestMain when the test binary is re-executed with
// BULWARK_TEST_ACCOUNTS_CHILD set (so it is not a test that a normal run
// would report as skipped).
func accountsChild(path string) error {
	ctx := context.Background()
	a, err := OpenAccounts(ctx, path, AccountsOptions{Argon2: testArgon2})
	if err != nil {
		return err
	}
	defer a.Close()
	for i := range 30 {
		name := fmt.Sprintf("u%d", i)
		if err := a.AddUser(ctx, name, RoleMember, testPassword); err != nil {
			return err
		}
		if err := a.Grant(ctx, name, "team/*", []Action{ActionPull}); err != nil {
			return err
		}
	}
	return nil
}

func TestMain(m *testing.M) {
	if path := os.Getenv("BULWARK_TEST_ACCOUNTS_CHILD"); path != "" {
		if err := accountsChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "accounts child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestAccountsFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := AccountsPath(filepath.Join(dir, "data"))
	a := openTestAccounts(t, path, nil)
	if err := a.AddUser(ctx, "alice", RoleMember, testPassword); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth.db mode %v, want 0600", fi.Mode().Perm())
	}
	var hash string
	a.r.QueryRow(`SELECT secret FROM accounts WHERE name = 'alice'`).Scan(&hash)
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(hash, testPassword) {
		t.Fatalf("stored hash %q", hash)
	}
	a.Close()

	// Reopening keeps the data; a newer schema is refused.
	b := openTestAccounts(t, path, nil)
	if _, err := b.Authenticate(ctx, "alice", testPassword, ""); err != nil {
		t.Fatal(err)
	}
	b.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenAccounts(ctx, path, AccountsOptions{Argon2: testArgon2}); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("newer schema: %v", err)
	}
}

func TestArgon2HashFormat(t *testing.T) {
	a := openTestAccounts(t, "", nil)
	ctx := context.Background()
	good, err := a.hashPassword(ctx, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, stored string
		ok           bool
	}{
		{"good", good, true},
		{"empty", "", false},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuv", false},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1), false},
		{"huge memory", strings.Replace(good, "m=64,", "m=99999999,", 1), false},
		{"zero time", strings.Replace(good, "t=1,", "t=0,", 1), false},
		{"bad salt", strings.Join(append(strings.Split(good, "$")[:4], "!!", strings.Split(good, "$")[5]), "$"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.hashes.Load()
			ok, err := a.verifyPassword(ctx, tt.stored, testPassword)
			if err != nil || ok != tt.ok {
				t.Fatalf("verifyPassword = %v, %v; want %v", ok, err, tt.ok)
			}
			if a.hashes.Load()-before != 1 {
				t.Fatal("a malformed hash must still cost one hash")
			}
		})
	}
}

// TestDefaultArgon2Params checks the production parameters are the
// documented ones and that one login costs what Argon2Params says (loosely:
// a shared CI machine is noisy, so only gross regressions fail).
func TestDefaultArgon2Params(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes with production cost")
	}
	ctx := context.Background()
	a, err := OpenAccounts(ctx, filepath.Join(t.TempDir(), "auth.db"), AccountsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.AddUser(ctx, "alice", RoleMember, testPassword); err != nil {
		t.Fatal(err)
	}
	var hash string
	a.r.QueryRow(`SELECT secret FROM accounts WHERE name = 'alice'`).Scan(&hash)
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("default hash %q", hash)
	}
	best := time.Hour
	for range 3 {
		start := time.Now()
		if _, err := a.Authenticate(ctx, "alice", testPassword, ""); err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(start))
	}
	t.Logf("login with default argon2id parameters: %v", best)
	if best < 2*time.Millisecond || best > 2*time.Second {
		t.Fatalf("login cost %v is far from the documented ~25 ms", best)
	}
}

// The token service (service.go) takes the account store as an
// Authenticator.
var _ Authenticator = (*Accounts)(nil)
