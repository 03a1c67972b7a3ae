package directory

import (
	"context"
	"errors"
	"time"

	"blindex.dev/blindex/acl"
)

// Store errors. Implementations return these (possibly wrapped).
var (
	ErrNotFound  = errors.New("directory: not found")
	ErrConflict  = errors.New("directory: conflicting row exists")
	ErrExhausted = errors.New("directory: limit reached")
)

// A Verification is a pending SMS verification. It never holds the number:
// NumberTag is a key derived from the number's OPRF output, so a pending row
// on disk (or in a WAL frame) reveals no plaintext number.
type Verification struct {
	ID        [16]byte
	NumberTag [32]byte
	CodeSalt  []byte
	CodeHash  []byte // SHA-256(salt || code)
	Created   time.Time
	Expires   time.Time
	Attempts  int // confirmations tried
	Sends     int // codes sent
}

// A Record is one app's sealed record under an owner's index, with its ACL.
type Record struct {
	Index      [32]byte
	RecordID   [32]byte
	Ciphertext []byte
	ACL        acl.List
	Expires    time.Time
	Updated    time.Time
}

// A Candidate is a record in a fetched bucket, with the caller's membership
// in its allow and deny lists. The server core decides admission with
// acl.Decide; the store does the same work whether or not the caller is a
// member, so store work does not depend on the caller's access.
type Candidate struct {
	Index      [32]byte
	RecordID   [32]byte
	Ciphertext []byte
	Visibility acl.Visibility
	Allowed    bool
	Denied     bool
}

// A BucketRange selects records whose bucket (the first 32 bits of the index,
// big-endian) lies in [Lo, Hi].
type BucketRange struct{ Lo, Hi uint32 }

// Store is the directory's persistent state. All methods are safe for
// concurrent use. A method that returns nil has made its change durable: it
// survives a crash of the process and of the machine.
type Store interface {
	// CreateVerification inserts v. It returns ErrConflict if a
	// verification with the same NumberTag (or ID) exists.
	CreateVerification(ctx context.Context, v Verification) error

	// VerificationByTag returns the pending verification for a number tag,
	// or ErrNotFound.
	VerificationByTag(ctx context.Context, tag [32]byte) (Verification, error)

	// ResendVerification replaces the code of verification id and increments
	// its send count, if that count is below maxSends. It returns ErrNotFound
	// if id does not exist and ErrExhausted if the count is at maxSends.
	ResendVerification(ctx context.Context, id [16]byte, salt, hash []byte, maxSends int) error

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

	// DeleteExpiredVerifications removes every verification whose Expires is
	// not after now, and returns how many it removed.
	DeleteExpiredVerifications(ctx context.Context, now time.Time) (int, error)

	// PutRecord inserts or replaces the record (r.Index, r.RecordID) and
	// replaces its ACL, in one transaction. It returns ErrExhausted, and
	// changes nothing, if r is new and its index already has maxPerIndex
	// records.
	PutRecord(ctx context.Context, r Record, maxPerIndex int) error

	// DeleteExpiredRecords removes every record (and its ACL) whose Expires
	// is not after now, and returns how many it removed.
	DeleteExpiredRecords(ctx context.Context, now time.Time) (int, error)

	// SetACL replaces the ACL of an existing record, or returns ErrNotFound.
	SetACL(ctx context.Context, index, recordID [32]byte, l acl.List, now time.Time) error

	// DeleteRecord removes a record and its ACL, or returns ErrNotFound.
	DeleteRecord(ctx context.Context, index, recordID [32]byte) error

	// Buckets returns, for each range, the unexpired records (Expires after
	// now) in it, ordered by index then record id, with caller's membership
	// in each record's allow and deny lists. Missing buckets are empty, not
	// errors. The result has one slice per range, in order.
	Buckets(ctx context.Context, ranges []BucketRange, caller acl.Pseudonym, now time.Time) ([][]Candidate, error)

	// CountOwners returns the number of distinct indexes with an unexpired
	// record.
	CountOwners(ctx context.Context, now time.Time) (int, error)

	// Checkpoint makes past deletions physical where the store can: after
	// it returns, deleted rows are gone from every file the store manages
	// (for SQLite, the WAL is checkpointed and truncated). The server calls
	// it after each housekeeping sweep.
	Checkpoint(ctx context.Context) error

	// Meta returns the value stored under key, or ErrNotFound.
	Meta(ctx context.Context, key string) ([]byte, error)

	// InitMeta stores value under key if the key is absent, and returns
	// ErrConflict if it is present with a different value.
	InitMeta(ctx context.Context, key string, value []byte) error

	// Close releases the store. Calls after Close fail.
	Close() error
}
