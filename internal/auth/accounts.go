package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/bulwark-dev/bulwark/internal/sqlitedb"
)

//go:embed accounts_schema.sql
var accountsSchema string

// accountsSchemaVersion is the PRAGMA user_version accounts_schema.sql sets.
const accountsSchemaVersion = 1

// Errors of the account store, besides the shared ones in auth.go.
var (
	ErrInvalidName   = errors.New("invalid account name")
	ErrWeakPassword  = errors.New("password too weak")
	ErrInvalidRole   = errors.New("invalid role")
	ErrInvalidEnv    = errors.New("invalid environment name")
	ErrInvalidExpiry = errors.New("invalid expiry")
	ErrLastAdmin     = errors.New("cannot remove the last admin")
	ErrNoGrant       = errors.New("no such grant")
	// ErrRobotGrants refuses Grant/Revoke on a robot. A robot's grants are
	// fixed when it is created, so what a leaked secret can do is exactly
	// what its creator saw; to change them, create a new robot.
	ErrRobotGrants = errors.New("a robot's grants are fixed when it is created")
)

// Limits on what accounts accept.
const (
	MinPasswordLength = 12 // characters (runes)
	// maxSecretLength bounds passwords and secrets in bytes: argon2 digests
	// any length, but nobody needs more and a megabyte password is only a
	// way to make the server hash a megabyte.
	maxSecretLength = 1024
	// DefaultRefreshTokenTTL is how long a refresh token (what `docker
	// login` stores) stays valid unless the account changes first.
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	robotSecretPrefix      = "bwk_"
	refreshTokenPrefix     = "bwr_"
)

// Argon2Params are argon2id's cost parameters for user passwords.
//
// The defaults, time=2, memory=19 MiB, threads=1 (OWASP's recommended
// argon2id setting), cost about 25 ms per login on a 2-core machine
// (measured: median 24–26 ms, range 23–85 ms while other work ran); that
// keeps online guessing slow and a stolen auth.db expensive, while `docker
// login` and basic-auth token requests stay fast. threads=1 because logins
// arrive concurrently: more lanes would not raise throughput, only make one
// login steal every core. Memory is the GPU-resistance knob; 64 MiB cost
// 50–90 ms here even with 2 threads. Parameters are stored with each hash,
// so changing them affects only passwords set afterwards.
type Argon2Params struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

func defaultArgon2Params() Argon2Params {
	return Argon2Params{Time: 2, MemoryKiB: 19 * 1024, Threads: 1}
}

// AccountsOptions tune OpenAccounts. The zero value is right for production.
type AccountsOptions struct {
	// Now overrides the clock, for tests of expiry.
	Now func() time.Time
	// Argon2 overrides the password hashing cost (zero: the defaults
	// documented on Argon2Params). Tests use tiny values.
	Argon2 Argon2Params
	// RefreshTokenTTL overrides DefaultRefreshTokenTTL.
	RefreshTokenTTL time.Duration
	// Logger receives failed logins (at debug: the caller audits them) and
	// account changes. Default: discard.
	Logger *slog.Logger
}

// Accounts stores users, robots, their grants and refresh tokens in one
// SQLite file. Several processes may have it open at once (the server and
// `bulwark admin`): every read goes to the file, nothing is cached, so a
// rotation or removal made by one process is seen by the next login in
// another.
type Accounts struct {
	w          *sql.DB // one connection: writes queue here, not in SQLite
	r          *sql.DB
	now        func() time.Time
	params     Argon2Params
	refreshTTL time.Duration
	log        *slog.Logger
	// slots bounds concurrent argon2 hashes: each holds MemoryKiB, so a
	// burst of logins must not allocate without bound.
	slots chan struct{}
	// dummyHash is verified against for unknown accounts so that they cost
	// what a real user's login costs.
	dummyHash string
	// hashes counts argon2 computations; tests use it to check that every
	// path through Authenticate hashes.
	hashes atomic.Int64
}

// AccountsPath is where a data directory keeps its accounts database.
func AccountsPath(dataDir string) string { return filepath.Join(dataDir, "auth.db") }

