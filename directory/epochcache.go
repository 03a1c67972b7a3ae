package directory

import (
	"context"
	"sync"
	"time"
)

// epochRefresh is how long a server keeps its view of the epochs.
const epochRefresh = 2 * time.Second

// epochCache holds the lookup epochs as last read from the store, so that
// requests need not read them each time. Safe for concurrent use.
type epochCache struct {
	store Store
	grace time.Duration // Config.EpochGrace
	now   func() time.Time
	// seen is called with the epochs when first read and whenever the
	// current epoch changes; its error fails the read.
	seen func(context.Context, Epochs) error

	mu    sync.Mutex
	state Epochs
	valid time.Time // state is fresh until then
}

// get returns the current epochs, re-read from the store at most every
// epochRefresh, and never later than a change of state (an overlap's end,
// or its grace's).
func (c *epochCache) get(ctx context.Context) (Epochs, error) {
	now := c.now()
	c.mu.Lock()
	e, valid := c.state, c.valid
	c.mu.Unlock()
	if now.Before(valid) {
		return e, nil
	}
	fresh, err := ReadEpochs(ctx, c.store, now)
	if err != nil {
		return e, err
	}
	if fresh.Current > 0 && fresh.Previous < 0 && now.Before(fresh.PreviousUntil.Add(c.grace)) {
		fresh.Previous, fresh.Retiring = fresh.Current-1, true
	}
	if fresh.Current != e.Current || valid.IsZero() {
		if err := c.seen(ctx, fresh); err != nil {
			return e, err
		}
	}
	until := now.Add(epochRefresh)
	for _, t := range []time.Time{fresh.PreviousUntil, fresh.PreviousUntil.Add(c.grace)} {
		if t.After(now) && t.Before(until) {
			until = t
		}
	}
	c.mu.Lock()
	c.state, c.valid = fresh, until
	c.mu.Unlock()
	return fresh, nil
}
