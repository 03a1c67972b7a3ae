// Package storeerr holds the errors every blindex store returns, so that
// packages on either side of a store (ca, directory, httpapi) share them
// without importing each other.
//
// It is also the one place where a store failure is classified: each engine
// registers, with Register, a function that recognises its driver's errors
// for a store that cannot serve now (down, read-only, out of space, busy past
// its timeout) or whose data is damaged. HTTP answers those with 503 and
// Retry-After rather than 500, and /readyz fails.
package storeerr

import (
	"errors"
	"sync"
)

var (
	ErrNotFound  = errors.New("store: not found")
	ErrConflict  = errors.New("store: conflicting row exists")
	ErrExhausted = errors.New("store: limit reached")
	// ErrUnavailable is a store that cannot answer now: a retry may succeed
	// once the operator has acted (or the database is back).
	ErrUnavailable = errors.New("store: unavailable")
	// ErrCorrupt is a store whose data is damaged. It is unavailable too:
	// a damaged row is never read as an answer (an authorization decision
	// made from it would be made from noise). The fix is a restore.
	ErrCorrupt = errors.New("store: data corrupt")
)

var (
	mu          sync.RWMutex
	classifiers []func(error) error
)

// Register adds classify, which returns ErrUnavailable or ErrCorrupt for an
// error of its engine's driver it recognises, and nil for others. Engines
// call it from init.
func Register(classify func(error) error) {
	mu.Lock()
	defer mu.Unlock()
	classifiers = append(classifiers, classify)
}

// Classify returns ErrCorrupt, ErrUnavailable or nil for err: nil for a
// store that answered (perhaps with ErrNotFound), and for failures that are
// not the store's state (bugs, bad input).
func Classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrCorrupt) {
		return ErrCorrupt
	}
	if errors.Is(err, ErrUnavailable) {
		return ErrUnavailable
	}
	mu.RLock()
	defer mu.RUnlock()
	for _, c := range classifiers {
		if k := c(err); k != nil {
			return k
		}
	}
	return nil
}

// Wrap returns err marked with its class, so that errors.Is(err,
// ErrUnavailable) or errors.Is(err, ErrCorrupt) holds, or err itself if it
// is not a store failure. The message stays err's.
func Wrap(err error) error {
	k := Classify(err)
	if k == nil || errors.Is(err, k) {
		return err
	}
	return &classified{err: err, kind: k}
}

type classified struct {
	err, kind error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.err, c.kind} }
