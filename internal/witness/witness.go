// Package witness asks transparency-log witnesses to cosign checkpoints, using
// the c2sp.org/tlog-witness protocol, and checks that a checkpoint carries
// enough c2sp.org/tlog-cosignature cosignatures before anyone trusts it.
//
// A witness keeps, for each log it follows, the latest checkpoint it cosigned
// and only cosigns a new one that is consistent with it. A checkpoint that k
// independent witnesses have cosigned cannot be part of a split view shown to
// some users only, unless k witnesses collude with the log. Nothing in this
// package touches directory data: a witness sees only checkpoints (origin,
// tree size, root hash) and consistency proofs, which are public anyway.
package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"blindex.dev/blindex/internal/ascii"
)

var (
	ErrMalformedVerifierKey = errors.New("witness: malformed cosignature verifier key")
	ErrKeyAlgorithm         = errors.New("witness: verifier key is not an Ed25519 cosignature/v1 key")
	ErrInvalidArgument      = errors.New("witness: invalid argument")
	ErrMalformedCheckpoint  = errors.New("witness: malformed checkpoint")

	// Refusals by the witness, one per status code of c2sp.org/tlog-witness.
	// A 409 is a *ConflictError instead.
	ErrBadRequest       = errors.New("witness: witness rejected the request as malformed")   // 400
	ErrForbidden        = errors.New("witness: witness rejected the checkpoint signature")   // 403
	ErrUnknownLog       = errors.New("witness: witness does not know the log")               // 404
	ErrInconsistent     = errors.New("witness: witness rejected the consistency proof")      // 422
	ErrUnexpectedStatus = errors.New("witness: unexpected response status from the witness") // anything else

	ErrMalformedResponse = errors.New("witness: malformed response from the witness")
	ErrNoCosignature     = errors.New("witness: response has no valid cosignature from the witness")

	ErrLogSignature     = errors.New("witness: checkpoint has no valid log signature")
	ErrInvalidSignature = errors.New("witness: checkpoint carries an invalid signature from a known key")

	errVerifyOnly = errors.New("witness: verify-only key cannot sign")
)

const (
	// DefaultTimeout bounds an AddCheckpoint call whose context has no
	// deadline, so that a stalled witness cannot stall the log.
	DefaultTimeout = 10 * time.Second

	// maxProofLines is the protocol's limit on consistency proof lines.
	maxProofLines = 63
	// maxCosignatureResponse caps a 200 body: a few signature lines are
	// expected; a larger body is refused rather than buffered.
	maxCosignatureResponse = 64 << 10
	// maxSizeResponse caps a 409 body, a decimal int64 and a newline.
	maxSizeResponse = 32
	// maxErrorResponse is how much of a refusal body is drained so that the
	// connection can be reused. The body itself is never read or logged.
	maxErrorResponse = 4 << 10

	sizeContentType = "text/x.tlog.size"
)

// Witness is one witness as the log sees it: where to submit checkpoints and
// the key its cosignatures must verify under.
type Witness struct {
	// URL is the witness's submission prefix; AddCheckpoint posts to
	// URL + "/add-checkpoint". It must be an absolute http or https URL.
	URL string

	// Verifier checks the witness's cosignatures, usually from ParseVerifier.
	Verifier note.Verifier

	// Client sends the requests. If nil, http.DefaultClient is used.
	Client *http.Client
}

// New returns a Witness for the submission prefix rawURL whose cosignatures
// verify under vkey, a c2sp.org/signed-note verifier key of type 0x04
// (see ParseVerifier).
func New(rawURL, vkey string) (*Witness, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: witness URL must be an absolute http or https URL", ErrInvalidArgument)
	}
	v, err := ParseVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return &Witness{URL: rawURL, Verifier: v}, nil
}

// ConflictError is returned by AddCheckpoint when the witness answers 409:
// the old size sent is not the size of the latest checkpoint the witness
// cosigned for the log. Size is that size, as the witness reported it.
//
// The caller can retry with a consistency proof from Size if Size is below
// the submitted checkpoint's size. Otherwise retrying cannot help: if Size is
// that size, the witness holds a different root for it (litewitness answers
// 422 instead); if Size is larger, the witness has cosigned a larger tree than
// the one submitted. Either means a fork or a rollback of the log.
type ConflictError struct {
	Size int64
}

// WitnessTreeSize is the size the witness has cosigned: translog's Log
// proves consistency from it and submits again.
func (e *ConflictError) WitnessTreeSize() int64 { return e.Size }

func (e *ConflictError) Error() string {
	return "witness: witness has cosigned tree size " + strconv.FormatInt(e.Size, 10) + ", not the old size sent"
}

