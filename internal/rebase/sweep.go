package rebase

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/config"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// Target is one image to check, with its fleet settings.
type Target = config.Image

// Options of one sweep.
type Options struct {
	DryRun bool
	Jobs   int
}

// Deps are the sweep's seams: registry access, the trigger, logs.
type Deps struct {
	Registry *registry.Client
	Trigger  Triggerer
	Log      io.Writer
}

// Outcome is what happened to one image.
type Outcome struct {
	Image     string        `json:"image"`
	Verdict   Verdict       `json:"verdict"`
	Reason    string        `json:"reason,omitempty"`
	Detail    string        `json:"detail,omitempty"`
	OldDigest string        `json:"oldDigest,omitempty"`
	NewDigest string        `json:"newDigest,omitempty"`
	Tags      []string      `json:"tags,omitempty"`
	RunImage  string        `json:"runImage,omitempty"`
	Builder   string        `json:"builder,omitempty"`
	Triggered bool          `json:"triggered,omitempty"`
	Applied   bool          `json:"applied"`
	Error     string        `json:"error,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
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
	runDigests memo[string]    // run image → digest (one HEAD)
	runConfigs memo[runConfig] // run image → config, only when needed
	builders   memo[*Builder]  // builder → its buildpacks
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
	o.OldDigest = in.App.Digest
	seen, tags, err := s.readTags(ctx, in, t.Tags)
	if err != nil {
		return fail(err)
	}
	if !in.App.HasCNBMetadata {
		d := Decide(in.App, RunImage{}, nil)
		o.Verdict, o.Reason, o.Detail = d.Verdict, d.Reason, d.Detail
		return o
	}

	runName := pickRunImage(in, t)
	if runName == "" {
		return fail(fmt.Errorf("the image records no run image and the fleet entry sets no runImage"))
	}
	o.RunImage = runName
	runRef, err := s.d.Registry.Parse(runName)
	if err != nil {
		return fail(fmt.Errorf("run image %q: %w", runName, err))
	}
	run, runImg, err := s.runImage(ctx, runRef, in)
	if err != nil {
		return fail(err)
	}
	var builder *Builder
	if t.Builder != "" {
		if builder, err = s.builder(ctx, t.Builder); err != nil {
			return fail(err)
		}
	}

	dec := WithTags(Decide(in.App, run, builder), Diverged(in.App.Digest, tags, seen))
	o.Verdict, o.Reason, o.Detail = dec.Verdict, dec.Reason, dec.Detail
	if s.opts.DryRun {
		return o
	}
	switch {
	case dec.Reason == ReasonTagsDiverged:
		applied, err := Converge(ctx, s.d.Registry, Plan{App: in, Tags: tags, Seen: seen})
		if err != nil {
			return fail(err)
		}
		o.NewDigest, o.Tags, o.Applied = applied.Digest, applied.Tags, true
	case dec.Verdict == Rebase:
		force, err := NamePolicy(in.App, runName, t.AllowRunImageRename)
		if err != nil {
			return fail(err)
		}
		applied, err := Apply(ctx, s.d.Registry, Plan{App: in, RunImageRef: runRef, RunImage: runImg, Force: force, Tags: tags, Seen: seen}, s.d.Log)
		if err != nil {
			return fail(err)
		}
		o.NewDigest, o.Tags, o.Applied = applied.Digest, applied.Tags, true
	case dec.Verdict == Rebuild:
		if t.Trigger == nil || s.d.Trigger == nil {
			o.Detail += " (no trigger configured: rebuild it yourself)"
			return o
		}
		err := s.d.Trigger.Trigger(ctx, *t.Trigger, Payload{
			Image: t.Image, Digest: in.App.Digest, Verdict: string(dec.Verdict), Reason: dec.Reason,
			Detail: dec.Detail, Builder: t.Builder, RunImage: runName,
		})
		if err != nil {
			return fail(fmt.Errorf("trigger rebuild: %w", err))
		}
		o.Triggered, o.Applied = true, true
	}
	return o
}

// readTags reads where the image's fleet tags point (one HEAD each), so
// that tags a killed sweep left behind are found, and a tag that moves
// before the rebase lands is not overwritten. It returns reference →
// digest ("" for absent), the image's own included, and the tags in their
// canonical form.
func (s *sweep) readTags(ctx context.Context, in *Inspected, tags []string) (map[string]string, []string, error) {
	seen := map[string]string{in.Ref.String(): in.App.Digest}
	var out []string
	for _, t := range tags {
		r, err := s.d.Registry.Parse(t)
		if err != nil {
			return nil, nil, fmt.Errorf("tag %q: %w", t, err)
		}
		out = append(out, r.String())
		d, err := s.d.Registry.Head(ctx, r)
		switch {
		case err == nil:
			seen[r.String()] = d.Digest.String()
		case exit.Code(err) == exit.ImageNotFound:
			seen[r.String()] = ""
		default:
			return nil, nil, fmt.Errorf("tag %s: %w", r, err)
		}
	}
	return seen, out, nil
}

// pickRunImage chooses which run image name to check: the fleet's
// override, else a name in the app's own registry (as the lifecycle picks
// mirrors), else the recorded name. The fleet's extra mirrors are only
// candidates when the entry allows renaming: rebasing onto a name the
// image does not record rewrites its metadata.
func pickRunImage(in *Inspected, t Target) string {
	if t.RunImage != "" {
		return t.RunImage
	}
	reg := in.Ref.Context().RegistryStr()
	names := append([]string{in.App.RunImageName}, in.App.RunImageMirrors...)
	if t.AllowRunImageRename {
		names = append(names, t.RunImageMirrors...)
	}
	for _, m := range names {
		if r, err := name.ParseReference(m); err == nil && r.Context().RegistryStr() == reg {
			return m
		}
	}
	return in.App.RunImageName
}

// runImage returns the run image's state as it matters for in: one HEAD
// per run image per sweep, and its config only when in was built on
// another digest.
func (s *sweep) runImage(ctx context.Context, ref name.Reference, in *Inspected) (RunImage, v1.Image, error) {
	key := ref.String()
	digest, err := s.runDigests.get(key, func() (string, error) {
		desc, err := s.d.Registry.Head(ctx, ref)
		if err != nil {
			return "", fmt.Errorf("run image: %w", err)
		}
		return desc.Digest.String(), nil
	})
	if err != nil {
		return RunImage{}, nil, err
	}
	if strings.HasSuffix(in.RecordedRef, "@"+digest) {
		// Built on exactly this run image: nothing to compare.
		return RunImage{Ref: key, Digest: digest, TopLayer: in.App.RunImageTop}, nil, nil
	}
	cfg, err := s.runConfigs.get(key, func() (runConfig, error) {
		state, img, err := ReadRunImage(ctx, s.d.Registry, ref, digest)
		if err != nil {
			return runConfig{}, fmt.Errorf("run image: %w", err)
		}
		return runConfig{state, img}, nil
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
