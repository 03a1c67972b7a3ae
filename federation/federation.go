// Package federation is the signed map of a blindex federation: which
// directory holds which E.164 prefixes, and the keys a client must hold each
// directory to (its OPRF public key and info, its transparency log key, the
// CA roots it accepts).
//
// The map is a C2SP signed note whose text has one exact form (Marshal,
// Parse); docs/protocol.md gives it byte for byte. A client opens it with
// the federation's name and the map signer keys it trusts (Open), refuses
// it once expired or renamed (CheckSuccessor), and routes each number to
// the directory with the longest prefix the number starts with (Route).
// The map is small and fetched whole, so fetching it says nothing about
// which numbers a client will look up; a directory learns only that a
// caller looked up some numbers in its own range, and how many.
package federation

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/internal/ascii"
	"blindex.dev/blindex/oprf"
)

// Header is the first line of every map's text.
const Header = "blindex-map/v1"

// MaxSize bounds a signed map: a map is downloaded whole, and one entry
// with three CA roots is a few kilobytes.
const MaxSize = 1 << 20

// A Map says which directory holds which numbers.
type Map struct {
	// Name names the federation. Open accepts the map only if Name is the
	// one the client trusts (Trust.Name) and a known key of this name
	// signed it.
	Name string
	// Version increases with every change; a client refuses a map older
	// than one it has seen (CheckSuccessor).
	Version int64
	// Expires is when clients stop accepting the map (whole seconds).
	Expires time.Time
	// Directories, sorted by URL.
	Directories []Directory
	// Note is the signed note the map was opened from (Open), kept as
	// evidence; nil for a map from Build or Parse.
	Note []byte
}

// A Directory is one directory of the federation and what a client pins
// for it.
type Directory struct {
	// URL is the base URL, such as "https://us.example.org" (no trailing
	// slash, no query).
	URL string
	// Prefixes are the E.164 prefixes it holds: "+" then up to 15 digits,
	// sorted. "+" alone holds every number no longer prefix holds.
	Prefixes []string
	// OPRFKey is the lookup OPRF public key (RFC 9497 SerializeElement, 32
	// bytes), and OPRFInfo the POPRF info of its epoch 0: a client derives
	// later epochs' infos from it.
	OPRFKey  []byte
	OPRFInfo string
	// OPRFEpoch is the directory's lookup epoch when the map was made: a
	// client refuses the directory if its current epoch is older.
	OPRFEpoch int
	// LogKey is the transparency log's note verifier key.
	LogKey string
	// CARoots are the DER roots whose credentials the directory accepts,
	// sorted bytewise.
	CARoots [][]byte
}

var (
	ErrMalformed     = errors.New("federation: malformed map")
	ErrTooLarge      = errors.New("federation: map too large")
	ErrUnsigned      = errors.New("federation: the map is not a signed note")
	ErrSignature     = errors.New("federation: a map signature does not verify: the map was altered")
	ErrUnknownSigner = errors.New("federation: the map is not signed by a known map key")
	ErrQuorum        = errors.New("federation: too few known keys signed the map")
	ErrName          = errors.New("federation: the map names another federation")
	ErrExpired       = errors.New("federation: the map has expired: fetch a fresh one")
	ErrRollback      = errors.New("federation: the map is older than one seen before")
	ErrNoDirectory   = errors.New("federation: no directory in the map holds this number")
	ErrNumber        = errors.New("federation: not an E.164 number")
)

// A ConflictError is two different maps of one version, both signed: proof
// that the map signer misbehaved (or its key leaked). Old and New are the
// two signed notes.
type ConflictError struct {
	Version  int64
	Old, New []byte
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("federation: two different signed maps have version %d", e.Version)
}

