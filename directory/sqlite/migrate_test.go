package sqlite

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

// TestMigrateACLsFromVersion3 writes a version 3 database the way version 3
// did (one acl_entries row per entry, a bucket column), opens it, and checks
// that every list arrived whole and sorted, that bucket fetches find and
// judge the records, and that the rows an owner's state covers are the same.
func TestMigrateACLsFromVersion3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:3] {
		if err := m(tx); err != nil {
			t.Fatal(err)
		}
	}
	p := func(n byte) acl.Pseudonym { return acl.Pseudonym(bytes.Repeat([]byte{n}, 32)) }
	ix := func(b0, n byte) [32]byte {
		var i [32]byte
		i[0], i[31] = b0, n
		return i
	}
	a, b := ix(0x10, 1), ix(0x10, 2)
	rid := func(n byte) []byte { return bytes.Repeat([]byte{n}, 32) }
	now := time.Unix(1_750_000_000, 0)
	exp := now.Add(time.Hour).Unix()
	rec := func(idx [32]byte, r byte, vis acl.Visibility) {
		_, err := tx.Exec(`INSERT INTO records (idx, record_id, bucket, ciphertext, visibility, expires_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, idx[:], rid(r), 0x10000000, []byte{r}, int(vis), exp, now.Unix())
		if err != nil {
			t.Fatal(err)
		}
	}
	entry := func(idx [32]byte, r byte, kind int, q acl.Pseudonym) {
		_, err := tx.Exec(`INSERT INTO acl_entries (idx, record_id, kind, pseudonym) VALUES (?, ?, ?, ?)`,
			idx[:], rid(r), kind, q[:])
		if err != nil {
			t.Fatal(err)
		}
	}
	rec(a, 1, acl.Allowlist)
	entry(a, 1, kindAllow, p(9))
	entry(a, 1, kindAllow, p(3))
	rec(a, 2, acl.Public)
	entry(a, 2, kindDeny, p(4))
	rec(b, 1, acl.Public)
	if _, err := tx.Exec(`PRAGMA user_version = 3`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatalf("migrating: %v", err)
	}
	defer s.Close()
	var v int
	if err := s.rw.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version %d, %v", v, err)
	}
	// Through version 4's blobs into version 6's members.
	var lists, entries, old int
	err = s.rw.QueryRow(`SELECT COUNT(DISTINCT idx || record_id), COUNT(*),
		(SELECT COUNT(*) FROM sqlite_schema WHERE name LIKE 'acl_entries%' OR name = 'acls') FROM acl_members`).Scan(&lists, &entries, &old)
	if err != nil || lists != 2 || entries != 3 || old != 0 {
		t.Fatalf("acl_members: %d lists of %d entries, old tables left %d: %v", lists, entries, old, err)
	}

	st, err := s.rw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	// No holder row: the records took the zero key.
	state, err := ownerState(t.Context(), st, a, [32]byte{})
	st.Rollback()
	if err != nil {
		t.Fatal(err)
	}
	if len(state) != 2 ||
		!slices.Equal(state[0].ACL.Allow, []acl.Pseudonym{p(3), p(9)}) || len(state[0].ACL.Deny) != 0 ||
		!slices.Equal(state[1].ACL.Deny, []acl.Pseudonym{p(4)}) || len(state[1].ACL.Allow) != 0 {
		t.Fatalf("owner state after migration: %+v", state)
	}

	whole := []directory.BucketRange{{Lo: 0x10000000, Hi: 0x10000000}}
	for _, c := range []struct {
		caller          acl.Pseudonym
		allowed, denied [3]bool // a/1, a/2, b/1
	}{
		{p(9), [3]bool{true, false, false}, [3]bool{}},
		{p(4), [3]bool{}, [3]bool{false, true, false}},
		{p(5), [3]bool{}, [3]bool{}},
	} {
		got, err := s.Buckets(t.Context(), 0, whole, c.caller, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got[0]) != 3 {
			t.Fatalf("bucket fetch found %d records, want 3", len(got[0]))
		}
		for i, cand := range got[0] {
			// Without a holder the records are hidden, and judged all the same.
			if !cand.Hidden {
				t.Errorf("record %d of an index without a holder is not hidden", i)
			}
			if cand.Allowed != c.allowed[i] || cand.Denied != c.denied[i] {
				t.Errorf("caller %x, record %d: allowed %v denied %v, want %v %v",
					c.caller[0], i, cand.Allowed, cand.Denied, c.allowed[i], c.denied[i])
			}
		}
	}
}

// TestMigrateVerificationsFromVersion4 opens a version 4 database with a
// pending verification as version 4 kept it (one row per number, the code
// as SHA-256(salt || code)) and checks that version 5 dropped the row, and
// with it the unkeyed hash, and that a number may now have several.
func TestMigrateVerificationsFromVersion4(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on&_secure_delete=on&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:4] {
		if err := m(tx); err != nil {
			t.Fatal(err)
		}
	}
	hash := bytes.Repeat([]byte("OLDCODEHASH!"), 3)[:32]
	now := time.Unix(1_750_000_000, 0)
	if _, err := tx.Exec(`INSERT INTO verifications (id, number_tag, code_salt, code_hash, created_at, expires_at, attempts, sends)
		VALUES (?, ?, ?, ?, ?, ?, 0, 1)`, bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32),
		[]byte("OLDSALT"), hash, now.Unix(), now.Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`PRAGMA user_version = 4`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatalf("migrating: %v", err)
	}
	defer s.Close()
	var v, rows int
	if err := s.rw.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version %d, %v; want %d", v, err, SchemaVersion)
	}
	if err := s.rw.QueryRow(`SELECT COUNT(*) FROM verifications`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d verifications after migrating, %v; want the old one dropped", rows, err)
	}
	var tag [32]byte
	tag[0] = 7
	for i := range 2 {
		nv := ca.Verification{NumberTag: tag, CodeMAC: []byte("mac"), Created: now, Expires: now.Add(time.Hour)}
		nv.ID[0] = byte(i)
		if err := s.CreateVerification(t.Context(), nv); err != nil {
			t.Fatalf("verification %d of one number: %v", i, err)
		}
	}
	if err := s.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, hash) || bytes.Contains(b, []byte("OLDSALT")) {
			t.Errorf("%s still holds the version 4 code hash or salt", f.Name())
		}
	}
}

// TestMigrateFromVersion5 writes a version 5 database the way version 5
// did (one holder row per index, records keyed by index and record id,
// access lists as two blobs) and checks that version 6 has every holder as
// the one member of its set, every record under its index's holder, every
// list member as a row, and that the store works on the result.
func TestMigrateFromVersion5(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:5] {
		if err := m(tx); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := tx.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	p := func(n int) acl.Pseudonym {
		var q acl.Pseudonym
		q[0], q[1], q[2] = 'p', byte(n>>8), byte(n)
		return q
	}
	ix := func(b0, n byte) [32]byte {
		var i [32]byte
		i[0], i[31] = b0, n
		return i
	}
	key := func(n byte) [32]byte { return [32]byte(bytes.Repeat([]byte{n}, 32)) }
	rid := func(n byte) [32]byte { return [32]byte(bytes.Repeat([]byte{0xa0 | n}, 32)) }
	sl := func(a [32]byte) []byte { return a[:] }
	now := time.Unix(1_750_000_000, 0)
	exp := now.Add(time.Hour)
	// Epochs 1 and 2 started: 2 is current.
	exec(`INSERT INTO meta (key, value) VALUES ('epoch_1', x'7b7d'), ('epoch_2', x'7b7d')`)

	// a: a holder with a label and two records of epoch 1, one with long
	// lists (over several pages as blobs); b: records of epoch 1 and no
	// holder; c: a holder from before the log (no label) without records.
	a, b, c := ix(0x10, 1), ix(0x10, 2), ix(0x10, 3)
	ka, kc := key(0xaa), key(0xcc)
	la := key(0x1a)
	nbA, nbC := now.Add(-48*time.Hour), now.Add(-72*time.Hour)
	exec(`INSERT INTO holders (idx, key_hash, not_before, label) VALUES (?, ?, ?, ?), (?, ?, ?, NULL)`,
		a[:], ka[:], nbA.Unix(), la[:], c[:], kc[:], nbC.Unix())
	var allow, deny []acl.Pseudonym
	for i := range 300 {
		allow = append(allow, p(1000-i)) // unsorted: PackPseudonyms sorts
	}
	deny = []acl.Pseudonym{p(2000), p(1)}
	rec := func(idx, r [32]byte, vis acl.Visibility, epoch int) {
		t.Helper()
		exec(`INSERT INTO records (idx, record_id, ciphertext, visibility, expires_at, updated_at, epoch)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, idx[:], r[:], sl(r)[:4], int(vis), exp.Unix(), now.Unix(), epoch)
	}
	rec(a, rid(1), acl.Allowlist, 1)
	exec(`INSERT INTO acls (idx, record_id, allow, deny) VALUES (?, ?, ?, ?)`,
		a[:], sl(rid(1)), PackPseudonyms(allow), PackPseudonyms(deny))
	rec(a, rid(2), acl.Public, 1)
	rec(b, rid(1), acl.Public, 1)
	exec(`INSERT INTO acls (idx, record_id, allow, deny) VALUES (?, ?, x'', ?)`,
		b[:], sl(rid(1)), PackPseudonyms([]acl.Pseudonym{p(4)}))
	exec(`PRAGMA user_version = 5`)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatalf("migrating: %v", err)
	}
	defer s.Close()
	ctx := t.Context()
	var v, old, fk int
	if err := s.rw.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version %d, %v", v, err)
	}
	if err := s.rw.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('acls', 'records_v5', 'holders_v5')`).Scan(&old); err != nil || old != 0 {
		t.Errorf("%d version 5 tables left, %v", old, err)
	}
	if err := s.rw.QueryRow(`SELECT COUNT(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil || fk != 0 {
		t.Errorf("foreign key check: %d rows, %v", fk, err)
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}

	// The holders, and the epochs of their rows.
	for _, tt := range []struct {
		index [32]byte
		want  []directory.Holder
		epoch int
	}{
		{a, []directory.Holder{{KeyHash: ka, FirstProof: nbA, LastProof: nbA, Label: la, Records: 2}}, 1},
		{b, nil, 0},
		{c, []directory.Holder{{KeyHash: kc, FirstProof: nbC, LastProof: nbC, Records: 0}}, 2},
	} {
		hs, err := s.Holders(ctx, tt.index)
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) != len(tt.want) {
			t.Fatalf("index %x: holders %+v, want %+v", tt.index[31], hs, tt.want)
		}
		for i, h := range hs {
			w := tt.want[i]
			if h.KeyHash != w.KeyHash || !h.FirstProof.Equal(w.FirstProof) || !h.LastProof.Equal(w.LastProof) ||
				h.OnNotice() || !h.NoticeProof.IsZero() || h.Label != w.Label || h.Records != w.Records {
				t.Errorf("index %x: holder %+v, want %+v", tt.index[31], h, w)
			}
		}
		if len(tt.want) > 0 {
			var epoch int
			if err := s.rw.QueryRow(`SELECT epoch FROM holders WHERE idx = ?`, tt.index[:]).Scan(&epoch); err != nil || epoch != tt.epoch {
				t.Errorf("index %x: holder row of epoch %d, want %d (%v)", tt.index[31], epoch, tt.epoch, err)
			}
		}
	}

	// Every record under its index's holder, or the zero key; every list
	// member a row.
	var recs, members int
	if err := s.rw.QueryRow(`SELECT (SELECT COUNT(*) FROM records WHERE idx = ? AND holder = ?),
		(SELECT COUNT(*) FROM records WHERE idx = ? AND holder = zeroblob(32)), (SELECT COUNT(*) FROM acl_members)`,
		a[:], ka[:], b[:]).Scan(&recs, &old, &members); err != nil || recs != 2 || old != 1 || members != 303 {
		t.Errorf("records of a's holder %d (want 2), of b's zero key %d (want 1), acl members %d (want 303): %v",
			recs, old, members, err)
	}
	state, err := s.OwnerState(ctx, a, ka)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(state, func(x, y translog.StateRecord) int { return bytes.Compare(x.RecordID[:], y.RecordID[:]) })
	sorted := func(ps []acl.Pseudonym) []acl.Pseudonym {
		ps = slices.Clone(ps)
		slices.SortFunc(ps, func(x, y acl.Pseudonym) int { return bytes.Compare(x[:], y[:]) })
		return ps
	}
	if len(state) != 2 || state[0].RecordID != rid(1) || state[0].ACL.Visibility != acl.Allowlist ||
		!slices.Equal(state[0].ACL.Allow, sorted(allow)) || !slices.Equal(state[0].ACL.Deny, sorted(deny)) ||
		state[1].RecordID != rid(2) || len(state[1].ACL.Allow)+len(state[1].ACL.Deny) != 0 ||
		!state[0].Expires.Equal(exp) || state[0].CiphertextSHA256 != sha256.Sum256(sl(rid(1))[:4]) {
		t.Errorf("a's state after migration: %d records %+v", len(state), state)
	}

	// Bucket fetches of epoch 1: a's records served, b's hidden, and
	// every list judged.
	whole := []directory.BucketRange{{Lo: 0x10000000, Hi: 0x10000000}}
	for _, tt := range []struct {
		caller          acl.Pseudonym
		allowed, denied [3]bool // a/1, a/2, b/1
	}{
		{p(1000), [3]bool{true, false, false}, [3]bool{}},
		{p(701), [3]bool{true, false, false}, [3]bool{}},
		{p(700), [3]bool{}, [3]bool{}},
		{p(1), [3]bool{}, [3]bool{true, false, false}},
		{p(4), [3]bool{}, [3]bool{false, false, true}},
	} {
		got, err := s.Buckets(ctx, 1, whole, tt.caller, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got[0]) != 3 {
			t.Fatalf("bucket fetch found %d records, want 3", len(got[0]))
		}
		for i, cand := range got[0] {
			wantHolder, hidden := ka, false
			if i == 2 {
				wantHolder, hidden = [32]byte{}, true
			}
			if cand.Holder != wantHolder || cand.Hidden != hidden || (!hidden && !cand.LastProof.Equal(nbA)) {
				t.Errorf("record %d: holder %x hidden %v last proof %v", i, cand.Holder[0], cand.Hidden, cand.LastProof)
			}
			if cand.Allowed != tt.allowed[i] || cand.Denied != tt.denied[i] {
				t.Errorf("caller %x, record %d: allowed %v denied %v, want %v %v",
					tt.caller[1:3], i, cand.Allowed, cand.Denied, tt.allowed[i], tt.denied[i])
			}
		}
	}
	if got, err := s.Buckets(ctx, 2, whole, p(1000), now); err != nil || len(got[0]) != 0 {
		t.Errorf("epoch 2 fetch: %d records, %v; want none", len(got[0]), err)
	}

	// a's holder publishes, logged under its label; b's records have no
	// holder to publish under.
	r := directory.Record{Epoch: 1, Index: a, Holder: ka, RecordID: rid(3), Ciphertext: []byte("new"),
		ACL: acl.List{Visibility: acl.Public}, Expires: exp, Updated: now}
	if pos, err := s.PutRecord(ctx, r, 10); err != nil || pos < 0 {
		t.Errorf("PutRecord by a's holder after migration: %d, %v; want a logged State", pos, err)
	}
	r.Index, r.Holder = b, [32]byte{}
	if _, err := s.PutRecord(ctx, r, 10); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("PutRecord under an index without holders: %v, want ErrNotFound", err)
	}
}
