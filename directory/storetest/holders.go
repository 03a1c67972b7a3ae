package storetest

import (
	"errors"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
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

func testHolders(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	idx := index(0x10000000, 1)
	var keyA, keyB, keyC [32]byte
	keyA[0], keyB[0], keyC[0] = 0xa, 0xb, 0xc

	if _, err := s.Holder(ctx, idx); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("Holder of a new index: %v, want ErrNotFound", err)
	}
	if n, err := s.ClaimHolder(ctx, idx, directory.Holder{KeyHash: keyA, NotBefore: t0}, t0); err != nil || n != 0 {
		t.Fatalf("first ClaimHolder = %d, %v", n, err)
	}
	// The same key renews: NotBefore only moves forward.
	if _, err := s.ClaimHolder(ctx, idx, directory.Holder{KeyHash: keyA, NotBefore: t0.Add(time.Hour)}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimHolder(ctx, idx, directory.Holder{KeyHash: keyA, NotBefore: t0}, t0); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Holder(ctx, idx); err != nil || h.KeyHash != keyA || !h.NotBefore.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Holder = %+v, %v", h, err)
	}

	r1 := record(idx, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{pseudonym(1)}})
	r2 := record(idx, recordID(2), acl.List{Visibility: acl.Public})
	other := record(index(0x10000000, 2), recordID(1), acl.List{Visibility: acl.Public})
	for _, r := range []directory.Record{r1, r2, other} {
		putRecord(t, s, r, noLimit)
	}

	// Another key that is not newer is refused and changes nothing.
	if _, err := s.ClaimHolder(ctx, idx, directory.Holder{KeyHash: keyB, NotBefore: t0.Add(time.Hour)}, t0); !errors.Is(err, directory.ErrConflict) {
		t.Errorf("older or equal claim by another key: %v, want ErrConflict", err)
	}
	checkAllCallers(t, s, t0, r1, r2, other)

	// A newer key retires the holder: its records become tombstones.
	at := t0.Add(2 * time.Hour)
	n, err := s.ClaimHolder(ctx, idx, directory.Holder{KeyHash: keyB, NotBefore: at}, at)
	if err != nil || n != 2 {
		t.Fatalf("reassigning ClaimHolder = %d, %v, want 2 retired", n, err)
	}
	checkAllCallers(t, s, t0, other)
	if revoked, err := s.KeyRevoked(ctx, keyA); err != nil || !revoked {
		t.Errorf("the retired key is not revoked: %v, %v", revoked, err)
	}
	if revoked, _ := s.KeyRevoked(ctx, keyB); revoked {
		t.Errorf("the new holder's key is revoked")
	}
	if h, err := s.Holder(ctx, idx); err != nil || h.KeyHash != keyB || !h.NotBefore.Equal(at) {
		t.Errorf("Holder after reassignment = %+v, %v", h, err)
	}
	ts, err := s.Tombstones(ctx, idx)
	if err != nil || len(ts) != 2 {
		t.Fatalf("Tombstones = %+v, %v", ts, err)
	}
	for i, tb := range ts {
		if tb.Index != idx || tb.RecordID != recordID(byte(i+1)) || tb.KeyHash != keyA || !tb.Retired.Equal(at) {
			t.Errorf("tombstone %d = %+v", i, tb)
		}
	}
	// A record re-published by the new holder has no stale ACL entries.
	fresh := record(idx, recordID(1), acl.List{Visibility: acl.Allowlist})
	putRecord(t, s, fresh, noLimit)
	got := buckets(t, s, pseudonym(1), t0, fullRange)[0]
	for _, c := range got {
		if c.Index == idx && c.Allowed {
			t.Errorf("the retired holder's allowlist survived reassignment")
		}
	}
	if ts, _ := s.Tombstones(ctx, index(0x10000000, 2)); len(ts) != 0 {
		t.Errorf("tombstones for an untouched index: %+v", ts)
	}
	// A third, newer key retires the second: tombstones accumulate.
	if n, err := s.ClaimHolder(ctx, idx, directory.Holder{KeyHash: keyC, NotBefore: at.Add(time.Second)}, at.Add(time.Second)); err != nil || n != 1 {
		t.Errorf("second reassignment = %d, %v", n, err)
	}
	if ts, _ := s.Tombstones(ctx, idx); len(ts) != 3 {
		t.Errorf("%d tombstones after two reassignments, want 3", len(ts))
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
