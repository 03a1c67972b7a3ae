package directory_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpapi"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
)

func rec(app string) record.Record {
	return record.Record{App: app, Endpoint: "https://" + app + "/u/1", Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)}
}

func apps(t *testing.T, c *client.Client, number string) []string {
	t.Helper()
	res, err := c.Lookup(t.Context(), number)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	var out []string
	for _, r := range res[0].Records {
		out = append(out, r.App)
	}
	return out
}

func TestStory(t *testing.T) {
	e := newEnv(t, directory.Config{})
	b, c, a := e.register(bob), e.register(carol), e.register(alice)
	if err := b.Publish(t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), rec("org.example.video"), client.Access{Visibility: acl.Allowlist, Allow: []string{carol}}); err != nil {
		t.Fatal(err)
	}
	if got := apps(t, c, bob); !slices.Equal(got, []string{"org.example.chat", "org.example.video"}) {
		t.Errorf("carol sees %v", got)
	}
	if got := apps(t, a, bob); !slices.Equal(got, []string{"org.example.chat"}) {
		t.Errorf("alice sees %v", got)
	}
	if got := apps(t, a, dave); len(got) != 0 {
		t.Errorf("alice sees %v for an unregistered number", got)
	}
	// Deny beats public.
	if err := b.SetACL(t.Context(), "org.example.chat", client.Access{Visibility: acl.Public, Deny: []string{alice}}); err != nil {
		t.Fatal(err)
	}
	if got := apps(t, a, bob); len(got) != 0 {
		t.Errorf("denied alice sees %v", got)
	}
	if got := apps(t, c, bob); len(got) != 2 {
		t.Errorf("carol sees %v after alice was denied", got)
	}
	if err := b.Delete(t.Context(), "org.example.video"); err != nil {
		t.Fatal(err)
	}
	if got := apps(t, c, bob); !slices.Equal(got, []string{"org.example.chat"}) {
		t.Errorf("carol sees %v after delete", got)
	}
	// The owner can read its own public record back, and a lookup of an
	// invalid number fails alone.
	res, err := b.Lookup(t.Context(), bob, "+1 800 FLOWERS")
	if err != nil || res[1].Err == nil || len(res[0].Records) != 1 {
		t.Errorf("mixed lookup = %+v, %v", res, err)
	}
}

// bucketsAnswer fetches the bucket holding number's index as caller s.
func bucketsAnswer(t *testing.T, e *env, s *signer, y []byte, prefixBits int) response {
	t.Helper()
	idx := oprf.Index(y)
	var p uint32
	if prefixBits > 0 {
		p = uint32(idx[0])<<24 | uint32(idx[1])<<16 | uint32(idx[2])<<8 | uint32(idx[3])
		p >>= 32 - prefixBits
	}
	// Each bucket fetch is paid for by an evaluation.
	_, blinded, _ := oprf.Blind([][]byte{[]byte(dave)})
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: blinded}, s); r.status != 200 {
		t.Fatalf("evaluate: %d %s", r.status, r.body)
	}
	r := e.do("POST", api.PathBuckets, api.BucketsRequest{PrefixBits: prefixBits, Prefixes: []uint32{p}}, s)
	if r.status != 200 {
		t.Fatalf("buckets: %d %s", r.status, r.body)
	}
	return r
}

