// Package httpapi holds what the blindex HTTP services share: errors that
// carry their status and the fixed message a client sees, body limits,
// strict JSON decoding, and the one function that turns an error into a
// response. Details of an error go to the server log, never to the client.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpsig"
	"blindex.dev/blindex/internal/storeerr"
	"blindex.dev/blindex/internal/strictjson"
	"blindex.dev/blindex/oprf"
)

// Error is an error with its HTTP status and the fixed client message.
// Packages declare their sentinels with New and wrap them with %w for
// detail; the detail stays in the log.
type Error struct {
	Status  int
	Message string // what the client sees
	text    string // what Error returns, for logs
}

// New returns a sentinel error answered with status and message.
func New(status int, text, message string) *Error {
	return &Error{Status: status, Message: message, text: text}
}

func (e *Error) Error() string { return e.text }

// RetryError marks an error after which the client may retry after a delay:
// the answer carries Retry-After.
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// Retry wraps err with a Retry-After delay.
func Retry(err error, after time.Duration) error { return &RetryError{Err: err, After: after} }

var (
	ErrBadRequest   = New(http.StatusBadRequest, "bad request", "bad request")
	ErrBodyTooLarge = New(http.StatusRequestEntityTooLarge, "request body too large", "request body too large")
	ErrContentType  = New(http.StatusUnsupportedMediaType, "wrong content type", "content type must be application/json")
)

// StoreRetryAfter is the Retry-After of an answer while the store is
// unavailable: long enough not to hammer a database an operator is
// restoring, short enough to notice it is back.
const StoreRetryAfter = 30 * time.Second

// StatusClientGone is recorded, and logged, for a request whose client
// disconnected before the answer: nobody reads it, and it is not a failure
// of the server (nginx's 499).
const StatusClientGone = 499

// MaxBodySize caps every request body: a full allowlist of 2 × 10,000
// pseudonyms in base64 is under 1 MiB.
const MaxBodySize = 2 << 20

// status maps errors from packages that do not know about HTTP.
func status(err error) (int, string) {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status, e.Message
	case errors.Is(err, oprf.ErrBatchTooLarge):
		return http.StatusBadRequest, "batch too large: at most " + strconv.Itoa(oprf.MaxBatch) + " elements"
	case errors.Is(err, oprf.ErrBatchEmpty):
		return http.StatusBadRequest, "batch is empty"
	case errors.Is(err, oprf.ErrIdentity), errors.Is(err, oprf.ErrElement), errors.Is(err, oprf.ErrInput):
		return http.StatusBadRequest, "invalid element"
	case errors.Is(err, httpsig.ErrMissing):
		return http.StatusUnauthorized, "request not signed: this endpoint needs a credential"
	case errors.Is(err, httpsig.ErrStale), errors.Is(err, httpsig.ErrReplay):
		return http.StatusUnauthorized, "request replayed or outside the time window: check the clock and retry"
	case errors.Is(err, httpsig.ErrMalformed), errors.Is(err, httpsig.ErrSignature):
		return http.StatusUnauthorized, "request signature invalid"
	case errors.Is(err, httpsig.ErrBusy):
		return http.StatusTooManyRequests, "busy: retry shortly"
	case storeerr.Classify(err) != nil:
		return http.StatusServiceUnavailable, "storage unavailable: retry later"
	default:
		return http.StatusInternalServerError, "internal error"
	}
}

// WriteError answers with err's status and fixed message, and logs the
// method, path, status and the error (never the body: it can hold numbers).
//
// A store that cannot serve (storeerr.Classify) is 503 with Retry-After,
// logged as an ERROR naming the class (unavailable or corrupt). A request
// whose client has gone is logged at INFO with StatusClientGone, not as a
// 500: a client that hangs up is not a failure of the server.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code, msg := status(err)
	var re *RetryError
	store := storeerr.Classify(err)
	switch {
	case errors.As(err, &re):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((re.After+time.Second-1)/time.Second))))
	case errors.Is(err, httpsig.ErrBusy):
		w.Header().Set("Retry-After", "5")
	case store != nil:
		w.Header().Set("Retry-After", strconv.Itoa(int(StoreRetryAfter/time.Second)))
	}
	// Only a failure is re-read as the client's leaving: a body cut off by
	// the read timeout (which also cancels the context) stays a 400.
	gone := code >= 500 && errors.Is(r.Context().Err(), context.Canceled)
	if gone {
		code, msg = StatusClientGone, "client closed request"
	}
	level := slog.LevelInfo
	if code >= 500 && !gone {
		level = slog.LevelError
	}
	// The route template, not the path: a path can hold a record id.
	route := "unmatched"
	if cr := mux.CurrentRoute(r); cr != nil {
		if t, err := cr.GetPathTemplate(); err == nil {
			route = t
		}
	}
	switch {
	case gone:
		log.Log(r.Context(), level, "client went away", "method", r.Method, "route", route, "status", code, "err", err)
	case store != nil:
		log.Log(r.Context(), level, "request failed: "+store.Error(), "method", r.Method, "route", route, "status", code, "err", err)
	default:
		log.Log(r.Context(), level, "request failed", "method", r.Method, "route", route, "status", code, "err", err)
	}
	WriteJSON(w, code, api.Error{Error: msg})
}

