package ca_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/postgres"
	"blindex.dev/blindex/directory/postgres/pgtest"
	"blindex.dev/blindex/directory/sqlite"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/internal/sms"
)

const (
	owner    = "+14155550100"
	stranger = "+14155550111"
)

// inbox is the SMS sender of the tests: it keeps each code by its
// verification id, which only the party that started it learns.
type inbox struct {
	mu    sync.Mutex
	codes map[string]string
}

func (b *inbox) Send(_ context.Context, m sms.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.codes[m.VerificationID] = m.Code
	return nil
}

func (b *inbox) code(t *testing.T, id string) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.codes[id]
	if !ok {
		t.Fatalf("no code sent for verification %s", id)
	}
	return c
}

type harness struct {
	t     *testing.T
	url   string
	inbox *inbox
	skew  atomic.Int64 // added to the clock, in nanoseconds
	now   func() time.Time
	root  *credential.CA
	key   *ecdsa.PrivateKey // confirmed with and renewed by
	pub   []byte            // key's public key, PKIX DER
}

// engines opens a new, empty store of each engine.
var engines = []struct {
	name string
	open func(t *testing.T) directory.Store
}{
	{"sqlite", func(t *testing.T) directory.Store {
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t *testing.T) directory.Store {
		s, err := postgres.Open(t.Context(), pgtest.FreshDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// newHarness serves a CA on store over HTTP, with cfg's limits.
func newHarness(t *testing.T, store directory.Store, cfg ca.Config) *harness {
	t.Helper()
	t.Cleanup(func() { store.Close() })
	h := &harness{t: t, inbox: &inbox{codes: map[string]string{}}}
	// A fixed point five minutes into an hour, so the hourly windows of the
	// limits never straddle a boundary mid-test.
	base := time.Now().Truncate(time.Hour).Add(5 * time.Minute)
	// The root is older than the clock (base may be before time.Now) and
	// than the legacy credentials the tests make.
	root, err := credential.GenerateCA("blindex test CA", base.AddDate(0, -1, 0))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.CA, cfg.SMS = store, root, h.inbox
	h.now = func() time.Time { return base.Add(time.Duration(h.skew.Load())) }
	h.root = root
	cfg.Now = h.now
	cfg.Limits.NetworkPerHour = 1000 // every request comes from one address
	svc, err := ca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	h.url = srv.URL
	if h.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if h.pub, err = x509.MarshalPKIXPublicKey(&h.key.PublicKey); err != nil {
		t.Fatal(err)
	}
	return h
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) message() string {
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal(a.body, &e)
	return e.Error
}

func (h *harness) post(path string, req any) answer {
	h.t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.Post(h.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, body}
}

// start starts a verification of number and returns its id and code.
func (h *harness) start(number string) (id, code string) {
	h.t.Helper()
	a := h.post(api.PathVerifyStart, api.VerifyStartRequest{Number: number})
	if a.status != http.StatusOK {
		h.t.Fatalf("start: %d %s", a.status, a.body)
	}
	var r api.VerifyStartResponse
	if err := json.Unmarshal(a.body, &r); err != nil {
		h.t.Fatal(err)
	}
	return r.VerificationID, h.inbox.code(h.t, r.VerificationID)
}

func (h *harness) confirm(id, number, code string) answer {
	h.t.Helper()
	return h.post(api.PathVerifyConfirm, api.VerifyConfirmRequest{VerificationID: id, Number: number, Code: code, PublicKey: h.pub})
}

func wrong(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

// TestDatabaseHoldsNoUnkeyedCode is the database thief of issue 19: it
// reads every file of a SQLite data directory after a verification starts,
// and looks there for the code under every unkeyed hash it could compute
// from the values of the pending row (as salts) and the code. With 10^6
// codes, any of them would give the code away at once. Only a hash keyed
// with a secret outside the database leaves the thief guessing.
func TestDatabaseHoldsNoUnkeyedCode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	store, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, store, ca.Config{})
	id, code := h.start(owner)

	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT * FROM verifications`)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	var values [][]byte
	n := 0
	for rows.Next() {
		n++
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			switch v := v.(type) {
			case []byte:
				values = append(values, v)
			case int64:
				values = append(values, []byte(strconv.FormatInt(v, 10)))
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d pending rows after one start, want 1", n)
	}

	c := []byte(code)
	sum := func(parts ...[]byte) []byte {
		h := sha256.New()
		for _, p := range parts {
			h.Write(p)
		}
		return h.Sum(nil)
	}
	mac := func(key, msg []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		return m.Sum(nil)
	}
	idBytes := []byte(id)
	candidates := map[string][]byte{"SHA-256(code)": sum(c), "SHA-256(id||code)": sum(idBytes, c)}
	for i, v := range append(values, nil) {
		name := "value " + strconv.Itoa(i)
		candidates["SHA-256("+name+"||code)"] = sum(v, c)
		candidates["SHA-256(code||"+name+")"] = sum(c, v)
		candidates["HMAC-SHA-256("+name+", code)"] = mac(v, c)
		candidates["HMAC-SHA-256(code, "+name+")"] = mac(c, v)
		for j, w := range values {
			candidates["SHA-256("+name+"||value "+strconv.Itoa(j)+"||code)"] = sum(v, w, c)
		}
	}

	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range candidates {
			if bytes.Contains(b, want) {
				t.Errorf("%s holds %s of the pending code: a database thief recovers the code", f.Name(), name)
			}
		}
	}
	// The scan looked at the pending row: the code still confirms.
	if a := h.confirm(id, owner, code); a.status != http.StatusOK {
		t.Errorf("confirm after the scan: %d %q", a.status, a.message())
	}
}

// TestOthersCannotBurnOwnersCode is issue 19's denial of service: a second
// party starts a verification of the owner's pending number and makes six
// wrong confirmations. It gets its own verification, so the owner's code
// still works, once.
func TestOthersCannotBurnOwnersCode(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e.open(t), ca.Config{})
			ownerID, ownerCode := h.start(owner)
			otherID, otherCode := h.start(owner)
			if otherID == ownerID {
				t.Fatal("a second start of a pending number got the pending verification's id")
			}
			for i := range ca.DefaultMaxCodeAttempts {
				if a := h.confirm(otherID, owner, wrong(otherCode)); a.status != http.StatusBadRequest || a.message() != "wrong code" {
					t.Fatalf("stranger's wrong code %d: %d %q", i+1, a.status, a.message())
				}
			}
			if a := h.confirm(otherID, owner, wrong(otherCode)); a.status != http.StatusNotFound {
				t.Errorf("stranger's 6th confirmation: %d %q, want 404", a.status, a.message())
			}
			a := h.confirm(ownerID, owner, ownerCode)
			if a.status != http.StatusOK {
				t.Fatalf("owner's code after a stranger's six wrong confirmations: %d %q", a.status, a.message())
			}
			// A replayed confirmation finds its verification gone.
			if a := h.confirm(ownerID, owner, ownerCode); a.status != http.StatusNotFound {
				t.Errorf("replayed confirmation: %d %q, want 404", a.status, a.message())
			}
		})
	}
}

// TestWrongGuessesLockAnHourAtMost spends a number's hourly budget of codes
// checked from strangers' verifications: the owner is refused until the
// hour ends (Retry-After says when, within the hour), then verifies.
func TestWrongGuessesLockAnHourAtMost(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e.open(t), ca.Config{})
			ownerID, ownerCode := h.start(owner)
			for spent := 0; spent < ca.DefaultLimits.FailuresPerNumber; {
				id, code := h.start(owner)
				for range ca.DefaultMaxCodeAttempts {
					if spent == ca.DefaultLimits.FailuresPerNumber {
						break
					}
					if a := h.confirm(id, owner, wrong(code)); a.status != http.StatusBadRequest {
						t.Fatalf("wrong code %d: %d %q", spent+1, a.status, a.message())
					}
					spent++
				}
			}
			retry := func(a answer, what string) time.Duration {
				t.Helper()
				s, err := strconv.Atoi(a.header.Get("Retry-After"))
				if a.status != http.StatusTooManyRequests || err != nil || s <= 0 || time.Duration(s)*time.Second > ca.FailureWindow {
					t.Fatalf("%s: %d %q, Retry-After %q; want 429 within the hour", what, a.status, a.message(), a.header.Get("Retry-After"))
				}
				return time.Duration(s) * time.Second
			}
			retry(h.confirm(ownerID, owner, ownerCode), "owner's code with the number's budget spent")
			wait := retry(h.post(api.PathVerifyStart, api.VerifyStartRequest{Number: owner}), "start with the number's budget spent")
			if a := h.post(api.PathVerifyStart, api.VerifyStartRequest{Number: stranger}); a.status != http.StatusOK {
				t.Errorf("another number is not affected: %d %q", a.status, a.message())
			}
			h.skew.Add(int64(wait))
			id, code := h.start(owner)
			if a := h.confirm(id, owner, code); a.status != http.StatusOK {
				t.Errorf("owner after the window: %d %q", a.status, a.message())
			}
		})
	}
}

// TestConcurrentGuessesBounded races many wrong confirmations over several
// verifications of one number: no more codes are compared in the hour than
// the number's budget, however the requests interleave.
func TestConcurrentGuessesBounded(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e.open(t), ca.Config{})
			type session struct{ id, code string }
			var ss []session
			for range ca.DefaultLimits.NumberPerHour {
				id, code := h.start(owner)
				ss = append(ss, session{id, code})
			}
			var mu sync.Mutex
			counts := map[int]int{}
			var wg sync.WaitGroup
			for _, s := range ss {
				for range ca.DefaultMaxCodeAttempts {
					wg.Go(func() {
						a := h.confirm(s.id, owner, wrong(s.code))
						mu.Lock()
						counts[a.status]++
						mu.Unlock()
					})
				}
			}
			wg.Wait()
			if got := counts[http.StatusBadRequest]; got != ca.DefaultLimits.FailuresPerNumber {
				t.Errorf("%d codes compared (%v), want the budget, %d", got, counts, ca.DefaultLimits.FailuresPerNumber)
			}
			if counts[http.StatusBadRequest]+counts[http.StatusTooManyRequests] != len(ss)*ca.DefaultMaxCodeAttempts {
				t.Errorf("answers %v: want only 400 and 429", counts)
			}
		})
	}
}

// TestPendingIsNotRevealed checks the answers a stranger gets for a number
// with a verification pending and for one without: a start answers with a
// fresh id either way, and a confirmation of an id it does not hold answers
// the same.
func TestPendingIsNotRevealed(t *testing.T) {
	h := newHarness(t, engines[0].open(t), ca.Config{})
	h.start(owner)
	var id [16]byte
	rand.Read(id[:])
	unknown := hex.EncodeToString(id[:])
	a := h.confirm(unknown, owner, "123456")
	b := h.confirm(unknown, stranger, "123456")
	if a.status != http.StatusNotFound || a.status != b.status || !bytes.Equal(a.body, b.body) {
		t.Errorf("unknown id for a pending number: %d %s; for another: %d %s", a.status, a.body, b.status, b.body)
	}
}

// TestConfigRefused checks that New names a field that would break a limit.
func TestConfigRefused(t *testing.T) {
	root, err := credential.GenerateCA("blindex test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	store := engines[0].open(t)
	defer store.Close()
	for _, c := range []struct {
		cfg  ca.Config
		want string
	}{
		{ca.Config{Limits: ca.Limits{FailuresPerNumber: ca.DefaultMaxCodeAttempts}}, "FailuresPerNumber"},
		{ca.Config{MaxCodeAttempts: 20}, "FailuresPerNumber"},
		{ca.Config{Limits: ca.Limits{NumberPerDay: -1}}, "NumberPerDay"},
		{ca.Config{CodeTTL: -time.Minute}, "CodeTTL"},
	} {
		c.cfg.Store, c.cfg.CA, c.cfg.SMS = store, root, &inbox{}
		if _, err := ca.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v, want an error naming %s", c.cfg.Limits, err, c.want)
		}
	}
	cfg := ca.Config{Store: store, CA: root, SMS: &inbox{}, Limits: ca.DefaultLimits}
	if _, err := ca.New(cfg); err != nil {
		t.Errorf("New with DefaultLimits: %v", err)
	}
}

// renew asks for a renewal of cert, signed with h.key at the CA's clock.
func (h *harness) renew(cert []byte) answer {
	h.t.Helper()
	body := []byte(`{}`)
	req, err := http.NewRequest("POST", h.url+api.PathRenew, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := httpsig.Sign(req, body, h.key, cert, h.now()); err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// credential returns the certificate of a successful confirm or renew,
// checked to be bound to h.key.
func (h *harness) credential(a answer, what string) ([]byte, *x509.Certificate) {
	h.t.Helper()
	if a.status != http.StatusOK {
		h.t.Fatalf("%s: %d %q", what, a.status, a.message())
	}
	var r api.VerifyConfirmResponse
	if err := json.Unmarshal(a.body, &r); err != nil {
		h.t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(r.Certificate)
	if err != nil {
		h.t.Fatal(err)
	}
	if !h.key.PublicKey.Equal(leaf.PublicKey) {
		h.t.Fatalf("%s: credential for another key", what)
	}
	return r.Certificate, leaf
}

// wantProof checks the proof time and the issue time of leaf.
func wantProof(t *testing.T, what string, leaf *x509.Certificate, proof, issued time.Time) {
	t.Helper()
	got, err := credential.ProofTime(leaf)
	if err != nil || !got.Equal(proof.Truncate(time.Second)) {
		t.Errorf("%s: ProofTime = %v, %v; want %v", what, got, err, proof.Truncate(time.Second))
	}
	if nb := issued.Add(-time.Minute).Truncate(time.Second); !leaf.NotBefore.Equal(nb) {
		t.Errorf("%s: NotBefore = %v, want %v (issued now)", what, leaf.NotBefore, nb)
	}
}

// TestProofTime is issue 16's principle at the CA: a credential's proof
// time is when its SMS code was confirmed, and a renewal, however often and
// however much later, copies it: it extends the credential's life but is
// never a proof. Only a new verification moves it.
func TestProofTime(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e.open(t), ca.Config{})
			id, code := h.start(owner)
			// Confirmed a while after the start, in the middle of a second:
			// the proof is the confirmation, in whole seconds.
			h.skew.Add(int64(90*time.Second + 700*time.Millisecond))
			confirmed := h.now()
			cert, leaf := h.credential(h.confirm(id, owner, code), "confirm")
			wantProof(t, "confirm", leaf, confirmed, confirmed)

			for i, advance := range []time.Duration{0, time.Second, time.Hour, 3 * 24 * time.Hour} {
				h.skew.Add(int64(advance))
				cert, leaf = h.credential(h.renew(cert), "renewal "+strconv.Itoa(i+1))
				wantProof(t, "renewal "+strconv.Itoa(i+1), leaf, confirmed, h.now())
			}

			h.skew.Add(int64(time.Hour))
			id, code = h.start(owner)
			reproved := h.now()
			cert, leaf = h.credential(h.confirm(id, owner, code), "second verification")
			wantProof(t, "second verification", leaf, reproved, reproved)
			h.skew.Add(int64(time.Hour))
			_, leaf = h.credential(h.renew(cert), "renewal of the second verification")
			wantProof(t, "renewal of the second verification", leaf, reproved, h.now())
		})
	}
}

// legacyCredential signs, with h's CA, a credential for owner and h.key as
// this package issued them before the proof time existed (no
// subjectDirectoryAttributes), or with proof as the raw value of that
// extension.
func (h *harness) legacyCredential(notBefore time.Time, proof []byte) []byte {
	h.t.Helper()
	keyDER, err := h.root.MarshalKey()
	if err != nil {
		h.t.Fatal(err)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		h.t.Fatal(err)
	}
	tnal, err := credential.MarshalTNAuthList(owner)
	if err != nil {
		h.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "blindex number credential"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(ca.DefaultCredentialValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: credential.OIDTNAuthList, Value: tnal}},
	}
	if proof != nil {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: credential.OIDSubjectDirectoryAttributes, Value: proof})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, h.root.Root(), &h.key.PublicKey, caKey.(crypto.Signer))
	if err != nil {
		h.t.Fatal(err)
	}
	return der
}

// TestRenewLegacyCredential renews a credential without a proof time: its
// NotBefore is its proof time, and the renewals carry that on rather than
// their own, so the credentials of the previous version do not gain a
// later proof by renewing.
func TestRenewLegacyCredential(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e.open(t), ca.Config{})
			notBefore := h.now().Add(-10 * 24 * time.Hour).Truncate(time.Second)
			cert := h.legacyCredential(notBefore, nil)
			var leaf *x509.Certificate
			for i := range 2 {
				h.skew.Add(int64(time.Hour))
				cert, leaf = h.credential(h.renew(cert), "renewal "+strconv.Itoa(i+1))
				wantProof(t, "renewal "+strconv.Itoa(i+1), leaf, notBefore, h.now())
			}
		})
	}
}

// TestRenewBadProofTime: a credential of this CA whose proof time is later
// than its issue, or malformed, is not renewed.
func TestRenewBadProofTime(t *testing.T) {
	h := newHarness(t, engines[0].open(t), ca.Config{})
	notBefore := h.now().Add(-time.Hour).Truncate(time.Second)
	late, err := credential.MarshalProofTime(notBefore.Add(2 * time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	good, err := credential.MarshalProofTime(notBefore)
	if err != nil {
		t.Fatal(err)
	}
	// good is SEQUENCE { SEQUENCE { OID, SET { GeneralizedTime } } }, all
	// short-form lengths: the OID and the time are its parts.
	tlv := func(tag byte, parts ...[]byte) []byte {
		body := bytes.Join(parts, nil)
		return append([]byte{tag, byte(len(body))}, body...)
	}
	oid, gt := good[4:26], good[28:]
	if !bytes.Equal(tlv(0x30, tlv(0x30, oid, tlv(0x31, gt))), good) {
		t.Fatalf("unexpected encoding %x", good)
	}
	for name, proof := range map[string][]byte{
		"later than the issue": late,
		"trailing data":        append(bytes.Clone(good), 0),
		"two values":           tlv(0x30, tlv(0x30, oid, tlv(0x31, gt, gt))),
		"two attributes":       tlv(0x30, tlv(0x30, oid, tlv(0x31, gt)), tlv(0x30, oid, tlv(0x31, gt))),
	} {
		a := h.renew(h.legacyCredential(notBefore, proof))
		if a.status != http.StatusUnauthorized {
			t.Errorf("%s: renewal answered %d %q, want 401", name, a.status, a.message())
		}
	}
	// The same credential with a good proof time renews.
	_, leaf := h.credential(h.renew(h.legacyCredential(notBefore, good)), "good proof time")
	wantProof(t, "good proof time", leaf, notBefore, h.now())
}
