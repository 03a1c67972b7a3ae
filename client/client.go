// Package client is the Go client of a blindex directory.
//
// It verifies a number by SMS and keeps the resulting credential on disk,
// publishes sealed per-app records with access lists, and looks numbers up.
// A lookup never sends a number to the server: the client blinds each number,
// the server evaluates the blinded batch under one proof that the client
// verifies against the directory's pinned key, and the client then fetches
// the whole bucket of each derived index (one of the directory's n equal
// ranges of the index, internal/bucket) and keeps its own
// matches. Allowlists are built the same way, so the owner's contacts'
// numbers never reach the server either.
package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"blindex.dev/blindex/credential"
	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/atomicfile"
	"blindex.dev/blindex/internal/httpsig"
)

// Config configures a Client.
type Config struct {
	// Server is the directory's base URL, such as "http://127.0.0.1:8390".
	// Required.
	Server string
	// CA is the base URL of the CA that verifies the number and renews the
	// credential. Default: Server (the directory's built-in CA).
	CA string
	// StateDir holds the credential key and certificate, a pending
	// verification, and the pinned directory key. Created with mode 0700.
	// Required.
	StateDir string
	// HTTPClient sends requests. Default: a client with a 30 second timeout.
	HTTPClient *http.Client
	// MaxPrefixBits bounds the buckets the client fetches among to
	// 2^MaxPrefixBits: more would put each lookup in a smaller crowd. If the
	// directory has more, the client fetches the wider buckets instead.
	// Default 24.
	MaxPrefixBits int
	// DefaultRegion is the CLDR region ("US", "GB") for numbers written
	// without a leading '+'. Default "": every number must be in E.164 form.
	DefaultRegion string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Pin, if set, holds the directory's parameters from a trusted source
	// (a federation map, see Federated) instead of trusting the directory's
	// first answer: the client refuses a directory whose /v1/config differs
	// from Pin (ErrPinMismatch) and checks every proof under Pin's key.
	Pin *Pin
	// CredentialDir holds the credential key and certificate, so that the
	// clients of several directories share one credential. Default: StateDir.
	CredentialDir string
	// TrustRoots are the CAs whose attestations this client accepts in
	// looked-up records' publisher proofs: a record vouched for by any
	// other CA is dropped. Default: the directory's ca_roots, pinned on
	// first use.
	TrustRoots []*x509.Certificate
	// MinBucketOwners is the smallest crowd, in owners per bucket, that a
	// lookup accepts: the client bounds the bucket count by the owner
	// count the directory's log key signs, whatever bucket count the
	// directory asks for (docs/protocol.md §10.2). Default 16, the
	// directory's default.
	MinBucketOwners int
	// AllowUnlogged accepts records whose credential carries no valid log
	// promise under the pinned log key. Off by default: a record must show
	// that its credential is in the log that its owner's monitor reads.
	AllowUnlogged bool
}

var (
	ErrNoCredential = errors.New("client: no credential: verify a number first")
	ErrNoPending    = errors.New("client: no verification in progress: start one first")
	// ErrKeyChanged means the directory now evaluates under a key other than
	// the one pinned on first use. Lookups stop: answers under an unknown key
	// could single this client out. Remove the pinned file only if the
	// operator announced a new key.
	ErrKeyChanged = errors.New("client: the directory's OPRF key differs from the key pinned in directory.json")
)

// Error is an error answer from the directory.
type Error struct {
	Status     int
	Message    string        // the server's fixed message
	RetryAfter time.Duration // from Retry-After, if any
}

func (e *Error) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("directory: %s (HTTP %d, retry after %v)", e.Message, e.Status, e.RetryAfter)
	}
	return fmt.Sprintf("directory: %s (HTTP %d)", e.Message, e.Status)
}

