package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/record"
)

// Soak parameters. BLINDEX_SOAK (a Go duration, "2m") overrides the load
// duration; the rest is fixed so that runs compare.
const (
	soakDefault = 20 * time.Second
	soakWorkers = 8
	soakMaxOps  = 100_000 // the load stops at this many operations even if time remains
	// Each worker owns two numbers verified before the load (so no two
	// workers share an evaluation budget), and soakVerifies more are verified
	// during it. The CA allows 30 verification starts per client network per
	// hour and no serve flag raises that: 2×8 + 6 = 22 stay under it, and
	// the limit itself is probed at the end.
	soakVerifies  = 6
	soakNetLimit  = 30   // ca.Limits.NetworkPerHour default
	soakBurst     = 5000 // directory.Budget.Burst default
	soakIDCap     = soakBurst - 100
	soakAllowSize = 2 * soakWorkers // every setup number is on the soak app's allowlist
)

const (
	appSoak    = "org.example.soak"    // always visible to every setup number
	appPrivate = "org.example.private" // published, narrowed and deleted at random
)

// soakID is a verified number and what the test knows of its server state.
// Only the worker that owns it uses it.
type soakID struct {
	number  string
	c       *client.Client
	key     *ecdsa.PrivateKey
	cert    []byte // leaf DER
	spent   int    // evaluations charged to its budget, by this test's count
	private bool   // appPrivate is published
	public  bool   // appSoak's ACL is currently public (else the setup allowlist)
}

