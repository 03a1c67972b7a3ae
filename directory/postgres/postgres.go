// Package postgres is the scale-out store of a blindex directory: PostgreSQL
// through pgx, for deployments whose API tier runs on several machines.
//
// It holds the same tables as the embedded SQLite store and is held to the
// same contract (directory.Store), by the same conformance suite. Every
// limit the server core relies on (code attempts, resends, abuse counters,
// token budgets, records per holder) is enforced by the database, not by the
// process, so any number of servers may share one database. So is the order
// of the transparency log: each append locks the log's head row in the
// transaction of the change it records, so the servers keep one linear log.
//
// Durability is PostgreSQL's: a method returns nil only after its commit is
// acknowledged, and Open refuses a server or session with fsync or
// synchronous_commit off, since acknowledged writes could then be lost. A
// failover to an asynchronous replica can lose them too: a highly available
// deployment needs synchronous replication (synchronous_standby_names).
package postgres

import (
	"context"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

// SchemaVersion is the newest schema this binary knows: the number of the
// last file in migrations/.
const SchemaVersion = 5

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the pg_advisory_xact_lock key that serializes migrations
// of one database ("blindex" in ASCII).
const migrationLock int64 = 0x626c696e646578

const (
	kindAllow = 1
	kindDeny  = 2
)

// Store implements directory.Store on PostgreSQL. Its methods are safe for
// concurrent use, from one process or many.
type Store struct {
	pool *pgxpool.Pool
}

var _ directory.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value connection string, as libpq takes), checks that it keeps
// acknowledged writes, and brings its schema up to SchemaVersion. It refuses
// a database whose schema is newer than this binary's.
//
// Tables are created in the first schema of the connection's search_path,
// so several directories may share one database under different schemas.
// Behind a pooler in transaction mode (PgBouncer), add
// default_query_exec_mode=exec to dsn: prepared statements do not survive
// there.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's message redacts the password.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "blindex"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := checkDurable(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// checkDurable refuses settings under which a committed write can be lost
// in a crash: the Store contract promises that a nil return is durable.
func checkDurable(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT name, setting FROM pg_settings
		WHERE name IN ('fsync', 'synchronous_commit')`)
	if err != nil {
		return fmt.Errorf("postgres: connecting: %w", err)
	}
	settings, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Setting string }])
	if err != nil {
		return fmt.Errorf("postgres: reading settings: %w", err)
	}
	for _, s := range settings {
		if s.Setting == "off" {
			return fmt.Errorf("postgres: %s is off, so an acknowledged write can be lost in a crash; "+
				"set %s = on for the server (or remove it from the connection string and role)", s.Name, s.Name)
		}
	}
	return nil
}

// A migration is one file of migrations/, NNNN_name.sql, which brings the
// schema from version NNNN-1 to NNNN.
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var ms []migration
	for i, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("postgres: migration %s: want number %04d", base, i+1)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	if len(ms) != SchemaVersion {
		return nil, fmt.Errorf("postgres: %d migrations embedded, want %d", len(ms), SchemaVersion)
	}
	return ms, nil
}

// migrate applies the missing migrations in one transaction. The advisory
// lock makes a second process that starts at the same time wait, then find
// the schema current; a failed migration leaves the database as it was.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	// READ COMMITTED, whatever the server's default: each statement after
	// the lock must see what the process that held it committed.
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("postgres: locking the schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at BIGINT NOT NULL -- Unix seconds
		)`); err != nil {
			return fmt.Errorf("postgres: creating schema_migrations: %w", err)
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
			return fmt.Errorf("postgres: reading the schema version: %w", err)
		}
		if v > SchemaVersion {
			return fmt.Errorf("postgres: database schema version %d is newer than this binary's %d; "+
				"run a blindex release that supports version %d", v, SchemaVersion, v)
		}
		for _, m := range ms[v:] {
			// With no arguments pgx uses the simple protocol, which runs a
			// file of several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("postgres: migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, time.Now().Unix()); err != nil {
				return fmt.Errorf("postgres: migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}

// Close closes the connection pool. Calls after Close fail.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Checkpoint does nothing: PostgreSQL's files are the server's, not the
// store's. A deleted row stays in its table's pages until VACUUM reclaims
// the space (which marks it free, but does not zero it), and in the WAL
// until its segment is recycled; archived WAL, base backups and replicas
// keep copies beyond that. An operator who needs deletions to be physical
// should keep autovacuum on (and run VACUUM FULL to rewrite a table when a
// bound on old pages matters), encrypt the storage and backups at rest, and
// bound the retention of WAL archives and backups.
func (s *Store) Checkpoint(ctx context.Context) error { return nil }

// Transactions and retries.
//
// Single statements run at the server's default isolation (READ COMMITTED):
// a guarded UPDATE or an INSERT ... ON CONFLICT re-checks its condition on
// the newest row version after waiting for its lock, so limits hold. A
// read-then-write that depends on rows not existing cannot lock them, so it
// locks a row that stands for them: PutRecord's count of a holder's records
// is read under that holder's row lock. Changes of an index's holders
// (which may join a holder that has no row yet) take the index's advisory
// lock (lockIndex), and writes of its records share it. All of these run
// at READ COMMITTED, whose statements see what committed while they
// waited for a lock; a SERIALIZABLE transaction's snapshot is taken at its
// first statement, before any lock it waits for.
// Appends to the log are sequenced by a row lock; log.go explains how that
// meets both isolation levels.

// maxTries bounds the retries of one call aborted to keep transactions
// serializable. Each abort means another transaction committed, so a
// retry makes progress.
const maxTries = 100

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) &&
		(pe.Code == "40001" || // serialization_failure
			pe.Code == "40P01") // deadlock_detected
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" // unique_violation
}

