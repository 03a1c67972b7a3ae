package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

// More of the holder-set contract: ChangeHolders taken literally (whatever
// decided the change), OverdueHolders, the epochs of holder rows, Buckets
// with several holders, and races between holders.

// firstKey returns a key hash whose first byte is b, so that key order is
// bytewise and unsigned.
func firstKey(b byte) [32]byte {
	k := keyHash(b)
	k[0] = b
	return k
}

// describeHolder returns every stored field of h, in seconds after t0.
func describeHolder(h directory.Holder) string {
	at := func(x time.Time) string {
		if x.IsZero() {
			return "-"
		}
		return fmt.Sprint(x.Sub(t0) / time.Second)
	}
	return fmt.Sprintf("%02x first %s last %s notice %s until %s label %x records %d",
		h.KeyHash[0], at(h.FirstProof), at(h.LastProof), at(h.NoticeProof), at(h.NoticeUntil), h.Label[31], h.Records)
}

func describeHolders(hs []directory.Holder) []string {
	var out []string
	for _, h := range hs {
		out = append(out, describeHolder(h))
	}
	return out
}

// checkHolders checks that Holders(index) is want, in order.
func checkHolders(t *testing.T, s single, index [32]byte, want ...directory.Holder) {
	t.Helper()
	hs, err := s.Holders(t.Context(), index)
	if err != nil {
		t.Fatalf("Holders: %v", err)
	}
	if got, want := describeHolders(hs), describeHolders(want); !slices.Equal(got, want) {
		t.Errorf("Holders(%x) =\n\t%s\nwant\n\t%s", index[:5], strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// counted returns h with n records.
func counted(h directory.Holder, n int) directory.Holder {
	h.Records = n
	return h
}

// writeChange writes ch under index as a decision on whatever is stored,
// and checks that ChangeHolders returns it unchanged.
func writeChange(t *testing.T, s single, epoch int, index [32]byte, ch directory.HolderChange, at time.Time) {
	t.Helper()
	got := change(t, s, epoch, index, at, func([]directory.Holder) (directory.HolderChange, error) { return ch, nil })
	if !reflect.DeepEqual(got, ch) {
		t.Errorf("ChangeHolders returned\n%+v\nnot decide's change\n%+v", got, ch)
	}
}

// testChangeHolders checks that ChangeHolders writes a HolderChange
// exactly as its doc says, whatever decided it: rows as put (in key order,
// their record counts the store's), retirements of the holder's records
// under that index only, the entries as given and then the State entries
// of the retired, and nothing at all when decide fails.
func testChangeHolders(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	var want memLog
	idx, elsewhere := index(0x11000000, 1), index(0x11000000, 2)
	l := label(0x11)
	k01, k7f, k80, kff := firstKey(0x01), firstKey(0x7f), firstKey(0x80), firstKey(0xff)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

	// Put out of key order, with a record count the store must ignore, a
	// holder without a label and two on notice.
	h80 := directory.Holder{KeyHash: k80, FirstProof: sec(1), LastProof: sec(5), Label: l}
	hff := directory.Holder{KeyHash: kff, FirstProof: sec(2), LastProof: sec(2), NoticeProof: sec(5), NoticeUntil: sec(3605), Label: l}
	h01 := directory.Holder{KeyHash: k01, FirstProof: sec(3), LastProof: sec(3)}
	h7f := directory.Holder{KeyHash: k7f, FirstProof: sec(4), LastProof: sec(4), NoticeProof: sec(5), NoticeUntil: sec(3605), Label: l}
	var seen []directory.Holder
	ch := directory.HolderChange{Put: []directory.Holder{counted(h80, 7), hff, h01, h7f}, Entries: [][]byte{keyEntry(t, 1), keyEntry(t, 2)}}
	got := change(t, s, 0, idx, t0, func(hs []directory.Holder) (directory.HolderChange, error) {
		seen = hs
		return ch, nil
	})
	if len(seen) != 0 {
		t.Errorf("decide saw holders %q of a new index", describeHolders(seen))
	}
	if !reflect.DeepEqual(got, ch) {
		t.Errorf("ChangeHolders returned\n%+v\nnot decide's change\n%+v", got, ch)
	}
	logged(t, s, &want, "ChangeHolders putting four holders", unreturned, ch.Entries...)
	checkHolders(t, s, idx, h01, h7f, h80, hff)
	if hs, err := s.Holders(ctx, elsewhere); err != nil || len(hs) != 0 {
		t.Errorf("Holders of another index = %q, %v", describeHolders(hs), err)
	}
	writeChange(t, s, 0, elsewhere, directory.HolderChange{Put: []directory.Holder{h80}}, t0)
	logged(t, s, &want, "ChangeHolders without entries", unreturned)

	// Records: the same app (record id 1) under three holders, and k80's
	// under another index too.
	pub := func(o *owner, r directory.Record) {
		t.Helper()
		r.Holder = o.key
		o.put(r)
		pos := putRecord(t, s, r, noLimit)
		if o.label == ([32]byte{}) {
			logged(t, s, &want, "PutRecord by a holder without a label", pos)
		} else {
			logged(t, s, &want, "PutRecord", pos, stateEntry(t, o.label, o.key, o.records, r.Updated))
		}
	}
	o80 := &owner{index: idx, label: l, key: k80}
	off := &owner{index: idx, label: l, key: kff}
	o01 := &owner{index: idx, key: k01}
	o80e := &owner{index: elsewhere, label: l, key: k80}
	pub(o80, record(idx, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}}))
	pub(o80, record(idx, recordID(2), acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p2}}))
	pub(off, record(idx, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p2}, Deny: []acl.Pseudonym{p1}}))
	pub(o01, record(idx, recordID(3), acl.List{Visibility: acl.Public}))
	pub(o80e, record(elsewhere, recordID(1), acl.List{Visibility: acl.Public}))
	before := buckets(t, s, p1, t0, fullRange)[0]
	if len(before) != 5 {
		t.Fatalf("Buckets: %d records, want 5", len(before))
	}

	// decide sees what Holders returns, record counts included; its error
	// is returned, and nothing of the change it came with is written.
	boom := errors.New("storetest: decided against")
	_, err := s.ChangeHolders(ctx, 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
		seen = hs
		return directory.HolderChange{
			Retire:  hs,
			Put:     []directory.Holder{{KeyHash: firstKey(0x55), FirstProof: t0, LastProof: t0, Label: l}},
			Entries: [][]byte{keyEntry(t, 3)},
		}, boom
	}, t0)
	if !errors.Is(err, boom) {
		t.Fatalf("ChangeHolders whose decide fails: %v, want decide's error", err)
	}
	wantCounted := []directory.Holder{counted(h01, 1), counted(h7f, 0), counted(h80, 2), counted(hff, 1)}
	if got, want := describeHolders(seen), describeHolders(wantCounted); !slices.Equal(got, want) {
		t.Errorf("decide saw\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	logged(t, s, &want, "ChangeHolders whose decide fails", unreturned)
	checkHolders(t, s, idx, wantCounted...)
	for _, k := range [][32]byte{k01, k7f, k80, kff} {
		if revoked, err := s.KeyRevoked(ctx, k); err != nil || revoked {
			t.Errorf("key %02x revoked by a failed change: %v, %v", k[0], revoked, err)
		}
	}
	if ts, err := s.Tombstones(ctx, idx); err != nil || len(ts) != 0 {
		t.Errorf("tombstones after a failed change: %+v, %v", ts, err)
	}
	if after := buckets(t, s, p1, t0, fullRange)[0]; len(after) != len(before) {
		t.Errorf("a failed change left %d records of %d", len(after), len(before))
	}

	// Three retirements (one without a label) and a put in one change: the
	// entries, then the State entry of each retired holder with a label;
	// each retired record leaves one tombstone; the same app's record of
	// the holder that stays, and the retired key's under another index,
	// stay.
	at := sec(60)
	hffCleared := hff
	hffCleared.LastProof, hffCleared.NoticeProof, hffCleared.NoticeUntil = sec(30), time.Time{}, time.Time{}
	var retire directory.HolderChange
	got = change(t, s, 0, idx, at, func(hs []directory.Holder) (directory.HolderChange, error) {
		retire = directory.HolderChange{
			Retire:  slices.DeleteFunc(slices.Clone(hs), func(h directory.Holder) bool { return h.KeyHash == kff }),
			Put:     []directory.Holder{hffCleared},
			Entries: [][]byte{keyEntry(t, 4), keyEntry(t, 5)},
		}
		return retire, nil
	})
	if !reflect.DeepEqual(got, retire) {
		t.Errorf("ChangeHolders returned\n%+v\nnot decide's change\n%+v", got, retire)
	}
	logged(t, s, &want, "ChangeHolders retiring three holders", unreturned,
		keyEntry(t, 4), keyEntry(t, 5), stateEntry(t, l, k7f, nil, at), stateEntry(t, l, k80, nil, at))
	checkHolders(t, s, idx, counted(hffCleared, 1))
	checkHolders(t, s, elsewhere, counted(h80, 1))
	for k, want := range map[[32]byte]bool{k01: true, k7f: true, k80: true, kff: false} {
		if revoked, err := s.KeyRevoked(ctx, k); err != nil || revoked != want {
			t.Errorf("KeyRevoked(%02x) = %v, %v; want %v", k[0], revoked, err, want)
		}
	}
	ts, err := s.Tombstones(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	var stones []string
	for _, tb := range ts {
		if tb.Index != idx || !tb.Retired.Equal(at) {
			t.Errorf("tombstone %x/%x of %02x: index %x retired %v, want %x at %v", tb.Index[:5], tb.RecordID[:2], tb.KeyHash[0], tb.Index[:5], tb.Retired.Unix(), idx[:5], at.Unix())
		}
		stones = append(stones, fmt.Sprintf("%02x/%02x", tb.KeyHash[0], tb.RecordID[1]))
	}
	slices.Sort(stones)
	if want := []string{"01/03", "80/01", "80/02"}; !slices.Equal(stones, want) {
		t.Errorf("tombstones (key/record) %q, want %q", stones, want)
	}
	if ts, err := s.Tombstones(ctx, elsewhere); err != nil || len(ts) != 0 {
		t.Errorf("tombstones of another index: %+v, %v", ts, err)
	}
	for _, caller := range callers {
		got := buckets(t, s, caller, t0, fullRange)[0]
		want := candidates(caller, append(slices.Clone(off.records), o80e.records...)...)
		if d := diffCandidates(got, want); d != "" {
			t.Errorf("after the retirements, caller %x:\n%s", caller[31], d)
		}
	}
	for _, o := range []*owner{off, o80e} {
		got, err := s.Store.OwnerState(ctx, o.index, o.key)
		if err != nil || translog.Commitment(got) != translog.Commitment(stateRecords(o.records)) {
			t.Errorf("OwnerState of %02x under %x: %d records, %v; want its %d", o.key[0], o.index[:5], len(got), err, len(o.records))
		}
	}
	for _, k := range [][32]byte{k80, k01} {
		if got, err := s.Store.OwnerState(ctx, idx, k); err != nil || len(got) != 0 {
			t.Errorf("OwnerState of retired %02x: %d records, %v", k[0], len(got), err)
		}
	}
	// A retired holder has no row to publish under.
	late := record(idx, recordID(9), acl.List{Visibility: acl.Public})
	late.Holder = k80
	if _, err := s.Store.PutRecord(ctx, late, noLimit); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("PutRecord by a retired holder: %v, want ErrNotFound", err)
	}
	checkLog(t, s, &want)
}

// testOverdueHolders checks OverdueHolders: the indexes of one epoch with
// a holder whose notice ran out at or before now, each once, in unsigned
// index order, at most limit of them.
func testOverdueHolders(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	now := t0.Add(time.Hour)
	l := label(0x0d)
	held := func(n byte) directory.Holder {
		return directory.Holder{KeyHash: firstKey(n), FirstProof: t0, LastProof: t0, Label: l}
	}
	noticed := func(n byte, until time.Time) directory.Holder {
		h := held(n)
		h.NoticeProof, h.NoticeUntil = t0.Add(time.Second), until
		return h
	}
	i1, i3, i5, i7, i9 := index(0x30000000, 1), index(0x30000000, 3), index(0x30000000, 5), index(0x7fffffff, 1), index(0x90000000, 1)
	due, notDue, calm, epoch1 := index(0x30000000, 2), index(0x30000000, 4), index(0x30000000, 6), index(0x30000000, 0)
	for _, w := range []struct {
		epoch int
		index [32]byte
		put   []directory.Holder
	}{
		{0, i9, []directory.Holder{noticed(1, now.Add(-time.Hour))}},
		{0, i3, []directory.Holder{held(1), noticed(2, now.Add(-time.Minute))}},
		{0, notDue, []directory.Holder{noticed(1, now.Add(time.Second)), held(2)}},
		{0, i1, []directory.Holder{noticed(1, now.Add(-time.Minute)), noticed(2, now.Add(-time.Hour)), held(3)}},
		{0, due, []directory.Holder{noticed(1, now)}},
		{0, calm, []directory.Holder{held(1), held(2)}},
		{1, epoch1, []directory.Holder{noticed(1, now.Add(-time.Hour))}},
		{0, i7, []directory.Holder{held(1), noticed(2, now.Add(-time.Minute))}},
		{0, i5, []directory.Holder{noticed(1, now.Add(-time.Minute))}},
	} {
		writeChange(t, s, w.epoch, w.index, directory.HolderChange{Put: w.put}, t0)
	}
	overdue := func(epoch int, now time.Time, limit int, want ...[32]byte) {
		t.Helper()
		got, err := s.OverdueHolders(ctx, epoch, now, limit)
		if err != nil {
			t.Fatalf("OverdueHolders: %v", err)
		}
		g, w := make([]string, len(got)), make([]string, len(want))
		for i := range got {
			g[i] = fmt.Sprintf("%x", got[i][:5])
		}
		for i := range want {
			w[i] = fmt.Sprintf("%x", want[i][:5])
		}
		if !slices.Equal(g, w) {
			t.Errorf("OverdueHolders(epoch %d, %+d s, limit %d) = %q, want %q", epoch, now.Sub(t0)/time.Second, limit, g, w)
		}
	}
	overdue(0, now, 100, i1, due, i3, i5, i7, i9)
	overdue(0, now.Add(-time.Second), 100, i1, i3, i5, i7, i9) // due runs out at now
	overdue(0, now, 1, i1)
	overdue(0, now, 2, i1, due) // i1 (two overdue holders) is one index
	overdue(0, now, 5, i1, due, i3, i5, i7)
	overdue(0, now.Add(time.Second), 100, i1, due, i3, notDue, i5, i7, i9)
	overdue(0, now.Add(-2*time.Hour), 100)
	overdue(1, now, 100, epoch1)
	overdue(2, now, 100)

	// Retired, they are overdue no more; a cleared notice neither.
	change(t, s, 0, i1, now, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideOverdue(hs, now), nil
	})
	checkHolders(t, s, i1, held(3))
	cleared := held(1)
	cleared.LastProof = t0.Add(2 * time.Second)
	writeChange(t, s, 0, due, directory.HolderChange{Put: []directory.Holder{cleared}}, now)
	overdue(0, now, 100, i3, i5, i7, i9)
}

