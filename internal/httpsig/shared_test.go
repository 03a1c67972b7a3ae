package httpsig

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// sharedState stands in for a store's durable nonce records.
type sharedState struct {
	mu    sync.Mutex
	keys  map[[32]byte]time.Time
	calls int
	err   error // returned instead of recording, if set
}

func (s *sharedState) record(_ context.Context, key [32]byte, forgetAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return s.err
	}
	if _, ok := s.keys[key]; ok {
		return ErrReplay
	}
	s.keys[key] = forgetAt
	return nil
}

func newShared(window time.Duration, s *sharedState) *Verifier {
	v := NewVerifier(window)
	v.Shared = s.record
	return v
}

// TestReplaySharedState checks that a request accepted by one verifier is
// refused by another on the same shared state (another process, or this
// one restarted with an empty memory), that the memory answers a replay to
// the same verifier without asking the state, and that the state's
// failure fails the request.
func TestReplaySharedState(t *testing.T) {
	key, cert, keyOf := setup(t)
	now := time.Unix(1_800_000_000, 0)
	state := &sharedState{keys: map[[32]byte]time.Time{}}
	first := newShared(time.Minute, state)
	body := `{"elements":[]}`
	r := signed(t, key, cert, "POST", "http://blindex.test/v1/evaluate", body, now)
	if _, err := first.Verify(r, []byte(body), now, keyOf); err != nil {
		t.Fatal(err)
	}
	if state.calls != 1 || len(state.keys) != 1 {
		t.Fatalf("accepted with %d calls, %d keys recorded", state.calls, len(state.keys))
	}
	for _, forget := range state.keys {
		if !forget.Equal(now.Add(time.Minute)) {
			t.Errorf("recorded until %v, want the timestamp plus the window", forget)
		}
	}
	if _, err := first.Verify(r, []byte(body), now, keyOf); !errors.Is(err, ErrReplay) {
		t.Errorf("replay to the same verifier: %v, want ErrReplay", err)
	}
	if state.calls != 1 {
		t.Errorf("a replay to the same verifier asked the shared state (%d calls)", state.calls)
	}
	restarted := newShared(time.Minute, state)
	if _, err := restarted.Verify(r, []byte(body), now.Add(time.Second), keyOf); !errors.Is(err, ErrReplay) {
		t.Errorf("replay after a restart: %v, want ErrReplay", err)
	}
	// A fresh request still passes the restarted verifier.
	r2 := signed(t, key, cert, "POST", "http://blindex.test/v1/evaluate", body, now)
	if _, err := restarted.Verify(r2, []byte(body), now, keyOf); err != nil {
		t.Errorf("fresh request after a restart: %v", err)
	}
	// Without the shared state, a restart forgets: what Shared is for.
	if _, err := NewVerifier(time.Minute).Verify(r, []byte(body), now, keyOf); err != nil {
		t.Errorf("memory-only verifier: %v (the test above would prove nothing)", err)
	}

	errDown := errors.New("store down")
	state.err = errDown
	r3 := signed(t, key, cert, "POST", "http://blindex.test/v1/evaluate", body, now)
	if _, err := first.Verify(r3, []byte(body), now, keyOf); !errors.Is(err, errDown) {
		t.Errorf("shared state failing: %v, want its error", err)
	}
	// A request the state could not record is not let through on a retry
	// of the same nonce either.
	state.err = nil
	if _, err := first.Verify(r3, []byte(body), now, keyOf); !errors.Is(err, ErrReplay) {
		t.Errorf("the same nonce again: %v, want ErrReplay", err)
	}
}
