package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/postgres"
	"blindex.dev/blindex/directory/postgres/pgtest"
	"blindex.dev/blindex/directory/storetest"
	"blindex.dev/blindex/translog"
)

// open opens a store on dsn with a connection for each of storetest's
// concurrent callers, so that they meet in the database rather than queue
// for the pool.
func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), pgtest.WithParam(t, dsn, "pool_max_conns", "24"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func closeStore(t *testing.T, s *postgres.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestStore(t *testing.T) {
	pgtest.ServerDSN(t) // skip or fail once, not in every subtest
	start := time.Now()
	storetest.Run(t, func(t *testing.T) directory.Store {
		return open(t, pgtest.FreshDSN(t))
	})
	t.Logf("conformance suite took %v", time.Since(start).Round(time.Millisecond))
}

var now = time.Unix(1_750_000_000, 0)

func pseudonym(n byte) acl.Pseudonym {
	var p acl.Pseudonym
	p[0], p[31] = 'p', n
	return p
}

func TestReopen(t *testing.T) {
	dsn := pgtest.FreshDSN(t)
	r := directory.Record{
		Ciphertext: []byte("sealed\x00\xff"),
		ACL:        acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{pseudonym(1)}, Deny: []acl.Pseudonym{pseudonym(2)}},
		Expires:    now.Add(time.Hour),
		Updated:    now,
	}
	r.Index[0], r.RecordID[0], r.Holder[0] = 3, 4, 5
	s := open(t, dsn)
	if err := s.InitMeta(t.Context(), "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeHolders(t.Context(), 0, r.Index, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.HolderChange{Put: []directory.Holder{{KeyHash: r.Holder, FirstProof: now, LastProof: now}}}, nil
	}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRecord(t.Context(), r, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendLog(t.Context(), []byte("entry 0"), []byte("entry 1")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(t.Context(), 2, []byte("checkpoint")); err != nil {
		t.Fatal(err)
	}
	tree, err := s.LogTree(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	s = open(t, dsn)
	defer closeStore(t, s)
	if got, err := s.Meta(t.Context(), "k"); err != nil || string(got) != "value" {
		t.Errorf("Meta after reopening = %q, %v; want \"value\"", got, err)
	}
	if got, err := s.LogTree(t.Context()); err != nil || got != tree {
		t.Errorf("LogTree after reopening = %+v, %v; want %+v", got, err, tree)
	}
	if got, err := s.LatestCheckpoint(t.Context()); err != nil || string(got) != "checkpoint" {
		t.Errorf("LatestCheckpoint after reopening = %q, %v", got, err)
	}
	bs, err := s.Buckets(t.Context(), 0, []directory.BucketRange{{Lo: 0, Hi: 0xffffffff}}, pseudonym(2), now)
	if err != nil || len(bs[0]) != 1 {
		t.Fatalf("Buckets after reopening = %v, %v; want one record", bs, err)
	}
	if c := bs[0][0]; c.Index != r.Index || c.RecordID != r.RecordID || !bytes.Equal(c.Ciphertext, r.Ciphertext) ||
		c.Visibility != acl.Allowlist || c.Allowed || !c.Denied || c.Holder != r.Holder || c.Hidden {
		t.Errorf("Buckets after reopening = %+v", c)
	}
}

func schemaVersions(t *testing.T, dsn string) []int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestMigrateFromVersion1 upgrades a database made by a binary without the
// transparency log: its holders have no label, so their writes are not
// logged until their key claims the index again and brings the label.
func TestMigrateFromVersion1(t *testing.T) {
	dsn := pgtest.FreshDSN(t)
	v1, err := os.ReadFile("migrations/0001_initial.sql")
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Admin(t, dsn, string(v1))
	pgtest.Admin(t, dsn, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL);
		INSERT INTO schema_migrations VALUES (1, '0001_initial.sql', 0)`)
	var idx, key, label [32]byte
	idx[0], key[0], label[0] = 1, 2, 3
	pgtest.Admin(t, dsn, `INSERT INTO holders (idx, key_hash, not_before) VALUES ($1, $2, $3)`, idx[:], key[:], now.Unix())

	s := open(t, dsn)
	defer closeStore(t, s)
	ctx := t.Context()
	if got := schemaVersions(t, dsn); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Errorf("schema versions after Open = %v, want [1 2 3 4 5]", got)
	}
	hs, err := s.Holders(ctx, idx)
	if err != nil || len(hs) != 1 || hs[0].KeyHash != key || hs[0].Label != ([32]byte{}) || !hs[0].LastProof.Equal(now.Truncate(time.Second)) {
		t.Errorf("Holders of a version 1 holder = %+v, %v; want its key, proved at its not_before, and no label", hs, err)
	}
	if tree, err := s.LogTree(ctx); err != nil || tree.N != 0 {
		t.Errorf("LogTree after migrating = %+v, %v; want an empty log", tree, err)
	}
	r := directory.Record{Index: idx, Holder: key, Ciphertext: []byte("sealed"), ACL: acl.List{Visibility: acl.Public},
		Expires: now.Add(time.Hour), Updated: now}
	if pos, err := s.PutRecord(ctx, r, 10); err != nil || pos != -1 {
		t.Errorf("PutRecord under a holder without a label = %d, %v; want -1", pos, err)
	}
	// Its key's next request brings the label, and logs nothing.
	if _, err := s.ChangeHolders(ctx, 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideProof(hs, directory.Proof{KeyHash: key, Time: now, Label: label}, now, time.Hour), nil
	}, now); err != nil {
		t.Fatal(err)
	}
	if hs, err := s.Holders(ctx, idx); err != nil || len(hs) != 1 || hs[0].Label != label {
		t.Errorf("Holders after the key's next proof = %+v, %v; want its label", hs, err)
	}
	if pos, err := s.PutRecord(ctx, r, 10); err != nil || pos != 0 {
		t.Errorf("PutRecord under a labelled holder = %d, %v; want log index 0", pos, err)
	}
}

func TestFutureSchemaVersion(t *testing.T) {
	dsn := pgtest.FreshDSN(t)
	closeStore(t, open(t, dsn))

	future := postgres.SchemaVersion + 41
	pgtest.Admin(t, dsn, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)`, future)
	s, err := postgres.Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatalf("Open of a database with schema version %d succeeded", future)
	}
	// The message names the database's version and the one this binary supports.
	for _, v := range []int{future, postgres.SchemaVersion} {
		if !regexp.MustCompile(`\b` + strconv.Itoa(v) + `\b`).MatchString(err.Error()) {
			t.Errorf("Open error %q does not name version %d", err, v)
		}
	}
	if got := schemaVersions(t, dsn); got[len(got)-1] != future {
		t.Errorf("refused database now has versions %v, want %d left as the newest", got, future)
	}
}

// TestConcurrentOpen starts several servers on one empty database at once:
// exactly one creates the schema, and all of them open it.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.FreshDSN(t)
	const n = 6
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(t.Context(), dsn)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Open %d: %v", i, err)
			continue
		}
		defer closeStore(t, stores[i])
	}
	want := make([]int, postgres.SchemaVersion)
	for i := range want {
		want[i] = i + 1
	}
	if got := schemaVersions(t, dsn); !slices.Equal(got, want) {
		t.Errorf("schema_migrations after concurrent opens = %v, want %v", got, want)
	}
	// Every store works on the one schema.
	for i, s := range stores {
		if s == nil {
			continue
		}
		if err := s.InitMeta(t.Context(), "k", []byte("v")); err != nil {
			t.Errorf("store %d: InitMeta: %v", i, err)
		}
	}
}