// OpenAccounts opens or creates the accounts database at path.
func OpenAccounts(ctx context.Context, path string, opts AccountsOptions) (*Accounts, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = defaultArgon2Params()
	}
	if p := opts.Argon2; p.Time < 1 || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) {
		return nil, fmt.Errorf("argon2 parameters %+v: need time ≥ 1, threads ≥ 1, memory ≥ 8 KiB per thread", p)
	}
	if opts.RefreshTokenTTL <= 0 {
		opts.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Password hashes live here: the file is created private.
	p, err := sqlitedb.OpenPair(ctx, path, sqlitedb.PairOptions{What: "accounts database", Schema: accountsSchema, Version: accountsSchemaVersion,
		Synchronous: "FULL", ForeignKeys: true, Private: true})
	if err != nil {
		return nil, err
	}
	a := &Accounts{
		w: p.W, r: p.R, now: opts.Now, params: opts.Argon2, refreshTTL: opts.RefreshTokenTTL, log: opts.Logger,
		slots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
	}
	a.dummyHash = encodeArgon2(a.params, make([]byte, 16), make([]byte, 32))
	return a, nil
}

// Close closes the database.
func (a *Accounts) Close() error { return (&sqlitedb.Pair{W: a.w, R: a.r}).Close() }

// tx runs fn in one short IMMEDIATE transaction. Callers do slow work
// (hashing) before, never inside, so another process's writer waits at most
// milliseconds.
func (a *Accounts) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return sqlitedb.Tx(ctx, a.w, "accounts database", fn)
}

func (a *Accounts) nowNano() int64 { return a.now().UnixNano() }

// UserInfo describes a user; it never holds the password hash.
type UserInfo struct {
	Name            string
	Role            Role
	Grants          []Grant
	Created         time.Time
	PasswordChanged time.Time
}

// RobotInfo describes a robot; it never holds the secret or its hash.
type RobotInfo struct {
	Name    string
	Grants  []Grant
	Expires time.Time // zero: never
	Env     string
	Created time.Time
	Rotated time.Time // when the current secret was made
}

// Expired reports whether the robot has expired at now.
func (r RobotInfo) Expired(now time.Time) bool {
	return !r.Expires.IsZero() && !now.Before(r.Expires)
}

// account is one row of the accounts table.
type account struct {
	id            int64
	name          string
	kind          Kind
	role          Role
	secret        string
	env           string
	expires       int64
	generation    int64
	created       int64
	secretChanged int64
}

const accountColumns = `id, name, kind, role, secret, env, expires, generation, created, secret_changed`

func scanAccount(row interface{ Scan(...any) error }) (account, error) {
	var ac account
	err := row.Scan(&ac.id, &ac.name, &ac.kind, &ac.role, &ac.secret, &ac.env, &ac.expires, &ac.generation, &ac.created, &ac.secretChanged)
	return ac, err
}

type querier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// lookup returns the account called name, or ErrNotFound. When kind is not
// empty, an account of another kind is also ErrNotFound, with a message
// that says what the name is.
func lookup(ctx context.Context, q querier, name string, kind Kind) (account, error) {
	ac, err := scanAccount(q.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return ac, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return ac, fmt.Errorf("accounts database: %w", err)
	}
	if kind != "" && ac.kind != kind {
		return ac, fmt.Errorf("%w: %s is a %s, not a %s", ErrNotFound, name, ac.kind, kind)
	}
	return ac, nil
}

func (ac account) robotExpired(now time.Time) bool {
	return ac.expires != 0 && now.UnixNano() >= ac.expires
}

func (ac account) principal() Principal {
	return Principal{Name: ac.name, Kind: ac.kind, Role: ac.role, Env: ac.env}
}

// validAccountName checks the name grammar [a-z0-9][a-z0-9._-]{0,63}: safe
// in URLs, file names, log lines and the Docker token's "sub" claim.
func validAccountName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w %q: 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return fmt.Errorf("%w %q: 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", ErrInvalidName, name)
		}
	}
	return nil
}

func validPassword(password string) error {
	if !utf8.ValidString(password) {
		return fmt.Errorf("%w: not valid UTF-8", ErrWeakPassword)
	}
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return fmt.Errorf("%w: at least %d characters", ErrWeakPassword, MinPasswordLength)
	}
	if len(password) > maxSecretLength {
		return fmt.Errorf("%w: at most %d bytes", ErrWeakPassword, maxSecretLength)
	}
	return nil
}

