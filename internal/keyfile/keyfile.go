// Package keyfile stores server secrets (the OPRF key, the CA key) in files
// encrypted with age, readable only by the server's age identity.
//
// A thief who copies the data directory but not the identity file learns
// nothing from the key files. Files are written with mode 0600, atomically
// (temporary file, fsync, rename), so a crash never leaves a half-written key.
package keyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"blindex.dev/blindex/internal/atomicfile"
)

var (
	// ErrMissing means a key file or identity file does not exist.
	ErrMissing = errors.New("keyfile: file missing")
	// ErrCorrupt means a file exists but cannot be read as what it should be.
	ErrCorrupt = errors.New("keyfile: file unreadable or corrupt")
)

// maxFileSize bounds what we read: keys and identities are tiny.
const maxFileSize = 64 << 10

// GenerateIdentity creates a new age identity file at path. It refuses to
// overwrite an existing file, so a key can never be replaced silently.
func GenerateIdentity(path string) (*age.HybridIdentity, error) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		return nil, err
	}
	content := "# blindex server key-encryption identity (age). Keep it apart from the data.\n" +
		"# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if err := writeNew(path, []byte(content)); err != nil {
		return nil, err
	}
	return id, nil
}

// LoadIdentity reads an age identity file written by GenerateIdentity (or by
// age-keygen -pq).
func LoadIdentity(path string) (age.Identity, age.Recipient, error) {
	b, err := readSmall(path)
	if err != nil {
		return nil, nil, err
	}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := age.ParseHybridIdentity(line)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: not an age hybrid identity", ErrCorrupt, path)
		}
		return id, id.Recipient(), nil
	}
	return nil, nil, fmt.Errorf("%w: %s: no identity in file", ErrCorrupt, path)
}

// Write encrypts secret to r and writes it to path (mode 0600). It refuses to
// overwrite an existing file.
func Write(path string, r age.Recipient, secret []byte) error {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return err
	}
	if _, err := w.Write(secret); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return writeNew(path, buf.Bytes())
}

// Read decrypts the key file at path with id.
func Read(path string, id age.Identity) ([]byte, error) {
	b, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(bytes.NewReader(b), id)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: cannot decrypt with the configured identity", ErrCorrupt, path)
	}
	secret, err := io.ReadAll(io.LimitReader(r, maxFileSize))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: truncated or tampered", ErrCorrupt, path)
	}
	return secret, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrMissing, path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%w: %s: too large", ErrCorrupt, path)
	}
	return b, nil
}

// writeNew writes data to a new file at path via a synced temporary file and a
// hard link, which fails if path already exists.
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := atomicfile.WriteTemp(dir, ".tmp-"+filepath.Base(path)+"-*", data, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keyfile: refusing to overwrite %s", path)
		}
		return err
	}
	return atomicfile.SyncDir(dir)
}
