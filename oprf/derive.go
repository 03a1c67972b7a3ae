package oprf

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// HKDF info labels for the values derived from an OPRF output. They are part
// of the protocol: changing one changes every derived value.
const (
	LabelIndex     = "blindex v1 index"
	LabelRecordKey = "blindex v1 record key"
	LabelPseudonym = "blindex v1 caller pseudonym"
	LabelRecordID  = "blindex v1 record id"
	LabelLogLabel  = "blindex v1 log label"
)

// Index returns the directory index for an OPRF output y: where an owner's
// records are stored and looked up. It panics if len(y) != OutputSize.
func Index(y []byte) [DerivedSize]byte { return derive(y, LabelIndex) }

// RecordKey returns the key that unlocks the records stored under y's index.
// It panics if len(y) != OutputSize.
func RecordKey(y []byte) [DerivedSize]byte { return derive(y, LabelRecordKey) }

// Pseudonym returns the caller pseudonym for y, the form in which numbers
// appear in access lists. It panics if len(y) != OutputSize.
func Pseudonym(y []byte) [DerivedSize]byte { return derive(y, LabelPseudonym) }

// LogLabel returns the name under which the transparency log records a
// number's credentials and state. y must be the output under the log-label
// POPRF info, not the lookup info, so that the public log is no lookup
// oracle. It panics if len(y) != OutputSize.
func LogLabel(y []byte) [DerivedSize]byte { return derive(y, LabelLogLabel) }

// RecordID names one app's record under an owner's index without revealing the app:
// HKDF with ikm = y and info = "blindex v1 record id" || 0x00 || appID.
// It panics if len(y) != OutputSize.
func RecordID(y []byte, appID string) [DerivedSize]byte {
	return derive(y, LabelRecordID+"\x00"+appID)
}

// derive is HKDF-SHA256 with an empty salt: y is already uniformly random.
// It panics if y is not an OPRF output, since a short y (say, empty) would
// silently give every caller the same index and key.
func derive(y []byte, info string) [DerivedSize]byte {
	if len(y) != OutputSize {
		panic("oprf: derivation input is not an OPRF output")
	}
	k, err := hkdf.Key(sha256.New, y, nil, info, DerivedSize)
	if err != nil {
		panic("oprf: hkdf: " + err.Error()) // only for lengths far above DerivedSize
	}
	return [DerivedSize]byte(k)
}