// TestSoak runs a bounded mixed load against one real server process on
// loopback: address-book lookups, publishes, ACL changes and deletes by
// owners and bad requests from soakWorkers goroutines, and new
// verifications on a schedule from one more.
// It fails on any 5xx (seen by the client or counted by the server), on any
// bad request answered other than as expected, on a lookup that misses a
// record it must see or finds one for an unregistered number, and on
// goroutines, open files or heap that grow between a warmed-up idle server
// and the idle server after the load. It reports throughput and latency
// per operation. BLINDEX_SOAK=2m runs it longer.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	dur := soakDefault
	if v := os.Getenv("BLINDEX_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("BLINDEX_SOAK=%q: want a positive Go duration such as 2m", v)
		}
		dur = d
	}
	ctx := t.Context()
	data := filepath.Join(t.TempDir(), "data")
	states := t.TempDir()
	s := startServer(t, data)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2 * soakWorkers
	hc := &http.Client{Transport: tr, Timeout: time.Minute}

	var failures atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 20 {
			t.Errorf(format, args...)
		}
	}
	var clientSide5xx, expected4xx, unrouted4xx atomic.Int64
	count4xx := func(bc soakBad) {
		if bc.unrouted {
			unrouted4xx.Add(int64(len(bc.want)))
		} else {
			expected4xx.Add(int64(len(bc.want)))
		}
	}
	// check classifies a client library error against the status wanted
	// (0: success).
	check := func(op string, err error, want int) {
		var e *client.Error
		status := 0
		if errors.As(err, &e) {
			status = e.Status
		} else if err != nil {
			fail("%s: %v", op, err)
			return
		}
		if status >= 500 {
			clientSide5xx.Add(1)
		}
		if status != want {
			fail("%s: status %d (%v), want %d", op, status, err, want)
		} else if want >= 400 {
			expected4xx.Add(1)
		}
	}

	// Verifications: serialized, since the log sender's codes are matched to
	// starts by order. starts records when each counted start was sent, for
	// the per-network limit probe.
	var (
		vmu    sync.Mutex
		codes  int
		starts [][2]time.Time
	)
	register := func(name, number string) (*soakID, error) {
		vmu.Lock()
		defer vmu.Unlock()
		c, err := client.New(client.Config{Server: s.url, StateDir: filepath.Join(states, name), HTTPClient: hc})
		if err != nil {
			return nil, err
		}
		sent := time.Now()
		if _, err := c.Verify(ctx, number); err != nil {
			return nil, fmt.Errorf("verify start: %w", err)
		}
		starts = append(starts, [2]time.Time{sent, time.Now()})
		code, err := s.smsCode(codes)
		codes++
		if err != nil {
			return nil, err
		}
		if err := c.Confirm(ctx, code); err != nil {
			return nil, fmt.Errorf("verify confirm: %w", err)
		}
		chain, key, err := c.Chain()
		if err != nil {
			return nil, err
		}
		return &soakID{number: number, c: c, key: key, cert: chain[0]}, nil
	}

	// Setup: two numbers per worker; each publishes appSoak (public) and
	// appPrivate, and looks up every setup number once.
	setupStart := time.Now()
	var ids []*soakID
	var setupNumbers []string
	for i := range 2 * soakWorkers {
		n := fmt.Sprintf("+1415555%04d", 4000+i)
		id, err := register("setup"+strconv.Itoa(i), n)
		if err != nil {
			t.Fatalf("registering %s: %v", n, err)
		}
		ids = append(ids, id)
		setupNumbers = append(setupNumbers, n)
	}
	for _, id := range ids {
		if err := id.publish(ctx, appSoak, acl.Public, nil); err != nil {
			t.Fatalf("publishing: %v", err)
		}
		id.public = true
		if err := id.publish(ctx, appPrivate, acl.Allowlist, setupNumbers[:2]); err != nil {
			t.Fatalf("publishing: %v", err)
		}
		id.private = true
		id.spent += 1 + 1 + 2 // each publish evaluates the owner's number, then the allowlist
	}
	for _, id := range ids {
		numbers := append(slices.Clone(setupNumbers), unregistered(10)...)
		res, err := id.c.Lookup(ctx, numbers...)
		if err != nil {
			t.Fatalf("warm-up lookup: %v", err)
		}
		id.spent += len(numbers)
		if msg := checkLookup(res, setupNumbers); msg != "" {
			t.Fatalf("warm-up lookup: %s", msg)
		}
	}
	bad := soakBadCases(s.url, setupNumbers[0])
	for _, bc := range bad {
		if err := bc.run(ctx, hc, ids[0]); err != nil {
			t.Fatalf("warm-up: bad request %q: %v", bc.name, err)
		}
		ids[0].spent += bc.cost
		count4xx(bc)
	}
	setupTime := time.Since(setupStart)
	before := soakSample(t, s.url, tr)

	// The load.
	var ops, paced atomic.Int64
	var verified []string
	verifier := &soakWorker{lat: map[string][]time.Duration{}}
	loadStart := time.Now()
	end := loadStart.Add(dur)
	workers := []*soakWorker{verifier}
	var wg sync.WaitGroup
	// New numbers verify on a schedule, one every dur/(soakVerifies+1), from
	// a goroutine of their own: a worker stuck in a slow lookup cannot delay
	// them past the end.
	wg.Go(func() {
		for k := range soakVerifies {
			time.Sleep(time.Until(loadStart.Add(time.Duration(k+1) * dur / (soakVerifies + 1))))
			ops.Add(1)
			n := fmt.Sprintf("+1415555%04d", 5000+k)
			t0 := time.Now()
			id, err := register("load"+strconv.Itoa(k), n)
			verifier.record("verify", t0)
			if err != nil {
				check("verify "+n, err, 0)
				continue
			}
			verified = append(verified, n)
			// The new credential works at once.
			u := unregistered(1)[0]
			res, err := id.c.Lookup(ctx, setupNumbers[0], u)
			check("lookup by a new number", err, 0)
			if err == nil && (len(res) != 2 || res[1].Err != nil || len(res[1].Records) != 0) {
				fail("lookup by a new number: unregistered %s found %+v", u, res)
			}
		}
	})
	for w := range soakWorkers {
		wk := &soakWorker{ids: []*soakID{ids[w], ids[w+soakWorkers]}, lat: map[string][]time.Duration{}, badCount: map[string]int{}}
		workers = append(workers, wk)
		wg.Go(func() {
			// The first operations of the first workers are a lookup, a
			// publish, an ACL change and a bad request, so that each kind
			// runs even when a slow machine fits few operations in the load.
			first := []int{0, 55, 68, 85}
			for i := 0; time.Now().Before(end) && ops.Load() < soakMaxOps; i++ {
				elapsed := time.Since(loadStart)
				// Evaluations are paced so that the budgets last the whole run.
				allowance := int(float64(len(wk.ids)*soakIDCap) * min(1, 0.05+elapsed.Seconds()/dur.Seconds()))
				r := rand.IntN(100)
				if i == 0 && w < len(first) {
					r = first[w]
				}
				cost := 0
				switch {
				case r < 55:
					cost = 1 + rand.IntN(200)
				case r < 85:
					cost = 1 + soakAllowSize
				}
				id := wk.pick(cost, allowance)
				if id == nil {
					paced.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ops.Add(1)
				switch {
				case r < 55:
					wk.lookup(ctx, id, cost, setupNumbers, check, fail)
				case r < 85:
					wk.ownerOp(ctx, id, r, setupNumbers, check)
				default:
					bc := bad[rand.IntN(len(bad))]
					if id.spent+bc.cost > soakIDCap {
						continue
					}
					t0 := time.Now()
					err := bc.run(ctx, hc, id)
					wk.record("bad", t0)
					wk.badCount[bc.name]++
					id.spent += bc.cost
					if err != nil {
						if errors.Is(err, errSoak5xx) {
							clientSide5xx.Add(1)
						}
						fail("bad request %q: %v", bc.name, err)
					} else {
						count4xx(bc)
					}
				}
			}
		})
	}
	wg.Wait()
	loadTime := time.Since(loadStart)

	// The per-network start limit held through the load: the starts left in
	// this hour's window succeed and the next is refused.
	var probed []string
	probe := func() string {
		vmu.Lock()
		defer vmu.Unlock()
		window := time.Now().Truncate(time.Hour)
		inWindow := 0
		for _, st := range starts {
			if st[0].Truncate(time.Hour) != st[1].Truncate(time.Hour) {
				return "a start straddled an hour boundary"
			}
			if st[0].Truncate(time.Hour).Equal(window) {
				inWindow++
			}
		}
		if inWindow > soakNetLimit {
			fail("%d verification starts in one hour, over the limit of %d: the test should stay under it", inWindow, soakNetLimit)
			return "over the limit"
		}
		for i := inWindow; i <= soakNetLimit; i++ {
			want := http.StatusOK
			if i == soakNetLimit {
				want = http.StatusTooManyRequests
			}
			n := fmt.Sprintf("+1415555%04d", 6000+i)
			probed = append(probed, n)
			body := `{"number":"` + n + `"}`
			resp, err := hc.Post(s.url+api.PathVerifyStart, "application/json", strings.NewReader(body))
			if err != nil {
				fail("limit probe: %v", err)
				return "error"
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// Once the hour ends, a new window starts: 200 and 429 are
			// then both right.
			hourEnded := !time.Now().Truncate(time.Hour).Equal(window)
			if resp.StatusCode >= 500 {
				clientSide5xx.Add(1)
			}
			if resp.StatusCode/100 == 4 && (resp.StatusCode == want || hourEnded) {
				expected4xx.Add(1)
			}
			if hourEnded {
				return "the hour ended during the probe"
			}
			if resp.StatusCode != want {
				fail("verification start %d of the hour from one network: status %d, want %d", i+1, resp.StatusCode, want)
				return "failed"
			}
		}
		return fmt.Sprintf("start %d of the hour refused with 429", soakNetLimit+1)
	}()

	after := soakSample(t, s.url, tr)
	// Connections the server is still closing can hold a goroutine and a
	// file for a moment: give them a few seconds before judging.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) &&
		(after.goroutines > before.goroutines+soakSlack || after.fds > before.fds+soakFDsSlack); {
		after = soakSample(t, s.url, tr)
	}

	// Report.
	all := map[string][]time.Duration{}
	badCount := map[string]int{}
	for _, wk := range workers {
		for op, ds := range wk.lat {
			all[op] = append(all[op], ds...)
		}
		for name, n := range wk.badCount {
			badCount[name] += n
		}
	}
	var report strings.Builder
	fmt.Fprintf(&report, "soak: %v load (setup %v), %d workers, %d numbers verified before and %d during the load; limit probe: %s\n",
		loadTime.Round(time.Millisecond), setupTime.Round(time.Millisecond), soakWorkers, len(ids), len(verified), probe)
	fmt.Fprintf(&report, "%-8s %8s %9s %10s %10s\n", "op", "count", "per s", "p50", "p99")
	total := 0
	for _, op := range []string{"lookup", "publish", "acl", "delete", "verify", "bad"} {
		ds := all[op]
		slices.Sort(ds)
		total += len(ds)
		fmt.Fprintf(&report, "%-8s %8d %9.1f %10v %10v\n", op, len(ds), float64(len(ds))/loadTime.Seconds(),
			percentile(ds, 50), percentile(ds, 99))
	}
	evaluations := after.value("blindex_evaluations_total") - before.value("blindex_evaluations_total")
	requests := after.requests(nil) - before.requests(nil)
	if ops.Load() >= soakMaxOps {
		fmt.Fprintf(&report, "the load stopped at %d operations, before its duration\n", soakMaxOps)
	}
	fmt.Fprintf(&report, "total    %8d %9.1f   (%.0f HTTP requests, %.0f/s; %.0f evaluations, %.0f/s; %d waits for evaluation budget pacing)\n",
		total, float64(total)/loadTime.Seconds(), requests, requests/loadTime.Seconds(), evaluations, evaluations/loadTime.Seconds(), paced.Load())
	for _, n := range slices.Sorted(maps.Keys(badCount)) {
		fmt.Fprintf(&report, "  bad %-28s %d\n", n, badCount[n])
	}
	// The server's own view, from its latency histogram: the client's time
	// includes blinding and proof checks in this (possibly race-instrumented)
	// process.
	fmt.Fprintf(&report, "server side during the load: %-24s %8s %10s %10s\n", "route", "count", "mean", "p99 <=")
	for _, route := range slices.Sorted(maps.Keys(after.routes())) {
		n, mean, p99 := after.latency(before, route)
		if n > 0 {
			fmt.Fprintf(&report, "                             %-24s %8.0f %10v %10v\n", route, n, mean, p99)
		}
	}
	fmt.Fprintf(&report, "resources idle before -> after: goroutines %d -> %d, open fds %d -> %d, heap %.1f -> %.1f MiB, RSS %.1f -> %.1f MiB",
		before.goroutines, after.goroutines, before.fds, after.fds,
		before.heap/(1<<20), after.heap/(1<<20), before.value("process_resident_memory_bytes")/(1<<20), after.value("process_resident_memory_bytes")/(1<<20))
	t.Log(report.String())

	// Judgement.
	is5xx := func(code int) bool { return code >= 500 }
	is4xx := func(code int) bool { return code >= 400 && code < 500 }
	if n := after.requests(is5xx); n != 0 || clientSide5xx.Load() != 0 {
		t.Errorf("5xx answers: %.0f counted by the server, %d seen by the client", n, clientSide5xx.Load())
	}
	// Answers for unknown routes and methods are counted too (as "unmatched").
	if n, want, unrouted := after.requests(is4xx), float64(expected4xx.Load()), float64(unrouted4xx.Load()); n != want+unrouted {
		t.Errorf("the server counted %.0f 4xx answers; the test expected %.0f (and %.0f for unknown routes and methods)", n, want, unrouted)
	}
	if n := after.value(`blindex_budget_refusals_total{budget="caller"}`) + after.value(`blindex_budget_refusals_total{budget="buckets"}`) +
		after.value(`blindex_budget_refusals_total{budget="global"}`); n != 0 {
		t.Errorf("%.0f budget refusals: the pacing should keep every caller within its budget", n)
	}
	if all["lookup"] == nil || all["publish"] == nil || all["acl"] == nil || all["bad"] == nil {
		t.Errorf("an operation type never ran: ran only %v", slices.Sorted(maps.Keys(all)))
	}
	if after.goroutines > before.goroutines+soakSlack {
		t.Errorf("goroutines grew from %d to %d", before.goroutines, after.goroutines)
	}
	if after.fds > before.fds+soakFDsSlack {
		t.Errorf("open fds grew from %d to %d", before.fds, after.fds)
	}
	if limit := max(3*before.heap, before.heap+64<<20); after.heap > limit {
		t.Errorf("heap grew from %.1f to %.1f MiB (limit %.1f)", before.heap/(1<<20), after.heap/(1<<20), limit/(1<<20))
	}
	if n := failures.Load(); n > 20 {
		t.Errorf("%d failures in all (the first 20 are above)", n)
	}

	// The load logged no number and stored none: not those verified, nor
	// those in the bodies of refused requests, nor (a sample of) those
	// looked up.
	s.stop(t)
	scanForNumbers(t, data, s.log(), slices.Concat(setupNumbers, verified, probed, unregistered(20))...)
}

// soakSlack is how many goroutines and open files the idle server may hold
// after the load beyond those it held before. Files get more room: the
// SQLite read pool keeps up to two idle connections (database, WAL and
// shared-memory file each), and the log's reads use it more than lookups.
const (
	soakSlack    = 4
	soakFDsSlack = 8
)

// soakWorker is one load goroutine's identities and measurements.
type soakWorker struct {
	ids      []*soakID
	lat      map[string][]time.Duration
	badCount map[string]int
}

func (w *soakWorker) record(op string, start time.Time) {
	w.lat[op] = append(w.lat[op], time.Since(start))
}

// pick returns an identity that can spend cost evaluations now, or nil.
func (w *soakWorker) pick(cost, allowance int) *soakID {
	spent := 0
	for _, id := range w.ids {
		spent += id.spent
	}
	if spent+cost > allowance {
		return nil
	}
	var best *soakID
	for _, id := range w.ids {
		if id.spent+cost <= soakIDCap && (best == nil || id.spent < best.spent) {
			best = id
		}
	}
	return best
}

// lookup looks up n distinct numbers: up to four setup owners, who must show
// appSoak, and unregistered numbers, which must show nothing.
func (w *soakWorker) lookup(ctx context.Context, id *soakID, n int, setup []string, check func(string, error, int), fail func(string, ...any)) {
	owners := rand.IntN(min(n, 4) + 1)
	numbers := slices.Clone(setup)
	rand.Shuffle(len(numbers), func(i, j int) { numbers[i], numbers[j] = numbers[j], numbers[i] })
	numbers = append(numbers[:owners], unregistered(n-owners)...)
	rand.Shuffle(len(numbers), func(i, j int) { numbers[i], numbers[j] = numbers[j], numbers[i] })
	t0 := time.Now()
	res, err := id.c.Lookup(ctx, numbers...)
	w.record("lookup", t0)
	id.spent += n
	check("lookup", err, 0)
	if err == nil {
		if msg := checkLookup(res, setup); msg != "" {
			fail("lookup of %d numbers: %s", n, msg)
		}
	}
}

// checkLookup checks that each setup number shows appSoak and every other
// number shows nothing.
func checkLookup(res []client.Result, setup []string) string {
	for _, r := range res {
		if r.Err != nil {
			return fmt.Sprintf("%s: %v", r.Number, r.Err)
		}
		if !slices.Contains(setup, r.Number) {
			if len(r.Records) != 0 {
				return fmt.Sprintf("unregistered %s shows %d records", r.Number, len(r.Records))
			}
			continue
		}
		if !slices.ContainsFunc(r.Records, func(rec record.Record) bool { return rec.App == appSoak }) {
			return fmt.Sprintf("%s lacks %s (has %d records)", r.Number, appSoak, len(r.Records))
		}
	}
	return ""
}

// ownerOp publishes, changes the ACL of, or deletes one of id's records. r
// (55..84) chooses the operation; the expected answer follows from the
// record's state, which only this worker changes.
func (w *soakWorker) ownerOp(ctx context.Context, id *soakID, r int, setup []string, check func(string, error, int)) {
	app := appSoak
	if rand.IntN(2) == 0 {
		app = appPrivate
	}
	// appSoak alternates between public and the allowlist of every setup
	// number, so each lookup by a setup number must still find it;
	// appPrivate gets a small allowlist or nobody.
	vis, allow := acl.Public, []string(nil)
	switch {
	case app == appSoak && id.public:
		vis, allow = acl.Allowlist, setup
	case app == appPrivate && rand.IntN(3) == 0:
		vis = acl.Nobody
	case app == appPrivate:
		vis = acl.Allowlist
		for _, i := range rand.Perm(len(setup))[:1+rand.IntN(3)] {
			allow = append(allow, setup[i])
		}
	}
	access := client.Access{Visibility: vis, Allow: allow}
	t0 := time.Now()
	switch {
	case r < 68:
		err := id.publish(ctx, app, vis, allow)
		w.record("publish", t0)
		id.spent += 1 + len(allow)
		check("publish "+app, err, 0)
		if err == nil {
			id.published(app, vis)
		}
	case r < 80 || app == appSoak:
		err := id.c.SetACL(ctx, app, access)
		w.record("acl", t0)
		id.spent += 1 + len(allow)
		want := 0
		if app == appPrivate && !id.private {
			want = http.StatusNotFound
		}
		check("acl "+app, err, want)
		if err == nil {
			id.published(app, vis)
		}
	default:
		err := id.c.Delete(ctx, appPrivate)
		w.record("delete", t0)
		id.spent++
		want := 0
		if !id.private {
			want = http.StatusNotFound
		}
		check("delete", err, want)
		id.private = false
	}
}

// published records a successful publish or ACL change.
func (id *soakID) published(app string, vis acl.Visibility) {
	if app == appSoak {
		id.public = vis == acl.Public
	} else {
		id.private = true
	}
}

func (id *soakID) publish(ctx context.Context, app string, vis acl.Visibility, allow []string) error {
	r := record.Record{App: app, Endpoint: "https://" + app + "/u/" + strconv.Itoa(rand.IntN(1e6)),
		Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)}
	return id.c.Publish(ctx, r, client.Access{Visibility: vis, Allow: allow})
}

