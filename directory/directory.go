// Package directory is the blindex server: it verifies numbers by SMS and
// issues credentials, evaluates the lookup OPRF on blinded elements, stores
// sealed records with their ACLs, and answers bucket fetches.
//
// What it learns at lookup time: the caller (from its credential), how many
// numbers the caller blinded, and the buckets it fetches (each one of n
// equal ranges of a pseudorandom index, internal/bucket). It never receives
// a looked-up number.
// A record the caller may not see is left out of the answer exactly as if it
// did not exist, so "denied" and "not registered" give identical bytes.
package directory

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"blindex.dev/blindex/acl"
	"golang.org/x/time/rate"

	"blindex.dev/blindex/ca"
	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/bucket"
	"blindex.dev/blindex/internal/buildinfo"
	"blindex.dev/blindex/internal/httpapi"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/translog"
)

// Config configures a Server. Zero values take the defaults given.
type Config struct {
	Store   Store            // required
	OPRFKey *oprf.PrivateKey // required: the lookup OPRF key

	// CA, if set, is the built-in CA: its verification endpoints are served
	// by this directory and its root is trusted.
	CA *ca.Service
	// Roots are further CA roots whose credentials the directory accepts.
	// At least one root (here or the built-in CA's) is required.
	Roots []*x509.Certificate
	// Logger receives operational logs; it never gets a number, key or OPRF
	// value. Default: discard.
	Logger *slog.Logger
	// Info is the POPRF info string for lookups. Default DefaultInfo,
	// "blindex lookup v1".
	Info string
	// MinBucketOwners is the number of registered owners the server aims to
	// have in every bucket; it sets the prefix length. Default
	// DefaultMinBucketOwners, 16.
	MinBucketOwners int
	// MaxPrefixBits caps the prefix length, at most 32. Default
	// DefaultMaxPrefixBits, 32, the maximum.
	MaxPrefixBits int
	// AuthWindow is how far a request timestamp may be from the server
	// clock. Default 60 seconds.
	AuthWindow time.Duration
	// RecordMaxTTL is the furthest in the future a record may expire.
	// Default 365 days.
	RecordMaxTTL time.Duration
	// MaxRecordsPerOwner bounds the records (apps) one holder keeps under
	// one index. Default 32.
	MaxRecordsPerOwner int
	// ReproofWindow is how long a holder put on notice by another key's
	// later SMS proof has to prove the number again before it is retired.
	// Default DefaultReproofWindow, 72 hours.
	ReproofWindow time.Duration
	// Budget bounds evaluations per caller and overall. Zero fields take
	// DefaultBudget's.
	Budget Budget
	// Observe, if set, receives what the server observed for each lookup
	// request: never a number, only what the protocol discloses.
	Observe func(Observation)
	// LogKey is the transparency log's note signer key (Ed25519, from
	// note.GenerateKey); required. Its name is the log's origin.
	LogKey string
	// Witnesses cosign the log's published checkpoints.
	Witnesses []translog.Cosigner
	// EpochGrace is how long after a lookup epoch retires the server still
	// answers bucket fetches in it, for lookups that evaluated there just
	// before. Its records are deleted after it. Default 10 s.
	EpochGrace time.Duration
	// LogInterval is how often a checkpoint is published. Default 1 s.
	LogInterval time.Duration
	// LogCheckpointFile, if set, keeps the newest published checkpoint
	// outside the database; New refuses a database whose log does not
	// contain it (restored from an older backup), unless
	// AcceptLogRollback is set.
	LogCheckpointFile string
	AcceptLogRollback bool
	// Holds, if set, says whether this directory holds number (E.164), as
	// in a federation where each directory holds some prefixes (see
	// ca.Config.Holds): publishing or changing a record for another number
	// is refused with ca.Misdirected. Lookups are not: callers of every
	// range look up numbers of this one. Default: every number.
	Holds func(number string) (elsewhere string, ok bool)
	// MapEntry, if set, is logged once, like the key entries: the
	// federation map this directory serves under (a translog.Map entry).
	MapEntry *translog.Entry
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// An Observation is what the server learns from one request: never a
// number, only what the protocol discloses. The transcript (NewTranscript)
// writes one per request.
type Observation struct {
	Time        time.Time `json:"time"`
	Endpoint    string    `json:"endpoint"`               // evaluate, buckets, publish, acl, delete, revoke
	Caller      string    `json:"caller"`                 // short keyed fingerprint of the caller (as in logs)
	Pseudonym   string    `json:"pseudonym"`              // the caller pseudonym, hex: links the transcript to allowlists
	Count       int       `json:"count,omitempty"`        // elements evaluated or buckets fetched
	PrefixBits  int       `json:"prefix_bits,omitempty"`  // for buckets fetched by prefix
	BucketCount *uint64   `json:"bucket_count,omitempty"` // for buckets fetched by count
	Prefixes    []uint32  `json:"prefixes,omitempty"`     // for buckets
	Index       string    `json:"index,omitempty"`        // for writes: the owner's index, hex
	RecordID    string    `json:"record_id,omitempty"`    // for writes, hex
	Size        int       `json:"ciphertext_size,omitempty"`
	Visibility  string    `json:"visibility,omitempty"`
	Allow       int       `json:"allow,omitempty"` // allowlist entries (pseudonyms)
	Deny        int       `json:"deny,omitempty"`  // denylist entries (pseudonyms)
	Expires     time.Time `json:"expires,omitzero"`
}

// NewTranscript returns an Observe function that writes each observation
// to w as one JSON line, for reviewers to check what the server saw.
func NewTranscript(w io.Writer) func(Observation) {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return func(o Observation) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(o)
	}
}

