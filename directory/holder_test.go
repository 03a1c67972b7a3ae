package directory_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

var (
	t0     = time.Unix(1_750_000_000, 0).UTC()
	window = 72 * time.Hour
	label  = [32]byte{0x1a}
	keyA   = [32]byte{0xa}
	keyB   = [32]byte{0xb}
	keyC   = [32]byte{0xc}
)

func holder(key [32]byte, first, last time.Time) directory.Holder {
	return directory.Holder{KeyHash: key, FirstProof: first, LastProof: last, Label: label}
}

func onNotice(h directory.Holder, proof, until time.Time) directory.Holder {
	h.NoticeProof, h.NoticeUntil = proof, until
	return h
}

// events returns "event key" for each Holder entry of c, to compare.
func events(t *testing.T, c directory.HolderChange) []string {
	t.Helper()
	var out []string
	for _, b := range c.Entries {
		e, err := translog.Parse(b)
		if err != nil {
			t.Fatalf("entry %q: %v", b, err)
		}
		if e.Kind != translog.Holder || e.Label != label {
			t.Fatalf("entry %+v: want a Holder entry under the number's label", e)
		}
		s := fmt.Sprintf("%s %x", e.Event, e.Key[0])
		if e.Event == translog.Notice {
			s += fmt.Sprintf(" by %x until %d", e.By[0], e.Until.Sub(t0)/time.Second)
		}
		if e.Event == translog.Retire || e.Event == translog.Evict {
			s += fmt.Sprintf(" retired %d", e.Retired)
		}
		out = append(out, s)
	}
	return out
}

func keys(hs []directory.Holder) []string {
	var out []string
	for _, h := range hs {
		s := fmt.Sprintf("%x last %d", h.KeyHash[0], h.LastProof.Sub(t0)/time.Second)
		if h.OnNotice() {
			s += fmt.Sprintf(" notice %d until %d", h.NoticeProof.Sub(t0)/time.Second, h.NoticeUntil.Sub(t0)/time.Second)
		}
		out = append(out, s)
	}
	return out
}

