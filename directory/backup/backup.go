// Package backup takes consistent, age-encrypted snapshots of a directory's
// SQLite database while the server runs, and restores them.
//
// A snapshot is made with VACUUM INTO on a read-only connection: a
// transactionally consistent copy of the live data only (deleted rows are
// not carried over), encrypted to an operator's age recipients before it
// leaves the machine. The key files are not part of it: back them up
// separately (they are age-encrypted already), since a database is useless
// without its OPRF key and a key should not travel with the data it opens.
package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"filippo.io/age"
	_ "github.com/mattn/go-sqlite3"

	"blindex.dev/blindex/directory/sqlite"
)

var (
	ErrExists  = errors.New("backup: refusing to overwrite an existing database")
	ErrDecrypt = errors.New("backup: cannot decrypt: wrong identity, or the file is damaged")
	ErrInvalid = errors.New("backup: the restored file is not a sound blindex database")
)

// Backup writes an age-encrypted snapshot of the SQLite database at dbPath
// to w. It is safe while a server uses the database.
func Backup(ctx context.Context, dbPath string, to []age.Recipient, w io.Writer) error {
	if len(to) == 0 {
		return errors.New("backup: no recipient")
	}
	if _, err := os.Stat(dbPath); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tmp, err := os.MkdirTemp("", "blindex-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // the plaintext snapshot never outlives the call
	snap := filepath.Join(tmp, "snapshot.db")
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", snap); err != nil {
		return fmt.Errorf("backup: snapshot: %w", err)
	}
	f, err := os.Open(snap)
	if err != nil {
		return err
	}
	defer f.Close()
	enc, err := age.Encrypt(w, to...)
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, f); err != nil {
		return err
	}
	return enc.Close()
}

// Restore decrypts a snapshot from r into a new database at dbPath, checks
// it (integrity and schema version), and only then puts it in place. It
// refuses to overwrite an existing database.
func Restore(ctx context.Context, r io.Reader, ids []age.Identity, dbPath string) error {
	if _, err := os.Stat(dbPath); !errors.Is(err, fs.ErrNotExist) {
		return ErrExists
	}
	dec, err := age.Decrypt(r, ids...)
	if err != nil {
		return ErrDecrypt
	}
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		return err
	}
	tmp := dbPath + ".restoring"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := io.Copy(f, dec); err != nil {
		f.Close()
		return ErrDecrypt // a truncated or tampered payload fails authentication here
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := check(ctx, tmp); err != nil {
		return err
	}
	if err := os.Link(tmp, dbPath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ErrExists
		}
		return err
	}
	d, err := os.Open(filepath.Dir(dbPath))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func check(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var version int
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if version != sqlite.SchemaVersion {
		return fmt.Errorf("%w: schema version %d, this binary supports %d", ErrInvalid, version, sqlite.SchemaVersion)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		return fmt.Errorf("%w: integrity check: %s %v", ErrInvalid, res, err)
	}
	return nil
}
