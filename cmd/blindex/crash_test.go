package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/directory/sqlite"
	"blindex.dev/blindex/record"
)

// crashRounds is how many times TestCrashSafety kills the server;
// docs/threat-model.md reports it.
const crashRounds = 12

// TestCrashSafety SIGKILLs the server at random moments while owners
// publish and change ACLs and new numbers verify, over many rounds. After
// each kill the database passes an integrity check, no acknowledged write
// is lost, and every owner (each with two apps) can write again and sees
// no alarm: a write whose answer the kill lost is settled, not a block.
func TestCrashSafety(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	states := t.TempDir()
	var url string
	newClient := func(name string) *client.Client {
		c, err := client.New(client.Config{Server: url, StateDir: filepath.Join(states, name)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	register := func(s *process, name, number string) error {
		c := newClient(name)
		if _, err := c.Verify(t.Context(), number); err != nil {
			return err
		}
		return c.Confirm(t.Context(), s.lastCode(t))
	}

	const owners = 3
	s := startServer(t, data)
	url = s.url
	for i := range owners {
		if err := register(s, fmt.Sprintf("owner%d", i), fmt.Sprintf("+1415555%04d", 3000+i)); err != nil {
			t.Fatal(err)
		}
	}
	checker, outsider := "+12025550111", "+12025550122"
	for _, n := range []string{checker, outsider} {
		if err := register(s, n, n); err != nil {
			t.Fatal(err)
		}
	}
	// Each owner's second app: the kind of owner a lost answer used to
	// block (issue 19 item 7).
	other := func(v int) record.Record {
		return record.Record{App: "org.example.other", Endpoint: "https://other.example/v" + strconv.Itoa(v),
			Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)}
	}
	for i := range owners {
		if err := newClient(fmt.Sprintf("owner%d", i)).Publish(t.Context(), other(0), client.Access{Visibility: acl.Public}); err != nil {
			t.Fatal(err)
		}
	}
	s.kill(t)

	type ownerState struct {
		mu           sync.Mutex
		ackedVersion int
		// possible holds the ACL states the record may be in: the last
		// acknowledged one ("checker" or "both") and those of writes sent
		// since, whose outcome the kill left unknown.
		possible map[string]bool
	}
	state := make([]*ownerState, owners)
	for i := range state {
		state[i] = &ownerState{possible: map[string]bool{}}
	}
	var verified []string // numbers whose confirm was acknowledged
	var vmu sync.Mutex
	var version atomic.Int64
	aclChecks, exactACL, verifyChecks := 0, 0, 0

	for round := range crashRounds {
		s := startServer(t, data)
		url = s.url
		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for i := range owners {
			c := newClient(fmt.Sprintf("owner%d", i))
			st := state[i]
			wg.Go(func() {
				for n := 0; ctx.Err() == nil; n++ {
					// Pauses between writes let some kills land when no write
					// is in flight, so the ACL check can be exact.
					time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
					if n%2 == 0 {
						v := int(version.Add(1))
						st.mu.Lock()
						st.possible["checker"] = true // a publish replaces the ACL too
						st.mu.Unlock()
						r := record.Record{App: "org.example.crash", Endpoint: "https://x.example/v" + strconv.Itoa(v),
							Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)}
						if c.Publish(ctx, r, client.Access{Visibility: acl.Allowlist, Allow: []string{checker}}) == nil {
							st.mu.Lock()
							st.ackedVersion = max(st.ackedVersion, v)
							st.possible = map[string]bool{"checker": true}
							st.mu.Unlock()
						}
						continue
					}
					allow, label := []string{checker}, "checker"
					if rand.IntN(2) == 0 {
						allow, label = []string{checker, outsider}, "both"
					}
					st.mu.Lock()
					st.possible[label] = true
					st.mu.Unlock()
					if c.SetACL(ctx, "org.example.crash", client.Access{Visibility: acl.Allowlist, Allow: allow}) == nil {
						st.mu.Lock()
						st.possible = map[string]bool{label: true}
						st.mu.Unlock()
					}
				}
			})
		}
		wg.Go(func() { // new numbers verifying
			for i := 0; ctx.Err() == nil; i++ {
				n := fmt.Sprintf("+1415556%02d%02d", round, i)
				if register(s, "v"+n, n) == nil {
					vmu.Lock()
					verified = append(verified, n)
					vmu.Unlock()
				}
			}
		})
		time.Sleep(time.Duration(150+rand.IntN(500)) * time.Millisecond)
		s.kill(t)
		stop()
		wg.Wait()

		// The database is sound after the kill.
		st, err := sqlite.Open(filepath.Join(data, datadir.DBFile))
		if err != nil {
			t.Fatalf("round %d: reopening: %v", round, err)
		}
		if err := st.IntegrityCheck(t.Context()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		st.Close()

		// No acknowledged write is lost.
		s2 := startServer(t, data)
		url = s2.url
		lookupAs := func(number, target string) []record.Record { // the crash app's records
			res, err := newClient(number).Lookup(t.Context(), target)
			if err != nil {
				t.Fatalf("round %d: lookup: %v", round, err)
			}
			var out []record.Record
			for _, r := range res[0].Records {
				if r.App == "org.example.crash" {
					out = append(out, r)
				}
			}
			return out
		}
		for i, o := range state {
			target := fmt.Sprintf("+1415555%04d", 3000+i)
			recs := lookupAs(checker, target)
			got := 0
			if len(recs) == 1 {
				got, _ = strconv.Atoi(strings.TrimPrefix(recs[0].Endpoint, "https://x.example/v"))
			}
			if got < o.ackedVersion {
				t.Errorf("round %d: owner %d: acknowledged version %d lost (found %d)", round, i, o.ackedVersion, got)
			}
			if len(o.possible) > 0 {
				aclChecks++
				if len(o.possible) == 1 {
					exactACL++
				}
				state := "checker"
				if len(lookupAs(outsider, target)) == 1 {
					state = "both"
				}
				if !o.possible[state] {
					t.Errorf("round %d: owner %d: ACL is %q, not the acknowledged one or a later write %v", round, i, state, o.possible)
				}
				o.possible = map[string]bool{state: true}
			}
		}
		// Every owner can write again, and its monitor finds nothing it did
		// not do.
		for i := range owners {
			c := newClient(fmt.Sprintf("owner%d", i))
			if err := c.Publish(t.Context(), other(round+1), client.Access{Visibility: acl.Public}); err != nil {
				t.Errorf("round %d: owner %d cannot publish after the kill: %v", round, i, err)
			}
			rep, err := c.Monitor(t.Context(), client.MonitorConfig{})
			if err != nil {
				t.Errorf("round %d: owner %d: monitor: %v", round, i, err)
			} else if len(rep.Alarms) != 0 || !rep.StateOK {
				for _, a := range rep.Alarms {
					t.Errorf("round %d: owner %d: ALARM %s: %s", round, i, a.Kind, a.Message)
				}
			}
		}
		vmu.Lock()
		for _, n := range verified {
			if _, err := newClient("v"+n).Lookup(t.Context(), checker); err != nil {
				t.Errorf("round %d: credential for acknowledged verification %s refused: %v", round, n, err)
			}
			verifyChecks++
		}
		verified = verified[:0]
		vmu.Unlock()
		s2.stop(t)
	}
	t.Logf("%d kills; versions up to %d; %d ACL checks (%d with a single possible state); %d acknowledged verifications checked",
		crashRounds, version.Load(), aclChecks, exactACL, verifyChecks)
}

// kill SIGKILLs the server: no shutdown, no checkpoint.
func (s *process) kill(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd.Wait()
}