// TestRefusesLossyCommits checks that Open refuses a session whose commits
// return before they are durable: the Store contract promises durability.
func TestRefusesLossyCommits(t *testing.T) {
	dsn := pgtest.WithParam(t, pgtest.FreshDSN(t), "synchronous_commit", "off")
	s, err := postgres.Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open with synchronous_commit=off succeeded")
	}
	if !strings.Contains(err.Error(), "synchronous_commit") {
		t.Errorf("Open error %q does not name synchronous_commit", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	pgtest.ServerDSN(t) // these tests run together or not at all
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, "postgres://nobody:secret-password@/none?host="+t.TempDir()+"&connect_timeout=5")
	if err == nil {
		s.Close()
		t.Fatal("Open of a server that does not exist succeeded")
	}
	if strings.Contains(err.Error(), "secret-password") {
		t.Errorf("Open error reveals the password: %v", err)
	}
}

// TestOutcomes covers the idempotency outcome store, which the conformance
// suite does not.
func TestOutcomes(t *testing.T) {
	s := open(t, pgtest.FreshDSN(t))
	defer closeStore(t, s)
	ctx := t.Context()
	var k1, k2 [32]byte
	k1[0], k2[0] = 1, 2
	o := ca.Outcome{Status: 201, Body: []byte("sealed\x00\xff")}
	o.RequestHash[0], o.RequestHash[31] = 'h', 0xff
	if _, err := s.Outcome(ctx, k1, now); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Outcome on an empty store: %v, want ErrNotFound", err)
	}
	if err := s.SaveOutcome(ctx, k1, o, now.Add(time.Second)); err != nil {
		t.Fatalf("SaveOutcome: %v", err)
	}
	if err := s.SaveOutcome(ctx, k1, ca.Outcome{Status: 500, Body: []byte("other")}, now.Add(time.Hour)); !errors.Is(err, directory.ErrConflict) {
		t.Errorf("second SaveOutcome: %v, want ErrConflict", err)
	}
	for _, at := range []time.Time{now, now.Add(time.Second - time.Nanosecond)} {
		got, err := s.Outcome(ctx, k1, at)
		if err != nil || got.Status != o.Status || got.RequestHash != o.RequestHash || !bytes.Equal(got.Body, o.Body) {
			t.Errorf("Outcome at %v = %+v, %v; want %+v", at, got, err, o)
		}
	}
	if _, err := s.Outcome(ctx, k1, now.Add(time.Second)); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Outcome at its expiry: %v, want ErrNotFound", err)
	}
	if _, err := s.Outcome(ctx, k2, now); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Outcome of another key: %v, want ErrNotFound", err)
	}
	if err := s.SaveOutcome(ctx, k2, o, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpiredOutcomes(ctx, now.Add(time.Second-time.Nanosecond)); err != nil || n != 0 {
		t.Errorf("DeleteExpiredOutcomes before expiry = %d, %v", n, err)
	}
	if n, err := s.DeleteExpiredOutcomes(ctx, now.Add(time.Second)); err != nil || n != 1 {
		t.Errorf("DeleteExpiredOutcomes = %d, %v, want 1", n, err)
	}
	if err := s.SaveOutcome(ctx, k1, o, now.Add(time.Hour)); err != nil {
		t.Errorf("SaveOutcome after its predecessor expired: %v", err)
	}
	if _, err := s.Outcome(ctx, k2, now); err != nil {
		t.Errorf("unexpired outcome: %v", err)
	}
}

