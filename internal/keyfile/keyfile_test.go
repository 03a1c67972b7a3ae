package keyfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTripAndModes(t *testing.T) {
	dir := t.TempDir()
	idPath := filepath.Join(dir, "identity")
	if _, err := GenerateIdentity(idPath); err != nil {
		t.Fatal(err)
	}
	id, rcpt, err := LoadIdentity(idPath)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "oprf.key.age")
	secret := []byte("0123456789abcdef0123456789abcdef")
	if err := Write(keyPath, rcpt, secret); err != nil {
		t.Fatal(err)
	}
	got, err := Read(keyPath, id)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Read = %x, %v", got, err)
	}
	for _, p := range []string{idPath, keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	raw, _ := os.ReadFile(keyPath)
	if bytes.Contains(raw, secret) {
		t.Error("key file holds the secret in plaintext")
	}
	if err := Write(keyPath, rcpt, []byte("other")); err == nil {
		t.Error("Write overwrote an existing key file")
	}
	if _, err := GenerateIdentity(idPath); err == nil {
		t.Error("GenerateIdentity overwrote an existing identity")
	}
}

func TestMissingAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	idPath := filepath.Join(dir, "identity")
	if _, err := GenerateIdentity(idPath); err != nil {
		t.Fatal(err)
	}
	id, rcpt, _ := LoadIdentity(idPath)
	keyPath := filepath.Join(dir, "k.age")
	if _, err := Read(keyPath, id); !errors.Is(err, ErrMissing) {
		t.Errorf("missing file: %v, want ErrMissing", err)
	}
	if err := Write(keyPath, rcpt, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(keyPath)
	for _, i := range []int{0, len(raw) / 2, len(raw) - 1} {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		p := filepath.Join(dir, "bad")
		os.Remove(p)
		if err := os.WriteFile(p, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(p, id); !errors.Is(err, ErrCorrupt) {
			t.Errorf("flip at %d: %v, want ErrCorrupt", i, err)
		}
	}
	otherPath := filepath.Join(dir, "other-identity")
	if _, err := GenerateIdentity(otherPath); err != nil {
		t.Fatal(err)
	}
	other, _, _ := LoadIdentity(otherPath)
	if _, err := Read(keyPath, other); !errors.Is(err, ErrCorrupt) {
		t.Errorf("wrong identity: %v, want ErrCorrupt", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("# nothing\nnot-a-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadIdentity(filepath.Join(dir, "junk")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("junk identity: %v, want ErrCorrupt", err)
	}
}
