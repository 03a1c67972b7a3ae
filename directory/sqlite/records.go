package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
)

func (s *Store) PutRecord(ctx context.Context, r directory.Record, maxPerHolder int) (int64, error) {
	var pos int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var held, exists, count int
		err := tx.QueryRowContext(ctx, `SELECT
			(SELECT COUNT(*) FROM holders WHERE idx = ?1 AND key_hash = ?2),
			(SELECT COUNT(*) FROM records WHERE idx = ?1 AND record_id = ?3 AND holder = ?2),
			(SELECT COUNT(*) FROM records WHERE idx = ?1 AND holder = ?2)`,
			r.Index[:], r.Holder[:], r.RecordID[:]).Scan(&held, &exists, &count)
		switch {
		case err != nil:
			return err
		case held == 0:
			return directory.ErrNotFound
		case exists == 0 && count >= maxPerHolder:
			return directory.ErrExhausted
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO records
			(idx, record_id, holder, ciphertext, visibility, expires_at, updated_at, epoch)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (idx, record_id, holder) DO UPDATE SET ciphertext = excluded.ciphertext,
				visibility = excluded.visibility, expires_at = excluded.expires_at,
				updated_at = excluded.updated_at, epoch = excluded.epoch`,
			r.Index[:], r.RecordID[:], r.Holder[:], r.Ciphertext, int(r.ACL.Visibility),
			r.Expires.Unix(), r.Updated.Unix(), r.Epoch)
		if err != nil {
			return err
		}
		if err := replaceACL(ctx, tx, r.Index, r.Holder, r.RecordID, r.ACL); err != nil {
			return err
		}
		pos, err = logState(ctx, tx, r.Index, r.Holder, r.Updated)
		return err
	})
	return pos, err
}

// aclMember is one row of acl_members, without its record's key.
type aclMember struct {
	kind int
	p    acl.Pseudonym
}

func members(l acl.List) []aclMember {
	out := make([]aclMember, 0, len(l.Allow)+len(l.Deny))
	for _, p := range l.Allow {
		out = append(out, aclMember{kindAllow, p})
	}
	for _, p := range l.Deny {
		out = append(out, aclMember{kindDeny, p})
	}
	return out
}

// replaceACL makes l the access list of the record, writing only the
// members that change: a publish that keeps its list rewrites nothing.
func replaceACL(ctx context.Context, tx *sql.Tx, index, holder, recordID [32]byte, l acl.List) error {
	rows, err := tx.QueryContext(ctx, `SELECT kind, pseudonym FROM acl_members
		WHERE idx = ? AND holder = ? AND record_id = ?`, index[:], holder[:], recordID[:])
	if err != nil {
		return err
	}
	old := map[aclMember]bool{}
	for rows.Next() {
		var m aclMember
		var p []byte
		if err := rows.Scan(&m.kind, &p); err != nil {
			rows.Close()
			return err
		}
		if len(p) != acl.PseudonymSize {
			rows.Close()
			return corrupt("acl row")
		}
		m.p = acl.Pseudonym(p)
		old[m] = true
	}
	if err := closeRows(rows); err != nil {
		return err
	}
	want := members(l)
	for _, m := range want {
		if old[m] {
			delete(old, m) // kept
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO acl_members (idx, holder, record_id, kind, pseudonym)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			index[:], holder[:], recordID[:], m.kind, m.p[:]); err != nil {
			return err
		}
	}
	for m := range old {
		if _, err := tx.ExecContext(ctx, `DELETE FROM acl_members
			WHERE idx = ? AND holder = ? AND record_id = ? AND kind = ? AND pseudonym = ?`,
			index[:], holder[:], recordID[:], m.kind, m.p[:]); err != nil {
			return err
		}
	}
	return nil
}

// PackPseudonyms is a list's column in version 5's acls table: its
// pseudonyms sorted and concatenated. The migration to version 6 reads
// it (unpackPseudonyms), and tests write version 5 databases with it.
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

func (s *Store) SetACL(ctx context.Context, index, holder, recordID [32]byte, l acl.List, now time.Time) (int64, error) {
	var pos int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE records SET visibility = ?, updated_at = ?
			WHERE idx = ? AND record_id = ? AND holder = ?`,
			int(l.Visibility), now.Unix(), index[:], recordID[:], holder[:])
		if err := affected(res, err); err != nil {
			return err
		}
		if err := replaceACL(ctx, tx, index, holder, recordID, l); err != nil {
			return err
		}
		pos, err = logState(ctx, tx, index, holder, now)
		return err
	})
	return pos, err
}

