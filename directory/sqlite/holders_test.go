package sqlite_test

import (
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

// TestHolderSet checks the engine's side of holder sets on SQLite, beside
// the shared conformance suite: records per holder, State entries per
// (index, holder) under that holder's label, retirement of one holder
// leaving the others' records, and the rows housekeeping reads.
func TestHolderSet(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db"))
	defer closeStore(t, s)
	ctx := t.Context()
	var index, ka, kb, la, lb [32]byte
	index[0], ka[0], kb[0], la[0], lb[0] = 0x50, 'a', 'b', 'A', 'B'
	size := func() int64 {
		tr, err := s.LogTree(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tr.N
	}
	entries := func(from int64) []*translog.Entry {
		t.Helper()
		raw, err := s.ReadLogEntries(ctx, from, size())
		if err != nil {
			t.Fatal(err)
		}
		var out []*translog.Entry
		for _, b := range raw {
			e, err := translog.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	put := func(hs ...directory.Holder) directory.HolderChange {
		t.Helper()
		ch, err := s.ChangeHolders(ctx, 3, index, func([]directory.Holder) (directory.HolderChange, error) {
			return directory.HolderChange{Put: hs}, nil
		}, now)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	put(directory.Holder{KeyHash: kb, FirstProof: now, LastProof: now, Label: lb},
		directory.Holder{KeyHash: ka, FirstProof: now.Add(-time.Hour), LastProof: now.Add(-time.Minute), Label: la})

	rec := func(holder [32]byte, id byte, l acl.List) directory.Record {
		r := directory.Record{Epoch: 3, Index: index, Holder: holder, Ciphertext: []byte{id}, ACL: l,
			Expires: now.Add(time.Hour), Updated: now}
		r.RecordID[0] = id
		return r
	}
	var stranger [32]byte
	stranger[0] = 's'
	if _, err := s.PutRecord(ctx, rec(stranger, 1, acl.List{}), 10); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("PutRecord by a key that holds nothing: %v, want ErrNotFound", err)
	}
	// The same app by both holders, and a second app by a: both stored.
	for _, r := range []directory.Record{rec(ka, 1, acl.List{Visibility: acl.Public}), rec(kb, 1, acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{pseudonym(1)}}), rec(ka, 2, acl.List{Visibility: acl.Public})} {
		from := size()
		pos, err := s.PutRecord(ctx, r, 2)
		if err != nil {
			t.Fatal(err)
		}
		es := entries(from)
		want := map[[32]byte][32]byte{ka: la, kb: lb}[r.Holder]
		if pos != from || len(es) != 1 || es[0].Kind != translog.State || es[0].Key != r.Holder || es[0].Label != want {
			t.Fatalf("PutRecord logged at %d (from %d): %+v; want one State under the holder's key and label", pos, from, es)
		}
	}
	if e := entries(size() - 1)[0]; e.Records != 2 {
		t.Errorf("a's State commits to %d records, want its own 2", e.Records)
	}
	if _, err := s.PutRecord(ctx, rec(ka, 3, acl.List{}), 2); !errors.Is(err, directory.ErrExhausted) {
		t.Errorf("a's third record with 2 per holder: %v, want ErrExhausted", err)
	}
	hs, err := s.Holders(ctx, index)
	if err != nil || len(hs) != 2 || hs[0].KeyHash != ka || hs[0].Records != 2 || hs[1].KeyHash != kb || hs[1].Records != 1 ||
		!hs[0].FirstProof.Equal(now.Add(-time.Hour)) || !hs[0].LastProof.Equal(now.Add(-time.Minute)) || hs[0].Label != la {
		t.Fatalf("Holders = %+v, %v", hs, err)
	}

	// b on notice: its record is hidden, a's are not; both are judged.
	until := now.Add(time.Hour)
	put(directory.Holder{KeyHash: kb, FirstProof: now, LastProof: now, NoticeProof: now.Add(time.Second), NoticeUntil: until, Label: lb})
	got, err := s.Buckets(ctx, 3, []directory.BucketRange{{Lo: 0x50000000, Hi: 0x50ffffff}}, pseudonym(1), now)
	if err != nil || len(got[0]) != 3 {
		t.Fatalf("Buckets: %v, %v", got, err)
	}
	want := []struct {
		id     byte
		holder [32]byte
		hidden bool
	}{{1, ka, false}, {1, kb, true}, {2, ka, false}}
	for i, c := range got[0] {
		w := want[i]
		if c.RecordID[0] != w.id || c.Holder != w.holder || c.Hidden != w.hidden || c.Allowed != (w.holder == kb) {
			t.Errorf("candidate %d: record %x holder %c hidden %v allowed %v, want %x %c %v", i, c.RecordID[0], c.Holder[0], c.Hidden, c.Allowed, w.id, w.holder[0], w.hidden)
		}
	}
	if !got[0][0].LastProof.Equal(now.Add(-time.Minute)) || !got[0][1].LastProof.Equal(now) {
		t.Errorf("last proofs %v, %v", got[0][0].LastProof, got[0][1].LastProof)
	}

	// Overdue: only at the notice's end, in epoch 3.
	for _, tt := range []struct {
		epoch int
		at    time.Time
		n     int
	}{{3, until.Add(-time.Second), 0}, {3, until, 1}, {2, until, 0}} {
		if idx, err := s.OverdueHolders(ctx, tt.epoch, tt.at, 10); err != nil || len(idx) != tt.n || (tt.n == 1 && idx[0] != index) {
			t.Errorf("OverdueHolders(epoch %d, %v) = %x, %v; want %d", tt.epoch, tt.at.Sub(until), idx, err, tt.n)
		}
	}

	// A decision that fails changes nothing.
	boom := errors.New("boom")
	if _, err := s.ChangeHolders(ctx, 3, index, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.HolderChange{Retire: hs}, boom
	}, now); !errors.Is(err, boom) {
		t.Errorf("ChangeHolders with a failing decision: %v", err)
	}

	// Retire b: its record goes with a tombstone, its key is revoked, its
	// row removed; the entries, then its empty State; a's records stay.
	from := size()
	ch, err := s.ChangeHolders(ctx, 3, index, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideOverdue(hs, until), nil
	}, until)
	if err != nil || len(ch.Retire) != 1 || ch.Retire[0].KeyHash != kb || ch.Retire[0].Records != 1 {
		t.Fatalf("retiring: %+v, %v", ch, err)
	}
	es := entries(from)
	if len(es) != 2 || es[0].Kind != translog.Holder || es[0].Event != translog.Retire || es[0].Key != kb || es[0].Retired != 1 ||
		es[1].Kind != translog.State || es[1].Key != kb || es[1].Label != lb || es[1].Records != 0 || !es[1].At.Equal(until) {
		t.Errorf("retirement logged %+v", es)
	}
	if revoked, err := s.KeyRevoked(ctx, kb); err != nil || !revoked {
		t.Errorf("retired key revoked: %v, %v", revoked, err)
	}
	ts, err := s.Tombstones(ctx, index)
	if err != nil || len(ts) != 1 || ts[0].KeyHash != kb || ts[0].RecordID[0] != 1 || !ts[0].Retired.Equal(until) {
		t.Errorf("tombstones %+v, %v", ts, err)
	}
	hs, err = s.Holders(ctx, index)
	if err != nil || len(hs) != 1 || hs[0].KeyHash != ka || hs[0].Records != 2 {
		t.Errorf("holders after retiring b: %+v, %v", hs, err)
	}
	if st, err := s.OwnerState(ctx, index, ka); err != nil || len(st) != 2 {
		t.Errorf("a's state after retiring b: %d records, %v", len(st), err)
	}

	// Expiry logs a's State; a retired epoch takes a's row too.
	from = size()
	if n, err := s.DeleteExpiredRecords(ctx, now.Add(2*time.Hour)); err != nil || n != 2 {
		t.Errorf("DeleteExpiredRecords = %d, %v", n, err)
	}
	if es := entries(from); len(es) != 1 || es[0].Key != ka || es[0].Records != 0 {
		t.Errorf("expiry logged %+v", es)
	}
	if n, err := s.DeleteEpochsBefore(ctx, 3, now); err != nil || n != 0 {
		t.Errorf("DeleteEpochsBefore(3) = %d, %v", n, err)
	}
	if hs, _ := s.Holders(ctx, index); len(hs) != 1 {
		t.Errorf("epoch 3's holders after DeleteEpochsBefore(3): %d", len(hs))
	}
	if n, err := s.DeleteEpochsBefore(ctx, 4, now); err != nil || n != 0 {
		t.Errorf("DeleteEpochsBefore(4) = %d, %v", n, err)
	}
	if hs, _ := s.Holders(ctx, index); len(hs) != 0 {
		t.Errorf("epoch 3's holders after DeleteEpochsBefore(4): %+v", hs)
	}
}

// TestConcurrentJoins joins many keys to one index at once: each decision
// sees the holders the one before it left, so none is lost.
func TestConcurrentJoins(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db"))
	defer closeStore(t, s)
	var index [32]byte
	index[0] = 0x60
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			var k [32]byte
			k[0] = byte(i)
			_, errs[i] = s.ChangeHolders(t.Context(), 0, index, func(hs []directory.Holder) (directory.HolderChange, error) {
				// Each join puts every holder before it on notice, as
				// DecideProof would: a lost update would lose a row.
				var ch directory.HolderChange
				for _, h := range hs {
					if !h.OnNotice() {
						h.NoticeUntil = now.Add(time.Hour)
						ch.Put = append(ch.Put, h)
					}
				}
				ch.Put = append(ch.Put, directory.Holder{KeyHash: k, FirstProof: now, LastProof: now})
				return ch, nil
			}, now)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	hs, err := s.Holders(t.Context(), index)
	if err != nil || len(hs) != n {
		t.Fatalf("%d holders after %d concurrent joins, %v", len(hs), n, err)
	}
	if on := slices.IndexFunc(hs, func(h directory.Holder) bool { return !h.OnNotice() }); on < 0 ||
		slices.ContainsFunc(hs[on+1:], func(h directory.Holder) bool { return !h.OnNotice() }) {
		t.Errorf("want exactly one holder (the last to join) not on notice: %+v", hs)
	}
}

// TestDeleteEpochsBeforeSweepsHolders: a retired epoch's holder rows go,
// over several batches, and the current epoch's stay, interleaved in key
// order as they are.
func TestDeleteEpochsBeforeSweepsHolders(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db"))
	defer closeStore(t, s)
	ctx := t.Context()
	const n = 2500 // more than two batches
	var key [32]byte
	key[0] = 'k'
	for i := range n {
		var idx [32]byte
		idx[0], idx[1] = byte(i>>8), byte(i)
		_, err := s.ChangeHolders(ctx, i%2, idx, func([]directory.Holder) (directory.HolderChange, error) {
			return directory.HolderChange{Put: []directory.Holder{{KeyHash: key, FirstProof: now, LastProof: now}}}, nil
		}, now)
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteEpochsBefore(ctx, 1, now); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var idx [32]byte
		idx[0], idx[1] = byte(i>>8), byte(i)
		hs, err := s.Holders(ctx, idx)
		if err != nil {
			t.Fatal(err)
		}
		if want := i % 2; len(hs) != want {
			t.Fatalf("index %d of epoch %d: %d holders after DeleteEpochsBefore(1), want %d", i, i%2, len(hs), want)
		}
	}
	// A row of the retired epoch written since is swept by the next call.
	var late [32]byte
	late[0] = 0xee
	hold(t, s, late, key)
	if _, err := s.DeleteEpochsBefore(ctx, 1, now); err != nil {
		t.Fatal(err)
	}
	if hs, err := s.Holders(ctx, late); err != nil || len(hs) != 0 {
		t.Errorf("a late epoch 0 row after the second DeleteEpochsBefore(1): %+v, %v", hs, err)
	}
}
