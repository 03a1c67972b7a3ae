// Package ca is the number-verification service: it texts one-time codes,
// enforces the abuse limits on verification, and issues and renews number
// credentials (credential package). It runs inside a directory (the default,
// built-in CA) or on its own (blindex ca), with its own key and store.
//
// The CA never stores a number or a code: pending verifications and limit
// counters are keyed by HMACs of the number, and a code is kept as an HMAC,
// under secrets derived from the CA key, which the store does not hold.
// Each start is a verification of its own, so nobody can void or use up
// another's code. Starting a verification answers the same whether or not
// the number is registered anywhere, or has another verification pending.
package ca

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpapi"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/internal/sms"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/translog"
)

// Limits are the abuse limits on verification, each counted in a fixed
// window (the hour, the day). Zero fields take DefaultLimits; the reasoning
// is in docs/operations.md. Each start texts one code, so the per-number
// limits are also the cap on the SMS cost of one number.
type Limits struct {
	NumberPerHour     int // starts per number per hour
	NumberPerDay      int // starts per number per day
	NetworkPerHour    int // starts per client network (IPv4 address, IPv6 /64) per hour
	GlobalPerMinute   int // starts per minute, all clients
	GlobalPerDay      int // starts per day, all clients: the daily SMS cap
	FailuresPerNumber int // codes checked per number per hour, across its verifications; more than MaxCodeAttempts
	RenewalsPerDay    int // renewals per credential key per day
}

// DefaultLimits are the limits a zero Limits field takes. With them a
// number gets at most 10 codes a day, and a guesser at most 10 guesses an
// hour and 50 a day at its 10^6 codes.
var DefaultLimits = Limits{
	NumberPerHour:     5,
	NumberPerDay:      10,
	NetworkPerHour:    30,
	GlobalPerMinute:   600,
	GlobalPerDay:      50_000,
	FailuresPerNumber: 10,
	RenewalsPerDay:    5,
}

// The defaults of the other Config fields.
const (
	DefaultCredentialValidity = 30 * 24 * time.Hour
	DefaultCodeTTL            = 10 * time.Minute
	DefaultMaxCodeAttempts    = 5
	DefaultAuthWindow         = 60 * time.Second
)

// FailureWindow is the fixed window of Limits.FailuresPerNumber. Wrong
// guesses alone, anyone's, never lock a number out of verification for
// longer.
const FailureWindow = time.Hour

