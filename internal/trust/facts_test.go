package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// memRegistry is a registry's content as a hostile or honest registry
// would serve it: the referrers list is whatever it claims.
type memRegistry struct {
	referrers []v1.Descriptor
	manifests map[digest.Digest][]byte
	blobs     map[digest.Digest][]byte
}

func (m *memRegistry) Referrers(context.Context, oci.ImageRef, digest.Digest, string) ([]v1.Descriptor, error) {
	return m.referrers, nil
}

func (m *memRegistry) Manifest(_ context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error) {
	b, ok := m.manifests[ref.Digest]
	if !ok {
		return v1.Descriptor{}, nil, errors.New("manifest unknown")
	}
	return v1.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}, b, nil
}

func (m *memRegistry) Blob(_ context.Context, _ oci.ImageRef, d digest.Digest, _ int64) (io.ReadCloser, int64, error) {
	b, ok := m.blobs[d]
	if !ok {
		return nil, 0, errors.New("blob unknown")
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (m *memRegistry) add(manifest []byte) v1.Descriptor {
	d := digest.FromBytes(manifest)
	m.manifests[d] = manifest
	desc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d, Size: int64(len(manifest))}
	m.referrers = append(m.referrers, desc)
	return desc
}

func TestFacts(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("the image")
	other := notationTarget("another image")
	reg := &memRegistry{manifests: map[digest.Digest][]byte{}, blobs: map[digest.Digest][]byte{}}

	sign := func(tgt v1.Descriptor) ([]byte, v1.Descriptor) {
		env, mt, err := SignNotation(ctx, tgt, k.key, k.chain, nil, "jws")
		if err != nil {
			t.Fatal(err)
		}
		man, envDesc, err := NotationSignatureManifest(tgt, env, mt)
		if err != nil {
			t.Fatal(err)
		}
		reg.blobs[envDesc.Digest] = env
		return man, envDesc
	}
	good, _ := sign(target)
	reg.add(good)
	// A signature of another image that the registry lists as this one's.
	replayed, _ := sign(other)
	reg.add(replayed)
	// A manifest claiming this subject but carrying two layers.
	var two map[string]any
	json.Unmarshal(good, &two)
	layers := two["layers"].([]any)
	two["layers"] = append(layers, layers[0])
	twoLayers, _ := json.Marshal(two)
	reg.add(twoLayers)
	// Listed but missing.
	reg.referrers = append(reg.referrers, v1.Descriptor{Digest: digest.FromString("gone")})

	facts, err := Facts(ctx, reg, oci.ImageRef{Registry: "r.example", Repository: "dev/app", Tag: "v1"}, target.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(facts) != 4 {
		t.Fatalf("%d facts, want one per listed signature (4)", len(facts))
	}
	if !facts[0].Verified || facts[0].SignedDigest != target.Digest {
		t.Errorf("genuine signature: %+v", facts[0])
	}
	for i, want := range []string{"subject is not", "2 layers", "fetch signature manifest"} {
		f := facts[i+1]
		if f.Verified || !strings.Contains(f.Error, want) {
			t.Errorf("fact %d: verified=%v error=%q, want unverified mentioning %q", i+1, f.Verified, f.Error, want)
		}
	}
	d, err := k.policy.Evaluate("dev/app", target.Digest, "dev", facts, facts[0].SignedAt)
	if err != nil || !d.Allowed || len(d.Signatures) != 4 {
		t.Fatalf("decision %+v, %v", d, err)
	}
}
