package oprf

import (
	"fmt"

	"github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"
)

// Evaluator is the server side of the POPRF. It is safe for concurrent use.
type Evaluator struct {
	s oprf.PartialObliviousServer
}

// NewEvaluator returns an evaluator for k. It panics if k is nil.
func NewEvaluator(k *PrivateKey) *Evaluator {
	if k == nil {
		panic("oprf: NewEvaluator called with a nil key")
	}
	return &Evaluator{s: oprf.NewPartialObliviousServer(suite, k.k)}
}

// Evaluate runs BlindEvaluate on a batch of serialized blinded elements under one
// DLEQ proof. It rejects empty and oversized batches, undecodable elements and the
// identity element, on input and output. Safe for concurrent use.
//
// The blinded elements tell the evaluator nothing about the inputs behind them.
func (e *Evaluator) Evaluate(info []byte, blinded [][]byte) (evaluated [][]byte, proof []byte, err error) {
	if err := checkBatch(len(blinded)); err != nil {
		return nil, nil, err
	}
	if err := checkInfo(info); err != nil {
		return nil, nil, err
	}
	elems, err := decodeElements(blinded)
	if err != nil {
		return nil, nil, err
	}
	ev, err := e.s.Evaluate(&oprf.EvaluationRequest{Elements: elems}, info)
	if err != nil {
		// The batch is already checked, so only the info tweak can fail:
		// k + H(info) is zero and has no inverse.
		return nil, nil, fmt.Errorf("%w: %w", ErrInfo, err)
	}
	// Multiplying by a non-zero scalar in a prime-order group cannot reach the
	// identity, but the RFC forbids sending it, so check rather than trust.
	evaluated, err = encodeElements(ev.Elements)
	if err != nil {
		return nil, nil, err
	}
	proof, err = encodeProof(ev.Proof)
	if err != nil {
		return nil, nil, err
	}
	return evaluated, proof, nil
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
	// circl does not check that input hashes to the identity here; finding such
	// an input means inverting hash-to-group, so nothing else checks it either.
	out, err := e.s.FullEvaluate(input, info)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInfo, err)
	}
	return out, nil
}

func encodeProof(p *dleq.Proof) ([]byte, error) {
	b, err := p.MarshalBinary()
	if err != nil || len(b) != ProofSize {
		return nil, ErrProof
	}
	return b, nil
}

func decodeProof(b []byte) (*dleq.Proof, error) {
	if len(b) != ProofSize {
		return nil, ErrProof
	}
	p := new(dleq.Proof)
	// circl rejects scalars that are not reduced, so each proof has one encoding.
	if err := p.UnmarshalBinary(grp, b); err != nil {
		return nil, ErrProof
	}
	return p, nil
}
