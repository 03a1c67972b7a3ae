package record

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/credential"
	"golang.org/x/crypto/chacha20poly1305"
)

// TestEnvelopeLayout checks a v2 ciphertext byte by byte against §11:
// version, nonce, and the AEAD under the derived key with the fixed AD.
func TestEnvelopeLayout(t *testing.T) {
	padded := padCrafted(validJSON, SizeClasses[0], len(validJSON))
	ct, err := seal(testKey, padded)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != 41+len(padded) || ct[0] != 0x02 {
		t.Fatalf("ciphertext: %d bytes, first byte %#x", len(ct), ct[0])
	}
	k, err := hkdf.Key(sha256.New, testKey[:], nil, "blindex record envelope v2", 32)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := chacha20poly1305.NewX(k)
	got, err := aead.Open(nil, ct[1:25], ct[25:], []byte("blindex record v2"))
	if err != nil || !bytes.Equal(got, padded) {
		t.Fatalf("opening by hand: %v", err)
	}
	// The record key is not the AEAD key, and the AD is bound.
	raw, _ := chacha20poly1305.NewX(testKey[:])
	if _, err := raw.Open(nil, ct[1:25], ct[25:], []byte("blindex record v2")); err == nil {
		t.Error("the ciphertext opens under the record key itself")
	}
	if _, err := aead.Open(nil, ct[1:25], ct[25:], nil); err == nil {
		t.Error("the ciphertext opens without its associated data")
	}
	other, _ := seal(testKey, padded)
	if bytes.Equal(ct[1:25], other[1:25]) {
		t.Error("two seals share a nonce")
	}
}

// TestEveryClass seals records of many sizes and checks that each lands in
// the smallest class with room for it, that every class is reached, and
// that the ciphertext shows the class and nothing finer.
func TestEveryClass(t *testing.T) {
	hit := map[int]int{}
	for endpointLen := 20; endpointLen <= MaxEndpointLen; endpointLen += 7 {
		for _, keyLen := range []int{0, 32, 300, 700, 1024} {
			r := testRecord()
			r.Endpoint = "https://e.example/" + strings.Repeat("p", endpointLen-len("https://e.example/"))
			r.PublicKey = make([]byte, keyLen)
			if keyLen == 0 {
				r.PublicKey = nil
			}
			js, err := encodeJSON(r)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, c := range SizeClasses {
				if 2+len(js) <= c {
					want = c
					break
				}
			}
			ct := mustSeal(t, testKey, r)
			if len(ct) != envelopeOverhead+want {
				t.Fatalf("body %d: ciphertext %d bytes, want %d", 2+len(js), len(ct), envelopeOverhead+want)
			}
			hit[want]++
			if got, err := Open(testKey, ct); err != nil || got.Endpoint != r.Endpoint || !bytes.Equal(got.PublicKey, r.PublicKey) {
				t.Fatalf("body %d: Open: %v", 2+len(js), err)
			}
		}
	}
	for _, c := range SizeClasses {
		if hit[c] == 0 {
			t.Errorf("no record landed in class %d", c)
		}
		// A crafted payload of exactly the class opens too.
		ct, _ := seal(testKey, padCrafted(validJSON, c, len(validJSON)))
		if _, err := Open(testKey, ct); err != nil {
			t.Errorf("crafted class %d: %v", c, err)
		}
	}
}

func TestOpenShortAndForeign(t *testing.T) {
	ct := mustSeal(t, testKey, testRecord())
	tests := map[string][]byte{
		"empty":              {},
		"version only":       {0x02},
		"overhead only":      ct[:envelopeOverhead],
		"no tag":             ct[:len(ct)-16],
		"version 1":          append([]byte{0x01}, ct[1:]...),
		"version 3":          append([]byte{0x03}, ct[1:]...),
		"age-looking":        append([]byte{'a'}, ct[1:]...),
		"other AD or key":    mustSeal(t, otherKey, testRecord()),
		"all zeros":          make([]byte, len(ct)),
		"version, zeros":     append([]byte{0x02}, make([]byte, len(ct)-1)...),
		"tag moved in front": append(append([]byte{0x02}, ct[len(ct)-16:]...), ct[1:len(ct)-16]...),
	}
	for name, c := range tests {
		if _, err := Open(testKey, c); err != ErrDecrypt {
			t.Errorf("%s: err = %v, want ErrDecrypt", name, err)
		}
	}
	// A v2 ciphertext over its largest class is too large before any
	// decryption, even under MaxCiphertext.
	long := append([]byte{0x02}, make([]byte, envelopeOverhead+maxClass)...)
	if _, err := Open(testKey, long); err != ErrTooLarge {
		t.Errorf("v2 of %d bytes: err = %v, want ErrTooLarge", len(long), err)
	}
}

