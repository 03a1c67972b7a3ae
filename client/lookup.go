package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/bucket"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
)

// pinned are the directory parameters trusted on first use: a directory that
// later answers with another key is refused, since its proofs would prove
// evaluations under a key the client never agreed to.
type pinned struct {
	PublicKey    []byte   `json:"public_key"`
	Info         string   `json:"info"`
	CARoots      [][]byte `json:"ca_roots"`
	LogKey       string   `json:"log_key,omitempty"`
	LogLabelInfo string   `json:"log_label_info,omitempty"`
	// Epoch is the newest lookup epoch seen: a directory that later
	// evaluates under an older one as current is refused.
	Epoch int `json:"epoch"`
}

// pinned returns the directory parameters, fetching and pinning them on
// first use.
func (c *Client) pinned() (*pinned, error) {
	return c.pinnedCtx(context.Background())
}

func (c *Client) pinnedCtx(ctx context.Context) (*pinned, error) {
	if c.cfg.Pin != nil {
		return c.pinnedFrom(ctx, c.cfg.Pin) // federated.go: pinned from the map, not on first use
	}
	path := filepath.Join(c.cfg.StateDir, filePinned)
	var p pinned
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("client: %s is corrupt: %w", filePinned, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		cfg, err := c.config(ctx)
		if err != nil {
			return nil, err
		}
		if cfg.Suite != oprf.SuiteID || cfg.Mode != "POPRF" {
			return nil, fmt.Errorf("client: directory speaks %s %s, want %s POPRF", cfg.Suite, cfg.Mode, oprf.SuiteID)
		}
		// The label info is a protocol constant: a directory that named
		// another could give one client labels that never appear in the
		// log, blinding its monitor.
		if cfg.LogKey != "" && cfg.LogLabelInfo != api.LogLabelInfo {
			return nil, fmt.Errorf("client: directory uses log label info %q, want %q", cfg.LogLabelInfo, api.LogLabelInfo)
		}
		p = pinned{PublicKey: cfg.PublicKey, Info: cfg.Info, CARoots: cfg.CARoots, LogKey: cfg.LogKey, LogLabelInfo: cfg.LogLabelInfo}
		if err := c.savePinned(&p); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	return &p, nil
}

// pinnedKey returns the pinned parameters and their OPRF public key.
func (c *Client) pinnedKey(ctx context.Context) (*pinned, *oprf.PublicKey, error) {
	p, err := c.pinnedCtx(ctx)
	if err != nil {
		return nil, nil, err
	}
	pk, err := oprf.ParsePublicKey(p.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("client: pinned directory key: %w", err)
	}
	return p, pk, nil
}

// config fetches the directory's public parameters.
func (c *Client) config(ctx context.Context) (*api.Config, error) {
	var cfg api.Config
	if err := c.do(ctx, "GET", api.PathConfig, nil, &cfg, nil); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// savePinned stores the pinned directory parameters.
func (c *Client) savePinned(p *pinned) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(c.cfg.StateDir, filePinned), b, 0o600)
}

// An evaluation is the outcome of evaluating a batch of inputs, or one
// request's worth of them (evaluatePart).
type evaluation struct {
	ys      [][]byte
	buckets uint64 // the smallest bucket count the directory reported
	// byPrefix: the directory names no bucket count, only a prefix length
	// (an older directory); buckets is then 2^prefix_bits.
	byPrefix bool
	// crowd is the most buckets the smallest signed owner count allows for
	// crowds of Config.MinBucketOwners (kanon.go).
	crowd    uint64
	epoch    int  // the lookup epoch evaluated under
	previous *int // an older epoch the directory still answers
}

// evalPartSize is the most elements a lookup sends in one evaluate request.
// The parts are evaluated at once, so a large lookup uses the server's cores
// and the client's rather than one of each. How a batch is split depends
// only on its size, never on this device, so the requests tell the server
// nothing it did not learn from the count.
const evalPartSize = 512

// bucketPartSize is the most buckets a lookup sends in one buckets
// request, for the same reason. A variable for tests only.
var bucketPartSize = 512

