package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// pushClient is a minimal OCI push/pull client, so the crash test controls
// exactly which requests are in flight when the server dies.
type pushClient struct {
	base string
	http *http.Client
}

func newPushClient(s *server) *pushClient {
	return &pushClient{base: s.url(), http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32},
	}}
}

func (c *pushClient) do(ctx context.Context, method, url string, body []byte, header ...string) (*http.Response, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// pushBlobChunked uploads content in chunks of chunk bytes: POST, PATCH…,
// then PUT with the digest, the flow that leaves the most server state in
// between requests.
func (c *pushClient) pushBlobChunked(ctx context.Context, repo string, content []byte, chunk int) (digest.Digest, error) {
	d := digest.FromBytes(content)
	resp, _, err := c.do(ctx, http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start upload: %s", resp.Status)
	}
	loc := resp.Header.Get("Location")
	for off := 0; off < len(content); off += chunk {
		end := min(off+chunk, len(content))
		resp, body, err := c.do(ctx, http.MethodPatch, c.base+loc, content[off:end],
			"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusAccepted {
			return "", fmt.Errorf("patch: %s %s", resp.Status, body)
		}
		loc = resp.Header.Get("Location")
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp, body, err := c.do(ctx, http.MethodPut, c.base+loc+sep+"digest="+d.String(), nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("finish upload: %s %s", resp.Status, body)
	}
	return d, nil
}

func (c *pushClient) putManifest(ctx context.Context, repo, tag string, m []byte) (digest.Digest, error) {
	resp, body, err := c.do(ctx, http.MethodPut, c.base+"/v2/"+repo+"/manifests/"+tag, m, "Content-Type", v1.MediaTypeImageManifest)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("put manifest: %s %s", resp.Status, body)
	}
	return digest.Digest(resp.Header.Get("Docker-Content-Digest")), nil
}

// verifyImage fetches repo:ref and every blob it references, checking each
// against its digest.
func (c *pushClient) verifyImage(ctx context.Context, repo, ref string) (digest.Digest, error) {
	resp, body, err := c.do(ctx, http.MethodGet, c.base+"/v2/"+repo+"/manifests/"+ref, nil, "Accept", v1.MediaTypeImageManifest)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get manifest %s:%s: %s", repo, ref, resp.Status)
	}
	md := digest.FromBytes(body)
	if h := resp.Header.Get("Docker-Content-Digest"); h != md.String() {
		return "", fmt.Errorf("manifest %s:%s: header digest %s, content %s", repo, ref, h, md)
	}
	var m v1.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return "", fmt.Errorf("manifest %s:%s: %w", repo, ref, err)
	}
	for _, desc := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		resp, b, err := c.do(ctx, http.MethodGet, c.base+"/v2/"+repo+"/blobs/"+desc.Digest.String(), nil)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("blob %s of %s:%s: %s", desc.Digest, repo, ref, resp.Status)
		}
		if got := digest.FromBytes(b); got != desc.Digest || int64(len(b)) != desc.Size {
			return "", fmt.Errorf("blob %s of %s:%s: served %d bytes hashing to %s", desc.Digest, repo, ref, len(b), got)
		}
	}
	return md, nil
}

// randomImage builds an image manifest of layers of random size and pushes
// its blobs; the manifest bytes are returned for the caller to put.
func (c *pushClient) pushRandomImage(ctx context.Context, repo string, rng *rand.Rand) ([]byte, error) {
	var layers []v1.Descriptor
	for range 1 + rng.IntN(3) {
		content := make([]byte, 1+rng.IntN(1<<20))
		for i := range content {
			content[i] = byte(rng.Uint32())
		}
		d, err := c.pushBlobChunked(ctx, repo, content, 64<<10+rng.IntN(192<<10))
		if err != nil {
			return nil, err
		}
		layers = append(layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: d, Size: int64(len(content))})
	}
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"},"nonce":%d}`, rng.Uint64())
	cd, err := c.pushBlobChunked(ctx, repo, config, 1<<20)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cd, Size: int64(len(config))},
		Layers:    layers,
	}
	m.SchemaVersion = 2
	return json.Marshal(m)
}

