package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory/synth"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/bytecount"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/oprf"
)

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "bench [--op evaluate|lookup] [--requests N] [--duration D] [--json] [flags]", `
Loads a running directory and reports throughput, latency (p50 and p99) and
errors, next to the rate at which this machine evaluates the same batches
in-process with the same code (blindex's POPRF over circl, on every core),
measured in the same run, and the ratio between the two.

  --op evaluate   each request is one signed evaluate of --batch blinded
                  elements (blinded once, before the run; the first answer's
                  proof is verified)
  --op lookup     each request is a whole lookup of --batch numbers drawn
                  from "blindex synth --seed S --owners N": evaluate, verify,
                  fetch buckets, decrypt; the report adds the bytes each
                  lookup downloaded (bytes_per_lookup, bytes_per_number:
                  response bodies, which the server never compresses)

It stops after --requests requests or after --duration, whichever comes
first. It refuses a server that is not on loopback unless --allow-remote:
load aimed at someone else's server is an attack on it. It signs with the
credential in --state and spends that number's evaluation budget, which the
server's defaults keep small: start a benchmark server with a large budget
(serve --budget-burst, --budget-per-day, --budget-global-per-second).`, stderr)
	cf := addClientFlags(fs)
	op := fs.String("op", "evaluate", "what one request does: evaluate or lookup")
	batch := fs.Int("batch", oprf.MaxBatch, fmt.Sprintf("numbers per request, 1 to %d", oprf.MaxBatch))
	conc := fs.Int("concurrency", 2*runtime.GOMAXPROCS(0), "requests in flight")
	requests := fs.Int("requests", 100, "stop after this many requests")
	duration := fs.Duration("duration", 30*time.Second, "stop after this long")
	calibrate := fs.Duration("calibrate", 2*time.Second, "how long to measure the in-process evaluation rate")
	allowRemote := fs.Bool("allow-remote", false, "allow a server that is not on loopback")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	seed := fs.Uint64("seed", 1, "with --op lookup: the synthetic directory's seed")
	owners := fs.Int("owners", 10_000, "with --op lookup: draw numbers from the first `N` synthetic numbers of --seed")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	switch {
	case *op != "evaluate" && *op != "lookup":
		return fmt.Errorf("--op must be evaluate or lookup, not %q", *op)
	case *batch < 1 || *batch > oprf.MaxBatch:
		return fmt.Errorf("--batch must be between 1 and %d", oprf.MaxBatch)
	case *conc < 1:
		return errors.New("--concurrency must be at least 1")
	case *requests < 1:
		return errors.New("--requests must be at least 1")
	case *duration <= 0:
		return errors.New("--duration must be positive")
	case *calibrate <= 0:
		return errors.New("--calibrate must be positive")
	case *owners < 1 || *owners > synth.Capacity:
		return fmt.Errorf("--owners must be between 1 and %d", synth.Capacity)
	}
	if cf.fed.given() {
		return errors.New("bench measures one directory: give it --server, not --map")
	}
	if err := checkLoopback(*cf.server, *allowRemote); err != nil {
		return err
	}
	// One connection per worker, kept open; never through a proxy, which
	// would make the loopback check meaningless.
	received := &bytecount.Transport{Next: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: *conc}}
	hc := &http.Client{Timeout: *duration + 30*time.Second, Transport: received}
	c, err := client.New(client.Config{Server: *cf.server, CA: *cf.ca, StateDir: *cf.state,
		DefaultRegion: *cf.region, HTTPClient: hc})
	if err != nil {
		return err
	}
	chain, key, err := c.Chain()
	if err != nil {
		return err
	}
	b := &bench{
		server: strings.TrimRight(*cf.server, "/"), op: *op, batch: *batch, conc: *conc,
		requests: *requests, duration: *duration, seed: *seed, owners: *owners,
		client: c, key: key, cert: chain[0], http: hc, received: received,
	}
	inputs := make([][]byte, b.batch)
	for i := range inputs {
		inputs[i] = []byte(synth.Number(b.seed, i%b.owners))
	}
	// Reach the server before spending time on the calibration.
	var cfg api.Config
	if err := b.getConfig(ctx, &cfg); err != nil {
		return err
	}

	// The in-process rate first, while the server (if it shares this
	// machine) is idle: every core evaluates the same batch size.
	inproc, err := inProcessRate(ctx, inputs, *calibrate)
	if err != nil {
		return err
	}
	var bar *progressBar
	if isTerminal(stdout) {
		bar = newProgressBar(stdout, b.requests, b.duration)
	}
	rep, err := b.run(ctx, cfg, inputs, bar)
	bar.stop()
	if err != nil {
		return err
	}
	// An interrupt (ctx) ends the run early; the report covers what ran.
	rep.Interrupted = ctx.Err() != nil
	rep.InProcessNumbersPerSecond = inproc
	rep.InProcessWorkers = runtime.GOMAXPROCS(0)
	if inproc > 0 {
		rep.Ratio = rep.NumbersPerSecond / inproc
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	rep.print(stdout, *allowRemote)
	return nil
}

