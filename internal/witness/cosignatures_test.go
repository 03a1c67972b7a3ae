package witness_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"blindex.dev/blindex/internal/witness"
	"golang.org/x/mod/sumdb/note"
)

func TestRequireCosignatures(t *testing.T) {
	l := newTestLog(t, "log.example.com/a")
	l.grow(t, 4, "")
	cp := l.checkpoint(t, 4)
	w1 := newCosigner(t, "witness.example.com/w1")
	w2 := newCosigner(t, "witness.example.com/w2")
	w3 := newCosigner(t, "witness.example.com/w3")
	stranger := newCosigner(t, "witness.example.com/stranger")
	impostor := newCosigner(t, "witness.example.com/w1") // w1's name, another key
	all := []note.Verifier{w1.Verifier(), w2.Verifier(), w3.Verifier()}
	logV := l.verifier(t)

	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	twoCosigned := join(cp, cosignLines(t, cp, w1), cosignLines(t, cp, w2), cosignLines(t, cp, stranger))

	for k := 0; k <= 2; k++ {
		n, err := witness.RequireCosignatures(twoCosigned, logV, all, k)
		if err != nil {
			t.Fatalf("k=%d: %v", k, err)
		}
		if n.Text != l.text(t, 4) {
			t.Errorf("k=%d: text %q", k, n.Text)
		}
	}

	tests := []struct {
		desc      string
		note      []byte
		log       note.Verifier
		witnesses []note.Verifier
		k         int
		want      error // nil for InsufficientCosignaturesError
		found     int
	}{
		{"k not met", twoCosigned, logV, all, 3, nil, 2},
		{"no cosignatures", cp, logV, all, 1, nil, 0},
		{"only unknown cosigner", join(cp, cosignLines(t, cp, stranger)), logV, all, 1, nil, 0},
		{"witness listed twice", join(cp, cosignLines(t, cp, w1)), logV, []note.Verifier{w1.Verifier(), w1.Verifier()}, 2, nil, 1},
		{"cosignature repeated", join(cp, cosignLines(t, cp, w1), cosignLines(t, cp, w1)), logV, all, 2, nil, 1},
		{"log listed as witness", twoCosigned, logV, []note.Verifier{logV, w1.Verifier()}, 2, nil, 1},
		{"no witnesses given", twoCosigned, logV, nil, 1, nil, 0},
		{"impostor cosignature", join(cp, cosignLines(t, cp, impostor)), logV, all, 1, nil, 0},
		{"impostor claiming w1's key hash", join(cp, cosignLines(t, cp, w2), forgeKeyHash(t, cosignLines(t, cp, impostor), w1.KeyHash())), logV, all, 1, witness.ErrInvalidSignature, 0},
		{"cosignature of another checkpoint", join(cp, cosignLines(t, l.checkpoint(t, 3), w1)), logV, all, 1, witness.ErrInvalidSignature, 0},
		{"tampered checkpoint", bytes.Replace(twoCosigned, []byte("\n4\n"), []byte("\n5\n"), 1), logV, all, 1, witness.ErrInvalidSignature, 0},
		{"cosigned but not by the log", join([]byte(l.text(t, 4)), []byte("\n"), cosignLines(t, cp, w1), cosignLines(t, cp, w2)), logV, all, 1, witness.ErrLogSignature, 0},
		{"wrong log key", twoCosigned, newTestLog(t, "log.example.com/a").verifier(t), all, 1, witness.ErrLogSignature, 0},
		{"not a checkpoint", l.sign(t, "hello\n"), logV, all, 0, witness.ErrMalformedCheckpoint, 0},
		{"not a note", []byte(l.text(t, 4)), logV, all, 0, witness.ErrMalformedCheckpoint, 0},
		{"empty", nil, logV, all, 0, witness.ErrMalformedCheckpoint, 0},
		{"negative k", twoCosigned, logV, all, -1, witness.ErrInvalidArgument, 0},
		{"nil log verifier", twoCosigned, nil, all, 1, witness.ErrInvalidArgument, 0},
		{"nil witness", twoCosigned, logV, []note.Verifier{nil}, 1, witness.ErrInvalidArgument, 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			n, err := witness.RequireCosignatures(tt.note, tt.log, tt.witnesses, tt.k)
			if n != nil {
				t.Errorf("returned a note with error %v", err)
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				return
			}
			var insufficient *witness.InsufficientCosignaturesError
			if !errors.As(err, &insufficient) {
				t.Fatalf("err = %v, want InsufficientCosignaturesError", err)
			}
			if insufficient.Found != tt.found || insufficient.Required != tt.k {
				t.Errorf("found %d of %d, want %d of %d", insufficient.Found, insufficient.Required, tt.found, tt.k)
			}
		})
	}

	_, err := witness.RequireCosignatures(twoCosigned, logV, all, 3)
	if got, want := err.Error(), "witness: checkpoint has 2 valid cosignatures from known witnesses, need 3"; got != want {
		t.Errorf("error message %q, want %q", got, want)
	}
}

// forgeKeyHash rewrites the key hash of a signature line.
func forgeKeyHash(t *testing.T, line []byte, hash uint32) []byte {
	t.Helper()
	s := strings.TrimSuffix(string(line), "\n")
	i := strings.LastIndex(s, " ")
	raw, err := base64.StdEncoding.DecodeString(s[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(raw, hash)
	return []byte(s[:i+1] + base64.StdEncoding.EncodeToString(raw) + "\n")
}

// TestRequireCosignaturesEveryByte changes every byte of a cosigned
// checkpoint. Each change must be rejected, or leave the same signed
// statement: the same text and the same signature bytes (base64 has
// encodings that differ only in unused bits).
func TestRequireCosignaturesEveryByte(t *testing.T) {
	l := newTestLog(t, "log.example.com/a")
	l.grow(t, 4, "")
	cp := l.checkpoint(t, 4)
	w1 := newCosigner(t, "witness.example.com/w1")
	w2 := newCosigner(t, "witness.example.com/w2")
	ws := []note.Verifier{w1.Verifier(), w2.Verifier()}
	signed := bytes.Join([][]byte{cp, cosignLines(t, cp, w1), cosignLines(t, cp, w2)}, nil)
	orig, err := witness.RequireCosignatures(signed, l.verifier(t), ws, 2)
	if err != nil {
		t.Fatal(err)
	}
	rawSigs := func(n *note.Note) string {
		var b strings.Builder
		for _, s := range n.Sigs {
			raw, err := base64.StdEncoding.DecodeString(s.Base64)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(s.Name + " " + string(raw) + "\n")
		}
		return b.String()
	}
	for i := range signed {
		for _, flip := range []byte{0x01, 0x20, 0x80} {
			mutated := bytes.Clone(signed)
			mutated[i] ^= flip
			n, err := witness.RequireCosignatures(mutated, l.verifier(t), ws, 2)
			if err != nil {
				continue
			}
			if n.Text != orig.Text || rawSigs(n) != rawSigs(orig) {
				t.Errorf("byte %d ^ %#x: accepted a different statement:\n%s", i, flip, mutated)
			}
		}
	}
}
