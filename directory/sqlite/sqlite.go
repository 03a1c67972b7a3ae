// Package sqlite is the embedded default store of a blindex directory: one
// SQLite file in WAL mode with synchronous=FULL, so an acknowledged write
// survives a crash, and secure_delete, so deleted rows are overwritten.
package sqlite

import (
	"bytes"
	"context"
	"crypto/subtle"
	"database/sql"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/mattn/go-sqlite3"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
)

//go:embed schema.sql
var schema string

//go:embed log.sql
var logSchema string

//go:embed epochs.sql
var epochSchema string

//go:embed acls.sql
var aclSchema string

//go:embed verifications.sql
var verificationSchema string

// migrations[v] brings a database from version v to v+1.
var migrations = []func(*sql.Tx) error{
	execMigration(schema),
	execMigration(logSchema),
	execMigration(epochSchema),
	func(tx *sql.Tx) error {
		if _, err := tx.Exec(aclSchema); err != nil {
			return err
		}
		return copyACLEntries(tx)
	},
	execMigration(verificationSchema),
}

func execMigration(script string) func(*sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := tx.Exec(script)
		return err
	}
}

// copyACLEntries moves version 3's one row per entry into version 4's one
// row per record, streaming in key order, and drops the old table.
func copyACLEntries(tx *sql.Tx) error {
	rows, err := tx.Query(`SELECT idx, record_id, kind, pseudonym FROM acl_entries_v3 ORDER BY idx, record_id, kind, pseudonym`)
	if err != nil {
		return err
	}
	defer rows.Close()
	ins, err := tx.Prepare(`INSERT INTO acls (idx, record_id, allow, deny) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	var idx, rid []byte
	var l acl.List
	flush := func() error {
		if idx == nil {
			return nil
		}
		_, err := ins.Exec(idx, rid, PackPseudonyms(l.Allow), PackPseudonyms(l.Deny))
		l = acl.List{}
		return err
	}
	for rows.Next() {
		var i, r, p []byte
		var kind int
		if err := rows.Scan(&i, &r, &kind, &p); err != nil || len(p) != acl.PseudonymSize {
			return errors.Join(err, corrupt("acl row"))
		}
		if string(i) != string(idx) || string(r) != string(rid) {
			if err := flush(); err != nil {
				return err
			}
			idx, rid = i, r
		}
		if kind == kindAllow {
			l.Allow = append(l.Allow, acl.Pseudonym(p))
		} else {
			l.Deny = append(l.Deny, acl.Pseudonym(p))
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	rows.Close()
	_, err = tx.Exec(`DROP TABLE acl_entries_v3`)
	return err
}

// SchemaVersion is stored in PRAGMA user_version.
const SchemaVersion = 5

const (
	kindAllow = 1
	kindDeny  = 2
)

// Store implements directory.Store on SQLite.
type Store struct {
	rw *sql.DB // one connection, IMMEDIATE transactions: writes never deadlock
	ro *sql.DB // a pool of read-only connections
}

var _ directory.Store = (*Store)(nil)

// Open opens or creates the database file at path.
func Open(path string) (*Store, error) {
	params := url.Values{}
	params.Set("_journal_mode", "WAL")
	params.Set("_synchronous", "FULL")
	params.Set("_busy_timeout", "10000")
	params.Set("_foreign_keys", "on")
	params.Set("_secure_delete", "on")
	params.Set("_txlock", "immediate")
	rw, err := sql.Open("sqlite3", "file:"+path+"?"+params.Encode())
	if err != nil {
		return nil, err
	}
	rw.SetMaxOpenConns(1)
	// Keep the single writer connection: closing it would checkpoint and
	// drop per-connection settings.
	rw.SetConnMaxIdleTime(0)
	rw.SetMaxIdleConns(1)
	if err := checkSound(rw, path); err != nil {
		rw.Close()
		return nil, err
	}
	if err := migrate(rw); err != nil {
		rw.Close()
		return nil, err
	}
	if err := checkWritable(rw, path); err != nil {
		rw.Close()
		return nil, err
	}
	params.Set("mode", "ro")
	params.Del("_txlock")
	params.Del("_journal_mode")
	ro, err := sql.Open("sqlite3", "file:"+path+"?"+params.Encode())
	if err != nil {
		rw.Close()
		return nil, err
	}
	return &Store{rw: rw, ro: ro}, nil
}

func migrate(db *sql.DB) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("sqlite: opening database: %w", err)
	}
	if done, err := migrated(v); done || err != nil {
		return err
	}
	tx, err := db.Begin() // immediate: the write lock, so no other process migrates meanwhile
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Read again under the lock: another process may have just migrated,
	// perhaps with a newer binary.
	if err := tx.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if done, err := migrated(v); done || err != nil {
		return err
	}
	for ; v < SchemaVersion; v++ {
		if err := migrations[v](tx); err != nil {
			return fmt.Errorf("sqlite: migrating schema to version %d: %w", v+1, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

// migrated reports whether a database of schema version v needs no
// migration, and refuses one newer than this binary.
func migrated(v int) (bool, error) {
	if v > SchemaVersion {
		return true, fmt.Errorf("sqlite: database schema version %d, this binary supports %d: use a newer blindex", v, SchemaVersion)
	}
	return v == SchemaVersion, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.ro.Close(), s.rw.Close())
}

// IntegrityCheck runs PRAGMA integrity_check and returns its findings as an
// error, or nil for a sound database.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	var res string
	if err := s.rw.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("sqlite: integrity check: %s", res)
	}
	return nil
}

func isUnique(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}

// Checkpoint copies the WAL into the database (where secure_delete has
// zeroed deleted rows) and truncates it, so deleted data does not linger in
// WAL frames. A checkpoint blocked by a reader is retried at the next sweep.
func (s *Store) Checkpoint(ctx context.Context) error {
	var busy, logFrames, done int
	if err := s.rw.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done); err != nil {
		return err
	}
	if busy != 0 {
		return fmt.Errorf("sqlite: checkpoint blocked by readers")
	}
	return nil
}

func (s *Store) CreateVerification(ctx context.Context, v ca.Verification) error {
	_, err := s.rw.ExecContext(ctx, `INSERT INTO verifications
		(id, number_tag, code_mac, created_at, expires_at, attempts)
		VALUES (?, ?, ?, ?, ?, ?)`,
		v.ID[:], v.NumberTag[:], v.CodeMAC, v.Created.Unix(), v.Expires.Unix(), v.Attempts)
	if isUnique(err) {
		return directory.ErrConflict
	}
	return err
}

const verificationCols = `id, number_tag, code_mac, created_at, expires_at, attempts`

func scanVerification(row interface{ Scan(...any) error }) (ca.Verification, error) {
	var v ca.Verification
	var id, tag []byte
	var created, expires int64
	err := row.Scan(&id, &tag, &v.CodeMAC, &created, &expires, &v.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return v, directory.ErrNotFound
	}
	if err != nil {
		return v, err
	}
	if len(id) != len(v.ID) || len(tag) != len(v.NumberTag) {
		return v, corrupt("verification row")
	}
	copy(v.ID[:], id)
	copy(v.NumberTag[:], tag)
	v.Created, v.Expires = time.Unix(created, 0), time.Unix(expires, 0)
	return v, nil
}

func (s *Store) Verification(ctx context.Context, id [16]byte) (ca.Verification, error) {
	return scanVerification(s.ro.QueryRowContext(ctx,
		`SELECT `+verificationCols+` FROM verifications WHERE id = ?`, id[:]))
}

func (s *Store) ClaimAttempt(ctx context.Context, id [16]byte, maxAttempts int) (ca.Verification, error) {
	var v ca.Verification
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		v, err = scanVerification(tx.QueryRowContext(ctx,
			`SELECT `+verificationCols+` FROM verifications WHERE id = ?`, id[:]))
		if err != nil {
			return err
		}
		if v.Attempts >= maxAttempts {
			return directory.ErrExhausted
		}
		v.Attempts++
		_, err = tx.ExecContext(ctx, `UPDATE verifications SET attempts = ? WHERE id = ?`, v.Attempts, id[:])
		return err
	})
	return v, err
}

func (s *Store) FinishVerification(ctx context.Context, id [16]byte, entry []byte) (int64, error) {
	pos := int64(-1)
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM verifications WHERE id = ?`, id[:])
		if err := affected(res, err); err != nil || entry == nil {
			return err
		}
		pos, err = appendLog(ctx, tx, entry)
		return err
	})
	return pos, err
}

