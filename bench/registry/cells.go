package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

const (
	smallBlob = 64 << 10
	largeBlob = 32 << 20
)

// timing is what the command line lets one tune about the plan.
type timing struct {
	warmup   time.Duration // warm-up of duration-bound cells
	duration time.Duration // measurement of duration-bound cells
	quick    bool          // smoke-test sizes for count-bound cells
	rounds   int           // slices each cell is measured in per server
}

// plan returns the cells in table order.
func plan(t timing) []cell {
	return []cell{
		smallPush(t, 1), smallPush(t, 16),
		smallPull(t, 1), smallPull(t, 16),
		largePush(t, 1), largePush(t, 16),
		largePull(t, 1), largePull(t, 16),
		manifestGet(t, "tag", 32), manifestGet(t, "digest", 32),
	}
}

// smallPush is duration bound; the op caps only bound the disk it may fill.
func smallPush(t timing, conc int) cell {
	warm, meas := int64(10000), int64(40000)
	if t.quick {
		warm, meas = 2000, 5000
	}
	n := int(warm+meas) + 2*t.rounds // room for rounding up each slice's share
	return cell{
		id:       fmt.Sprintf("push-64k-c%d", conc),
		title:    fmt.Sprintf("push 64 KiB blobs, c=%d (blobs/s)", conc),
		unit:     unitOps,
		conc:     conc,
		warmup:   phase{dur: t.warmup, ops: warm},
		measure:  phase{dur: t.duration, ops: meas},
		minRatio: 5,
		setup:    pushSetup(smallBlob, n),
	}
}

// largePush is count bound: a few distinct 32 MiB blobs per worker.
func largePush(t timing, conc int) cell {
	warm, meas := int64(conc), int64(max(8, 2*conc))
	w := phase{dur: 15 * time.Second, ops: warm}
	if t.quick {
		w, meas = phase{}, int64(max(2, conc))
	}
	return cell{
		id:       fmt.Sprintf("push-32m-c%d", conc),
		title:    fmt.Sprintf("push 32 MiB blobs, c=%d (MiB/s)", conc),
		unit:     unitMiB,
		conc:     conc,
		warmup:   w,
		measure:  phase{dur: 30 * time.Second, ops: meas},
		minRatio: 1,
		setup:    pushSetup(largeBlob, int(w.ops+meas)+2*t.rounds),
	}
}

// pushSetup returns a setup that prepares n distinct blobs; operation i
// pushes blob i.
func pushSetup(size int64, n int) func(context.Context, cellEnv) (opFunc, error) {
	return func(_ context.Context, env cellEnv) (opFunc, error) {
		set, err := env.blobs.set(size, n, env.salt)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, _ *worker, i int64) (int64, error) {
			if i >= int64(set.len()) {
				return 0, fmt.Errorf("blob set of %d exhausted", set.len())
			}
			err := env.c.pushBlob(ctx, env.repo, set.digest(int(i)), size, set.reader(int(i)))
			if err != nil {
				return 0, err
			}
			return size, nil
		}, nil
	}
}

// smallPull is duration bound over 64 pushed blobs.
func smallPull(t timing, conc int) cell {
	return cell{
		id:       fmt.Sprintf("pull-64k-c%d", conc),
		title:    fmt.Sprintf("pull 64 KiB blobs, c=%d (blobs/s)", conc),
		unit:     unitOps,
		conc:     conc,
		warmup:   phase{dur: t.warmup},
		measure:  phase{dur: t.duration},
		minRatio: 5,
		setup:    pullSetup(smallBlob, 64),
	}
}

// largePull is count bound over 4 pushed blobs.
func largePull(t timing, conc int) cell {
	w, meas := phase{dur: 15 * time.Second, ops: int64(conc)}, int64(max(16, 4*conc))
	if t.quick {
		w, meas = phase{}, int64(max(4, conc))
	}
	return cell{
		id:       fmt.Sprintf("pull-32m-c%d", conc),
		title:    fmt.Sprintf("pull 32 MiB blobs, c=%d (MiB/s)", conc),
		unit:     unitMiB,
		conc:     conc,
		warmup:   w,
		measure:  phase{dur: 30 * time.Second, ops: meas},
		minRatio: 1,
		setup:    pullSetup(largeBlob, 4),
	}
}

