package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

func testCounters(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	var k1, k2 [32]byte
	k1[0], k2[0] = 1, 2
	w := t0.Truncate(time.Hour)
	for i := 1; i <= 3; i++ {
		n, err := s.Count(ctx, k1, w, w.Add(time.Hour), 3)
		if err != nil || n != i {
			t.Fatalf("Count #%d = %d, %v", i, n, err)
		}
	}
	if _, err := s.Count(ctx, k1, w, w.Add(time.Hour), 3); !errors.Is(err, directory.ErrExhausted) {
		t.Errorf("Count at the limit: %v, want ErrExhausted", err)
	}
	if n, err := s.Counted(ctx, k1, w); err != nil || n != 3 {
		t.Errorf("Counted after refusal = %d, %v, want 3 (a refusal must not count)", n, err)
	}
	// Other keys and other windows are separate counters.
	if n, err := s.Count(ctx, k2, w, w.Add(time.Hour), 3); err != nil || n != 1 {
		t.Errorf("Count of another key = %d, %v", n, err)
	}
	next := w.Add(time.Hour)
	if n, err := s.Count(ctx, k1, next, next.Add(time.Hour), 3); err != nil || n != 1 {
		t.Errorf("Count in the next window = %d, %v", n, err)
	}
	if n, err := s.Counted(ctx, k2, next); err != nil || n != 0 {
		t.Errorf("Counted of an absent counter = %d, %v", n, err)
	}
	// Expiry: the first window's counters go, the next one's stay.
	if n, err := s.DeleteExpiredCounters(ctx, w.Add(time.Hour)); err != nil || n != 2 {
		t.Errorf("DeleteExpiredCounters = %d, %v, want 2", n, err)
	}
	if n, _ := s.Counted(ctx, k1, w); n != 0 {
		t.Errorf("expired counter still counts %d", n)
	}
	if n, _ := s.Counted(ctx, k1, next); n != 1 {
		t.Errorf("unexpired counter = %d, want 1", n)
	}
	// Concurrent callers never exceed the limit together.
	var k3 [32]byte
	k3[0] = 3
	errs := concurrently(goroutines, func(int) error {
		_, err := s.Count(ctx, k3, w, w.Add(time.Hour), 5)
		return err
	})
	if ok, exhausted := tally(t, errs, directory.ErrExhausted); ok != 5 || exhausted != goroutines-5 {
		t.Errorf("concurrent Count: %d counted, %d refused, want 5 and %d", ok, exhausted, goroutines-5)
	}
}

// change applies decide to index's holders, failing the test on an error.
func change(t *testing.T, s single, epoch int, index [32]byte, at time.Time, decide func([]directory.Holder) (directory.HolderChange, error)) directory.HolderChange {
	t.Helper()
	ch, err := s.ChangeHolders(t.Context(), epoch, index, decide, at)
	if err != nil {
		t.Fatalf("ChangeHolders: %v", err)
	}
	return ch
}

// holderKeys returns "key(last proof)[notice]" for each holder of index,
// in the order Holders returns them, with its record count.
func holderKeys(t *testing.T, s single, index [32]byte) []string {
	t.Helper()
	hs, err := s.Holders(t.Context(), index)
	if err != nil {
		t.Fatalf("Holders: %v", err)
	}
	var out []string
	for _, h := range hs {
		d := fmt.Sprintf("%x:%d/%d:%d", h.KeyHash[31], h.FirstProof.Sub(t0)/time.Second, h.LastProof.Sub(t0)/time.Second, h.Records)
		if h.OnNotice() {
			d += fmt.Sprintf(" notice %d until %d", h.NoticeProof.Sub(t0)/time.Second, h.NoticeUntil.Sub(t0)/time.Second)
		}
		out = append(out, d)
	}
	return out
}