func validRole(role Role) error {
	if role != RoleAdmin && role != RoleMember {
		return fmt.Errorf("%w %q: want admin or member", ErrInvalidRole, role)
	}
	return nil
}

// validEnv allows "" (no environment) or a name with the account grammar.
func validEnv(env string) error {
	if env == "" {
		return nil
	}
	if err := validAccountName(env); err != nil {
		return fmt.Errorf("%w %q: use a-z, 0-9, '.', '_', '-' (e.g. prod)", ErrInvalidEnv, env)
	}
	return nil
}

// ---- users ----

// AddUser creates a user. Names are shared with robots: ErrExists if either
// has it.
func (a *Accounts) AddUser(ctx context.Context, name string, role Role, password string) error {
	if err := validAccountName(name); err != nil {
		return err
	}
	if err := validRole(role); err != nil {
		return err
	}
	if err := validPassword(password); err != nil {
		return err
	}
	hash, err := a.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	return a.tx(ctx, func(tx *sql.Tx) error { return a.insertUser(ctx, tx, name, role, hash) })
}

func (a *Accounts) insertUser(ctx context.Context, tx *sql.Tx, name string, role Role, hash string) error {
	if ac, err := lookup(ctx, tx, name, ""); err == nil {
		return fmt.Errorf("%w: %s (a %s)", ErrExists, name, ac.kind)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	now := a.nowNano()
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO accounts(name, kind, role, secret, created, secret_changed) VALUES (?, 'user', ?, ?, ?, ?)`,
		name, role, hash, now, now); err != nil {
		return fmt.Errorf("accounts database: add user %s: %w", name, err)
	}
	a.log.Info("user added", "name", name, "role", role)
	return nil
}

// SetPassword replaces a user's password. Refresh tokens issued before stop
// working: whoever changes a password wants other sessions out.
func (a *Accounts) SetPassword(ctx context.Context, name, password string) error {
	if err := validPassword(password); err != nil {
		return err
	}
	hash, err := a.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	return a.tx(ctx, func(tx *sql.Tx) error {
		ac, err := lookup(ctx, tx, name, KindUser)
		if err != nil {
			return err
		}
		return a.replaceSecret(ctx, tx, ac, hash)
	})
}

// replaceSecret stores a new password hash or robot secret hash and
// invalidates the account's refresh tokens (deleted, and the generation
// bump would refuse them anyway).
func (a *Accounts) replaceSecret(ctx context.Context, tx *sql.Tx, ac account, secret string) error {
	if _, err := tx.ExecContext(ctx,
		`UPDATE accounts SET secret = ?, generation = generation + 1, secret_changed = ? WHERE id = ?`,
		secret, a.nowNano(), ac.id); err != nil {
		return fmt.Errorf("accounts database: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE account_id = ?`, ac.id); err != nil {
		return fmt.Errorf("accounts database: %w", err)
	}
	return nil
}

