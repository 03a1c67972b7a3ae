package storetest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

// The transparency log (translog.Storage, and the entries the store
// appends for its own changes).
//
// The tests expect exact bytes: every entry is built here from the fields
// docs/protocol.md gives and what the test published, never read back from
// the store, so two stores that pass produce the same log for the same
// calls.

// memLog is the log as the tests expect it: entries and the tlog hashes a
// store must hold for them, computed here.
type memLog struct {
	entries [][]byte
	hashes  []tlog.Hash
}

func (m *memLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("memLog: no hash %d", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memLog) add(t *testing.T, entries ...[]byte) {
	t.Helper()
	for _, e := range entries {
		hs, err := tlog.StoredHashes(int64(len(m.entries)), e, m)
		if err != nil {
			t.Fatalf("tlog.StoredHashes: %v", err)
		}
		m.entries = append(m.entries, e)
		m.hashes = append(m.hashes, hs...)
	}
}

func (m *memLog) size() int64 { return int64(len(m.entries)) }

// tree returns the tree of the first n entries.
func (m *memLog) tree(t *testing.T, n int64) tlog.Tree {
	t.Helper()
	if n == 0 {
		return tlog.Tree{}
	}
	h, err := tlog.TreeHash(n, m)
	if err != nil {
		t.Fatalf("tlog.TreeHash: %v", err)
	}
	return tlog.Tree{N: n, Hash: h}
}

// storeHashes reads s's stored hashes for tlog.
func storeHashes(t *testing.T, s single) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return s.ReadLogHashes(t.Context(), indexes)
	})
}

func logTree(t *testing.T, s single) tlog.Tree {
	t.Helper()
	tree, err := s.LogTree(t.Context())
	if err != nil {
		t.Fatalf("LogTree: %v", err)
	}
	return tree
}

// checkLog checks that s holds exactly want's entries, its stored hashes
// and its tree, and that every entry is a well-formed translog entry.
func checkLog(t *testing.T, s single, want *memLog) {
	t.Helper()
	tree := logTree(t, s)
	if tree != want.tree(t, want.size()) {
		t.Errorf("LogTree = %d %v, want %d %v", tree.N, tree.Hash, want.size(), want.tree(t, want.size()).Hash)
	}
	got, err := s.ReadLogEntries(t.Context(), 0, tree.N)
	if err != nil {
		t.Fatalf("ReadLogEntries(0, %d): %v", tree.N, err)
	}
	for i, e := range got {
		if _, err := translog.Parse(e); err != nil {
			t.Errorf("entry %d is not a well-formed entry (%v):\n%s", i, err, e)
		}
		if i < len(want.entries) && !bytes.Equal(e, want.entries[i]) {
			t.Errorf("entry %d =\n%s\nwant\n%s", i, e, want.entries[i])
		}
	}
	if len(got) != len(want.entries) {
		t.Fatalf("log has %d entries, want %d", len(got), len(want.entries))
	}
	indexes := make([]int64, len(want.hashes))
	for i := range indexes {
		indexes[i] = int64(i)
	}
	hs, err := s.ReadLogHashes(t.Context(), indexes)
	if err != nil {
		t.Fatalf("ReadLogHashes(all %d): %v", len(indexes), err)
	}
	if !slices.Equal(hs, want.hashes) {
		t.Errorf("stored hashes differ from tlog's")
	}
}

// appendLog appends entries and checks where they went.
func appendLog(t *testing.T, s single, want *memLog, entries ...[]byte) {
	t.Helper()
	first, err := s.AppendLog(t.Context(), entries...)
	if err != nil {
		t.Fatalf("AppendLog of %d entries: %v", len(entries), err)
	}
	if first != want.size() {
		t.Errorf("AppendLog returned index %d, want %d", first, want.size())
	}
	want.add(t, entries...)
	if tree := logTree(t, s); tree != want.tree(t, want.size()) {
		t.Errorf("after AppendLog: LogTree = %d %v, want %d %v", tree.N, tree.Hash, want.size(), want.tree(t, want.size()).Hash)
	}
}

func marshal(t *testing.T, e translog.Entry) []byte {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", e, err)
	}
	return b
}

// keyEntry returns a distinct valid entry for each n (an OPRF key entry),
// for the tests of AppendLog itself.
func keyEntry(t *testing.T, n int) []byte {
	return marshal(t, translog.Entry{Kind: translog.OPRFKey, Info: fmt.Sprintf("storetest %d", n),
		PublicKey: bytes.Repeat([]byte{byte(n), 0x00, 0xff}, 11)})
}

func credentialEntry(t *testing.T, n byte) []byte {
	e := translog.Entry{Kind: translog.Credential, NotBefore: t0, NotAfter: t0.Add(24 * time.Hour)}
	e.Label[0], e.Cert[0], e.Key[0], e.Issuer[0] = 'l', 'c', 'k', 'i'
	e.Label[31], e.Cert[31], e.Key[31] = n, n, n
	return marshal(t, e)
}

// label returns a distinct log label for each n.
func label(n byte) [32]byte {
	var l [32]byte
	l[0], l[1], l[31] = 'L', 0xff, n
	return l
}