func (s *Store) DeleteVerification(ctx context.Context, id [16]byte) error {
	res, err := s.rw.ExecContext(ctx, `DELETE FROM verifications WHERE id = ?`, id[:])
	return affected(res, err)
}

func (s *Store) DeleteExpiredVerifications(ctx context.Context, now time.Time) (int, error) {
	res, err := s.rw.ExecContext(ctx, `DELETE FROM verifications WHERE expires_at <= ?`, now.Unix())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return directory.ErrNotFound
	}
	return nil
}

func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.rw.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *Store) PutRecord(ctx context.Context, r directory.Record, maxPerIndex int) (int64, error) {
	var pos int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var exists, count int
		err := tx.QueryRowContext(ctx, `SELECT
			(SELECT COUNT(*) FROM records WHERE idx = ?1 AND record_id = ?2),
			(SELECT COUNT(*) FROM records WHERE idx = ?1)`, r.Index[:], r.RecordID[:]).Scan(&exists, &count)
		if err != nil {
			return err
		}
		if exists == 0 && count >= maxPerIndex {
			return directory.ErrExhausted
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO records
			(idx, record_id, ciphertext, visibility, expires_at, updated_at, epoch)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (idx, record_id) DO UPDATE SET ciphertext = excluded.ciphertext,
				visibility = excluded.visibility, expires_at = excluded.expires_at,
				updated_at = excluded.updated_at, epoch = excluded.epoch`,
			r.Index[:], r.RecordID[:], r.Ciphertext, int(r.ACL.Visibility),
			r.Expires.Unix(), r.Updated.Unix(), r.Epoch)
		if err != nil {
			return err
		}
		if err := replaceACL(ctx, tx, r.Index, r.RecordID, r.ACL); err != nil {
			return err
		}
		pos, err = logState(ctx, tx, r.Index, r.Updated)
		return err
	})
	return pos, err
}

func replaceACL(ctx context.Context, tx *sql.Tx, index, recordID [32]byte, l acl.List) error {
	if len(l.Allow)+len(l.Deny) == 0 {
		_, err := tx.ExecContext(ctx, `DELETE FROM acls WHERE idx = ? AND record_id = ?`, index[:], recordID[:])
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO acls (idx, record_id, allow, deny) VALUES (?, ?, ?, ?)
		ON CONFLICT (idx, record_id) DO UPDATE SET allow = excluded.allow, deny = excluded.deny`,
		index[:], recordID[:], PackPseudonyms(l.Allow), PackPseudonyms(l.Deny))
	return err
}

