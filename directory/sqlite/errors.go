package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
	var first string
	n := 0
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return refuseDamaged(path, err)
		}
		if n == 0 {
			first = s
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return refuseDamaged(path, err)
	}
	if n == 1 && first == "ok" {
		return nil
	}
	return refuseDamaged(path, fmt.Errorf("quick_check: %d problems, the first: %s", n, first))
}

func refuseDamaged(path string, err error) error {
	if k := storeerr.Classify(err); k == storeerr.ErrUnavailable {
		return fmt.Errorf("sqlite: opening %s: %w", path, storeerr.Wrap(err))
	}
	return fmt.Errorf("sqlite: %s is damaged (%w): stop every blindex using it, and restore it from a backup (blindex restore); "+
		"PRAGMA integrity_check in the sqlite3 shell lists what is wrong: %w", path, storeerr.ErrCorrupt, err)
}

// Ready reports whether the database can be read and written now: it reads
// the meta table and commits a write that it deletes in the same
// transaction, which needs a free page and room in the WAL. A full disk, a
// read-only file or a damaged header fail it; /readyz calls it.
func (s *Store) Ready(ctx context.Context) error {
	var n int
	if err := s.ro.QueryRowContext(ctx, `SELECT COUNT(*) FROM meta`).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: reading: %w", storeerr.Wrap(err))
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Two pages' worth, so the probe allocates a page when none is free.
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('readyz-probe', zeroblob(8192))`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = 'readyz-probe'`)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: writing: %w", storeerr.Wrap(err))
	}
	return nil
}

// corrupt is the error for a row that cannot be what was written: it is
// storeerr.ErrCorrupt, never read as an answer.
func corrupt(what string) error {
	return fmt.Errorf("sqlite: corrupt %s: %w", what, storeerr.ErrCorrupt)
}