// testHolders checks that ChangeHolders writes what DecideProof,
// DecideOverdue and DecideEvict decide: holder rows, retirements with
// their tombstones and revocations, and nothing at all for a refusal.
func testHolders(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	idx := index(0x10000000, 1)
	keyA, keyB, keyC := keyHash(0xa), keyHash(0xb), keyHash(0xc)
	l := label(1)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	window := time.Hour
	prove := func(key [32]byte, proof time.Time, now time.Time) directory.HolderChange {
		t.Helper()
		return change(t, s, 0, idx, now, func(hs []directory.Holder) (directory.HolderChange, error) {
			return directory.DecideProof(hs, directory.Proof{KeyHash: key, Time: proof, Label: l}, now, window), nil
		})
	}
	if hs, err := s.Holders(ctx, idx); err != nil || len(hs) != 0 {
		t.Fatalf("Holders of a new index = %v, %v; want none", hs, err)
	}
	prove(keyA, sec(0), sec(0))
	if got := holderKeys(t, s, idx); fmt.Sprint(got) != "[a:0/0:0]" {
		t.Fatalf("after a's join: %q", got)
	}
	// Records count per holder; a record needs its holder's row.
	r1 := record(idx, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
	r1.Holder = keyA
	r2 := record(idx, recordID(2), acl.List{Visibility: acl.Public})
	r2.Holder = keyA
	other := record(index(0x10000000, 2), recordID(1), acl.List{Visibility: acl.Public})
	for _, r := range []directory.Record{r1, r2, other} {
		putRecord(t, s, r, noLimit)
	}
	stray := r1
	stray.Holder = keyC
	if _, err := s.Store.PutRecord(ctx, stray, noLimit); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("PutRecord by a key that holds nothing: %v, want ErrNotFound", err)
	}

	// b joins later: a goes on notice, b holds, the same app under b is a
	// record of its own.
	prove(keyB, sec(10), sec(10))
	until := int((10*time.Second + window) / time.Second)
	if got, want := holderKeys(t, s, idx), []string{fmt.Sprintf("a:0/0:2 notice 10 until %d", until), "b:10/10:0"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after b's join: %q, want %q", got, want)
	}
	b1 := record(idx, recordID(1), acl.List{Visibility: acl.Public})
	b1.Holder, b1.Ciphertext = keyB, []byte("b's own record of app 1")
	putRecord(t, s, b1, noLimit)
	got := buckets(t, s, p1, t0, fullRange)[0]
	var seen []string
	for _, c := range got {
		if c.Index == idx {
			seen = append(seen, fmt.Sprintf("%02x/%x hidden=%v proof=%d", c.RecordID[1], c.Holder[31], c.Hidden, c.LastProof.Sub(t0)/time.Second))
		}
	}
	// Ordered by index, record id, holder; a's are hidden (on notice).
	if want := []string{"01/a hidden=true proof=0", "01/b hidden=false proof=10", "02/a hidden=true proof=0"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("Buckets of the index: %q, want %q", seen, want)
	}

	// A re-proof by a clears its notice and notices nobody; c, joining
	// with an older proof than a's, is born on notice, and puts b (whose
	// proof is older still) on notice.
	prove(keyA, sec(20), sec(20))
	if got, want := holderKeys(t, s, idx), []string{"a:0/20:2", "b:10/10:1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a's re-proof: %q, want %q", got, want)
	}
	prove(keyC, sec(15), sec(21))
	until = int((21*time.Second + window) / time.Second)
	if got, want := holderKeys(t, s, idx), []string{"a:0/20:2", fmt.Sprintf("b:10/10:1 notice 15 until %d", until),
		fmt.Sprintf("c:15/15:0 notice 20 until %d", until)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a's re-proof and c's join: %q, want %q", got, want)
	}

	// A refusal (DecideEvict without a fresh proof) changes nothing.
	if _, err := s.ChangeHolders(ctx, 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideEvict(hs, keyB, keyA, sec(10).Add(time.Hour))
	}, sec(30)); !errors.Is(err, directory.ErrStaleProof) {
		t.Fatalf("a stale eviction: %v, want ErrStaleProof", err)
	}
	if got := holderKeys(t, s, idx); len(got) != 3 {
		t.Fatalf("after a refused eviction: %q", got)
	}

	// b and c's notices run out: retired, with their records, their keys
	// revoked; a untouched.
	at := sec(21).Add(window)
	if ids, err := s.OverdueHolders(ctx, 0, at.Add(-time.Second), 10); err != nil || len(ids) != 0 {
		t.Errorf("OverdueHolders before the deadline = %x, %v", ids, err)
	}
	if ids, err := s.OverdueHolders(ctx, 1, at, 10); err != nil || len(ids) != 0 {
		t.Errorf("OverdueHolders of another epoch = %x, %v", ids, err)
	}
	if ids, err := s.OverdueHolders(ctx, 0, at, 10); err != nil || len(ids) != 1 || ids[0] != idx {
		t.Fatalf("OverdueHolders = %x, %v; want the index", ids, err)
	}
	ch := change(t, s, 0, idx, at, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideOverdue(hs, at), nil
	})
	if len(ch.Retire) != 2 || ch.Retire[0].KeyHash != keyB || ch.Retire[1].KeyHash != keyC {
		t.Fatalf("overdue change %+v, want b and c retired", ch)
	}
	for _, k := range [][32]byte{keyB, keyC} {
		if revoked, err := s.KeyRevoked(ctx, k); err != nil || !revoked {
			t.Errorf("retired key %x is not revoked: %v, %v", k[31], revoked, err)
		}
	}
	if got, want := holderKeys(t, s, idx), []string{"a:0/20:2"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the retirements: %q, want %q", got, want)
	}
	if ts, err := s.Tombstones(ctx, idx); err != nil || len(ts) != 1 || ts[0].KeyHash != keyB {
		t.Errorf("Tombstones = %+v, %v; want b's one record", ts, err)
	}

	// A new key d joins (a goes on notice) and publishes; a, which
	// joined first, proves the number again and evicts d: d's record
	// becomes a tombstone, a's and the other index's stay.
	keyD := keyHash(0xd)
	at = at.Add(time.Minute)
	prove(keyD, at, at)
	d1 := record(idx, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
	d1.Holder, d1.Ciphertext = keyD, []byte("d's own record of app 1")
	putRecord(t, s, d1, noLimit)
	if _, err := s.ChangeHolders(ctx, 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideEvict(hs, keyD, keyA, at)
	}, at); !errors.Is(err, directory.ErrSenior) {
		t.Fatalf("d evicting a, which joined first: %v, want ErrSenior", err)
	}
	at = at.Add(time.Second)
	prove(keyA, at, at)
	ch = change(t, s, 0, idx, at, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideEvict(hs, keyA, keyD, at)
	})
	if len(ch.Retire) != 1 || ch.Retire[0].KeyHash != keyD || ch.Retire[0].Records != 1 {
		t.Fatalf("eviction %+v, want d with 1 record", ch.Retire)
	}
	if revoked, _ := s.KeyRevoked(ctx, keyD); !revoked {
		t.Error("the evicted key is not revoked")
	}
	if revoked, _ := s.KeyRevoked(ctx, keyA); revoked {
		t.Error("the evicting key is revoked")
	}
	checkAll(t, s, p1, t0, r1, r2, other)
	ts, err := s.Tombstones(ctx, idx)
	if err != nil || len(ts) != 2 {
		t.Fatalf("Tombstones = %+v, %v", ts, err)
	}
	var evicted int
	for _, tb := range ts {
		if tb.KeyHash == keyD {
			evicted++
			if tb.Index != idx || !tb.Retired.Equal(at) {
				t.Errorf("tombstone %+v", tb)
			}
		}
	}
	if evicted != 1 {
		t.Errorf("%d tombstones of d, want 1", evicted)
	}
	if ts, _ := s.Tombstones(ctx, index(0x10000000, 2)); len(ts) != 0 {
		t.Errorf("tombstones for an untouched index: %+v", ts)
	}
	// The evicted key joining again is a new holder (the server refuses
	// it as revoked first); its old records and ACL entries are gone.
	prove(keyD, at.Add(time.Second), at.Add(time.Second))
	fresh := record(idx, recordID(1), acl.List{Visibility: acl.Allowlist})
	fresh.Holder = keyD
	putRecord(t, s, fresh, noLimit)
	for _, c := range buckets(t, s, p1, t0, fullRange)[0] {
		if c.Index == idx && c.Holder == keyD && c.Allowed {
			t.Errorf("the evicted holder's allowlist survived")
		}
	}

	// Holder rows of a retired epoch go with its records.
	old := index(0x20000000, 9)
	change(t, s, 0, old, t0, joinAt(keyA, l, t0))
	change(t, s, 1, idx, at, joinAt(keyC, l, at.Add(2*time.Second)))
	if _, err := s.DeleteEpochsBefore(ctx, 1, at); err != nil {
		t.Fatal(err)
	}
	if hs, err := s.Holders(ctx, old); err != nil || len(hs) != 0 {
		t.Errorf("holders of a retired epoch's index: %d, %v", len(hs), err)
	}
}

