package client_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/postgres/pgtest"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/translog"
)

// TestRotationWithLiveClients rotates the lookup epoch while a caller
// looks up without pause: the new epoch starts with an overlap, the owners'
// clients move their records on their own, the old epoch retires and its
// records are deleted, and no lookup ever misses a record. It runs on
// SQLite and on PostgreSQL.
func TestRotationWithLiveClients(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testRotation(t, "") })
	t.Run("postgres", func(t *testing.T) { testRotation(t, pgtest.FreshDSN(t)) })
}

func testRotation(t *testing.T, db string) {
	inbox := sms.NewInbox()
	srv, err := server.Start(t.Context(), server.Config{DataDir: t.TempDir(), DB: db, Addr: "127.0.0.1:0", SMS: inbox,
		Directory: directory.Config{MinBucketOwners: 1, EpochGrace: 500 * time.Millisecond,
			Budget: directory.Budget{Burst: 1 << 20, PerDay: 1 << 20, GlobalPerSecond: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	const caller = "+12015550123"
	owners := []string{"+14155550100", "+14155552671", "+12025550173"}
	var clients []*client.Client
	for i, n := range owners {
		c := register(t, srv, inbox, t.TempDir(), n, 0)
		access := client.Access{Visibility: acl.Public}
		if i == 1 {
			access = client.Access{Visibility: acl.Allowlist, Allow: []string{caller}}
		}
		err = c.Publish(t.Context(), record.Record{App: "org.example.chat", Endpoint: "sip:" + n + "@example.com",
			Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}, access)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	looker := register(t, srv, inbox, t.TempDir(), caller, 0)

	var lookups, failures atomic.Int64
	var firstFailure atomic.Value
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			res, err := looker.Lookup(ctx, owners...)
			if ctx.Err() != nil {
				return
			}
			lookups.Add(1)
			ok := err == nil
			for i := range res {
				ok = ok && len(res[i].Records) == 1 && res[i].Records[0].Endpoint == "sip:"+owners[i]+"@example.com"
			}
			if !ok {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, []any{err, res})
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	time.Sleep(300 * time.Millisecond)
	const overlap = 4 * time.Second
	e, err := directory.StartEpoch(t.Context(), srv.Node.Store, overlap, time.Now())
	if err != nil || e.Current != 1 || e.Previous != 0 {
		t.Fatalf("StartEpoch: %+v, %v", e, err)
	}
	time.Sleep(2500 * time.Millisecond) // the server's view of the epochs refreshes
	// Each owner's client moves its record at its next call.
	for _, c := range clients {
		if err := c.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(overlap + time.Second) // the old epoch retires, and its grace for bucket fetches ends
	srv.Housekeep(t.Context())
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	if f := firstFailure.Load(); failures.Load() > 0 {
		t.Fatalf("%d of %d lookups missed a record during the rotation; first: %v", failures.Load(), lookups.Load(), f)
	}
	if lookups.Load() < 10 {
		t.Fatalf("only %d lookups ran: the test proved little", lookups.Load())
	}
	t.Logf("%d lookups during the rotation, none failed", lookups.Load())

	// The old epoch's records are gone, the new one's serve alone.
	res, err := looker.Lookup(t.Context(), owners...)
	if err != nil || len(res[1].Records) != 1 {
		t.Fatalf("after the rotation: %v %+v", err, res)
	}
	if n, err := srv.Node.Store.DeleteEpochsBefore(t.Context(), 1, time.Now()); err != nil || n != 0 {
		t.Fatalf("records of the retired epoch left: %d, %v", n, err)
	}
	// The new epoch is in the log, and the owners' monitors stay quiet.
	for _, c := range clients {
		rep, err := c.Monitor(t.Context(), client.MonitorConfig{})
		if err != nil || len(rep.Alarms) != 0 {
			t.Fatalf("monitor after the rotation: %v %+v", err, rep)
		}
	}
	audit, err := looker.Audit(t.Context(), client.MonitorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(audit.OPRFKeys, func(e translog.Entry) bool { return e.Info == "blindex lookup v1 epoch 1" }) {
		t.Fatalf("the new epoch's info is not in the log: %+v", audit.OPRFKeys)
	}
}
