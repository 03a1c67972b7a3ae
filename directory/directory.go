// Package directory is the blindex server: it verifies numbers by SMS and
// issues credentials, evaluates the lookup OPRF on blinded elements, stores
// sealed records with their ACLs, and answers bucket fetches.
//
// What it learns at lookup time: the caller (from its credential), how many
// numbers the caller blinded, and the bucket prefixes it fetches (PrefixBits
// bits of a pseudorandom index each). It never receives a looked-up number.
// A record the caller may not see is left out of the answer exactly as if it
// did not exist, so "denied" and "not registered" give identical bytes.
package directory

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"strconv"
	"sync"
	"time"

	"blindex.dev/blindex/acl"
	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
)

// Config configures a Server. Zero values take the defaults given.
type Config struct {
	Store   Store            // required
	OPRFKey *oprf.PrivateKey // required: the lookup OPRF key
	CA      *credential.CA   // required: the built-in CA that issues credentials
	SMS     sms.Sender       // required: delivers verification codes

	// Roots are the CA roots whose credentials authenticate requests.
	// Default: the built-in CA's root only.
	Roots []*x509.Certificate
	// Logger receives operational logs; it never gets a number, code (except
	// from the log SMS sender), key or OPRF value. Default: discard.
	Logger *slog.Logger
	// Info is the POPRF info string for lookups. Default "blindex lookup v1".
	Info string
	// CredentialValidity is the lifetime of issued credentials. Default 30 days.
	CredentialValidity time.Duration
	// CodeTTL is how long a verification code is valid. Default 10 minutes.
	CodeTTL time.Duration
	// MaxCodeAttempts is the number of confirmations allowed per
	// verification. Default 5.
	MaxCodeAttempts int
	// MaxCodeSends is the number of codes sent per pending verification
	// (the first plus resends). Default 3.
	MaxCodeSends int
	// MinBucketOwners is the number of registered owners the server aims to
	// have in every bucket; it sets the prefix length. Default 16.
	MinBucketOwners int
	// MaxPrefixBits caps the prefix length. Default 32, the maximum.
	MaxPrefixBits int
	// AuthWindow is how far a request timestamp may be from the server
	// clock. Default 60 seconds.
	AuthWindow time.Duration
	// RecordMaxTTL is the furthest in the future a record may expire.
	// Default 365 days.
	RecordMaxTTL time.Duration
	// MaxRecordsPerOwner bounds the records (apps) under one index. Default 32.
	MaxRecordsPerOwner int
	// Observe, if set, receives what the server observed for each lookup
	// request: never a number, only what the protocol discloses.
	Observe func(Observation)
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// An Observation is what the server learns from one lookup-side request.
type Observation struct {
	Time       time.Time
	Endpoint   string   // "evaluate" or "buckets"
	Caller     string   // short hex fingerprint of the caller pseudonym
	Count      int      // elements evaluated or buckets fetched
	PrefixBits int      // for buckets
	Prefixes   []uint32 // for buckets
}

// Errors returned by the server's operations. statusOf maps them to HTTP.
var (
	ErrBadRequest     = errors.New("directory: bad request")
	ErrNumber         = errors.New("directory: invalid phone number")
	ErrCredential     = errors.New("directory: credential not accepted")
	ErrExpired        = errors.New("directory: credential expired")
	ErrNotOwner       = errors.New("directory: index does not belong to this credential")
	ErrWrongCode      = errors.New("directory: wrong code")
	ErrVerification   = errors.New("directory: verification unknown, expired or out of attempts")
	ErrTooManySends   = errors.New("directory: too many codes sent for this number")
	ErrBusy           = errors.New("directory: verification already in progress")
	ErrSMS            = errors.New("directory: could not send the code")
	ErrStalePrefix    = errors.New("directory: prefix_bits above the current value")
	ErrTooManyRecords = errors.New("directory: too many records for this owner")
)

// RetryError is an error after which the client may retry after a delay.
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// Server is a blindex directory. Create it with New; it is safe for
// concurrent use.
type Server struct {
	cfg   Config
	log   *slog.Logger
	eval  *oprf.Evaluator
	info  []byte
	roots *x509.CertPool
	sigs  *httpsig.Verifier

	mu          sync.Mutex
	prefixBits  int
	prefixValid time.Time // prefixBits is fresh until then
}

// MetaOPRFPublicKey is the store meta key under which the OPRF public key
// is recorded, so that a database is never served under another key.
const MetaOPRFPublicKey = "oprf_public_key"

// New checks cfg and returns a Server. It records the OPRF public key in the
// store on first use and refuses a key that differs from the recorded one,
// so a lost key file is never silently replaced.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.OPRFKey == nil || cfg.CA == nil || cfg.SMS == nil {
		return nil, errors.New("directory: Store, OPRFKey, CA and SMS are required")
	}
	setDefault(&cfg.Info, "blindex lookup v1")
	setDefault(&cfg.CredentialValidity, 30*24*time.Hour)
	setDefault(&cfg.CodeTTL, 10*time.Minute)
	setDefault(&cfg.MaxCodeAttempts, 5)
	setDefault(&cfg.MaxCodeSends, 3)
	setDefault(&cfg.MinBucketOwners, 16)
	setDefault(&cfg.MaxPrefixBits, 32)
	setDefault(&cfg.AuthWindow, 60*time.Second)
	setDefault(&cfg.RecordMaxTTL, 365*24*time.Hour)
	setDefault(&cfg.MaxRecordsPerOwner, 32)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxPrefixBits < 0 || cfg.MaxPrefixBits > 32 {
		return nil, errors.New("directory: MaxPrefixBits must be between 0 and 32")
	}
	if len(cfg.Roots) == 0 {
		cfg.Roots = []*x509.Certificate{cfg.CA.Root()}
	}
	pool := x509.NewCertPool()
	for _, r := range cfg.Roots {
		pool.AddCert(r)
	}
	if err := cfg.Store.InitMeta(ctx, MetaOPRFPublicKey, cfg.OPRFKey.Public().Bytes()); errors.Is(err, ErrConflict) {
		return nil, errors.New("directory: the OPRF key does not match the one this database was created with; restore the original key file")
	} else if err != nil {
		return nil, fmt.Errorf("directory: recording the OPRF public key: %w", err)
	}
	return &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		eval:  oprf.NewEvaluator(cfg.OPRFKey),
		info:  []byte(cfg.Info),
		roots: pool,
		sigs:  httpsig.NewVerifier(cfg.AuthWindow),
	}, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Run does periodic housekeeping until ctx ends: it deletes expired
