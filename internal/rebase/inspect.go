package rebase

import (
	"context"
	"fmt"
	"strings"

	"github.com/buildpacks/lifecycle/api"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/registry"
)

// Child is one platform's image of an app tag: the image itself when the
// tag names a single manifest, one entry of the index otherwise.
type Child struct {
	// Descriptor is the child's entry in the index, platform and
	// annotations included (for a single manifest: its own descriptor).
	Descriptor  v1.Descriptor
	Platform    v1.Platform
	App         AppImage
	Image       v1.Image
	RecordedRef string // runImage.reference: the run image digest it was built on
	// Source is the project metadata's repository@commit, if any.
	Source string
	// Other is a child that is not a CNB image (an attestation manifest,
	// another artifact): kept byte for byte, never decided.
	Other bool
}

// Inspected is an app tag as read from the registry: manifests and
// configs only, never a layer.
type Inspected struct {
	Ref      name.Reference
	Digest   string
	Desc     *remote.Descriptor
	Index    v1.ImageIndex // nil when the tag names a single manifest
	Children []*Child
}

// CNB reports whether any child is a CNB image.
func (in *Inspected) CNB() bool {
	for _, c := range in.Children {
		if !c.Other && c.App.HasCNBMetadata {
			return true
		}
	}
	return false
}

// Inspect reads what ref names: for an image manifest, its config; for an
// OCI index or a Docker manifest list, each child's manifest and config.
// Indexes are read as indexes, never resolved to a default platform.
func Inspect(ctx context.Context, reg Reader, ref name.Reference) (*Inspected, error) {
	desc, err := reg.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	in := &Inspected{Ref: ref, Digest: desc.Digest.String(), Desc: desc}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, registry.Classify(ref.String(), "read", err)
		}
		c, err := inspectImage(ref.String(), img)
		if err != nil {
			return nil, err
		}
		c.Descriptor = desc.Descriptor
		in.Children = []*Child{c}
		return in, nil
	}
	if in.Index, err = desc.ImageIndex(); err != nil {
		return nil, registry.Classify(ref.String(), "read", err)
	}
	im, err := in.Index.IndexManifest()
	if err != nil {
		return nil, registry.Classify(ref.String(), "read", err)
	}
	for _, m := range im.Manifests {
		if !m.MediaType.IsImage() || m.Platform == nil || m.Platform.OS == "unknown" {
			in.Children = append(in.Children, &Child{Descriptor: m, Other: true})
			continue
		}
		img, err := in.Index.Image(m.Digest)
		if err != nil {
			return nil, registry.Classify(ref.String(), "read", err)
		}
		c, err := inspectImage(fmt.Sprintf("%s (%s)", ref, registry.PlatformString(*m.Platform)), img)
		if err != nil {
			return nil, err
		}
		c.Descriptor, c.Platform = m, *m.Platform
		// A platform image built without buildpacks is kept, like an
		// attestation: cipack has nothing to decide about it.
		c.Other = !c.App.HasCNBMetadata
		in.Children = append(in.Children, c)
	}
	return in, nil
}

// inspectImage reads one image's config and CNB metadata.
func inspectImage(what string, img v1.Image) (*Child, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%s: read config: %w", what, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("digest of %s: %w", what, err)
	}
	c := &Child{Image: img, Platform: v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
		App: AppImage{Ref: what, Digest: digest.String()}}
	labels := cf.Config.Labels
	c.App.Target = cnb.Target(cf)
	md, err := cnb.LifecycleMetadata(labels)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if md == nil {
		return c, nil
	}
	run := md.RunImage.RunImageForExport
	if run.Image == "" && md.Stack != nil {
		run = md.Stack.RunImage
	}
	c.App.HasCNBMetadata = true
	c.App.Rebasable = labels[cnb.RebasableLabel] != "false"
	c.App.RunImageTop = md.RunImage.TopLayer
	for _, id := range cf.RootFS.DiffIDs {
		c.App.Layers = append(c.App.Layers, id.String())
	}
	if d, err := name.NewDigest(md.RunImage.Reference, name.WeakValidation); err == nil {
		c.App.RunImageDigest = d.DigestStr()
	}
	c.App.RunImageName = run.Image
	c.App.RunImageMirrors = run.Mirrors
	c.RecordedRef = md.RunImage.Reference
	c.Source = cnb.Source(labels)
	c.App.BaseID = cnb.BaseID(labels)
	build, err := cnb.BuildMetadata(labels)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if build != nil {
		for _, bp := range build.Buildpacks {
			c.App.Buildpacks = append(c.App.Buildpacks, BuildpackRef{bp.ID, bp.Version})
		}
	}
	// The rebaser runs at cipack's own platform API; a malformed recorded
	// one still means the metadata cannot be trusted.
	for _, e := range cf.Config.Env {
		if v, ok := strings.CutPrefix(e, "CNB_PLATFORM_API="); ok {
			if _, err := api.NewVersion(v); err != nil {
				return nil, fmt.Errorf("%s: recorded platform API %q: %w", what, v, err)
			}
		}
	}
	return c, nil
}

// ReadRunImage reads a run image's config (one platform's image): its top
// layer, base and platform.
func ReadRunImage(ref, digest string, img v1.Image) (RunImage, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return RunImage{}, fmt.Errorf("run image %s: read config: %w", ref, err)
	}
	r := RunImage{Ref: ref, Digest: digest, Layers: []string{}}
	for _, id := range cf.RootFS.DiffIDs {
		r.Layers = append(r.Layers, id.String())
	}
	if n := len(r.Layers); n > 0 {
		r.TopLayer = r.Layers[n-1]
	}
	r.BaseID = cnb.BaseID(cf.Config.Labels)
	r.Target = cnb.Target(cf)
	return r, nil
}

// ReadBuilder reads a builder's buildpacks from its labels.
func ReadBuilder(ctx context.Context, reg Reader, ref name.Reference) (*Builder, error) {
	_, cf, err := reg.Config(ctx, ref)
	if err != nil {
		return nil, err
	}
	b := &Builder{Ref: ref.String(), Buildpacks: map[string][]string{}}
	layers, err := cnb.BuildpackLayers(cf.Config.Labels)
	if err != nil {
		return nil, fmt.Errorf("builder %s: %w", ref, err)
	}
	if layers != nil {
		b.Buildpacks = layers
		return b, nil
	}
	md, err := cnb.Builder(cf.Config.Labels)
	if err != nil {
		return nil, fmt.Errorf("builder %s: %w", ref, err)
	}
	if md == nil {
		return nil, fmt.Errorf("builder %s has neither %s nor %s: is it a CNB builder?", ref, cnb.BuildpackLayersLabel, cnb.BuilderMetadataLabel)
	}
	for _, bp := range md.Buildpacks {
		b.Buildpacks[bp.ID] = append(b.Buildpacks[bp.ID], bp.Version)
	}
	return b, nil
}
