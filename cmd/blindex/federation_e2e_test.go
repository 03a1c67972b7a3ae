package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fedServer is one directory of a federation run through the binary.
type fedServer struct {
	name, prefixes string
	data, addr     string
	transcript     string
	s              *process
}

func (d *fedServer) url() string { return "http://" + d.addr }

// observations returns the transcript's observations from line skip on.
func (d *fedServer) observations(t *testing.T, skip int) []struct {
	Endpoint string
	Count    int
} {
	t.Helper()
	b, err := os.ReadFile(d.transcript)
	if err != nil {
		t.Fatal(err)
	}
	var out []struct {
		Endpoint string
		Count    int
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for i := 0; sc.Scan(); i++ {
		if i < skip {
			continue
		}
		var o struct {
			Endpoint string
			Count    int
		}
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

func (d *fedServer) lines(t *testing.T) int {
	b, err := os.ReadFile(d.transcript)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// TestFederationThroughCLI runs a federation of three directories (+1, +44
// and everything else) as separate "blindex serve" processes with one map
// made by "blindex map", and an address book spanning all three looked up
// through it. Each directory's transcript shows that it evaluated only the
// numbers in its own range. This is the README's federated lookup.
func TestFederationThroughCLI(t *testing.T) {
	tmp := t.TempDir()
	dirs := []*fedServer{{name: "us", prefixes: "+1"}, {name: "uk", prefixes: "+44"}, {name: "intl", prefixes: "+"}}
	// First starts make each directory's keys; then each trusts the others'
	// CAs (callers of every range look up in every directory), at an address
	// that stays the same, since the map names it.
	for _, d := range dirs {
		d.data = filepath.Join(tmp, d.name)
		startServer(t, d.data).stop(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		d.addr = ln.Addr().String()
		ln.Close()
		d.transcript = filepath.Join(tmp, d.name+".transcript")
	}
	trust := func(d *fedServer) string {
		var others []string
		for _, o := range dirs {
			if o != d {
				others = append(others, filepath.Join(o.data, "keys", "ca.pem"))
			}
		}
		return strings.Join(others, ",")
	}
	for _, d := range dirs {
		d.s = startProcessAt(t, d.addr, "serve", "--data", d.data, "--trust-ca", trust(d))
	}
	us, uk, intl := dirs[0], dirs[1], dirs[2]

	// The map signer makes its key, builds the map from the directories'
	// published keys, and signs it.
	keyFile, mapText, mapFile := filepath.Join(tmp, "signer.key"), filepath.Join(tmp, "map.txt"), filepath.Join(tmp, "map.signed")
	vkey := strings.TrimSpace(cli(t, us.s, "signer", "map", "keygen", "--key", keyFile, "federation.test/map"))
	build := []string{"map", "build", "--name", "federation.test/map", "--version", "1", "--expires", "24h"}
	for _, d := range dirs {
		build = append(build, "--directory", d.prefixes+"="+d.url())
	}
	cli(t, us.s, "signer", append(build, "--out", mapText)...)
	cli(t, us.s, "signer", "map", "sign", "--key", keyFile, "--out", mapFile, mapText)
	if out := cli(t, us.s, "anyone", "map", "verify", "--map-key", vkey, mapFile); !strings.HasPrefix(out, "OK: map federation.test/map version 1: 3 directories, 3 prefixes") {
		t.Errorf("map verify: %s", out)
	}
	show := cli(t, us.s, "anyone", "map", "show", "--map-key", vkey, mapFile)
	for _, d := range dirs {
		if !strings.Contains(show, d.url()+"\n  prefixes   "+d.prefixes+"\n") {
			t.Errorf("map show lacks %s for %s:\n%s", d.prefixes, d.url(), show)
		}
	}

	// The directories restart with the map: each holds its own prefixes.
	for _, d := range dirs {
		d.s.stop(t)
		d.s = startProcessAt(t, d.addr, "serve", "--data", d.data, "--trust-ca", trust(d),
			"--map", mapFile, "--map-key", vkey, "--public-url", d.url(), "--transcript", d.transcript)
	}
	withMap := func(args ...string) []string { return append(args, "--map", mapFile, "--map-key", vkey) }

	// Owners verify through the map (each code comes from the number's own
	// directory) and publish at their own directory.
	owners := map[string]*fedServer{bob: us, "+447911123456": uk, "+33612345678": intl, carol: us}
	for _, number := range []string{bob, "+447911123456", "+33612345678", carol} {
		user := "owner" + number
		cli(t, us.s, user, withMap("verify", "start", number)...)
		cli(t, us.s, user, withMap("verify", "confirm", owners[number].s.lastCode(t))...)
		if number != carol {
			cli(t, us.s, user, withMap("publish", "--app", "org.example.chat", "--endpoint", "https://chat.example/"+number[1:], "--visibility", "public")...)
		}
	}
	// Without the map, the wrong directory refuses and names the right one.
	out, err := cliErr(t, us.s, "stray", "verify", "start", "+447911123456")
	if err == nil || !strings.Contains(out, "HTTP 421") || !strings.Contains(out, uk.url()) {
		t.Errorf("verify start of a +44 number at the +1 directory: %v\n%s", err, out)
	}

	before := map[*fedServer]int{}
	for _, d := range dirs {
		before[d] = d.lines(t)
	}
	book := []string{"+447911123456", bob, "+81312345678", dave, "+33612345678", "+447400123456"}
	out = cli(t, us.s, "owner"+carol, withMap(append([]string{"lookup"}, book...)...)...)
	t.Logf("federated lookup:\n%s", out)
	want := "+447911123456:\n  org.example.chat         https://chat.example/447911123456"
	if !strings.Contains(out, want) || !strings.Contains(out, bob+":\n  org.example.chat") || !strings.Contains(out, "+33612345678:\n  org.example.chat") ||
		!strings.Contains(out, dave+": nothing") || !strings.Contains(out, "+81312345678: nothing") || !strings.Contains(out, "+447400123456: nothing") {
		t.Errorf("federated lookup output:\n%s", out)
	}
	if i, j := strings.Index(out, "+447911123456:"), strings.Index(out, bob+":"); i > j {
		t.Errorf("results not in input order:\n%s", out)
	}
	for _, d := range dirs {
		var evals []int
		for _, o := range d.observations(t, before[d]) {
			if o.Endpoint == "evaluate" {
				evals = append(evals, o.Count)
			}
		}
		if !slices.Equal(evals, []int{2}) {
			t.Errorf("%s directory's transcript shows evaluations %v, want one of its 2 numbers", d.name, evals)
		}
	}
	for _, d := range dirs {
		if out := cli(t, d.s, "auditor-"+d.name, "log", "verify"); !strings.Contains(out, "  map         1\n") {
			t.Errorf("%s directory's log lacks the map entry:\n%s", d.name, out)
		}
	}

	// Maps that must be refused.
	signed, err := os.ReadFile(mapFile)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	otherKey := filepath.Join(tmp, "other.key")
	otherVkey := strings.TrimSpace(cli(t, us.s, "signer", "map", "keygen", "--key", otherKey, "federation.test/map"))
	expiredText := filepath.Join(tmp, "expired.txt")
	cli(t, us.s, "signer", append(slices.Replace(slices.Clone(build), 7, 8, "-1h"), "--out", expiredText)...)
	expired := filepath.Join(tmp, "expired.signed")
	cli(t, us.s, "signer", "map", "sign", "--key", keyFile, "--out", expired, expiredText)
	// A trusted cosigner (the +1 directory's operator) signs alone: a map
	// named after itself that routes every number to it, and the
	// federation's map. With the default quorum of 1 both are refused.
	cosignerKey := filepath.Join(tmp, "cosigner.key")
	cosignerVkey := strings.TrimSpace(cli(t, us.s, "cosigner", "map", "keygen", "--key", cosignerKey, "us.federation.test"))
	grabText, grab := filepath.Join(tmp, "grab.txt"), filepath.Join(tmp, "grab.signed")
	cli(t, us.s, "cosigner", "map", "build", "--name", "us.federation.test", "--version", "2", "--directory", "+="+us.url(), "--out", grabText)
	cli(t, us.s, "cosigner", "map", "sign", "--key", cosignerKey, "--out", grab, grabText)
	cosignedOnly := filepath.Join(tmp, "cosigned-only.signed")
	cli(t, us.s, "cosigner", "map", "sign", "--key", cosignerKey, "--out", cosignedOnly, mapText)
	for _, c := range []struct {
		name, file, key, want string
	}{
		{"tampered", write("tampered", bytes.Replace(signed, []byte("prefix +44\n"), []byte("prefix +45\n"), 1)), vkey, "the map was altered"},
		{"expired", expired, vkey, "the map has expired"},
		{"unsigned", mapText, vkey, "not a signed note"},
		{"unknown signer", mapFile, otherVkey, "not signed by a known map key"},
		{"cosigner's own", grab, vkey + "," + cosignerVkey, "the map names another federation"},
		{"cosigner only", cosignedOnly, vkey + "," + cosignerVkey, "not signed by a known map key named \"federation.test/map\""},
	} {
		for _, args := range [][]string{{"map", "verify", "--map-key", c.key, c.file}, {"lookup", "--map", c.file, "--map-key", c.key, bob}} {
			out, err := cliErr(t, us.s, "owner"+carol, args...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("%s map, blindex %s: %v\n%s", c.name, args[0], err, out)
			}
		}
	}

	// A map that gives the +44 directory another key than it holds: its
	// numbers are refused, the others still answered, and the exit status
	// says something failed.
	text, err := os.ReadFile(mapText)
	if err != nil {
		t.Fatal(err)
	}
	var ukKey, usKey string
	for block := range strings.SplitSeq(string(text), "directory ") {
		for line := range strings.SplitSeq(block, "\n") {
			if k, ok := strings.CutPrefix(line, "oprf-key "); ok && strings.HasPrefix(block, uk.url()) {
				ukKey = k
			} else if ok && strings.HasPrefix(block, us.url()) {
				usKey = k
			}
		}
	}
	wrongText := write("wrong.txt", bytes.Replace(text, []byte("oprf-key "+ukKey+"\n"), []byte("oprf-key "+usKey+"\n"), 1))
	wrong := filepath.Join(tmp, "wrong.signed")
	cli(t, us.s, "signer", "map", "sign", "--key", keyFile, "--out", wrong, wrongText)
	// Carol's credential in a fresh state directory (hers has accepted
	// the good map of version 1).
	fresh := filepath.Join(statesDir(t), "carol-fresh")
	if err := os.MkdirAll(fresh, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"credential.key", "credential.pem"} {
		b, err := os.ReadFile(filepath.Join(statesDir(t), "owner"+carol, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(fresh, f), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	out, err = cliErr(t, us.s, "carol-fresh", "lookup", "--map", wrong, "--map-key", vkey, "+447911123456", bob)
	if err == nil || !strings.Contains(out, "+447911123456: "+uk.url()+": client: the directory's parameters differ from those the federation map gives it: another OPRF public key") ||
		!strings.Contains(out, bob+":\n  org.example.chat") {
		t.Errorf("lookup with a map that gives the +44 directory another key: %v\n%s", err, out)
	}
}
