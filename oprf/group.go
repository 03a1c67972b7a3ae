package oprf

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/gtank/ristretto255"
)

// RFC 9497 Section 3.1's contextString for POPRF mode (0x02) of this suite,
// and the domain separation tags built from it.
const (
	contextString   = "OPRFV1-\x02-" + SuiteID
	dstHashToGroup  = "HashToGroup-" + contextString
	dstHashToScalar = "HashToScalar-" + contextString
	dstSeed         = "Seed-" + contextString
)

var (
	identityElement = ristretto255.NewElement()
	zeroScalar      = ristretto255.NewScalar()
)

// expander is expand_message_xmd (RFC 9380, Section 5.3.1) with SHA-512 and
// 64 bytes of output, the one length RFC 9497's ristretto255 suite asks for
// (HashToGroup and HashToScalar, Section 4.1). SHA-512 gives 64 bytes, so the
// output is b_1 alone. It reuses one hash and buffer, so a batch's thousand
// composite weights cost no allocation each; not safe for concurrent use.
type expander struct {
	h        hash.Hash
	dstPrime []byte // DST || I2OSP(len(DST), 1)
	b0, b1   [sha512.Size]byte
}

var (
	zPad   [sha512.BlockSize]byte
	libStr = []byte{0, 64, 0} // I2OSP(64, 2) || I2OSP(0, 1)
	one    = []byte{1}
)

func newExpander(dst string) *expander {
	if len(dst) > 255 {
		panic("oprf: expand_message_xmd DST longer than 255 bytes")
	}
	return &expander{h: sha512.New(), dstPrime: append([]byte(dst), byte(len(dst)))}
}

// expand returns expand_message_xmd(msg, DST, 64), where msg is the
// concatenation of parts. The result is valid until the next call.
func (x *expander) expand(msg ...[]byte) []byte {
	x.h.Reset()
	x.h.Write(zPad[:])
	for _, m := range msg {
		x.h.Write(m)
	}
	x.h.Write(libStr)
	x.h.Write(x.dstPrime)
	b0 := x.h.Sum(x.b0[:0])
	x.h.Reset()
	x.h.Write(b0)
	x.h.Write(one)
	x.h.Write(x.dstPrime)
	return x.h.Sum(x.b1[:0])
}

// scalar sets s to HashToScalar(msg): the 64 expanded bytes read as a
// little-endian integer and reduced modulo the group order.
func (x *expander) scalar(s *ristretto255.Scalar, msg ...[]byte) *ristretto255.Scalar {
	return s.FromUniformBytes(x.expand(msg...))
}

// element sets e to HashToGroup(msg): RFC 9496's one-way map of the 64
// expanded bytes (hash_to_ristretto255 of RFC 9380 Appendix B).
func (x *expander) element(e *ristretto255.Element, msg ...[]byte) *ristretto255.Element {
	return e.FromUniformBytes(x.expand(msg...))
}

// i2osp2 is I2OSP(n, 2). Callers bound n by MaxBatch or math.MaxUint16.
func i2osp2(n int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(n)) }

// infoScalar is RFC 9497's m = G.HashToScalar(framedInfo) for the POPRF info
// tweak (Section 3.3.3), with framedInfo = "Info" || I2OSP(len(info), 2) || info.
func infoScalar(info []byte) *ristretto255.Scalar {
	return newExpander(dstHashToScalar).scalar(ristretto255.NewScalar(), []byte("Info"), i2osp2(len(info)), info)
}

// finalizeHash is RFC 9497's POPRF output (Section 3.3.3, Finalize):
// Hash(I2OSP(len(input), 2) || input || I2OSP(len(info), 2) || info ||
// I2OSP(len(element), 2) || element || "Finalize"), appended to out.
func finalizeHash(h hash.Hash, out, input, info, element []byte) []byte {
	h.Reset()
	var l [2]byte
	for _, part := range [][]byte{input, info, element} {
		binary.BigEndian.PutUint16(l[:], uint16(len(part)))
		h.Write(l[:])
		h.Write(part)
	}
	h.Write([]byte("Finalize"))
	return h.Sum(out)
}

