package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"blindex.dev/blindex/directory/postgres/pgtest"
)

// TestBucketsPlan checks, on enough rows that the planner weighs its
// choices, that Buckets probes acl_entries' primary key twice per record,
// with all five columns, and never scans the table: the ACL work of a
// bucket fetch must not depend on how long any list is (issue 19 item 6).
func TestBucketsPlan(t *testing.T) {
	dsn := pgtest.FreshDSN(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pgtest.Admin(t, dsn, `
		INSERT INTO holders (idx, key_hash, epoch, first_proof, last_proof, notice_proof, notice_until)
			SELECT decode(lpad(to_hex(i), 64, '0'), 'hex'), decode(repeat('aa', 32), 'hex'), 0, 1, 1, 0, 0
			FROM generate_series(1, 5000) i;
		INSERT INTO records (idx, record_id, holder, bucket, ciphertext, visibility, expires_at, updated_at, epoch)
			SELECT decode(lpad(to_hex(i), 64, '0'), 'hex'), decode(repeat('01', 32), 'hex'), decode(repeat('aa', 32), 'hex'),
				(i::bigint * 858993) % 4294967296, 'x', 2, 4000000000, 1, 0
			FROM generate_series(1, 5000) i;
		INSERT INTO acl_entries (idx, holder, record_id, kind, pseudonym)
			SELECT decode(lpad(to_hex(i), 64, '0'), 'hex'), decode(repeat('aa', 32), 'hex'), decode(repeat('01', 32), 'hex'),
				1 + j % 2, decode(lpad(to_hex(j), 64, '0'), 'hex')
			FROM generate_series(1, 5000) i, generate_series(1, 20) j;
		ANALYZE`)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	caller := make([]byte, 32)
	caller[31] = 5
	for _, r := range []struct{ lo, hi []int64 }{
		{[]int64{0}, []int64{1 << 20}},                   // one small range
		{[]int64{0, 1 << 30}, []int64{1 << 28, 3 << 30}}, // most of the table
		{[]int64{0}, []int64{1<<32 - 1}},                 // all of it
	} {
		rows, err := conn.Query(t.Context(), `EXPLAIN (ANALYZE, COSTS OFF) `+bucketsQuery, caller, r.lo, r.hi, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		probes := 0
		for _, l := range lines {
			if strings.Contains(l, "Index Cond: ((idx = r.idx) AND (holder = r.holder) AND (record_id = r.record_id) AND (kind = ") &&
				strings.Contains(l, "(pseudonym = ") {
				probes++
			}
		}
		if probes != 2 || strings.Contains(plan, "Seq Scan on acl_entries") || strings.Contains(plan, "hashed") {
			t.Errorf("ranges %v-%v: want two point probes of acl_entries_pkey per record, got plan:\n%s", r.lo, r.hi, plan)
		}
	}
}