// errRetry makes retry run f again.
var errRetry = errors.New("postgres: concurrent change, retrying")

// retry calls f until it returns an error that is not a serialization
// failure, with a short random backoff between tries.
func retry(ctx context.Context, f func() error) error {
	for try := 1; ; try++ {
		err := f()
		if err == nil || !(retryable(err) || errors.Is(err, errRetry)) {
			return err
		}
		if try == maxTries {
			return fmt.Errorf("postgres: gave up after %d tries: %w", try, err)
		}
		backoff := time.Duration(rand.Int64N(int64(min(time.Millisecond<<min(try, 7), 100*time.Millisecond))))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
	}
}

// tx runs f in a transaction at iso, retried as a whole on serialization
// failures. f must set its results afresh on each call.
func (s *Store) tx(ctx context.Context, iso pgx.TxIsoLevel, f func(pgx.Tx) error) error {
	return retry(ctx, func() error {
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: iso}, f)
	})
}

// exec runs one statement and returns the number of rows it changed.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (int, error) {
	var n int64
	err := retry(ctx, func() error {
		tag, err := s.pool.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	return int(n), err
}

// execOne runs one statement that must change a row, or returns
// ErrNotFound.
func (s *Store) execOne(ctx context.Context, sql string, args ...any) error {
	n, err := s.exec(ctx, sql, args...)
	if err == nil && n == 0 {
		return directory.ErrNotFound
	}
	return err
}

// queryRow runs a one-row query, retried on serialization failures, and
// maps no rows to ErrNotFound.
func (s *Store) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	err := retry(ctx, func() error { return s.pool.QueryRow(ctx, sql, args...).Scan(dest...) })
	if errors.Is(err, pgx.ErrNoRows) {
		return directory.ErrNotFound
	}
	return err
}

func copyKey(dst []byte, src []byte, what string) error {
	if len(src) != len(dst) {
		return corrupt(what + " row")
	}
	copy(dst, src)
	return nil
}

// Verifications.

