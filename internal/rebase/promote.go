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
	for _, r := range targets {
		if _, ok := o.Seen[r.String()]; !ok {
			return fail("", fmt.Errorf("the plan does not say where %s pointed at staging: stage again", r))
		}
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
