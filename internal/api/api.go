// Package api holds the JSON bodies of the blindex HTTP API, shared by the
// server (directory) and the client, and the binary encoding of the bucket
// answer (MediaTypeBuckets). docs/protocol.md and docs/api.yaml describe the
// same shapes. Byte strings in JSON are base64 (standard, padded).
package api

import (
	"strconv"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/translog"
)

// Paths.
const (
	PathConfig        = "/v1/config"
	PathVerifyStart   = "/v1/verify/start"
	PathVerifyConfirm = "/v1/verify/confirm"
	PathRenew         = "/v1/credentials/renew"  // signed by the current credential
	PathRevoke        = "/v1/credentials/revoke" // signed by the credential to revoke
	PathCARoot        = "/v1/ca"
	PathEvaluate      = "/v1/evaluate"
	PathBuckets       = "/v1/buckets"
	PathRecords       = "/v1/records"     // PUT publishes a record
	PathRecordACL     = "/v1/records/acl" // PUT replaces a record's ACL
	PathRecord        = "/v1/records/{record_id}"
	PathLogLabel      = "/v1/log/label"     // POST: evaluate the caller's own number under the log-label info
	PathLogState      = "/v1/log/state"     // POST: the State entry of the caller's records as stored now
	PathLogPromise    = "/v1/log/promise"   // POST: log the caller's credential and promise it, with the proved log label
	PathHolders       = "/v1/holders"       // POST: the holders of the caller's number
	PathHoldersEvict  = "/v1/holders/evict" // POST: retire another holder at once (needs a fresh proof)
	PathLog           = "/log"              // the transparency log: /log/checkpoint, /log/tile/..., /log/consistency
)

// Config is the answer to GET /v1/config.
type Config struct {
	Suite        string   `json:"suite"`          // "ristretto255-SHA512"
	Mode         string   `json:"mode"`           // "POPRF"
	PublicKey    []byte   `json:"public_key"`     // RFC 9497 SerializeElement
	Info         string   `json:"info"`           // POPRF info for lookups
	PrefixBits   int      `json:"prefix_bits"`    // bucket.PrefixBits(bucket_count), for clients that fetch by prefix
	BucketCount  uint64   `json:"bucket_count"`   // current number of buckets (internal/bucket)
	MaxBatch     int      `json:"max_batch"`      // elements per evaluate, prefixes per bucket fetch
	CARoots      [][]byte `json:"ca_roots"`       // DER certificates the directory trusts
	RecordMaxTTL int64    `json:"record_max_ttl"` // seconds
	Epoch        int      `json:"epoch"`          // the current lookup epoch; Info is epoch 0's info
	Epochs       []Epoch  `json:"epochs"`         // the epochs answered: the current one, and the previous one during an overlap
	LogKey       string   `json:"log_key"`        // the log's note verifier key; its name is the log origin
	LogLabelInfo string   `json:"log_label_info"` // POPRF info for log labels
	Build        string   `json:"build"`          // the server's version and build (buildinfo.Info.String), for bug reports; clients do not act on it
}

// An Epoch is a lookup epoch the directory answers. Its info is
// Info + " epoch N" for N > 0; clients derive it themselves.
type Epoch struct {
	Epoch int        `json:"epoch"`
	Info  string     `json:"info"`
	Until *time.Time `json:"until,omitempty"` // when it retires; absent for the current epoch
}

// LogLabelInfo is the POPRF info under which log labels are evaluated: a
// protocol constant, which clients check rather than take from a server.
const LogLabelInfo = "blindex log label v1"

// EpochInfo is the POPRF info of lookup epoch n: the base info (Config.Info)
// itself for epoch 0. Clients derive it themselves from the epoch number,
// so a server cannot hand a caller an info of its own choosing (which could
// single it out).
func EpochInfo(base string, n int) string {
	if n == 0 {
		return base
	}
	return base + " epoch " + strconv.Itoa(n)
}

// StateResponse answers PathLogState: the State entry the directory would
// log for the caller now, computed from its database.
type StateResponse struct {
	Entry []byte `json:"entry"`
	Epoch int    `json:"epoch"` // the epoch whose index the entry covers
}

// A HolderInfo is one holder of a number, as HoldersResponse lists it.
// Times are whole seconds; NoticeUntil is set only for a holder on notice.
type HolderInfo struct {
	KeyHash     []byte     `json:"key_hash"` // SHA-256 of the key's SubjectPublicKeyInfo
	FirstProof  time.Time  `json:"first_proof"`
	LastProof   time.Time  `json:"last_proof"`
	NoticeUntil *time.Time `json:"notice_until,omitempty"`
	Records     int        `json:"records"`
	You         bool       `json:"you,omitempty"` // the caller's own key
}

// HoldersResponse answers PathHolders: the holders of the caller's number
// under the current epoch's index, ordered by key hash.
type HoldersResponse struct {
	Epoch   int          `json:"epoch"`
	Holders []HolderInfo `json:"holders"`
}

