package directory_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	// Page 1 must be in the file itself, not in the WAL, where a newer
	// copy of the header would hide the damage below.
	conn, err := sql.Open("sqlite3", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
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

// TestStoreDownPostgres runs a server on a PostgreSQL cluster of its own
// and stops the cluster (immediate shutdown, as a crash) while the server
// runs: the API answers 503 "storage unavailable" with Retry-After, and
// /readyz fails; once the cluster is back, the same server answers again
// without a restart of its own.
func TestStoreDownPostgres(t *testing.T) {
	if os.Getenv("BLINDEX_SKIP_POSTGRES") != "" {
		t.Skip("BLINDEX_SKIP_POSTGRES is set")
	}
	// Not t.TempDir: its parents are private to this user, and the
	// cluster may run as another (pg.sh, as root, runs it as postgres).
	dir, err := os.MkdirTemp("", "blindex-pg-down-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("../scripts/pg.sh", "stop", dir).Run() })
	cmd := exec.Command("../scripts/pg.sh", "start", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/pg.sh start: %v\n%s", err, stderr.String())
	}
	dsn := strings.TrimSpace(string(out))
	pgctl := func(args ...string) {
		t.Helper()
		bin, _ := os.ReadFile(filepath.Join(dir, "bin"))
		owner, _ := os.ReadFile(filepath.Join(dir, "owner"))
		cmd := append([]string{filepath.Join(strings.TrimSpace(string(bin)), "pg_ctl"), "-D", filepath.Join(dir, "data"), "-w", "-s"}, args...)
		if os.Geteuid() == 0 { // the cluster runs as its owner, as pg.sh started it
			cmd = append([]string{"runuser", "-u", strings.TrimSpace(string(owner)), "--"}, cmd...)
		}
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
		}
	}
	srv, err := server.Start(t.Context(), server.Config{DataDir: t.TempDir(), DB: dsn, Addr: "127.0.0.1:0", SMS: sms.NewInbox()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ready := func() int {
		resp, err := http.Get(srv.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	start := func() (int, string, string) {
		resp, err := http.Post(srv.URL()+"/v1/verify/start", "application/json", strings.NewReader(`{"number":"`+bob+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), body.Error
	}
	if c := ready(); c != http.StatusOK {
		t.Fatalf("/readyz with the cluster up: %d", c)
	}
	if c, _, msg := start(); c != http.StatusOK {
		t.Fatalf("verify start with the cluster up: %d %s", c, msg)
	}

	pgctl("-m", "immediate", "stop")
	if c := ready(); c != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the cluster down: %d, want 503", c)
	}
	if c, ra, msg := start(); c != http.StatusServiceUnavailable || ra == "" || msg != "storage unavailable: retry later" {
		t.Errorf("verify start with the cluster down: %d %q, Retry-After %q; want 503 storage unavailable with Retry-After", c, msg, ra)
	}
	// The log's endpoints too: a reader retries rather than gives up.
	for _, path := range []string{"/log/checkpoint", "/log/tile/0/000.p/1"} {
		resp, err := http.Get(srv.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s with the cluster down: %d, Retry-After %q; want 503 with Retry-After", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}

	pgctl("-l", filepath.Join(dir, "data", "server.log"), "-o",
		"-c listen_addresses='' -c unix_socket_directories='"+dir+"' -c port=5432", "start")
	deadline := time.Now().Add(30 * time.Second)
	for ready() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover after the cluster came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if c, _, msg := start(); c != http.StatusOK {
		t.Errorf("verify start after the cluster came back: %d %s", c, msg)
	}
}