func keyHash(n byte) [32]byte {
	var k [32]byte
	k[0], k[31] = 'K', n
	return k
}

// joinEntry is the Holder entry for key joining label's number with its
// proof at proof.
func joinEntry(t *testing.T, l, key [32]byte, proof time.Time) []byte {
	return marshal(t, translog.Entry{Kind: translog.Holder, Label: l, Key: key, Event: translog.Join, Proof: proof})
}

// stateEntry is the State entry a holder key expects at at for the records
// it published (expired or not).
func stateEntry(t *testing.T, l, key [32]byte, published []directory.Record, at time.Time) []byte {
	t.Helper()
	b, err := marshalState(l, key, published, at)
	if err != nil {
		t.Fatalf("State entry: %v", err)
	}
	return b
}

func marshalState(l, key [32]byte, published []directory.Record, at time.Time) ([]byte, error) {
	return translog.StateEntry(l, key, stateRecords(published), at)
}

// stateRecords is what a State entry covers of records.
func stateRecords(records []directory.Record) []translog.StateRecord {
	var rs []translog.StateRecord
	for _, r := range records {
		rs = append(rs, translog.StateRecord{RecordID: r.RecordID, CiphertextSHA256: sha256.Sum256(r.Ciphertext),
			Expires: r.Expires, ACL: r.ACL})
	}
	return rs
}

// owner is what a test published under one index, in publishing order,
// as the holder key.
type owner struct {
	index   [32]byte
	label   [32]byte
	key     [32]byte
	records []directory.Record
}

func (o *owner) put(r directory.Record) {
	if i := slices.IndexFunc(o.records, func(x directory.Record) bool { return x.RecordID == r.RecordID }); i >= 0 {
		o.records[i] = r
		return
	}
	o.records = append(o.records, r)
}

func (o *owner) setACL(rid [32]byte, l acl.List) {
	i := slices.IndexFunc(o.records, func(x directory.Record) bool { return x.RecordID == rid })
	o.records[i].ACL = l
}

func (o *owner) remove(rid [32]byte) {
	o.records = slices.DeleteFunc(o.records, func(x directory.Record) bool { return x.RecordID == rid })
}

// claim makes key the first holder of o's index (DecideProof's join, with
// o's label), and adds the Holder entry that logs to want.
func claim(t *testing.T, s single, want *memLog, o *owner, key [32]byte) {
	t.Helper()
	if _, err := s.ChangeHolders(t.Context(), 0, o.index, joinAt(key, o.label, t0), t0); err != nil {
		t.Fatalf("join: %v", err)
	}
	o.key = key
	want.add(t, joinEntry(t, o.label, key, t0))
}

// joinAt decides a proof by key at proof, as the server would.
func joinAt(key, label [32]byte, proof time.Time) func([]directory.Holder) (directory.HolderChange, error) {
	return func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideProof(hs, directory.Proof{KeyHash: key, Time: proof, Label: label}, proof, time.Hour), nil
	}
}

// unreturned is logged's pos for a write that returns no log index.
const unreturned = math.MinInt64

// logged checks that a write appended exactly entries, and that it
// returned pos, the log index of the last of them (-1 for none), unless pos
// is unreturned.
func logged(t *testing.T, s single, want *memLog, what string, pos int64, entries ...[]byte) {
	t.Helper()
	want.add(t, entries...)
	wantPos := want.size() - 1
	if len(entries) == 0 {
		wantPos = -1
	}
	if pos != unreturned && pos != wantPos {
		t.Errorf("%s returned log index %d, want %d", what, pos, wantPos)
	}
	tree := logTree(t, s)
	if tree.N != want.size() {
		t.Fatalf("%s: log size %d, want %d", what, tree.N, want.size())
	}
	if tree != want.tree(t, want.size()) {
		t.Errorf("%s: LogTree hash %v, want %v", what, tree.Hash, want.tree(t, want.size()).Hash)
	}
	if len(entries) == 0 {
		return
	}
	got, err := s.ReadLogEntries(t.Context(), want.size()-int64(len(entries)), want.size())
	if err != nil {
		t.Fatalf("%s: ReadLogEntries: %v", what, err)
	}
	for i := range entries {
		if !bytes.Equal(got[i], entries[i]) {
			t.Errorf("%s: logged\n%s\nwant\n%s", what, got[i], entries[i])
		}
	}
}

// checkUndisclosed checks that no entry holds any of secrets, raw or in
// base64: entries name owners only by their label.
func checkUndisclosed(t *testing.T, s single, secrets map[string][]byte) {
	t.Helper()
	tree := logTree(t, s)
	entries, err := s.ReadLogEntries(t.Context(), 0, tree.N)
	if err != nil {
		t.Fatalf("ReadLogEntries: %v", err)
	}
	for i, e := range entries {
		for what, v := range secrets {
			if bytes.Contains(e, v) || bytes.Contains(e, []byte(base64.StdEncoding.EncodeToString(v))) {
				t.Errorf("entry %d holds the %s:\n%s", i, what, e)
			}
		}
	}
}

