package translog

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// An OwnerCount is the log key's signed word for how many owners the
// directory counts, from which it derives the bucket prefix length. A
// caller bounds the prefix it accepts by this count, not by the directory's
// bare word, and keeps the count; an audit that reads the whole log reports
// a count larger than the number of labels with a credential that could
// still vouch for a record, with the count as signed evidence
// (docs/protocol.md §10.2).
//
// The signature is the log key's note signature over the text
//
//	blindex owners v1
//	<origin>
//	<owners, decimal>
//	<time, Unix seconds>
//
// each line ending in LF.
type OwnerCount struct {
	Owners    int64
	Time      time.Time
	Signature [64]byte
}

const ownersHeader = "blindex owners v1"

func ownersText(origin string, owners int64, at time.Time) string {
	return ownersHeader + "\n" + origin + "\n" + strconv.FormatInt(owners, 10) + "\n" +
		strconv.FormatInt(at.Unix(), 10) + "\n"
}

// SignOwners signs an owner count with the log key.
func (l *Log) SignOwners(owners int64, at time.Time) (OwnerCount, error) {
	return SignOwners(l.signer, owners, at)
}

// SignOwners signs an owner count with the log key, whose name is the
// log's origin.
func SignOwners(signer note.Signer, owners int64, at time.Time) (OwnerCount, error) {
	at = at.Truncate(time.Second).UTC()
	sig, err := signer.Sign([]byte(ownersText(signer.Name(), owners, at)))
	if err != nil {
		return OwnerCount{}, err
	}
	if len(sig) != 64 {
		return OwnerCount{}, fmt.Errorf("translog: log key made a %d-byte signature", len(sig))
	}
	return OwnerCount{Owners: owners, Time: at, Signature: [64]byte(sig)}, nil
}

// VerifyOwners checks an owner count under the log key.
func VerifyOwners(logKey note.Verifier, c OwnerCount) error {
	if c.Owners < 0 || !logKey.Verify([]byte(ownersText(logKey.Name(), c.Owners, c.Time)), c.Signature[:]) {
		return fmt.Errorf("translog: owner count signature invalid")
	}
	return nil
}

// Note returns c as a signed note under logKey: the evidence an auditor
// shows when the log cannot account for the count.
func (c OwnerCount) Note(logKey note.Verifier) []byte {
	text := ownersText(logKey.Name(), c.Owners, c.Time)
	h := binary.BigEndian.AppendUint32(nil, logKey.KeyHash())
	sig := base64.StdEncoding.EncodeToString(append(h, c.Signature[:]...))
	return []byte(text + "\n\u2014 " + logKey.Name() + " " + sig + "\n")
}
