package oprf

import (
	"crypto/sha512"

	"github.com/gtank/ristretto255"
)

// A proved evaluation is the POPRF output for an input known to both sides,
// with the evaluator's DLEQ proof: Evaluate run on the input's own
// hash-to-group element, as if blinded with the scalar 1. Whoever holds the
// input, the evaluated element and the proof can check the output against
// the public key without asking the evaluator again. The directory gives an
// owner the proved log label of its own number this way, so that callers can
// check the label in a record (docs/protocol.md §11.1).

var scalarOne = newScalarOne()

func newScalarOne() *ristretto255.Scalar {
	b := make([]byte, 32)
	b[0] = 1
	s := ristretto255.NewScalar()
	if err := s.Decode(b); err != nil {
		panic(err)
	}
	return s
}

// Unblinded returns input's hash-to-group element, serialized: what
// Evaluate takes to make a proved evaluation of input.
func Unblinded(input []byte) ([]byte, error) {
	_, blinded, err := blindWith([][]byte{input}, []ristretto255.Scalar{*scalarOne})
	if err != nil {
		return nil, err
	}
	return blinded[0], nil
}

// VerifyProved checks a proved evaluation of input under pk and info, as
// Evaluate returned it for Unblinded(input), and returns the POPRF output.
func VerifyProved(pk *PublicKey, info, input, evaluated, proof []byte) ([]byte, error) {
	b, _, err := blindWith([][]byte{input}, []ristretto255.Scalar{*scalarOne})
	if err != nil {
		return nil, err
	}
	ys, err := b.Finalize(pk, info, [][]byte{evaluated}, proof)
	if err != nil {
		return nil, err
	}
	return ys[0], nil
}

// ProvedOutput is the POPRF output that a proved evaluation of input
// claims, without its proof checked: what VerifyProved returns once the
// proof holds. A caller that checks the proof later with VerifyProved can
// act on the output at once (docs/protocol.md §11.1). The element must
// decode, and may not be the identity.
func ProvedOutput(info, input, evaluated []byte) ([]byte, error) {
	if err := checkInfo(info); err != nil {
		return nil, err
	}
	if err := checkInput(input); err != nil {
		return nil, err
	}
	var e ristretto255.Element
	if err := decodeElement(&e, evaluated); err != nil {
		return nil, err
	}
	// With the blind 1, the unblinded element is the evaluated one, and a
	// decoded element has one encoding.
	return finalizeHash(sha512.New(), nil, input, info, evaluated), nil
}
