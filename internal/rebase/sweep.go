package rebase

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/buildpacks/lifecycle/platform"
	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Target is one image to keep patched, with its settings resolved (the
// fleet file's entry over its defaults: package config translates the
// file into these; the engine never sees the file's schema).
type Target struct {
	// Image is the tag whose digest is checked and moved.
	Image string
	// Tags must always point at the same digest as Image.
	Tags []string
	// Builder whose buildpacks the image is compared with; empty: only
	// the run image is watched.
	Builder string
	// RunImage overrides the run image the image records.
	RunImage        string
	RunImageMirrors []string
	// AllowRunImageRename lets a rebase move the image onto a run image
	// whose name is neither the recorded one nor one of its mirrors.
	AllowRunImageRename bool
	// Trigger starts the app's own rebuild; nil: none.
	Trigger *Trigger
}

// Trigger says how to start an app's own rebuild.
type Trigger struct {
	Webhook *Hook
}

// Hook is a webhook to POST a rebuild request to.
type Hook struct {
	URL string
	// TokenEnv names the variable holding a bearer token.
	TokenEnv string
	// EventType, when set, wraps the payload as GitHub's
	// repository_dispatch body.
	EventType string
}

// Options of one sweep.
type Options struct {
	DryRun bool
	Jobs   int
	// Changed, when set, are run images just pushed: an image on another
	// is reported NOT_AFFECTED once inspected, and nothing more of it is
	// read.
	Changed []string
	// Stage pushes rebased images by digest only: no tag moves, no
	// trigger is called; the report is the plan --promote applies.
	Stage bool
}

// Deps are the sweep's seams: registry access, the trigger, logs.
type Deps struct {
	Registry Registry
	Trigger  Triggerer
	Log      io.Writer
}

// Outcome is what happened to one image.
type Outcome struct {
	Image     string   `json:"image"`
	Verdict   Verdict  `json:"verdict"`
	Reason    string   `json:"reason,omitempty"`
	Detail    string   `json:"detail,omitempty"`
	OldDigest string   `json:"oldDigest,omitempty"`
	NewDigest string   `json:"newDigest,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	RunImage  string   `json:"runImage,omitempty"`
	Builder   string   `json:"builder,omitempty"`
	Triggered bool     `json:"triggered,omitempty"`
	// Source is where the image was built from (its project metadata).
	Source string `json:"source,omitempty"`
	// Platforms details an index, one entry per platform's image.
	Platforms []PlatformOutcome `json:"platforms,omitempty"`
	Applied   bool              `json:"applied"`
	// Staged marks a candidate (NewDigest) pushed by --stage; Seen is
	// where the image's tag and each of Tags pointed then: --promote
	// moves only tags that still point there.
	Staged   bool              `json:"staged,omitempty"`
	Seen     map[string]string `json:"seen,omitempty"`
	Error    string            `json:"error,omitempty"`
	Duration time.Duration     `json:"duration_ns"`
}

// Failed reports whether the image needs attention.
func (o Outcome) Failed() bool { return o.Error != "" }

// Sweep checks every target with at most opts.Jobs in flight. One image's
// failure never stops the others. Each unique run image and builder is
// looked up once per sweep, however many images share it.
func Sweep(ctx context.Context, targets []Target, opts Options, d Deps) []Outcome {
	jobs := opts.Jobs
	if jobs < 1 {
		jobs = 1
	}
	s := &sweep{opts: opts, d: d}
	out := make([]Outcome, len(targets))
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			out[i] = s.one(ctx, t)
			out[i].Duration = time.Since(start)
		}()
	}
	wg.Wait()
	return out
}

type sweep struct {
	opts Options
	d    Deps
	// Lookups shared by all images of a sweep, each done at most once.
	runManifests memo[*remote.Descriptor] // run image → its manifest (one GET)
	runConfigs   memo[runConfig]          // run image (one platform) → config
	builders     memo[*Builder]           // builder → its buildpacks
	// recorded run image (by digest, one platform) → its layers
	recordedBases memo[[]string]
}

type runConfig struct {
	state RunImage
	img   v1.Image
}

// memo runs a lookup once per key, however many goroutines ask.
type memo[T any] struct {
	mu sync.Mutex
	m  map[string]*memoEntry[T]
}

type memoEntry[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (m *memo[T]) get(key string, lookup func() (T, error)) (T, error) {
	m.mu.Lock()
	if m.m == nil {
		m.m = map[string]*memoEntry[T]{}
	}
	e, ok := m.m[key]
	if !ok {
		e = &memoEntry[T]{}
		m.m[key] = e
	}
	m.mu.Unlock()
	e.once.Do(func() { e.v, e.err = lookup() })
	return e.v, e.err
}

func (s *sweep) one(ctx context.Context, t Target) Outcome {
	o := Outcome{Image: t.Image, Builder: t.Builder}
	fail := func(err error) Outcome {
		o.Verdict, o.Error = Failed, err.Error()
		return o
	}
	ref, err := s.d.Registry.Parse(t.Image)
	if err != nil {
		return fail(fmt.Errorf("invalid image reference: %w", err))
	}
	if _, isTag := ref.(name.Tag); !isTag {
		return fail(fmt.Errorf("%s is a digest: list a tag, cipack moves it", t.Image))
	}
	in, err := Inspect(ctx, s.d.Registry, ref)
	if err != nil {
		return fail(err)
	}
	o.OldDigest = in.Digest
	if len(s.opts.Changed) > 0 && in.CNB() {
		if ok, run := affected(in, t, s.opts.Changed); !ok {
			o.Verdict, o.Reason, o.RunImage = Skipped, ReasonNotAffected, run
			o.Detail = fmt.Sprintf("its run image %s is not one that changed", run)
			return o
		}
	}
	seen, tags, err := s.readTags(ctx, in, t.Tags)
	if err != nil {
		return fail(err)
	}
	if !in.CNB() {
		d := Decide(AppImage{}, RunImage{}, nil)
		o.Verdict, o.Reason, o.Detail = d.Verdict, d.Reason, d.Detail
		return o
	}
	var builder *Builder
	if t.Builder != "" {
		if builder, err = s.builder(ctx, t.Builder); err != nil {
			return fail(err)
		}
	}

	// Decide each platform's image against the run image of its own
	// platform; children that are not CNB images are kept as they are.
	var decided []ChildDecision
	var plans []ChildPlan
	for _, c := range in.Children {
		if c.Other {
			continue
		}
		cd, plan, err := s.decideChild(ctx, in, c, t, builder)
		if err != nil {
			return fail(err)
		}
		if o.RunImage == "" {
			o.RunImage = cd.RunImage
		}
		if o.Source == "" {
			o.Source = c.Source
		}
		decided = append(decided, cd)
		if plan != nil {
			plans = append(plans, *plan)
		}
	}
	dec := WithTags(Combine(decided), Diverged(in.Digest, tags, seen))
	o.Verdict, o.Reason, o.Detail = dec.Verdict, dec.Reason, dec.Detail
	if in.Index != nil {
		o.Platforms = platformOutcomes(decided)
	}
	if dec.Verdict == Failed {
		// Its records cannot be trusted: nothing is done with them.
		o.Error = dec.Detail
		return o
	}
	if s.opts.DryRun {
		return o
	}
	if s.opts.Stage {
		return s.stage(ctx, o, in, plans, tags, seen)
	}
	switch {
	case dec.Reason == ReasonTagsDiverged:
		applied, err := Converge(ctx, s.d.Registry, Plan{App: in, Tags: tags, Seen: seen})
		if err != nil {
			return fail(err)
		}
		o.NewDigest, o.Tags, o.Applied = applied.Digest, applied.Tags, true
	case dec.Verdict == Rebase:
		applied, err := Apply(ctx, s.d.Registry, Plan{App: in, Rebase: plans, Tags: tags, Seen: seen}, s.d.Log)
		if err != nil {
			return fail(err)
		}
		o.NewDigest, o.Tags, o.Applied = applied.Digest, applied.Tags, true
		for i := range o.Platforms {
			if nd, ok := applied.Children[o.Platforms[i].OldDigest]; ok {
				o.Platforms[i].NewDigest = nd
			}
		}
	case dec.Verdict == Rebuild:
		if t.Trigger == nil || s.d.Trigger == nil {
			o.Detail += " (no trigger configured: rebuild it yourself)"
			return o
		}
		err := s.d.Trigger.Trigger(ctx, *t.Trigger, Payload{
			Image: t.Image, Digest: in.Digest, Verdict: string(dec.Verdict), Reason: dec.Reason,
			Detail: dec.Detail, Builder: t.Builder, RunImage: o.RunImage,
		})
		if err != nil {
			return fail(fmt.Errorf("trigger rebuild: %w", err))
		}
		o.Triggered, o.Applied = true, true
	}
	return o
}

// stage pushes a rebase's result as a candidate, by digest; anything else
// (a converge, a rebuild) is reported, not done: a staged sweep changes
// nothing anyone runs.
func (s *sweep) stage(ctx context.Context, o Outcome, in *Inspected, plans []ChildPlan, tags []string, seen map[string]string) Outcome {
	if o.Verdict != Rebase || o.Reason == ReasonTagsDiverged {
		if o.Verdict == Rebuild || o.Reason == ReasonTagsDiverged {
			o.Detail += " (staged sweep: nothing done)"
		}
		return o
	}
	if err := splitSameBuild(ctx, s.d.Registry, in, seen); err != nil {
		o.Verdict, o.Reason, o.Error = Failed, ReasonTagsDiverged, err.Error()
		return o
	}
	applied, err := Stage(ctx, s.d.Registry, Plan{App: in, Rebase: plans, Tags: tags, Seen: seen}, s.d.Log)
	if err != nil {
		o.Verdict, o.Error = Failed, err.Error()
		return o
	}
	o.NewDigest, o.Tags, o.Staged, o.Seen = applied.Digest, tags, true, seen
	return o
}

// splitSameBuild checks a tag set a killed promote (or sweep) left split
// before staging a candidate for all of it: the promote moves every tag
// to the candidate, and verifies it against each digest they hold, so a
// tag on another build than the image's is refused now, naming it.
func splitSameBuild(ctx context.Context, reg Reader, in *Inspected, seen map[string]string) error {
	for tag, d := range seen {
		if d == "" || d == in.Digest {
			continue
		}
		if err := VerifySameBuild(ctx, reg, in.Ref.Context(), in.Digest, d); err != nil {
			return fmt.Errorf("%s holds %s, not a build of %s (%s): %w; the staged sweep pushed nothing for it: move %s yourself, or converge with a sweep without --stage", tag, short(d), in.Ref, short(in.Digest), err, tag)
		}
	}
	return nil
}

// decideChild decides one platform's image, and plans its rebase when
// that is the verdict.
func (s *sweep) decideChild(ctx context.Context, in *Inspected, c *Child, t Target, builder *Builder) (ChildDecision, *ChildPlan, error) {
	cd := ChildDecision{Platform: registry.PlatformString(c.Platform), Digest: c.App.Digest}
	if !c.App.HasCNBMetadata {
		cd.Decision = Decide(c.App, RunImage{}, nil)
		return cd, nil, nil
	}
	runName := pickRunImage(in, c, t)
	if runName == "" {
		return cd, nil, fmt.Errorf("%s records no run image and the fleet entry sets no runImage", c.App.Ref)
	}
	cd.RunImage = runName
	runRef, err := s.d.Registry.Parse(runName)
	if err != nil {
		return cd, nil, fmt.Errorf("run image %q: %w", runName, err)
	}
	run, runImg, err := s.runImage(ctx, runRef, c)
	if err != nil {
		return cd, nil, err
	}
	// A name the image records by digest never moves (the fleet's own
	// runImage is the user's choice, pinned or not).
	_, isDigest := runRef.(name.Digest)
	run.Pinned = isDigest && t.RunImage == ""
	app, err := s.withRecordedBase(ctx, c, run, runRef)
	if err != nil {
		return cd, nil, err
	}
	cd.Decision = Decide(app, run, builder)
	if cd.Verdict != Rebase {
		return cd, nil, nil
	}
	force, err := NamePolicy(c.App, runName, t.AllowRunImageRename)
	if err != nil {
		return cd, nil, err
	}
	return cd, &ChildPlan{Child: c, RunImageRef: runRef, RunImage: runImg, Force: force}, nil
}

// withRecordedBase is c's app image with the layers of the run image it
// records (RecordedBase), read only where the run image's top layer moved:
// that is where a rebase would keep every layer above the recorded top.
func (s *sweep) withRecordedBase(ctx context.Context, c *Child, run RunImage, runRef name.Reference) (AppImage, error) {
	app := c.App
	if run.Layers == nil || run.Missing || run.TopLayer == app.RunImageTop {
		return app, nil
	}
	var err error
	app.RecordedBase, err = s.recordedBase(ctx, c, runRef)
	return app, err
}

// recordedBase reads the layers of the run image child c records by
// digest (runImage.reference), once per digest and platform per sweep:
// from the repository of the run image being checked (runRef: a digest
// names the same layers in every repository), or from the recorded
// reference where it is in the recorded run image's repository. Not any
// other: a recorded reference is a label, and a base made of the image's
// own lower layers could be pushed anywhere. Empty when the image
// records no digest.
func (s *sweep) recordedBase(ctx context.Context, c *Child, runRef name.Reference) ([]string, error) {
	if c.App.RunImageDigest == "" {
		return []string{}, nil
	}
	refs := []name.Reference{runRef.Context().Digest(c.App.RunImageDigest)}
	if r, err := s.d.Registry.Parse(c.RecordedRef); err == nil && r.Context().String() != runRef.Context().String() && sameRepo(s.d.Registry, r, c.App.RunImageName) {
		refs = append(refs, r)
	}
	key := refs[0].String() + " " + registry.PlatformString(c.Platform)
	return s.recordedBases.get(key, func() ([]string, error) {
		var first error
		for _, r := range refs {
			_, cf, err := s.d.Registry.ConfigFor(ctx, r, c.Platform)
			if err == nil {
				return diffIDs(cf), nil
			}
			if first == nil {
				first = err
			}
		}
		return nil, fmt.Errorf("%s: the run image it records, %s, cannot be read (%w): its base layers cannot be checked before a rebase; rebuild it", c.App.Ref, c.RecordedRef, first)
	})
}

// sameRepo reports whether r is in the repository of the image named.
func sameRepo(reg Reader, r name.Reference, image string) bool {
	ir, err := reg.Parse(image)
	return err == nil && ir.Context().String() == r.Context().String()
}

// readTags reads where the image's fleet tags point (one HEAD each), so
// that tags a killed sweep left behind are found, and a tag that moves
// before the rebase lands is not overwritten. It returns reference →
// digest ("" for absent), the image's own included, and the tags in their
// canonical form.
func (s *sweep) readTags(ctx context.Context, in *Inspected, tags []string) (map[string]string, []string, error) {
	refs := make([]name.Reference, 0, len(tags))
	var out []string
	for _, t := range tags {
		r, err := s.d.Registry.Parse(t)
		if err != nil {
			return nil, nil, fmt.Errorf("tag %q: %w", t, err)
		}
		refs = append(refs, r)
		out = append(out, r.String())
	}
	seen, err := s.d.Registry.TagDigests(ctx, refs)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet tags: %w", err)
	}
	seen[in.Ref.String()] = in.Digest
	return seen, out, nil
}

// pickRunImage chooses which run image name to check for child c: the
// fleet's override, else the lifecycle's own choice
// (platform.BestRunImageMirrorFor: a name in the app's registry first,
// then the recorded name) among the recorded name and the mirrors the
// fleet trusts (trustedMirrors). Access is not probed here (the check
// always says yes): the read that follows finds out, with a better error.
func pickRunImage(in *Inspected, c *Child, t Target) string {
	if t.RunImage != "" {
		return t.RunImage
	}
	md := files.RunImageForExport{Image: c.App.RunImageName, Mirrors: trustedMirrors(c.App.RunImageMirrors, t)}
	if md.Image == "" {
		return ""
	}
	if len(md.Mirrors) == 0 {
		// Nothing to choose from; BestRunImageMirrorFor would also build a
		// keychain (reading the docker config) for each image of a sweep.
		return md.Image
	}
	best, err := platform.BestRunImageMirrorFor(in.Ref.Context().RegistryStr(), md, func(string, authn.Keychain) (bool, error) { return true, nil })
	if err != nil {
		return md.Image
	}
	return best
}

// trustedMirrors are the mirrors a sweep may check instead of the
// recorded run image: those the image records that the fleet lists too
// (runImageMirrors, its defaults included). The recorded list alone is a
// label build code can write: a frozen copy in the app's registry, named
// there, would be preferred and keep the image "up-to-date" forever. The
// fleet's other mirrors are candidates only when the entry allows
// renaming: rebasing onto a name the image does not record rewrites its
// metadata.
func trustedMirrors(recorded []string, t Target) []string {
	fleet := files.RunImageForExport{Mirrors: t.RunImageMirrors}
	var out []string
	for _, m := range recorded {
		if fleet.Contains(m) {
			out = append(out, m)
		}
	}
	if t.AllowRunImageRename {
		out = append(out, t.RunImageMirrors...)
	}
	return out
}

// runImage returns the run image's state for child c's platform: one
// GET of its manifest per run image per sweep; for an index, the child of
// c's own platform (os, architecture, variant), never a default; its
// config once per digest.
func (s *sweep) runImage(ctx context.Context, ref name.Reference, c *Child) (RunImage, v1.Image, error) {
	key := ref.String()
	// A GET, not a HEAD: the config is read anyway (the layers are
	// checked), and the manifest names it, so a HEAD would be a third
	// request per run image.
	desc, err := s.runManifests.get(key, func() (*remote.Descriptor, error) {
		desc, err := s.d.Registry.Get(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("run image: %w", err)
		}
		return desc, nil
	})
	if err != nil {
		return RunImage{}, nil, err
	}
	digest := desc.Digest.String()
	platform := registry.PlatformString(c.Platform)
	var fromIndex v1.ImageIndex
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return RunImage{}, nil, fmt.Errorf("run image %s: %w", key, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return RunImage{}, nil, fmt.Errorf("run image %s: %w", key, err)
		}
		child := ""
		for _, m := range im.Manifests {
			if m.Platform != nil && m.MediaType.IsImage() && registry.SamePlatform(*m.Platform, c.Platform) {
				child = m.Digest.String()
				break
			}
		}
		if child == "" {
			return RunImage{Ref: key, Digest: digest, Missing: true, Platform: platform}, nil, nil
		}
		digest, fromIndex = child, idx
	}
	// Read even when the image records exactly this digest: its layers
	// are checked against the run image's (a record is a label, and build
	// code can write labels). Once per run image digest per sweep.
	cfg, err := s.runConfigs.get(key+"@"+digest, func() (runConfig, error) {
		var img v1.Image
		var err error
		if fromIndex != nil {
			img, err = fromIndex.Image(v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(digest, "sha256:")})
		} else {
			img, err = desc.Image()
		}
		if err != nil {
			return runConfig{}, fmt.Errorf("run image %s: %w", key, err)
		}
		state, err := ReadRunImage(key, digest, img)
		return runConfig{state, img}, err
	})
	return cfg.state, cfg.img, err
}

func (s *sweep) builder(ctx context.Context, ref string) (*Builder, error) {
	return s.builders.get(ref, func() (*Builder, error) {
		r, err := s.d.Registry.Parse(ref)
		if err != nil {
			return nil, fmt.Errorf("builder %q: %w", ref, err)
		}
		b, err := ReadBuilder(ctx, s.d.Registry, r)
		if err != nil {
			return nil, fmt.Errorf("builder: %w", err)
		}
		return b, nil
	})
}