// Errors, with the status and message a client sees.
var (
	ErrNotOwner       = httpapi.New(http.StatusForbidden, "directory: index does not belong to this credential", "index does not belong to this credential's number")
	ErrRevoked        = httpapi.New(http.StatusUnauthorized, "directory: credential revoked", "credential revoked or retired: verify the number again")
	errStaleProof     = httpapi.New(http.StatusForbidden, ErrStaleProof.Error(), "prove the number by SMS again (within the last 10 minutes, and not while on notice) before evicting another key")
	errNotHolder      = httpapi.New(http.StatusNotFound, ErrNotHolder.Error(), "no other holder of this number has that key hash")
	errSenior         = httpapi.New(http.StatusForbidden, ErrSenior.Error(), "that key joined this number before yours: a key may evict only keys that joined after it")
	ErrStalePrefix    = httpapi.New(http.StatusConflict, "directory: bucket_count or prefix_bits above the current value", "bucket_count (or prefix_bits) above the server's current value: fetch /v1/config and retry")
	ErrShortPrefix    = httpapi.New(http.StatusConflict, "directory: buckets too wide", fmt.Sprintf("buckets wider than %d of the server's current ones (bucket_count or prefix_bits too small): fetch /v1/config and retry", 1<<MaxWidenBits))
	ErrTooManyRecords = httpapi.New(http.StatusConflict, "directory: too many records for this owner", "too many records for this number")
	errNoRecord       = httpapi.New(http.StatusNotFound, "directory: no such record", "not found")
)

// MaxWidenBits is how many bits below the server's prefix length a bucket
// fetch may go: a bucket then spans up to 16 of the server's buckets, and
// costs as many fetches.
const MaxWidenBits = 4

// Server is a blindex directory. Create it with New; it is safe for
// concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	eval     *oprf.Evaluator
	roots    *x509.CertPool
	rootsDER [][]byte // cfg.Roots as DER, for the config answer and the log
	sigs     *httpsig.Verifier

	ceiling      *rate.Limiter
	metrics      *metrics
	budgetSecret []byte
	logSecret    []byte
	tlog         *translog.Log

	owners     *ownerCount // the prefix length; Run stops its counts when it ends
	epochCache *epochCache

	logKeysMu sync.Mutex // serializes logKeys
}

// MetaOPRFPublicKey is the store meta key under which the OPRF public key
// is recorded, so that a database is never served under another key.
const MetaOPRFPublicKey = "oprf_public_key"

// New checks cfg and returns a Server. It records the OPRF public key in the
// store on first use and refuses a key that differs from the recorded one,
// so a lost key file is never silently replaced.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.OPRFKey == nil {
		return nil, errors.New("directory: Store and OPRFKey are required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	roots := slices.Clone(cfg.Roots)
	if cfg.CA != nil {
		roots = append([]*x509.Certificate{cfg.CA.Root()}, roots...)
	}
	if len(roots) == 0 {
		return nil, errors.New("directory: no trusted CA root: enable the built-in CA or configure roots")
	}
	cfg.Roots = roots
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	if err := cfg.Store.InitMeta(ctx, MetaOPRFPublicKey, cfg.OPRFKey.Public().Bytes()); errors.Is(err, ErrConflict) {
		return nil, errors.New("directory: the OPRF key does not match the one this database was created with; restore the original key file")
	} else if err != nil {
		return nil, fmt.Errorf("directory: recording the OPRF public key: %w", err)
	}
	sigs := httpsig.NewVerifier(cfg.AuthWindow)
	// Accepted nonces are recorded in the store too, so that neither this
	// server restarted nor another on the same database accepts a replay.
	sigs.Shared = httpapi.SharedNonces(cfg.Store)
	m := newMetrics()
	tl, err := translog.New(translog.Config{Storage: cfg.Store, Key: cfg.LogKey, Witnesses: cfg.Witnesses,
		Interval: cfg.LogInterval, CheckpointFile: cfg.LogCheckpointFile, Logger: cfg.Logger,
		OnError: func(error) { m.errors.WithLabelValues("log").Inc() }})
	if err != nil {
		return nil, err
	}
	var rollback *translog.RollbackError
	if err := tl.CheckHistory(ctx); errors.As(err, &rollback) && cfg.AcceptLogRollback {
		cfg.Logger.Warn("serving a log that forks from a published checkpoint: clients that saw it will report a fork",
			"published_size", rollback.Published.N, "database_size", rollback.Tree.N)
	} else if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	s := &Server{
		tlog:  tl,
		cfg:   cfg,
		log:   cfg.Logger,
		eval:  oprf.NewEvaluator(cfg.OPRFKey),
		roots: pool,
		sigs:  sigs,
		// Per process: the ceiling protects this server's CPU.
		ceiling: rate.NewLimiter(rate.Limit(cfg.Budget.GlobalPerSecond), cfg.Budget.GlobalPerSecond),
		metrics: m,
		// Derived from the OPRF key, which the database thief lacks.
		budgetSecret: hkdfKey(cfg.OPRFKey.Bytes(), "blindex v1 budget key"),
		logSecret:    hkdfKey(cfg.OPRFKey.Bytes(), "blindex v1 log fingerprint"),
	}
	s.owners = newOwnerCount(cfg.Store, cfg.MinBucketOwners, cfg.MaxPrefixBits, cfg.Now,
		func(err error) { s.housekeepError("counting owners", err) })
	s.epochCache = &epochCache{store: cfg.Store, grace: cfg.EpochGrace, now: cfg.Now, seen: s.logKeys}
	for _, r := range cfg.Roots {
		s.rootsDER = append(s.rootsDER, r.Raw)
	}
	m.logSize(func() (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		t, err := cfg.Store.LogTree(ctx)
		return t.N, err
	})
	// Reading the epochs logs the keys and infos the server answers under.
	if _, err := s.epochs(ctx); err != nil {
		return nil, fmt.Errorf("directory: logging the keys: %w", err)
	}
	if cfg.CA != nil {
		// The built-in CA logs each credential it issues, labelled with
		// this directory's OPRF key, in the same store, and a credential
		// issued on an SMS proof joins (or re-proves) its key at once.
		cfg.CA.LogTo(tl, s.Label, s.markLogged)
		cfg.CA.OnProof(s.proved)
	}
	return s, nil
}