// testHolderEpochs checks that holder rows are of the epoch ChangeHolders
// was given: DeleteEpochsBefore removes the rows of older epochs with
// their records (logging the State of each holder's emptied records, and
// retiring nobody) and keeps the current epoch's.
func testHolderEpochs(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	var want memLog
	l := label(0xe0)
	now := t0.Add(time.Minute)
	old := index(0x50000000, 1)
	oldA := &owner{index: old, label: l, key: firstKey(0xa0)}
	oldB := &owner{index: old, label: l, key: firstKey(0x0b)}
	cur := &owner{index: index(0x50000000, 2), label: l, key: firstKey(0xa0)}
	hA := directory.Holder{KeyHash: oldA.key, FirstProof: t0, LastProof: t0, Label: l}
	hB := directory.Holder{KeyHash: oldB.key, FirstProof: t0, LastProof: t0, NoticeProof: t0.Add(time.Second), NoticeUntil: t0, Label: l}
	writeChange(t, s, 0, old, directory.HolderChange{Put: []directory.Holder{hA, hB}}, t0)
	writeChange(t, s, 1, cur.index, directory.HolderChange{Put: []directory.Holder{hA}}, t0)
	for _, o := range []*owner{oldA, oldB, cur} {
		for _, n := range []byte{1, 2} {
			r := record(o.index, recordID(n), acl.List{Visibility: acl.Public})
			r.Holder = o.key
			if o == cur {
				r.Epoch = 1
			}
			o.put(r)
			logged(t, s, &want, "PutRecord", putRecord(t, s, r, noLimit), stateEntry(t, o.label, o.key, o.records, r.Updated))
		}
	}
	if got, err := s.OverdueHolders(ctx, 0, now, 10); err != nil || len(got) != 1 {
		t.Errorf("OverdueHolders of epoch 0 = %x, %v; want the old index", got, err)
	}
	n, err := s.DeleteEpochsBefore(ctx, 1, now)
	if err != nil || n != 4 {
		t.Fatalf("DeleteEpochsBefore(1) = %d, %v; want epoch 0's 4 records", n, err)
	}
	// oldB sorts before oldA: index, then holder order.
	logged(t, s, &want, "DeleteEpochsBefore", unreturned, stateEntry(t, l, oldB.key, nil, now), stateEntry(t, l, oldA.key, nil, now))
	checkHolders(t, s, old)
	checkHolders(t, s, cur.index, counted(hA, 2))
	if got, err := s.OverdueHolders(ctx, 0, now, 10); err != nil || len(got) != 0 {
		t.Errorf("OverdueHolders of a retired epoch = %x, %v", got, err)
	}
	for _, k := range [][32]byte{oldA.key, oldB.key} {
		if revoked, err := s.KeyRevoked(ctx, k); err != nil || revoked {
			t.Errorf("DeleteEpochsBefore revoked %02x: %v, %v", k[0], revoked, err)
		}
	}
	if ts, err := s.Tombstones(ctx, old); err != nil || len(ts) != 0 {
		t.Errorf("DeleteEpochsBefore left tombstones: %+v, %v", ts, err)
	}
	gone := record(old, recordID(3), acl.List{Visibility: acl.Public})
	gone.Holder = oldA.key
	if _, err := s.Store.PutRecord(ctx, gone, noLimit); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("PutRecord under a retired epoch's index: %v, want ErrNotFound", err)
	}
	got, err := s.Buckets(ctx, 1, []directory.BucketRange{fullRange}, p1, now)
	if err != nil || diffCandidates(got[0], candidates(p1, cur.records...)) != "" {
		t.Errorf("epoch 1 after DeleteEpochsBefore: %v, %d records, want its %d", err, len(got[0]), len(cur.records))
	}
	checkLog(t, s, &want)
}