// evaluateAt evaluates under epoch, or the current epoch if nil. The proof
// is checked under the info the client derives from the epoch number and
// the pinned key, and the current epoch may only move forward.
func (c *Client) evaluateAt(ctx context.Context, cred *identity, inputs [][]byte, epoch *int) (*evaluation, error) {
	p, pk, err := c.pinnedKey(ctx)
	if err != nil {
		return nil, err
	}
	parts := evenParts(inputs, evalPartSize)
	out := make([]*evaluation, len(parts))
	if err := c.inParts(ctx, len(parts), func(ctx context.Context, i int) (err error) {
		out[i], err = c.evaluatePart(ctx, cred, p, pk, parts[i], epoch)
		return err
	}); err != nil {
		return nil, err
	}
	// Every part in the epoch of the first: parts sent at once may straddle
	// the start of a new epoch. Only then is a part evaluated again.
	for i := 1; i < len(out); i++ {
		if e := out[0].epoch; out[i].epoch != e {
			if out[i], err = c.evaluatePart(ctx, cred, p, pk, parts[i], &e); err != nil {
				return nil, err
			}
		}
	}
	ev := &evaluation{ys: make([][]byte, 0, len(inputs)), buckets: bucket.MaxCount, crowd: bucket.MaxCount}
	for _, o := range out {
		ev.ys = append(ev.ys, o.ys...)
		ev.buckets = min(ev.buckets, o.buckets)
		ev.byPrefix = ev.byPrefix || o.byPrefix
		ev.crowd = min(ev.crowd, o.crowd)
		ev.epoch, ev.previous = o.epoch, o.previous
	}
	if epoch == nil && ev.epoch > p.Epoch {
		p.Epoch = ev.epoch
		if err := c.savePinned(p); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// evenParts splits xs into the fewest parts of at most size, of equal
// sizes (the last may be smaller).
func evenParts[T any](xs []T, size int) [][]T {
	n := (len(xs) + size - 1) / size
	if n == 0 {
		return nil
	}
	return slices.Collect(slices.Chunk(xs, (len(xs)+n-1)/n))
}

// inParts runs f for parts 0..n-1 at once, at most one per core, and
// returns the first failure in part order; the first failure cancels the
// others.
func (c *Client) inParts(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	errs := make([]error, n)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if errs[i] = f(pctx, i); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	// The others may only have failed by their cancellation.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// evaluatePart blinds part, has the directory evaluate it under epoch (the
// current one if nil), and verifies and finalizes the answer.
func (c *Client) evaluatePart(ctx context.Context, cred *identity, p *pinned, pk *oprf.PublicKey, part [][]byte, epoch *int) (*evaluation, error) {
	blinding, blinded, err := oprf.Blind(part)
	if err != nil {
		return nil, err
	}
	var resp api.EvaluateResponse
	if err := c.do(ctx, "POST", api.PathEvaluate, api.EvaluateRequest{Elements: blinded, Epoch: epoch}, &resp, cred); err != nil {
		return nil, err
	}
	switch {
	case epoch != nil && resp.Epoch != *epoch:
		return nil, fmt.Errorf("client: asked for epoch %d, the directory evaluated under %d", *epoch, resp.Epoch)
	case epoch == nil && resp.Epoch < p.Epoch:
		return nil, fmt.Errorf("%w: the directory's current epoch went back from %d to %d", ErrKeyChanged, p.Epoch, resp.Epoch)
	case resp.Previous != nil && *resp.Previous != resp.Epoch-1:
		// Only the epoch just before the current one overlaps it.
		return nil, fmt.Errorf("client: the directory names epoch %d as the one before %d", *resp.Previous, resp.Epoch)
	}
	ys, err := blinding.Finalize(pk, []byte(api.EpochInfo(p.Info, resp.Epoch)), resp.Evaluated, resp.Proof)
	if errors.Is(err, oprf.ErrProof) {
		if cfg, err := c.config(ctx); err == nil && !bytes.Equal(cfg.PublicKey, pk.Bytes()) {
			return nil, ErrKeyChanged
		}
		return nil, fmt.Errorf("client: the directory's evaluation proof does not verify against the pinned key: %w", err)
	}
	if err != nil {
		return nil, err
	}
	crowd, err := c.crowd(ctx, &resp)
	if err != nil {
		return nil, err
	}
	ev := &evaluation{ys: ys, buckets: resp.BucketCount, crowd: crowd, epoch: resp.Epoch, previous: resp.Previous}
	if resp.BucketCount == 0 || resp.BucketCount > bucket.MaxCount {
		if resp.PrefixBits < 0 || resp.PrefixBits > 32 {
			return nil, fmt.Errorf("client: the directory names prefix length %d", resp.PrefixBits)
		}
		ev.buckets, ev.byPrefix = 1<<resp.PrefixBits, true
	}
	return ev, nil
}

func (c *Client) normalize(number string) (string, error) {
	return oprf.NormalizeNumber(number, c.cfg.DefaultRegion)
}

func (c *Client) normalizeAll(numbers []string) ([][]byte, error) {
	out := make([][]byte, 0, len(numbers))
	seen := map[string]bool{}
	for i, n := range numbers {
		e, err := c.normalize(n)
		if err != nil {
			return nil, fmt.Errorf("number %d: %w", i+1, err)
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, []byte(e))
		}
	}
	return out, nil
}

// Access says who may see a record. Allow and Deny hold phone numbers; the
// client turns them into caller pseudonyms through blinded evaluation, so the
// directory never receives them.
type Access struct {
	Visibility acl.Visibility
	Allow      []string
	Deny       []string
}

// A Result is what a lookup found for one number. Records is empty both when
// the number is not registered and when its owner does not let this caller
// see anything: the directory's answers for the two are identical.
type Result struct {
	Number  string          // as given
	E164    string          // normalized; empty if Err is set
	Records []record.Record // visible, unexpired, verified records, by priority then app
	// Vouched[i] is what the publisher proof of Records[i] established:
	// the trusted CA that vouched for its key (CAFingerprint), and the
	// log's promise for that credential.
	Vouched []*record.Verified
	// Dropped counts the records under this number's index that were not
	// accepted, by reason (see DropReason): tampered, expired, failing
	// their publisher proof, or superseded by the same app's record from
	// a later SMS proof.
	Dropped map[string]int
	Err     error // this number could not be looked up (invalid)
}

// Lookup looks numbers up. Invalid numbers get a per-number Err; other
// failures fail the whole call. Results are in input order.
func (c *Client) Lookup(ctx context.Context, numbers ...string) ([]Result, error) {
	cred, err := c.credential()
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(numbers))
	var inputs [][]byte
	pos := map[string]int{} // E.164 -> input position
	for i, n := range numbers {
		results[i].Number = n
		e, err := c.normalize(n)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].E164 = e
		if _, ok := pos[e]; !ok {
			pos[e] = len(inputs)
			inputs = append(inputs, []byte(e))
		}
	}
	if len(inputs) == 0 {
		return results, nil
	}
	ev, err := c.evaluateAt(ctx, cred, inputs, nil)
	if err != nil {
		return nil, err
	}
	// During an epoch overlap a caller looks up in the previous epoch only,
	// where every owner still is (owners keep a copy there until it
	// retires). Fetching in both epochs would hand the server two
	// independent bucket prefixes for each number, which together narrow
	// it far below one bucket's crowd.
	current, previous := ev.epoch, ev.previous
	if ev.previous != nil {
		old, err := c.evaluateAt(ctx, cred, inputs, ev.previous)
		if asStatus(err, http.StatusGone) != nil {
			err = nil // retired meanwhile: the current epoch alone is answered
		} else if err == nil {
			ev = old
		}
		if err != nil {
			return nil, err
		}
	}
	trust, err := c.trust(ctx)
	if err != nil {
		return nil, err
	}
	found, err := c.fetchRecords(ctx, cred, ev, inputs, trust)
	if err != nil {
		return nil, err
	}
	for i := range results {
		if results[i].Err == nil {
			f := found[pos[results[i].E164]]
			results[i].Records, results[i].Vouched, results[i].Dropped = f.records, f.vouched, f.dropped
		}
	}
	if err := c.keepPromises(found); err != nil {
		return results, err
	}
	// An owner whose records are in an older epoch moves them now.
	if err := c.migrate(ctx, current, previous); err != nil && !errors.Is(err, ErrNoCredential) {
		return results, fmt.Errorf("client: moving your records to epoch %d: %w", current, err)
	}
	return results, nil
}