// unregistered returns n distinct numbers that no test verifies.
func unregistered(n int) []string {
	seen := map[int]bool{}
	out := make([]string, 0, n)
	for len(out) < n {
		if k := rand.IntN(10000); !seen[k] {
			seen[k] = true
			out = append(out, fmt.Sprintf("+1415557%04d", k))
		}
	}
	return out
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)].Round(10 * time.Microsecond)
}

var errSoak5xx = errors.New("server error")

// soakBad is a bad request and the statuses its successive sends must get:
// a replayed request is sent twice.
type soakBad struct {
	name     string
	want     []int
	cost     int  // evaluations it charges to the signer's budget
	unrouted bool // answered by the router itself, not by a route
	build    func(id *soakID) (*http.Request, []byte)
}

// run sends the request and checks each answer's status and its fixed JSON
// error body.
func (bc soakBad) run(ctx context.Context, hc *http.Client, id *soakID) error {
	req, body := bc.build(id)
	for i, want := range bc.want {
		r := req.Clone(ctx)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		resp, err := hc.Do(r)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var e api.Error
		switch {
		case resp.StatusCode >= 500:
			return fmt.Errorf("%w: send %d: status %d, want %d: %s", errSoak5xx, i+1, resp.StatusCode, want, b)
		case resp.StatusCode != want:
			return fmt.Errorf("send %d: status %d, want %d: %s", i+1, resp.StatusCode, want, b)
		case json.Unmarshal(b, &e) != nil || e.Error == "":
			return fmt.Errorf("send %d: status %d with body %q, want a JSON error", i+1, resp.StatusCode, b)
		}
	}
	return nil
}

