// Package storetest is the conformance suite for directory.Store implementations.
//
// Every implementation runs the same suite from its own tests, so that the
// SQLite and PostgreSQL stores are held to the one contract written on
// directory.Store: results, errors (compared with errors.Is), expiry
// boundaries, and the concurrency guarantees the server core relies on to
// bound code guesses and to hand one verification to exactly one caller.
// The transparency log each store keeps is checked to the byte, so two
// stores given the same calls keep the same log.
//
// The suite does not test durability, which needs a crash; implementations
// test that themselves.
package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

type opener = func(t *testing.T) directory.Store

// Run runs every contract test. open returns a new, empty store; Run closes it.
//
// Each subtest calls open once with its own t, so open may use t.TempDir and
// t.Cleanup. Subtests run one after another, never in parallel.
func Run(t *testing.T, open func(t *testing.T) directory.Store) {
	t.Run("CreateVerification", func(t *testing.T) { testCreateVerification(t, open) })
	t.Run("SharedTag", func(t *testing.T) { testSharedTag(t, open) })
	t.Run("ClaimAttempt", func(t *testing.T) { testClaimAttempt(t, open) })
	t.Run("DeleteVerification", func(t *testing.T) { testDeleteVerification(t, open) })
	t.Run("DeleteExpiredVerifications", func(t *testing.T) { testDeleteExpiredVerifications(t, open) })
	t.Run("PutRecord", func(t *testing.T) { testPutRecord(t, open) })
	t.Run("DeleteExpiredRecords", func(t *testing.T) { testDeleteExpiredRecords(t, open) })
	t.Run("DeleteEpochsBefore", func(t *testing.T) { testDeleteEpochsBefore(t, open) })
	t.Run("SetACL", func(t *testing.T) { testSetACL(t, open) })
	t.Run("DeleteRecord", func(t *testing.T) { testDeleteRecord(t, open) })
	t.Run("Buckets", func(t *testing.T) { testBuckets(t, open) })
	t.Run("CountOwners", func(t *testing.T) { testCountOwners(t, open) })
	t.Run("Meta", func(t *testing.T) { testMeta(t, open) })
	t.Run("Counters", func(t *testing.T) { testCounters(t, open) })
	t.Run("Holders", func(t *testing.T) { testHolders(t, open) })
	t.Run("HolderRecords", func(t *testing.T) { testHolderRecords(t, open) })
	t.Run("ConcurrentJoins", func(t *testing.T) { testConcurrentJoins(t, open) })
	t.Run("ChangeHolders", func(t *testing.T) { testChangeHolders(t, open) })
	t.Run("OverdueHolders", func(t *testing.T) { testOverdueHolders(t, open) })
	t.Run("HolderEpochs", func(t *testing.T) { testHolderEpochs(t, open) })
	t.Run("HolderBuckets", func(t *testing.T) { testHolderBuckets(t, open) })
	t.Run("HolderCountOwners", func(t *testing.T) { testHolderCountOwners(t, open) })
	t.Run("JoinRace", func(t *testing.T) { testJoinRace(t, open) })
	t.Run("PublishRace", func(t *testing.T) { testPublishRace(t, open) })
	t.Run("LogHolderEvents", func(t *testing.T) { testLogHolderEvents(t, open) })
	t.Run("LogDeleteExpiredHolders", func(t *testing.T) { testLogDeleteExpiredHolders(t, open) })
	t.Run("HolderRecordIsolation", func(t *testing.T) { testHolderRecordIsolation(t, open) })
	t.Run("RetireRace", func(t *testing.T) { testRetireRace(t, open) })
	t.Run("ManyJoins", func(t *testing.T) { testManyJoins(t, open) })
	t.Run("Revocation", func(t *testing.T) { testRevocation(t, open) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, open) })
	t.Run("Log", func(t *testing.T) { testLog(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("Close", func(t *testing.T) { testClose(t, open) })
}

// t0 is the suite's "now". It is a whole second, so that every store can
// hold it exactly.
var t0 = time.Unix(1_750_000_000, 0)

// goroutines is how many callers race in the concurrency tests.
const goroutines = 20

// noLimit is the maxPerIndex of tests that are not about the limit.
const noLimit = 1000

var fullRange = directory.BucketRange{Lo: 0, Hi: math.MaxUint32}

func newStore(t *testing.T, open opener) single {
	t.Helper()
	s := open(t)
	if s == nil {
		t.Fatal("open returned a nil Store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return single{s}
}

// single is a store seen with one holder per index, as most tests want:
// a record's holder is its index's only holder, or, if it has none,
// defaultHolder, which joins without a label (so its records' changes are
// not logged). The methods that take a holder take it from the index;
// the store's own methods are s.Store's. holders.go tests holder sets.
type single struct{ directory.Store }

var defaultHolder = keyHash(0xdf)

// holderOf returns the only holder of index, making defaultHolder one if
// it has none.
func (s single) holderOf(ctx context.Context, index [32]byte) ([32]byte, error) {
	hs, err := s.Store.Holders(ctx, index)
	if err != nil {
		return [32]byte{}, err
	}
	switch len(hs) {
	case 1:
		return hs[0].KeyHash, nil
	case 0:
		_, err := s.Store.ChangeHolders(ctx, 0, index, func(hs []directory.Holder) (directory.HolderChange, error) {
			if len(hs) > 0 {
				return directory.HolderChange{}, nil // joined meanwhile
			}
			return directory.HolderChange{Put: []directory.Holder{{KeyHash: defaultHolder, FirstProof: t0, LastProof: t0}}}, nil
		}, t0)
		if err != nil {
			return [32]byte{}, err
		}
		return s.holderOf(ctx, index)
	}
	return [32]byte{}, fmt.Errorf("storetest: index %x has %d holders", index[:4], len(hs))
}

// PutRecord puts r for its index's holder, unless r names one.
func (s single) PutRecord(ctx context.Context, r directory.Record, maxPerHolder int) (int64, error) {
	if r.Holder == ([32]byte{}) {
		h, err := s.holderOf(ctx, r.Index)
		if err != nil {
			return -1, err
		}
		r.Holder = h
	}
	return s.Store.PutRecord(ctx, r, maxPerHolder)
}

func (s single) SetACL(ctx context.Context, index, recordID [32]byte, l acl.List, now time.Time) (int64, error) {
	h, err := s.holderOf(ctx, index)
	if err != nil {
		return -1, err
	}
	return s.Store.SetACL(ctx, index, h, recordID, l, now)
}

func (s single) DeleteRecord(ctx context.Context, index, recordID [32]byte, now time.Time) (int64, error) {
	h, err := s.holderOf(ctx, index)
	if err != nil {
		return -1, err
	}
	return s.Store.DeleteRecord(ctx, index, h, recordID, now)
}

func (s single) OwnerState(ctx context.Context, index [32]byte) ([]translog.StateRecord, error) {
	h, err := s.holderOf(ctx, index)
	if err != nil {
		return nil, err
	}
	return s.Store.OwnerState(ctx, index, h)
}

// concurrently runs f(0) to f(n-1) at once and returns their errors.
func concurrently(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// tally counts the nil errors and those matching want, and reports any
// other error.
func tally(t *testing.T, errs []error, want error) (ok, matched int) {
	t.Helper()
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, want):
			matched++
		default:
			t.Errorf("caller %d: %v, want nil or %v", i, err, want)
		}
	}
	return ok, matched
}

// Verifications.

// verification returns a distinct valid verification for each n.
func verification(n byte) ca.Verification {
	v := ca.Verification{
		// The zero and 0xff bytes catch a store that treats blobs as text.
		CodeMAC: bytes.Repeat([]byte{'m', n, 0x00, 0xff}, 8),
		Created: t0,
		Expires: t0.Add(10 * time.Minute),
	}
	v.ID[0], v.ID[1], v.ID[15] = 'i', 0xff, n
	v.NumberTag[0], v.NumberTag[1], v.NumberTag[31] = 't', 0x00, n
	return v
}

func diffVerification(got, want ca.Verification) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %x, want %x", got.ID, want.ID))
	}
	if got.NumberTag != want.NumberTag {
		d = append(d, fmt.Sprintf("NumberTag %x, want %x", got.NumberTag, want.NumberTag))
	}
	if !bytes.Equal(got.CodeMAC, want.CodeMAC) {
		d = append(d, fmt.Sprintf("CodeMAC %x, want %x", got.CodeMAC, want.CodeMAC))
	}
	if !got.Created.Equal(want.Created) {
		d = append(d, fmt.Sprintf("Created %v, want %v", got.Created, want.Created))
	}
	if !got.Expires.Equal(want.Expires) {
		d = append(d, fmt.Sprintf("Expires %v, want %v", got.Expires, want.Expires))
	}
	if got.Attempts != want.Attempts {
		d = append(d, fmt.Sprintf("Attempts %d, want %d", got.Attempts, want.Attempts))
	}
	return strings.Join(d, "; ")
}

