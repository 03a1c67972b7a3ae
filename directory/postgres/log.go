package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

// The transparency log.
//
// Every append first locks the log_head row (SELECT ... FOR UPDATE), and
// holds it until its transaction ends, so appends from any number of
// processes take turns: the next one reads the size and hashes the last one
// committed. Locks are always taken in one order, the changed rows first
// and log_head last, so a change and its log entry never deadlock with
// another.
//
// In a READ COMMITTED transaction the lock waits for the previous append to
// commit and every later statement sees it. In a SERIALIZABLE one, a lock
// that finds the row changed since the transaction's snapshot (by an append
// or SaveCheckpoint) fails with a serialization failure, and retry runs the
// transaction again: so a transaction that appends has seen every append
// before it.

// lockLog locks the log head until the end of tx and returns the log size.
func lockLog(ctx context.Context, tx pgx.Tx) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, `SELECT size FROM log_head WHERE id = 1 FOR UPDATE`).Scan(&n)
	return n, err
}

// appendLog appends entries inside tx and returns the index of the first.
func appendLog(ctx context.Context, tx pgx.Tx, entries ...[]byte) (int64, error) {
	n, err := lockLog(ctx, tx)
	if err != nil {
		return 0, err
	}
	return appendLocked(ctx, tx, n, entries...)
}

// appendLocked appends entries to the log of size n, whose head tx has
// locked, and returns n.
func appendLocked(ctx context.Context, tx pgx.Tx, n int64, entries ...[]byte) (int64, error) {
	if len(entries) == 0 {
		return n, nil
	}
	// The hashes of this append are written together at the end; until then
	// the reader finds them here.
	pending := map[int64]tlog.Hash{}
	base := tlog.StoredHashIndex(0, n)
	read := func(indexes []int64) ([]tlog.Hash, error) {
		var missing []int64
		for _, i := range indexes {
			if _, ok := pending[i]; !ok && i < base {
				missing = append(missing, i)
			}
		}
		found, err := readHashes(ctx, tx, missing)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(indexes))
		for j, i := range indexes {
			h, ok := pending[i]
			if !ok {
				h, ok = found[i]
			}
			if !ok {
				return nil, fmt.Errorf("postgres: log hash %d missing", i)
			}
			out[j] = h
		}
		return out, nil
	}
	first := n
	var idxs, hashIdxs []int64
	var hashes [][]byte
	for _, e := range entries {
		hs, err := translog.AppendHashes(n, e, read)
		if err != nil {
			return 0, err
		}
		at := tlog.StoredHashIndex(0, n)
		for i, h := range hs {
			pending[at+int64(i)] = h
			hashIdxs = append(hashIdxs, at+int64(i))
			hashes = append(hashes, bytes.Clone(h[:]))
		}
		idxs = append(idxs, n)
		n++
	}
	root, err := tlog.TreeHash(n, tlog.HashReaderFunc(read))
	if err != nil {
		return 0, err
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO log_entries (idx, data) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, idxs, entries)
	b.Queue(`INSERT INTO log_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, hashIdxs, hashes)
	b.Queue(`UPDATE log_head SET size = $1, root = $2 WHERE id = 1`, n, root[:])
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, err
	}
	return first, nil
}

// readHashes reads the stored hashes at indexes in one query.
func readHashes(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, indexes []int64) (map[int64]tlog.Hash, error) {
	found := make(map[int64]tlog.Hash, len(indexes))
	if len(indexes) == 0 {
		return found, nil
	}
	rows, err := q.Query(ctx, `SELECT idx, hash FROM log_hashes WHERE idx = ANY($1)`, indexes)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		var b []byte
		if err := rows.Scan(&i, &b); err != nil {
			return nil, err
		}
		if len(b) != tlog.HashSize {
			return nil, corrupt("log hash")
		}
		found[i] = tlog.Hash(b)
	}
	return found, rows.Err()
}

func (s *Store) AppendLog(ctx context.Context, entries ...[]byte) (int64, error) {
	var first int64
	err := s.tx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) (err error) {
		first, err = appendLog(ctx, tx, entries...)
		return err
	})
	return first, err
}

func (s *Store) LogTree(ctx context.Context) (tlog.Tree, error) {
	var t tlog.Tree
	var root []byte
	if err := s.queryRow(ctx, `SELECT size, root FROM log_head WHERE id = 1`, nil, &t.N, &root); err != nil {
		return tlog.Tree{}, err
	}
	if len(root) != tlog.HashSize {
		return tlog.Tree{}, corrupt("log head")
	}
	if t.N > 0 {
		copy(t.Hash[:], root)
	}
	return t, nil
}

func (s *Store) ReadLogHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	var found map[int64]tlog.Hash
	err := retry(ctx, func() (err error) {
		found, err = readHashes(ctx, s.pool, indexes)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	for j, i := range indexes {
		h, ok := found[i]
		if !ok {
			return nil, fmt.Errorf("postgres: log hash %d missing", i)
		}
		out[j] = h
	}
	return out, nil
}

func (s *Store) ReadLogEntries(ctx context.Context, start, end int64) ([][]byte, error) {
	var out [][]byte
	err := retry(ctx, func() error {
		out = nil
		rows, err := s.pool.Query(ctx, `SELECT idx, data FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, start, end)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var idx int64
			var data []byte
			if err := rows.Scan(&idx, &data); err != nil {
				return err
			}
			if idx != start+int64(len(out)) {
				return fmt.Errorf("postgres: log entry %d missing", start+int64(len(out)))
			}
			out = append(out, data)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	if int64(len(out)) != end-start {
		return nil, fmt.Errorf("postgres: log entries [%d, %d) missing", start+int64(len(out)), end)
	}
	return out, nil
}

