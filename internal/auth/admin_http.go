package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// AdminOptions configure AdminHandler.
type AdminOptions struct {
	// OnChange is called after every successful change, for the audit log.
	// action is one of user.add, user.rm, user.passwd, robot.create,
	// robot.rotate, robot.rm, grant, revoke; target is the account name;
	// detail is human-readable (role, grants, glob) and never holds a secret.
	OnChange func(ctx context.Context, action, target, detail string)
	// Now is the clock for robot expiry given as a duration (default
	// time.Now).
	Now func() time.Time
	// InternalErrors answers internal errors (database failures) with
	// their message instead of "internal error". For in-process use by the
	// CLI, whose caller is the operator; a server must leave it off, since
	// messages can name files.
	InternalErrors bool
}

// The admin API's JSON shapes, shared by the server and `bulwark admin`, so
// both modes of the CLI print the same thing.
type (
	AdminGrant struct {
		Glob    string   `json:"glob"`
		Actions []Action `json:"actions"`
	}
	AdminUser struct {
		Name            string       `json:"name"`
		Role            Role         `json:"role"`
		Grants          []AdminGrant `json:"grants"`
		Created         time.Time    `json:"created"`
		PasswordChanged time.Time    `json:"password_changed"`
	}
	AdminRobot struct {
		Name string `json:"name"`
		// Secret is set only in the answers to create and rotate.
		Secret  string       `json:"secret,omitempty"`
		Expires *time.Time   `json:"expires"` // null: never
		Grants  []AdminGrant `json:"grants"`
		Env     string       `json:"env"`
		Created time.Time    `json:"created"`
		Rotated time.Time    `json:"rotated"`
	}
	// AdminGrants is one account's grants (GET/POST grants).
	AdminGrants struct {
		Name   string       `json:"name"`
		Kind   Kind         `json:"kind"`
		Role   Role         `json:"role,omitempty"`
		Grants []AdminGrant `json:"grants"`
	}
	// AdminNewUser is the body of POST users.
	AdminNewUser struct {
		Name     string `json:"name"`
		Role     Role   `json:"role"`
		Password string `json:"password"`
	}
	// AdminPassword is the body of POST users/{name}/password.
	AdminPassword struct {
		Password string `json:"password"`
	}
	// AdminNewRobot is the body of POST robots. Expiry is relative so that
	// the server's clock, which enforces it, decides.
	AdminNewRobot struct {
		Name             string       `json:"name"`
		Grants           []AdminGrant `json:"grants"`
		ExpiresInSeconds int64        `json:"expires_in_seconds,omitempty"` // 0: never
		Env              string       `json:"env,omitempty"`
	}
	// AdminGrantChange is the body of POST grants (and optionally DELETE
	// grants, which also takes ?user=&glob=).
	AdminGrantChange struct {
		User    string   `json:"user"`
		Glob    string   `json:"glob"`
		Actions []Action `json:"actions,omitempty"`
	}
	// AdminError is the body of every error answer. Code is a stable
	// machine-readable word (NOT_FOUND, EXISTS, INVALID, LAST_ADMIN,
	// NO_GRANT, INTERNAL).
	AdminError struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
)

// AdminGrantsOf converts grants to their API shape ([] rather than null).
func AdminGrantsOf(gs []Grant) []AdminGrant {
	out := make([]AdminGrant, len(gs))
	for i, g := range gs {
		out[i] = AdminGrant{Glob: g.Glob, Actions: g.Actions}
	}
	return out
}

func grantsFromAdmin(gs []AdminGrant) []Grant {
	out := make([]Grant, len(gs))
	for i, g := range gs {
		out[i] = Grant{Glob: g.Glob, Actions: g.Actions}
	}
	return out
}

// AdminUserOf converts a UserInfo to its API shape.
func AdminUserOf(u UserInfo) AdminUser {
	return AdminUser{Name: u.Name, Role: u.Role, Grants: AdminGrantsOf(u.Grants), Created: u.Created.UTC(), PasswordChanged: u.PasswordChanged.UTC()}
}

// AdminRobotOf converts a RobotInfo to its API shape.
func AdminRobotOf(r RobotInfo) AdminRobot {
	out := AdminRobot{Name: r.Name, Grants: AdminGrantsOf(r.Grants), Env: r.Env, Created: r.Created.UTC(), Rotated: r.Rotated.UTC()}
	if !r.Expires.IsZero() {
		e := r.Expires.UTC()
		out.Expires = &e
	}
	return out
}