// PackPseudonyms is a list's column in acls: its pseudonyms sorted and
// concatenated, so that equal lists are stored alike. directory/synth
// writes the same form.
func PackPseudonyms(ps []acl.Pseudonym) []byte {
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, func(a, b acl.Pseudonym) int { return bytes.Compare(a[:], b[:]) })
	out := make([]byte, 0, len(sorted)*acl.PseudonymSize)
	for _, p := range sorted {
		out = append(out, p[:]...)
	}
	return out
}

// unpackPseudonyms reverses PackPseudonyms.
func unpackPseudonyms(b []byte) ([]acl.Pseudonym, error) {
	if len(b)%acl.PseudonymSize != 0 {
		return nil, corrupt("acl row")
	}
	var ps []acl.Pseudonym
	for ; len(b) > 0; b = b[acl.PseudonymSize:] {
		ps = append(ps, acl.Pseudonym(b[:acl.PseudonymSize]))
	}
	return ps, nil
}

// listHas reports whether the packed, sorted list holds p. It takes the
// same steps for every caller: ⌈log2(n)⌉ halvings, each comparing all 32
// bytes, and one comparison at the end. Its time depends on the list's
// length only, never on where (or whether) the caller is in it.
func listHas(list []byte, p acl.Pseudonym) (bool, error) {
	if len(list)%acl.PseudonymSize != 0 {
		return false, corrupt("acl row")
	}
	entry := func(i int) []byte { return list[i*acl.PseudonymSize : (i+1)*acl.PseudonymSize] }
	n := len(list) / acl.PseudonymSize
	if n == 0 {
		return false, nil
	}
	lo := 0 // the last entry <= p, or 0
	for size := n; size > 1; {
		half := size / 2
		// lo += half if entry <= p, without a branch on the outcome.
		le := 1 - lessFull(p[:], entry(lo+half)) // 1 unless p < entry
		lo += half * le
		size -= half
	}
	return subtle.ConstantTimeCompare(entry(lo), p[:]) == 1, nil
}