func createVerification(t *testing.T, s single, v ca.Verification) {
	t.Helper()
	if err := s.CreateVerification(t.Context(), v); err != nil {
		t.Fatalf("CreateVerification(%x): %v", v.ID, err)
	}
}

// checkVerification checks that the store holds exactly want under its id.
func checkVerification(t *testing.T, s single, want ca.Verification) {
	t.Helper()
	got, err := s.Verification(t.Context(), want.ID)
	if err != nil {
		t.Errorf("Verification(%x): %v", want.ID, err)
		return
	}
	if d := diffVerification(got, want); d != "" {
		t.Errorf("Verification(%x): %s", want.ID, d)
	}
}

func checkNoVerification(t *testing.T, s single, id [16]byte) {
	t.Helper()
	v, err := s.Verification(t.Context(), id)
	if !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Verification(%x) = %x, %v; want ErrNotFound", id, v.ID, err)
	}
}

func testCreateVerification(t *testing.T, open opener) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t, open)
		v := verification(1)
		v.Created = t0.Add(-time.Minute)
		v.Expires = t0.Add(time.Hour)
		v.Attempts = 2
		w := verification(2)
		w.CodeMAC = []byte("a MAC of another length")
		createVerification(t, s, v)
		checkVerification(t, s, v)
		createVerification(t, s, w)
		checkVerification(t, s, v)
		checkVerification(t, s, w)
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t, open)
		checkNoVerification(t, s, verification(1).ID)
		createVerification(t, s, verification(1))
		checkNoVerification(t, s, verification(2).ID)
	})

	t.Run("DuplicateID", func(t *testing.T) {
		s := newStore(t, open)
		v := verification(1)
		createVerification(t, s, v)
		dup := verification(2)
		dup.ID = v.ID
		if err := s.CreateVerification(t.Context(), dup); !errors.Is(err, directory.ErrConflict) {
			t.Fatalf("CreateVerification with a duplicate ID: %v, want ErrConflict", err)
		}
		checkVerification(t, s, v)
	})

	t.Run("ConcurrentSameID", func(t *testing.T) {
		s := newStore(t, open)
		vs := make([]ca.Verification, goroutines)
		for i := range vs {
			vs[i] = verification(byte(i))
			vs[i].ID = verification(0xee).ID
		}
		errs := concurrently(goroutines, func(i int) error {
			return s.CreateVerification(t.Context(), vs[i])
		})
		if ok, conflict := tally(t, errs, directory.ErrConflict); ok != 1 || conflict != goroutines-1 {
			t.Fatalf("%d concurrent creates with one id: %d succeeded, %d ErrConflict; want 1 and %d",
				goroutines, ok, conflict, goroutines-1)
		}
		checkVerification(t, s, vs[slices.Index(errs, nil)])
	})
}

// testSharedTag checks that verifications of one number (one NumberTag)
// are independent: each start is its own, so that nobody who starts one can
// use up or end another's code.
func testSharedTag(t *testing.T, open opener) {
	s := newStore(t, open)
	vs := make([]ca.Verification, goroutines)
	for i := range vs {
		vs[i] = verification(byte(i))
		vs[i].NumberTag = verification(0xee).NumberTag
		vs[i].Expires = t0.Add(time.Duration(i+1) * time.Minute)
	}
	errs := concurrently(goroutines, func(i int) error {
		return s.CreateVerification(t.Context(), vs[i])
	})
	if ok, _ := tally(t, errs, directory.ErrConflict); ok != goroutines {
		t.Fatalf("%d concurrent creates with one tag: %d succeeded, want all", goroutines, ok)
	}
	for _, v := range vs {
		checkVerification(t, s, v)
	}

	// Using up one's attempts leaves the others' untouched.
	const maxAttempts = 3
	for range maxAttempts {
		if _, err := s.ClaimAttempt(t.Context(), vs[0].ID, maxAttempts); err != nil {
			t.Fatalf("ClaimAttempt: %v", err)
		}
	}
	if _, err := s.ClaimAttempt(t.Context(), vs[0].ID, maxAttempts); !errors.Is(err, directory.ErrExhausted) {
		t.Fatalf("ClaimAttempt at maxAttempts: %v, want ErrExhausted", err)
	}
	vs[0].Attempts = maxAttempts
	checkVerification(t, s, vs[0])
	got, err := s.ClaimAttempt(t.Context(), vs[1].ID, maxAttempts)
	if err != nil {
		t.Fatalf("ClaimAttempt on another verification of the tag: %v", err)
	}
	vs[1].Attempts = 1
	if d := diffVerification(got, vs[1]); d != "" {
		t.Errorf("ClaimAttempt on another verification of the tag returned %s", d)
	}

	// Deleting or finishing one leaves the others.
	if err := s.DeleteVerification(t.Context(), vs[0].ID); err != nil {
		t.Fatalf("DeleteVerification: %v", err)
	}
	if _, err := s.FinishVerification(t.Context(), vs[2].ID, nil); err != nil {
		t.Fatalf("FinishVerification: %v", err)
	}
	checkNoVerification(t, s, vs[0].ID)
	checkNoVerification(t, s, vs[2].ID)
	checkVerification(t, s, vs[1])
	// Each expires at its own time.
	if n, err := s.DeleteExpiredVerifications(t.Context(), t0.Add(5*time.Minute)); err != nil || n != 3 {
		t.Errorf("DeleteExpiredVerifications = %d, %v; want the 3 left of the first 5", n, err)
	}
	for i, v := range vs {
		if i < 5 {
			checkNoVerification(t, s, v.ID)
		} else {
			checkVerification(t, s, v)
		}
	}
}

