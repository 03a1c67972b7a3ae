package directory_test

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/internal/storeerr"
	"blindex.dev/blindex/server"
)

// TestStoreDownReadOnlyHeader damages byte 18 of the SQLite header (the
// write version), which made SQLite open the file read-only and the server
// start and fail every write with 500: the server now refuses to start,
// naming the file and the restore.
func TestStoreDownReadOnlyHeader(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.Start(t.Context(), server.Config{DataDir: dir, Addr: "127.0.0.1:0", SMS: sms.NewInbox()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	db := filepath.Join(dir, "blindex.db")
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{3}, 18); err != nil {
		t.Fatal(err)
	}
	f.Close()
	srv, err = server.Start(t.Context(), server.Config{DataDir: dir, Addr: "127.0.0.1:0", SMS: sms.NewInbox()})
	if err == nil {
		srv.Close()
		t.Fatal("server started on a database whose header says read-only")
	}
	if !errors.Is(err, storeerr.ErrUnavailable) || !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "backup") {
		t.Errorf("refusal %q: want storeerr.ErrUnavailable naming %s and the backup", err, db)
	}
}

// TestStoreDownDiskFull runs a server on a small tmpfs and fills it: the
// API answers 503 with Retry-After, not 500, and /readyz fails; once space
// is freed both recover. Mounting needs root.
func TestStoreDownDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	srv, err := server.Start(t.Context(), server.Config{DataDir: filepath.Join(mnt, "data"), Addr: "127.0.0.1:0", SMS: sms.NewInbox()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	get := func() int {
		resp, err := http.Get(srv.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(); c != http.StatusOK {
		t.Fatalf("/readyz before the disk is full: %d", c)
	}
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	if c := get(); c != http.StatusServiceUnavailable {
		t.Errorf("/readyz on a full disk: %d, want 503", c)
	}
	// A verification start writes: its answer says the store is down.
	resp, err := http.Post(srv.URL()+"/v1/verify/start", "application/json", strings.NewReader(`{"number":"`+bob+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("write on a full disk: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	os.Remove(filler)
	if c := get(); c != http.StatusOK {
		t.Errorf("/readyz once space is freed: %d", c)
	}
}
