package rebase

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/registry"
)

// ReasonMovedSinceStaged is a staged image one of whose tags someone
// else moved between --stage and --promote: it is reported, not
// overwritten.
const ReasonMovedSinceStaged = "MOVED_SINCE_STAGED"

// ReasonNotARebase is a candidate (promote) or a recorded previous digest
// (rollback) that is not the same build as the digest the tag holds: the
// plan or the record names another image, and nothing moves.
const ReasonNotARebase = "NOT_A_REBASE"

// Promote moves the tags of each image a staged sweep pushed a candidate
// for (the plan is that sweep's report) to the candidate, all of an
// image's tags or none, and only where every one still holds the digest
// it had at staging (compare before move). Images the plan has no
// candidate for are left out.
func Promote(ctx context.Context, reg Registry, plan Report) ([]Outcome, error) {
	if plan.DryRun {
		return nil, errors.New("the plan is a dry run's report: stage with --stage (no --dry-run)")
	}
	var out []Outcome
	for _, o := range plan.Images {
		if !o.Staged || o.NewDigest == "" {
			continue
		}
		out = append(out, promoteOne(ctx, reg, o))
	}
	return out, nil
}

func promoteOne(ctx context.Context, reg Registry, o Outcome) Outcome {
	start := time.Now()
	res := Outcome{Image: o.Image, Verdict: Rebase, Reason: o.Reason, OldDigest: o.OldDigest, RunImage: o.RunImage, Builder: o.Builder, Source: o.Source}
	fail := func(reason string, err error) Outcome {
		res.Verdict, res.Reason, res.Error, res.Duration = Failed, reason, err.Error(), time.Since(start)
		return res
	}
	ref, err := reg.Parse(o.Image)
	if err != nil {
		return fail("", fmt.Errorf("invalid image reference: %w", err))
	}
	if _, isTag := ref.(name.Tag); !isTag {
		return fail("", fmt.Errorf("%s is not a tag", o.Image))
	}
	targets := []name.Reference{ref}
	for _, t := range o.Tags {
		r, err := reg.Parse(t)
		if err != nil {
			return fail("", fmt.Errorf("tag %q: %w", t, err))
		}
		targets = append(targets, r)
	}
	if err := checkPlanTags(ref, targets, o.Seen); err != nil {
		return fail(ReasonNotARebase, err)
	}
	candidate := ref.Context().Digest(o.NewDigest)
	desc, err := reg.Get(ctx, candidate)
	if err != nil {
		return fail("", registry.Classify(candidate.String(), "read the candidate", err))
	}
	// The plan travelled between jobs as a file: promote only what a
	// rebase of the staged digest can be.
	if err := VerifySameBuild(ctx, reg, ref.Context(), o.Seen[ref.String()], o.NewDigest); err != nil {
		return fail(ReasonNotARebase, fmt.Errorf("candidate %s: %w; nothing was moved: stage again", o.NewDigest, err))
	}
	// And it sits exactly on the run image as it is now: not an older
	// build of the same app (a downgrade), nor extra layers under a
	// self-declared base.
	runNames, err := recordedRunNames(ctx, reg, ref.Context().Digest(o.Seen[ref.String()]))
	if err != nil {
		return fail("", err)
	}
	runNames[o.RunImage] = true
	if err := verifyBase(ctx, reg, ref.Context(), o.NewDigest, func(c *Child) (name.Reference, error) {
		if o.RunImage == "" {
			return nil, errors.New("the plan names no run image")
		}
		// Later sweeps follow the recorded name: it may not be steered.
		if !runNames[c.App.RunImageName] {
			return nil, fmt.Errorf("it records run image %q, neither the staged image's nor %s: %w", c.App.RunImageName, o.RunImage, ErrNotARebase)
		}
		return reg.Parse(o.RunImage)
	}); err != nil {
		return fail(ReasonNotARebase, fmt.Errorf("candidate %s: %w; nothing was moved: stage again", o.NewDigest, err))
	}
	if err := recordPrevious(ctx, reg, ref.Context(), desc.Descriptor, o.Seen[ref.String()], names(targets), time.Now()); err != nil {
		return fail("", err)
	}
	tags, err := reg.MoveTags(ctx, targets, desc, o.Seen)
	if errors.Is(err, registry.ErrMovedSinceInspection) {
		return fail(ReasonMovedSinceStaged, fmt.Errorf("%w; not overwritten: verify and stage again", err))
	}
	if err != nil {
		return fail("", err)
	}
	res.NewDigest, res.Tags, res.Applied, res.Duration = o.NewDigest, tags, true, time.Since(start)
	return res
}

// checkPlanTags refuses what a genuine plan cannot hold: a tag in
// another repository, or a tag the plan says held another digest than
// the image's (staging refuses diverged tags; "" is a tag to create).
func checkPlanTags(image name.Reference, targets []name.Reference, seen map[string]string) error {
	was := seen[image.String()]
	for _, r := range targets {
		d, ok := seen[r.String()]
		switch {
		case !ok:
			return fmt.Errorf("the plan does not say where %s pointed at staging: stage again", r)
		case r.Context().String() != image.Context().String():
			return fmt.Errorf("the plan moves %s, outside %s's repository: nothing was moved", r, image.Context())
		case d != was && d != "":
			return fmt.Errorf("the plan says %s held %s, not the image's %s: a plan from staging never does; nothing was moved", r, d, was)
		}
	}
	return nil
}

// recordedRunNames are the run image names (and mirrors) an image records.
func recordedRunNames(ctx context.Context, reg Reader, ref name.Reference) (map[string]bool, error) {
	in, err := Inspect(ctx, reg, ref)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, c := range in.Children {
		names[c.App.RunImageName] = true
		for _, m := range c.App.RunImageMirrors {
			names[m] = true
		}
	}
	return names, nil
}
