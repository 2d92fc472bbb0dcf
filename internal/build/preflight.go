package build

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

type preflightRefs struct {
	image    name.Reference
	tags     []name.Tag
	runImage name.Reference
	// runDigest is the run image's digest at the preflight (an index's
	// own digest for a multi-arch run image).
	runDigest string
	cache     name.Reference
	// builderAPIs are the platform APIs the --builder image's label lists.
	builderAPIs []string
	// before is what the image and its tags pointed at before the build.
	before tagState
	// recorded and runConfig are read by the preflight for
	// --skip-unchanged, beside its other checks, so that deciding to skip
	// reads nothing more.
	recorded  recordedImage
	runConfig runConfig
}

// written lists the references the build writes: the image, then its tags.
func (p preflightRefs) written() []name.Reference {
	out := []name.Reference{p.image}
	for _, t := range p.tags {
		out = append(out, t)
	}
	return out
}

func (p preflightRefs) all() []name.Reference {
	out := []name.Reference{p.image, p.runImage}
	for _, t := range p.tags {
		out = append(out, t)
	}
	if p.cache != nil {
		out = append(out, p.cache)
	}
	return out
}

// preflight checks, before the lifecycle starts, that the target and cache
// can be pushed, the run image read and (when named) the builder image
// read, so that bad credentials or a typo fail in seconds with nothing
// pushed.
func preflight(ctx context.Context, reg, builderReg *registry.Client, opts Options, b *creator.Builder) (preflightRefs, error) {
	var p preflightRefs
	var err error
	if p.image, err = reg.Parse(opts.Image); err != nil {
		return p, exit.Usagef("--image", "", "invalid image reference %q: %v", opts.Image, err)
	}
	for _, t := range opts.Tags {
		tag, err := ResolveTag(opts.Image, t)
		if err != nil {
			return p, err
		}
		p.tags = append(p.tags, tag)
	}
	runImage := opts.RunImage
	if runImage == "" {
		runImage = b.RunImage.Image
	}
	if runImage == "" {
		return p, exit.Usagef("--run-image", "pass --run-image: the builder has no run.toml or stack.toml", "no run image")
	}
	if p.runImage, err = reg.Parse(runImage); err != nil {
		return p, exit.Usagef("--run-image", "", "invalid run image reference %q: %v", runImage, err)
	}
	if opts.CacheImage != "" {
		if p.cache, err = reg.Parse(opts.CacheImage); err != nil {
			return p, exit.Usagef("--cache-image", "", "invalid cache image reference %q: %v", opts.CacheImage, err)
		}
	}

	pushRepos := map[string]name.Reference{p.image.Context().String(): p.image}
	inputOf := map[string]string{p.image.Context().String(): "--image"}
	for _, t := range p.tags {
		if _, dup := pushRepos[t.Context().String()]; !dup {
			pushRepos[t.Context().String()], inputOf[t.Context().String()] = t, "--tag"
		}
	}
	if p.cache != nil {
		pushRepos[p.cache.Context().String()], inputOf[p.cache.Context().String()] = p.cache, "--cache-image"
	}
	keys := make([]string, 0, len(pushRepos))
	for k := range pushRepos {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// At most a handful of checks (target, tags' repos, cache, run image,
	// builder): run them at once, report the first failure in a stable order.
	errs := make([]error, len(keys)+3)
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { errs[i] = relabel(inputOf[k], reg.CheckPush(ctx, pushRepos[k])) })
	}
	wg.Go(func() { errs[len(keys)] = p.readRunImage(ctx, reg, opts.SkipUnchanged) })
	if opts.SkipUnchanged {
		wg.Go(func() { p.recorded = readRecorded(ctx, reg, p.image) })
	}
	if opts.Builder != "" {
		wg.Go(func() { p.builderAPIs, errs[len(keys)+1] = builderAPIs(ctx, builderReg, opts.Builder) })
	}
	// Where the tags point now: if the build stops half-way, this tells
	// which of them it moved.
	wg.Go(func() { p.before, errs[len(keys)+2] = reg.TagDigests(ctx, p.written()) })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// readRunImage learns the run image's digest (its index's, for a
// multi-arch one) and, for --skip-unchanged, its config on this platform
// from the same manifest.
func (p *preflightRefs) readRunImage(ctx context.Context, reg *registry.Client, skip bool) error {
	if !skip {
		d, err := reg.Head(ctx, p.runImage)
		if err != nil {
			return relabel("--run-image", err)
		}
		p.runDigest = d.Digest.String()
		return nil
	}
	d, err := reg.Get(ctx, p.runImage)
	if err != nil {
		return relabel("--run-image", err)
	}
	p.runDigest = d.Digest.String()
	p.runConfig = readRunConfig(d, p.runImage)
	return nil
}

// builderAPIs reads the platform APIs from the builder image's
// io.buildpacks.builder.metadata label (lifecycle.apis.platform.supported),
// where `pack builder create` records them.
func builderAPIs(ctx context.Context, reg *registry.Client, ref string) ([]string, error) {
	r, err := reg.Parse(ref)
	if err != nil {
		return nil, exit.Usagef("--builder", "", "invalid builder reference %q: %v", ref, err)
	}
	_, cf, err := reg.Config(ctx, r)
	if err != nil {
		return nil, relabel("--builder", registry.BuilderPlatform(err))
	}
	md, err := cnb.Builder(cf.Config.Labels)
	if err != nil {
		return nil, exit.New(exit.Builder, "--builder", fmt.Errorf("%s: %w", ref, err), "name a CNB builder image")
	}
	if md == nil {
		return nil, exit.New(exit.Builder, "--builder", fmt.Errorf("%s has no %s label", ref, cnb.BuilderMetadataLabel), "name a CNB builder image")
	}
	return md.Lifecycle.APIs.Platform.Supported, nil
}

// relabel makes the input the subject of an error about an image, so CI
// reporters can name the input; the image stays in the message.
func relabel(input string, err error) error {
	var e *exit.Error
	if errors.As(err, &e) {
		return &exit.Error{Code: e.Code, Subject: input, Err: fmt.Errorf("%s: %w", e.Subject, e.Err), Hint: e.Hint}
	}
	return err
}