func (s *Store) DeleteRecord(ctx context.Context, index, holder, recordID [32]byte, now time.Time) (int64, error) {
	var pos int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM records WHERE idx = ? AND record_id = ? AND holder = ?`,
			index[:], recordID[:], holder[:])
		if err := affected(res, err); err != nil {
			return err
		}
		pos, err = logState(ctx, tx, index, holder, now)
		return err
	})
	return pos, err
}

func (s *Store) DeleteExpiredRecords(ctx context.Context, now time.Time) (int, error) {
	return s.deleteRecordsWhere(ctx, `expires_at <= ?`, now.Unix(), now)
}

func (s *Store) DeleteEpochsBefore(ctx context.Context, epoch int, now time.Time) (int, error) {
	n, err := s.deleteRecordsWhere(ctx, `epoch < ?`, epoch, now)
	if err != nil || !s.swept.start(epoch) {
		return n, err
	}
	// Then the holder rows, whose labels named the State entries above. An
	// old epoch's index is never used again: nobody is retired. No index
	// finds them (housekeeping calls this every round, and one would cost
	// more per record than the rows it finds), so the table is read once,
	// in key order and in batches, and not again until a later epoch.
	lastIdx, lastKey := []byte{}, []byte{} // the last key read; every key is after the empty one
	for {
		var k int
		err := s.tx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, sweepQuery, epoch, lastIdx, lastKey, deleteBatchHolders)
			if err != nil {
				return err
			}
			var old [][2][]byte
			for rows.Next() {
				var idx, key []byte
				var retired bool
				if err := rows.Scan(&idx, &key, &retired); err != nil {
					rows.Close()
					return err
				}
				k++
				lastIdx, lastKey = idx, key
				if retired {
					old = append(old, [2][]byte{idx, key})
				}
			}
			if err := closeRows(rows); err != nil {
				return err
			}
			for _, h := range old {
				if _, err := tx.ExecContext(ctx, `DELETE FROM holders WHERE idx = ? AND key_hash = ?`, h[0], h[1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		if k < deleteBatchHolders {
			s.swept.done(epoch)
			return n, nil
		}
	}
}

// sweepQuery reads the next batch of holder rows after a key, in key
// order, each with whether its epoch is below the first parameter.
const sweepQuery = `SELECT idx, key_hash, epoch < ? FROM holders
	WHERE (idx, key_hash) > (?, ?) ORDER BY idx, key_hash LIMIT ?`

// deleteRecordsWhere deletes the records that cond (with one argument)
// selects, and logs the State of each holder's records it changed.
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
// records (an epoch's retirement) never holds the writer for long: at
// most this many (index, holder) pairs, or holder rows, at a time.
const (
	deleteBatchIndexes = 256
	deleteBatchHolders = 1024
)

// deleteBatch deletes the selected records of the first (index, holder)
// pairs (in that order) and logs their States, in one transaction, and
// reports whether more may remain.
func (s *Store) deleteBatch(ctx context.Context, cond string, arg any, now time.Time) (int, bool, error) {
	var n int64
	var more bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT idx, holder FROM records WHERE `+cond+`
			ORDER BY idx, holder LIMIT ?`, arg, deleteBatchIndexes)
		if err != nil {
			return err
		}
		var pairs [][2][32]byte
		for rows.Next() {
			var idx, holder []byte
			if err := rows.Scan(&idx, &holder); err != nil || len(idx) != 32 || len(holder) != 32 {
				rows.Close()
				return errors.Join(err, corrupt("record row"))
			}
			pairs = append(pairs, [2][32]byte{[32]byte(idx), [32]byte(holder)})
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		more = len(pairs) == deleteBatchIndexes
		for _, p := range pairs {
			res, err := tx.ExecContext(ctx, `DELETE FROM records WHERE idx = ? AND holder = ? AND `+cond, p[0][:], p[1][:], arg)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
			if _, err := logState(ctx, tx, p[0], p[1], now); err != nil {
				return err
			}
		}
		return nil
	})
	return int(n), more, err
}

