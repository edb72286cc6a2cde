package registry

import (
	"net/http"

	"github.com/bulwark-dev/bulwark/internal/metrics"
)

// Metrics are the registry's Prometheus metrics. They are registered on a
// caller-supplied registry; there is no global one.
type Metrics struct {
	requests       *metrics.CounterVec
	duration       *metrics.HistogramVec
	bytesIn        *metrics.CounterVec
	bytesOut       *metrics.CounterVec
	uploadDuration *metrics.Histogram
	gcRuns         *metrics.CounterVec
	gcBlobs        *metrics.Counter
	gcBytes        *metrics.Counter
	gcUploads      *metrics.Counter
	gcLast         *metrics.Gauge
}

// NewMetrics creates the registry's metrics and registers them on reg. A nil
// reg gives working but unexported metrics (for tests and CLI use).
func NewMetrics(reg *metrics.Registry) *Metrics {
	m := &Metrics{
		requests: metrics.NewCounterVec(metrics.Opts{
			Name: "bulwark_http_requests_total", Help: "Registry HTTP requests by route, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: metrics.NewHistogramVec(metrics.HistogramOpts{
			Name: "bulwark_http_request_duration_seconds", Help: "Registry HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		bytesIn: metrics.NewCounterVec(metrics.Opts{
			Name: "bulwark_http_received_bytes_total", Help: "Request body bytes received, by route.",
		}, []string{"route"}),
		bytesOut: metrics.NewCounterVec(metrics.Opts{
			Name: "bulwark_http_sent_bytes_total", Help: "Response body bytes sent, by route.",
		}, []string{"route"}),
		uploadDuration: metrics.NewHistogram(metrics.HistogramOpts{
			Name: "bulwark_blob_upload_duration_seconds", Help: "Time from upload start to committed blob.",
			Buckets: metrics.ExponentialBuckets(0.001, 4, 10),
		}),
		gcRuns: metrics.NewCounterVec(metrics.Opts{
			Name: "bulwark_gc_runs_total", Help: "Garbage collection runs by result (ok, error) and mode (run, dry-run).",
		}, []string{"result", "mode"}),
		gcBlobs: metrics.NewCounter(metrics.Opts{
			Name: "bulwark_gc_deleted_blobs_total", Help: "Blobs deleted by garbage collection.",
		}),
		gcBytes: metrics.NewCounter(metrics.Opts{
			Name: "bulwark_gc_freed_bytes_total", Help: "Bytes freed by garbage collection.",
		}),
		gcUploads: metrics.NewCounter(metrics.Opts{
			Name: "bulwark_gc_expired_uploads_total", Help: "Abandoned upload sessions removed.",
		}),
		gcLast: metrics.NewGauge(metrics.Opts{
			Name: "bulwark_gc_last_success_timestamp_seconds", Help: "Unix time of the last successful garbage collection.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.bytesIn, m.bytesOut, m.uploadDuration,
			m.gcRuns, m.gcBlobs, m.gcBytes, m.gcUploads, m.gcLast)
	}
	return m
}

// metricMethod is the method label: the methods the API knows, and
// "other" for anything else, so a client cannot grow the series without
// bound by inventing methods.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
