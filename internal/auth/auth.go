// Package auth decides who may do what in the registry: accounts (human
// users and robots), repository-glob grants, the Docker token service
// (scopes, ES256 JWTs) and the checks the registry makes on every request.
//
// The pieces:
//   - scope.go: the Docker token spec's scope grammar ("repository:NAME:ACTIONS")
//     and the intersection of requested scopes with what an account may do;
//   - glob.go: repository globs ("team/*", "prod/**");
//   - token.go, keys.go: JWT issue and verification, signing keys in the data
//     directory with rotation;
//   - accounts.go: users, robots, grants in SQLite (auth.db), password and
//     secret hashing, refresh tokens; admin_http.go: the admin JSON API;
//   - throttle.go: login throttling;
//   - service.go: the /token HTTP endpoint.
package auth

import (
	"errors"
	"time"
)

// Action is something a principal may do to a repository.
type Action string

// The repository actions of the Docker token spec that bulwark grants. "*"
// in a requested scope means all of them.
const (
	ActionPull   Action = "pull"
	ActionPush   Action = "push"
	ActionDelete Action = "delete"
)

// Kind says what sort of account a principal is.
type Kind string

const (
	KindUser      Kind = "user"
	KindRobot     Kind = "robot"
	KindAnonymous Kind = "anonymous"
)

// Role is a human user's role. Admins may do everything, including managing
// accounts; members only what their grants allow.
type Role string

const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Principal is an authenticated caller.
type Principal struct {
	Name string
	Kind Kind
	Role Role // users only
	// Env binds a robot to a deployment environment ("" for none); the policy
	// engine reads it.
	Env string
}

// Grant allows Actions on repositories matching Glob.
type Grant struct {
	Glob    string
	Actions []Action
}

// Access is one entry of a JWT's "access" claim, as the Docker token spec
// defines it.
type Access struct {
	Type    string   `json:"type"`    // "repository" or "registry"
	Name    string   `json:"name"`    // repository name, or "catalog"
	Actions []string `json:"actions"` // e.g. ["pull","push"], or ["*"] for registry:catalog
}

// Errors callers branch on.
var (
	ErrUnauthenticated = errors.New("authentication required")
	ErrBadCredentials  = errors.New("invalid credentials")
	ErrDenied          = errors.New("access denied")
	ErrThrottled       = errors.New("too many failed logins; try again later")
	ErrInvalidScope    = errors.New("invalid scope")
	ErrInvalidToken    = errors.New("invalid token")
	ErrNotFound        = errors.New("account not found")
	ErrExists          = errors.New("account already exists")
)

// DefaultTokenTTL is how long an issued access token is valid: short, so a
// revoked robot or grant stops working within minutes.
const DefaultTokenTTL = 5 * time.Minute
