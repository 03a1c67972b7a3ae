package synth_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/directory/synth"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/threatmodel/privacyscan"
)

func TestNumbersValid(t *testing.T) {
	for _, seed := range []uint64{0, 1, 42, 1 << 63} {
		seen := map[string]int{}
		for i := range 5000 {
			n := synth.Number(seed, i)
			if e, err := oprf.NormalizeNumber(n, ""); err != nil || e != n {
				t.Fatalf("Number(%d, %d) = %q: NormalizeNumber gives %q, %v", seed, i, n, e, err)
			}
			if j, ok := seen[n]; ok {
				t.Fatalf("Number(%d, %d) = Number(%d, %d) = %s", seed, i, seed, j, n)
			}
			seen[n] = i
		}
		for _, i := range []int{synth.Capacity - 1, synth.Capacity / 2, synth.Capacity / 3} {
			if _, err := oprf.NormalizeNumber(synth.Number(seed, i), ""); err != nil {
				t.Fatalf("Number(%d, %d): %v", seed, i, err)
			}
		}
	}
	if synth.Number(7, 3) == synth.Number(8, 3) {
		t.Error("the seed does not change the numbers")
	}
	// Pinned, so that a change to the sequence is a decision: benchmark
	// directories built before it would no longer match their numbers.
	for i, want := range []string{"+18134428519", "+17405444690"} {
		if got := synth.Number(1, i); got != want {
			t.Errorf("Number(1, %d) = %s, want %s", i, got, want)
		}
	}
	for _, i := range []int{-1, synth.Capacity} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Number(1, %d) did not panic", i)
				}
			}()
			synth.Number(1, i)
		}()
	}
}

const (
	friend   = "+14155550100" // in every allowlist
	stranger = "+14155552671" // in none
)

func TestBuildLookups(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	const owners, seed = 200, 9
	var phases sync.Map
	st, err := synth.Build(t.Context(), dir, synth.Config{Owners: owners, Seed: seed, Friends: []string{friend},
		TxOwners: 100, Progress: func(phase string, done, total int) {
			if done > total {
				t.Errorf("progress %s: %d of %d", phase, done, total)
			}
			phases.Store(phase, true)
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"evaluate", "sort", "write"} {
		if _, ok := phases.Load(p); !ok {
			t.Errorf("no progress reported for %s", p)
		}
	}
	if st.Owners != owners || st.Holders != owners || st.Skipped != 0 {
		t.Errorf("stats %+v: want %d owners and holders, none skipped", st, owners)
	}
	if st.Records < owners || st.Records > 2*owners || st.Public+st.Allowlist+st.Nobody != st.Records {
		t.Errorf("stats %+v: records do not add up", st)
	}
	if st.Public == 0 || st.Allowlist == 0 || st.Nobody == 0 || st.ACLEntries <= st.Allowlist {
		t.Errorf("stats %+v: want every visibility and allowlist edges", st)
	}
	checkRows(t, dir, st)

	// No number reaches the disk.
	var sample []string
	for i := range 50 {
		sample = append(sample, synth.Number(seed, i))
	}
	sc, err := privacyscan.New(sample...)
	if err != nil {
		t.Fatal(err)
	}
	found, files, err := sc.Dir(dir)
	if err != nil || files == 0 {
		t.Fatalf("scan: %d files, %v", files, err)
	}
	for _, f := range found {
		t.Error(f)
	}

	// A real server over the directory finds what was built.
	in := sms.NewInbox()
	srv, err := server.Start(t.Context(), server.Config{DataDir: dir, Addr: "127.0.0.1:0", SMS: in})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	numbers := make([]string, owners)
	for i := range numbers {
		numbers[i] = synth.Number(seed, i)
	}
	for _, tc := range []struct {
		caller string
		want   int
	}{{friend, st.Public + st.Allowlist}, {stranger, st.Public}} {
		c, err := client.New(client.Config{Server: srv.URL(), StateDir: filepath.Join(t.TempDir(), "state")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(t.Context(), tc.caller); err != nil {
			t.Fatal(err)
		}
		if err := c.Confirm(t.Context(), in.Code(tc.caller)); err != nil {
			t.Fatal(err)
		}
		res, err := c.Lookup(t.Context(), numbers...)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, r := range res {
			for _, rec := range r.Records {
				if rec.App != synth.Apps[0] && rec.App != synth.Apps[1] {
					t.Errorf("unexpected app %q", rec.App)
				}
			}
			got += len(r.Records)
		}
		if got != tc.want {
			t.Errorf("caller %s sees %d records, want %d", tc.caller, got, tc.want)
		}
	}
}

// checkRows counts the rows in the database and checks its integrity and
// foreign keys.
func checkRows(t *testing.T, dir string, st synth.Stats) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, datadir.DBFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for table, want := range map[string]int{"records": st.Records, "acl_members": st.ACLEntries, "holders": st.Holders} {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s has %d rows, want %d", table, n, want)
		}
	}
	var entries, lists, badKind int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT idx || holder || record_id),
		COUNT(*) FILTER (WHERE kind NOT IN (1, 2) OR length(pseudonym) != 32) FROM acl_members`).Scan(&entries, &lists, &badKind); err != nil ||
		entries != st.ACLEntries || lists != st.ACLLists || badKind != 0 {
		t.Errorf("acl_members hold %d entries of %d lists (%d malformed), want %d of %d (%v)", entries, lists, badKind, st.ACLEntries, st.ACLLists, err)
	}
	// Every record belongs to a holder of its number, in epoch 0; every
	// holder is proved, not on notice, and unlabelled (no log entry).
	var orphans, badHolders int
	if err := db.QueryRow(`SELECT COUNT(*) FROM records r WHERE r.epoch != 0 OR NOT EXISTS
		(SELECT 1 FROM holders h WHERE h.idx = r.idx AND h.key_hash = r.holder)`).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d records without their holder or not in epoch 0 (%v)", orphans, err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM holders WHERE epoch != 0 OR first_proof = 0 OR last_proof != first_proof
		OR notice_proof != 0 OR notice_until != 0 OR label IS NOT NULL OR length(key_hash) != 32`).Scan(&badHolders); err != nil || badHolders != 0 {
		t.Errorf("%d holders not proved once, on notice or labelled (%v)", badHolders, err)
	}
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Errorf("integrity_check: %q, %v", res, err)
	}
	rows, err := db.Query("PRAGMA foreign_key_check")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if rows.Next() {
		t.Error("foreign_key_check reports orphaned acl entries")
	}
}

