package translog_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"blindex.dev/blindex/translog"
	"golang.org/x/mod/sumdb/note"
)

func TestPromise(t *testing.T) {
	l, _, v := newLog(t, "example.com/promise", 0)
	_, _, other := newLog(t, "example.com/other", 0)
	entry := []byte("blindex-log/v1 oprf-key\ninfo x\nkey AAAA\n")
	at := time.Date(2026, 12, 7, 12, 0, 0, 500, time.UTC)
	p, err := l.Promise(entry, at)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Time.Equal(at.Truncate(time.Second)) {
		t.Errorf("promise time %v, want whole seconds of %v", p.Time, at)
	}
	if err := translog.VerifyPromise(v, entry, p); err != nil {
		t.Fatalf("VerifyPromise: %v", err)
	}
	if err := translog.VerifyPromise(other, entry, p); !errors.Is(err, translog.ErrPromise) {
		t.Errorf("other log's key: err = %v, want ErrPromise", err)
	}
	if err := translog.VerifyPromise(v, append(bytes.Clone(entry), 'x'), p); !errors.Is(err, translog.ErrPromise) {
		t.Errorf("other entry: err = %v, want ErrPromise", err)
	}
	later := p
	later.Time = p.Time.Add(time.Second)
	if err := translog.VerifyPromise(v, entry, later); !errors.Is(err, translog.ErrPromise) {
		t.Errorf("other time: err = %v, want ErrPromise", err)
	}
	// The evidence is an ordinary signed note under the log key, and never
	// a checkpoint.
	n, err := note.Open(p.Note(v, entry), note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(evidence): %v", err)
	}
	want := "blindex log promise v1\nexample.com/promise\n" + "1796644800\n"
	if len(n.Text) < len(want) || n.Text[:len(want)] != want {
		t.Errorf("evidence text %q, want it to start %q", n.Text, want)
	}
	if _, err := translog.OpenCheckpoint(p.Note(v, entry), v); err == nil {
		t.Error("a promise opened as a checkpoint")
	}
}