// Only uniqueness violations are conflicts: a NOT NULL violation is a bug
// and must not read as "a verification is already pending".
func TestConstraintIsNotConflict(t *testing.T) {
	s := open(t, pgtest.FreshDSN(t))
	defer closeStore(t, s)
	v := ca.Verification{CodeMAC: nil, Created: now, Expires: now.Add(time.Hour)}
	err := s.CreateVerification(t.Context(), v)
	if err == nil || errors.Is(err, directory.ErrConflict) {
		t.Errorf("NULL code_mac: %v, want a non-conflict error", err)
	}
}

// TestTombstonesSameSecond retires two holders of one index in the same
// second, each with a record under the same id: each keeps its tombstone.
func TestTombstonesSameSecond(t *testing.T) {
	s := open(t, pgtest.FreshDSN(t))
	defer closeStore(t, s)
	ctx := t.Context()
	var idx, rid, a, b, c [32]byte
	idx[0], rid[0], a[0], b[0], c[0] = 1, 2, 0xa, 0xb, 0xc
	for i, k := range [][32]byte{a, b, c} {
		proof := now.Add(time.Duration(i) * time.Second)
		if _, err := s.ChangeHolders(ctx, 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
			return directory.DecideProof(hs, directory.Proof{KeyHash: k, Time: proof}, proof, time.Hour), nil
		}, proof); err != nil {
			t.Fatal(err)
		}
		r := directory.Record{Index: idx, Holder: k, RecordID: rid, Ciphertext: []byte("x"),
			ACL: acl.List{Visibility: acl.Public}, Expires: now.Add(time.Hour), Updated: now}
		if _, err := s.PutRecord(ctx, r, 10); err != nil {
			t.Fatal(err)
		}
	}
	// Only a senior key may evict: a, the first to join, proves again (which
	// clears its notice) and evicts the two keys that joined after it.
	at := now.Add(time.Minute)
	if _, err := s.ChangeHolders(ctx, 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideProof(hs, directory.Proof{KeyHash: a, Time: at}, at, time.Hour), nil
	}, at); err != nil {
		t.Fatal(err)
	}
	for _, k := range [][32]byte{b, c} {
		if _, err := s.ChangeHolders(ctx, 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
			return directory.DecideEvict(hs, a, k, at)
		}, at); err != nil {
			t.Fatalf("evicting %x: %v", k[0], err)
		}
	}
	ts, err := s.Tombstones(ctx, idx)
	if err != nil || len(ts) != 2 {
		t.Fatalf("Tombstones = %+v, %v; want two", ts, err)
	}
	if ts[0].KeyHash != b || ts[1].KeyHash != c {
		t.Errorf("tombstones name keys %x and %x, want %x and %x", ts[0].KeyHash[0], ts[1].KeyHash[0], b[0], c[0])
	}
	for i, tomb := range ts {
		if tomb.RecordID != rid || !tomb.Retired.Equal(at) {
			t.Errorf("tombstone %d = %+v, want record %x retired at %v", i, tomb, rid[:1], at)
		}
	}
}