// AdminHandler serves the accounts admin API that `bulwark admin --server`
// uses. Paths are relative to where it is mounted: the server strips its
// prefix (e.g. http.StripPrefix("/admin/v1", h) for /admin/v1/users):
//
//	GET    /users                       list users          → [AdminUser]
//	POST   /users                       AdminNewUser         → 201 AdminUser
//	GET    /users/{name}                                     → AdminUser
//	DELETE /users/{name}                                     → 204
//	POST   /users/{name}/password       AdminPassword        → 204
//	GET    /robots                      list robots         → [AdminRobot]
//	POST   /robots                      AdminNewRobot        → 201 AdminRobot with secret
//	GET    /robots/{name}                                    → AdminRobot
//	POST   /robots/{name}/rotate                             → AdminRobot with secret
//	DELETE /robots/{name}                                    → 204
//	GET    /grants[?user=NAME]                               → [AdminGrants] (every account, or one)
//	POST   /grants                      AdminGrantChange     → AdminGrants of that user
//	DELETE /grants?user=NAME&glob=GLOB  (or AdminGrantChange) → 204
//
// Errors are AdminError with 400 (invalid input), 404, 409 (exists, last
// admin) or 500. Authenticating and authorising the caller (admins only)
// is the server's job, before this handler.
func AdminHandler(a *Accounts, opts AdminOptions) http.Handler {
	if opts.OnChange == nil {
		opts.OnChange = func(context.Context, string, string, string) {}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &adminAPI{a: a, opts: opts}
	mux := http.NewServeMux()
	routes := []struct {
		pattern string
		fn      http.HandlerFunc
	}{
		{"GET /users", h.listUsers},
		{"POST /users", h.addUser},
		{"GET /users/{name}", h.getUser},
		{"DELETE /users/{name}", h.removeUser},
		{"POST /users/{name}/password", h.setPassword},
		{"GET /robots", h.listRobots},
		{"POST /robots", h.createRobot},
		{"GET /robots/{name}", h.getRobot},
		{"POST /robots/{name}/rotate", h.rotateRobot},
		{"DELETE /robots/{name}", h.removeRobot},
		{"GET /grants", h.listGrants},
		{"POST /grants", h.grant},
		{"DELETE /grants", h.revoke},
	}
	// Every answer is JSON, including wrong methods and unknown paths
	// (ServeMux would answer those in text).
	paths := map[string]bool{}
	for _, rt := range routes {
		mux.HandleFunc(rt.pattern, rt.fn)
		_, path, _ := strings.Cut(rt.pattern, " ")
		if !paths[path] {
			paths[path] = true
			mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
				adminJSON(w, http.StatusMethodNotAllowed, AdminError{Error: r.Method + " is not allowed here", Code: "METHOD"})
			})
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusNotFound, AdminError{Error: "no such admin endpoint", Code: "NOT_FOUND"})
	})
	return mux
}

type adminAPI struct {
	a    *Accounts
	opts AdminOptions
}

// maxAdminBody bounds request bodies: the largest legitimate one is a
// robot with a few dozen grants.
const maxAdminBody = 64 << 10

func (h *adminAPI) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := h.a.ListUsers(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	out := make([]AdminUser, len(us))
	for i, u := range us {
		out[i] = AdminUserOf(u)
	}
	adminJSON(w, http.StatusOK, out)
}

func (h *adminAPI) addUser(w http.ResponseWriter, r *http.Request) {
	var req AdminNewUser
	if !h.decode(w, r, &req) {
		return
	}
	ctx := r.Context()
	if err := h.a.AddUser(ctx, req.Name, req.Role, req.Password); err != nil {
		h.fail(w, err)
		return
	}
	h.opts.OnChange(ctx, "user.add", req.Name, "role "+string(req.Role))
	h.answerUser(w, r, req.Name, http.StatusCreated)
}

func (h *adminAPI) getUser(w http.ResponseWriter, r *http.Request) {
	h.answerUser(w, r, r.PathValue("name"), http.StatusOK)
}

func (h *adminAPI) answerUser(w http.ResponseWriter, r *http.Request, name string, status int) {
	u, err := h.a.User(r.Context(), name)
	if err != nil {
		h.fail(w, err)
		return
	}
	adminJSON(w, status, AdminUserOf(u))
}