// bucketsAnswers fetches the bucket holding y's index as caller s twice, in
// JSON and in the binary encoding (api.MediaTypeBuckets), checks that both
// carry the same records, and returns both bodies.
func bucketsAnswers(t *testing.T, e *env, s *signer, y []byte, prefixBits int) (jsonBody, binBody []byte) {
	t.Helper()
	jsonBody = bucketsAnswer(t, e, s, y, prefixBits).body
	_, blinded, _ := oprf.Blind([][]byte{[]byte(dave)})
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: blinded}, s); r.status != 200 {
		t.Fatalf("evaluate: %d %s", r.status, r.body)
	}
	idx := oprf.Index(y)
	var p uint32
	if prefixBits > 0 {
		p = binary.BigEndian.Uint32(idx[:4]) >> (32 - prefixBits)
	}
	body, _ := json.Marshal(api.BucketsRequest{PrefixBits: prefixBits, Prefixes: []uint32{p}})
	req, _ := http.NewRequest("POST", e.srv.URL()+api.PathBuckets, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", api.MediaTypeBuckets)
	if err := httpsig.Sign(req, body, s.key, s.cert, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := e.send(req)
	if r.status != 200 || r.header.Get("Content-Type") != api.MediaTypeBuckets {
		t.Fatalf("binary buckets: %d %s %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	fromBin, err := api.ParseBuckets(r.body)
	if err != nil {
		t.Fatalf("binary buckets: %v", err)
	}
	var fromJSON api.BucketsResponse
	if err := json.Unmarshal(jsonBody, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromBin, &fromJSON) {
		t.Errorf("binary answer differs from JSON:\n%+v\n%+v", fromBin, &fromJSON)
	}
	return jsonBody, r.body
}

// TestDeniedLooksAbsent checks the core promise on raw bytes, in a directory
// with enough owners that buckets are real subsets: Bob's bucket answer for
// a caller he did not allow (or denied, or hid from everyone) is identical
// to the answer for the same bucket with Bob absent; and the store touches
// the same rows for an allowed and a denied caller.
func TestDeniedLooksAbsent(t *testing.T) {
	e := newEnv(t, directory.Config{MinBucketOwners: 4})
	ctx := t.Context()
	owners := 0
	// Fill the directory with public owners in the +1 415 555 2xxx range.
	for i := range 40 {
		n := fmt.Sprintf("+1415555%04d", 2000+i)
		c := e.register(n)
		if err := c.Publish(ctx, rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
			t.Fatal(err)
		}
		owners++
	}
	b := e.register(bob)
	e.register(carol)
	aliceSigner := e.issue(alice, time.Now(), time.Hour)
	carolSigner := e.issue(carol, time.Now(), time.Hour)

	// The test plays the server's role in computing Bob's OPRF output, so
	// it can address his bucket directly.
	y, err := oprf.NewEvaluator(e.srv.Node.OPRFKey).FullEvaluate([]byte("blindex lookup v1"), []byte(bob))
	if err != nil {
		t.Fatal(err)
	}
	absent := func() (jsonBody, binBody []byte) {
		return bucketsAnswers(t, e, &aliceSigner, y, 3)
	}
	before, beforeBin := absent()
	if !bytes.Contains(before, []byte(`"records":[{`)) {
		t.Fatalf("bucket has no other owners; the test would prove nothing: %s", before)
	}

	cases := []client.Access{
		{Visibility: acl.Allowlist, Allow: []string{carol}},
		{Visibility: acl.Nobody},
		{Visibility: acl.Public, Deny: []string{alice}},
		{Visibility: acl.Allowlist, Allow: []string{carol, alice}, Deny: []string{alice}},
	}
	for _, access := range cases {
		if err := b.Publish(ctx, rec("org.example.chat"), access); err != nil {
			t.Fatal(err)
		}
		denied, deniedBin := bucketsAnswers(t, e, &aliceSigner, y, 3)
		if !bytes.Equal(denied, before) {
			t.Errorf("%v: denied answer differs from absent:\n%s\n%s", access, denied, before)
		}
		if !bytes.Equal(deniedBin, beforeBin) {
			t.Errorf("%v: denied binary answer differs from absent:\n%x\n%x", access, deniedBin, beforeBin)
		}
		if access.Visibility == acl.Allowlist {
			e.store.rows.Store(0)
			bucketsAnswer(t, e, &aliceSigner, y, 3)
			deniedRows := e.store.rows.Swap(0)
			allowed := bucketsAnswer(t, e, &carolSigner, y, 3).body
			allowedRows := e.store.rows.Load()
			if deniedRows != allowedRows {
				t.Errorf("store touched %d rows for a denied caller, %d for an allowed one", deniedRows, allowedRows)
			}
			if bytes.Equal(allowed, before) {
				t.Errorf("allowed caller's answer lacks Bob's record")
			}
			if _, allowedBin := bucketsAnswers(t, e, &carolSigner, y, 3); bytes.Equal(allowedBin, beforeBin) {
				t.Errorf("allowed caller's binary answer lacks Bob's record")
			}
		}
	}
	if err := b.Delete(ctx, "org.example.chat"); err != nil {
		t.Fatal(err)
	}
	if after, afterBin := absent(); !bytes.Equal(after, before) || !bytes.Equal(afterBin, beforeBin) {
		t.Errorf("answer after delete differs from before publish")
	}
}

func TestCredentials(t *testing.T) {
	e := newEnv(t, directory.Config{})
	body := api.EvaluateRequest{Elements: [][]byte{make([]byte, 32)}}

	expired := e.issue(alice, time.Now(), time.Hour)
	e.skew.Store(int64(2 * time.Hour))
	if r := e.do("POST", api.PathEvaluate, body, &expired); r.status != 401 || !strings.Contains(r.message(), "expired") {
		t.Errorf("expired credential: %d %q", r.status, r.message())
	}
	e.skew.Store(0)

	otherCA, err := credential.GenerateCA("blindex built-in CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged := e.issue(alice, time.Now(), time.Hour)
	issued := time.Now()
	forged.cert, err = otherCA.Issue(alice, &forged.key.PublicKey, time.Hour, issued, issued)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do("POST", api.PathEvaluate, body, &forged); r.status != 401 || !strings.Contains(r.message(), "not accepted") {
		t.Errorf("credential from another CA: %d %q", r.status, r.message())
	}

	// A valid certificate signed by the wrong key.
	good := e.issue(alice, time.Now(), time.Hour)
	stolen := e.issue(carol, time.Now(), time.Hour)
	stolen.cert = good.cert
	if r := e.do("POST", api.PathEvaluate, body, &stolen); r.status != 401 {
		t.Errorf("someone else's certificate: %d %q", r.status, r.message())
	}

	if r := e.do("POST", api.PathEvaluate, body, nil); r.status != 401 {
		t.Errorf("unsigned: %d", r.status)
	}
}

func TestReplay(t *testing.T) {
	e := newEnv(t, directory.Config{})
	s := e.issue(alice, time.Now(), time.Hour)
	_, blinded, err := oprf.Blind([][]byte{[]byte(dave)})
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(fmt.Sprintf(`{"elements":["%s"]}`, b64(blinded[0])))
	req := func() *http.Request {
		r, _ := http.NewRequest("POST", e.srv.URL()+api.PathEvaluate, bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	first := req()
	if err := signRequest(first, b, s); err != nil {
		t.Fatal(err)
	}
	if r := e.send(first); r.status != 200 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	again := req()
	again.Header = first.Header.Clone()
	if r := e.send(again); r.status != 401 || !strings.Contains(r.message(), "replayed") {
		t.Errorf("replay: %d %q", r.status, r.message())
	}
	// The same signature on another path or body fails too.
	moved, _ := http.NewRequest("POST", e.srv.URL()+api.PathBuckets, bytes.NewReader(b))
	moved.Header = first.Header.Clone()
	if r := e.send(moved); r.status != 401 {
		t.Errorf("signature moved to another path: %d", r.status)
	}
}

func TestPublishUnderAnotherIndex(t *testing.T) {
	e := newEnv(t, directory.Config{})
	y, _ := oprf.NewEvaluator(e.srv.Node.OPRFKey).FullEvaluate([]byte("blindex lookup v1"), []byte(bob))
	idx, rid, key := oprf.Index(y), oprf.RecordID(y, "org.example.chat"), oprf.RecordKey(y)
	ct, err := record.Seal(key, rec("org.example.chat"))
	if err != nil {
		t.Fatal(err)
	}
	mallory := e.issue(alice, time.Now(), time.Hour)
	req := api.PublishRequest{Index: idx[:], RecordID: rid[:], Ciphertext: ct,
		ACL: &acl.List{Visibility: acl.Public}, Expires: time.Now().Add(time.Hour)}
	if r := e.do("PUT", api.PathRecords, req, &mallory); r.status != 403 {
		t.Errorf("publish under bob's index as alice: %d %q", r.status, r.message())
	}
	if r := e.do("PUT", api.PathRecordACL, api.SetACLRequest{Index: idx[:], RecordID: rid[:], ACL: &acl.List{}}, &mallory); r.status != 403 {
		t.Errorf("acl under bob's index as alice: %d %q", r.status, r.message())
	}
	bobSigner := e.issue(bob, time.Now(), 24*time.Hour)
	if r := e.do("PUT", api.PathRecords, req, &bobSigner); r.status != 200 {
		t.Fatalf("bob's own publish: %d %q", r.status, r.message())
	}
	// Deleting uses the caller's own index, so alice cannot reach bob's record.
	if r := e.do("DELETE", "/v1/records/"+hex.EncodeToString(rid[:]), nil, &mallory); r.status != 404 {
		t.Errorf("alice deleting bob's record id: %d %q", r.status, r.message())
	}
	// The ACL is required, never defaulted.
	noACL := req
	noACL.ACL = nil
	if r := e.do("PUT", api.PathRecords, noACL, &bobSigner); r.status != 400 {
		t.Errorf("publish without acl: %d", r.status)
	}
	// An expired record disappears from lookups at once and from the
	// database at the next sweep.
	e.skew.Store(int64(2 * time.Hour))
	if r := bucketsAnswer(t, e, &bobSigner, y, 0); strings.Contains(string(r.body), `"records":[{`) {
		t.Errorf("expired record served: %s", r.body)
	}
	e.srv.Housekeep(t.Context())
	e.skew.Store(0)
	if r := bucketsAnswer(t, e, &bobSigner, y, 0); strings.Contains(string(r.body), `"records":[{`) {
		t.Errorf("expired record not deleted: %s", r.body)
	}

	// An unpadded ciphertext is refused.
	req.Ciphertext = ct[:len(ct)-1]
	if r := e.do("PUT", api.PathRecords, req, &bobSigner); r.status != 400 {
		t.Errorf("odd-sized ciphertext: %d", r.status)
	}
}

func TestOTP(t *testing.T) {
	e := newEnv(t, directory.Config{})
	pub := func() []byte {
		s := e.issue(bob, time.Now(), time.Hour)
		b, _ := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
		return b
	}
	start := func(n string) string {
		r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: n}, nil)
		if r.status != 200 {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
		var resp struct {
			VerificationID string `json:"verification_id"`
		}
		mustJSON(t, r.body, &resp)
		return resp.VerificationID
	}
	confirm := func(id, n, code string) response {
		return e.do("POST", api.PathVerifyConfirm, api.VerifyConfirmRequest{VerificationID: id, Number: n, Code: code, PublicKey: pub()}, nil)
	}
	wrong := func(code string) string {
		if code == "000000" {
			return "000001"
		}
		return "000000"
	}

	// Five wrong codes, then even the right one is refused: the 6th try.
	id := start(bob)
	code := e.phones.code(bob)
	for i := range 5 {
		if r := confirm(id, bob, wrong(code)); r.status != 400 || r.message() != "wrong code" {
			t.Fatalf("wrong code %d: %d %q", i+1, r.status, r.message())
		}
	}
	if r := confirm(id, bob, code); r.status != 404 {
		t.Errorf("6th try with the right code: %d %q", r.status, r.message())
	}
	if n := pendingRows(t, e); n != 0 {
		t.Errorf("%d pending rows after running out of tries", n)
	}

	// A key that is not P-256 is refused before an attempt is spent.
	id = start(carol)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	for range 6 {
		r := e.do("POST", api.PathVerifyConfirm, api.VerifyConfirmRequest{VerificationID: id, Number: carol,
			Code: e.phones.code(carol), PublicKey: p384DER}, nil)
		if r.status != 400 || !strings.Contains(r.message(), "P-256") {
			t.Fatalf("P-384 key: %d %q", r.status, r.message())
		}
	}

	// The right code for the wrong number is a wrong code.
	if r := confirm(id, alice, e.phones.code(carol)); r.status != 400 {
		t.Errorf("code confirmed for another number: %d", r.status)
	}
	if r := confirm(id, carol, e.phones.code(carol)); r.status != 200 {
		t.Errorf("right code after one wrong try: %d %q", r.status, r.message())
	}
	if n := pendingRows(t, e); n != 0 {
		t.Errorf("%d pending rows after success", n)
	}

	// An expired code is refused and its row removed.
	id = start(alice)
	e.skew.Store(int64(11 * time.Minute))
	if r := confirm(id, alice, e.phones.code(alice)); r.status != 404 {
		t.Errorf("expired code: %d %q", r.status, r.message())
	}
	e.skew.Store(0)
	if n := pendingRows(t, e); n != 0 {
		t.Errorf("%d pending rows after expiry", n)
	}

	// Codes sent are limited per number, with Retry-After: each start is
	// its own verification and sends one.
	for range ca.DefaultLimits.NumberPerHour {
		start(dave)
	}
	r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: dave}, nil)
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Errorf("send %d in the hour: %d, Retry-After %q", ca.DefaultLimits.NumberPerHour+1, r.status, r.header.Get("Retry-After"))
	}

	// Concurrent confirms of one code: exactly one credential.
	e.skew.Store(int64(time.Hour)) // let dave's verification lapse
	n := "+14155550199"
	id = start(n)
	e.skew.Store(int64(time.Hour))
	code = e.phones.code(n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			if r := confirm(id, n, code); r.status == 200 {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Errorf("%d concurrent confirms succeeded, want 1", ok)
	}

	// A gateway failure is a retryable 503, and consumes no code: after a
	// failed resend the code already delivered still works.
	e.phones.fail.Store(true)
	if r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: "+14155550198"}, nil); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("sms failure: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	e.phones.fail.Store(false)
	n = "+14155550197"
	id = start(n)
	delivered := e.phones.code(n)
	e.phones.fail.Store(true)
	if r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: n}, nil); r.status != 503 {
		t.Errorf("failed resend: %d", r.status)
	}
	e.phones.fail.Store(false)
	if r := confirm(id, n, delivered); r.status != 200 {
		t.Errorf("the delivered code after a failed resend: %d %q", r.status, r.message())
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, directory.Config{})
	s := e.issue(alice, time.Now(), time.Hour)
	for _, n := range []string{"+1 800 FLOWERS", "+1 415 555 0100 ext 1", "+1415555010", "", strings.Repeat("1", 10<<10), "4155550100"} {
		r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: n}, nil)
		if r.status != 400 || !strings.Contains(r.message(), "invalid phone number") {
			t.Errorf("number %.20q: %d %q", n, r.status, r.message())
		}
		if n != "" && strings.Contains(string(r.body), n) {
			t.Errorf("error echoes the number")
		}
	}
	if strings.Contains(e.logs.String(), "FLOWERS") || strings.Contains(e.logs.String(), "415555010") {
		t.Errorf("server log holds a submitted number")
	}

	elems := make([][]byte, oprf.MaxBatch+1)
	_, blinded, _ := oprf.Blind([][]byte{[]byte(bob)})
	for i := range elems {
		elems[i] = blinded[0]
	}
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: elems}, &s); r.status != 400 || !strings.Contains(r.message(), "1024") {
		t.Errorf("oversized batch: %d %q", r.status, r.message())
	}
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: [][]byte{make([]byte, 32)}}, &s); r.status != 400 || r.message() != "invalid element" {
		t.Errorf("identity element: %d %q", r.status, r.message())
	}
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: [][]byte{blinded[0][:31]}}, &s); r.status != 400 {
		t.Errorf("short element: %d %q", r.status, r.message())
	}
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{}, &s); r.status != 400 {
		t.Errorf("empty batch: %d %q", r.status, r.message())
	}
	if r := e.do("POST", api.PathEvaluate, []byte(`{"elements":[],"extra":1}`), &s); r.status != 400 {
		t.Errorf("unknown field: %d", r.status)
	}
	if r := e.do("POST", api.PathEvaluate, []byte(`{"elements":[]} {}`), &s); r.status != 400 {
		t.Errorf("trailing data: %d", r.status)
	}
	if r := e.do("POST", api.PathEvaluate, bytes.Repeat([]byte(" "), httpapi.MaxBodySize+1), &s); r.status != 413 {
		t.Errorf("oversized body: %d", r.status)
	}
	req, _ := http.NewRequest("POST", e.srv.URL()+api.PathVerifyStart, strings.NewReader(`{"number":"+14155550100"}`))
	req.Header.Set("Content-Type", "text/plain")
	if r := e.send(req); r.status != 415 {
		t.Errorf("wrong content type: %d", r.status)
	}
	if r := e.do("POST", api.PathBuckets, api.BucketsRequest{PrefixBits: 5, Prefixes: []uint32{1}}, &s); r.status != 409 {
		t.Errorf("prefix longer than the server's: %d %q", r.status, r.message())
	}
	if r := e.do("POST", api.PathBuckets, api.BucketsRequest{PrefixBits: 0, Prefixes: []uint32{0, 0}}, &s); r.status != 400 {
		t.Errorf("duplicate prefix: %d", r.status)
	}
	if r := e.do("POST", api.PathBuckets, api.BucketsRequest{PrefixBits: 0, Prefixes: []uint32{1}}, &s); r.status != 400 {
		t.Errorf("prefix out of range: %d", r.status)
	}
	if r := e.do("POST", api.PathBuckets, api.BucketsRequest{PrefixBits: 0, Prefixes: make([]uint32, oprf.MaxBatch+1)}, &s); r.status != 400 {
		t.Errorf("too many prefixes: %d", r.status)
	}
	if r := e.do("GET", "/v1/nope", nil, nil); r.status != 404 {
		t.Errorf("unknown path: %d", r.status)
	}
}