// checkLoopback refuses a server URL whose host is not a loopback address
// or "localhost", unless allowed.
func checkLoopback(server string, allowRemote bool) error {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--server %q is not an http(s) URL", server)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--server %s is not on loopback: bench only loads a server on this machine unless --allow-remote is given (load a server only with its operator's consent)", host)
}

// inProcessRate is the numbers per second that all cores evaluate in this
// process: oprf.Evaluator.Evaluate, blindex's wrapper of circl's POPRF, on
// blinded batches of the given inputs.
func inProcessRate(ctx context.Context, inputs [][]byte, d time.Duration) (float64, error) {
	k, err := oprf.GenerateKey()
	if err != nil {
		return 0, err
	}
	ev := oprf.NewEvaluator(k)
	_, blinded, err := oprf.Blind(inputs)
	if err != nil {
		return 0, err
	}
	info := []byte("blindex bench")
	var numbers atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	start := time.Now()
	deadline := start.Add(d)
	for w := range errs {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, _, err := ev.Evaluate(info, blinded); err != nil {
					errs[w] = err
					return
				}
				numbers.Add(int64(len(blinded)))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return float64(numbers.Load()) / time.Since(start).Seconds(), nil
}

type bench struct {
	server             string
	op                 string
	batch, conc        int
	requests           int
	duration           time.Duration
	seed               uint64
	owners             int
	client             *client.Client
	key                *ecdsa.PrivateKey
	cert               []byte
	http               *http.Client
	received           *bytecount.Transport
	issued, done, errs atomic.Int64
}

// benchReport is the result of a run; the JSON field names are stable.
type benchReport struct {
	Server            string         `json:"server"`
	Op                string         `json:"op"`
	Batch             int            `json:"batch"`
	Concurrency       int            `json:"concurrency"`
	Requests          int            `json:"requests"` // answered successfully
	Errors            int            `json:"errors"`
	ErrorKinds        map[string]int `json:"error_kinds,omitempty"`
	Unfinished        int            `json:"unfinished"` // cut off by --duration or an interrupt
	Seconds           float64        `json:"seconds"`
	RequestsPerSecond float64        `json:"requests_per_second"`
	NumbersPerSecond  float64        `json:"numbers_per_second"`
	P50Millis         float64        `json:"p50_ms"`
	P99Millis         float64        `json:"p99_ms"`
	ProofVerified     bool           `json:"proof_verified,omitempty"` // evaluate: the first answer's proof
	RecordsFound      int            `json:"records_found,omitempty"`  // lookup
	// lookup: the response bytes received during the run, per answered
	// lookup and per number looked up (cut-off lookups' bytes included).
	BytesPerLookup            float64 `json:"bytes_per_lookup,omitempty"`
	BytesPerNumber            float64 `json:"bytes_per_number,omitempty"`
	InProcessNumbersPerSecond float64 `json:"inprocess_numbers_per_second"`
	InProcessWorkers          int     `json:"inprocess_workers"`
	Ratio                     float64 `json:"ratio"` // numbers_per_second / inprocess_numbers_per_second
	Interrupted               bool    `json:"interrupted,omitempty"`
}

// run sends requests from b.conc workers until b.requests have been sent or
// b.duration has passed.
func (b *bench) run(ctx context.Context, cfg api.Config, inputs [][]byte, bar *progressBar) (*benchReport, error) {
	rep := &benchReport{Server: b.server, Op: b.op, Batch: b.batch, Concurrency: b.conc, ErrorKinds: map[string]int{}}
	var evalBody []byte
	var blinding *oprf.Blinding
	if b.op == "evaluate" {
		var blinded [][]byte
		var err error
		if blinding, blinded, err = oprf.Blind(inputs); err != nil {
			return nil, err
		}
		if evalBody, err = json.Marshal(api.EvaluateRequest{Elements: blinded}); err != nil {
			return nil, err
		}
	}
	loadCtx, cancel := context.WithTimeout(ctx, b.duration)
	defer cancel()

	var mu sync.Mutex
	var latencies []time.Duration
	var verifyOnce sync.Once
	var verifyErr error
	fail := func(kind string) {
		mu.Lock()
		rep.ErrorKinds[kind]++
		mu.Unlock()
		b.errs.Add(1)
	}
	start, received := time.Now(), b.received.Received()
	var wg sync.WaitGroup
	for w := range b.conc {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(b.seed, uint64(w)))
			for int(b.issued.Add(1)) <= b.requests && loadCtx.Err() == nil {
				t := time.Now()
				var kind string
				switch b.op {
				case "evaluate":
					var resp api.EvaluateResponse
					kind = b.evaluate(loadCtx, evalBody, &resp)
					if kind == "" {
						verifyOnce.Do(func() {
							_, verifyErr = blinding.Finalize(mustPublicKey(cfg.PublicKey), []byte(cfg.Info), resp.Evaluated, resp.Proof)
						})
					}
				case "lookup":
					numbers := make([]string, b.batch)
					for i := range numbers {
						numbers[i] = synth.Number(b.seed, rnd.IntN(b.owners))
					}
					var found int
					found, kind = b.lookup(loadCtx, numbers)
					mu.Lock()
					rep.RecordsFound += found
					mu.Unlock()
				}
				elapsed := time.Since(t)
				switch {
				case kind == "":
					mu.Lock()
					latencies = append(latencies, elapsed)
					mu.Unlock()
					b.done.Add(1)
				case loadCtx.Err() != nil:
					mu.Lock()
					rep.Unfinished++
					mu.Unlock()
				default:
					fail(kind)
				}
				bar.update(int(b.done.Load() + b.errs.Load()))
			}
		})
	}
	wg.Wait()
	if verifyErr != nil {
		return nil, fmt.Errorf("the server's evaluation proof does not verify against its published key: %w", verifyErr)
	}
	rep.ProofVerified = b.op == "evaluate" && len(latencies) > 0
	rep.Requests = len(latencies)
	rep.Errors = int(b.errs.Load())
	// Wall time, cut-off requests included: the conservative rate.
	secs := time.Since(start).Seconds()
	rep.Seconds = secs
	rep.RequestsPerSecond = float64(rep.Requests) / secs
	rep.NumbersPerSecond = float64(rep.Requests*b.batch) / secs
	slices.Sort(latencies)
	rep.P50Millis = millis(nearestRank(latencies, 50))
	rep.P99Millis = millis(nearestRank(latencies, 99))
	if b.op == "lookup" && rep.Requests > 0 {
		rep.BytesPerLookup = float64(b.received.Received()-received) / float64(rep.Requests)
		rep.BytesPerNumber = rep.BytesPerLookup / float64(b.batch)
	}
	if len(rep.ErrorKinds) == 0 {
		rep.ErrorKinds = nil
	}
	return rep, nil
}

