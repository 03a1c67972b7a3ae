package directory

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the directory's Prometheus metrics. Labels hold route
// templates, statuses and budget names: never a number, index or pseudonym.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	evaluations prometheus.Counter
	refusals    *prometheus.CounterVec
	errors      *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindex_http_requests_total", Help: "HTTP requests by route template and status.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "blindex_http_request_duration_seconds", Help: "HTTP request latency by route template.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blindex_evaluations_total", Help: "Blinded elements evaluated.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindex_budget_refusals_total", Help: "Requests refused by a budget: caller, global or buckets.",
		}, []string{"budget"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindex_store_errors_total",
			Help: "Failures inside the server, almost always of the store: requests answered 500 or bucket answers cut off mid-stream (where=request; a store that is down answers 503, counted in blindex_http_requests_total), housekeeping (housekeeping) and log publishing (log). Details are in the log.",
		}, []string{"where"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.evaluations, m.refusals, m.errors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// logSize exports the log's size at each scrape.
func (m *metrics) logSize(size func() (int64, error)) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "blindex_log_entries", Help: "Entries in the transparency log.",
	}, func() float64 {
		n, err := size()
		if err != nil {
			m.errors.WithLabelValues("log").Inc()
			return -1
		}
		return float64(n)
	}))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// middleware counts and times every request by its route template.
func (m *metrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := "unmatched"
		if cr := mux.CurrentRoute(r); cr != nil {
			if t, err := cr.GetPathTemplate(); err == nil {
				route = t
			}
		}
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		if sw.code == http.StatusInternalServerError {
			m.errors.WithLabelValues("request").Inc()
		}
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}
