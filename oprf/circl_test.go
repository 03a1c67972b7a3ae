package oprf

// circl's RFC 9497 implementation is the reference this package is checked
// against: these helpers carry values between the two.

import (
	"testing"

	"github.com/cloudflare/circl/group"
	circl "github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"
	"github.com/gtank/ristretto255"
)

var (
	suite = circl.SuiteRistretto255
	grp   = group.Ristretto255
)

// circlElements decodes serialized elements with circl.
func circlElements(tb testing.TB, bs [][]byte) []group.Element {
	tb.Helper()
	es := make([]group.Element, len(bs))
	for i, b := range bs {
		es[i] = grp.NewElement()
		if err := es[i].UnmarshalBinary(b); err != nil {
			tb.Fatalf("circl rejects element %d (%x): %v", i, b, err)
		}
	}
	return es
}

// circlEncode serializes circl elements.
func circlEncode(tb testing.TB, es []group.Element) [][]byte {
	tb.Helper()
	bs := make([][]byte, len(es))
	for i, e := range es {
		b, err := e.MarshalBinaryCompress()
		if err != nil {
			tb.Fatal(err)
		}
		bs[i] = b
	}
	return bs
}

// circlScalar decodes a serialized scalar with circl.
func circlScalar(tb testing.TB, b []byte) group.Scalar {
	tb.Helper()
	s := grp.NewScalar()
	if err := s.UnmarshalBinary(b); err != nil {
		tb.Fatal(err)
	}
	return s
}

// circlScalars converts our scalars to circl's.
func circlScalars(tb testing.TB, ss []ristretto255.Scalar) []group.Scalar {
	tb.Helper()
	out := make([]group.Scalar, len(ss))
	for i := range ss {
		out[i] = circlScalar(tb, ss[i].Encode(nil))
	}
	return out
}

// ourScalar decodes a serialized scalar with gtank/ristretto255.
func ourScalar(tb testing.TB, b []byte) *ristretto255.Scalar {
	tb.Helper()
	s := ristretto255.NewScalar()
	if !decodeScalar(s, b) {
		tb.Fatalf("invalid scalar %x", b)
	}
	return s
}

func circlPrivateKey(tb testing.TB, k *PrivateKey) *circl.PrivateKey {
	tb.Helper()
	ck := new(circl.PrivateKey)
	if err := ck.UnmarshalBinary(suite, k.Bytes()); err != nil {
		tb.Fatal(err)
	}
	return ck
}

func circlPublicKey(tb testing.TB, pk *PublicKey) *circl.PublicKey {
	tb.Helper()
	cpk := new(circl.PublicKey)
	if err := cpk.UnmarshalBinary(suite, pk.Bytes()); err != nil {
		tb.Fatal(err)
	}
	return cpk
}

func circlProof(tb testing.TB, b []byte) *dleq.Proof {
	tb.Helper()
	p := new(dleq.Proof)
	if err := p.UnmarshalBinary(grp, b); err != nil {
		tb.Fatal(err)
	}
	return p
}

// circlBlinding is the same client state as b, built by circl from b's inputs
// and blinds, for circl's Finalize.
func circlBlinding(tb testing.TB, c circl.PartialObliviousClient, b *Blinding) (*circl.FinalizeData, *circl.EvaluationRequest) {
	tb.Helper()
	fin, req, err := c.DeterministicBlind(b.inputs, circlScalars(tb, b.blinds))
	if err != nil {
		tb.Fatal(err)
	}
	return fin, req
}