// lessFull returns 1 if a < b (bytewise, as bytes.Compare), else 0. It
// reads every byte of both, with no early exit.
func lessFull(a, b []byte) int {
	// Walking from the last byte up, each byte that differs overrides the
	// verdict of the bytes after it.
	less := 0
	for i := len(a) - 1; i >= 0; i-- {
		x, y := int(a[i]), int(b[i])
		differ := subtle.ConstantTimeByteEq(a[i], b[i]) ^ 1
		lt := int(uint(x-y) >> (strconv.IntSize - 1)) // 1 if x < y
		less = subtle.ConstantTimeSelect(differ, lt, less)
	}
	return less
}

func (s *Store) SetACL(ctx context.Context, index, recordID [32]byte, l acl.List, now time.Time) (int64, error) {
	var pos int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE records SET visibility = ?, updated_at = ?
			WHERE idx = ? AND record_id = ?`, int(l.Visibility), now.Unix(), index[:], recordID[:])
		if err := affected(res, err); err != nil {
			return err
		}
		if err := replaceACL(ctx, tx, index, recordID, l); err != nil {
			return err
		}
		pos, err = logState(ctx, tx, index, now)
		return err
	})
	return pos, err
}

func (s *Store) DeleteExpiredRecords(ctx context.Context, now time.Time) (int, error) {
	return s.deleteRecordsWhere(ctx, `expires_at <= ?`, now.Unix(), now)
}

func (s *Store) DeleteEpochsBefore(ctx context.Context, epoch int, now time.Time) (int, error) {
	return s.deleteRecordsWhere(ctx, `epoch < ?`, epoch, now)
}

// deleteRecordsWhere deletes the records that cond (with one argument)
// selects, and logs the State of each index it changed.
func (s *Store) deleteRecordsWhere(ctx context.Context, cond string, arg any, now time.Time) (int, error) {
	total := 0
	for {
		n, more, err := s.deleteBatch(ctx, cond, arg, now)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// deleteBatchIndexes bounds one deletion transaction, so a sweep of many
// records (an epoch's retirement) never holds the writer for long.
const deleteBatchIndexes = 256

// deleteBatch deletes the selected records of the first indexes (in index
// order) and logs their States, in one transaction, and reports whether
// more may remain.
func (s *Store) deleteBatch(ctx context.Context, cond string, arg any, now time.Time) (int, bool, error) {
	var n int64
	var more bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT idx FROM records WHERE `+cond+` ORDER BY idx LIMIT ?`, arg, deleteBatchIndexes)
		if err != nil {
			return err
		}
		var indexes [][32]byte
		for rows.Next() {
			var idx []byte
			if err := rows.Scan(&idx); err != nil || len(idx) != 32 {
				rows.Close()
				return errors.Join(err, corrupt("record row"))
			}
			indexes = append(indexes, [32]byte(idx))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		more = len(indexes) == deleteBatchIndexes
		for _, idx := range indexes {
			res, err := tx.ExecContext(ctx, `DELETE FROM records WHERE idx = ? AND `+cond, idx[:], arg)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
			if _, err := logState(ctx, tx, idx, now); err != nil {
				return err
			}
		}
		return nil
	})
	return int(n), more, err
}