func (s *Store) CreateVerification(ctx context.Context, v ca.Verification) error {
	_, err := s.exec(ctx, `INSERT INTO verifications
		(id, number_tag, code_mac, created_at, expires_at, attempts)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		v.ID[:], v.NumberTag[:], v.CodeMAC, v.Created.Unix(), v.Expires.Unix(), v.Attempts)
	if isUnique(err) {
		return directory.ErrConflict
	}
	return err
}

const verificationCols = `id, number_tag, code_mac, created_at, expires_at, attempts`

func scanVerification(row pgx.Row) (ca.Verification, error) {
	var v ca.Verification
	var id, tag []byte
	var created, expires int64
	err := row.Scan(&id, &tag, &v.CodeMAC, &created, &expires, &v.Attempts)
	if err != nil {
		return v, err
	}
	if err := errors.Join(copyKey(v.ID[:], id, "verification"), copyKey(v.NumberTag[:], tag, "verification")); err != nil {
		return v, err
	}
	v.Created, v.Expires = time.Unix(created, 0), time.Unix(expires, 0)
	return v, nil
}

func (s *Store) Verification(ctx context.Context, id [16]byte) (ca.Verification, error) {
	var v ca.Verification
	err := retry(ctx, func() error {
		var err error
		v, err = scanVerification(s.pool.QueryRow(ctx,
			`SELECT `+verificationCols+` FROM verifications WHERE id = $1`, id[:]))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return v, directory.ErrNotFound
	}
	return v, err
}

// limitRefused tells, after a guarded UPDATE changed nothing, whether the
// verification is missing (ErrNotFound) or at its limit (ErrExhausted).
func (s *Store) limitRefused(ctx context.Context, id [16]byte) error {
	var exists bool
	if err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM verifications WHERE id = $1)`,
		[]any{id[:]}, &exists); err != nil {
		return err
	}
	if exists {
		return directory.ErrExhausted
	}
	return directory.ErrNotFound
}

func (s *Store) ClaimAttempt(ctx context.Context, id [16]byte, maxAttempts int) (ca.Verification, error) {
	var v ca.Verification
	err := retry(ctx, func() error {
		var err error
		v, err = scanVerification(s.pool.QueryRow(ctx, `UPDATE verifications SET attempts = attempts + 1
			WHERE id = $1 AND attempts < $2 RETURNING `+verificationCols, id[:], maxAttempts))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return ca.Verification{}, s.limitRefused(ctx, id)
	}
	return v, err
}

func (s *Store) FinishVerification(ctx context.Context, id [16]byte, entry []byte) (int64, error) {
	var pos int64
	err := s.tx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		pos = -1
		tag, err := tx.Exec(ctx, `DELETE FROM verifications WHERE id = $1`, id[:])
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return directory.ErrNotFound
		}
		if entry == nil {
			return nil
		}
		pos, err = appendLog(ctx, tx, entry)
		return err
	})
	if err != nil {
		return -1, err
	}
	return pos, nil
}

func (s *Store) DeleteVerification(ctx context.Context, id [16]byte) error {
	return s.execOne(ctx, `DELETE FROM verifications WHERE id = $1`, id[:])
}

func (s *Store) DeleteExpiredVerifications(ctx context.Context, now time.Time) (int, error) {
	return s.exec(ctx, `DELETE FROM verifications WHERE expires_at <= $1`, now.Unix())
}

// Counters.

func (s *Store) Count(ctx context.Context, key [32]byte, window, expires time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, directory.ErrExhausted
	}
	// One statement: a concurrent first insert makes the others take the
	// update path, whose guard sees the newest count.
	var n int
	err := s.queryRow(ctx, `INSERT INTO counters AS c (key, window_start, count, expires_at) VALUES ($1, $2, 1, $3)
		ON CONFLICT (key, window_start) DO UPDATE SET count = c.count + 1 WHERE c.count < $4
		RETURNING c.count`, []any{key[:], window.Unix(), expires.Unix(), limit}, &n)
	if errors.Is(err, directory.ErrNotFound) {
		return 0, directory.ErrExhausted
	}
	return n, err
}

