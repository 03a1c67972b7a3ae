package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestJSONOutputs: every command a script drives has --json, and its
// output parses into what the command did.
func TestJSONOutputs(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	s := startServer(t, data)
	decode := func(out string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
	}

	var start struct {
		CodeExpires time.Time `json:"code_expires"`
	}
	decode(cli(t, s, "bob", "verify", "--json", "start", bob), &start)
	if until := time.Until(start.CodeExpires); until < time.Minute || until > time.Hour {
		t.Errorf("verify start --json: the code expires in %v", until)
	}
	var cred credentialJSON
	decode(cli(t, s, "bob", "verify", "--json", "confirm", s.lastCode(t)), &cred)
	if cred.Number != bob || time.Until(cred.Expires) < 24*time.Hour {
		t.Errorf("verify confirm --json: %+v", cred)
	}
	var who credentialJSON
	decode(cli(t, s, "bob", "whoami", "--json"), &who)
	if who != cred {
		t.Errorf("whoami --json %+v, verify said %+v", who, cred)
	}

	var pub struct {
		App, Visibility string
		Allowed, Denied int
		Expires         time.Time
	}
	decode(cli(t, s, "bob", "publish", "--json", "--app", "org.example.chat", "--endpoint", "https://chat.example.org/u/bob",
		"--visibility", "allowlist", "--allow", carol, "--allow", alice, "--deny", dave), &pub)
	if pub.App != "org.example.chat" || pub.Visibility != "allowlist" || pub.Allowed != 2 || pub.Denied != 1 || pub.Expires.IsZero() {
		t.Errorf("publish --json: %+v", pub)
	}

	var epochs struct {
		Started bool
		Current int
	}
	out, err := exec.Command(binary, "rotate", "--data", data, "--status", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("rotate --status --json: %v\n%s", err, out)
	}
	decode(string(out), &epochs)
	if epochs.Started || epochs.Current != 0 {
		t.Errorf("rotate --status --json: %+v", epochs)
	}

	id, _ := operatorIdentity(t, tmp)
	snap := filepath.Join(tmp, "snapshot.age")
	out, err = exec.Command(binary, "backup", "--json", "--data", data, "--recipient", id.Recipient().String(), "--out", snap).CombinedOutput()
	if err != nil {
		t.Fatalf("backup --json: %v\n%s", err, out)
	}
	var snapshot struct {
		Out   string
		Bytes int64
	}
	decode(string(out), &snapshot)
	if snapshot.Out != snap || snapshot.Bytes < 1024 {
		t.Errorf("backup --json: %+v", snapshot)
	}
}