func (s *Store) DeleteRecord(ctx context.Context, index, recordID [32]byte, now time.Time) (int64, error) {
	var pos int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM records WHERE idx = ? AND record_id = ?`, index[:], recordID[:])
		if err := affected(res, err); err != nil {
			return err
		}
		pos, err = logState(ctx, tx, index, now)
		return err
	})
	return pos, err
}

func (s *Store) Buckets(ctx context.Context, epoch int, ranges []directory.BucketRange, caller acl.Pseudonym, now time.Time) ([][]directory.Candidate, error) {
	tx, err := s.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// A bucket range is a range of the primary key of records and of acls,
	// so each is one scan in key order. Every list of the fetched records is
	// read and searched in the same number of steps, so the work depends on
	// what the range holds, never on whether the caller is allowed, denied
	// or absent.
	// The unary + keeps SQLite from reading the range through the expiry
	// index instead of the primary key.
	recStmt, err := tx.PrepareContext(ctx, `SELECT idx, record_id, ciphertext, visibility FROM records
		WHERE idx BETWEEN ?1 AND ?2 AND +epoch = ?3 AND +expires_at > ?4 ORDER BY idx, record_id`)
	if err != nil {
		return nil, err
	}
	defer recStmt.Close()
	// Only the lists of the records fetched: SQLite reads a list's blob
	// only for the rows it returns.
	aclStmt, err := tx.PrepareContext(ctx, `SELECT a.idx, a.record_id, a.allow, a.deny
		FROM acls a JOIN records r ON r.idx = a.idx AND r.record_id = a.record_id
		WHERE a.idx BETWEEN ?1 AND ?2 AND +r.epoch = ?3 AND +r.expires_at > ?4
		ORDER BY a.idx, a.record_id`)
	if err != nil {
		return nil, err
	}
	defer aclStmt.Close()
	out := make([][]directory.Candidate, len(ranges))
	var blocks byteBlocks
	for i, br := range ranges {
		lo, hi := indexRange(br)
		rows, err := recStmt.QueryContext(ctx, lo, hi, epoch, now.Unix())
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c directory.Candidate
			var idx, rid, ct sql.RawBytes // copied below, ciphertexts into blocks
			var vis int
			if err := rows.Scan(&idx, &rid, &ct, &vis); err != nil {
				rows.Close()
				return nil, err
			}
			if len(idx) != 32 || len(rid) != 32 {
				rows.Close()
				return nil, corrupt("record row")
			}
			copy(c.Index[:], idx)
			copy(c.RecordID[:], rid)
			c.Ciphertext = blocks.copy(ct)
			c.Visibility = acl.Visibility(vis)
			out[i] = append(out[i], c)
		}
		if err := closeRows(rows); err != nil {
			return nil, err
		}
		if err := markMembership(ctx, aclStmt, lo, hi, epoch, now, out[i], caller); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// byteBlocks copies many small byte slices into a few large blocks: one
// allocation per 1 MiB rather than one per ciphertext.
type byteBlocks struct{ free []byte }

func (b *byteBlocks) copy(p []byte) []byte {
	if len(p) > len(b.free) {
		b.free = make([]byte, max(len(p), 1<<20))
	}
	out := b.free[:len(p):len(p)]
	copy(out, p)
	b.free = b.free[len(p):]
	return out
}

// indexRange is the range of 32-byte indexes whose first 32 bits (the
// bucket, big-endian) lie in br, as inclusive bounds for BETWEEN.
func indexRange(br directory.BucketRange) (lo, hi []byte) {
	lo, hi = make([]byte, 32), bytes.Repeat([]byte{0xff}, 32)
	binary.BigEndian.PutUint32(lo, br.Lo)
	binary.BigEndian.PutUint32(hi, br.Hi)
	return lo, hi
}

// markMembership sets Allowed and Denied on cands (sorted by index and
// record id) from every access list in [lo, hi], merging the two scans.
func markMembership(ctx context.Context, stmt *sql.Stmt, lo, hi []byte, epoch int, now time.Time, cands []directory.Candidate, caller acl.Pseudonym) error {
	rows, err := stmt.QueryContext(ctx, lo, hi, epoch, now.Unix())
	if err != nil {
		return err
	}
	j := 0
	for rows.Next() {
		var idx, rid, allow, deny sql.RawBytes // used before the next row only
		if err := rows.Scan(&idx, &rid, &allow, &deny); err != nil {
			rows.Close()
			return err
		}
		allowed, err := listHas(allow, caller)
		if err != nil {
			rows.Close()
			return err
		}
		denied, err := listHas(deny, caller)
		if err != nil {
			rows.Close()
			return err
		}
		for j < len(cands) && compareKey(cands[j], idx, rid) < 0 {
			j++
		}
		if j < len(cands) && compareKey(cands[j], idx, rid) == 0 {
			cands[j].Allowed, cands[j].Denied = allowed, denied
		}
	}
	return closeRows(rows)
}

func compareKey(c directory.Candidate, idx, rid []byte) int {
	if d := bytes.Compare(c.Index[:], idx); d != 0 {
		return d
	}
	return bytes.Compare(c.RecordID[:], rid)
}

func closeRows(rows *sql.Rows) error {
	return errors.Join(rows.Close(), rows.Err())
}

func (s *Store) CountOwners(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.ro.QueryRowContext(ctx, `SELECT COUNT(DISTINCT idx) FROM records WHERE expires_at > ?`, now.Unix()).Scan(&n)
	return n, err
}

func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.rw.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, directory.ErrNotFound
	}
	return v, err
}

func (s *Store) InitMeta(ctx context.Context, key string, value []byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var old []byte
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&old)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, key, value)
			return err
		case err != nil:
			return err
		case string(old) != string(value):
			return directory.ErrConflict
		}
		return nil
	})
}

func (s *Store) Count(ctx context.Context, key [32]byte, window, expires time.Time, limit int) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT count FROM counters WHERE key = ? AND window_start = ?`,
			key[:], window.Unix()).Scan(&n)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if n >= limit {
			return directory.ErrExhausted
		}
		n++
		_, err = tx.ExecContext(ctx, `INSERT INTO counters (key, window_start, count, expires_at) VALUES (?, ?, 1, ?)
			ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1`, key[:], window.Unix(), expires.Unix())
		return err
	})
	return n, err
}

