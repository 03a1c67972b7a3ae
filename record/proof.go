package record

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"time"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/translog"
	"golang.org/x/mod/sumdb/note"
)

// A Proof is the publisher's proof inside a sealed record: who published
// it, and the evidence a caller checks it with, none of it the directory's
// word (docs/protocol.md §11.1).
//
//   - Attestation: the publisher's credential in compact form, signed by the
//     CA that issued it (credential.Attestation): it binds the signing key to
//     the number.
//   - Signed: when the publisher signed; its credential must have been
//     valid then.
//   - LabelElement, LabelProof: the directory's proved POPRF evaluation of
//     the number under the log-label info (oprf.VerifyProved): it gives the
//     number's log label, checked against the pinned OPRF key, so the label
//     in the promised entry below is the one the owner's monitor reads.
//   - Promise: the log's promise for the credential's `credential` entry
//     under that label, rebuilt by the caller from the attestation.
//   - Signature: the credential key's ECDSA P-256 signature, r || s, over
//     SHA-256(SignatureContext || 0x00 || L || JSON || the proof's
//     encoding up to the signature), where L || JSON is the record's
//     length-prefixed JSON as padded: the record, its app and the number are
//     all covered.
//
// Encoding, after the JSON in the padded plaintext, itself length-prefixed
// (integers big-endian, times Unix seconds):
//
//	version        1   ProofVersion
//	attestation    1+n length first
//	signed         8
//	label element  32
//	label proof    64
//	promise time   8
//	promise sig    64
//	signature      64
type Proof struct {
	Attestation  []byte
	Signed       time.Time
	LabelElement []byte
	LabelProof   []byte
	Promise      translog.Promise
	Signature    [64]byte

	signed []byte // what Signature signs, set by Open
}

const (
	ProofVersion     = 1
	SignatureContext = "blindex record signature v1"
	// MaxProofSize is a proof's size with the longest attestation.
	MaxProofSize = 1 + 1 + credential.MaxAttestationSize + 8 + oprf.ElementSize + 64 + translog.PromiseSize + 64
	// RecordGrace is how long after its signing credential's notAfter a
	// record stays acceptable. A credential lives 30 days and is renewed
	// whenever its app runs, and renewing re-signs the records; the grace
	// keeps a phone left unused for a month reachable, and bounds how long a
	// withheld holder's record can be replayed after its credential ended.
	RecordGrace = 30 * 24 * time.Hour
	// clockSkew is how far in the future a signing time may be.
	clockSkew = 5 * time.Minute
)

// Why a caller drops a record that opened: each is counted per number.
var (
	ErrUnsigned      = errors.New("record: no publisher proof")
	ErrUntrustedCA   = errors.New("record: vouched for by a CA the caller does not trust")
	ErrAttestation   = errors.New("record: CA attestation invalid")
	ErrOtherNumber   = errors.New("record: attested for another number")
	ErrSignature     = errors.New("record: publisher signature invalid")
	ErrNotValidThen  = errors.New("record: signed while its credential was not valid")
	ErrStale         = errors.New("record: its credential ended more than the grace ago")
	ErrLabel         = errors.New("record: log label proof invalid")
	ErrUnlogged      = errors.New("record: no valid log promise for its credential")
	errProofEncoding = errors.New("record: malformed proof")
)

func (p *Proof) encodeUnsigned() ([]byte, error) {
	if len(p.Attestation) > 255 || len(p.LabelElement) != oprf.ElementSize || len(p.LabelProof) != 64 {
		return nil, fmt.Errorf("%w: field sizes", errProofEncoding)
	}
	b := []byte{ProofVersion, byte(len(p.Attestation))}
	b = append(b, p.Attestation...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Signed.Unix()))
	b = append(b, p.LabelElement...)
	b = append(b, p.LabelProof...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Promise.Time.Unix()))
	return append(b, p.Promise.Signature[:]...), nil
}

func parseProof(b []byte) (*Proof, error) {
	if len(b) < 2 || b[0] != ProofVersion || len(b) != 2+int(b[1])+8+oprf.ElementSize+64+translog.PromiseSize+64 {
		return nil, errProofEncoding
	}
	n := int(b[1])
	p := &Proof{Attestation: bytes.Clone(b[2 : 2+n])}
	r := b[2+n:]
	at := func(v []byte) (time.Time, bool) {
		u := binary.BigEndian.Uint64(v)
		return time.Unix(int64(u), 0).UTC(), u <= 1<<40
	}
	var ok1, ok2 bool
	p.Signed, ok1 = at(r[:8])
	p.LabelElement = bytes.Clone(r[8 : 8+oprf.ElementSize])
	r = r[8+oprf.ElementSize:]
	p.LabelProof = bytes.Clone(r[:64])
	p.Promise.Time, ok2 = at(r[64:72])
	p.Promise.Signature = [64]byte(r[72:136])
	p.Signature = [64]byte(r[136:200])
	if !ok1 || !ok2 {
		return nil, errProofEncoding
	}
	return p, nil
}

func signatureDigest(prefixedJSON, unsignedProof []byte) []byte {
	h := sha256.New()
	h.Write([]byte(SignatureContext))
	h.Write([]byte{0})
	h.Write(prefixedJSON)
	h.Write(unsignedProof)
	return h.Sum(nil)
}

