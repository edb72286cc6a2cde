-- Inventory database (DATA/inventory.db): what runs where. Its own file,
-- like auth.db, so that `bulwark report --data` can read it while a server
-- holds the data directory (WAL, busy_timeout, short transactions). Times
-- are Unix nanoseconds.

-- Every report, in arrival order. body is the whole Record as JSON (the
-- profile and decision summaries, the exit code); the columns are what
-- queries filter on.
CREATE TABLE IF NOT EXISTS events (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	kind          TEXT    NOT NULL CHECK (kind IN ('start', 'stop')),
	time          INTEGER NOT NULL,
	received      INTEGER NOT NULL,
	host          TEXT    NOT NULL,
	container     TEXT    NOT NULL,
	repository    TEXT    NOT NULL,
	digest        TEXT    NOT NULL,
	environment   TEXT    NOT NULL,
	reporter      TEXT    NOT NULL,
	body          TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_host_container ON events (host, container, seq);
CREATE INDEX IF NOT EXISTS events_digest ON events (digest);

-- The last event of every (host, container): running when it is a start.
-- Kept in the same transaction as the event, so "what runs now" is one
-- indexed scan, not a search for the latest event per container.
CREATE TABLE IF NOT EXISTS containers (
	host       TEXT    NOT NULL,
	container  TEXT    NOT NULL,
	seq        INTEGER NOT NULL REFERENCES events (seq),
	running    INTEGER NOT NULL,
	PRIMARY KEY (host, container)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS containers_running ON containers (running, host, container);

PRAGMA user_version = 1;
