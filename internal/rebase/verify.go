package rebase

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/registry"
)

// ErrNotARebase marks two digests that are not the same build on two run
// images: a plan or a rollback record (files and artifacts anyone with
// write access could have altered) named a digest that is not what a
// rebase or its undo would produce.
var ErrNotARebase = fmt.Errorf("not a rebase of the same build")

// VerifySameBuild checks that digests a and b of repo are the same build
// on (possibly) different run images, as a rebase leaves them: for each
// platform, the same app layers above the run image, the same build and
// project metadata and the same entrypoint; children that are not CNB
// images byte for byte the same. Manifests and configs are read, never a
// layer.
func VerifySameBuild(ctx context.Context, reg Reader, repo name.Repository, a, b string) error {
	if a == b {
		return nil
	}
	x, err := Inspect(ctx, reg, repo.Digest(a))
	if err != nil {
		return err
	}
	y, err := Inspect(ctx, reg, repo.Digest(b))
	if err != nil {
		return err
	}
	if (x.Index == nil) != (y.Index == nil) || len(x.Children) != len(y.Children) {
		return fmt.Errorf("%s and %s: one is an index, or their platforms differ: %w", short(a), short(b), ErrNotARebase)
	}
	for i, cx := range x.Children {
		cy := y.Children[i]
		if err := sameChild(cx, cy); err != nil {
			return fmt.Errorf("%s and %s (%s): %v: %w", short(a), short(b), registry.PlatformString(cx.Platform), err, ErrNotARebase)
		}
	}
	return nil
}

// sameChild compares two children at the same position of their indexes
// (a rebase keeps the order).
func sameChild(x, y *Child) error {
	if x.Other || y.Other {
		if x.Descriptor.Digest != y.Descriptor.Digest {
			return fmt.Errorf("a kept child differs")
		}
		return nil
	}
	if registry.PlatformString(x.Platform) != registry.PlatformString(y.Platform) {
		return fmt.Errorf("platforms differ")
	}
	ax, err := appPart(x)
	if err != nil {
		return err
	}
	ay, err := appPart(y)
	if err != nil {
		return err
	}
	if !slices.Equal(ax, ay) {
		return fmt.Errorf("their app layers or config differ")
	}
	return nil
}

// appPart is what a rebase keeps of a CNB image: the layers above the run
// image's top layer and the whole config — env, command, entrypoint,
// user, working dir, every label — but for the run image's part of the
// lifecycle metadata, the only thing the lifecycle's rebaser rewrites
// (go-containerregistry's Rebase keeps the original config).
func appPart(c *Child) ([]string, error) {
	m, err := c.Image.Manifest()
	if err != nil {
		return nil, err
	}
	cf, err := c.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	top := slices.IndexFunc(cf.RootFS.DiffIDs, func(h v1.Hash) bool { return h.String() == c.App.RunImageTop })
	if top < 0 || len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("the run image's top layer %s is not among its layers", short(c.App.RunImageTop))
	}
	md, err := cnb.LifecycleMetadata(cf.Config.Labels)
	if err != nil || md == nil {
		return nil, fmt.Errorf("no lifecycle metadata: %v", err)
	}
	md.RunImage, md.Stack = files.RunImageForRebase{}, nil
	config := *cf.Config.DeepCopy()
	delete(config.Labels, cnb.LifecycleMetadataLabel)
	kept, err := json.Marshal(struct {
		Config   v1.Config
		Metadata *files.LayersMetadataCompat
	}{config, md})
	if err != nil {
		return nil, err
	}
	out := []string{string(kept)}
	for _, l := range m.Layers[top+1:] {
		out = append(out, l.Digest.String())
	}
	return out, nil
}
