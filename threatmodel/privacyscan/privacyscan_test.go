package privacyscan

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The scanner must find each spelling, or a clean scan proves nothing.
func TestFindsEverySpelling(t *testing.T) {
	s, err := New("+14155550100")
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := Spellings("+14155550100")
	want := []string{"+14155550100", "14155550100", "(415) 555-0100", "4155550100", "+1 415-555-0100"}
	if len(sp) != len(want) {
		t.Fatalf("spellings %q", sp)
	}
	for i := range want {
		if sp[i] != want[i] {
			t.Errorf("spelling %d = %q, want %q", i, sp[i], want[i])
		}
	}
	dir := t.TempDir()
	for i, x := range want {
		os.WriteFile(filepath.Join(dir, string(rune('a'+i))), []byte("prefix "+x+" suffix"), 0o600)
	}
	os.WriteFile(filepath.Join(dir, "clean"), []byte("+1415555010 is another number"), 0o600)
	found, files, err := s.Dir(dir)
	if err != nil || files != 6 {
		t.Fatalf("Dir: %d files, %v", files, err)
	}
	hit := map[string]bool{}
	for _, f := range found {
		hit[filepath.Base(f.Where)] = true
	}
	for i := range want {
		if !hit[string(rune('a'+i))] {
			t.Errorf("missed spelling %q", want[i])
		}
	}
	if hit["clean"] {
		t.Error("false positive on a different number")
	}
}

// A bare hash of a number, in any common encoding, is a finding: a log
// label or index made that way would let anyone hash every number.
func TestFindsHashes(t *testing.T) {
	s, err := New("+14155550100")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("+14155550100"))
	for _, enc := range []string{string(h[:]), hex.EncodeToString(h[:]), "label " + base64.StdEncoding.EncodeToString(h[:]) + "\n"} {
		if len(s.Bytes("entry", []byte("x"+enc+"y"))) == 0 {
			t.Errorf("missed the hash encoded as %q", enc)
		}
	}
	other := sha256.Sum256([]byte("+14155550101"))
	if f := s.Bytes("entry", []byte(base64.StdEncoding.EncodeToString(other[:]))); len(f) != 0 {
		t.Errorf("another number's hash found: %v", f)
	}
}

// The one-pass search finds exactly what a search per spelling finds, on
// bytes full of digits, near-misses and every kind of needle.
func TestOnePassMatchesNaive(t *testing.T) {
	var numbers []string
	for i := range 50 {
		numbers = append(numbers, fmt.Sprintf("+1415555%04d", 100+i*7))
	}
	s, err := New(numbers...)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	needles := slices.Collect(maps.Keys(s.needles))
	slices.Sort(needles)
	for round := range 20 {
		var b []byte
		for len(b) < 200_000 {
			switch rng.IntN(4) {
			case 0: // random bytes
				for range rng.IntN(64) {
					b = append(b, byte(rng.Uint32()))
				}
			case 1: // digits and punctuation, like numbers that are not ours
				for range rng.IntN(32) {
					b = append(b, "0123456789+-() "[rng.IntN(15)])
				}
			case 2: // a needle, whole or cut short by one byte
				n := needles[rng.IntN(len(needles))]
				if rng.IntN(2) == 0 {
					n = n[:len(n)-1]
				}
				b = append(b, n...)
			default: // a needle's first 3 bytes only
				b = append(b, needles[rng.IntN(len(needles))][:3]...)
			}
		}
		var want []string
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				want = append(want, n)
			}
		}
		var got []string
		for _, f := range s.Bytes("round", b) {
			got = append(got, f.Spelling)
			if f.Number != s.needles[f.Spelling] {
				t.Fatalf("round %d: %q attributed to %s", round, f.Spelling, f.Number)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: one pass found %d spellings, a search per spelling %d", round, len(got), len(want))
		}
		if len(want) == 0 {
			t.Fatalf("round %d: no needle in the data: the comparison proves nothing", round)
		}
	}
}