// Build returns a map of dirs, with the directories, prefixes and CA roots
// sorted into the canonical order, or an error naming the first rule broken.
func Build(name string, version int64, expires time.Time, dirs []Directory) (*Map, error) {
	m := &Map{Name: name, Version: version, Expires: time.Unix(expires.Unix(), 0).UTC()}
	for _, d := range dirs {
		d.Prefixes = slices.Clone(d.Prefixes)
		slices.Sort(d.Prefixes)
		d.CARoots = slices.Clone(d.CARoots)
		slices.SortFunc(d.CARoots, bytes.Compare)
		m.Directories = append(m.Directories, d)
	}
	slices.SortFunc(m.Directories, func(a, b Directory) int { return strings.Compare(a.URL, b.URL) })
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// check enforces every rule of the format except byte layout.
func (m *Map) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if !validName(m.Name) {
		return bad("name must be 1 to 255 printable ASCII characters without spaces or '+'")
	}
	if m.Version < 1 || m.Version > maxInt {
		return bad("version must be a positive integer")
	}
	if m.Expires.Unix() < 1 || m.Expires.Unix() > maxInt {
		return bad("expiry out of range")
	}
	if len(m.Directories) == 0 {
		return bad("no directory")
	}
	seen := map[string]string{}
	for i, d := range m.Directories {
		if err := checkURL(d.URL); err != nil {
			return bad("directory %q: %v", d.URL, err)
		}
		if i > 0 && m.Directories[i-1].URL >= d.URL {
			return bad("directories must be sorted by URL, each once (%q)", d.URL)
		}
		if len(d.Prefixes) == 0 {
			return bad("directory %s: no prefix", d.URL)
		}
		for j, p := range d.Prefixes {
			if !validPrefix(p) {
				return bad("directory %s: prefix %q is not \"+\" and up to 15 digits (the first not 0)", d.URL, p)
			}
			if j > 0 && d.Prefixes[j-1] >= p {
				return bad("directory %s: prefixes must be sorted, each once", d.URL)
			}
			// Two directories for one prefix would make routing a guess.
			if other, ok := seen[p]; ok {
				return bad("prefix %s is given to both %s and %s", p, other, d.URL)
			}
			seen[p] = d.URL
		}
		if !ascii.Printable(d.OPRFInfo) || len(d.OPRFInfo) > 1024 {
			return bad("directory %s: oprf-info must be printable ASCII", d.URL)
		}
		if _, err := oprf.ParsePublicKey(d.OPRFKey); err != nil {
			return bad("directory %s: oprf-key: %v", d.URL, err)
		}
		if d.OPRFEpoch < 0 || d.OPRFEpoch > maxInt {
			return bad("directory %s: oprf-epoch out of range", d.URL)
		}
		if canonicalVerifierKey(d.LogKey) != d.LogKey {
			return bad("directory %s: log-key is not a note verifier key in canonical form", d.URL)
		}
		if len(d.CARoots) == 0 {
			return bad("directory %s: no CA root", d.URL)
		}
		for j, r := range d.CARoots {
			if _, err := x509.ParseCertificate(r); err != nil {
				return bad("directory %s: ca-root %d: %v", d.URL, j+1, err)
			}
			if j > 0 && bytes.Compare(d.CARoots[j-1], r) >= 0 {
				return bad("directory %s: CA roots must be sorted, each once", d.URL)
			}
		}
	}
	return nil
}

const maxInt = 1 << 53

// Marshal returns the map's text: the body of the signed note.
func (m *Map) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	line := func(name, value string) { b.WriteString(name + " " + value + "\n") }
	b64 := base64.StdEncoding.EncodeToString
	b.WriteString(Header + "\n")
	line("name", m.Name)
	line("version", strconv.FormatInt(m.Version, 10))
	line("expires", strconv.FormatInt(m.Expires.Unix(), 10))
	for _, d := range m.Directories {
		line("directory", d.URL)
		for _, p := range d.Prefixes {
			line("prefix", p)
		}
		line("oprf-key", b64(d.OPRFKey))
		line("oprf-info", d.OPRFInfo)
		line("oprf-epoch", strconv.Itoa(d.OPRFEpoch))
		line("log-key", d.LogKey)
		for _, r := range d.CARoots {
			line("ca-root", b64(r))
		}
	}
	if b.Len() > MaxSize {
		return nil, ErrTooLarge
	}
	return b.Bytes(), nil
}

// Hash is the SHA-256 of the map's text (Marshal): what a directory logs.
// It is zero for a map that breaks the format's rules.
func (m *Map) Hash() [32]byte {
	b, err := m.Marshal()
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(b)
}

