package directory_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/oprf"
)

// ceilingEnv is a server whose global ceiling holds one full batch, the
// least it may, and whose clock stands still, so that it never refills and
// a single batch charged to it shows; the callers' own budgets are far
// larger.
func ceilingEnv(t *testing.T) *env {
	e := newEnv(t, directory.Config{Budget: directory.Budget{Burst: 100 * oprf.MaxBatch, GlobalPerSecond: oprf.MaxBatch}})
	e.freeze()
	return e
}

// blindedBatch returns n valid blinded elements.
func blindedBatch(t *testing.T, n int) [][]byte {
	t.Helper()
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(fmt.Sprintf("+1415555%04d", i))
	}
	_, blinded, err := oprf.Blind(inputs)
	if err != nil {
		t.Fatal(err)
	}
	return blinded
}

// TestCeilingInvalidBatchIsFree checks that a batch refused for what it
// holds costs the shared ceiling nothing: a bad element anywhere in a full
// batch, an oversized or empty batch, and a replayed request. Before, a bad
// element gave the caller its budget back but left the full batch charged
// to the ceiling, so one credential could keep it empty for everyone.
func TestCeilingInvalidBatchIsFree(t *testing.T) {
	e := ceilingEnv(t)
	attacker := e.issue(alice, time.Now(), time.Hour)
	good := blindedBatch(t, oprf.MaxBatch)
	nonCanonical, _ := hex.DecodeString("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") // p, unreduced
	bad := []struct {
		name string
		elem []byte
	}{
		{"identity", make([]byte, 32)},
		{"31_bytes", good[0][:31]},
		{"33_bytes", append(slices.Clone(good[0]), 0)},
		{"non_canonical", nonCanonical},
	}
	for _, b := range bad {
		for _, at := range []int{0, oprf.MaxBatch - 1} {
			batch := slices.Clone(good)
			batch[at] = b.elem
			if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: batch}, &attacker); r.status != 400 || r.message() != "invalid element" {
				t.Errorf("%s at %d: %d %q, want 400 invalid element", b.name, at, r.status, r.message())
			}
		}
	}
	oversized := append(slices.Clone(good), good[0])
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: oversized}, &attacker); r.status != 400 {
		t.Errorf("oversized batch: %d %q, want 400", r.status, r.message())
	}
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: [][]byte{}}, &attacker); r.status != 400 {
		t.Errorf("empty batch: %d %q, want 400", r.status, r.message())
	}
	// A replay is refused before anything is charged; here the request
	// replayed is a bad full batch, answered 400 the first time.
	batch := slices.Clone(good)
	batch[0] = make([]byte, 32)
	body, _ := json.Marshal(api.EvaluateRequest{Elements: batch})
	req, _ := http.NewRequest("POST", e.srv.URL()+api.PathEvaluate, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := httpsig.Sign(req, body, attacker.key, attacker.cert, time.Now()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{400, 401, 401} {
		again := req.Clone(t.Context())
		again.Body = io.NopCloser(bytes.NewReader(body))
		if r := e.send(again); r.status != want {
			t.Errorf("send %d of one signed request: %d %q, want %d", i+1, r.status, r.message(), want)
		}
	}
	// All that left the ceiling full: another caller evaluates a full
	// batch, and that one is charged.
	victim := e.issue(carol, time.Now(), time.Hour)
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: good}, &victim); r.status != 200 {
		t.Errorf("a full batch after refused ones: %d %q, want 200", r.status, r.message())
	}
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: good[:1]}, &victim); r.status != 429 {
		t.Errorf("one more element past the ceiling: %d %q, want 429", r.status, r.message())
	}
}

// TestCeilingDrain plays the drain: one credential sends bad full batches
// between another caller's small lookups, none of which may be told that the
// server is busy. Evaluated batches still count: once they fill the ceiling,
// the next is refused.
func TestCeilingDrain(t *testing.T) {
	e := ceilingEnv(t)
	attacker, victim := e.issue(alice, time.Now(), time.Hour), e.issue(carol, time.Now(), time.Hour)
	bad := blindedBatch(t, oprf.MaxBatch)
	bad[len(bad)-1] = make([]byte, 32) // the identity, last: the whole batch is decoded first
	small := blindedBatch(t, 100)
	for i := range 10 { // 1,000 evaluations, within the ceiling's 1,024
		// A full batch while the ceiling has room for one, then as large as
		// the victim's, so that the ceiling always admits it.
		batch := bad
		if i > 0 {
			batch = bad[len(bad)-len(small):]
		}
		if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: batch}, &attacker); r.status != 400 {
			t.Fatalf("attacker's batch %d: %d %q, want 400", i, r.status, r.message())
		}
		if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: small}, &victim); r.status != 200 {
			t.Fatalf("victim's batch %d after the attacker's: %d %q, want 200", i, r.status, r.message())
		}
	}
	// What was evaluated did count: 24 more fill the ceiling, and the
	// next element is refused.
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: small[:24]}, &victim); r.status != 200 {
		t.Fatalf("the ceiling's last 24: %d %q, want 200", r.status, r.message())
	}
	if r := e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: small[:1]}, &victim); r.status != 429 || r.message() != "server busy: retry shortly" || r.header.Get("Retry-After") == "" {
		t.Errorf("past the ceiling: %d %q (Retry-After %q), want 429 server busy", r.status, r.message(), r.header.Get("Retry-After"))
	}
}
