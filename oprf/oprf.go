// Package oprf is blindex's oblivious PRF: RFC 9497 POPRF over
// ristretto255-SHA512, the values blindex derives from its output, and the E.164
// normalization of the phone numbers that are its inputs. It is the only package
// in blindex that uses ristretto255: github.com/gtank/ristretto255 for the group
// arithmetic, and circl's RFC 9497 implementation, imported only by the tests,
// as the reference every value is checked against.
//
// # Privacy
//
// The client blinds each input with a fresh random scalar before it leaves the
// device. The server evaluates blinded elements and learns nothing about the
// input or the output: a blinded element is a uniformly random group element
// whatever number is behind it. The server does see how many elements a batch
// holds and the public info string. The client checks one DLEQ proof per batch,
// so it knows every output was computed with the published key and that info.
//
// The server can still evaluate the PRF on any number it already knows
// (Evaluator.FullEvaluate): holding the key means exactly that. Blinding hides
// the queries, not the function.
//
// # Info
//
// The info string is public and is bound into every output. blindex uses it to
// separate domains (lookups, log labels) and key epochs, so outputs under
// different info values are unrelated.
//
// # Wire format
//
// Elements, scalars and proofs use RFC 9497 serialization (ElementSize,
// ScalarSize and ProofSize bytes), so any conforming client interoperates. The
// input for a phone number is the UTF-8 bytes of its E.164 form as returned by
// NormalizeNumber, for example []byte("+14155550100").
//
// # Timing
//
// When evaluating, blinding and finalizing, every operation on a secret (the
// key, its info tweak, a blind, the proof's random scalar, an input and its
// output) runs in constant time. Only the proof's composites, sums over the
// batch's blinded and evaluated elements with weights hashed from them, use
// variable-time multi-scalar multiplication, and so does the client's whole
// proof check: all of it is public, on the wire.
//
// # Derivations
//
// Index, RecordKey, Pseudonym and RecordID derive fixed-size values from an
// OPRF output with HKDF-SHA256 (empty salt) under distinct labels
// (LabelIndex, ...). Nothing in blindex is derived from a bare hash of a number.
// They panic on anything but an OutputSize-byte output: a short value could only
// come from a bug, and would give every number the same index and key.
package oprf

import (
	"errors"
	"fmt"
	"math"
)

// The suite and the sizes of its RFC 9497 serialized values.
const (
	SuiteID     = "ristretto255-SHA512"
	MaxBatch    = 1024 // maximum elements per Evaluate/Blind call
	ElementSize = 32   // serialized ristretto255 element
	ScalarSize  = 32
	ProofSize   = 64 // RFC 9497 serialized proof (c || s)
	OutputSize  = 64 // SHA-512 output
	DerivedSize = 32 // size of Index, RecordKey, Pseudonym
)

// Errors. Returned errors wrap one of these, sometimes with a fixed reason or
// the index of the offending batch element; none carries input bytes.
var (
	ErrIdentity      = errors.New("oprf: identity element")
	ErrElement       = errors.New("oprf: invalid element encoding")
	ErrBatchEmpty    = errors.New("oprf: empty batch")
	ErrBatchTooLarge = fmt.Errorf("oprf: batch larger than %d elements", MaxBatch)
	ErrBatchMismatch = errors.New("oprf: evaluated count does not match blinded count")
	ErrProof         = errors.New("oprf: invalid proof")
	ErrKey           = errors.New("oprf: invalid key")
	ErrNumber        = errors.New("oprf: invalid phone number")
	ErrInput         = fmt.Errorf("oprf: input longer than %d bytes", math.MaxUint16)
	ErrInfo          = errors.New("oprf: invalid info")
)

// checkBatch bounds the work one request can ask for.
func checkBatch(n int) error {
	switch {
	case n == 0:
		return ErrBatchEmpty
	case n > MaxBatch:
		return ErrBatchTooLarge
	}
	return nil
}

// checkInfo enforces RFC 9497's two-byte length prefix on info: a longer one
// would have its length silently truncated in the transcripts.
func checkInfo(info []byte) error {
	if len(info) > math.MaxUint16 {
		return fmt.Errorf("%w: longer than %d bytes", ErrInfo, math.MaxUint16)
	}
	return nil
}

// checkInput enforces the same two-byte length prefix on PRF inputs.
func checkInput(input []byte) error {
	if len(input) > math.MaxUint16 {
		return ErrInput
	}
	return nil
}
