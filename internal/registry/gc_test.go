package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/registry"
)

// gcEnv is a registry on real stores behind a real HTTP server.
type gcEnv struct {
	reg *registry.Registry
	srv *httptest.Server
}

func newGCEnv(t testing.TB, grace time.Duration) *gcEnv {
	t.Helper()
	return newGCEnvOpts(t, registry.Options{GCGrace: grace, UploadExpiry: time.Hour})
}

func newGCEnvOpts(t testing.TB, opts registry.Options) *gcEnv {
	t.Helper()
	blobs, meta := openStores(t)
	reg := registry.New(blobs, meta, opts)
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return &gcEnv{reg: reg, srv: srv}
}

// pushBlob uploads content with the POST-then-PUT flow Docker uses.
func (e *gcEnv) pushBlob(repo string, content []byte) (digest.Digest, error) {
	d := digest.FromBytes(content)
	resp, err := http.Post(e.srv.URL+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start upload: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+resp.Header.Get("Location")+"?digest="+d.String(), bytes.NewReader(content))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("finish upload: %s %s", resp.Status, body)
	}
	return d, nil
}

func (e *gcEnv) putManifest(repo, tag string, config digest.Digest, configSize int64, layers []v1.Descriptor) error {
	_, err := e.putManifestDigest(repo, tag, config, configSize, layers)
	return err
}

func (e *gcEnv) putManifestDigest(repo, tag string, config digest.Digest, configSize int64, layers []v1.Descriptor) (digest.Digest, error) {
	m := v1.Manifest{
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: config, Size: configSize},
		Layers:    layers,
	}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(b))
	req.Header.Set("Content-Type", v1.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("put manifest %s:%s: %s %s", repo, tag, resp.Status, body)
	}
	return digest.FromBytes(b), nil
}

func (e *gcEnv) deleteManifest(repo string, d digest.Digest) error {
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/v2/"+repo+"/manifests/"+d.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("delete manifest %s@%s: %s", repo, d, resp.Status)
	}
	return nil
}

func (e *gcEnv) getBlob(repo string, d digest.Digest) error {
	resp, err := http.Get(e.srv.URL + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get blob %s: %s", d, resp.Status)
	}
	h := sha256.New()
	io.Copy(h, resp.Body)
	if got := digest.NewDigest(digest.SHA256, h); got != d {
		return fmt.Errorf("blob %s served content hashing to %s", d, got)
	}
	return nil
}