func (s *Store) Counted(ctx context.Context, key [32]byte, window time.Time) (int, error) {
	var n int
	err := s.rw.QueryRowContext(ctx, `SELECT count FROM counters WHERE key = ? AND window_start = ?`,
		key[:], window.Unix()).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

func (s *Store) DeleteExpiredCounters(ctx context.Context, now time.Time) (int, error) {
	res, err := s.rw.ExecContext(ctx, `DELETE FROM counters WHERE expires_at <= ?`, now.Unix())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Store) Holder(ctx context.Context, index [32]byte) (directory.Holder, error) {
	var h directory.Holder
	var key []byte
	var nb int64
	var label []byte
	err := s.ro.QueryRowContext(ctx, `SELECT key_hash, not_before, label FROM holders WHERE idx = ?`, index[:]).Scan(&key, &nb, &label)
	if errors.Is(err, sql.ErrNoRows) {
		return h, directory.ErrNotFound
	}
	if err != nil {
		return h, err
	}
	if len(key) != len(h.KeyHash) || (label != nil && len(label) != len(h.Label)) {
		return h, corrupt("holder row")
	}
	copy(h.KeyHash[:], key)
	copy(h.Label[:], label)
	h.NotBefore = time.Unix(nb, 0)
	return h, nil
}

func (s *Store) ClaimHolder(ctx context.Context, index [32]byte, h directory.Holder, at time.Time) (int, error) {
	retired := 0
	// The rule is directory.DecideClaim's; this reads the holder, and writes
	// what the rule decided in the same transaction.
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var cur *directory.Holder
		var key []byte
		var nb int64
		err := tx.QueryRowContext(ctx, `SELECT key_hash, not_before FROM holders WHERE idx = ?`, index[:]).Scan(&key, &nb)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case len(key) != 32:
			return corrupt("holder row")
		default:
			cur = &directory.Holder{KeyHash: [32]byte(key), NotBefore: time.Unix(nb, 0)}
		}
		c, err := directory.DecideClaim(cur, h)
		if err != nil {
			return err
		}
		switch c.Kind {
		case directory.ClaimRenew:
			return updateHolder(ctx, tx, index, *cur, c.Holder)
		case directory.ClaimFirst:
			if _, err = tx.ExecContext(ctx, `INSERT INTO holders (idx, key_hash, not_before, label) VALUES (?, ?, ?, ?)`,
				index[:], c.Holder.KeyHash[:], c.Holder.NotBefore.Unix(), c.Holder.Label[:]); err != nil {
				return err
			}
			return logHolder(ctx, tx, c, 0)
		}
		// ClaimRetire.
		if retired, err = retire(ctx, tx, index, c.Retired.KeyHash, at); err != nil {
			return err
		}
		if err := updateHolder(ctx, tx, index, *cur, c.Holder); err != nil {
			return err
		}
		if err := logHolder(ctx, tx, c, retired); err != nil {
			return err
		}
		_, err = logState(ctx, tx, index, at)
		return err
	})
	return retired, err
}