func (s *Store) Counted(ctx context.Context, key [32]byte, window time.Time) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT count FROM counters WHERE key = $1 AND window_start = $2`,
		[]any{key[:], window.Unix()}, &n)
	if errors.Is(err, directory.ErrNotFound) {
		return 0, nil
	}
	return n, err
}

func (s *Store) DeleteExpiredCounters(ctx context.Context, now time.Time) (int, error) {
	return s.exec(ctx, `DELETE FROM counters WHERE expires_at <= $1`, now.Unix())
}

// Outcomes.

func (s *Store) SaveOutcome(ctx context.Context, key [32]byte, o ca.Outcome, expires time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO outcomes (key, request_hash, status, body, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		key[:], o.RequestHash[:], o.Status, o.Body, expires.Unix())
	if isUnique(err) {
		return directory.ErrConflict
	}
	return err
}

func (s *Store) Outcome(ctx context.Context, key [32]byte, now time.Time) (ca.Outcome, error) {
	var o ca.Outcome
	var rh []byte
	if err := s.queryRow(ctx, `SELECT request_hash, status, body FROM outcomes WHERE key = $1 AND expires_at > $2`,
		[]any{key[:], now.Unix()}, &rh, &o.Status, &o.Body); err != nil {
		return ca.Outcome{}, err
	}
	return o, copyKey(o.RequestHash[:], rh, "outcome")
}

func (s *Store) DeleteExpiredOutcomes(ctx context.Context, now time.Time) (int, error) {
	return s.exec(ctx, `DELETE FROM outcomes WHERE expires_at <= $1`, now.Unix())
}

// Records.

func bucketOf(index [32]byte) int64 { return int64(binary.BigEndian.Uint32(index[:4])) }

// lockIndex takes index's advisory lock until the transaction ends:
// exclusive for a change of its holders, shared for a write of one
// holder's records, so a record is never written for a holder being
// retired, nor counted while one is.
func lockIndex(ctx context.Context, tx pgx.Tx, index [32]byte, exclusive bool) error {
	fn := "pg_advisory_xact_lock_shared"
	if exclusive {
		fn = "pg_advisory_xact_lock"
	}
	_, err := tx.Exec(ctx, `SELECT `+fn+`($1)`, int64(binary.BigEndian.Uint64(index[:8])))
	return err
}

func (s *Store) PutRecord(ctx context.Context, r directory.Record, maxPerHolder int) (int64, error) {
	var pos int64
	// READ COMMITTED, so that each statement reads what was committed before
	// it, not before the transaction's first statement: after waiting for
	// the index's lock, the holder row read is the one a retirement left
	// (none), and after waiting for the holder row's lock, which every
	// publish by that holder takes, the count includes the records of the
	// publish before. (A SERIALIZABLE snapshot would be taken before the
	// waits, and the retirement, at READ COMMITTED, would not be seen as a
	// conflict.)
	err := s.tx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		if err := lockIndex(ctx, tx, r.Index, false); err != nil {
			return err
		}
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM holders WHERE idx = $1 AND key_hash = $2 FOR NO KEY UPDATE`,
			r.Index[:], r.Holder[:]).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return directory.ErrNotFound
		}
		if err != nil {
			return err
		}
		var exists bool
		var count int
		err = tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM records WHERE idx = $1 AND holder = $2 AND record_id = $3),
			(SELECT COUNT(*) FROM records WHERE idx = $1 AND holder = $2)`,
			r.Index[:], r.Holder[:], r.RecordID[:]).Scan(&exists, &count)
		if err != nil {
			return err
		}
		if !exists && count >= maxPerHolder {
			return directory.ErrExhausted
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO records
			(idx, record_id, holder, bucket, ciphertext, visibility, expires_at, updated_at, epoch)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (idx, record_id, holder) DO UPDATE SET ciphertext = excluded.ciphertext,
				visibility = excluded.visibility, expires_at = excluded.expires_at,
				updated_at = excluded.updated_at, epoch = excluded.epoch`,
			r.Index[:], r.RecordID[:], r.Holder[:], bucketOf(r.Index), r.Ciphertext, int(r.ACL.Visibility),
			r.Expires.Unix(), r.Updated.Unix(), r.Epoch)
		queueReplaceACL(b, r.Index, r.Holder, r.RecordID, r.ACL)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		pos, err = logState(ctx, tx, owned{r.Index, r.Holder}, r.Updated)
		return err
	})
	if err != nil {
		return -1, err
	}
	return pos, nil
}

