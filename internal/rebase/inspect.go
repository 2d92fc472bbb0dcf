package rebase

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/buildpacks/lifecycle/api"
	"github.com/buildpacks/lifecycle/platform"
	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/registry"
)

// Builder labels: pack writes them, the lifecycle defines no constant.
const (
	labelBuilderMD  = "io.buildpacks.builder.metadata"
	labelBuilderBPs = "io.buildpacks.buildpack.layers"
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
func Inspect(ctx context.Context, reg *registry.Client, ref name.Reference) (*Inspected, error) {
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
	c.App.Target = targetOf(cf)
	raw, ok := labels[platform.LifecycleMetadataLabel]
	if !ok {
		return c, nil
	}
	// The lifecycle's own types; the Compat variant because an app layer
	// list's shape has changed across lifecycle versions, and only the run
	// image and stack matter here.
	var md files.LayersMetadataCompat
	if err := json.Unmarshal([]byte(raw), &md); err != nil {
		return nil, fmt.Errorf("%s: label %s is not valid JSON: %w", what, platform.LifecycleMetadataLabel, err)
	}
	run := md.RunImage.RunImageForExport
	if run.Image == "" && md.Stack != nil {
		run = md.Stack.RunImage
	}
	c.App.HasCNBMetadata = true
	c.App.Rebasable = labels[platform.RebasableLabel] != "false"
	c.App.RunImageTop = md.RunImage.TopLayer
	c.App.RunImageName = run.Image
	c.App.RunImageMirrors = run.Mirrors
	c.RecordedRef = md.RunImage.Reference
	c.Source = sourceOf(labels[platform.ProjectMetadataLabel])
	c.App.BaseID = baseID(labels)
	if raw := labels[platform.BuildMetadataLabel]; raw != "" {
		var build files.BuildMetadata
		if err := json.Unmarshal([]byte(raw), &build); err != nil {
			return nil, fmt.Errorf("%s: label %s is not valid JSON: %w", what, platform.BuildMetadataLabel, err)
		}
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
	r := RunImage{Ref: ref, Digest: digest}
	if n := len(cf.RootFS.DiffIDs); n > 0 {
		r.TopLayer = cf.RootFS.DiffIDs[n-1].String()
	}
	r.BaseID = baseID(cf.Config.Labels)
	r.Target = targetOf(cf)
	return r, nil
}

// ReadBuilder reads a builder's buildpacks from its labels.
func ReadBuilder(ctx context.Context, reg *registry.Client, ref name.Reference) (*Builder, error) {
	_, cf, err := reg.Config(ctx, ref)
	if err != nil {
		return nil, err
	}
	b := &Builder{Ref: ref.String(), Buildpacks: map[string][]string{}}
	if raw := cf.Config.Labels[labelBuilderBPs]; raw != "" {
		var layers map[string]map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &layers); err != nil {
			return nil, fmt.Errorf("builder %s: label %s is not valid JSON: %w", ref, labelBuilderBPs, err)
		}
		for id, versions := range layers {
			for v := range versions {
				b.Buildpacks[id] = append(b.Buildpacks[id], v)
			}
			sort.Strings(b.Buildpacks[id])
		}
		return b, nil
	}
	var md struct {
		Buildpacks []struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"buildpacks"`
	}
	raw := cf.Config.Labels[labelBuilderMD]
	if raw == "" {
		return nil, fmt.Errorf("builder %s has neither %s nor %s: is it a CNB builder?", ref, labelBuilderBPs, labelBuilderMD)
	}
	if err := json.Unmarshal([]byte(raw), &md); err != nil {
		return nil, fmt.Errorf("builder %s: label %s is not valid JSON: %w", ref, labelBuilderMD, err)
	}
	for _, bp := range md.Buildpacks {
		b.Buildpacks[bp.ID] = append(b.Buildpacks[bp.ID], bp.Version)
	}
	return b, nil
}

// baseID is the base (formerly stack) an image was built on or is.
func baseID(labels map[string]string) string {
	if id := labels[platform.TargetLabel]; id != "" {
		return id
	}
	return labels[platform.StackIDLabel]
}

// targetOf reads an image's target as the lifecycle's GetTargetMetadata
// does (os, architecture, variant, distro labels), from a config file:
// GetTargetMetadata needs an imgutil.Image, and cipack has only read the
// config.
func targetOf(cf *v1.ConfigFile) files.TargetMetadata {
	t := files.TargetMetadata{OS: cf.OS, Arch: cf.Architecture, ArchVariant: cf.Variant}
	name, hasName := cf.Config.Labels[platform.OSDistroNameLabel]
	version, hasVersion := cf.Config.Labels[platform.OSDistroVersionLabel]
	if hasName || hasVersion {
		t.Distro = &files.OSDistro{Name: name, Version: version}
	}
	t.ID = cf.Config.Labels[platform.TargetLabel]
	return t
}

// sourceOf renders the project metadata label (the lifecycle's type) as
// repository@commit for reports; "" when there is none.
func sourceOf(raw string) string {
	if raw == "" {
		return ""
	}
	var pm files.ProjectMetadata
	if err := json.Unmarshal([]byte(raw), &pm); err != nil || pm.Source == nil {
		return ""
	}
	repo, _ := pm.Source.Metadata["repository"].(string)
	commit, _ := pm.Source.Version["commit"].(string)
	switch {
	case repo != "" && commit != "":
		return repo + "@" + commit
	case commit != "":
		return commit
	}
	return repo
}