func testClaimAttempt(t *testing.T, open opener) {
	t.Run("Increments", func(t *testing.T) {
		s := newStore(t, open)
		const maxAttempts = 3
		v, other := verification(1), verification(2)
		createVerification(t, s, v)
		createVerification(t, s, other)
		for i := 1; i <= maxAttempts; i++ {
			got, err := s.ClaimAttempt(t.Context(), v.ID, maxAttempts)
			if err != nil {
				t.Fatalf("ClaimAttempt %d: %v", i, err)
			}
			v.Attempts = i
			if d := diffVerification(got, v); d != "" {
				t.Errorf("ClaimAttempt %d returned %s", i, d)
			}
			checkVerification(t, s, v)
		}
		if _, err := s.ClaimAttempt(t.Context(), v.ID, maxAttempts); !errors.Is(err, directory.ErrExhausted) {
			t.Errorf("ClaimAttempt at maxAttempts: %v, want ErrExhausted", err)
		}
		checkVerification(t, s, v)
		if _, err := s.ClaimAttempt(t.Context(), v.ID, maxAttempts-1); !errors.Is(err, directory.ErrExhausted) {
			t.Errorf("ClaimAttempt above maxAttempts: %v, want ErrExhausted", err)
		}
		checkVerification(t, s, v)
		checkVerification(t, s, other)
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t, open)
		v := verification(1)
		if _, err := s.ClaimAttempt(t.Context(), v.ID, 5); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("ClaimAttempt on an empty store: %v, want ErrNotFound", err)
		}
		createVerification(t, s, v)
		if err := s.DeleteVerification(t.Context(), v.ID); err != nil {
			t.Fatalf("DeleteVerification: %v", err)
		}
		if _, err := s.ClaimAttempt(t.Context(), v.ID, 5); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("ClaimAttempt after DeleteVerification: %v, want ErrNotFound", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t, open)
		const maxAttempts = 5
		v := verification(1)
		createVerification(t, s, v)
		attempts := make([]int, goroutines)
		errs := concurrently(goroutines, func(i int) error {
			got, err := s.ClaimAttempt(t.Context(), v.ID, maxAttempts)
			attempts[i] = got.Attempts
			return err
		})
		if ok, exhausted := tally(t, errs, directory.ErrExhausted); ok != maxAttempts || exhausted != goroutines-maxAttempts {
			t.Fatalf("%d concurrent claims with maxAttempts %d: %d succeeded, %d ErrExhausted; want %d and %d",
				goroutines, maxAttempts, ok, exhausted, maxAttempts, goroutines-maxAttempts)
		}
		// Each successful caller saw its own increment.
		var seen []int
		for i, err := range errs {
			if err == nil {
				seen = append(seen, attempts[i])
			}
		}
		slices.Sort(seen)
		if want := []int{1, 2, 3, 4, 5}; !slices.Equal(seen, want) {
			t.Errorf("successful claims returned Attempts %v, want %v", seen, want)
		}
		v.Attempts = maxAttempts
		checkVerification(t, s, v)
	})
}

func testDeleteVerification(t *testing.T, open opener) {
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t, open)
		a, b := verification(1), verification(2)
		createVerification(t, s, a)
		createVerification(t, s, b)
		if err := s.DeleteVerification(t.Context(), a.ID); err != nil {
			t.Fatalf("DeleteVerification: %v", err)
		}
		checkNoVerification(t, s, a.ID)
		checkVerification(t, s, b)
		if err := s.DeleteVerification(t.Context(), a.ID); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("second DeleteVerification: %v, want ErrNotFound", err)
		}
		// The tag and the id are free again.
		createVerification(t, s, a)
		checkVerification(t, s, a)
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t, open)
		if err := s.DeleteVerification(t.Context(), verification(1).ID); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("DeleteVerification on an empty store: %v, want ErrNotFound", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t, open)
		v := verification(1)
		createVerification(t, s, v)
		errs := concurrently(goroutines, func(int) error {
			return s.DeleteVerification(t.Context(), v.ID)
		})
		if ok, notFound := tally(t, errs, directory.ErrNotFound); ok != 1 || notFound != goroutines-1 {
			t.Errorf("%d concurrent deletes: %d succeeded, %d ErrNotFound; want 1 and %d",
				goroutines, ok, notFound, goroutines-1)
		}
		checkNoVerification(t, s, v.ID)
	})
}

func testDeleteExpiredVerifications(t *testing.T, open opener) {
	s := newStore(t, open)
	deleteExpired := func(now time.Time, want int) {
		t.Helper()
		n, err := s.DeleteExpiredVerifications(t.Context(), now)
		if err != nil {
			t.Fatalf("DeleteExpiredVerifications(%v): %v", now, err)
		}
		if n != want {
			t.Errorf("DeleteExpiredVerifications(%v) = %d, want %d", now, n, want)
		}
	}
	deleteExpired(t0, 0) // empty store

	past, atNow, soon, later := verification(1), verification(2), verification(3), verification(4)
	past.Expires = t0.Add(-time.Hour)
	atNow.Expires = t0
	soon.Expires = t0.Add(time.Second)
	later.Expires = t0.Add(time.Hour)
	for _, v := range []ca.Verification{past, atNow, soon, later} {
		createVerification(t, s, v)
	}

	deleteExpired(t0, 2)
	checkNoVerification(t, s, past.ID)
	checkNoVerification(t, s, atNow.ID)
	checkVerification(t, s, soon)
	checkVerification(t, s, later)
	deleteExpired(t0, 0)

	// A now between whole seconds: soon still expires after it.
	deleteExpired(t0.Add(time.Second-time.Nanosecond), 0)
	checkVerification(t, s, soon)
	deleteExpired(t0.Add(time.Second), 1)
	checkNoVerification(t, s, soon.ID)
	checkVerification(t, s, later)
}

// Records.

// index returns an index in bucket whose bytes after the first four start
// with tail and are zero after it.
func index(bucket uint32, tail ...byte) [32]byte {
	var idx [32]byte
	binary.BigEndian.PutUint32(idx[:4], bucket)
	copy(idx[4:], tail)
	return idx
}

func recordID(tail ...byte) [32]byte {
	var id [32]byte
	id[0] = 'r'
	copy(id[1:], tail)
	return id
}

func pseudonym(n byte) acl.Pseudonym {
	var p acl.Pseudonym
	p[0], p[31] = 'p', n
	return p
}

var p1, p2, p3, p4, p5 = pseudonym(1), pseudonym(2), pseudonym(3), pseudonym(4), pseudonym(5)

