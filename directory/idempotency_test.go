package directory_test

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"testing"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
)

// A client that lost an answer retries with the same Idempotency-Key and
// gets the first answer: no second SMS, no second write, no lost
// credential.
func TestIdempotentRetries(t *testing.T) {
	e := newEnv(t, directory.Config{})
	send := func(method, path string, body any, key string, s *signer) response {
		t.Helper()
		b := mustMarshal(t, body)
		req, _ := http.NewRequest(method, e.srv.URL()+path, bytes.NewReader(b))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Idempotency-Key", key)
		if s != nil {
			if err := signRequest(req, b, *s); err != nil {
				t.Fatal(err)
			}
		}
		return e.send(req)
	}

	// Start twice with one key: one code sent, one answer.
	r1 := send("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: bob}, "start-key-0123456789", nil)
	code := e.phones.code(bob)
	r2 := send("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: bob}, "start-key-0123456789", nil)
	if r1.status != 200 || !bytes.Equal(r1.body, r2.body) || e.phones.code(bob) != code {
		t.Fatalf("retried start: %d %s / %d %s, code changed: %v", r1.status, r1.body, r2.status, r2.body, e.phones.code(bob) != code)
	}
	var started api.VerifyStartResponse
	mustJSON(t, r1.body, &started)

	// Confirm twice with one key: the same credential both times, though the
	// code was used up by the first.
	confirm := api.VerifyConfirmRequest{VerificationID: started.VerificationID, Number: bob, Code: code, PublicKey: publicKeyDER(t)}
	c1 := send("POST", api.PathVerifyConfirm, confirm, "confirm-key-0123456789", nil)
	c2 := send("POST", api.PathVerifyConfirm, confirm, "confirm-key-0123456789", nil)
	if c1.status != 200 || c2.status != 200 || !bytes.Equal(c1.body, c2.body) {
		t.Errorf("retried confirm: %d / %d, same answer %v", c1.status, c2.status, bytes.Equal(c1.body, c2.body))
	}
	// Without the key, a second confirm is refused: the code is used.
	if r := e.do("POST", api.PathVerifyConfirm, confirm, nil); r.status != 404 {
		t.Errorf("confirm without a key after success: %d", r.status)
	}
	// The same key for another request is refused.
	other := confirm
	other.Code = "000000"
	if r := send("POST", api.PathVerifyConfirm, other, "confirm-key-0123456789", nil); r.status != 422 {
		t.Errorf("key reused for another body: %d %s", r.status, r.body)
	}
	if r := send("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: bob}, "short", nil); r.status != 400 {
		t.Errorf("malformed key: %d", r.status)
	}

	// Delete twice with one key: both succeed (the second is the first's
	// answer, not "not found").
	b := e.register(carol)
	if err := b.Publish(t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
		t.Fatal(err)
	}
	y, _ := oprf.NewEvaluator(e.srv.Node.OPRFKey).FullEvaluate([]byte("blindex lookup v1"), []byte(carol))
	rid := oprf.RecordID(y, "org.example.chat")
	chain, key, err := b.Chain()
	if err != nil {
		t.Fatal(err)
	}
	s := signer{key: key, cert: chain[0]}
	path := "/v1/records/" + hex.EncodeToString(rid[:])
	d1 := send("DELETE", path, nil, "delete-key-0123456789", &s)
	d2 := send("DELETE", path, nil, "delete-key-0123456789", &s)
	if d1.status != 200 || d2.status != 200 {
		t.Errorf("retried delete: %d / %d", d1.status, d2.status)
	}
	// Another caller with the same key and body gets nothing of the first
	// caller's answer.
	third := e.register(alice)
	ochain, okey, err := third.Chain()
	if err != nil {
		t.Fatal(err)
	}
	thirdSig := signer{key: okey, cert: ochain[0]}
	if r := send("DELETE", path, nil, "delete-key-0123456789", &thirdSig); r.status != 404 {
		t.Errorf("another caller replaying a key: %d %s", r.status, r.body)
	}
	// Reads ignore the key: a repeat is a fresh evaluation, and another
	// body with the same key is no conflict.
	_, b1, _ := oprf.Blind([][]byte{[]byte(dave)})
	_, b2, _ := oprf.Blind([][]byte{[]byte(dave)})
	e1 := send("POST", api.PathEvaluate, api.EvaluateRequest{Elements: b1}, "read-key-0123456789ab", &s)
	e2 := send("POST", api.PathEvaluate, api.EvaluateRequest{Elements: b2}, "read-key-0123456789ab", &s)
	if e1.status != 200 || e2.status != 200 || bytes.Equal(e1.body, e2.body) {
		t.Errorf("evaluate with a reused key: %d / %d, same answer %v", e1.status, e2.status, bytes.Equal(e1.body, e2.body))
	}
	// Revoking twice succeeds twice (a client retry after a lost answer).
	for i := range 2 {
		if r := send("POST", api.PathRevoke, struct{}{}, "revoke-key-012345678"+string(rune('a'+i)), &s); r.status != 200 {
			t.Errorf("revoke #%d: %d %s", i+1, r.status, r.body)
		}
	}
	if r := send("POST", api.PathEvaluate, api.EvaluateRequest{Elements: b1}, "read-key-after-revoke", &s); r.status != 401 {
		t.Errorf("evaluate with a revoked key: %d", r.status)
	}

	// A key alone, without a valid signature, fetches nothing.
	req, _ := http.NewRequest("DELETE", e.srv.URL()+path, nil)
	req.Header.Set("Idempotency-Key", "delete-key-0123456789")
	if r := e.send(req); r.status != 401 {
		t.Errorf("stored answer served without authentication: %d", r.status)
	}
}
