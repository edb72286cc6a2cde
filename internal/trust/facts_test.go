package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bulwark-dev/bulwark/internal/oci"
)

// memRegistry is a registry's content as a hostile or honest registry
// would serve it: the referrers list is whatever it claims.
type memRegistry struct {
	referrers []v1.Descriptor
	manifests map[digest.Digest][]byte
	tags      map[string][]byte
	blobs     map[digest.Digest][]byte
	tagErr    error // returned for every tag when set
}

func newMemRegistry() *memRegistry {
	return &memRegistry{manifests: map[digest.Digest][]byte{}, tags: map[string][]byte{}, blobs: map[digest.Digest][]byte{}}
}

func (m *memRegistry) Referrers(context.Context, oci.ImageRef, digest.Digest, string) ([]v1.Descriptor, error) {
	return m.referrers, nil
}

func (m *memRegistry) Manifest(_ context.Context, ref oci.ImageRef) (v1.Descriptor, []byte, error) {
	b, ok := m.manifests[ref.Digest]
	if ref.Digest == "" {
		if m.tagErr != nil {
			return v1.Descriptor{}, nil, m.tagErr
		}
		b, ok = m.tags[ref.Tag]
	}
	if !ok {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest unknown: %w", ErrNotFound)
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
	return m.addReferrer(manifest, NotationArtifactType, nil)
}

func (m *memRegistry) addReferrer(manifest []byte, artifactType string, annotations map[string]string) v1.Descriptor {
	d := digest.FromBytes(manifest)
	m.manifests[d] = manifest
	desc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d, Size: int64(len(manifest)),
		ArtifactType: artifactType, Annotations: annotations}
	m.referrers = append(m.referrers, desc)
	return desc
}

func TestFacts(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("the image")
	other := notationTarget("another image")
	reg := newMemRegistry()

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
	reg.referrers = append(reg.referrers, v1.Descriptor{Digest: digest.FromString("gone"), ArtifactType: NotationArtifactType})
	// Some other artifact (an SBOM): not a signature, not a fact.
	reg.referrers = append(reg.referrers, v1.Descriptor{Digest: digest.FromString("sbom"), ArtifactType: "application/spdx+json"})

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

// bundleReferrer stores bundle as a referrer of subject the way cosign
// v2.6 attaches it, and returns the manifest.
func bundleReferrer(t *testing.T, reg *memRegistry, subject digest.Digest, bundle []byte, predicate string) []byte {
	t.Helper()
	bd := digest.FromBytes(bundle)
	reg.blobs[bd] = bundle
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: SigstoreBundleArtifactType,
		Config:      v1.DescriptorEmptyJSON,
		Layers:      []v1.Descriptor{{MediaType: SigstoreBundleArtifactType, Digest: bd, Size: int64(len(bundle))}},
		Subject:     &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject, Size: 1},
		Annotations: map[string]string{"dev.sigstore.bundle.predicateType": predicate}}
	m.SchemaVersion = 2
	b := mustJSON(t, m)
	reg.addReferrer(b, SigstoreBundleArtifactType, m.Annotations)
	return b
}

// sigTag stores a cosign .sig manifest with layers for subject.
func sigTag(t *testing.T, reg *memRegistry, subject digest.Digest, layers ...v1.Descriptor) {
	t.Helper()
	var man []byte
	for _, l := range layers {
		var err error
		if man, _, _, err = AppendCosignSignature(man, l); err != nil {
			t.Fatal(err)
		}
	}
	reg.tags[CosignSignatureTag(subject)] = man
}