var callers = []acl.Pseudonym{p1, p2, p3, p4, p5}

// record returns a record expiring an hour after t0 with a ciphertext unique
// to its index and record id.
func record(idx, rid [32]byte, l acl.List) directory.Record {
	return directory.Record{
		Index:      idx,
		RecordID:   rid,
		Ciphertext: slices.Concat([]byte("sealed\x00\xff"), idx[:], rid[:]),
		ACL:        l,
		Expires:    t0.Add(time.Hour),
		Updated:    t0,
	}
}

// putRecord puts r and returns the log index of its State entry.
func putRecord(t *testing.T, s single, r directory.Record, maxPerIndex int) int64 {
	t.Helper()
	pos, err := s.PutRecord(t.Context(), r, maxPerIndex)
	if err != nil {
		t.Fatalf("PutRecord(%x, %x): %v", r.Index[:4], r.RecordID[:4], err)
	}
	return pos
}

// candidate returns what Buckets should return for r to caller.
func candidate(r directory.Record, caller acl.Pseudonym) directory.Candidate {
	return directory.Candidate{
		Index:      r.Index,
		Holder:     r.Holder,
		RecordID:   r.RecordID,
		Ciphertext: r.Ciphertext,
		Visibility: r.ACL.Visibility,
		Allowed:    slices.Contains(r.ACL.Allow, caller),
		Denied:     slices.Contains(r.ACL.Deny, caller),
	}
}

func candidates(caller acl.Pseudonym, rs ...directory.Record) []directory.Candidate {
	var cs []directory.Candidate
	for _, r := range rs {
		cs = append(cs, candidate(r, caller))
	}
	return cs
}

func key(c directory.Candidate) string { return fmt.Sprintf("%x/%x", c.Index, c.RecordID) }

func diffCandidates(got, want []directory.Candidate) string {
	if len(got) != len(want) || !slices.EqualFunc(got, want, func(a, b directory.Candidate) bool {
		return a.Index == b.Index && a.RecordID == b.RecordID
	}) {
		g, w := make([]string, len(got)), make([]string, len(want))
		for i, c := range got {
			g[i] = key(c)
		}
		for i, c := range want {
			w[i] = key(c)
		}
		return fmt.Sprintf("got records (index/record id)\n\t%s\nwant\n\t%s",
			strings.Join(g, "\n\t"), strings.Join(w, "\n\t"))
	}
	var d []string
	for i := range got {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Ciphertext, w.Ciphertext) {
			d = append(d, fmt.Sprintf("%s: Ciphertext %q, want %q", key(g), g.Ciphertext, w.Ciphertext))
		}
		if w.Holder != ([32]byte{}) && g.Holder != w.Holder {
			d = append(d, fmt.Sprintf("%s: Holder %x, want %x", key(g), g.Holder[:4], w.Holder[:4]))
		}
		if g.Visibility != w.Visibility {
			d = append(d, fmt.Sprintf("%s: Visibility %v, want %v", key(g), g.Visibility, w.Visibility))
		}
		if g.Allowed != w.Allowed || g.Denied != w.Denied {
			d = append(d, fmt.Sprintf("%s: Allowed %v Denied %v, want %v %v", key(g), g.Allowed, g.Denied, w.Allowed, w.Denied))
		}
	}
	return strings.Join(d, "\n")
}

func buckets(t *testing.T, s single, caller acl.Pseudonym, now time.Time, ranges ...directory.BucketRange) [][]directory.Candidate {
	t.Helper()
	got, err := s.Buckets(t.Context(), 0, ranges, caller, now)
	if err != nil {
		t.Fatalf("Buckets(%v): %v", ranges, err)
	}
	if len(got) != len(ranges) {
		t.Fatalf("Buckets(%v) returned %d slices, want one per range", ranges, len(got))
	}
	return got
}

// checkAll checks the whole directory as caller sees it at now.
func checkAll(t *testing.T, s single, caller acl.Pseudonym, now time.Time, want ...directory.Record) {
	t.Helper()
	got := buckets(t, s, caller, now, fullRange)[0]
	if d := diffCandidates(got, candidates(caller, want...)); d != "" {
		t.Errorf("Buckets(full range, caller %x, %v):\n%s", caller[31], now.Unix(), d)
	}
}

// checkAllCallers runs checkAll for every caller in callers.
func checkAllCallers(t *testing.T, s single, now time.Time, want ...directory.Record) {
	t.Helper()
	for _, c := range callers {
		checkAll(t, s, c, now, want...)
	}
}

func countOwners(t *testing.T, s single, now time.Time, want int) {
	t.Helper()
	n, err := s.CountOwners(t.Context(), now)
	if err != nil {
		t.Fatalf("CountOwners: %v", err)
	}
	if n != want {
		t.Errorf("CountOwners(%v) = %d, want %d", now.Unix(), n, want)
	}
}

