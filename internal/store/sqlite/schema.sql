-- Bulwark metadata schema, version 2.
-- Digests are stored as their canonical "alg:hex" strings; times as Unix
-- nanoseconds.
--
-- Open executes this whole file on every start. Every statement is
-- idempotent (IF NOT EXISTS), so this is also the migration: a database of
-- an earlier version gains the tables and indexes added since, and nothing
-- existing changes. Version 2 added the quarantine table.
CREATE TABLE IF NOT EXISTS repositories (
	id      INTEGER PRIMARY KEY,
	name    TEXT NOT NULL UNIQUE,
	created INTEGER NOT NULL
);

-- Content the blob store holds durably. A row is written only after the
-- content is committed; touched is the GC grace clock.
CREATE TABLE IF NOT EXISTS blobs (
	digest  TEXT PRIMARY KEY,
	size    INTEGER NOT NULL,
	touched INTEGER NOT NULL
) WITHOUT ROWID;

-- Which repositories may serve which blobs (uploads and mounts link them).
CREATE TABLE IF NOT EXISTS repo_blobs (
	repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest  TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
	PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repo_blobs_digest ON repo_blobs(digest);

CREATE TABLE IF NOT EXISTS manifests (
	repo_id       INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest        TEXT NOT NULL,
	media_type    TEXT NOT NULL,
	artifact_type TEXT NOT NULL,
	subject       TEXT,
	annotations   TEXT,
	content       BLOB NOT NULL,
	created       INTEGER NOT NULL,
	PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_subject ON manifests(repo_id, subject) WHERE subject IS NOT NULL;

-- References from a manifest to the blobs it needs (kind 'b') and from an
-- index to the manifests it lists (kind 'm'). GC keeps every blob named here.
CREATE TABLE IF NOT EXISTS manifest_refs (
	repo_id  INTEGER NOT NULL,
	manifest TEXT NOT NULL,
	kind     TEXT NOT NULL,
	digest   TEXT NOT NULL,
	PRIMARY KEY (repo_id, manifest, kind, digest),
	FOREIGN KEY (repo_id, manifest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifest_refs_digest ON manifest_refs(digest);
-- In a WITHOUT ROWID table a secondary index carries the primary key, so
-- this is also the (digest, repo_id) index the blob access check of a
-- registry enforcing quarantine searches.

CREATE TABLE IF NOT EXISTS tags (
	repo_id INTEGER NOT NULL,
	name    TEXT NOT NULL,
	digest  TEXT NOT NULL,
	updated INTEGER NOT NULL,
	PRIMARY KEY (repo_id, name),
	FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_digest ON tags(repo_id, digest);

-- Manifests a push policy refused: stored, but served only to their pusher
-- and administrators until released. violations is a JSON array.
CREATE TABLE IF NOT EXISTS quarantine (
	repo_id     INTEGER NOT NULL,
	digest      TEXT NOT NULL,
	pusher      TEXT NOT NULL,
	pusher_kind TEXT NOT NULL,
	created     INTEGER NOT NULL,
	decided     INTEGER NOT NULL,
	reason      TEXT NOT NULL,
	violations  TEXT,
	decision_id TEXT NOT NULL,
	PRIMARY KEY (repo_id, digest),
	FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