// verifications (so no pending row outlives its code) and expired records,
// and prunes the replay cache.
func (s *Server) Run(ctx context.Context) {
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

// Housekeep runs one round of the housekeeping Run does periodically.
func (s *Server) Housekeep(ctx context.Context) {
	now := s.cfg.Now()
	n, err := s.cfg.Store.DeleteExpiredVerifications(ctx, now)
	if err != nil && ctx.Err() == nil {
		s.log.Error("deleting expired verifications", "err", err)
	} else if n > 0 {
		s.log.Info("deleted expired verifications", "count", n)
	}
	if n, err := s.cfg.Store.DeleteExpiredRecords(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Error("deleting expired records", "err", err)
	} else if n > 0 {
		s.log.Info("deleted expired records", "count", n)
		s.invalidatePrefix()
	}
	if err := s.cfg.Store.Checkpoint(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("store checkpoint", "err", err)
	}
	s.sigs.Prune(now)
}

// config returns the public parameters.
func (s *Server) config(ctx context.Context) (api.Config, error) {
	pb, err := s.currentPrefixBits(ctx)
	if err != nil {
		return api.Config{}, err
	}
	roots := make([][]byte, len(s.cfg.Roots))
	for i, r := range s.cfg.Roots {
		roots[i] = r.Raw
	}
	return api.Config{
		Suite:        oprf.SuiteID,
		Mode:         "POPRF",
		PublicKey:    s.cfg.OPRFKey.Public().Bytes(),
		Info:         s.cfg.Info,
		PrefixBits:   pb,
		MaxBatch:     oprf.MaxBatch,
		CARoots:      roots,
		RecordMaxTTL: int64(s.cfg.RecordMaxTTL / time.Second),
	}, nil
}

// currentPrefixBits is floor(log2(owners / MinBucketOwners)), so that an
// average bucket holds at least MinBucketOwners owners; it is cached briefly
// because counting owners scans an index.
func (s *Server) currentPrefixBits(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.prefixValid) {
		return s.prefixBits, nil
	}
	n, err := s.cfg.Store.CountOwners(ctx, now)
	if err != nil {
		return 0, err
	}
	s.prefixBits = prefixBitsFor(n, s.cfg.MinBucketOwners, s.cfg.MaxPrefixBits)
	s.prefixValid = now.Add(10 * time.Second)
	return s.prefixBits, nil
}

