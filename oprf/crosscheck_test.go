package oprf

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	circlexpander "github.com/cloudflare/circl/expander"
	circl "github.com/cloudflare/circl/oprf"
	"github.com/gtank/ristretto255"
)

// randomBatch returns n random inputs of 0 to 40 bytes and a random info of 0
// to 30 bytes.
func randomBatch(n int) (inputs [][]byte, info []byte) {
	inputs = make([][]byte, n)
	for i := range inputs {
		inputs[i] = make([]byte, mrand.IntN(41))
		rand.Read(inputs[i])
	}
	info = make([]byte, mrand.IntN(31))
	rand.Read(info)
	return inputs, info
}

// TestCrossCircl runs random batches both ways between this package and
// circl's POPRF: our blinding, evaluation and proof against circl's, our
// proof through circl's Finalize, and circl's proof through ours.
func TestCrossCircl(t *testing.T) {
	for _, n := range []int{1, 2, 10, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			k := newTestKey(t)
			ev := NewEvaluator(k)
			cServer := circl.NewPartialObliviousServer(suite, circlPrivateKey(t, k))
			cClient := circl.NewPartialObliviousClient(suite, circlPublicKey(t, k.Public()))
			if got, err := cServer.PublicKey().MarshalBinary(); err != nil || !bytes.Equal(got, k.Public().Bytes()) {
				t.Fatalf("circl's public key %x, ours %x (%v)", got, k.Public().Bytes(), err)
			}
			inputs, info := randomBatch(n)

			// Blinding: the same blinds give the same blinded elements.
			blinding, blinded, err := Blind(inputs)
			if err != nil {
				t.Fatal(err)
			}
			fin, req := circlBlinding(t, cClient, blinding)
			if got := circlEncode(t, req.Elements); !equalLists(got, blinded) {
				t.Fatal("circl blinds the same inputs and blinds to other elements")
			}

			// Evaluation: deterministic, so byte for byte circl's.
			evaluated, proof, err := ev.Evaluate(info, blinded)
			if err != nil {
				t.Fatal(err)
			}
			cEval, err := cServer.Evaluate(req, info)
			if err != nil {
				t.Fatal(err)
			}
			cEvaluated := circlEncode(t, cEval.Elements)
			if !equalLists(evaluated, cEvaluated) {
				t.Fatal("evaluated elements differ from circl's")
			}
			cProof, err := cEval.Proof.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}

			// Our proof in circl's Finalize.
			cOut, err := cClient.Finalize(fin, &circl.Evaluation{Elements: circlElements(t, evaluated), Proof: circlProof(t, proof)}, info)
			if err != nil {
				t.Fatalf("circl rejects our proof: %v", err)
			}
			// circl's proof in our Finalize.
			out, err := blinding.Finalize(k.Public(), info, cEvaluated, cProof)
			if err != nil {
				t.Fatalf("we reject circl's proof: %v", err)
			}
			if !equalLists(out, cOut) {
				t.Fatal("outputs differ from circl's")
			}
			// Our proof in our Finalize, and FullEvaluate, give the same outputs.
			out2, err := blinding.Finalize(k.Public(), info, evaluated, proof)
			if err != nil {
				t.Fatal(err)
			}
			if !equalLists(out2, out) {
				t.Fatal("outputs depend on whose proof was checked")
			}
			for _, i := range []int{0, n / 2, n - 1} {
				want, err := cServer.FullEvaluate(inputs[i], info)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ev.FullEvaluate(info, inputs[i])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) || !bytes.Equal(out[i], want) {
					t.Fatalf("output %d: FullEvaluate %x, Finalize %x, circl %x", i, got, out[i], want)
				}
			}

			// Neither side accepts a proof for other info.
			other := append(bytes.Clone(info), 'x')
			if _, err := cClient.Finalize(fin, &circl.Evaluation{Elements: circlElements(t, evaluated), Proof: circlProof(t, proof)}, other); !errors.Is(err, circl.ErrInvalidProof) {
				t.Errorf("circl accepts our proof under other info: %v", err)
			}
			if _, err := blinding.Finalize(k.Public(), other, cEvaluated, cProof); !errors.Is(err, ErrProof) {
				t.Errorf("we accept circl's proof under other info: %v", err)
			}
		})
	}
}