// queueReplaceACL queues the statements that replace the ACL entries of
// holder's record recordID under index with l's.
func queueReplaceACL(b *pgx.Batch, index, holder, recordID [32]byte, l acl.List) {
	b.Queue(`DELETE FROM acl_entries WHERE idx = $1 AND holder = $2 AND record_id = $3`, index[:], holder[:], recordID[:])
	n := len(l.Allow) + len(l.Deny)
	if n == 0 {
		return
	}
	kinds := make([]int32, 0, n)
	ps := make([][]byte, 0, n)
	for _, p := range l.Allow {
		kinds, ps = append(kinds, kindAllow), append(ps, p[:])
	}
	for _, p := range l.Deny {
		kinds, ps = append(kinds, kindDeny), append(ps, p[:])
	}
	b.Queue(`INSERT INTO acl_entries (idx, holder, record_id, kind, pseudonym)
		SELECT $1, $2, $3, e.kind, e.pseudonym FROM unnest($4::integer[], $5::bytea[]) AS e(kind, pseudonym)`,
		index[:], holder[:], recordID[:], kinds, ps)
}

func (s *Store) SetACL(ctx context.Context, index, holder, recordID [32]byte, l acl.List, now time.Time) (int64, error) {
	var pos int64
	// The UPDATE locks the record's row until commit, so a concurrent
	// PutRecord, SetACL or delete of the same record waits for this one.
	err := s.tx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		if err := lockIndex(ctx, tx, index, false); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE records SET visibility = $1, updated_at = $2
			WHERE idx = $3 AND holder = $4 AND record_id = $5`, int(l.Visibility), now.Unix(), index[:], holder[:], recordID[:])
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return directory.ErrNotFound
		}
		b := &pgx.Batch{}
		queueReplaceACL(b, index, holder, recordID, l)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		pos, err = logState(ctx, tx, owned{index, holder}, now)
		return err
	})
	if err != nil {
		return -1, err
	}
	return pos, nil
}

func (s *Store) DeleteExpiredRecords(ctx context.Context, now time.Time) (int, error) {
	return s.deleteRecordsWhere(ctx, `expires_at <= $1`, now.Unix(), now)
}

func (s *Store) DeleteEpochsBefore(ctx context.Context, epoch int, now time.Time) (int, error) {
	n, err := s.deleteRecordsWhere(ctx, `epoch < $1`, epoch, now)
	if err != nil {
		return n, err
	}
	// The old epochs' indexes are never used again: their holder rows go
	// too, without retiring anyone.
	_, err = s.exec(ctx, `DELETE FROM holders WHERE epoch < $1`, epoch)
	return n, err
}

// deleteRecordsWhere deletes the records that cond (with one argument, $1)
// selects, and logs the State of each holder's records it changed.
func (s *Store) deleteRecordsWhere(ctx context.Context, cond string, arg any, now time.Time) (int, error) {
	total := 0
	for {
		var n int
		var more bool
		err := s.tx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
			// A batch of indexes per transaction, in index order, so a sweep
			// of many records (an epoch's retirement) never holds the log
			// for long.
			rows, err := tx.Query(ctx, `DELETE FROM records WHERE `+cond+` AND idx IN (
				SELECT DISTINCT idx FROM records WHERE `+cond+` ORDER BY idx LIMIT $2) RETURNING idx, holder`, arg, deleteBatchIndexes)
			if err != nil {
				return err
			}
			deleted, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (owned, error) {
				var idx, holder []byte
				if err := row.Scan(&idx, &holder); err != nil {
					return owned{}, err
				}
				var o owned
				return o, errors.Join(copyKey(o.index[:], idx, "record"), copyKey(o.holder[:], holder, "record"))
			})
			if err != nil {
				return err
			}
			n = len(deleted)
			distinct := sortedDistinct(deleted)
			more = distinctIndexes(distinct) == deleteBatchIndexes
			return logStates(ctx, tx, distinct, now)
		})
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// deleteBatchIndexes bounds one deletion transaction.
const deleteBatchIndexes = 256

func (s *Store) DeleteRecord(ctx context.Context, index, holder, recordID [32]byte, now time.Time) (int64, error) {
	var pos int64
	err := s.tx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		if err := lockIndex(ctx, tx, index, false); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM records WHERE idx = $1 AND holder = $2 AND record_id = $3`, index[:], holder[:], recordID[:])
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return directory.ErrNotFound
		}
		pos, err = logState(ctx, tx, owned{index, holder}, now)
		return err
	})
	if err != nil {
		return -1, err
	}
	return pos, nil
}