func mustPublicKey(b []byte) *oprf.PublicKey {
	pk, err := oprf.ParsePublicKey(b)
	if err != nil {
		return nil // Finalize then fails with oprf.ErrKey
	}
	return pk
}

// getConfig fetches the directory's public parameters.
func (b *bench) getConfig(ctx context.Context, cfg *api.Config) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.server+api.PathConfig, nil)
	if err != nil {
		return err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", api.PathConfig, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(cfg)
}

// evaluate sends one signed evaluate request and returns "" or the kind of
// error.
func (b *bench) evaluate(ctx context.Context, body []byte, out *api.EvaluateResponse) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.server+api.PathEvaluate, bytes.NewReader(body))
	if err != nil {
		return "request"
	}
	req.Header.Set("Content-Type", "application/json")
	if err := httpsig.Sign(req, body, b.key, b.cert, time.Now()); err != nil {
		return "signing"
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return "transport"
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "transport"
	}
	if resp.StatusCode != http.StatusOK {
		return httpKind(resp.StatusCode, rb)
	}
	if err := json.Unmarshal(rb, out); err != nil || len(out.Evaluated) != b.batch {
		return "malformed answer"
	}
	return ""
}

// lookup runs one whole lookup and returns the records found, and "" or
// the kind of error.
func (b *bench) lookup(ctx context.Context, numbers []string) (int, string) {
	res, err := b.client.Lookup(ctx, numbers...)
	var e *client.Error
	switch {
	case errors.As(err, &e):
		return 0, fmt.Sprintf("HTTP %d (%s)", e.Status, e.Message)
	case err != nil:
		return 0, "lookup failed"
	}
	found := 0
	for _, r := range res {
		found += len(r.Records)
	}
	return found, ""
}

