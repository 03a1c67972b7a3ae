package directory_test

// Server benchmarks against a real server on a loopback port, each with a
// baseline measured in the same run and interleaved with it:
//
//   - BenchmarkEvaluateHTTP: signed evaluate requests, against the same
//     batches evaluated in-process on every core (target 1: at least 0.85);
//   - BenchmarkPublishHTTP: signed publishes with an ACL, against the same
//     writes straight to the store (target 7: at least 1,000 records/s);
//   - BenchmarkPrivacyScan: threatmodel/privacyscan over a synthetic data
//     directory, against reading the same files.
//
// BLINDEX_BENCH_OWNERS sets the synthetic directory's size (default 10,000)
// and BLINDEX_BENCH_DATA a data directory to use (built there if it holds no
// database yet; see "blindex synth").

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/directory/datadir"
	"blindex.dev/blindex/directory/synth"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/server"
	"blindex.dev/blindex/threatmodel/privacyscan"
)

// benchBudget lifts every evaluation limit: benchmarks measure the work,
// not the enumeration defences.
var benchBudget = directory.Budget{Burst: 1 << 30, PerDay: 1 << 30, GlobalPerSecond: 1 << 30}

// benchEnvInt reads a positive integer from the environment.
func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// benchData returns a data directory with a synthetic directory of
// BLINDEX_BENCH_OWNERS owners (seed 1).
func benchData(b *testing.B) (dir string, owners int) {
	b.Helper()
	owners = benchEnvInt(b, "BLINDEX_BENCH_OWNERS", 10_000)
	dir = os.Getenv("BLINDEX_BENCH_DATA")
	if dir == "" {
		dir = filepath.Join(b.TempDir(), "data")
	} else if _, err := os.Stat(filepath.Join(dir, datadir.DBFile)); err == nil {
		return dir, owners // built before, by "blindex synth" or a previous run
	}
	if _, err := synth.Build(b.Context(), dir, synth.Config{Owners: owners, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	return dir, owners
}

// benchServer is a real server on loopback whose CA issues credentials
// directly, with evaluation limits lifted.
type benchServer struct {
	srv  *server.Running
	http *http.Client
}

func newBenchServer(b *testing.B, dir string) *benchServer {
	b.Helper()
	srv, err := server.Start(b.Context(), server.Config{
		DataDir:   dir,
		Addr:      "127.0.0.1:0",
		Directory: directory.Config{Budget: benchBudget},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	return &benchServer{srv: srv, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// benchCredential is a key and a credential the server's CA issued for it.
type benchCredential struct {
	number string
	key    *ecdsa.PrivateKey
	cert   []byte
	y      []byte // the number's OPRF output under the server's key
}

func (s *benchServer) credential(b *testing.B, number string) benchCredential {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	issued := time.Now().Add(-time.Minute)
	cert, err := s.srv.CA.Issue(number, &key.PublicKey, 24*time.Hour, issued, issued)
	if err != nil {
		b.Fatal(err)
	}
	y, err := oprf.NewEvaluator(s.srv.Node.OPRFKey).FullEvaluate([]byte("blindex lookup v1"), []byte(number))
	if err != nil {
		b.Fatal(err)
	}
	return benchCredential{number: number, key: key, cert: cert, y: y}
}

// do sends a signed request and returns an error unless it succeeds.
func (s *benchServer) do(c benchCredential, method, path string, in, out any, idempotent bool) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, s.srv.URL()+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if idempotent {
		// As the client sends with every write.
		var k [24]byte
		rand.Read(k[:])
		req.Header.Set("Idempotency-Key", fmt.Sprintf("%x", k))
	}
	if err := httpsig.Sign(req, body, c.key, c.cert, time.Now()); err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, rb)
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

// inParallel runs f(0..n-1) on n goroutines and returns the first error.
func inParallel(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkEvaluateHTTP measures signed evaluate requests over loopback with
// twice as many requests in flight as cores, against the same batches
// evaluated in-process (oprf.Evaluator, circl underneath) on every core.
// Each iteration is one round of each: 2×GOMAXPROCS batches. http/inproc
// is target 1 (at least 0.85 at the full batch).
func BenchmarkEvaluateHTTP(b *testing.B) {
	s := newBenchServer(b, b.TempDir())
	caller := s.credential(b, "+14155550100")
	ev := oprf.NewEvaluator(s.srv.Node.OPRFKey)
	info := []byte("blindex lookup v1")
	workers := runtime.GOMAXPROCS(0)
	inFlight := 2 * workers
	for _, n := range []int{16, oprf.MaxBatch} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			inputs := make([][]byte, n)
			for i := range inputs {
				inputs[i] = []byte(synth.Number(2, i))
			}
			blinding, blinded, err := oprf.Blind(inputs)
			if err != nil {
				b.Fatal(err)
			}
			// Check once that the server really evaluates under its key.
			var resp api.EvaluateResponse
			if err := s.do(caller, "POST", api.PathEvaluate, api.EvaluateRequest{Elements: blinded}, &resp, false); err != nil {
				b.Fatal(err)
			}
			if _, err := blinding.Finalize(s.srv.Node.OPRFKey.Public(), info, resp.Evaluated, resp.Proof); err != nil {
				b.Fatal(err)
			}
			var inproc, overHTTP time.Duration
			for b.Loop() {
				t := time.Now()
				err := inParallel(workers, func(int) error {
					for range inFlight / workers {
						if _, _, err := ev.Evaluate(info, blinded); err != nil {
							return err
						}
					}
					return nil
				})
				inproc += time.Since(t)
				if err != nil {
					b.Fatal(err)
				}
				t = time.Now()
				err = inParallel(inFlight, func(int) error {
					var r api.EvaluateResponse
					return s.do(caller, "POST", api.PathEvaluate, api.EvaluateRequest{Elements: blinded}, &r, false)
				})
				overHTTP += time.Since(t)
				if err != nil {
					b.Fatal(err)
				}
			}
			elems := float64(b.N * inFlight * n)
			b.ReportMetric(elems/inproc.Seconds(), "inproc-elem/s")
			b.ReportMetric(elems/overHTTP.Seconds(), "http-elem/s")
			b.ReportMetric(inproc.Seconds()/overHTTP.Seconds(), "http/inproc")
		})
	}
}

// benchACL is an allowlist of four pseudonyms, as the store writes them:
// one records row and one acls row of four entries per publish.
func benchACL() acl.List {
	l := acl.List{Visibility: acl.Allowlist}
	for i := range 4 {
		var p acl.Pseudonym
		p[0], p[31] = 'b', byte(i)
		l.Allow = append(l.Allow, p)
	}
	return l
}

// BenchmarkPublishHTTP measures signed publishes (PUT /v1/records with an
// Idempotency-Key, as the client sends them) by 2×GOMAXPROCS owners at once,
// against the same records written straight to the store
// (directory.Store.PutRecord) from as many goroutines. http-rec/s is
// target 7 (at least 1,000).
func BenchmarkPublishHTTP(b *testing.B) {
	s := newBenchServer(b, b.TempDir())
	store := s.srv.Node.Store
	owners := 2 * runtime.GOMAXPROCS(0)
	creds := make([]benchCredential, owners)
	l := benchACL()
	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	bodies := make([]api.PublishRequest, owners)
	for i := range creds {
		creds[i] = s.credential(b, synth.Number(3, i))
		idx, rid := oprf.Index(creds[i].y), oprf.RecordID(creds[i].y, "org.example.chat")
		ct, err := record.Seal(oprf.RecordKey(creds[i].y), record.Record{App: "org.example.chat",
			Endpoint: "https://chat.example.org/u/" + strconv.Itoa(i), Expires: expires})
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = api.PublishRequest{Index: idx[:], RecordID: rid[:], Ciphertext: ct, ACL: &l, Expires: expires}
		// The first request claims the index; later ones are the steady state.
		if err := s.do(creds[i], "PUT", api.PathRecords, bodies[i], nil, true); err != nil {
			b.Fatal(err)
		}
	}
	// The direct writes go to other indexes than the HTTP owners', each
	// with a holder of its own (a record needs its holder's row).
	directHolder := [32]byte{0xbe}
	for i := range owners {
		var idx [32]byte
		idx[0], idx[1] = 0xbe, byte(i)
		if _, err := store.ChangeHolders(context.Background(), 0, idx, func([]directory.Holder) (directory.HolderChange, error) {
			return directory.HolderChange{Put: []directory.Holder{{KeyHash: directHolder, FirstProof: expires, LastProof: expires}}}, nil
		}, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	var direct, overHTTP time.Duration
	var seq atomic.Uint64
	for b.Loop() {
		t := time.Now()
		err := inParallel(owners, func(i int) error {
			// Other indexes than the HTTP owners', replaced in turn.
			var r directory.Record
			r.Index[0], r.Index[1] = 0xbe, byte(i)
			r.Holder = directHolder
			r.RecordID[0] = byte(seq.Add(1) % 8)
			r.Ciphertext, r.ACL, r.Expires, r.Updated = bodies[i].Ciphertext, l, expires, time.Now()
			_, err := store.PutRecord(context.Background(), r, 32)
			return err
		})
		direct += time.Since(t)
		if err != nil {
			b.Fatal(err)
		}
		t = time.Now()
		err = inParallel(owners, func(i int) error {
			return s.do(creds[i], "PUT", api.PathRecords, bodies[i], nil, true)
		})
		overHTTP += time.Since(t)
		if err != nil {
			b.Fatal(err)
		}
	}
	recs := float64(b.N * owners)
	b.ReportMetric(recs/direct.Seconds(), "store-rec/s")
	b.ReportMetric(recs/overHTTP.Seconds(), "http-rec/s")
	b.ReportMetric(direct.Seconds()/overHTTP.Seconds(), "http/store")
}

// BenchmarkPrivacyScan measures threatmodel/privacyscan looking for 100
// synthetic numbers (five spellings each) in a synthetic data directory,
// against reading the same files once. The scan is one pass per spelling,
// so scan/read grows with the numbers sought.
func BenchmarkPrivacyScan(b *testing.B) {
	dir, owners := benchData(b)
	numbers := make([]string, 100)
	for i := range numbers {
		numbers[i] = synth.Number(1, i*owners/len(numbers))
	}
	sc, err := privacyscan.New(numbers...)
	if err != nil {
		b.Fatal(err)
	}
	var bytesRead int64
	var read, scan time.Duration
	for b.Loop() {
		t := time.Now()
		bytesRead = 0
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(path)
			bytesRead += int64(len(data))
			return err
		})
		read += time.Since(t)
		if err != nil {
			b.Fatal(err)
		}
		t = time.Now()
		found, files, err := sc.Dir(dir)
		scan += time.Since(t)
		if err != nil || files == 0 {
			b.Fatalf("scan: %d files, %v", files, err)
		}
		for _, f := range found {
			b.Error(f)
		}
	}
	b.ReportMetric(float64(bytesRead)/(1<<20), "MiB")
	b.ReportMetric(float64(b.N)*float64(bytesRead)/(1<<20)/scan.Seconds(), "scan-MiB/s")
	b.ReportMetric(float64(b.N)*float64(bytesRead)/(1<<20)/read.Seconds(), "read-MiB/s")
	b.ReportMetric(scan.Seconds()/read.Seconds(), "scan/read")
}