// EvictRequest asks PathHoldersEvict to retire the holder KeyHash now.
type EvictRequest struct {
	KeyHash []byte `json:"key_hash"`
}

// EvictResponse answers PathHoldersEvict: how many records the evicted
// holder lost. Its Holder entry (evict) is in the log.
type EvictResponse struct {
	Retired int `json:"retired"`
}

// WriteResponse answers a publish, ACL change or delete: the proof that the
// owner's new State entry is in the transparency log.
type WriteResponse struct {
	Log *translog.Proof `json:"log,omitempty"`
}

type VerifyStartRequest struct {
	Number string `json:"number"` // E.164
}

type VerifyStartResponse struct {
	VerificationID string    `json:"verification_id"`
	Expires        time.Time `json:"expires"`
}

type VerifyConfirmRequest struct {
	VerificationID string `json:"verification_id"`
	Number         string `json:"number"` // E.164, the same as at start: the server keeps no copy
	Code           string `json:"code"`
	PublicKey      []byte `json:"public_key"` // PKIX DER, ECDSA P-256
}

type VerifyConfirmResponse struct {
	Certificate []byte          `json:"certificate"`   // leaf DER
	Chain       [][]byte        `json:"chain"`         // issuer chain, root last
	Log         *translog.Proof `json:"log,omitempty"` // the Credential entry's inclusion, from a CA that logs
	Attestation []byte          `json:"attestation"`   // the credential in compact form, signed by the CA (credential.Attestation)
}

// PromiseResponse answers PathLogPromise: what a publisher puts in its
// records' proofs (record.Proof) besides its attestation and signature.
type PromiseResponse struct {
	LabelElement     []byte `json:"label_element"`     // the POPRF evaluation of the caller's number's hash-to-group element under LogLabelInfo
	LabelProof       []byte `json:"label_proof"`       // its DLEQ proof
	PromiseTime      int64  `json:"promise_time"`      // Unix seconds
	PromiseSignature []byte `json:"promise_signature"` // the log key's signature of the promise for the credential's entry
}

// CARoot is the answer to GET /v1/ca: the CA's root certificate.
type CARoot struct {
	Certificate []byte `json:"certificate"` // DER
}

type EvaluateRequest struct {
	Elements [][]byte `json:"elements"`        // blinded elements
	Epoch    *int     `json:"epoch,omitempty"` // default: the current epoch
}

type EvaluateResponse struct {
	Evaluated   [][]byte `json:"evaluated"`
	Proof       []byte   `json:"proof"`
	PrefixBits  int      `json:"prefix_bits"`  // bucket.PrefixBits(bucket_count)
	BucketCount uint64   `json:"bucket_count"` // the directory's number of buckets
	// The owner count bucket_count is derived from, signed by the log key
	// (translog.OwnerCount): a caller bounds the prefix by it. Absent from
	// a directory without a log.
	Owners          *int64 `json:"owners,omitempty"`
	OwnersTime      int64  `json:"owners_time,omitempty"`
	OwnersSignature []byte `json:"owners_signature,omitempty"`
	Epoch           int    `json:"epoch"`              // the epoch evaluated under
	Previous        *int   `json:"previous,omitempty"` // an older epoch still answered (an overlap)
}

// A BucketsRequest names buckets among bucket_count (internal/bucket), or,
// without bucket_count, prefixes of prefix_bits bits: the buckets of
// bucket_count 2^prefix_bits.
type BucketsRequest struct {
	PrefixBits  int      `json:"prefix_bits"`
	BucketCount *uint64  `json:"bucket_count,omitempty"`
	Prefixes    []uint32 `json:"prefixes"`        // bucket numbers, each < bucket_count (or 2^prefix_bits), no duplicates
	Epoch       *int     `json:"epoch,omitempty"` // default: the current epoch
}

type BucketsResponse struct {
	Buckets []Bucket `json:"buckets"` // in request order
}

type Bucket struct {
	Prefix  uint32        `json:"prefix"`  // the bucket number, as requested
	Records []SealedEntry `json:"records"` // sorted by index, then record id
}

type SealedEntry struct {
	Index      []byte `json:"index"`
	Ciphertext []byte `json:"ciphertext"`
}

type PublishRequest struct {
	Index      []byte    `json:"index"`
	RecordID   []byte    `json:"record_id"`
	Ciphertext []byte    `json:"ciphertext"`
	ACL        *acl.List `json:"acl"` // required
	Expires    time.Time `json:"expires"`
	Epoch      *int      `json:"epoch,omitempty"` // of Index and the ACL's pseudonyms; default: the current epoch
}

type SetACLRequest struct {
	Index    []byte    `json:"index"`
	RecordID []byte    `json:"record_id"`
	ACL      *acl.List `json:"acl"`             // required
	Epoch    *int      `json:"epoch,omitempty"` // default: the current epoch
}

// Error is every non-2xx body. Messages are fixed strings; details stay in
// the server log.
type Error struct {
	Error string `json:"error"`
}
