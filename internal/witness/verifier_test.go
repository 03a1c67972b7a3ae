package witness_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"blindex.dev/blindex/internal/witness"
	"golang.org/x/mod/sumdb/note"
)

const testCheckpoint = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

// specCosignature builds a cosignature line by hand from c2sp.org/tlog-cosignature,
// independently of torchwood and of this package:
//
//	key ID  = SHA-256(name || "\n" || 0x04 || public key)[:4]
//	message = "cosignature/v1\ntime <t>\n" || checkpoint body
//	line    = "— " name " " base64(key ID || u64be t || Ed25519 signature) "\n"
func specCosignature(name string, priv ed25519.PrivateKey, t uint64, signedMsg string) (vkey, line string) {
	pub := priv.Public().(ed25519.PublicKey)
	keyMaterial := append([]byte{0x04}, pub...)
	h := sha256.Sum256(append([]byte(name+"\n"), keyMaterial...))
	vkey = name + "+" + hex.EncodeToString(h[:4]) + "+" + base64.StdEncoding.EncodeToString(keyMaterial)
	sig := append([]byte{}, h[:4]...)
	sig = binary.BigEndian.AppendUint64(sig, t)
	sig = append(sig, ed25519.Sign(priv, []byte(signedMsg))...)
	return vkey, "— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n"
}

func TestVerifierFollowsSpec(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const name = "witness.example.com/w1"
	const ts = 1679315147
	good := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, testCheckpoint)
	withExt := testCheckpoint + "extension line\n"

	tests := []struct {
		desc      string
		signedMsg string // what the witness signed
		text      string // the checkpoint the note carries
		ok        bool
	}{
		{"spec message", good, testCheckpoint, true},
		{"extension lines are signed", fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, withExt), withExt, true},
		{"extension line added after signing", good, withExt, false},
		{"other checkpoint", good, strings.Replace(testCheckpoint, "20852163", "20852164", 1), false},
		{"wrong time line", fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts+1, testCheckpoint), testCheckpoint, false},
		{"no header line", fmt.Sprintf("time %d\n%s", ts, testCheckpoint), testCheckpoint, false},
		{"plain note signature", testCheckpoint, testCheckpoint, false},
		{"leading zero in time", fmt.Sprintf("cosignature/v1\ntime 0%d\n%s", ts, testCheckpoint), testCheckpoint, false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			vkey, line := specCosignature(name, priv, ts, tt.signedMsg)
			v, err := witness.ParseVerifier(vkey)
			if err != nil {
				t.Fatalf("ParseVerifier(%q): %v", vkey, err)
			}
			if v.Name() != name {
				t.Errorf("Name() = %q, want %q", v.Name(), name)
			}
			_, err = note.Open([]byte(tt.text+"\n"+line), note.VerifierList(v))
			if tt.ok && err != nil {
				t.Errorf("valid cosignature rejected: %v", err)
			}
			if !tt.ok {
				var invalid *note.InvalidSignatureError
				if !errors.As(err, &invalid) {
					t.Errorf("invalid cosignature: err = %v, want *note.InvalidSignatureError", err)
				}
			}
		})
	}

	// A key other than the vkey's, under the same name and key hash.
	vkey, _ := specCosignature(name, priv, ts, good)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	_, line := specCosignature(name, other, ts, good)
	v, err := witness.ParseVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open([]byte(testCheckpoint+"\n"+line), note.VerifierList(v)); err == nil {
		t.Error("cosignature from another key accepted")
	}
}