// TestTweakCache checks outputs under more infos than the cache holds, each
// twice, against circl, and that the cache stays bounded.
func TestTweakCache(t *testing.T) {
	k := newTestKey(t)
	ev := NewEvaluator(k)
	cServer := circl.NewPartialObliviousServer(suite, circlPrivateKey(t, k))
	input := []byte("+14155550100")
	for round := range 2 {
		for i := range maxTweaks + 4 {
			info := fmt.Appendf(nil, "info %d", i)
			want, err := cServer.FullEvaluate(input, info)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ev.FullEvaluate(info, input)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d, info %d: %x, want %x", round, i, got, want)
			}
		}
	}
	if len(ev.tweaks) != maxTweaks {
		t.Errorf("cache holds %d tweaks, want %d", len(ev.tweaks), maxTweaks)
	}
}

// TestExpanderMatchesCircl checks expand_message_xmd and both hashes against
// circl's for random messages, DSTs and message splits.
func TestExpanderMatchesCircl(t *testing.T) {
	for i := range 200 {
		msg := make([]byte, mrand.IntN(400))
		rand.Read(msg)
		dst := fmt.Sprintf("DST %d %x", i, msg[:min(len(msg), mrand.IntN(100))])
		cut := mrand.IntN(len(msg) + 1)

		got := newExpander(dst).expand(msg[:cut], msg[cut:])
		want := circlexpander.NewExpanderMD(crypto.SHA512, []byte(dst)).Expand(msg, 64)
		if !bytes.Equal(got, want) {
			t.Fatalf("expand(%x, %q) = %x, want %x", msg, dst, got, want)
		}

		s := newExpander(dst).scalar(ristretto255.NewScalar(), msg)
		if cs, _ := grp.HashToScalar(msg, []byte(dst)).MarshalBinary(); !bytes.Equal(s.Encode(nil), cs) {
			t.Fatalf("HashToScalar(%x) = %x, circl %x", msg, s.Encode(nil), cs)
		}
		e := newExpander(dst).element(ristretto255.NewElement(), msg)
		if ce, _ := grp.HashToElement(msg, []byte(dst)).MarshalBinaryCompress(); !bytes.Equal(e.Encode(nil), ce) {
			t.Fatalf("HashToGroup(%x) = %x, circl %x", msg, e.Encode(nil), ce)
		}
	}
}

func TestInvertAll(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 17, 1024} {
		s := make([]ristretto255.Scalar, n)
		for i := range s {
			randomScalar(&s[i])
		}
		inv := invertAll(s)
		if len(inv) != n {
			t.Fatalf("%d inverses of %d scalars", len(inv), n)
		}
		var want ristretto255.Scalar
		for i := range s {
			if want.Invert(&s[i]); want.Equal(&inv[i]) != 1 {
				t.Fatalf("n=%d: inverse %d wrong", n, i)
			}
		}
	}
}

// TestComposites checks the prover's fast composite Z = t·M against the
// verifier's Z = Σ d_i·D_i and circl's.
func TestComposites(t *testing.T) {
	k := newTestKey(t)
	ev := NewEvaluator(k)
	_, blinded, err := Blind(testInputs(50))
	if err != nil {
		t.Fatal(err)
	}
	evaluated, _, err := ev.Evaluate(testInfo, blinded)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := ev.tweak(testInfo)
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeElements(evaluated)
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeElements(blinded)
	if err != nil {
		t.Fatal(err)
	}
	w := compositeWeights(tw.key, evaluated, blinded)
	m := publicMultiScalarMult(w, c)
	fast := ristretto255.NewElement().ScalarMult(&tw.t, m)
	if z := publicMultiScalarMult(w, d); z.Equal(fast) != 1 {
		t.Fatal("t·M differs from the sum of d_i·D_i")
	}
	// The same M in circl, element by element.
	cm := grp.Identity()
	ce := circlElements(t, evaluated)
	for i := range w {
		cm.Add(cm, grp.NewElement().Mul(ce[i], circlScalar(t, w[i].Encode(nil))))
	}
	if got, _ := cm.MarshalBinaryCompress(); !bytes.Equal(got, m.Encode(nil)) {
		t.Fatal("M differs from circl's")
	}
}