// Config configures a Service. Zero values take the defaults given.
type Config struct {
	Store Store          // required
	CA    *credential.CA // required: the signing CA
	SMS   sms.Sender     // required: delivers codes

	// Logger receives operational logs; never a number or code (except
	// from the log SMS sender). Default: discard.
	Logger *slog.Logger
	// CredentialValidity is the lifetime of issued credentials.
	// Default DefaultCredentialValidity (30 days).
	CredentialValidity time.Duration
	// CodeTTL is how long a code is valid. Default DefaultCodeTTL (10 minutes).
	CodeTTL time.Duration
	// MaxCodeAttempts is the number of confirmations per verification.
	// Default DefaultMaxCodeAttempts (5).
	MaxCodeAttempts int
	// Limits are the abuse limits.
	Limits Limits
	// AuthWindow is how far a signed request's timestamp may be from the
	// clock. Default DefaultAuthWindow (60 seconds).
	AuthWindow time.Duration
	// ForwardedFor takes the client address for the per-network limit from
	// the last X-Forwarded-For entry. Set it only behind a reverse proxy that
	// appends that header; otherwise clients could choose their network.
	ForwardedFor bool
	// Revoked, if set, reports whether a credential key (SHA-256 of its
	// SubjectPublicKeyInfo) is revoked or retired; renewal refuses such keys.
	// The built-in CA asks its directory.
	Revoked func(ctx context.Context, keyHash [32]byte) (bool, error)
	// Holds, if set, says whether this CA's directory holds number (E.164),
	// as in a federation where each directory holds some prefixes. For a
	// number it does not hold it returns false and the base URL of the
	// directory that does ("" if none); verification and renewal of such a
	// number are refused with Misdirected. Default: every number.
	Holds func(number string) (elsewhere string, ok bool)
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Errors, with the status and message a client sees.
var (
	ErrNumber          = httpapi.New(http.StatusBadRequest, "ca: invalid phone number", "invalid phone number: give a valid number in international E.164 form: +, country code, number")
	ErrPublicKey       = httpapi.New(http.StatusBadRequest, "ca: bad public key", "public_key must be an ECDSA P-256 key in PKIX DER")
	ErrWrongCode       = httpapi.New(http.StatusBadRequest, "ca: wrong code", "wrong code")
	ErrVerification    = httpapi.New(http.StatusNotFound, "ca: verification unknown, expired or out of attempts", "verification unknown, expired or out of attempts: start again")
	ErrRateLimited     = httpapi.New(http.StatusTooManyRequests, "ca: rate limited", "too many verification requests: retry later")
	ErrTooManyFailures = httpapi.New(http.StatusTooManyRequests, "ca: too many failed confirmations", "too many failed confirmations for this number: retry later")
	ErrTooManyRenewals = httpapi.New(http.StatusTooManyRequests, "ca: too many renewals", "too many renewals for this credential today: retry later")
	ErrBusy            = httpapi.New(http.StatusTooManyRequests, "ca: verification id collision", "busy: retry shortly")
	ErrSMS             = httpapi.New(http.StatusServiceUnavailable, "ca: sms not sent", "could not send the code: retry later")
	ErrRevoked         = httpapi.New(http.StatusUnauthorized, "ca: key revoked or retired", "credential revoked or retired: verify the number again")
	ErrKeyRevoked      = httpapi.New(http.StatusUnauthorized, "ca: confirming with a revoked key", "this key is revoked or retired: verify the number with a new key")
	ErrMisdirected     = httpapi.New(http.StatusMisdirectedRequest, "ca: number outside this directory's prefixes", "number outside this directory's prefixes, and no directory in the federation map holds it")
)

// Misdirected is the answer to a number outside this directory's prefixes
// (Config.Holds): 421 Misdirected Request, naming the directory that holds
// the number when there is one. The federation map is public, so the name
// tells the client nothing it could not read there.
func Misdirected(elsewhere string) error {
	if elsewhere == "" {
		return ErrMisdirected
	}
	return httpapi.New(http.StatusMisdirectedRequest, ErrMisdirected.Error(),
		"number outside this directory's prefixes: its directory is "+elsewhere)
}

// misdirected refuses a number this CA's directory does not hold.
func (s *Service) misdirected(number string) error {
	if s.cfg.Holds == nil {
		return nil
	}
	if elsewhere, ok := s.cfg.Holds(number); !ok {
		return Misdirected(elsewhere)
	}
	return nil
}

// Service is a running CA. It is safe for concurrent use.
type Service struct {
	cfg    Config
	log    *slog.Logger
	roots  *x509.CertPool
	sigs   *httpsig.Verifier
	tagKey []byte
	// codeKey keys the code MACs. It is derived from the CA key, which the
	// store never holds: a copy of the database cannot test the 10^6 codes.
	codeKey []byte

	tlog   *translog.Log                           // nil: issuance is not logged
	label  func(number string) ([32]byte, error)   // the number's log label
	logged func(ctx context.Context, entry []byte) // told of each appended credential entry
	// proved, if set, is told of each credential issued on an SMS proof.
	proved func(ctx context.Context, number string, cert *x509.Certificate) error
}

// OnProof makes the service call proved with each credential it issues on
// an SMS proof (not on a renewal), after issuing it. The built-in CA's
// directory uses it to apply the proof to the number's holders at once,
// rather than at the key's first request. An error is logged: the
// credential is issued, and its first use applies the proof.
func (s *Service) OnProof(proved func(ctx context.Context, number string, cert *x509.Certificate) error) {
	s.proved = proved
}

// LogTo makes the service log every credential it issues in tl, whose
// Storage must be this service's Store, under the label that label gives
// the number. The built-in CA's directory calls it once, before serving.
// A standalone CA does not log; the directory that first sees one of its
// credentials logs the holder instead.
//
// logged, if not nil, is told of each entry after it is appended, so the
// directory need not append it again when the owner asks for its promise.
func (s *Service) LogTo(tl *translog.Log, label func(number string) ([32]byte, error), logged func(ctx context.Context, entry []byte)) {
	s.tlog, s.label, s.logged = tl, label, logged
}

// issue signs a credential for number and pub, proved by SMS at proof, and,
// if the service logs, returns with it the inclusion proof of its log
// entry. finish appends the entry (nil if not logging) in the transaction
// that ends the verification, or alone for a renewal.
func (s *Service) issue(ctx context.Context, number string, pub any, now, proof time.Time, finish func(entry []byte) (int64, error)) (api.VerifyConfirmResponse, error) {
	der, err := s.cfg.CA.Issue(number, pub, s.cfg.CredentialValidity, now, proof)
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	var entry []byte
	if s.tlog != nil {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return api.VerifyConfirmResponse{}, err
		}
		label, err := s.label(number)
		if err != nil {
			return api.VerifyConfirmResponse{}, err
		}
		if entry, err = translog.CredentialEntry(label, cert, s.Root()); err != nil {
			return api.VerifyConfirmResponse{}, err
		}
	}
	pos, err := finish(entry)
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	att, err := s.cfg.CA.Attest(der)
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	resp := api.VerifyConfirmResponse{Certificate: der, Chain: [][]byte{s.Root().Raw}, Attestation: att}
	if entry != nil && s.logged != nil {
		s.logged(ctx, entry)
	}
	if entry != nil {
		// The credential is issued and logged: a proof that cannot be made
		// now must not cost the owner its code. It answers without one, and
		// the owner's monitor finds the entry in the log.
		if resp.Log, err = s.tlog.Prove(ctx, pos); err != nil {
			s.log.Error("proving a logged credential", "log_index", pos, "err", err)
			resp.Log = nil
		}
	}
	s.log.Info("credential issued", "cert_sha256", fmt.Sprintf("%x", sha256.Sum256(der)), "log_index", pos)
	return resp, nil
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.CA == nil || cfg.SMS == nil {
		return nil, errors.New("ca: Store, CA and SMS are required")
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	keyDER, err := cfg.CA.MarshalKey()
	if err != nil {
		return nil, err
	}
	// Tags need a secret so that a copy of the database cannot be checked
	// against guessed numbers; the CA key is that secret already.
	tagKey, err := hkdf.Key(sha256.New, keyDER, nil, "blindex v1 ca tag key", 32)
	if err != nil {
		return nil, err
	}
	codeKey, err := hkdf.Key(sha256.New, keyDER, nil, "blindex v1 ca code key", 32)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cfg.CA.Root())
	sigs := httpsig.NewVerifier(cfg.AuthWindow)
	// Accepted nonces are recorded in the store too, so that neither this
	// server restarted nor another on the same database accepts a replay.
	sigs.Shared = httpapi.SharedNonces(cfg.Store)
	return &Service{cfg: cfg, log: cfg.Logger, roots: roots, sigs: sigs, tagKey: tagKey, codeKey: codeKey}, nil
}