func TestFactsCosign(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("the image").Digest
	other := notationTarget("another image").Digest
	repo := oci.ImageRef{Registry: "r.example", Repository: "dev/app", Tag: "v1"}
	key := newECKey(t)
	now := k.chain[0].NotBefore.Add(1)

	reg := newMemRegistry()
	put := func(payload []byte, layer v1.Descriptor) v1.Descriptor {
		reg.blobs[layer.Digest] = payload
		return layer
	}
	certSigned := put(signCosignT(t, target, k.key, k.chain, nil))
	keySigned := put(signCosignT(t, target, key, nil, nil))
	replayed := put(signCosignT(t, other, k.key, k.chain, nil))
	wrongType := certSigned
	wrongType.MediaType = "application/json"
	wrongType.Annotations = map[string]string{"x": "y"}
	huge := certSigned
	huge.Size = MaxCosignPayloadBytes + 1
	huge.Annotations = map[string]string{"x": "z"}
	missing := certSigned
	missing.Digest = digest.FromString("missing payload")
	lying := certSigned
	lying.Digest = digest.FromString("lying payload")
	reg.blobs[lying.Digest] = reg.blobs[certSigned.Digest] // content not matching the digest
	sigTag(t, reg, target, certSigned, keySigned, replayed, wrongType, huge, missing, lying)

	bundleReferrer(t, reg, target, makeBundle(t, key, nil, cosignStatementFor(target), nil), CosignSignPredicateType)
	bundleReferrer(t, reg, target, makeBundle(t, k.key, k.chain, cosignStatementFor(target), nil), CosignSignPredicateType)
	// An attestation is not a signature: skipped by its annotation.
	bundleReferrer(t, reg, target, makeBundle(t, key, nil, cosignStatementFor(target), nil), "https://slsa.dev/provenance/v1")
	// A bundle manifest whose subject is another image.
	bundleReferrer(t, reg, other, makeBundle(t, key, nil, cosignStatementFor(target), nil), CosignSignPredicateType)

	facts, err := Facts(ctx, reg, repo, target, WithKeys(key.Public()))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		format, ref string
		verified    bool
		errPart     string
	}
	tag := CosignSignatureTag(target)
	wants := []want{
		{"cosign-bundle", "", true, ""},
		{"cosign-bundle", "", true, ""},
		{"cosign-bundle", "", false, "subject is not"},
		{"cosign", tag + "#0", true, ""},
		{"cosign", tag + "#1", true, ""},
		{"cosign", tag + "#2", true, ""}, // verified, but for the other image
		{"cosign", tag + "#3", false, "media type"},
		{"cosign", tag + "#4", false, "exceeds"},
		{"cosign", tag + "#5", false, "fetch payload"},
		{"cosign", tag + "#6", false, "does not match the layer digest"},
	}
	if len(facts) != len(wants) {
		for _, f := range facts {
			t.Logf("%s %s %v %s", f.Format, f.Ref, f.Verified, f.Error)
		}
		t.Fatalf("%d facts, want %d", len(facts), len(wants))
	}
	for i, w := range wants {
		f := facts[i]
		if f.Format != w.format || (w.ref != "" && f.Ref != w.ref) || f.Verified != w.verified || !strings.Contains(f.Error, w.errPart) {
			t.Errorf("fact %d: %s %s verified=%v error=%q, want %+v", i, f.Format, f.Ref, f.Verified, f.Error, w)
		}
	}
	if facts[5].SignedDigest != other {
		t.Errorf("replayed payload reported for %s", facts[5].SignedDigest)
	}

	// The ci policy counts a certificate signature; the replayed one is
	// refused as another image's.
	d, err := k.policy.Evaluate("dev/app", target, "dev", facts, now)
	if err != nil || !d.Allowed {
		t.Fatalf("decision %+v, %v", d, err)
	}
	if !strings.Contains(d.Signatures[5].Why, "not this image") {
		t.Errorf("replayed: %q", d.Signatures[5].Why)
	}
	// The key policy counts the key-only ones.
	if d, err := keyPolicy(t, key.Public()).Evaluate("dev/app", target, "dev", facts, now); err != nil || !d.Allowed {
		t.Fatalf("key policy: %+v, %v", d, err)
	}
	// Without keys, key-only signatures cannot be checked: they fail, the
	// rest stand.
	facts, err = Facts(ctx, reg, repo, target)
	if err != nil || facts[0].Verified || !strings.Contains(facts[0].Error, "no public keys") || !facts[1].Verified || facts[4].Verified {
		t.Fatalf("without keys: %v %+v", err, facts)
	}
}

