package sqlite

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
)

// The probes below count, through SQL functions on a connection of their
// own, what the ACL part of bucketQuery does.
var (
	countingOnce sync.Once
	counted      struct {
		sync.Mutex
		probes, rows int
	}
)

func countingDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	countingOnce.Do(func() {
		sql.Register("sqlite3_counting", &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			// probed(x) returns x, the bound pseudonym: as the key a
			// probe seeks, it is called once each time a probe runs.
			// visited(x) is called for each acl_members row a probe
			// reads (x is the row's kind). Neither is pure, so SQLite
			// calls them every time.
			if err := c.RegisterFunc("probed", func(x []byte) []byte {
				counted.Lock()
				defer counted.Unlock()
				counted.probes++
				return x
			}, false); err != nil {
				return err
			}
			return c.RegisterFunc("visited", func(x int64) int64 {
				counted.Lock()
				defer counted.Unlock()
				counted.rows++
				return 1
			}, false)
		}})
	})
	db, err := sql.Open("sqlite3_counting", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestBucketACLWorkFixed is the structural test of issue 19 item 6: a
// bucket fetch's ACL work for a record does not depend on the sizes of its
// lists. A hidden record (its holder on notice) with a 10,000-entry
// allowlist and one with a 1-entry allowlist cost the same: for each, the
// plan is two point probes of the acl_members primary key, every probe
// runs whatever the caller, the visibility or the notice, and each reads
// at most the one row it looks for.
func TestBucketACLWorkFixed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	now := time.Unix(1_750_000_000, 0)
	p := func(n int) acl.Pseudonym {
		var q acl.Pseudonym
		q[0], q[1], q[2] = 'p', byte(n>>8), byte(n)
		return q
	}
	var holder [32]byte
	holder[0] = 'h'
	long := acl.List{Visibility: acl.Allowlist}
	for i := range 10_000 {
		long.Allow = append(long.Allow, p(2*i+2))
	}
	short := acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p(2)}}
	// One record per bucket: 0x20 holds the long list, 0x30 the short one,
	// 0x40 the long one again, published (and probed) as public.
	indexes := map[byte]acl.List{0x20: long, 0x30: short, 0x40: {Visibility: acl.Public, Allow: long.Allow}}
	for b, l := range indexes {
		var idx, rid [32]byte
		idx[0], rid[0] = b, 1
		_, err := s.ChangeHolders(ctx, 0, idx, func([]directory.Holder) (directory.HolderChange, error) {
			return directory.HolderChange{Put: []directory.Holder{{KeyHash: holder, FirstProof: now, LastProof: now,
				NoticeProof: now, NoticeUntil: now.Add(time.Hour)}}}, nil // on notice: hidden
		}, now)
		if err != nil {
			t.Fatal(err)
		}
		r := directory.Record{Index: idx, Holder: holder, RecordID: rid, Ciphertext: []byte("sealed"),
			ACL: l, Expires: now.Add(time.Hour), Updated: now}
		if _, err := s.PutRecord(ctx, r, 10); err != nil {
			t.Fatal(err)
		}
	}

	// The plan: the records range, the holder row, and two correlated
	// subqueries, each a SEARCH on all five key columns of acl_members.
	plan := queryPlan(t, s.ro, bucketQuery)
	const probe = "SEARCH a USING PRIMARY KEY (idx=? AND holder=? AND record_id=? AND kind=? AND pseudonym=?)"
	probes, subqueries := 0, 0
	for _, d := range plan {
		switch {
		case d == probe:
			probes++
		case strings.HasPrefix(d, "CORRELATED SCALAR SUBQUERY"):
			subqueries++
		case strings.Contains(d, " a ") || strings.Contains(d, "acl_members"):
			t.Errorf("plan reads acl_members otherwise than by a point probe: %q", d)
		}
	}
	if probes != 2 || subqueries != 2 {
		t.Errorf("plan has %d point probes in %d correlated subqueries, want 2 in 2:\n%s", probes, subqueries, strings.Join(plan, "\n"))
	}

	// The counted work, on the same statement with the counters added:
	// probes run and acl_members rows read, per record.
	counting := strings.Replace(bucketQuery, "a.pseudonym = ?5)", "a.pseudonym = probed(?5) AND visited(a.kind))", 2)
	if counting == bucketQuery || strings.Count(counting, "visited(") != 2 {
		t.Fatal("bucketQuery's probes are not where the counters go")
	}
	db := countingDB(t, path)
	if got := queryPlan(t, db, counting); !slices.Equal(got, plan) {
		t.Fatalf("the counters change the plan:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(plan, "\n"))
	}
	fetch := func(b byte, caller acl.Pseudonym) (probes, rows int, c directory.Candidate) {
		t.Helper()
		counted.Lock()
		counted.probes, counted.rows = 0, 0
		counted.Unlock()
		lo, hi := indexRange(directory.BucketRange{Lo: uint32(b) << 24, Hi: uint32(b)<<24 | 0xffffff})
		rs, err := db.QueryContext(ctx, counting, lo, hi, 0, now.Unix(), caller[:])
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rs.Next() {
			var idx, rid, holder, ct []byte
			var vis, flags int
			var last int64
			if err := rs.Scan(&idx, &rid, &holder, &ct, &vis, &last, &flags); err != nil {
				t.Fatal(err)
			}
			c.Allowed, c.Denied, c.Hidden = flags&flagAllowed != 0, flags&flagDenied != 0, flags&flagHidden != 0
			n++
		}
		if err := closeRows(rs); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("bucket %x: %d records, want 1", b, n)
		}
		counted.Lock()
		defer counted.Unlock()
		return counted.probes, counted.rows, c
	}
	for _, tt := range []struct {
		name     string
		caller   acl.Pseudonym
		inLong   bool // in the long list (and the public record's)
		inShort  bool
		wantRows int // rows read by both probes of a record that lists the caller
	}{
		{"absent", p(1), false, false, 0},
		{"absent between entries", p(10_001), false, false, 0},
		{"first entry", p(2), true, true, 1},
		{"middle entry", p(10_000), true, false, 1},
		{"last entry", p(20_000), true, false, 1},
	} {
		for b, l := range indexes {
			in := tt.inLong
			if len(l.Allow) == 1 {
				in = tt.inShort
			}
			wantRows := 0
			if in {
				wantRows = tt.wantRows
			}
			probes, rows, c := fetch(b, tt.caller)
			if probes != 2 || rows != wantRows {
				t.Errorf("%s, %d-entry list (%v): %d probes read %d rows, want 2 reading %d",
					tt.name, len(l.Allow), l.Visibility, probes, rows, wantRows)
			}
			if !c.Hidden || c.Allowed != in || c.Denied {
				t.Errorf("%s, %d-entry list: hidden %v allowed %v denied %v, want hidden, allowed %v",
					tt.name, len(l.Allow), c.Hidden, c.Allowed, c.Denied, in)
			}
			// The store's own fetch agrees with the counted statement.
			var idx [32]byte
			idx[0] = b
			got, err := s.Buckets(ctx, 0, []directory.BucketRange{{Lo: uint32(b) << 24, Hi: uint32(b)<<24 | 0xffffff}}, tt.caller, now)
			if err != nil || len(got[0]) != 1 {
				t.Fatalf("Buckets: %v, %v", got, err)
			}
			if g := got[0][0]; !bytes.Equal(g.Index[:], idx[:]) || g.Hidden != c.Hidden || g.Allowed != c.Allowed || g.Denied != c.Denied {
				t.Errorf("%s: Buckets %+v, counted statement %+v", tt.name, g, c)
			}
		}
	}
}

// queryPlan returns the details of EXPLAIN QUERY PLAN for q, a statement
// with bucketQuery's parameters.
func queryPlan(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+q, []byte{0}, []byte{1}, 0, 0, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := closeRows(rows); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestHousekeepingPlans checks that what housekeeping runs every round
// reads no more than it must: the overdue holders through the index of
// the rows on notice, and the sweep of a retired epoch's holder rows as a
// range of the primary key from where the last batch stopped.
func TestHousekeepingPlans(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tt := range []struct {
		q    string
		args []any
		want string
	}{
		{overdueQuery, []any{1, 2, 3}, "SEARCH holders USING COVERING INDEX holders_notice (epoch=? AND notice_until<?)"},
		{sweepQuery, []any{1, []byte{}, []byte{}, 4}, "SEARCH holders USING PRIMARY KEY ((idx,key_hash)>(?,?))"},
	} {
		rows, err := s.ro.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+tt.q, tt.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := closeRows(rows); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(plan, tt.want) {
			t.Errorf("%s:\nplan %q, want %q", tt.q, plan, tt.want)
		}
	}
}