// TestSizeClassesFitTypicalRecords measures the padded size of proved
// records like the synthetic directory's (directory/synth) and some longer
// realistic ones, and checks the class each lands in: the reasoning behind
// SizeClasses and docs/protocol.md §11.
func TestSizeClassesFitTypicalRecords(t *testing.T) {
	f := newProofFixture(t)
	expires := proofNow.Add(180 * 24 * time.Hour) // synth's default TTL
	hex16 := "0123456789abcdef"
	chat := Record{App: "org.example.chat", Endpoint: "https://chat.example.org/u/" + hex16, Expires: expires}
	voice := Record{App: "org.example.voice", Endpoint: "sip:" + hex16 + "@voice.example.org", Priority: 1, Expires: expires}
	mod := func(r Record, g func(*Record)) Record { g(&r); return r }
	key32 := make([]byte, 32)
	longApp := "com.example-messenger.enterprise.eu" // 35 bytes
	endpoint := func(n int) string { return "https://api.example-messenger.com/" + strings.Repeat("x", n-34) }
	tests := []struct {
		name   string
		r      Record
		digits int // the number's digits, which size the attestation
		body   int // 2 + L + 2 + L', or 0 not to pin it
		class  int
	}{
		{"synth chat", chat, 11, 549, 576},
		{"synth voice", voice, 11, 545, 576},
		{"synth chat, 15 digits", chat, 15, 553, 576},
		{"synth chat, priority 65535, 15 digits", mod(chat, func(r *Record) { r.Priority = 65535 }), 15, 557, 576},
		{"synth chat, year 9999", mod(chat, func(r *Record) { r.Expires = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) }), 15, 553, 576},
		{"chat with a 32-byte key, 15 digits", mod(chat, func(r *Record) { r.PublicKey = key32 }), 15, 613, 640},
		{"long app, 100-byte endpoint, key", Record{App: longApp, Endpoint: endpoint(100), PublicKey: key32, Expires: expires}, 15, 0, 768},
		{"long app, 150-byte endpoint, key", Record{App: longApp, Endpoint: endpoint(150), PublicKey: key32, Expires: expires}, 15, 0, 768},
		{"long app, 200-byte endpoint, key", Record{App: longApp, Endpoint: endpoint(200), PublicKey: key32, Expires: expires}, 15, 0, 1024},
		{"long app, 300-byte endpoint, key", Record{App: longApp, Endpoint: endpoint(300), PublicKey: key32, Expires: expires}, 15, 0, 1024},
		{"300-byte endpoint, 512-byte key", Record{App: longApp, Endpoint: endpoint(300), PublicKey: make([]byte, 512), Expires: expires}, 15, 0, 2048},
		{"1024-byte endpoint, 1024-byte key", Record{App: longApp, Endpoint: endpoint(1024), PublicKey: make([]byte, 1024), Expires: expires}, 15, 0, 4096},
	}
	for _, tt := range tests {
		p := *f.proof
		// The attestation's size depends only on the digits (163 + n); the
		// content does not matter for the size.
		p.Attestation = make([]byte, credential.MaxAttestationSize-15+tt.digits)
		js, err := encodeJSON(tt.r)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body := 2 + len(js) + 2 + 242 + len(p.Attestation)
		ct, err := SealProved(testKey, tt.r, &p, f.key)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		padded, err := decrypt(testKey, ct)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(bytes.TrimRight(padded, "\x00")); n > body || n < body-64 {
			t.Fatalf("%s: padded body %d bytes, computed %d", tt.name, n, body)
		}
		t.Logf("%-40s body %4d  class %4d  ciphertext %4d", tt.name, body, len(padded), len(ct))
		if tt.body != 0 && body != tt.body {
			t.Errorf("%s: body %d bytes, want %d", tt.name, body, tt.body)
		}
		if len(padded) != tt.class || len(ct) != envelopeOverhead+tt.class {
			t.Errorf("%s: class %d (%d-byte ciphertext), want %d", tt.name, len(padded), len(ct), tt.class)
		}
	}
	if got := 2 + 242 + credential.MaxAttestationSize; got != 2+MaxProofSize {
		t.Errorf("proof arithmetic: %d, MaxProofSize %d", got, MaxProofSize)
	}
}

// FuzzEnvelope feeds arbitrary bytes after a v2 version byte, and arbitrary
// padded plaintexts sealed under the test key, to Open: neither may panic,
// and an error returns no record.
func FuzzEnvelope(f *testing.F) {
	f.Add(mustSeal(f, testKey, testRecord()), []byte{})
	f.Add([]byte{}, padCrafted(validJSON, SizeClasses[0], len(validJSON)))
	f.Fuzz(func(t *testing.T, ct, padded []byte) {
		if _, err := Open(testKey, append([]byte{envelopeVersion}, ct...)); err == nil && len(ct)+1 < envelopeOverhead {
			t.Fatal("a short ciphertext opened")
		}
		if len(padded) > maxClass+1 {
			padded = padded[:maxClass+1]
		}
		c, err := seal(testKey, padded)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Open(testKey, c)
		if err != nil {
			if r.App != "" {
				t.Fatalf("Open returned a record with error %v", err)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("an authentic ciphertext gave %v", err)
			}
		}
	})
}
