package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"crypto/sha256"
	"crypto/x509"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/internal/api"
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
}

// pinned returns the directory parameters, fetching and pinning them on
// first use.
func (c *Client) pinned() (*pinned, error) {
	return c.pinnedCtx(context.Background())
}

func (c *Client) pinnedCtx(ctx context.Context) (*pinned, error) {
	path := filepath.Join(c.cfg.StateDir, filePinned)
	var p pinned
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("client: %s is corrupt: %w", filePinned, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		var cfg api.Config
		if err := c.do(ctx, "GET", api.PathConfig, nil, &cfg, nil); err != nil {
			return nil, err
		}
		if cfg.Suite != oprf.SuiteID || cfg.Mode != "POPRF" {
			return nil, fmt.Errorf("client: directory speaks %s %s, want %s POPRF", cfg.Suite, cfg.Mode, oprf.SuiteID)
		}
		p = pinned{PublicKey: cfg.PublicKey, Info: cfg.Info, CARoots: cfg.CARoots, LogKey: cfg.LogKey, LogLabelInfo: cfg.LogLabelInfo}
		b, _ := json.Marshal(p)
		if err := writeFile(path, b, 0o600); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	return &p, nil
}

func (c *Client) params(ctx context.Context) (*oprf.PublicKey, []byte, error) {
	p, err := c.pinnedCtx(ctx)
	if err != nil {
		return nil, nil, err
	}
	pk, err := oprf.ParsePublicKey(p.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("client: pinned directory key: %w", err)
	}
	return pk, []byte(p.Info), nil
}

// evaluate computes the OPRF outputs of inputs through blinded, verified
// evaluation, in batches of at most oprf.MaxBatch. It returns the outputs
// and the smallest prefix length the directory reported.
func (c *Client) evaluate(ctx context.Context, cred *identity, inputs [][]byte) ([][]byte, int, error) {
	pk, info, err := c.params(ctx)
	if err != nil {
		return nil, 0, err
	}
	outputs := make([][]byte, 0, len(inputs))
	prefixBits := 32
	for chunk := range slices.Chunk(inputs, oprf.MaxBatch) {
		blinding, blinded, err := oprf.Blind(chunk)
		if err != nil {
			return nil, 0, err
		}
		var resp api.EvaluateResponse
		if err := c.do(ctx, "POST", api.PathEvaluate, api.EvaluateRequest{Elements: blinded}, &resp, cred); err != nil {
			return nil, 0, err
		}
		out, err := blinding.Finalize(pk, info, resp.Evaluated, resp.Proof)
		if errors.Is(err, oprf.ErrProof) {
			var cfg api.Config
			if c.do(ctx, "GET", api.PathConfig, nil, &cfg, nil) == nil && !bytes.Equal(cfg.PublicKey, pk.Bytes()) {
				return nil, 0, ErrKeyChanged
			}
			return nil, 0, fmt.Errorf("client: the directory's evaluation proof does not verify against the pinned key: %w", err)
		}
		if err != nil {
			return nil, 0, err
		}
		outputs = append(outputs, out...)
		prefixBits = min(prefixBits, resp.PrefixBits)
	}
	return outputs, prefixBits, nil
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

// owner loads the credential and evaluates, in one blinded batch, the
// owner's own number (for its index and record key) and the numbers of a
// (for its pseudonyms). a may be nil.
func (c *Client) owner(ctx context.Context, a *Access) (*identity, []byte, acl.List, error) {
	cred, err := c.credential()
	if err != nil {
		return nil, nil, acl.List{}, err
	}
	number, err := credentialNumber(cred)
	if err != nil {
		return nil, nil, acl.List{}, err
	}
	inputs := [][]byte{[]byte(number)}
	var allow, deny [][]byte
	if a != nil {
		if allow, err = c.normalizeAll(a.Allow); err != nil {
			return nil, nil, acl.List{}, fmt.Errorf("allowlist: %w", err)
		}
		if deny, err = c.normalizeAll(a.Deny); err != nil {
			return nil, nil, acl.List{}, fmt.Errorf("denylist: %w", err)
		}
		inputs = append(append(inputs, allow...), deny...)
	}
	ys, _, err := c.evaluate(ctx, cred, inputs)
	if err != nil {
		return nil, nil, acl.List{}, err
	}
	var l acl.List
	if a != nil {
		l.Visibility = a.Visibility
		for i, y := range ys[1:] {
			p := acl.Pseudonym(oprf.Pseudonym(y))
			if i < len(allow) {
				l.Allow = append(l.Allow, p)
			} else {
				l.Deny = append(l.Deny, p)
			}
		}
		if err := l.Validate(); err != nil {
			return nil, nil, acl.List{}, err
		}
	}
	return cred, ys[0], l, nil
}

// Publish seals r and publishes it under the credential's number with the
// given access. Publishing again for the same app replaces the record.
func (c *Client) Publish(ctx context.Context, r record.Record, a Access) error {
	cred, y, l, err := c.owner(ctx, &a)
	if err != nil {
		return err
	}
	ct, err := record.Seal(oprf.RecordKey(y), r)
	if err != nil {
		return err
	}
	idx, rid := oprf.Index(y), oprf.RecordID(y, r.App)
	var resp api.WriteResponse
	err = c.do(ctx, "PUT", api.PathRecords, api.PublishRequest{
		Index: idx[:], RecordID: rid[:], Ciphertext: ct, ACL: &l, Expires: r.Expires,
	}, &resp, cred)
	if err != nil {
		return err
	}
	if err := c.notePublished(r.App, &a, r.Expires); err != nil {
		return err
	}
	return c.stateLogged(ctx, cred, resp.Log, r.App, &expect{App: r.App, RecordID: rid[:], Ciphertext: sha256.Sum256(ct),
		Expires: r.Expires, Visibility: l.Visibility, Allow: l.Allow, Deny: l.Deny})
}

// SetACL replaces the access list of the record published for app.
func (c *Client) SetACL(ctx context.Context, app string, a Access) error {
	cred, y, l, err := c.owner(ctx, &a)
	if err != nil {
		return err
	}
	idx, rid := oprf.Index(y), oprf.RecordID(y, app)
	var resp api.WriteResponse
	if err := c.do(ctx, "PUT", api.PathRecordACL, api.SetACLRequest{Index: idx[:], RecordID: rid[:], ACL: &l}, &resp, cred); err != nil {
		return err
	}
	if err := c.notePublished(app, &a, time.Time{}); err != nil {
		return err
	}
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	var rec *expect
	for _, r := range s.Records {
		if r.App == app {
			r.Visibility, r.Allow, r.Deny = l.Visibility, l.Allow, l.Deny
			rec = &r
		}
	}
	if rec == nil {
		return fmt.Errorf("%w: no local record of app %q in %s", ErrLogEntry, app, fileLog)
	}
	return c.stateLogged(ctx, cred, resp.Log, app, rec)
}

// Delete removes the record published for app.
func (c *Client) Delete(ctx context.Context, app string) error {
	cred, y, _, err := c.owner(ctx, nil)
	if err != nil {
		return err
	}
	rid := oprf.RecordID(y, app)
	path := strings.Replace(api.PathRecord, "{record_id}", hex.EncodeToString(rid[:]), 1)
	var resp api.WriteResponse
	if err := c.do(ctx, "DELETE", path, nil, &resp, cred); err != nil {
		return err
	}
	if err := c.notePublished(app, nil, time.Time{}); err != nil {
		return err
	}
	return c.stateLogged(ctx, cred, resp.Log, app, nil)
}

// A Result is what a lookup found for one number. Records is empty both when
// the number is not registered and when its owner does not let this caller
// see anything: the directory's answers for the two are identical.
type Result struct {
	Number  string          // as given
	E164    string          // normalized; empty if Err is set
	Records []record.Record // visible, unexpired records, by priority then app
	Err     error           // this number could not be looked up (invalid)
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
	ys, prefixBits, err := c.evaluate(ctx, cred, inputs)
	if err != nil {
		return nil, err
	}
	// A prefix longer than MaxPrefixBits would put each lookup in a smaller
	// crowd than the client accepts; a shorter one only fetches more.
	prefixBits = min(prefixBits, c.cfg.MaxPrefixBits)

	// Round 2: fetch each distinct bucket once.
	indexes := make([][32]byte, len(ys))
	var prefixes []uint32
	seen := map[uint32]bool{}
	for i, y := range ys {
		indexes[i] = oprf.Index(y)
		p := prefixOf(indexes[i], prefixBits)
		if !seen[p] {
			seen[p] = true
			prefixes = append(prefixes, p)
		}
	}
	byIndex := map[[32]byte][][]byte{}
	for chunk := range slices.Chunk(prefixes, oprf.MaxBatch) {
		resp, err := c.fetchBuckets(ctx, cred, prefixBits, chunk)
		if err != nil {
			return nil, err
		}
		for _, b := range resp.Buckets {
			for _, e := range b.Records {
				if len(e.Index) == 32 {
					k := [32]byte(e.Index)
					byIndex[k] = append(byIndex[k], e.Ciphertext)
				}
			}
		}
	}

	now := c.cfg.Now()
	found := make([][]record.Record, len(ys))
	for i, y := range ys {
		key := oprf.RecordKey(y)
		for _, ct := range byIndex[indexes[i]] {
			r, err := record.Open(key, ct)
			if err != nil || !r.Expires.After(now) {
				continue // not ours to read, tampered, or stale
			}
			found[i] = append(found[i], r)
		}
		slices.SortFunc(found[i], func(a, b record.Record) int {
			return cmp.Or(cmp.Compare(a.Priority, b.Priority), strings.Compare(a.App, b.App))
		})
	}
	for i := range results {
		if results[i].Err == nil {
			results[i].Records = found[pos[results[i].E164]]
		}
	}
	return results, nil
}

// fetchBuckets fetches the buckets under prefixes of n bits. If owners left
// between the two rounds the directory's prefix may have shrunk (409): the
// client then widens its prefixes to the directory's current length, which
// only merges buckets, and retries once.
func (c *Client) fetchBuckets(ctx context.Context, cred *identity, n int, prefixes []uint32) (api.BucketsResponse, error) {
	var resp api.BucketsResponse
	err := c.do(ctx, "POST", api.PathBuckets, api.BucketsRequest{PrefixBits: n, Prefixes: prefixes}, &resp, cred)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict {
		return resp, err
	}
	var cfg api.Config
	if err := c.do(ctx, "GET", api.PathConfig, nil, &cfg, nil); err != nil {
		return resp, err
	}
	if cfg.PrefixBits >= n || cfg.PrefixBits < 0 {
		return resp, err
	}
	var wider []uint32
	seen := map[uint32]bool{}
	for _, p := range prefixes {
		if q := p >> (n - cfg.PrefixBits); !seen[q] {
			seen[q] = true
			wider = append(wider, q)
		}
	}
	var again api.BucketsResponse
	err = c.do(ctx, "POST", api.PathBuckets, api.BucketsRequest{PrefixBits: cfg.PrefixBits, Prefixes: wider}, &again, cred)
	return again, err
}

// prefixOf is the first n bits of an index.
func prefixOf(index [32]byte, n int) uint32 {
	if n == 0 {
		return 0
	}
	return binary.BigEndian.Uint32(index[:4]) >> (32 - n)
}

// credentialNumber reads the number from the credential's TNAuthList.
func credentialNumber(cred *identity) (string, error) {
	n, err := numberOf(cred.cert)
	if err != nil {
		return "", fmt.Errorf("client: credential: %w", err)
	}
	return n, nil
}

// Identity returns the number and expiry of the stored credential.
func (c *Client) Identity() (number string, expires time.Time, err error) {
	cred, err := c.credential()
	if err != nil {
		return "", time.Time{}, err
	}
	n, err := credentialNumber(cred)
	return n, cred.cert.NotAfter, err
}

// numberOf returns the single number in a certificate's TNAuthList.
func numberOf(cert *x509.Certificate) (string, error) {
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(credential.OIDTNAuthList) {
			ns, err := credential.ParseTNAuthList(ext.Value)
			if err != nil {
				return "", err
			}
			if len(ns) != 1 {
				return "", credential.ErrNoNumber
			}
			return ns[0], nil
		}
	}
	return "", credential.ErrNoNumber
}
