package client_test

import (
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/translog"
)

func alarmKinds(r *client.Report) []string {
	var ks []string
	for _, a := range r.Alarms {
		ks = append(ks, string(a.Kind))
	}
	return ks
}

func monitor(t *testing.T, c *client.Client) *client.Report {
	t.Helper()
	rep, err := c.Monitor(t.Context(), client.MonitorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// An SMS hijack: someone else verifies the owner's number through the same
// directory. The owner's monitor finds the credential issued to another
// key, and the takeover once the hijacker uses it.
func TestMonitorCatchesHijack(t *testing.T) {
	inbox := sms.NewInbox()
	srv := startServer(t, inbox, directory.Config{})
	const number = "+14155550100"
	owner := register(t, srv, inbox, t.TempDir(), number, 0)
	publishPublic(t, owner, "sip:owner@example.com")
	if rep := monitor(t, owner); len(rep.Alarms) != 0 || !rep.StateOK || rep.Mine < 3 {
		t.Fatalf("clean log: alarms %v, state ok %v, mine %d", alarmKinds(rep), rep.StateOK, rep.Mine)
	}
	// A second run reads nothing new and stays quiet.
	if rep := monitor(t, owner); len(rep.Alarms) != 0 || rep.Scanned != 0 {
		t.Fatalf("second run: alarms %v, scanned %d", alarmKinds(rep), rep.Scanned)
	}
	// Renewing is the owner's own doing: no alarm.
	if err := owner.Renew(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rep := monitor(t, owner); len(rep.Alarms) != 0 {
		t.Fatalf("after renewal: alarms %v", alarmKinds(rep))
	}

	time.Sleep(1100 * time.Millisecond) // the hijacker's proof must be later by a second
	hijacker := register(t, srv, inbox, t.TempDir(), number, 0)
	// The credential, and the hijacker's key joining the number's holders
	// at once, each raise an alarm, before the hijacker uses it; the
	// owner's key is on notice.
	alarms := collectAlarms(t, owner, "credential", "holder")
	e, err := translog.Parse([]byte(alarms["credential"].Evidence[0]))
	if err != nil || e.Kind != translog.Credential {
		t.Fatalf("evidence is not the credential entry: %v", err)
	}
	h, err := translog.Parse([]byte(alarms["holder"].Evidence[0]))
	if err != nil || h.Kind != translog.Holder || h.Event != translog.Join || h.Key != e.Key {
		t.Fatalf("holder evidence: %v %+v", err, h)
	}
	key := hex.EncodeToString(h.Key[:])
	if !strings.Contains(alarms["holder"].Message, "blindex holders --evict "+key) {
		t.Errorf("the holder alarm does not say how to evict the key: %s", alarms["holder"].Message)
	}
	rep := monitor(t, owner)
	if rep.NoticeUntil == nil || rep.NoticeUntil.Before(time.Now().Add(directory.DefaultReproofWindow-time.Minute)) {
		t.Errorf("the owner's notice: %v, want about %v from now", rep.NoticeUntil, directory.DefaultReproofWindow)
	}
	// The hijacker's record is served; the owner's is hidden, not gone.
	publishPublic(t, hijacker, "sip:thief@example.com")
	if rep := monitor(t, owner); !rep.StateOK || len(rep.Alarms) != 0 {
		t.Errorf("after the hijacker published: alarms %v, state ok %v; want none: its records are its own", alarmKinds(rep), rep.StateOK)
	}
	// The owner proves the number again with its key, and evicts the
	// hijacker at once: its record and key are gone, the owner's record is
	// served again.
	time.Sleep(1100 * time.Millisecond)
	if _, err := owner.Verify(t.Context(), number); err != nil {
		t.Fatal(err)
	}
	if err := owner.Confirm(t.Context(), inbox.Code(number)); err != nil {
		t.Fatal(err)
	}
	if rep := monitor(t, owner); rep.NoticeUntil != nil {
		t.Errorf("the owner is still on notice after proving the number again: %v", rep.NoticeUntil)
	}
	if n, err := owner.Evict(t.Context(), h.Key); err != nil || n != 1 {
		t.Fatalf("Evict = %d, %v; want 1 record retired", n, err)
	}
	var ce *client.Error
	if _, err := hijacker.Lookup(t.Context(), number); !errors.As(err, &ce) || ce.Status != 401 {
		t.Errorf("the evicted hijacker's lookup: %v, want 401", err)
	}
}

// The owner's allowlist is widened straight in the database, past the
// server's write path and its log: the monitor still catches it.
func TestMonitorCatchesDatabaseEdit(t *testing.T) {
	inbox := sms.NewInbox()
	dataDir := t.TempDir()
	srv, err := server.Start(t.Context(), server.Config{DataDir: dataDir, Addr: "127.0.0.1:0", SMS: inbox})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	owner := register(t, srv, inbox, t.TempDir(), "+14155550100", 0)
	err = owner.Publish(t.Context(), record.Record{App: "org.example.chat", Endpoint: "sip:owner@example.com",
		Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)},
		client.Access{Visibility: acl.Allowlist, Allow: []string{"+12015550123"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep := monitor(t, owner); len(rep.Alarms) != 0 || !rep.StateOK {
		t.Fatalf("before the edit: alarms %v", alarmKinds(rep))
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dataDir, "blindex.db")+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`INSERT INTO acl_members (idx, holder, record_id, kind, pseudonym)
		SELECT idx, holder, record_id, kind, randomblob(32) FROM acl_members WHERE kind = 1`)
	if err != nil {
		t.Fatalf("widening the allowlist: %v", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("widening the allowlist: %v (%d rows)", err, n)
	}
	rep := monitor(t, owner)
	if !slices.Equal(alarmKinds(rep), []string{"stored-state"}) || rep.StateOK {
		t.Fatalf("after the edit: alarms %v, state ok %v", alarmKinds(rep), rep.StateOK)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode())
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A directory restored from an old copy (rolled back), or one whose copy
// went on with another history (forked), is caught by the writing client
// and by the monitor, with both signed checkpoints as evidence.
func TestForkAndRollbackDetected(t *testing.T) {
	inbox := sms.NewInbox()
	dirA := t.TempDir()
	start := func(dir string) *server.Running {
		srv, err := server.Start(t.Context(), server.Config{DataDir: dir, Addr: "127.0.0.1:0", SMS: inbox})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	a := start(dirA)
	ownerState := t.TempDir()
	owner := register(t, a, inbox, ownerState, "+14155550100", 0)
	publishPublic(t, owner, "sip:one@example.com")
	a.Close()
	snapshot := t.TempDir()
	copyDir(t, dirA, snapshot) // an old backup, keys included
	fork := t.TempDir()
	copyDir(t, dirA, fork)

	a = start(dirA)
	owner, _ = client.New(client.Config{Server: a.URL(), StateDir: ownerState})
	publishPublic(t, owner, "sip:two@example.com") // the owner sees a larger log
	monitor(t, owner)

	// The fork: the copy goes on with a different history of the same length and more.
	f := start(fork)
	other := register(t, f, inbox, t.TempDir(), "+12015550123", 0)
	publishPublic(t, other, "sip:other@example.com")
	publishPublic(t, other, "sip:other2@example.com")
	forked, _ := client.New(client.Config{Server: f.URL(), StateDir: ownerState})
	f.Housekeep(t.Context())
	rep := waitAlarm(t, forked)
	if !slices.Equal(alarmKinds(rep), []string{"fork"}) || len(rep.Alarms[0].Evidence) != 2 {
		t.Fatalf("forked log: alarms %v", alarmKinds(rep))
	}
	var fe *translog.ForkError
	if err := forked.Publish(t.Context(), record.Record{App: "org.example.chat", Endpoint: "sip:x@example.com",
		Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}, client.Access{Visibility: acl.Public}); !errors.As(err, &fe) {
		t.Fatalf("publishing to the forked log: %v, want a ForkError", err)
	}

	// The rollback: the old backup, with nothing appended since.
	r := start(snapshot)
	rolled, _ := client.New(client.Config{Server: r.URL(), StateDir: ownerState})
	if rep := waitAlarm(t, rolled); !slices.Equal(alarmKinds(rep), []string{"fork"}) {
		t.Fatalf("rolled-back log: alarms %v", alarmKinds(rep))
	}
}

// collectAlarms runs the monitor until it has raised alarms of exactly the
// given kinds: the log publishes its checkpoint once a second, so new
// entries may take a run or two to appear.
func collectAlarms(t *testing.T, c *client.Client, kinds ...string) map[string]client.Alarm {
	t.Helper()
	got := map[string]client.Alarm{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, a := range monitor(t, c).Alarms {
			if !slices.Contains(kinds, string(a.Kind)) {
				t.Fatalf("unexpected %s alarm: %s", a.Kind, a.Message)
			}
			got[string(a.Kind)] = a
		}
		if len(got) == len(kinds) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("alarms %v, want %v", got, kinds)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitAlarm runs the monitor until the server has published a checkpoint
// past the one at startup (at most a few seconds).
func waitAlarm(t *testing.T, c *client.Client) *client.Report {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rep := monitor(t, c)
		if len(rep.Alarms) > 0 || time.Now().After(deadline) {
			return rep
		}
		time.Sleep(200 * time.Millisecond)
	}
}