// Parse decodes a map's text, accepting only the one form Marshal gives, so
// each map has one text and one hash. It checks no signature: see Open.
func Parse(text []byte) (*Map, error) {
	if len(text) > MaxSize {
		return nil, ErrTooLarge
	}
	lines, ok := ascii.NewLines(text)
	if !ok {
		return nil, fmt.Errorf("%w: no final newline", ErrMalformed)
	}
	if head, _ := lines.Line(); head != Header {
		return nil, fmt.Errorf("%w: first line must be %q", ErrMalformed, Header)
	}
	want := func(name string) (string, error) {
		v, ok := lines.Field(name)
		if !ok {
			return "", fmt.Errorf("%w: want a %q line", ErrMalformed, name)
		}
		return v, nil
	}
	m := &Map{}
	var err error
	if m.Name, err = want("name"); err != nil {
		return nil, err
	}
	v, err := want("version")
	if err != nil {
		return nil, err
	}
	// A zero version or expiry parses, and check (through Marshal below)
	// refuses it with the rule it breaks.
	if m.Version, err = parseInt(v); err != nil {
		return nil, err
	}
	if v, err = want("expires"); err != nil {
		return nil, err
	}
	exp, err := parseInt(v)
	if err != nil {
		return nil, err
	}
	m.Expires = time.Unix(exp, 0).UTC()
	for lines.Len() > 0 {
		var d Directory
		if d.URL, err = want("directory"); err != nil {
			return nil, err
		}
		for {
			p, ok := lines.Field("prefix")
			if !ok {
				break
			}
			d.Prefixes = append(d.Prefixes, p)
		}
		if v, err = want("oprf-key"); err != nil {
			return nil, err
		}
		if d.OPRFKey, err = decodeB64(v); err != nil {
			return nil, err
		}
		if d.OPRFInfo, err = want("oprf-info"); err != nil {
			return nil, err
		}
		if v, err = want("oprf-epoch"); err != nil {
			return nil, err
		}
		epoch, err := parseInt(v)
		if err != nil {
			return nil, err
		}
		d.OPRFEpoch = int(epoch)
		if d.LogKey, err = want("log-key"); err != nil {
			return nil, err
		}
		for {
			r, ok := lines.Field("ca-root")
			if !ok {
				break
			}
			der, err := decodeB64(r)
			if err != nil {
				return nil, err
			}
			d.CARoots = append(d.CARoots, der)
		}
		m.Directories = append(m.Directories, d)
	}
	again, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, text) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return m, nil
}

// Sign signs a map. doc is the map's text (Marshal) or an already signed
// map, whose signatures are kept (a cosignature). The text must be a valid
// map in canonical form.
func Sign(doc []byte, signers ...note.Signer) ([]byte, error) {
	if len(doc) > MaxSize {
		return nil, ErrTooLarge
	}
	n, err := unsigned(doc)
	if err != nil {
		return nil, err
	}
	if _, err := Parse([]byte(n.Text)); err != nil {
		return nil, err
	}
	return note.Sign(n, signers...)
}

// Text returns the map text of doc, a bare map text or a signed note, with
// no signature checked: for showing a map, never for trusting one (Open).
func Text(doc []byte) ([]byte, error) {
	n, err := unsigned(doc)
	if err != nil {
		return nil, err
	}
	return []byte(n.Text), nil
}

// unsigned reads doc, a bare map text or a signed note, as a note whose
// signatures (if any) are kept but not checked.
func unsigned(doc []byte) (*note.Note, error) {
	if !bytes.Contains(doc, []byte("\n\n")) {
		return &note.Note{Text: string(doc)}, nil
	}
	_, err := note.Open(doc, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return nil, fmt.Errorf("%w: not a map text or a signed note", ErrMalformed)
	}
	return unverified.Note, nil
}

// Trust is which map signatures a client accepts.
type Trust struct {
	// Name is the federation's name: a map must have this name and be
	// signed by a key of Keys of this name. Required.
	Name string
	// Keys are the known map signer keys: the federation's (named Name)
	// and any cosigners'.
	Keys []note.Verifier
	// Quorum is how many distinct known keys must have signed. Default 1.
	// A key named Name is always one of them: the others may be
	// cosigners, such as the directories themselves, so that no single
	// party can move a prefix.
	Quorum int
}