// describeCandidates returns, for each candidate of index, its record id,
// holder, LastProof, Hidden and caller's membership.
func describeCandidates(cs []directory.Candidate, index [32]byte) []string {
	var out []string
	for _, c := range cs {
		if c.Index == index {
			out = append(out, fmt.Sprintf("%02x/%02x proof %d hidden %v allowed %v denied %v %q",
				c.RecordID[1], c.Holder[0], c.LastProof.Sub(t0)/time.Second, c.Hidden, c.Allowed, c.Denied, c.Ciphertext))
		}
	}
	return out
}

// testHolderBuckets checks Buckets with several holders of an index: each
// candidate carries its own holder, that holder's LastProof and notice
// (Hidden), and caller's membership in that holder's lists only.
func testHolderBuckets(t *testing.T, open opener) {
	s := newStore(t, open)
	idx := index(0x44000000, 1)
	l := label(0x44)
	kA, kB, kC := firstKey(0xf0), firstKey(0x10), firstKey(0x80)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	window := time.Hour
	prove := func(key [32]byte, proof time.Time) {
		t.Helper()
		change(t, s, 0, idx, proof, func(hs []directory.Holder) (directory.HolderChange, error) {
			return directory.DecideProof(hs, directory.Proof{KeyHash: key, Time: proof, Label: l}, proof, window), nil
		})
	}
	prove(kA, sec(-20))
	prove(kB, sec(-20)) // a tie: nobody on notice
	put := func(key [32]byte, rid byte, ct string, list acl.List) {
		t.Helper()
		r := record(idx, recordID(rid), list)
		r.Holder, r.Ciphertext = key, []byte(ct)
		putRecord(t, s, r, noLimit)
	}
	// One app under both holders with opposite lists; A's public record
	// denies p3, B's allows nobody.
	put(kA, 1, "A1", acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}, Deny: []acl.Pseudonym{p2}})
	put(kB, 1, "B1", acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p2}, Deny: []acl.Pseudonym{p1}})
	put(kB, 2, "B2", acl.List{Visibility: acl.Nobody})
	put(kA, 2, "A2", acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p3}})
	check := func(what string, caller acl.Pseudonym, want ...string) {
		t.Helper()
		got := describeCandidates(buckets(t, s, caller, t0, fullRange)[0], idx)
		if !slices.Equal(got, want) {
			t.Errorf("%s, caller %x:\n\t%s\nwant\n\t%s", what, caller[31], strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}
	// Ordered by record id, then holder (B's key sorts first).
	check("two holders", p1,
		`01/10 proof -20 hidden false allowed false denied true "B1"`,
		`01/f0 proof -20 hidden false allowed true denied false "A1"`,
		`02/10 proof -20 hidden false allowed false denied false "B2"`,
		`02/f0 proof -20 hidden false allowed false denied false "A2"`)
	check("two holders", p2,
		`01/10 proof -20 hidden false allowed true denied false "B1"`,
		`01/f0 proof -20 hidden false allowed false denied true "A1"`,
		`02/10 proof -20 hidden false allowed false denied false "B2"`,
		`02/f0 proof -20 hidden false allowed false denied false "A2"`)
	check("two holders", p3,
		`01/10 proof -20 hidden false allowed false denied false "B1"`,
		`01/f0 proof -20 hidden false allowed false denied false "A1"`,
		`02/10 proof -20 hidden false allowed false denied false "B2"`,
		`02/f0 proof -20 hidden false allowed false denied true "A2"`)

	// One holder's ACL change leaves the other's lists alone.
	if _, err := s.Store.SetACL(t.Context(), idx, kB, recordID(1), acl.List{Visibility: acl.Public}, t0); err != nil {
		t.Fatal(err)
	}
	check("after B's ACL change", p1,
		`01/10 proof -20 hidden false allowed false denied false "B1"`,
		`01/f0 proof -20 hidden false allowed true denied false "A1"`,
		`02/10 proof -20 hidden false allowed false denied false "B2"`,
		`02/f0 proof -20 hidden false allowed false denied false "A2"`)

	// C's later proof hides A's and B's records (still fetched, lists
	// intact); A's re-proof shows its own again, with its new proof.
	prove(kC, sec(-10))
	check("after C's join", p2,
		`01/10 proof -20 hidden true allowed false denied false "B1"`,
		`01/f0 proof -20 hidden true allowed false denied true "A1"`,
		`02/10 proof -20 hidden true allowed false denied false "B2"`,
		`02/f0 proof -20 hidden true allowed false denied false "A2"`)
	prove(kA, sec(-5))
	check("after A's re-proof", p2,
		`01/10 proof -20 hidden true allowed false denied false "B1"`,
		`01/f0 proof -5 hidden false allowed false denied true "A1"`,
		`02/10 proof -20 hidden true allowed false denied false "B2"`,
		`02/f0 proof -5 hidden false allowed false denied false "A2"`)
}

// testHolderCountOwners checks that CountOwners counts indexes with an
// unexpired record of any holder: numbers, not holders.
func testHolderCountOwners(t *testing.T, open opener) {
	s := newStore(t, open)
	kA, kB := firstKey(0xa0), firstKey(0xb0)
	both := []directory.Holder{{KeyHash: kA, FirstProof: t0, LastProof: t0}, {KeyHash: kB, FirstProof: t0, LastProof: t0}}
	i, j, empty := index(0x22000000, 1), index(0x22000000, 2), index(0x22000000, 3)
	for _, x := range [][32]byte{i, j, empty} {
		writeChange(t, s, 0, x, directory.HolderChange{Put: both}, t0)
	}
	countOwners(t, s, t0, 0) // holders without records are not owners
	put := func(x, key [32]byte, rid byte, expires time.Time) {
		t.Helper()
		r := record(x, recordID(rid), acl.List{Visibility: acl.Public})
		r.Holder, r.Expires = key, expires
		putRecord(t, s, r, noLimit)
	}
	put(i, kA, 1, t0.Add(time.Hour))
	put(i, kB, 1, t0.Add(time.Hour))
	put(i, kB, 2, t0.Add(time.Hour))
	countOwners(t, s, t0, 1) // two holders of one number count once
	put(j, kA, 1, t0)        // expires at now
	put(j, kB, 1, t0.Add(time.Minute))
	countOwners(t, s, t0, 2)
	countOwners(t, s, t0.Add(time.Minute), 1)
	if _, err := s.Store.DeleteRecord(t.Context(), j, kB, recordID(1), t0); err != nil {
		t.Fatal(err)
	}
	countOwners(t, s, t0, 1)
	countOwners(t, s, t0.Add(-time.Second), 2) // A's record at j, live before now
}

// raceEntries parses the log's entries from from on.
func raceEntries(t *testing.T, s single, from int64) []translog.Entry {
	t.Helper()
	n := logTree(t, s).N
	bs, err := s.ReadLogEntries(t.Context(), from, n)
	if err != nil {
		t.Fatalf("ReadLogEntries(%d, %d): %v", from, n, err)
	}
	es := make([]translog.Entry, len(bs))
	for i, b := range bs {
		e, err := translog.Parse(b)
		if err != nil {
			t.Fatalf("entry %d: %v", from+int64(i), err)
		}
		es[i] = *e
	}
	return es
}

// testJoinRace races, round after round, two keys joining one index at
// the same moment with different proofs (or, every third round, the same
// proof), each publishing at once, while the index's earlier holder
// publishes too. The end state is the one DecideProof defines whatever the
// order: both joined; the earlier holder and the older proof on notice
// (neither joiner on a tie); each join and notice logged once; every
// record kept.
func testJoinRace(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	const rounds = 12
	window := time.Hour
	now := t0.Add(time.Minute)
	until := now.Add(window)
	for round := range rounds {
		idx := index(0x66000000, byte(round))
		l := label(byte(0x80 + round))
		k0, kOld, kNew := firstKey(byte(3*round+1)), firstKey(byte(3*round+2)), firstKey(byte(3*round+3))
		p0, pOld, pNew := t0.Add(-10*time.Second), t0, t0.Add(time.Second)
		tie := round%3 == 2
		if tie {
			pNew = pOld
		}
		decide := func(key [32]byte, proof, now time.Time) func([]directory.Holder) (directory.HolderChange, error) {
			return func(hs []directory.Holder) (directory.HolderChange, error) {
				return directory.DecideProof(hs, directory.Proof{KeyHash: key, Time: proof, Label: l}, now, window), nil
			}
		}
		rec := func(key [32]byte, rid byte) directory.Record {
			r := record(idx, recordID(rid), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{pseudonym(key[0])}})
			r.Holder, r.Ciphertext = key, fmt.Appendf(nil, "%x's record %d", key[0], rid)
			return r
		}
		change(t, s, 0, idx, p0, decide(k0, p0, p0))
		putRecord(t, s, rec(k0, 1), noLimit)
		from := logTree(t, s).N

		errs := concurrently(3, func(i int) error {
			if i == 0 {
				_, err := s.Store.PutRecord(ctx, rec(k0, 2), noLimit)
				return err
			}
			key, proof := kOld, pOld
			if i == 2 {
				key, proof = kNew, pNew
			}
			if _, err := s.ChangeHolders(ctx, 0, idx, decide(key, proof, now), now); err != nil {
				return err
			}
			_, err := s.Store.PutRecord(ctx, rec(key, 1), noLimit)
			return err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}

		hs, err := s.Holders(ctx, idx)
		if err != nil || len(hs) != 3 {
			t.Fatalf("round %d: holders %q, %v; want 3", round, describeHolders(hs), err)
		}
		// The earlier holder's notice names whichever joiner came first.
		noticedBy := pNew
		if hs[0].NoticeProof.Equal(pOld) {
			noticedBy = pOld
		}
		want := []directory.Holder{
			{KeyHash: k0, FirstProof: p0, LastProof: p0, NoticeProof: noticedBy, NoticeUntil: until, Label: l, Records: 2},
			{KeyHash: kOld, FirstProof: pOld, LastProof: pOld, NoticeProof: pNew, NoticeUntil: until, Label: l, Records: 1},
			{KeyHash: kNew, FirstProof: pNew, LastProof: pNew, Label: l, Records: 1},
		}
		if tie {
			want[1].NoticeProof, want[1].NoticeUntil = time.Time{}, time.Time{}
		}
		if got, want := describeHolders(hs), describeHolders(want); !slices.Equal(got, want) {
			t.Errorf("round %d (tie %v): holders\n\t%s\nwant\n\t%s", round, tie, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}

		// The log: each join once, each notice once, one State entry per
		// publish, under the round's label, and nothing else.
		var events []string
		states := map[[32]byte][]translog.Entry{}
		for _, e := range raceEntries(t, s, from) {
			if e.Label != l {
				t.Errorf("round %d: an entry under another label: %+v", round, e)
			}
			switch e.Kind {
			case translog.Holder:
				d := fmt.Sprintf("%s %02x proof %d", e.Event, e.Key[0], e.Proof.Sub(t0)/time.Second)
				if e.Event == translog.Notice {
					d += fmt.Sprintf(" until %d by %02x", e.Until.Sub(t0)/time.Second, e.By[0])
				}
				events = append(events, d)
			case translog.State:
				states[e.Key] = append(states[e.Key], e)
			default:
				t.Errorf("round %d: unexpected entry %+v", round, e)
			}
		}
		slices.Sort(events)
		sec := func(x time.Time) time.Duration { return x.Sub(t0) / time.Second }
		// The earlier holder's notice is by the first joiner: on a tie,
		// either.
		by := kNew
		if noticedBy.Equal(pOld) && !tie {
			by = kOld
		}
		if tie && slices.Contains(events, fmt.Sprintf("notice %02x proof %d until %d by %02x", k0[0], sec(noticedBy), sec(until), kOld[0])) {
			by = kOld
		}
		wantEvents := []string{
			fmt.Sprintf("join %02x proof %d", kOld[0], sec(pOld)),
			fmt.Sprintf("join %02x proof %d", kNew[0], sec(pNew)),
			fmt.Sprintf("notice %02x proof %d until %d by %02x", k0[0], sec(noticedBy), sec(until), by[0]),
		}
		if !tie {
			wantEvents = append(wantEvents, fmt.Sprintf("notice %02x proof %d until %d by %02x", kOld[0], sec(pNew), sec(until), kNew[0]))
		}
		slices.Sort(wantEvents)
		if !slices.Equal(events, wantEvents) {
			t.Errorf("round %d (tie %v): holder entries\n\t%s\nwant\n\t%s", round, tie, strings.Join(events, "\n\t"), strings.Join(wantEvents, "\n\t"))
		}
		for key, recs := range map[[32]byte][]directory.Record{k0: {rec(k0, 1), rec(k0, 2)}, kOld: {rec(kOld, 1)}, kNew: {rec(kNew, 1)}} {
			if key == k0 {
				// Only its racing publish is after from.
				if es := states[key]; len(es) != 1 || es[0].Records != 2 || es[0].Commitment != translog.Commitment(stateRecords(recs)) {
					t.Errorf("round %d: %d State entries of the earlier holder, want one of its 2 records", round, len(es))
				}
				continue
			}
			if es := states[key]; len(es) != 1 || es[0].Records != 1 || es[0].Commitment != translog.Commitment(stateRecords(recs)) {
				t.Errorf("round %d: %d State entries of %02x, want one of its own record", round, len(es), key[0])
			}
		}
		if len(states) != 3 {
			t.Errorf("round %d: State entries of %d keys, want 3", round, len(states))
		}

		// No record lost, each with its own list; the noticed are hidden.
		got := describeCandidates(buckets(t, s, pseudonym(kOld[0]), t0, fullRange)[0], idx)
		wantC := []string{
			fmt.Sprintf(`01/%02x proof %d hidden true allowed false denied false "%x's record 1"`, k0[0], sec(p0), k0[0]),
			fmt.Sprintf(`01/%02x proof %d hidden %v allowed true denied false "%x's record 1"`, kOld[0], sec(pOld), !tie, kOld[0]),
			fmt.Sprintf(`01/%02x proof %d hidden false allowed false denied false "%x's record 1"`, kNew[0], sec(pNew), kNew[0]),
			fmt.Sprintf(`02/%02x proof %d hidden true allowed false denied false "%x's record 2"`, k0[0], sec(p0), k0[0]),
		}
		if !slices.Equal(got, wantC) {
			t.Errorf("round %d: Buckets\n\t%s\nwant\n\t%s", round, strings.Join(got, "\n\t"), strings.Join(wantC, "\n\t"))
		}
	}
}

// testPublishRace has two holders of one index publish the same record ids
// at once, each up to its own limit, and then delete them at once: each
// holder's writes count against its limit only, touch its records only,
// and log its State only, in an order of its own.
func testPublishRace(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	idx := index(0x67000000, 1)
	l := label(0x67)
	kA, kB := firstKey(0xa0), firstKey(0xb0)
	for _, k := range [][32]byte{kA, kB} {
		change(t, s, 0, idx, t0, joinAt(k, l, t0)) // a tie: nobody on notice
	}
	const per, limit = 10, 5
	rec := func(key [32]byte, rid int) directory.Record {
		r := record(idx, recordID(byte(rid)), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{pseudonym(key[0])}})
		r.Holder, r.Ciphertext = key, fmt.Appendf(nil, "%x's record %d", key[0], rid)
		return r
	}
	keyOf := func(g int) [32]byte {
		if g < per {
			return kA
		}
		return kB
	}
	from := logTree(t, s).N
	pos := make([]int64, 2*per)
	errs := concurrently(2*per, func(g int) error {
		var err error
		pos[g], err = s.Store.PutRecord(ctx, rec(keyOf(g), g%per), limit)
		return err
	})
	won := map[[32]byte][]directory.Record{}
	for _, part := range [][]error{errs[:per], errs[per:]} {
		if ok, exhausted := tally(t, part, directory.ErrExhausted); ok != limit || exhausted != per-limit {
			t.Errorf("%d concurrent puts of one holder with a limit of %d: %d stored, %d refused", per, limit, ok, exhausted)
		}
	}
	entries := raceEntries(t, s, from)
	for g, err := range errs {
		if err != nil {
			continue
		}
		k := keyOf(g)
		won[k] = append(won[k], rec(k, g%per))
		if i := pos[g] - from; i < 0 || i >= int64(len(entries)) || entries[i].Kind != translog.State || entries[i].Key != k {
			t.Errorf("put %d was told of log index %d, not a State entry of its holder", g, pos[g])
		}
	}
	checkStates := func(what string, entries []translog.Entry, counts func(n int) int) {
		t.Helper()
		seq := map[[32]byte][]int{}
		for _, e := range entries {
			if e.Kind != translog.State || e.Label != l || (e.Key != kA && e.Key != kB) {
				t.Errorf("%s: unexpected entry %+v", what, e)
				continue
			}
			seq[e.Key] = append(seq[e.Key], e.Records)
		}
		for _, k := range [][32]byte{kA, kB} {
			var want []int
			for n := range limit {
				want = append(want, counts(n))
			}
			if !slices.Equal(seq[k], want) {
				t.Errorf("%s: State entries of %02x count %v records, want %v", what, k[0], seq[k], want)
			}
		}
	}
	checkStates("puts", entries, func(n int) int { return n + 1 })
	for _, k := range [][32]byte{kA, kB} {
		var last translog.Entry
		for _, e := range entries {
			if e.Key == k {
				last = e
			}
		}
		if last.Commitment != translog.Commitment(stateRecords(won[k])) {
			t.Errorf("the last State entry of %02x does not commit to its %d records", k[0], len(won[k]))
		}
	}
	checkHolders(t, s, idx,
		directory.Holder{KeyHash: kA, FirstProof: t0, LastProof: t0, Label: l, Records: limit},
		directory.Holder{KeyHash: kB, FirstProof: t0, LastProof: t0, Label: l, Records: limit})
	all := append(slices.Clone(won[kA]), won[kB]...)
	slices.SortFunc(all, func(x, y directory.Record) int { return cmpCandidate(candidate(x, p1), candidate(y, p1)) })
	for _, caller := range []acl.Pseudonym{pseudonym(kA[0]), pseudonym(kB[0])} {
		checkAll(t, s, caller, t0, all...)
	}

	// Both delete what they stored, at once.
	from = logTree(t, s).N
	var dels []directory.Record
	for _, k := range [][32]byte{kA, kB} {
		dels = append(dels, won[k]...)
	}
	errs = concurrently(len(dels), func(g int) error {
		_, err := s.Store.DeleteRecord(ctx, idx, dels[g].Holder, dels[g].RecordID, t0)
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent deletes: %v", err)
	}
	checkStates("deletes", raceEntries(t, s, from), func(n int) int { return limit - 1 - n })
	checkAll(t, s, p1, t0)
	checkHolders(t, s, idx,
		directory.Holder{KeyHash: kA, FirstProof: t0, LastProof: t0, Label: l},
		directory.Holder{KeyHash: kB, FirstProof: t0, LastProof: t0, Label: l})
}

// testLogHolderEvents drives one index through join, notice, re-proof,
// a join with a stale proof, overdue retirement and eviction, as the
// server would, and checks each change's log entries against the
// decision made here on the holders the test expects, not on what the
// store returns: the decision's entries, then the State entry of each
// retired holder's emptied records.
func testLogHolderEvents(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	var want memLog
	idx := index(0x12000000, 1)
	l := label(0x12)
	kA, kB, kC, kD := firstKey(0xa0), firstKey(0xb0), firstKey(0xc0), firstKey(0xd0)
	window := time.Hour
	var model []directory.Holder // what the store should hold, in key order
	records := map[[32]byte]*owner{}
	apply := func(what string, at time.Time, decide func([]directory.Holder) (directory.HolderChange, error)) directory.HolderChange {
		t.Helper()
		checkHolders(t, s, idx, model...)
		expect, err := decide(slices.Clone(model))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		change(t, s, 0, idx, at, decide)
		entries := slices.Clone(expect.Entries)
		for _, h := range expect.Retire {
			model = slices.DeleteFunc(model, func(m directory.Holder) bool { return m.KeyHash == h.KeyHash })
			entries = append(entries, stateEntry(t, l, h.KeyHash, nil, at))
			delete(records, h.KeyHash)
		}
		for _, h := range expect.Put {
			h.Records = 0
			if o := records[h.KeyHash]; o != nil {
				h.Records = len(o.records)
			}
			if i := slices.IndexFunc(model, func(m directory.Holder) bool { return m.KeyHash == h.KeyHash }); i >= 0 {
				model[i] = h
			} else {
				model = append(model, h)
			}
		}
		slices.SortFunc(model, func(a, b directory.Holder) int { return slices.Compare(a.KeyHash[:], b.KeyHash[:]) })
		logged(t, s, &want, what, unreturned, entries...)
		return expect
	}
	prove := func(key [32]byte, proof, now time.Time) func([]directory.Holder) (directory.HolderChange, error) {
		return func(hs []directory.Holder) (directory.HolderChange, error) {
			return directory.DecideProof(hs, directory.Proof{KeyHash: key, Time: proof, Label: l}, now, window), nil
		}
	}
	publish := func(key [32]byte, rid byte) {
		t.Helper()
		o := records[key]
		if o == nil {
			o = &owner{index: idx, label: l, key: key}
			records[key] = o
		}
		r := record(idx, recordID(rid), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
		r.Holder = key
		o.put(r)
		logged(t, s, &want, "PutRecord", putRecord(t, s, r, noLimit), stateEntry(t, l, key, o.records, r.Updated))
		i := slices.IndexFunc(model, func(m directory.Holder) bool { return m.KeyHash == key })
		model[i].Records = len(o.records)
	}
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

	apply("A's join", sec(0), prove(kA, sec(0), sec(0)))
	publish(kA, 1)
	publish(kA, 2)
	apply("B's join", sec(10), prove(kB, sec(10), sec(10)))
	publish(kB, 1)
	if ch := apply("A's re-proof", sec(20), prove(kA, sec(20), sec(20))); len(ch.Entries) != 1 {
		t.Fatalf("A's re-proof decided %d entries", len(ch.Entries))
	}
	apply("A's renewal", sec(21), prove(kA, sec(20), sec(21)))
	apply("C's join with a stale proof", sec(30), prove(kC, sec(15), sec(30)))
	publish(kC, 3)
	overdue := sec(10).Add(window)
	apply("nobody overdue yet", overdue.Add(-time.Second), func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideOverdue(hs, overdue.Add(-time.Second)), nil
	})
	// B's notice (from C's join, at 30 s) and C's run out together.
	overdue = sec(30).Add(window)
	if ch := apply("B's and C's retirement", overdue, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideOverdue(hs, overdue), nil
	}); len(ch.Retire) != 2 {
		t.Fatalf("retirement decided %+v", ch.Retire)
	}
	at := overdue.Add(time.Minute)
	apply("D's join", at, prove(kD, at, at))
	publish(kD, 4)
	// A, which joined first, proves the number again and evicts D (a key
	// may evict only keys that joined after it).
	apply("A's second re-proof", at.Add(time.Second), prove(kA, at.Add(time.Second), at.Add(time.Second)))
	if ch := apply("A evicts D", at.Add(2*time.Second), func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideEvict(hs, kA, kD, at.Add(2*time.Second))
	}); len(ch.Retire) != 1 || ch.Retire[0].Records != 1 {
		t.Fatalf("eviction decided %+v", ch.Retire)
	}
	checkHolders(t, s, idx, model...)
	var events []string
	for _, e := range raceEntries(t, s, 0) {
		if e.Kind == translog.Holder {
			events = append(events, fmt.Sprintf("%s %02x", e.Event, e.Key[0]))
		}
	}
	wantEvents := []string{"join a0", "join b0", "notice a0", "reproof a0", "join c0", "notice b0", "notice c0",
		"retire b0", "retire c0", "join d0", "notice a0", "reproof a0", "evict d0"}
	if !slices.Equal(events, wantEvents) {
		t.Errorf("holder events %q, want %q", events, wantEvents)
	}
	for k, revoked := range map[[32]byte]bool{kA: false, kB: true, kC: true, kD: true} {
		if got, err := s.KeyRevoked(ctx, k); err != nil || got != revoked {
			t.Errorf("KeyRevoked(%02x) = %v, %v; want %v", k[0], got, err, revoked)
		}
	}
	checkLog(t, s, &want)
}