func TestBuildAgainSkips(t *testing.T) {
	dir := t.TempDir()
	first, err := synth.Build(t.Context(), dir, synth.Config{Owners: 50, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	again, err := synth.Build(t.Context(), dir, synth.Config{Owners: 50, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if again.Records != 0 || again.ACLEntries != 0 || again.Holders != 0 || again.Skipped != first.Records {
		t.Errorf("second build %+v, want everything skipped (first %+v)", again, first)
	}
	checkRows(t, dir, first)
}

// TestBuildSkipsOtherHolders: a record of an app the number already has
// under another holder (a real app's, say) is left alone, as schema 6
// would otherwise store both.
func TestBuildSkipsOtherHolders(t *testing.T) {
	dir := t.TempDir()
	first, err := synth.Build(t.Context(), dir, synth.Config{Owners: 50, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, datadir.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"UPDATE acl_members SET holder = zeroblob(32)", "UPDATE records SET holder = zeroblob(32)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	again, err := synth.Build(t.Context(), dir, synth.Config{Owners: 50, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	if again.Records != 0 || again.ACLEntries != 0 || again.Holders != 0 || again.Skipped != first.Records {
		t.Errorf("second build %+v, want every record skipped (first %+v)", again, first)
	}
}

func TestBuildRejects(t *testing.T) {
	for _, n := range []int{0, -1, synth.MaxOwners + 1} {
		if _, err := synth.Build(t.Context(), t.TempDir(), synth.Config{Owners: n}); !errors.Is(err, synth.ErrOwners) {
			t.Errorf("Build with %d owners: %v, want ErrOwners", n, err)
		}
	}
	if _, err := synth.Build(t.Context(), t.TempDir(), synth.Config{Owners: 1, Friends: []string{"+1 555"}}); !errors.Is(err, oprf.ErrNumber) {
		t.Errorf("Build with a bad friend: %v, want ErrNumber", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := synth.Build(ctx, t.TempDir(), synth.Config{Owners: 10}); !errors.Is(err, context.Canceled) {
		t.Errorf("Build with a cancelled context: %v", err)
	}
}

func ExampleNumber() {
	n := synth.Number(1, 0)
	e, err := oprf.NormalizeNumber(n, "")
	fmt.Println(e == n, err)
	// Output: true <nil>
}
