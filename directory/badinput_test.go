package directory_test

// The bad-input matrix: every row of docs/bad-input.md is a case here, by
// name. Each case sends one bad request to a real server and checks the
// exact status and message, that the database is unchanged (every table,
// row by row, read straight from the SQLite file) unless the row says which
// tables the request writes, and that Carol's lookup of Bob still returns
// exactly the records Bob published.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpapi"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
)

// Messages, copied from the code (httpapi, directory, ca).
const (
	msgBadRequest  = "bad request"
	msgTooLarge    = "request body too large"
	msgContentType = "content type must be application/json"
	msgBatchEmpty  = "batch is empty"
	msgBatchLarge  = "batch too large: at most 1024 elements"
	msgElement     = "invalid element"
	msgUnsigned    = "request not signed: this endpoint needs a credential"
	msgWindow      = "request replayed or outside the time window: check the clock and retry"
	msgSignature   = "request signature invalid"
	msgExpired     = "credential expired: verify the number again"
	msgUntrusted   = "credential not accepted: not issued by a CA this server trusts"
	msgVerifyGone  = "verification unknown, expired or out of attempts: start again"
)

// dbSnapshot is a digest of every row of every table, by table.
type dbSnapshot map[string]string

// snapshot reads the server's database file read-only: a digest of the
// rows of every table.
func snapshot(t *testing.T, e *env) dbSnapshot {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "server", datadir.DBFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) == 0 {
		t.Fatal("no tables: the snapshot would prove nothing")
	}
	// Housekeeping (every 15 s) may delete rows that expire, such as the
	// per-minute limit counters, at any moment: leave out rows that expire
	// within two minutes. Every write of a limit also writes its hourly
	// and daily counters, which stay in.
	sweepable := time.Now().Add(2 * time.Minute).Unix()
	s := dbSnapshot{}
	for _, table := range tables {
		if table == "log_head" {
			// Holds the published checkpoint, which the server refreshes
			// once a second; log growth shows in log_entries.
			continue
		}
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			if i := slices.Index(cols, "expires_at"); i >= 0 && expiresBefore(vals[i], sweepable) {
				continue
			}
			// Every signed request records its nonce (httpapi.SharedNonces:
			// a counter in window 0, kept until its timestamp + 60 s, which
			// a timestamp ahead of the clock puts past the two minutes).
			if i := slices.Index(cols, "window_start"); table == "counters" && i >= 0 && vals[i] == int64(0) {
				continue
			}
			lines = append(lines, fmt.Sprintf("%x", vals))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		slices.Sort(lines)
		h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
		s[table] = fmt.Sprintf("%d rows %x", len(lines), h[:8])
	}
	return s
}

// changed lists the tables whose rows differ.
func (s dbSnapshot) changed(after dbSnapshot) []string {
	var out []string
	for table, d := range after {
		if s[table] != d {
			out = append(out, table)
		}
	}
	for table := range s {
		if _, ok := after[table]; !ok {
			out = append(out, table)
		}
	}
	slices.Sort(out)
	return out
}

// fixture is Bob with two published records, Carol allowed to see both, and
// credentials that have each made one request already, so that later
// requests do not claim a holder row.
type fixture struct {
	e      *env
	carol  *client.Client
	owner  signer // Bob's own credential, as the client holds it
	caller signer // Alice, for the lookup endpoints
	y      []byte // Bob's OPRF output
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := newEnv(t, directory.Config{})
	b := e.register(bob)
	carolC := e.register(carol)
	if err := b.Publish(t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), rec("org.example.video"), client.Access{Visibility: acl.Allowlist, Allow: []string{carol}}); err != nil {
		t.Fatal(err)
	}
	chain, key, err := b.Chain()
	if err != nil {
		t.Fatal(err)
	}
	y, err := oprf.NewEvaluator(e.srv.Node.OPRFKey).FullEvaluate([]byte("blindex lookup v1"), []byte(bob))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{e: e, carol: carolC, owner: signer{key: key, cert: chain[0]}, caller: e.issue(alice, time.Now(), 24*time.Hour), y: y}
	if r := e.do("POST", api.PathEvaluate, evaluateBody(1), &f.caller); r.status != 200 {
		t.Fatalf("alice's first request: %d %s", r.status, r.body)
	}
	f.checkRecords(t)
	return f
}

