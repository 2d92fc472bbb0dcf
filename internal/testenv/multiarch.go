package testenv

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ForPlatform returns img relabelled as another platform: same layers,
// config os/architecture/variant changed. The lifecycle cannot run an
// arm64 build on this amd64 machine, so the tests synthesize the arm64
// images of run images and apps this way; cipack only reads and rewrites
// their metadata and layer lists, never runs them.
func ForPlatform(img v1.Image, p v1.Platform) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	return mutate.ConfigFile(img, cf)
}

// WithRunImageReference rewrites an app image's recorded run image digest
// (io.buildpacks.lifecycle.metadata runImage.reference), as the lifecycle
// would have written it had it built the image on that run image.
func WithRunImageReference(img v1.Image, reference string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	var md map[string]any
	if err := json.Unmarshal([]byte(cf.Config.Labels["io.buildpacks.lifecycle.metadata"]), &md); err != nil {
		return nil, fmt.Errorf("lifecycle metadata: %w", err)
	}
	run, _ := md["runImage"].(map[string]any)
	if run == nil {
		return nil, fmt.Errorf("the image records no runImage")
	}
	run["reference"] = reference
	b, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	cf.Config.Labels["io.buildpacks.lifecycle.metadata"] = string(b)
	return mutate.ConfigFile(img, cf)
}

// IndexChild is one entry of an index: an image with its platform, or an
// artifact manifest (an attestation) with the unknown/unknown platform.
type IndexChild struct {
	Image    v1.Image
	Platform v1.Platform
}

// Attestation is a small manifest like the in-toto attestation manifests
// buildx adds to indexes, with platform unknown/unknown.
func Attestation() (IndexChild, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{
		Layer:     static.NewLayer([]byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`), "application/vnd.in-toto+json"),
		MediaType: "application/vnd.in-toto+json",
	})
	if err != nil {
		return IndexChild{}, err
	}
	return IndexChild{Image: img, Platform: v1.Platform{OS: "unknown", Architecture: "unknown"}}, nil
}

// PushIndex pushes an index of children under ref, with the index media
// type given (OCI index or Docker manifest list) and an annotation, so
// tests can check both are kept.
func PushIndex(ctx context.Context, ref string, mt types.MediaType, children ...IndexChild) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	idx := mutate.IndexMediaType(empty.Index, mt)
	for _, c := range children {
		p := c.Platform
		cmt, err := c.Image.MediaType()
		if err != nil {
			return v1.Hash{}, err
		}
		desc := v1.Descriptor{MediaType: cmt, Platform: &p}
		if p.OS == "unknown" {
			desc.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest"}
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: c.Image, Descriptor: desc})
	}
	idx = mutate.Annotations(idx, map[string]string{"org.opencontainers.image.description": "cipack multi-arch test"}).(v1.ImageIndex)
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx)); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return idx.Digest()
}
