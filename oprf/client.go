package oprf

import (
	"bytes"
	"crypto/sha512"
	"fmt"

	"github.com/gtank/ristretto255"
)

// Blinding is the client's secret state between Blind and Finalize: the inputs
// and their blinds. It must not leave the client.
type Blinding struct {
	inputs  [][]byte
	blinds  []ristretto255.Scalar
	blinded []ristretto255.Element
	enc     [][]byte // blinded as sent, for the proof's transcript
}

// Blind blinds each input with a fresh random scalar. Rejects empty/oversized batches.
//
// The returned elements are uniformly random and independent of the inputs; they
// are what the client sends to Evaluate.
func Blind(inputs [][]byte) (*Blinding, [][]byte, error) {
	if err := checkBatch(len(inputs)); err != nil {
		return nil, nil, err
	}
	blinds := make([]ristretto255.Scalar, len(inputs))
	for i := range blinds {
		randomScalar(&blinds[i])
	}
	return blindWith(inputs, blinds)
}

// blindWith is Blind with the blinds given, so tests can use the RFC vectors.
// The blinds must be non-zero.
func blindWith(inputs [][]byte, blinds []ristretto255.Scalar) (*Blinding, [][]byte, error) {
	if err := checkBatch(len(inputs)); err != nil {
		return nil, nil, err
	}
	if len(blinds) != len(inputs) {
		panic("oprf: blindWith called with one blind per input")
	}
	b := &Blinding{
		inputs:  make([][]byte, len(inputs)),
		blinds:  blinds,
		blinded: make([]ristretto255.Element, len(inputs)),
	}
	x := newExpander(dstHashToGroup)
	for i, in := range inputs {
		if err := checkInput(in); err != nil {
			return nil, nil, err
		}
		b.inputs[i] = bytes.Clone(in)
		p := x.element(&b.blinded[i], in)
		if isIdentity(p) {
			// Finding such an input means inverting hash-to-group.
			return nil, nil, fmt.Errorf("%w: input at index %d hashes to it", ErrIdentity, i)
		}
		p.ScalarMult(&blinds[i], p)
	}
	var err error
	if b.enc, err = encodeElements(b.blinded); err != nil {
		return nil, nil, err
	}
	// The caller gets its own copy: changing it cannot change the transcript.
	blinded := make([][]byte, len(b.enc))
	all := bytes.Join(b.enc, nil)
	for i := range blinded {
		blinded[i] = all[i*ElementSize : (i+1)*ElementSize : (i+1)*ElementSize]
	}
	return b, blinded, nil
}

// Finalize verifies the batch proof against pk and info, rejects identity or undecodable
// evaluated elements and count mismatches, and returns one OutputSize output per input.
//
// The outputs are in the order of the inputs given to Blind. A server that
// reorders, drops or substitutes elements fails the proof.
func (b *Blinding) Finalize(pk *PublicKey, info []byte, evaluated [][]byte, proof []byte) ([][]byte, error) {
	if pk == nil {
		return nil, fmt.Errorf("%w: nil public key", ErrKey)
	}
	if b.blinds == nil {
		return nil, ErrBatchEmpty // a zero Blinding, not one from Blind
	}
	if len(evaluated) != len(b.blinds) {
		return nil, ErrBatchMismatch
	}
	if err := checkInfo(info); err != nil {
		return nil, err
	}
	c, err := decodeElements(evaluated)
	if err != nil {
		return nil, err
	}
	ch, s, err := decodeProof(proof)
	if err != nil {
		return nil, err
	}

	// The tweaked key B = pk + m·G (RFC 9497 Section 3.3.3, Blind).
	key := ristretto255.NewElement().ScalarBaseMult(infoScalar(info))
	key.Add(key, &pk.e)
	if isIdentity(key) {
		// No key can be proven against the identity.
		return nil, fmt.Errorf("%w: tweaked key is the identity", ErrInfo)
	}
	// evaluated decoded, so each is the one encoding of its element.
	if !verify(key.Encode(nil), key, c, evaluated, b.blinded, b.enc, ch, s) {
		return nil, ErrProof
	}

	// Unblind: the blinds and the unblinded elements are secret, so the
	// inversions and multiplications are constant time.
	inv := invertAll(b.blinds)
	h := sha512.New()
	out := make([][]byte, len(c))
	all := make([]byte, 0, len(c)*OutputSize)
	var u ristretto255.Element
	var enc [ElementSize]byte
	for i := range c {
		u.ScalarMult(&inv[i], &c[i])
		all = finalizeHash(h, all, b.inputs[i], info, u.Encode(enc[:0]))
		out[i] = all[i*OutputSize : (i+1)*OutputSize : (i+1)*OutputSize]
	}
	return out, nil
}