// defaults fills in the zero fields of cfg and refuses values that would
// break a limit, naming the field to change.
func (cfg *Config) defaults() error {
	setDefault(&cfg.CredentialValidity, DefaultCredentialValidity)
	setDefault(&cfg.CodeTTL, DefaultCodeTTL)
	setDefault(&cfg.MaxCodeAttempts, DefaultMaxCodeAttempts)
	setDefault(&cfg.AuthWindow, DefaultAuthWindow)
	l, d := &cfg.Limits, DefaultLimits
	setDefault(&l.NumberPerHour, d.NumberPerHour)
	setDefault(&l.NumberPerDay, d.NumberPerDay)
	setDefault(&l.NetworkPerHour, d.NetworkPerHour)
	setDefault(&l.GlobalPerMinute, d.GlobalPerMinute)
	setDefault(&l.GlobalPerDay, d.GlobalPerDay)
	setDefault(&l.FailuresPerNumber, d.FailuresPerNumber)
	setDefault(&l.RenewalsPerDay, d.RenewalsPerDay)
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"CredentialValidity", int64(cfg.CredentialValidity)}, {"CodeTTL", int64(cfg.CodeTTL)},
		{"MaxCodeAttempts", int64(cfg.MaxCodeAttempts)}, {"AuthWindow", int64(cfg.AuthWindow)},
		{"Limits.NumberPerHour", int64(l.NumberPerHour)}, {"Limits.NumberPerDay", int64(l.NumberPerDay)},
		{"Limits.NetworkPerHour", int64(l.NetworkPerHour)}, {"Limits.GlobalPerMinute", int64(l.GlobalPerMinute)},
		{"Limits.GlobalPerDay", int64(l.GlobalPerDay)}, {"Limits.FailuresPerNumber", int64(l.FailuresPerNumber)},
		{"Limits.RenewalsPerDay", int64(l.RenewalsPerDay)},
	} {
		if f.v < 0 {
			return fmt.Errorf("ca: %s is negative: give a positive value, or zero for the default", f.name)
		}
	}
	// One party's verification, used up, must leave the number's owner
	// codes to check in the same hour.
	if l.FailuresPerNumber <= cfg.MaxCodeAttempts {
		return fmt.Errorf("ca: Limits.FailuresPerNumber (%d) must exceed MaxCodeAttempts (%d), "+
			"or one stranger's verification could lock a number's owner out for the hour", l.FailuresPerNumber, cfg.MaxCodeAttempts)
	}
	return nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Root is the CA's root certificate.