// FuzzDecodeElement: decoding accepts exactly what circl accepts, less the
// identity, and only canonical encodings (one element, one encoding).
func FuzzDecodeElement(f *testing.F) {
	f.Add(identity)
	f.Add(make([]byte, 31))
	f.Add(ristretto255.NewElement().Base().Encode(nil))
	for _, b := range nonCanonical {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e ristretto255.Element
		err := decodeElement(&e, b)
		ce := grp.NewElement()
		cErr := ce.UnmarshalBinary(b)
		if len(b) == ElementSize && cErr == nil && ce.IsIdentity() {
			if !errors.Is(err, ErrIdentity) {
				t.Fatalf("identity %x: %v", b, err)
			}
			return
		}
		if (err == nil) != (cErr == nil) {
			t.Fatalf("%x: we say %v, circl %v", b, err, cErr)
		}
		if err != nil {
			if !errors.Is(err, ErrElement) {
				t.Fatalf("%x: %v, want ErrElement", b, err)
			}
			return
		}
		if got := e.Encode(nil); !bytes.Equal(got, b) {
			t.Fatalf("%x decodes, but encodes as %x", b, got)
		}
	})
}

// FuzzFinalize feeds Finalize arbitrary evaluated elements and proofs for a
// real batch: anything but the server's own answer fails with a sentinel.
func FuzzFinalize(f *testing.F) {
	k, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	ev := NewEvaluator(k)
	b, blinded, err := Blind(testInputs(2))
	if err != nil {
		f.Fatal(err)
	}
	evaluated, proof, err := ev.Evaluate(testInfo, blinded)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(evaluated[0], evaluated[1], proof)
	f.Add(evaluated[1], evaluated[0], proof)
	f.Add(identity, evaluated[1], proof)
	f.Add(evaluated[0], evaluated[1], make([]byte, ProofSize))
	f.Add(evaluated[0], evaluated[1], proof[:ProofSize-1])
	f.Fuzz(func(t *testing.T, e0, e1, p []byte) {
		out, err := b.Finalize(k.Public(), testInfo, [][]byte{e0, e1}, p)
		if bytes.Equal(e0, evaluated[0]) && bytes.Equal(e1, evaluated[1]) && bytes.Equal(p, proof) {
			if err != nil || len(out) != 2 {
				t.Fatalf("the server's answer fails: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("accepted a forged answer %x %x %x", e0, e1, p)
		}
		if !isSentinel(err) {
			t.Fatalf("non-sentinel error %v", err)
		}
	})
}

// TestReturnedSlicesIndependent: the batches Blind and Evaluate return share
// backing arrays; appending to one element must not overwrite the next, and
// the caller's copy of the blinded elements is not the transcript's.
func TestReturnedSlicesIndependent(t *testing.T) {
	k := newTestKey(t)
	ev := NewEvaluator(k)
	b, blinded, err := Blind(testInputs(3))
	if err != nil {
		t.Fatal(err)
	}
	evaluated, proof, err := ev.Evaluate(testInfo, blinded)
	if err != nil {
		t.Fatal(err)
	}
	want := slicesClone(evaluated)
	want[1] = bytes.Clone(evaluated[1])
	_ = append(evaluated[0], 0xff)
	if !bytes.Equal(evaluated[1], want[1]) {
		t.Fatal("appending to evaluated[0] changed evaluated[1]")
	}
	_ = append(blinded[0], 0xff)
	for i := range blinded {
		blinded[i][0] ^= 1
	}
	out, err := b.Finalize(k.Public(), testInfo, evaluated, proof)
	if err != nil {
		t.Fatalf("changing the returned blinded elements broke Finalize: %v", err)
	}
	outs, err := b.Finalize(k.Public(), testInfo, evaluated, proof)
	if err != nil || !equalLists(out, outs) {
		t.Fatalf("a second Finalize differs: %v", err)
	}
	_ = append(out[0], 0xff)
	if !bytes.Equal(out[1], outs[1]) {
		t.Fatal("appending to out[0] changed out[1]")
	}
}