func httpKind(status int, body []byte) string {
	var e api.Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return fmt.Sprintf("HTTP %d (%s)", status, e.Error)
	}
	return fmt.Sprintf("HTTP %d", status)
}

// nearestRank is the nearest-rank percentile of sorted durations.
func nearestRank(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *benchReport) print(w io.Writer, remote bool) {
	fmt.Fprintf(w, "blindex bench: %s, %d numbers per request, %d in flight, against %s\n",
		r.Op, r.Batch, r.Concurrency, r.Server)
	fmt.Fprintf(w, "  requests    %d answered, %d errors, %d cut off, in %.2fs\n", r.Requests, r.Errors, r.Unfinished, r.Seconds)
	kinds := make([]string, 0, len(r.ErrorKinds))
	for k := range r.ErrorKinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  error       %d × %s\n", r.ErrorKinds[k], k)
	}
	fmt.Fprintf(w, "  throughput  %.1f requests/s, %.0f numbers/s\n", r.RequestsPerSecond, r.NumbersPerSecond)
	fmt.Fprintf(w, "  latency     p50 %.1f ms, p99 %.1f ms\n", r.P50Millis, r.P99Millis)
	if r.Op == "lookup" {
		fmt.Fprintf(w, "  found       %d records\n", r.RecordsFound)
		fmt.Fprintf(w, "  downloaded  %.0f KiB per lookup, %.0f bytes per number\n", r.BytesPerLookup/1024, r.BytesPerNumber)
	}
	fmt.Fprintf(w, "  in-process  %.0f numbers/s on %d cores (blindex oprf over circl, POPRF ristretto255, batch %d)\n",
		r.InProcessNumbersPerSecond, r.InProcessWorkers, r.Batch)
	fmt.Fprintf(w, "  ratio       %.2f of the in-process rate\n", r.Ratio)
	if remote {
		fmt.Fprintln(w, "  (the in-process rate is this machine's; the server may run on another)")
	}
	if r.Interrupted {
		fmt.Fprintln(w, "  (interrupted: the figures cover the requests made until then)")
	}
	if r.ErrorKinds != nil && strings.Contains(strings.Join(kinds, " "), "HTTP 429") {
		fmt.Fprintln(w, "  (HTTP 429: the server's evaluation budget or ceiling refused requests; raise them on a benchmark server: serve --budget-*)")
	}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws a one-line bar on a terminal, redrawn in place. A nil
// *progressBar draws nothing.
type progressBar struct {
	w        io.Writer
	total    int
	duration time.Duration // 0: progress by count only
	start    time.Time
	done     atomic.Int64
	quit     chan struct{}
	finished chan struct{}
}

func newProgressBar(w io.Writer, total int, d time.Duration) *progressBar {
	p := &progressBar{w: w, total: total, duration: d, start: time.Now(),
		quit: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(p.finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				fmt.Fprint(p.w, "\r\033[K") // erase the bar
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progressBar) update(done int) {
	if p != nil {
		p.done.Store(int64(done))
	}
}

func (p *progressBar) draw() {
	const width = 30
	done := int(p.done.Load())
	frac := float64(done) / float64(p.total)
	elapsed := time.Since(p.start)
	if p.duration > 0 {
		frac = max(frac, float64(elapsed)/float64(p.duration))
	}
	frac = min(frac, 1)
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %s", strings.Repeat("=", n), strings.Repeat(" ", width-n), done, p.total,
		elapsed.Truncate(100*time.Millisecond))
}

func (p *progressBar) stop() {
	if p == nil {
		return
	}
	close(p.quit)
	<-p.finished
}
