-- Scan results (DATA/scan.db): the SBOM, image lint and vulnerability
-- report of every image manifest the registry holds, per digest. Its own
-- file, like inventory.db, so that `bulwark report --data` can read it
-- while a server holds the data directory (WAL, busy_timeout, short
-- transactions). Everything here can be recomputed from the blobs and the
-- vulnerability database: it is a cache that is expensive to rebuild, not
-- a record of truth. Times are Unix nanoseconds.

-- One row per scanned (or failed) image manifest. The small columns are
-- what the scanner's bookkeeping reads; the documents are in their own
-- table so that listing states never pages through SBOMs.
CREATE TABLE IF NOT EXISTS images (
	id          INTEGER PRIMARY KEY,
	digest      TEXT    NOT NULL UNIQUE,
	state       TEXT    NOT NULL CHECK (state IN ('scanned', 'failed')),
	error       TEXT    NOT NULL DEFAULT '',
	attempts    INTEGER NOT NULL DEFAULT 0,
	scanned     INTEGER NOT NULL DEFAULT 0, -- when the SBOM was made
	matched     INTEGER NOT NULL DEFAULT 0, -- when the report was made; 0: never
	generation  INTEGER NOT NULL DEFAULT -1, -- vulnerability database generation of the report; -1: no report
	db_updated  INTEGER NOT NULL DEFAULT 0,  -- that generation's time (vulndb.DatabaseRef.UpdatedAt)
	report_sum  TEXT    NOT NULL DEFAULT '', -- SHA-256 of the report without its database reference:
	                                         -- a re-match that changes nothing writes no document
	updated     INTEGER NOT NULL
);

-- JSON documents of an image: sbom (internal/scan/sbom), lint (a list of
-- lint.Finding), report (vulndb.Report; NULL until a vulnerability
-- database was there to match against), problems (files the walk could
-- not read).
CREATE TABLE IF NOT EXISTS documents (
	image     INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
	sbom      BLOB,
	lint      BLOB,
	report    BLOB,
	problems  BLOB
);

-- The repositories an image was pushed to: whom audit events name and
-- where a quarantined image is re-decided. (Who may read a result is the
-- registry's business, not this table's.)
CREATE TABLE IF NOT EXISTS image_repos (
	digest      TEXT NOT NULL,
	repository  TEXT NOT NULL,
	PRIMARY KEY (digest, repository)
) WITHOUT ROWID;

-- The current findings of every image's report, one row per (advisory,
-- package): what policy facts and the running-container view read
-- without decoding reports. Keyed by the image's row id, not its digest
-- (a re-match may write a hundred thousand rows). first_seen is when
-- this image first had the finding.
CREATE TABLE IF NOT EXISTS findings (
	image       INTEGER NOT NULL, -- images.id; deleted with the image (no foreign key: one check per row is a cost a re-match pays 100,000 times)
	vuln        TEXT    NOT NULL,
	purl        TEXT    NOT NULL,
	package     TEXT    NOT NULL,
	version     TEXT    NOT NULL,
	severity    TEXT    NOT NULL,
	fixed       TEXT    NOT NULL,
	first_seen  INTEGER NOT NULL,
	PRIMARY KEY (image, vuln, purl)
) WITHOUT ROWID;

-- Since when a fix of an advisory is known to be available: the
-- advisory's publication date (OSV "published") when the record has one,
-- else the first report in which the advisory had that fixed version,
-- whichever is earlier. What the running-container view's "days since
-- the fix" counts from.
CREATE TABLE IF NOT EXISTS fixes (
	vuln        TEXT    NOT NULL,
	fixed       TEXT    NOT NULL,
	first_seen  INTEGER NOT NULL,
	PRIMARY KEY (vuln, fixed)
) WITHOUT ROWID;

-- Which indexes (multi-platform images) list which platform manifests:
-- an index's scan facts are its platforms', so a platform's scan must
-- reach the index's decision.
CREATE TABLE IF NOT EXISTS index_children (
	child       TEXT NOT NULL,
	repository  TEXT NOT NULL,
	idx         TEXT NOT NULL,
	PRIMARY KEY (child, repository, idx)
) WITHOUT ROWID;

PRAGMA user_version = 1;
