package directory

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"blindex.dev/blindex/internal/storeerr"
	"blindex.dev/blindex/translog"
)

// A Holder is a credential key that proved a number by SMS: one member of
// an index's holder set (docs/protocol.md §9.7). Times are whole seconds.
type Holder struct {
	KeyHash    [32]byte  // SHA-256 of the credential's SubjectPublicKeyInfo
	FirstProof time.Time // the proof that made it a holder
	LastProof  time.Time // its latest SMS proof: the authority
	// NoticeProof and NoticeUntil are zero unless the holder is on notice:
	// the later proof (of another key) that put it there, and when it is
	// retired unless it proves the number again first.
	NoticeProof time.Time
	NoticeUntil time.Time
	Label       [32]byte // the number's log label (translog)
	// Records is how many records the holder has under the index. Stores
	// fill it in when they read holders; they ignore it when they write.
	Records int
}

// OnNotice reports whether h is on notice: its records are not served.
func (h Holder) OnNotice() bool { return !h.NoticeUntil.IsZero() }

// overdue reports whether h's notice has run out at now.
func (h Holder) overdue(now time.Time) bool {
	return h.OnNotice() && now.Unix() >= h.NoticeUntil.Unix()
}

// A Proof is what an authenticated request says about its credential's
// key: the SMS proof time its credential carries (credential.ProofTime) and
// the number's log label.
type Proof struct {
	KeyHash [32]byte
	Time    time.Time
	Label   [32]byte
}

// A HolderChange is what a holder decision tells a store to write, in one
// transaction (Store.ChangeHolders):
//   - each of Retire has its records under the index deleted, each with a
//     Tombstone, its key revoked (as by RevokeKey) and its row removed;
//   - each of Put is inserted or replaces the row of its key (Records is
//     ignored);
//   - Entries are appended to the log in order, and then, for each retired
//     holder with a label, the State entry of its (now empty) records.
type HolderChange struct {
	Retire  []Holder
	Put     []Holder
	Entries [][]byte
}

// Empty reports whether c changes nothing.
func (c HolderChange) Empty() bool {
	return len(c.Retire) == 0 && len(c.Put) == 0 && len(c.Entries) == 0
}

// Retires reports whether c retires keyHash.
func (c HolderChange) Retires(keyHash [32]byte) bool {
	return slices.ContainsFunc(c.Retire, func(h Holder) bool { return h.KeyHash == keyHash })
}

// DefaultReproofWindow is how long a holder put on notice has to prove the
// number again: a weekend away from the phone plus a working day. It is
// long enough for an owner to see a monitor's alarm and answer one SMS,
// and it bounds how long one intercepted SMS can keep an owner's records
// from being served.
const DefaultReproofWindow = 72 * time.Hour

// EvictFreshness is how recent the evicting holder's own SMS proof must be
// (DecideEvict): evicting needs a proof made for the purpose, not a key
// that has been lying around.
const EvictFreshness = 10 * time.Minute

// ErrStaleProof is DecideEvict's refusal of an evicting holder whose proof
// is not fresh, or which is itself on notice.
var ErrStaleProof = errors.New("directory: prove the number by SMS again (within the last few minutes) before evicting another key")

// ErrNotHolder is DecideEvict's refusal of a target that holds nothing.
var ErrNotHolder = errors.New("directory: no such holder of this number")

// ErrSenior is DecideEvict's refusal of a target that joined the number
// before the evicting key did.
var ErrSenior = errors.New("directory: a key may evict only keys that joined the number after it")

// DecideProof is the holder rule (docs/protocol.md §9.7): it decides what
// an authenticated request with proof p does to the index whose holders
// are hs, at now. The latest SMS proof is the authority; a renewal, which
// carries its credential's proof time unchanged, changes nothing.
//
//   - Every holder whose notice has run out is retired first (lazily here,
//     and by housekeeping through DecideOverdue). If that is p's key,
//     nothing else happens.
//   - A key that is not a holder joins. Every other holder whose last proof
//     is older than p and that is not on notice yet is put on notice until
//     now+window. If another holder's last proof is later than p, the
//     joining key is itself on notice, so that the order of first use never
//     matters, only proof times.
//   - A holder with a later proof than its last re-proves: its notice
//     clears, and nobody else is put on notice.
//
// Proof times compare in whole seconds; a tie is not "later".
func DecideProof(hs []Holder, p Proof, now time.Time, window time.Duration) HolderChange {
	p.Time = p.Time.Truncate(time.Second)
	c, hs := retireOverdue(hs, now)
	if c.Retires(p.KeyHash) {
		return c // too late: the caller is refused as revoked
	}
	i := slices.IndexFunc(hs, func(h Holder) bool { return h.KeyHash == p.KeyHash })
	if i >= 0 {
		me := hs[i]
		switch {
		case p.Time.Unix() > me.LastProof.Unix():
			me.LastProof = p.Time
			me.NoticeProof, me.NoticeUntil = time.Time{}, time.Time{}
			me.Label = p.Label
			c.Put = append(c.Put, me)
			c.Entries = append(c.Entries, holderEntry(me, translog.Reproof, p.Time, time.Time{}, [32]byte{}, 0))
		case me.Label != p.Label:
			// A holder from before the log has no label: claiming sets it.
			me.Label = p.Label
			c.Put = append(c.Put, me)
		}
		return c
	}
	until := now.Add(window).Truncate(time.Second)
	me := Holder{KeyHash: p.KeyHash, FirstProof: p.Time, LastProof: p.Time, Label: p.Label}
	c.Entries = append(c.Entries, holderEntry(me, translog.Join, p.Time, time.Time{}, [32]byte{}, 0))
	var later *Holder
	for j, h := range hs {
		switch {
		case h.LastProof.Unix() > p.Time.Unix():
			if later == nil || h.LastProof.Unix() > later.LastProof.Unix() {
				later = &hs[j]
			}
		case h.LastProof.Unix() < p.Time.Unix() && !h.OnNotice():
			h.NoticeProof, h.NoticeUntil = p.Time, until
			h.Label = p.Label
			c.Put = append(c.Put, h)
			c.Entries = append(c.Entries, holderEntry(h, translog.Notice, p.Time, until, p.KeyHash, 0))
		}
	}
	if later != nil {
		me.NoticeProof, me.NoticeUntil = later.LastProof, until
		c.Entries = append(c.Entries, holderEntry(me, translog.Notice, later.LastProof, until, later.KeyHash, 0))
	}
	c.Put = append(c.Put, me)
	return c
}

