package client_test

// Lookup benchmarks, end to end against a real server on a loopback port
// over a synthetic directory: blind, evaluate, verify, fetch buckets,
// decrypt. Each has a baseline interleaved with it in the same run: the
// same batch's OPRF work done in-process (blind, evaluate with proof,
// finalize with verification), which a lookup cannot beat.
//
// BLINDEX_BENCH_OWNERS sets the directory's size (default 10,000);
// BLINDEX_BENCH_DATA a data directory to use (built there if it holds no
// database yet; "blindex synth --data DIR --owners N --seed 1" builds the
// same one). Target 4 is the addressbook p50 at 1 M and 10 M owners, target
// 5 the parallel single-lookup rate at 10 M over the rate at 100 k.

import (
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/directory/synth"
	"blindex.dev/blindex/internal/bytecount"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/server"
)

// benchCaller is the number that looks up; synthetic allowlists built by
// these benchmarks include it.
const benchCaller = "+14155550100"

// benchLookupEnv is a server over a synthetic directory and a verified
// caller whose HTTP client counts the bytes it receives.
type benchLookupEnv struct {
	owners   int
	client   *client.Client
	received *bytecount.Transport
	key      *oprf.PrivateKey
}

func newBenchLookupEnv(b *testing.B) *benchLookupEnv {
	b.Helper()
	e := &benchLookupEnv{owners: 10_000}
	if v := os.Getenv("BLINDEX_BENCH_OWNERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BLINDEX_BENCH_OWNERS=%q: want a positive integer", v)
		}
		e.owners = n
	}
	dir := os.Getenv("BLINDEX_BENCH_DATA")
	if dir == "" {
		dir = filepath.Join(b.TempDir(), "data")
	}
	if _, err := os.Stat(filepath.Join(dir, datadir.DBFile)); err != nil {
		if _, err := synth.Build(b.Context(), dir, synth.Config{Owners: e.owners, Seed: 1, Friends: []string{benchCaller}}); err != nil {
			b.Fatal(err)
		}
	}
	inbox := sms.NewInbox()
	// Lifted budgets, and lifted verification limits: every run verifies
	// the same caller again on a reused directory.
	srv, err := server.Start(b.Context(), server.Config{DataDir: dir, Addr: "127.0.0.1:0", SMS: inbox,
		Directory: directory.Config{Budget: directory.Budget{Burst: 1 << 30, PerDay: 1 << 30, GlobalPerSecond: 1 << 30}},
		CA:        ca.Config{Limits: ca.Limits{NumberPerHour: 1 << 20, NumberPerDay: 1 << 20, NetworkPerHour: 1 << 20}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	e.key = srv.Node.OPRFKey
	e.received = &bytecount.Transport{Next: &http.Transport{MaxIdleConnsPerHost: 64}}
	hc := &http.Client{Transport: e.received}
	c, err := client.New(client.Config{Server: srv.URL(), StateDir: b.TempDir(), HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Verify(b.Context(), benchCaller); err != nil {
		b.Fatal(err)
	}
	if err := c.Confirm(b.Context(), inbox.Code(benchCaller)); err != nil {
		b.Fatal(err)
	}
	e.client = c
	return e
}

// numbers draws n distinct synthetic numbers with indexes below limit.
func (e *benchLookupEnv) numbers(r *rand.Rand, n, limit int) []string {
	seen := map[int]bool{}
	out := make([]string, 0, n)
	for len(out) < n {
		i := r.IntN(limit)
		if !seen[i] {
			seen[i] = true
			out = append(out, synth.Number(1, i))
		}
	}
	return out
}

// crypto is the in-process baseline: the OPRF work of a lookup of numbers.
func (e *benchLookupEnv) crypto(ev *oprf.Evaluator, numbers []string) error {
	inputs := make([][]byte, len(numbers))
	for i, n := range numbers {
		inputs[i] = []byte(n)
	}
	info := []byte("blindex lookup v1")
	blinding, blinded, err := oprf.Blind(inputs)
	if err != nil {
		return err
	}
	evaluated, proof, err := ev.Evaluate(info, blinded)
	if err != nil {
		return err
	}
	_, err = blinding.Finalize(e.key.Public(), info, evaluated, proof)
	return err
}

// lookup looks numbers up and returns the records found.
func (e *benchLookupEnv) lookup(b *testing.B, numbers []string) (int, error) {
	res, err := e.client.Lookup(b.Context(), numbers...)
	if err != nil {
		return 0, err
	}
	found := 0
	for _, r := range res {
		if r.Err != nil {
			return 0, r.Err
		}
		found += len(r.Records)
	}
	return found, nil
}

// BenchmarkLookup runs, against one server over one synthetic directory:
//
//   - single: one number per lookup, one lookup at a time;
//   - single-parallel: 2×GOMAXPROCS single lookups at once (target 5);
//   - addressbook-1024: 1,024 numbers per lookup, about half of them
//     registered (target 4: p50 at most 200 ms at 1 M owners).
//
// Each reports p50 and p99 latency, records found, bytes received per
// lookup, and the ratio to the in-process OPRF work of the same batch.
func BenchmarkLookup(b *testing.B) {
	e := newBenchLookupEnv(b)
	ev := oprf.NewEvaluator(e.key)
	b.Run("single", func(b *testing.B) { e.bench(b, ev, 1, 1) })
	b.Run("single-parallel", func(b *testing.B) { e.bench(b, ev, 1, 2*runtime.GOMAXPROCS(0)) })
	b.Run("addressbook-1024", func(b *testing.B) { e.bench(b, ev, 1024, 1) })
}

// bench measures rounds of inFlight concurrent lookups of batch numbers.
func (e *benchLookupEnv) bench(b *testing.B, ev *oprf.Evaluator, batch, inFlight int) {
	r := rand.New(rand.NewPCG(1, uint64(batch)))
	limit := e.owners
	if batch > 1 {
		limit = 2 * e.owners // numbers past Owners are not registered
	}
	var mu sync.Mutex
	var latencies []time.Duration
	var lookups, crypto time.Duration
	found := 0
	received := e.received.Received()
	for b.Loop() {
		sets := make([][]string, inFlight)
		for i := range sets {
			sets[i] = e.numbers(r, batch, limit)
		}
		t := time.Now()
		var wg sync.WaitGroup
		for _, set := range sets {
			wg.Go(func() {
				if err := e.crypto(ev, set); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		crypto += time.Since(t)

		t = time.Now()
		for _, set := range sets {
			wg.Go(func() {
				start := time.Now()
				n, err := e.lookup(b, set)
				d := time.Since(start)
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				latencies = append(latencies, d)
				found += n
				mu.Unlock()
			})
		}
		wg.Wait()
		lookups += time.Since(t)
	}
	slices.Sort(latencies)
	n := len(latencies)
	b.ReportMetric(float64(latencies[(n-1)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[(99*n-1)/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(n)/lookups.Seconds(), "lookups/s")
	b.ReportMetric(float64(found)/float64(n), "found/lookup")
	b.ReportMetric(float64(e.received.Received()-received)/float64(n)/1024, "KiB/lookup")
	b.ReportMetric(lookups.Seconds()/crypto.Seconds(), "lookup/oprf")
	b.ReportMetric(float64(e.owners), "owners")
}
