// Package oprf is blindex's oblivious PRF: RFC 9497 POPRF over
// ristretto255-SHA512, the values blindex derives from its output, and the E.164
// normalization of the phone numbers that are its inputs. It is the only package
// in blindex that imports circl.
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
// # Derivations
//
// Index, RecordKey, Pseudonym and RecordID derive fixed-size values from an
// OPRF output with HKDF-SHA256 (empty salt) under distinct labels
// (LabelIndex, ...). Nothing in blindex is derived from a bare hash of a number.
// They panic on anything but an OutputSize-byte output: a short value could only
// come from a bug, and would give every number the same index and key.
package oprf

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
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

var (
	suite = oprf.SuiteRistretto255
	grp   = group.Ristretto255
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

// checkInfo enforces RFC 9497's two-byte length prefix on info: circl would
// silently truncate the length of a longer one.
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

// decodeElement is RFC 9497 DeserializeElement: it rejects wrong lengths,
// encodings that do not re-encode to the same bytes, and the identity, which
// the RFC requires and circl does not do.
func decodeElement(b []byte) (group.Element, error) {
	if len(b) != ElementSize {
		return nil, ErrElement
	}
	e := grp.NewElement()
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, ErrElement
	}
	// One element, one encoding: otherwise equal elements could hide behind
	// different bytes.
	if enc, err := e.MarshalBinaryCompress(); err != nil || !bytes.Equal(enc, b) {
		return nil, ErrElement
	}
	if e.IsIdentity() {
		return nil, ErrIdentity
	}
	return e, nil
}

// encodeElement is RFC 9497 SerializeElement, refusing to put the identity on
// the wire.
func encodeElement(e group.Element) ([]byte, error) {
	if e.IsIdentity() {
		return nil, ErrIdentity
	}
	b, err := e.MarshalBinaryCompress()
	if err != nil || len(b) != ElementSize {
		return nil, ErrElement
	}
	return b, nil
}

// decodeElements decodes a batch, naming the index of the first bad element.
func decodeElements(bs [][]byte) ([]group.Element, error) {
	es := make([]group.Element, len(bs))
	for i, b := range bs {
		e, err := decodeElement(b)
		if err != nil {
			return nil, fmt.Errorf("%w at index %d", err, i)
		}
		es[i] = e
	}
	return es, nil
}

// encodeElements encodes a batch, naming the index of the first bad element.
func encodeElements(es []group.Element) ([][]byte, error) {
	bs := make([][]byte, len(es))
	for i, e := range es {
		b, err := encodeElement(e)
		if err != nil {
			return nil, fmt.Errorf("%w at index %d", err, i)
		}
		bs[i] = b
	}
	return bs, nil
}