// testLogDeleteExpiredHolders checks that DeleteExpiredRecords logs the
// State of each holder whose records it removed, in index then holder
// order, and not of a holder of the same index that lost none.
func testLogDeleteExpiredHolders(t *testing.T, open opener) {
	s := newStore(t, open)
	var want memLog
	l := label(0x13)
	i, j := index(0x13000000, 2), index(0x13000000, 1)
	kA, kB, kC := firstKey(0xa0), firstKey(0x0b), firstKey(0x5c)
	owners := map[[2]byte]*owner{}
	for _, x := range [][32]byte{i, j} {
		hs := []directory.Holder{
			{KeyHash: kA, FirstProof: t0, LastProof: t0, Label: l},
			{KeyHash: kB, FirstProof: t0, LastProof: t0, Label: l},
			{KeyHash: kC, FirstProof: t0, LastProof: t0, Label: l},
		}
		writeChange(t, s, 0, x, directory.HolderChange{Put: hs}, t0)
		for _, k := range [][32]byte{kA, kB, kC} {
			owners[[2]byte{x[4], k[0]}] = &owner{index: x, label: l, key: k}
		}
	}
	publish := func(x, key [32]byte, rid byte, expires time.Time) {
		t.Helper()
		o := owners[[2]byte{x[4], key[0]}]
		r := record(x, recordID(rid), acl.List{Visibility: acl.Public})
		r.Holder, r.Expires = key, expires
		o.put(r)
		logged(t, s, &want, "PutRecord", putRecord(t, s, r, noLimit), stateEntry(t, l, key, o.records, r.Updated))
	}
	soon := t0.Add(time.Minute)
	publish(i, kA, 1, soon)
	publish(i, kB, 1, soon)
	publish(i, kC, 1, t0.Add(time.Hour)) // stays
	publish(j, kA, 1, t0.Add(time.Hour))
	publish(j, kA, 2, soon)
	publish(j, kC, 1, t0.Add(time.Hour))
	n, err := s.DeleteExpiredRecords(t.Context(), soon)
	if err != nil || n != 3 {
		t.Fatalf("DeleteExpiredRecords = %d, %v; want 3", n, err)
	}
	expired := func(x, key [32]byte) []byte {
		o := owners[[2]byte{x[4], key[0]}]
		o.records = slices.DeleteFunc(o.records, func(r directory.Record) bool { return !r.Expires.After(soon) })
		return stateEntry(t, l, key, o.records, soon)
	}
	// j sorts before i; under i, B (0x0b) before A (0xa0).
	logged(t, s, &want, "DeleteExpiredRecords", unreturned, expired(j, kA), expired(i, kB), expired(i, kA))
	checkLog(t, s, &want)
}