func TestFactsCosignDiscovery(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("the image").Digest
	repo := oci.ImageRef{Registry: "r.example", Repository: "dev/app"}

	// Nothing at all: no facts, no error.
	reg := newMemRegistry()
	if facts, err := Facts(ctx, reg, repo, target); err != nil || len(facts) != 0 {
		t.Fatalf("unsigned image: %+v, %v", facts, err)
	}
	// The tag lookup fails for another reason than absence: one failed fact.
	reg.tagErr = errors.New("registry: 500")
	if facts, err := Facts(ctx, reg, repo, target); err != nil || len(facts) != 1 || facts[0].Verified || !strings.Contains(facts[0].Error, "500") {
		t.Fatalf("tag error: %+v, %v", facts, err)
	}
	reg.tagErr = nil

	// Garbage or an index under the tag.
	for name, body := range map[string]string{
		"garbage": "{",
		"index":   `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`,
	} {
		reg.tags[CosignSignatureTag(target)] = []byte(body)
		if facts, err := Facts(ctx, reg, repo, target); err != nil || len(facts) != 1 || facts[0].Verified {
			t.Errorf("%s under the tag: %+v, %v", name, facts, err)
		}
	}

	// A .sig manifest with more layers than bulwark reads: one failed fact,
	// no fetches.
	payload, layer := signCosignT(t, target, k.key, k.chain, nil)
	reg.blobs[layer.Digest] = payload
	layers := make([]v1.Descriptor, MaxCosignLayers+1)
	for i := range layers {
		layers[i] = layer
		layers[i].Annotations = map[string]string{"i": fmt.Sprint(i)}
	}
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: v1.DescriptorEmptyJSON, Layers: layers}
	m.SchemaVersion = 2
	reg.tags[CosignSignatureTag(target)] = mustJSON(t, m)
	facts, err := Facts(ctx, reg, repo, target)
	if err != nil || len(facts) != 1 || !strings.Contains(facts[0].Error, "101 layers") {
		t.Fatalf("many layers: %+v, %v", facts, err)
	}
	delete(reg.tags, CosignSignatureTag(target))

	// Too many signature referrers is a discovery error.
	for i := range MaxSignatureManifests + 1 {
		reg.referrers = append(reg.referrers, v1.Descriptor{Digest: digest.FromString(fmt.Sprint(i)), ArtifactType: SigstoreBundleArtifactType})
	}
	if _, err := Facts(ctx, reg, repo, target); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("flooded referrers: %v", err)
	}
}

// TestFactsSelfReferential: a hostile registry lists a signature manifest
// as a referrer of itself (its subject is another image, and no manifest
// can name its own digest). Discovery goes one level only, so there is no
// loop to fall into; the listed signature is a failed fact, never a
// signature of itself, and a decision about it counts nothing.
func TestFactsSelfReferential(t *testing.T) {
	k := newNotationPKI(t)
	ctx := context.Background()
	target := notationTarget("the image")
	reg := newMemRegistry()
	env, mt, err := SignNotation(ctx, target, k.key, k.chain, nil, "jws")
	if err != nil {
		t.Fatal(err)
	}
	man, envDesc, err := NotationSignatureManifest(target, env, mt)
	if err != nil {
		t.Fatal(err)
	}
	reg.blobs[envDesc.Digest] = env
	self := reg.add(man)
	// The same descriptor listed many times over: each is one failed fact.
	for range 3 {
		reg.referrers = append(reg.referrers, self)
	}
	facts, err := Facts(ctx, reg, oci.ImageRef{Registry: "r.example", Repository: "dev/app"}, self.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(facts) != 4 {
		t.Fatalf("%d facts, want 4 (one per listing)", len(facts))
	}
	for i, f := range facts {
		if f.Verified || !strings.Contains(f.Error, "subject is not") {
			t.Errorf("fact %d: verified=%v error=%q; a signature must not vouch for itself", i, f.Verified, f.Error)
		}
	}
	d, err := k.policy.Evaluate("dev/app", self.Digest, "dev", facts, time.Now())
	if err != nil || d.Allowed || len(d.Satisfied) != 0 {
		t.Fatalf("decision about the signature manifest itself: %+v, %v", d, err)
	}
}