func testLog(t *testing.T, open opener) {
	t.Run("Empty", func(t *testing.T) {
		s := newStore(t, open)
		if tree := logTree(t, s); tree != (tlog.Tree{}) {
			t.Errorf("LogTree of an empty log = %d %v, want size 0 and the zero hash", tree.N, tree.Hash)
		}
		if es, err := s.ReadLogEntries(t.Context(), 0, 0); err != nil || len(es) != 0 {
			t.Errorf("ReadLogEntries(0, 0) = %d entries, %v", len(es), err)
		}
		if _, err := s.ReadLogEntries(t.Context(), 0, 1); err == nil {
			t.Error("ReadLogEntries(0, 1) of an empty log succeeded")
		}
		if _, err := s.ReadLogHashes(t.Context(), []int64{0}); err == nil {
			t.Error("ReadLogHashes([0]) of an empty log succeeded")
		}
		if c, err := s.LatestCheckpoint(t.Context()); err != nil || c != nil {
			t.Errorf("LatestCheckpoint of an empty log = %q, %v; want nil", c, err)
		}
	})

	t.Run("Append", func(t *testing.T) {
		s := newStore(t, open)
		var want memLog
		// 40 entries in batches of 1 to 4, so that batches straddle the
		// complete subtrees at 2, 4, 8, 16 and 32.
		n := 0
		for batch := 1; n < 40; batch = batch%4 + 1 {
			var es [][]byte
			for range min(batch, 40-n) {
				es = append(es, keyEntry(t, n))
				n++
			}
			appendLog(t, s, &want, es...)
		}
		checkLog(t, s, &want)
		tree := logTree(t, s)

		// Every entry proves against the tree, from the store's hashes.
		hr := storeHashes(t, s)
		for i := range tree.N {
			p, err := tlog.ProveRecord(tree.N, i, hr)
			if err != nil {
				t.Fatalf("ProveRecord(%d, %d): %v", tree.N, i, err)
			}
			if err := tlog.CheckRecord(p, tree.N, tree.Hash, i, tlog.RecordHash(want.entries[i])); err != nil {
				t.Errorf("CheckRecord of entry %d: %v", i, err)
			}
			// A proof does not prove another entry there.
			if err := tlog.CheckRecord(p, tree.N, tree.Hash, i, tlog.RecordHash(want.entries[(i+1)%tree.N])); err == nil {
				t.Errorf("CheckRecord of entry %d accepted entry %d", i, (i+1)%tree.N)
			}
		}
		// Every smaller tree is a prefix of it.
		for m := int64(1); m < tree.N; m++ {
			p, err := tlog.ProveTree(tree.N, m, hr)
			if err != nil {
				t.Fatalf("ProveTree(%d, %d): %v", tree.N, m, err)
			}
			if err := tlog.CheckTree(p, tree.N, tree.Hash, m, want.tree(t, m).Hash); err != nil {
				t.Errorf("CheckTree(%d, %d): %v", tree.N, m, err)
			}
		}

		// Ranges of entries, and what is not there.
		for _, r := range [][2]int64{{0, 1}, {3, 7}, {16, 32}, {39, 40}, {40, 40}} {
			got, err := s.ReadLogEntries(t.Context(), r[0], r[1])
			if err != nil || !slices.EqualFunc(got, want.entries[r[0]:r[1]], bytes.Equal) {
				t.Errorf("ReadLogEntries(%d, %d) = %d entries, %v; want %d", r[0], r[1], len(got), err, r[1]-r[0])
			}
		}
		for _, r := range [][2]int64{{0, 41}, {39, 41}, {40, 41}, {-1, 1}} {
			if _, err := s.ReadLogEntries(t.Context(), r[0], r[1]); err == nil {
				t.Errorf("ReadLogEntries(%d, %d) past the log succeeded", r[0], r[1])
			}
		}
		if _, err := s.ReadLogHashes(t.Context(), []int64{0, tlog.StoredHashCount(tree.N)}); err == nil {
			t.Error("ReadLogHashes of a hash past the log succeeded")
		}
		// Any order, and repeats.
		idx := []int64{7, 0, 7, 3}
		got, err := s.ReadLogHashes(t.Context(), idx)
		if err != nil {
			t.Fatalf("ReadLogHashes(%v): %v", idx, err)
		}
		for i, x := range idx {
			if got[i] != want.hashes[x] {
				t.Errorf("ReadLogHashes(%v)[%d] = %v, want %v", idx, i, got[i], want.hashes[x])
			}
		}
	})

	t.Run("AppendAtomic", func(t *testing.T) {
		s := newStore(t, open)
		var want memLog
		appendLog(t, s, &want, keyEntry(t, 0))
		tooLarge := bytes.Repeat([]byte{'x'}, translog.MaxEntrySize+1)
		if _, err := s.AppendLog(t.Context(), keyEntry(t, 1), tooLarge); err == nil {
			t.Error("AppendLog with an entry over MaxEntrySize succeeded")
		}
		checkLog(t, s, &want) // nothing of the refused batch
		appendLog(t, s, &want, keyEntry(t, 2))
		checkLog(t, s, &want)
	})

	t.Run("Checkpoint", func(t *testing.T) {
		s := newStore(t, open)
		latest := func(want string) {
			t.Helper()
			got, err := s.LatestCheckpoint(t.Context())
			if err != nil || string(got) != want {
				t.Errorf("LatestCheckpoint = %q, %v; want %q", got, err, want)
			}
		}
		save := func(size int64, c string) {
			t.Helper()
			if err := s.SaveCheckpoint(t.Context(), size, []byte(c)); err != nil {
				t.Fatalf("SaveCheckpoint(%d): %v", size, err)
			}
		}
		save(5, "five\n\x00\xff")
		latest("five\n\x00\xff")
		save(3, "three") // smaller: ignored
		latest("five\n\x00\xff")
		save(5, "five, cosigned") // the same size: the newer one, with more cosignatures
		latest("five, cosigned")
		save(9, "nine")
		latest("nine")
		save(0, "zero")
		latest("nine")
		// Concurrent publishers: the largest wins, whatever the order.
		errs := concurrently(goroutines, func(i int) error {
			size := int64(10 + (i*7)%goroutines) // every size in [10, 10+goroutines) once
			return s.SaveCheckpoint(t.Context(), size, fmt.Appendf(nil, "size %d", size))
		})
		if ok, _ := tally(t, errs, nil); ok != goroutines {
			t.Errorf("%d of %d concurrent SaveCheckpoint succeeded", ok, goroutines)
		}
		latest(fmt.Sprintf("size %d", 10+goroutines-1))
		// Checkpoints are not entries.
		if tree := logTree(t, s); tree.N != 0 {
			t.Errorf("SaveCheckpoint changed the log: size %d", tree.N)
		}
	})

	t.Run("States", func(t *testing.T) { testLogStates(t, open) })
	t.Run("NoHolder", func(t *testing.T) { testLogNoHolder(t, open) })
	t.Run("Holders", func(t *testing.T) { testLogHolders(t, open) })
	t.Run("DeleteExpiredRecords", func(t *testing.T) { testLogDeleteExpired(t, open) })
	t.Run("FinishVerification", func(t *testing.T) { testFinishVerification(t, open) })
	t.Run("OwnerState", func(t *testing.T) { testOwnerState(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testLogConcurrent(t, open) })
}

// testLogStates checks the State entry of each write of a held index
// against the commitment the owner computes from what it published.
func testLogStates(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	var want memLog
	o := &owner{index: index(0x5ade, 1), label: label(1)}
	claim(t, s, &want, o, keyHash(1))

	put := func(r directory.Record, what string) {
		t.Helper()
		pos := putRecord(t, s, r, 3)
		o.put(r)
		logged(t, s, &want, what, pos, stateEntry(t, o.label, o.key, o.records, r.Updated))
	}
	r1 := record(o.index, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p3, p1}, Deny: []acl.Pseudonym{p2}})
	put(r1, "PutRecord of a first record")
	r2 := record(o.index, recordID(2), acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p4}})
	r2.Updated = t0.Add(time.Minute)
	put(r2, "PutRecord of a second record")
	// Records expired at the entry's time are not committed to.
	r3 := record(o.index, recordID(3), acl.List{Visibility: acl.Nobody})
	r3.Expires, r3.Updated = t0.Add(2*time.Minute), t0.Add(2*time.Minute)
	put(r3, "PutRecord of a record expiring at once")
	r1.Ciphertext = []byte("replaced")
	r1.ACL = acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p5, p4, p1}}
	r1.Updated = t0.Add(3 * time.Minute)
	put(r1, "PutRecord replacing a record")

	// Refused writes log nothing.
	r4 := record(o.index, recordID(4), acl.List{Visibility: acl.Public})
	if pos, err := s.PutRecord(ctx, r4, 3); !errors.Is(err, directory.ErrExhausted) {
		t.Fatalf("PutRecord over maxPerIndex = %d, %v; want ErrExhausted", pos, err)
	}
	logged(t, s, &want, "refused PutRecord", unreturned)
	if _, err := s.SetACL(ctx, o.index, recordID(9), acl.List{}, t0); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("SetACL of a missing record: %v, want ErrNotFound", err)
	}
	logged(t, s, &want, "refused SetACL", unreturned)
	if _, err := s.DeleteRecord(ctx, o.index, recordID(9), t0); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("DeleteRecord of a missing record: %v, want ErrNotFound", err)
	}
	logged(t, s, &want, "refused DeleteRecord", unreturned)

	at := t0.Add(4 * time.Minute)
	for _, l := range []acl.List{
		{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p2}, Deny: []acl.Pseudonym{p1, p3}},
		{Visibility: acl.Public},
		{},
	} {
		pos, err := s.SetACL(ctx, o.index, r2.RecordID, l, at)
		if err != nil {
			t.Fatalf("SetACL: %v", err)
		}
		o.setACL(r2.RecordID, l)
		logged(t, s, &want, fmt.Sprintf("SetACL(%+v)", l), pos, stateEntry(t, o.label, o.key, o.records, at))
	}
	for _, rid := range [][32]byte{r1.RecordID, r3.RecordID, r2.RecordID} {
		at = at.Add(time.Second)
		pos, err := s.DeleteRecord(ctx, o.index, rid, at)
		if err != nil {
			t.Fatalf("DeleteRecord: %v", err)
		}
		o.remove(rid)
		logged(t, s, &want, fmt.Sprintf("DeleteRecord of %x", rid[:2]), pos, stateEntry(t, o.label, o.key, o.records, at))
	}
	if e := want.entries[want.size()-1]; !bytes.Contains(e, []byte("\nrecords 0\n")) {
		t.Errorf("the last State entry is not of an empty index:\n%s", e)
	}
	checkLog(t, s, &want)
	checkUndisclosed(t, s, map[string][]byte{
		"index": o.index[:], "record id": r1.RecordID[:], "ciphertext": r2.Ciphertext,
		"allowed pseudonym": p1[:], "denied pseudonym": p2[:],
	})
}

