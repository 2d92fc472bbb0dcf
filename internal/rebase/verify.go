package rebase

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
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
	// An index keeps its media type; a single image's may change (the
	// lifecycle exports Docker's, a rebase may write OCI's).
	if (x.Index == nil) != (y.Index == nil) || len(x.Children) != len(y.Children) || (x.Index != nil && x.Desc.MediaType != y.Desc.MediaType) {
		return fmt.Errorf("%s and %s: one is an index, or their media types or platforms differ: %w", short(a), short(b), ErrNotARebase)
	}
	if x.Index != nil {
		// A rebase keeps the index's annotations as they were.
		xm, err := x.Index.IndexManifest()
		if err != nil {
			return err
		}
		ym, err := y.Index.IndexManifest()
		if err != nil {
			return err
		}
		if !maps.Equal(xm.Annotations, ym.Annotations) {
			return fmt.Errorf("%s and %s: their index annotations differ: %w", short(a), short(b), ErrNotARebase)
		}
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
		// Kept byte for byte, entry included (platform, annotations).
		if x.Other != y.Other || !reflect.DeepEqual(x.Descriptor, y.Descriptor) {
			return fmt.Errorf("a kept child differs")
		}
		return nil
	}
	// A rebased child's entry keeps everything but its digest and size;
	// and its config says the platform its entry says.
	if !sameEntry(x, y) || !sameConfigPlatform(x) || !sameConfigPlatform(y) || x.Platform.Variant != y.Platform.Variant {
		return fmt.Errorf("their index entries or platforms differ")
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

// verifyBase checks that every CNB child of digest sits exactly on the
// run image runFor names for it (read now, for the child's platform): its
// layers up to the recorded top layer are that image's layers, so nothing
// hides below the app under a base the image declares itself.
func verifyBase(ctx context.Context, reg Reader, repo name.Repository, digest string, runFor func(*Child) (name.Reference, error)) error {
	in, err := Inspect(ctx, reg, repo.Digest(digest))
	if err != nil {
		return err
	}
	for _, c := range in.Children {
		if c.Other {
			continue
		}
		run, err := runFor(c)
		if err != nil {
			return err
		}
		_, rcf, err := reg.ConfigFor(ctx, run, c.Platform)
		if err != nil {
			return fmt.Errorf("read run image %s: %w", run, err)
		}
		cf, err := c.Image.ConfigFile()
		if err != nil {
			return err
		}
		if !SitsOn(diffIDs(cf), c.App.RunImageTop, diffIDs(rcf)) {
			return fmt.Errorf("%s (%s) is not on run image %s as it is now: %w", short(digest), registry.PlatformString(c.Platform), run, ErrNotARebase)
		}
	}
	return nil
}

func diffIDs(cf *v1.ConfigFile) []string {
	out := make([]string, len(cf.RootFS.DiffIDs))
	for i, h := range cf.RootFS.DiffIDs {
		out[i] = h.String()
	}
	return out
}

// sameEntry compares two index entries but for digest and size; a single
// image's own descriptor (no platform) says nothing more, and its media
// type may change across a rebase (Docker's from the lifecycle, OCI's).
func sameEntry(x, y *Child) bool {
	if x.Descriptor.Platform == nil && y.Descriptor.Platform == nil {
		return true
	}
	dx, dy := x.Descriptor, y.Descriptor
	dx.Digest, dx.Size, dy.Digest, dy.Size = v1.Hash{}, 0, v1.Hash{}, 0
	return reflect.DeepEqual(dx, dy)
}

// sameConfigPlatform reports whether a child's config is for the platform
// its index entry names (a single image's entry has none).
func sameConfigPlatform(c *Child) bool {
	p := c.Descriptor.Platform
	if p == nil {
		return true
	}
	cf, err := c.Image.ConfigFile()
	// os and architecture only: variants and OS versions in entries and
	// configs disagree in many real indexes (arm64 "v8" in one of them).
	return err == nil && cf.OS == p.OS && cf.Architecture == p.Architecture
}
