package client

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/translog"
)

// TestEntryAlarm is the monitor's rule for each entry under the owner's
// label (docs/protocol.md §14.9, step 5): which raise an alarm, of which
// kind, and what the holder alarms tell the owner to do.
func TestEntryAlarm(t *testing.T) {
	own, other, third := [32]byte{1}, [32]byte{2}, [32]byte{3}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	holder := func(key [32]byte, ev translog.HolderEvent, by [32]byte) *translog.Entry {
		return &translog.Entry{Kind: translog.Holder, Key: key, Event: ev, Proof: at, By: by, Retired: 2}
	}
	state := func(key [32]byte) *translog.Entry {
		return &translog.Entry{Kind: translog.State, Key: key, At: at}
	}
	hexOf := func(k [32]byte) string { return hex.EncodeToString(k[:]) }
	tests := []struct {
		name     string
		e        *translog.Entry
		afterOwn bool
		matches  bool
		kind     AlarmKind // "" for none
		says     []string  // in the message
	}{
		{"own credential", &translog.Entry{Kind: translog.Credential, Key: own}, true, false, "", nil},
		{"another key's credential", &translog.Entry{Kind: translog.Credential, Key: other}, true, false, AlarmCredential, []string{"hijacked"}},
		{"own join", holder(own, translog.Join, [32]byte{}), true, false, "", nil},
		{"another key joins", holder(other, translog.Join, [32]byte{}), true, false, AlarmHolder,
			[]string{hexOf(other), "blindex verify start NUMBER", "blindex holders --evict " + hexOf(other)}},
		{"own notice", holder(own, translog.Notice, other), true, false, "", nil},
		{"another key's notice", holder(other, translog.Notice, own), true, false, "", nil},
		{"own re-proof", holder(own, translog.Reproof, [32]byte{}), true, false, "", nil},
		{"another key's re-proof", holder(other, translog.Reproof, [32]byte{}), true, false, "", nil},
		{"own retirement", holder(own, translog.Retire, [32]byte{}), true, false, AlarmHolder,
			[]string{"retired", "2 records", "--new-key"}},
		{"another key's retirement", holder(other, translog.Retire, [32]byte{}), true, false, "", nil},
		{"own eviction", holder(own, translog.Evict, other), true, false, AlarmHolder,
			[]string{"evicted by key " + hexOf(other), "2 records", "--new-key"}},
		{"another key evicted by a third", holder(other, translog.Evict, third), true, false, "", nil},
		{"another key evicted by the owner", holder(other, translog.Evict, own), true, false, "", nil},
		{"legacy takeover by another key", holder(other, "", [32]byte{}), true, false, AlarmHolder, []string{"took over", "2 of your records"}},
		{"legacy holder entry of the owner's key", holder(own, "", [32]byte{}), true, false, "", nil},
		{"own state, as published", state(own), true, true, "", nil},
		{"own state, not as published", state(own), true, false, AlarmState, nil},
		{"own state before the owner's last change", state(own), false, false, "", nil},
		{"legacy state (no key), not as published", state([32]byte{}), true, false, AlarmState, nil},
		{"legacy state (no key), as published", state([32]byte{}), true, true, "", nil},
		{"another holder's state", state(other), true, false, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked := false
			a := entryAlarm(tt.e, own, tt.afterOwn, func(e *translog.Entry) bool {
				if e != tt.e {
					t.Errorf("matches asked about another entry")
				}
				asked = true
				return tt.matches
			})
			if tt.kind == "" {
				if a != nil {
					t.Fatalf("alarm %s: %s, want none", a.Kind, a.Message)
				}
				if tt.e.Kind == translog.State && tt.e.Key == other && asked {
					t.Errorf("another holder's state was compared with the owner's records")
				}
				return
			}
			if a == nil || a.Kind != tt.kind {
				t.Fatalf("alarm %+v, want kind %s", a, tt.kind)
			}
			if !a.Kind.HasEntry() {
				t.Errorf("kind %s cites no entry", a.Kind)
			}
			for _, s := range tt.says {
				if !strings.Contains(a.Message, s) {
					t.Errorf("message %q lacks %q", a.Message, s)
				}
			}
		})
	}
}
