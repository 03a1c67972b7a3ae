package translog

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A Promise is the log's signed word that an entry is in the log: like a
// Certificate Transparency SCT, it is given for an entry already appended,
// so every checkpoint signed after Time includes it. A caller keeps the
// promises it accepted; an audit that reads the whole log reports any whose
// entry is missing, with the promise as signed evidence (docs/protocol.md
// §14.7).
//
// The signature is the log key's note signature over the text
//
//	blindex log promise v1
//	<origin>
//	<time, Unix seconds>
//	<leaf hash of the entry, base64>
//
// each line ending in LF. The first line keeps a promise from ever reading
// as a checkpoint, whose first line is the origin.
type Promise struct {
	Time      time.Time
	Signature [64]byte // Ed25519, as in the note's signature line after the key hash
}

// PromiseSize is a promise's size in a record: the time and the signature.
const PromiseSize = 8 + 64

const promiseHeader = "blindex log promise v1"

var ErrPromise = errors.New("translog: log promise invalid")

func promiseText(origin string, entry []byte, at time.Time) string {
	h := tlog.RecordHash(entry)
	return promiseHeader + "\n" + origin + "\n" + strconv.FormatInt(at.Unix(), 10) + "\n" +
		base64.StdEncoding.EncodeToString(h[:]) + "\n"
}

// Promise signs a promise for entry, which must already be appended.
func (l *Log) Promise(entry []byte, at time.Time) (Promise, error) {
	return SignPromise(l.signer, entry, at)
}

// SignPromise signs a promise for entry with the log key, whose name is the
// log's origin.
func SignPromise(signer note.Signer, entry []byte, at time.Time) (Promise, error) {
	at = at.Truncate(time.Second).UTC()
	sig, err := signer.Sign([]byte(promiseText(signer.Name(), entry, at)))
	if err != nil {
		return Promise{}, err
	}
	if len(sig) != 64 {
		return Promise{}, fmt.Errorf("translog: log key made a %d-byte signature", len(sig))
	}
	return Promise{Time: at, Signature: [64]byte(sig)}, nil
}

// VerifyPromise checks p for entry under the log key, whose name is the
// log's origin.
func VerifyPromise(logKey note.Verifier, entry []byte, p Promise) error {
	if !logKey.Verify([]byte(promiseText(logKey.Name(), entry, p.Time)), p.Signature[:]) {
		return ErrPromise
	}
	return nil
}

// Note returns p as a signed note under logKey: the evidence an auditor
// shows when the log does not hold the entry. note.Open with logKey
// verifies it.
func (p Promise) Note(logKey note.Verifier, entry []byte) []byte {
	text := promiseText(logKey.Name(), entry, p.Time)
	// The note signature line names the key by its 4-byte hash.
	h := binary.BigEndian.AppendUint32(nil, logKey.KeyHash())
	sig := base64.StdEncoding.EncodeToString(append(h, p.Signature[:]...))
	return []byte(text + "\n\u2014 " + logKey.Name() + " " + sig + "\n")
}
