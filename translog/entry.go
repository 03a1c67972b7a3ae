// Package translog is blindex's transparency log: an append-only Merkle log
// (RFC 6962 hashing through golang.org/x/mod/sumdb/tlog) whose checkpoints
// are C2SP signed notes and whose tiles follow C2SP tlog-tiles, so generic
// tlog tooling can read it.
//
// Every credential the directory's built-in CA issues, every change of a
// number's holder (which is how credentials of other CAs appear), and every
// owner's state commitment after a publish, ACL change or delete is an
// entry, as are the directory's OPRF key, its CA roots and the federation
// map it serves under. Entries name
// owners only by their log label: an OPRF output under its own POPRF info,
// which the server computes from a credential and an owner can obtain (a
// few times a day) for its own number. No entry holds a number, a record
// plaintext or an ACL member.
package translog

import (
	"blindex.dev/blindex/internal/ascii"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A Kind is an entry type.
type Kind string

// The entry kinds. docs/protocol.md gives their fields.
const (
	// Credential: a credential for the labelled number was issued.
	Credential Kind = "credential"
	// Holder: a change of the labelled number's holders (Event). Entries
	// written before holders were a set have no Event: Key became the one
	// holder, and Previous (if set) was retired with its Retired records.
	Holder Kind = "holder"
	// State: the records and ACLs that Key (a holder) published under the
	// owner's index now hash to Commitment. Entries written before holders
	// were a set have no Key and cover the whole index.
	State Kind = "state"
	// OPRFKey: the directory's OPRF public key for lookups under Info.
	OPRFKey Kind = "oprf-key"
	// CARoots: the CA roots whose credentials the directory accepts.
	CARoots Kind = "ca-roots"
	// Map: the federation map the directory serves under (package
	// federation): its name, version, expiry and the SHA-256 of its text.
	Map Kind = "map"
)

// A HolderEvent is what a Holder entry records happened to Key.
type HolderEvent string

// The holder events (docs/protocol.md §9.7).
const (
	// Join: Key proved the number by SMS and became a holder (Proof).
	Join HolderEvent = "join"
	// Notice: Key is on notice until Until, because By proved the number
	// later (Proof); its records are not served, and it is retired at
	// Until unless it proves the number again first.
	Notice HolderEvent = "notice"
	// Reproof: Key proved the number again (Proof), clearing any notice.
	Reproof HolderEvent = "reproof"
	// Retire: Key's notice ran out; its Retired records were deleted and
	// the key revoked.
	Retire HolderEvent = "retire"
	// Evict: By, with a fresh proof, retired Key at once, with its Retired
	// records.
	Evict HolderEvent = "evict"
)

func (ev HolderEvent) valid() bool {
	switch ev {
	case Join, Notice, Reproof, Retire, Evict:
		return true
	}
	return false
}

// Header starts every entry, followed by a space and the kind.
const Header = "blindex-log/v1"

// MaxEntrySize is the largest entry: tlog-tiles entry bundles prefix each
// entry with a 16-bit length.
const MaxEntrySize = 1<<16 - 1

// An Entry is one log entry. Which fields are set depends on Kind.
type Entry struct {
	Kind  Kind
	Label [32]byte // Credential, Holder, State: the number's log label

	// Credential.
	Cert      [32]byte // SHA-256 of the certificate (DER)
	Key       [32]byte // SHA-256 of its SubjectPublicKeyInfo; also Holder, State
	Issuer    [32]byte // SHA-256 of the issuing certificate (DER)
	NotBefore time.Time
	NotAfter  time.Time

	// Holder.
	Event   HolderEvent // empty in entries from before holders were a set
	Proof   time.Time   // join, reproof: Key's proof; notice: By's; retire, evict: Key's last
	Until   time.Time   // notice: when Key is retired; zero otherwise
	By      [32]byte    // notice: the key that joined; evict: the evicting key
	Retired int         // retire, evict (and legacy): records of Key (legacy: Previous) removed
	// Previous is, in a legacy Holder entry only, the retired holder's key
	// hash (zero if none).
	Previous [32]byte

	// State.
	Commitment [32]byte // see Commitment
	Records    int      // records committed to
	At         time.Time

	// OPRFKey.
	Info      string // the POPRF info the key serves
	PublicKey []byte // RFC 9497 serialized public key

	// CARoots.
	Roots [][]byte // DER certificates

	// Map.
	MapName    string // the federation's name
	MapVersion int64  // the map's version
	MapExpires time.Time
	MapHash    [32]byte // SHA-256 of the map's text (the signed note's body)
}

var (
	ErrMalformed = errors.New("translog: malformed entry")
	ErrTooLarge  = errors.New("translog: entry too large")
)

// fields lists each kind's fields in their required order.
var fields = map[Kind][]string{
	Credential: {"label", "cert", "key", "issuer", "not-before", "not-after"},
	Holder:     {"label", "key", "event", "proof", "until", "by", "retired"},
	State:      {"label", "key", "commitment", "records", "at"},
	OPRFKey:    {"info", "key"},
	CARoots:    {"root"}, // repeated, at least once
	Map:        {"name", "version", "expires", "hash"},
}

// legacyFields lists the fields of the kinds whose entries from before
// holders were a set still parse: a Holder without Event, a State without Key.
var legacyFields = map[Kind][]string{
	Holder: {"label", "key", "previous", "retired"},
	State:  {"label", "commitment", "records", "at"},
}

// Marshal encodes e as text: the header line, then one "name value" line per
// field in a fixed order. Hashes and keys are standard base64, times Unix
// seconds.
func (e *Entry) Marshal() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n", Header, e.Kind)
	line := func(name, value string) { fmt.Fprintf(&b, "%s %s\n", name, value) }
	b64 := base64.StdEncoding.EncodeToString
	switch e.Kind {
	case Credential:
		line("label", b64(e.Label[:]))
		line("cert", b64(e.Cert[:]))
		line("key", b64(e.Key[:]))
		line("issuer", b64(e.Issuer[:]))
		line("not-before", strconv.FormatInt(e.NotBefore.Unix(), 10))
		line("not-after", strconv.FormatInt(e.NotAfter.Unix(), 10))
	case Holder:
		line("label", b64(e.Label[:]))
		line("key", b64(e.Key[:]))
		if e.Event == "" {
			line("previous", b64(e.Previous[:]))
		} else {
			if !e.Event.valid() {
				return nil, fmt.Errorf("%w: unknown holder event %q", ErrMalformed, e.Event)
			}
			line("event", string(e.Event))
			line("proof", strconv.FormatInt(e.Proof.Unix(), 10))
			line("until", strconv.FormatInt(unixOrZero(e.Until), 10))
			line("by", b64(e.By[:]))
		}
		line("retired", strconv.Itoa(e.Retired))
	case State:
		line("label", b64(e.Label[:]))
		if e.Key != ([32]byte{}) {
			line("key", b64(e.Key[:]))
		}
		line("commitment", b64(e.Commitment[:]))
		line("records", strconv.Itoa(e.Records))
		line("at", strconv.FormatInt(e.At.Unix(), 10))
	case OPRFKey:
		if !ascii.Printable(e.Info) {
			return nil, fmt.Errorf("%w: info must be printable ASCII", ErrMalformed)
		}
		line("info", e.Info)
		line("key", b64(e.PublicKey))
	case CARoots:
		if len(e.Roots) == 0 {
			return nil, fmt.Errorf("%w: no roots", ErrMalformed)
		}
		for _, r := range e.Roots {
			line("root", b64(r))
		}
	case Map:
		if !ascii.Printable(e.MapName) || strings.Contains(e.MapName, " ") {
			return nil, fmt.Errorf("%w: map name must be printable ASCII without spaces", ErrMalformed)
		}
		line("name", e.MapName)
		line("version", strconv.FormatInt(e.MapVersion, 10))
		line("expires", strconv.FormatInt(e.MapExpires.Unix(), 10))
		line("hash", b64(e.MapHash[:]))
	default:
		return nil, fmt.Errorf("%w: unknown kind %q", ErrMalformed, e.Kind)
	}
	if b.Len() > MaxEntrySize {
		return nil, ErrTooLarge
	}
	return b.Bytes(), nil
}

