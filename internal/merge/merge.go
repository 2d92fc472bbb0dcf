// Package merge is `cipack manifest`: it combines images built for one
// platform each (by separate CI jobs, one per runner architecture) into
// one multi-arch index tag, after checking that they are CNB images of
// distinct platforms built from the same source.
package merge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// platformField is what an os, architecture or variant may be (the OCI
// values are short lower-case words: linux, arm64, v8, …).
var platformField = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// Registry is what a merge needs of one: read the sources, write the
// index by digest, move its tags all or none. *registry.Client serves it;
// the tests use go-containerregistry's in-process registry behind it.
type Registry interface {
	Parse(ref string) (name.Reference, error)
	Get(ctx context.Context, ref name.Reference) (*remote.Descriptor, error)
	WriteIndex(ctx context.Context, ref name.Reference, idx v1.ImageIndex) error
	MoveTags(ctx context.Context, targets []name.Reference, t remote.Taggable, seen map[string]string) ([]string, error)
}

// Options are the inputs of one merge.
type Options struct {
	Image   string   // the index tag to write
	Tags    []string // more tags for the same index
	Sources []string // one image per platform
	// AnySource waives the same-source check (images whose project
	// metadata differ, e.g. built from different commits).
	AnySource bool
}

// Validate checks what can be checked without a registry.
func (o *Options) Validate() error {
	if strings.TrimSpace(o.Image) == "" {
		return exit.Usagef("--image", "name the index tag to write, e.g. registry.example/team/app:latest", "no image given")
	}
	r, err := name.ParseReference(o.Image)
	if err != nil {
		return exit.Usagef("--image", "use a reference like registry.example/team/app:tag", "invalid image reference %q: %v", o.Image, err)
	}
	if _, ok := r.(name.Tag); !ok {
		return exit.Usagef("--image", "name a tag: the index gets a new digest", "%q is a digest reference", o.Image)
	}
	for _, t := range o.Tags {
		if _, err := name.NewTag(t); err != nil {
			return exit.Usagef("--tag", "give full tag references", "invalid tag %q: %v", t, err)
		}
	}
	if len(o.Sources) == 0 {
		return exit.Usagef("--source", "list the per-platform images, e.g. the image-ref outputs of the build jobs", "no source images given")
	}
	for _, s := range o.Sources {
		if _, err := name.ParseReference(s); err != nil {
			return exit.Usagef("--source", "use image references, ideally by digest (IMAGE@sha256:…)", "invalid source %q: %v", s, err)
		}
	}
	return nil
}

// Result is what a merge wrote: the same shape as a build's, so CI
// outputs are the same.
type Result struct {
	Image     string   `json:"image"`
	Digest    string   `json:"digest"`
	ImageRef  string   `json:"imageRef"`
	Tags      []string `json:"tags"`
	Platforms []string `json:"platforms"`
}

type source struct {
	ref      name.Reference
	desc     *remote.Descriptor
	img      v1.Image
	platform v1.Platform
	project  string
}

