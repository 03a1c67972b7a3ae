package oprf

import (
	"bytes"
	"errors"
	"testing"
)

func TestProvedEvaluation(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ev := NewEvaluator(k)
	info, input := []byte("blindex log label v1"), []byte("+14155550100")
	u, err := Unblinded(input)
	if err != nil {
		t.Fatal(err)
	}
	evaluated, proof, err := ev.Evaluate(info, [][]byte{u})
	if err != nil {
		t.Fatal(err)
	}
	y, err := VerifyProved(k.Public(), info, input, evaluated[0], proof)
	if err != nil {
		t.Fatalf("VerifyProved: %v", err)
	}
	full, err := ev.FullEvaluate(info, input)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(y, full) {
		t.Fatal("proved output differs from FullEvaluate's")
	}
	// The output claimed, unchecked, is the proved one.
	if claimed, err := ProvedOutput(info, input, evaluated[0]); err != nil || !bytes.Equal(claimed, full) {
		t.Errorf("ProvedOutput = %x, %v; want FullEvaluate's %x", claimed, err, full)
	}
	if _, err := ProvedOutput(info, input, make([]byte, ElementSize)); err == nil {
		t.Error("ProvedOutput accepted the identity")
	}
	if _, err := ProvedOutput(info, input, []byte("short")); err == nil {
		t.Error("ProvedOutput accepted a malformed element")
	}
	// Another input, info or key fails the proof.
	if _, err := VerifyProved(k.Public(), info, []byte("+14155550101"), evaluated[0], proof); !errors.Is(err, ErrProof) {
		t.Errorf("other input: err = %v, want ErrProof", err)
	}
	if _, err := VerifyProved(k.Public(), []byte("blindex lookup v1"), input, evaluated[0], proof); !errors.Is(err, ErrProof) {
		t.Errorf("other info: err = %v, want ErrProof", err)
	}
	k2, _ := GenerateKey()
	if _, err := VerifyProved(k2.Public(), info, input, evaluated[0], proof); !errors.Is(err, ErrProof) {
		t.Errorf("other key: err = %v, want ErrProof", err)
	}
	// The identity is refused, not proved.
	if _, err := VerifyProved(k.Public(), info, input, make([]byte, ElementSize), proof); err == nil {
		t.Error("identity element accepted")
	}
}