// Parse decodes an entry, accepting only the exact form Marshal produces,
// so each entry has one encoding and one hash.
func Parse(data []byte) (*Entry, error) {
	if len(data) > MaxEntrySize {
		return nil, ErrTooLarge
	}
	lines, ok := ascii.NewLines(data)
	if !ok {
		return nil, fmt.Errorf("%w: no final newline", ErrMalformed)
	}
	head, _ := lines.Line()
	kind, ok := strings.CutPrefix(head, Header+" ")
	if !ok {
		return nil, fmt.Errorf("%w: bad header", ErrMalformed)
	}
	e := &Entry{Kind: Kind(kind)}
	want, ok := fields[e.Kind]
	if !ok {
		return nil, fmt.Errorf("%w: unknown kind", ErrMalformed)
	}
	if e.Kind == CARoots {
		if lines.Len() == 0 {
			return nil, fmt.Errorf("%w: no roots", ErrMalformed)
		}
		for lines.Len() > 0 {
			v, err := value(lines, "root")
			if err != nil {
				return nil, err
			}
			der, err := decodeB64(v, -1)
			if err != nil {
				return nil, err
			}
			e.Roots = append(e.Roots, der)
		}
		return e, e.canonical(data)
	}
	if old, ok := legacyFields[e.Kind]; ok && lines.Len() == len(old) {
		want = old
	}
	if lines.Len() != len(want) {
		return nil, fmt.Errorf("%w: want %d fields", ErrMalformed, len(want))
	}
	vals := make(map[string]string, len(want))
	for _, name := range want {
		v, err := value(lines, name)
		if err != nil {
			return nil, err
		}
		vals[name] = v
	}
	var err error
	hash := func(name string, dst *[32]byte) {
		if err != nil {
			return
		}
		var b []byte
		if b, err = decodeB64(vals[name], 32); err == nil {
			copy(dst[:], b)
		}
	}
	num := func(name string) int64 {
		if err != nil {
			return 0
		}
		n, ok := ascii.Decimal(vals[name], maxNumber) // zero too: no records retired
		if !ok {
			err = fmt.Errorf("%w: bad number", ErrMalformed)
		}
		return n
	}
	switch e.Kind {
	case Credential:
		hash("label", &e.Label)
		hash("cert", &e.Cert)
		hash("key", &e.Key)
		hash("issuer", &e.Issuer)
		e.NotBefore = time.Unix(num("not-before"), 0).UTC()
		e.NotAfter = time.Unix(num("not-after"), 0).UTC()
	case Holder:
		hash("label", &e.Label)
		hash("key", &e.Key)
		if _, legacy := vals["previous"]; legacy {
			hash("previous", &e.Previous)
		} else {
			e.Event = HolderEvent(vals["event"])
			if !e.Event.valid() {
				return nil, fmt.Errorf("%w: unknown holder event", ErrMalformed)
			}
			e.Proof = time.Unix(num("proof"), 0).UTC()
			if u := num("until"); u != 0 {
				e.Until = time.Unix(u, 0).UTC()
			}
			hash("by", &e.By)
		}
		e.Retired = int(num("retired"))
	case State:
		hash("label", &e.Label)
		if _, ok := vals["key"]; ok {
			hash("key", &e.Key)
			if err == nil && e.Key == ([32]byte{}) {
				return nil, fmt.Errorf("%w: zero key", ErrMalformed)
			}
		}
		hash("commitment", &e.Commitment)
		e.Records = int(num("records"))
		e.At = time.Unix(num("at"), 0).UTC()
	case OPRFKey:
		e.Info = vals["info"]
		if !ascii.Printable(e.Info) {
			return nil, fmt.Errorf("%w: info", ErrMalformed)
		}
		e.PublicKey, err = decodeB64(vals["key"], -1)
	case Map:
		e.MapName = vals["name"]
		if !ascii.Printable(e.MapName) || strings.Contains(e.MapName, " ") {
			return nil, fmt.Errorf("%w: map name", ErrMalformed)
		}
		e.MapVersion = num("version")
		e.MapExpires = time.Unix(num("expires"), 0).UTC()
		hash("hash", &e.MapHash)
	}
	if err != nil {
		return nil, err
	}
	return e, e.canonical(data)
}

// canonical checks that data is exactly e's encoding (for example, that no
// time or count overflowed on the way through).
func (e *Entry) canonical(data []byte) error {
	again, err := e.Marshal()
	if err != nil {
		return err
	}
	if !bytes.Equal(again, data) {
		return fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return nil
}

// value reads the next line as the field name, whose value is not empty.
func value(lines *ascii.Lines, name string) (string, error) {
	v, ok := lines.Field(name)
	if !ok || v == "" {
		return "", fmt.Errorf("%w: want field %q", ErrMalformed, name)
	}
	return v, nil
}

func decodeB64(s string, size int) ([]byte, error) {
	b, ok := ascii.Base64(s)
	if !ok || (size >= 0 && len(b) != size) {
		return nil, fmt.Errorf("%w: bad base64 value", ErrMalformed)
	}
	return b, nil
}

// unixOrZero returns t in Unix seconds, and 0 for the zero time.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// maxNumber bounds every number in an entry (times, counts, versions).
const maxNumber = 1 << 40