// isIdentity reports whether e is the identity, in constant time.
func isIdentity(e *ristretto255.Element) bool { return e.Equal(identityElement) == 1 }

// isZero reports whether s is zero, in constant time.
func isZero(s *ristretto255.Scalar) bool { return s.Equal(zeroScalar) == 1 }

// decodeElement is RFC 9497 DeserializeElement into e. ristretto255 decoding
// (RFC 9496 Section 4.3.1) accepts exactly one encoding per element and rejects
// the rest, so no re-encoding check is needed: equal elements cannot hide behind
// different bytes (the tests hold RFC 9496's bad encodings and a fuzz target to
// it). RFC 9497 also requires refusing the identity, which decoding accepts.
func decodeElement(e *ristretto255.Element, b []byte) error {
	if len(b) != ElementSize {
		return ErrElement
	}
	if err := e.Decode(b); err != nil {
		return ErrElement
	}
	if isIdentity(e) {
		return ErrIdentity
	}
	return nil
}

// decodeElements decodes a batch, naming the index of the first bad element.
func decodeElements(bs [][]byte) ([]ristretto255.Element, error) {
	es := make([]ristretto255.Element, len(bs))
	for i, b := range bs {
		if err := decodeElement(&es[i], b); err != nil {
			return nil, fmt.Errorf("%w at index %d", err, i)
		}
	}
	return es, nil
}

// encodeElement appends RFC 9497 SerializeElement(e) to b, refusing to put the
// identity on the wire.
func encodeElement(b []byte, e *ristretto255.Element) ([]byte, error) {
	if isIdentity(e) {
		return nil, ErrIdentity
	}
	return e.Encode(b), nil
}

// encodeElements encodes a batch into one backing array, naming the index of
// the first bad element. Each slice is capped, so appending to one cannot
// overwrite the next.
func encodeElements(es []ristretto255.Element) ([][]byte, error) {
	buf := make([]byte, 0, len(es)*ElementSize)
	bs := make([][]byte, len(es))
	for i := range es {
		var err error
		if buf, err = encodeElement(buf, &es[i]); err != nil {
			return nil, fmt.Errorf("%w at index %d", err, i)
		}
		bs[i] = buf[len(buf)-ElementSize : len(buf) : len(buf)]
	}
	return bs, nil
}

// decodeScalar is RFC 9497 DeserializeScalar into s: ScalarSize bytes,
// little-endian, below the group order. Zero is accepted here.
func decodeScalar(s *ristretto255.Scalar, b []byte) bool {
	return len(b) == ScalarSize && s.Decode(b) == nil
}

// randomScalar sets s to a uniformly random non-zero scalar from crypto/rand:
// 64 bytes reduced modulo the order, a bias below 2^-250.
func randomScalar(s *ristretto255.Scalar) *ristretto255.Scalar {
	var b [64]byte
	for {
		rand.Read(b[:]) // never fails: crypto/rand aborts the program instead
		if !isZero(s.FromUniformBytes(b[:])) {
			return s
		}
	}
}

// invertAll returns the inverses of s, which must all be non-zero, with
// Montgomery's trick: one inversion and three multiplications per scalar
// instead of one inversion each. It runs in constant time: the same sequence
// of operations whatever the values.
func invertAll(s []ristretto255.Scalar) []ristretto255.Scalar {
	inv := make([]ristretto255.Scalar, len(s))
	if len(s) == 0 {
		return inv
	}
	// inv[i] holds s[0]·…·s[i] until it is overwritten below.
	inv[0] = s[0]
	for i := 1; i < len(s); i++ {
		inv[i].Multiply(&inv[i-1], &s[i])
	}
	var acc ristretto255.Scalar
	acc.Invert(&inv[len(s)-1]) // 1 / (s[0]·…·s[n-1])
	for i := len(s) - 1; i > 0; i-- {
		inv[i].Multiply(&acc, &inv[i-1]) // 1/s[i] = (s[0]·…·s[i-1]) / (s[0]·…·s[i])
		acc.Multiply(&acc, &s[i])        // now 1 / (s[0]·…·s[i-1])
	}
	inv[0] = acc
	return inv
}
