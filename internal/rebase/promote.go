package rebase

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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
// it had at staging (compare before move), or already holds the
// candidate (a promote that was stopped half-way is finished). Images the
// plan has no candidate for are left out. fleet (nil for none) is the
// fleet the plan was staged with: its runImage for an image is the run
// image the candidate must sit on, as in the sweep, and a plan image or
// tag set that is not exactly an entry's is refused (fleetEntry).
//
// The plan is a file that travelled between jobs: of each image it is
// trusted for the tag names and the candidate's digest only, and both are
// checked against the registry. The digest the tags hold, the run image
// and its current digest are read now, never taken from the plan.
func Promote(ctx context.Context, reg Registry, plan Report, fleet []Target) ([]Outcome, error) {
	if plan.DryRun {
		return nil, errors.New("the plan is a dry run's report: stage with --stage (no --dry-run)")
	}
	var out []Outcome
	for _, o := range plan.Images {
		if !o.Staged || o.NewDigest == "" {
			continue
		}
		out = append(out, promoteOne(ctx, reg, o, fleet))
	}
	return out, nil
}

// fleetEntry is the fleet's target whose image is the plan's (compared
// canonically), when the plan's tag set is exactly that entry's: with a
// fleet, its runImage must not be escaped by a plan that names the image
// under another of its tags, spells its host another way, or moves a tag
// the entry does not list (or leaves one out, which would split the set).
// Without a fleet (nil), the plan's image stands alone.
func fleetEntry(fleet []Target, image name.Reference, targets []name.Reference) (Target, error) {
	if fleet == nil {
		return Target{Image: image.String()}, nil
	}
	i := slices.IndexFunc(fleet, func(t Target) bool { return CanonicalImage(t.Image) == CanonicalImage(image.String()) })
	if i < 0 {
		return Target{}, fmt.Errorf("%s is not an image the fleet (--config) lists: nothing was moved", image)
	}
	t := fleet[i]
	want := map[string]bool{CanonicalImage(t.Image): true}
	for _, tag := range t.Tags {
		want[CanonicalImage(tag)] = true
	}
	for _, r := range targets {
		if !want[CanonicalImage(r.String())] {
			return Target{}, fmt.Errorf("the plan moves %s, which the fleet (--config) does not list with %s: nothing was moved", r, t.Image)
		}
		delete(want, CanonicalImage(r.String()))
	}
	if len(want) > 0 {
		left := slices.Sorted(maps.Keys(want))
		return Target{}, fmt.Errorf("the plan leaves out %s, which the fleet (--config) moves with %s: stage again with this fleet; nothing was moved", strings.Join(left, ", "), t.Image)
	}
	return t, nil
}

func promoteOne(ctx context.Context, reg Registry, o Outcome, fleet []Target) Outcome {
	start := time.Now()
	res := Outcome{Image: o.Image, Verdict: Rebase, Reason: o.Reason, Builder: o.Builder, Source: o.Source}
	fail := func(reason string, err error) Outcome {
		res.Verdict, res.Reason, res.Error, res.Duration = Failed, reason, err.Error(), time.Since(start)
		return res
	}
	ref, targets, err := planTargets(reg, o)
	if err != nil {
		return fail("", err)
	}
	t, err := fleetEntry(fleet, ref, targets)
	if err != nil {
		return fail(ReasonNotARebase, err)
	}
	if err := checkPlanTags(ref, targets, o.Seen); err != nil {
		return fail(ReasonNotARebase, err)
	}
	now, err := reg.TagDigests(ctx, targets)
	if err != nil {
		return fail("", err)
	}
	held, err := heldNow(ref, targets, now, o.Seen, o.NewDigest)
	if err != nil {
		return fail(ReasonMovedSinceStaged, fmt.Errorf("%w; not overwritten: verify and stage again", err))
	}
	res.OldDigest = held[0]
	candidate := ref.Context().Digest(o.NewDigest)
	desc, err := reg.Get(ctx, candidate)
	if err != nil {
		return fail("", registry.Classify(candidate.String(), "read the candidate", err))
	}
	if res.RunImage, err = verifyAgainstHeld(ctx, reg, ref.Context(), held, o.NewDigest, t); err != nil {
		reason := ""
		if errors.Is(err, ErrNotARebase) {
			reason = ReasonNotARebase
		}
		return fail(reason, fmt.Errorf("candidate %s: %w; nothing was moved: stage again", o.NewDigest, err))
	}
	if err := recordPrevious(ctx, reg, ref.Context(), desc.Descriptor, held[0], names(targets), time.Now()); err != nil {
		return fail("", err)
	}
	tags, err := moveToCandidate(ctx, reg, targets, desc, now)
	if errors.Is(err, registry.ErrMovedSinceInspection) {
		return fail(ReasonMovedSinceStaged, fmt.Errorf("%w; not overwritten: verify and stage again", err))
	}
	if err != nil {
		return fail("", err)
	}
	res.NewDigest, res.Tags, res.Applied, res.Duration = o.NewDigest, tags, true, time.Since(start)
	return res
}

// verifyAgainstHeld checks the candidate against every digest the tags
// hold now (more than one where a promote was killed between two tags
// and the run image moved since: the set is split between the same
// build's digests): it must be a rebase of each, on the run image each
// would be checked against. It returns the run image name checked.
func verifyAgainstHeld(ctx context.Context, reg Reader, repo name.Repository, held []string, candidate string, t Target) (string, error) {
	run := ""
	for _, h := range held {
		r, err := verifyCandidate(ctx, reg, repo, h, candidate, t)
		if err != nil {
			return r, err
		}
		if run == "" {
			run = r
		}
	}
	return run, nil
}