// bucketsQuery reads the records of ranges ($2, $3: bucket bounds) of
// epoch $5 unexpired at $4, each joined to its holder's row (on notice or
// not), with the caller $1's membership of its allow and deny lists.
//
// Membership is two point lookups for every record alike: each probe names
// all five columns of acl_entries' primary key (idx, holder, record_id,
// kind, pseudonym), so it reads one index entry or finds there is none,
// whether the caller is allowed, denied or absent and however long the
// lists are (issue 19 item 6). They are scalar subqueries, not EXISTS: the
// planner may turn an EXISTS into a hashed subplan, which scans every
// access list entry of the caller's pseudonym once per query, so that the
// work would grow with all the lists in the database (TestBucketsPlan).
const bucketsQuery = `SELECT q.n, r.idx, r.record_id, r.holder, r.ciphertext, r.visibility,
	COALESCE(h.last_proof, 0), h.key_hash IS NULL OR h.notice_until <> 0,
	COALESCE((SELECT true FROM acl_entries a WHERE a.idx = r.idx AND a.holder = r.holder
		AND a.record_id = r.record_id AND a.kind = 1 AND a.pseudonym = $1), false),
	COALESCE((SELECT true FROM acl_entries a WHERE a.idx = r.idx AND a.holder = r.holder
		AND a.record_id = r.record_id AND a.kind = 2 AND a.pseudonym = $1), false)
	FROM unnest($2::bigint[], $3::bigint[]) WITH ORDINALITY AS q(lo, hi, n)
	JOIN records r ON r.epoch = $5 AND r.bucket BETWEEN q.lo AND q.hi
	LEFT JOIN holders h ON h.idx = r.idx AND h.key_hash = r.holder
	WHERE r.expires_at > $4
	ORDER BY q.n, r.idx, r.record_id, r.holder`

