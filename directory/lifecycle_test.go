package directory_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/api"
)

func clientError(err error) *client.Error {
	var e *client.Error
	errors.As(err, &e)
	return e
}

func TestRenewAndRevoke(t *testing.T) {
	e := newEnv(t, directory.Config{})
	b := e.register(bob)
	c := e.register(carol)
	if err := b.Publish(t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
		t.Fatal(err)
	}
	before, _ := b.Credential()
	e.skew.Store(int64(time.Hour))
	if err := b.Renew(t.Context()); err != nil {
		t.Fatalf("renew: %v", err)
	}
	after, _ := b.Credential()
	if !after.NotAfter.After(before.NotAfter) || after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Errorf("renewal did not issue a fresher credential: %v -> %v", before.NotAfter, after.NotAfter)
	}
	if e.phones.code(bob) == "" {
		t.Fatal("test broken: no code was ever sent")
	}
	// The renewed credential keeps the holding: records stay.
	if got := apps(t, c, bob); !slices.Equal(got, []string{"org.example.chat"}) {
		t.Errorf("after bob renewed, carol sees %v", got)
	}
	// An expired credential cannot renew.
	e.skew.Store(int64(40 * 24 * time.Hour))
	if err := c.Renew(t.Context()); clientError(err) == nil || clientError(err).Status != 401 || !strings.Contains(err.Error(), "expired") {
		t.Errorf("renewing an expired credential: %v", err)
	}
	e.skew.Store(int64(time.Hour))

	if err := b.Revoke(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err := b.Lookup(t.Context(), carol)
	if ce := clientError(err); ce == nil || ce.Status != 401 || !strings.Contains(ce.Message, "revoked") {
		t.Errorf("request with a revoked credential: %v", err)
	}
	// The built-in CA asks its directory, so it refuses to renew the key.
	if err := b.Renew(t.Context()); clientError(err) == nil || clientError(err).Status != 401 || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("renewing a revoked key: %v, want 401 revoked", err)
	}
	if _, err := b.Lookup(t.Context(), carol); clientError(err) == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("a renewal does not resurrect a revoked key: %v", err)
	}
}

func TestVerificationLimits(t *testing.T) {
	e := newEnv(t, directory.Config{})
	e.alignClock()
	start := func(n string) response {
		return e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: n}, nil)
	}
	// Per number per hour (default 5): every start counts, even after the
	// earlier verification ended; the 6th within the hour is refused with
	// Retry-After.
	for i := range 5 {
		if i == 3 {
			e.skew.Add(int64(11 * time.Minute)) // the first verification (3 sends) expires
		}
		if r := start(bob); r.status != 200 {
			t.Fatalf("start %d: %d %s", i+1, r.status, r.body)
		}
	}
	r := start(bob)
	if r.status != 429 || r.header.Get("Retry-After") == "" || !strings.Contains(r.message(), "too many verification requests") {
		t.Errorf("6th start in an hour: %d %q Retry-After %q", r.status, r.message(), r.header.Get("Retry-After"))
	}
}

func TestLimitsAreConfigurable(t *testing.T) {
	e := newEnvCA(t, ca.Limits{NetworkPerHour: 2, GlobalPerDay: 1000})
	e.alignClock()
	for i, n := range []string{bob, carol} {
		if r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: n}, nil); r.status != 200 {
			t.Fatalf("start %d: %d", i, r.status)
		}
	}
	if r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: alice}, nil); r.status != 429 {
		t.Errorf("3rd start from one network with NetworkPerHour 2: %d", r.status)
	}

	g := newEnvCA(t, ca.Limits{GlobalPerDay: 1, NetworkPerHour: 100})
	g.alignClock()
	g.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: bob}, nil)
	if r := g.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: carol}, nil); r.status != 429 {
		t.Errorf("start beyond the daily cap: %d", r.status)
	}
}

// Codes checked are limited per number per hour, across verifications,
// and the refusal ends with the hour: wrong guesses, anyone's, never lock
// a number out for longer.
func TestFailureLimit(t *testing.T) {
	e := newEnvCA(t, ca.Limits{FailuresPerNumber: 6, NetworkPerHour: 100})
	e.alignClock()
	pub := publicKeyDER(t)
	var last response
	for range 2 {
		r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: bob}, nil)
		var s api.VerifyStartResponse
		mustJSON(t, r.body, &s)
		for range 4 {
			last = e.do("POST", api.PathVerifyConfirm, api.VerifyConfirmRequest{VerificationID: s.VerificationID,
				Number: bob, Code: "not-a-code", PublicKey: pub}, nil)
		}
	}
	if last.status != 429 || !strings.Contains(last.message(), "failed confirmations") {
		t.Errorf("7th failure for the number: %d %q", last.status, last.message())
	}
	if s, err := strconv.Atoi(last.header.Get("Retry-After")); err != nil || s <= 0 || s > 3600 {
		t.Errorf("Retry-After %q after too many failures, want at most an hour", last.header.Get("Retry-After"))
	}
	e.skew.Add(int64(10 * time.Minute))
	if r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: bob}, nil); r.status != 429 {
		t.Errorf("start after too many failures: %d", r.status)
	}
	if r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: carol}, nil); r.status != 200 {
		t.Errorf("another number is not affected: %d", r.status)
	}
	e.skew.Add(int64(time.Hour))
	if r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: bob}, nil); r.status != 200 {
		t.Errorf("start in the next hour: %d %q", r.status, r.message())
	}

	// A stranger's failures on its own verification, naming Alice's number,
	// are charged to the stranger's number, not Alice's.
	for range 2 {
		r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: dave}, nil)
		var s api.VerifyStartResponse
		mustJSON(t, r.body, &s)
		for range 4 {
			e.do("POST", api.PathVerifyConfirm, api.VerifyConfirmRequest{VerificationID: s.VerificationID,
				Number: alice, Code: "000000", PublicKey: pub}, nil)
		}
		e.skew.Add(int64(11 * time.Minute))
	}
	if r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: alice}, nil); r.status != 200 {
		t.Errorf("alice locked out by failures on someone else's verification: %d %q", r.status, r.message())
	}
}

// Starting verification answers the same for a registered number as for a
// new one: the same status and the same fields.
func TestStartDoesNotRevealRegistration(t *testing.T) {
	e := newEnv(t, directory.Config{})
	b := e.register(bob)
	if err := b.Publish(t.Context(), rec("org.example.chat"), client.Access{Visibility: acl.Public}); err != nil {
		t.Fatal(err)
	}
	shape := func(n string) string {
		r := e.do("POST", api.PathVerifyStart, api.VerifyStartRequest{Number: n}, nil)
		var m map[string]any
		mustJSON(t, r.body, &m)
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return strings.Join(append(keys, r.header.Get("Content-Type")), ",") + " " + r.header.Get("Retry-After") + string(rune('0'+r.status/100))
	}
	if a, b := shape(bob), shape(dave); a != b {
		t.Errorf("start for a registered number %q differs from a new one %q", a, b)
	}
}