// SealProved is Seal with a publisher proof: it signs r and p with key,
// the credential key that p.Attestation attests, sets p.Signature and seals
// both.
func SealProved(recordKey [32]byte, r Record, p *Proof, key *ecdsa.PrivateKey) ([]byte, error) {
	js, err := encodeJSON(r)
	if err != nil {
		return nil, err
	}
	unsigned, err := p.encodeUnsigned()
	if err != nil {
		return nil, err
	}
	prefixed := binary.BigEndian.AppendUint16(nil, uint16(len(js)))
	prefixed = append(prefixed, js...)
	rs, ss, err := ecdsa.Sign(rand.Reader, key, signatureDigest(prefixed, unsigned))
	if err != nil {
		return nil, err
	}
	rs.FillBytes(p.Signature[:32])
	ss.FillBytes(p.Signature[32:])
	body := append(prefixed, binary.BigEndian.AppendUint16(nil, uint16(len(unsigned)+64))...)
	body = append(append(body, unsigned...), p.Signature[:]...)
	padded, err := pad(body)
	if err != nil {
		return nil, err
	}
	return seal(recordKey, padded)
}

// OpenProved is Open that also returns the record's proof, or nil for a
// record sealed without one. It checks the proof's encoding only; Verify
// checks the proof.
func OpenProved(recordKey [32]byte, ciphertext []byte) (Record, *Proof, error) {
	padded, err := decrypt(recordKey, ciphertext)
	if err != nil {
		return Record{}, nil, err
	}
	return parsePadded(padded)
}

// Trust is what a caller checks a proof against.
type Trust struct {
	Roots    []*x509.Certificate // the CAs the caller trusts
	OPRFKey  *oprf.PublicKey     // the directory's pinned OPRF key: labels are checked under it
	LogKey   note.Verifier       // the directory's pinned log key; nil if it has none
	Unlogged bool                // accept a record whose credential has no valid promise
	// DeferLabel takes the proved label's DLEQ proof on trust, for the
	// caller to check with Verified.CheckLabel when it checks the
	// promise's entry against the log: that check, not the lookup, is
	// where a wrong label would show (docs/protocol.md §11.1).
	DeferLabel bool
}

// Verified is what a proof established.
type Verified struct {
	Root        *x509.Certificate // the trusted CA that attested the key
	Attestation *credential.Attestation
	Label       [32]byte         // the number's log label
	Entry       []byte           // the promised `credential` entry
	Promise     translog.Promise // the log's promise for Entry
	Logged      bool             // Promise verified under Trust.LogKey
	Signed      time.Time        // when the publisher signed the record
	// The proved label as the record carries it; with Trust.DeferLabel
	// its proof is not yet checked (CheckLabel).
	LabelElement, LabelProof []byte
}

// CheckLabel checks, under the directory's OPRF key, the label proof that
// Verify took on trust with Trust.DeferLabel: that Label is number's log
// label. It returns ErrLabel if not.
func (v *Verified) CheckLabel(pk *oprf.PublicKey, number string) error {
	y, err := oprf.VerifyProved(pk, []byte(labelInfo), []byte(number), v.LabelElement, v.LabelProof)
	if err != nil || oprf.LogLabel(y) != v.Label {
		return ErrLabel
	}
	return nil
}

// Verify checks p, the proof of r as opened for number (E.164), at now.
// Errors are the Err values above, in the order of the checks.
func (p *Proof) Verify(r Record, number string, now time.Time, t Trust) (*Verified, error) {
	if p == nil {
		return nil, ErrUnsigned
	}
	a, err := credential.ParseAttestation(p.Attestation)
	if err != nil {
		return nil, ErrAttestation
	}
	root, err := a.Verify(t.Roots)
	switch {
	case errors.Is(err, credential.ErrUntrustedCA):
		return nil, ErrUntrustedCA
	case err != nil:
		return nil, ErrAttestation
	}
	if a.Number != number {
		return nil, ErrOtherNumber
	}
	if len(p.signed) != sha256.Size { // a Proof not from OpenProved
		return nil, ErrSignature
	}
	sig := p.Signature
	if !ecdsa.Verify(a.PublicKey, p.signed, new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, ErrSignature
	}
	// The credential's validity includes its minute of backdating.
	if p.Signed.Before(a.NotBefore) || p.Signed.After(a.NotAfter) || p.Signed.After(now.Add(clockSkew)) {
		return nil, ErrNotValidThen
	}
	if now.After(a.NotAfter.Add(RecordGrace)) {
		return nil, ErrStale
	}
	var y []byte
	if t.DeferLabel {
		y, err = oprf.ProvedOutput([]byte(labelInfo), []byte(number), p.LabelElement)
	} else {
		y, err = oprf.VerifyProved(t.OPRFKey, []byte(labelInfo), []byte(number), p.LabelElement, p.LabelProof)
	}
	if err != nil {
		return nil, ErrLabel
	}
	v := &Verified{Root: root, Attestation: a, Label: oprf.LogLabel(y), Promise: p.Promise, Signed: p.Signed,
		LabelElement: p.LabelElement, LabelProof: p.LabelProof}
	if v.Entry, err = translog.CredentialEntryOf(v.Label, a.CertHash, a.KeyHash(), sha256.Sum256(root.Raw), a.NotBefore, a.NotAfter); err != nil {
		return nil, ErrAttestation
	}
	if t.LogKey != nil && p.Promise.Time.Before(now.Add(clockSkew)) && translog.VerifyPromise(t.LogKey, v.Entry, p.Promise) == nil {
		v.Logged = true
	} else if !t.Unlogged {
		return nil, ErrUnlogged
	}
	return v, nil
}

// labelInfo is the POPRF info of log labels (docs/protocol.md §14.2).
const labelInfo = "blindex log label v1"
