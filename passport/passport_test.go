package passport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"blindex.dev/blindex/credential"
)

const (
	caller       = "+14155550100"
	callee       = "+12025550199"
	other        = "+14155550111"
	callerDigits = "14155550100"
	calleeDigits = "12025550199"
	validity     = 24 * time.Hour
)

// testNow is whole seconds, as iat is, so that window boundaries are exact.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// cred is a number credential and its key.
type cred struct {
	key   *ecdsa.PrivateKey
	leaf  []byte
	roots *x509.CertPool
	ca    *credential.CA
}

func newCA(t testing.TB) (*credential.CA, *x509.CertPool) {
	t.Helper()
	ca, err := credential.GenerateCA("passport test CA", testNow)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	return ca, roots
}

func newKey(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// issue issues a credential for number from ca, valid from testNow for validity.
func issue(t testing.TB, ca *credential.CA, roots *x509.CertPool, number string, validity time.Duration) *cred {
	t.Helper()
	key := newKey(t, elliptic.P256())
	leaf, err := ca.Issue(number, key.Public(), validity, testNow, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return &cred{key: key, leaf: leaf, roots: roots, ca: ca}
}

func newCred(t testing.TB) *cred {
	t.Helper()
	ca, roots := newCA(t)
	return issue(t, ca, roots, caller, validity)
}

func (c *cred) opts() Options { return Options{Roots: c.roots, Now: testNow} }

func (c *cred) sign(t testing.TB, dest string, now time.Time) string {
	t.Helper()
	token, err := Sign(c.key, [][]byte{c.leaf}, dest, now)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// wantErr checks that err wraps target and does not reveal a number.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %v", what, target)
		return
	}
	if !errors.Is(err, target) {
		t.Errorf("%s: error %q, want %q", what, err, target)
	}
	noNumber(t, what, err)
}

func noNumber(t *testing.T, what string, err error) {
	t.Helper()
	for _, n := range []string{caller, callee, other} {
		if strings.Contains(err.Error(), n[2:]) {
			t.Errorf("%s: error %q contains a number", what, err)
		}
	}
}

// Hand-built tokens, to make what Sign refuses to make.

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// forge returns a compact JWS of header and claims signed by sign.
func forge(header, claims string, sign func(input string) []byte) string {
	input := b64(header) + "." + b64(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign(input))
}

// ecSign returns a JWS ECDSA signer (RFC 7518, Section 3.4: r||s, each the
// size of the curve order) for key and hash.
func ecSign(t testing.TB, key *ecdsa.PrivateKey, h crypto.Hash) func(string) []byte {
	return func(input string) []byte {
		d := h.New()
		d.Write([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, key, d.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		size := (key.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig
	}
}

func hmacSign(secret []byte) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

func x5c(chain ...[]byte) string {
	s := make([]string, len(chain))
	for i, der := range chain {
		s[i] = base64.StdEncoding.EncodeToString(der)
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// header is the header Sign writes, with alg replaced.
func header(alg string, chain ...[]byte) string {
	return fmt.Sprintf(`{"alg":%q,"typ":"passport","x5c":%s}`, alg, x5c(chain...))
}

// claimsJSON is the claims object Sign writes, with any numbers.
func claimsJSON(orig string, dest []string, iat time.Time) string {
	d, _ := json.Marshal(dest)
	return fmt.Sprintf(`{"dest":{"tn":%s},"iat":%d,"orig":{"tn":%q}}`, d, iat.Unix(), orig)
}

// good returns a hand-built token that is valid: the negatives below change one
// thing in it.
func (c *cred) good(t testing.TB) string {
	return forge(header("ES256", c.leaf), claimsJSON(callerDigits, []string{calleeDigits}, testNow),
		ecSign(t, c.key, crypto.SHA256))
}

func TestSignVerify(t *testing.T) {
	c := newCred(t)
	token := c.sign(t, callee, testNow)

	claims, err := Verify(token, callee, c.opts())
	if err != nil {
		t.Fatal(err)
	}
	if claims.Orig != caller || claims.Dest != callee || !claims.IssuedAt.Equal(testNow) ||
		string(claims.Certificate.Raw) != string(c.leaf) {
		t.Errorf("claims = %+v", claims)
	}

	// The exact form of RFC 8225: sorted keys, no whitespace, canonical
	// numbers, x5c in standard base64, raw r||s signature.
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("%d segments", len(parts))
	}
	dec := func(s string) string {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := dec(parts[0]), header("ES256", c.leaf); got != want {
		t.Errorf("header\n got %s\nwant %s", got, want)
	}
	if got, want := dec(parts[1]), claimsJSON(callerDigits, []string{calleeDigits}, testNow); got != want {
		t.Errorf("claims\n got %s\nwant %s", got, want)
	}
	if n := len(dec(parts[2])); n != 64 {
		t.Errorf("signature is %d bytes, want 64", n)
	}

	// The expected dest may be given without '+'.
	if _, err := Verify(token, calleeDigits, c.opts()); err != nil {
		t.Errorf("dest without '+': %v", err)
	}
	// The hand-built control token verifies, so the negatives test one change.
	if _, err := Verify(c.good(t), callee, c.opts()); err != nil {
		t.Errorf("hand-built token: %v", err)
	}
}

func TestSignChainWithRoot(t *testing.T) {
	c := newCred(t)
	token, err := Sign(c.key, [][]byte{c.leaf, c.ca.Root().Raw}, callee, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(token, callee, c.opts()); err != nil {
		t.Error(err)
	}
	// The root in x5c is not a trust anchor: only opts.Roots is.
	_, otherRoots := newCA(t)
	_, err = Verify(token, callee, Options{Roots: otherRoots, Now: testNow})
	wantErr(t, "root in x5c, other roots trusted", err, ErrChain)
}

func TestDefaults(t *testing.T) {
	// Zero Now is the current time.
	ca, roots := newCA(t)
	key := newKey(t, elliptic.P256())
	now := time.Now()
	leaf, err := ca.Issue(caller, key.Public(), validity, now, now)
	if err != nil {
		t.Fatal(err)
	}
	token, err := Sign(key, [][]byte{leaf}, callee, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(token, callee, Options{Roots: roots}); err != nil {
		t.Errorf("zero Now: %v", err)
	}
	// Zero MaxAge is 60s.
	c := newCred(t)
	token = c.sign(t, callee, testNow.Add(-61*time.Second))
	_, err = Verify(token, callee, Options{Roots: c.roots, Now: testNow})
	wantErr(t, "zero MaxAge", err, ErrStale)
}

func TestSignErrors(t *testing.T) {
	c := newCred(t)
	otherKey := newKey(t, elliptic.P256())
	for _, tc := range []struct {
		name  string
		key   *ecdsa.PrivateKey
		chain [][]byte
		dest  string
	}{
		{"nil key", nil, [][]byte{c.leaf}, callee},
		{"P-384 key", newKey(t, elliptic.P384()), [][]byte{c.leaf}, callee},
		{"key not the leaf's", otherKey, [][]byte{c.leaf}, callee},
		{"no chain", c.key, nil, callee},
		{"chain too long", c.key, [][]byte{c.leaf, c.leaf, c.leaf, c.leaf, c.leaf}, callee},
		{"leaf does not parse", c.key, [][]byte{c.leaf[:100]}, callee},
		{"leaf is the root", c.key, [][]byte{c.ca.Root().Raw}, callee},
		{"dest without '+'", c.key, [][]byte{c.leaf}, calleeDigits},
		{"dest with separators", c.key, [][]byte{c.leaf}, "+1-202-555-0199"},
		{"dest too long", c.key, [][]byte{c.leaf}, callee + "12345"},
		{"empty dest", c.key, [][]byte{c.leaf}, ""},
	} {
		token, err := Sign(tc.key, tc.chain, tc.dest, testNow)
		if err == nil {
			t.Errorf("%s: Sign returned %q", tc.name, token)
			continue
		}
		noNumber(t, tc.name, err)
	}
}

// TestGolangJWT checks our tokens against a second, independent JOSE
// implementation, in both directions.
func TestGolangJWT(t *testing.T) {
	c := newCred(t)
	keyFunc := func(pub any) jwt.Keyfunc {
		return func(*jwt.Token) (any, error) { return pub, nil }
	}
	cert, err := x509.ParseCertificate(c.leaf)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ours verified by golang-jwt", func(t *testing.T) {
		token := c.sign(t, callee, testNow)
		parsed, err := jwt.Parse(token, keyFunc(cert.PublicKey), jwt.WithValidMethods([]string{"ES256"}))
		if err != nil {
			t.Fatal(err)
		}
		if parsed.Header["typ"] != "passport" || parsed.Header["alg"] != "ES256" {
			t.Errorf("header = %v", parsed.Header)
		}
		chain, _ := parsed.Header["x5c"].([]any)
		if len(chain) != 1 || chain[0] != base64.StdEncoding.EncodeToString(c.leaf) {
			t.Errorf("x5c = %v", parsed.Header["x5c"])
		}
		claims := parsed.Claims.(jwt.MapClaims)
		orig, _ := claims["orig"].(map[string]any)
		dest, _ := claims["dest"].(map[string]any)
		tns, _ := dest["tn"].([]any)
		if orig["tn"] != callerDigits || len(tns) != 1 || tns[0] != calleeDigits {
			t.Errorf("claims = %v", claims)
		}
		iat, err := claims.GetIssuedAt()
		if err != nil || iat == nil || !iat.Equal(testNow) {
			t.Errorf("iat = %v, %v", iat, err)
		}

		// golang-jwt must also be able to say no, or the check above is empty.
		wrong := newKey(t, elliptic.P256())
		if _, err := jwt.Parse(token, keyFunc(&wrong.PublicKey), jwt.WithValidMethods([]string{"ES256"})); err == nil {
			t.Error("golang-jwt verified our token under another key")
		}
	})

	t.Run("golang-jwt verified by ours", func(t *testing.T) {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"dest": map[string]any{"tn": []string{calleeDigits}},
			"iat":  testNow.Unix(),
			"orig": map[string]any{"tn": callerDigits},
		})
		tok.Header["typ"] = "passport"
		tok.Header["x5c"] = []string{base64.StdEncoding.EncodeToString(c.leaf)}
		token, err := tok.SignedString(c.key)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := Verify(token, callee, c.opts())
		if err != nil {
			t.Fatal(err)
		}
		if claims.Orig != caller || claims.Dest != callee || !claims.IssuedAt.Equal(testNow) {
			t.Errorf("claims = %+v", claims)
		}

		// The same token signed by another key fails.
		bad, err := tok.SignedString(newKey(t, elliptic.P256()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(bad, callee, c.opts())
		wantErr(t, "golang-jwt token, other key", err, ErrSignature)
	})
}

func TestAlgorithm(t *testing.T) {
	c := newCred(t)
	claims := claimsJSON(callerDigits, []string{calleeDigits}, testNow)
	cert, err := x509.ParseCertificate(c.leaf)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSign := func(input string) []byte {
		h := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	hs384 := func(input string) []byte {
		m := hmac.New(sha512.New384, pubDER)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
	empty := func(string) []byte { return nil }

	for _, tc := range []struct {
		name  string
		token string
	}{
		{"none, empty signature", forge(header("none", c.leaf), claims, empty)},
		{"none, ES256 signature", forge(header("none", c.leaf), claims, ecSign(t, c.key, crypto.SHA256))},
		{"None", forge(header("None", c.leaf), claims, empty)},
		{"HS256 keyed with the public key (DER)", forge(header("HS256", c.leaf), claims, hmacSign(pubDER))},
		{"HS256 keyed with the public key (PEM)", forge(header("HS256", c.leaf), claims, hmacSign(pubPEM))},
		{"HS256 keyed with the certificate", forge(header("HS256", c.leaf), claims, hmacSign(c.leaf))},
		{"HS384 keyed with the public key", forge(header("HS384", c.leaf), claims, hs384)},
		{"ES384", forge(header("ES384", c.leaf), claims, ecSign(t, newKey(t, elliptic.P384()), crypto.SHA384))},
		{"RS256", forge(header("RS256", c.leaf), claims, rsaSign)},
		{"es256", forge(header("es256", c.leaf), claims, ecSign(t, c.key, crypto.SHA256))},
		{"ES256 with space", forge(header("ES256 ", c.leaf), claims, ecSign(t, c.key, crypto.SHA256))},
		{"no alg", forge(`{"typ":"passport","x5c":`+x5c(c.leaf)+`}`, claims, ecSign(t, c.key, crypto.SHA256))},
		{"alg not a string", forge(`{"alg":["ES256"],"typ":"passport","x5c":`+x5c(c.leaf)+`}`, claims, ecSign(t, c.key, crypto.SHA256))},
	} {
		_, err := Verify(tc.token, callee, c.opts())
		wantErr(t, tc.name, err, ErrAlgorithm)
	}
}

func TestHeader(t *testing.T) {
	c := newCred(t)
	claims := claimsJSON(callerDigits, []string{calleeDigits}, testNow)
	sign := ecSign(t, c.key, crypto.SHA256)
	chain := x5c(c.leaf)
	for _, tc := range []struct {
		name   string
		header string
	}{
		{"no typ", `{"alg":"ES256","x5c":` + chain + `}`},
		{"typ JWT", `{"alg":"ES256","typ":"JWT","x5c":` + chain + `}`},
		{"typ PASSPORT", `{"alg":"ES256","typ":"PASSPORT","x5c":` + chain + `}`},
		{"typ empty", `{"alg":"ES256","typ":"","x5c":` + chain + `}`},
		{"typ not a string", `{"alg":"ES256","typ":1,"x5c":` + chain + `}`},
		{"crit ppt", `{"alg":"ES256","crit":["ppt"],"ppt":"shaken","typ":"passport","x5c":` + chain + `}`},
		{"crit unknown", `{"alg":"ES256","crit":["x-unknown"],"typ":"passport","x-unknown":1,"x5c":` + chain + `}`},
		{"crit b64", `{"alg":"ES256","b64":false,"crit":["b64"],"typ":"passport","x5c":` + chain + `}`},
		{"crit empty", `{"alg":"ES256","crit":[],"typ":"passport","x5c":` + chain + `}`},
		{"b64 without crit", `{"alg":"ES256","b64":false,"typ":"passport","x5c":` + chain + `}`},
		{"ppt without crit", `{"alg":"ES256","ppt":"shaken","typ":"passport","x5c":` + chain + `}`},
		{"duplicate alg", `{"alg":"none","alg":"ES256","typ":"passport","x5c":` + chain + `}`},
		{"duplicate typ", `{"alg":"ES256","typ":"passport","typ":"passport","x5c":` + chain + `}`},
		{"not an object", `["ES256"]`},
		{"null", `null`},
		{"trailing data", header("ES256", c.leaf) + `{}`},
		{"truncated", header("ES256", c.leaf)[:20]},
	} {
		_, err := Verify(forge(tc.header, claims, sign), callee, c.opts())
		wantErr(t, tc.name, err, ErrMalformed)
	}

	// Unknown parameters that are not critical are ignored (RFC 7515).
	hdr := `{"alg":"ES256","kid":"k","typ":"passport","x-unknown":{"a":1},"x5c":` + chain + `}`
	if _, err := Verify(forge(hdr, claims, sign), callee, c.opts()); err != nil {
		t.Errorf("unknown non-critical parameter: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	c := newCred(t)
	good := c.good(t)
	parts := strings.Split(good, ".")
	sign := ecSign(t, c.key, crypto.SHA256)
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"dots", ".."},
		{"two segments", parts[0] + "." + parts[1]},
		{"four segments", good + "." + parts[2]},
		{"empty payload", parts[0] + ".." + parts[2]},
		{"empty header", "." + parts[1] + "." + parts[2]},
		{"padding", good + "=="},
		{"padded header", parts[0] + "=." + parts[1] + "." + parts[2]},
		{"standard base64 alphabet", parts[0] + "." + parts[1] + ".+/" + parts[2][2:]},
		{"newline", parts[0] + "\n." + parts[1] + "." + parts[2]},
		{"CR in payload", parts[0] + "." + parts[1][:4] + "\r" + parts[1][4:] + "." + parts[2]},
		{"leading space", " " + good},
		{"JSON serialization", fmt.Sprintf(`{"payload":%q,"protected":%q,"signature":%q}`, parts[1], parts[0], parts[2])},
		{"too large", parts[0] + "." + b64(strings.Repeat(" ", maxTokenSize)) + "." + parts[2]},
		// Signed, so only the claims parser stands in the way.
		{"claims not an object", forge(header("ES256", c.leaf), `[1]`, sign)},
		{"duplicate dest", forge(header("ES256", c.leaf),
			`{"dest":{"tn":["`+calleeDigits+`"]},"dest":{"tn":["`+calleeDigits+`"]},"iat":`+fmt.Sprint(testNow.Unix())+`,"orig":{"tn":"`+callerDigits+`"}}`, sign)},
		{"iat a float", forge(header("ES256", c.leaf),
			`{"dest":{"tn":["`+calleeDigits+`"]},"iat":`+fmt.Sprint(testNow.Unix())+`.5,"orig":{"tn":"`+callerDigits+`"}}`, sign)},
		{"iat a string", forge(header("ES256", c.leaf),
			`{"dest":{"tn":["`+calleeDigits+`"]},"iat":"`+fmt.Sprint(testNow.Unix())+`","orig":{"tn":"`+callerDigits+`"}}`, sign)},
	} {
		_, err := Verify(tc.token, callee, c.opts())
		wantErr(t, tc.name, err, ErrMalformed)
	}
}

func TestChain(t *testing.T) {
	c := newCred(t)
	claims := claimsJSON(callerDigits, []string{calleeDigits}, testNow)
	sign := ecSign(t, c.key, crypto.SHA256)

	// Another valid credential from the same CA, for the same number and for
	// another: the header names it, the signature is by c's key.
	same := issue(t, c.ca, c.roots, caller, validity)
	diff := issue(t, c.ca, c.roots, other, validity)
	for _, tc := range []struct {
		name  string
		chain []byte
	}{{"same number", same.leaf}, {"other number", diff.leaf}} {
		_, err := Verify(forge(header("ES256", tc.chain), claims, sign), callee, c.opts())
		wantErr(t, "swapped x5c, "+tc.name, err, ErrSignature)
	}

	// A credential from a CA the callee does not trust, signing properly.
	untrustedCA, _ := newCA(t)
	u := issue(t, untrustedCA, c.roots, caller, validity)
	_, err := Verify(u.good(t), callee, c.opts())
	wantErr(t, "untrusted CA", err, ErrChain)
	wantErr(t, "untrusted CA", err, credential.ErrUntrusted)

	_, err = Verify(c.good(t), callee, Options{Now: testNow})
	wantErr(t, "no roots", err, ErrChain)

	rootAsLeaf := forge(header("ES256", c.ca.Root().Raw), claims, sign)
	_, err = Verify(rootAsLeaf, callee, c.opts())
	wantErr(t, "root as leaf", err, ErrChain)

	leafB64 := base64.StdEncoding.EncodeToString(c.leaf)
	for _, tc := range []struct {
		name   string
		header string
	}{
		{"no x5c", `{"alg":"ES256","typ":"passport"}`},
		{"x5c null", `{"alg":"ES256","typ":"passport","x5c":null}`},
		{"x5c empty", `{"alg":"ES256","typ":"passport","x5c":[]}`},
		{"x5c a string", `{"alg":"ES256","typ":"passport","x5c":"` + leafB64 + `"}`},
		{"x5c base64url", `{"alg":"ES256","typ":"passport","x5c":["` + base64.RawURLEncoding.EncodeToString(c.leaf) + `"]}`},
		{"x5c not base64", `{"alg":"ES256","typ":"passport","x5c":["*"]}`},
		{"x5c not a certificate", `{"alg":"ES256","typ":"passport","x5c":["` + base64.StdEncoding.EncodeToString([]byte("certificate")) + `"]}`},
		{"x5c second not a certificate", `{"alg":"ES256","typ":"passport","x5c":["` + leafB64 + `","AAAA"]}`},
		{"x5c too long", header("ES256", c.leaf, c.leaf, c.leaf, c.leaf, c.leaf)},
		{"x5u instead", `{"alg":"ES256","typ":"passport","x5u":"https://example.com/cert.pem"}`},
	} {
		_, err := Verify(forge(tc.header, claims, sign), callee, c.opts())
		wantErr(t, tc.name, err, ErrChain)
	}
}

func TestExpired(t *testing.T) {
	ca, roots := newCA(t)
	c := issue(t, ca, roots, caller, time.Hour)
	for _, now := range []time.Time{
		testNow.Add(time.Hour + time.Second), // after NotAfter
		testNow.Add(-2 * time.Minute),        // before NotBefore (now - 1 minute)
	} {
		token := c.sign(t, callee, now)
		_, err := Verify(token, callee, Options{Roots: roots, Now: now})
		wantErr(t, "expired at "+now.String(), err, ErrExpired)
		if errors.Is(err, ErrChain) {
			t.Errorf("expired credential also reports ErrChain: %v", err)
		}
	}
	// Still valid at its last second.
	now := testNow.Add(time.Hour)
	if _, err := Verify(c.sign(t, callee, now), callee, Options{Roots: roots, Now: now}); err != nil {
		t.Errorf("at NotAfter: %v", err)
	}
}

func TestOrig(t *testing.T) {
	c := newCred(t)
	sign := ecSign(t, c.key, crypto.SHA256)
	iat := fmt.Sprint(testNow.Unix())
	dest := `"dest":{"tn":["` + calleeDigits + `"]}`
	for _, tc := range []struct {
		name   string
		claims string
	}{
		{"other number", claimsJSON(other[1:], []string{calleeDigits}, testNow)},
		{"the callee", claimsJSON(calleeDigits, []string{calleeDigits}, testNow)},
		{"prefix", claimsJSON(callerDigits[:10], []string{calleeDigits}, testNow)},
		{"extended", claimsJSON(callerDigits+"0", []string{calleeDigits}, testNow)},
		{"separators", claimsJSON("1-415-555-0100", []string{calleeDigits}, testNow)},
		{"empty", claimsJSON("", []string{calleeDigits}, testNow)},
		{"no orig", `{` + dest + `,"iat":` + iat + `}`},
		{"orig uri", `{` + dest + `,"iat":` + iat + `,"orig":{"uri":"sip:` + caller + `@example.com"}}`},
		{"orig tn and uri", `{` + dest + `,"iat":` + iat + `,"orig":{"tn":"` + callerDigits + `","uri":"sip:x@example.com"}}`},
		{"orig tn an array", `{` + dest + `,"iat":` + iat + `,"orig":{"tn":["` + callerDigits + `"]}}`},
		{"orig a string", `{` + dest + `,"iat":` + iat + `,"orig":"` + callerDigits + `"}`},
		{"Orig", `{` + dest + `,"iat":` + iat + `,"Orig":{"tn":"` + callerDigits + `"}}`},
		{"orig TN", `{` + dest + `,"iat":` + iat + `,"orig":{"TN":"` + callerDigits + `"}}`},
	} {
		_, err := Verify(forge(header("ES256", c.leaf), tc.claims, sign), callee, c.opts())
		wantErr(t, tc.name, err, ErrOrig)
	}

	// The '+' is tolerated on input: it is the same number.
	plus := forge(header("ES256", c.leaf), claimsJSON(caller, []string{calleeDigits}, testNow), sign)
	if claims, err := Verify(plus, callee, c.opts()); err != nil || claims.Orig != caller {
		t.Errorf("orig with '+': %v, %v", claims, err)
	}
}

func TestDest(t *testing.T) {
	c := newCred(t)
	sign := ecSign(t, c.key, crypto.SHA256)
	iat := fmt.Sprint(testNow.Unix())
	orig := `"orig":{"tn":"` + callerDigits + `"}`
	for _, tc := range []struct {
		name   string
		claims string
	}{
		{"other number", claimsJSON(callerDigits, []string{other[1:]}, testNow)},
		{"two tns, expected first", claimsJSON(callerDigits, []string{calleeDigits, other[1:]}, testNow)},
		{"two tns, expected second", claimsJSON(callerDigits, []string{other[1:], calleeDigits}, testNow)},
		{"the same tn twice", claimsJSON(callerDigits, []string{calleeDigits, calleeDigits}, testNow)},
		{"no tns", claimsJSON(callerDigits, []string{}, testNow)},
		{"separators", claimsJSON(callerDigits, []string{"1-202-555-0199"}, testNow)},
		{"no dest", `{"iat":` + iat + `,` + orig + `}`},
		{"dest tn a string", `{"dest":{"tn":"` + calleeDigits + `"},"iat":` + iat + `,` + orig + `}`},
		{"dest tn and uri", `{"dest":{"tn":["` + calleeDigits + `"],"uri":["sip:x@example.com"]},"iat":` + iat + `,` + orig + `}`},
		{"dest uri", `{"dest":{"uri":["sip:x@example.com"]},"iat":` + iat + `,` + orig + `}`},
		{"Dest", `{"Dest":{"tn":["` + calleeDigits + `"]},"iat":` + iat + `,` + orig + `}`},
	} {
		_, err := Verify(forge(header("ES256", c.leaf), tc.claims, sign), callee, c.opts())
		wantErr(t, tc.name, err, ErrDest)
	}

	token := c.sign(t, other, testNow)
	_, err := Verify(token, callee, c.opts())
	wantErr(t, "signed for another dest", err, ErrDest)
	for _, bad := range []string{"", "+", "+1-202-555-0199", callee + "12345", "tel:" + callee} {
		_, err := Verify(c.good(t), bad, c.opts())
		wantErr(t, fmt.Sprintf("expected dest %q", bad), err, ErrDest)
	}
}

func TestIssuedAt(t *testing.T) {
	c := newCred(t)
	for _, tc := range []struct {
		iat    time.Time
		maxAge time.Duration
		ok     bool
	}{
		{testNow, 0, true},
		{testNow.Add(-60 * time.Second), 0, true},
		{testNow.Add(60 * time.Second), 0, true},
		{testNow.Add(-61 * time.Second), 0, false},
		{testNow.Add(61 * time.Second), 0, false},
		{testNow.Add(-4 * time.Minute), 5 * time.Minute, true},
		{testNow.Add(-6 * time.Minute), 5 * time.Minute, false},
		{testNow.Add(-10 * time.Second), 5 * time.Second, false},
	} {
		token := c.sign(t, callee, tc.iat)
		opts := c.opts()
		opts.MaxAge = tc.maxAge
		claims, err := Verify(token, callee, opts)
		what := fmt.Sprintf("iat %v, MaxAge %v", tc.iat.Sub(testNow), tc.maxAge)
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v", what, err)
			} else if !claims.IssuedAt.Equal(tc.iat) {
				t.Errorf("%s: IssuedAt = %v", what, claims.IssuedAt)
			}
		} else {
			wantErr(t, what, err, ErrStale)
		}
	}

	// Extreme values must not wrap around into the window.
	sign := ecSign(t, c.key, crypto.SHA256)
	for _, iat := range []string{"0", "-1", fmt.Sprint(int64(math.MaxInt64)), fmt.Sprint(int64(math.MinInt64))} {
		claims := `{"dest":{"tn":["` + calleeDigits + `"]},"iat":` + iat + `,"orig":{"tn":"` + callerDigits + `"}}`
		_, err := Verify(forge(header("ES256", c.leaf), claims, sign), callee, c.opts())
		wantErr(t, "iat "+iat, err, ErrStale)
	}
	claims := `{"dest":{"tn":["` + calleeDigits + `"]},"orig":{"tn":"` + callerDigits + `"}}`
	_, err := Verify(forge(header("ES256", c.leaf), claims, sign), callee, c.opts())
	wantErr(t, "no iat", err, ErrStale)
}

// TestOneByteChange replaces each byte of a valid token with other base64url
// characters, '.', and characters outside the alphabet: every change must fail.
func TestOneByteChange(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	c := newCred(t)
	token := c.sign(t, callee, testNow)
	if _, err := Verify(token, callee, c.opts()); err != nil {
		t.Fatal(err)
	}
	for i := range len(token) {
		var repl []byte
		if j := strings.IndexByte(alphabet, token[i]); j >= 0 {
			// j^1 changes only the lowest bit, which in a segment's last
			// character may be padding that a lax decoder ignores.
			repl = append(repl, alphabet[j^1], alphabet[(j+32)%64], '.', '+', '=')
		} else {
			repl = append(repl, 'A') // a '.' becomes a base64url character
		}
		for _, r := range repl {
			b := []byte(token)
			b[i] = r
			if _, err := Verify(string(b), callee, c.opts()); err == nil {
				t.Errorf("byte %d changed from %q to %q: token verifies", i, token[i], r)
			} else {
				noNumber(t, "one-byte change", err)
			}
		}
	}
}

func FuzzVerify(f *testing.F) {
	c := newCred(f)
	good := c.sign(f, callee, testNow)
	parts := strings.Split(good, ".")
	sign := ecSign(f, c.key, crypto.SHA256)
	claims := claimsJSON(callerDigits, []string{calleeDigits}, testNow)
	f.Add(good, callee)
	f.Add(good, calleeDigits)
	f.Add(good, "")
	f.Add(forge(header("none", c.leaf), claims, func(string) []byte { return nil }), callee)
	f.Add(forge(header("HS256", c.leaf), claims, hmacSign(c.leaf)), callee)
	f.Add(forge(`{"alg":"ES256","crit":["b64"],"b64":false,"typ":"passport","x5c":`+x5c(c.leaf)+`}`, claims, sign), callee)
	f.Add(forge(header("ES256", c.leaf), claimsJSON(callerDigits, []string{calleeDigits, calleeDigits}, testNow), sign), callee)
	f.Add(forge(header("ES256", c.leaf), `{"iat":1e99}`, sign), callee)
	f.Add(parts[0]+"."+parts[1]+".", callee)
	f.Add(parts[0]+".."+parts[2], callee)
	f.Add("..", callee)
	f.Add("", "")
	opts := c.opts()
	f.Fuzz(func(t *testing.T, token, dest string) {
		claims, err := Verify(token, dest, opts)
		if err != nil {
			noNumber(t, "fuzz", err)
			return
		}
		want, _ := canonical(dest)
		if claims.Orig != caller || claims.Dest != want || claims.Certificate == nil {
			t.Fatalf("verified claims %+v for dest %q", claims, dest)
		}
	})
}
