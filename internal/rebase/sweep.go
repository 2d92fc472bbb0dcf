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
	s := &sweep{opts: opts, d: d, runs: map[string]*runEntry{}, builders: map[string]*builderEntry{}}
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
	opts     Options
	d        Deps
	mu       sync.Mutex
	runs     map[string]*runEntry
	builders map[string]*builderEntry
}

// runEntry caches one run image: its digest (one HEAD), and its config
// only if some image turns out to be on another digest.
type runEntry struct {
	headOnce, cfgOnce sync.Once
	digest            string
	headErr           error
	state             RunImage
	img               v1.Image
	cfgErr            error
}

type builderEntry struct {
	once sync.Once
	b    *Builder
	err  error
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

	dec := Decide(in.App, run, builder)
	o.Verdict, o.Reason, o.Detail = dec.Verdict, dec.Reason, dec.Detail
	if s.opts.DryRun {
		return o
	}
	switch dec.Verdict {
	case Rebase:
		force, err := NamePolicy(in.App, runName, t.AllowRunImageRename)
		if err != nil {
			return fail(err)
		}
		applied, err := Apply(ctx, s.d.Registry, Plan{App: in, RunImageRef: runRef, RunImage: runImg, Force: force, Tags: t.Tags}, s.d.Log)
		if err != nil {
			return fail(err)
		}
		o.NewDigest, o.Tags, o.Applied = applied.Digest, applied.Tags, true
	case Rebuild:
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

// pickRunImage chooses which run image name to check: the fleet's
// override, else a mirror in the app's own registry (as the lifecycle
// does), else the recorded name.
func pickRunImage(in *Inspected, t Target) string {
	if t.RunImage != "" {
		return t.RunImage
	}
	reg := in.Ref.Context().RegistryStr()
	for _, m := range append(append([]string{in.App.RunImageName}, in.App.RunImageMirrors...), t.RunImageMirrors...) {
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
	s.mu.Lock()
	e, ok := s.runs[key]
	if !ok {
		e = &runEntry{}
		s.runs[key] = e
	}
	s.mu.Unlock()
	e.headOnce.Do(func() {
		desc, err := s.d.Registry.Head(ctx, ref)
		if err != nil {
			e.headErr = fmt.Errorf("run image: %w", err)
			return
		}
		e.digest = desc.Digest.String()
	})
	if e.headErr != nil {
		return RunImage{}, nil, e.headErr
	}
	if strings.HasSuffix(in.RecordedRef, "@"+e.digest) {
		// Built on exactly this run image: nothing to compare.
		return RunImage{Ref: key, Digest: e.digest, TopLayer: in.App.RunImageTop}, nil, nil
	}
	e.cfgOnce.Do(func() {
		e.state, e.img, e.cfgErr = ReadRunImage(ctx, s.d.Registry, ref, e.digest)
		if e.cfgErr != nil {
			e.cfgErr = fmt.Errorf("run image: %w", e.cfgErr)
		}
	})
	return e.state, e.img, e.cfgErr
}

func (s *sweep) builder(ctx context.Context, ref string) (*Builder, error) {
	s.mu.Lock()
	e, ok := s.builders[ref]
	if !ok {
		e = &builderEntry{}
		s.builders[ref] = e
	}
	s.mu.Unlock()
	e.once.Do(func() {
		r, err := s.d.Registry.Parse(ref)
		if err != nil {
			e.err = fmt.Errorf("builder %q: %w", ref, err)
			return
		}
		e.b, e.err = ReadBuilder(ctx, s.d.Registry, r)
		if e.err != nil {
			e.err = fmt.Errorf("builder: %w", e.err)
		}
	})
	return e.b, e.err
}