// Run checks every source, then writes the index by digest and moves its
// tags all or none. Nothing is pushed when a check fails.
func Run(ctx context.Context, o Options, reg Registry, log io.Writer) (*Result, error) {
	target, err := reg.Parse(o.Image)
	if err != nil {
		return nil, exit.Usagef("--image", "", "%v", err)
	}
	var sources []source
	seen := map[string]string{}
	for _, s := range o.Sources {
		src, err := inspect(ctx, reg, s)
		if err != nil {
			return nil, err
		}
		p := registry.PlatformString(src.platform)
		if prev, dup := seen[p]; dup {
			return nil, exit.Usagef("--source", "give one image per platform", "%s and %s are both %s", prev, s, p)
		}
		seen[p] = s
		sources = append(sources, src)
	}
	if !o.AnySource {
		for _, s := range sources[1:] {
			if s.project != sources[0].project {
				return nil, exit.Usagef("--source", "merge images built from one commit, or pass --any-source to waive the check",
					"%s and %s were built from different sources (%s differs: %s vs %s)", sources[0].ref, s.ref, cnb.ProjectMetadataLabel, orNone(sources[0].project), orNone(s.project))
			}
		}
		if sources[0].project == "" {
			fmt.Fprintf(log, "cipack: note: the images carry no %s label, so their source cannot be compared\n", cnb.ProjectMetadataLabel)
		}
	}
	sort.Slice(sources, func(i, j int) bool {
		return registry.PlatformString(sources[i].platform) < registry.PlatformString(sources[j].platform)
	})

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var platforms []string
	for _, s := range sources {
		p := s.platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: s.img, Descriptor: v1.Descriptor{
			MediaType: s.desc.MediaType, Platform: &p,
		}})
		platforms = append(platforms, registry.PlatformString(p))
	}
	digest, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	byDigest := target.Context().Digest(digest.String())
	// Children in another repository are copied (mounted within a
	// registry); the index is written by digest before any tag moves.
	if err := reg.WriteIndex(ctx, byDigest, idx); err != nil {
		return nil, err
	}
	targets := []name.Reference{target}
	for _, t := range o.Tags {
		r, err := reg.Parse(t)
		if err != nil {
			return nil, exit.Usagef("--tag", "", "%v", err)
		}
		if r.Context().String() != target.Context().String() {
			if err := reg.WriteIndex(ctx, r.Context().Digest(digest.String()), idx); err != nil {
				return nil, err
			}
		}
		targets = append(targets, r)
	}
	tags, err := reg.MoveTags(ctx, targets, idx, nil)
	if err != nil {
		return nil, exit.New(exit.Export, o.Image, err, moveHint(err))
	}
	fmt.Fprintf(log, "cipack: %s is an index of %s\n", target, strings.Join(platforms, ", "))
	return &Result{Image: target.String(), Digest: digest.String(), ImageRef: byDigest.String(), Tags: tags, Platforms: platforms}, nil
}

func inspect(ctx context.Context, reg Registry, s string) (source, error) {
	ref, err := reg.Parse(s)
	if err != nil {
		return source{}, exit.Usagef("--source", "", "invalid source %q: %v", s, err)
	}
	desc, err := reg.Get(ctx, ref)
	if err != nil {
		return source{}, err
	}
	if desc.MediaType.IsIndex() {
		return source{}, exit.Usagef("--source", "list the per-platform images, not an index", "%s is already an index", s)
	}
	if !desc.MediaType.IsImage() {
		return source{}, exit.Usagef("--source", "list images", "%s is a %s, not an image", s, desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		return source{}, registry.Classify(s, "read", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return source{}, registry.Classify(s, "read config of", err)
	}
	if _, ok := cf.Config.Labels[cnb.LifecycleMetadataLabel]; !ok {
		return source{}, exit.Usagef("--source", "list images built with buildpacks (cipack build)", "%s has no %s label: it is not a CNB image", s, cnb.LifecycleMetadataLabel)
	}
	if cf.OS == "" || cf.Architecture == "" {
		return source{}, exit.Usagef("--source", "rebuild it with a lifecycle that records the platform", "%s records no os/architecture", s)
	}
	// The platform becomes index fields, tags' outputs and a summary: an
	// image's config is untrusted, so it is checked before anything is
	// pushed, not when the outputs are written.
	for _, f := range []string{cf.OS, cf.Architecture, cf.Variant} {
		// "unknown" marks attestations in an index: not a platform.
		if f != "" && (!platformField.MatchString(f) || f == "unknown") {
			return source{}, exit.Usagef("--source", "list images built for a real platform", "%s records the platform %q, which is not an os/architecture/variant name", s, registry.PlatformString(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}))
		}
	}
	return source{ref: ref, desc: desc, img: img, platform: v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
		project: cf.Config.Labels[cnb.ProjectMetadataLabel]}, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// moveHint says what a failed tag move left: only the undo's own outcome
// decides whether a tag was left half-moved.
func moveHint(err error) string {
	if errors.Is(err, registry.ErrTagsLeftMoved) {
		return "the tags listed still point at the new index: point them back by hand (or rerun to finish the move)"
	}
	return "no tag was left half-moved; rerun"
}