// testHolderRecordIsolation checks that each write names one holder's
// record: a holder cannot change or delete a record id only another holder
// has, replacing its own leaves the other's, and a record id another
// holder has is new to it (so it counts against its limit).
func testHolderRecordIsolation(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	idx := index(0x45000000, 1)
	kA, kB := firstKey(0xa0), firstKey(0xb0)
	writeChange(t, s, 0, idx, directory.HolderChange{Put: []directory.Holder{
		{KeyHash: kA, FirstProof: t0, LastProof: t0}, {KeyHash: kB, FirstProof: t0, LastProof: t0}}}, t0)
	rec := func(key [32]byte, rid byte, ct string, l acl.List) directory.Record {
		r := record(idx, recordID(rid), l)
		r.Holder, r.Ciphertext = key, []byte(ct)
		return r
	}
	a1 := rec(kA, 1, "A1", acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
	a2 := rec(kA, 2, "A2", acl.List{Visibility: acl.Public})
	b1 := rec(kB, 1, "B1", acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p2}})
	b3 := rec(kB, 3, "B3", acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p1}})
	for _, r := range []directory.Record{a1, a2, b1, b3} {
		putRecord(t, s, r, 2)
	}
	// A is at its limit of 2: B's record id 3 is a new record for A.
	if _, err := s.Store.PutRecord(ctx, rec(kA, 3, "A3", acl.List{Visibility: acl.Public}), 2); !errors.Is(err, directory.ErrExhausted) {
		t.Errorf("PutRecord of another holder's record id by a holder at its limit: %v, want ErrExhausted", err)
	}
	if _, err := s.Store.SetACL(ctx, idx, kA, recordID(3), acl.List{Visibility: acl.Nobody}, t0); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("SetACL of a record id only another holder has: %v, want ErrNotFound", err)
	}
	if _, err := s.Store.DeleteRecord(ctx, idx, kA, recordID(3), t0); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("DeleteRecord of a record id only another holder has: %v, want ErrNotFound", err)
	}
	// A replaces its record 1 (at its limit: not new); B's stays.
	a1 = rec(kA, 1, "A1 again", acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p3}, Deny: []acl.Pseudonym{p2}})
	putRecord(t, s, a1, 2)
	want := []directory.Record{a1, b1, a2, b3}
	for _, caller := range callers {
		checkAll(t, s, caller, t0, want...)
	}
	checkHolders(t, s, idx,
		directory.Holder{KeyHash: kA, FirstProof: t0, LastProof: t0, Records: 2},
		directory.Holder{KeyHash: kB, FirstProof: t0, LastProof: t0, Records: 2})
}

