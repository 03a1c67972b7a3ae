package directory_test

import (
	"bytes"
	"testing"
	"time"

	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
)

// TestEpochRetirementGrace: once the overlap ends the previous epoch takes
// no new evaluations and is no longer announced, but for the grace it still
// answers bucket fetches (a lookup that evaluated there just before ends
// there, rather than giving the server prefixes in a second epoch); then it
// answers 410 to everything.
func TestEpochRetirementGrace(t *testing.T) {
	e := newEnv(t, directory.Config{EpochGrace: 3 * time.Second})
	caller := e.issue(alice, time.Now(), time.Hour)
	start := time.Now()
	if _, err := directory.StartEpoch(t.Context(), e.srv.Node.Store, 1500*time.Millisecond, start); err != nil {
		t.Fatal(err)
	}
	_, blinded, _ := oprf.Blind([][]byte{[]byte(dave)})
	prev := 0
	evaluate := func(epoch *int) response {
		return e.do("POST", api.PathEvaluate, api.EvaluateRequest{Elements: blinded, Epoch: epoch}, &caller)
	}
	fetch := func(epoch *int) response {
		if r := evaluate(nil); r.status != 200 { // buys the fetch
			t.Fatalf("evaluate: %d %s", r.status, r.body)
		}
		return e.do("POST", api.PathBuckets, api.BucketsRequest{PrefixBits: 0, Prefixes: []uint32{0}, Epoch: epoch}, &caller)
	}
	time.Sleep(time.Until(start.Add(2 * time.Second))) // past the overlap, within the grace
	if r := evaluate(&prev); r.status != 410 {
		t.Errorf("evaluating in a retired epoch: %d %s, want 410", r.status, r.body)
	}
	if r := evaluate(nil); r.status != 200 || bytes.Contains(r.body, []byte(`"previous"`)) {
		t.Errorf("current evaluation during the grace: %d %s, want 200 without previous", r.status, r.body)
	}
	if r := fetch(&prev); r.status != 200 {
		t.Errorf("bucket fetch in the retiring epoch within the grace: %d %s, want 200", r.status, r.body)
	}
	time.Sleep(time.Until(start.Add(5 * time.Second))) // past the grace
	if r := fetch(&prev); r.status != 410 {
		t.Errorf("bucket fetch after the grace: %d %s, want 410", r.status, r.body)
	}
}