// testLogNoHolder checks that writes under an index without a holder, which
// has no label to name it, append nothing.
func testLogNoHolder(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	var want memLog
	held := &owner{index: index(0x40, 1), label: label(1)}
	claim(t, s, &want, held, keyHash(1))
	idx := index(0x40, 2)
	r := record(idx, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
	logged(t, s, &want, "PutRecord without a holder", putRecord(t, s, r, noLimit))
	pos, err := s.SetACL(ctx, idx, r.RecordID, acl.List{Visibility: acl.Public}, t0)
	if err != nil {
		t.Fatalf("SetACL: %v", err)
	}
	logged(t, s, &want, "SetACL without a holder", pos)
	pos, err = s.DeleteRecord(ctx, idx, r.RecordID, t0)
	if err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	logged(t, s, &want, "DeleteRecord without a holder", pos)
	expiring := record(idx, recordID(2), acl.List{Visibility: acl.Public})
	expiring.Expires = t0
	logged(t, s, &want, "PutRecord without a holder", putRecord(t, s, expiring, noLimit))
	if n, err := s.DeleteExpiredRecords(ctx, t0); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredRecords = %d, %v; want 1", n, err)
	}
	logged(t, s, &want, "DeleteExpiredRecords without a holder", unreturned)
	checkLog(t, s, &want)
}