func prefixBitsFor(owners, minPerBucket, maxBits int) int {
	q := owners / minPerBucket
	if q < 2 {
		return 0
	}
	return min(bits.Len(uint(q))-1, maxBits)
}

func (s *Server) invalidatePrefix() {
	s.mu.Lock()
	s.prefixValid = time.Time{}
	s.mu.Unlock()
}

// numberTag names a pending verification without storing the number: it is
// derived from the number's OPRF output, which only the key holder computes.
func (s *Server) numberTag(number string) ([32]byte, error) {
	y, err := s.eval.FullEvaluate(s.info, []byte(number))
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	h.Write([]byte("blindex v1 verification tag\x00"))
	h.Write(y)
	var tag [32]byte
	h.Sum(tag[:0])
	return tag, nil
}

func newCode() (code string, salt, hash []byte) {
	var b [8]byte
	rand.Read(b[:])
	// 2^64 mod 10^6 bias is below 2^-44: negligible.
	code = fmt.Sprintf("%06d", binary.BigEndian.Uint64(b[:])%1_000_000)
	salt = make([]byte, 16)
	rand.Read(salt)
	return code, salt, codeHash(salt, code)
}

func codeHash(salt []byte, code string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(code))
	return h.Sum(nil)
}

// startVerification sends a code to number. Its answer is the same whether
// or not the number is registered.
func (s *Server) startVerification(ctx context.Context, req api.VerifyStartRequest) (api.VerifyStartResponse, error) {
	number, err := oprf.NormalizeNumber(req.Number, "")
	if err != nil {
		return api.VerifyStartResponse{}, fmt.Errorf("%w: %w", ErrNumber, err)
	}
	tag, err := s.numberTag(number)
	if err != nil {
		return api.VerifyStartResponse{}, err
	}
	now := s.cfg.Now()
	code, salt, hash := newCode()

	v, err := s.cfg.Store.VerificationByTag(ctx, tag)
	if err == nil && !now.Before(v.Expires) {
		// Expired but not yet swept: end it now and start afresh.
		if err := s.cfg.Store.DeleteVerification(ctx, v.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return api.VerifyStartResponse{}, err
		}
		err = ErrNotFound
	}
	switch {
	case err == nil:
		err := s.cfg.Store.ResendVerification(ctx, v.ID, salt, hash, s.cfg.MaxCodeSends)
		if errors.Is(err, ErrExhausted) {
			return api.VerifyStartResponse{}, &RetryError{ErrTooManySends, v.Expires.Sub(now)}
		}
		if err != nil {
			return api.VerifyStartResponse{}, err
		}
	case errors.Is(err, ErrNotFound):
		v = Verification{NumberTag: tag, CodeSalt: salt, CodeHash: hash,
			Created: now.Truncate(time.Second), Expires: now.Add(s.cfg.CodeTTL).Truncate(time.Second), Sends: 1}
		rand.Read(v.ID[:])
		err := s.cfg.Store.CreateVerification(ctx, v)
		if errors.Is(err, ErrConflict) {
			return api.VerifyStartResponse{}, &RetryError{ErrBusy, time.Second}
		}
		if err != nil {
			return api.VerifyStartResponse{}, err
		}
	default:
		return api.VerifyStartResponse{}, err
	}

	id := hex.EncodeToString(v.ID[:])
	err = s.cfg.SMS.Send(ctx, sms.Message{
		To:             number,
		Code:           code,
		Text:           "Your blindex code is " + code + ". It expires in " + s.cfg.CodeTTL.String() + ".",
		VerificationID: id,
	})
	if err != nil {
		s.log.Warn("sms send failed", "verification_id", id, "err", err)
		return api.VerifyStartResponse{}, &RetryError{ErrSMS, 30 * time.Second}
	}
	s.log.Info("verification started", "verification_id", id, "send", v.Sends)
	return api.VerifyStartResponse{VerificationID: id, Expires: v.Expires.UTC()}, nil
}

