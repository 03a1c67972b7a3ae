package ca

import (
	"context"
	"time"

	"blindex.dev/blindex/internal/httpapi"
	"blindex.dev/blindex/internal/storeerr"
)

// Store errors. Implementations return these (possibly wrapped).
var (
	ErrNotFound  = storeerr.ErrNotFound
	ErrConflict  = storeerr.ErrConflict
	ErrExhausted = storeerr.ErrExhausted
)

// A Verification is one pending SMS verification: one start, one code, its
// own attempts. A number may have several at once (each start is its own),
// so nobody who starts one can void or use up another's code. It never
// holds the number: NumberTag is an HMAC of the number under a CA secret,
// so a pending row on disk (or in a WAL frame) reveals no plaintext number.
type Verification struct {
	ID        [16]byte // random: the verification_id, which only its starter learns
	NumberTag [32]byte
	// CodeMAC is an HMAC of the ID, the number tag and the code under a key
	// derived from the CA key, which the store does not hold: with only 10^6
	// codes, an unkeyed hash would give the code to anyone who reads the row.
	CodeMAC  []byte
	Created  time.Time
	Expires  time.Time
	Attempts int // confirmations tried
}

// An Outcome is a stored answer to an idempotent request.
type Outcome = httpapi.Outcome

// Store is the CA's persistent state. All methods are safe for concurrent
// use. A method that returns nil has made its change durable: it survives a
// crash of the process and of the machine.
type Store interface {
	// CreateVerification inserts v. It returns ErrConflict if a
	// verification with the same ID exists; several may share a NumberTag.
	CreateVerification(ctx context.Context, v Verification) error

	// Verification returns verification id, expired or not, or ErrNotFound.
	Verification(ctx context.Context, id [16]byte) (Verification, error)

	// ClaimAttempt atomically increments the attempt count of verification id
	// if it is below maxAttempts, and returns the row as updated. It returns
	// ErrNotFound if id does not exist and ErrExhausted if the count is
	// already maxAttempts. Concurrent callers never together exceed
	// maxAttempts.
	ClaimAttempt(ctx context.Context, id [16]byte, maxAttempts int) (Verification, error)

	// DeleteVerification removes verification id. It returns ErrNotFound if
	// it does not exist, so exactly one of several concurrent callers
	// succeeds: that caller owns the verification's outcome.
	DeleteVerification(ctx context.Context, id [16]byte) error

	// FinishVerification removes verification id, as DeleteVerification,
	// and in the same transaction appends entry (if not nil) to the
	// transparency log (translog.Storage), so a credential is never issued
	// unlogged. It returns the entry's log index, or -1 for a nil entry.
	FinishVerification(ctx context.Context, id [16]byte, entry []byte) (int64, error)

	// DeleteExpiredVerifications removes every verification whose Expires is
	// not after now, and returns how many it removed.
	DeleteExpiredVerifications(ctx context.Context, now time.Time) (int, error)

	// Count increments the counter (key, window) if it is below limit and
	// returns the new value; a new counter starts at 1 and is kept until
	// expires. It returns ErrExhausted, and changes nothing, if the counter
	// is at limit. Concurrent callers never together exceed limit.
	Count(ctx context.Context, key [32]byte, window, expires time.Time, limit int) (int, error)

	// Counted returns the value of counter (key, window), 0 if absent.
	Counted(ctx context.Context, key [32]byte, window time.Time) (int, error)

	// DeleteExpiredCounters removes counters whose expiry is not after now.
	DeleteExpiredCounters(ctx context.Context, now time.Time) (int, error)

	// SaveOutcome stores the outcome of a request made with an idempotency
	// key, under a lookup key derived from it, until expires. It returns
	// ErrConflict if an outcome is already stored under key.
	SaveOutcome(ctx context.Context, key [32]byte, o Outcome, expires time.Time) error

	// Outcome returns the unexpired outcome stored under key, or
	// ErrNotFound.
	Outcome(ctx context.Context, key [32]byte, now time.Time) (Outcome, error)

	// DeleteExpiredOutcomes removes outcomes whose expiry is not after now.
	DeleteExpiredOutcomes(ctx context.Context, now time.Time) (int, error)

	// Checkpoint makes past deletions physical where the store can: after
	// it returns, deleted rows are gone from every file the store manages
	// (for SQLite, the WAL is checkpointed and truncated).
	Checkpoint(ctx context.Context) error
}
