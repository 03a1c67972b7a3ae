package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

// The fuzz targets parse what a witness sends back. Their keys are fixed, so
// that a crasher committed under testdata/fuzz/ still carries valid
// signatures when it is replayed.

const fuzzCheckpoint = "log.example.com/fuzz\n3\nRcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0=\n"

func fuzzCosigner(tb testing.TB, name string) *torchwood.CosignatureSigner {
	tb.Helper()
	seed := sha256.Sum256([]byte("blindex witness fuzz key " + name))
	s, err := torchwood.NewCosignatureSigner(name, ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// fuzzLogSigner is an Ed25519 note signer built from a fixed seed.
func fuzzLogSigner(tb testing.TB) (note.Signer, note.Verifier) {
	tb.Helper()
	const name = "log.example.com/fuzz"
	seed := sha256.Sum256([]byte("blindex witness fuzz log key"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	vkey, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	skey := "PRIVATE+KEY+" + name + "+" + fmt.Sprintf("%08x", v.KeyHash()) + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{1}, seed[:]...))
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, v
}

func fuzzSigLines(tb testing.TB, text string, signers ...note.Signer) []byte {
	tb.Helper()
	b, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		tb.Fatal(err)
	}
	return b[len(text)+1:]
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0\n", "5\n", "9223372036854775807\n", "9223372036854775808\n", "", "\n", "01\n", "-1\n", "+1\n", "1", "1\r\n", "1\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseSize(b)
		if err != nil {
			return
		}
		if strconv.FormatInt(n, 10)+"\n" != string(b) {
			t.Fatalf("parseSize(%q) = %d, which is not its canonical encoding", b, n)
		}
	})
}

// FuzzVerifyCosignatures checks that a 200 add-checkpoint body never panics
// the client, and that whatever is returned is a valid cosignature of the
// submitted checkpoint under the witness key, from the body.
func FuzzVerifyCosignatures(f *testing.F) {
	w := fuzzCosigner(f, "witness.example.com/w")
	other := fuzzCosigner(f, "witness.example.com/other")
	logSigner, _ := fuzzLogSigner(f)
	good := fuzzSigLines(f, fuzzCheckpoint, w)
	f.Add(good)
	f.Add(fuzzSigLines(f, fuzzCheckpoint, other, w))
	f.Add(fuzzSigLines(f, fuzzCheckpoint, other))
	f.Add(fuzzSigLines(f, fuzzCheckpoint, logSigner))
	f.Add(fuzzSigLines(f, strings.Replace(fuzzCheckpoint, "\n3\n", "\n4\n", 1), w))
	f.Add(append([]byte("\n"), good...))
	f.Add([]byte("— witness.example.com/w AAAA\n"))
	f.Add([]byte(""))
	f.Add([]byte("\n"))
	f.Add([]byte("<html>\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := verifyCosignatures(fuzzCheckpoint, body, w.Verifier())
		if err != nil {
			if out != nil {
				t.Fatal("output with an error")
			}
			return
		}
		for line := range bytes.Lines(out) {
			if !bytes.Contains(body, line) {
				t.Fatalf("returned line %q is not in the body", line)
			}
		}
		n, err := note.Open(append([]byte(fuzzCheckpoint+"\n"), out...), note.VerifierList(w.Verifier()))
		if err != nil || len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 0 {
			t.Fatalf("returned lines do not verify on their own: %v\n%s", err, out)
		}
	})
}

// FuzzRequireCosignatures checks that no note panics RequireCosignatures, and
// that an accepted note is a log-signed checkpoint with k cosignatures.
func FuzzRequireCosignatures(f *testing.F) {
	w1 := fuzzCosigner(f, "witness.example.com/w1")
	w2 := fuzzCosigner(f, "witness.example.com/w2")
	logSigner, logV := fuzzLogSigner(f)
	signed, err := note.Sign(&note.Note{Text: fuzzCheckpoint}, logSigner, w1, w2)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed, 2)
	f.Add(signed, 3)
	f.Add(signed[:len(fuzzCheckpoint)+1], 0)
	f.Add([]byte(fuzzCheckpoint), 0)
	f.Add([]byte("hello\n\n— log.example.com/fuzz AAAAAAAA\n"), 0)
	f.Fuzz(func(t *testing.T, msg []byte, k int) {
		ws := []note.Verifier{w1.Verifier(), w2.Verifier()}
		n, err := RequireCosignatures(msg, logV, ws, k)
		if err != nil {
			return
		}
		if _, err := torchwood.ParseCheckpoint(n.Text); err != nil {
			t.Fatalf("accepted a note that is not a checkpoint: %q", n.Text)
		}
		if k < 0 || k > 2 || len(n.Sigs) < 1+k {
			t.Fatalf("accepted with k=%d and %d signatures", k, len(n.Sigs))
		}
	})
}
