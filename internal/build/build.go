package build

import (
	"context"
	"runtime/debug"

	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/registry"
)

// Deps are what a build needs from outside: a registry client, where logs
// go, and the facts about the process that only the edge may read.
type Deps struct {
	Registry *registry.Client
	Log      io.Writer
	Observer creator.Observer
	// Environ is the environment the lifecycle inherits (PATH, HOME, …).
	Environ []string
	// BuilderUID and BuilderGID are the builder's CNB_USER_ID and
	// CNB_GROUP_ID (the step's environment when the step image is the
	// builder).
	BuilderUID, BuilderGID string
	// Self is cipack's own executable (the sandbox helper), Euid the
	// process's effective uid.
	Self string
	Euid int
	// LookPath finds the OCI runtime; Pinned is the lifecycle module
	// cipack is built with (what the trusted lifecycle must match).
	LookPath func(string) (string, error)
	Pinned   *debug.Module
	// TempDir is where the build's scratch directories go.
	TempDir string
	// Cwd resolves relative --buildpack paths, as pack does.
	Cwd string
}

// Buildpack is one buildpack that took part in the build.
type Buildpack struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Result is what a successful build pushed.
type Result struct {
	Image string `json:"image"`
	// Name is the image without tag or digest: an attestation's subject.
	Name        string   `json:"name"`
	Digest      string   `json:"digest"`
	SBOMDir     string   `json:"sbomDir,omitempty"`
	ImageRef    string   `json:"imageRef"`
	Tags        []string `json:"tags"`
	PlatformAPI string   `json:"platformAPI"`
	RunImage    string   `json:"runImage"`
	// Platform is os/arch of the image: the lifecycle builds for the
	// platform it runs on. A multi-arch merge takes it from each job.
	Platform   string                `json:"platform"`
	Buildpacks []Buildpack           `json:"buildpacks"`
	Phases     []creator.PhaseTiming `json:"phases"`
	// Skipped: nothing changed since the image the tag holds
	// (--skip-unchanged); the lifecycle did not run.
	Skipped bool `json:"skipped,omitempty"`
	// StagingTag is the tag the lifecycle exported under when the
	// registry would not delete it afterwards (delete it by hand).
	StagingTag string        `json:"stagingTagLeft,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
}

func orDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// Run performs one build, in four stages: plan (the builder loaded, the
// registries checked, the host chosen), prepare (the app copy, platform
// and layers dirs), execute (the lifecycle on its host) and collect (the
// report checked against the registry, SBOM, result). opts must have
// passed Validate.
func Run(ctx context.Context, opts Options, d Deps) (*Result, error) {
	start := time.Now()
	p, err := plan(ctx, opts, d)
	if err != nil {
		return nil, err
	}
	w, err := prepare(ctx, p, opts, d)
	defer w.cleanup()
	if err != nil {
		// A registry failure is the one to report: it was found first.
		if rerr := p.checked(); rerr != nil {
			return nil, rerr
		}
		return nil, err
	}
	if opts.SkipUnchanged {
		if res, err := skipIfUnchanged(ctx, p, w, d, start); res != nil || err != nil {
			return res, err
		}
	}
	if p.staging, err = stagingTag(p.refs.image); err != nil {
		return nil, err
	}
	in := w.inputs(p, opts)
	fmt.Fprintf(d.Log, "cipack: building %s as %d:%d (platform API: first of %v the lifecycle accepts)\n", p.refs.image, p.uid, p.gid, p.candidates)
	var h host = p.host
	if p.host == nil {
		h = inBuilderHost(in, d)
	} else {
		p.host.names = p.names(w)
		if p.host.expect, err = expectAnalyzed(p.refs.runImage, in.PreviousImage); err != nil {
			return nil, err
		}
	}
	runner := &creator.Runner{Log: d.Log, Observer: d.Observer}
	undo, err := h.setup(&in, runner, d)
	defer undo()
	if err != nil {
		return nil, err
	}
	api, timings, err := h.execute(ctx, runner, p.builder, in, p.candidates)
	// The staging tag goes in every case, once: its image is the user's
	// tags' now, or nobody's. collect drops it as soon as the tags moved,
	// while it reads them back.
	drop := onceDrop(func(pushed bool) string { return dropStaging(ctx, d.Registry, p.staging, pushed, d.Log) })
	var res *Result
	if err == nil {
		res, err = collect(ctx, p, w, opts, d, collected{api: api, timings: timings, start: start, drop: drop})
	}
	left := drop(res != nil)
	if err != nil {
		reportWritten(ctx, d.Registry, p.refs.written(), p.refs.before, d.Log)
		return nil, err
	}
	res.StagingTag = left
	return res, nil
}

// PullMode reports whether the build pulls its builder: asked for, or a
// builder is named and this host has no lifecycle of its own.
func PullMode(o Options) bool {
	switch o.Mode {
	case ModePull:
		return true
	case ModeInBuilder:
		return false
	}
	if o.Builder == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(o.CNBDir, "lifecycle", "creator"))
	return err != nil
}