func TestMinimalKeyErrors(t *testing.T) {
	// The OPRF key recorded in the store cannot be swapped.
	e := newEnv(t, directory.Config{})
	other, _ := oprf.GenerateKey()
	_, err := directory.New(t.Context(), directory.Config{Store: e.srv.Node.Store, OPRFKey: other, Roots: []*x509.Certificate{e.srv.CA.Root()}})
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("swapped OPRF key: %v", err)
	}
}

// A batch refused for a bad element evaluates nothing and costs nothing.
func TestRefusedBatchIsFree(t *testing.T) {
	e := newEnv(t, directory.Config{Budget: directory.Budget{Burst: oprf.MaxBatch}})
	s := e.issue(alice, time.Now(), time.Hour)
	bad := make([][]byte, oprf.MaxBatch)
	for i := range bad {
		bad[i] = make([]byte, 32) // the identity
	}
	for range 3 {
		if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: bad}, &s); r.status != 400 {
			t.Fatalf("identity batch: %d", r.status)
		}
	}
	inputs := make([][]byte, oprf.MaxBatch)
	for i := range inputs {
		inputs[i] = []byte(fmt.Sprintf("+1415555%04d", i))
	}
	_, good, _ := oprf.Blind(inputs)
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: good}, &s); r.status != 200 {
		t.Errorf("a full batch after refused ones: %d %s", r.status, r.body)
	}
}