func (s *Service) Root() *x509.Certificate { return s.cfg.CA.Root() }

// Routes mounts the CA's endpoints on r.
func (s *Service) Routes(r *mux.Router) {
	// Retrying a start must not text a second code; retrying a confirm
	// after a lost answer must return the credential, not "code used".
	r.Handle(api.PathVerifyStart, httpapi.Serve(s.log, httpapi.Idempotent(s.cfg.Store, s.cfg.Now, "", httpapi.Decoded(s.serveStart)))).Methods("POST")
	r.Handle(api.PathVerifyConfirm, httpapi.Serve(s.log, httpapi.Idempotent(s.cfg.Store, s.cfg.Now, "", httpapi.Decoded(s.serveConfirm)))).Methods("POST")
	r.Handle(api.PathRenew, httpapi.Serve(s.log, s.serveRenew)).Methods("POST")
	r.Handle(api.PathCARoot, httpapi.Serve(s.log, func(*http.Request, []byte) (api.CARoot, error) {
		return api.CARoot{Certificate: s.Root().Raw}, nil
	})).Methods("GET")
}

// Handler is the standalone CA's HTTP API.
func (s *Service) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }).Methods("GET")
	s.Routes(r)
	r.NotFoundHandler = http.HandlerFunc(httpapi.NotFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(httpapi.MethodNotAllowed)
	return r
}

// Housekeep deletes expired verifications, counters and stored outcomes,
// then checkpoints
// the store so deleted rows leave no trace on disk.
func (s *Service) Housekeep(ctx context.Context) {
	now := s.cfg.Now()
	if n, err := s.cfg.Store.DeleteExpiredVerifications(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Error("deleting expired verifications", "err", err)
	} else if n > 0 {
		s.log.Info("deleted expired verifications", "count", n)
	}
	if _, err := s.cfg.Store.DeleteExpiredCounters(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Error("deleting expired counters", "err", err)
	}
	if _, err := s.cfg.Store.DeleteExpiredOutcomes(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Error("deleting expired outcomes", "err", err)
	}
	if err := s.cfg.Store.Checkpoint(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("store checkpoint", "err", err)
	}
	s.sigs.Prune(now)
}

// tag is an HMAC of number for one purpose.
func (s *Service) tag(purpose, number string) [32]byte {
	m := hmac.New(sha256.New, s.tagKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(number))
	var t [32]byte
	m.Sum(t[:0])
	return t
}

// limit counts one event against (purpose, subject) in a fixed window of
// period, and refuses with err and a Retry-After at the window's end.
func (s *Service) limit(ctx context.Context, purpose, subject string, period time.Duration, n int, err error) error {
	now := s.cfg.Now()
	window := now.Truncate(period)
	_, cerr := s.cfg.Store.Count(ctx, s.tag(purpose, subject), window, window.Add(period), n)
	if errors.Is(cerr, ErrExhausted) {
		return httpapi.Retry(err, window.Add(period).Sub(now))
	}
	return cerr
}

