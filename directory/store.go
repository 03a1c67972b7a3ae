package directory

import (
	"context"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/translog"
)

// Store errors, shared with the CA's store. Implementations return these
// (possibly wrapped).
var (
	ErrNotFound  = ca.ErrNotFound
	ErrConflict  = ca.ErrConflict
	ErrExhausted = ca.ErrExhausted
)

// A Tombstone records that a retired holder's record was removed.
type Tombstone struct {
	Index    [32]byte
	RecordID [32]byte
	KeyHash  [32]byte // the retired holder
	Retired  time.Time
}

// A Record is one app's sealed record under an owner's index, with its ACL.
// It belongs to the holder that published it: records are keyed by (Index,
// Holder, RecordID), so two holders may each store a record of one app.
type Record struct {
	Epoch      int // the lookup epoch whose OPRF outputs made Index and the ACL's pseudonyms
	Index      [32]byte
	Holder     [32]byte // the publishing holder's key hash
	RecordID   [32]byte
	Ciphertext []byte
	ACL        acl.List
	Expires    time.Time
	Updated    time.Time
}

// A Candidate is a record in a fetched bucket, with the caller's membership
// in its allow and deny lists. The server core decides admission with
// acl.Decide; the store does the same work whether or not the caller is a
// member, so store work does not depend on the caller's access. It does
// depend on how many records a bucket holds, admitted or not: a record the
// caller may not see costs work that an absent one does not
// (docs/threat-model.md).
//
// The store also reports the publishing holder and whether it is served:
// Hidden is true if the holder is on notice (or, in a damaged database,
// missing). The core serves, of the records of one app under one index,
// only the served one whose holder's LastProof Wins.
type Candidate struct {
	Index      [32]byte
	RecordID   [32]byte
	Holder     [32]byte
	LastProof  time.Time // of Holder
	Hidden     bool
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
//
// The store keeps the transparency log too, and appends to it in the same
// transaction as each change it records: a "log index" below is the index
// of the appended entry. Whenever a holder's records or ACLs under an index
// change and StateLabel, given the label its holder row keeps, says the
// change is logged, the store appends a translog State entry, made with
// translog.StateEntry over that holder's records under the index at that
// moment, under that label and the holder's key.
type Store interface {
	// The directory's built-in CA keeps its verifications and limit
	// counters in the same store.
	ca.Store
	translog.Storage

	// Holders returns the holders of index, ordered by key hash, each with
	// the number of records it has under index. An index without holders
	// has none: no error.
	Holders(ctx context.Context, index [32]byte) ([]Holder, error)

	// ChangeHolders reads the holders of index (as Holders does), calls
	// decide with them, and writes the HolderChange it returns, in one
	// transaction; it returns the change written. Concurrent changes of one
	// index take effect as if one after another, each decided against the
	// holders the one before it left. If decide returns an error, nothing
	// changes and ChangeHolders returns it. at is the time of tombstones,
	// revocations and State entries.
	// Rows written are of epoch (the lookup epoch whose OPRF output made
	// index).
	ChangeHolders(ctx context.Context, epoch int, index [32]byte, decide func([]Holder) (HolderChange, error), at time.Time) (HolderChange, error)

	// OverdueHolders returns the indexes (each once, in order) with a
	// holder row of epoch whose notice ran out at or before now, at most
	// limit of them.
	OverdueHolders(ctx context.Context, epoch int, now time.Time, limit int) ([][32]byte, error)

	// Tombstones returns the tombstones of index, oldest first.
	Tombstones(ctx context.Context, index [32]byte) ([]Tombstone, error)

	// RevokeKey records that every credential for keyHash is revoked. It is
	// idempotent.
	RevokeKey(ctx context.Context, keyHash [32]byte, at time.Time) error

	// KeyRevoked reports whether keyHash has been revoked.
	KeyRevoked(ctx context.Context, keyHash [32]byte) (bool, error)

	// PutRecord inserts or replaces the record (r.Index, r.Holder,
	// r.RecordID) and replaces its ACL, in one transaction, and returns the
	// log index of the State entry of r.Holder's records made at r.Updated
	// (-1 if r.Holder's row has no label). It returns ErrNotFound if
	// r.Holder is not a holder of r.Index, and ErrExhausted if r is new and
	// r.Holder already has maxPerHolder records under r.Index; either
	// changes nothing.
	PutRecord(ctx context.Context, r Record, maxPerHolder int) (int64, error)

	// OwnerState returns what a State entry for holder's records under
	// index covers: those records (expired or not) with their ACLs, in any
	// order.
	OwnerState(ctx context.Context, index, holder [32]byte) ([]translog.StateRecord, error)

	// DeleteExpiredRecords removes every record (and its ACL) whose Expires
	// is not after now, logs the State of each holder's records it changed
	// (in index, then holder order), and returns how many records it
	// removed.
	DeleteExpiredRecords(ctx context.Context, now time.Time) (int, error)

	// SetACL replaces the ACL of holder's record recordID under index, or
	// returns ErrNotFound. It returns the log index of the State entry of
	// holder's records made at now.
	SetACL(ctx context.Context, index, holder, recordID [32]byte, l acl.List, now time.Time) (int64, error)

	// DeleteRecord removes holder's record recordID under index, with its
	// ACL, or returns ErrNotFound. It returns the log index of the State
	// entry of holder's records made at now.
	DeleteRecord(ctx context.Context, index, holder, recordID [32]byte, now time.Time) (int64, error)

	// Buckets returns, for each range, the unexpired records (Expires after
	// now) of epoch in it, ordered by index, record id, then holder, with
	// their holders' LastProof and Hidden, and caller's membership in each
	// record's allow and deny lists. Missing buckets are
	// empty, not errors. The result has one slice per range, in order.
	Buckets(ctx context.Context, epoch int, ranges []BucketRange, caller acl.Pseudonym, now time.Time) ([][]Candidate, error)

	// DeleteEpochsBefore removes every record (and its ACL) of an epoch
	// below epoch, as DeleteExpiredRecords does (logging the State of each
	// holder's records it changed), and returns how many it removed. It
	// removes the holder rows of those epochs too (without retiring
	// anyone): an old epoch's index is never used again.
	DeleteEpochsBefore(ctx context.Context, epoch int, now time.Time) (int, error)

	// CountOwners returns the number of distinct indexes with an unexpired
	// record: numbers, not holders.
	CountOwners(ctx context.Context, now time.Time) (int, error)

	// Tokens adds delta tokens (negative to spend) at now to the token
	// bucket key, of shape b, as b.Add computes from the bucket's stored
	// TokenLevel. A missing bucket is no error: it starts as b.New(now).
	// It stores and returns the new level; or, if the spend is more than
	// the bucket holds, it returns ErrExhausted with the level before the
	// spend and changes nothing (a new bucket stays missing). Concurrent
	// callers of one key take turns, so together they never spend more
	// than the bucket holds.
	Tokens(ctx context.Context, key [32]byte, b TokenBucket, delta float64, now time.Time) (float64, error)

	// Meta returns the value stored under key, or ErrNotFound.
	Meta(ctx context.Context, key string) ([]byte, error)

	// InitMeta stores value under key if the key is absent, and returns
	// ErrConflict if it is present with a different value.
	InitMeta(ctx context.Context, key string, value []byte) error

	// Ready returns nil if the store can be read and written now. It
	// commits a write that leaves nothing behind, so a database that still
	// answers reads but is full, read-only or a standby fails it too. It
	// fails for a store that is down or damaged. Errors that say why
	// classify as storeerr.ErrUnavailable or storeerr.ErrCorrupt. /readyz
	// calls it; it is safe for concurrent use.
	Ready(ctx context.Context) error

	// Close releases the store. Calls after Close fail.
	Close() error
}