func hkdfKey(secret []byte, label string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, label, 32)
	if err != nil {
		panic(err) // only for an impossible length
	}
	return k
}

// Defaults of Config, for the fields that layers above set (flags, the
// disclosure analysis): each is stated here only.
const (
	DefaultInfo            = "blindex lookup v1"
	DefaultMinBucketOwners = 16
	DefaultMaxPrefixBits   = 32
)

// A ConfigError says which Config field to change, and why.
type ConfigError struct {
	Field  string // as written in Go, e.g. "Budget.Burst"
	Reason string // e.g. "must be at least 1024, a full batch"
}

func (e *ConfigError) Error() string { return "directory: " + e.Field + " " + e.Reason }

// Validate reports, as a *ConfigError, the first setting of cfg that New
// would refuse, after the defaults are taken for zero fields; it does not
// check Store, OPRFKey and the other fields a caller fills in from keys.
// New calls it, and callers may too, to refuse a setting before they open
// anything.
func (cfg Config) Validate() error { return cfg.withDefaults().check() }

// withDefaults returns cfg with its zero settings set to the defaults.
func (cfg Config) withDefaults() Config {
	setDefault(&cfg.Info, DefaultInfo)
	setDefault(&cfg.MinBucketOwners, DefaultMinBucketOwners)
	setDefault(&cfg.MaxPrefixBits, DefaultMaxPrefixBits)
	setDefault(&cfg.AuthWindow, 60*time.Second)
	setDefault(&cfg.RecordMaxTTL, 365*24*time.Hour)
	setDefault(&cfg.MaxRecordsPerOwner, 32)
	setDefault(&cfg.EpochGrace, 10*time.Second)
	setDefault(&cfg.ReproofWindow, DefaultReproofWindow)
	setDefault(&cfg.Budget.Burst, DefaultBudget.Burst)
	setDefault(&cfg.Budget.PerDay, DefaultBudget.PerDay)
	setDefault(&cfg.Budget.GlobalPerSecond, DefaultBudget.GlobalPerSecond)
	return cfg
}

// check checks the settings, with the defaults taken.
func (cfg Config) check() error {
	fullBatch := fmt.Sprintf("must be at least %d, a full batch", oprf.MaxBatch)
	switch {
	case cfg.MinBucketOwners < 1:
		return &ConfigError{"MinBucketOwners", "must be at least 1"}
	case cfg.MaxPrefixBits < 0 || cfg.MaxPrefixBits > 32:
		return &ConfigError{"MaxPrefixBits", "must be between 0 and 32"}
	case cfg.MaxRecordsPerOwner < 1:
		return &ConfigError{"MaxRecordsPerOwner", "must be at least 1"}
	case cfg.AuthWindow < 0:
		return &ConfigError{"AuthWindow", "must not be negative"}
	case cfg.RecordMaxTTL < 0:
		return &ConfigError{"RecordMaxTTL", "must not be negative"}
	case cfg.EpochGrace < 0:
		return &ConfigError{"EpochGrace", "must not be negative"}
	case cfg.ReproofWindow < time.Second:
		return &ConfigError{"ReproofWindow", "must be at least one second"}
	// A batch the budget or the ceiling could never admit would be refused
	// forever.
	case cfg.Budget.Burst < oprf.MaxBatch:
		return &ConfigError{"Budget.Burst", fullBatch}
	case cfg.Budget.GlobalPerSecond < oprf.MaxBatch:
		return &ConfigError{"Budget.GlobalPerSecond", fullBatch}
	case cfg.Budget.PerDay < 1:
		return &ConfigError{"Budget.PerDay", "must be at least 1"}
	}
	return nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Run publishes log checkpoints and does periodic housekeeping until ctx
// ends.
func (s *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait() // no checkpoint is being written once Run returns
	wg.Go(func() { s.tlog.Run(ctx) })
	defer s.owners.stop()
	// Count owners now, so the first lookups need not wait for the count
	// (seconds at 10 M owners).
	s.owners.refresh()
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		s.Housekeep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Housekeep runs one round of housekeeping: the built-in CA's (expired
// verifications and counters), then expired records, then a store
// checkpoint so deleted rows leave no trace on disk, and the replay cache.
func (s *Server) Housekeep(ctx context.Context) {
	if s.cfg.CA != nil {
		s.cfg.CA.Housekeep(ctx)
	}
	now := s.cfg.Now()
	// Idempotency answers and counters expire whether or not a CA runs here.
	if _, err := s.cfg.Store.DeleteExpiredOutcomes(ctx, now); err != nil && ctx.Err() == nil {
		s.housekeepError("deleting expired outcomes", err)
	}
	if _, err := s.cfg.Store.DeleteExpiredCounters(ctx, now); err != nil && ctx.Err() == nil {
		s.housekeepError("deleting expired counters", err)
	}
	// A retired epoch's records can no longer be found: delete them.
	if e, err := s.epochs(ctx); err != nil && ctx.Err() == nil {
		s.housekeepError("reading epochs", err)
	} else if err == nil && e.Current > 0 && e.Previous < 0 {
		if n, err := s.cfg.Store.DeleteEpochsBefore(ctx, e.Current, now); err != nil && ctx.Err() == nil {
			s.housekeepError("deleting retired epochs' records", err)
		} else if n > 0 {
			s.log.Info("deleted retired epochs' records", "count", n, "current_epoch", e.Current)
			s.owners.left(n)
		}
	}
	s.retireOverdue(ctx, now)
	if n, err := s.cfg.Store.DeleteExpiredRecords(ctx, now); err != nil && ctx.Err() == nil {
		s.housekeepError("deleting expired records", err)
	} else if n > 0 {
		s.log.Info("deleted expired records", "count", n)
		s.owners.left(n)
	}
	if err := s.cfg.Store.Checkpoint(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("store checkpoint", "err", err)
	}
	s.sigs.Prune(now)
}

// retireOverdue retires the holders whose notice has run out: they did not
// prove the number again in time.
//
// Only the current epoch's holders are retired here, and logged: a holder
// retired there is revoked, its rows in the epoch before stay on notice
// (hidden) and go with that epoch's records.
func (s *Server) retireOverdue(ctx context.Context, now time.Time) {
	const perRound = 1000 // the rest wait for the next round
	e, err := s.epochs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.housekeepError("reading epochs", err)
		}
		return
	}
	indexes, err := s.cfg.Store.OverdueHolders(ctx, e.Current, now, perRound)
	if err != nil {
		if ctx.Err() == nil {
			s.housekeepError("reading overdue holders", err)
		}
		return
	}
	for _, idx := range indexes {
		// DecideOverdue puts no row, so no epoch is written.
		ch, err := s.cfg.Store.ChangeHolders(ctx, 0, idx, func(hs []Holder) (HolderChange, error) {
			return DecideOverdue(hs, now), nil
		}, now)
		if err != nil {
			if ctx.Err() == nil {
				s.housekeepError("retiring overdue holders", err)
			}
			return
		}
		s.holdersChanged(nil, ch)
	}
}

