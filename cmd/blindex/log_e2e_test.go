package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/witness/witnesstest"
)

// exitCode returns the exit status of a cliErr error (0 for nil).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return ee.ExitCode()
}

// untilExit runs the command until it exits with want (the log publishes
// its checkpoint once a second), and returns the last output.
func untilExit(t *testing.T, s *process, user string, want int, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := cliErr(t, s, user, args...)
		code := exitCode(t, err)
		if code == want {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("blindex %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestHijackThroughCLI is the README's hijack story with the real binary:
// someone verifies Bob's number through the same server (an SMS hijack),
// and Bob's monitor raises the alarm with exit status 3.
func TestHijackThroughCLI(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, data)
	cli(t, s, "bob", "verify", "start", bob)
	cli(t, s, "bob", "verify", "confirm", s.lastCode(t))
	cli(t, s, "bob", "publish", "--app", "org.example.chat", "--endpoint", "sip:bob@example.com", "--visibility", "public")
	out := untilExit(t, s, "bob", 0, "monitor")
	if !strings.Contains(out, "OK: no credential but yours") {
		t.Fatalf("monitor on a clean log:\n%s", out)
	}
	t.Logf("blindex monitor (clean):\n%s", out)

	time.Sleep(1100 * time.Millisecond)          // credentials are dated to the second
	cli(t, s, "mallory", "verify", "start", bob) // the code reaches Mallory's SIM
	cli(t, s, "mallory", "verify", "confirm", s.lastCode(t))
	// Mallory's key joins Bob's number at once: the credential and the join
	// are alarms, and Bob's key is on notice (his records hidden).
	out = untilExit(t, s, "bob", 3, "monitor")
	for _, want := range []string{"ALARM credential", "blindex-log/v1 credential", "ALARM holder", "event join", "NOTICE", "blindex holders --evict "} {
		if !strings.Contains(out, want) {
			t.Fatalf("monitor after the hijack lacks %q:\n%s", want, out)
		}
	}
	t.Logf("blindex monitor (after the hijack):\n%s", out)
	cli(t, s, "mallory", "publish", "--app", "org.example.chat", "--endpoint", "sip:mallory@example.com", "--visibility", "public")

	// Bob proves his number again with his key, then evicts Mallory's key,
	// as the alarm says.
	var rep struct {
		Holders []struct {
			KeyHash string `json:"key_hash"`
			You     bool   `json:"you"`
		} `json:"holders"`
	}
	if err := json.Unmarshal([]byte(cli(t, s, "bob", "holders", "--json")), &rep); err != nil || len(rep.Holders) != 2 {
		t.Fatalf("holders --json: %v %+v", err, rep)
	}
	mallory := rep.Holders[0].KeyHash
	if rep.Holders[0].You {
		mallory = rep.Holders[1].KeyHash
	}
	if out, err := cliErr(t, s, "bob", "holders", "--evict", mallory); err == nil || !strings.Contains(out, "prove the number") {
		t.Errorf("evicting without a fresh proof: %v\n%s\nwant refused", err, out)
	}
	time.Sleep(1100 * time.Millisecond)
	cli(t, s, "bob", "verify", "start", bob)
	cli(t, s, "bob", "verify", "confirm", s.lastCode(t))
	if out := cli(t, s, "bob", "holders", "--evict", mallory); !strings.Contains(out, "Evicted "+mallory) || !strings.Contains(out, "1 records") {
		t.Errorf("holders --evict:\n%s", out)
	}
	if out, err := cliErr(t, s, "mallory", "publish", "--app", "org.example.chat", "--endpoint", "sip:mallory@example.com", "--visibility", "public"); err == nil || !strings.Contains(out, "revoked or retired") {
		t.Errorf("the evicted key publishes: %v\n%s", err, out)
	}
	if apps := lookupApps(t, s, "bob", bob)[bob]; !slices.Equal(apps, []string{"org.example.chat"}) {
		t.Errorf("bob's number shows %q after the eviction, want his own record", apps)
	}

	out = cli(t, s, "auditor", "log", "verify")
	if !strings.Contains(out, "entries verified against the signed checkpoint") || !(strings.Contains(out, "credential  2") || strings.Contains(out, "credential  3")) { // Bob's re-proof, if checkpointed yet
		t.Fatalf("log verify:\n%s", out)
	}
	t.Logf("blindex log verify:\n%s", out)
	scanForNumbers(t, data, s.log()+string(logBytes(t, s)), bob)
}

// TestWitnessThroughCLI runs the log with a real, independently written
// witness (torchwood's litewitness) on loopback: it cosigns the server's
// checkpoints, which "log verify --quorum 1" then requires, and refuses the
// checkpoints of a forked copy of the server.
func TestWitnessThroughCLI(t *testing.T) {
	w := witnesstest.Start(t)
	data := filepath.Join(t.TempDir(), "data")
	s := startServer(t, data)
	var cfg api.Config
	resp, err := http.Get(s.url + api.PathConfig)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&cfg)
	resp.Body.Close()
	origin, _, _ := strings.Cut(cfg.LogKey, "+")
	w.AddLog(t, origin, cfg.LogKey)
	s.stop(t)

	spec := w.URL + "=" + w.VerifierKey
	s = startServer(t, data, "--witness", spec)
	cli(t, s, "bob", "verify", "start", bob)
	cli(t, s, "bob", "verify", "confirm", s.lastCode(t))
	cli(t, s, "bob", "publish", "--app", "org.example.chat", "--endpoint", "sip:bob@example.com", "--visibility", "public")
	out := untilExit(t, s, "auditor", 0, "log", "verify", "--witness", w.VerifierKey, "--quorum", "1")
	t.Logf("blindex log verify --quorum 1:\n%s", out)
	// Without the witness's key the quorum cannot be met.
	if out, err := cliErr(t, s, "auditor2", "log", "verify", "--quorum", "1"); exitCode(t, err) != 2 {
		t.Fatalf("--quorum without --witness: exit %d\n%s", exitCode(t, err), out)
	}

	// A fork: a copy of the data directory goes on with another history.
	s.stop(t)
	fork := filepath.Join(t.TempDir(), "fork")
	if out, err := exec.Command("cp", "-a", data, fork).CombinedOutput(); err != nil {
		t.Fatalf("copying the data directory: %v\n%s", err, out)
	}
	s = startServer(t, data, "--witness", spec)
	cli(t, s, "carol", "verify", "start", carol)
	cli(t, s, "carol", "verify", "confirm", s.lastCode(t))
	// Wait until the witness has cosigned the tree with Carol's credential.
	for deadline := time.Now().Add(10 * time.Second); ; {
		out := untilExit(t, s, "auditor", 0, "log", "verify", "--witness", w.VerifierKey, "--quorum", "1")
		if strings.Contains(out, "credential  2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witness did not cosign the grown log:\n%s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	s.stop(t)

	f := startServer(t, fork, "--witness", spec)
	for _, n := range []string{alice, dave} {
		cli(t, f, "forker", "verify", "start", n)
		cli(t, f, "forker", "verify", "confirm", f.lastCode(t))
	}
	time.Sleep(2500 * time.Millisecond) // two publishing rounds
	out, err = cliErr(t, f, "fresh-auditor", "log", "verify", "--witness", w.VerifierKey, "--quorum", "1")
	if exitCode(t, err) != 1 || !strings.Contains(out, "cosignatures") {
		t.Fatalf("the forked log's checkpoint was accepted (exit %d):\n%s", exitCode(t, err), out)
	}
	if !strings.Contains(f.log(), "witness did not cosign") {
		t.Fatalf("the fork's server log shows no refusal:\n%s", f.log())
	}
	t.Logf("the witness refused the fork: %s", out)
	os.RemoveAll(fork)
}

// logBytes fetches every entry bundle of the server's log, for the privacy
// scan: log entries and labels must hold no number in any spelling, and no
// bare hash of one.
func logBytes(t *testing.T, s *process) []byte {
	t.Helper()
	get := func(path string) []byte {
		resp, err := http.Get(s.url + api.PathLog + "/" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return b
	}
	var all []byte
	// The checkpoint is published once a second: wait for the story's entries.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		lines := strings.Split(string(get("checkpoint")), "\n")
		n, err := strconv.ParseInt(lines[1], 10, 64)
		if err != nil {
			t.Fatalf("checkpoint size %q: %v", lines[1], err)
		}
		all = nil
		for start := int64(0); start < n; start += 256 {
			path := fmt.Sprintf("tile/entries/%03d", start/256)
			if w := min(n-start, 256); w < 256 {
				path += fmt.Sprintf(".p/%d", w)
			}
			all = append(all, get(path)...)
		}
		if bytes.Contains(all, []byte("blindex-log/v1 credential")) {
			break
		}
	}
	if !bytes.Contains(all, []byte("blindex-log/v1 credential")) {
		t.Fatalf("the log holds no credential entry: the scan would prove little")
	}
	return all
}
