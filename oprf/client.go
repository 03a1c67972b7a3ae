package oprf

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
)

// Blinding is the client's secret state between Blind and Finalize: the inputs
// and their blinds. It must not leave the client.
type Blinding struct {
	fin *oprf.FinalizeData
	n   int
}

// blinder blinds inputs. Blinding does not involve the server key, but circl
// only builds a POPRF client around one, so the generator stands in for it.
var blinder = sync.OnceValue(func() oprf.PartialObliviousClient {
	var pk oprf.PublicKey
	g, err := grp.Generator().MarshalBinaryCompress()
	if err != nil {
		panic(err)
	}
	if err := pk.UnmarshalBinary(suite, g); err != nil {
		panic(err)
	}
	return oprf.NewPartialObliviousClient(suite, &pk)
})

// Blind blinds each input with a fresh random scalar. Rejects empty/oversized batches.
//
// The returned elements are uniformly random and independent of the inputs; they
// are what the client sends to Evaluate.
func Blind(inputs [][]byte) (*Blinding, [][]byte, error) {
	if err := checkBatch(len(inputs)); err != nil {
		return nil, nil, err
	}
	blinds := make([]group.Scalar, len(inputs))
	for i := range blinds {
		blinds[i] = grp.RandomNonZeroScalar(rand.Reader)
	}
	return blindWith(inputs, blinds)
}

// blindWith is Blind with the blinds given, so tests can use the RFC vectors.
func blindWith(inputs [][]byte, blinds []group.Scalar) (*Blinding, [][]byte, error) {
	if err := checkBatch(len(inputs)); err != nil {
		return nil, nil, err
	}
	for _, in := range inputs {
		if err := checkInput(in); err != nil {
			return nil, nil, err
		}
	}
	fin, req, err := blinder().DeterministicBlind(inputs, blinds)
	if err != nil {
		// The blinds are non-zero, so circl only fails here when an input
		// hashes to the identity.
		return nil, nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	blinded, err := encodeElements(req.Elements)
	if err != nil {
		return nil, nil, err
	}
	return &Blinding{fin: fin, n: len(inputs)}, blinded, nil
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
	if b.fin == nil {
		return nil, ErrBatchEmpty // a zero Blinding, not one from Blind
	}
	if len(evaluated) != b.n {
		return nil, ErrBatchMismatch
	}
	if err := checkInfo(info); err != nil {
		return nil, err
	}
	elems, err := decodeElements(evaluated)
	if err != nil {
		return nil, err
	}
	p, err := decodeProof(proof)
	if err != nil {
		return nil, err
	}
	c := oprf.NewPartialObliviousClient(suite, pk.k)
	out, err := c.Finalize(b.fin, &oprf.Evaluation{Elements: elems, Proof: p}, info)
	switch {
	case errors.Is(err, oprf.ErrInvalidProof):
		return nil, ErrProof
	case errors.Is(err, oprf.ErrInvalidInfo):
		// pk + H(info)·G is the identity: no key can be proven against it.
		return nil, fmt.Errorf("%w: tweaked key is the identity", ErrInfo)
	case err != nil:
		return nil, fmt.Errorf("oprf: finalize: %w", err)
	}
	return out, nil
}