// TestConcurrentJoinsMany races joins of one index by many keys with
// distinct proof times. In any serial order every key holds the index and
// all but the latest proof are on notice, and each join is logged once.
func TestConcurrentJoinsMany(t *testing.T) {
	s := open(t, pgtest.FreshDSN(t))
	defer closeStore(t, s)
	const n = 20
	var idx [32]byte
	idx[0] = 0x42
	keys := make([][32]byte, n)
	for i := range keys {
		keys[i][0], keys[i][1] = 0xee, byte(i)
	}
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			p := directory.Proof{KeyHash: keys[i], Time: now.Add(time.Duration(i) * time.Second)}
			_, errs[i] = s.ChangeHolders(t.Context(), 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
				return directory.DecideProof(hs, p, now.Add(time.Hour), time.Hour), nil
			}, now.Add(time.Hour))
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	hs, err := s.Holders(t.Context(), idx)
	if err != nil || len(hs) != n {
		t.Fatalf("Holders after concurrent joins: %d, %v; want %d", len(hs), err, n)
	}
	for _, h := range hs {
		if h.OnNotice() == (h.KeyHash == keys[n-1]) {
			t.Errorf("holder %x on notice: %v; want all but the latest proof", h.KeyHash[:2], h.OnNotice())
		}
	}
	tree, err := s.LogTree(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	entries, err := s.ReadLogEntries(t.Context(), 0, tree.N)
	if err != nil {
		t.Fatal(err)
	}
	joins := map[[32]byte]int{}
	for i, b := range entries {
		e, err := translog.Parse(b)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if e.Kind == translog.Holder && e.Event == translog.Join {
			joins[e.Key]++
		}
	}
	for _, k := range keys {
		if joins[k] != 1 {
			t.Errorf("key %x: %d join entries, want 1", k[:2], joins[k])
		}
	}
}

