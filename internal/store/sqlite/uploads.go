package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-dev/bulwark/internal/store"
)

// CreateUpload implements store.Meta.
func (db *DB) CreateUpload(ctx context.Context, u *store.Upload) error {
	now := db.now()
	u.Started, u.Updated = now, now
	_, err := db.up.ExecContext(ctx,
		`INSERT INTO uploads(id, repository, offset, hash_state, instance, started, updated) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Repository, u.Offset, u.HashState, u.Instance, now.UnixNano(), now.UnixNano())
	return err
}

// Upload implements store.Meta.
func (db *DB) Upload(ctx context.Context, id string) (*store.Upload, error) {
	var (
		u                store.Upload
		started, updated int64
	)
	err := db.up.QueryRowContext(ctx,
		`SELECT id, repository, offset, hash_state, instance, started, updated FROM uploads WHERE id = ?`, id).
		Scan(&u.ID, &u.Repository, &u.Offset, &u.HashState, &u.Instance, &started, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", store.ErrUploadUnknown, id)
	}
	if err != nil {
		return nil, err
	}
	u.Started, u.Updated = time.Unix(0, started), time.Unix(0, updated)
	return &u, nil
}

// UpdateUpload implements store.Meta.
func (db *DB) UpdateUpload(ctx context.Context, u *store.Upload) error {
	u.Updated = db.now()
	res, err := db.up.ExecContext(ctx, `UPDATE uploads SET offset = ?, hash_state = ?, updated = ? WHERE id = ?`,
		u.Offset, u.HashState, u.Updated.UnixNano(), u.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s", store.ErrUploadUnknown, u.ID)
	}
	return nil
}

// DeleteUpload implements store.Meta.
func (db *DB) DeleteUpload(ctx context.Context, id string) error {
	_, err := db.up.ExecContext(ctx, `DELETE FROM uploads WHERE id = ?`, id)
	return err
}

// StaleUploads implements store.Meta.
func (db *DB) StaleUploads(ctx context.Context, before time.Time) ([]*store.Upload, error) {
	rows, err := db.up.QueryContext(ctx,
		`SELECT id, repository, offset, started, updated FROM uploads WHERE updated < ? ORDER BY id`, before.UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Upload
	for rows.Next() {
		var (
			u                store.Upload
			started, updated int64
		)
		if err := rows.Scan(&u.ID, &u.Repository, &u.Offset, &started, &updated); err != nil {
			return nil, err
		}
		u.Started, u.Updated = time.Unix(0, started), time.Unix(0, updated)
		out = append(out, &u)
	}
	return out, rows.Err()
}