func (s *Server) housekeepError(what string, err error) {
	s.metrics.errors.WithLabelValues("housekeeping").Inc()
	s.log.Error(what, "err", err)
}

// config returns the public parameters.
func (s *Server) config(ctx context.Context) (api.Config, error) {
	count, err := s.owners.buckets(ctx)
	if err != nil {
		return api.Config{}, err
	}
	e, err := s.epochs(ctx)
	if err != nil {
		return api.Config{}, err
	}
	return api.Config{
		Suite:        oprf.SuiteID,
		Mode:         "POPRF",
		PublicKey:    s.cfg.OPRFKey.Public().Bytes(),
		Info:         s.cfg.Info,
		Epoch:        e.Current,
		Epochs:       apiEpochs(e, s.cfg.Info),
		PrefixBits:   bucket.PrefixBits(count),
		BucketCount:  count,
		MaxBatch:     oprf.MaxBatch,
		CARoots:      s.rootsDER,
		RecordMaxTTL: int64(s.cfg.RecordMaxTTL / time.Second),
		LogKey:       s.tlog.VerifierKey(),
		LogLabelInfo: LogLabelInfo,
		Build:        buildinfo.Read(nil).String(),
	}, nil
}

// A caller is an authenticated request's identity. The number from its
// credential is kept in memory for the request only (to derive other
// epochs' values and budget keys); it is never logged or stored.
type caller struct {
	pseudonym acl.Pseudonym // in epoch
	index     [32]byte      // in epoch
	epoch     int           // the current lookup epoch when the request arrived
	keyHash   [32]byte
	proof     Proof  // the credential's key, SMS proof time and the number's log label
	number    string // from the credential; for other epochs' derivations, never logged
	leaf      *x509.Certificate

	// The values in one other epoch, derived once per request by Server.at
	// (during an overlap, authenticate and the handler both need them).
	other struct {
		epoch     int
		pseudonym acl.Pseudonym
		index     [32]byte
		ok        bool
	}
}

// fingerprint names a caller in logs. It is an HMAC under a server secret,
// not a prefix of the pseudonym: logs plus a copy of the database must not
// link a caller's activity to the allowlists that name it.
func (s *Server) fingerprint(c *caller) string {
	m := hmac.New(sha256.New, s.logSecret)
	m.Write(c.pseudonym[:])
	return hex.EncodeToString(m.Sum(nil)[:6])
}

// observation starts an Observation of a request by c.
func (s *Server) observation(c *caller, endpoint string) Observation {
	return Observation{Time: s.cfg.Now(), Endpoint: endpoint, Caller: s.fingerprint(c), Pseudonym: hex.EncodeToString(c.pseudonym[:])}
}

// authenticate verifies a signed request and its credential, and returns
// the caller. The credential's key must not be revoked. Its SMS proof
// joins or re-proves it as a holder of the number (DecideProof), which may
// put other holders on notice; a holder whose notice ran out is retired,
// and refused as revoked.
func (s *Server) authenticate(r *http.Request, body []byte, allowRevoked bool) (*caller, error) {
	ctx := r.Context()
	now := s.cfg.Now()
	number, leaf, err := httpapi.Authenticate(s.sigs, r, body, s.roots, now)
	if err != nil {
		return nil, err
	}
	keyHash := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	revoked, err := s.cfg.Store.KeyRevoked(ctx, keyHash)
	if err != nil {
		return nil, err
	}
	if revoked && !allowRevoked {
		return nil, ErrRevoked
	}
	e, err := s.epochs(ctx)
	if err != nil {
		return nil, err
	}
	y, err := s.eval.FullEvaluate([]byte(EpochInfo(s.cfg.Info, e.Current)), []byte(number))
	if err != nil {
		return nil, err
	}
	c := &caller{pseudonym: oprf.Pseudonym(y), index: oprf.Index(y), epoch: e.Current, keyHash: keyHash, number: number, leaf: leaf}
	if revoked {
		// Only revoke may act with a revoked key, and only to revoke it
		// again: the holder check below must not let it take a number.
		return c, nil
	}
	if err := s.applyProof(ctx, c, leaf, e, now); err != nil {
		return nil, err
	}
	return c, nil
}

