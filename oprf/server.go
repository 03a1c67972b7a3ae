package oprf

import (
	"crypto/sha512"
	"fmt"
	"sync"

	"github.com/gtank/ristretto255"
)

// Evaluator is the server side of the POPRF. It is safe for concurrent use.
type Evaluator struct {
	k *PrivateKey

	mu     sync.Mutex
	tweaks map[string]*tweak // by info; at most maxTweaks entries
}

// tweak is what the key and one info determine (RFC 9497 Section 3.3.3,
// BlindEvaluate): t = k + m with m = HashToScalar(framedInfo), its inverse,
// and the tweaked public key t·G that the proof is made for. It is as secret
// as the key, and immutable once made.
type tweak struct {
	t, tInv ristretto255.Scalar
	key     []byte // SerializeElement(t·G)
}

// maxTweaks bounds the tweak cache. blindex uses a handful of info strings
// (domains and key epochs); the bound keeps a caller who could choose info
// from growing it, and further infos are simply computed each time.
const maxTweaks = 16

// NewEvaluator returns an evaluator for k. It panics if k is nil.
func NewEvaluator(k *PrivateKey) *Evaluator {
	if k == nil {
		panic("oprf: NewEvaluator called with a nil key")
	}
	return &Evaluator{k: k, tweaks: make(map[string]*tweak)}
}

// tweak returns the tweak for info, from the cache when it can. The scalar
// inversion it saves costs as much as evaluating an element.
func (e *Evaluator) tweak(info []byte) (*tweak, error) {
	e.mu.Lock()
	tw := e.tweaks[string(info)]
	e.mu.Unlock()
	if tw != nil {
		return tw, nil
	}
	tw = new(tweak)
	tw.t.Add(&e.k.k, infoScalar(info))
	if isZero(&tw.t) {
		// m = -k: this info would reveal the key, and t has no inverse.
		return nil, fmt.Errorf("%w: key and info tweak sum to zero", ErrInfo)
	}
	tw.tInv.Invert(&tw.t)
	tw.key = ristretto255.NewElement().ScalarBaseMult(&tw.t).Encode(nil)
	e.mu.Lock()
	if len(e.tweaks) < maxTweaks {
		e.tweaks[string(info)] = tw
	}
	e.mu.Unlock()
	return tw, nil
}

// Evaluate runs BlindEvaluate on a batch of serialized blinded elements under one
// DLEQ proof. It rejects empty and oversized batches, undecodable elements and the
// identity element, on input and output. Safe for concurrent use.
//
// The blinded elements tell the evaluator nothing about the inputs behind them.
func (e *Evaluator) Evaluate(info []byte, blinded [][]byte) (evaluated [][]byte, proof []byte, err error) {
	return e.evaluate(info, blinded, nil)
}

// evaluate is Evaluate with the proof's random scalar r given, so tests can
// reproduce the RFC vectors' proofs; nil draws a fresh one, as Evaluate must.
func (e *Evaluator) evaluate(info []byte, blinded [][]byte, r *ristretto255.Scalar) ([][]byte, []byte, error) {
	if err := checkBatch(len(blinded)); err != nil {
		return nil, nil, err
	}
	if err := checkInfo(info); err != nil {
		return nil, nil, err
	}
	d, err := decodeElements(blinded)
	if err != nil {
		return nil, nil, err
	}
	tw, err := e.tweak(info)
	if err != nil {
		return nil, nil, err
	}
	// The evaluation: one constant-time multiplication by the secret 1/t per
	// element, the floor a plain OPRF pays too.
	c := make([]ristretto255.Element, len(d))
	for i := range d {
		c[i].ScalarMult(&tw.tInv, &d[i])
	}
	// Multiplying by a non-zero scalar in a prime-order group cannot reach the
	// identity, but the RFC forbids sending it, so check rather than trust.
	evaluated, err := encodeElements(c)
	if err != nil {
		return nil, nil, err
	}
	if r == nil {
		r = randomScalar(ristretto255.NewScalar())
	}
	// blinded decoded, so each is the one encoding of its element.
	return evaluated, prove(&tw.t, tw.key, c, evaluated, blinded, r), nil
}

// FullEvaluate computes the POPRF output for an input the server already knows
// (RFC 9497 EvaluatePOPRF without blinding). Returns OutputSize bytes.
func (e *Evaluator) FullEvaluate(info, input []byte) ([]byte, error) {
	if err := checkInfo(info); err != nil {
		return nil, err
	}
	if err := checkInput(input); err != nil {
		return nil, err
	}
	tw, err := e.tweak(info)
	if err != nil {
		return nil, err
	}
	p := newExpander(dstHashToGroup).element(ristretto255.NewElement(), input)
	if isIdentity(p) {
		// Finding such an input means inverting hash-to-group; the RFC
		// still requires the check.
		return nil, fmt.Errorf("%w: input hashes to it", ErrIdentity)
	}
	p.ScalarMult(&tw.tInv, p)
	var enc [ElementSize]byte
	return finalizeHash(sha512.New(), make([]byte, 0, OutputSize), input, info, p.Encode(enc[:0])), nil
}
