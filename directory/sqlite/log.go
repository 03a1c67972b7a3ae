package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

// appendLog appends entries inside tx and returns the index of the first.
// The single writer connection serializes appends.
func appendLog(ctx context.Context, tx *sql.Tx, entries ...[]byte) (int64, error) {
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT size FROM log_head WHERE id = 1`).Scan(&n); err != nil {
		return 0, err
	}
	first := n
	read := func(indexes []int64) ([]tlog.Hash, error) { return readHashes(ctx, tx, indexes) }
	for _, e := range entries {
		hs, err := translog.AppendHashes(n, e, read)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO log_entries (idx, data) VALUES (?, ?)`, n, e); err != nil {
			return 0, err
		}
		base := tlog.StoredHashIndex(0, n)
		for i, h := range hs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO log_hashes (idx, hash) VALUES (?, ?)`, base+int64(i), h[:]); err != nil {
				return 0, err
			}
		}
		n++
	}
	root, err := tlog.TreeHash(n, tlog.HashReaderFunc(read))
	if err != nil {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE log_head SET size = ?, root = ? WHERE id = 1`, n, root[:])
	return first, err
}

func readHashes(ctx context.Context, q *sql.Tx, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		var b []byte
		err := q.QueryRowContext(ctx, `SELECT hash FROM log_hashes WHERE idx = ?`, idx).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: log hash %d missing", idx)
		}
		if err != nil {
			return nil, err
		}
		if len(b) != tlog.HashSize {
			return nil, corrupt("log hash")
		}
		copy(out[i][:], b)
	}
	return out, nil
}

func (s *Store) AppendLog(ctx context.Context, entries ...[]byte) (int64, error) {
	var first int64
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		first, err = appendLog(ctx, tx, entries...)
		return err
	})
	return first, err
}

func (s *Store) LogTree(ctx context.Context) (tlog.Tree, error) {
	var t tlog.Tree
	var root []byte
	if err := s.ro.QueryRowContext(ctx, `SELECT size, root FROM log_head WHERE id = 1`).Scan(&t.N, &root); err != nil {
		return t, err
	}
	if len(root) != tlog.HashSize {
		return t, corrupt("log head")
	}
	if t.N > 0 {
		copy(t.Hash[:], root)
	}
	return t, nil
}

func (s *Store) ReadLogHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	tx, err := s.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return readHashes(ctx, tx, indexes)
}

func (s *Store) ReadLogEntries(ctx context.Context, start, end int64) ([][]byte, error) {
	rows, err := s.ro.QueryContext(ctx, `SELECT idx, data FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx`, start, end)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var idx int64
		var data []byte
		if err := rows.Scan(&idx, &data); err != nil {
			return nil, err
		}
		if idx != start+int64(len(out)) {
			return nil, fmt.Errorf("sqlite: log entry %d missing", start+int64(len(out)))
		}
		out = append(out, data)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if int64(len(out)) != end-start {
		return nil, fmt.Errorf("sqlite: log entries [%d, %d) missing", start+int64(len(out)), end)
	}
	return out, nil
}

func (s *Store) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	var c []byte
	err := s.ro.QueryRowContext(ctx, `SELECT checkpoint FROM log_head WHERE id = 1`).Scan(&c)
	return c, err
}

func (s *Store) SaveCheckpoint(ctx context.Context, size int64, signed []byte) error {
	_, err := s.rw.ExecContext(ctx, `UPDATE log_head SET checkpoint_size = ?, checkpoint = ?
		WHERE id = 1 AND checkpoint_size <= ?`, size, signed, size)
	return err
}

// logState appends the State entry of holder's current records under
// index inside tx, if directory.StateLabel says the change is logged (the
// label is the one holder's row keeps), and returns its log index, or -1.
func logState(ctx context.Context, tx *sql.Tx, index, holder [32]byte, at time.Time) (int64, error) {
	var stored []byte
	err := tx.QueryRowContext(ctx, `SELECT label FROM holders WHERE idx = ? AND key_hash = ?`, index[:], holder[:]).Scan(&stored)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	label, ok, err := directory.StateLabel(stored)
	if err != nil {
		return 0, err
	}
	if !ok {
		return -1, nil
	}
	recs, err := ownerState(ctx, tx, index, holder)
	if err != nil {
		return 0, err
	}
	e, err := translog.StateEntry(label, holder, recs, at)
	if err != nil {
		return 0, err
	}
	return appendLog(ctx, tx, e)
}

func (s *Store) OwnerState(ctx context.Context, index, holder [32]byte) ([]translog.StateRecord, error) {
	tx, err := s.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return ownerState(ctx, tx, index, holder)
}

// ownerState reads what a State entry of holder's records under index
// covers: each record, then the members of their access lists, sorted.
// This is the owner's own path: it reads whole lists.
func ownerState(ctx context.Context, tx *sql.Tx, index, holder [32]byte) ([]translog.StateRecord, error) {
	rows, err := tx.QueryContext(ctx, `SELECT record_id, ciphertext, visibility, expires_at
		FROM records WHERE idx = ? AND holder = ? ORDER BY record_id`, index[:], holder[:])
	if err != nil {
		return nil, err
	}
	var recs []translog.StateRecord
	at := map[[32]byte]int{}
	for rows.Next() {
		var rid, ct []byte
		var vis, exp int64
		if err := rows.Scan(&rid, &ct, &vis, &exp); err != nil {
			rows.Close()
			return nil, err
		}
		if len(rid) != 32 {
			rows.Close()
			return nil, corrupt("record row")
		}
		at[[32]byte(rid)] = len(recs)
		recs = append(recs, translog.StateRecord{RecordID: [32]byte(rid), CiphertextSHA256: sha256.Sum256(ct),
			Expires: time.Unix(exp, 0), ACL: acl.List{Visibility: acl.Visibility(vis)}})
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT record_id, kind, pseudonym FROM acl_members
		WHERE idx = ? AND holder = ? ORDER BY record_id, kind, pseudonym`, index[:], holder[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var rid, p []byte
		var kind int
		if err := rows.Scan(&rid, &kind, &p); err != nil {
			return nil, err
		}
		i, ok := at[[32]byte(rid)]
		if len(rid) != 32 || len(p) != acl.PseudonymSize || !ok {
			return nil, corrupt("acl row")
		}
		switch kind {
		case kindAllow:
			recs[i].ACL.Allow = append(recs[i].ACL.Allow, acl.Pseudonym(p))
		case kindDeny:
			recs[i].ACL.Deny = append(recs[i].ACL.Deny, acl.Pseudonym(p))
		default:
			return nil, corrupt("acl row")
		}
	}
	return recs, rows.Err()
}