// proved applies the SMS proof of a credential the built-in CA has just
// issued, as its key's first request would.
func (s *Server) proved(ctx context.Context, number string, leaf *x509.Certificate) error {
	now := s.cfg.Now()
	e, err := s.epochs(ctx)
	if err != nil {
		return err
	}
	y, err := s.eval.FullEvaluate([]byte(EpochInfo(s.cfg.Info, e.Current)), []byte(number))
	if err != nil {
		return err
	}
	c := &caller{pseudonym: oprf.Pseudonym(y), index: oprf.Index(y), epoch: e.Current,
		keyHash: sha256.Sum256(leaf.RawSubjectPublicKeyInfo), number: number}
	err = s.applyProof(ctx, c, leaf, e, now)
	if errors.Is(err, ErrRevoked) {
		return nil // the key's notice ran out: its requests are refused
	}
	return err
}

// applyProof applies the SMS proof that c's credential leaf carries to the
// holders of c's number, in the current epoch and, during an overlap, the
// previous one; it refuses a key retired by it as revoked.
func (s *Server) applyProof(ctx context.Context, c *caller, leaf *x509.Certificate, e Epochs, now time.Time) error {
	if _, ok := s.holds(c.number); !ok {
		// A number outside this directory's prefixes may look up here but
		// never holds an index here: a peer's CA cannot put an owner of
		// this directory on notice, and lookups leave no holder row or log
		// entry.
		return nil
	}
	proofTime, err := credential.ProofTime(leaf)
	if err != nil {
		return httpapi.ErrCredentialUntrusted // Verify refuses a bad extension first
	}
	label, err := s.Label(c.number)
	if err != nil {
		return err
	}
	c.proof = Proof{KeyHash: c.keyHash, Time: proofTime, Label: label}
	var prevIndex func() ([32]byte, error)
	if e.Current > 0 {
		// The epoch before may still have rows (during an overlap, and
		// until housekeeping deletes its records).
		prevIndex = func() ([32]byte, error) {
			_, idx, err := s.at(c, e.Current-1)
			return idx, err
		}
	}
	if err := s.prove(ctx, c, e.Current, c.index, prevIndex, now); err != nil {
		return err
	}
	if e.announced() >= 0 {
		// During an overlap the previous epoch's index is held too, with
		// the same holders; its changes are logged once, above.
		idx, err := prevIndex()
		if err != nil {
			return err
		}
		if err := s.prove(ctx, c, e.Previous, idx, nil, now); err != nil {
			return err
		}
	}
	return nil
}

// prove applies the caller's proof to the holders of index (DecideProof),
// reading first so that the common case, a holder that has proved nothing
// new, writes nothing.
//
// For the current epoch, prevIndex gives the number's index in the epoch
// before (nil in epoch 0). A new epoch's index starts with no holders; the
// first request under it copies the holders of prevIndex, so that a
// rotation keeps each holder's proofs and notices instead of letting the
// order of first use decide who goes on notice. For the previous epoch
// itself, prevIndex is nil and the change appends no log entry: the
// current epoch's logged it.
func (s *Server) prove(ctx context.Context, c *caller, epoch int, index [32]byte, prevIndex func() ([32]byte, error), now time.Time) error {
	logged := epoch == c.epoch
	hs, err := s.cfg.Store.Holders(ctx, index)
	if err != nil {
		return err
	}
	var inherited []Holder
	if len(hs) == 0 && prevIndex != nil {
		// Rows are never removed but by retirement, so an index found with
		// holders here still has them in ChangeHolders' transaction.
		prev, err := prevIndex()
		if err != nil {
			return err
		}
		old, err := s.cfg.Store.Holders(ctx, prev)
		if err != nil {
			return err
		}
		for _, h := range old {
			// A holder retired (or revoked) since is not brought back:
			// housekeeping retires in the current epoch only, so its row
			// in the epoch before may outlive it, on notice.
			if h.overdue(now) {
				continue
			}
			if revoked, err := s.cfg.Store.KeyRevoked(ctx, h.KeyHash); err != nil {
				return err
			} else if revoked {
				continue
			}
			h.Records = 0 // they are the old index's
			inherited = append(inherited, h)
		}
	}
	decide := func(hs []Holder) (HolderChange, error) {
		var seeded []Holder
		if len(hs) == 0 && len(inherited) > 0 {
			hs, seeded = inherited, inherited
		}
		ch := DecideProof(hs, c.proof, now, s.cfg.ReproofWindow)
		if !logged {
			ch.Entries = nil
		}
		// Inherited rows not otherwise written are copied as they are.
		for _, h := range seeded {
			if !slices.ContainsFunc(ch.Put, func(p Holder) bool { return p.KeyHash == h.KeyHash }) && !ch.Retires(h.KeyHash) {
				ch.Put = append(ch.Put, h)
			}
		}
		return ch, nil
	}
	if ch, _ := decide(hs); ch.Empty() {
		return nil
	}
	ch, err := s.cfg.Store.ChangeHolders(ctx, epoch, index, decide, now)
	if err != nil {
		return err
	}
	s.holdersChanged(c, ch)
	if ch.Retires(c.keyHash) {
		return ErrRevoked
	}
	return nil
}

// holdersChanged logs and counts a holder change, by the caller c (nil for
// housekeeping). The log names no key or number, only what happened.
func (s *Server) holdersChanged(c *caller, ch HolderChange) {
	var onNotice, records int
	for _, h := range ch.Put {
		if h.OnNotice() {
			onNotice++
		}
	}
	for _, h := range ch.Retire {
		records += h.Records
	}
	if len(ch.Retire) > 0 {
		s.owners.changed()
	}
	attrs := []any{"holders_written", len(ch.Put), "on_notice", onNotice, "holders_retired", len(ch.Retire), "records_retired", records}
	if c != nil {
		attrs = append(attrs, "caller", s.fingerprint(c))
	}
	s.log.Info("holders changed", attrs...)
}