// logHolder appends c's Holder entry.
func logHolder(ctx context.Context, tx *sql.Tx, c directory.Claim, retired int) error {
	e, err := c.HolderEntry(retired)
	if err != nil {
		return err
	}
	_, err = appendLog(ctx, tx, e)
	return err
}

// updateHolder replaces cur, the holder of index that the claim was
// decided against, with next: a compare-and-swap, which the single writer
// connection makes succeed.
func updateHolder(ctx context.Context, tx *sql.Tx, index [32]byte, cur, next directory.Holder) error {
	res, err := tx.ExecContext(ctx, `UPDATE holders SET key_hash = ?, not_before = ?, label = ?
		WHERE idx = ? AND key_hash = ? AND not_before = ?`,
		next.KeyHash[:], next.NotBefore.Unix(), next.Label[:], index[:], cur.KeyHash[:], cur.NotBefore.Unix())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(err, errors.New("sqlite: holder changed during a claim"))
	}
	return nil
}

// retire removes index's records and their ACLs, leaving a tombstone for
// each, revokes key, the retired holder's, and returns how many it removed.
func retire(ctx context.Context, tx *sql.Tx, index, key [32]byte, at time.Time) (int, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO revoked_keys (key_hash, revoked_at) VALUES (?, ?)
		ON CONFLICT (key_hash) DO NOTHING`, key[:], at.Unix()); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tombstones (idx, record_id, key_hash, retired_at)
		SELECT idx, record_id, ?, ? FROM records WHERE idx = ?`, key[:], at.Unix(), index[:]); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM records WHERE idx = ?`, index[:])
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Store) Tombstones(ctx context.Context, index [32]byte) ([]directory.Tombstone, error) {
	rows, err := s.ro.QueryContext(ctx, `SELECT record_id, key_hash, retired_at FROM tombstones
		WHERE idx = ? ORDER BY retired_at, record_id`, index[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.Tombstone
	for rows.Next() {
		var rid, key []byte
		var at int64
		if err := rows.Scan(&rid, &key, &at); err != nil {
			return nil, err
		}
		t := directory.Tombstone{Index: index, Retired: time.Unix(at, 0)}
		if len(rid) != 32 || len(key) != 32 {
			return nil, corrupt("tombstone row")
		}
		copy(t.RecordID[:], rid)
		copy(t.KeyHash[:], key)
		out = append(out, t)
	}
	return out, rows.Err()
}

func (s *Store) RevokeKey(ctx context.Context, keyHash [32]byte, at time.Time) error {
	_, err := s.rw.ExecContext(ctx, `INSERT INTO revoked_keys (key_hash, revoked_at) VALUES (?, ?)
		ON CONFLICT (key_hash) DO NOTHING`, keyHash[:], at.Unix())
	return err
}

func (s *Store) KeyRevoked(ctx context.Context, keyHash [32]byte) (bool, error) {
	var one int
	err := s.ro.QueryRowContext(ctx, `SELECT 1 FROM revoked_keys WHERE key_hash = ?`, keyHash[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (s *Store) Tokens(ctx context.Context, key [32]byte, b directory.TokenBucket, delta float64, now time.Time) (float64, error) {
	var level float64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var tokens float64
		var updated int64
		err := tx.QueryRowContext(ctx, `SELECT tokens, updated_ms FROM token_buckets WHERE key = ?`, key[:]).Scan(&tokens, &updated)
		l := directory.TokenLevel{Tokens: tokens, Updated: time.UnixMilli(updated)}
		switch {
		case errors.Is(err, sql.ErrNoRows):
			l = b.New(now)
		case err != nil:
			return err
		}
		next, err := b.Add(l, delta, now)
		level = next.Tokens
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO token_buckets (key, tokens, updated_ms) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_ms = excluded.updated_ms`,
			key[:], next.Tokens, next.Updated.UnixMilli())
		return err
	})
	return level, err
}

