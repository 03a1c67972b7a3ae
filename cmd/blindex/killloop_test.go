package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/record"
)

// killRounds bounds TestKillLoop; killLoopBudget bounds its time, so that a
// loaded machine runs fewer rounds rather than a longer test.
const (
	killRounds     = 12
	killLoopBudget = 40 * time.Second
)

// TestKillLoop SIGKILLs the server at random moments while owners, two of
// them with two apps, publish, unpublish and change ACLs, and restarts it
// on the same data directory each round. Writes whose answers the kills
// lost are settled by the clients (client.Resync): no owner is ever told
// that the directory logged something it did not cause, nothing
// acknowledged is lost, and afterwards every owner publishes and
// unpublishes again and `blindex monitor` raises no alarm.
func TestKillLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kill loop: skipped under -short")
	}
	deadline := time.Now().Add(killLoopBudget)
	data := filepath.Join(t.TempDir(), "data")
	// States of its own, not statesDir's: that one is per test name, and
	// with -count it would keep keys pinned to a previous run's server.
	states := t.TempDir()
	stateOf := func(name string) string { return filepath.Join(states, name) }
	newClient := func(s *process, name string) *client.Client {
		c, err := client.New(client.Config{Server: s.url, StateDir: stateOf(name)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	register := func(s *process, name, number string) {
		t.Helper()
		c := newClient(s, name)
		if _, err := c.Verify(t.Context(), number); err != nil {
			t.Fatal(err)
		}
		if err := c.Confirm(t.Context(), s.lastCode(t)); err != nil {
			t.Fatal(err)
		}
	}

	// What each of an owner's apps may hold: the acknowledged state and
	// those of writes sent since whose outcome a kill left unknown. An
	// endpoint "" is no record; acl is "checker" or "both" (the outsider
	// too), kept only while the record exists.
	type appState struct {
		endpoints map[string]bool
		acls      map[string]bool
	}
	type owner struct {
		name, number string
		apps         map[string]*appState
	}
	oneApp := []string{"org.example.one"}
	twoApps := []string{"org.example.one", "org.example.two"}
	var owners []*owner
	for i, apps := range [][]string{twoApps, twoApps, oneApp, oneApp} {
		o := &owner{name: fmt.Sprintf("owner%d", i), number: fmt.Sprintf("+1415555%04d", 4000+i), apps: map[string]*appState{}}
		for _, app := range apps {
			o.apps[app] = &appState{endpoints: map[string]bool{"": true}, acls: map[string]bool{}}
		}
		owners = append(owners, o)
	}
	checker, outsider := "+12025550131", "+12025550142"
	s := startServer(t, data)
	for _, o := range owners {
		register(s, o.name, o.number)
	}
	register(s, "checker", checker)
	register(s, "outsider", outsider)
	numbers := make([]string, len(owners))
	for i, o := range owners {
		numbers[i] = o.number
	}

	// check looks every owner up as the checker and the outsider and
	// requires what it finds to be one of the states its app may be in,
	// which it then becomes.
	checks := 0
	check := func(s *process, when string) {
		t.Helper()
		found := func(as string) []map[string]string {
			res, err := newClient(s, as).Lookup(t.Context(), numbers...)
			if err != nil {
				t.Fatalf("%s: lookup as %s: %v", when, as, err)
			}
			out := make([]map[string]string, len(res))
			for i, r := range res {
				out[i] = map[string]string{}
				for _, rec := range r.Records {
					out[i][rec.App] = rec.Endpoint
				}
			}
			return out
		}
		byChecker, byOutsider := found("checker"), found("outsider")
		for i, o := range owners {
			for app, st := range o.apps {
				ep := byChecker[i][app]
				if !st.endpoints[ep] {
					t.Errorf("%s: %s %s holds %q, neither the acknowledged state nor a later write: %v",
						when, o.name, app, ep, slices.Sorted(maps.Keys(st.endpoints)))
				}
				st.endpoints = map[string]bool{ep: true}
				if ep == "" {
					st.acls = map[string]bool{}
					continue
				}
				label := "checker"
				if _, ok := byOutsider[i][app]; ok {
					label = "both"
				}
				if !st.acls[label] {
					t.Errorf("%s: %s %s is visible to %q, not the acknowledged ACL or a later one: %v",
						when, o.name, app, label, slices.Sorted(maps.Keys(st.acls)))
				}
				st.acls = map[string]bool{label: true}
				checks++
			}
		}
	}

	// blamed counts the errors a settled lost write must never cause: the
	// client finding in the log or the store a state it did not cause.
	var blamed atomic.Int64
	var firstBlame atomic.Value
	var version atomic.Int64
	writes, acked := atomic.Int64{}, atomic.Int64{}
	rounds := 0
	for ; rounds < killRounds && time.Now().Before(deadline); rounds++ {
		if rounds > 0 {
			s = startServer(t, data)
			check(s, fmt.Sprintf("after kill %d", rounds))
		}
		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for _, o := range owners {
			c := newClient(s, o.name)
			apps := slices.Sorted(maps.Keys(o.apps))
			wg.Go(func() {
				for ctx.Err() == nil {
					time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
					app := apps[rand.IntN(len(apps))]
					st := o.apps[app] // only this goroutine touches o until wg.Wait
					present := !st.endpoints[""] || len(st.endpoints) > 1
					var err error
					var endpoint, label string
					switch op := rand.IntN(3); {
					case op == 0 || !present: // publish, with the checker allowed
						endpoint, label = "https://x.example/v"+strconv.Itoa(int(version.Add(1))), "checker"
						st.endpoints[endpoint], st.acls[label] = true, true
						err = c.Publish(ctx, record.Record{App: app, Endpoint: endpoint,
							Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)},
							client.Access{Visibility: acl.Allowlist, Allow: []string{checker}})
					case op == 1: // unpublish
						st.endpoints[""] = true
						err = c.Delete(ctx, app)
					default: // an ACL change
						allow, l := []string{checker}, "checker"
						if rand.IntN(2) == 0 {
							allow, l = []string{checker, outsider}, "both"
						}
						label = l
						st.acls[label] = true
						err = c.SetACL(ctx, app, client.Access{Visibility: acl.Allowlist, Allow: allow})
					}
					writes.Add(1)
					if errors.Is(err, client.ErrLogEntry) || errors.Is(err, client.ErrStateNotCaused) {
						blamed.Add(1)
						firstBlame.CompareAndSwap(nil, fmt.Sprintf("%s %s: %v", o.name, app, err))
					}
					if err != nil {
						continue // refused, or its outcome unknown: both states stay possible
					}
					acked.Add(1)
					switch {
					case endpoint != "":
						st.endpoints, st.acls = map[string]bool{endpoint: true}, map[string]bool{label: true}
					case label != "":
						st.acls = map[string]bool{label: true}
					default:
						st.endpoints, st.acls = map[string]bool{"": true}, map[string]bool{}
					}
				}
			})
		}
		time.Sleep(time.Duration(150+rand.IntN(500)) * time.Millisecond)
		s.kill(t)
		stop()
		wg.Wait()
	}
	if b := blamed.Load(); b > 0 {
		t.Errorf("%d writes were told the directory holds a state they did not cause; first: %v", b, firstBlame.Load())
	}

	// Afterwards every owner goes on: it publishes each app and
	// unpublishes one, and its monitor raises no alarm.
	s = startServer(t, data)
	check(s, fmt.Sprintf("after kill %d", rounds))
	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	for _, o := range owners {
		c := newClient(s, o.name)
		for app := range o.apps {
			if err := c.Publish(t.Context(), record.Record{App: app, Endpoint: "https://x.example/final", Expires: expires},
				client.Access{Visibility: acl.Public}); err != nil {
				t.Errorf("%s: publishing %s after the kills: %v", o.name, app, err)
			}
		}
		if err := c.Delete(t.Context(), "org.example.one"); err != nil {
			t.Errorf("%s: unpublishing after the kills: %v", o.name, err)
		}
		cmd := exec.Command(binary, "monitor")
		cmd.Env = append(os.Environ(), "BLINDEX_SERVER="+s.url, "BLINDEX_STATE="+stateOf(o.name), "BLINDEX_CA=")
		b, err := cmd.CombinedOutput()
		if out := string(b); err != nil || strings.Contains(out, "ALARM") {
			t.Errorf("%s: blindex monitor after the kills: %v\n%s", o.name, err, out)
		}
	}
	t.Logf("%d kills; %d writes, %d acknowledged; %d ACL checks", rounds, writes.Load(), acked.Load(), checks)
}