func (h *adminAPI) removeUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := h.a.RemoveUser(r.Context(), name); err != nil {
		h.fail(w, err)
		return
	}
	h.opts.OnChange(r.Context(), "user.rm", name, "")
	w.WriteHeader(http.StatusNoContent)
}

func (h *adminAPI) setPassword(w http.ResponseWriter, r *http.Request) {
	var req AdminPassword
	if !h.decode(w, r, &req) {
		return
	}
	name := r.PathValue("name")
	if err := h.a.SetPassword(r.Context(), name, req.Password); err != nil {
		h.fail(w, err)
		return
	}
	h.opts.OnChange(r.Context(), "user.passwd", name, "")
	w.WriteHeader(http.StatusNoContent)
}

func (h *adminAPI) listRobots(w http.ResponseWriter, r *http.Request) {
	rs, err := h.a.ListRobots(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	out := make([]AdminRobot, len(rs))
	for i, rb := range rs {
		out[i] = AdminRobotOf(rb)
	}
	adminJSON(w, http.StatusOK, out)
}

func (h *adminAPI) createRobot(w http.ResponseWriter, r *http.Request) {
	var req AdminNewRobot
	if !h.decode(w, r, &req) {
		return
	}
	if req.ExpiresInSeconds < 0 || req.ExpiresInSeconds > int64((100*365*24*time.Hour)/time.Second) {
		h.fail(w, fmt.Errorf("%w: expires_in_seconds out of range", errAdminInvalid))
		return
	}
	var expires time.Time
	if req.ExpiresInSeconds > 0 {
		expires = h.opts.Now().Add(time.Duration(req.ExpiresInSeconds) * time.Second)
	}
	ctx := r.Context()
	secret, err := h.a.CreateRobot(ctx, req.Name, grantsFromAdmin(req.Grants), expires, req.Env)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.answerRobot(w, r, req.Name, secret, http.StatusCreated, "robot.create")
}

func (h *adminAPI) getRobot(w http.ResponseWriter, r *http.Request) {
	h.answerRobot(w, r, r.PathValue("name"), "", http.StatusOK, "")
}

func (h *adminAPI) rotateRobot(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	secret, err := h.a.RotateRobot(r.Context(), name)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.answerRobot(w, r, name, secret, http.StatusOK, "robot.rotate")
}

// answerRobot reports a robot, with secret when one was just made; change
// names the audited action, if any.
func (h *adminAPI) answerRobot(w http.ResponseWriter, r *http.Request, name, secret string, status int, change string) {
	ctx := r.Context()
	rb, err := h.a.Robot(ctx, name)
	if change != "" {
		// The change happened even if reading it back failed.
		h.opts.OnChange(ctx, change, name, RobotDetail(rb))
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	out := AdminRobotOf(rb)
	out.Secret = secret
	w.Header().Set("Cache-Control", "no-store")
	adminJSON(w, status, out)
}

// RobotDetail describes a robot for the audit log: grants, expiry and
// environment, never the secret.
func RobotDetail(r RobotInfo) string {
	specs := make([]string, len(r.Grants))
	for i, g := range r.Grants {
		specs[i] = FormatGrantSpec(g)
	}
	d := "grants " + strings.Join(specs, " ")
	if !r.Expires.IsZero() {
		d += ", expires " + r.Expires.UTC().Format(time.RFC3339)
	}
	if r.Env != "" {
		d += ", env " + r.Env
	}
	return d
}

func (h *adminAPI) removeRobot(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := h.a.RemoveRobot(r.Context(), name); err != nil {
		h.fail(w, err)
		return
	}
	h.opts.OnChange(r.Context(), "robot.rm", name, "")
	w.WriteHeader(http.StatusNoContent)
}

func (h *adminAPI) listGrants(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if name := r.URL.Query().Get("user"); name != "" {
		g, err := AccountGrants(ctx, h.a, name)
		if err != nil {
			h.fail(w, err)
			return
		}
		adminJSON(w, http.StatusOK, []AdminGrants{g})
		return
	}
	all, err := AllGrants(ctx, h.a)
	if err != nil {
		h.fail(w, err)
		return
	}
	adminJSON(w, http.StatusOK, all)
}

// AccountGrants returns one account's (user's or robot's) grants in the
// API shape.
func AccountGrants(ctx context.Context, a *Accounts, name string) (AdminGrants, error) {
	if u, err := a.User(ctx, name); err == nil {
		return AdminGrants{Name: u.Name, Kind: KindUser, Role: u.Role, Grants: AdminGrantsOf(u.Grants)}, nil
	} else if !errors.Is(err, ErrNotFound) {
		return AdminGrants{}, err
	}
	rb, err := a.Robot(ctx, name)
	if err != nil {
		return AdminGrants{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return AdminGrants{Name: rb.Name, Kind: KindRobot, Grants: AdminGrantsOf(rb.Grants)}, nil
}

// AllGrants returns every account's grants, users first, each by name.
func AllGrants(ctx context.Context, a *Accounts) ([]AdminGrants, error) {
	us, err := a.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := a.ListRobots(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]AdminGrants, 0, len(us)+len(rs))
	for _, u := range us {
		out = append(out, AdminGrants{Name: u.Name, Kind: KindUser, Role: u.Role, Grants: AdminGrantsOf(u.Grants)})
	}
	for _, rb := range rs {
		out = append(out, AdminGrants{Name: rb.Name, Kind: KindRobot, Grants: AdminGrantsOf(rb.Grants)})
	}
	return out, nil
}

func (h *adminAPI) grant(w http.ResponseWriter, r *http.Request) {
	var req AdminGrantChange
	if !h.decode(w, r, &req) {
		return
	}
	ctx := r.Context()
	if err := h.a.Grant(ctx, req.User, req.Glob, req.Actions); err != nil {
		h.fail(w, err)
		return
	}
	actions, _ := normalizeGrantActions(req.Actions) // valid: Grant accepted them
	h.opts.OnChange(ctx, "grant", req.User, FormatGrantSpec(Grant{Glob: req.Glob, Actions: actions}))
	g, err := AccountGrants(ctx, h.a, req.User)
	if err != nil {
		h.fail(w, err)
		return
	}
	adminJSON(w, http.StatusOK, g)
}

func (h *adminAPI) revoke(w http.ResponseWriter, r *http.Request) {
	req := AdminGrantChange{User: r.URL.Query().Get("user"), Glob: r.URL.Query().Get("glob")}
	if req.User == "" && req.Glob == "" && r.ContentLength != 0 {
		if !h.decode(w, r, &req) {
			return
		}
	}
	if req.User == "" || req.Glob == "" {
		h.fail(w, fmt.Errorf("%w: user and glob are required", errAdminInvalid))
		return
	}
	if err := h.a.Revoke(r.Context(), req.User, req.Glob); err != nil {
		h.fail(w, err)
		return
	}
	h.opts.OnChange(r.Context(), "revoke", req.User, req.Glob)
	w.WriteHeader(http.StatusNoContent)
}

// errAdminInvalid marks a malformed admin request (400).
var errAdminInvalid = errors.New("invalid request")

func (h *adminAPI) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		h.fail(w, fmt.Errorf("%w: body: %v", errAdminInvalid, err))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		h.fail(w, fmt.Errorf("%w: body: more than one JSON value", errAdminInvalid))
		return false
	}
	return true
}

func (h *adminAPI) fail(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "INTERNAL"
	switch {
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, "NOT_FOUND"
	case errors.Is(err, ErrNoGrant):
		status, code = http.StatusNotFound, "NO_GRANT"
	case errors.Is(err, ErrExists):
		status, code = http.StatusConflict, "EXISTS"
	case errors.Is(err, ErrLastAdmin):
		status, code = http.StatusConflict, "LAST_ADMIN"
	case errors.Is(err, errAdminInvalid), errors.Is(err, ErrInvalidName), errors.Is(err, ErrWeakPassword),
		errors.Is(err, ErrInvalidRole), errors.Is(err, ErrInvalidEnv), errors.Is(err, ErrInvalidGrant),
		errors.Is(err, ErrInvalidGlob), errors.Is(err, ErrRobotGrants), errors.Is(err, ErrInvalidExpiry):
		status, code = http.StatusBadRequest, "INVALID"
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		h.a.log.Error("admin API", "err", err)
		if !h.opts.InternalErrors {
			msg = "internal error" // the server's log has the details
		}
	}
	adminJSON(w, status, AdminError{Error: msg, Code: code})
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