// TestGCRacesPushes runs garbage collection in a tight loop while pushers
// upload layers and commit manifests. Each pusher deletes its previous
// image after pushing the next, and all draw one layer from a small shared
// pool, so pool content keeps flipping between referenced and collectable:
// GC repeatedly deletes content that another pusher is uploading again at
// that moment. Meanwhile unique garbage accumulates and must be collected.
// No push may fail within the grace period, surviving images must stay
// whole, and the store must end consistent.
func TestGCRacesPushes(t *testing.T) {
	const (
		grace    = time.Second
		pushers  = 8
		images   = 20 // per pusher
		poolSize = 24
	)
	e := newGCEnv(t, grace)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	pool := make([][]byte, poolSize)
	for i := range pool {
		pool[i] = bytes.Repeat([]byte{byte(i)}, 1024+i)
	}

	var gcRuns, deleted, late atomic.Int64
	var gcWG sync.WaitGroup
	gcWG.Go(func() {
		for ctx.Err() == nil {
			res, err := e.reg.GC(ctx, registry.GCOptions{})
			if err != nil && ctx.Err() == nil {
				t.Errorf("gc: %v", err)
				return
			}
			gcRuns.Add(1)
			deleted.Add(int64(len(res.BlobsDeleted)))
		}
	})

	var garbageWG sync.WaitGroup
	garbageWG.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := e.pushBlob("garbage/repo", fmt.Appendf(nil, "garbage %d", i)); err != nil && ctx.Err() == nil {
				t.Errorf("garbage push: %v", err)
				return
			}
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		}
	})

	type image struct {
		repo  string
		blobs []digest.Digest
	}
	last := make([]image, pushers)
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			repo := fmt.Sprintf("team/app%d", p)
			var prev digest.Digest
			for i := range images {
				unique := fmt.Appendf(nil, "layer of pusher %d image %d", p, i)
				shared := pool[rand.IntN(poolSize)]
				config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","pusher":%d,"image":%d}`, p, i)
				var layers []v1.Descriptor
				var all []digest.Digest
				started := time.Now()
				for _, c := range [][]byte{unique, shared} {
					d, err := e.pushBlob(repo, c)
					if err != nil {
						t.Errorf("push layer: %v", err)
						return
					}
					layers = append(layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: d, Size: int64(len(c))})
					all = append(all, d)
				}
				cd, err := e.pushBlob(repo, config)
				if err != nil {
					t.Errorf("push config: %v", err)
					return
				}
				all = append(all, cd)
				// A client pauses between layers and manifest; well
				// within the grace period.
				time.Sleep(time.Duration(rand.IntN(int(grace/time.Millisecond/5))) * time.Millisecond)
				md, err := e.putManifestDigest(repo, fmt.Sprintf("v%d", i), cd, int64(len(config)), layers)
				if err != nil {
					// GC promises to keep what was touched within the
					// grace period. A push slower than that (the race
					// detector on a loaded machine) may lose its layers;
					// that is the contract, not a failure.
					if time.Since(started) > grace {
						late.Add(1)
						continue
					}
					t.Errorf("manifest put %s after its layers: %v", time.Since(started), err)
					return
				}
				if prev != "" {
					if err := e.deleteManifest(repo, prev); err != nil {
						t.Errorf("%v", err)
						return
					}
				}
				prev = md
				last[p] = image{repo, all}
			}
		})
	}
	wg.Wait()
	cancel()
	garbageWG.Wait()
	gcWG.Wait()
	if t.Failed() {
		return
	}
	if gcRuns.Load() < 10 {
		t.Fatalf("only %d GC runs overlapped the pushes; the race was not exercised", gcRuns.Load())
	}
	if deleted.Load() == 0 {
		t.Fatalf("GC deleted nothing while garbage accumulated; the race was not exercised")
	}
	if late.Load() > int64(pushers*images/4) {
		t.Fatalf("%d of %d pushes took longer than the grace period; the race was not exercised", late.Load(), pushers*images)
	}
	t.Logf("%d GC runs deleted %d blobs during %d pushes (%d slower than the grace period)",
		gcRuns.Load(), deleted.Load(), pushers*images, late.Load())

	for _, img := range last {
		for _, d := range img.blobs {
			if err := e.getBlob(img.repo, d); err != nil {
				t.Errorf("after racing GC: %v", err)
			}
		}
	}

	// Once the grace period has passed, a final run leaves only referenced
	// content, and the store is consistent.
	time.Sleep(grace + 50*time.Millisecond)
	bg := context.Background()
	if _, err := e.reg.GC(bg, registry.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.reg.Fsck(bg, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Orphans) != 0 {
		t.Fatalf("fsck after GC: problems %v, orphans %v", rep.Problems, rep.Orphans)
	}
	res, err := e.reg.GC(bg, registry.GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.BlobsDeleted) != 0 || len(res.OrphanFiles) != 0 {
		t.Fatalf("a second GC would still delete %v / %v", res.BlobsDeleted, res.OrphanFiles)
	}
	// Exactly the surviving images' blobs remain.
	want := map[digest.Digest]bool{}
	for _, img := range last {
		for _, d := range img.blobs {
			want[d] = true
		}
	}
	if rep.BlobsChecked != len(want) {
		t.Fatalf("%d blobs remain, want the %d of the surviving images", rep.BlobsChecked, len(want))
	}
}

// TestGCGrace checks the grace period and the dry run: unreferenced content
// survives while young, a dry run reports without deleting, and a real run
// deletes exactly the unreferenced blobs.
func TestGCGrace(t *testing.T) {
	e := newGCEnv(t, 200*time.Millisecond)
	ctx := t.Context()
	garbage, err := e.pushBlob("a/repo", []byte("nobody references me"))
	if err != nil {
		t.Fatal(err)
	}
	layer := []byte("layer")
	ld, err := e.pushBlob("a/repo", layer)
	if err != nil {
		t.Fatal(err)
	}
	config := []byte(`{}`)
	cd, err := e.pushBlob("a/repo", config)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.putManifest("a/repo", "v1", cd, int64(len(config)),
		[]v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: ld, Size: int64(len(layer))}}); err != nil {
		t.Fatal(err)
	}

	res, err := e.reg.GC(ctx, registry.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.BlobsDeleted) != 0 {
		t.Fatalf("GC within the grace period deleted %v", res.BlobsDeleted)
	}
	time.Sleep(250 * time.Millisecond)

	res, err = e.reg.GC(ctx, registry.GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.BlobsDeleted) != 1 || res.BlobsDeleted[0] != garbage {
		t.Fatalf("dry run reports %v, want [%s]", res.BlobsDeleted, garbage)
	}
	if err := e.getBlob("a/repo", garbage); err != nil {
		t.Fatalf("dry run deleted content: %v", err)
	}

	res, err = e.reg.GC(ctx, registry.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.BlobsDeleted) != 1 || res.BlobsDeleted[0] != garbage || res.BytesFreed != int64(len("nobody references me")) {
		t.Fatalf("GC result %+v, want only %s", res, garbage)
	}
	if err := e.getBlob("a/repo", garbage); err == nil {
		t.Fatal("collected blob is still served")
	}
	for _, d := range []digest.Digest{ld, cd} {
		if err := e.getBlob("a/repo", d); err != nil {
			t.Fatalf("referenced blob collected: %v", err)
		}
	}
}