func testPutRecord(t *testing.T, open opener) {
	t.Run("Insert", func(t *testing.T) {
		s := newStore(t, open)
		r := record(index(0x12345678, 1), recordID(1),
			acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1, p3}, Deny: []acl.Pseudonym{p2, p3}})
		putRecord(t, s, r, noLimit)
		checkAllCallers(t, s, t0, r)
		countOwners(t, s, t0, 1)
	})

	t.Run("Replace", func(t *testing.T) {
		s := newStore(t, open)
		idx := index(0x12345678, 1)
		r1 := record(idx, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1, p2}, Deny: []acl.Pseudonym{p3}})
		r2 := record(idx, recordID(2), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
		putRecord(t, s, r1, noLimit)
		putRecord(t, s, r2, noLimit)

		// Ciphertext, visibility and both lists are replaced; no old entry survives.
		r1.Ciphertext = []byte("replaced ciphertext, of another length")
		r1.ACL = acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p1, p4}}
		r1.Updated = t0.Add(time.Minute)
		putRecord(t, s, r1, noLimit)
		checkAllCallers(t, s, t0, r1, r2)

		// So is the expiry, both ways.
		r1.Expires = t0
		r1.ACL = acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p5}}
		putRecord(t, s, r1, noLimit)
		checkAllCallers(t, s, t0, r2)
		r1.Expires = t0.Add(time.Second)
		putRecord(t, s, r1, noLimit)
		checkAllCallers(t, s, t0, r1, r2)

		// An empty ACL removes every entry.
		r1.ACL = acl.List{}
		putRecord(t, s, r1, noLimit)
		checkAllCallers(t, s, t0, r1, r2)
		countOwners(t, s, t0, 1)
	})

	t.Run("MaxPerIndex", func(t *testing.T) {
		s := newStore(t, open)
		idx, other := index(0x01, 1), index(0x01, 2)
		r1 := record(idx, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p2}})
		r2 := record(idx, recordID(2), acl.List{Visibility: acl.Public})
		r3 := record(idx, recordID(3), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}, Deny: []acl.Pseudonym{p2}})
		putRecord(t, s, r1, 2)
		putRecord(t, s, r2, 2)
		if _, err := s.PutRecord(t.Context(), r3, 2); !errors.Is(err, directory.ErrExhausted) {
			t.Fatalf("PutRecord of a third record with maxPerIndex 2: %v, want ErrExhausted", err)
		}
		checkAllCallers(t, s, t0, r1, r2)

		// Replacing an existing record at, or over, the limit is not refused.
		r1.Ciphertext = []byte("replaced at the limit")
		r1.ACL = acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}}
		putRecord(t, s, r1, 2)
		r2.Ciphertext = []byte("replaced over the limit")
		putRecord(t, s, r2, 1)
		checkAllCallers(t, s, t0, r1, r2)

		// The limit is per index.
		o := record(other, recordID(3), acl.List{Visibility: acl.Public})
		putRecord(t, s, o, 2)

		// The refused put left no ACL entries behind.
		r3.ACL = acl.List{Visibility: acl.Public}
		putRecord(t, s, r3, 3)
		checkAllCallers(t, s, t0, r1, r2, r3, o)
	})

	t.Run("MaxPerIndexCountsRecordsOnly", func(t *testing.T) {
		s := newStore(t, open)
		// ACL entries are not records: a record with many entries takes one slot.
		many := acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1, p2, p3}, Deny: []acl.Pseudonym{p4, p5}}
		r1 := record(index(0x01, 1), recordID(1), many)
		r2 := record(index(0x01, 1), recordID(2), many)
		putRecord(t, s, r1, 2)
		putRecord(t, s, r2, 2)
		checkAllCallers(t, s, t0, r1, r2)
	})

	t.Run("ConcurrentMaxPerIndex", func(t *testing.T) {
		s := newStore(t, open)
		const maxPerIndex = 5
		idx := index(0x01, 1)
		rs := make([]directory.Record, goroutines)
		for i := range rs {
			rs[i] = record(idx, recordID(byte(i)), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
		}
		errs := concurrently(goroutines, func(i int) error {
			_, err := s.PutRecord(t.Context(), rs[i], maxPerIndex)
			return err
		})
		if ok, exhausted := tally(t, errs, directory.ErrExhausted); ok != maxPerIndex || exhausted != goroutines-maxPerIndex {
			t.Fatalf("%d concurrent new records with maxPerIndex %d: %d succeeded, %d ErrExhausted; want %d and %d",
				goroutines, maxPerIndex, ok, exhausted, maxPerIndex, goroutines-maxPerIndex)
		}
		var won []directory.Record
		for i, err := range errs {
			if err == nil {
				won = append(won, rs[i])
			}
		}
		checkAll(t, s, p1, t0, won...)
	})
}

// testDeleteEpochsBefore retires an epoch of more records than one
// deletion batch holds: every one of them goes, and the current epoch's
// records stay, found only by fetches in their own epoch.
func testDeleteEpochsBefore(t *testing.T, open opener) {
	s := newStore(t, open)
	const old = 600 // more than two batches of indexes
	for i := range old {
		r := record(index(uint32(i), byte(i)), recordID(1), acl.List{Visibility: acl.Public})
		putRecord(t, s, r, 2)
	}
	cur := record(index(0xee, 1), recordID(1), acl.List{Visibility: acl.Public})
	cur.Epoch = 1
	putRecord(t, s, cur, 2)
	got, err := s.Buckets(t.Context(), 1, []directory.BucketRange{fullRange}, p1, t0)
	if err != nil || len(got[0]) != 1 || got[0][0].Index != cur.Index {
		t.Fatalf("epoch 1's bucket fetch: %v, %d records", err, len(got[0]))
	}
	n, err := s.DeleteEpochsBefore(t.Context(), 1, t0)
	if err != nil || n != old {
		t.Fatalf("DeleteEpochsBefore(1) = %d, %v; want %d", n, err, old)
	}
	if got, err := s.Buckets(t.Context(), 0, []directory.BucketRange{fullRange}, p1, t0); err != nil || len(got[0]) != 0 {
		t.Fatalf("epoch 0 after retirement: %v, %d records", err, len(got[0]))
	}
	countOwners(t, s, t0, 1)
	if n, err := s.DeleteEpochsBefore(t.Context(), 1, t0); err != nil || n != 0 {
		t.Fatalf("DeleteEpochsBefore again = %d, %v", n, err)
	}
}

func testDeleteExpiredRecords(t *testing.T, open opener) {
	s := newStore(t, open)
	deleteExpired := func(now time.Time, want int) {
		t.Helper()
		n, err := s.DeleteExpiredRecords(t.Context(), now)
		if err != nil {
			t.Fatalf("DeleteExpiredRecords(%v): %v", now.Unix(), err)
		}
		if n != want {
			t.Errorf("DeleteExpiredRecords(%v) = %d, want %d", now.Unix(), n, want)
		}
	}
	deleteExpired(t0, 0) // empty store

	l := acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}, Deny: []acl.Pseudonym{p2}}
	i, j := index(0x33, 1), index(0x34, 1)
	past := record(i, recordID(1), l)
	past.Expires = t0.Add(-time.Hour)
	atNow := record(j, recordID(1), l)
	atNow.Expires = t0
	soon := record(i, recordID(2), l)
	soon.Expires = t0.Add(time.Second)
	later := record(j, recordID(2), l)
	for _, r := range []directory.Record{past, atNow, soon, later} {
		putRecord(t, s, r, 2)
	}

	deleteExpired(t0, 2)
	// Removed, not merely hidden: a fetch as of an earlier time no longer
	// finds them.
	early := t0.Add(-2 * time.Hour)
	checkAllCallers(t, s, early, soon, later)
	countOwners(t, s, early, 2)
	deleteExpired(t0, 0)

	// A now between whole seconds: soon still expires after it.
	deleteExpired(t0.Add(time.Second-time.Nanosecond), 0)
	checkAllCallers(t, s, early, soon, later)
	deleteExpired(t0.Add(time.Second), 1)
	checkAllCallers(t, s, early, later)

	// The removed records freed their slots, and their ACL entries went with
	// them: republished under the same ids with no entries, no caller is
	// on either list.
	past.ACL, atNow.ACL = acl.List{Visibility: acl.Public}, acl.List{Visibility: acl.Public}
	past.Expires, atNow.Expires = t0.Add(time.Hour), t0.Add(time.Hour)
	putRecord(t, s, past, 2)
	putRecord(t, s, atNow, 2)
	checkAllCallers(t, s, t0, past, atNow, later)
}