// bucketQuery reads one bucket range: each record with its holder's last
// proof (-1 without a holder row) and its flags (flagAllowed, flagDenied,
// flagHidden), packed into one column because every column costs a
// conversion per row in the driver.
//
// The work depends on what the range holds, never on whether the caller
// is allowed, denied or absent, nor on how long the lists are: for every
// record the two EXISTS are one probe each of the acl_members primary key,
// all five columns bound, always both, whatever the visibility or the
// holder's notice (docs/threat-model.md; issue 19 item 6). A hidden record
// costs what a served one does.
//
// The unary + keeps SQLite from reading the range through the expiry index
// instead of the primary key.
const bucketQuery = `SELECT r.idx, r.record_id, r.holder, r.ciphertext, r.visibility,
	COALESCE(h.last_proof, -1),
	EXISTS (SELECT 1 FROM acl_members a WHERE a.idx = r.idx AND a.holder = r.holder
		AND a.record_id = r.record_id AND a.kind = 1 AND a.pseudonym = ?5)
	+ 2 * EXISTS (SELECT 1 FROM acl_members a WHERE a.idx = r.idx AND a.holder = r.holder
		AND a.record_id = r.record_id AND a.kind = 2 AND a.pseudonym = ?5)
	+ 4 * (h.notice_until IS NOT 0)
FROM records r LEFT JOIN holders h ON h.idx = r.idx AND h.key_hash = r.holder
WHERE r.idx BETWEEN ?1 AND ?2 AND +r.epoch = ?3 AND +r.expires_at > ?4
ORDER BY r.idx, r.record_id, r.holder`

// bucketQuery's last column: the caller in the allow list, in the deny
// list, and the holder on notice or missing.
const (
	flagAllowed = 1 << iota
	flagDenied
	flagHidden
)

func (s *Store) Buckets(ctx context.Context, epoch int, ranges []directory.BucketRange, caller acl.Pseudonym, now time.Time) ([][]directory.Candidate, error) {
	tx, err := s.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, bucketQuery)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	out := make([][]directory.Candidate, len(ranges))
	var blocks byteBlocks
	for i, br := range ranges {
		lo, hi := indexRange(br)
		rows, err := stmt.QueryContext(ctx, lo, hi, epoch, now.Unix(), caller[:])
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c directory.Candidate
			var idx, rid, holder, ct sql.RawBytes // copied below, ciphertexts into blocks
			var vis, flags int
			var last int64
			if err := rows.Scan(&idx, &rid, &holder, &ct, &vis, &last, &flags); err != nil {
				rows.Close()
				return nil, err
			}
			if len(idx) != 32 || len(rid) != 32 || len(holder) != 32 {
				rows.Close()
				return nil, corrupt("record row")
			}
			copy(c.Index[:], idx)
			copy(c.RecordID[:], rid)
			copy(c.Holder[:], holder)
			c.Ciphertext = blocks.copy(ct)
			c.Visibility = acl.Visibility(vis)
			c.Allowed, c.Denied = flags&flagAllowed != 0, flags&flagDenied != 0
			// No holder row (a damaged database, or a version 5 record
			// without a holder) hides the record as a notice does: NULL
			// IS NOT 0.
			c.Hidden = flags&flagHidden != 0
			if last >= 0 {
				c.LastProof = time.Unix(last, 0)
			}
			out[i] = append(out[i], c)
		}
		if err := closeRows(rows); err != nil {
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