// TestVerifierAcceptsTorchwood cross-checks against torchwood's signer, which
// litewitness uses.
func TestVerifierAcceptsTorchwood(t *testing.T) {
	s := newCosigner(t, "witness.example.com/torchwood")
	v, err := witness.ParseVerifier(s.Verifier().String())
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != s.Name() || v.KeyHash() != s.KeyHash() {
		t.Fatalf("verifier is %s+%08x, signer is %s+%08x", v.Name(), v.KeyHash(), s.Name(), s.KeyHash())
	}
	signed, err := note.Sign(&note.Note{Text: testCheckpoint}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(signed, note.VerifierList(v)); err != nil {
		t.Fatalf("torchwood cosignature rejected: %v", err)
	}
	other := newCosigner(t, "witness.example.com/torchwood")
	ov, err := witness.ParseVerifier(other.Verifier().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(signed, note.VerifierList(ov)); err == nil {
		t.Fatal("cosignature accepted under another key")
	}
}

func TestParseVerifierRejects(t *testing.T) {
	// The key hash is random hex; an all-digit hash has no upper-case form,
	// so draw keys until it has a letter (each draw fails with p = (10/16)^8).
	s := newCosigner(t, "witness.example.com/w")
	for !strings.ContainsAny(strings.SplitN(s.Verifier().String(), "+", 3)[1], "abcdef") {
		s = newCosigner(t, "witness.example.com/w")
	}
	good := s.Verifier().String()
	if _, err := witness.ParseVerifier(good); err != nil {
		t.Fatalf("ParseVerifier(%q): %v", good, err)
	}
	name, rest, _ := strings.Cut(good, "+")
	hash, key64, _ := strings.Cut(rest, "+")
	key, _ := base64.StdEncoding.DecodeString(key64)
	enc := base64.StdEncoding.EncodeToString
	_, logVKey, err := note.GenerateKey(rand.Reader, "log.example.com/log")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		desc string
		vkey string
		want error
	}{
		{"empty", "", witness.ErrMalformedVerifierKey},
		{"name only", name, witness.ErrMalformedVerifierKey},
		{"no key", name + "+" + hash, witness.ErrMalformedVerifierKey},
		{"empty key", name + "+" + hash + "+", witness.ErrMalformedVerifierKey},
		{"log key", logVKey, witness.ErrKeyAlgorithm},
		{"wrong hash", name + "+00000000+" + key64, witness.ErrMalformedVerifierKey},
		{"upper-case hash", name + "+" + strings.ToUpper(hash) + "+" + key64, witness.ErrMalformedVerifierKey},
		{"short hash", name + "+" + hash[1:] + "+" + key64, witness.ErrMalformedVerifierKey},
		{"hash not hex", name + "+" + "zzzzzzzz" + "+" + key64, witness.ErrMalformedVerifierKey},
		{"other name", "witness.example.com/x+" + hash + "+" + key64, witness.ErrMalformedVerifierKey},
		{"name with space", "a b+" + hash + "+" + key64, witness.ErrMalformedVerifierKey},
		{"empty name", "+" + hash + "+" + key64, witness.ErrMalformedVerifierKey},
		{"short key", name + "+" + hash + "+" + enc(key[:32]), witness.ErrMalformedVerifierKey},
		{"long key", name + "+" + hash + "+" + enc(append(key, 0)), witness.ErrMalformedVerifierKey},
		{"newline in base64", name + "+" + hash + "+" + key64[:10] + "\n" + key64[10:], witness.ErrMalformedVerifierKey},
		{"extra padding", name + "+" + hash + "+" + key64 + "==", witness.ErrMalformedVerifierKey},
		{"not base64", name + "+" + hash + "+" + key64[:43] + "-", witness.ErrMalformedVerifierKey},
		{"trailing data", good + "+", witness.ErrMalformedVerifierKey},
		{"trailing newline", good + "\n", witness.ErrMalformedVerifierKey},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			v, err := witness.ParseVerifier(tt.vkey)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseVerifier(%q) = %v, %v; want %v", tt.vkey, v, err, tt.want)
			}
		})
	}
}

// FuzzParseVerifier checks that ParseVerifier never panics and accepts only
// canonical encodings: whatever it accepts re-encodes to the same string.
func FuzzParseVerifier(f *testing.F) {
	f.Add(newCosigner(f, "witness.example.com/w").Verifier().String())
	f.Add("sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562+5202289b+Af/cLU2Y5BJNP+r3iMDC+av9eWCD0fBJVDfzAux5zxAP")
	f.Add("a+00000000+BA==")
	f.Add("+++")
	f.Add("")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	vkey, _ := specCosignature("fuzz.example/w", priv, 0, "")
	f.Add(vkey)
	f.Fuzz(func(t *testing.T, vkey string) {
		v, err := witness.ParseVerifier(vkey)
		if err != nil {
			if v != nil {
				t.Fatal("non-nil verifier with an error")
			}
			return
		}
		s, ok := v.(fmt.Stringer)
		if !ok {
			t.Fatal("verifier has no String method")
		}
		if s.String() != vkey {
			t.Fatalf("accepted %q, which re-encodes as %q", vkey, s.String())
		}
		if !strings.HasPrefix(vkey, v.Name()+"+") {
			t.Fatalf("name %q is not the vkey's prefix", v.Name())
		}
		v.Verify([]byte(testCheckpoint), make([]byte, 72))
	})
}