// revoke revokes the caller's credential key. Every credential for it is
// refused from now on; verifying the number again starts clean.
func (s *Server) revoke(ctx context.Context, c *caller) error {
	if err := s.cfg.Store.RevokeKey(ctx, c.keyHash, s.cfg.Now()); err != nil {
		return err
	}
	s.observe(s.observation(c, "revoke"))
	s.log.Info("credential revoked", "caller", s.fingerprint(c))
	return nil
}

// Buckets is the bucket count a fetch named: its bucket_count, or
// 2^prefix_bits for a fetch by prefix.
func (o Observation) Buckets() uint64 {
	if o.BucketCount != nil {
		return *o.BucketCount
	}
	return 1 << o.PrefixBits
}

func (s *Server) observe(o Observation) {
	switch o.Endpoint {
	case "evaluate":
		s.log.Info("observed", "endpoint", o.Endpoint, "caller", o.Caller, "count", o.Count)
	case "buckets":
		s.log.Info("observed", "endpoint", o.Endpoint, "caller", o.Caller, "count", o.Count,
			"prefix_bits", o.PrefixBits, "bucket_count", o.BucketCount, "prefixes", prefixList(o.Prefixes))
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(o)
	}
}

func prefixList(p []uint32) string {
	b := []byte{}
	for i, x := range p {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(x), 10)
	}
	return string(b)
}

// evaluate runs the blinded batch evaluation for an authenticated caller.
func (s *Server) evaluate(ctx context.Context, c *caller, req api.EvaluateRequest) (api.EvaluateResponse, error) {
	if n := len(req.Elements); n == 0 {
		return api.EvaluateResponse{}, oprf.ErrBatchEmpty
	} else if n > oprf.MaxBatch {
		return api.EvaluateResponse{}, oprf.ErrBatchTooLarge
	}
	epoch, epochs, err := s.epochOf(ctx, req.Epoch, false)
	if err != nil {
		return api.EvaluateResponse{}, err
	}
	if err := s.spendEvaluations(ctx, c, len(req.Elements)); err != nil {
		return api.EvaluateResponse{}, err
	}
	evaluated, proof, err := s.eval.Evaluate([]byte(EpochInfo(s.cfg.Info, epoch)), req.Elements)
	if err != nil {
		// Nothing was evaluated: give the budget back.
		if rerr := s.refundEvaluations(ctx, c, len(req.Elements)); rerr != nil {
			s.log.Error("refunding evaluations", "err", rerr)
		}
		return api.EvaluateResponse{}, fmt.Errorf("evaluate: %w", err) // httpapi maps the oprf input errors to 400
	}
	s.chargeCeiling(len(req.Elements))
	owners, count, err := s.owners.current(ctx)
	if err != nil {
		return api.EvaluateResponse{}, err
	}
	if err := s.grantBuckets(ctx, c, len(req.Elements)); err != nil {
		return api.EvaluateResponse{}, err
	}
	s.metrics.evaluations.Add(float64(len(req.Elements)))
	o := s.observation(c, "evaluate")
	o.Count = len(req.Elements)
	s.observe(o)
	resp := api.EvaluateResponse{Evaluated: evaluated, Proof: proof, PrefixBits: bucket.PrefixBits(count), BucketCount: count, Epoch: epoch}
	// The caller bounds the prefix by a count the log key signs, which an
	// audit holds against the log (docs/protocol.md §10.2).
	oc, err := s.tlog.SignOwners(int64(owners), s.cfg.Now())
	if err != nil {
		return api.EvaluateResponse{}, err
	}
	resp.Owners, resp.OwnersTime, resp.OwnersSignature = &oc.Owners, oc.Time.Unix(), oc.Signature[:]
	if prev := epochs.announced(); prev >= 0 && epoch == epochs.Current {
		resp.Previous = &prev
	}
	return resp, nil
}

// buckets checks and pays for a bucket fetch, whose answer writeBuckets
// then writes: the records in the requested buckets that admit the caller.
func (s *Server) buckets(ctx context.Context, c *caller, req api.BucketsRequest) (*bucketFetch, error) {
	if len(req.Prefixes) == 0 {
		return nil, oprf.ErrBatchEmpty
	}
	if len(req.Prefixes) > oprf.MaxBatch {
		return nil, oprf.ErrBatchTooLarge
	}
	reqCount := uint64(1) << max(req.PrefixBits, 0)
	switch {
	case req.BucketCount != nil && req.PrefixBits != 0:
		return nil, fmt.Errorf("%w: bucket_count and prefix_bits both given", httpapi.ErrBadRequest)
	case req.BucketCount != nil && (*req.BucketCount < 1 || *req.BucketCount > bucket.MaxCount):
		return nil, fmt.Errorf("%w: bucket_count", httpapi.ErrBadRequest)
	case req.BucketCount != nil:
		reqCount = *req.BucketCount
	case req.PrefixBits < 0 || req.PrefixBits > 32:
		return nil, fmt.Errorf("%w: prefix_bits", httpapi.ErrBadRequest)
	}
	epoch, _, err := s.epochOf(ctx, req.Epoch, true)
	if err != nil {
		return nil, err
	}
	pseudonym, _, err := s.at(c, epoch)
	if err != nil {
		return nil, err
	}
	count, err := s.owners.buckets(ctx)
	if err != nil {
		return nil, err
	}
	// A request by prefix is measured against the server's prefix length,
	// as before bucket counts: its buckets are those of 2^PrefixBits.
	if req.BucketCount == nil {
		count = 1 << bucket.PrefixBits(count)
	}
	// More buckets than the server's would shrink them below the anonymity
	// target. Fewer widens them: each spans several of the server's buckets
	// and costs one fetch for each, so one evaluation never buys more than
	// one bucket's worth of records; and a span of more than 2^MaxWidenBits
	// is refused, so no fetch reads a large part of the directory at once.
	if reqCount > count {
		return nil, ErrStalePrefix
	}
	if count > reqCount<<MaxWidenBits {
		return nil, ErrShortPrefix
	}
	ranges := make([]BucketRange, len(req.Prefixes))
	seen := make(map[uint32]bool, len(req.Prefixes))
	var cost uint64
	for i, p := range req.Prefixes {
		if uint64(p) >= reqCount {
			return nil, fmt.Errorf("%w: bucket out of range", httpapi.ErrBadRequest)
		}
		if seen[p] {
			return nil, fmt.Errorf("%w: duplicate bucket", httpapi.ErrBadRequest)
		}
		seen[p] = true
		lo, hi := bucket.Range(p, reqCount)
		ranges[i] = BucketRange{lo, hi}
		cost += bucket.Spans(p, reqCount, count)
	}
	if err := s.spendBuckets(ctx, c, int(cost)); err != nil {
		return nil, err
	}
	f := &bucketFetch{s: s, ctx: ctx, epoch: epoch, ranges: ranges, buckets: req.Prefixes, caller: pseudonym, now: s.cfg.Now()}
	// The first chunk is read before the answer starts, so that a store
	// failure is still an error answer rather than a cut-off one.
	if f.first, err = f.chunk(0); err != nil {
		return nil, err
	}
	o := s.observation(c, "buckets")
	o.Count, o.PrefixBits, o.BucketCount, o.Prefixes = len(req.Prefixes), req.PrefixBits, req.BucketCount, req.Prefixes
	s.observe(o)
	return f, nil
}