// WriteJSON writes v as the JSON answer.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// Two writes, not append: a bucket answer can be tens of MiB.
	w.Write(b)
	w.Write([]byte{'\n'})
}

// ReadBody reads a capped body; requests other than GET and DELETE must be
// application/json.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodDelete {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return nil, ErrContentType
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, ErrBodyTooLarge
	}
	if err != nil {
		return nil, ErrBadRequest
	}
	return body, nil
}

// Decode parses exactly one JSON value and rejects unknown members,
// duplicate members and member names that differ from a field's in case
// (strictjson). It is the one place request bodies are decoded: a body has
// one reading, whatever reads it. Every failure is ErrBadRequest.
func Decode(body []byte, v any) error {
	err := strictjson.Decode(body, v)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, strictjson.ErrDuplicate), errors.Is(err, strictjson.ErrName):
		// These name no member: the detail may go to the log.
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	default:
		// encoding/json's errors can quote the body.
		return ErrBadRequest
	}
}

// Serve serves an endpoint: it reads the capped body, calls process with
// the request and the raw body, and writes the answer or the error.
// Authenticated endpoints check the signature over the raw body before they
// decode it.
func Serve[Resp any](log *slog.Logger, process func(r *http.Request, body []byte) (Resp, error)) http.Handler {
	return ServeWith(log, process, func(w http.ResponseWriter, _ *http.Request, resp Resp) {
		WriteJSON(w, http.StatusOK, resp)
	})
}

// ServeWith is Serve with the successful answer written by write, for an
// endpoint that offers another encoding than JSON. Errors are JSON still.
func ServeWith[Resp any](log *slog.Logger, process func(r *http.Request, body []byte) (Resp, error), write func(w http.ResponseWriter, r *http.Request, resp Resp)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := ReadBody(w, r)
		if err != nil {
			WriteError(w, r, log, err)
			return
		}
		resp, err := process(r, body)
		if err != nil {
			WriteError(w, r, log, err)
			return
		}
		write(w, r, resp)
	})
}

// Accepts reports whether the request's Accept header names mediaType with
// a non-zero quality. Wildcards do not count: a client gets an encoding
// other than JSON only if it names it.
func Accepts(r *http.Request, mediaType string) bool {
	for _, h := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != mediaType {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}

// JSON serves an unauthenticated endpoint whose body decodes into Req.
func JSON[Req, Resp any](log *slog.Logger, process func(r *http.Request, req Req) (Resp, error)) http.Handler {
	return Serve(log, Decoded(process))
}

// Decoded adapts a function of a decoded request to one of the raw body.
func Decoded[Req, Resp any](process func(r *http.Request, req Req) (Resp, error)) func(r *http.Request, body []byte) (Resp, error) {
	return func(r *http.Request, body []byte) (Resp, error) {
		var req Req
		if r.Method != http.MethodGet && r.Method != http.MethodDelete {
			if err := Decode(body, &req); err != nil {
				var zero Resp
				return zero, err
			}
		}
		return process(r, req)
	}
}

// NewServer wraps h with the timeouts a public server needs.
func NewServer(h http.Handler, logger *slog.Logger) *http.Server {
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

// NotFound and MethodNotAllowed answer in JSON like every other error.
func NotFound(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusNotFound, api.Error{Error: "not found"})
}

func MethodNotAllowed(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusMethodNotAllowed, api.Error{Error: "method not allowed"})
}