// pullSetup pushes n blobs (untimed), checks that one reads back intact, and
// returns an operation that pulls blob i mod n.
func pullSetup(size int64, n int) func(context.Context, cellEnv) (opFunc, error) {
	return func(ctx context.Context, env cellEnv) (opFunc, error) {
		set, err := env.blobs.set(size, n, env.salt)
		if err != nil {
			return nil, err
		}
		for i := range n {
			if err := env.c.pushBlob(ctx, env.repo, set.digest(i), size, set.reader(i)); err != nil {
				return nil, err
			}
		}
		if err := verifyBlob(ctx, env.c, env.repo, set.digest(0), size); err != nil {
			return nil, err
		}
		return func(ctx context.Context, w *worker, i int64) (int64, error) {
			got, err := env.c.getBlob(ctx, env.repo, set.digest(int(i%int64(n))), w.buf)
			if err == nil && got != size {
				err = fmt.Errorf("GET blob: %d bytes, want %d", got, size)
			}
			return got, err
		}, nil
	}
}

// verifyBlob fetches a blob once and checks its length and digest.
func verifyBlob(ctx context.Context, c *regClient, repo, digest string, size int64) error {
	req, err := c.newRequest(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+digest, nil, 0)
	if err != nil {
		return err
	}
	resp, err := c.do(req, "GET blob", http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != size || got != digest {
		return fmt.Errorf("blob %s read back as %d bytes %s", digest, n, got)
	}
	return nil
}

// manifestGet pushes a one-layer OCI image tagged "bench" and GETs its
// manifest by tag or by digest.
func manifestGet(t timing, by string, conc int) cell {
	return cell{
		id:       "manifest-" + by,
		title:    fmt.Sprintf("GET manifest by %s, c=%d (req/s)", by, conc),
		unit:     unitOps,
		conc:     conc,
		warmup:   phase{dur: t.warmup},
		measure:  phase{dur: t.duration},
		minRatio: 3,
		setup: func(ctx context.Context, env cellEnv) (opFunc, error) {
			dgst, err := pushImage(ctx, env)
			if err != nil {
				return nil, err
			}
			ref := "bench"
			if by == "digest" {
				ref = dgst
			}
			return func(ctx context.Context, w *worker, _ int64) (int64, error) {
				return env.c.getManifest(ctx, env.repo, ref, w.buf)
			}, nil
		},
	}
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type ociManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pushImage pushes a config blob, one 64 KiB layer and an OCI manifest
// tagged "bench", checks the manifest reads back, and returns its digest.
func pushImage(ctx context.Context, env cellEnv) (string, error) {
	layers, err := env.blobs.set(smallBlob, 1, env.salt)
	if err != nil {
		return "", err
	}
	layer := descriptor{MediaType: mtOCILayer, Digest: layers.digest(0), Size: smallBlob}
	if err := env.c.pushBlob(ctx, env.repo, layer.Digest, layer.Size, layers.reader(0)); err != nil {
		return "", err
	}
	cfgJSON := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]},"config":{"Labels":{"bench":"%d"}}}`,
		layer.Digest, env.salt)
	config := descriptor{MediaType: mtOCIConfig, Digest: sha256Digest(cfgJSON), Size: int64(len(cfgJSON))}
	if err := env.c.pushBlob(ctx, env.repo, config.Digest, config.Size, bytes.NewReader(cfgJSON)); err != nil {
		return "", err
	}
	body, err := json.Marshal(ociManifest{SchemaVersion: 2, MediaType: mtOCIManifest, Config: config, Layers: []descriptor{layer}})
	if err != nil {
		return "", err
	}
	want := sha256Digest(body)
	got, err := env.c.putManifest(ctx, env.repo, "bench", mtOCIManifest, body)
	if err != nil {
		return "", err
	}
	if got != "" && got != want {
		return "", fmt.Errorf("PUT manifest: server digest %s, want %s", got, want)
	}
	buf := make([]byte, 64<<10)
	for _, ref := range []string{"bench", want} {
		n, err := env.c.getManifest(ctx, env.repo, ref, buf)
		if err != nil {
			return "", err
		}
		if n != int64(len(body)) {
			return "", fmt.Errorf("GET manifest %s: %d bytes, want %d", ref, n, len(body))
		}
	}
	return want, nil
}