// maxWidenBits bounds how much wider than the directory's a client's
// buckets may be: 2^maxWidenBits of them (directory.MaxWidenBits). The
// directory refuses wider buckets.
const maxWidenBits = 4

// buyWiderFetches makes sure this lookup has bought enough bucket fetches
// for buckets among count, fewer than the directory's: each costs one
// fetch for every bucket of the directory's it spans, one per evaluation
// (docs/protocol.md §8.6). It buys the difference by evaluating random
// inputs, which tell the directory nothing but their count, and spend the
// caller's evaluation budget like any other.
func (c *Client) buyWiderFetches(ctx context.Context, cred *identity, ev *evaluation, count uint64, buckets []uint32) error {
	if count >= ev.buckets {
		return nil
	}
	if ev.buckets > count<<maxWidenBits {
		return fmt.Errorf("client: MaxPrefixBits allows %d buckets, fewer than a %dth of the directory's %d: the directory refuses buckets that wide",
			count, 1<<maxWidenBits, ev.buckets)
	}
	var cost uint64
	for _, b := range buckets {
		cost += bucket.Spans(b, count, ev.buckets)
	}
	extra := int(cost) - len(ev.ys)
	if extra <= 0 {
		return nil
	}
	dummies := make([][]byte, extra)
	for i := range dummies {
		dummies[i] = make([]byte, 16)
		rand.Read(dummies[i])
	}
	_, err := c.evaluateAt(ctx, cred, dummies, &ev.epoch)
	return err
}

