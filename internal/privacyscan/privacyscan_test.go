package privacyscan

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
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