// testLogHolders checks that ChangeHolders appends the decision's Holder
// entries in order, then the State entry of each retired holder's emptied
// records, and nothing for a change that logs nothing.
func testLogHolders(t *testing.T, open opener) {
	s := newStore(t, open)
	var want memLog
	o := &owner{index: index(0x10000000, 1), label: label(7)}
	keyA, keyB := keyHash(0xa), keyHash(0xb)
	window := time.Hour
	apply := func(what string, now time.Time, decide func([]directory.Holder) (directory.HolderChange, error), extra ...[]byte) {
		t.Helper()
		ch, err := s.ChangeHolders(t.Context(), 0, o.index, decide, now)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		logged(t, s, &want, what, unreturned, append(slices.Clone(ch.Entries), extra...)...)
	}
	prove := func(key [32]byte, proof, now time.Time) func([]directory.Holder) (directory.HolderChange, error) {
		return func(hs []directory.Holder) (directory.HolderChange, error) {
			return directory.DecideProof(hs, directory.Proof{KeyHash: key, Time: proof, Label: o.label}, now, window), nil
		}
	}
	apply("a's join", t0, prove(keyA, t0, t0))
	o.key = keyA
	// The same proof again (a renewal) logs nothing.
	apply("a's renewal", t0, prove(keyA, t0, t0))
	r1 := record(o.index, recordID(1), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
	r2 := record(o.index, recordID(2), acl.List{Visibility: acl.Public})
	for _, r := range []directory.Record{r1, r2} {
		o.put(r)
		logged(t, s, &want, "PutRecord", putRecord(t, s, r, noLimit), stateEntry(t, o.label, o.key, o.records, r.Updated))
	}
	// b's later proof: its join, then a's notice.
	at := t0.Add(time.Minute)
	apply("b's join", at, prove(keyB, at, at))
	checkLog(t, s, &want)
	events := func() []translog.HolderEvent {
		entries, err := s.ReadLogEntries(t.Context(), 0, logTree(t, s).N)
		if err != nil {
			t.Fatal(err)
		}
		var out []translog.HolderEvent
		for _, b := range entries {
			if e, err := translog.Parse(b); err == nil && e.Kind == translog.Holder {
				out = append(out, e.Event)
			}
		}
		return out
	}
	if got := events(); fmt.Sprint(got) != "[join join notice]" {
		t.Errorf("holder events %v, want [join join notice]", got)
	}
	// a's notice runs out: its retire entry, then the State entry of its
	// emptied records, under its key.
	at = at.Add(window)
	apply("a's retirement", at, func(hs []directory.Holder) (directory.HolderChange, error) {
		return directory.DecideOverdue(hs, at), nil
	}, stateEntry(t, o.label, keyA, nil, at))
	if got := events(); fmt.Sprint(got) != "[join join notice retire]" {
		t.Errorf("holder events %v, want [join join notice retire]", got)
	}
	// Another index's first holder.
	other := &owner{index: index(0x10000000, 2), label: label(8)}
	claim(t, s, &want, other, keyA)
	checkLog(t, s, &want)
	checkUndisclosed(t, s, map[string][]byte{"index": o.index[:], "other index": other.index[:]})
}

// testLogDeleteExpired checks that DeleteExpiredRecords logs the State of
// each held index it changed, once, in index order.
func testLogDeleteExpired(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	var want memLog
	// i sorts after j, and its records expire first.
	i := &owner{index: index(0x90, 1), label: label(1)}
	j := &owner{index: index(0x20, 1), label: label(2)}
	untouched := &owner{index: index(0x30, 1), label: label(3)}
	for n, o := range []*owner{i, j, untouched} {
		claim(t, s, &want, o, keyHash(byte(n)))
	}
	unheld := index(0x25, 1)
	publish := func(o *owner, rid byte, expires time.Time) {
		t.Helper()
		r := record(o.index, recordID(rid), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}, Deny: []acl.Pseudonym{p2}})
		r.Expires = expires
		o.put(r)
		logged(t, s, &want, "PutRecord", putRecord(t, s, r, noLimit), stateEntry(t, o.label, o.key, o.records, r.Updated))
	}
	publish(i, 1, t0.Add(-time.Hour))
	publish(i, 2, t0.Add(-time.Minute))
	publish(i, 3, t0.Add(time.Second))
	publish(i, 4, t0.Add(time.Hour))
	publish(j, 1, t0)
	publish(j, 2, t0.Add(time.Hour))
	publish(untouched, 1, t0.Add(time.Hour))
	past := record(unheld, recordID(1), acl.List{Visibility: acl.Public})
	past.Expires = t0.Add(-2 * time.Hour)
	putRecord(t, s, past, noLimit)

	removeExpired := func(o *owner, now time.Time) {
		o.records = slices.DeleteFunc(o.records, func(r directory.Record) bool { return !r.Expires.After(now) })
	}
	sweep := func(now time.Time, n int, changed ...*owner) {
		t.Helper()
		got, err := s.DeleteExpiredRecords(ctx, now)
		if err != nil || got != n {
			t.Fatalf("DeleteExpiredRecords(%v) = %d, %v; want %d", now.Unix(), got, err, n)
		}
		var es [][]byte
		for _, o := range changed {
			removeExpired(o, now)
			es = append(es, stateEntry(t, o.label, o.key, o.records, now))
		}
		logged(t, s, &want, fmt.Sprintf("DeleteExpiredRecords(%v)", now.Unix()), unreturned, es...)
	}
	sweep(t0, 4, j, i) // j's index sorts first
	sweep(t0, 0)
	sweep(t0.Add(time.Second-time.Nanosecond), 0)
	sweep(t0.Add(time.Second), 1, i)
	checkLog(t, s, &want)
}

