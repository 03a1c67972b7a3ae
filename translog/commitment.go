package translog

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"slices"
	"time"

	"blindex.dev/blindex/acl"
)

// A StateRecord is what an owner's state commitment covers of one record:
// everything the owner chose, nothing the server chose.
type StateRecord struct {
	RecordID         [32]byte
	CiphertextSHA256 [32]byte
	Expires          time.Time // committed to in Unix seconds
	ACL              acl.List
}

// Commitment hashes an owner's records and their ACLs. The order of records
// and of ACL entries does not matter. The owner computes it from what it
// published, the server from what it stores; the monitor compares the two.
//
//	SHA-256("blindex state v1\n" || n (8) || for each record by record id:
//	  record id (32) || SHA-256(ciphertext) (32) || expires (8) ||
//	  visibility (1) || #allow (4) || allow sorted (32 each) ||
//	  #deny (4) || deny sorted (32 each))
//
// with big-endian integers.
func Commitment(records []StateRecord) [32]byte {
	rs := slices.Clone(records)
	slices.SortFunc(rs, func(a, b StateRecord) int { return bytes.Compare(a.RecordID[:], b.RecordID[:]) })
	h := sha256.New()
	h.Write([]byte("blindex state v1\n"))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(rs))))
	for _, r := range rs {
		h.Write(r.RecordID[:])
		h.Write(r.CiphertextSHA256[:])
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(r.Expires.Unix())))
		h.Write([]byte{byte(r.ACL.Visibility)})
		for _, list := range [][]acl.Pseudonym{r.ACL.Allow, r.ACL.Deny} {
			ps := slices.Clone(list)
			slices.SortFunc(ps, func(a, b acl.Pseudonym) int { return bytes.Compare(a[:], b[:]) })
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(ps))))
			for _, p := range ps {
				h.Write(p[:])
			}
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Live returns the records that had not expired at t: the set a State entry
// made at t commits to.
func Live(records []StateRecord, t time.Time) []StateRecord {
	var out []StateRecord
	for _, r := range records {
		if r.Expires.Unix() > t.Unix() {
			out = append(out, r)
		}
	}
	return out
}

// StateEntry returns the State entry for the records that the holder key
// published under the owner labelled label, whose stored records are recs,
// made at time at: it commits to those live at at.
func StateEntry(label, key [32]byte, recs []StateRecord, at time.Time) ([]byte, error) {
	live := Live(recs, at)
	e := Entry{Kind: State, Label: label, Key: key, Commitment: Commitment(live), Records: len(live), At: at}
	return e.Marshal()
}

// CredentialEntry returns the Credential entry for cert, issued by issuer
// for the number labelled label.
func CredentialEntry(label [32]byte, cert, issuer *x509.Certificate) ([]byte, error) {
	return CredentialEntryOf(label, sha256.Sum256(cert.Raw), sha256.Sum256(cert.RawSubjectPublicKeyInfo),
		sha256.Sum256(issuer.Raw), cert.NotBefore, cert.NotAfter)
}

// CredentialEntryOf is CredentialEntry from the hashes and times alone: a
// caller rebuilds a record's promised entry from its attestation this way.
func CredentialEntryOf(label, certHash, keyHash, issuerHash [32]byte, notBefore, notAfter time.Time) ([]byte, error) {
	e := Entry{Kind: Credential, Label: label, Cert: certHash, Key: keyHash,
		Issuer: issuerHash, NotBefore: notBefore, NotAfter: notAfter}
	return e.Marshal()
}
