package oprf

import (
	"crypto/sha512"
	"encoding/binary"

	"github.com/gtank/ristretto255"
)

// The batched DLEQ proof of RFC 9497 Section 2.2, with the generator as A.
// In POPRF mode the server proves that its evaluated elements C, times the
// tweaked key t = k + m, give the blinded elements D, with B = t·G:
// GenerateProof(t, G, B, C, D). The composite weights d_i are hashed from the
// serialized elements, so both sides compute them from the bytes on the wire.

// compositeWeights returns the weights d_i of ComputeComposites and
// ComputeCompositesFast (RFC 9497 Section 2.2.1) for the serialized key B and
// the serialized batches c and d, each element ElementSize bytes.
func compositeWeights(key []byte, c, d [][]byte) []ristretto255.Scalar {
	// seed = Hash(I2OSP(len(Bm), 2) || Bm || I2OSP(len(seedDST), 2) || seedDST)
	h := sha512.New()
	h.Write(i2osp2(len(key)))
	h.Write(key)
	h.Write(i2osp2(len(dstSeed)))
	h.Write([]byte(dstSeed))

	// compositeTranscript = I2OSP(len(seed), 2) || seed || I2OSP(i, 2) ||
	//   I2OSP(len(Ci), 2) || Ci || I2OSP(len(Di), 2) || Di || "Composite"
	const (
		seedAt = 2
		iAt    = seedAt + sha512.Size
		cAt    = iAt + 2 + 2
		dAt    = cAt + ElementSize + 2
		endAt  = dAt + ElementSize
	)
	var t [endAt + len("Composite")]byte
	binary.BigEndian.PutUint16(t[:], sha512.Size)
	h.Sum(t[seedAt:seedAt])
	binary.BigEndian.PutUint16(t[cAt-2:], ElementSize)
	binary.BigEndian.PutUint16(t[dAt-2:], ElementSize)
	copy(t[endAt:], "Composite")

	x := newExpander(dstHashToScalar)
	w := make([]ristretto255.Scalar, len(c))
	for i := range w {
		binary.BigEndian.PutUint16(t[iAt:], uint16(i))
		copy(t[cAt:cAt+ElementSize], c[i])
		copy(t[dAt:dAt+ElementSize], d[i])
		x.scalar(&w[i], t[:])
	}
	return w
}

// publicMultiScalarMult returns sum(w[i]·p[i]) in variable time. Call it only
// on public values: here the composites of the wire's elements with weights
// hashed from them, and a received proof's scalars.
func publicMultiScalarMult(w []ristretto255.Scalar, p []ristretto255.Element) *ristretto255.Element {
	ws := make([]*ristretto255.Scalar, len(w))
	ps := make([]*ristretto255.Element, len(p))
	for i := range w {
		ws[i], ps[i] = &w[i], &p[i]
	}
	return ristretto255.NewElement().VarTimeMultiScalarMult(ws, ps)
}

// challenge is the proof's challenge: HashToScalar(I2OSP(len(Bm), 2) || Bm ||
// I2OSP(len(a0), 2) || a0 || … || a3 || "Challenge") with a0..a3 the
// serialized M, Z, t2 and t3.
func challenge(key []byte, m, z, t2, t3 *ristretto255.Element) *ristretto255.Scalar {
	var t [5*(2+ElementSize) + len("Challenge")]byte
	b := append(t[:0], i2osp2(len(key))...)
	b = append(b, key...)
	for _, e := range []*ristretto255.Element{m, z, t2, t3} {
		b = binary.BigEndian.AppendUint16(b, ElementSize)
		b = e.Encode(b)
	}
	b = append(b, "Challenge"...)
	return newExpander(dstHashToScalar).scalar(ristretto255.NewScalar(), b)
}

// prove is GenerateProof(k, G, key, C, D) with ComputeCompositesFast (the
// prover knows k, so Z = k·M) and the random scalar r, returning the
// serialized proof c || s. key is SerializeElement(k·G); cEnc and dEnc are the
// serialized C and D.
//
// k and r are secret and meet only constant-time operations; the composite M
// is a variable-time sum over the public C with public weights.
func prove(k *ristretto255.Scalar, key []byte, c []ristretto255.Element, cEnc, dEnc [][]byte, r *ristretto255.Scalar) []byte {
	w := compositeWeights(key, cEnc, dEnc)
	m := publicMultiScalarMult(w, c)
	z := ristretto255.NewElement().ScalarMult(k, m)
	t2 := ristretto255.NewElement().ScalarBaseMult(r)
	t3 := ristretto255.NewElement().ScalarMult(r, m)
	ch := challenge(key, m, z, t2, t3)
	s := ristretto255.NewScalar().Multiply(ch, k)
	s.Subtract(r, s)
	proof := make([]byte, 0, ProofSize)
	return s.Encode(ch.Encode(proof))
}

// verify is VerifyProof(G, B, C, D, proof) with the proof's scalars ch and s
// already deserialized; key is SerializeElement(B). Everything it touches is
// public, so it runs in variable time throughout: M and Z are sums over the
// batch (ComputeComposites), t2 = s·G + c·B and t3 = s·M + c·Z.
func verify(key []byte, b *ristretto255.Element, c []ristretto255.Element, cEnc [][]byte, d []ristretto255.Element, dEnc [][]byte, ch, s *ristretto255.Scalar) bool {
	w := compositeWeights(key, cEnc, dEnc)
	m := publicMultiScalarMult(w, c)
	z := publicMultiScalarMult(w, d)
	t2 := ristretto255.NewElement().VarTimeDoubleScalarBaseMult(ch, b, s)
	t3 := ristretto255.NewElement().VarTimeMultiScalarMult([]*ristretto255.Scalar{s, ch}, []*ristretto255.Element{m, z})
	return challenge(key, m, z, t2, t3).Equal(ch) == 1
}

// decodeProof splits a serialized proof into its scalars c and s, each below
// the group order, so every proof has one encoding.
func decodeProof(b []byte) (ch, s *ristretto255.Scalar, err error) {
	ch, s = ristretto255.NewScalar(), ristretto255.NewScalar()
	if len(b) != ProofSize || !decodeScalar(ch, b[:ScalarSize]) || !decodeScalar(s, b[ScalarSize:]) {
		return nil, nil, ErrProof
	}
	return ch, s, nil
}
