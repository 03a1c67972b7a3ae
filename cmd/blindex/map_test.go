package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Each map command has its own flags, and its -h lists only those.
func TestMapHelp(t *testing.T) {
	for _, sub := range []string{"keygen", "build", "sign", "verify", "show"} {
		cmd := exec.Command(binary, "map", sub, "-h")
		cmd.Env = append(os.Environ(), "HOME=/home/user", "XDG_CONFIG_HOME=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("blindex map %s -h: %v (asking for help is not an error)", sub, err)
		}
		golden := filepath.Join("testdata", "help", "map-"+sub+".txt")
		if *update {
			os.WriteFile(golden, out, 0o644)
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -run TestMapHelp -update)", err)
		}
		if !bytes.Equal(out, want) {
			t.Errorf("blindex map %s -h: help changed:\n%s", sub, out)
		}
	}
}

func TestMapUsage(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"map"}, "Usage: blindex map keygen|build|sign|verify|show"},
		{[]string{"map", "frobnicate"}, `unknown map command "frobnicate"`},
		// Another command's flag is not this one's.
		{[]string{"map", "keygen", "--out", filepath.Join(dir, "x"), "--key", filepath.Join(dir, "k"), "n"}, "flag provided but not defined: -out"},
		{[]string{"map", "verify", "--key", filepath.Join(dir, "k"), "map.signed"}, "flag provided but not defined: -key"},
		{[]string{"map", "keygen", "--key", filepath.Join(dir, "k")}, "Usage: blindex map keygen --key FILE NAME"},
	} {
		cmd := exec.Command(binary, c.args...)
		cmd.Env = append(os.Environ(), "BLINDEX_CONFIG=")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("blindex %s: %v, want exit status 2 and %q:\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "k")); err == nil {
		t.Error("a refused keygen wrote its key")
	}
}

// A config file's section for a map command is named "map" and the
// command: "[map keygen]". A "[map]" section applies to every map command
// that has the flag, as before the subcommands had flags of their own.
func TestMapConfigSection(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "signer.key")
	conf := filepath.Join(dir, "blindex.conf")
	if err := os.WriteFile(conf, []byte("[map keygen]\nkey = "+key+"\n[map verify]\nmap-quorum = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "map", "keygen", "example.org/federation")
	cmd.Env = append(os.Environ(), "BLINDEX_CONFIG="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "example.org/federation+") {
		t.Fatalf("map keygen with --key from [map keygen]: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(key); err != nil || !strings.HasPrefix(string(b), "PRIVATE+KEY+example.org/federation+") {
		t.Errorf("the key file: %v %.30q", err, b)
	}

	key2 := filepath.Join(dir, "second.key")
	if err := os.WriteFile(conf, []byte("[map]\nkey = "+key2+"\nmap-quorum = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(binary, "map", "keygen", "example.org/second")
	cmd.Env = append(os.Environ(), "BLINDEX_CONFIG="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("map keygen with --key from [map] (which also names a flag keygen lacks): %v\n%s", err, out)
	}
	if _, err := os.Stat(key2); err != nil {
		t.Errorf("[map]'s key was not used: %v", err)
	}
}
