package directory_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"

	"crypto/x509"
	"encoding/json"
	"golang.org/x/mod/sumdb/note"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/sqlite"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
)

// fuzzInbox is an SMS sender that keeps the last code per number.
type fuzzInbox struct {
	mu    sync.Mutex
	codes map[string]string
}

func (p *fuzzInbox) Send(_ context.Context, m sms.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.codes[m.To] = m.Code
	return nil
}

// fuzzEndpoint is one JSON endpoint of the directory and its built-in CA.
type fuzzEndpoint struct {
	method, path string
	signed       bool
}

var fuzzEndpoints = []fuzzEndpoint{
	{"POST", api.PathVerifyStart, false},
	{"POST", api.PathVerifyConfirm, false},
	{"POST", api.PathEvaluate, true},
	{"POST", api.PathBuckets, true},
	{"PUT", api.PathRecords, true},
	{"PUT", api.PathRecordACL, true},
	{"POST", api.PathRenew, true},
	{"POST", api.PathRevoke, true},
}

// fuzzDirectory is one in-process directory (with its built-in CA) over a
// real SQLite store, shared by every input of a fuzz run.
type fuzzDirectory struct {
	h    http.Handler
	ca   *credential.CA
	oprf *oprf.PrivateKey

	// owner signs every signed endpoint except revoke.
	owner signer
	// revoker signs revoke; a successful revoke ends its key, so a new
	// key for its number is issued, each with a later SMS proof, so that
	// it joins the number's holders.
	mu        sync.Mutex
	revoker   signer
	revokerNB time.Time
}

const (
	fuzzOwner   = "+14155550100"
	fuzzRevoker = "+14155552671"
)

func newFuzzDirectory(f testing.TB, inbox *fuzzInbox) *fuzzDirectory {
	f.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(f.TempDir(), "blindex.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	caKey, err := credential.GenerateCA("blindex fuzz CA", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	// Limits and budgets far above what a run spends, so that inputs reach
	// decoding and the operations instead of a 429.
	const many = 1 << 30
	svc, err := ca.New(ca.Config{Store: store, CA: caKey, SMS: inbox, Limits: ca.Limits{
		NumberPerHour: many, NumberPerDay: many, NetworkPerHour: many, GlobalPerMinute: many,
		GlobalPerDay: many, FailuresPerNumber: many, RenewalsPerDay: many}})
	if err != nil {
		f.Fatal(err)
	}
	key, err := oprf.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	logKey, _, err := note.GenerateKey(rand.Reader, "example.com/fuzz")
	if err != nil {
		f.Fatal(err)
	}
	srv, err := directory.New(ctx, directory.Config{Store: store, OPRFKey: key, CA: svc, LogKey: logKey,
		Budget: directory.Budget{Burst: many, PerDay: many, GlobalPerSecond: many}})
	if err != nil {
		f.Fatal(err)
	}
	d := &fuzzDirectory{h: srv.Handler(), ca: caKey, oprf: key, revokerNB: time.Now().Add(-24 * time.Hour)}
	d.owner = d.issue(f, fuzzOwner, time.Now())
	d.revoker = d.issue(f, fuzzRevoker, d.revokerNB)
	return d
}

func (d *fuzzDirectory) issue(tb testing.TB, number string, notBefore time.Time) signer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := d.ca.Issue(number, &key.PublicKey, 72*time.Hour, notBefore, notBefore)
	if err != nil {
		tb.Fatal(err)
	}
	return signer{key: key, cert: cert}
}

