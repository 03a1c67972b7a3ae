package credential

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// An Attestation is a credential in compact form, signed by the CA that
// issued it: the number, the certificate's hash, the key, the proof time and
// the validity, in 163 bytes plus the number's digits where the certificate
// takes about 500. A publisher puts its attestation in every record it
// signs, so that a caller can check, against the roots it trusts, that a CA
// certified the signing key for the number (docs/protocol.md §11.1).
//
// Encoding (integers big-endian, times Unix seconds):
//
//	version     1   AttestationVersion
//	digits      1+n the number's E.164 digits without '+', length first (1 to 15)
//	cert hash   32  SHA-256 of the credential's DER
//	public key  33  the credential's P-256 key, SEC 1 compressed
//	proof       8   the credential's proof time (§6)
//	not before  8
//	not after   8
//	root id     8   the first 8 bytes of SHA-256 of the issuing root's DER
//	signature   64  ECDSA P-256 by the root's key, r || s (32 bytes each), over
//	                SHA-256(AttestationContext || 0x00 || SHA-256(root DER) || version..not after)
type Attestation struct {
	Number    string // "+" and digits
	CertHash  [32]byte
	PublicKey *ecdsa.PublicKey
	ProofTime time.Time
	NotBefore time.Time
	NotAfter  time.Time
	RootID    [8]byte

	raw []byte
}

const (
	AttestationVersion = 1
	AttestationContext = "blindex attestation v1"
	// MaxAttestationSize is the encoding's length for a 15-digit number.
	MaxAttestationSize = 1 + 1 + 15 + 32 + 33 + 3*8 + 8 + 64
)

var (
	// ErrAttestation is a malformed attestation or one whose signature
	// fails under the root it names.
	ErrAttestation = errors.New("credential: attestation invalid")
	// ErrUntrustedCA is an attestation by a root that is not trusted.
	ErrUntrustedCA = errors.New("credential: attestation by an untrusted CA")
)

// RootID is the first 8 bytes of the SHA-256 of a root's DER: how an
// attestation names the root that signed it.
func RootID(root *x509.Certificate) [8]byte {
	h := sha256.Sum256(root.Raw)
	return [8]byte(h[:8])
}

// Attest returns the attestation of a credential this CA issued (DER).
func (ca *CA) Attest(leafDER []byte) ([]byte, error) {
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, fmt.Errorf("credential: attest: %w", err)
	}
	number, err := Number(leaf)
	if err != nil {
		return nil, err
	}
	proof, err := ProofTime(leaf)
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, ErrKey
	}
	a := &Attestation{Number: number, CertHash: sha256.Sum256(leafDER), PublicKey: pub,
		ProofTime: proof, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, RootID: RootID(ca.root)}
	body := a.body()
	r, s, err := ecdsa.Sign(rand.Reader, ca.key, attestationDigest(ca.root, body))
	if err != nil {
		return nil, err
	}
	return append(body, sig64(r, s)...), nil
}

func (a *Attestation) body() []byte {
	digits := a.Number[1:]
	b := []byte{AttestationVersion, byte(len(digits))}
	b = append(b, digits...)
	b = append(b, a.CertHash[:]...)
	b = append(b, compressP256(a.PublicKey)...)
	for _, t := range []time.Time{a.ProofTime, a.NotBefore, a.NotAfter} {
		b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
	}
	return append(b, a.RootID[:]...)
}

func attestationDigest(root *x509.Certificate, body []byte) []byte {
	rootHash := sha256.Sum256(root.Raw)
	h := sha256.New()
	h.Write([]byte(AttestationContext))
	h.Write([]byte{0})
	h.Write(rootHash[:])
	h.Write(body)
	return h.Sum(nil)
}

// compressP256 encodes a key in SEC 1 compressed form: the parity of y, then x.
func compressP256(k *ecdsa.PublicKey) []byte {
	u, err := k.Bytes() // 0x04 || x || y
	if err != nil || len(u) != 65 {
		panic("credential: attestation key is not a P-256 key")
	}
	return append([]byte{0x02 | u[64]&1}, u[1:33]...)
}

func decompressP256(c []byte) (*ecdsa.PublicKey, error) {
	x, y := elliptic.UnmarshalCompressed(elliptic.P256(), c)
	if x == nil {
		return nil, errors.New("not a point")
	}
	u := make([]byte, 65)
	u[0] = 4
	x.FillBytes(u[1:33])
	y.FillBytes(u[33:])
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), u)
}

func sig64(r, s *big.Int) []byte {
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// ParseAttestation decodes an attestation. It checks the encoding only;
// Verify checks the signature.
func ParseAttestation(b []byte) (*Attestation, error) {
	bad := func(why string) (*Attestation, error) { return nil, fmt.Errorf("%w: %s", ErrAttestation, why) }
	if len(b) < 2 || b[0] != AttestationVersion {
		return bad("unknown version")
	}
	n := int(b[1])
	if n < 1 || n > 15 || len(b) != 2+n+32+33+24+8+64 {
		return bad("wrong length")
	}
	digits := b[2 : 2+n]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return bad("number is not digits")
		}
	}
	p := b[2+n:]
	a := &Attestation{Number: "+" + string(digits), raw: bytes.Clone(b)}
	copy(a.CertHash[:], p[:32])
	key, err := decompressP256(p[32:65])
	if err != nil {
		return bad("public key is not a compressed P-256 point")
	}
	a.PublicKey = key
	times := []*time.Time{&a.ProofTime, &a.NotBefore, &a.NotAfter}
	for i, t := range times {
		v := binary.BigEndian.Uint64(p[65+8*i:])
		if v > 1<<40 {
			return bad("time out of range")
		}
		*t = time.Unix(int64(v), 0).UTC()
	}
	copy(a.RootID[:], p[89:97])
	if !a.NotBefore.Before(a.NotAfter) {
		return bad("not before is not before not after")
	}
	return a, nil
}

// Bytes returns the encoding a came from.
func (a *Attestation) Bytes() []byte { return bytes.Clone(a.raw) }

// KeyHash is the SHA-256 of the key's SubjectPublicKeyInfo DER: the key
// hash that the log and the holder rule use.
func (a *Attestation) KeyHash() [32]byte {
	der, err := x509.MarshalPKIXPublicKey(a.PublicKey)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return sha256.Sum256(der)
}

// Verify checks a's signature under the root among roots that it names,
// and returns that root. A root that is not among roots gives
// ErrUntrustedCA; a signature that fails, ErrAttestation.
func (a *Attestation) Verify(roots []*x509.Certificate) (*x509.Certificate, error) {
	for _, root := range roots {
		if RootID(root) != a.RootID {
			continue
		}
		pub, ok := root.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			continue
		}
		sig := a.raw[len(a.raw)-64:]
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if ecdsa.Verify(pub, attestationDigest(root, a.raw[:len(a.raw)-64]), r, s) {
			return root, nil
		}
		return nil, fmt.Errorf("%w: bad signature", ErrAttestation)
	}
	return nil, ErrUntrustedCA
}
