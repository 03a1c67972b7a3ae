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

// A Holder is the credential key that currently holds a number's index.
type Holder struct {
	KeyHash   [32]byte  // SHA-256 of the credential's SubjectPublicKeyInfo
	NotBefore time.Time // of the newest credential seen for this key
	Label     [32]byte  // the number's log label (translog)
}

// A Tombstone records that a retired holder's record was removed.
type Tombstone struct {
	Index    [32]byte
	RecordID [32]byte
	KeyHash  [32]byte // the retired holder
	Retired  time.Time
}

// A Record is one app's sealed record under an owner's index, with its ACL.
type Record struct {
	Epoch      int // the lookup epoch whose OPRF outputs made Index and the ACL's pseudonyms
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
// member, so store work does not depend on the caller's access. It does
// depend on how many records a bucket holds, admitted or not: a record the
// caller may not see costs work that an absent one does not
// (docs/threat-model.md).
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
//
// The store keeps the transparency log too, and appends to it in the same
// transaction as each change it records: a "log index" below is the index
// of the appended entry. Whenever an index's records or ACLs change and
// StateLabel, given the label its holder row keeps, says the change is
// logged, the store appends a translog State entry, made with
// translog.StateEntry over the index's records at that moment, under that
// label.
type Store interface {
	// The directory's built-in CA keeps its verifications and limit
	// counters in the same store.
	ca.Store
	translog.Storage

	// Holder returns the current holder of index, or ErrNotFound.
	Holder(ctx context.Context, index [32]byte) (Holder, error)

	// ClaimHolder makes h the holder of index as DecideClaim decides, in
	// one transaction that reads the current holder, decides, and writes
	// only if the holder read is still the one stored:
	//   - ClaimFirst: h becomes the holder;
	//   - ClaimRenew: the holder takes the Claim's Holder (NotBefore never
	//     moves back; the label is h's);
	//   - ClaimRetire: each of index's records is deleted with its ACL and
	//     a Tombstone (retired at) is written for it, the retired key is
	//     revoked (as by RevokeKey), and h becomes the holder.
	// It returns the number of records retired (0 unless ClaimRetire). If
	// DecideClaim refuses, it returns ErrConflict and changes nothing.
	// Whenever the holder's key changes (ClaimFirst, ClaimRetire) it
	// appends the Claim's HolderEntry, and after a retirement the State
	// entry of the emptied index. Concurrent claims of one index take
	// effect as if one after another, each decided against the holder the
	// one before it left.
	ClaimHolder(ctx context.Context, index [32]byte, h Holder, at time.Time) (int, error)

	// Tombstones returns the tombstones of index, oldest first.
	Tombstones(ctx context.Context, index [32]byte) ([]Tombstone, error)

	// RevokeKey records that every credential for keyHash is revoked. It is
	// idempotent.
	RevokeKey(ctx context.Context, keyHash [32]byte, at time.Time) error

	// KeyRevoked reports whether keyHash has been revoked.
	KeyRevoked(ctx context.Context, keyHash [32]byte) (bool, error)

	// PutRecord inserts or replaces the record (r.Index, r.RecordID) and
	// replaces its ACL, in one transaction, and returns the log index of
	// the State entry made at r.Updated (-1 if the index has no holder). It
	// returns ErrExhausted, and changes nothing, if r is new and its index
	// already has maxPerIndex records.
	PutRecord(ctx context.Context, r Record, maxPerIndex int) (int64, error)

	// OwnerState returns what a State entry for index covers: its records
	// (expired or not) with their ACLs, in any order.
	OwnerState(ctx context.Context, index [32]byte) ([]translog.StateRecord, error)

	// DeleteExpiredRecords removes every record (and its ACL) whose Expires
	// is not after now, logs the State of each index it changed (in index
	// order), and returns how many records it removed.
	DeleteExpiredRecords(ctx context.Context, now time.Time) (int, error)

	// SetACL replaces the ACL of an existing record, or returns ErrNotFound.
	// It returns the log index of the State entry made at now.
	SetACL(ctx context.Context, index, recordID [32]byte, l acl.List, now time.Time) (int64, error)

	// DeleteRecord removes a record and its ACL, or returns ErrNotFound. It
	// returns the log index of the State entry made at now.
	DeleteRecord(ctx context.Context, index, recordID [32]byte, now time.Time) (int64, error)

	// Buckets returns, for each range, the unexpired records (Expires after
	// now) of epoch in it, ordered by index then record id, with caller's
	// membership in each record's allow and deny lists. Missing buckets are
	// empty, not errors. The result has one slice per range, in order.
	Buckets(ctx context.Context, epoch int, ranges []BucketRange, caller acl.Pseudonym, now time.Time) ([][]Candidate, error)

	// DeleteEpochsBefore removes every record (and its ACL) of an epoch
	// below epoch, as DeleteExpiredRecords does (logging the State of each
	// index it changed, in index order), and returns how many it removed.
	DeleteEpochsBefore(ctx context.Context, epoch int, now time.Time) (int, error)

	// CountOwners returns the number of distinct indexes with an unexpired
	// record.
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