// serve sends body to endpoint e through the handler, signed if the
// endpoint needs it, and returns the recorded answer.
func (d *fuzzDirectory) serve(tb testing.TB, e fuzzEndpoint, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(e.method, "http://directory.test"+e.path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if e.signed {
		s := d.owner
		if e.path == api.PathRevoke {
			d.mu.Lock()
			defer d.mu.Unlock()
			s = d.revoker
		}
		if err := httpsig.Sign(req, body, s.key, s.cert, time.Now()); err != nil {
			tb.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	d.h.ServeHTTP(rec, req)
	if e.path == api.PathRevoke && rec.Code == http.StatusOK {
		d.revokerNB = d.revokerNB.Add(time.Second)
		d.revoker = d.issue(tb, fuzzRevoker, d.revokerNB)
	}
	return rec
}

// checkAnswer asserts the rules every answer follows: no 5xx, a JSON body,
// and on a non-2xx answer exactly {"error": "<non-empty message>"}.
func checkAnswer(t *testing.T, e fuzzEndpoint, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	got := rec.Body.Bytes()
	if rec.Code >= 500 {
		t.Fatalf("%s %s: %d %s\nbody: %q", e.method, e.path, rec.Code, got, body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: %d with Content-Type %q", e.method, e.path, rec.Code, ct)
	}
	if !json.Valid(got) {
		t.Fatalf("%s %s: %d, body is not JSON: %q", e.method, e.path, rec.Code, got)
	}
	if rec.Code < 200 || rec.Code > 299 {
		var m api.Error
		dec := json.NewDecoder(bytes.NewReader(got))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil || m.Error == "" {
			t.Fatalf("%s %s: %d, body is not {\"error\": message}: %q (%v)", e.method, e.path, rec.Code, got, err)
		}
	}
}

func FuzzHandler(f *testing.F) {
	inbox := &fuzzInbox{codes: map[string]string{}}
	d := newFuzzDirectory(f, inbox)
	endpoint := func(path string) uint8 {
		for i, e := range fuzzEndpoints {
			if e.path == path {
				return uint8(i)
			}
		}
		panic("no endpoint " + path)
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}

	// A pending verification, so the confirm seed can succeed.
	start := mustJSON(api.VerifyStartRequest{Number: "+12025550173"})
	rec := d.serve(f, fuzzEndpoints[0], start)
	var started api.VerifyStartResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &started); rec.Code != 200 || err != nil {
		f.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	pkDER, _ := x509.MarshalPKIXPublicKey(&d.owner.key.PublicKey)
	inbox.mu.Lock()
	code := inbox.codes["+12025550173"]
	inbox.mu.Unlock()

	// The owner's index, record id and a sealed record, for valid writes.
	y, err := oprf.NewEvaluator(d.oprf).FullEvaluate([]byte("blindex lookup v1"), []byte(fuzzOwner))
	if err != nil {
		f.Fatal(err)
	}
	idx, rid := oprf.Index(y), oprf.RecordID(y, "org.example.chat")
	ct, err := record.Seal(oprf.RecordKey(y), record.Record{App: "org.example.chat", Endpoint: "https://chat.example.org/u/1",
		Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)})
	if err != nil {
		f.Fatal(err)
	}
	_, blinded, err := oprf.Blind([][]byte{[]byte("+14155550100"), []byte("+12015550123")})
	if err != nil {
		f.Fatal(err)
	}
	friend := acl.Pseudonym(oprf.Pseudonym(y))
	friend[0] ^= 1

	seeds := []struct {
		path string
		body []byte
	}{
		{api.PathVerifyStart, start},
		{api.PathVerifyStart, []byte(`{"number":"+1 800 FLOWERS"}`)},
		{api.PathVerifyConfirm, mustJSON(api.VerifyConfirmRequest{VerificationID: started.VerificationID, Number: "+12025550173", Code: code, PublicKey: pkDER})},
		{api.PathVerifyConfirm, mustJSON(api.VerifyConfirmRequest{VerificationID: strings.Repeat("0", 32), Number: "+12025550173", Code: "000000", PublicKey: pkDER})},
		{api.PathEvaluate, mustJSON(api.EvaluateRequest{Elements: blinded})},
		{api.PathEvaluate, mustJSON(api.EvaluateRequest{Elements: [][]byte{make([]byte, 32)}})},
		{api.PathBuckets, mustJSON(api.BucketsRequest{PrefixBits: 0, Prefixes: []uint32{0}})},
		{api.PathBuckets, mustJSON(api.BucketsRequest{PrefixBits: 1, Prefixes: []uint32{0, 1}})},
		{api.PathRecords, mustJSON(api.PublishRequest{Index: idx[:], RecordID: rid[:], Ciphertext: ct,
			ACL: &acl.List{Visibility: acl.Public}, Expires: time.Now().Add(time.Hour)})},
		{api.PathRecords, mustJSON(api.PublishRequest{Index: idx[:], RecordID: rid[:], Ciphertext: ct,
			ACL: &acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{friend}}, Expires: time.Now().Add(400 * 24 * time.Hour)})},
		{api.PathRecordACL, mustJSON(api.SetACLRequest{Index: idx[:], RecordID: rid[:], ACL: &acl.List{Visibility: acl.Allowlist, Allow: []acl.Pseudonym{friend}}})},
		{api.PathRecordACL, mustJSON(api.SetACLRequest{Index: idx[:], RecordID: idx[:], ACL: &acl.List{Visibility: acl.Nobody}})},
		{api.PathRenew, []byte(`{}`)},
		{api.PathRevoke, []byte(`{}`)},
		{api.PathRevoke, []byte(`null`)},
	}
	for _, s := range seeds {
		f.Add(endpoint(s.path), s.body)
	}
	// Every endpoint also gets the malformed shapes.
	for i := range fuzzEndpoints {
		for _, b := range []string{``, `{`, `[]`, `{"x":1}`, `{} {}`, `"\ud800"`, `{"elements":null,"acl":{"visibility":"public"}}`} {
			f.Add(uint8(i), []byte(b))
		}
	}

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		e := fuzzEndpoints[int(which)%len(fuzzEndpoints)]
		rec := d.serve(t, e, body)
		checkAnswer(t, e, body, rec)
	})
}

