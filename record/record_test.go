package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
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
func TestTamper(t *testing.T) {
	ct := mustSeal(t, testKey, testRecord())
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
	if len(ct) != MaxCiphertext {
		t.Errorf("len = %d, want MaxCiphertext %d", len(ct), MaxCiphertext)
	}
	got, err := Open(testKey, ct)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("round trip of largest record: %v", err)
	}
}

func TestSizeClasses(t *testing.T) {
	if SizeClasses[len(SizeClasses)-1] != maxClass {
		t.Errorf("maxClass %d is not the last size class", maxClass)
	}
	for i := 1; i < len(SizeClasses); i++ {
		if SizeClasses[i] <= SizeClasses[i-1] {
			t.Errorf("SizeClasses not ascending: %v", SizeClasses)
		}
	}
	if len(SizeClasses) > 1<<16 || maxClass-2 > 0xffff {
		t.Error("a class is too large for the 2-byte length prefix")
	}
}

// TestCiphertextSizes pins the four ciphertext lengths: each class's length
// plus a fixed 155-byte age header, 16-byte nonce and 16-byte tag.
func TestCiphertextSizes(t *testing.T) {
	tests := []struct {
		endpointLen, keyLen int
		want                int
	}{
		{20, 0, 699},
		{380, 0, 699},
		{600, 0, 1211},
		{900, 0, 1211},
		{1000, 600, 2235},
		{900, 1024, 4283},
		{MaxEndpointLen, MaxPublicKeyLen, 4283},
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
	if MaxCiphertext != 4283 {
		t.Errorf("MaxCiphertext = %d, want 4283", MaxCiphertext)
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
	if _, err := openCrafted(t, padCrafted(validJSON, 512, len(validJSON))); err != nil {
		t.Fatalf("well-formed crafted plaintext: %v", err)
	}
	padJSON := func(js string) []byte { return padCrafted(js, 512, len(js)) }
	nonZero := padJSON(validJSON)
	nonZero[511] = 1
	nonZeroNext := padJSON(validJSON)
	nonZeroNext[2+len(validJSON)] = ' '
	tests := []struct {
		name   string
		padded []byte
		detail string // expected in the error, to show which check fired
	}{
		{"non-zero last byte", nonZero, "non-zero padding"},
		{"space after JSON", nonZeroNext, "proof length"},
		{"not a class", padCrafted(validJSON, 513, len(validJSON)), "not a size class"},
		{"empty", []byte{}, "not a size class"},
		{"prefix past end", padCrafted(validJSON, 512, 511), "length prefix"},
		{"prefix max", padCrafted(validJSON, 512, 0xffff), "length prefix"},
		{"prefix short", padCrafted(validJSON, 512, len(validJSON)-1), "proof length"},
		{"zero prefix", padCrafted("", 512, 0), "EOF"},
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

func FuzzOpen(f *testing.F) {
	f.Add(mustSeal(f, testKey, testRecord()))
	f.Add(mustSeal(f, testKey, largestRecord()))
	f.Add(mustSeal(f, otherKey, testRecord()))
	f.Add([]byte("age-encryption.org/v1\n-> blindex-record AAAAAAAAAAAAAAAAAAAAAA\nAAAA\n--- AAAA\n"))
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
	for _, n := range []int{699, 1211, 2235, 4283} {
		if !ValidCiphertextSize(n) {
			t.Errorf("ValidCiphertextSize(%d) = false", n)
		}
		if ValidCiphertextSize(n-1) || ValidCiphertextSize(n+1) {
			t.Errorf("ValidCiphertextSize accepts a neighbour of %d", n)
		}
	}
	if ValidCiphertextSize(0) || ValidCiphertextSize(MaxCiphertext+SizeClasses[0]) {
		t.Error("ValidCiphertextSize accepts 0 or an oversized length")
	}
	if n := len(mustSeal(t, testKey, testRecord())); !ValidCiphertextSize(n) {
		t.Errorf("sealed record length %d not valid", n)
	}
}
