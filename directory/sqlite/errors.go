package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/mattn/go-sqlite3"

	"blindex.dev/blindex/internal/storeerr"
)

func init() { storeerr.Register(classify) }

// classify recognises the SQLite results that mean the database cannot
// serve now, or is damaged; see storeerr.
func classify(err error) error {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code {
	case sqlite3.ErrCorrupt, sqlite3.ErrNotADB:
		return storeerr.ErrCorrupt
	case sqlite3.ErrReadonly, sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrCantOpen,
		// Busy and locked come back only after _busy_timeout (10 s) has run out.
		sqlite3.ErrBusy, sqlite3.ErrLocked:
		return storeerr.ErrUnavailable
	}
	return nil
}

// checkSound runs PRAGMA quick_check on a database just opened, and refuses
// a damaged one with what to do. Without it SQLite opens a file with a
// damaged header or pages and fails only on the rows it reaches, so the
// server would start and answer from what is left.
func checkSound(db *sql.DB, path string) error {
	rows, err := db.Query("PRAGMA quick_check")
	if err != nil {
		return refuseDamaged(path, err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return refuseDamaged(path, err)
		}
		found = append(found, s)
	}
	if err := rows.Err(); err != nil {
		return refuseDamaged(path, err)
	}
	if len(found) == 1 && found[0] == "ok" {
		return nil
	}
	return refuseDamaged(path, fmt.Errorf("quick_check found: %s", strings.Join(found, "; ")))
}

func refuseDamaged(path string, err error) error {
	if storeerr.Classify(err) == storeerr.ErrUnavailable {
		return fmt.Errorf("sqlite: opening %s: %w", path, storeerr.Wrap(err))
	}
	return fmt.Errorf("sqlite: %s is damaged (%w): stop every blindex using it and restore it from a backup (blindex restore); "+
		"PRAGMA integrity_check in the sqlite3 shell lists what is wrong: %w", path, storeerr.ErrCorrupt, err)
}

// checkWritable refuses, at open, a database that cannot be written: one
// whose file, directory or file system is read-only, that is full, or
// whose header says it is read-only (a damaged byte 18 makes SQLite open
// it read-only, and the server would start and fail every write).
func checkWritable(db *sql.DB, path string) error {
	if err := writeProbe(context.Background(), db); err != nil {
		return fmt.Errorf("sqlite: %s cannot be written (%w): check that the file and its directory are writable by this user "+
			"and that the file system has free space and is not mounted read-only; if they are, its header is damaged: restore it from a backup (blindex restore)",
			path, storeerr.Wrap(err))
	}
	return nil
}

// Ready reports whether the database can be read and written now; see
// directory.Store. A full disk, a read-only file or a damaged header fail
// it.
func (s *Store) Ready(ctx context.Context) error {
	var n int
	if err := s.ro.QueryRowContext(ctx, `SELECT COUNT(*) FROM meta`).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: reading: %w", storeerr.Wrap(err))
	}
	if err := writeProbe(ctx, s.rw); err != nil {
		return fmt.Errorf("sqlite: writing: %w", storeerr.Wrap(err))
	}
	return nil
}

// writeProbe commits a write to the meta table that it deletes in the
// same transaction: it needs a free page (or room to grow the file) and
// room in the WAL, and leaves nothing behind.
func writeProbe(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Two pages' worth, so the probe allocates pages when none is free.
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('readyz-probe', zeroblob(8192))`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = 'readyz-probe'`); err != nil {
		return err
	}
	return tx.Commit()
}

// corrupt is the error for a row that cannot be what was written: it is
// storeerr.ErrCorrupt, never read as an answer.
func corrupt(what string) error {
	return fmt.Errorf("sqlite: corrupt %s: %w", what, storeerr.ErrCorrupt)
}
