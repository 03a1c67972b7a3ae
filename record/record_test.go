package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	testKey  = [32]byte{1, 2, 3, 4, 5, 6, 7, 8}
	otherKey = [32]byte{8, 7, 6, 5, 4, 3, 2, 1}
)

func testRecord() Record {
	return Record{
		App:       "org.example.chat",
		Endpoint:  "https://chat.example.org/u/alice?x=1&y=2",
		PublicKey: []byte("app-level public key"),
		Priority:  10,
		Expires:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func mustSeal(t testing.TB, key [32]byte, r Record) []byte {
	t.Helper()
	ct, err := Seal(key, r)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return ct
}

func TestRoundTrip(t *testing.T) {
	noKey := testRecord()
	noKey.PublicKey = nil
	for _, r := range []Record{testRecord(), noKey} {
		got, err := Open(testKey, mustSeal(t, testKey, r))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip: got %+v, want %+v", got, r)
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	a, b := mustSeal(t, testKey, testRecord()), mustSeal(t, testKey, testRecord())
	if bytes.Equal(a, b) {
		t.Error("two seals of the same record are identical")
	}
}

func TestWrongKey(t *testing.T) {
	ct := mustSeal(t, testKey, testRecord())
	if _, err := Open(otherKey, ct); err != ErrDecrypt {
		t.Errorf("Open with wrong key: err = %v, want ErrDecrypt", err)
	}
}

// TestTamper checks that every single-bit change, truncation and extension of
// a sealed record fails to open.
func TestTamper(t *testing.T) { checkTamperProof(t, mustSeal(t, testKey, testRecord())) }

// checkTamperProof checks that every flipped bit, every truncation and one
// byte more make ct fail to open, with ErrDecrypt.
func checkTamperProof(t *testing.T, ct []byte) {
	t.Helper()
	for i := range ct {
		for bit := range 8 {
			c := bytes.Clone(ct)
			c[i] ^= 1 << bit
			if _, err := Open(testKey, c); err != ErrDecrypt {
				t.Fatalf("flipping bit %d of byte %d: err = %v, want ErrDecrypt", bit, i, err)
			}
		}
	}
	for n := range len(ct) {
		if _, err := Open(testKey, ct[:n]); err != ErrDecrypt {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrDecrypt", n, err)
		}
	}
	if _, err := Open(testKey, append(bytes.Clone(ct), 0)); err != ErrDecrypt {
		t.Errorf("extended by one byte: err = %v, want ErrDecrypt", err)
	}
}

func TestOpenTooLarge(t *testing.T) {
	if _, err := Open(testKey, make([]byte, MaxCiphertext+1)); err != ErrTooLarge {
		t.Errorf("Open of MaxCiphertext+1 bytes: err = %v, want ErrTooLarge", err)
	}
}

func TestSealTooLarge(t *testing.T) {
	long := testRecord()
	long.Endpoint = "https://example.org/" + strings.Repeat("a", MaxEndpointLen)
	bigKey := testRecord()
	bigKey.PublicKey = make([]byte, MaxPublicKeyLen+1)
	longApp := testRecord()
	longApp.App = "org." + strings.Repeat("a", MaxAppLen)
	for _, r := range []Record{long, bigKey, longApp} {
		if _, err := Seal(testKey, r); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Seal of oversized record: err = %v, want ErrTooLarge", err)
		}
	}
}

// largestRecord is a valid record with every field at its limit, and an
// endpoint of characters that JSON escapes to two bytes each.
func largestRecord() Record {
	label := strings.Repeat("a", 63)
	app := label + "." + label + "." + label + "." + strings.Repeat("b", 61)
	return Record{
		App:       app,
		Endpoint:  "x:" + strings.Repeat(`"`, MaxEndpointLen-2),
		PublicKey: bytes.Repeat([]byte{0xff}, MaxPublicKeyLen),
		Priority:  MaxPriority,
		Expires:   time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
	}
}

// TestLargestFits checks that Validate's limits guarantee Seal succeeds.
func TestLargestFits(t *testing.T) {
	r := largestRecord()
	if len(r.App) != MaxAppLen || len(r.Endpoint) != MaxEndpointLen {
		t.Fatalf("largestRecord is not at the limits: app %d, endpoint %d", len(r.App), len(r.Endpoint))
	}
	ct := mustSeal(t, testKey, r)
	if len(ct) != envelopeOverhead+maxClass {
		t.Errorf("len = %d, want the largest class's %d", len(ct), envelopeOverhead+maxClass)
	}
	got, err := Open(testKey, ct)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("round trip of largest record: %v", err)
	}
}

func TestSizeClasses(t *testing.T) {
	for name, classes := range map[string][]int{"SizeClasses": SizeClasses, "legacySizeClasses": legacySizeClasses} {
		if classes[len(classes)-1] != maxClass {
			t.Errorf("maxClass %d is not the last of %s", maxClass, name)
		}
		for i := 1; i < len(classes); i++ {
			if classes[i] <= classes[i-1] {
				t.Errorf("%s not ascending: %v", name, classes)
			}
		}
	}
	if len(SizeClasses) > 6 {
		t.Errorf("%d size classes; the protocol allows 6", len(SizeClasses))
	}
	if maxClass-2 > 0xffff {
		t.Error("a class is too large for the 2-byte length prefix")
	}
	if !slices.Equal(legacySizeClasses, []int{512, 1024, 2048, 4096}) {
		t.Errorf("legacySizeClasses = %v: they are fixed by the records already sealed", legacySizeClasses)
	}
}

// TestCiphertextSizes pins the six ciphertext lengths: each class's length
// plus a fixed 41 bytes (version, 24-byte nonce, 16-byte tag). The record
// of testRecord without a proof takes 89 bytes plus its endpoint.
func TestCiphertextSizes(t *testing.T) {
	tests := []struct {
		endpointLen, keyLen int
		want                int
	}{
		{20, 0, 617},
		{487, 0, 617},
		{488, 0, 681},
		{550, 0, 681},
		{552, 0, 809},
		{679, 0, 809},
		{680, 0, 1065},
		{900, 0, 1065},
		{1000, 300, 2089},
		{1000, 600, 2089},
		{900, 1024, 4137},
		{MaxEndpointLen, MaxPublicKeyLen, 4137},
	}
	for _, tt := range tests {
		r := testRecord()
		r.Endpoint = "https://e.example/" + strings.Repeat("p", tt.endpointLen-len("https://e.example/"))
		r.PublicKey = bytes.Repeat([]byte{7}, tt.keyLen)
		if tt.keyLen == 0 {
			r.PublicKey = nil
		}
		if got := len(mustSeal(t, testKey, r)); got != tt.want {
			t.Errorf("endpoint %d, key %d: ciphertext length %d, want %d", tt.endpointLen, tt.keyLen, got, tt.want)
		}
	}
	if MaxCiphertext != 4283 || legacyHeaderSize != 155 || envelopeOverhead != 41 {
		t.Errorf("MaxCiphertext = %d, want 4283 (legacy header %d, v2 overhead %d)", MaxCiphertext, legacyHeaderSize, envelopeOverhead)
	}
}

func TestLengthHidesEndpoint(t *testing.T) {
	short, long := testRecord(), testRecord()
	short.App, short.Endpoint, short.PublicKey = "a.b", "x:y", nil
	long.App = "org.example.a-much-longer-application-name"
	long.Endpoint = "https://chat.example.org/" + strings.Repeat("u", 300)
	a, b := mustSeal(t, testKey, short), mustSeal(t, testKey, long)
	if len(a) != len(b) {
		t.Errorf("ciphertext lengths differ within a class: %d and %d", len(a), len(b))
	}
}

func TestValidate(t *testing.T) {
	ok := testRecord()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid record: %v", err)
	}
	mod := func(f func(*Record)) Record { r := testRecord(); f(&r); return r }
	bad := map[string]Record{
		"empty app":          mod(func(r *Record) { r.App = "" }),
		"app without dot":    mod(func(r *Record) { r.App = "chat" }),
		"app uppercase":      mod(func(r *Record) { r.App = "org.Example.chat" }),
		"app leading dot":    mod(func(r *Record) { r.App = ".org.example" }),
		"app trailing dot":   mod(func(r *Record) { r.App = "org.example." }),
		"app empty label":    mod(func(r *Record) { r.App = "org..example" }),
		"app underscore":     mod(func(r *Record) { r.App = "org.ex_ample" }),
		"app space":          mod(func(r *Record) { r.App = "org.example chat" }),
		"app non-ASCII":      mod(func(r *Record) { r.App = "org.exämple" }),
		"app only dot":       mod(func(r *Record) { r.App = "." }),
		"empty endpoint":     mod(func(r *Record) { r.Endpoint = "" }),
		"endpoint no scheme": mod(func(r *Record) { r.Endpoint = "chat.example.org/alice" }),
		"endpoint relative":  mod(func(r *Record) { r.Endpoint = "/alice" }),
		"endpoint control":   mod(func(r *Record) { r.Endpoint = "https://e.example/\n" }),
		"endpoint bad UTF-8": mod(func(r *Record) { r.Endpoint = "https://e.example/\xff" }),
		"priority negative":  mod(func(r *Record) { r.Priority = -1 }),
		"priority too large": mod(func(r *Record) { r.Priority = MaxPriority + 1 }),
		"expires zero":       mod(func(r *Record) { r.Expires = time.Time{} }),
		"expires not UTC":    mod(func(r *Record) { r.Expires = r.Expires.In(time.FixedZone("X", 3600)) }),
		"expires fixed UTC":  mod(func(r *Record) { r.Expires = r.Expires.In(time.FixedZone("UTC", 0)) }),
		"expires sub-second": mod(func(r *Record) { r.Expires = r.Expires.Add(time.Millisecond) }),
		"expires year 10000": mod(func(r *Record) { r.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
	}
	for name, r := range bad {
		if err := r.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
		if _, err := Seal(testKey, r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Seal = %v, want ErrInvalid", name, err)
		}
	}
	good := map[string]Record{
		"min app":        mod(func(r *Record) { r.App = "a.b" }),
		"digits, hyphen": mod(func(r *Record) { r.App = "com.example-1.app2" }),
		"other scheme":   mod(func(r *Record) { r.Endpoint = "matrix:u/alice:example.org" }),
		"priority 0":     mod(func(r *Record) { r.Priority = 0 }),
		"priority max":   mod(func(r *Record) { r.Priority = MaxPriority }),
	}
	for name, r := range good {
		if err := r.Validate(); err != nil {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}

// pad builds a padded plaintext with the given JSON, class size and length
// prefix, for sealing malformed payloads directly.
func padCrafted(js string, size, prefix int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint16(b, uint16(prefix))
	copy(b[2:], js)
	return b
}

const validJSON = `{"app":"org.example.chat","endpoint":"https://e.example/a","priority":1,"expires":"2026-03-01T12:00:00Z"}`

func TestOpenMalformedPlaintext(t *testing.T) {
	// The crafted plaintexts themselves must open when well formed, or the
	// negatives below prove nothing.
	c := SizeClasses[0]
	if _, err := openCrafted(t, padCrafted(validJSON, c, len(validJSON))); err != nil {
		t.Fatalf("well-formed crafted plaintext: %v", err)
	}
	padJSON := func(js string) []byte { return padCrafted(js, c, len(js)) }
	nonZero := padJSON(validJSON)
	nonZero[c-1] = 1
	nonZeroNext := padJSON(validJSON)
	nonZeroNext[2+len(validJSON)] = ' '
	tests := []struct {
		name   string
		padded []byte
		detail string // expected in the error, to show which check fired
	}{
		{"non-zero last byte", nonZero, "non-zero padding"},
		{"space after JSON", nonZeroNext, "proof length"},
		{"not a class", padCrafted(validJSON, c+1, len(validJSON)), "not a size class"},
		{"a legacy class only", padCrafted(validJSON, 512, len(validJSON)), "not a size class"},
		{"empty", []byte{}, "not a size class"},
		{"prefix past end", padCrafted(validJSON, c, c-1), "length prefix"},
		{"prefix max", padCrafted(validJSON, c, 0xffff), "length prefix"},
		{"prefix short", padCrafted(validJSON, c, len(validJSON)-1), "proof length"},
		{"zero prefix", padCrafted("", c, 0), "EOF"},
		{"unknown field", padJSON(`{"app":"a.b","endpoint":"x:y","priority":1,"expires":"2026-03-01T12:00:00Z","x":1}`), "unknown field"},
		{"misspelled field", padJSON(`{"app":"a.b","endpoint":"x:y","priority":1,"expires":"2026-03-01T12:00:00Z","public key":""}`), "unknown field"},
		{"trailing JSON", padJSON(validJSON + `{}`), "trailing data"},
		{"invalid record", padJSON(`{"app":"ab","endpoint":"x:y","priority":1,"expires":"2026-03-01T12:00:00Z"}`), "reverse-DNS"},
		{"offset expiry", padJSON(`{"app":"a.b","endpoint":"x:y","priority":1,"expires":"2026-03-01T12:00:00+00:00"}`), "expiry"},
		{"missing expiry", padJSON(`{"app":"a.b","endpoint":"x:y","priority":1}`), "expiry"},
		{"priority not integer", padJSON(`{"app":"a.b","endpoint":"x:y","priority":1.5,"expires":"2026-03-01T12:00:00Z"}`), "priority"},
	}
	for _, tt := range tests {
		_, err := openCrafted(t, tt.padded)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.detail) {
			t.Errorf("%s: Open = %v, want ErrInvalid with %q", tt.name, err, tt.detail)
		}
	}
	// A payload over the largest class cannot come from Seal; its ciphertext
	// is refused by length before decryption.
	if _, err := openCrafted(t, padCrafted(validJSON, 8192, len(validJSON))); err != ErrTooLarge {
		t.Errorf("8192-byte payload: Open = %v, want ErrTooLarge", err)
	}
}

func openCrafted(t *testing.T, padded []byte) (Record, error) {
	t.Helper()
	ct, err := seal(testKey, padded)
	if err != nil {
		t.Fatal(err)
	}
	return Open(testKey, ct)
}

func FuzzOpen(f *testing.F) {
	f.Add(mustSeal(f, testKey, testRecord()))
	f.Add(mustSeal(f, testKey, largestRecord()))
	f.Add(mustSeal(f, otherKey, testRecord()))
	f.Add([]byte("age-encryption.org/v1\n-> blindex-record AAAAAAAAAAAAAAAAAAAAAA\nAAAA\n--- AAAA\n"))
	f.Add(legacySealed(f, testRecord(), nil))
	f.Add(append([]byte{envelopeVersion}, make([]byte, envelopeOverhead-1)...))
	f.Add([]byte{envelopeVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ct []byte) {
		r, err := Open(testKey, ct)
		if err != nil {
			if !reflect.DeepEqual(r, Record{}) {
				t.Fatalf("Open returned a record with error %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Open returned an invalid record: %v", err)
		}
		r2, err := Open(testKey, mustSeal(t, testKey, r))
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("reseal round trip: %v", err)
		}
	})
}

func TestValidCiphertextSize(t *testing.T) {
	tests := []struct {
		n    int
		want bool
	}{
		{617, true}, {681, true}, {809, true}, {1065, true}, {2089, true}, {4137, true},
		// The legacy age lengths: still read, no longer accepted.
		{699, false}, {1211, false}, {2235, false}, {4283, false},
		{0, false}, {41, false}, {576, false}, {4096, false}, {1577, false}, {MaxCiphertext + 577, false},
	}
	for _, tt := range tests {
		if got := ValidCiphertextSize(tt.n); got != tt.want {
			t.Errorf("ValidCiphertextSize(%d) = %v, want %v", tt.n, got, tt.want)
		}
		if tt.want && (ValidCiphertextSize(tt.n-1) || ValidCiphertextSize(tt.n+1)) {
			t.Errorf("ValidCiphertextSize accepts a neighbour of %d", tt.n)
		}
	}
	for _, c := range SizeClasses {
		if !ValidCiphertextSize(envelopeOverhead + c) {
			t.Errorf("class %d: ValidCiphertextSize(%d) = false", c, envelopeOverhead+c)
		}
	}
	if n := len(mustSeal(t, testKey, testRecord())); !ValidCiphertextSize(n) {
		t.Errorf("sealed record length %d not valid", n)
	}
}