// bucketChunk is how many buckets a fetch reads from the store at a time
// while it writes its answer: one fetch holds at most that many buckets'
// records (about 1.3 MB at 16 owners per bucket), however many it names.
// fetchBuckets reads a chunk on two cores.
const bucketChunk = 128

// A bucketFetch is a checked and paid-for bucket fetch, answered as its
// records are read (writeBuckets).
type bucketFetch struct {
	s       *Server
	ctx     context.Context
	epoch   int
	ranges  []BucketRange
	buckets []uint32 // as requested
	caller  acl.Pseudonym
	now     time.Time
	first   [][]Candidate // chunk 0, read before the answer starts
}

// chunk reads the candidates of the i-th chunk of buckets.
func (f *bucketFetch) chunk(i int) ([][]Candidate, error) {
	if i == 0 && f.first != nil {
		first := f.first
		f.first = nil // written once: the answer holds one chunk at a time
		return first, nil
	}
	return f.s.fetchBuckets(f.ctx, f.epoch, f.ranges[i*bucketChunk:min((i+1)*bucketChunk, len(f.ranges))], f.caller, f.now)
}

// admitted is the answer's bucket b from its candidates: the served
// records that admit the caller. A record the caller may not see is left
// out exactly as if absent.
func admitted(b uint32, cands []Candidate) api.Bucket {
	out := api.Bucket{Prefix: b, Records: []api.SealedEntry{}}
	for _, cand := range served(cands) {
		if acl.Decide(cand.Visibility, cand.Allowed, cand.Denied) {
			out.Records = append(out.Records, api.SealedEntry{Index: cand.Index[:], Ciphertext: cand.Ciphertext})
		}
	}
	return out
}

