package registry

import "testing"

func TestMetricMethod(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "PATCH": "PATCH", "HEAD": "HEAD", "BREW": "other", "get": "other", "": "other"} {
		if got := metricMethod(in); got != want {
			t.Errorf("metricMethod(%q) = %q, want %q", in, got, want)
		}
	}
}
