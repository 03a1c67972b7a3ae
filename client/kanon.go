package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/bucket"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/translog"
)

// DefaultMinBucketOwners is Config.MinBucketOwners's default, the
// directory's own default crowd.
const DefaultMinBucketOwners = 16

// ErrSmallCrowd means the directory asked for more buckets than
// its signed owner count allows for the client's minimum crowd, by more
// than the client can make up by fetching wider buckets.
var ErrSmallCrowd = errors.New("client: lookup refused: the buckets would be smaller crowds than MinBucketOwners")

// maxOwnersAge is how old a signed owner count may be: the directory signs
// a fresh one in every answer, so an old one is a replay of a time it had
// more owners.
const maxOwnersAge = 24 * time.Hour

// crowd checks the evaluate answer's owner count under the pinned log key
// and returns the most buckets it allows for crowds of MinBucketOwners:
// floor(owners / MinBucketOwners), at least 1. The count is the log key's
// word, kept for the next audit, which reports it if the log cannot
// account for that many owners (checkOwnerCounts). A directory without a
// log gives no count: its buckets are bounded by MaxPrefixBits alone, and
// only with AllowUnlogged.
func (c *Client) crowd(ctx context.Context, resp *api.EvaluateResponse) (uint64, error) {
	logKey, err := c.logKey(ctx)
	if errors.Is(err, ErrNoLog) && c.cfg.AllowUnlogged {
		return bucket.MaxCount, nil
	} else if err != nil {
		return 0, err
	}
	if resp.Owners == nil || len(resp.OwnersSignature) != 64 {
		return 0, fmt.Errorf("%w: the directory's answer has no signed owner count", ErrSmallCrowd)
	}
	oc := translog.OwnerCount{Owners: *resp.Owners, Time: time.Unix(resp.OwnersTime, 0).UTC(), Signature: [64]byte(resp.OwnersSignature)}
	if err := translog.VerifyOwners(logKey, oc); err != nil {
		return 0, fmt.Errorf("%w: the directory's owner count does not verify under the pinned log key", ErrSmallCrowd)
	}
	now := c.cfg.Now()
	if oc.Time.Before(now.Add(-maxOwnersAge)) || oc.Time.After(now.Add(promiseDelay)) {
		return 0, fmt.Errorf("%w: the directory's owner count is signed for %s, not now", ErrSmallCrowd, oc.Time.Format(time.RFC3339))
	}
	if err := c.keepOwnerCount(oc); err != nil {
		return 0, err
	}
	return uint64(max(oc.Owners/int64(c.cfg.MinBucketOwners), 1)), nil
}

// fileOwners keeps the largest signed owner count a lookup relied on, for
// audits: the one that most needs the log to account for it.
const fileOwners = "owners.json"

type keptOwners struct {
	Owners    int64  `json:"owners"`
	Time      int64  `json:"time"`
	Signature []byte `json:"signature"`
}

func (k keptOwners) count() translog.OwnerCount {
	oc := translog.OwnerCount{Owners: k.Owners, Time: time.Unix(k.Time, 0).UTC()}
	copy(oc.Signature[:], k.Signature)
	return oc
}

// keepOwnerCount keeps oc if it is larger than the count kept.
func (c *Client) keepOwnerCount(oc translog.OwnerCount) error {
	c.keptMu.Lock()
	defer c.keptMu.Unlock()
	var k keptOwners
	if err := readJSON(filepath.Join(c.cfg.StateDir, fileOwners), &k); err != nil {
		return err
	}
	if k.Signature != nil && k.Owners >= oc.Owners {
		return nil
	}
	b, err := json.Marshal(keptOwners{oc.Owners, oc.Time.Unix(), oc.Signature[:]})
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(c.cfg.StateDir, fileOwners), b, 0o600)
}

// An OverstatedCount is a signed owner count larger than the log can
// account for: more owners than there were credentials in the log that
// could vouch for a record at the count's time. A directory that overstates
// its owners makes callers accept more buckets, smaller crowds.
type OverstatedCount struct {
	Owners      int64     `json:"owners"`      // as signed
	Time        time.Time `json:"time"`        // when signed
	Credentials int64     `json:"credentials"` // logged credentials that could vouch for a record then
	Evidence    string    `json:"evidence"`    // the count as a signed note under the log key
}

// ownersTally counts, during an audit's replay, the logged credentials
// that could vouch for a record at the kept count's time: begun by then,
// and ended no more than record.RecordGrace before it. An owner with
// several such credentials counts more than once, so the bound is loose
// but sound: an honest directory's count never exceeds it.
type ownersTally struct {
	kept        *translog.OwnerCount
	credentials int64
}

func (c *Client) newOwnersTally() (*ownersTally, error) {
	c.keptMu.Lock()
	defer c.keptMu.Unlock()
	var k keptOwners
	if err := readJSON(filepath.Join(c.cfg.StateDir, fileOwners), &k); err != nil {
		return nil, err
	}
	t := &ownersTally{}
	if k.Signature != nil {
		oc := k.count()
		t.kept = &oc
	}
	return t, nil
}

func (t *ownersTally) add(e *translog.Entry) {
	if t.kept == nil || e.Kind != translog.Credential {
		return
	}
	at := t.kept.Time
	if !e.NotBefore.After(at.Add(promiseDelay)) && !e.NotAfter.Add(record.RecordGrace).Before(at) {
		t.credentials++
	}
}

// overstated returns the kept count if the log cannot account for it.
func (t *ownersTally) overstated(logKey note.Verifier) *OverstatedCount {
	if t.kept == nil || t.kept.Owners <= t.credentials || translog.VerifyOwners(logKey, *t.kept) != nil {
		return nil
	}
	return &OverstatedCount{Owners: t.kept.Owners, Time: t.kept.Time, Credentials: t.credentials, Evidence: string(t.kept.Note(logKey))}
}

// readJSON decodes path into v; a missing file leaves v as it is.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("client: %s is corrupt: %w", filepath.Base(path), err)
	}
	return nil
}