// soakBadCases are the bad requests of the load. number is a verified
// number that appears in some bodies: the server must not log it.
func soakBadCases(base, number string) []soakBad {
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	elem := b64(bytes.Repeat([]byte{0x11}, 32))
	elements := func(n int, e string) string {
		return `{"elements":[` + strings.TrimSuffix(strings.Repeat(`"`+e+`",`, n), ",") + `]}`
	}
	plain := func(method, path, contentType, body string) func(*soakID) (*http.Request, []byte) {
		return func(*soakID) (*http.Request, []byte) {
			req, _ := http.NewRequest(method, base+path, nil)
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			return req, []byte(body)
		}
	}
	// signed signs signedBody at time now+skew and sends body.
	signed := func(method, path, signedBody, body string, skew time.Duration) func(*soakID) (*http.Request, []byte) {
		return func(id *soakID) (*http.Request, []byte) {
			req, _ := http.NewRequest(method, base+path, nil)
			req.Header.Set("Content-Type", "application/json")
			if err := httpsig.Sign(req, []byte(signedBody), id.key, id.cert, time.Now().Add(skew)); err != nil {
				panic(err) // a P-256 key always signs
			}
			return req, []byte(body)
		}
	}
	sign := func(method, path, body string) func(*soakID) (*http.Request, []byte) {
		return signed(method, path, body, body, 0)
	}
	big := `{"number":"` + number + `","pad":"` + strings.Repeat("x", 2<<20) + `"}`
	return []soakBad{
		{name: "malformed JSON", want: []int{400}, build: plain("POST", api.PathVerifyStart, "application/json", `{"number":"`+number+`"`)},
		{name: "unknown field", want: []int{400}, build: plain("POST", api.PathVerifyStart, "application/json", `{"number":"`+number+`","x":1}`)},
		{name: "invalid number", want: []int{400}, build: plain("POST", api.PathVerifyStart, "application/json", `{"number":"+1 800 FLOWERS"}`)},
		{name: "wrong content type", want: []int{415}, build: plain("POST", api.PathVerifyStart, "text/plain", `{"number":"`+number+`"}`)},
		{name: "no content type", want: []int{415}, build: plain("POST", api.PathEvaluate, "", elements(1, elem))},
		{name: "body too large", want: []int{413}, build: plain("POST", api.PathVerifyStart, "application/json", big)},
		{name: "unknown route", want: []int{404}, unrouted: true, build: plain("GET", "/v1/nope", "", "")},
		{name: "wrong method", want: []int{405}, unrouted: true, build: plain("GET", api.PathEvaluate, "", "")},
		{name: "unsigned evaluate", want: []int{401}, build: plain("POST", api.PathEvaluate, "application/json", elements(1, elem))},
		{name: "unsigned publish", want: []int{401}, build: plain("PUT", api.PathRecords, "application/json", `{}`)},
		{name: "signature over other body", want: []int{401}, build: signed("POST", api.PathEvaluate, elements(1, elem), elements(2, elem), 0)},
		{name: "stale signature", want: []int{401}, build: signed("POST", api.PathEvaluate, elements(1, elem), elements(1, elem), -10*time.Minute)},
		{name: "signed malformed JSON", want: []int{400}, build: sign("POST", api.PathEvaluate, `{"elements":[`)},
		{name: "signed unknown field, replayed", want: []int{400, 401}, build: sign("POST", api.PathEvaluate, `{"elements":["`+elem+`"],"x":1}`)},
		{name: "oversized batch", want: []int{400}, build: sign("POST", api.PathEvaluate, elements(1025, elem))},
		{name: "empty batch", want: []int{400}, build: sign("POST", api.PathEvaluate, elements(0, elem))},
		// The budget is charged before the elements are checked.
		{name: "identity element", want: []int{400}, cost: 1, build: sign("POST", api.PathEvaluate, elements(1, b64(make([]byte, 32))))},
		{name: "non-canonical element", want: []int{400}, cost: 1, build: sign("POST", api.PathEvaluate, elements(1, b64(bytes.Repeat([]byte{0xff}, 32))))},
		{name: "prefix_bits 33", want: []int{400}, build: sign("POST", api.PathBuckets, `{"prefix_bits":33,"prefixes":[0]}`)},
		{name: "publish under another index", want: []int{403}, build: sign("PUT", api.PathRecords,
			`{"index":"`+b64(bytes.Repeat([]byte{1}, 32))+`","record_id":"`+b64(bytes.Repeat([]byte{2}, 32))+`","ciphertext":"","acl":{"visibility":"public"},"expires":"2030-01-01T00:00:00Z"}`)},
	}
}

