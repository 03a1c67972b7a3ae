// Package atomicfile replaces files durably: after a crash a file is either
// its old self or its new self, never a mix or empty.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, mode mode: it writes a temporary file in
// the same directory, syncs it, renames it over path and syncs the
// directory, since the rename is durable only once the directory is.
func Write(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := WriteTemp(dir, ".tmp-*", data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// WriteTemp writes data to a new temporary file in dir (named after
// pattern, as os.CreateTemp), with mode mode, syncs and closes it, and
// returns its name. The caller puts it in place, or removes it.
func WriteTemp(dir, pattern string, data []byte, mode os.FileMode) (string, error) {
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// SyncDir syncs directory dir, which makes the creation, renaming or
// removal of the files in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