// TestCrashDuringConcurrentPushes SIGKILLs the server while 16 clients push
// images in chunks, several times over one data directory. After each
// restart fsck must be clean, every tag whose push was acknowledged must
// resolve to the acknowledged digest with every blob intact, and any tag
// that exists at all must be whole: a crash may lose an unacknowledged push,
// never expose half of one.
func TestCrashDuringConcurrentPushes(t *testing.T) {
	const (
		rounds           = 4
		pushers          = 16
		minAckedPerRound = 4
	)
	s := startServer(t)
	c := newPushClient(s)
	acked := map[string]digest.Digest{} // "repo:tag" → digest, across rounds
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))

	for round := range rounds {
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var pushErrs int
		for p := range pushers {
			seed := rng.Uint64()
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, uint64(p)))
				repo := fmt.Sprintf("crash/pusher%d", p)
				for i := 0; ctx.Err() == nil; i++ {
					tag := fmt.Sprintf("r%d-%d", round, i)
					m, err := c.pushRandomImage(ctx, repo, r)
					if err == nil {
						var d digest.Digest
						if d, err = c.putManifest(ctx, repo, tag, m); err == nil {
							mu.Lock()
							acked[repo+":"+tag] = d
							mu.Unlock()
							continue
						}
					}
					mu.Lock()
					pushErrs++
					mu.Unlock()
					return // the server is gone
				}
			})
		}
		// Let pushes get going (at least a few acknowledged this round, so
		// every crash interrupts real work), then crash at a random moment.
		mu.Lock()
		ackedBefore := len(acked)
		mu.Unlock()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			n := len(acked) - ackedBefore
			mu.Unlock()
			if n >= minAckedPerRound || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
		s.kill()
		cancel()
		wg.Wait()
		t.Logf("round %d: killed with %d pushes in flight; %d tags acknowledged so far", round, pushErrs, len(acked))

		if out, err := s.fsck(t.Context()); err != nil {
			t.Fatalf("round %d: fsck after SIGKILL: %v\n%s", round, err, out)
		}
		s.restart(t)
		for ref, want := range acked {
			repo, tag, _ := strings.Cut(ref, ":")
			got, err := c.verifyImage(t.Context(), repo, tag)
			if err != nil {
				t.Fatalf("round %d: acknowledged %s: %v", round, ref, err)
			}
			if got != want {
				t.Fatalf("round %d: %s resolves to %s, acknowledged %s", round, ref, got, want)
			}
		}
		// Tags that exist but whose acknowledgement the crash swallowed must
		// be whole too.
		for p := range pushers {
			repo := fmt.Sprintf("crash/pusher%d", p)
			resp, body, err := c.do(t.Context(), http.MethodGet, c.base+"/v2/"+repo+"/tags/list", nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusNotFound {
				continue
			}
			var tl struct{ Tags []string }
			if err := json.Unmarshal(body, &tl); err != nil {
				t.Fatalf("tags of %s: %v", repo, err)
			}
			for _, tag := range tl.Tags {
				if _, err := c.verifyImage(t.Context(), repo, tag); err != nil {
					t.Fatalf("round %d: tag %s:%s exists but is not whole: %v", round, repo, tag, err)
				}
			}
		}
	}
	if len(acked) < rounds*minAckedPerRound {
		t.Fatalf("only %d pushes were acknowledged over %d rounds; the crashes did not interrupt real work", len(acked), rounds)
	}

	// Crashes leave upload sessions and possibly blob files without
	// metadata; GC with a negligible grace removes them and leaves a clean
	// store.
	s.stop()
	out, err := runCmd(t.Context(), append(serverEnv(), "BULWARK_GC_GRACE=1ms", "BULWARK_GC_UPLOAD_EXPIRY=1ms"),
		bulwarkBin, "gc", "--data", s.dataDir, "--output", "json")
	if err != nil {
		t.Fatalf("gc after crashes: %v\n%s", err, out)
	}
	var gc struct {
		BlobsDeleted, OrphanFiles []string
		UploadsExpired            []string
	}
	if err := json.Unmarshal([]byte(out), &gc); err != nil {
		t.Fatalf("gc output: %v\n%s", err, out)
	}
	t.Logf("gc after crashes: %d unreferenced blobs, %d orphaned files, %d abandoned uploads",
		len(gc.BlobsDeleted), len(gc.OrphanFiles), len(gc.UploadsExpired))
	if len(gc.UploadsExpired) == 0 {
		t.Fatalf("crashes during %d concurrent pushes left no upload to expire; GC did not see them", pushers)
	}
	if out, err := s.fsck(t.Context()); err != nil || !strings.Contains(out, " 0 orphaned") {
		t.Fatalf("fsck after gc: %v\n%s", err, out)
	}
	s.restart(t)
	for ref, want := range acked {
		repo, tag, _ := strings.Cut(ref, ":")
		if got, err := c.verifyImage(t.Context(), repo, tag); err != nil || got != want {
			t.Fatalf("after gc: %s: %v (got %s, want %s)", ref, err, got, want)
		}
	}
}