// checkRecords checks that Carol's lookup of Bob returns exactly his two
// records, unchanged.
func (f *fixture) checkRecords(t *testing.T) {
	t.Helper()
	res, err := f.carol.Lookup(t.Context(), bob)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	var got []string
	for _, r := range res[0].Records {
		got = append(got, r.App+" "+r.Endpoint)
	}
	want := []string{"org.example.chat https://org.example.chat/u/1", "org.example.video https://org.example.video/u/1"}
	if !slices.Equal(got, want) {
		t.Fatalf("carol's lookup of bob = %q, want %q", got, want)
	}
}

// evaluateBody is a valid evaluate request with n distinct blinded elements.
func evaluateBody(n int) []byte {
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = fmt.Appendf(nil, "+1202555%04d", i)
	}
	_, blinded, err := oprf.Blind(inputs)
	if err != nil {
		panic(err)
	}
	return jsonBody(api.EvaluateRequest{Elements: blinded})
}

// elementsBody is an evaluate request with the given elements.
func elementsBody(elems ...[]byte) []byte {
	return jsonBody(api.EvaluateRequest{Elements: elems})
}

// publishBody is a valid request to republish Bob's chat record as public.
func (f *fixture) publishBody() api.PublishRequest {
	idx, rid := oprf.Index(f.y), oprf.RecordID(f.y, "org.example.chat")
	ct, err := record.Seal(oprf.RecordKey(f.y), record.Record{App: "org.example.chat", Endpoint: "https://evil.example/u/1",
		Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)})
	if err != nil {
		panic(err)
	}
	return api.PublishRequest{Index: idx[:], RecordID: rid[:], Ciphertext: ct,
		ACL: &acl.List{Visibility: acl.Public}, Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// pad appends whitespace to a JSON body until it is n bytes long.
func pad(b []byte, n int) []byte {
	return append(slices.Clone(b), bytes.Repeat([]byte(" "), n-len(b))...)
}

// ceilSecond is the next whole second: signing relative to it makes the
// ±59 s and ±61 s cases exact despite whole-second timestamps, as long as
// the request takes less than a second to reach the server.
func ceilSecond() time.Time { return time.Now().Truncate(time.Second).Add(time.Second) }

type badCase struct {
	name        string
	method      string
	path        string
	body        []byte
	as          *signer       // nil: unsigned
	skew        time.Duration // added to the signature timestamp (from ceilSecond)
	contentType string        // "" sends application/json; "-" sends none
	editHeaders func(http.Header)

	status  int
	message string   // the exact "error" of a non-2xx answer
	writes  []string // tables the request changes; none if empty
	check   func(t *testing.T, r response)
}

func (f *fixture) send(t *testing.T, c badCase) response {
	t.Helper()
	req, err := http.NewRequest(c.method, f.e.srv.URL()+c.path, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	switch c.contentType {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.as != nil {
		at := time.Now()
		if c.skew != 0 {
			at = ceilSecond().Add(c.skew)
		}
		if err := httpsig.Sign(req, c.body, c.as.key, c.as.cert, at); err != nil {
			t.Fatal(err)
		}
	}
	if c.editHeaders != nil {
		c.editHeaders(req.Header)
	}
	return f.e.send(req)
}

func TestBadInputMatrix(t *testing.T) {
	f := newFixture(t)
	e := f.e
	owner, caller := &f.owner, &f.caller

	// Elements.
	valid := func() []byte {
		_, b, err := oprf.Blind([][]byte{[]byte(dave)})
		if err != nil {
			t.Fatal(err)
		}
		return b[0]
	}
	identity := make([]byte, oprf.ElementSize)
	nonCanonical, _ := hex.DecodeString("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") // p, unreduced
	elem := valid()
	elemB64 := base64.StdEncoding.EncodeToString(elem)
	withNewline := fmt.Sprintf(`{"elements":["%s\n%s"]}`, elemB64[:20], elemB64[20:])

	// Credentials.
	// Expired five seconds ago. It must have been valid after the CA root
	// (made when the server started) was, or the chain fails instead.
	expired := e.issue(alice, time.Now().Add(-10*time.Second), 5*time.Second)
	notYet := e.issue(alice, time.Now().Add(time.Hour), time.Hour)
	otherCA, err := credential.GenerateCA("blindex built-in CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forgedKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issued := time.Now()
	forgedCert, err := otherCA.Issue(bob, &forgedKey.PublicKey, time.Hour, issued, issued)
	if err != nil {
		t.Fatal(err)
	}
	forged := signer{key: forgedKey, cert: forgedCert}
	wrongKey := signer{key: forgedKey, cert: owner.cert} // Bob's certificate, another key

	publish := f.publishBody()
	publishJSON := jsonBody(publish)
	withCiphertext := func(n int) []byte {
		p := publish
		p.Ciphertext = bytes.Repeat([]byte{2}, n)
		return jsonBody(p)
	}
	unknownMember := bytes.Replace(publishJSON, []byte(`{"index"`), []byte(`{"priority":1,"index"`), 1)
	unknownInACL := bytes.Replace(publishJSON, []byte(`"acl":{"visibility":"public"}`), []byte(`"acl":{"visibility":"public","x":1}`), 1)
	duplicateACL := bytes.Replace(publishJSON, []byte(`"acl":{"visibility":"public"}`), []byte(`"acl":{"visibility":"nobody"},"acl":{"visibility":"public"}`), 1)
	if bytes.Equal(unknownMember, publishJSON) || bytes.Equal(unknownInACL, publishJSON) || bytes.Equal(duplicateACL, publishJSON) {
		t.Fatalf("test broken: publish body shape changed: %s", publishJSON)
	}

	start := []byte(`{"number":"` + dave + `"}`)
	tooMany := make([][]byte, oprf.MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = elem
	}
	manyPrefixes := make([]uint32, oprf.MaxBatch+1)
	for i := range manyPrefixes {
		manyPrefixes[i] = uint32(i)
	}
	budget := []string{"token_buckets"} // a caller's evaluation budget and bucket credit

	cases := []badCase{
		// Oversized bodies: refused while reading, before the signature
		// is checked and before anything is decoded.
		{name: "oversized/evaluate", method: "POST", path: api.PathEvaluate, body: pad(evaluateBody(1), httpapi.MaxBodySize+1), as: caller,
			status: 413, message: msgTooLarge},
		{name: "oversized/evaluate_unsigned", method: "POST", path: api.PathEvaluate, body: pad(evaluateBody(1), httpapi.MaxBodySize+1),
			status: 413, message: msgTooLarge},
		{name: "oversized/publish", method: "PUT", path: api.PathRecords, body: pad(publishJSON, httpapi.MaxBodySize+1), as: owner,
			status: 413, message: msgTooLarge},
		{name: "oversized/verify_start", method: "POST", path: api.PathVerifyStart, body: pad(start, httpapi.MaxBodySize+1),
			status: 413, message: msgTooLarge},
		{name: "oversized/exactly_max_accepted", method: "POST", path: api.PathEvaluate, body: pad(evaluateBody(1), httpapi.MaxBodySize), as: caller,
			status: 200, writes: budget},

		// Invalid JSON.
		{name: "invalid_json/truncated_start", method: "POST", path: api.PathVerifyStart, body: []byte(`{"number":`),
			status: 400, message: msgBadRequest},
		{name: "invalid_json/truncated_publish", method: "PUT", path: api.PathRecords, body: publishJSON[:len(publishJSON)-1], as: owner,
			status: 400, message: msgBadRequest},
		{name: "invalid_json/trailing_data", method: "PUT", path: api.PathRecords, body: append(slices.Clone(publishJSON), []byte(" {}")...), as: owner,
			status: 400, message: msgBadRequest},
		{name: "invalid_json/wrong_type", method: "POST", path: api.PathBuckets, body: []byte(`{"prefix_bits":"0","prefixes":[0]}`), as: caller,
			status: 400, message: msgBadRequest},
		{name: "invalid_json/empty_body", method: "POST", path: api.PathEvaluate, body: []byte{}, as: caller,
			status: 400, message: msgBadRequest},

		// Unknown members.
		{name: "unknown_field/verify_start", method: "POST", path: api.PathVerifyStart, body: []byte(`{"number":"` + dave + `","extra":1}`),
			status: 400, message: msgBadRequest},
		{name: "unknown_field/publish", method: "PUT", path: api.PathRecords, body: unknownMember, as: owner,
			status: 400, message: msgBadRequest},
		{name: "unknown_field/inside_acl", method: "PUT", path: api.PathRecords, body: unknownInACL, as: owner,
			status: 400, message: msgBadRequest},
		// encoding/json alone would fold the case, or keep the last of two
		// members (here the public ACL); both are refused (protocol §2).
		{name: "unknown_field/case_variant", method: "POST", path: api.PathVerifyStart, body: []byte(`{"NUMBER":"` + dave + `"}`),
			status: 400, message: msgBadRequest},
		{name: "unknown_field/duplicate_member", method: "PUT", path: api.PathRecords, body: duplicateACL, as: owner,
			status: 400, message: msgBadRequest},

		// Ciphertext lengths: only envelope v2's size classes (protocol
		// §11), so that the length says the class and nothing else; the
		// legacy age lengths are still served, never accepted.
		{name: "ciphertext/legacy_age_length", method: "PUT", path: api.PathRecords, body: withCiphertext(699), as: owner,
			status: 400, message: msgBadRequest},
		{name: "ciphertext/one_byte_short", method: "PUT", path: api.PathRecords, body: withCiphertext(616), as: owner,
			status: 400, message: msgBadRequest},
		{name: "ciphertext/one_byte_long", method: "PUT", path: api.PathRecords, body: withCiphertext(618), as: owner,
			status: 400, message: msgBadRequest},
		{name: "ciphertext/over_the_largest", method: "PUT", path: api.PathRecords, body: withCiphertext(4138), as: owner,
			status: 400, message: msgBadRequest},

		// Content type: checked first, before the size and the signature.
		{name: "content_type/text_plain", method: "POST", path: api.PathVerifyStart, body: start, contentType: "text/plain",
			status: 415, message: msgContentType},
		{name: "content_type/missing", method: "PUT", path: api.PathRecords, body: publishJSON, as: owner, contentType: "-",
			status: 415, message: msgContentType},
		{name: "content_type/form", method: "POST", path: api.PathEvaluate, body: evaluateBody(1), as: caller, contentType: "application/x-www-form-urlencoded",
			status: 415, message: msgContentType},
		{name: "content_type/before_size", method: "POST", path: api.PathEvaluate, body: pad(evaluateBody(1), httpapi.MaxBodySize+1), contentType: "text/plain",
			status: 415, message: msgContentType},
		{name: "content_type/with_charset_accepted", method: "POST", path: api.PathEvaluate, body: evaluateBody(1), as: caller, contentType: "Application/JSON; charset=utf-8",
			status: 200, writes: budget},

		// Batches.
		{name: "batch/evaluate_empty", method: "POST", path: api.PathEvaluate, body: []byte(`{"elements":[]}`), as: caller,
			status: 400, message: msgBatchEmpty},
		{name: "batch/evaluate_missing", method: "POST", path: api.PathEvaluate, body: []byte(`{}`), as: caller,
			status: 400, message: msgBatchEmpty},
		{name: "batch/evaluate_1025", method: "POST", path: api.PathEvaluate, body: elementsBody(tooMany...), as: caller,
			status: 400, message: msgBatchLarge},
		{name: "batch/evaluate_1024_accepted", method: "POST", path: api.PathEvaluate, body: evaluateBody(oprf.MaxBatch), as: caller,
			status: 200, writes: budget, check: func(t *testing.T, r response) {
				var resp api.EvaluateResponse
				mustJSON(t, r.body, &resp)
				if len(resp.Evaluated) != oprf.MaxBatch {
					t.Errorf("%d evaluated elements, want %d", len(resp.Evaluated), oprf.MaxBatch)
				}
			}},
		{name: "batch/buckets_empty", method: "POST", path: api.PathBuckets, body: []byte(`{"prefix_bits":0,"prefixes":[]}`), as: caller,
			status: 400, message: msgBatchEmpty},
		{name: "batch/buckets_1025", method: "POST", path: api.PathBuckets, body: jsonBody(api.BucketsRequest{PrefixBits: 0, Prefixes: manyPrefixes}), as: caller,
			status: 400, message: msgBatchLarge},

		// Duplicates.
		{name: "duplicate/evaluate_same_element_accepted", method: "POST", path: api.PathEvaluate, body: elementsBody(elem, elem), as: caller,
			status: 200, writes: budget, check: func(t *testing.T, r response) {
				var resp api.EvaluateResponse
				mustJSON(t, r.body, &resp)
				if len(resp.Evaluated) != 2 || !bytes.Equal(resp.Evaluated[0], resp.Evaluated[1]) {
					t.Errorf("duplicate elements evaluated to %x", resp.Evaluated)
				}
			}},
		{name: "duplicate/buckets_same_prefix", method: "POST", path: api.PathBuckets, body: []byte(`{"prefix_bits":0,"prefixes":[0,0]}`), as: caller,
			status: 400, message: msgBadRequest},

		// Malformed elements. The caller's budget is charged before the
		// elements are decoded, so a refused batch still costs it (see
		// docs/bad-input.md, findings).
		{name: "element/31_bytes", method: "POST", path: api.PathEvaluate, body: elementsBody(elem[:31]), as: caller,
			status: 400, message: msgElement, writes: budget},
		{name: "element/33_bytes", method: "POST", path: api.PathEvaluate, body: elementsBody(append(slices.Clone(elem), 0)), as: caller,
			status: 400, message: msgElement, writes: budget},
		{name: "element/non_canonical", method: "POST", path: api.PathEvaluate, body: elementsBody(nonCanonical), as: caller,
			status: 400, message: msgElement, writes: budget},
		{name: "element/identity", method: "POST", path: api.PathEvaluate, body: elementsBody(identity), as: caller,
			status: 400, message: msgElement, writes: budget},
		{name: "element/one_bad_in_batch", method: "POST", path: api.PathEvaluate, body: elementsBody(valid(), valid(), identity), as: caller,
			status: 400, message: msgElement, writes: budget},
		{name: "element/base64_line_break_accepted", method: "POST", path: api.PathEvaluate, body: []byte(withNewline), as: caller,
			status: 200, writes: budget},

		// Credentials. A refused credential writes nothing: in particular
		// it claims no holder row, so Bob's records stay.
		{name: "credential/unsigned", method: "PUT", path: api.PathRecords, body: publishJSON,
			status: 401, message: msgUnsigned},
		{name: "credential/expired", method: "POST", path: api.PathEvaluate, body: evaluateBody(1), as: &expired,
			status: 401, message: msgExpired},
		{name: "credential/not_yet_valid", method: "POST", path: api.PathEvaluate, body: evaluateBody(1), as: &notYet,
			status: 401, message: "credential not yet valid: check this device's clock"},
		{name: "credential/forged_other_ca", method: "PUT", path: api.PathRecords, body: publishJSON, as: &forged,
			status: 401, message: msgUntrusted},
		{name: "credential/wrong_key", method: "PUT", path: api.PathRecords, body: publishJSON, as: &wrongKey,
			status: 401, message: msgSignature},
		{name: "credential/garbage_certificate", method: "PUT", path: api.PathRecords, body: publishJSON, as: owner,
			editHeaders: func(h http.Header) {
				h.Set(httpsig.HeaderCredential, base64.StdEncoding.EncodeToString([]byte("not a certificate")))
			},
			status: 401, message: msgUntrusted},
		{name: "credential/malformed_nonce", method: "PUT", path: api.PathRecords, body: publishJSON, as: owner,
			editHeaders: func(h http.Header) { h.Set(httpsig.HeaderNonce, strings.ToUpper(h.Get(httpsig.HeaderNonce))) },
			status:      401, message: msgSignature},

		// Clock skew: the window is ±60 s, bounds included.
		{name: "skew/minus_61s", method: "POST", path: api.PathEvaluate, body: evaluateBody(1), as: caller, skew: -61 * time.Second,
			status: 401, message: msgWindow},
		{name: "skew/plus_61s", method: "POST", path: api.PathEvaluate, body: evaluateBody(1), as: caller, skew: 61 * time.Second,
			status: 401, message: msgWindow},
		{name: "skew/publish_minus_61s", method: "PUT", path: api.PathRecords, body: publishJSON, as: owner, skew: -61 * time.Second,
			status: 401, message: msgWindow},
		{name: "skew/minus_59s_accepted", method: "POST", path: api.PathEvaluate, body: evaluateBody(1), as: caller, skew: -59 * time.Second,
			status: 200, writes: budget},
		{name: "skew/plus_59s_accepted", method: "POST", path: api.PathEvaluate, body: evaluateBody(1), as: caller, skew: 59 * time.Second,
			status: 200, writes: budget},
	}

	names := map[string]bool{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("duplicate case name %s", c.name)
		}
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			e.phones.mu.Lock()
			delete(e.phones.inbox, dave)
			e.phones.mu.Unlock()
			before := snapshot(t, e)
			r := f.send(t, c)
			if r.status != c.status {
				t.Errorf("status %d, want %d (%s)", r.status, c.status, r.body)
			}
			if c.status >= 300 && r.message() != c.message {
				t.Errorf("message %q, want %q", r.message(), c.message)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if c.check != nil {
				c.check(t, r)
			}
			if got := before.changed(snapshot(t, e)); !slices.Equal(got, c.writes) {
				t.Errorf("tables changed: %q, want %q", got, c.writes)
			}
			if c.status >= 300 && e.phones.code(dave) != "" {
				t.Errorf("a refused request sent an SMS")
			}
			f.checkRecords(t)
		})
	}
	// docs/bad-input.md has one row per case, with its status, message
	// and the tables it writes, and no other TestBadInputMatrix rows.
	doc := readDoc(t)
	if got := strings.Count(doc, "| `TestBadInputMatrix/"); got != len(cases) {
		t.Errorf("docs/bad-input.md has %d TestBadInputMatrix rows, the test has %d cases", got, len(cases))
	}
	for _, c := range cases {
		row := docRow(t, doc, "TestBadInputMatrix/"+c.name)
		want := []string{fmt.Sprintf("| %d |", c.status)}
		if c.status >= 300 {
			want = append(want, "`"+c.message+"`")
		}
		for _, table := range c.writes {
			want = append(want, "`"+table+"`")
		}
		if len(c.writes) == 0 {
			want = append(want, "| nothing")
		}
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("docs/bad-input.md row for %s lacks %q:\n%s", c.name, w, row)
			}
		}
	}
}