// RemoveUser deletes a user with its grants and refresh tokens. The last
// admin cannot be removed (ErrLastAdmin): nobody could manage accounts.
func (a *Accounts) RemoveUser(ctx context.Context, name string) error {
	return a.tx(ctx, func(tx *sql.Tx) error {
		ac, err := lookup(ctx, tx, name, KindUser)
		if err != nil {
			return err
		}
		if ac.role == RoleAdmin {
			var admins int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE kind = 'user' AND role = 'admin'`).Scan(&admins); err != nil {
				return fmt.Errorf("accounts database: %w", err)
			}
			if admins <= 1 {
				return fmt.Errorf("%w (%s); add another admin first", ErrLastAdmin, name)
			}
		}
		return a.deleteAccount(ctx, tx, ac)
	})
}

func (a *Accounts) deleteAccount(ctx context.Context, tx *sql.Tx, ac account) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, ac.id); err != nil {
		return fmt.Errorf("accounts database: remove %s: %w", ac.name, err)
	}
	a.log.Info("account removed", "name", ac.name, "kind", ac.kind)
	return nil
}

// User returns one user.
func (a *Accounts) User(ctx context.Context, name string) (UserInfo, error) {
	ac, err := lookup(ctx, a.r, name, KindUser)
	if err != nil {
		return UserInfo{}, err
	}
	grants, err := accountGrants(ctx, a.r, ac.id)
	if err != nil {
		return UserInfo{}, err
	}
	return ac.userInfo(grants), nil
}

// ListUsers returns every user, by name.
func (a *Accounts) ListUsers(ctx context.Context) ([]UserInfo, error) {
	acs, grants, err := a.list(ctx, KindUser)
	if err != nil {
		return nil, err
	}
	out := make([]UserInfo, len(acs))
	for i, ac := range acs {
		out[i] = ac.userInfo(grants[ac.id])
	}
	return out, nil
}

func (ac account) userInfo(grants []Grant) UserInfo {
	return UserInfo{
		Name: ac.name, Role: ac.role, Grants: grants,
		Created: time.Unix(0, ac.created), PasswordChanged: time.Unix(0, ac.secretChanged),
	}
}

// list reads the accounts of one kind and all their grants in one read
// transaction, so the two are consistent.
func (a *Accounts) list(ctx context.Context, kind Kind) ([]account, map[int64][]Grant, error) {
	tx, err := a.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("accounts database: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE kind = ? ORDER BY name`, kind)
	if err != nil {
		return nil, nil, fmt.Errorf("accounts database: %w", err)
	}
	var acs []account
	for rows.Next() {
		ac, err := scanAccount(rows)
		if err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("accounts database: %w", err)
		}
		acs = append(acs, ac)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("accounts database: %w", err)
	}
	grants, err := scanGrants(tx.QueryContext(ctx,
		`SELECT g.account_id, g.glob, g.actions FROM grants g JOIN accounts a ON a.id = g.account_id
		 WHERE a.kind = ? ORDER BY g.account_id, g.glob`, kind))
	if err != nil {
		return nil, nil, err
	}
	return acs, grants, nil
}

func accountGrants(ctx context.Context, q querier, id int64) ([]Grant, error) {
	m, err := scanGrants(q.QueryContext(ctx,
		`SELECT account_id, glob, actions FROM grants WHERE account_id = ? ORDER BY glob`, id))
	return m[id], err
}

func scanGrants(rows *sql.Rows, err error) (map[int64][]Grant, error) {
	if err != nil {
		return nil, fmt.Errorf("accounts database: %w", err)
	}
	defer rows.Close()
	out := map[int64][]Grant{}
	for rows.Next() {
		var (
			id            int64
			glob, actions string
		)
		if err := rows.Scan(&id, &glob, &actions); err != nil {
			return nil, fmt.Errorf("accounts database: %w", err)
		}
		out[id] = append(out[id], Grant{Glob: glob, Actions: splitGrantActions(actions)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("accounts database: %w", err)
	}
	return out, nil
}

// ---- robots ----

// CreateRobot creates a robot holding grants (at least one), expiring at
// expires (zero: never), bound to deployment environment env ("" for none),
// and returns its secret. The secret is shown only this once: only its
// sha256 is stored. A robot secret is 256 random bits, so unlike a
// password it cannot be guessed and needs no slow hash; sha256 keeps robot
// logins (every CI token request) cheap while a copy of auth.db still
// yields no usable secret.
func (a *Accounts) CreateRobot(ctx context.Context, name string, grants []Grant, expires time.Time, env string) (string, error) {
	if err := validAccountName(name); err != nil {
		return "", err
	}
	grants, err := normalizeGrants(grants)
	if err != nil {
		return "", err
	}
	if len(grants) == 0 {
		return "", fmt.Errorf("%w: a robot needs at least one grant", ErrInvalidGrant)
	}
	if err := validEnv(env); err != nil {
		return "", err
	}
	var exp int64
	if !expires.IsZero() {
		if !expires.After(a.now()) {
			return "", fmt.Errorf("%w: robot %s: %s is not in the future", ErrInvalidExpiry, name, expires.Format(time.RFC3339))
		}
		exp = expires.UnixNano()
	}
	secret, hash := newRobotSecret()
	err = a.tx(ctx, func(tx *sql.Tx) error {
		if ac, err := lookup(ctx, tx, name, ""); err == nil {
			return fmt.Errorf("%w: %s (a %s)", ErrExists, name, ac.kind)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		now := a.nowNano()
		res, err := tx.ExecContext(ctx,
			`INSERT INTO accounts(name, kind, secret, env, expires, created, secret_changed) VALUES (?, 'robot', ?, ?, ?, ?, ?)`,
			name, hash, env, exp, now, now)
		if err != nil {
			return fmt.Errorf("accounts database: create robot %s: %w", name, err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("accounts database: %w", err)
		}
		for _, g := range grants {
			if _, err := tx.ExecContext(ctx, `INSERT INTO grants(account_id, glob, actions) VALUES (?, ?, ?)`,
				id, g.Glob, joinGrantActions(g.Actions)); err != nil {
				return fmt.Errorf("accounts database: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	a.log.Info("robot created", "name", name, "env", env, "grants", len(grants))
	return secret, nil
}

// newRobotSecret returns a fresh secret and the hash to store. The prefix
// lets secret scanners (and people) recognise a leaked bulwark secret.
func newRobotSecret() (secret, hash string) {
	secret = robotSecretPrefix + randomToken()
	sum := sha256.Sum256([]byte(secret))
	return secret, hex.EncodeToString(sum[:])
}

// randomToken returns 256 random bits, base64url without padding.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand: fatal on failure)
	return base64.RawURLEncoding.EncodeToString(b)
}

// RotateRobot gives a robot a new secret and returns it. The old secret and
// the robot's refresh tokens stop working at once. Grants, environment and
// expiry are unchanged.
func (a *Accounts) RotateRobot(ctx context.Context, name string) (string, error) {
	secret, hash := newRobotSecret()
	err := a.tx(ctx, func(tx *sql.Tx) error {
		ac, err := lookup(ctx, tx, name, KindRobot)
		if err != nil {
			return err
		}
		return a.replaceSecret(ctx, tx, ac, hash)
	})
	if err != nil {
		return "", err
	}
	a.log.Info("robot secret rotated", "name", name)
	return secret, nil
}

// RemoveRobot deletes a robot with its grants and refresh tokens.
func (a *Accounts) RemoveRobot(ctx context.Context, name string) error {
	return a.tx(ctx, func(tx *sql.Tx) error {
		ac, err := lookup(ctx, tx, name, KindRobot)
		if err != nil {
			return err
		}
		return a.deleteAccount(ctx, tx, ac)
	})
}

// Robot returns one robot (never its secret).
func (a *Accounts) Robot(ctx context.Context, name string) (RobotInfo, error) {
	ac, err := lookup(ctx, a.r, name, KindRobot)
	if err != nil {
		return RobotInfo{}, err
	}
	grants, err := accountGrants(ctx, a.r, ac.id)
	if err != nil {
		return RobotInfo{}, err
	}
	return ac.robotInfo(grants), nil
}

// ListRobots returns every robot, by name, expired ones included.
func (a *Accounts) ListRobots(ctx context.Context) ([]RobotInfo, error) {
	acs, grants, err := a.list(ctx, KindRobot)
	if err != nil {
		return nil, err
	}
	out := make([]RobotInfo, len(acs))
	for i, ac := range acs {
		out[i] = ac.robotInfo(grants[ac.id])
	}
	return out, nil
}

func (ac account) robotInfo(grants []Grant) RobotInfo {
	r := RobotInfo{
		Name: ac.name, Grants: grants, Env: ac.env,
		Created: time.Unix(0, ac.created), Rotated: time.Unix(0, ac.secretChanged),
	}
	if ac.expires != 0 {
		r.Expires = time.Unix(0, ac.expires)
	}
	return r
}

// ---- grants ----

// Grant allows user the actions on repositories matching glob, adding to
// (not replacing) any actions the user already holds on the same glob.
func (a *Accounts) Grant(ctx context.Context, user, glob string, actions []Action) error {
	gs, err := normalizeGrants([]Grant{{Glob: glob, Actions: actions}})
	if err != nil {
		return err
	}
	g := gs[0]
	return a.tx(ctx, func(tx *sql.Tx) error {
		ac, err := a.grantee(ctx, tx, user)
		if err != nil {
			return err
		}
		var have string
		err = tx.QueryRowContext(ctx, `SELECT actions FROM grants WHERE account_id = ? AND glob = ?`, ac.id, g.Glob).Scan(&have)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("accounts database: %w", err)
		}
		merged, _ := normalizeGrantActions(append(splitGrantActions(have), g.Actions...))
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO grants(account_id, glob, actions) VALUES (?, ?, ?)
			 ON CONFLICT(account_id, glob) DO UPDATE SET actions = excluded.actions`,
			ac.id, g.Glob, joinGrantActions(merged)); err != nil {
			return fmt.Errorf("accounts database: %w", err)
		}
		a.log.Info("grant", "user", user, "grant", FormatGrantSpec(Grant{Glob: g.Glob, Actions: merged}))
		return nil
	})
}

// Revoke removes user's grant on glob (all its actions); ErrNoGrant if
// there is none. glob must be written as it was granted.
func (a *Accounts) Revoke(ctx context.Context, user, glob string) error {
	return a.tx(ctx, func(tx *sql.Tx) error {
		ac, err := a.grantee(ctx, tx, user)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE account_id = ? AND glob = ?`, ac.id, glob)
		if err != nil {
			return fmt.Errorf("accounts database: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s has no grant on %q", ErrNoGrant, user, glob)
		}
		a.log.Info("revoke", "user", user, "glob", glob)
		return nil
	})
}

func (a *Accounts) grantee(ctx context.Context, tx *sql.Tx, name string) (account, error) {
	ac, err := lookup(ctx, tx, name, "")
	if err != nil {
		return ac, err
	}
	if ac.kind == KindRobot {
		return ac, fmt.Errorf("%w (%s); create a new robot with the grants you want", ErrRobotGrants, name)
	}
	return ac, nil
}

// Grants returns what p has been granted, by glob. Admins' grants are
// returned as stored: callers treat RoleAdmin as allowed everything. The
// anonymous principal has no account and no grants here (anonymous pull is
// configured elsewhere). A principal whose account was removed, or whose
// kind no longer matches, is ErrNotFound.
func (a *Accounts) Grants(ctx context.Context, p Principal) ([]Grant, error) {
	if p.Kind == KindAnonymous {
		return nil, nil
	}
	ac, err := lookup(ctx, a.r, p.Name, p.Kind)
	if err != nil {
		return nil, err
	}
	return accountGrants(ctx, a.r, ac.id)
}

// ---- authentication ----

// CredentialError is a refused login or refresh token. Its message is the
// same for every reason, so it is safe to show a client; Reason is for the
// audit log and throttling.
type CredentialError struct {
	Name   string
	Reason string // e.g. "unknown account", "wrong password", "expired"
}

func (e *CredentialError) Error() string { return ErrBadCredentials.Error() }

// Unwrap makes errors.Is(err, ErrBadCredentials) true.
func (e *CredentialError) Unwrap() error { return ErrBadCredentials }

// Authenticate checks a user's password or a robot's secret. Every refusal
// is a *CredentialError (errors.Is ErrBadCredentials); other errors are
// failures of the database (or ctx) and should be answered as such, not as
// 401, so an outage does not look like a brute-force attack.
//
// Timing: a user's login costs one argon2id hash, and so does a login as an
// unknown (or malformed) name, so response time does not tell which users
// exist, which matters because passwords can be guessed. A robot's login
// is a fast sha256, so timing can tell a robot name; that gives nothing to
// attack, since its secret is 256 random bits. Secrets are compared in
// constant time (argon2 output and sha256 digests alike).
func (a *Accounts) Authenticate(ctx context.Context, name, secret, remote string) (Principal, error) {
	fail := func(reason string) (Principal, error) {
		a.log.Debug("login refused", "name", name, "remote", remote, "reason", reason)
		return Principal{}, &CredentialError{Name: name, Reason: reason}
	}
	var (
		ac  account
		err error
	)
	if validAccountName(name) != nil {
		err = fmt.Errorf("%w: %s", ErrNotFound, name)
	} else {
		ac, err = lookup(ctx, a.r, name, "")
	}
	tooLong := len(secret) > maxSecretLength
	switch {
	case errors.Is(err, ErrNotFound):
		if _, herr := a.verifyPassword(ctx, a.dummyHash, secret); herr != nil {
			return Principal{}, herr
		}
		return fail("unknown account")
	case err != nil:
		return Principal{}, err
	case ac.kind == KindUser:
		ok, herr := a.verifyPassword(ctx, ac.secret, secret)
		if herr != nil {
			return Principal{}, herr
		}
		if !ok || tooLong {
			return fail("wrong password")
		}
	default: // robot
		if !robotSecretMatches(ac.secret, secret) || tooLong {
			return fail("wrong secret")
		}
		if ac.robotExpired(a.now()) {
			return fail("robot expired")
		}
	}
	a.log.Debug("login", "name", name, "kind", ac.kind, "remote", remote)
	return ac.principal(), nil
}

func robotSecretMatches(storedHex, secret string) bool {
	want, err := hex.DecodeString(storedHex)
	if err != nil {
		return false
	}
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(want, got[:]) == 1
}

// hashPassword returns password's argon2id hash in the PHC string format,
// parameters included.
func (a *Accounts) hashPassword(ctx context.Context, password string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	key, err := a.argon2(ctx, a.params, []byte(password), salt, 32)
	if err != nil {
		return "", err
	}
	return encodeArgon2(a.params, salt, key), nil
}

// verifyPassword derives the key for password with the stored hash's salt
// and parameters and compares in constant time. A malformed stored hash
// still costs one hash with the current parameters, then fails.
func (a *Accounts) verifyPassword(ctx context.Context, stored, password string) (bool, error) {
	// Hash at most maxSecretLength bytes so that cost does not depend on
	// (attacker-chosen) length; longer input is refused by the caller.
	pw := []byte(password[:min(len(password), maxSecretLength)])
	p, salt, want, err := decodeArgon2(stored)
	if err != nil {
		a.log.Error("stored password hash is malformed", "err", err)
		p, salt, want = a.params, make([]byte, 16), nil
	}
	keyLen := uint32(len(want))
	if keyLen == 0 {
		keyLen = 32
	}
	got, err2 := a.argon2(ctx, p, pw, salt, keyLen)
	if err2 != nil {
		return false, err2
	}
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1, nil
}

// argon2 runs one argon2id derivation, waiting for a slot so that at most
// cap(slots) run at once.
func (a *Accounts) argon2(ctx context.Context, p Argon2Params, password, salt []byte, keyLen uint32) ([]byte, error) {
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-a.slots }()
	a.hashes.Add(1)
	return argon2.IDKey(password, salt, p.Time, p.MemoryKiB, p.Threads, keyLen), nil
}

func encodeArgon2(p Argon2Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodeArgon2 parses encodeArgon2's output, refusing parameters that would
// make one verification absurdly expensive (a tampered database must not
// become a denial of service).
func decodeArgon2(s string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, errors.New("not an argon2id hash")
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); err != nil {
		return p, nil, nil, fmt.Errorf("argon2id parameters: %w", err)
	}
	if p.Time < 1 || p.Time > 16 || threads < 1 || threads > 16 || p.MemoryKiB < 8*threads || p.MemoryKiB > 1<<18 {
		return p, nil, nil, fmt.Errorf("argon2id parameters out of range: %s", parts[3])
	}
	p.Threads = uint8(threads)
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errors.New("argon2id salt malformed")
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errors.New("argon2id key malformed")
	}
	return p, salt, key, nil
}

// ---- refresh tokens ----

// IssueRefreshToken returns a new refresh token for p's account (what
// `docker login` keeps instead of the password). Only its sha256 is stored.
// It is valid for the refresh TTL, and only while the account exists with
// the same password or secret and (robots) has not expired.
func (a *Accounts) IssueRefreshToken(ctx context.Context, p Principal) (string, error) {
	if p.Kind != KindUser && p.Kind != KindRobot {
		return "", fmt.Errorf("%w: refresh tokens are for users and robots", ErrUnauthenticated)
	}
	token := refreshTokenPrefix + randomToken()
	sum := sha256.Sum256([]byte(token))
	err := a.tx(ctx, func(tx *sql.Tx) error {
		// The generation read here is the account's current one. A password
		// change between the caller's Authenticate and this transaction
		// (milliseconds) would be missed; Principal carries no generation.
		ac, err := lookup(ctx, tx, p.Name, p.Kind)
		if err != nil {
			return err
		}
		now := a.now()
		if ac.robotExpired(now) {
			return &CredentialError{Name: p.Name, Reason: "robot expired"}
		}
		// Expired tokens are pruned here, where the table grows.
		if _, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE expires <= ?`, now.UnixNano()); err != nil {
			return fmt.Errorf("accounts database: %w", err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens(hash, account_id, generation, issued, expires) VALUES (?, ?, ?, ?, ?)`,
			sum[:], ac.id, ac.generation, now.UnixNano(), now.Add(a.refreshTTL).UnixNano()); err != nil {
			return fmt.Errorf("accounts database: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// RedeemRefreshToken returns the principal a refresh token was issued to,
// as the account is now (role, environment). Refusals are *CredentialError:
// unknown or expired token, account removed (its tokens went with it),
// password changed or robot secret rotated since issue, robot expired. The
// token is looked up by its sha256, so lookup timing reveals nothing about
// valid tokens.
func (a *Accounts) RedeemRefreshToken(ctx context.Context, token, remote string) (Principal, error) {
	fail := func(name, reason string) (Principal, error) {
		a.log.Debug("refresh token refused", "name", name, "remote", remote, "reason", reason)
		return Principal{}, &CredentialError{Name: name, Reason: reason}
	}
	if len(token) > maxSecretLength {
		return fail("", "unknown refresh token")
	}
	sum := sha256.Sum256([]byte(token))
	var (
		expires, generation int64
		ac                  account
	)
	row := a.r.QueryRowContext(ctx,
		`SELECT rt.expires, rt.generation, `+prefixColumns("a.", accountColumns)+`
		 FROM refresh_tokens rt JOIN accounts a ON a.id = rt.account_id WHERE rt.hash = ?`, sum[:])
	err := row.Scan(&expires, &generation, &ac.id, &ac.name, &ac.kind, &ac.role, &ac.secret, &ac.env,
		&ac.expires, &ac.generation, &ac.created, &ac.secretChanged)
	if errors.Is(err, sql.ErrNoRows) {
		return fail("", "unknown refresh token")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("accounts database: %w", err)
	}
	now := a.now()
	switch {
	case now.UnixNano() >= expires:
		return fail(ac.name, "refresh token expired")
	case generation != ac.generation:
		return fail(ac.name, "credentials changed since the refresh token was issued")
	case ac.robotExpired(now):
		return fail(ac.name, "robot expired")
	}
	a.log.Debug("refresh token redeemed", "name", ac.name, "remote", remote)
	return ac.principal(), nil
}

func prefixColumns(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = prefix + parts[i]
	}
	return strings.Join(parts, ", ")
}

// ---- bootstrap ----

// EnsureAdmin makes sure an admin user exists. If none does, it creates
// user "admin" with password, or with a generated password when password
// is "", which it returns (generated) for the caller to print once. It
// does nothing when any admin exists, so calling it on every start is
// safe; created says whether it made one.
func (a *Accounts) EnsureAdmin(ctx context.Context, password string) (created bool, generated string, err error) {
	has, err := a.hasAdmin(ctx, a.r)
	if err != nil || has {
		return false, "", err
	}
	if password == "" {
		// 26 base32 characters: 128 random bits.
		generated = rand.Text()
		password = generated
	} else if err := validPassword(password); err != nil {
		return false, "", fmt.Errorf("admin password: %w", err)
	}
	hash, err := a.hashPassword(ctx, password)
	if err != nil {
		return false, "", err
	}
	err = a.tx(ctx, func(tx *sql.Tx) error {
		// Re-check under the write lock: another process may have
		// bootstrapped meanwhile.
		has, err := a.hasAdmin(ctx, tx)
		if err != nil || has {
			return err
		}
		if err := a.insertUser(ctx, tx, "admin", RoleAdmin, hash); err != nil {
			if errors.Is(err, ErrExists) {
				return fmt.Errorf("no admin exists and the name \"admin\" is taken: %w; add one with 'bulwark admin user add NAME --role admin --password-stdin'", err)
			}
			return err
		}
		created = true
		return nil
	})
	if err != nil || !created {
		return false, "", err
	}
	return true, generated, nil
}

func (a *Accounts) hasAdmin(ctx context.Context, q querier) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE kind = 'user' AND role = 'admin'`).Scan(&n); err != nil {
		return false, fmt.Errorf("accounts database: %w", err)
	}
	return n > 0, nil
}
