package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The config file fills what neither the command line nor the environment
// set, with the flags' own names, and a mistake in it fails fast.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "blindex.conf")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newServe := func() (*flag.FlagSet, *string, *int, *time.Duration, *stringList) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		data := fs.String("data", "blindex-data", "")
		mb := fs.Int("min-bucket-owners", 16, "")
		li := fs.Duration("log-interval", time.Second, "")
		w := &stringList{}
		fs.Var(w, "witness", "")
		return fs, data, mb, li, w
	}
	t.Setenv("BLINDEX_CONFIG", path)
	write(`# shared
server = http://ignored.example
[serve]
data = /var/lib/blindex
min-bucket-owners = 32
log-interval = 5s
witness = http://w1=k1, http://w2=k2
[monitor]
json = true
`)
	t.Setenv("BLINDEX_MIN_BUCKET_OWNERS", "64")
	fs, data, mb, li, w := newServe()
	if err := parse(fs, []string{"--log-interval", "2s"}); err != nil {
		t.Fatal(err)
	}
	if *data != "/var/lib/blindex" || *mb != 64 || *li != 2*time.Second || len(*w) != 2 || (*w)[1] != "http://w2=k2" {
		t.Fatalf("data %q, min-bucket-owners %d (env wins), log-interval %v (flag wins), witnesses %q", *data, *mb, *li, *w)
	}
	for _, bad := range []string{"[serve]\nno-such-flag = 1\n", "[serve]\nlog-interval = soon\n", "[serve]\njust words\n"} {
		write(bad)
		fs, _, _, _, _ := newServe()
		if err := parse(fs, nil); err == nil || !strings.Contains(err.Error(), path+":2") {
			t.Errorf("config %q: %v, want an error naming line 2", bad, err)
		}
	}
}

// "log verify" reads a "[log verify]" section, as docs/operations.md names
// it for a command with a subcommand, and still reads the "[log]" it read
// before. An impossible quorum shows the setting arrived: it is refused
// before any request is made.
func TestConfigLogVerifySection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blindex.conf")
	t.Setenv("BLINDEX_CONFIG", path)
	t.Setenv("BLINDEX_SERVER", "http://127.0.0.1:1") // never reached
	t.Setenv("BLINDEX_STATE", t.TempDir())
	for _, section := range []string{"[log verify]", "[log]"} {
		if err := os.WriteFile(path, []byte(section+"\nquorum = 5\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr strings.Builder
		err := cmdLog(t.Context(), []string{"verify"}, &stdout, &stderr)
		if err != errUsage || !strings.Contains(stderr.String(), "--quorum 5") {
			t.Errorf("%s quorum = 5: %v, stderr %q; want the quorum refused as bad usage", section, err, stderr.String())
		}
	}
	if err := os.WriteFile(path, []byte("[log verify]\nno-such-flag = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if err := cmdLog(t.Context(), []string{"verify"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "blindex log verify has no flag --no-such-flag") {
		t.Errorf("[log verify] with an unknown flag: %v, want it named", err)
	}
}