// testRetireRace retires a holder while it publishes, round after round:
// each publish either happened before the retirement (and its record went
// with a tombstone) or was refused with ErrNotFound; no record of a holder
// without a row is left, and no State entry of it follows its retirement.
func testRetireRace(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	const rounds, puts = 8, 8
	l := label(0x46)
	for round := range rounds {
		idx := index(0x46000000, byte(round))
		kA, kB := firstKey(byte(2*round+1)), firstKey(byte(2*round+2))
		writeChange(t, s, 0, idx, directory.HolderChange{Put: []directory.Holder{
			{KeyHash: kA, FirstProof: t0, LastProof: t0, NoticeProof: t0.Add(time.Second), NoticeUntil: t0, Label: l},
			{KeyHash: kB, FirstProof: t0.Add(time.Second), LastProof: t0.Add(time.Second), Label: l}}}, t0)
		from := logTree(t, s).N
		var retired directory.HolderChange
		errs := concurrently(puts+1, func(i int) error {
			if i == puts {
				var err error
				retired, err = s.ChangeHolders(ctx, 0, idx, func(hs []directory.Holder) (directory.HolderChange, error) {
					return directory.DecideOverdue(hs, t0), nil
				}, t0)
				return err
			}
			r := record(idx, recordID(byte(i)), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
			r.Holder = kA
			_, err := s.Store.PutRecord(ctx, r, noLimit)
			return err
		})
		stored, refused := tally(t, errs[:puts], directory.ErrNotFound)
		if errs[puts] != nil {
			t.Fatalf("round %d: the retirement: %v", round, errs[puts])
		}
		if len(retired.Retire) != 1 || retired.Retire[0].KeyHash != kA {
			t.Fatalf("round %d: retired %+v, want A", round, retired.Retire)
		}
		if n := retired.Retire[0].Records; n != stored {
			t.Errorf("round %d: the retirement saw %d records of %d stored", round, n, stored)
		}
		t.Logf("round %d: %d stored, %d refused", round, stored, refused)
		if ts, err := s.Tombstones(ctx, idx); err != nil || len(ts) != stored {
			t.Errorf("round %d: %d publishes stored, %d refused, %d tombstones (%v); want one for each stored", round, stored, refused, len(ts), err)
		}
		checkHolders(t, s, idx, directory.Holder{KeyHash: kB, FirstProof: t0.Add(time.Second), LastProof: t0.Add(time.Second), Label: l})
		for _, c := range buckets(t, s, p1, t0, fullRange)[0] {
			if c.Index == idx {
				t.Errorf("round %d: a record of retired A is left", round)
			}
		}
		if got, err := s.Store.OwnerState(ctx, idx, kA); err != nil || len(got) != 0 {
			t.Errorf("round %d: OwnerState of retired A: %d records, %v", round, len(got), err)
		}
		// After the retire entry, A's empty State, and nothing more of A.
		es := raceEntries(t, s, from)
		i := slices.IndexFunc(es, func(e translog.Entry) bool { return e.Kind == translog.Holder && e.Event == translog.Retire })
		if i < 0 || i+1 >= len(es) || es[i+1].Kind != translog.State || es[i+1].Key != kA || es[i+1].Records != 0 {
			t.Fatalf("round %d: no retire entry followed by A's empty State", round)
		}
		for _, e := range es[i+2:] {
			t.Errorf("round %d: entry after A's retirement: %+v", round, e)
		}
		if len(es) != stored+2 {
			t.Errorf("round %d: %d entries, want a State entry per stored publish and 2 for the retirement", round, len(es))
		}
	}
}

// testManyJoins races many joins over a few indexes, each key with its own
// proof time: in every index the key with the latest proof is the one not
// on notice, every other is on notice exactly once, each join is logged
// once, and every joiner's record is kept.
func testManyJoins(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	const indexes = 4
	window := time.Hour
	now := t0.Add(time.Hour)
	l := label(0x47)
	idx := func(g int) [32]byte { return index(0x47000000, byte(g%indexes)) }
	proof := func(g int) time.Time { return t0.Add(time.Duration((g*7)%goroutines) * time.Second) } // distinct
	errs := concurrently(goroutines, func(g int) error {
		key := firstKey(byte(g + 1))
		_, err := s.ChangeHolders(ctx, 0, idx(g), func(hs []directory.Holder) (directory.HolderChange, error) {
			return directory.DecideProof(hs, directory.Proof{KeyHash: key, Time: proof(g), Label: l}, now, window), nil
		}, now)
		if err != nil {
			return err
		}
		r := record(idx(g), recordID(1), acl.List{Visibility: acl.Public})
		r.Holder = key
		_, err = s.Store.PutRecord(ctx, r, noLimit)
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	joins, notices := map[[32]byte]int{}, map[[32]byte]int{}
	for _, e := range raceEntries(t, s, 0) {
		switch {
		case e.Kind == translog.Holder && e.Event == translog.Join:
			joins[e.Key]++
		case e.Kind == translog.Holder && e.Event == translog.Notice:
			notices[e.Key]++
		case e.Kind == translog.Holder:
			t.Errorf("unexpected holder event %s of %02x", e.Event, e.Key[0])
		}
	}
	for i := range indexes {
		latest := -1
		for g := i; g < goroutines; g += indexes {
			if latest < 0 || proof(g).After(proof(latest)) {
				latest = g
			}
		}
		hs, err := s.Holders(ctx, idx(i))
		if err != nil || len(hs) != goroutines/indexes {
			t.Fatalf("index %d: %d holders, %v; want %d", i, len(hs), err, goroutines/indexes)
		}
		for _, h := range hs {
			g := int(h.KeyHash[0]) - 1
			wantNotice := g != latest
			if h.OnNotice() != wantNotice || (wantNotice && !h.NoticeUntil.Equal(now.Add(window))) ||
				!h.LastProof.Equal(proof(g)) || h.Records != 1 {
				t.Errorf("index %d: %s; want on notice %v, last proof %d, 1 record", i, describeHolder(h), wantNotice, proof(g).Sub(t0)/time.Second)
			}
			n := 0
			if wantNotice {
				n = 1
			}
			if joins[h.KeyHash] != 1 || notices[h.KeyHash] != n {
				t.Errorf("index %d: key %02x joined %d times, noticed %d; want once, %d", i, h.KeyHash[0], joins[h.KeyHash], notices[h.KeyHash], n)
			}
		}
	}
}
