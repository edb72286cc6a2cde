package registry_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/registry"
)

// BenchmarkPushBlob64K measures the POST+PUT upload of a 64 KiB blob through
// the full HTTP stack onto real stores (durable: fsync included).
func BenchmarkPushBlob64K(b *testing.B) {
	e := newGCEnv(b, time.Hour)
	blobs := make([][]byte, b.N)
	for i := range blobs {
		blobs[i] = make([]byte, 64<<10)
		rand.Read(blobs[i])
	}
	b.SetBytes(64 << 10)
	b.ResetTimer()
	for i := range b.N {
		if _, err := e.pushBlob("bench/push", blobs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPushBlob64KParallel is the same with concurrent clients, which
// share fsyncs through the metadata store's batched commits.
func BenchmarkPushBlob64KParallel(b *testing.B) {
	e := newGCEnv(b, time.Hour)
	b.SetBytes(64 << 10)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 64<<10)
		for pb.Next() {
			rand.Read(buf)
			if _, err := e.pushBlob("bench/push", buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetManifest measures GET of a manifest by tag.
func BenchmarkGetManifest(b *testing.B) {
	benchGetManifest(b, newGCEnv(b, time.Hour), true)
}

// BenchmarkGetManifestGate compares one client's manifest GET latency
// without a policy gate and with a gate that allows (what enforcement adds
// for a digest whose decision is cached: the quarantine lookup and the
// call).
func BenchmarkGetManifestGate(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		benchGetManifest(b, newGCEnv(b, time.Hour), false)
	})
	b.Run("allow", func(b *testing.B) {
		benchGetManifest(b, newGCEnvOpts(b, registry.Options{GCGrace: time.Hour, Gate: &fixedGate{v: registry.Verdict{Allow: true}}}), false)
	})
}

func benchGetManifest(b *testing.B, e *gcEnv, parallel bool) {
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd, err := e.pushBlob("bench/manifest", config)
	if err != nil {
		b.Fatal(err)
	}
	layer := bytes.Repeat([]byte("x"), 1000)
	ld, err := e.pushBlob("bench/manifest", layer)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.putManifest("bench/manifest", "v1", cd, int64(len(config)),
		[]v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: ld, Size: int64(len(layer))}}); err != nil {
		b.Fatal(err)
	}
	url := e.srv.URL + "/v2/bench/manifest/manifests/v1"
	get := func() bool {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept", v1.MediaTypeImageManifest)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Error(err)
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Error(resp.Status)
			return false
		}
		return true
	}
	b.ResetTimer()
	if !parallel {
		for b.Loop() {
			if !get() {
				return
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !get() {
				return
			}
		}
	})
}

// BenchmarkGetBlob64K measures GET of a 64 KiB blob.
func BenchmarkGetBlob64K(b *testing.B) {
	benchGetBlob(b, newGCEnv(b, time.Hour), false)
}

// BenchmarkGetBlobGate compares one client's GET of a layer that a manifest
// references without a policy gate and with one (the access check replaces
// the repository link lookup).
func BenchmarkGetBlobGate(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		benchGetBlob(b, newGCEnv(b, time.Hour), true)
	})
	b.Run("on", func(b *testing.B) {
		benchGetBlob(b, newGCEnvOpts(b, registry.Options{GCGrace: time.Hour, Gate: &fixedGate{v: registry.Verdict{Allow: true}}}), true)
	})
}

func benchGetBlob(b *testing.B, e *gcEnv, sequential bool) {
	blob := make([]byte, 64<<10)
	rand.Read(blob)
	d, err := e.pushBlob("bench/pull", blob)
	if err != nil {
		b.Fatal(err)
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd, err := e.pushBlob("bench/pull", config)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.putManifest("bench/pull", "v1", cd, int64(len(config)),
		[]v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(blob))}}); err != nil {
		b.Fatal(err)
	}
	url := fmt.Sprintf("%s/v2/bench/pull/blobs/%s", e.srv.URL, d)
	b.SetBytes(int64(len(blob)))
	b.ResetTimer()
	if sequential {
		for b.Loop() {
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatal(resp.Status)
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
