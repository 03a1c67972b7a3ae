package privacyharness

import "testing"

// TestInvariants runs the harness against the default server: the embedded
// SQLite store with the built-in CA.
func TestInvariants(t *testing.T) {
	res := Run(t, Options{})
	if len(res.Transcript) == 0 || len(res.Metrics) == 0 {
		t.Error("nothing was scanned")
	}
}