func testSetACL(t *testing.T, open opener) {
	t.Run("Replace", func(t *testing.T) {
		s := newStore(t, open)
		idx := index(0xabcdef01, 1)
		r1 := record(idx, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1, p3}, Deny: []acl.Pseudonym{p2}})
		r2 := record(idx, recordID(2), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}, Deny: []acl.Pseudonym{p3}})
		putRecord(t, s, r1, noLimit)
		putRecord(t, s, r2, noLimit)

		for _, l := range []acl.List{
			{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p2}, Deny: []acl.Pseudonym{p3}},
			{Visibility: acl.Public},
			{Visibility: acl.Nobody, Deny: []acl.Pseudonym{p1, p2, p3, p4}},
			{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p5}},
			{},
		} {
			if _, err := s.SetACL(t.Context(), r1.Index, r1.RecordID, l, t0.Add(time.Minute)); err != nil {
				t.Fatalf("SetACL(%+v): %v", l, err)
			}
			r1.ACL = l
			checkAllCallers(t, s, t0, r1, r2)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t, open)
		idx := index(0xabcdef01, 1)
		l := acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}, Deny: []acl.Pseudonym{p2}}
		if _, err := s.SetACL(t.Context(), idx, recordID(1), l, t0); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("SetACL on an empty store: %v, want ErrNotFound", err)
		}
		r := record(idx, recordID(1), acl.List{Visibility: acl.Public})
		putRecord(t, s, r, noLimit)
		if _, err := s.SetACL(t.Context(), idx, recordID(2), l, t0); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("SetACL of a missing record id: %v, want ErrNotFound", err)
		}
		if _, err := s.SetACL(t.Context(), index(0xabcdef01, 2), recordID(1), l, t0); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("SetACL of a record id under another index: %v, want ErrNotFound", err)
		}
		checkAllCallers(t, s, t0, r)

		// The refused calls left no entries for the records they named.
		a := record(idx, recordID(2), acl.List{Visibility: acl.Public})
		b := record(index(0xabcdef01, 2), recordID(1), acl.List{Visibility: acl.Public})
		putRecord(t, s, a, noLimit)
		putRecord(t, s, b, noLimit)
		checkAllCallers(t, s, t0, r, a, b)
	})
}

func testDeleteRecord(t *testing.T, open opener) {
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t, open)
		i, j := index(0x55, 1), index(0x55, 2)
		r1 := record(i, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}, Deny: []acl.Pseudonym{p2}})
		r2 := record(i, recordID(2), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}, Deny: []acl.Pseudonym{p2}})
		r3 := record(j, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}, Deny: []acl.Pseudonym{p2}})
		for _, r := range []directory.Record{r1, r2, r3} {
			putRecord(t, s, r, noLimit)
		}
		if _, err := s.DeleteRecord(t.Context(), r1.Index, r1.RecordID, t0); err != nil {
			t.Fatalf("DeleteRecord: %v", err)
		}
		checkAllCallers(t, s, t0, r2, r3)
		if _, err := s.DeleteRecord(t.Context(), r1.Index, r1.RecordID, t0); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("second DeleteRecord: %v, want ErrNotFound", err)
		}

		// Republished under the same ids, it has no stale ACL entries.
		r1.ACL = acl.List{Visibility: acl.Public}
		putRecord(t, s, r1, noLimit)
		checkAllCallers(t, s, t0, r1, r2, r3)

		for _, r := range []directory.Record{r1, r2, r3} {
			if _, err := s.DeleteRecord(t.Context(), r.Index, r.RecordID, t0); err != nil {
				t.Fatalf("DeleteRecord: %v", err)
			}
		}
		checkAllCallers(t, s, t0)
		countOwners(t, s, t0, 0)
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t, open)
		r := record(index(0x55, 1), recordID(1), acl.List{Visibility: acl.Public})
		if _, err := s.DeleteRecord(t.Context(), r.Index, r.RecordID, t0); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("DeleteRecord on an empty store: %v, want ErrNotFound", err)
		}
		putRecord(t, s, r, noLimit)
		if _, err := s.DeleteRecord(t.Context(), r.Index, recordID(2), t0); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("DeleteRecord of a missing record id: %v, want ErrNotFound", err)
		}
		if _, err := s.DeleteRecord(t.Context(), index(0x55, 2), r.RecordID, t0); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("DeleteRecord of a record id under another index: %v, want ErrNotFound", err)
		}
		checkAllCallers(t, s, t0, r)
	})

	t.Run("FreesSlot", func(t *testing.T) {
		s := newStore(t, open)
		r1 := record(index(0x55, 1), recordID(1), acl.List{Visibility: acl.Public})
		r2 := record(index(0x55, 1), recordID(2), acl.List{Visibility: acl.Public})
		putRecord(t, s, r1, 1)
		if _, err := s.PutRecord(t.Context(), r2, 1); !errors.Is(err, directory.ErrExhausted) {
			t.Fatalf("PutRecord over maxPerIndex: %v, want ErrExhausted", err)
		}
		if _, err := s.DeleteRecord(t.Context(), r1.Index, r1.RecordID, t0); err != nil {
			t.Fatalf("DeleteRecord: %v", err)
		}
		putRecord(t, s, r2, 1)
		checkAllCallers(t, s, t0, r2)
	})
}