func (s *Store) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	var c []byte
	err := s.queryRow(ctx, `SELECT checkpoint FROM log_head WHERE id = 1`, nil, &c)
	return c, err
}

func (s *Store) SaveCheckpoint(ctx context.Context, size int64, signed []byte) error {
	// One guarded UPDATE: the guard is evaluated on the newest row after the
	// row lock, so a smaller checkpoint saved late never replaces a larger.
	_, err := s.exec(ctx, `UPDATE log_head SET checkpoint_size = $1, checkpoint = $2
		WHERE id = 1 AND checkpoint_size <= $1`, size, signed)
	return err
}

// owned names one holder's records under an index: what a State entry
// covers.
type owned struct{ index, holder [32]byte }

// logState appends the State entry of o's current records at at inside tx,
// if directory.StateLabel (given o's holder row) says the change is logged,
// and returns its log index, or -1. Callers change the records first, so
// that they hold those rows' locks before the log's.
func logState(ctx context.Context, tx pgx.Tx, o owned, at time.Time) (int64, error) {
	// Not logged, no need to wait for the log. (A holder's label changes
	// only in ChangeHolders, which takes the index's lock exclusively; the
	// callers hold it shared, or change only records being deleted.)
	var stored []byte
	err := tx.QueryRow(ctx, `SELECT label FROM holders WHERE idx = $1 AND key_hash = $2`, o.index[:], o.holder[:]).Scan(&stored)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	label, ok, err := directory.StateLabel(stored)
	if err != nil {
		return 0, err
	}
	if !ok {
		return -1, nil
	}
	// The state is read after the lock: in READ COMMITTED it then includes
	// every change of the index logged before this one, so the last State
	// entry of an index always commits to what the index holds.
	var n int64
	var recs []translog.StateRecord
	b := &pgx.Batch{}
	b.Queue(`SELECT size FROM log_head WHERE id = 1 FOR UPDATE`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&n)
	})
	queueOwnerState(b, o, &recs)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, err
	}
	e, err := translog.StateEntry(label, o.holder, recs, at)
	if err != nil {
		return 0, err
	}
	return appendLocked(ctx, tx, n, e)
}

// queueOwnerState queues the query that reads into recs what a State entry
// covers of o: the holder's records under the index.
func queueOwnerState(b *pgx.Batch, o owned, recs *[]translog.StateRecord) {
	b.Queue(`SELECT r.record_id, r.ciphertext, r.visibility, r.expires_at,
			COALESCE(array_agg(a.pseudonym) FILTER (WHERE a.kind = $3), '{}'),
			COALESCE(array_agg(a.pseudonym) FILTER (WHERE a.kind = $4), '{}')
		FROM records r LEFT JOIN acl_entries a ON a.idx = r.idx AND a.holder = r.holder AND a.record_id = r.record_id
		WHERE r.idx = $1 AND r.holder = $2
		GROUP BY r.idx, r.holder, r.record_id`, o.index[:], o.holder[:], kindAllow, kindDeny).Query(func(rows pgx.Rows) error {
		*recs = nil
		for rows.Next() {
			var rid, ct []byte
			var vis int
			var exp int64
			var allow, deny [][]byte
			if err := rows.Scan(&rid, &ct, &vis, &exp, &allow, &deny); err != nil {
				return err
			}
			r := translog.StateRecord{CiphertextSHA256: sha256.Sum256(ct), Expires: time.Unix(exp, 0),
				ACL: acl.List{Visibility: acl.Visibility(vis)}}
			if err := copyKey(r.RecordID[:], rid, "record"); err != nil {
				return err
			}
			var err error
			if r.ACL.Allow, err = pseudonyms(allow); err != nil {
				return err
			}
			if r.ACL.Deny, err = pseudonyms(deny); err != nil {
				return err
			}
			*recs = append(*recs, r)
		}
		return nil
	})
}

func pseudonyms(bs [][]byte) ([]acl.Pseudonym, error) {
	var ps []acl.Pseudonym
	for _, b := range bs {
		if len(b) != acl.PseudonymSize {
			return nil, corrupt("acl row")
		}
		ps = append(ps, acl.Pseudonym(b))
	}
	return ps, nil
}

// sortedDistinct returns the (index, holder) pairs sorted, each once: the
// order in which logStates wants them.
func sortedDistinct(os []owned) []owned {
	out := slices.Clone(os)
	slices.SortFunc(out, func(a, b owned) int {
		if c := bytes.Compare(a.index[:], b.index[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.holder[:], b.holder[:])
	})
	return slices.Compact(out)
}

// distinctIndexes counts the indexes of sorted pairs.
func distinctIndexes(os []owned) int {
	n := 0
	for i, o := range os {
		if i == 0 || o.index != os[i-1].index {
			n++
		}
	}
	return n
}

// logStates appends the State entries of os, which must be sorted and
// distinct (sortedDistinct), in that order, so that every store logs one
// change in one order.
func logStates(ctx context.Context, tx pgx.Tx, os []owned, at time.Time) error {
	for _, o := range os {
		if _, err := logState(ctx, tx, o, at); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) OwnerState(ctx context.Context, index, holder [32]byte) ([]translog.StateRecord, error) {
	var recs []translog.StateRecord
	// One statement, so one snapshot: records and their ACLs agree.
	err := retry(ctx, func() error {
		b := &pgx.Batch{}
		queueOwnerState(b, owned{index, holder}, &recs)
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}
