package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

// querier is what both a transaction and a pool answer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) Holders(ctx context.Context, index [32]byte) ([]directory.Holder, error) {
	return holders(ctx, s.ro, index)
}

// holders reads the holders of index, ordered by key hash, each with its
// number of records under index.
func holders(ctx context.Context, q querier, index [32]byte) ([]directory.Holder, error) {
	rows, err := q.QueryContext(ctx, `SELECT h.key_hash, h.first_proof, h.last_proof, h.notice_proof, h.notice_until, h.label,
			(SELECT COUNT(*) FROM records r WHERE r.idx = h.idx AND r.holder = h.key_hash)
		FROM holders h WHERE h.idx = ? ORDER BY h.key_hash`, index[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []directory.Holder
	for rows.Next() {
		var h directory.Holder
		var key, label []byte
		var first, last, noticeProof, noticeUntil int64
		if err := rows.Scan(&key, &first, &last, &noticeProof, &noticeUntil, &label, &h.Records); err != nil {
			return nil, err
		}
		if len(key) != len(h.KeyHash) || (label != nil && len(label) != len(h.Label)) {
			return nil, corrupt("holder row")
		}
		copy(h.KeyHash[:], key)
		copy(h.Label[:], label)
		h.FirstProof, h.LastProof = time.Unix(first, 0), time.Unix(last, 0)
		h.NoticeProof, h.NoticeUntil = unixOrZero(noticeProof), unixOrZero(noticeUntil)
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

// ChangeHolders reads, decides and writes in one write transaction: the
// single writer connection makes concurrent changes of one index take
// turns, each decided against what the one before wrote.
func (s *Store) ChangeHolders(ctx context.Context, epoch int, index [32]byte, decide func([]directory.Holder) (directory.HolderChange, error), at time.Time) (directory.HolderChange, error) {
	var ch directory.HolderChange
	err := s.tx(ctx, func(tx *sql.Tx) error {
		hs, err := holders(ctx, tx, index)
		if err != nil {
			return err
		}
		if ch, err = decide(hs); err != nil {
			return err
		}
		var labels [][]byte // of the retired holders, as their rows kept them
		for _, h := range ch.Retire {
			label, err := retire(ctx, tx, index, h.KeyHash, at)
			if err != nil {
				return err
			}
			labels = append(labels, label)
		}
		for _, h := range ch.Put {
			var label []byte // a holder from before the log has none
			if h.Label != ([32]byte{}) {
				label = h.Label[:]
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO holders
				(idx, key_hash, epoch, first_proof, last_proof, notice_proof, notice_until, label)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (idx, key_hash) DO UPDATE SET epoch = excluded.epoch,
					first_proof = excluded.first_proof, last_proof = excluded.last_proof,
					notice_proof = excluded.notice_proof, notice_until = excluded.notice_until,
					label = excluded.label`,
				index[:], h.KeyHash[:], epoch, h.FirstProof.Unix(), h.LastProof.Unix(),
				zeroOrUnix(h.NoticeProof), zeroOrUnix(h.NoticeUntil), label); err != nil {
				return err
			}
		}
		entries := ch.Entries
		for i, h := range ch.Retire {
			label, ok, err := directory.StateLabel(labels[i])
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			e, err := translog.StateEntry(label, h.KeyHash, nil, at)
			if err != nil {
				return err
			}
			entries = append(entries[:len(entries):len(entries)], e)
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
	if len(ch.Put) > 0 {
		s.swept.put(epoch)
	}
	return ch, nil
}

// retire removes the holder key of index: its records under index (and
// their ACLs) with a tombstone each, its row, and revokes the key. It
// returns the label the row kept (nil if none, or no row).
func retire(ctx context.Context, tx *sql.Tx, index, key [32]byte, at time.Time) ([]byte, error) {
	var label []byte
	err := tx.QueryRowContext(ctx, `SELECT label FROM holders WHERE idx = ? AND key_hash = ?`, index[:], key[:]).Scan(&label)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO revoked_keys (key_hash, revoked_at) VALUES (?, ?)
		ON CONFLICT (key_hash) DO NOTHING`, key[:], at.Unix()); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tombstones (idx, record_id, key_hash, retired_at)
		SELECT idx, record_id, holder, ? FROM records WHERE idx = ? AND holder = ?
		ON CONFLICT DO NOTHING`, at.Unix(), index[:], key[:]); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM records WHERE idx = ? AND holder = ?`, index[:], key[:]); err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM holders WHERE idx = ? AND key_hash = ?`, index[:], key[:])
	return label, err
}

// overdueQuery reads the holders_notice index only: the rows on notice.
const overdueQuery = `SELECT DISTINCT idx FROM holders
	WHERE epoch = ? AND notice_until != 0 AND notice_until <= ? ORDER BY idx LIMIT ?`

func (s *Store) OverdueHolders(ctx context.Context, epoch int, now time.Time, limit int) ([][32]byte, error) {
	rows, err := s.ro.QueryContext(ctx, overdueQuery, epoch, now.Unix(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][32]byte
	for rows.Next() {
		var idx []byte
		if err := rows.Scan(&idx); err != nil {
			return nil, err
		}
		if len(idx) != 32 {
			return nil, corrupt("holder row")
		}
		out = append(out, [32]byte(idx))
	}
	return out, rows.Err()
}
