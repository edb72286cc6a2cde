package sqlitedb

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

const schema = `CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);`

func TestMigrateAndTx(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := Open("test database", path, []string{"journal_mode(WAL)", "busy_timeout(1000)"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for range 2 { // idempotent
		if err := Migrate(ctx, db, "test database", path, schema, 3); err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil || v != 3 {
		t.Fatalf("user_version %d, %v; want 3", v, err)
	}

	// A failing fn rolls back everything it wrote.
	boom := errors.New("boom")
	err = Tx(ctx, db, "test database", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES ('a')`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want boom", err)
	}
	var n int
	db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d rows after a rolled-back transaction", n)
	}
	if err := Tx(ctx, db, "test database", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t VALUES ('a')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d rows after a committed transaction, want 1", n)
	}

	// A file from a newer bulwark is refused, naming both versions.
	err = Migrate(ctx, db, "test database", path, schema, 2)
	if err == nil || !strings.Contains(err.Error(), "schema version 3") || !strings.Contains(err.Error(), "up to 2") {
		t.Fatalf("Migrate of a newer file = %v", err)
	}
}
