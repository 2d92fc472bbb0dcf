package registry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
)

// HostPlatform is the platform cipack runs on: the one it picks, by name,
// from a builder index.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// SamePlatform compares os, architecture and variant, the way images are
// matched to run images: arm64's variant "v8" is its default, so "" and
// "v8" are one platform there.
func SamePlatform(a, b v1.Platform) bool {
	if a.OS != b.OS || a.Architecture != b.Architecture {
		return false
	}
	va, vb := a.Variant, b.Variant
	if a.Architecture == "arm64" {
		va, vb = strings.TrimPrefix(va, "v8"), strings.TrimPrefix(vb, "v8")
	}
	return va == vb
}

// PlatformString renders os/arch[/variant].
func PlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ImageFor returns ref's image for platform p. When ref names an index (an
// OCI index or a Docker manifest list), it is the child whose platform
// matches p, chosen here by name: go-containerregistry's remote.Image would
// silently take linux/amd64.
func (c *Client) ImageFor(ctx context.Context, ref name.Reference, p v1.Platform) (v1.Image, error) {
	desc, err := c.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return ImageOf(desc, ref, p)
}

// ImageOf is ImageFor on a manifest already read (desc, read from ref):
// for callers that need the manifest's own digest too.
func ImageOf(desc *remote.Descriptor, ref name.Reference, p v1.Platform) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return singleOf(desc, ref, p)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, Classify(ref.String(), "read", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, Classify(ref.String(), "read", err)
	}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		if SamePlatform(*m.Platform, p) {
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, Classify(ref.String(), "read", err)
			}
			return img, nil
		}
		have = append(have, PlatformString(*m.Platform))
	}
	return nil, &NoPlatformError{Ref: ref.String(), Want: p, Have: have}
}

// singleOf is ImageOf on a manifest that is one image: it serves p only
// if its config says so (an index names its children's platforms, a
// single image only in its config). A config naming no os and
// architecture claims no platform, and is taken (images made from
// scratch by tools, tests' among them), as is any image when p is empty
// (the caller asks for none).
func singleOf(desc *remote.Descriptor, ref name.Reference, p v1.Platform) (v1.Image, error) {
	img, err := desc.Image()
	if err != nil {
		return nil, Classify(ref.String(), "read", err)
	}
	if p.OS == "" && p.Architecture == "" {
		return img, nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, Classify(ref.String(), "read config of", err)
	}
	has := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if has.OS == "" && has.Architecture == "" || SamePlatform(has, p) {
		return img, nil
	}
	return nil, &NoPlatformError{Ref: ref.String(), Want: p, Have: []string{PlatformString(has)}, Single: true}
}

// NoPlatformError is an index without an image for the platform wanted,
// or (Single) an image of another platform.
type NoPlatformError struct {
	Ref    string
	Want   v1.Platform
	Have   []string // the platforms it has, as os/arch[/variant]
	Single bool     // Ref is one image, not an index
}

func (e *NoPlatformError) Error() string {
	if e.Single {
		return fmt.Sprintf("%s is a %s image, not %s", e.Ref, strings.Join(e.Have, ", "), PlatformString(e.Want))
	}
	return fmt.Sprintf("%s is an index without a %s image (it has %s)", e.Ref, PlatformString(e.Want), strings.Join(e.Have, ", "))
}

// BuilderPlatform names a builder without the host's platform as a
// builder that cannot serve, blaming --builder (exit 6): the reference
// is fine, it is the builder that lacks this platform. Other errors are
// returned as they are.
func BuilderPlatform(err error) error {
	var np *NoPlatformError
	if !errors.As(err, &np) {
		return err
	}
	return exit.New(exit.Builder, "--builder", err,
		"use a builder published for "+PlatformString(np.Want)+", or run the build on a host of a platform it has")
}
