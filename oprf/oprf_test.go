package oprf

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gtank/ristretto255"
)

var testInfo = []byte("blindex lookup epoch 1")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Encodings that RFC 9496 Section 4.3.1 decoding must reject, from its list of
// bad encodings. Several encode field elements >= p, and "edff...7f" is p itself,
// a non-canonical encoding of zero: accepted, it would smuggle in the identity.
var nonCanonical = [][]byte{
	mustHex("00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
	mustHex("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
	mustHex("f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
	mustHex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
	mustHex("0100000000000000000000000000000000000000000000000000000000000000"), // negative
	mustHex("01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), // negative
	mustHex("26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371"), // non-square
}

var identity = make([]byte, ElementSize)

func newTestKey(t testing.TB) *PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// roundTrip runs one blinded batch and returns the client state and the reply.
func roundTrip(t testing.TB, ev *Evaluator, inputs [][]byte) (*Blinding, [][]byte, [][]byte, []byte) {
	t.Helper()
	b, blinded, err := Blind(inputs)
	if err != nil {
		t.Fatal(err)
	}
	evaluated, proof, err := ev.Evaluate(testInfo, blinded)
	if err != nil {
		t.Fatal(err)
	}
	return b, blinded, evaluated, proof
}

func testInputs(n int) [][]byte {
	in := make([][]byte, n)
	for i := range in {
		in[i] = fmt.Appendf(nil, "+1415555%04d", i)
	}
	return in
}

func wantErr(t *testing.T, err error, sentinels ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", sentinels)
	}
	for _, s := range sentinels {
		if !errors.Is(err, s) {
			t.Fatalf("got %v, want %v", err, s)
		}
	}
}

func TestRoundTripMatchesFullEvaluate(t *testing.T) {
	k := newTestKey(t)
	ev := NewEvaluator(k)
	inputs := testInputs(5)
	b, blinded, evaluated, proof := roundTrip(t, ev, inputs)
	if len(blinded) != len(inputs) || len(evaluated) != len(inputs) || len(proof) != ProofSize {
		t.Fatalf("sizes: %d blinded, %d evaluated, %d-byte proof", len(blinded), len(evaluated), len(proof))
	}
	out, err := b.Finalize(k.Public(), testInfo, evaluated, proof)
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range inputs {
		want, err := ev.FullEvaluate(testInfo, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(out[i]) != OutputSize || !bytes.Equal(out[i], want) {
			t.Errorf("output %d = %x, want %x", i, out[i], want)
		}
	}
	if bytes.Equal(out[0], out[1]) {
		t.Error("different inputs gave the same output")
	}

	// The same input under another info is an unrelated output.
	other, err := ev.FullEvaluate([]byte("blindex lookup epoch 2"), inputs[0])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other, out[0]) {
		t.Error("info does not change the output")
	}
}

func TestBlindingIsFresh(t *testing.T) {
	in := [][]byte{[]byte("+14155550100")}
	_, b1, err := Blind(in)
	if err != nil {
		t.Fatal(err)
	}
	_, b2, err := Blind(in)
	if err != nil {
		t.Fatal(err)
	}
	// The server must not be able to link two lookups of the same number.
	if bytes.Equal(b1[0], b2[0]) {
		t.Error("blinding the same input twice gave the same element")
	}
}

func TestEmptyInfo(t *testing.T) {
	k := newTestKey(t)
	ev := NewEvaluator(k)
	b, blinded, err := Blind([][]byte{{}})
	if err != nil {
		t.Fatal(err)
	}
	evaluated, proof, err := ev.Evaluate(nil, blinded)
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Finalize(k.Public(), []byte{}, evaluated, proof)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ev.FullEvaluate(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out[0], want) {
		t.Error("empty input and info: Finalize and FullEvaluate disagree")
	}
}

func TestBatchLimits(t *testing.T) {
	ev := NewEvaluator(newTestKey(t))
	_, valid, err := Blind(testInputs(1))
	if err != nil {
		t.Fatal(err)
	}
	tooMany := make([][]byte, MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = valid[0]
	}

	_, _, err = Blind(nil)
	wantErr(t, err, ErrBatchEmpty)
	_, _, err = ev.Evaluate(testInfo, nil)
	wantErr(t, err, ErrBatchEmpty)
	_, _, err = ev.Evaluate(testInfo, [][]byte{})
	wantErr(t, err, ErrBatchEmpty)

	_, _, err = Blind(testInputs(MaxBatch + 1))
	wantErr(t, err, ErrBatchTooLarge)
	_, _, err = ev.Evaluate(testInfo, tooMany)
	wantErr(t, err, ErrBatchTooLarge)
	if !strings.Contains(err.Error(), "1024") {
		t.Errorf("error %q does not name the limit", err)
	}

	// Exactly MaxBatch is allowed.
	if _, _, err := ev.Evaluate(testInfo, tooMany[:MaxBatch]); err != nil {
		t.Errorf("batch of MaxBatch: %v", err)
	}
}

func TestEvaluateRejectsBadElements(t *testing.T) {
	ev := NewEvaluator(newTestKey(t))
	_, valid, err := Blind(testInputs(1))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, elem []byte, want error) {
		t.Helper()
		// Put the bad element second so the batch has a valid one before it.
		got, proof, err := ev.Evaluate(testInfo, [][]byte{valid[0], elem})
		if !errors.Is(err, want) || got != nil || proof != nil {
			t.Errorf("%s: got %v (%d elements), want %v", name, err, len(got), want)
		}
		if err != nil && !strings.Contains(err.Error(), "index 1") {
			t.Errorf("%s: error %q does not name the element", name, err)
		}
	}
	check("identity", identity, ErrIdentity)
	for _, n := range []int{0, 31, 33} {
		check(fmt.Sprintf("%d bytes", n), make([]byte, n), ErrElement)
	}
	check("33 bytes from valid", append(bytes.Clone(valid[0]), 0), ErrElement)
	check("31 bytes from valid", valid[0][:31], ErrElement)
	check("nil", nil, ErrElement)
	for i, b := range nonCanonical {
		check(fmt.Sprintf("non-canonical %d", i), b, ErrElement)
	}
}

func TestInfoAndInputLimits(t *testing.T) {
	ev := NewEvaluator(newTestKey(t))
	long := make([]byte, 1<<16)
	b, blinded, evaluated, proof := roundTrip(t, ev, testInputs(1))

	_, _, err := ev.Evaluate(long, blinded)
	wantErr(t, err, ErrInfo)
	_, err = ev.FullEvaluate(long, []byte("x"))
	wantErr(t, err, ErrInfo)
	_, err = b.Finalize(newTestKey(t).Public(), long, evaluated, proof)
	wantErr(t, err, ErrInfo)

	_, err = ev.FullEvaluate(testInfo, long)
	wantErr(t, err, ErrInput)
	_, _, err = Blind([][]byte{long})
	wantErr(t, err, ErrInput)

	// The largest lengths the two-byte prefix can carry still work.
	if _, err := ev.FullEvaluate(long[1:], long[1:]); err != nil {
		t.Errorf("65535-byte info and input: %v", err)
	}
}

func TestFinalizeRejects(t *testing.T) {
	k := newTestKey(t)
	ev := NewEvaluator(k)
	pk := k.Public()
	b, _, evaluated, proof := roundTrip(t, ev, testInputs(3))
	if _, err := b.Finalize(pk, testInfo, evaluated, proof); err != nil {
		t.Fatal(err)
	}
	replace := func(i int, e []byte) [][]byte {
		out := slicesClone(evaluated)
		out[i] = e
		return out
	}

	t.Run("identity", func(t *testing.T) {
		_, err := b.Finalize(pk, testInfo, replace(1, identity), proof)
		wantErr(t, err, ErrIdentity)
	})
	t.Run("lengths", func(t *testing.T) {
		for _, n := range []int{0, 31, 33} {
			_, err := b.Finalize(pk, testInfo, replace(1, make([]byte, n)), proof)
			wantErr(t, err, ErrElement)
		}
	})
	t.Run("non-canonical", func(t *testing.T) {
		for _, e := range nonCanonical {
			_, err := b.Finalize(pk, testInfo, replace(1, e), proof)
			wantErr(t, err, ErrElement)
		}
	})
	t.Run("substituted", func(t *testing.T) {
		// A valid element the proof does not cover.
		_, other, _, _ := roundTrip(t, ev, testInputs(1))
		_, err := b.Finalize(pk, testInfo, replace(1, other[0]), proof)
		wantErr(t, err, ErrProof)
	})
	t.Run("reordered", func(t *testing.T) {
		r := slicesClone(evaluated)
		r[0], r[1] = r[1], r[0]
		_, err := b.Finalize(pk, testInfo, r, proof)
		wantErr(t, err, ErrProof)
	})
	t.Run("truncated", func(t *testing.T) {
		_, err := b.Finalize(pk, testInfo, evaluated[:2], proof)
		wantErr(t, err, ErrBatchMismatch)
		_, err = b.Finalize(pk, testInfo, nil, proof)
		wantErr(t, err, ErrBatchMismatch)
	})
	t.Run("extended", func(t *testing.T) {
		_, err := b.Finalize(pk, testInfo, append(slicesClone(evaluated), evaluated[0]), proof)
		wantErr(t, err, ErrBatchMismatch)
	})
	t.Run("wrong key", func(t *testing.T) {
		_, err := b.Finalize(newTestKey(t).Public(), testInfo, evaluated, proof)
		wantErr(t, err, ErrProof)
	})
	t.Run("wrong info", func(t *testing.T) {
		_, err := b.Finalize(pk, []byte("blindex lookup epoch 2"), evaluated, proof)
		wantErr(t, err, ErrProof)
		_, err = b.Finalize(pk, nil, evaluated, proof)
		wantErr(t, err, ErrProof)
	})
	t.Run("evaluated under wrong info", func(t *testing.T) {
		// A server answering under another epoch than the client asked for.
		b, blinded, err := Blind(testInputs(1))
		if err != nil {
			t.Fatal(err)
		}
		e, p, err := ev.Evaluate([]byte("other"), blinded)
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Finalize(pk, testInfo, e, p)
		wantErr(t, err, ErrProof)
	})
	t.Run("nil key", func(t *testing.T) {
		_, err := b.Finalize(nil, testInfo, evaluated, proof)
		wantErr(t, err, ErrKey)
	})
	t.Run("proof lengths", func(t *testing.T) {
		for _, p := range [][]byte{nil, proof[:ProofSize-1], append(bytes.Clone(proof), 0)} {
			_, err := b.Finalize(pk, testInfo, evaluated, p)
			wantErr(t, err, ErrProof)
		}
	})
	t.Run("tampered proof", func(t *testing.T) {
		for i := range proof {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				p := bytes.Clone(proof)
				p[i] ^= mask
				if _, err := b.Finalize(pk, testInfo, evaluated, p); !errors.Is(err, ErrProof) {
					t.Fatalf("proof byte %d ^ %#x: got %v, want ErrProof", i, mask, err)
				}
			}
		}
	})
	t.Run("unreduced proof scalar", func(t *testing.T) {
		// s above the group order: circl must not reduce it into a second
		// encoding of a valid proof.
		p := bytes.Clone(proof)
		p[ScalarSize:][31] |= 0xf0
		_, err := b.Finalize(pk, testInfo, evaluated, p)
		wantErr(t, err, ErrProof)
	})
	t.Run("another batch's proof", func(t *testing.T) {
		_, _, e2, p2 := roundTrip(t, ev, testInputs(3))
		_, err := b.Finalize(pk, testInfo, evaluated, p2)
		wantErr(t, err, ErrProof)
		_, err = b.Finalize(pk, testInfo, e2, p2)
		wantErr(t, err, ErrProof)
	})
}

func slicesClone(s [][]byte) [][]byte { return append([][]byte(nil), s...) }

func TestKeys(t *testing.T) {
	k := newTestKey(t)
	k2, err := ParsePrivateKey(k.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k2.Bytes(), k.Bytes()) || !k2.Public().Equal(k.Public()) {
		t.Error("private key does not round-trip")
	}
	pk, err := ParsePublicKey(k.Public().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !pk.Equal(k.Public()) || len(pk.Bytes()) != ElementSize || len(k.Bytes()) != ScalarSize {
		t.Error("public key does not round-trip")
	}
	if pk.Equal(newTestKey(t).Public()) || pk.Equal(nil) {
		t.Error("Equal is true for a different key")
	}
	var nilKey *PublicKey
	if !nilKey.Equal(nil) {
		t.Error("nil keys are not equal")
	}

	// Bytes returns a copy: callers cannot change the key through it.
	kb := k.Bytes()
	kb[0] ^= 1
	pb := k.Public().Bytes()
	pb[0] ^= 1
	if bytes.Equal(kb, k.Bytes()) || bytes.Equal(pb, k.Public().Bytes()) {
		t.Error("Bytes aliases the key")
	}
}

func TestParsePrivateKeyRejects(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		make([]byte, 31),
		make([]byte, 33),
		make([]byte, ScalarSize),               // zero
		bytes.Repeat([]byte{0xff}, ScalarSize), // not reduced
		mustHex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"), // the group order
	} {
		if _, err := ParsePrivateKey(b); !errors.Is(err, ErrKey) {
			t.Errorf("ParsePrivateKey(%x) = %v, want ErrKey", b, err)
		}
	}
}

func TestParsePublicKeyRejects(t *testing.T) {
	_, err := ParsePublicKey(identity)
	wantErr(t, err, ErrKey, ErrIdentity)
	for _, n := range []int{0, 31, 33} {
		_, err := ParsePublicKey(bytes.Repeat([]byte{1}, n))
		wantErr(t, err, ErrKey, ErrElement)
	}
	for _, b := range nonCanonical {
		_, err := ParsePublicKey(b)
		wantErr(t, err, ErrKey, ErrElement)
	}
}

func TestEncodeElementRejectsIdentity(t *testing.T) {
	// Evaluate checks its outputs with this; no honest evaluation reaches it.
	if _, err := encodeElement(nil, ristretto255.NewElement()); !errors.Is(err, ErrIdentity) {
		t.Errorf("encodeElement(identity) = %v, want ErrIdentity", err)
	}
	var g ristretto255.Element
	if _, err := encodeElements([]ristretto255.Element{*g.Base(), *ristretto255.NewElement()}); !errors.Is(err, ErrIdentity) {
		t.Errorf("encodeElements with identity = %v, want ErrIdentity", err)
	}
}

func TestEvaluateConcurrent(t *testing.T) {
	k := newTestKey(t)
	ev := NewEvaluator(k)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			b, blinded, err := Blind(testInputs(4))
			if err != nil {
				errs <- err
				return
			}
			e, p, err := ev.Evaluate(testInfo, blinded)
			if err != nil {
				errs <- err
				return
			}
			if _, err := b.Finalize(k.Public(), testInfo, e, p); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestErrorMessages(t *testing.T) {
	for _, err := range sentinels {
		if !strings.HasPrefix(err.Error(), "oprf: ") {
			t.Errorf("%q lacks the package prefix", err)
		}
	}
	if ErrBatchTooLarge.Error() != "oprf: batch larger than 1024 elements" {
		t.Errorf("ErrBatchTooLarge = %q", ErrBatchTooLarge)
	}
}

var sentinels = []error{
	ErrIdentity, ErrElement, ErrBatchEmpty, ErrBatchTooLarge, ErrBatchMismatch,
	ErrProof, ErrKey, ErrNumber, ErrInput, ErrInfo,
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func FuzzEvaluate(f *testing.F) {
	k, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	ev := NewEvaluator(k)
	_, valid, err := Blind(testInputs(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid[0])
	f.Add(identity)
	f.Add([]byte{})
	f.Add(make([]byte, 31))
	f.Add(make([]byte, 33))
	for _, b := range nonCanonical {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, elem []byte) {
		got, proof, err := ev.Evaluate(testInfo, [][]byte{elem})
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("non-sentinel error %v", err)
			}
			return
		}
		if len(got) != 1 || len(got[0]) != ElementSize || len(proof) != ProofSize {
			t.Fatalf("got %d elements, %d-byte proof", len(got), len(proof))
		}
		if bytes.Equal(got[0], identity) {
			t.Fatal("evaluated to the identity")
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	k, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.Public().Bytes())
	f.Add(identity)
	f.Add([]byte{1, 2, 3})
	for _, b := range nonCanonical {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := ParsePublicKey(b)
		if err != nil {
			if !errors.Is(err, ErrKey) {
				t.Fatalf("error %v does not wrap ErrKey", err)
			}
			return
		}
		// One key, one encoding.
		if !bytes.Equal(pk.Bytes(), b) {
			t.Fatalf("ParsePublicKey(%x).Bytes() = %x", b, pk.Bytes())
		}
	})
}

func TestZeroBlinding(t *testing.T) {
	var b Blinding
	_, err := b.Finalize(newTestKey(t).Public(), testInfo, nil, make([]byte, ProofSize))
	wantErr(t, err, ErrBatchEmpty)
}
