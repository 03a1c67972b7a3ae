package directory

import "time"

// A TokenBucket is the shape of a token bucket that Store.Tokens keeps. The
// store keeps only each bucket's level; the caller passes the same shape
// for a key every time.
type TokenBucket struct {
	// Start is the level, in tokens, of a bucket never used before.
	Start float64
	// Capacity is the most tokens the bucket holds: refills and additions
	// stop there.
	Capacity float64
	// RefillPerSecond is how many tokens the bucket regains per second
	// since its last update; 0 for a bucket that only additions fill.
	RefillPerSecond float64
}

// A TokenLevel is what a store keeps of one bucket: how many tokens it held
// when it was last updated.
type TokenLevel struct {
	Tokens  float64
	Updated time.Time // stored to the millisecond
}

// New returns the level of a bucket of shape b first used at now.
func (b TokenBucket) New(now time.Time) TokenLevel {
	return TokenLevel{Tokens: b.Start, Updated: now}
}

// Add returns the level of a bucket of shape b that stood at l, after it
// is refilled up to now (capped at b.Capacity) and then delta tokens are
// added (negative to spend; the result is capped at b.Capacity too).
//
// A spend of more than the bucket holds is refused: Add returns
// ErrExhausted and the refilled level before the spend, and the store keeps
// l. Time counts in whole milliseconds, as the stores keep it, and a clock
// that goes back refills nothing and does not move Updated back.
func (b TokenBucket) Add(l TokenLevel, delta float64, now time.Time) (TokenLevel, error) {
	nowMS, updatedMS := now.UnixMilli(), l.Updated.UnixMilli()
	tokens := l.Tokens
	if elapsed := nowMS - updatedMS; elapsed > 0 {
		tokens += float64(elapsed) / 1000 * b.RefillPerSecond
	}
	tokens = min(tokens, b.Capacity)
	if tokens+delta < 0 {
		return TokenLevel{Tokens: tokens, Updated: l.Updated}, ErrExhausted
	}
	next := TokenLevel{Tokens: min(tokens+delta, b.Capacity), Updated: l.Updated}
	if nowMS > updatedMS {
		next.Updated = now
	}
	return next, nil
}
