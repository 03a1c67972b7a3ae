package directory

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/oprf"
)

// MaxBodySize caps every request body: a full allowlist of 2 × 10,000
// pseudonyms in base64 is under 1 MiB.
const MaxBodySize = 2 << 20

var (
	errBodyTooLarge = errors.New("directory: request body too large")
	errContentType  = errors.New("directory: content type must be application/json")
)

// Handler returns the HTTP API. Every path is under /v1 except /healthz.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }).Methods("GET")
	r.HandleFunc(api.PathConfig, s.serveConfig).Methods("GET")
	r.Handle(api.PathVerifyStart, open(s, s.startVerification)).Methods("POST")
	r.Handle(api.PathVerifyConfirm, open(s, s.confirmVerification)).Methods("POST")
	r.Handle(api.PathEvaluate, authed(s, s.evaluate)).Methods("POST")
	r.Handle(api.PathBuckets, authed(s, s.buckets)).Methods("POST")
	r.Handle(api.PathRecords, authedNoReply(s, s.publish)).Methods("PUT")
	r.Handle(api.PathRecordACL, authedNoReply(s, s.setACL)).Methods("PUT")
	r.HandleFunc(api.PathRecord, s.serveDeleteRecord).Methods("DELETE")
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, api.Error{Error: "not found"})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, api.Error{Error: "method not allowed"})
	})
	return r
}

// NewHTTPServer wraps h with the timeouts a public server needs.
func NewHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

func (s *Server) serveConfig(w http.ResponseWriter, r *http.Request) {
	c, err := s.config(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// open serves an unauthenticated JSON endpoint.
func open[Req, Resp any](s *Server, process func(context.Context, Req) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req Req
		if err := decode(body, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		resp, err := process(r.Context(), req)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// authed serves a JSON endpoint that acts for the caller's credential.
func authed[Req, Resp any](s *Server, process func(context.Context, *caller, Req) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, body, err := s.authRequest(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req Req
		if err := decode(body, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		resp, err := process(r.Context(), c, req)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func authedNoReply[Req any](s *Server, process func(context.Context, *caller, Req) error) http.Handler {
	return authed(s, func(ctx context.Context, c *caller, req Req) (struct{}, error) {
		return struct{}{}, process(ctx, c, req)
	})
}

func (s *Server) serveDeleteRecord(w http.ResponseWriter, r *http.Request) {
	c, _, err := s.authRequest(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rid, err := hex.DecodeString(mux.Vars(r)["record_id"])
	if err != nil {
		s.writeError(w, r, ErrBadRequest)
		return
	}
	if err := s.deleteRecord(r.Context(), c, rid); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// authRequest reads the body and verifies the request signature.
func (s *Server) authRequest(w http.ResponseWriter, r *http.Request) (*caller, []byte, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	var c *caller
	_, err = s.sigs.Verify(r, body, s.cfg.Now(), func(certDER []byte) (*ecdsa.PublicKey, error) {
		var err error
		if c, err = s.authenticate(certDER); err != nil {
			return nil, err
		}
		cert, _ := x509.ParseCertificate(certDER) // parsed and verified by authenticate
		return cert.PublicKey.(*ecdsa.PublicKey), nil
	})
	if errors.Is(err, httpsig.ErrBusy) {
		return nil, nil, &RetryError{err, 5 * time.Second}
	}
	if err != nil {
		return nil, nil, err
	}
	return c, body, nil
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodDelete {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return nil, errContentType
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errBodyTooLarge
	}
	if err != nil {
		return nil, ErrBadRequest
	}
	return body, nil
}

// decode parses exactly one JSON value and rejects unknown fields.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return ErrBadRequest
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrBadRequest
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// statusOf maps an error to its status and the fixed message a client sees.
// It is the only place that does so; details stay in the server log.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "request body too large"
	case errors.Is(err, errContentType):
		return http.StatusUnsupportedMediaType, "content type must be application/json"
	case errors.Is(err, ErrNumber):
		return http.StatusBadRequest, "invalid phone number: give a valid number in international E.164 form: +, country code, number"
	case errors.Is(err, oprf.ErrBatchTooLarge):
		return http.StatusBadRequest, "batch too large: at most " + strconv.Itoa(oprf.MaxBatch) + " elements"
	case errors.Is(err, oprf.ErrBatchEmpty):
		return http.StatusBadRequest, "batch is empty"
	case errors.Is(err, oprf.ErrIdentity), errors.Is(err, oprf.ErrElement):
		return http.StatusBadRequest, "invalid element"
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "bad request"
	case errors.Is(err, httpsig.ErrMissing):
		return http.StatusUnauthorized, "request not signed: this endpoint needs a credential"
	case errors.Is(err, httpsig.ErrStale), errors.Is(err, httpsig.ErrReplay):
		return http.StatusUnauthorized, "request replayed or outside the time window: check the clock and retry"
	case errors.Is(err, httpsig.ErrMalformed), errors.Is(err, httpsig.ErrSignature):
		return http.StatusUnauthorized, "request signature invalid"
	case errors.Is(err, ErrExpired):
		return http.StatusUnauthorized, "credential expired: verify the number again"
	case errors.Is(err, ErrCredential):
		return http.StatusUnauthorized, "credential not accepted: not issued by a CA this directory trusts"
	case errors.Is(err, ErrNotOwner):
		return http.StatusForbidden, "index does not belong to this credential's number"
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, ErrWrongCode):
		return http.StatusBadRequest, "wrong code"
	case errors.Is(err, ErrVerification):
		return http.StatusNotFound, "verification unknown, expired or out of attempts: start again"
	case errors.Is(err, ErrTooManySends):
		return http.StatusTooManyRequests, "too many codes sent for this number: wait for the current code to expire"
	case errors.Is(err, ErrBusy), errors.Is(err, httpsig.ErrBusy):
		return http.StatusTooManyRequests, "busy: retry shortly"
	case errors.Is(err, ErrSMS):
		return http.StatusServiceUnavailable, "could not send the code: retry later"
	case errors.Is(err, ErrStalePrefix):
		return http.StatusConflict, "prefix_bits above the server's current value: fetch /v1/config and retry"
	case errors.Is(err, ErrTooManyRecords):
		return http.StatusConflict, "too many records for this number"
	default:
		return http.StatusInternalServerError, "internal error"
	}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := statusOf(err)
	var re *RetryError
	if errors.As(err, &re) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(re.After.Round(time.Second)/time.Second))))
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	// The path is logged, never the body: bodies can hold numbers.
	s.log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path,
		"status", status, "err", err)
	writeJSON(w, status, api.Error{Error: msg})
}