func TestDecideProof(t *testing.T) {
	now := t0.Add(100 * time.Second)
	w := int64(window / time.Second)
	a := holder(keyA, t0, t0.Add(10*time.Second))
	b := holder(keyB, t0, t0.Add(20*time.Second))
	type want struct{ retire, put, entries []string }
	for _, tc := range []struct {
		name string
		hs   []directory.Holder
		p    directory.Proof
		want want
	}{
		{"first holder", nil, directory.Proof{KeyHash: keyA, Time: t0, Label: label},
			want{nil, []string{"a last 0"}, []string{"join a"}}},
		{"holder again, same proof: nothing", []directory.Holder{a}, directory.Proof{KeyHash: keyA, Time: a.LastProof, Label: label},
			want{}},
		{"a renewal carries an older proof: nothing", []directory.Holder{a}, directory.Proof{KeyHash: keyA, Time: t0, Label: label},
			want{}},
		{"later proof within the same second: nothing", []directory.Holder{a}, directory.Proof{KeyHash: keyA, Time: a.LastProof.Add(999 * time.Millisecond), Label: label},
			want{}},
		{"re-proof", []directory.Holder{a, b}, directory.Proof{KeyHash: keyA, Time: t0.Add(50 * time.Second), Label: label},
			want{nil, []string{"a last 50"}, []string{"reproof a"}}},
		{"re-proof clears a notice and notices nobody", []directory.Holder{onNotice(a, b.LastProof, now.Add(time.Hour)), b},
			directory.Proof{KeyHash: keyA, Time: t0.Add(50 * time.Second), Label: label},
			want{nil, []string{"a last 50"}, []string{"reproof a"}}},
		{"a new key puts the older holders on notice", []directory.Holder{a, b}, directory.Proof{KeyHash: keyC, Time: t0.Add(30 * time.Second), Label: label},
			want{nil, []string{
				fmt.Sprintf("a last 10 notice 30 until %d", 100+w),
				fmt.Sprintf("b last 20 notice 30 until %d", 100+w),
				"c last 30"},
				[]string{"join c", fmt.Sprintf("notice a by c until %d", 100+w), fmt.Sprintf("notice b by c until %d", 100+w)}}},
		{"a holder already on notice keeps its deadline", []directory.Holder{onNotice(a, t0.Add(20*time.Second), now.Add(time.Hour)), b},
			directory.Proof{KeyHash: keyC, Time: t0.Add(30 * time.Second), Label: label},
			want{nil, []string{fmt.Sprintf("b last 20 notice 30 until %d", 100+w), "c last 30"},
				[]string{"join c", fmt.Sprintf("notice b by c until %d", 100+w)}}},
		{"a joining key with an older proof is born on notice", []directory.Holder{a, b}, directory.Proof{KeyHash: keyC, Time: t0.Add(15 * time.Second), Label: label},
			want{nil, []string{
				fmt.Sprintf("a last 10 notice 15 until %d", 100+w),
				fmt.Sprintf("c last 15 notice 20 until %d", 100+w)},
				[]string{"join c", fmt.Sprintf("notice a by c until %d", 100+w), fmt.Sprintf("notice c by b until %d", 100+w)}}},
		{"a tie is not later", []directory.Holder{b}, directory.Proof{KeyHash: keyC, Time: b.LastProof, Label: label},
			want{nil, []string{"c last 20"}, []string{"join c"}}},
		{"an overdue holder is retired first", []directory.Holder{func() directory.Holder {
			h := onNotice(a, t0.Add(20*time.Second), now)
			h.Records = 3
			return h
		}(), b}, directory.Proof{KeyHash: keyB, Time: b.LastProof, Label: label},
			want{[]string{"a last 10 notice 20 until 100"}, nil, []string{"retire a retired 3"}}},
		{"the claimant itself overdue is retired", []directory.Holder{onNotice(a, t0.Add(20*time.Second), now.Add(-time.Second)), b},
			directory.Proof{KeyHash: keyA, Time: a.LastProof, Label: label},
			// Retired, and nothing more: the server refuses it as revoked.
			want{[]string{"a last 10 notice 20 until 99"}, nil, []string{"retire a retired 0"}}},
		{"a legacy row without a label gets one, unlogged", []directory.Holder{{KeyHash: keyA, FirstProof: t0, LastProof: a.LastProof}},
			directory.Proof{KeyHash: keyA, Time: a.LastProof, Label: label}, want{nil, []string{"a last 10"}, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := directory.DecideProof(tc.hs, tc.p, now, window)
			if got := keys(c.Retire); fmt.Sprint(got) != fmt.Sprint(tc.want.retire) {
				t.Errorf("Retire = %q, want %q", got, tc.want.retire)
			}
			if got := keys(c.Put); fmt.Sprint(got) != fmt.Sprint(tc.want.put) {
				t.Errorf("Put = %q, want %q", got, tc.want.put)
			}
			if got := events(t, c); fmt.Sprint(got) != fmt.Sprint(tc.want.entries) {
				t.Errorf("Entries = %q, want %q", got, tc.want.entries)
			}
			if c.Empty() != (len(tc.want.retire)+len(tc.want.put)+len(tc.want.entries) == 0) {
				t.Errorf("Empty = %v", c.Empty())
			}
			for _, h := range c.Put {
				if h.Label != label {
					t.Errorf("put %x without the number's label", h.KeyHash[0])
				}
			}
		})
	}
}

// TestProofOrderDoesNotMatter: two keys that proved the number at different
// times end in the same holder set whichever first used the directory.
func TestProofOrderDoesNotMatter(t *testing.T) {
	now := t0.Add(time.Minute)
	older := directory.Proof{KeyHash: keyA, Time: t0, Label: label}
	newer := directory.Proof{KeyHash: keyB, Time: t0.Add(time.Second), Label: label}
	apply := func(hs []directory.Holder, p directory.Proof) []directory.Holder {
		c := directory.DecideProof(hs, p, now, window)
		for _, put := range c.Put {
			replaced := false
			for i := range hs {
				if hs[i].KeyHash == put.KeyHash {
					hs[i], replaced = put, true
				}
			}
			if !replaced {
				hs = append(hs, put)
			}
		}
		return hs
	}
	ab := apply(apply(nil, older), newer)
	ba := apply(apply(nil, newer), older)
	sortHolders := func(hs []directory.Holder) string {
		if hs[0].KeyHash != keyA {
			hs[0], hs[1] = hs[1], hs[0]
		}
		return fmt.Sprint(keys(hs))
	}
	if x, y := sortHolders(ab), sortHolders(ba); x != y {
		t.Errorf("older first: %s; newer first: %s", x, y)
	}
	if !ab[0].OnNotice() || ab[1].OnNotice() {
		t.Errorf("holders %q: want only the older proof on notice", keys(ab))
	}
}

