// Package acl is the access list of one published record.
//
// The server evaluates a List against the caller's pseudonym: 32 bytes it
// derives from the number in the caller's credential. Entries are pseudonyms,
// never phone numbers, so a stored or logged List does not reveal whom the
// owner knows by number.
//
// The package is pure: types, parsing and marshaling, and evaluation. It does
// no I/O.
package acl

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"blindex.dev/blindex/internal/strictjson"
)

// Visibility says who may read a record, before the denylist is applied.
type Visibility uint8

const (
	// Nobody admits no one. It is the zero value so that a List that was
	// never filled in denies by default.
	Nobody Visibility = iota
	// Public admits any authenticated caller not on the denylist.
	Public
	// Allowlist admits callers on the allowlist and not on the denylist.
	Allowlist
)

var visibilityNames = [...]string{
	Nobody:    "nobody",
	Public:    "public",
	Allowlist: "allowlist",
}

// String returns "nobody", "public" or "allowlist".
func (v Visibility) String() string {
	if int(v) < len(visibilityNames) {
		return visibilityNames[v]
	}
	return fmt.Sprintf("Visibility(%d)", uint8(v))
}

// ParseVisibility parses the names returned by String. It is case-sensitive.
func ParseVisibility(s string) (Visibility, error) {
	for v, name := range visibilityNames {
		if s == name {
			return Visibility(v), nil
		}
	}
	return Nobody, ErrVisibility
}

// PseudonymSize is the length of a caller pseudonym in bytes.
const PseudonymSize = 32

// Pseudonym identifies a caller to the server without revealing its number.
type Pseudonym [PseudonymSize]byte

// MaxEntries is the largest number of entries in each of Allow and Deny.
const MaxEntries = 10000

// List is the access list of one record.
type List struct {
	Visibility Visibility
	Allow      []Pseudonym // only with Allowlist
	Deny       []Pseudonym // optional; always wins over Visibility and Allow
}

var (
	ErrVisibility            = errors.New("acl: unknown visibility")
	ErrTooMany               = fmt.Errorf("acl: more than %d entries in a list", MaxEntries)
	ErrDuplicate             = errors.New("acl: duplicate entry")
	ErrAllowWithoutAllowlist = errors.New("acl: allow entries without allowlist visibility")
	ErrEntry                 = errors.New("acl: malformed entry")
)

// Validate reports whether l is well formed.
//
// Allow entries are refused unless Visibility is Allowlist: an owner who sets
// "public" with an allowlist would believe the record restricted when it is
// not. Deny entries are accepted with any visibility, since with Nobody they
// can only deny more. A pseudonym may be on both lists; deny wins.
func (l List) Validate() error {
	if int(l.Visibility) >= len(visibilityNames) {
		return ErrVisibility
	}
	if len(l.Allow) > MaxEntries || len(l.Deny) > MaxEntries {
		return ErrTooMany
	}
	if len(l.Allow) > 0 && l.Visibility != Allowlist {
		return ErrAllowWithoutAllowlist
	}
	if err := checkEntries("allow", l.Allow); err != nil {
		return err
	}
	return checkEntries("deny", l.Deny)
}

func checkEntries(name string, ps []Pseudonym) error {
	seen := make(map[Pseudonym]struct{}, len(ps))
	for i, p := range ps {
		// An all-zero pseudonym is never an HKDF output; it is an unset value,
		// and accepting it would let a bug admit or deny a phantom caller.
		if p == (Pseudonym{}) {
			return fmt.Errorf("%w: %s[%d] is all zeros", ErrEntry, name, i)
		}
		if _, ok := seen[p]; ok {
			return fmt.Errorf("%w: %s[%d]", ErrDuplicate, name, i)
		}
		seen[p] = struct{}{}
	}
	return nil
}

// Decide is the single admission rule, shared by List.Admits and by stores
// that evaluate membership in SQL and pass the two booleans: deny always wins,
// Public admits, Allowlist admits members, and Nobody (or any unknown
// visibility) admits no one.
func Decide(v Visibility, allowed, denied bool) bool {
	if denied {
		return false
	}
	switch v {
	case Public:
		return true
	case Allowlist:
		return allowed
	default:
		return false
	}
}

// Admits reports whether l lets caller read the record.
func (l List) Admits(caller Pseudonym) bool {
	return Decide(l.Visibility, slices.Contains(l.Allow, caller), slices.Contains(l.Deny, caller))
}

// wireList is the JSON form used in the HTTP API:
//
//	{"visibility":"allowlist","allow":["<base64>",...],"deny":[...]}
//
// Entries are standard base64 with padding.
type wireList struct {
	Visibility string   `json:"visibility"`
	Allow      []string `json:"allow,omitempty"`
	Deny       []string `json:"deny,omitempty"`
}

// MarshalJSON returns the wire form of l. It refuses an invalid List, so that
// it never emits what UnmarshalJSON would reject.
func (l List) MarshalJSON() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	w := wireList{
		Visibility: l.Visibility.String(),
		Allow:      encodeEntries(l.Allow),
		Deny:       encodeEntries(l.Deny),
	}
	return json.Marshal(w)
}

func encodeEntries(ps []Pseudonym) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = base64.StdEncoding.EncodeToString(p[:])
	}
	return out
}

// UnmarshalJSON parses the wire form strictly: unknown fields, a missing or
// unknown visibility, entries that are not canonical base64 of exactly
// PseudonymSize bytes, and trailing data are all rejected. The result is then
// checked with Validate. On error l is left unchanged.
func (l *List) UnmarshalJSON(b []byte) error {
	var w wireList
	// Strict: a duplicate or case-folded member ("VISIBILITY") is refused,
	// not read one way here and another by the owner's own tools.
	if err := strictjson.Decode(b, &w); err != nil {
		return fmt.Errorf("acl: %w", err)
	}
	v, err := ParseVisibility(w.Visibility)
	if err != nil {
		return err
	}
	// Check the counts before decoding, to bound the work done on a hostile list.
	if len(w.Allow) > MaxEntries || len(w.Deny) > MaxEntries {
		return ErrTooMany
	}
	allow, err := decodeEntries("allow", w.Allow)
	if err != nil {
		return err
	}
	deny, err := decodeEntries("deny", w.Deny)
	if err != nil {
		return err
	}
	nl := List{Visibility: v, Allow: allow, Deny: deny}
	if err := nl.Validate(); err != nil {
		return err
	}
	*l = nl
	return nil
}

func decodeEntries(name string, ss []string) ([]Pseudonym, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	out := make([]Pseudonym, len(ss))
	for i, s := range ss {
		b, err := base64.StdEncoding.DecodeString(s)
		// Requiring the canonical encoding back rejects the newlines and
		// non-zero trailing bits that the decoder would otherwise accept, so
		// each pseudonym has exactly one wire form.
		if err != nil || len(b) != PseudonymSize || base64.StdEncoding.EncodeToString(b) != s {
			return nil, fmt.Errorf("%w: %s[%d]", ErrEntry, name, i)
		}
		out[i] = Pseudonym(b)
	}
	return out, nil
}