// Client talks to one directory. It is safe for concurrent lookups; the
// credential-changing calls (Verify, Confirm) must not run concurrently.
type Client struct {
	cfg    Config
	http   *http.Client
	keptMu sync.Mutex // promises.json
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Server == "" || cfg.StateDir == "" {
		return nil, errors.New("client: Server and StateDir are required")
	}
	cfg.Server = strings.TrimRight(cfg.Server, "/")
	if cfg.CA == "" {
		cfg.CA = cfg.Server
	}
	cfg.CA = strings.TrimRight(cfg.CA, "/")
	if cfg.MaxPrefixBits == 0 {
		cfg.MaxPrefixBits = 24
	}
	if cfg.MinBucketOwners == 0 {
		cfg.MinBucketOwners = DefaultMinBucketOwners
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CredentialDir == "" {
		cfg.CredentialDir = cfg.StateDir
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, http: hc}, nil
}

// State file names under StateDir.
const (
	fileKey     = "credential.key" // PKCS#8 PEM, mode 0600
	fileCert    = "credential.pem" // leaf then chain, PEM, then the CA's attestation (pemAttestation)
	filePending = "pending.json"   // a verification in progress
	filePinned  = "directory.json" // the directory parameters pinned on first use
)

type pending struct {
	Number         string    `json:"number"`
	VerificationID string    `json:"verification_id"`
	Expires        time.Time `json:"expires"`
	NewKey         bool      `json:"new_key,omitempty"` // Confirm makes a new key even if the state holds one
}

// Verify asks the directory to send a code to number by SMS and remembers the
// verification in StateDir for Confirm. It returns when the code expires.
//
// If the state already holds a credential for number, Confirm keeps its
// key: the new credential is a re-proof of the same holder, which clears a
// notice (docs/protocol.md §9.7). VerifyNewKey makes a new key instead.
func (c *Client) Verify(ctx context.Context, number string) (time.Time, error) {
	return c.verify(ctx, number, false)
}

// VerifyNewKey is Verify, but Confirm makes a new key whatever the state
// holds: the new key joins the number's holders and puts the others on
// notice, among them the old key and any stolen copy of it, which are
// retired unless they prove the number by SMS again. It is the cure for a
// lost device, and for a key that was revoked.
func (c *Client) VerifyNewKey(ctx context.Context, number string) (time.Time, error) {
	return c.verify(ctx, number, true)
}

func (c *Client) verify(ctx context.Context, number string, newKey bool) (time.Time, error) {
	n, err := c.normalize(number)
	if err != nil {
		return time.Time{}, err
	}
	var resp api.VerifyStartResponse
	if err := c.doAt(ctx, c.cfg.CA, "POST", api.PathVerifyStart, api.VerifyStartRequest{Number: n}, &resp, nil); err != nil {
		return time.Time{}, err
	}
	b, _ := json.Marshal(pending{Number: n, VerificationID: resp.VerificationID, Expires: resp.Expires, NewKey: newKey})
	if err := writeFile(filepath.Join(c.cfg.StateDir, filePending), b, 0o600); err != nil {
		return time.Time{}, err
	}
	return resp.Expires, nil
}

// readPending reads the verification in progress in stateDir.
func readPending(stateDir string) (*pending, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, filePending))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoPending
	}
	if err != nil {
		return nil, err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("client: %s is corrupt: %w", filePending, err)
	}
	return &p, nil
}

