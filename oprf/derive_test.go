package oprf

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestLabelsDistinct(t *testing.T) {
	labels := []string{LabelIndex, LabelRecordKey, LabelPseudonym, LabelRecordID}
	for i, a := range labels {
		if !strings.HasPrefix(a, "blindex v1 ") {
			t.Errorf("label %q lacks the version prefix", a)
		}
		for _, b := range labels[i+1:] {
			if a == b {
				t.Errorf("label %q is used twice", a)
			}
			// RecordID's info is LabelRecordID || 0x00 || appID; no other
			// label may look like one.
			if strings.HasPrefix(b, LabelRecordID+"\x00") || strings.HasPrefix(a, LabelRecordID+"\x00") {
				t.Errorf("label %q or %q collides with a RecordID info", a, b)
			}
		}
	}
}

func TestDerivationsDiffer(t *testing.T) {
	y := bytes.Repeat([]byte{0x42}, OutputSize)
	outs := map[string][DerivedSize]byte{
		"index":          Index(y),
		"record key":     RecordKey(y),
		"pseudonym":      Pseudonym(y),
		"record id a":    RecordID(y, "app.example.a"),
		"record id b":    RecordID(y, "app.example.b"),
		"record id \"\"": RecordID(y, ""),
	}
	seen := map[[DerivedSize]byte]string{}
	for name, v := range outs {
		if v == ([DerivedSize]byte{}) {
			t.Errorf("%s is all zero", name)
		}
		if other, ok := seen[v]; ok {
			t.Errorf("%s and %s are equal", name, other)
		}
		seen[v] = name
	}

	// Each depends on y.
	y2 := bytes.Clone(y)
	y2[OutputSize-1] ^= 1
	if Index(y) == Index(y2) || RecordKey(y) == RecordKey(y2) || Pseudonym(y) == Pseudonym(y2) ||
		RecordID(y, "a") == RecordID(y2, "a") {
		t.Error("a derivation ignores part of y")
	}
}

func TestDerivationsAreHKDF(t *testing.T) {
	// Pin the construction so docs/protocol.md can state it: HKDF-SHA256,
	// empty salt, ikm = y, info = label (|| 0x00 || appID for RecordID).
	y := bytes.Repeat([]byte{7}, OutputSize)
	for _, tt := range []struct {
		got  [DerivedSize]byte
		info string
	}{
		{Index(y), "blindex v1 index"},
		{RecordKey(y), "blindex v1 record key"},
		{Pseudonym(y), "blindex v1 caller pseudonym"},
		{RecordID(y, "chat"), "blindex v1 record id\x00chat"},
	} {
		want, err := hkdf.Key(sha256.New, y, nil, tt.info, DerivedSize)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tt.got[:], want) {
			t.Errorf("derivation for %q = %x, want %x", tt.info, tt.got, want)
		}
	}
}

func TestDerivationPanicsOnShortInput(t *testing.T) {
	for _, y := range [][]byte{nil, make([]byte, OutputSize-1), make([]byte, OutputSize+1)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Index(%d bytes) did not panic", len(y))
				}
			}()
			Index(y)
		}()
	}
}
