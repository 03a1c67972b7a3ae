package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"blindex.dev/blindex/record"
)

// Reasons a record under a looked-up number's index is dropped, as counted
// in Result.Dropped. Each is dropped exactly as one that fails to open: the
// caller sees the number as if the record were absent.
const (
	DropUnreadable   = "unreadable"     // fails to open under the number's record key: tampered, or not for it
	DropExpired      = "expired"        // past the expiry its publisher set
	DropUnsigned     = "unsigned"       // no publisher proof
	DropUntrustedCA  = "untrusted_ca"   // vouched for by a CA the caller does not trust
	DropAttestation  = "attestation"    // the CA's attestation is malformed or its signature fails
	DropOtherNumber  = "other_number"   // attested for another number: a key certified for one number signed another's record
	DropSignature    = "signature"      // the publisher's signature fails
	DropNotValidThen = "not_valid_then" // signed while its credential was not valid
	DropStale        = "stale"          // its credential ended more than record.RecordGrace ago
	DropLabel        = "label"          // the proved log label fails under the pinned OPRF key
	DropUnlogged     = "unlogged"       // no valid log promise for its credential, and Config.AllowUnlogged is off
	DropSuperseded   = "superseded"     // the same app's record from a key with a later SMS proof is served too
)

// DropReason names why Proof.Verify refused a record.
func DropReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{record.ErrUnsigned, DropUnsigned},
		{record.ErrUntrustedCA, DropUntrustedCA},
		{record.ErrAttestation, DropAttestation},
		{record.ErrOtherNumber, DropOtherNumber},
		{record.ErrSignature, DropSignature},
		{record.ErrNotValidThen, DropNotValidThen},
		{record.ErrStale, DropStale},
		{record.ErrLabel, DropLabel},
		{record.ErrUnlogged, DropUnlogged},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return DropUnreadable
}

// CAFingerprint is how a CA is named in lookup results: the hex SHA-256 of
// its root certificate's DER.
func CAFingerprint(root *x509.Certificate) string {
	h := sha256.Sum256(root.Raw)
	return hex.EncodeToString(h[:])
}

// trust is what this client checks publisher proofs against: the roots it
// chose (Config.TrustRoots, else the directory's pinned ca_roots), and the
// pinned OPRF and log keys.
func (c *Client) trust(ctx context.Context) (record.Trust, error) {
	p, pk, err := c.pinnedKey(ctx)
	if err != nil {
		return record.Trust{}, err
	}
	// The label's proof is checked with the promise's entry, at the next
	// audit (checkLabels): a wrong label shows there, not at the lookup,
	// and the check is the lookup's costliest step.
	t := record.Trust{Roots: c.cfg.TrustRoots, OPRFKey: pk, Unlogged: c.cfg.AllowUnlogged, DeferLabel: true}
	if t.Roots == nil {
		for _, der := range p.CARoots {
			root, err := x509.ParseCertificate(der)
			if err != nil {
				return record.Trust{}, fmt.Errorf("client: pinned CA root: %w", err)
			}
			t.Roots = append(t.Roots, root)
		}
	}
	switch t.LogKey, err = c.logKey(ctx); {
	case errors.Is(err, ErrNoLog) && c.cfg.AllowUnlogged:
		t.LogKey = nil // nothing to check promises against, and none required
	case err != nil:
		return record.Trust{}, err
	}
	return t, nil
}

// verified is what one looked-up number's records came to.
type verified struct {
	number  string // E.164
	records []record.Record
	vouched []*record.Verified
	dropped map[string]int
}

// verifyRecords opens and checks the ciphertexts under one number's index
// (docs/protocol.md §10): each must open under the number's record key, be
// unexpired, and carry a publisher proof that verifies for this number
// under trust. Of two accepted records for one app, the one whose key has
// the later SMS proof wins, as the directory decides (§9.7): a directory
// that served both gains nothing.
func verifyRecords(key [32]byte, cts [][]byte, number string, now time.Time, trust record.Trust) verified {
	out := verified{number: number}
	drop := func(reason string) {
		if out.dropped == nil {
			out.dropped = map[string]int{}
		}
		out.dropped[reason]++
	}
	byApp := map[string]int{}
	for _, ct := range cts {
		r, proof, err := record.OpenProved(key, ct)
		if err != nil {
			drop(DropUnreadable)
			continue
		}
		if !r.Expires.After(now) {
			drop(DropExpired)
			continue
		}
		v, err := proof.Verify(r, number, now, trust)
		if err != nil {
			drop(DropReason(err))
			continue
		}
		if j, ok := byApp[r.App]; ok {
			drop(DropSuperseded)
			if !later(v, out.vouched[j]) {
				continue
			}
			out.records[j], out.vouched[j] = r, v
			continue
		}
		byApp[r.App] = len(out.records)
		out.records = append(out.records, r)
		out.vouched = append(out.vouched, v)
	}
	sortVerified(&out)
	return out
}

// later reports whether a wins over b as the directory decides
// (directory.Wins): the later SMS proof, in whole seconds, then the greater
// key hash; and for two records of one key, the later signed (a replay of
// an older record loses to the newer one).
func later(a, b *record.Verified) bool {
	if pa, pb := a.Attestation.ProofTime.Unix(), b.Attestation.ProofTime.Unix(); pa != pb {
		return pa > pb
	}
	ka, kb := a.Attestation.KeyHash(), b.Attestation.KeyHash()
	if c := bytes.Compare(ka[:], kb[:]); c != 0 {
		return c > 0
	}
	return a.Signed.After(b.Signed)
}