func testFinishVerification(t *testing.T, open opener) {
	t.Run("Logs", func(t *testing.T) {
		s := newStore(t, open)
		ctx := t.Context()
		var want memLog
		appendLog(t, s, &want, keyEntry(t, 0))
		v1, v2, v3 := verification(1), verification(2), verification(3)
		for _, v := range []ca.Verification{v1, v2, v3} {
			createVerification(t, s, v)
		}
		e := credentialEntry(t, 1)
		pos, err := s.FinishVerification(ctx, v1.ID, e)
		if err != nil {
			t.Fatalf("FinishVerification: %v", err)
		}
		logged(t, s, &want, "FinishVerification", pos, e)
		checkNoVerification(t, s, v1.ID)
		checkVerification(t, s, v2)

		// A verification is finished once; an unknown one not at all.
		for _, id := range [][16]byte{v1.ID, verification(4).ID} {
			if _, err := s.FinishVerification(ctx, id, credentialEntry(t, 9)); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("FinishVerification of a missing verification: %v, want ErrNotFound", err)
			}
			logged(t, s, &want, "refused FinishVerification", unreturned)
		}

		// Without an entry it only deletes.
		pos, err = s.FinishVerification(ctx, v2.ID, nil)
		if err != nil {
			t.Fatalf("FinishVerification with no entry: %v", err)
		}
		logged(t, s, &want, "FinishVerification with no entry", pos)
		checkNoVerification(t, s, v2.ID)

		// An entry that cannot be logged leaves the verification in place.
		tooLarge := bytes.Repeat([]byte{'x'}, translog.MaxEntrySize+1)
		if _, err := s.FinishVerification(ctx, v3.ID, tooLarge); err == nil {
			t.Error("FinishVerification with an entry over MaxEntrySize succeeded")
		}
		logged(t, s, &want, "failed FinishVerification", unreturned)
		checkVerification(t, s, v3)
		checkLog(t, s, &want)
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t, open)
		v := verification(1)
		createVerification(t, s, v)
		entries := make([][]byte, goroutines)
		for i := range entries {
			entries[i] = credentialEntry(t, byte(i))
		}
		pos := make([]int64, goroutines)
		errs := concurrently(goroutines, func(i int) error {
			var err error
			pos[i], err = s.FinishVerification(t.Context(), v.ID, entries[i])
			return err
		})
		if ok, notFound := tally(t, errs, directory.ErrNotFound); ok != 1 || notFound != goroutines-1 {
			t.Fatalf("%d concurrent FinishVerification: %d succeeded, %d ErrNotFound; want 1 and %d",
				goroutines, ok, notFound, goroutines-1)
		}
		i := slices.Index(errs, nil)
		if pos[i] != 0 {
			t.Errorf("the successful FinishVerification returned index %d, want 0", pos[i])
		}
		var want memLog
		want.add(t, entries[i])
		checkLog(t, s, &want)
	})
}

