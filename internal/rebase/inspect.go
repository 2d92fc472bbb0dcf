package rebase

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/registry"
)

// CNB labels read here (platform spec).
const (
	labelLifecycle   = "io.buildpacks.lifecycle.metadata"
	labelBuild       = "io.buildpacks.build.metadata"
	labelRebasable   = "io.buildpacks.rebasable"
	labelBaseID      = "io.buildpacks.base.id"
	labelStackID     = "io.buildpacks.stack.id"
	labelBuilderMD   = "io.buildpacks.builder.metadata"
	labelBuilderBPs  = "io.buildpacks.buildpack.layers"
	envPlatformAPI   = "CNB_PLATFORM_API"
	defaultAPIForOld = "0.12"
)

type runImageMD struct {
	TopLayer  string   `json:"topLayer"`
	Reference string   `json:"reference"`
	Image     string   `json:"image"`
	Mirrors   []string `json:"mirrors"`
}

type lifecycleMD struct {
	RunImage runImageMD `json:"runImage"`
	Stack    *struct {
		RunImage runImageMD `json:"runImage"`
	} `json:"stack"`
}

// Inspected is an app image as read from the registry: manifest and
// config only, never a layer.
type Inspected struct {
	App         AppImage
	Image       v1.Image
	Ref         name.Reference
	RecordedRef string // runImage.reference: the run image digest it was built on
	PlatformAPI string
}

// Inspect reads ref's manifest and config and its CNB metadata.
func Inspect(ctx context.Context, reg *registry.Client, ref name.Reference) (*Inspected, error) {
	img, cf, err := reg.Config(ctx, ref)
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("digest of %s: %w", ref, err)
	}
	in := &Inspected{Image: img, Ref: ref, App: AppImage{Ref: ref.String(), Digest: digest.String(), OS: cf.OS, Arch: cf.Architecture}}
	labels := cf.Config.Labels
	raw, ok := labels[labelLifecycle]
	if !ok {
		return in, nil
	}
	var md lifecycleMD
	if err := json.Unmarshal([]byte(raw), &md); err != nil {
		return nil, fmt.Errorf("%s: label %s is not valid JSON: %w", ref, labelLifecycle, err)
	}
	run := md.RunImage
	if run.Image == "" && md.Stack != nil {
		run.Image, run.Mirrors = md.Stack.RunImage.Image, md.Stack.RunImage.Mirrors
	}
	in.App.HasCNBMetadata = true
	in.App.Rebasable = labels[labelRebasable] != "false"
	in.App.RunImageTop = run.TopLayer
	in.App.RunImageName = run.Image
	in.App.RunImageMirrors = run.Mirrors
	in.RecordedRef = run.Reference
	in.App.BaseID = labels[labelBaseID]
	if in.App.BaseID == "" {
		in.App.BaseID = labels[labelStackID]
	}
	var build struct {
		Buildpacks []struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"buildpacks"`
	}
	if raw := labels[labelBuild]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &build); err != nil {
			return nil, fmt.Errorf("%s: label %s is not valid JSON: %w", ref, labelBuild, err)
		}
	}
	for _, bp := range build.Buildpacks {
		in.App.Buildpacks = append(in.App.Buildpacks, BuildpackRef{bp.ID, bp.Version})
	}
	in.PlatformAPI = defaultAPIForOld
	for _, e := range cf.Config.Env {
		if v, ok := strings.CutPrefix(e, envPlatformAPI+"="); ok {
			in.PlatformAPI = v
		}
	}
	return in, nil
}

// ReadRunImage reads a run image's config: its top layer and base.
func ReadRunImage(ctx context.Context, reg *registry.Client, ref name.Reference, digest string) (RunImage, v1.Image, error) {
	img, cf, err := reg.Config(ctx, ref)
	if err != nil {
		return RunImage{}, nil, err
	}
	r := RunImage{Ref: ref.String(), Digest: digest, OS: cf.OS, Arch: cf.Architecture}
	if n := len(cf.RootFS.DiffIDs); n > 0 {
		r.TopLayer = cf.RootFS.DiffIDs[n-1].String()
	}
	r.BaseID = cf.Config.Labels[labelBaseID]
	if r.BaseID == "" {
		r.BaseID = cf.Config.Labels[labelStackID]
	}
	return r, img, nil
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
