package directory_test

import (
	"errors"
	"testing"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/translog"
)

func TestDecideClaim(t *testing.T) {
	t0 := time.Unix(1_750_000_000, 0)
	var keyA, keyB, labelA, labelB [32]byte
	keyA[0], keyB[0], labelA[0], labelB[0] = 0xa, 0xb, 1, 2
	cur := directory.Holder{KeyHash: keyA, NotBefore: t0, Label: labelA}
	claim := func(key [32]byte, nb time.Time) directory.Holder {
		return directory.Holder{KeyHash: key, NotBefore: nb, Label: labelB}
	}
	tests := []struct {
		name    string
		current *directory.Holder
		h       directory.Holder
		want    directory.Claim
		err     error
	}{
		{"first holder", nil, claim(keyB, t0),
			directory.Claim{Kind: directory.ClaimFirst, Holder: claim(keyB, t0)}, nil},
		{"renewal, later", &cur, claim(keyA, t0.Add(time.Hour)),
			directory.Claim{Kind: directory.ClaimRenew, Holder: claim(keyA, t0.Add(time.Hour))}, nil},
		{"renewal, earlier: NotBefore stays", &cur, claim(keyA, t0.Add(-time.Hour)),
			directory.Claim{Kind: directory.ClaimRenew, Holder: claim(keyA, t0)}, nil},
		{"renewal, later within the second: NotBefore stays", &cur, claim(keyA, t0.Add(time.Second-1)),
			directory.Claim{Kind: directory.ClaimRenew, Holder: claim(keyA, t0)}, nil},
		{"another key, newer", &cur, claim(keyB, t0.Add(time.Second)),
			directory.Claim{Kind: directory.ClaimRetire, Holder: claim(keyB, t0.Add(time.Second)), Retired: cur}, nil},
		{"another key, as old", &cur, claim(keyB, t0), directory.Claim{}, directory.ErrConflict},
		{"another key, newer within the second", &cur, claim(keyB, t0.Add(time.Second-1)), directory.Claim{}, directory.ErrConflict},
		{"another key, older", &cur, claim(keyB, t0.Add(-time.Hour)), directory.Claim{}, directory.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := directory.DecideClaim(tt.current, tt.h)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if got.Kind != tt.want.Kind || got.Holder.KeyHash != tt.want.Holder.KeyHash ||
				!got.Holder.NotBefore.Equal(tt.want.Holder.NotBefore) || got.Holder.Label != tt.want.Holder.Label ||
				got.Retired.KeyHash != tt.want.Retired.KeyHash || !got.Retired.NotBefore.Equal(tt.want.Retired.NotBefore) {
				t.Errorf("DecideClaim = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestClaimHolderEntry(t *testing.T) {
	t0 := time.Unix(1_750_000_000, 0)
	var keyA, keyB, label [32]byte
	keyA[0], keyB[0], label[0] = 0xa, 0xb, 1
	a := directory.Holder{KeyHash: keyA, NotBefore: t0}
	b := directory.Holder{KeyHash: keyB, NotBefore: t0.Add(time.Second), Label: label}

	first, err := directory.DecideClaim(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	retire, err := directory.DecideClaim(&a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		c        directory.Claim
		retired  int
		previous [32]byte
	}{
		{"first", first, 0, [32]byte{}},
		{"retire", retire, 3, keyA},
	} {
		data, err := tc.c.HolderEntry(tc.retired)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		e, err := translog.Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if e.Kind != translog.Holder || e.Label != label || e.Key != keyB || e.Previous != tc.previous || e.Retired != tc.retired {
			t.Errorf("%s: entry = %+v", tc.name, e)
		}
	}

	renew, err := directory.DecideClaim(&a, directory.Holder{KeyHash: keyA, NotBefore: t0})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := renew.HolderEntry(0); err == nil {
		t.Errorf("a renewal's HolderEntry = %q, want an error (a renewal logs no Holder entry)", e)
	}
}

func TestStateLabel(t *testing.T) {
	label := make([]byte, 32)
	label[0], label[31] = 1, 0xff
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
