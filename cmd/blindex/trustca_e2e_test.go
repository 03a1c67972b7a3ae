package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCallerChoosesCAs is issue 17's scenario through the real binaries: a
// directory with its built-in CA and a standalone CA it trusts; Bob verifies
// at the standalone CA, Dave at the built-in one, and both publish public
// records. Carol's lookup names each record's CA by its root fingerprint,
// and with --trust-ca she accepts only the CA she names.
func TestCallerChoosesCAs(t *testing.T) {
	tmp := t.TempDir()
	standalone := startProcess(t, "ca", "--data", filepath.Join(tmp, "ca"))
	standalonePEM := filepath.Join(tmp, "ca", "keys", "ca.pem")
	dir := startServer(t, filepath.Join(tmp, "dir"), "--trust-ca", standalonePEM)
	builtinPEM := filepath.Join(tmp, "dir", "keys", "ca.pem")

	cli(t, dir, "bob", "verify", "--ca", standalone.url, "start", bob)
	cli(t, dir, "bob", "verify", "--ca", standalone.url, "confirm", standalone.lastCode(t))
	cli(t, dir, "dave", "verify", "start", dave)
	cli(t, dir, "dave", "verify", "confirm", dir.lastCode(t))
	cli(t, dir, "carol", "verify", "start", carol)
	cli(t, dir, "carol", "verify", "confirm", dir.lastCode(t))
	cli(t, dir, "bob", "publish", "--app", "org.example.chat", "--endpoint", "https://chat.example.org/u/bob", "--visibility", "public")
	cli(t, dir, "dave", "publish", "--app", "org.example.chat", "--endpoint", "https://chat.example.org/u/dave", "--visibility", "public")

	standaloneFP, builtinFP := rootFingerprint(t, standalonePEM), rootFingerprint(t, builtinPEM)
	if standaloneFP == builtinFP {
		t.Fatal("the two CAs have one root")
	}
	type result struct {
		Number  string `json:"number"`
		Records []struct {
			App      string `json:"app"`
			Endpoint string `json:"endpoint"`
			CA       string `json:"ca"`
			Logged   bool   `json:"logged"`
		} `json:"records"`
		Dropped map[string]int `json:"dropped"`
	}
	lookup := func(args ...string) map[string]result {
		t.Helper()
		out := cli(t, dir, "carol", append([]string{"lookup", "--json"}, args...)...)
		var rs []result
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("lookup --json: %v\n%s", err, out)
		}
		m := map[string]result{}
		for _, r := range rs {
			m[r.Number] = r
		}
		return m
	}

	// The default trust is the directory's published roots: both records,
	// each naming the CA that vouched for it, both logged.
	got := lookup(bob, dave)
	for _, c := range []struct{ number, endpoint, ca string }{
		{bob, "https://chat.example.org/u/bob", standaloneFP},
		{dave, "https://chat.example.org/u/dave", builtinFP},
	} {
		r := got[c.number]
		if len(r.Records) != 1 || r.Records[0].Endpoint != c.endpoint || r.Records[0].CA != c.ca || !r.Records[0].Logged {
			t.Errorf("%s: %+v, want %s vouched for by %s and logged", c.number, r, c.endpoint, c.ca)
		}
		if len(r.Dropped) != 0 {
			t.Errorf("%s: dropped %v", c.number, r.Dropped)
		}
	}

	// Trusting the standalone CA alone: Bob's record, and Dave's dropped as
	// vouched for by an untrusted CA.
	got = lookup("--trust-ca", standalonePEM, bob, dave)
	if r := got[bob]; len(r.Records) != 1 || r.Records[0].CA != standaloneFP {
		t.Errorf("bob under --trust-ca standalone: %+v", r)
	}
	if r := got[dave]; len(r.Records) != 0 || r.Dropped["untrusted_ca"] != 1 || len(r.Dropped) != 1 {
		t.Errorf("dave under --trust-ca standalone: %+v, want no record and one untrusted_ca drop", r)
	}
	// And the other way round.
	got = lookup("--trust-ca", builtinPEM, bob, dave)
	if len(got[bob].Records) != 0 || got[bob].Dropped["untrusted_ca"] != 1 || len(got[dave].Records) != 1 {
		t.Errorf("under --trust-ca built-in: %+v", got)
	}

	// The human output names the CA by subject and a short fingerprint, and
	// says on stderr what was dropped.
	out, _ := cliErr(t, dir, "carol", "lookup", "--trust-ca", standalonePEM, bob, dave)
	if !strings.Contains(out, standaloneFP[:16]) || !strings.Contains(out, "CA \"") {
		t.Errorf("human lookup output does not name the CA:\n%s", out)
	}
	if !strings.Contains(out, dave+": nothing") || !strings.Contains(out, "dropped (untrusted_ca: 1)") {
		t.Errorf("human lookup output for the dropped record:\n%s", out)
	}
	// A --trust-ca file without a certificate is a clear error.
	empty := filepath.Join(tmp, "empty.pem")
	os.WriteFile(empty, []byte("not a certificate\n"), 0o600)
	if out, err := cliErr(t, dir, "carol", "lookup", "--trust-ca", empty, bob); err == nil || !strings.Contains(out, "--trust-ca") {
		t.Errorf("lookup --trust-ca with no certificate: %v\n%s", err, out)
	}
}

// rootFingerprint is the hex SHA-256 of the DER of the first certificate in
// a PEM file.
func rootFingerprint(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	h := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(h[:])
}