// readDoc returns docs/bad-input.md, whose rows name the cases of this file.
func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "bad-input.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docRow returns the table row of docs/bad-input.md that names test.
func docRow(t *testing.T, doc, test string) string {
	t.Helper()
	for line := range strings.Lines(doc) {
		if strings.HasPrefix(line, "| `"+test+"` |") {
			return line
		}
	}
	t.Errorf("docs/bad-input.md has no row for %s", test)
	return ""
}

// TestSlowClients checks that the server's timeouts (httpapi.NewServer:
// ReadHeaderTimeout 5 s, ReadTimeout 30 s) cut off clients that stall, on
// raw connections to the real server. The stalled body takes the full 30 s.
func TestSlowClients(t *testing.T) {
	f := newFixture(t)
	e := f.e
	before := snapshot(t, e)
	head := "PUT " + api.PathRecords + " HTTP/1.1\r\nHost: " + e.srv.Addr + "\r\n"

	// The group returns when its parallel subtests are done.
	t.Run("group", func(t *testing.T) { slowClients(t, e, f, head) })
	// Nothing was written, nothing lost.
	if got := before.changed(snapshot(t, e)); len(got) != 0 {
		t.Errorf("slow clients changed tables %q", got)
	}
	f.checkRecords(t)
}

func slowClients(t *testing.T, e *env, f *fixture, head string) {
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", e.srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(45 * time.Second))
		return c
	}
	// readAll reads until the server closes the connection.
	readAll := func(t *testing.T, c net.Conn) ([]byte, time.Duration) {
		start := time.Now()
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("server still holds the connection after %v", time.Since(start))
		}
		return b, time.Since(start)
	}
	within := func(t *testing.T, got, lo, hi time.Duration) {
		t.Helper()
		t.Logf("cut off after %v", got.Round(10*time.Millisecond))
		if got < lo || got > hi {
			t.Errorf("cut off after %v, want between %v and %v", got, lo, hi)
		}
	}

	t.Run("stalled_header", func(t *testing.T) {
		t.Parallel()
		docRow(t, readDoc(t), t.Name())
		c := dial(t)
		io.WriteString(c, head) // and never the blank line
		b, d := readAll(t, c)
		if len(b) != 0 {
			t.Errorf("answer to a stalled header: %q", b)
		}
		within(t, d, 4*time.Second, 7*time.Second)
	})

	t.Run("trickled_header", func(t *testing.T) {
		t.Parallel()
		docRow(t, readDoc(t), t.Name())
		c := dial(t)
		start := time.Now()
		io.WriteString(c, head)
		go func() {
			// One byte every 200 ms, each within any per-read timeout.
			for i := 0; ; i++ {
				if _, err := c.Write([]byte{"X-Slow: 1\r\n"[i%11]}); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
		// Cut off in the middle of a header line, net/http itself
		// answers, in plain text: not the API's JSON error.
		b, _ := readAll(t, c)
		if want := "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"; string(b) != want {
			t.Errorf("answer to a trickled header: %q, want %q", b, want)
		}
		within(t, time.Since(start), 4*time.Second, 7*time.Second)
	})

	t.Run("stalled_body", func(t *testing.T) {
		t.Parallel()
		docRow(t, readDoc(t), t.Name())
		body := jsonBody(f.publishBody())
		req, _ := http.NewRequest("PUT", e.srv.URL()+api.PathRecords, bytes.NewReader(body))
		if err := httpsig.Sign(req, body, f.owner.key, f.owner.cert, time.Now()); err != nil {
			t.Fatal(err)
		}
		c := dial(t)
		var h strings.Builder
		h.WriteString(head)
		h.WriteString("Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
		for _, k := range []string{httpsig.HeaderCredential, httpsig.HeaderTimestamp, httpsig.HeaderNonce, httpsig.HeaderSignature} {
			h.WriteString(k + ": " + req.Header.Get(k) + "\r\n")
		}
		h.WriteString("\r\n")
		io.WriteString(c, h.String())
		c.Write(body[:len(body)/2]) // and never the rest
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body after %v: %v", time.Since(start), err)
		}
		rb, _ := io.ReadAll(resp.Body)
		within(t, time.Since(start), 28*time.Second, 35*time.Second)
		if r := (response{status: resp.StatusCode, body: rb}); r.status != 400 || r.message() != msgBadRequest {
			t.Errorf("stalled body: %d %s", r.status, rb)
		}
		if resp.Header.Get("Connection") != "close" && !resp.Close {
			t.Errorf("connection kept open after a timed-out body")
		}
	})

}

func rootPool(e *env) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.srv.CA.Root())
	return p
}