// served returns the candidates of one bucket that are served, in order: a
// holder on notice is hidden, and of the records of one app (one record id)
// under one index only the one whose holder's proof Wins is served; its
// ACL alone decides whether the caller sees the app. cands are ordered by
// index, record id, then holder, as Store.Buckets returns them. The work
// depends on the bucket's records, never on the caller's access.
func served(cands []Candidate) []Candidate {
	out := cands[:0:0]
	for _, c := range cands {
		if c.Hidden {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Index == c.Index && out[n-1].RecordID == c.RecordID {
			if Wins(c.LastProof, c.Holder, out[n-1].LastProof, out[n-1].Holder) {
				out[n-1] = c
			}
			continue
		}
		out = append(out, c)
	}
	return out
}

// fetchBuckets is Store.Buckets split into one call per core, run at once: a
// full fetch reads tens of thousands of rows. The parts are disjoint sets of
// whole buckets, so each bucket is still read in one transaction, and every
// caller's fetch is split alike.
func (s *Server) fetchBuckets(ctx context.Context, epoch int, ranges []BucketRange, caller acl.Pseudonym, now time.Time) ([][]Candidate, error) {
	const minPart = 64 // below this a second call costs more than it saves
	parts := min(runtime.GOMAXPROCS(0), len(ranges)/minPart)
	if parts <= 1 {
		return s.cfg.Store.Buckets(ctx, epoch, ranges, caller, now)
	}
	found := make([][]Candidate, 0, len(ranges))
	results := make([][][]Candidate, parts)
	errs := make([]error, parts)
	size := (len(ranges) + parts - 1) / parts
	var wg sync.WaitGroup
	for i := range parts {
		part := ranges[min(i*size, len(ranges)):min((i+1)*size, len(ranges))]
		wg.Go(func() { results[i], errs[i] = s.cfg.Store.Buckets(ctx, epoch, part, caller, now) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, r := range results {
		found = append(found, r...)
	}
	if len(found) != len(ranges) {
		return nil, fmt.Errorf("directory: store answered %d buckets for %d ranges", len(found), len(ranges))
	}
	return found, nil
}

// logged answers a write with the proof that its log entry (at pos) is in
// the log, so the owner need not trust the server to have logged it.
func (s *Server) logged(ctx context.Context, pos int64) (api.WriteResponse, error) {
	if pos < 0 {
		return api.WriteResponse{}, nil
	}
	p, err := s.tlog.Prove(ctx, pos)
	if err != nil {
		return api.WriteResponse{}, err
	}
	return api.WriteResponse{Log: p}, nil
}

// checkWrite checks that the caller may write the record (index,
// recordID): this directory holds its number, and index is its own.
func (s *Server) checkWrite(ctx context.Context, c *caller, requested *int, index, recordID []byte) (epoch int, idx, rid [32]byte, err error) {
	if err := s.misdirected(c); err != nil {
		return 0, idx, rid, err
	}
	if len(index) != 32 || len(recordID) != 32 {
		return 0, idx, rid, fmt.Errorf("%w: index and record_id are 32 bytes", httpapi.ErrBadRequest)
	}
	if epoch, _, err = s.epochOf(ctx, requested, false); err != nil {
		return 0, idx, rid, err
	}
	_, own, err := s.at(c, epoch)
	if err != nil {
		return 0, idx, rid, err
	}
	// Only the holder of the number's credential may write under its index.
	if subtle.ConstantTimeCompare(index, own[:]) != 1 {
		return 0, idx, rid, ErrNotOwner
	}
	copy(idx[:], index)
	copy(rid[:], recordID)
	return epoch, idx, rid, nil
}

// checkACL checks a write's ACL, which is required.
func checkACL(l *acl.List) error {
	if l == nil {
		return fmt.Errorf("%w: acl is required", httpapi.ErrBadRequest)
	}
	if err := l.Validate(); err != nil {
		return fmt.Errorf("%w: %w", httpapi.ErrBadRequest, err)
	}
	return nil
}

// wroteACL observes and logs (as msg) a write that set a record's ACL to l:
// the log gets the list sizes only, never the pseudonyms in them.
func (s *Server) wroteACL(o Observation, msg string, l acl.List) {
	o.Visibility, o.Allow, o.Deny = l.Visibility.String(), len(l.Allow), len(l.Deny)
	s.observe(o)
	s.log.Info(msg, "caller", o.Caller, "visibility", o.Visibility, "allow", o.Allow, "deny", o.Deny)
}

func (s *Server) publish(ctx context.Context, c *caller, req api.PublishRequest) (api.WriteResponse, error) {
	epoch, idx, rid, err := s.checkWrite(ctx, c, req.Epoch, req.Index, req.RecordID)
	if err != nil {
		return api.WriteResponse{}, err
	}
	if !record.ValidCiphertextSize(len(req.Ciphertext)) {
		return api.WriteResponse{}, fmt.Errorf("%w: ciphertext is not a padded record", httpapi.ErrBadRequest)
	}
	now := s.cfg.Now()
	if !req.Expires.After(now) || req.Expires.After(now.Add(s.cfg.RecordMaxTTL)) {
		return api.WriteResponse{}, fmt.Errorf("%w: expires must be in the future and within %v", httpapi.ErrBadRequest, s.cfg.RecordMaxTTL)
	}
	if err := checkACL(req.ACL); err != nil {
		return api.WriteResponse{}, err
	}
	pos, err := s.cfg.Store.PutRecord(ctx, Record{Epoch: epoch, Index: idx, Holder: c.keyHash, RecordID: rid, Ciphertext: req.Ciphertext,
		ACL: *req.ACL, Expires: req.Expires, Updated: now}, s.cfg.MaxRecordsPerOwner)
	if errors.Is(err, ErrExhausted) {
		return api.WriteResponse{}, ErrTooManyRecords
	}
	if errors.Is(err, ErrNotFound) {
		// Authentication made the caller a holder; only a retirement
		// since then removes the row.
		return api.WriteResponse{}, ErrRevoked
	}
	if err != nil {
		return api.WriteResponse{}, err
	}
	s.owners.changed()
	o := s.observation(c, "publish")
	o.Index, o.RecordID, o.Size, o.Expires = hex.EncodeToString(idx[:]), hex.EncodeToString(rid[:]), len(req.Ciphertext), req.Expires.UTC()
	s.wroteACL(o, "record published", *req.ACL)
	return s.logged(ctx, pos)
}

func (s *Server) setACL(ctx context.Context, c *caller, req api.SetACLRequest) (api.WriteResponse, error) {
	_, idx, rid, err := s.checkWrite(ctx, c, req.Epoch, req.Index, req.RecordID)
	if err != nil {
		return api.WriteResponse{}, err
	}
	if err := checkACL(req.ACL); err != nil {
		return api.WriteResponse{}, err
	}
	pos, err := s.cfg.Store.SetACL(ctx, idx, c.keyHash, rid, *req.ACL, s.cfg.Now())
	if errors.Is(err, ErrNotFound) {
		return api.WriteResponse{}, errNoRecord
	} else if err != nil {
		return api.WriteResponse{}, err
	}
	o := s.observation(c, "acl")
	o.Index, o.RecordID = hex.EncodeToString(idx[:]), hex.EncodeToString(rid[:])
	s.wroteACL(o, "acl set", *req.ACL)
	return s.logged(ctx, pos)
}

func (s *Server) deleteRecord(ctx context.Context, c *caller, epoch *int, recordID []byte) (api.WriteResponse, error) {
	if len(recordID) != 32 {
		return api.WriteResponse{}, fmt.Errorf("%w: record_id is 32 bytes", httpapi.ErrBadRequest)
	}
	rid := [32]byte(recordID)
	e, _, err := s.epochOf(ctx, epoch, false)
	if err != nil {
		return api.WriteResponse{}, err
	}
	// Always under the caller's own index, which the server derives.
	_, idx, err := s.at(c, e)
	if err != nil {
		return api.WriteResponse{}, err
	}
	pos, err := s.cfg.Store.DeleteRecord(ctx, idx, c.keyHash, rid, s.cfg.Now())
	if errors.Is(err, ErrNotFound) {
		return api.WriteResponse{}, errNoRecord
	} else if err != nil {
		return api.WriteResponse{}, err
	}
	s.owners.left(1)
	o := s.observation(c, "delete")
	o.Index, o.RecordID = hex.EncodeToString(idx[:]), hex.EncodeToString(rid[:])
	s.observe(o)
	s.log.Info("record deleted", "caller", s.fingerprint(c))
	return s.logged(ctx, pos)
}
