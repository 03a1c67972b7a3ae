// Package sqlite is the embedded default store of a blindex directory: one
// SQLite file in WAL mode with synchronous=FULL, so an acknowledged write
// survives a crash, and secure_delete, so deleted rows are overwritten.
package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sync"
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

//go:embed holdersets.sql
var holderSetSchema string

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
	func(tx *sql.Tx) error {
		if _, err := tx.Exec(holderSetSchema); err != nil {
			return err
		}
		return copyACLMembers(tx)
	},
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

// copyACLMembers moves version 5's two blobs per record into version 6's
// one row per member, each under the holder its record took, streaming,
// and drops the version 5 tables.
func copyACLMembers(tx *sql.Tx) error {
	rows, err := tx.Query(`SELECT a.idx, COALESCE(h.key_hash, zeroblob(32)), a.record_id, a.allow, a.deny
		FROM acls a LEFT JOIN holders_v5 h ON h.idx = a.idx`)
	if err != nil {
		return err
	}
	defer rows.Close()
	ins, err := tx.Prepare(`INSERT INTO acl_members (idx, holder, record_id, kind, pseudonym)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for rows.Next() {
		var idx, holder, rid, allow, deny []byte
		if err := rows.Scan(&idx, &holder, &rid, &allow, &deny); err != nil {
			return err
		}
		for _, list := range []struct {
			kind int
			b    []byte
		}{{kindAllow, allow}, {kindDeny, deny}} {
			ps, err := unpackPseudonyms(list.b)
			if err != nil {
				return err
			}
			for _, p := range ps {
				if _, err := ins.Exec(idx, holder, rid, list.kind, p[:]); err != nil {
					return err
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	// Children first: dropping a table deletes its rows, and a parent's
	// would cascade.
	_, err = tx.Exec(`DROP TABLE acls; DROP TABLE records_v5; DROP TABLE holders_v5`)
	return err
}

// SchemaVersion is stored in PRAGMA user_version.
const SchemaVersion = 6

const (
	kindAllow = 1
	kindDeny  = 2
)

// Store implements directory.Store on SQLite.
type Store struct {
	rw *sql.DB // one connection, IMMEDIATE transactions: writes never deadlock
	ro *sql.DB // a pool of read-only connections

	swept sweptEpochs
}

// sweptEpochs remembers below which epoch DeleteEpochsBefore has removed
// every holder row, so that housekeeping does not read the whole table
// every round. A holder row written for an older epoch since (by this
// process) makes the next call sweep again.
type sweptEpochs struct {
	mu     sync.Mutex
	before int // no holder row of an epoch below this
	minPut int // the least epoch put since the sweep under way began
}

// put records that holder rows of epoch were written.
func (w *sweptEpochs) put(epoch int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.before = min(w.before, epoch)
	w.minPut = min(w.minPut, epoch)
}

// start reports whether a sweep below epoch is needed, and if so begins one.
func (w *sweptEpochs) start(epoch int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if epoch <= w.before {
		return false
	}
	w.minPut = math.MaxInt
	return true
}

// done records a sweep below epoch, unless a row below it was put meanwhile.
func (w *sweptEpochs) done(epoch int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.minPut >= epoch {
		w.before = max(w.before, epoch)
	}
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
