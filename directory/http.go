package directory

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"blindex.dev/blindex/internal/api"
	"blindex.dev/blindex/internal/httpapi"
)

// Handler returns the HTTP API: the directory's endpoints, and the built-in
// CA's if there is one. Every path is under /v1 except /healthz (the
// process is up), /readyz (its store answers) and /metrics.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }).Methods("GET")
	// Ready when the store can be read and written: a load balancer stops
	// sending requests to a server whose database is gone, full, read-only
	// or damaged (a full disk still answers reads).
	r.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.cfg.Store.Ready(r.Context()); err != nil {
			s.log.Error("not ready", "err", err)
			http.Error(w, "store unavailable\n", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}).Methods("GET")
	r.Handle("/metrics", s.metrics.handler()).Methods("GET")
	r.Handle(api.PathConfig, httpapi.Serve(s.log, func(r *http.Request, _ []byte) (api.Config, error) {
		return s.config(r.Context())
	})).Methods("GET")
	// Reads are not idempotent-keyed: a repeat must pay and see fresh buckets.
	r.Handle(api.PathEvaluate, authed(s, read, s.evaluate)).Methods("POST")
	r.Handle(api.PathBuckets, httpapi.ServeWith(s.log, authedProcess(s, read, s.buckets), writeBuckets)).Methods("POST")
	r.Handle(api.PathRecords, authed(s, write, s.publish)).Methods("PUT")
	r.Handle(api.PathRecordACL, authed(s, write, s.setACL)).Methods("PUT")
	r.Handle(api.PathLogLabel, authed(s, read, s.logLabel)).Methods("POST")
	r.Handle(api.PathLogState, authed(s, read, s.logState)).Methods("POST")
	r.Handle(api.PathLogPromise, authed(s, read, s.logPromise)).Methods("POST")
	r.Handle(api.PathHolders, authed(s, read, s.holders)).Methods("POST")
	r.Handle(api.PathHoldersEvict, authed(s, write, s.evict)).Methods("POST")
	s.tlog.Routes(r, api.PathLog)
	// Revoking a revoked key succeeds again, so a retry is not an error.
	r.Handle(api.PathRevoke, authed(s, revokeOp, func(ctx context.Context, c *caller, _ struct{}) (struct{}, error) {
		return struct{}{}, s.revoke(ctx, c)
	})).Methods("POST")
	r.Handle(api.PathRecord, httpapi.Serve(s.log, func(r *http.Request, body []byte) (api.WriteResponse, error) {
		c, err := s.authenticate(r, body, false)
		if err != nil {
			return api.WriteResponse{}, err
		}
		return httpapi.Idempotent(s.cfg.Store, s.cfg.Now, string(c.keyHash[:]), func(r *http.Request, _ []byte) (api.WriteResponse, error) {
			rid, err := hex.DecodeString(mux.Vars(r)["record_id"])
			if err != nil {
				return api.WriteResponse{}, httpapi.ErrBadRequest
			}
			var epoch *int
			if v := r.URL.Query().Get("epoch"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return api.WriteResponse{}, fmt.Errorf("%w: epoch", httpapi.ErrBadRequest)
				}
				epoch = &n
			}
			return s.deleteRecord(r.Context(), c, epoch, rid)
		})(r, body)
	})).Methods("DELETE")
	if s.cfg.CA != nil {
		s.cfg.CA.Routes(r)
	}
	// Unmatched requests skip mux middleware: count them too (as "unmatched"),
	// so scanners probing random paths show up.
	r.NotFoundHandler = s.metrics.middleware(http.HandlerFunc(httpapi.NotFound))
	r.MethodNotAllowedHandler = s.metrics.middleware(http.HandlerFunc(httpapi.MethodNotAllowed))
	r.Use(s.metrics.middleware)
	return r
}

type op int

const (
	read     op = iota // no idempotency key: a repeat pays and sees fresh data
	write              // honours Idempotency-Key
	revokeOp           // a write that a revoked key may still make
)

// authed serves an endpoint that acts for the caller's credential: the
// request is authenticated before its body is processed.
func authed[Req, Resp any](s *Server, kind op, process func(context.Context, *caller, Req) (Resp, error)) http.Handler {
	return httpapi.Serve(s.log, authedProcess(s, kind, process))
}

// authedProcess is authed's processing of the raw body, for endpoints that
// write their answer themselves.
func authedProcess[Req, Resp any](s *Server, kind op, process func(context.Context, *caller, Req) (Resp, error)) func(*http.Request, []byte) (Resp, error) {
	return func(r *http.Request, body []byte) (Resp, error) {
		var zero Resp
		c, err := s.authenticate(r, body, kind == revokeOp)
		if err != nil {
			return zero, err
		}
		run := func(r *http.Request, body []byte) (Resp, error) {
			var req Req
			if err := httpapi.Decode(body, &req); err != nil {
				return zero, err
			}
			return process(r.Context(), c, req)
		}
		if kind == read {
			return run(r, body)
		}
		// Authenticated first and scoped to the caller's key, so another
		// caller's key and body fetch nothing.
		return httpapi.Idempotent(s.cfg.Store, s.cfg.Now, string(c.keyHash[:]), run)(r, body)
	}
}

// writeBuckets answers a bucket fetch in the binary encoding if the client
// names it in Accept, and in JSON otherwise. Both carry exactly the admitted
// records, so a denied record is as absent in one as in the other. The
// answer is written a chunk of buckets at a time as the store reads them,
// without a Content-Length: a store failure after the first chunk cuts the
// answer off, which no client can parse as a whole answer.
func writeBuckets(w http.ResponseWriter, r *http.Request, f *bucketFetch) {
	w.Header().Add("Vary", "Accept")
	inBinary := httpapi.Accepts(r, api.MediaTypeBuckets)
	if inBinary {
		w.Header().Set("Content-Type", api.MediaTypeBuckets)
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	e := api.NewBucketsEncoder(w, inBinary, len(f.buckets))
	for i := 0; i*bucketChunk < len(f.ranges); i++ {
		found, err := f.chunk(i)
		if err != nil {
			f.s.log.Error("bucket fetch cut off", "err", err)
			f.s.metrics.errors.WithLabelValues("request").Inc()
			panic(http.ErrAbortHandler) // the metrics middleware records no status for it
		}
		for j, cands := range found {
			e.Bucket(admitted(f.buckets[i*bucketChunk+j], cands))
		}
	}
	e.Close() // an error means the client has gone
}
