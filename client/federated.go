package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"blindex.dev/blindex/federation"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
)

// A Pin is what a trusted source, such as a federation map, says a
// directory's parameters are (Config.Pin).
type Pin struct {
	PublicKey []byte   // the lookup OPRF public key (RFC 9497)
	Info      string   // the POPRF info of lookup epoch 0
	Epoch     int      // the oldest current epoch accepted
	LogKey    string   // the transparency log's note verifier key
	CARoots   [][]byte // the DER roots the directory accepts, in any order
}

// PinOf returns the pin a federation map gives a directory.
func PinOf(d *federation.Directory) *Pin {
	return &Pin{PublicKey: d.OPRFKey, Info: d.OPRFInfo, Epoch: d.OPRFEpoch, LogKey: d.LogKey, CARoots: d.CARoots}
}

// ErrPinMismatch means a directory's /v1/config differs from what the
// federation map pins for it: it is refused, since its proofs would prove
// evaluations under a key the map's signer never vouched for.
var ErrPinMismatch = errors.New("client: the directory's parameters differ from those the federation map gives it")

// check compares a directory's published parameters with the pin.
func (p *Pin) check(cfg *api.Config) error {
	switch {
	case cfg.Suite != oprf.SuiteID || cfg.Mode != "POPRF":
		return fmt.Errorf("client: directory speaks %s %s, want %s POPRF", cfg.Suite, cfg.Mode, oprf.SuiteID)
	case !bytes.Equal(cfg.PublicKey, p.PublicKey):
		return fmt.Errorf("%w: another OPRF public key", ErrPinMismatch)
	case cfg.Info != p.Info:
		return fmt.Errorf("%w: another OPRF info", ErrPinMismatch)
	case cfg.Epoch < p.Epoch:
		return fmt.Errorf("%w: lookup epoch %d, older than the map's %d", ErrPinMismatch, cfg.Epoch, p.Epoch)
	case cfg.LogKey != p.LogKey:
		return fmt.Errorf("%w: another log key", ErrPinMismatch)
	case !sameRoots(cfg.CARoots, p.CARoots):
		return fmt.Errorf("%w: other CA roots", ErrPinMismatch)
	}
	return nil
}

// matches reports whether stored parameters are exactly the pinned ones.
func (p *Pin) matches(q *pinned) bool {
	return bytes.Equal(q.PublicKey, p.PublicKey) && q.Info == p.Info && q.LogKey == p.LogKey &&
		sameRoots(q.CARoots, p.CARoots) && q.Epoch >= p.Epoch
}

func sameRoots(a, b [][]byte) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, bytes.Compare)
	slices.SortFunc(b, bytes.Compare)
	return slices.EqualFunc(a, b, bytes.Equal)
}