func (s *Store) Buckets(ctx context.Context, epoch int, ranges []directory.BucketRange, caller acl.Pseudonym, now time.Time) ([][]directory.Candidate, error) {
	los, his := make([]int64, len(ranges)), make([]int64, len(ranges))
	for i, br := range ranges {
		los[i], his[i] = int64(br.Lo), int64(br.Hi)
	}
	var out [][]directory.Candidate
	// One statement, so every range is read from one snapshot.
	err := retry(ctx, func() error {
		out = make([][]directory.Candidate, len(ranges))
		rows, err := s.pool.Query(ctx, bucketsQuery, caller[:], los, his, now.Unix(), epoch)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c directory.Candidate
			var n, lastProof int64
			var idx, rid, holder []byte
			var vis int
			if err := rows.Scan(&n, &idx, &rid, &holder, &c.Ciphertext, &vis, &lastProof, &c.Hidden, &c.Allowed, &c.Denied); err != nil {
				return err
			}
			if n < 1 || n > int64(len(out)) {
				return fmt.Errorf("postgres: bucket query returned range %d of %d", n, len(out))
			}
			if err := errors.Join(copyKey(c.Index[:], idx, "record"), copyKey(c.RecordID[:], rid, "record"),
				copyKey(c.Holder[:], holder, "record")); err != nil {
				return err
			}
			c.Visibility = acl.Visibility(vis)
			c.LastProof = time.Unix(lastProof, 0)
			out[n-1] = append(out[n-1], c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) CountOwners(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(DISTINCT idx) FROM records WHERE expires_at > $1`, []any{now.Unix()}, &n)
	return n, err
}

// Meta.

func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	if err := s.queryRow(ctx, `SELECT value FROM meta WHERE key = $1`, []any{key}, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func (s *Store) InitMeta(ctx context.Context, key string, value []byte) error {
	// Meta rows are never changed or deleted, so once the insert has lost
	// (to a row committed before or concurrently), the row read is final.
	n, err := s.exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, value)
	if err != nil || n == 1 {
		return err
	}
	old, err := s.Meta(ctx, key)
	if err != nil {
		return err
	}
	if string(old) != string(value) {
		return directory.ErrConflict
	}
	return nil
}

// Holders.

func (s *Store) Holders(ctx context.Context, index [32]byte) ([]directory.Holder, error) {
	var out []directory.Holder
	err := retry(ctx, func() error {
		var err error
		out, err = readHolders(ctx, s.pool, index)
		return err
	})
	return out, err
}

// readHolders reads the holders of index, ordered by key hash, each with
// its number of records under index.
func readHolders(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, index [32]byte) ([]directory.Holder, error) {
	rows, err := q.Query(ctx, `SELECT h.key_hash, h.first_proof, h.last_proof, h.notice_proof, h.notice_until, h.label,
			(SELECT COUNT(*) FROM records r WHERE r.idx = h.idx AND r.holder = h.key_hash)
		FROM holders h WHERE h.idx = $1 ORDER BY h.key_hash`, index[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.Holder
	for rows.Next() {
		var h directory.Holder
		var key, label []byte
		var first, last, noticeProof, noticeUntil, records int64
		if err := rows.Scan(&key, &first, &last, &noticeProof, &noticeUntil, &label, &records); err != nil {
			return nil, err
		}
		if err := copyKey(h.KeyHash[:], key, "holder"); err != nil {
			return nil, err
		}
		if label != nil { // NULL for a holder claimed before schema version 2
			if err := copyKey(h.Label[:], label, "holder"); err != nil {
				return nil, err
			}
		}
		h.FirstProof, h.LastProof = time.Unix(first, 0), time.Unix(last, 0)
		h.NoticeProof, h.NoticeUntil = unixOrZero(noticeProof), unixOrZero(noticeUntil)
		h.Records = int(records)
		out = append(out, h)
	}
	return out, rows.Err()
}

// unixOrZero is the time of Unix seconds t, with 0 for none.
func unixOrZero(t int64) time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.Unix(t, 0)
}

// zeroOrUnix is the column of t: Unix seconds, 0 for the zero time.
func zeroOrUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (s *Store) ChangeHolders(ctx context.Context, epoch int, index [32]byte, decide func([]directory.Holder) (directory.HolderChange, error), at time.Time) (directory.HolderChange, error) {
	var ch directory.HolderChange
	// The index's lock makes concurrent changes take turns, each decided
	// against what the one before wrote, even when the index has no rows
	// yet; and it keeps record writes of the index out until commit, so
	// the records counted and retired are all there are.
	err := s.tx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		if err := lockIndex(ctx, tx, index, true); err != nil {
			return err
		}
		hs, err := readHolders(ctx, tx, index)
		if err != nil {
			return err
		}
		if ch, err = decide(hs); err != nil {
			return err
		}
		entries := slices.Clip(ch.Entries)
		for _, h := range ch.Retire {
			var label []byte
			err := tx.QueryRow(ctx, `DELETE FROM holders WHERE idx = $1 AND key_hash = $2 RETURNING label`,
				index[:], h.KeyHash[:]).Scan(&label)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO revoked_keys (key_hash, revoked_at) VALUES ($1, $2)
				ON CONFLICT (key_hash) DO NOTHING`, h.KeyHash[:], at.Unix())
			b.Queue(`INSERT INTO tombstones (idx, record_id, key_hash, retired_at)
				SELECT idx, record_id, holder, $1 FROM records WHERE idx = $2 AND holder = $3
				ON CONFLICT DO NOTHING`, at.Unix(), index[:], h.KeyHash[:])
			b.Queue(`DELETE FROM records WHERE idx = $1 AND holder = $2`, index[:], h.KeyHash[:])
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
			l, ok, err := directory.StateLabel(label)
			if err != nil {
				return err
			}
			if ok {
				e, err := translog.StateEntry(l, h.KeyHash, nil, at)
				if err != nil {
					return err
				}
				entries = append(entries, e)
			}
		}
		for _, h := range ch.Put {
			var label []byte // a holder from before the log has none
			if h.Label != ([32]byte{}) {
				label = h.Label[:]
			}
			if _, err := tx.Exec(ctx, `INSERT INTO holders
				(idx, key_hash, epoch, first_proof, last_proof, notice_proof, notice_until, label)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				ON CONFLICT (idx, key_hash) DO UPDATE SET epoch = excluded.epoch,
					first_proof = excluded.first_proof, last_proof = excluded.last_proof,
					notice_proof = excluded.notice_proof, notice_until = excluded.notice_until,
					label = excluded.label`,
				index[:], h.KeyHash[:], epoch, h.FirstProof.Unix(), h.LastProof.Unix(),
				zeroOrUnix(h.NoticeProof), zeroOrUnix(h.NoticeUntil), label); err != nil {
				return err
			}
		}
		if len(entries) == 0 {
			return nil
		}
		_, err = appendLog(ctx, tx, entries...)
		return err
	})
	if err != nil {
		return directory.HolderChange{}, err
	}
	return ch, nil
}

