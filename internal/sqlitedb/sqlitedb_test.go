package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"os"
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

func TestOpenPair(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "x.db")
	errMissing := errors.New("no x database")
	opts := PairOptions{What: "x database", Schema: `CREATE TABLE IF NOT EXISTS t (v INTEGER);`, Version: 2, Missing: errMissing}

	ro := opts
	ro.ReadOnly = true
	if _, err := OpenPair(ctx, path, ro); !errors.Is(err, errMissing) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("read-only, missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatalf("a read-only open created the directory: %v", err)
	}

	priv := opts
	priv.Private = true
	p, err := OpenPair(ctx, path, priv)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private file mode: %v %v", fi.Mode(), err)
	}
	if p.Version != 2 || p.W == nil {
		t.Fatalf("pair %+v", p)
	}
	if _, err := p.W.Exec(`INSERT INTO t VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := p.R.QueryRow(`SELECT v FROM t`).Scan(&v); err != nil || v != 7 {
		t.Fatalf("reader: %v %v", v, err)
	}
	if _, err := p.R.Exec(`INSERT INTO t VALUES (8)`); err == nil {
		t.Fatal("the reader wrote")
	}
	p.Close()

	// Read-only: the file's version; an older one is read as it is, a
	// newer one refused.
	if p, err = OpenPair(ctx, path, ro); err != nil || p.W != nil || p.Version != 2 {
		t.Fatalf("read-only open: %+v %v", p, err)
	}
	p.Close()
	newer := ro
	newer.Version = 1
	if _, err := OpenPair(ctx, path, newer); err == nil || !strings.Contains(err.Error(), "schema version 2") {
		t.Fatalf("a newer file: %v", err)
	}
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if _, err := OpenPair(ctx, empty, ro); !errors.Is(err, errMissing) || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("read-only, empty file: %v", err)
	}
	// Upgrade runs from an older version, in the migration.
	var from int
	up := opts
	up.Version = 3
	up.Upgrade = func(ctx context.Context, tx *sql.Tx, v int) error {
		from = v
		_, err := tx.ExecContext(ctx, `ALTER TABLE t ADD COLUMN w TEXT`)
		return err
	}
	if p, err = OpenPair(ctx, path, up); err != nil || from != 2 || p.Version != 3 {
		t.Fatalf("upgrade: from %d, %+v, %v", from, p, err)
	}
	p.Close()
}
