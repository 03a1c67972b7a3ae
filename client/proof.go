package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/oprf"
	"blindex.dev/blindex/record"
	"blindex.dev/blindex/translog"
)

// filePromise keeps the directory's log promise and proved label for the
// stored credential: asked for once per credential, put in every record.
const filePromise = "promise.json"

type storedPromise struct {
	CertHash []byte              `json:"cert_sha256"` // the credential it is for
	Response api.PromiseResponse `json:"response"`
}

// ErrNoAttestation means the stored credential came without the CA's
// attestation, which records must carry for callers to accept them.
var ErrNoAttestation = errors.New("client: the stored credential has no CA attestation: renew it (blindex renew) or verify the number again")

// publisherProof returns the proof this client's records carry, all but
// the signing time and signature: the credential's attestation, and the
// directory's proved log label and log promise for the credential, which
// it checks against the pinned OPRF and log keys before using them. A
// directory that promised an entry it did not log is caught by any audit
// (Audit), the publisher's own included.
func (c *Client) publisherProof(ctx context.Context, cred *identity) (*record.Proof, error) {
	if cred.attestation == nil {
		return nil, ErrNoAttestation
	}
	certHash := sha256.Sum256(cred.der)
	path := filepath.Join(c.cfg.StateDir, filePromise)
	var kept storedPromise
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &kept); err != nil {
			return nil, fmt.Errorf("client: %s is corrupt: %w", filePromise, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if !bytes.Equal(kept.CertHash, certHash[:]) {
		kept = storedPromise{CertHash: certHash[:]}
		if err := c.do(ctx, "POST", api.PathLogPromise, struct{}{}, &kept.Response, cred); err != nil {
			return nil, err
		}
		if err := c.checkPromise(ctx, cred, kept.Response); err != nil {
			return nil, err
		}
		b, err := json.Marshal(kept)
		if err != nil {
			return nil, err
		}
		if err := writeFile(path, b, 0o600); err != nil {
			return nil, err
		}
	}
	r := kept.Response
	p := &record.Proof{Attestation: cred.attestation, LabelElement: r.LabelElement, LabelProof: r.LabelProof,
		Promise: translog.Promise{Time: time.Unix(r.PromiseTime, 0).UTC()}}
	if len(r.PromiseSignature) != len(p.Promise.Signature) {
		return nil, errors.New("client: the directory's log promise is malformed")
	}
	copy(p.Promise.Signature[:], r.PromiseSignature)
	return p, nil
}

// checkPromise checks the directory's answer as a caller will: the label
// proved under the pinned OPRF key, the promise under the pinned log key,
// for the `credential` entry of this credential under that label.
func (c *Client) checkPromise(ctx context.Context, cred *identity, r api.PromiseResponse) error {
	p, err := c.pinnedCtx(ctx)
	if err != nil {
		return err
	}
	pk, err := oprf.ParsePublicKey(p.PublicKey)
	if err != nil {
		return fmt.Errorf("client: pinned OPRF key: %w", err)
	}
	y, err := oprf.VerifyProved(pk, []byte(api.LogLabelInfo), []byte(cred.number), r.LabelElement, r.LabelProof)
	if err != nil {
		return fmt.Errorf("client: the directory's log label proof fails under the pinned key: %w", err)
	}
	root, err := c.issuingRoot(cred)
	if err != nil {
		return err
	}
	entry, err := translog.CredentialEntry(oprf.LogLabel(y), cred.cert, root)
	if err != nil {
		return err
	}
	logKey, err := c.logKey(ctx)
	if err != nil {
		return err
	}
	if len(r.PromiseSignature) != 64 {
		return errors.New("client: the directory's log promise is malformed")
	}
	promise := translog.Promise{Time: time.Unix(r.PromiseTime, 0).UTC(), Signature: [64]byte(r.PromiseSignature)}
	if err := translog.VerifyPromise(logKey, entry, promise); err != nil {
		return fmt.Errorf("client: the directory's log promise for this credential fails under the pinned log key: %w", err)
	}
	return nil
}

// issuingRoot returns the stored chain's root that signed the credential.
func (c *Client) issuingRoot(cred *identity) (*x509.Certificate, error) {
	chain, _, err := c.Chain()
	if err != nil {
		return nil, err
	}
	for _, der := range chain[1:] {
		if root, err := x509.ParseCertificate(der); err == nil && cred.cert.CheckSignatureFrom(root) == nil {
			return root, nil
		}
	}
	return nil, errors.New("client: the stored chain has no root that signed the credential")
}