// testHolderRecords checks that records belong to their holder: two
// holders keep a record of one app each, each changes only its own, the
// limit is per holder, and each State entry covers one holder's records.
func testHolderRecords(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	var want memLog
	a := &owner{index: index(0x70000000, 1), label: label(3)}
	claim(t, s, &want, a, keyHash(0xa))
	b := &owner{index: a.index, label: a.label}
	if _, err := s.ChangeHolders(ctx, 0, b.index, joinAt(keyHash(0xb), b.label, t0), t0); err != nil {
		t.Fatal(err)
	}
	b.key = keyHash(0xb)
	want.add(t, joinEntry(t, b.label, b.key, t0)) // a tie: nobody on notice
	for _, o := range []*owner{a, b} {
		for _, n := range []byte{1, 2} {
			r := record(o.index, recordID(n), acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{pseudonym(o.key[31])}})
			r.Holder, r.Ciphertext = o.key, fmt.Appendf(nil, "record %d of %x", n, o.key[31])
			o.put(r)
			logged(t, s, &want, "PutRecord", putRecord(t, s, r, 2), stateEntry(t, o.label, o.key, o.records, r.Updated))
		}
	}
	extra := record(a.index, recordID(3), acl.List{})
	extra.Holder = a.key
	if _, err := s.Store.PutRecord(ctx, extra, 2); !errors.Is(err, directory.ErrExhausted) {
		t.Errorf("a third record of a holder at limit 2: %v, want ErrExhausted", err)
	}
	// b's ACL change and delete leave a's record of the same app alone.
	pos, err := s.Store.SetACL(ctx, b.index, b.key, recordID(1), acl.List{Visibility: acl.Nobody}, t0)
	if err != nil {
		t.Fatal(err)
	}
	b.setACL(recordID(1), acl.List{Visibility: acl.Nobody})
	logged(t, s, &want, "SetACL", pos, stateEntry(t, b.label, b.key, b.records, t0))
	pos, err = s.Store.DeleteRecord(ctx, b.index, b.key, recordID(2), t0)
	if err != nil {
		t.Fatal(err)
	}
	b.remove(recordID(2))
	logged(t, s, &want, "DeleteRecord", pos, stateEntry(t, b.label, b.key, b.records, t0))
	if _, err := s.Store.DeleteRecord(ctx, b.index, keyHash(0xc), recordID(1), t0); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("DeleteRecord by a key without that record: %v, want ErrNotFound", err)
	}
	all := append(slices.Clone(a.records), b.records...)
	slices.SortFunc(all, func(x, y directory.Record) int {
		return cmpCandidate(candidate(x, p1), candidate(y, p1))
	})
	checkAll(t, s, p1, t0, all...)
	for _, o := range []*owner{a, b} {
		got, err := s.Store.OwnerState(ctx, o.index, o.key)
		if err != nil || translog.Commitment(got) != translog.Commitment(stateRecords(o.records)) {
			t.Errorf("OwnerState of %x: %d records, %v; want its own %d", o.key[31], len(got), err, len(o.records))
		}
	}
	if n, err := s.CountOwners(ctx, t0); err != nil || n != 1 {
		t.Errorf("CountOwners = %d, %v; want 1: numbers, not holders", n, err)
	}
	checkLog(t, s, &want)
}