// confirmVerification checks a code and, on success, issues a credential.
// The attempt is counted before the code is compared, so concurrent guesses
// cannot exceed MaxCodeAttempts; the verification is deleted before the
// credential is issued, so one code yields at most one credential.
func (s *Server) confirmVerification(ctx context.Context, req api.VerifyConfirmRequest) (api.VerifyConfirmResponse, error) {
	var id [16]byte
	if b, err := hex.DecodeString(req.VerificationID); err != nil || len(b) != len(id) {
		return api.VerifyConfirmResponse{}, fmt.Errorf("%w: verification_id", ErrBadRequest)
	} else {
		copy(id[:], b)
	}
	number, err := oprf.NormalizeNumber(req.Number, "")
	if err != nil {
		return api.VerifyConfirmResponse{}, fmt.Errorf("%w: %w", ErrNumber, err)
	}
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if k, ok := pub.(*ecdsa.PublicKey); err != nil || !ok || k.Curve != elliptic.P256() {
		// Checked before an attempt is spent, so a bad key costs no try.
		return api.VerifyConfirmResponse{}, fmt.Errorf("%w: public_key must be an ECDSA P-256 key in PKIX DER", ErrBadRequest)
	}
	tag, err := s.numberTag(number)
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	v, err := s.cfg.Store.ClaimAttempt(ctx, id, s.cfg.MaxCodeAttempts)
	if errors.Is(err, ErrExhausted) {
		s.endVerification(ctx, id, "out of attempts")
		return api.VerifyConfirmResponse{}, ErrVerification
	}
	if errors.Is(err, ErrNotFound) {
		return api.VerifyConfirmResponse{}, ErrVerification
	}
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	now := s.cfg.Now()
	if !now.Before(v.Expires) {
		s.endVerification(ctx, id, "expired")
		return api.VerifyConfirmResponse{}, ErrVerification
	}
	tagOK := subtle.ConstantTimeCompare(tag[:], v.NumberTag[:])
	codeOK := subtle.ConstantTimeCompare(codeHash(v.CodeSalt, req.Code), v.CodeHash)
	if tagOK&codeOK != 1 {
		if v.Attempts >= s.cfg.MaxCodeAttempts {
			s.endVerification(ctx, id, "out of attempts")
		}
		return api.VerifyConfirmResponse{}, ErrWrongCode
	}
	if err := s.cfg.Store.DeleteVerification(ctx, id); errors.Is(err, ErrNotFound) {
		return api.VerifyConfirmResponse{}, ErrVerification // a concurrent confirm won
	} else if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	cert, err := s.cfg.CA.Issue(number, pub, s.cfg.CredentialValidity, now)
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	s.log.Info("credential issued", "verification_id", req.VerificationID,
		"cert_sha256", fmt.Sprintf("%x", sha256.Sum256(cert)))
	return api.VerifyConfirmResponse{Certificate: cert, Chain: [][]byte{s.cfg.CA.Root().Raw}}, nil
}

func (s *Server) endVerification(ctx context.Context, id [16]byte, why string) {
	if err := s.cfg.Store.DeleteVerification(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Error("ending verification", "verification_id", hex.EncodeToString(id[:]), "err", err)
		return
	}
	s.log.Info("verification ended", "verification_id", hex.EncodeToString(id[:]), "reason", why)
}