// TestConfigValidate checks that the settings New refuses are named by
// field, that the defaults pass, and that New refuses what Validate does.
func TestConfigValidate(t *testing.T) {
	if err := (directory.Config{}).Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	if err := (directory.Config{Budget: directory.DefaultBudget, MinBucketOwners: directory.DefaultMinBucketOwners}).Validate(); err != nil {
		t.Errorf("the exported defaults: %v", err)
	}
	for _, c := range []struct {
		cfg   directory.Config
		field string
	}{
		{directory.Config{MinBucketOwners: -1}, "MinBucketOwners"},
		{directory.Config{MaxPrefixBits: 33}, "MaxPrefixBits"},
		{directory.Config{MaxRecordsPerOwner: -1}, "MaxRecordsPerOwner"},
		{directory.Config{AuthWindow: -time.Second}, "AuthWindow"},
		{directory.Config{Budget: directory.Budget{Burst: oprf.MaxBatch - 1}}, "Budget.Burst"},
		{directory.Config{Budget: directory.Budget{GlobalPerSecond: oprf.MaxBatch - 1}}, "Budget.GlobalPerSecond"},
		{directory.Config{Budget: directory.Budget{PerDay: -1}}, "Budget.PerDay"},
	} {
		var ce *directory.ConfigError
		if err := c.cfg.Validate(); !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%s: %v", c.field, err)
		}
	}
	e := newEnv(t, directory.Config{})
	key, _ := oprf.GenerateKey()
	_, err := directory.New(t.Context(), directory.Config{Store: e.srv.Node.Store, OPRFKey: key, Roots: []*x509.Certificate{e.srv.CA.Root()},
		Budget: directory.Budget{Burst: oprf.MaxBatch - 1}})
	var ce *directory.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Budget.Burst" || !strings.Contains(err.Error(), "1024") {
		t.Errorf("New with a burst below a batch: %v", err)
	}
}