// fetchRecords fetches the buckets of ev's outputs in ev's epoch and opens
// the records under each output's index.
func (c *Client) fetchRecords(ctx context.Context, cred *identity, ev *evaluation, inputs [][]byte, trust record.Trust) ([]verified, error) {
	// More buckets than MaxPrefixBits allows, or than the signed owner
	// count allows (kanon.go), would put each lookup in a smaller crowd
	// than the client accepts; fewer only fetch more.
	if ev.buckets > ev.crowd<<maxWidenBits {
		return nil, fmt.Errorf("%w: the directory asks for %d buckets, but its signed owner count allows at most %d for crowds of %d (MinBucketOwners); it refuses buckets more than %d times wider",
			ErrSmallCrowd, ev.buckets, ev.crowd, c.cfg.MinBucketOwners, 1<<maxWidenBits)
	}
	count := min(ev.buckets, uint64(1)<<c.cfg.MaxPrefixBits, ev.crowd)
	if ev.byPrefix { // a directory that fetches by prefix: a power of two
		count = 1 << bucket.PrefixBits(count)
	}
	// Fetch each distinct bucket once.
	indexes := make([][32]byte, len(ev.ys))
	var buckets []uint32
	seen := map[uint32]bool{}
	for i, y := range ev.ys {
		indexes[i] = oprf.Index(y)
		b := bucket.Of(indexes[i], count)
		if !seen[b] {
			seen[b] = true
			buckets = append(buckets, b)
		}
	}
	if err := c.buyWiderFetches(ctx, cred, ev, count, buckets); err != nil {
		return nil, err
	}
	answers, err := c.fetchBuckets(ctx, cred, ev.epoch, count, ev.byPrefix, buckets)
	if err != nil {
		return nil, err
	}
	// Keep only the records under this lookup's own indexes: a bucket holds
	// tens of other owners' records for each of ours.
	byIndex := make(map[[32]byte][][]byte, len(indexes))
	for _, idx := range indexes {
		byIndex[idx] = nil
	}
	for _, resp := range answers {
		for _, b := range resp.Buckets {
			for _, e := range b.Records {
				if len(e.Index) != 32 {
					continue
				}
				if cts, ours := byIndex[[32]byte(e.Index)]; ours {
					byIndex[[32]byte(e.Index)] = append(cts, e.Ciphertext)
				}
			}
		}
	}
	now := c.cfg.Now()
	found := make([]verified, len(ev.ys))
	// Opening and verifying is independent per number: spread it over the
	// cores.
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(ev.ys); i += workers {
				found[i] = verifyRecords(oprf.RecordKey(ev.ys[i]), byIndex[indexes[i]], string(inputs[i]), now, trust)
			}
		})
	}
	wg.Wait()
	return found, nil
}

