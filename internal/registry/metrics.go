package registry

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the registry's Prometheus collectors. They are registered on a
// caller-supplied registerer, never the global one.
type Metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	bytesIn        *prometheus.CounterVec
	bytesOut       *prometheus.CounterVec
	uploadDuration prometheus.Histogram
	gcRuns         *prometheus.CounterVec
	gcBlobs        prometheus.Counter
	gcBytes        prometheus.Counter
	gcUploads      prometheus.Counter
	gcLast         prometheus.Gauge
}

// NewMetrics creates and registers the registry's collectors. A nil
// registerer gives working but unexported metrics (for tests and CLI use).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_http_requests_total", Help: "Registry HTTP requests by route, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bulwark_http_request_duration_seconds", Help: "Registry HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_http_received_bytes_total", Help: "Request body bytes received, by route.",
		}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_http_sent_bytes_total", Help: "Response body bytes sent, by route.",
		}, []string{"route"}),
		uploadDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bulwark_blob_upload_duration_seconds", Help: "Time from upload start to committed blob.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		gcRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_gc_runs_total", Help: "Garbage collection runs by result (ok, error) and mode (run, dry-run).",
		}, []string{"result", "mode"}),
		gcBlobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_gc_deleted_blobs_total", Help: "Blobs deleted by garbage collection.",
		}),
		gcBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_gc_freed_bytes_total", Help: "Bytes freed by garbage collection.",
		}),
		gcUploads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_gc_expired_uploads_total", Help: "Abandoned upload sessions removed.",
		}),
		gcLast: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_gc_last_success_timestamp_seconds", Help: "Unix time of the last successful garbage collection.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.bytesIn, m.bytesOut, m.uploadDuration,
			m.gcRuns, m.gcBlobs, m.gcBytes, m.gcUploads, m.gcLast)
	}
	return m
}
