package directory

import (
	"errors"
	"fmt"

	"blindex.dev/blindex/internal/storeerr"
	"blindex.dev/blindex/translog"
)

// A ClaimKind is what a claim on an index does to its holder.
type ClaimKind int

const (
	// ClaimFirst: the index has no holder, and the claimant becomes it.
	ClaimFirst ClaimKind = iota + 1
	// ClaimRenew: the claimant's key holds the index already; its NotBefore
	// moves forward, never back, and its label is replaced.
	ClaimRenew
	// ClaimRetire: the claimant's key is another, with a newer credential.
	// The holder is retired (its records removed, its key revoked) and the
	// claimant becomes the holder.
	ClaimRetire
)

// A Claim is the holder rule's answer to one claim on an index: what
// Store.ClaimHolder must write.
type Claim struct {
	Kind ClaimKind
	// Holder is the holder to store. For ClaimRenew its NotBefore is the
	// later of the stored one and the claimant's.
	Holder Holder
	// Retired is the holder being retired (ClaimRetire only).
	Retired Holder
}

// DecideClaim is the holder rule: it decides the claim by h on an index
// whose current holder is current (nil if it has none). Only the keys and
// NotBefore times count, compared in whole seconds as the stores keep them.
//
// The latest SMS proof is the authority over a number, so a key with a
// newer credential takes the index from the holder, and the holder's key is
// revoked so that a renewal cannot take the number back. A claim by another
// key that is not newer is refused with ErrConflict.
func DecideClaim(current *Holder, h Holder) (Claim, error) {
	switch {
	case current == nil:
		return Claim{Kind: ClaimFirst, Holder: h}, nil
	case current.KeyHash == h.KeyHash:
		if h.NotBefore.Unix() <= current.NotBefore.Unix() {
			h.NotBefore = current.NotBefore
		}
		return Claim{Kind: ClaimRenew, Holder: h}, nil
	case h.NotBefore.Unix() <= current.NotBefore.Unix():
		return Claim{}, ErrConflict
	}
	return Claim{Kind: ClaimRetire, Holder: h, Retired: *current}, nil
}

// HolderEntry returns the translog Holder entry that ClaimHolder appends
// when c gives the index a new holder key (ClaimFirst or ClaimRetire): that
// c.Holder's key holds the number labelled c.Holder.Label, after the retired
// key (none for ClaimFirst) lost its retired records. A renewal changes no
// key and logs no Holder entry.
func (c Claim) HolderEntry(retired int) ([]byte, error) {
	var previous []byte
	switch c.Kind {
	case ClaimFirst:
	case ClaimRetire:
		previous = c.Retired.KeyHash[:]
	default:
		return nil, errors.New("directory: only a new holder key is logged")
	}
	return translog.HolderEntry(c.Holder.Label, c.Holder.KeyHash, previous, retired)
}

// StateLabel decides whether a change of an index's records is logged, and
// under which label. stored is the label its holder row keeps: nil if the
// index has no holder, or has one claimed before schema version 2 stored
// labels. Such an index is named by no label in the log, so its changes are
// not logged (ok is false). Any other stored label must be 32 bytes.
//
// The entry itself is translog.StateEntry over the index's records, read in
// the transaction that changed them, under this label.
func StateLabel(stored []byte) (label [32]byte, ok bool, err error) {
	if stored == nil {
		return label, false, nil
	}
	if len(stored) != len(label) {
		return label, false, fmt.Errorf("directory: corrupt holder label: %w", storeerr.ErrCorrupt)
	}
	return [32]byte(stored), true, nil
}
