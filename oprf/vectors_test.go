package oprf

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"
	"github.com/gtank/ristretto255"
)

// hexList is a comma-separated list of hex strings, one per batch element.
type hexList [][]byte

func (l *hexList) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	for _, h := range strings.Split(s, ",") {
		b, err := hex.DecodeString(h)
		if err != nil {
			return err
		}
		*l = append(*l, b)
	}
	return nil
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := hex.DecodeString(s)
	*h = b
	return err
}

// rfcVectors is the RFC 9497 Appendix A.1.3 file; see testdata/README.md.
type rfcVectors struct {
	Identifier string   `json:"identifier"`
	Mode       int      `json:"mode"`
	Seed       hexBytes `json:"seed"`
	KeyInfo    hexBytes `json:"keyInfo"`
	SkSm       hexBytes `json:"skSm"`
	PkSm       hexBytes `json:"pkSm"`
	Vectors    []struct {
		Batch             int      `json:"Batch"`
		Input             hexList  `json:"Input"`
		Info              hexBytes `json:"Info"`
		Blind             hexList  `json:"Blind"`
		BlindedElement    hexList  `json:"BlindedElement"`
		EvaluationElement hexList  `json:"EvaluationElement"`
		Proof             struct {
			Proof hexBytes `json:"proof"`
			R     hexBytes `json:"r"`
		} `json:"Proof"`
		Output hexList `json:"Output"`
	} `json:"vectors"`
}

func readVectors(t *testing.T) rfcVectors {
	t.Helper()
	data, err := os.ReadFile("testdata/rfc9497-poprf-ristretto255-sha512.json")
	if err != nil {
		t.Fatal(err)
	}
	var v rfcVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if v.Identifier != SuiteID || v.Mode != int(oprf.PartialObliviousMode) || len(v.Vectors) != 3 {
		t.Fatalf("unexpected vector file: %s mode %d, %d vectors", v.Identifier, v.Mode, len(v.Vectors))
	}
	return v
}

func equalLists(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// circlProof9497 is circl's proof for the batch with the vector's fixed
// randomness, built from RFC 9497 Section 3.3.3 with circl's DLEQ prover: the
// reference that evaluate's own proof with the same randomness is held to.
func circlProof9497(t *testing.T, sk []byte, info []byte, evaluated, blinded [][]byte, r []byte) []byte {
	t.Helper()
	// m = G.HashToScalar("Info" || I2OSP(len(info), 2) || info), t = sk + m.
	contextString := "OPRFV1-\x02-" + SuiteID
	framed := binary.BigEndian.AppendUint16([]byte("Info"), uint16(len(info)))
	framed = append(framed, info...)
	m := grp.HashToScalar(framed, []byte("HashToScalar-"+contextString))
	tw := grp.NewScalar().Add(circlScalar(t, sk), m)
	ev, bl := circlElements(t, evaluated), circlElements(t, blinded)
	prover := dleq.Prover{Params: dleq.Params{G: grp, H: crypto.SHA512, DST: []byte(contextString)}}
	// POPRF proves evaluated·t = blinded, so the roles of the lists are swapped.
	p, err := prover.ProveBatchWithRandomnessRFC9497(tw, grp.NewElement().MulGen(tw), ev, bl, circlScalar(t, r))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRFC9497Vectors(t *testing.T) {
	v := readVectors(t)

	// skSm: DeriveKeyPair(seed, keyInfo), then through ParsePrivateKey.
	derived, err := oprf.DeriveKey(suite, oprf.PartialObliviousMode, v.Seed, v.KeyInfo)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := derived.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dk, v.SkSm) {
		t.Fatalf("skSm = %x, want %x", dk, v.SkSm)
	}
	sk, err := ParsePrivateKey(dk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sk.Bytes(), v.SkSm) {
		t.Errorf("PrivateKey.Bytes = %x, want %x", sk.Bytes(), v.SkSm)
	}

	// pkSm.
	if got := sk.Public().Bytes(); !bytes.Equal(got, v.PkSm) {
		t.Errorf("pkSm = %x, want %x", got, v.PkSm)
	}
	pk, err := ParsePublicKey(v.PkSm)
	if err != nil {
		t.Fatal(err)
	}
	if !pk.Equal(sk.Public()) {
		t.Error("parsed pkSm differs from the derived public key")
	}

	ev := NewEvaluator(sk)
	for i, tv := range v.Vectors {
		t.Run(fmt.Sprintf("vector%d", i+1), func(t *testing.T) {
			if len(tv.Input) != tv.Batch {
				t.Fatalf("batch %d with %d inputs", tv.Batch, len(tv.Input))
			}
			blinds := make([]ristretto255.Scalar, len(tv.Blind))
			for j, b := range tv.Blind {
				blinds[j] = *ourScalar(t, b)
			}

			// BlindedElement.
			blinding, blinded, err := blindWith(tv.Input, blinds)
			if err != nil {
				t.Fatal(err)
			}
			if !equalLists(blinded, tv.BlindedElement) {
				t.Fatalf("BlindedElement = %x, want %x", blinded, tv.BlindedElement)
			}

			// EvaluationElement.
			evaluated, proof, err := ev.Evaluate(tv.Info, blinded)
			if err != nil {
				t.Fatal(err)
			}
			if !equalLists(evaluated, tv.EvaluationElement) {
				t.Fatalf("EvaluationElement = %x, want %x", evaluated, tv.EvaluationElement)
			}

			// Proof: byte-exact with the RFC's ProofRandomScalar, from our
			// server and from circl's prover, and the RFC's proof must verify
			// through Finalize.
			evaluatedR, proofR, err := ev.evaluate(tv.Info, blinded, ourScalar(t, tv.Proof.R))
			if err != nil {
				t.Fatal(err)
			}
			if !equalLists(evaluatedR, tv.EvaluationElement) {
				t.Fatalf("EvaluationElement (fixed r) = %x, want %x", evaluatedR, tv.EvaluationElement)
			}
			if !bytes.Equal(proofR, tv.Proof.Proof) {
				t.Errorf("Proof = %x, want %x", proofR, tv.Proof.Proof)
			}
			if got := circlProof9497(t, v.SkSm, tv.Info, evaluated, blinded, tv.Proof.R); !bytes.Equal(got, tv.Proof.Proof) {
				t.Errorf("circl's Proof = %x, want %x", got, tv.Proof.Proof)
			}
			out, err := blinding.Finalize(pk, tv.Info, tv.EvaluationElement, tv.Proof.Proof)
			if err != nil {
				t.Fatalf("Finalize with the RFC proof: %v", err)
			}

			// Output.
			if !equalLists(out, tv.Output) {
				t.Errorf("Output = %x, want %x", out, tv.Output)
			}

			// Evaluate's own (randomized) proof must verify too.
			out, err = blinding.Finalize(pk, tv.Info, evaluated, proof)
			if err != nil {
				t.Fatalf("Finalize with Evaluate's proof: %v", err)
			}
			if !equalLists(out, tv.Output) {
				t.Errorf("Output (own proof) = %x, want %x", out, tv.Output)
			}

			// FullEvaluate gives the same outputs without blinding.
			for j, in := range tv.Input {
				got, err := ev.FullEvaluate(tv.Info, in)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tv.Output[j]) {
					t.Errorf("FullEvaluate[%d] = %x, want %x", j, got, tv.Output[j])
				}
			}
		})
	}
}