func (s *Store) OverdueHolders(ctx context.Context, epoch int, now time.Time, limit int) ([][32]byte, error) {
	var out [][32]byte
	err := retry(ctx, func() error {
		out = nil
		rows, err := s.pool.Query(ctx, `SELECT DISTINCT idx FROM holders
			WHERE epoch = $1 AND notice_until BETWEEN 1 AND $2 ORDER BY idx LIMIT $3`, epoch, now.Unix(), limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) ([32]byte, error) {
			var idx []byte
			if err := row.Scan(&idx); err != nil {
				return [32]byte{}, err
			}
			var o [32]byte
			return o, copyKey(o[:], idx, "holder")
		})
		return err
	})
	return out, err
}

func (s *Store) Tombstones(ctx context.Context, index [32]byte) ([]directory.Tombstone, error) {
	var out []directory.Tombstone
	err := retry(ctx, func() error {
		out = nil
		rows, err := s.pool.Query(ctx, `SELECT record_id, key_hash, retired_at FROM tombstones
			WHERE idx = $1 ORDER BY retired_at, record_id, key_hash`, index[:])
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var rid, key []byte
			var at int64
			if err := rows.Scan(&rid, &key, &at); err != nil {
				return err
			}
			t := directory.Tombstone{Index: index, Retired: time.Unix(at, 0)}
			if err := errors.Join(copyKey(t.RecordID[:], rid, "tombstone"), copyKey(t.KeyHash[:], key, "tombstone")); err != nil {
				return err
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) RevokeKey(ctx context.Context, keyHash [32]byte, at time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO revoked_keys (key_hash, revoked_at) VALUES ($1, $2)
		ON CONFLICT (key_hash) DO NOTHING`, keyHash[:], at.Unix())
	return err
}

func (s *Store) KeyRevoked(ctx context.Context, keyHash [32]byte) (bool, error) {
	var revoked bool
	err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_keys WHERE key_hash = $1)`,
		[]any{keyHash[:]}, &revoked)
	return revoked, err
}

// Token buckets.

func (s *Store) Tokens(ctx context.Context, key [32]byte, b directory.TokenBucket, delta float64, now time.Time) (float64, error) {
	var level float64
	// The bucket's row is locked (FOR UPDATE) from the read to the commit,
	// so concurrent spenders take turns and never spend more than it holds.
	// A new bucket is inserted first; if the spend is refused, the rollback
	// removes it again, so a refusal changes nothing.
	err := s.tx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var l directory.TokenLevel
		var updated int64
		err := tx.QueryRow(ctx, `SELECT tokens, updated_ms FROM token_buckets WHERE key = $1 FOR UPDATE`,
			key[:]).Scan(&l.Tokens, &updated)
		if errors.Is(err, pgx.ErrNoRows) {
			// A concurrent creator makes this insert wait for its commit, and
			// then do nothing.
			fresh := b.New(now)
			if _, err := tx.Exec(ctx, `INSERT INTO token_buckets (key, tokens, updated_ms) VALUES ($1, $2, $3)
				ON CONFLICT (key) DO NOTHING`, key[:], fresh.Tokens, fresh.Updated.UnixMilli()); err != nil {
				return err
			}
			err = tx.QueryRow(ctx, `SELECT tokens, updated_ms FROM token_buckets WHERE key = $1 FOR UPDATE`,
				key[:]).Scan(&l.Tokens, &updated)
		}
		if err != nil {
			return err
		}
		l.Updated = time.UnixMilli(updated)
		next, err := b.Add(l, delta, now)
		level = next.Tokens
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE token_buckets SET tokens = $2, updated_ms = $3 WHERE key = $1`,
			key[:], next.Tokens, next.Updated.UnixMilli())
		return err
	})
	return level, err
}
