package client_test

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/translog"
)

const holdersNumber = "+14155550100"

// holders returns c's view of its number's holders: its own, and the
// others.
func holders(t *testing.T, c *client.Client) (me client.Holder, others []client.Holder) {
	t.Helper()
	hs, err := c.Holders(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, h := range hs {
		if h.You {
			me, n = h, n+1
		} else {
			others = append(others, h)
		}
	}
	if n != 1 {
		t.Fatalf("%d holders marked as this client's key in %+v, want 1", n, hs)
	}
	return me, others
}

// reprove verifies c's number again by SMS (Verify, or VerifyNewKey).
func reprove(t *testing.T, c *client.Client, inbox *sms.Inbox, newKey bool) {
	t.Helper()
	time.Sleep(1100 * time.Millisecond) // proofs compare in whole seconds
	verify := c.Verify
	if newKey {
		verify = c.VerifyNewKey
	}
	if _, err := verify(t.Context(), holdersNumber); err != nil {
		t.Fatal(err)
	}
	if err := c.Confirm(t.Context(), inbox.Code(holdersNumber)); err != nil {
		t.Fatal(err)
	}
}

// endpoints returns the endpoints caller sees for the number.
func endpoints(t *testing.T, caller *client.Client) []string {
	t.Helper()
	res, err := caller.Lookup(t.Context(), holdersNumber)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range res[0].Records {
		out = append(out, r.Endpoint)
	}
	slices.Sort(out)
	return out
}

// Verify keeps the state's key for the number it holds: a re-proof moves
// the key's last proof and clears its notice. VerifyNewKey makes a new key,
// which joins, puts the old key (and a copy of it) on notice and carries
// the owner's records.
func TestVerifyKeepsKeyNewKeyJoins(t *testing.T) {
	inbox := sms.NewInbox()
	srv := startServer(t, inbox, directory.Config{})
	caller := register(t, srv, inbox, t.TempDir(), "+12015550123", 0)
	dir := t.TempDir()
	owner := register(t, srv, inbox, dir, holdersNumber, 0)
	publishPublic(t, owner, "sip:owner@example.com")
	first, others := holders(t, owner)
	if len(others) != 0 || first.Records != 1 || first.OnNotice() {
		t.Fatalf("after the first proof: me %+v, others %+v", first, others)
	}

	reprove(t, owner, inbox, false)
	me, others := holders(t, owner)
	if me.KeyHash != first.KeyHash || len(others) != 0 {
		t.Fatalf("verify again made another key: %x, others %+v; want %x alone", me.KeyHash, others, first.KeyHash)
	}
	if !me.LastProof.After(first.LastProof) || !me.FirstProof.Equal(first.FirstProof) || me.Records != 1 {
		t.Errorf("after a re-proof: %+v, want the first proof %v kept, a later last proof, 1 record", me, first.FirstProof)
	}

	stolen := t.TempDir()
	copyDir(t, dir, stolen)
	reprove(t, owner, inbox, true)
	me, others = holders(t, owner)
	if me.KeyHash == first.KeyHash || me.OnNotice() || me.Records != 1 {
		t.Errorf("after verify --new-key: %+v, want a new key, not on notice, with the record published again", me)
	}
	if len(others) != 1 || others[0].KeyHash != first.KeyHash || !others[0].OnNotice() {
		t.Errorf("after verify --new-key, the others: %+v, want the old key on notice", others)
	}
	if got := endpoints(t, caller); !slices.Equal(got, []string{"sip:owner@example.com"}) {
		t.Errorf("the caller sees %q, want the owner's record once, under its new key", got)
	}
	// The copy still holds the old key: it is on notice, and renewing it
	// clears nothing.
	thief, err := client.New(client.Config{Server: srv.URL(), StateDir: stolen})
	if err != nil {
		t.Fatal(err)
	}
	if err := thief.Renew(t.Context()); err != nil {
		t.Fatal(err)
	}
	if me, _ := holders(t, thief); me.KeyHash != first.KeyHash || !me.OnNotice() {
		t.Errorf("the renewed copy: %+v, want the old key, still on notice", me)
	}
	if rep := monitor(t, thief); rep.NoticeUntil == nil {
		t.Errorf("the copy's monitor reports no notice")
	}
}

// Evict retires another holder at once, and only as the directory allows:
// not the client's own key, not while on notice, not a key that joined
// before it, not a key that holds nothing, and not without a proof made
// within the last 10 minutes.
func TestEvict(t *testing.T) {
	inbox := sms.NewInbox()
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	srv := startServer(t, inbox, directory.Config{Now: now})
	ownerDir := t.TempDir()
	owner := register(t, srv, inbox, ownerDir, holdersNumber, 0)
	publishPublic(t, owner, "sip:owner@example.com")
	time.Sleep(1100 * time.Millisecond)
	app := register(t, srv, inbox, t.TempDir(), holdersNumber, 0)
	publishPublic(t, app, "sip:app@example.com")
	me, others := holders(t, owner)
	if len(others) != 1 || !me.OnNotice() || others[0].OnNotice() {
		t.Fatalf("after the second app joined: me %+v, others %+v; want me alone on notice", me, others)
	}
	appKey := others[0].KeyHash

	wantRefused := func(c *client.Client, key [32]byte, status int, says string) {
		t.Helper()
		n, err := c.Evict(t.Context(), key)
		var ce *client.Error
		if err == nil || (status != 0 && (!errors.As(err, &ce) || ce.Status != status)) || !strings.Contains(err.Error(), says) {
			t.Errorf("Evict(%x) = %d, %v; want refused (HTTP %d) with %q", key[:4], n, err, status, says)
		}
	}
	wantRefused(owner, me.KeyHash, 0, "own key")                  // refused before asking
	wantRefused(owner, appKey, 403, "within the last 10 minutes") // on notice
	reprove(t, owner, inbox, false)
	wantRefused(app, me.KeyHash, 403, "joined this number before yours")
	wantRefused(owner, [32]byte{0xff}, 404, "no other holder")
	// Eleven minutes on (for the directory and the client that signs the
	// request), the owner's proof is not fresh any more.
	later, err := client.New(client.Config{Server: srv.URL(), StateDir: ownerDir, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(11 * time.Minute))
	wantRefused(later, appKey, 403, "within the last 10 minutes")
	skew.Store(0)
	if n, err := owner.Evict(t.Context(), appKey); err != nil || n != 1 {
		t.Fatalf("Evict = %d, %v; want 1 record retired", n, err)
	}
	if _, others := holders(t, owner); len(others) != 0 {
		t.Errorf("holders after the eviction: %+v, want the owner alone", others)
	}
	// The evicted app's monitor raises the alarm, naming the evicting key,
	// and finds its credential refused. (The State entry of its emptied
	// records is an alarm of its own.)
	alarms := collectAlarmsAmong(t, app, []string{"credential", "holder", "retired", "state"}, func(a client.Alarm) bool {
		return a.Kind == client.AlarmHolder && strings.Contains(a.Message, "evicted by key")
	}, func(a client.Alarm) bool { return a.Kind == client.AlarmRetired })
	e, err := translog.Parse([]byte(alarms[0].Evidence[0]))
	if err != nil || e.Event != translog.Evict || e.Key != appKey || e.By != me.KeyHash || e.Retired != 1 {
		t.Errorf("the eviction alarm's evidence: %v %+v", err, e)
	}
}

// A holder that does not prove the number again within the window is
// retired: its monitor raises the alarm, and its key is refused.
func TestMonitorOwnRetirement(t *testing.T) {
	inbox := sms.NewInbox()
	const window = 2 * time.Second
	srv := startServer(t, inbox, directory.Config{ReproofWindow: window})
	owner := register(t, srv, inbox, t.TempDir(), holdersNumber, 0)
	publishPublic(t, owner, "sip:owner@example.com")
	if rep := monitor(t, owner); len(rep.Alarms) != 0 || rep.NoticeUntil != nil {
		t.Fatalf("before another key joined: alarms %v, notice %v", alarmKinds(rep), rep.NoticeUntil)
	}
	time.Sleep(1100 * time.Millisecond)
	app := register(t, srv, inbox, t.TempDir(), holdersNumber, 0)
	time.Sleep(window + time.Second)
	// Any holder's request retires the overdue ones.
	if _, others := holders(t, app); len(others) != 0 {
		t.Fatalf("after the window: others %+v, want the owner retired", others)
	}
	alarms := collectAlarmsAmong(t, owner, []string{"credential", "holder", "retired", "state"}, func(a client.Alarm) bool {
		return a.Kind == client.AlarmHolder && strings.Contains(a.Message, "your key was retired")
	}, func(a client.Alarm) bool { return a.Kind == client.AlarmRetired })
	e, err := translog.Parse([]byte(alarms[0].Evidence[0]))
	if err != nil || e.Event != translog.Retire || e.Retired != 1 {
		t.Errorf("the retirement alarm's evidence: %v %+v", err, e)
	}
}

// collectAlarmsAmong runs the monitor until, for each of want, one alarm
// satisfies it, and returns those alarms in the order of want. An alarm of
// a kind not in kinds fails the test.
func collectAlarmsAmong(t *testing.T, c *client.Client, kinds []string, want ...func(client.Alarm) bool) []client.Alarm {
	t.Helper()
	got := make([]client.Alarm, len(want))
	found := make([]bool, len(want))
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, a := range monitor(t, c).Alarms {
			if !slices.Contains(kinds, string(a.Kind)) {
				t.Fatalf("unexpected %s alarm: %s", a.Kind, a.Message)
			}
			for i, w := range want {
				if !found[i] && w(a) {
					got[i], found[i] = a, true
				}
			}
		}
		if !slices.Contains(found, false) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("alarms %+v: not all wanted ones were raised", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