// TestConcurrentDoubleConfirm sends the right code twice at once, several
// times: exactly one confirm gets a credential, the other the fixed 404,
// and only the verification row (it is gone), the log, and the number's
// count of codes checked (protocol §9.3) change.
func TestConcurrentDoubleConfirm(t *testing.T) {
	e := newEnv(t, directory.Config{})
	if row := docRow(t, readDoc(t), t.Name()); !strings.Contains(row, "`"+msgVerifyGone+"`") {
		t.Errorf("docs/bad-input.md row lacks the message: %s", row)
	}
	for i := range 5 {
		n := fmt.Sprintf("+1415555%04d", 3000+i)
		r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: n}, nil)
		var started api.VerifyStartResponse
		mustJSON(t, r.body, &started)
		code := e.phones.code(n)
		before := snapshot(t, e)

		keys := [2]*ecdsa.PrivateKey{}
		got := [2]response{}
		var ready, wg sync.WaitGroup
		ready.Add(2)
		gate := make(chan struct{})
		for j := range 2 {
			keys[j], _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			der, _ := x509.MarshalPKIXPublicKey(&keys[j].PublicKey)
			body := jsonBody(api.VerifyConfirmRequest{VerificationID: started.VerificationID, Number: n, Code: code, PublicKey: der})
			req, _ := http.NewRequest("POST", e.srv.URL()+api.PathVerifyConfirm, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			wg.Go(func() {
				ready.Done()
				<-gate
				got[j] = e.send(req)
			})
		}
		ready.Wait()
		close(gate)
		wg.Wait()

		win := slices.IndexFunc(got[:], func(r response) bool { return r.status == 200 })
		if win < 0 || got[1-win].status != 404 || got[1-win].message() != msgVerifyGone {
			t.Fatalf("double confirm %d: %d %s / %d %s", i, got[0].status, got[0].body, got[1].status, got[1].body)
		}
		var cred api.VerifyConfirmResponse
		mustJSON(t, got[win].body, &cred)
		num, leaf, err := credential.Verify(cred.Certificate, rootPool(e), time.Now())
		if err != nil || num != n || !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&keys[win].PublicKey) {
			t.Errorf("winner's credential: %q, %v", num, err)
		}
		// The one credential issued is logged (and marked logged in meta,
		// for its promise), and its key joins the number's holders.
		if changed := before.changed(snapshot(t, e)); !slices.Equal(changed, []string{"counters", "holders", "log_entries", "log_hashes", "meta", "verifications"}) {
			t.Errorf("tables changed: %q, want the codes checked, the holders, the log's, its logged mark and verifications", changed)
		}
		if p := pendingRows(t, e); p != 0 {
			t.Errorf("%d verifications pending after the double confirm", p)
		}
	}
}

// expiresBefore reports whether an expires_at value (Unix seconds) is
// before t.
func expiresBefore(v any, t int64) bool {
	n, ok := v.(int64)
	return ok && n < t
}