// Confirm completes the pending verification with the code from the SMS,
// gets a credential and stores it with its key: the state's key if it
// holds a credential for the same number (unless VerifyNewKey started the
// verification), else a new P-256 key.
func (c *Client) Confirm(ctx context.Context, code string) error {
	p, err := readPending(c.cfg.StateDir)
	if err != nil {
		return err
	}
	key, kept, err := c.confirmKey(p)
	if err != nil {
		return err
	}
	// A new key for a number the state already holds replaces its key.
	replaced := false
	if !kept {
		if old, err := c.credential(); err == nil && old.number == p.Number {
			replaced = true
		}
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	var resp api.VerifyConfirmResponse
	err = c.doAt(ctx, c.cfg.CA, "POST", api.PathVerifyConfirm, api.VerifyConfirmRequest{
		VerificationID: p.VerificationID, Number: p.Number, Code: strings.TrimSpace(code), PublicKey: pub,
	}, &resp, nil)
	if err != nil {
		if asStatus(err, http.StatusNotFound) != nil {
			os.Remove(filepath.Join(c.cfg.StateDir, filePending)) // the directory ended it
		}
		if kept && asStatus(err, http.StatusUnauthorized) != nil {
			return fmt.Errorf("%w\nThis device's key was revoked or retired: verify with a new key (blindex verify start --new-key NUMBER)", err)
		}
		return err
	}
	if err := checkIssued(resp, &key.PublicKey, p.Number, "the directory"); err != nil {
		return err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// Key first, then certificate: a crash in between leaves an unused key,
	// never a certificate without its key.
	if err := writeFile(filepath.Join(c.cfg.CredentialDir, fileKey),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return err
	}
	if err := c.storeCert(resp); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(c.cfg.StateDir, filePending)); err != nil {
		return err
	}
	cred, err := c.credential()
	if err != nil {
		return err
	}
	if err := c.confirmLogged(ctx, resp, cred); err != nil {
		return err
	}
	if replaced {
		// The records this owner published belong to the old key.
		return c.adopt(ctx)
	}
	return nil
}

// confirmKey returns the key Confirm asks a credential for, and whether it
// is the state's own (kept).
func (c *Client) confirmKey(p *pending) (key *ecdsa.PrivateKey, kept bool, err error) {
	if !p.NewKey {
		cred, err := c.credential()
		switch {
		case err == nil:
			if cred.number == p.Number {
				return cred.key, true, nil
			}
		case !errors.Is(err, ErrNoCredential):
			return nil, false, err
		}
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return key, false, err
}

// checkIssued checks that a credential just issued by from is readable and
// binds number to key: a CA that answered with another would have the
// client sign as someone else.
func checkIssued(resp api.VerifyConfirmResponse, key *ecdsa.PublicKey, number, from string) error {
	cert, err := x509.ParseCertificate(resp.Certificate)
	if err != nil {
		return fmt.Errorf("client: %s returned an unreadable credential: %w", from, err)
	}
	if k, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !k.Equal(key) {
		return fmt.Errorf("client: %s returned a credential for another key", from)
	}
	if n, err := credential.Number(cert); err != nil || n != number {
		return fmt.Errorf("client: %s returned a credential for another number", from)
	}
	// The attestation is what this client's records carry as its
	// credential (record.Proof): it must say what the certificate says,
	// signed by the root that issued it.
	a, err := credential.ParseAttestation(resp.Attestation)
	if err != nil {
		return fmt.Errorf("client: %s returned no valid attestation with the credential (a CA from before publisher proofs?): %w", from, err)
	}
	var roots []*x509.Certificate
	for _, der := range resp.Chain {
		if root, err := x509.ParseCertificate(der); err == nil {
			roots = append(roots, root)
		}
	}
	if _, err := a.Verify(roots); err != nil || a.CertHash != sha256.Sum256(resp.Certificate) || a.Number != number ||
		!a.PublicKey.Equal(key) || !a.NotAfter.Equal(cert.NotAfter) || !a.NotBefore.Equal(cert.NotBefore) {
		return fmt.Errorf("client: %s returned an attestation that does not match the credential", from)
	}
	if proof, err := credential.ProofTime(cert); err != nil || !proof.Equal(a.ProofTime) {
		return fmt.Errorf("client: %s returned an attestation that does not match the credential", from)
	}
	return nil
}

func (c *Client) storeCert(resp api.VerifyConfirmResponse) error {
	var certPEM bytes.Buffer
	for _, der := range append([][]byte{resp.Certificate}, resp.Chain...) {
		pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	// In the same file, so a crash never pairs a certificate with another
	// one's attestation.
	pem.Encode(&certPEM, &pem.Block{Type: pemAttestation, Bytes: resp.Attestation})
	return writeFile(filepath.Join(c.cfg.CredentialDir, fileCert), certPEM.Bytes(), 0o600)
}

// Renew asks the CA for a fresh credential for the same number and key,
// while the current one is still valid: no SMS is needed.
func (c *Client) Renew(ctx context.Context) error {
	cred, err := c.credential()
	if err != nil {
		return err
	}
	var resp api.VerifyConfirmResponse
	if err := c.doAt(ctx, c.cfg.CA, "POST", api.PathRenew, struct{}{}, &resp, cred); err != nil {
		return err
	}
	if err := checkIssued(resp, &cred.key.PublicKey, cred.number, "the CA"); err != nil {
		return err
	}
	if err := c.storeCert(resp); err != nil {
		return err
	}
	if err := c.confirmLogged(ctx, resp, cred); err != nil {
		return err
	}
	// Records signed under the old credential stop verifying RecordGrace
	// after it ends: sign them again under the new one.
	s, err := c.loadLog()
	if err != nil {
		return err
	}
	if err := c.republish(ctx, s.Records, "under the renewed credential"); err != nil {
		return fmt.Errorf("%w (the credential itself was renewed)", err)
	}
	return nil
}

// Revoke tells the directory to refuse the stored credential's key from now
// on, for example after the device was lost. Verifying the number again
// with a new key starts clean: the directory retires the old records.
func (c *Client) Revoke(ctx context.Context) error {
	cred, err := c.credential()
	if err != nil {
		return err
	}
	return c.do(ctx, "POST", api.PathRevoke, struct{}{}, nil, cred)
}

// Chain returns the stored credential and its issuer chain (DER, leaf
// first), and the credential's key: what a caller signs invites with.
func (c *Client) Chain() ([][]byte, *ecdsa.PrivateKey, error) {
	cred, err := c.credential()
	if err != nil {
		return nil, nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(c.cfg.CredentialDir, fileCert))
	if err != nil {
		return nil, nil, err
	}
	var chain [][]byte
	for {
		var b *pem.Block
		if b, certPEM = pem.Decode(certPEM); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	return chain, cred.key, nil
}

// pemAttestation is the PEM type of the attestation in fileCert.
const pemAttestation = "BLINDEX ATTESTATION"

// identity is the loaded key and certificate.
type identity struct {
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	der    []byte
	number string // from the certificate's TNAuthList
	// attestation is the CA's compact form of cert (credential.Attestation);
	// nil for a credential stored before publisher proofs.
	attestation []byte
}

func (c *Client) credential() (*identity, error) {
	keyPEM, err := os.ReadFile(filepath.Join(c.cfg.CredentialDir, fileKey))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoCredential
	}
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(c.cfg.CredentialDir, fileCert))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoCredential
	}
	if err != nil {
		return nil, err
	}
	kb, _ := pem.Decode(keyPEM)
	cb, _ := pem.Decode(certPEM)
	if kb == nil || cb == nil {
		return nil, errors.New("client: credential files are corrupt")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("client: credential key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("client: credential key is not ECDSA")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("client: credential certificate: %w", err)
	}
	number, err := credential.Number(cert)
	if err != nil {
		return nil, fmt.Errorf("client: credential: %w", err)
	}
	id := &identity{key: key, cert: cert, der: cb.Bytes, number: number}
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == pemAttestation {
			id.attestation = b.Bytes
		}
	}
	return id, nil
}

// Credential returns the stored credential's certificate, parsed, or
// ErrNoCredential.
func (c *Client) Credential() (*x509.Certificate, error) {
	cred, err := c.credential()
	if err != nil {
		return nil, err
	}
	return cred.cert, nil
}

// asStatus returns err's error answer from the directory if it has status,
// or nil.
func asStatus(err error, status int) *Error {
	var e *Error
	if errors.As(err, &e) && e.Status == status {
		return e
	}
	return nil
}

// do sends a JSON request and decodes a JSON answer into out (if non-nil).
// With cred non-nil the request is signed with the credential key.
func (c *Client) do(ctx context.Context, method, path string, in, out any, cred *identity) error {
	return c.doAt(ctx, c.cfg.Server, method, path, in, out, cred)
}

// Writes carry a fresh Idempotency-Key and are retried, with the same key,
// when their outcome is unknown (no answer, or 502/504 from a proxy): the
// directory answers a retry with the first answer, so a retry neither
// repeats a write nor loses one. Reads are not retried: each evaluation
// costs budget.
func (c *Client) doAt(ctx context.Context, base, method, path string, in, out any, cred *identity) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	write := method != http.MethodGet && path != api.PathEvaluate && path != api.PathBuckets && path != api.PathLogLabel
	var idemKey string
	if write {
		var k [24]byte
		rand.Read(k[:])
		idemKey = base64.RawURLEncoding.EncodeToString(k[:])
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		resp, err := c.send(ctx, base, method, path, body, in != nil, idemKey, cred)
		unknown := err != nil || resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout
		if write && unknown && attempt < attempts && ctx.Err() == nil {
			if resp != nil {
				resp.Body.Close()
			}
			select {
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return decodeAnswer(resp, out)
	}
}

func (c *Client) send(ctx context.Context, base, method, path string, body []byte, isJSON bool, idemKey string, cred *identity) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if isJSON {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	if cred != nil {
		// Signed per attempt: each retry has a fresh nonce and timestamp.
		if err := httpsig.Sign(req, body, cred.key, cred.der, c.cfg.Now()); err != nil {
			return nil, err
		}
	}
	return c.http.Do(req)
}

func decodeAnswer(resp *http.Response, out any) error {
	b, err := readAnswer(resp)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
		var ae api.Error
		if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
			e.Message = ae.Error
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("client: malformed answer from directory: %w", err)
	}
	return nil
}

// writeFile writes data atomically: a crash leaves the old file or the new.
func writeFile(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}