func testOwnerState(t *testing.T, open opener) {
	s := newStore(t, open)
	o := &owner{index: index(0x61, 1)}
	check := func() {
		t.Helper()
		got, err := s.OwnerState(t.Context(), o.index)
		if err != nil {
			t.Fatalf("OwnerState: %v", err)
		}
		// The commitment covers every field, in any order.
		if len(got) != len(o.records) || translog.Commitment(got) != translog.Commitment(stateRecords(o.records)) {
			t.Errorf("OwnerState = %d records committing to %x, want %d committing to %x", len(got),
				translog.Commitment(got), len(o.records), translog.Commitment(stateRecords(o.records)))
		}
	}
	check()
	r1 := record(o.index, recordID(2), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p2, p1}, Deny: []acl.Pseudonym{p3}})
	r2 := record(o.index, recordID(1), acl.List{Visibility: acl.Nobody})
	r2.Expires = t0.Add(-time.Hour) // expired records are included
	other := record(index(0x61, 2), recordID(1), acl.List{Visibility: acl.Public})
	for _, r := range []directory.Record{r1, r2, other} {
		putRecord(t, s, r, noLimit)
	}
	o.put(r1)
	o.put(r2)
	check()
	if _, err := s.SetACL(t.Context(), o.index, r1.RecordID, acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p4}}, t0); err != nil {
		t.Fatal(err)
	}
	o.setACL(r1.RecordID, acl.List{Visibility: acl.Public, Deny: []acl.Pseudonym{p4}})
	check()
}