// sortVerified sorts a number's records by priority then app, each with
// its proof.
func sortVerified(v *verified) {
	order := make([]int, len(v.records))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		a, b := v.records[i], v.records[j]
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), strings.Compare(a.App, b.App))
	})
	records, vouched := make([]record.Record, len(order)), make([]*record.Verified, len(order))
	for k, i := range order {
		records[k], vouched[k] = v.records[i], v.vouched[i]
	}
	v.records, v.vouched = records, vouched
}

// fetchBuckets fetches buckets among count. If owners left between the
// two rounds the directory's bucket count may have shrunk (409): the client
// then fetches, once, the directory's current buckets that overlap its own,
// which only widens them.
func (c *Client) fetchBuckets(ctx context.Context, cred *identity, epoch int, count uint64, byPrefix bool, buckets []uint32) ([]*api.BucketsResponse, error) {
	answers, err := c.fetchBucketParts(ctx, cred, epoch, count, byPrefix, buckets)
	if asStatus(err, http.StatusConflict) == nil {
		return answers, err
	}
	cfg, cerr := c.config(ctx)
	if cerr != nil {
		return nil, cerr
	}
	now := cfg.BucketCount
	if byPrefix {
		if cfg.PrefixBits < 0 || cfg.PrefixBits > 32 {
			return nil, err
		}
		now = 1 << cfg.PrefixBits
	}
	if now >= count || now == 0 {
		return nil, err
	}
	var wider []uint32
	seen := map[uint32]bool{}
	for _, b := range buckets {
		lo, hi := bucket.Range(b, count)
		for w := bucket.OfValue(lo, now); w <= bucket.OfValue(hi, now); w++ {
			if !seen[w] {
				seen[w] = true
				wider = append(wider, w)
			}
		}
	}
	return c.fetchBucketParts(ctx, cred, epoch, now, byPrefix, wider)
}

// fetchBucketParts sorts the buckets, so that their order says nothing
// about the order of the numbers, and fetches them in parts at once (see
// evalPartSize). The parts of a sorted set are fixed by the set, so they
// tell the server nothing more than one request would.
func (c *Client) fetchBucketParts(ctx context.Context, cred *identity, epoch int, count uint64, byPrefix bool, buckets []uint32) ([]*api.BucketsResponse, error) {
	slices.Sort(buckets)
	parts := evenParts(buckets, bucketPartSize)
	answers := make([]*api.BucketsResponse, len(parts))
	err := c.inParts(ctx, len(parts), func(ctx context.Context, i int) (err error) {
		req := api.BucketsRequest{Prefixes: parts[i], Epoch: &epoch}
		if byPrefix {
			req.PrefixBits = bucket.PrefixBits(count)
		} else {
			req.BucketCount = &count
		}
		answers[i], err = c.postBuckets(ctx, req, cred)
		return err
	})
	return answers, err
}

// Identity returns the number and expiry of the stored credential.
func (c *Client) Identity() (number string, expires time.Time, err error) {
	cred, err := c.credential()
	if err != nil {
		return "", time.Time{}, err
	}
	return cred.number, cred.cert.NotAfter, nil
}
