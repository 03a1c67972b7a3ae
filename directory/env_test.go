package directory_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/client"
	"blindex.dev/blindex/directory"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/server"
)

// Fictional but valid numbers.
const (
	bob   = "+14155550100"
	carol = "+14155552671"
	alice = "+12025550173"
	dave  = "+12015550123" // never registers
)

// phones receives the codes the server sends.
type phones struct {
	mu    sync.Mutex
	inbox map[string]string
	fail  atomic.Bool
}

func (p *phones) Send(_ context.Context, m sms.Message) error {
	if p.fail.Load() {
		return io.ErrUnexpectedEOF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inbox[m.To] = m.Code
	return nil
}

func (p *phones) code(n string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inbox[n]
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a real server on a loopback port over a temporary data directory.
type env struct {
	t      *testing.T
	srv    *server.Running
	phones *phones
	logs   *syncBuffer
	skew   atomic.Int64 // added to the server clock, in nanoseconds
	frozen atomic.Int64 // if not 0, the server clock stands still here (Unix nanoseconds)
	dir    string
	store  *countingStore
}

func newEnv(t *testing.T, cfg directory.Config) *env {
	t.Helper()
	// One test client registers many numbers from one address.
	return newEnvFull(t, cfg, ca.Limits{NetworkPerHour: 1000})
}

func newEnvCA(t *testing.T, limits ca.Limits) *env {
	t.Helper()
	return newEnvFull(t, directory.Config{}, limits)
}

func newEnvFull(t *testing.T, cfg directory.Config, limits ca.Limits) *env {
	t.Helper()
	e := &env{t: t, phones: &phones{inbox: map[string]string{}}, logs: &syncBuffer{}, dir: t.TempDir()}
	cfg.Now = func() time.Time {
		if f := e.frozen.Load(); f != 0 {
			return time.Unix(0, f)
		}
		return time.Now().Add(time.Duration(e.skew.Load()))
	}
	caCfg := ca.Config{Limits: limits, Now: cfg.Now}
	e.store = &countingStore{}
	cfg.Observe = nil
	srv, err := server.Start(t.Context(), server.Config{
		DataDir:   filepath.Join(e.dir, "server"),
		Addr:      "127.0.0.1:0",
		SMS:       e.phones,
		Directory: cfg,
		CA:        caCfg,
		Logger:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		WrapStore: e.store.wrap,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e.srv = srv
	return e
}

// alignClock moves the server clock to five minutes into a fixed window
// (hour, day and 30-day windows all start there), so tests of windowed
// limits never straddle a window boundary. The clock jumps back by up to
// 30 days, so the housekeeping round the server starts with, if still under
// way on the old clock, would delete the limit counters that follow as
// expired. alignClock therefore runs a round itself and gives the server's
// first round time to end (a heuristic: the store's single writer
// serializes the two, and the first round takes milliseconds).
func (e *env) alignClock() {
	now := time.Now()
	start := now.Truncate(30 * 24 * time.Hour).Add(5 * time.Minute)
	e.skew.Store(int64(start.Sub(now)))
	e.srv.Housekeep(e.t.Context())
	time.Sleep(100 * time.Millisecond)
}

// freeze stops the server clock where it is, so that nothing refills.
func (e *env) freeze() {
	e.frozen.Store(time.Now().Add(time.Duration(e.skew.Load())).UnixNano())
}

func (e *env) client(name string) *client.Client {
	e.t.Helper()
	c, err := client.New(client.Config{Server: e.srv.URL(), StateDir: filepath.Join(e.dir, name),
		Now: func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// register verifies number and returns its client.
func (e *env) register(number string) *client.Client {
	e.t.Helper()
	c := e.client(strings.TrimPrefix(number, "+"))
	if _, err := c.Verify(e.t.Context(), number); err != nil {
		e.t.Fatalf("verify %s: %v", number, err)
	}
	if err := c.Confirm(e.t.Context(), e.phones.code(number)); err != nil {
		e.t.Fatalf("confirm %s: %v", number, err)
	}
	return c
}

// signer signs raw requests with a credential issued by the server's CA.
type signer struct {
	key  *ecdsa.PrivateKey
	cert []byte
}

func (e *env) issue(number string, notBefore time.Time, validity time.Duration) signer {
	e.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := e.srv.CA.Issue(number, &key.PublicKey, validity, notBefore, notBefore)
	if err != nil {
		e.t.Fatal(err)
	}
	return signer{key: key, cert: cert}
}

// issueProved is issue with the SMS proof made at proof.
func (e *env) issueProved(number string, now, proof time.Time) signer {
	e.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := e.srv.CA.Issue(number, &key.PublicKey, time.Hour, now, proof)
	if err != nil {
		e.t.Fatal(err)
	}
	return signer{key: key, cert: cert}
}

// reprove returns s's key with a new credential whose SMS proof is at now.
func (e *env) reprove(s signer, number string, now time.Time) signer {
	e.t.Helper()
	cert, err := e.srv.CA.Issue(number, &s.key.PublicKey, time.Hour, now, now)
	if err != nil {
		e.t.Fatal(err)
	}
	return signer{key: s.key, cert: cert}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) message() string {
	var m struct{ Error string }
	json.Unmarshal(r.body, &m)
	return m.Error
}

// do sends a request, signed if s is non-nil, and returns the raw answer.
func (e *env) do(method, path string, body any, s *signer) response {
	e.t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	req, _ := http.NewRequest(method, e.srv.URL()+path, bytes.NewReader(b))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s != nil {
		if err := httpsig.Sign(req, b, s.key, s.cert, time.Now().Add(time.Duration(e.skew.Load()))); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) response {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: rb}
}

// countingStore wraps the real store and counts the rows Buckets touches.
type countingStore struct {
	directory.Store
	rows       atomic.Int64
	countDelay atomic.Int64 // added to each CountOwners, in nanoseconds
	extra      atomic.Int64 // owners added to each CountOwners' answer
	maxRanges  atomic.Int64 // the most ranges one Buckets call read
	calls      atomic.Int64 // Buckets calls
	failFrom   atomic.Int64 // if > 0, Buckets calls from this one on fail
	filler     atomic.Int64 // if > 0, every bucket gets a public record of this many bytes

	mu     sync.Mutex
	counts []time.Time // when each CountOwners began, on the real clock
}

func (c *countingStore) CountOwners(ctx context.Context, now time.Time) (int, error) {
	c.mu.Lock()
	c.counts = append(c.counts, time.Now())
	c.mu.Unlock()
	select {
	case <-time.After(time.Duration(c.countDelay.Load())):
	case <-ctx.Done(): // the server stopping
		return 0, ctx.Err()
	}
	n, err := c.Store.CountOwners(ctx, now)
	return n + int(c.extra.Load()), err
}

// countsSince returns when the counts that began after t began.
func (c *countingStore) countsSince(t time.Time) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, at := range c.counts {
		if at.After(t) {
			out = append(out, at)
		}
	}
	return out
}

func (c *countingStore) wrap(s directory.Store) directory.Store {
	c.Store = s
	return c
}

func (c *countingStore) Buckets(ctx context.Context, epoch int, r []directory.BucketRange, p acl.Pseudonym, now time.Time) ([][]directory.Candidate, error) {
	for n := int64(len(r)); ; {
		if m := c.maxRanges.Load(); n <= m || c.maxRanges.CompareAndSwap(m, n) {
			break
		}
	}
	if call := c.calls.Add(1); c.failFrom.Load() > 0 && call >= c.failFrom.Load() {
		return nil, errors.New("countingStore: failing as asked")
	}
	out, err := c.Store.Buckets(ctx, epoch, r, p, now)
	if n := c.filler.Load(); n > 0 && err == nil {
		for i := range out {
			var idx [32]byte
			binary.BigEndian.PutUint32(idx[:], r[i].Lo)
			out[i] = append(out[i], directory.Candidate{Index: idx, Ciphertext: make([]byte, n), Visibility: acl.Public})
		}
	}
	for _, b := range out {
		c.rows.Add(int64(len(b)))
	}
	return out, err
}
