package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFirstStartThenReopen(t *testing.T) {
	dir := t.TempDir()
	n, err := Open(t.Context(), dir, "", Directory)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Created {
		t.Error("first open did not report new keys")
	}
	pub := n.OPRFKey.Public().Bytes()
	root := n.CA.Root().Raw
	n.Store.Close()

	for _, f := range []string{OPRFKeyFile, CAKeyFile, IdentityFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", f, fi.Mode().Perm())
		}
	}

	n, err = Open(t.Context(), dir, "", Directory)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Store.Close()
	if n.Created || string(n.OPRFKey.Public().Bytes()) != string(pub) || string(n.CA.Root().Raw) != string(root) {
		t.Error("reopening changed the keys")
	}
}

// Every way of losing a key gives a clear error and never a new key.
func TestLostOrDamagedKeys(t *testing.T) {
	cases := map[string]struct {
		damage func(dir string)
		want   string
	}{
		"oprf key deleted": {func(d string) { os.Remove(filepath.Join(d, OPRFKeyFile)) }, "key files missing"},
		"all keys deleted": {func(d string) { os.RemoveAll(filepath.Join(d, "keys")) }, "key files missing"},
		"identity deleted": {func(d string) { os.Remove(filepath.Join(d, IdentityFile)) }, "identity"},
		"oprf key corrupt": {func(d string) {
			p := filepath.Join(d, OPRFKeyFile)
			b, _ := os.ReadFile(p)
			b[len(b)-3] ^= 1
			os.WriteFile(p, b, 0o600)
		}, "corrupt"},
		"ca cert replaced": {func(d string) {
			os.WriteFile(filepath.Join(d, CACertFile), []byte("not a certificate"), 0o644)
		}, "not a PEM certificate"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			n, err := Open(t.Context(), dir, "", Directory)
			if err != nil {
				t.Fatal(err)
			}
			n.Store.Close()
			c.damage(dir)
			n, err = Open(t.Context(), dir, "", Directory)
			if err == nil {
				n.Store.Close()
				t.Fatal("opened a damaged data directory")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestIdentityElsewhere(t *testing.T) {
	dir, secrets := t.TempDir(), t.TempDir()
	id := filepath.Join(secrets, "id")
	n, err := Open(t.Context(), dir, id, Directory)
	if err != nil {
		t.Fatal(err)
	}
	n.Store.Close()
	if _, err := os.Stat(filepath.Join(dir, IdentityFile)); err == nil {
		t.Error("identity written into the data directory despite IdentityPath")
	}
	if _, err := Open(t.Context(), dir, "", Directory); err == nil {
		t.Error("opened without the identity")
	}
}
