package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// TestTwoCAsAndInvites runs the two-CA scenario and the call-authentication
// story through the real binaries: a standalone CA, a directory that trusts
// it besides its built-in CA, and a third CA it does not trust.
func TestTwoCAsAndInvites(t *testing.T) {
	tmp := t.TempDir()
	ca := startProcess(t, "ca", "--data", filepath.Join(tmp, "ca"))
	rogue := startProcess(t, "ca", "--data", filepath.Join(tmp, "rogue"))
	dir := startServer(t, filepath.Join(tmp, "dir"), "--trust-ca", filepath.Join(tmp, "ca", "keys", "ca.pem"))

	// Bob verifies with the built-in CA, Alice with the standalone one.
	cli(t, dir, "bob", "verify", "start", bob)
	cli(t, dir, "bob", "verify", "confirm", dir.lastCode(t))
	cli(t, dir, "alice", "verify", "--ca", ca.url, "start", alice)
	cli(t, dir, "alice", "verify", "--ca", ca.url, "confirm", ca.lastCode(t))
	if strings.Contains(dir.log(), "verification started") && strings.Count(dir.log(), "verification started") != 1 {
		t.Errorf("the directory's built-in CA handled Alice's verification")
	}

	cli(t, dir, "bob", "publish", "--app", "org.example.chat", "--endpoint", "https://chat.example.org/u/bob", "--visibility", "allowlist", "--allow", alice)
	cli(t, dir, "alice", "publish", "--app", "org.example.chat", "--endpoint", "https://chat.example.org/u/alice", "--visibility", "public")
	if got := lookupApps(t, dir, "alice", bob); !slices.Equal(got[bob], []string{"org.example.chat"}) {
		t.Errorf("alice (standalone CA) sees %v", got)
	}
	if got := lookupApps(t, dir, "bob", alice); !slices.Equal(got[alice], []string{"org.example.chat"}) {
		t.Errorf("bob (built-in CA) sees %v", got)
	}

	// A credential from a CA the directory does not trust is refused.
	cli(t, dir, "eve", "verify", "--ca", rogue.url, "start", carol)
	cli(t, dir, "eve", "verify", "--ca", rogue.url, "confirm", rogue.lastCode(t))
	out, err := cliErr(t, dir, "eve", "lookup", bob)
	if err == nil || !strings.Contains(out, "credential not accepted: not issued by a CA this server trusts") {
		t.Errorf("lookup with an untrusted CA's credential: %v\n%s", err, out)
	}

	// Renewal at the standalone CA, without SMS.
	if out := cli(t, dir, "alice", "renew", "--ca", ca.url); !strings.Contains(out, "Renewed.") {
		t.Errorf("renew: %s", out)
	}

	// Alice calls Bob: she signs an invite, Bob verifies it.
	token := strings.TrimSpace(cli(t, dir, "alice", "invite", "sign", bob))
	if strings.Count(token, ".") != 2 {
		t.Fatalf("invite sign printed %q", token)
	}
	out = cli(t, dir, "bob", "invite", "verify", token)
	if !strings.Contains(out, "Verified: "+alice+" is calling "+bob) {
		t.Errorf("invite verify: %s", out)
	}
	// Addressed to someone else, or signed by an untrusted CA: refused.
	if out, err := cliErr(t, dir, "bob", "invite", "verify", "--dest", carol, token); err == nil || !strings.Contains(out, "NOT verified") {
		t.Errorf("invite for another callee: %v %s", err, out)
	}
	eveToken := strings.TrimSpace(cli(t, dir, "eve", "invite", "sign", bob))
	if out, err := cliErr(t, dir, "bob", "invite", "verify", eveToken); err == nil || !strings.Contains(out, "not trusted") {
		t.Errorf("invite from an untrusted CA: %v %s", err, out)
	}
	// A callee can choose its CAs: trusting only the built-in CA refuses Alice.
	builtin := filepath.Join(tmp, "dir", "keys", "ca.pem")
	if _, err := os.Stat(builtin); err != nil {
		t.Fatal(err)
	}
	if out, err := cliErr(t, dir, "bob", "invite", "verify", "--trust-ca", builtin, token); err == nil {
		t.Errorf("invite verified against a root set without its CA: %s", out)
	}
	// And the CA holds no number at rest either.
	ca.stop(t)
	scanForNumbers(t, filepath.Join(tmp, "ca"), ca.log(), alice)
}

// TestWebhookSMS runs verification through the real binary with the webhook
// SMS sender, against a local HTTP server standing in for the operator's
// gateway: it checks the signature the way docs/operations.md says to.
func TestWebhookSMS(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-webhook")
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, append(secret, '\n'), 0o600)
	codes := make(chan string, 4)
	var down atomic.Bool
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get("Blindex-Timestamp")
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(ts + "." + string(body)))
		if r.Header.Get("Blindex-Signature") != "v1="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("webhook signature does not verify")
			w.WriteHeader(401)
			return
		}
		var msg struct{ To, Code string }
		json.Unmarshal(body, &msg)
		if msg.To != bob {
			t.Errorf("webhook to %q", msg.To)
		}
		codes <- msg.Code
	}))
	defer gw.Close()
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--sms", "webhook", "--sms-webhook-url", gw.URL,
		"--sms-webhook-secret-file", secretFile)
	cli(t, s, "bob", "verify", "start", bob)
	if out := cli(t, s, "bob", "verify", "confirm", <-codes); !strings.Contains(out, "Verified.") {
		t.Errorf("confirm: %s", out)
	}
	if strings.Contains(s.log(), `"code"`) {
		t.Errorf("the webhook sender logged a code")
	}

	// A gateway that keeps failing gives the app a clear, retryable error.
	down.Store(true)
	out, err := cliErr(t, s, "carol", "verify", "start", carol)
	if err == nil || !strings.Contains(out, "could not send the code: retry later (HTTP 503, retry after 30s)") {
		t.Errorf("failing gateway: %v %s", err, out)
	}
}