// testConcurrentJoins races two joins of one index, with different
// proofs, round after round: each ends in the one defined state (the older
// proof on notice), each join logged once, and no record lost.
func testConcurrentJoins(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	const rounds = 10
	for round := range rounds {
		idx := index(0x60000000, byte(round))
		l := label(byte(round))
		keyOld, keyNew := keyHash(byte(2*round+1)), keyHash(byte(2*round+2))
		// Each publishes as soon as it has joined, while the other may
		// still be joining (JoinRace adds an earlier holder's records).
		errs := concurrently(2, func(i int) error {
			key, proof := keyOld, t0
			if i == 1 {
				key, proof = keyNew, t0.Add(time.Second)
			}
			_, err := s.ChangeHolders(ctx, 0, idx, joinAt(key, l, proof), t0.Add(time.Minute))
			if err != nil {
				return err
			}
			r := record(idx, recordID(1), acl.List{Visibility: acl.Public})
			r.Holder = key
			_, err = s.Store.PutRecord(ctx, r, noLimit)
			return err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		hs, err := s.Holders(ctx, idx)
		if err != nil || len(hs) != 2 {
			t.Fatalf("round %d: %d holders, %v", round, len(hs), err)
		}
		for _, h := range hs {
			if h.OnNotice() != (h.KeyHash == keyOld) || h.Records != 1 {
				t.Errorf("round %d: holder %x on notice %v with %d records; want only the older proof on notice, one record each",
					round, h.KeyHash[31], h.OnNotice(), h.Records)
			}
		}
	}
	// Every join logged once, and the older key's notice once.
	entries, err := s.ReadLogEntries(ctx, 0, logTree(t, s).N)
	if err != nil {
		t.Fatal(err)
	}
	events := map[translog.HolderEvent]int{}
	for _, b := range entries {
		if e, err := translog.Parse(b); err == nil && e.Kind == translog.Holder {
			events[e.Event]++
		}
	}
	if events[translog.Join] != 2*rounds || events[translog.Notice] != rounds {
		t.Errorf("logged %v, want %d joins and %d notices", events, 2*rounds, rounds)
	}
}

func testRevocation(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	var k [32]byte
	k[0] = 7
	if r, err := s.KeyRevoked(ctx, k); err != nil || r {
		t.Fatalf("KeyRevoked before = %v, %v", r, err)
	}
	for range 2 { // idempotent
		if err := s.RevokeKey(ctx, k, t0); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := s.KeyRevoked(ctx, k); err != nil || !r {
		t.Errorf("KeyRevoked after = %v, %v", r, err)
	}
	k[0] = 8
	if r, _ := s.KeyRevoked(ctx, k); r {
		t.Error("another key reads as revoked")
	}
}

func testTokens(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	refilling := directory.TokenBucket{Start: 10, Capacity: 10, RefillPerSecond: 1}
	fixed := directory.TokenBucket{Start: 5, Capacity: 5}
	empty := directory.TokenBucket{Capacity: 5}
	var k [32]byte
	k[0] = 9
	// A bucket starts at its start level.
	if lvl, err := s.Tokens(ctx, k, refilling, -7, t0); err != nil || lvl != 3 {
		t.Fatalf("first spend = %v, %v, want 3", lvl, err)
	}
	if lvl, err := s.Tokens(ctx, k, refilling, -4, t0); !errors.Is(err, directory.ErrExhausted) || lvl != 3 {
		t.Errorf("overspend = %v, %v, want ErrExhausted at 3", lvl, err)
	}
	// Refill at 1 token per second, capped at capacity.
	if lvl, err := s.Tokens(ctx, k, refilling, -4, t0.Add(2*time.Second)); err != nil || lvl != 1 {
		t.Errorf("after 2 s = %v, %v, want 1", lvl, err)
	}
	if lvl, err := s.Tokens(ctx, k, refilling, 0, t0.Add(time.Hour)); err != nil || lvl != 10 {
		t.Errorf("after an hour = %v, %v, want 10 (capped)", lvl, err)
	}
	// Adding tokens (a grant) is capped too; a clock going backwards
	// refills nothing.
	var g [32]byte
	g[0] = 10
	if lvl, err := s.Tokens(ctx, g, fixed, -5, t0); err != nil || lvl != 0 {
		t.Fatalf("drain = %v, %v", lvl, err)
	}
	if lvl, err := s.Tokens(ctx, g, fixed, 3, t0.Add(-time.Hour)); err != nil || lvl != 3 {
		t.Errorf("grant = %v, %v, want 3", lvl, err)
	}
	if lvl, err := s.Tokens(ctx, g, fixed, 30, t0); err != nil || lvl != 5 {
		t.Errorf("grant past capacity = %v, %v, want 5", lvl, err)
	}
	// A bucket may start empty.
	var e [32]byte
	e[0] = 12
	if _, err := s.Tokens(ctx, e, empty, -1, t0); !errors.Is(err, directory.ErrExhausted) {
		t.Errorf("spend from an empty new bucket: %v, want ErrExhausted", err)
	}
	// Concurrent spenders never overspend.
	var c [32]byte
	c[0] = 11
	errs := concurrently(goroutines, func(int) error {
		_, err := s.Tokens(ctx, c, fixed, -1, t0)
		return err
	})
	if ok, exhausted := tally(t, errs, directory.ErrExhausted); ok != 5 || exhausted != goroutines-5 {
		t.Errorf("concurrent spends: %d ok, %d refused, want 5 and %d", ok, exhausted, goroutines-5)
	}
}