func testBuckets(t *testing.T, open opener) {
	public := acl.List{Visibility: acl.Public}

	t.Run("Ranges", func(t *testing.T) {
		s := newStore(t, open)
		// The bucket is the first four bytes, big-endian, unsigned: a store
		// that compares them as a signed 32-bit integer misplaces 0x80000000.
		a := record(index(0x00000000, 1), recordID(1), public)
		b := record(index(0x00000001, 1), recordID(1), public)
		c := record(index(0x7fffffff, 1), recordID(1), public)
		d := record(index(0x80000000, 1), recordID(1), public)
		e := record(index(0x80000000, 2), recordID(1), public)
		f := record(index(0xffffffff, 1), recordID(1), public)
		for _, r := range []directory.Record{f, c, a, e, b, d} {
			putRecord(t, s, r, noLimit)
		}
		tests := []struct {
			r    directory.BucketRange
			want []directory.Record
		}{
			{directory.BucketRange{Lo: 0, Hi: 0}, []directory.Record{a}},
			{directory.BucketRange{Lo: 0xffffffff, Hi: 0xffffffff}, []directory.Record{f}},
			{directory.BucketRange{Lo: 0x7fffffff, Hi: 0x80000000}, []directory.Record{c, d, e}},
			{directory.BucketRange{Lo: 0x00000002, Hi: 0x7ffffffe}, nil},
			{directory.BucketRange{Lo: 0x80000000, Hi: 0xffffffff}, []directory.Record{d, e, f}},
			{fullRange, []directory.Record{a, b, c, d, e, f}},
			{directory.BucketRange{Lo: 0, Hi: 0}, []directory.Record{a}}, // a range twice
			{directory.BucketRange{Lo: 0x00000001, Hi: 0x7fffffff}, []directory.Record{b, c}},
			{directory.BucketRange{Lo: 0x80000001, Hi: 0xfffffffe}, nil},
			{directory.BucketRange{Lo: 0x7fffffff, Hi: 0x7fffffff}, []directory.Record{c}},
			{directory.BucketRange{Lo: 0x80000000, Hi: 0x80000000}, []directory.Record{d, e}},
		}
		ranges := make([]directory.BucketRange, len(tests))
		for i, tt := range tests {
			ranges[i] = tt.r
		}
		got := buckets(t, s, p1, t0, ranges...)
		for i, tt := range tests {
			if len(tt.want) == 0 && len(got[i]) != 0 {
				t.Errorf("range %d %#x: %d records, want none", i, tt.r, len(got[i]))
				continue
			}
			if d := diffCandidates(got[i], candidates(p1, tt.want...)); d != "" {
				t.Errorf("range %d %#x:\n%s", i, tt.r, d)
			}
		}
		// Each range alone gives the same answer as in the batch.
		for _, tt := range tests {
			got := buckets(t, s, p1, t0, tt.r)[0]
			if d := diffCandidates(got, candidates(p1, tt.want...)); d != "" {
				t.Errorf("range %#x alone:\n%s", tt.r, d)
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		s := newStore(t, open)
		got := buckets(t, s, p1, t0, fullRange, directory.BucketRange{Lo: 5, Hi: 9})
		if len(got[0]) != 0 || len(got[1]) != 0 {
			t.Errorf("Buckets on an empty store: %d and %d records, want none", len(got[0]), len(got[1]))
		}
		putRecord(t, s, record(index(7), recordID(1), public), noLimit)
		if got := buckets(t, s, p1, t0); len(got) != 0 {
			t.Errorf("Buckets with no ranges returned %d slices, want 0", len(got))
		}
	})

	t.Run("Order", func(t *testing.T) {
		s := newStore(t, open)
		// Ordered by the whole index, bytewise unsigned, then by record id;
		// not by insertion order, bucket alone, or signed bytes.
		lo := record(index(0x3fffffff, 0xff, 0xff), recordID(1), public)
		x := record(index(0x40000000, 0x05), recordID(1), public)
		y1 := record(index(0x40000000, 0x05, 0x01), recordID(0x01), public)
		y2 := record(index(0x40000000, 0x05, 0x01), recordID(0x01, 0xff), public)
		y3 := record(index(0x40000000, 0x05, 0x01), recordID(0x10), public)
		y4 := record(index(0x40000000, 0x05, 0x01), recordID(0x90), public)
		w := record(index(0x40000000, 0x80), recordID(1), public)
		z := record(index(0x40000001), recordID(1), public)
		for _, r := range []directory.Record{w, y4, z, x, y3, lo, y2, y1} {
			putRecord(t, s, r, noLimit)
		}
		got := buckets(t, s, p1, t0, directory.BucketRange{Lo: 0x3fffffff, Hi: 0x40000000}, fullRange)
		want := []directory.Record{lo, x, y1, y2, y3, y4, w}
		if d := diffCandidates(got[0], candidates(p1, want...)); d != "" {
			t.Errorf("range [0x3fffffff, 0x40000000]:\n%s", d)
		}
		if d := diffCandidates(got[1], candidates(p1, append(want, z)...)); d != "" {
			t.Errorf("full range:\n%s", d)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		s := newStore(t, open)
		idx := index(0x99, 1)
		past := record(idx, recordID(1), public)
		past.Expires = t0.Add(-time.Hour)
		atNow := record(idx, recordID(2), public)
		atNow.Expires = t0
		soon := record(idx, recordID(3), public)
		soon.Expires = t0.Add(time.Second)
		later := record(idx, recordID(4), public)
		later.Expires = t0.Add(time.Hour)
		for _, r := range []directory.Record{past, atNow, soon, later} {
			putRecord(t, s, r, noLimit)
		}
		checkAll(t, s, p1, t0, soon, later)
		checkAll(t, s, p1, t0.Add(time.Second-time.Nanosecond), soon, later)
		checkAll(t, s, p1, t0.Add(time.Second), later)
		checkAll(t, s, p1, t0.Add(time.Hour))
		checkAll(t, s, p1, t0.Add(-time.Hour-time.Nanosecond), past, atNow, soon, later)
		checkAll(t, s, p1, t0.Add(-time.Nanosecond), atNow, soon, later)
	})

	t.Run("MembershipBesideHidden", func(t *testing.T) {
		// Lists of expired records and of another epoch's, between the
		// fetched ones in key order, must not lend their entries to them.
		s := newStore(t, open)
		expired := record(index(0x55, 1), recordID(1), acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p1}})
		expired.Expires = t0.Add(-time.Hour)
		live := record(index(0x55, 1), recordID(2), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
		other := record(index(0x55, 2), recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p2}, Deny: []acl.Pseudonym{p1}})
		other.Epoch = 1
		plain := record(index(0x55, 3), recordID(1), acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p2}})
		for _, r := range []directory.Record{plain, other, live, expired} {
			putRecord(t, s, r, noLimit)
		}
		checkAllCallers(t, s, t0, live, plain)
		got, err := s.Buckets(t.Context(), 1, []directory.BucketRange{fullRange}, p2, t0)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffCandidates(got[0], candidates(p2, other)); d != "" {
			t.Errorf("epoch 1 for p2:\n%s", d)
		}
	})

	t.Run("Membership", func(t *testing.T) {
		s := newStore(t, open)
		i, j, k := index(0x77, 1), index(0x77, 2), index(0x78, 1)
		r1 := record(i, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1, p3}, Deny: []acl.Pseudonym{p2, p3}})
		// The same index with the lists swapped, the same record id under
		// another index, and a record with no entries: membership belongs to
		// one (index, record id) pair.
		r2 := record(i, recordID(2), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p2}, Deny: []acl.Pseudonym{p1}})
		r3 := record(j, recordID(1), acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p4}})
		r4 := record(k, recordID(1), acl.List{Visibility: acl.Nobody})
		for _, r := range []directory.Record{r1, r2, r3, r4} {
			putRecord(t, s, r, noLimit)
		}

		for _, tt := range []struct {
			name            string
			caller          acl.Pseudonym
			allowed, denied bool
		}{
			{"allow list", p1, true, false},
			{"deny list", p2, false, true},
			{"both lists", p3, true, true},
			{"neither list", p4, false, false},
		} {
			got := buckets(t, s, tt.caller, t0, directory.BucketRange{Lo: 0x77, Hi: 0x77})[0]
			if len(got) != 3 || got[0].RecordID != r1.RecordID || got[0].Index != r1.Index {
				t.Errorf("caller in %s: got %d records, want r1 first of 3", tt.name, len(got))
				continue
			}
			if got[0].Allowed != tt.allowed || got[0].Denied != tt.denied {
				t.Errorf("caller in %s: Allowed %v Denied %v, want %v %v",
					tt.name, got[0].Allowed, got[0].Denied, tt.allowed, tt.denied)
			}
		}
		checkAllCallers(t, s, t0, r1, r2, r3, r4)
	})

	t.Run("LargeACL", func(t *testing.T) {
		s := newStore(t, open)
		l := acl.List{Visibility: acl.Allowlist}
		for n := range 1000 {
			var p acl.Pseudonym
			binary.BigEndian.PutUint32(p[:], uint32(n)+1)
			if n%2 == 0 {
				l.Allow = append(l.Allow, p)
			} else {
				l.Deny = append(l.Deny, p)
			}
		}
		r := record(index(0x66, 1), recordID(1), l)
		putRecord(t, s, r, noLimit)
		for _, c := range []acl.Pseudonym{l.Allow[0], l.Allow[250], l.Allow[499], l.Deny[0], l.Deny[499], p1} {
			checkAll(t, s, c, t0, r)
		}
	})
}