func (s *Store) SaveOutcome(ctx context.Context, key [32]byte, o ca.Outcome, expires time.Time) error {
	_, err := s.rw.ExecContext(ctx, `INSERT INTO outcomes (key, request_hash, status, body, expires_at) VALUES (?, ?, ?, ?, ?)`,
		key[:], o.RequestHash[:], o.Status, o.Body, expires.Unix())
	if isUnique(err) {
		return directory.ErrConflict
	}
	return err
}

func (s *Store) Outcome(ctx context.Context, key [32]byte, now time.Time) (ca.Outcome, error) {
	var o ca.Outcome
	var rh []byte
	err := s.rw.QueryRowContext(ctx, `SELECT request_hash, status, body FROM outcomes WHERE key = ? AND expires_at > ?`,
		key[:], now.Unix()).Scan(&rh, &o.Status, &o.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return o, directory.ErrNotFound
	}
	if err != nil {
		return o, err
	}
	if len(rh) != len(o.RequestHash) {
		return o, corrupt("outcome row")
	}
	copy(o.RequestHash[:], rh)
	return o, nil
}

func (s *Store) DeleteExpiredOutcomes(ctx context.Context, now time.Time) (int, error) {
	res, err := s.rw.ExecContext(ctx, `DELETE FROM outcomes WHERE expires_at <= ?`, now.Unix())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