// Open verifies a signed map against trust and returns it, unless it has
// expired at now. A changed byte anywhere in the text fails the signature
// (ErrSignature); a map of another name than trust.Name fails with ErrName,
// and one that no known key of that name signed with ErrUnknownSigner.
func Open(signed []byte, trust Trust, now time.Time) (*Map, error) {
	if trust.Name == "" {
		return nil, errors.New("federation: Trust.Name is required: the federation's name, which its map key bears")
	}
	if len(signed) > MaxSize {
		return nil, ErrTooLarge
	}
	if !bytes.Contains(signed, []byte("\n\n")) {
		return nil, ErrUnsigned
	}
	quorum := max(trust.Quorum, 1)
	n, err := note.Open(signed, note.VerifierList(trust.Keys...))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return nil, ErrUnknownSigner
	case errors.As(err, &invalid):
		return nil, fmt.Errorf("%w (key %s)", ErrSignature, invalid.Name)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrUnsigned, err)
	}
	m, err := Parse([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	// The name is the client's, not the map's: a map's name is chosen by
	// whoever signs it, so any one cosigner could name a map after itself.
	if m.Name != trust.Name {
		return nil, fmt.Errorf("%w: %q, want %q", ErrName, m.Name, trust.Name)
	}
	named := false
	for _, s := range n.Sigs {
		named = named || s.Name == trust.Name
	}
	if !named {
		return nil, fmt.Errorf("%w named %q", ErrUnknownSigner, trust.Name)
	}
	if len(n.Sigs) < quorum { // note.Open keeps one signature per known key
		return nil, fmt.Errorf("%w: %d of %d", ErrQuorum, len(n.Sigs), quorum)
	}
	if !now.Before(m.Expires) {
		return nil, fmt.Errorf("%w (version %d expired %s)", ErrExpired, m.Version, m.Expires.Format(time.RFC3339))
	}
	m.Note = bytes.Clone(signed)
	return m, nil
}

// CheckSuccessor checks that next may replace prev, the newest map a client
// has accepted before: a map of another name is another federation's
// (ErrName), a lower version is a rollback (ErrRollback), and a different
// map of the same version is a *ConflictError.
func CheckSuccessor(prev, next *Map) error {
	switch {
	case next.Name != prev.Name:
		return fmt.Errorf("%w: %q, after %q", ErrName, next.Name, prev.Name)
	case next.Version < prev.Version:
		return fmt.Errorf("%w: version %d, after version %d", ErrRollback, next.Version, prev.Version)
	case next.Version == prev.Version && next.Hash() != prev.Hash():
		return &ConflictError{Version: next.Version, Old: prev.Note, New: next.Note}
	}
	return nil
}

// Route returns the directory that holds number (E.164, as
// oprf.NormalizeNumber gives it) and the prefix that matched: the longest
// prefix in the map that number starts with. A number no prefix matches
// gets ErrNoDirectory: the client never guesses.
func (m *Map) Route(number string) (*Directory, string, error) {
	if !validPrefix(number) || len(number) < 2 {
		return nil, "", ErrNumber
	}
	var best *Directory
	prefix := ""
	for i := range m.Directories {
		for _, p := range m.Directories[i].Prefixes {
			if strings.HasPrefix(number, p) && len(p) > len(prefix) {
				best, prefix = &m.Directories[i], p
			}
		}
	}
	if best == nil {
		return nil, "", ErrNoDirectory
	}
	return best, prefix, nil
}

// Holds returns the range check of the directory at base URL self (for
// ca.Config.Holds and directory.Config.Holds): whether the map routes a
// number to self and, if not, the URL of the directory it routes it to
// ("" if none).
func (m *Map) Holds(self string) func(number string) (elsewhere string, ok bool) {
	self = strings.TrimRight(self, "/")
	return func(number string) (string, bool) {
		d, _, err := m.Route(number)
		if err != nil {
			return "", false
		}
		return d.URL, d.URL == self
	}
}

// ByURL returns the directory with base URL u, or nil.
func (m *Map) ByURL(u string) *Directory {
	u = strings.TrimRight(u, "/")
	for i := range m.Directories {
		if m.Directories[i].URL == u {
			return &m.Directories[i]
		}
	}
	return nil
}

// ValidPrefix reports whether p is a prefix as the map writes it: "+" and
// up to 15 digits, the first not 0.
func ValidPrefix(p string) bool { return validPrefix(p) }

func validPrefix(p string) bool {
	digits, ok := strings.CutPrefix(p, "+")
	if !ok || len(digits) > 15 || strings.HasPrefix(digits, "0") {
		return false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e || c == '+' {
			return false
		}
	}
	return true
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("scheme must be https or http")
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.ForceQuery:
		return errors.New("want scheme://host[:port][/path] without user, query or fragment")
	case strings.HasSuffix(s, "/"):
		return errors.New("no trailing slash")
	case u.String() != s || strings.ToLower(u.Host) != u.Host || !ascii.Printable(s) || strings.Contains(s, " "):
		return errors.New("not in canonical form")
	}
	return nil
}

// canonicalVerifierKey returns vkey rebuilt from its parts (lower-case
// hash, strict base64), or "" if it is not an Ed25519 note verifier key.
func canonicalVerifierKey(vkey string) string {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return ""
	}
	parts := strings.SplitN(vkey, "+", 3) // the base64 key may hold '+'
	if len(parts) != 3 {
		return ""
	}
	key, err := base64.StdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(key) != 33 || key[0] != 1 {
		return ""
	}
	return fmt.Sprintf("%s+%08x+%s", v.Name(), v.KeyHash(), base64.StdEncoding.EncodeToString(key))
}

func decodeB64(s string) ([]byte, error) {
	b, ok := ascii.Base64(s)
	if !ok {
		return nil, fmt.Errorf("%w: bad base64 value", ErrMalformed)
	}
	return b, nil
}

// parseInt accepts a decimal, zero too, without a sign or leading zeros.
func parseInt(s string) (int64, error) {
	n, ok := ascii.Decimal(s, maxInt)
	if !ok {
		return 0, fmt.Errorf("%w: bad number", ErrMalformed)
	}
	return n, nil
}
