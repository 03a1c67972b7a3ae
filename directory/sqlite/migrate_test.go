package sqlite

import (
	"bytes"
	"database/sql"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
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
	var lists, entries, old int
	err = s.rw.QueryRow(`SELECT COUNT(*), SUM(length(allow) + length(deny)) / 32,
		(SELECT COUNT(*) FROM sqlite_schema WHERE name LIKE 'acl_entries%') FROM acls`).Scan(&lists, &entries, &old)
	if err != nil || lists != 2 || entries != 3 || old != 0 {
		t.Fatalf("acls %d rows of %d entries, old tables left %d: %v", lists, entries, old, err)
	}

	st, err := s.rw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	state, err := ownerState(t.Context(), st, a)
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
			if cand.Allowed != c.allowed[i] || cand.Denied != c.denied[i] {
				t.Errorf("caller %x, record %d: allowed %v denied %v, want %v %v",
					c.caller[0], i, cand.Allowed, cand.Denied, c.allowed[i], c.denied[i])
			}
		}
	}
}

// TestListHas checks the fixed-step search on every list length up to 70:
// each entry is found, and values between, before and after them are not.
func TestListHas(t *testing.T) {
	for n := range 71 {
		var ps []acl.Pseudonym
		for i := range n {
			var p acl.Pseudonym
			p[0], p[1] = byte(2*i+2), 0x80 // leaves room below, between and above
			ps = append(ps, p)
		}
		list := PackPseudonyms(ps)
		for i, p := range ps {
			if ok, err := listHas(list, p); !ok || err != nil {
				t.Fatalf("n=%d: entry %d not found (%v)", n, i, err)
			}
			q := p
			q[1]--
			if ok, _ := listHas(list, q); ok {
				t.Fatalf("n=%d: a value just below entry %d found", n, i)
			}
			q[1] += 2
			if ok, _ := listHas(list, q); ok {
				t.Fatalf("n=%d: a value just above entry %d found", n, i)
			}
		}
		var zero, top acl.Pseudonym
		top[0] = 0xff
		for _, q := range []acl.Pseudonym{zero, top} {
			if ok, _ := listHas(list, q); ok {
				t.Fatalf("n=%d: %x found", n, q[0])
			}
		}
	}
	if _, err := listHas(make([]byte, 33), acl.Pseudonym{}); err == nil {
		t.Error("a list of 33 bytes is not reported as corrupt")
	}
}

// TestLessFull checks the no-early-exit comparison against bytes.Compare.
func TestLessFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		a, b := make([]byte, 32), make([]byte, 32)
		for j := range a {
			a[j] = byte(rng.IntN(3)) // few values: many equal bytes and ties
			b[j] = byte(rng.IntN(3))
		}
		if i%4 == 0 {
			copy(b, a)
			if i%8 == 0 {
				b[rng.IntN(32)] ^= 0xff
			}
		}
		want := 0
		if bytes.Compare(a, b) < 0 {
			want = 1
		}
		if got := lessFull(a, b); got != want {
			t.Fatalf("lessFull(%x, %x) = %d, want %d", a, b, got, want)
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
	if err := s.rw.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != 5 {
		t.Fatalf("user_version %d, %v; want 5", v, err)
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