// soakResources is one scrape of /metrics.
type soakResources struct {
	metrics    map[string]float64 // by name with labels, as exposed
	goroutines int
	fds        int
	heap       float64
}

func (r soakResources) value(name string) float64 { return r.metrics[name] }

var codeLabel = regexp.MustCompile(`code="(\d+)"`)

// requests sums blindex_http_requests_total over the codes match accepts
// (all with nil).
func (r soakResources) requests(match func(code int) bool) float64 {
	var sum float64
	for k, v := range r.metrics {
		if !strings.HasPrefix(k, "blindex_http_requests_total{") {
			continue
		}
		m := codeLabel.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		code, _ := strconv.Atoi(m[1])
		if match == nil || match(code) {
			sum += v
		}
	}
	return sum
}

var bucketLine = regexp.MustCompile(`^blindex_http_request_duration_seconds_bucket\{route="([^"]*)",le="([^"]*)"\}$`)

// routes returns the routes in the latency histogram.
func (r soakResources) routes() map[string]bool {
	out := map[string]bool{}
	for k := range r.metrics {
		if m := bucketLine.FindStringSubmatch(k); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// latency returns the requests to route since before, their mean latency
// and the histogram bound under which 99% of them fell.
func (r soakResources) latency(before soakResources, route string) (n float64, mean, p99 time.Duration) {
	delta := func(name string) float64 {
		k := name + `{route="` + route + `"}`
		return r.metrics[k] - before.metrics[k]
	}
	n = delta("blindex_http_request_duration_seconds_count")
	if n == 0 {
		return 0, 0, 0
	}
	mean = time.Duration(delta("blindex_http_request_duration_seconds_sum") / n * float64(time.Second)).Round(10 * time.Microsecond)
	bound := -1.0
	for k, v := range r.metrics {
		m := bucketLine.FindStringSubmatch(k)
		if m == nil || m[1] != route || v-before.metrics[k] < 0.99*n {
			continue
		}
		le, err := strconv.ParseFloat(m[2], 64)
		if err == nil && (bound < 0 || le < bound) {
			bound = le
		}
	}
	if math.IsInf(bound, 1) {
		return n, mean, -1 // above the largest finite bucket
	}
	return n, mean, time.Duration(bound * float64(time.Second))
}

// soakSample closes the test's idle connections, lets the server settle
// for a second and scrapes /metrics.
func soakSample(t *testing.T, base string, tr *http.Transport) soakResources {
	t.Helper()
	tr.CloseIdleConnections()
	time.Sleep(time.Second)
	req, err := http.NewRequestWithContext(t.Context(), "GET", base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A connection of its own, closed after: the scrape leaves nothing open.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping metrics: status %d", resp.StatusCode)
	}
	r := soakResources{metrics: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		r.metrics[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds", "go_memstats_heap_alloc_bytes"} {
		if _, ok := r.metrics[name]; !ok {
			t.Fatalf("metrics lack %s", name)
		}
	}
	r.goroutines = int(r.value("go_goroutines"))
	r.fds = int(r.value("process_open_fds"))
	r.heap = r.value("go_memstats_heap_alloc_bytes")
	return r
}

// smsCode waits for the n-th code (from 0) the log SMS sender wrote: the
// log reaches the test through a pipe, possibly after the answer to the
// start.
func (s *process) smsCode(n int) (string, error) {
	const marker = `"msg":"sms (log sender`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var found []string
		for line := range strings.Lines(s.log()) {
			if !strings.Contains(line, marker) {
				continue
			}
			var m struct{ Code string }
			if err := json.Unmarshal([]byte(line), &m); err != nil || len(m.Code) != 6 {
				return "", fmt.Errorf("sms log line %q", line)
			}
			found = append(found, m.Code)
		}
		if len(found) > n {
			return found[n], nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no sms code %d in the server log (found %d)", n+1, len(found))
		}
	}
}