// DecideOverdue retires every holder in hs whose notice has run out at now
// (housekeeping).
func DecideOverdue(hs []Holder, now time.Time) HolderChange {
	c, _ := retireOverdue(hs, now)
	return c
}

func retireOverdue(hs []Holder, now time.Time) (HolderChange, []Holder) {
	var c HolderChange
	var kept []Holder
	for _, h := range hs {
		if h.overdue(now) {
			c.Retire = append(c.Retire, h)
			c.Entries = append(c.Entries, holderEntry(h, translog.Retire, h.LastProof, time.Time{}, [32]byte{}, h.Records))
		} else {
			kept = append(kept, h)
		}
	}
	return c, kept
}

// DecideEvict decides an eviction of target by the holder by, at now: by
// must hold a proof made within EvictFreshness and not be on notice, and
// target must be another holder that joined later than by (its first
// proof is later, in whole seconds). The target is retired at once.
//
// The seniority rule is what keeps one intercepted SMS from buying the
// number outright: a hijacker's key joins last, so it can evict nobody,
// while the owner, proving the number again, can evict it. A key that
// joined first but lost the number (a recycled number's old owner, a
// stolen key) is on notice and cannot prove it again, so it evicts
// nobody either, and is retired when its notice runs out.
func DecideEvict(hs []Holder, by, target [32]byte, now time.Time) (HolderChange, error) {
	c, hs := retireOverdue(hs, now)
	i := slices.IndexFunc(hs, func(h Holder) bool { return h.KeyHash == by })
	j := slices.IndexFunc(hs, func(h Holder) bool { return h.KeyHash == target })
	switch {
	case i < 0 || hs[i].OnNotice() || now.Sub(hs[i].LastProof) > EvictFreshness:
		return HolderChange{}, ErrStaleProof
	case j < 0 || by == target:
		return HolderChange{}, ErrNotHolder
	case hs[j].FirstProof.Unix() <= hs[i].FirstProof.Unix():
		return HolderChange{}, ErrSenior
	}
	t := hs[j]
	c.Retire = append(c.Retire, t)
	c.Entries = append(c.Entries, holderEntry(t, translog.Evict, t.LastProof, time.Time{}, by, t.Records))
	return c, nil
}

// Wins reports whether a record published by a holder whose latest proof
// is a beats another holder's record of the same app (the same record id)
// published by a holder whose latest proof is b: the later proof wins, and
// a tie goes to the greater key hash so that every store picks the same.
func Wins(a time.Time, aKey [32]byte, b time.Time, bKey [32]byte) bool {
	if a.Unix() != b.Unix() {
		return a.Unix() > b.Unix()
	}
	return bytes.Compare(aKey[:], bKey[:]) > 0
}

func holderEntry(h Holder, ev translog.HolderEvent, proof, until time.Time, by [32]byte, retired int) []byte {
	e := translog.Entry{Kind: translog.Holder, Label: h.Label, Key: h.KeyHash, Event: ev,
		Proof: proof, Until: until, By: by, Retired: retired}
	b, err := e.Marshal()
	if err != nil {
		// Every field is fixed-size or a valid event: Marshal cannot fail.
		panic(fmt.Sprintf("directory: holder entry: %v", err))
	}
	return b
}

// StateLabel decides whether a change of a holder's records is logged, and
// under which label. stored is the label its holder row keeps: nil if it
// has none (a holder claimed before schema version 2 stored labels). Such
// a holder is named by no label in the log, so its changes are not logged
// (ok is false). Any other stored label must be 32 bytes.
//
// The entry itself is translog.StateEntry over the holder's records under
// the index, read in the transaction that changed them, under this label.
func StateLabel(stored []byte) (label [32]byte, ok bool, err error) {
	if stored == nil {
		return label, false, nil
	}
	if len(stored) != len(label) {
		return label, false, fmt.Errorf("directory: corrupt holder label: %w", storeerr.ErrCorrupt)
	}
	return [32]byte(stored), true, nil
}