// failureKey counts the codes checked for a number, named by its
// verification tag, in windows of FailureWindow. (Version 1's 30-day
// counter had another purpose string, so no old count is read as new.)
func (s *Service) failureKey(tag [32]byte) [32]byte {
	return s.tag("confirm/number/hour", string(tag[:]))
}

// network is the client's IPv4 address or IPv6 /64: a per-client limit on
// single IPv6 addresses would be trivial to evade. Behind a reverse proxy
// (Config.ForwardedFor) it is the address the proxy appended last to
// X-Forwarded-For: the one entry a client cannot forge.
func (s *Service) network(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if s.cfg.ForwardedFor {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			hops := strings.Split(xff[len(xff)-1], ",")
			host = strings.TrimSpace(hops[len(hops)-1])
		}
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

func newCode() string {
	var b [8]byte
	rand.Read(b[:])
	// The bias of 2^64 mod 10^6 is below 2^-44: negligible.
	return fmt.Sprintf("%06d", binary.BigEndian.Uint64(b[:])%1_000_000)
}

// codeMAC binds code to one verification and one number. It is keyed with
// codeKey, outside the store, so the stored value does not let a reader of
// the database test codes; and it covers the number's tag, so one
// comparison checks both the code and the number a confirmation names.
func (s *Service) codeMAC(id [16]byte, tag [32]byte, code string) []byte {
	m := hmac.New(sha256.New, s.codeKey)
	m.Write(id[:])
	m.Write(tag[:])
	m.Write([]byte(code))
	return m.Sum(nil)
}

func (s *Service) serveStart(r *http.Request, req api.VerifyStartRequest) (api.VerifyStartResponse, error) {
	ctx := r.Context()
	number, err := oprf.NormalizeNumber(req.Number, "")
	if err != nil {
		return api.VerifyStartResponse{}, fmt.Errorf("%w: %w", ErrNumber, err)
	}
	if err := s.misdirected(number); err != nil {
		return api.VerifyStartResponse{}, err
	}
	l := s.cfg.Limits
	// Per-subject limits first: a flood from one network, or at one number,
	// is refused before it can spend the global budget everyone shares.
	for _, c := range []struct {
		purpose, subject string
		period           time.Duration
		n                int
	}{
		{"start/network/hour", s.network(r), time.Hour, l.NetworkPerHour},
		{"start/number/hour", number, time.Hour, l.NumberPerHour},
		{"start/number/day", number, 24 * time.Hour, l.NumberPerDay},
		{"start/global/minute", "", time.Minute, l.GlobalPerMinute},
		{"start/global/day", "", 24 * time.Hour, l.GlobalPerDay},
	} {
		if err := s.limit(ctx, c.purpose, c.subject, c.period, c.n, ErrRateLimited); err != nil {
			return api.VerifyStartResponse{}, err
		}
	}
	now := s.cfg.Now()
	tag := s.tag("verification", number)
	// A number whose codes were guessed at this hour gets no new code: the
	// owner could not check it until the window ends.
	if err := s.failuresLeft(ctx, tag, now); err != nil {
		return api.VerifyStartResponse{}, err
	}

	// Each start is its own verification, with its own random id, code and
	// attempts, and answers the same whether or not another is pending: a
	// second party can neither learn of, void nor use up the owner's. The
	// per-number limits above bound how many a number has at once.
	code := newCode()
	v := Verification{NumberTag: tag,
		Created: now.Truncate(time.Second), Expires: now.Add(s.cfg.CodeTTL).Truncate(time.Second)}
	rand.Read(v.ID[:])
	v.CodeMAC = s.codeMAC(v.ID, tag, code)
	err = s.cfg.Store.CreateVerification(ctx, v)
	if errors.Is(err, ErrConflict) {
		return api.VerifyStartResponse{}, httpapi.Retry(ErrBusy, time.Second) // a 2^-128 id collision
	}
	if err != nil {
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
		// The code was never delivered: forget it. Codes delivered by
		// earlier starts stay valid.
		if derr := s.cfg.Store.DeleteVerification(ctx, v.ID); derr != nil && !errors.Is(derr, ErrNotFound) {
			s.log.Error("forgetting unsent verification", "verification_id", id, "err", derr)
		}
		level := slog.LevelWarn
		if errors.Is(err, sms.ErrRejected) {
			level = slog.LevelError // a refusal usually means misconfiguration: alert on it
		}
		s.log.Log(ctx, level, "sms send failed", "verification_id", id, "err", err)
		return api.VerifyStartResponse{}, httpapi.Retry(ErrSMS, 30*time.Second)
	}
	s.log.Info("verification started", "verification_id", id)
	return api.VerifyStartResponse{VerificationID: id, Expires: v.Expires.UTC()}, nil
}

// failuresLeft refuses, with a Retry-After at the window's end, a number
// whose codes checked this FailureWindow reached Limits.FailuresPerNumber.
func (s *Service) failuresLeft(ctx context.Context, tag [32]byte, now time.Time) error {
	fw := now.Truncate(FailureWindow)
	n, err := s.cfg.Store.Counted(ctx, s.failureKey(tag), fw)
	if err != nil {
		return err
	}
	if n >= s.cfg.Limits.FailuresPerNumber {
		return httpapi.Retry(ErrTooManyFailures, fw.Add(FailureWindow).Sub(now))
	}
	return nil
}

// serveConfirm checks a code and, on success, issues a credential.
//
// Two budgets bound guessing, each spent before the code is compared, so
// concurrent guesses cannot exceed them: the verification's own
// MaxCodeAttempts, and its number's FailuresPerNumber codes checked per
// FailureWindow. The second is charged to the verification's own number,
// never to the number a request names, and only to a verification whose
// id the caller holds. The verification is deleted before the credential
// is issued, so one code yields at most one credential, and a replayed
// confirmation finds it gone.
func (s *Service) serveConfirm(r *http.Request, req api.VerifyConfirmRequest) (api.VerifyConfirmResponse, error) {
	ctx := r.Context()
	var id [16]byte
	if b, err := hex.DecodeString(req.VerificationID); err != nil || len(b) != len(id) {
		return api.VerifyConfirmResponse{}, fmt.Errorf("%w: verification_id", httpapi.ErrBadRequest)
	} else {
		copy(id[:], b)
	}
	number, err := oprf.NormalizeNumber(req.Number, "")
	if err != nil {
		return api.VerifyConfirmResponse{}, fmt.Errorf("%w: %w", ErrNumber, err)
	}
	if err := s.misdirected(number); err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	// Checked before an attempt is spent, so a bad key costs no try.
	pub, err := parseP256(req.PublicKey)
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	// A revoked (or retired) key stays revoked: a new SMS proof does not
	// bring it back, so a stolen copy of it cannot either.
	if s.cfg.Revoked != nil {
		spki, err := x509.MarshalPKIXPublicKey(pub) // as the credential will hold it
		if err != nil {
			return api.VerifyConfirmResponse{}, err
		}
		if revoked, err := s.cfg.Revoked(ctx, sha256.Sum256(spki)); err != nil {
			return api.VerifyConfirmResponse{}, err
		} else if revoked {
			return api.VerifyConfirmResponse{}, ErrKeyRevoked
		}
	}
	now := s.cfg.Now()
	v, err := s.cfg.Store.Verification(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return api.VerifyConfirmResponse{}, ErrVerification
	}
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	if !now.Before(v.Expires) {
		s.end(ctx, id, "expired")
		return api.VerifyConfirmResponse{}, ErrVerification
	}
	// While the number's budget is spent, refuse before an attempt is
	// claimed: the owner's code then still has all its tries afterwards.
	if err := s.failuresLeft(ctx, v.NumberTag, now); err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	v, err = s.cfg.Store.ClaimAttempt(ctx, id, s.cfg.MaxCodeAttempts)
	if errors.Is(err, ErrExhausted) {
		s.end(ctx, id, "out of attempts")
		return api.VerifyConfirmResponse{}, ErrVerification
	}
	if errors.Is(err, ErrNotFound) {
		return api.VerifyConfirmResponse{}, ErrVerification
	}
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	fw := now.Truncate(FailureWindow)
	_, err = s.cfg.Store.Count(ctx, s.failureKey(v.NumberTag), fw, fw.Add(FailureWindow), s.cfg.Limits.FailuresPerNumber)
	if errors.Is(err, ErrExhausted) {
		return api.VerifyConfirmResponse{}, httpapi.Retry(ErrTooManyFailures, fw.Add(FailureWindow).Sub(now))
	}
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	// The MAC covers the tag of the number the request names: the right
	// code for another number is a wrong code, in the same comparison.
	if !hmac.Equal(s.codeMAC(id, s.tag("verification", number), req.Code), v.CodeMAC) {
		if v.Attempts >= s.cfg.MaxCodeAttempts {
			s.end(ctx, id, "out of attempts")
		}
		return api.VerifyConfirmResponse{}, ErrWrongCode
	}
	// The verification ends in the transaction that logs the credential:
	// one code yields at most one credential, and none goes unlogged. The
	// code was confirmed now: that is the credential's proof time.
	resp, err := s.issue(ctx, number, pub, now, now, func(entry []byte) (int64, error) {
		return s.cfg.Store.FinishVerification(ctx, id, entry)
	})
	if errors.Is(err, ErrNotFound) {
		return api.VerifyConfirmResponse{}, ErrVerification // a concurrent confirm won
	}
	if err == nil && s.proved != nil {
		if cert, perr := x509.ParseCertificate(resp.Certificate); perr != nil {
			err = perr
		} else if perr := s.proved(ctx, number, cert); perr != nil {
			s.log.Error("applying a proof to the number's holders; its first use will", "err", perr)
		}
	}
	return resp, err
}

// serveRenew issues a fresh credential for the same number and key to the
// holder of a valid credential from this CA: no new SMS while the current
// credential is valid. The key stays the same, so directories see the same
// holder, and so does the proof time: a renewal extends a credential's life
// but is never a proof.
func (s *Service) serveRenew(r *http.Request, body []byte) (api.VerifyConfirmResponse, error) {
	now := s.cfg.Now()
	number, leaf, err := httpapi.Authenticate(s.sigs, r, body, s.roots, now)
	if err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	if err := httpapi.Decode(body, &struct{}{}); err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	if err := s.misdirected(number); err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	return httpapi.Idempotent(s.cfg.Store, s.cfg.Now, string(keyHashOf(leaf)), func(r *http.Request, _ []byte) (api.VerifyConfirmResponse, error) {
		return s.renew(r.Context(), number, leaf, now)
	})(r, body)
}

func (s *Service) renew(ctx context.Context, number string, leaf *x509.Certificate, now time.Time) (api.VerifyConfirmResponse, error) {
	keyHash := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	if s.cfg.Revoked != nil {
		if revoked, err := s.cfg.Revoked(ctx, keyHash); err != nil {
			return api.VerifyConfirmResponse{}, err
		} else if revoked {
			return api.VerifyConfirmResponse{}, ErrRevoked
		}
	}
	if err := s.limit(ctx, "renew/key/day", string(keyHash[:]), 24*time.Hour, s.cfg.Limits.RenewalsPerDay, ErrTooManyRenewals); err != nil {
		return api.VerifyConfirmResponse{}, err
	}
	// Copied, never now: a renewal that counted as a proof would let the
	// holder of a stolen key outrank the owner's later SMS proof without
	// ever receiving a code. A credential from before the proof time
	// carries its NotBefore on, so its renewals do not advance it either.
	proof, err := credential.ProofTime(leaf)
	if err != nil {
		return api.VerifyConfirmResponse{}, httpapi.ErrCredentialUntrusted // Authenticate's Verify refuses it first
	}
	return s.issue(ctx, number, leaf.PublicKey, now, proof, func(entry []byte) (int64, error) {
		if entry == nil {
			return -1, nil
		}
		return s.tlog.AppendEntry(ctx, entry)
	})
}

func keyHashOf(leaf *x509.Certificate) []byte {
	h := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return h[:]
}

func (s *Service) end(ctx context.Context, id [16]byte, why string) {
	if err := s.cfg.Store.DeleteVerification(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Error("ending verification", "verification_id", hex.EncodeToString(id[:]), "err", err)
		return
	}
	s.log.Info("verification ended", "verification_id", hex.EncodeToString(id[:]), "reason", why)
}