// testLogConcurrent races appends of every kind: batches through AppendLog,
// State entries of writes to indexes of their own and to one shared index,
// and credentials through FinishVerification. The log must come out with
// no gap and no stray entry, each caller's entries where it was told, in
// the order it made them, and a tree that verifies.
func testLogConcurrent(t *testing.T, open opener) {
	s := newStore(t, open)
	ctx := t.Context()
	const appenders, writers, sharers, finishers = 5, 5, 5, 5
	const rounds = 4      // writers delete in even rounds, so the last keeps its record
	const aclChanges = 30 // even: a sharer's last change (odd) leaves its record public
	shared := &owner{index: index(0x77, 0), label: label(0x77)}
	owners := make([]*owner, writers)
	var setup memLog
	claim(t, s, &setup, shared, keyHash(0x77))
	for i := range owners {
		owners[i] = &owner{index: index(0x70, byte(i)), label: label(byte(i))}
		claim(t, s, &setup, owners[i], keyHash(byte(i)))
	}
	batches := make([][][][]byte, appenders) // [appender][round] entries
	for i := range batches {
		for r := range rounds {
			var es [][]byte
			for k := range r%3 + 1 {
				es = append(es, keyEntry(t, 1000*i+10*r+k))
			}
			batches[i] = append(batches[i], es)
		}
	}
	credentials := make([][]byte, finishers)
	for i := range credentials {
		credentials[i] = credentialEntry(t, byte(i))
		createVerification(t, s, verification(byte(i)))
	}

	// Each goroutine's appends: where the store said, and what it expects
	// there; or, for the shared index, whose State depends on the other
	// sharers, the change the entry records.
	type appended struct {
		pos    int64
		entry  []byte
		change func(o *owner)
	}
	got := make([][]appended, appenders+writers+sharers+finishers)
	errs := concurrently(len(got), func(g int) error {
		add := func(pos int64, err error, entry []byte) error {
			if err != nil {
				return err
			}
			got[g] = append(got[g], appended{pos: pos, entry: entry})
			return nil
		}
		// addShared adds a change of the shared index.
		addShared := func(change func(o *owner)) func(pos int64, err error) error {
			return func(pos int64, err error) error {
				if err != nil {
					return err
				}
				got[g] = append(got[g], appended{pos: pos, change: change})
				return nil
			}
		}
		switch {
		case g < appenders:
			for _, es := range batches[g] {
				first, err := s.AppendLog(ctx, es...)
				for k, e := range es {
					if err := add(first+int64(k), err, e); err != nil {
						return err
					}
				}
			}
		case g < appenders+writers:
			o := owners[g-appenders]
			for r := range rounds {
				at := t0.Add(time.Duration(r) * time.Second)
				rec := record(o.index, recordID(byte(r)), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
				rec.Updated = at
				pos, err := s.PutRecord(ctx, rec, noLimit)
				o.put(rec)
				e, merr := marshalState(o.label, o.key, o.records, at)
				if err := add(pos, errors.Join(err, merr), e); err != nil {
					return err
				}
				pos, err = s.SetACL(ctx, o.index, rec.RecordID, acl.List{Visibility: acl.Public}, at)
				o.setACL(rec.RecordID, acl.List{Visibility: acl.Public})
				e, merr = marshalState(o.label, o.key, o.records, at)
				if err := add(pos, errors.Join(err, merr), e); err != nil {
					return err
				}
				if r%2 == 0 {
					pos, err = s.DeleteRecord(ctx, o.index, rec.RecordID, at)
					o.remove(rec.RecordID)
					e, merr = marshalState(o.label, o.key, o.records, at)
					if err := add(pos, errors.Join(err, merr), e); err != nil {
						return err
					}
				}
			}
		case g < appenders+writers+sharers:
			// Many ACL changes, each of which reads the records of the
			// other sharers to log the state.
			rec := record(shared.index, recordID(byte(g)), acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{p1}})
			for r := range rounds {
				if err := addShared(func(o *owner) { o.put(rec) })(s.PutRecord(ctx, rec, noLimit)); err != nil {
					return err
				}
				for k := range aclChanges {
					l := acl.List{Visibility: acl.Public}
					if k%2 == 0 {
						l.Deny = []acl.Pseudonym{pseudonym(byte(k))}
					}
					set := func(o *owner) { o.setACL(rec.RecordID, l) }
					if err := addShared(set)(s.SetACL(ctx, rec.Index, rec.RecordID, l, t0)); err != nil {
						return err
					}
				}
				if r%2 == 0 {
					remove := func(o *owner) { o.remove(rec.RecordID) }
					if err := addShared(remove)(s.DeleteRecord(ctx, rec.Index, rec.RecordID, t0)); err != nil {
						return err
					}
				}
			}
		default:
			i := g - appenders - writers - sharers
			pos, err := s.FinishVerification(ctx, verification(byte(i)).ID, credentials[i])
			return add(pos, err, credentials[i])
		}
		return nil
	})
	for g, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", g, err)
		}
	}

	// The tree verifies over the entries the store holds.
	tree := logTree(t, s)
	entries, err := s.ReadLogEntries(ctx, 0, tree.N)
	if err != nil {
		t.Fatalf("ReadLogEntries(0, %d): %v", tree.N, err)
	}
	var stored memLog
	stored.add(t, entries...)
	checkLog(t, s, &stored)
	if !slices.EqualFunc(entries[:setup.size()], setup.entries, bytes.Equal) {
		t.Errorf("the Holder entries made before the race changed")
	}

	// Every entry after the setup is one some caller was told of.
	claimed := make([]int, tree.N)
	for i := range setup.size() {
		claimed[i] = -1
	}
	for g, as := range got {
		for k, a := range as {
			if a.pos < 0 || a.pos >= tree.N {
				t.Errorf("goroutine %d was told of index %d, outside the log of %d", g, a.pos, tree.N)
				continue
			}
			if k > 0 && a.pos <= as[k-1].pos {
				t.Errorf("goroutine %d: entry at %d logged after one at %d", g, a.pos, as[k-1].pos)
			}
			if claimed[a.pos] != 0 {
				t.Errorf("goroutine %d was told of index %d, which is another call's", g, a.pos)
			}
			claimed[a.pos] = g + 1
			e := entries[a.pos]
			if a.entry != nil && !bytes.Equal(e, a.entry) {
				t.Errorf("goroutine %d: entry %d =\n%s\nwant\n%s", g, a.pos, e, a.entry)
			}
		}
	}
	for i, g := range claimed {
		if g == 0 {
			t.Errorf("entry %d is no call's:\n%s", i, entries[i])
		}
	}

	// Replayed in log order, the shared index's changes give each of its
	// State entries: each change read the records after the changes logged
	// before it, and its own.
	var changes []appended
	for _, as := range got[appenders+writers : appenders+writers+sharers] {
		changes = append(changes, as...)
	}
	slices.SortFunc(changes, func(a, b appended) int { return cmp.Compare(a.pos, b.pos) })
	model := &owner{index: shared.index, label: shared.label}
	for _, c := range changes {
		c.change(model)
		if c.pos < 0 || c.pos >= tree.N {
			continue // reported above
		}
		if want := stateEntry(t, shared.label, shared.key, model.records, t0); !bytes.Equal(entries[c.pos], want) {
			t.Fatalf("the shared index's State entry %d is\n%s\nwant, after the changes logged before it,\n%s", c.pos, entries[c.pos], want)
		}
	}
	if got, err := s.OwnerState(ctx, shared.index); err != nil ||
		translog.Commitment(got) != translog.Commitment(stateRecords(model.records)) {
		t.Errorf("the shared index holds other records than its log entries say (%v)", err)
	}
}