// TestMigrateFromVersion4 opens a version 4 database with a holder, two
// records and their ACL entries, a record with no holder, and a holder
// without records, and checks that version 5 keys them all by the holder,
// each holder of the epoch of its records (else the newest epoch).
func TestMigrateFromVersion4(t *testing.T) {
	dsn := pgtest.FreshDSN(t)
	pgtest.Admin(t, dsn, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
	for i, name := range []string{"0001_initial.sql", "0002_log.sql", "0003_epochs.sql", "0004_verifications.sql"} {
		b, err := os.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		pgtest.Admin(t, dsn, string(b))
		pgtest.Admin(t, dsn, `INSERT INTO schema_migrations VALUES ($1, $2, 0)`, i+1, name)
	}
	var idx, orphan, empty, key, label [32]byte
	idx[0], orphan[0], empty[0], key[0], label[0] = 1, 9, 7, 2, 3
	pgtest.Admin(t, dsn, `INSERT INTO holders (idx, key_hash, not_before, label) VALUES ($1, $2, $3, $4)`, idx[:], key[:], now.Unix(), label[:])
	pgtest.Admin(t, dsn, `INSERT INTO holders (idx, key_hash, not_before) VALUES ($1, $2, $3)`, empty[:], key[:], now.Unix()-60)
	pgtest.Admin(t, dsn, `INSERT INTO meta (key, value) VALUES ('epoch_1', '{}'), ('epoch_2', '{}'), ('epochs', 'x')`)
	rid := func(n byte) []byte {
		var r [32]byte
		r[0] = n
		return r[:]
	}
	for _, x := range []struct {
		idx [32]byte
		rid byte
	}{{idx, 1}, {idx, 2}, {orphan, 1}} {
		pgtest.Admin(t, dsn, `INSERT INTO records (idx, record_id, bucket, ciphertext, visibility, expires_at, updated_at, epoch)
			VALUES ($1, $2, 0, 'sealed', 2, $3, $4, 1)`, x.idx[:], rid(x.rid), now.Add(time.Hour).Unix(), now.Unix())
	}
	var p acl.Pseudonym
	p[0] = 'p'
	pgtest.Admin(t, dsn, `INSERT INTO acl_entries (idx, record_id, kind, pseudonym) VALUES ($1, $2, 1, $3), ($1, $4, 2, $3), ($5, $2, 2, $3)`,
		idx[:], rid(1), p[:], rid(2), orphan[:])

	s := open(t, dsn)
	defer closeStore(t, s)
	ctx := t.Context()
	if got := schemaVersions(t, dsn); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Errorf("schema versions after Open = %v, want [1 2 3 4 5]", got)
	}
	hs, err := s.Holders(ctx, idx)
	if err != nil || len(hs) != 1 || hs[0].KeyHash != key || hs[0].Label != label || hs[0].Records != 2 || hs[0].OnNotice() ||
		!hs[0].FirstProof.Equal(now) || !hs[0].LastProof.Equal(now) || !hs[0].NoticeProof.IsZero() {
		t.Fatalf("Holders = %+v, %v; want the old holder with its 2 records, proved at its not_before, not on notice", hs, err)
	}
	if hs, err := s.Holders(ctx, empty); err != nil || len(hs) != 1 || hs[0].Records != 0 || hs[0].Label != ([32]byte{}) ||
		!hs[0].LastProof.Equal(now.Add(-time.Minute)) {
		t.Errorf("Holders of the index without records = %+v, %v; want its unlabelled holder", hs, err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, x := range []struct {
		idx   [32]byte
		epoch int
	}{{idx, 1}, {empty, 2}} {
		var epoch int
		if err := conn.QueryRow(ctx, `SELECT epoch FROM holders WHERE idx = $1`, x.idx[:]).Scan(&epoch); err != nil || epoch != x.epoch {
			t.Errorf("holder of index %x: epoch %d, %v; want %d", x.idx[:1], epoch, err, x.epoch)
		}
	}
	got, err := s.Buckets(ctx, 1, []directory.BucketRange{{Lo: 0, Hi: 1<<32 - 1}}, p, now)
	if err != nil || len(got[0]) != 3 {
		t.Fatalf("Buckets = %+v, %v; want 3 records", got, err)
	}
	for _, c := range got[0] {
		switch {
		case c.Index == orphan:
			if !c.Hidden {
				t.Error("a record without a holder is served")
			}
		case c.Hidden || c.Holder != key:
			t.Errorf("record %x: holder %x hidden %v; want the old holder's, served", c.RecordID[:1], c.Holder[:1], c.Hidden)
		case c.RecordID[0] == 1 && (!c.Allowed || c.Denied), c.RecordID[0] == 2 && (c.Allowed || !c.Denied):
			t.Errorf("record %x: allowed %v, denied %v: its ACL entries did not follow it", c.RecordID[:1], c.Allowed, c.Denied)
		case !c.LastProof.Equal(now):
			t.Errorf("record %x: LastProof %v, want the holder's not_before", c.RecordID[:1], c.LastProof)
		}
		if c.Index == orphan && !c.Denied {
			t.Error("the deny entry of the record without a holder did not follow it")
		}
	}
	// The old holder publishes a third record: one State entry of its three,
	// under its label and key.
	r := directory.Record{Epoch: 1, Index: idx, Holder: key, Ciphertext: []byte("new"), ACL: acl.List{Visibility: acl.Public},
		Expires: now.Add(time.Hour), Updated: now}
	r.RecordID[0] = 3
	pos, err := s.PutRecord(ctx, r, 3)
	if err != nil || pos != 0 {
		t.Fatalf("PutRecord by the migrated holder = %d, %v; want log index 0", pos, err)
	}
	entries, err := s.ReadLogEntries(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := translog.Parse(entries[0]); err != nil || e.Kind != translog.State || e.Label != label || e.Key != key || e.Records != 3 {
		t.Errorf("State entry = %+v, %v; want the holder's 3 records under its label and key", e, err)
	}
	r.RecordID[0] = 4
	if _, err := s.PutRecord(ctx, r, 3); !errors.Is(err, directory.ErrExhausted) {
		t.Errorf("fourth record with a limit of 3: %v, want ErrExhausted", err)
	}
}

// TestMigrateVerificationsFromVersion3 opens a version 3 database with a
// pending verification as version 3 kept it (one row per number, the code
// as SHA-256(salt || code)) and checks that version 4 dropped the row, and
// that a number may now have several.
func TestMigrateVerificationsFromVersion3(t *testing.T) {
	dsn := pgtest.FreshDSN(t)
	pgtest.Admin(t, dsn, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
	for i, name := range []string{"0001_initial.sql", "0002_log.sql", "0003_epochs.sql"} {
		b, err := os.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		pgtest.Admin(t, dsn, string(b))
		pgtest.Admin(t, dsn, `INSERT INTO schema_migrations VALUES ($1, $2, 0)`, i+1, name)
	}
	var old ca.Verification
	old.ID[0] = 1
	pgtest.Admin(t, dsn, `INSERT INTO verifications (id, number_tag, code_salt, code_hash, created_at, expires_at, attempts, sends)
		VALUES ($1, $2, 'salt', 'hash', $3, $4, 0, 1)`, old.ID[:], old.NumberTag[:], now.Unix(), now.Add(time.Hour).Unix())

	s := open(t, dsn)
	defer closeStore(t, s)
	if got := schemaVersions(t, dsn); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Errorf("schema versions after Open = %v, want [1 2 3 4 5]", got)
	}
	if _, err := s.Verification(t.Context(), old.ID); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("version 3 verification after migrating: %v, want ErrNotFound", err)
	}
	for i := range 2 {
		v := ca.Verification{CodeMAC: []byte("mac"), Created: now, Expires: now.Add(time.Hour)}
		v.ID[0], v.NumberTag[0] = byte(10+i), 7
		if err := s.CreateVerification(t.Context(), v); err != nil {
			t.Fatalf("verification %d of one number: %v", i, err)
		}
	}
}

// TestPutRecordWaitsForRetirement starts a publish by a holder while its
// retirement holds the index's lock, and lets the retirement commit only
// once the publish waits for that lock: the publish must then find no
// holder (ErrNotFound), and leave no record, whether or not the holder's
// row has a label (a holder from before the log has none, so its writes
// take no log lock that could catch the stale read).
func TestPutRecordWaitsForRetirement(t *testing.T) {
	for _, labelled := range []bool{false, true} {
		t.Run(map[bool]string{false: "no label", true: "label"}[labelled], func(t *testing.T) {
			dsn := pgtest.FreshDSN(t)
			s := open(t, dsn)
			defer closeStore(t, s)
			ctx := t.Context()
			h := directory.Holder{FirstProof: now, LastProof: now}
			h.KeyHash[0] = 0xa
			if labelled {
				h.Label[0] = 0x1
			}
			r := directory.Record{Holder: h.KeyHash, Ciphertext: []byte("x"), ACL: acl.List{Visibility: acl.Public},
				Expires: now.Add(time.Hour), Updated: now}
			r.Index[0], r.RecordID[0] = 1, 1
			if _, err := s.ChangeHolders(ctx, 0, r.Index, func([]directory.Holder) (directory.HolderChange, error) {
				return directory.HolderChange{Put: []directory.Holder{h}}, nil
			}, now); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PutRecord(ctx, r, 10); err != nil {
				t.Fatal(err)
			}

			entered, release := make(chan struct{}), make(chan struct{})
			retired := make(chan error, 1)
			go func() {
				_, err := s.ChangeHolders(ctx, 0, r.Index, func(hs []directory.Holder) (directory.HolderChange, error) {
					close(entered)
					<-release
					return directory.HolderChange{Retire: hs}, nil
				}, now)
				retired <- err
			}()
			<-entered
			published := make(chan error, 1)
			go func() {
				r2 := r
				r2.RecordID[0] = 2
				_, err := s.PutRecord(ctx, r2, 10)
				published <- err
			}()
			waitForAdvisoryLock(t, dsn)
			close(release)
			if err := <-retired; err != nil {
				t.Fatalf("retirement: %v", err)
			}
			if err := <-published; !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("publish that waited for its holder's retirement: %v, want ErrNotFound", err)
			}
			if hs, err := s.Holders(ctx, r.Index); err != nil || len(hs) != 0 {
				t.Errorf("Holders after the retirement = %+v, %v; want none", hs, err)
			}
			if recs, err := s.OwnerState(ctx, r.Index, h.KeyHash); err != nil || len(recs) != 0 {
				t.Errorf("retired holder's records = %+v, %v; want none", recs, err)
			}
			if ts, err := s.Tombstones(ctx, r.Index); err != nil || len(ts) != 1 || ts[0].RecordID != r.RecordID {
				t.Errorf("Tombstones = %+v, %v; want the one record published before", ts, err)
			}
		})
	}
}

// waitForAdvisoryLock waits until a session of the test server waits for
// an advisory lock.
func waitForAdvisoryLock(t *testing.T, dsn string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var waiting bool
		if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
	}
	t.Fatal("no session waits for an advisory lock")
}