// AddCheckpoint submits signedCheckpoint, a checkpoint note signed by the log,
// with a consistency proof from oldSize, the size the witness last cosigned
// (0 for a witness that has not seen the log). It returns the note signature
// lines, each ending in a newline, that are valid cosignatures of the
// checkpoint under w.Verifier; lines from other keys are dropped, as the
// protocol requires. Append them to signedCheckpoint to add the cosignature.
//
// A refusal wraps ErrBadRequest, ErrForbidden, ErrUnknownLog, ErrInconsistent
// or ErrUnexpectedStatus, and a 409 is a *ConflictError. Error messages never
// contain the witness's response body. If ctx has no deadline, DefaultTimeout
// applies.
func (w *Witness) AddCheckpoint(ctx context.Context, oldSize int64, proof []tlog.Hash, signedCheckpoint []byte) ([]byte, error) {
	if w.Verifier == nil {
		return nil, fmt.Errorf("%w: witness has no verifier", ErrInvalidArgument)
	}
	text, err := checkpointText(signedCheckpoint)
	if err != nil {
		return nil, err
	}
	c, err := torchwood.ParseCheckpoint(text)
	if err != nil {
		return nil, ErrMalformedCheckpoint
	}
	switch {
	case oldSize < 0 || oldSize > c.N:
		return nil, fmt.Errorf("%w: old size must be between 0 and the checkpoint size", ErrInvalidArgument)
	case len(proof) > maxProofLines:
		return nil, fmt.Errorf("%w: consistency proof longer than %d hashes", ErrInvalidArgument, maxProofLines)
	case oldSize == 0 && len(proof) != 0:
		return nil, fmt.Errorf("%w: consistency proof from size 0 must be empty", ErrInvalidArgument)
	}

	body := make([]byte, 0, 32+len(proof)*45+len(signedCheckpoint))
	body = fmt.Appendf(body, "old %d\n", oldSize)
	for _, h := range proof {
		body = base64.StdEncoding.AppendEncode(body, h[:])
		body = append(body, '\n')
	}
	body = append(body, '\n')
	body = append(body, signedCheckpoint...)

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimSuffix(w.URL, "/")+"/add-checkpoint", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: witness URL: %w", ErrInvalidArgument, err)
	}
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness: add-checkpoint request: %w", err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
		b, err := readCapped(resp.Body, maxCosignatureResponse)
		if err != nil {
			return nil, err
		}
		return verifyCosignatures(text, b, w.Verifier)
	case http.StatusConflict:
		// Only a body declared as a tree size is read as one, so that a
		// proxy's 409 page is not mistaken for the witness's state.
		mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != sizeContentType {
			return nil, fmt.Errorf("%w: 409 without %s body", ErrMalformedResponse, sizeContentType)
		}
		b, err := readCapped(resp.Body, maxSizeResponse)
		if err != nil {
			return nil, err
		}
		size, err := parseSize(b)
		if err != nil {
			return nil, err
		}
		return nil, &ConflictError{Size: size}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorResponse))
	var sentinel error
	switch resp.StatusCode {
	case http.StatusBadRequest:
		sentinel = ErrBadRequest
	case http.StatusForbidden:
		sentinel = ErrForbidden
	case http.StatusNotFound:
		sentinel = ErrUnknownLog
	case http.StatusUnprocessableEntity:
		sentinel = ErrInconsistent
	default:
		sentinel = ErrUnexpectedStatus
	}
	return nil, fmt.Errorf("%w (status %d)", sentinel, resp.StatusCode)
}

// checkpointText returns the text of the signed note signedCheckpoint,
// without checking any signature: checking the log's signature is the
// witness's job here.
func checkpointText(signedCheckpoint []byte) (string, error) {
	_, err := note.Open(signedCheckpoint, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return "", ErrMalformedCheckpoint
	}
	return unverified.Note.Text, nil
}

// readCapped reads all of r, failing if it holds more than max bytes.
func readCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("witness: reading response: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: response too large", ErrMalformedResponse)
	}
	return b, nil
}

// parseSize parses a text/x.tlog.size body: a decimal with no leading zeroes
// and a newline.
func parseSize(b []byte) (int64, error) {
	s, ok := strings.CutSuffix(string(b), "\n")
	if !ok {
		return 0, fmt.Errorf("%w: bad tree size", ErrMalformedResponse)
	}
	n, ok := ascii.Decimal(s, math.MaxInt64)
	if !ok {
		return 0, fmt.Errorf("%w: bad tree size", ErrMalformedResponse)
	}
	return n, nil
}

// verifyCosignatures checks a 200 add-checkpoint body, which must be note
// signature lines, against the checkpoint text and returns the lines that
// are valid under v.
func verifyCosignatures(text string, body []byte, v note.Verifier) ([]byte, error) {
	// The body must be signature lines only, so that nothing in it can be
	// read as part of the checkpoint text once appended to it.
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return nil, ErrMalformedResponse
	}
	for line := range bytes.Lines(body) {
		if !bytes.HasPrefix(line, []byte("— ")) {
			return nil, ErrMalformedResponse
		}
	}
	msg := make([]byte, 0, len(text)+1+len(body))
	msg = append(msg, text...)
	msg = append(msg, '\n')
	msg = append(msg, body...)
	n, err := note.Open(msg, note.VerifierList(v))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified), errors.As(err, &invalid):
		return nil, fmt.Errorf("%w: %w", ErrNoCosignature, err)
	case err != nil:
		return nil, ErrMalformedResponse
	}
	// Checked above already; the cosignatures must be over exactly the
	// checkpoint submitted.
	if n.Text != text {
		return nil, ErrMalformedResponse
	}
	var out []byte
	for _, s := range n.Sigs {
		out = fmt.Appendf(out, "— %s %s\n", s.Name, s.Base64)
	}
	return out, nil
}
