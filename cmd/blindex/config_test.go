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