// TestFuzzHandlerSeedsSucceed checks that the fuzz harness reaches the
// operations: the valid seed bodies are answered 200, so the fuzzer starts
// from requests that get past authentication and decoding.
func TestFuzzHandlerSeedsSucceed(t *testing.T) {
	d := newFuzzDirectory(t, &fuzzInbox{codes: map[string]string{}})
	y, _ := oprf.NewEvaluator(d.oprf).FullEvaluate([]byte("blindex lookup v1"), []byte(fuzzOwner))
	idx, rid := oprf.Index(y), oprf.RecordID(y, "org.example.chat")
	ct, _ := record.Seal(oprf.RecordKey(y), rec("org.example.chat"))
	_, blinded, _ := oprf.Blind([][]byte{[]byte(dave)})
	for i, c := range []struct {
		path string
		body any
	}{
		{api.PathEvaluate, api.EvaluateRequest{Elements: blinded}},
		{api.PathBuckets, api.BucketsRequest{PrefixBits: 0, Prefixes: []uint32{0}}},
		{api.PathRecords, api.PublishRequest{Index: idx[:], RecordID: rid[:], Ciphertext: ct, ACL: &acl.List{Visibility: acl.Public}, Expires: time.Now().Add(time.Hour)}},
		{api.PathRecordACL, api.SetACLRequest{Index: idx[:], RecordID: rid[:], ACL: &acl.List{Visibility: acl.Nobody}}},
		{api.PathRenew, struct{}{}},
		{api.PathRevoke, struct{}{}},
		{api.PathRevoke, struct{}{}}, // the revoker was replaced: a second revoke succeeds too
	} {
		b, _ := json.Marshal(c.body)
		var e fuzzEndpoint
		for _, x := range fuzzEndpoints {
			if x.path == c.path {
				e = x
			}
		}
		r := d.serve(t, e, b)
		if r.Code != 200 {
			t.Errorf("%d %s: %d %s", i, c.path, r.Code, r.Body)
		}
		checkAnswer(t, e, b, r)
	}
}