// pinnedFrom returns the directory parameters pinned by pin. The first time
// (or after the map changed them) it checks the directory's /v1/config
// against pin: a directory that answers with another key is refused before
// any evaluation. The stored parameters are always pin's own.
func (c *Client) pinnedFrom(ctx context.Context, pin *Pin) (*pinned, error) {
	path := filepath.Join(c.cfg.StateDir, filePinned)
	b, err := os.ReadFile(path)
	var old pinned
	switch {
	case err == nil:
		if json.Unmarshal(b, &old) == nil && pin.matches(&old) {
			return &old, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	cfg, err := c.config(ctx)
	if err != nil {
		return nil, err
	}
	if err := pin.check(cfg); err != nil {
		return nil, err
	}
	p := pinned{PublicKey: pin.PublicKey, Info: pin.Info, CARoots: pin.CARoots, LogKey: pin.LogKey,
		LogLabelInfo: cfg.LogLabelInfo, Epoch: pin.Epoch}
	if err := c.savePinned(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// FederatedConfig configures a Federated client.
type FederatedConfig struct {
	// Map is the federation map, opened with federation.Open (so its name,
	// signatures and expiry were checked). Required.
	Map *federation.Map
	// StateDir holds the credential (one for every directory), the newest
	// map seen (federation.map), and each directory's pinned parameters and
	// log state: the directory that holds the credential's number keeps
	// them in StateDir itself, as a Client of that directory alone would,
	// and every other in StateDir/directories/<its URL>. Required.
	StateDir string
	// HTTPClient, MaxPrefixBits, DefaultRegion, Now, TrustRoots,
	// AllowUnlogged and MinBucketOwners are as in Config; TrustRoots defaults to each
	// directory's own roots in the map.
	HTTPClient      *http.Client
	MaxPrefixBits   int
	DefaultRegion   string
	Now             func() time.Time
	TrustRoots      []*x509.Certificate
	AllowUnlogged   bool
	MinBucketOwners int
}

// Federated is a client of a federation of directories: it routes each
// number to the directory that holds the longest prefix of it in a signed
// map, and holds each directory to the keys the map gives it (not to the
// directory's own first answer). A directory sees only the numbers routed
// to it, as blinded elements; it learns that this caller looked up that
// many numbers in its range, and nothing of the others.
//
// It is safe for concurrent lookups; Verify and Confirm must not run
// concurrently with anything.
type Federated struct {
	cfg     FederatedConfig
	clients map[string]*Client // by directory URL
}

// fileMap is the newest map this state directory has accepted.
const fileMap = "federation.map"

// NewFederated returns a federated client for cfg. It refuses a map of
// another name than one accepted before in StateDir (federation.ErrName), a
// map older than it (federation.ErrRollback), and a different map of the
// same version (*federation.ConflictError, with both signed maps as
// evidence).
func NewFederated(cfg FederatedConfig) (*Federated, error) {
	if cfg.Map == nil || cfg.StateDir == "" {
		return nil, errors.New("client: Map and StateDir are required")
	}
	if len(cfg.Map.Note) == 0 {
		return nil, errors.New("client: the federation map must be opened with federation.Open")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	f := &Federated{cfg: cfg, clients: map[string]*Client{}}
	if err := f.acceptMap(); err != nil {
		return nil, err
	}
	home := f.homeNumber()
	for i := range cfg.Map.Directories {
		d := &cfg.Map.Directories[i]
		dir := filepath.Join(cfg.StateDir, "directories", dirName(d.URL))
		if h, _, err := cfg.Map.Route(home); err == nil && h.URL == d.URL {
			dir = cfg.StateDir
		}
		c, err := f.newClient(d, dir)
		if err != nil {
			return nil, err
		}
		f.clients[d.URL] = c
	}
	return f, nil
}

func (f *Federated) newClient(d *federation.Directory, stateDir string) (*Client, error) {
	return New(Config{Server: d.URL, StateDir: stateDir, CredentialDir: f.cfg.StateDir, Pin: PinOf(d),
		HTTPClient: f.cfg.HTTPClient, MaxPrefixBits: f.cfg.MaxPrefixBits, DefaultRegion: f.cfg.DefaultRegion, Now: f.cfg.Now,
		TrustRoots: f.cfg.TrustRoots, AllowUnlogged: f.cfg.AllowUnlogged, MinBucketOwners: f.cfg.MinBucketOwners})
}

// acceptMap checks the map against the newest one accepted before, and
// keeps it if it is newer.
func (f *Federated) acceptMap() error {
	path := filepath.Join(f.cfg.StateDir, fileMap)
	b, err := os.ReadFile(path)
	if err == nil {
		// Verified when it was stored; only its text is needed here.
		_, err := note.Open(b, note.VerifierList())
		var unverified *note.UnverifiedNoteError
		if !errors.As(err, &unverified) {
			return fmt.Errorf("client: %s is corrupt", fileMap)
		}
		prev, err := federation.Parse([]byte(unverified.Note.Text))
		if err != nil {
			return fmt.Errorf("client: %s: %w", fileMap, err)
		}
		prev.Note = b
		if err := federation.CheckSuccessor(prev, f.cfg.Map); err != nil {
			return err
		}
		if prev.Version == f.cfg.Map.Version {
			return nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return writeFile(path, f.cfg.Map.Note, 0o600)
}

// dirName turns a directory URL into a file name.
func dirName(u string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.Replace(u, "://", "_", 1))
}

// homeNumber is the number of the stored credential, or of the pending
// verification, or "".
func (f *Federated) homeNumber() string {
	if n, _, err := f.Identity(); err == nil {
		return n
	}
	if p, err := readPending(f.cfg.StateDir); err == nil {
		return p.Number
	}
	return ""
}

// Route returns the directory of the map that holds number.
func (f *Federated) Route(number string) (*federation.Directory, error) {
	e, err := oprf.NormalizeNumber(number, f.cfg.DefaultRegion)
	if err != nil {
		return nil, err
	}
	d, _, err := f.cfg.Map.Route(e)
	return d, err
}

// home returns a client of the directory that holds number, keeping its
// state in StateDir itself, where the credential is.
func (f *Federated) home(number string) (*Client, error) {
	if err := f.fresh(); err != nil {
		return nil, err
	}
	d, err := f.Route(number)
	if err != nil {
		return nil, err
	}
	return f.newClient(d, f.cfg.StateDir)
}

// Home returns the client of the directory that holds the stored
// credential's number: where its owner publishes, and where its monitor
// watches the log.
func (f *Federated) Home() (*Client, error) {
	n, _, err := f.Identity()
	if err != nil {
		return nil, err
	}
	return f.home(n)
}

// Identity returns the number and expiry of the stored credential.
func (f *Federated) Identity() (string, time.Time, error) {
	return StoredIdentity(f.cfg.StateDir)
}

// Verify starts the verification of number at the directory that holds it.
func (f *Federated) Verify(ctx context.Context, number string) (time.Time, error) {
	c, err := f.home(number)
	if err != nil {
		return time.Time{}, err
	}
	return c.Verify(ctx, number)
}

// VerifyNewKey is Verify with a new key at Confirm (Client.VerifyNewKey).
func (f *Federated) VerifyNewKey(ctx context.Context, number string) (time.Time, error) {
	c, err := f.home(number)
	if err != nil {
		return time.Time{}, err
	}
	return c.VerifyNewKey(ctx, number)
}

// Confirm completes the pending verification at the directory that holds
// its number.
func (f *Federated) Confirm(ctx context.Context, code string) error {
	p, err := readPending(f.cfg.StateDir)
	if err != nil {
		return err
	}
	c, err := f.home(p.Number)
	if err != nil {
		return err
	}
	return c.Confirm(ctx, code)
}

// fresh refuses to use a map past its expiry, however long ago it was
// opened.
func (f *Federated) fresh() error {
	if m := f.cfg.Map; !f.cfg.Now().Before(m.Expires) {
		return fmt.Errorf("%w (version %d expired %s)", federation.ErrExpired, m.Version, m.Expires.Format(time.RFC3339))
	}
	return nil
}

// A DirectoryError is a failure at one directory of the federation.
type DirectoryError struct {
	URL string
	Err error
}

func (e *DirectoryError) Error() string { return e.URL + ": " + e.Err.Error() }
func (e *DirectoryError) Unwrap() error { return e.Err }

// Lookup looks numbers up, each at the directory that holds it: one batch
// per directory, all in parallel. Results are in input order. An invalid
// number, or one that no directory in the map holds
// (federation.ErrNoDirectory), gets a per-number Err. If a directory fails
// (unreachable, or answering with keys other than the map's), its numbers
// get a *DirectoryError as their Err and Lookup returns those errors
// joined, with the other directories' results.
func (f *Federated) Lookup(ctx context.Context, numbers ...string) ([]Result, error) {
	if err := f.fresh(); err != nil {
		return nil, err
	}
	if _, _, err := f.Identity(); err != nil {
		return nil, err
	}
	results := make([]Result, len(numbers))
	batches := map[string][]int{} // directory URL -> input positions
	for i, n := range numbers {
		results[i].Number = n
		e, err := oprf.NormalizeNumber(n, f.cfg.DefaultRegion)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].E164 = e
		d, _, err := f.cfg.Map.Route(e)
		if err != nil {
			results[i].Err = err
			continue
		}
		batches[d.URL] = append(batches[d.URL], i)
	}
	urls := make([]string, 0, len(batches))
	for u := range batches {
		urls = append(urls, u)
	}
	slices.Sort(urls)
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for k, u := range urls {
		wg.Go(func() {
			pos := batches[u]
			batch := make([]string, len(pos))
			for j, p := range pos {
				batch[j] = numbers[p]
			}
			res, err := f.clients[u].Lookup(ctx, batch...)
			if err != nil {
				errs[k] = &DirectoryError{URL: u, Err: err}
				for _, p := range pos {
					results[p].Err = errs[k]
				}
				return
			}
			for j, p := range pos {
				results[p] = res[j]
			}
		})
	}
	wg.Wait()
	return results, errors.Join(errs...)
}
