package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// TestBackupRestore takes a snapshot of a running server through the CLI,
// restores it into a new data directory with copies of the key files, and
// finds the records there.
func TestBackupRestore(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	s := startServer(t, data)
	bobPublishes(t, s, "https://chat.example.org/u/bob")
	id, idFile := operatorIdentity(t, tmp)
	snap := filepath.Join(tmp, "snapshot.age")
	if out, err := exec.Command(binary, "backup", "--data", data, "--recipient", id.Recipient().String(), "--out", snap).CombinedOutput(); err != nil {
		t.Fatalf("backup while the server runs: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "backup", "--data", data, "--recipient", id.Recipient().String(), "--out", snap).CombinedOutput(); err == nil {
		t.Errorf("backup overwrote an existing file: %s", out)
	}
	// A classic X25519 recipient is refused: restore could not open the
	// snapshot. So is a missing --recipient, with what to give instead.
	classic, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--recipient", classic.Recipient().String(), "--out", snap + ".x25519"}, "not a post-quantum age recipient"},
		{[]string{"--recipient", id.Recipient().String() + "," + classic.Recipient().String(), "--out", snap + ".mixed"}, "recipient 2 is not a post-quantum"},
		{[]string{"--out", snap + ".none"}, "age-keygen -y"},
	} {
		out, err := exec.Command(binary, append([]string{"backup", "--data", data}, c.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("backup %v: err %v, output %q, want %q", c.args, err, out, c.want)
		}
		if _, err := os.Stat(c.args[len(c.args)-1]); err == nil {
			t.Errorf("backup %v left a file", c.args)
		}
	}

	// The log grows past the snapshot, and the server publishes it.
	before, _ := os.ReadFile(filepath.Join(data, "keys", "log.checkpoint"))
	cli(t, s, "bob", "publish", "--app", "org.example.video", "--endpoint", "sip:bob@example.com", "--visibility", "public")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if after, _ := os.ReadFile(filepath.Join(data, "keys", "log.checkpoint")); len(after) > 0 && !bytes.Equal(after, before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not publish the grown log")
		}
	}
	s.stop(t)

	restored := filepath.Join(tmp, "restored")
	if err := os.MkdirAll(filepath.Join(restored, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"keys/oprf.key.age", "keys/log.key.age", "keys/log.checkpoint", "keys/ca.key.age", "keys/ca.pem", "identity.age-key"} {
		b, err := os.ReadFile(filepath.Join(data, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(restored, f), b, 0o600)
	}
	out, err := exec.Command(binary, "restore", "--data", restored, "--identity", idFile, "--in", snap).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Restored") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "restore", "--data", restored, "--identity", idFile, "--in", snap).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "already has a database") {
		t.Errorf("restore over a database: %v %s", err, out)
	}
	// The snapshot's log lacks the checkpoint the server published since:
	// serving it would fork the log, so serve refuses until told.
	out, err = exec.Command(binary, "serve", "--data", restored, "--addr", "127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "restored from an older backup") || !strings.Contains(string(out), "--accept-log-rollback") {
		t.Fatalf("serve on an older backup: %v\n%s", err, out)
	}
	s2 := startServer(t, restored, "--accept-log-rollback")
	if got := lookupApps(t, s2, "bob", bob); !slices.Equal(got[bob], []string{"org.example.chat"}) {
		t.Errorf("after restore bob sees %v", got)
	}
	s2.stop(t)
	b, _ := os.ReadFile(snap)
	sc := string(b)
	if strings.Contains(sc, "SQLite format") {
		t.Error("the snapshot is not encrypted")
	}
}

// bobPublishes verifies Bob's number and publishes his chat record.
func bobPublishes(t *testing.T, s *process, endpoint string) {
	t.Helper()
	cli(t, s, "bob", "verify", "start", bob)
	cli(t, s, "bob", "verify", "confirm", s.lastCode(t))
	cli(t, s, "bob", "publish", "--app", "org.example.chat", "--endpoint", endpoint, "--visibility", "public")
}

// operatorIdentity makes the operator's age identity for snapshots and
// writes it to a file in dir.
func operatorIdentity(t *testing.T, dir string) (*age.HybridIdentity, string) {
	t.Helper()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "operator.key")
	if err := os.WriteFile(file, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id, file
}