func testCountOwners(t *testing.T, open opener) {
	s := newStore(t, open)
	public := acl.List{Visibility: acl.Public}
	countOwners(t, s, t0, 0)

	a1 := record(index(0x10, 1), recordID(1), public)
	a2 := record(index(0x10, 1), recordID(2), public)
	putRecord(t, s, a1, noLimit)
	putRecord(t, s, a2, noLimit)
	countOwners(t, s, t0, 1) // two records under one index count once

	b := record(index(0x10, 2), recordID(1), public)
	b.Expires = t0
	putRecord(t, s, b, noLimit)
	countOwners(t, s, t0, 1) // an index whose only record expires at now does not count
	countOwners(t, s, t0.Add(-time.Second), 2)

	c1 := record(index(0x20, 1), recordID(1), public)
	c1.Expires = t0.Add(-time.Hour)
	c2 := record(index(0x20, 1), recordID(2), public)
	putRecord(t, s, c1, noLimit)
	putRecord(t, s, c2, noLimit)
	countOwners(t, s, t0, 2)
	countOwners(t, s, t0.Add(time.Hour), 0)

	if _, err := s.DeleteRecord(t.Context(), a1.Index, a1.RecordID, t0); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	countOwners(t, s, t0, 2)
	if _, err := s.DeleteRecord(t.Context(), a2.Index, a2.RecordID, t0); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	countOwners(t, s, t0, 1)
}

func testMeta(t *testing.T, open opener) {
	meta := func(t *testing.T, s single, key string, want []byte) {
		t.Helper()
		got, err := s.Meta(t.Context(), key)
		if err != nil {
			t.Errorf("Meta(%q): %v", key, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("Meta(%q) = %x, want %x", key, got, want)
		}
	}

	t.Run("InitMeta", func(t *testing.T) {
		s := newStore(t, open)
		if v, err := s.Meta(t.Context(), "k"); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("Meta on an empty store = %x, %v; want ErrNotFound", v, err)
		}
		v1 := []byte("value one\x00\xff")
		if err := s.InitMeta(t.Context(), "k", v1); err != nil {
			t.Fatalf("InitMeta: %v", err)
		}
		meta(t, s, "k", v1)
		if err := s.InitMeta(t.Context(), "k", bytes.Clone(v1)); err != nil {
			t.Errorf("InitMeta again with the same value: %v", err)
		}
		meta(t, s, "k", v1)
		for _, v := range [][]byte{[]byte("value two"), v1[:len(v1)-1], append(bytes.Clone(v1), 0), {}} {
			if err := s.InitMeta(t.Context(), "k", v); !errors.Is(err, directory.ErrConflict) {
				t.Errorf("InitMeta with a different value %q: %v, want ErrConflict", v, err)
			}
			meta(t, s, "k", v1)
		}
		if v, err := s.Meta(t.Context(), "k2"); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("Meta of another key = %x, %v; want ErrNotFound", v, err)
		}
		v2 := []byte("value two")
		if err := s.InitMeta(t.Context(), "k2", v2); err != nil {
			t.Fatalf("InitMeta of another key: %v", err)
		}
		meta(t, s, "k", v1)
		meta(t, s, "k2", v2)
	})

	t.Run("ConcurrentInitMeta", func(t *testing.T) {
		s := newStore(t, open)
		errs := concurrently(goroutines, func(i int) error {
			return s.InitMeta(t.Context(), "k", []byte{'v', byte(i)})
		})
		if ok, conflict := tally(t, errs, directory.ErrConflict); ok != 1 || conflict != goroutines-1 {
			t.Fatalf("%d concurrent InitMeta with different values: %d succeeded, %d ErrConflict; want 1 and %d",
				goroutines, ok, conflict, goroutines-1)
		}
		meta(t, s, "k", []byte{'v', byte(slices.Index(errs, nil))})

		errs = concurrently(goroutines, func(int) error {
			return s.InitMeta(t.Context(), "same", []byte("same value"))
		})
		if ok, _ := tally(t, errs, directory.ErrConflict); ok != goroutines {
			t.Errorf("%d concurrent InitMeta with one value: %d succeeded, want all", goroutines, ok)
		}
		meta(t, s, "same", []byte("same value"))
	})
}

// testConcurrent mixes readers and writers, so that the race detector and
// the implementation's own locking see them together.
func testConcurrent(t *testing.T, open opener) {
	s := newStore(t, open)
	const writers, rounds = 8, 10
	idx := index(0x42, 1)
	errs := concurrently(2*writers, func(i int) error {
		for n := range rounds {
			if i >= writers {
				got, err := s.Buckets(t.Context(), 0, []directory.BucketRange{fullRange}, p1, t0)
				if err != nil {
					return err
				}
				if len(got) != 1 || !slices.IsSortedFunc(got[0], cmpCandidate) {
					return errors.New("full-range Buckets result missing or out of order")
				}
				if _, err := s.CountOwners(t.Context(), t0); err != nil {
					return err
				}
				continue
			}
			r := record(idx, recordID(byte(i)), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
			if _, err := s.PutRecord(t.Context(), r, noLimit); err != nil {
				return err
			}
			if _, err := s.SetACL(t.Context(), r.Index, r.RecordID, acl.List{Visibility: acl.Public}, t0); err != nil {
				return err
			}
			if n%2 == 0 {
				if _, err := s.DeleteRecord(t.Context(), r.Index, r.RecordID, t0); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	// Each writer's last round (odd) left its record in place.
	var want []directory.Record
	for i := range writers {
		want = append(want, record(idx, recordID(byte(i)), acl.List{Visibility: acl.Public}))
	}
	checkAll(t, s, p1, t0, want...)
}

func cmpCandidate(a, b directory.Candidate) int {
	if c := bytes.Compare(a.Index[:], b.Index[:]); c != 0 {
		return c
	}
	if c := bytes.Compare(a.RecordID[:], b.RecordID[:]); c != 0 {
		return c
	}
	return bytes.Compare(a.Holder[:], b.Holder[:])
}

func testClose(t *testing.T, open opener) {
	s := open(t)
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close()
		}
	})
	v := verification(1)
	createVerification(t, single{s}, v)
	if err := s.InitMeta(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("InitMeta: %v", err)
	}
	closed = true
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Verification(t.Context(), v.ID); err == nil {
		t.Error("Verification after Close succeeded")
	}
	if _, err := s.Meta(t.Context(), "k"); err == nil {
		t.Error("Meta after Close succeeded")
	}
	if err := s.CreateVerification(t.Context(), verification(2)); err == nil {
		t.Error("CreateVerification after Close succeeded")
	}
	if _, err := s.PutRecord(t.Context(), record(index(1), recordID(1), acl.List{}), noLimit); err == nil {
		t.Error("PutRecord after Close succeeded")
	}
	if _, err := s.Buckets(t.Context(), 0, []directory.BucketRange{fullRange}, p1, t0); err == nil {
		t.Error("Buckets after Close succeeded")
	}
}