// A caller is an authenticated request's identity. The number in its
// credential is used to derive these and then dropped.
type caller struct {
	pseudonym acl.Pseudonym
	index     [32]byte
}

func (c caller) fingerprint() string { return hex.EncodeToString(c.pseudonym[:6]) }

// authenticate verifies the request's credential and returns the caller.
func (s *Server) authenticate(certDER []byte) (*caller, error) {
	number, _, err := credential.Verify(certDER, s.roots, s.cfg.Now())
	switch {
	case errors.Is(err, credential.ErrExpired):
		return nil, ErrExpired
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrCredential, err)
	}
	y, err := s.eval.FullEvaluate(s.info, []byte(number))
	if err != nil {
		return nil, err
	}
	return &caller{pseudonym: oprf.Pseudonym(y), index: oprf.Index(y)}, nil
}

func (s *Server) observe(o Observation) {
	attrs := []any{"endpoint", o.Endpoint, "caller", o.Caller, "count", o.Count}
	if o.Endpoint == "buckets" {
		attrs = append(attrs, "prefix_bits", o.PrefixBits, "prefixes", prefixList(o.Prefixes))
	}
	s.log.Info("observed", attrs...)
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
	evaluated, proof, err := s.eval.Evaluate(s.info, req.Elements)
	if err != nil {
		return api.EvaluateResponse{}, fmt.Errorf("evaluate: %w", err) // statusOf maps the oprf input errors to 400
	}
	pb, err := s.currentPrefixBits(ctx)
	if err != nil {
		return api.EvaluateResponse{}, err
	}
	s.observe(Observation{Time: s.cfg.Now(), Endpoint: "evaluate", Caller: c.fingerprint(), Count: len(req.Elements)})
	return api.EvaluateResponse{Evaluated: evaluated, Proof: proof, PrefixBits: pb}, nil
}

// buckets returns the records in the requested buckets that admit the caller.
// A record the caller may not see is left out exactly as if absent.
func (s *Server) buckets(ctx context.Context, c *caller, req api.BucketsRequest) (api.BucketsResponse, error) {
	if len(req.Prefixes) == 0 {
		return api.BucketsResponse{}, oprf.ErrBatchEmpty
	}
	if len(req.Prefixes) > oprf.MaxBatch {
		return api.BucketsResponse{}, oprf.ErrBatchTooLarge
	}
	if req.PrefixBits < 0 || req.PrefixBits > 32 {
		return api.BucketsResponse{}, fmt.Errorf("%w: prefix_bits", ErrBadRequest)
	}
	pb, err := s.currentPrefixBits(ctx)
	if err != nil {
		return api.BucketsResponse{}, err
	}
	// A longer prefix than the server's would shrink buckets below the
	// anonymity target; a shorter one only widens them.
	if req.PrefixBits > pb {
		return api.BucketsResponse{}, ErrStalePrefix
	}
	ranges := make([]BucketRange, len(req.Prefixes))
	seen := make(map[uint32]bool, len(req.Prefixes))
	for i, p := range req.Prefixes {
		if req.PrefixBits < 32 && p>>req.PrefixBits != 0 {
			return api.BucketsResponse{}, fmt.Errorf("%w: prefix out of range", ErrBadRequest)
		}
		if seen[p] {
			return api.BucketsResponse{}, fmt.Errorf("%w: duplicate prefix", ErrBadRequest)
		}
		seen[p] = true
		ranges[i] = bucketRange(p, req.PrefixBits)
	}
	now := s.cfg.Now()
	found, err := s.cfg.Store.Buckets(ctx, ranges, c.pseudonym, now)
	if err != nil {
		return api.BucketsResponse{}, err
	}
	resp := api.BucketsResponse{Buckets: make([]api.Bucket, len(req.Prefixes))}
	for i, cands := range found {
		b := api.Bucket{Prefix: req.Prefixes[i], Records: []api.SealedEntry{}}
		for _, cand := range cands {
			if acl.Decide(cand.Visibility, cand.Allowed, cand.Denied) {
				b.Records = append(b.Records, api.SealedEntry{Index: cand.Index[:], Ciphertext: cand.Ciphertext})
			}
		}
		resp.Buckets[i] = b
	}
	s.observe(Observation{Time: now, Endpoint: "buckets", Caller: c.fingerprint(), Count: len(req.Prefixes),
		PrefixBits: req.PrefixBits, Prefixes: req.Prefixes})
	return resp, nil
}

