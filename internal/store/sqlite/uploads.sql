-- Upload sessions live in their own database file with synchronous=OFF:
-- they are ephemeral (a session lost in a power failure is simply restarted
-- by the client, and its data expires), so they need no fsync, and keeping
-- them apart means starting an upload never waits behind a durable commit.
CREATE TABLE IF NOT EXISTS uploads (
	id         TEXT PRIMARY KEY,
	repository TEXT NOT NULL,
	offset     INTEGER NOT NULL,
	hash_state BLOB,
	instance   TEXT NOT NULL DEFAULT '',
	started    INTEGER NOT NULL,
	updated    INTEGER NOT NULL
) WITHOUT ROWID;
