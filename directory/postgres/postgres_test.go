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
	r.Index[0], r.RecordID[0] = 3, 4
	s := open(t, dsn)
	if err := s.InitMeta(t.Context(), "k", []byte("value")); err != nil {
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
		c.Visibility != acl.Allowlist || c.Allowed || !c.Denied {
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
	if got := schemaVersions(t, dsn); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("schema versions after Open = %v, want [1 2 3 4]", got)
	}
	if h, err := s.Holder(ctx, idx); err != nil || h.KeyHash != key || h.Label != ([32]byte{}) {
		t.Errorf("Holder of a version 1 holder = %+v, %v; want its key and no label", h, err)
	}
	if tree, err := s.LogTree(ctx); err != nil || tree.N != 0 {
		t.Errorf("LogTree after migrating = %+v, %v; want an empty log", tree, err)
	}
	r := directory.Record{Index: idx, Ciphertext: []byte("sealed"), ACL: acl.List{Visibility: acl.Public},
		Expires: now.Add(time.Hour), Updated: now}
	if pos, err := s.PutRecord(ctx, r, 10); err != nil || pos != -1 {
		t.Errorf("PutRecord under a holder without a label = %d, %v; want -1", pos, err)
	}
	if _, err := s.ClaimHolder(ctx, idx, directory.Holder{KeyHash: key, NotBefore: now, Label: label}, now); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Holder(ctx, idx); err != nil || h.Label != label {
		t.Errorf("Holder after a renewing claim = %+v, %v; want its label", h, err)
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
// second, both with a record under the same id: each keeps its tombstone.
func TestTombstonesSameSecond(t *testing.T) {
	s := open(t, pgtest.FreshDSN(t))
	defer closeStore(t, s)
	ctx := t.Context()
	var idx, rid, a, b, c [32]byte
	idx[0], rid[0], a[0], b[0], c[0] = 1, 2, 0xa, 0xb, 0xc
	put := func() {
		t.Helper()
		r := directory.Record{Index: idx, RecordID: rid, Ciphertext: []byte("x"),
			ACL: acl.List{Visibility: acl.Public}, Expires: now.Add(time.Hour), Updated: now}
		if _, err := s.PutRecord(ctx, r, 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ClaimHolder(ctx, idx, directory.Holder{KeyHash: a, NotBefore: now}, now); err != nil {
		t.Fatal(err)
	}
	put()
	at := now.Add(time.Minute)
	for i, k := range [][32]byte{b, c} {
		h := directory.Holder{KeyHash: k, NotBefore: now.Add(time.Duration(i+1) * time.Second)}
		if n, err := s.ClaimHolder(ctx, idx, h, at); err != nil || n != 1 {
			t.Fatalf("ClaimHolder by key %x = %d, %v; want 1 retired", k[0], n, err)
		}
		put()
	}
	ts, err := s.Tombstones(ctx, idx)
	if err != nil || len(ts) != 2 {
		t.Fatalf("Tombstones = %+v, %v; want two", ts, err)
	}
	if ts[0].KeyHash != a || ts[1].KeyHash != b {
		t.Errorf("tombstones name keys %x and %x, want %x and %x", ts[0].KeyHash[0], ts[1].KeyHash[0], a[0], b[0])
	}
}

// TestConcurrentClaimHolder races claims of one index by keys with distinct
// NotBefore times. In any serial order the newest key ends up holding the
// index, and every other key that succeeded was retired, and so revoked,
// by a newer one. (The conformance suite has no concurrent ClaimHolder
// test; this one belongs there.)
func TestConcurrentClaimHolder(t *testing.T) {
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
			h := directory.Holder{KeyHash: keys[i], NotBefore: now.Add(time.Duration(i) * time.Second)}
			_, errs[i] = s.ClaimHolder(t.Context(), idx, h, now.Add(time.Hour))
		})
	}
	close(start)
	wg.Wait()
	h, err := s.Holder(t.Context(), idx)
	if err != nil || h.KeyHash != keys[n-1] {
		t.Fatalf("Holder after concurrent claims = %x, %v; want the newest key %x", h.KeyHash[:2], err, keys[n-1][:2])
	}
	if errs[n-1] != nil {
		t.Errorf("the newest claim failed: %v", errs[n-1])
	}
	for i, err := range errs[:n-1] {
		if err != nil {
			if !errors.Is(err, directory.ErrConflict) {
				t.Errorf("claim %d: %v, want nil or ErrConflict", i, err)
			}
			continue
		}
		if revoked, err := s.KeyRevoked(t.Context(), keys[i]); err != nil || !revoked {
			t.Errorf("claim %d succeeded and was superseded, but its key is not revoked (%v)", i, err)
		}
	}
	if revoked, _ := s.KeyRevoked(t.Context(), keys[n-1]); revoked {
		t.Error("the holder's key is revoked")
	}

	// The log holds one history of holders: a Holder entry for each
	// successful claim, each naming the key the one before it named.
	tree, err := s.LogTree(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	entries, err := s.ReadLogEntries(t.Context(), 0, tree.N)
	if err != nil {
		t.Fatal(err)
	}
	var holders []*translog.Entry
	for i, b := range entries {
		e, err := translog.Parse(b)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if e.Kind == translog.Holder {
			holders = append(holders, e)
		}
	}
	succeeded := 0
	for _, err := range errs {
		if err == nil {
			succeeded++
		}
	}
	if len(holders) != succeeded {
		t.Errorf("%d Holder entries for %d successful claims", len(holders), succeeded)
	}
	var previous [32]byte
	for i, e := range holders {
		if e.Previous != previous {
			t.Errorf("Holder entry %d names previous holder %x, want %x", i, e.Previous[:2], previous[:2])
		}
		previous = e.Key
	}
	if previous != keys[n-1] {
		t.Errorf("the last Holder entry names key %x, want the holder %x", previous[:2], keys[n-1][:2])
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
	if got := schemaVersions(t, dsn); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("schema versions after Open = %v, want [1 2 3 4]", got)
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