func TestDecideOverdue(t *testing.T) {
	now := t0.Add(time.Hour)
	due := onNotice(holder(keyA, t0, t0), t0, now)
	notYet := onNotice(holder(keyB, t0, t0), t0, now.Add(time.Second))
	c := directory.DecideOverdue([]directory.Holder{due, notYet, holder(keyC, t0, t0)}, now)
	if got := keys(c.Retire); len(got) != 1 || c.Retire[0].KeyHash != keyA {
		t.Errorf("Retire = %q, want only a", got)
	}
	if len(c.Put) != 0 {
		t.Errorf("Put = %q, want none", keys(c.Put))
	}
	if got := events(t, c); fmt.Sprint(got) != "[retire a retired 0]" {
		t.Errorf("Entries = %q", got)
	}
	if !directory.DecideOverdue([]directory.Holder{notYet}, now).Empty() {
		t.Error("a notice not yet run out retired")
	}
}

func TestDecideEvict(t *testing.T) {
	now := t0.Add(time.Hour)
	fresh := holder(keyA, t0, now.Add(-directory.EvictFreshness))
	stale := holder(keyA, t0, now.Add(-directory.EvictFreshness-time.Second))
	target := holder(keyB, t0.Add(time.Second), t0.Add(time.Second)) // joined after a
	target.Records = 2
	senior := holder(keyC, t0, t0) // joined with a, in the same second
	for _, tc := range []struct {
		name   string
		hs     []directory.Holder
		target [32]byte
		err    error
	}{
		{"fresh proof", []directory.Holder{fresh, target}, keyB, nil},
		{"stale proof", []directory.Holder{stale, target}, keyB, directory.ErrStaleProof},
		{"on notice", []directory.Holder{onNotice(fresh, now, now.Add(time.Hour)), target}, keyB, directory.ErrStaleProof},
		{"evicter not a holder", []directory.Holder{target}, keyB, directory.ErrStaleProof},
		{"no such target", []directory.Holder{fresh, target}, keyC, directory.ErrNotHolder},
		{"itself", []directory.Holder{fresh, target}, keyA, directory.ErrNotHolder},
		{"a key that joined no later", []directory.Holder{fresh, senior}, keyC, directory.ErrSenior},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := directory.DecideEvict(tc.hs, keyA, tc.target, now)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				if !c.Empty() {
					t.Errorf("refused, yet change %+v", c)
				}
				return
			}
			if len(c.Retire) != 1 || c.Retire[0].KeyHash != keyB || len(c.Put) != 0 {
				t.Errorf("change retires %q, puts %q; want b only", keys(c.Retire), keys(c.Put))
			}
			e, err := translog.Parse(c.Entries[0])
			if err != nil || e.Event != translog.Evict || e.Key != keyB || e.By != keyA || e.Retired != 2 || len(c.Entries) != 1 {
				t.Errorf("entries %q (%v): want one evict of b by a, 2 records", c.Entries, err)
			}
		})
	}
}

func TestWins(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    time.Time
		aKey [32]byte
		b    time.Time
		bKey [32]byte
		want bool
	}{
		{"later proof", t0.Add(time.Second), keyA, t0, keyB, true},
		{"earlier proof", t0, keyB, t0.Add(time.Second), keyA, false},
		{"same second: greater key", t0.Add(500 * time.Millisecond), keyB, t0, keyA, true},
		{"same second: lesser key", t0, keyA, t0.Add(500 * time.Millisecond), keyB, false},
	} {
		if got := directory.Wins(tc.a, tc.aKey, tc.b, tc.bKey); got != tc.want {
			t.Errorf("%s: Wins = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStateLabel(t *testing.T) {
	label := make([]byte, 32)
	label[0], label[31] = 1, 0xff // shadows the package's label
	for _, tc := range []struct {
		name    string
		stored  []byte
		ok, err bool
	}{
		{"no holder, or no label kept", nil, false, false},
		{"a label", label, true, false},
		{"empty", []byte{}, false, true},
		{"short", label[:31], false, true},
		{"long", append(label, 0), false, true},
	} {
		got, ok, err := directory.StateLabel(tc.stored)
		if ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("%s: StateLabel = %v, %v; want ok %v, error %v", tc.name, ok, err, tc.ok, tc.err)
		}
		if ok && string(got[:]) != string(label) {
			t.Errorf("%s: label = %x, want %x", tc.name, got, label)
		}
	}
}
