-- Accounts database (DATA/auth.db). Kept apart from meta.db so that
-- `bulwark admin` can open it while a server holds the data directory: it
-- is opened by several processes at once (WAL, busy_timeout, short
-- transactions), unlike meta.db. Times are Unix nanoseconds.

-- Users and robots share one name space: a name is either, never both, so
-- a Principal's name is unambiguous in grants, tokens and the audit log.
-- AUTOINCREMENT so a removed account's id is never reused: refresh tokens
-- and grants of a removed account must not come back to life under a new
-- account of the same name (they are also deleted by the cascades).
CREATE TABLE IF NOT EXISTS accounts (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	name           TEXT    NOT NULL UNIQUE,
	kind           TEXT    NOT NULL CHECK (kind IN ('user', 'robot')),
	role           TEXT    NOT NULL DEFAULT '' CHECK (role IN ('', 'admin', 'member')),
	-- users: an argon2id PHC string; robots: hex sha256 of the secret.
	secret         TEXT    NOT NULL,
	env            TEXT    NOT NULL DEFAULT '',
	expires        INTEGER NOT NULL DEFAULT 0, -- robots; 0 = never
	-- generation counts password changes and secret rotations; a refresh
	-- token is valid only for the generation it was issued in.
	generation     INTEGER NOT NULL DEFAULT 1,
	created        INTEGER NOT NULL,
	secret_changed INTEGER NOT NULL
);

-- One row per (account, glob); actions are stored canonically
-- ("pull,push,delete" order) so merging is a set union.
CREATE TABLE IF NOT EXISTS grants (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	glob       TEXT    NOT NULL,
	actions    TEXT    NOT NULL,
	PRIMARY KEY (account_id, glob)
) WITHOUT ROWID;

-- Refresh tokens are stored as sha256 only: a copy of auth.db must not
-- yield usable tokens.
CREATE TABLE IF NOT EXISTS refresh_tokens (
	hash       BLOB    PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	generation INTEGER NOT NULL,
	issued     INTEGER NOT NULL,
	expires    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS refresh_tokens_account ON refresh_tokens(account_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires ON refresh_tokens(expires);

PRAGMA user_version = 1;