// moveToCandidate moves the targets from where they were read (now) to
// the candidate. Two promotes of one plan at once race on the moves: the
// one that loses finds a tag moved since it read it. When every tag is on
// the candidate after all, the move it wanted is done, and it says so.
func moveToCandidate(ctx context.Context, reg Registry, targets []name.Reference, desc *remote.Descriptor, now map[string]string) ([]string, error) {
	tags, err := reg.MoveTags(ctx, targets, desc, now)
	if !errors.Is(err, registry.ErrMovedSinceInspection) {
		return tags, err
	}
	again, rerr := reg.TagDigests(ctx, targets)
	if rerr != nil {
		return nil, err
	}
	for _, r := range targets {
		if again[r.String()] != desc.Digest.String() {
			return nil, err
		}
	}
	return names(targets), nil
}

// planTargets parses the plan's image (a tag) and its tags, the image's
// first.
func planTargets(reg Reader, o Outcome) (name.Reference, []name.Reference, error) {
	ref, err := reg.Parse(o.Image)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid image reference: %w", err)
	}
	if _, isTag := ref.(name.Tag); !isTag {
		return nil, nil, fmt.Errorf("%s is not a tag", o.Image)
	}
	targets := []name.Reference{ref}
	for _, t := range o.Tags {
		r, err := reg.Parse(t)
		if err != nil {
			return nil, nil, fmt.Errorf("tag %q: %w", t, err)
		}
		targets = append(targets, r)
	}
	return ref, targets, nil
}

// heldNow checks where the targets point now (now: reference → digest,
// "" for absent) against the plan's staging view: each must still be
// where it was at staging, or already on the candidate (an earlier
// promote of the same plan moved it). It returns the distinct digests
// the tags hold that the candidate must be a rebase of, the image's
// first: more than one where the set was split at staging; only the
// candidate itself when every tag is on it (nothing to verify but the
// run image).
func heldNow(image name.Reference, targets []name.Reference, now, seen map[string]string, candidate string) ([]string, error) {
	var held []string
	for _, r := range targets {
		d := now[r.String()]
		if d == candidate {
			continue
		}
		if was := seen[r.String()]; d != was {
			return nil, fmt.Errorf("%s %w (was %s at staging, now %s): nothing was moved", r, registry.ErrMovedSinceInspection, orAbsent(was), orAbsent(d))
		}
		if d != "" && !slices.Contains(held, d) {
			held = append(held, d)
		}
	}
	if len(held) > 0 {
		return held, nil
	}
	if now[image.String()] == "" {
		return nil, fmt.Errorf("%s %w (was %s at staging, now absent): nothing was moved", image, registry.ErrMovedSinceInspection, orAbsent(seen[image.String()]))
	}
	return []string{candidate}, nil
}

func orAbsent(d string) string {
	if d == "" {
		return "absent"
	}
	return short(d)
}

// checkPlanTags refuses what a genuine plan cannot hold: a tag in
// another repository, or one the plan does not say held what at staging.
// Tags that held other digests than the image's (a set split by a killed
// promote) are not refused here: each digest they hold now is checked
// to be the same build as the candidate (verifyAgainstHeld).
func checkPlanTags(image name.Reference, targets []name.Reference, seen map[string]string) error {
	for _, r := range targets {
		if _, ok := seen[r.String()]; !ok {
			return fmt.Errorf("the plan does not say where %s pointed at staging: stage again", r)
		}
		if r.Context().String() != image.Context().String() {
			return fmt.Errorf("the plan moves %s, outside %s's repository: nothing was moved", r, image.Context())
		}
	}
	return nil
}

// verifyCandidate checks that candidate is a rebase of staged (the digest
// the tags hold now) that sits exactly on the run image as it is now: the
// run image the sweep would pick for the staged image (the fleet's
// runImage, else its own record, pickRunImage), read now. Not an older
// build of the same app (a downgrade), nor extra layers under a
// self-declared base. It returns the run image name checked.
func verifyCandidate(ctx context.Context, reg Reader, repo name.Repository, staged, candidate string, t Target) (string, error) {
	if err := VerifySameBuild(ctx, reg, repo, staged, candidate); err != nil {
		return "", err
	}
	in, err := Inspect(ctx, reg, repo.Digest(staged))
	if err != nil {
		return "", err
	}
	// Per platform: the run image to sit on, and the names the candidate
	// may record (later sweeps follow the recorded name: it may not be
	// steered elsewhere).
	runFor, allowed := map[string]string{}, map[string]map[string]bool{}
	checked := ""
	for _, c := range in.Children {
		if c.Other {
			continue
		}
		p := registry.PlatformString(c.Platform)
		run := pickRunImage(in, c, t)
		if run == "" {
			return "", fmt.Errorf("%s records no run image and the fleet sets no runImage for it: pass the fleet it was staged with (--config)", c.App.Ref)
		}
		runFor[p], checked = run, run
		allowed[p] = map[string]bool{run: true, c.App.RunImageName: true}
		for _, m := range c.App.RunImageMirrors {
			allowed[p][m] = true
		}
	}
	return checked, verifyBase(ctx, reg, repo, candidate, func(c *Child) (name.Reference, error) {
		p := registry.PlatformString(c.Platform)
		if runFor[p] == "" {
			return nil, fmt.Errorf("%s has no image for %s: %w", short(staged), p, ErrNotARebase)
		}
		if !allowed[p][c.App.RunImageName] {
			return nil, fmt.Errorf("it records run image %q, neither the staged image's nor %s (if the fleet it was staged with sets runImage, pass that fleet with --config): %w", c.App.RunImageName, runFor[p], ErrNotARebase)
		}
		return reg.Parse(runFor[p])
	})
}
