package record

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// recipient wraps the age file key to a record key, as Seal did before
// envelope v2; only tests build legacy ciphertexts now.
type recipient struct{ key [32]byte }

func (r *recipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	salt := make([]byte, saltSize)
	rand.Read(salt)
	aead, err := wrapAEAD(r.key, salt)
	if err != nil {
		return nil, err
	}
	body := aead.Seal(nil, make([]byte, chacha20poly1305.NonceSize), fileKey, nil)
	return []*age.Stanza{{Type: stanzaType, Args: []string{b64.EncodeToString(salt)}, Body: body}}, nil
}

// sealLegacy is the old seal: padded encrypted with age to the record key.
func sealLegacy(t testing.TB, key [32]byte, padded []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := age.Encrypt(&out, &recipient{key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(padded); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// padLegacy pads parts to the smallest legacy class, as the old Seal did.
func padLegacy(t testing.TB, parts ...[]byte) []byte {
	t.Helper()
	body := bytes.Join(parts, nil)
	for _, c := range legacySizeClasses {
		if len(body) <= c {
			padded := make([]byte, c)
			copy(padded, body)
			return padded
		}
	}
	t.Fatalf("body of %d bytes fits no legacy class", len(body))
	return nil
}

// legacySealed seals r (and p, if not nil, signed with the fixture's key)
// in the legacy form.
func legacySealed(t testing.TB, r Record, f *proofFixture) []byte {
	t.Helper()
	if f == nil {
		js, err := encodeJSON(r)
		if err != nil {
			t.Fatal(err)
		}
		return sealLegacy(t, testKey, padLegacy(t, binary.BigEndian.AppendUint16(nil, uint16(len(js))), js))
	}
	// Seal as v2, then move the same padded body into a legacy class.
	ct, err := SealProved(testKey, r, f.proof, f.key)
	if err != nil {
		t.Fatal(err)
	}
	padded, err := decrypt(testKey, ct)
	if err != nil {
		t.Fatal(err)
	}
	return sealLegacy(t, testKey, padLegacy(t, bytes.TrimRight(padded, "\x00")))
}

// TestLegacyOpens checks that records sealed in the age form before
// envelope v2, with and without a proof, still open and verify.
func TestLegacyOpens(t *testing.T) {
	r := testRecord()
	ct := legacySealed(t, r, nil)
	if len(ct) != legacyHeaderSize+16+512+16 || ct[0] != 'a' {
		t.Fatalf("legacy ciphertext: %d bytes, first byte %q", len(ct), ct[0])
	}
	got, err := Open(testKey, ct)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("Open(legacy) = %+v, %v", got, err)
	}
	if _, err := Open(otherKey, ct); err != ErrDecrypt {
		t.Errorf("Open(legacy, wrong key): err = %v, want ErrDecrypt", err)
	}
	if ValidCiphertextSize(len(ct)) {
		t.Errorf("ValidCiphertextSize accepts the legacy length %d for upload", len(ct))
	}

	f := newProofFixture(t)
	pct := legacySealed(t, f.rec, f)
	if len(pct) != legacyHeaderSize+16+1024+16 {
		t.Errorf("legacy proved record is %d bytes, want 1211", len(pct))
	}
	pr, p, err := OpenProved(testKey, pct)
	if err != nil || p == nil {
		t.Fatalf("OpenProved(legacy proved) = %v, %v", p, err)
	}
	if _, err := p.Verify(pr, proofNumber, proofNow.Add(1e9), f.trust); err != nil {
		t.Errorf("legacy proved record: Verify: %v", err)
	}
}

// TestLegacyClasses checks that each form is held to its own classes: a
// legacy ciphertext of a v2-only class, and a v2 one of a legacy-only
// class, authenticate but do not open.
func TestLegacyClasses(t *testing.T) {
	for _, c := range legacySizeClasses {
		if _, err := Open(testKey, sealLegacy(t, testKey, padCrafted(validJSON, c, len(validJSON)))); err != nil {
			t.Errorf("legacy class %d: %v", c, err)
		}
	}
	if _, err := Open(testKey, sealLegacy(t, testKey, padCrafted(validJSON, 640, len(validJSON)))); !errors.Is(err, ErrInvalid) {
		t.Errorf("legacy ciphertext of 640 bytes: err = %v, want ErrInvalid", err)
	}
	ct, err := seal(testKey, padCrafted(validJSON, 512, len(validJSON)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(testKey, ct); !errors.Is(err, ErrInvalid) {
		t.Errorf("v2 ciphertext of the legacy 512 class: err = %v, want ErrInvalid", err)
	}
}

// TestLegacyTamper checks that every bit flip, truncation and extension of
// a legacy ciphertext fails to open.
func TestLegacyTamper(t *testing.T) { checkTamperProof(t, legacySealed(t, testRecord(), nil)) }

func TestUnwrapStanzas(t *testing.T) {
	fileKey := bytes.Repeat([]byte{9}, fileKeyLen)
	ss, err := (&recipient{key: testKey}).Wrap(fileKey)
	if err != nil || len(ss) != 1 {
		t.Fatalf("Wrap: %v, %d stanzas", err, len(ss))
	}
	good := ss[0]
	id := &identity{key: testKey}
	if k, err := id.Unwrap([]*age.Stanza{good}); err != nil || !bytes.Equal(k, fileKey) {
		t.Fatalf("Unwrap of own stanza: %x, %v", k, err)
	}
	if _, err := (&identity{key: otherKey}).Unwrap([]*age.Stanza{good}); !errors.Is(err, age.ErrIncorrectIdentity) {
		t.Errorf("wrong key: err = %v, want ErrIncorrectIdentity", err)
	}
	other := &age.Stanza{Type: "X25519", Args: []string{"abc"}, Body: make([]byte, 32)}
	if _, err := id.Unwrap([]*age.Stanza{other}); !errors.Is(err, age.ErrIncorrectIdentity) {
		t.Errorf("foreign stanza: err = %v, want ErrIncorrectIdentity", err)
	}
	mod := func(f func(s *age.Stanza)) *age.Stanza {
		s := &age.Stanza{Type: good.Type, Args: append([]string(nil), good.Args...), Body: bytes.Clone(good.Body)}
		f(s)
		return s
	}
	fatal := map[string][]*age.Stanza{
		"extra stanza after":  {good, other},
		"extra stanza before": {other, good},
		"two of ours":         {good, good},
		"no args":             {mod(func(s *age.Stanza) { s.Args = nil })},
		"two args":            {mod(func(s *age.Stanza) { s.Args = append(s.Args, "x") })},
		"short salt":          {mod(func(s *age.Stanza) { s.Args[0] = b64.EncodeToString(make([]byte, saltSize-1)) })},
		"long salt":           {mod(func(s *age.Stanza) { s.Args[0] = b64.EncodeToString(make([]byte, saltSize+1)) })},
		"padded salt":         {mod(func(s *age.Stanza) { s.Args[0] += "==" })},
		"short body":          {mod(func(s *age.Stanza) { s.Body = s.Body[:len(s.Body)-1] })},
		"long body":           {mod(func(s *age.Stanza) { s.Body = append(s.Body, 0) })},
	}
	for name, ss := range fatal {
		_, err := id.Unwrap(ss)
		if err == nil || errors.Is(err, age.ErrIncorrectIdentity) {
			t.Errorf("%s: Unwrap err = %v, want a fatal error", name, err)
		}
	}
}

// TestExtraRecipient checks that a record also sealed to someone else's age
// key does not open: the owner's key must be the only way in.
func TestExtraRecipient(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, &recipient{key: testKey}, x.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(padCrafted(validJSON, 512, len(validJSON)))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(testKey, out.Bytes()); err != ErrDecrypt {
		t.Errorf("Open with an extra recipient: err = %v, want ErrDecrypt", err)
	}
}
