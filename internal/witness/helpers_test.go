package witness_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testLog is a tlog-tiles style log held in memory: the RFC 6962 tree of its
// entries, signed into C2SP checkpoints with an Ed25519 note key.
type testLog struct {
	origin  string
	signer  note.Signer
	vkey    string
	entries []string
	hashes  []tlog.Hash // stored hashes, in tlog.StoredHashIndex order
}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{origin: origin, signer: signer, vkey: vkey}
}

// fork returns a log with the same origin and key that shares the first keep
// entries of l and then diverges: what a log showing a split view would do.
func (l *testLog) fork(t testing.TB, keep int) *testLog {
	t.Helper()
	f := &testLog{origin: l.origin, signer: l.signer, vkey: l.vkey}
	f.append(t, l.entries[:keep]...)
	return f
}

func (l *testLog) append(t testing.TB, entries ...string) {
	t.Helper()
	for _, e := range entries {
		h, err := tlog.StoredHashes(int64(len(l.entries)), []byte(e), l.reader())
		if err != nil {
			t.Fatal(err)
		}
		l.hashes = append(l.hashes, h...)
		l.entries = append(l.entries, e)
	}
}

// grow appends n entries named after the log and their index.
func (l *testLog) grow(t testing.TB, n int, tag string) {
	t.Helper()
	for range n {
		l.append(t, fmt.Sprintf("%s entry %d %s", l.origin, len(l.entries), tag))
	}
}

func (l *testLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("hash %d not stored", x)
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// text is the C2SP checkpoint body for the first n entries.
func (l *testLog) text(t testing.TB, n int64) string {
	t.Helper()
	root, err := tlog.TreeHash(n, l.reader())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s\n%d\n%s\n", l.origin, n, base64.StdEncoding.EncodeToString(root[:]))
}

// checkpoint is the log-signed checkpoint note for the first n entries.
func (l *testLog) checkpoint(t testing.TB, n int64) []byte {
	t.Helper()
	return l.sign(t, l.text(t, n))
}

func (l *testLog) sign(t testing.TB, text string) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *testLog) verifier(t testing.TB) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// proof is the consistency proof from size old to size n.
func (l *testLog) proof(t testing.TB, n, old int64) tlog.TreeProof {
	t.Helper()
	p, err := tlog.ProveTree(n, old, l.reader())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newCosigner returns a torchwood cosignature/v1 signer, the implementation
// litewitness signs with, independent of this package's verifier.
func newCosigner(t testing.TB, name string) *torchwood.CosignatureSigner {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := torchwood.NewCosignatureSigner(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cosignLines returns the signature lines s adds to the note signed.
func cosignLines(t testing.TB, signed []byte, s note.Signer) []byte {
	t.Helper()
	_, err := note.Open(signed, note.VerifierList())
	un, ok := err.(*note.UnverifiedNoteError)
	if !ok {
		t.Fatalf("opening note: %v", err)
	}
	n := un.Note
	b, err := note.Sign(&note.Note{Text: n.Text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b[len(n.Text)+1:]
}