// bucketRange is the range of 32-bit buckets under a prefix of n bits.
func bucketRange(prefix uint32, n int) BucketRange {
	if n == 0 {
		return BucketRange{0, 1<<32 - 1}
	}
	lo := uint64(prefix) << (32 - n)
	return BucketRange{uint32(lo), uint32(lo + 1<<(32-n) - 1)}
}

func (s *Server) checkOwner(c *caller, index, recordID []byte) (idx, rid [32]byte, err error) {
	if len(index) != 32 || len(recordID) != 32 {
		return idx, rid, fmt.Errorf("%w: index and record_id are 32 bytes", ErrBadRequest)
	}
	// Only the holder of the number's credential may write under its index.
	if subtle.ConstantTimeCompare(index, c.index[:]) != 1 {
		return idx, rid, ErrNotOwner
	}
	copy(idx[:], index)
	copy(rid[:], recordID)
	return idx, rid, nil
}

func (s *Server) publish(ctx context.Context, c *caller, req api.PublishRequest) error {
	idx, rid, err := s.checkOwner(c, req.Index, req.RecordID)
	if err != nil {
		return err
	}
	if !record.ValidCiphertextSize(len(req.Ciphertext)) {
		return fmt.Errorf("%w: ciphertext is not a padded record", ErrBadRequest)
	}
	now := s.cfg.Now()
	if !req.Expires.After(now) || req.Expires.After(now.Add(s.cfg.RecordMaxTTL)) {
		return fmt.Errorf("%w: expires must be in the future and within %v", ErrBadRequest, s.cfg.RecordMaxTTL)
	}
	if req.ACL == nil {
		return fmt.Errorf("%w: acl is required", ErrBadRequest)
	}
	if err := req.ACL.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	err = s.cfg.Store.PutRecord(ctx, Record{Index: idx, RecordID: rid, Ciphertext: req.Ciphertext,
		ACL: *req.ACL, Expires: req.Expires, Updated: now}, s.cfg.MaxRecordsPerOwner)
	if errors.Is(err, ErrExhausted) {
		return ErrTooManyRecords
	}
	if err != nil {
		return err
	}
	s.invalidatePrefix()
	s.log.Info("record published", "caller", c.fingerprint(), "visibility", req.ACL.Visibility.String(),
		"allow", len(req.ACL.Allow), "deny", len(req.ACL.Deny))
	return nil
}

func (s *Server) setACL(ctx context.Context, c *caller, req api.SetACLRequest) error {
	idx, rid, err := s.checkOwner(c, req.Index, req.RecordID)
	if err != nil {
		return err
	}
	if req.ACL == nil {
		return fmt.Errorf("%w: acl is required", ErrBadRequest)
	}
	if err := req.ACL.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := s.cfg.Store.SetACL(ctx, idx, rid, *req.ACL, s.cfg.Now()); err != nil {
		return err
	}
	s.log.Info("acl set", "caller", c.fingerprint(), "visibility", req.ACL.Visibility.String(),
		"allow", len(req.ACL.Allow), "deny", len(req.ACL.Deny))
	return nil
}

func (s *Server) deleteRecord(ctx context.Context, c *caller, recordID []byte) error {
	idx, rid, err := s.checkOwner(c, c.index[:], recordID)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteRecord(ctx, idx, rid); err != nil {
		return err
	}
	s.invalidatePrefix()
	s.log.Info("record deleted", "caller", c.fingerprint())
	return nil
}
