package rebase

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func (w *promoteWorld) host() string { return strings.SplitN(w.latest, "/", 2)[0] }

func (w *promoteWorld) put(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, _ := name.ParseReference(ref, name.Insecure)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// tagCandidate points ref at the plan's candidate, as a promote killed
// after its first tag leaves it.
func (w *promoteWorld) tagCandidate(t *testing.T, ref string) {
	t.Helper()
	ctx := context.Background()
	r, _ := name.ParseReference(ref, name.Insecure)
	desc, err := w.reg.Get(ctx, r.Context().Digest(w.plan.NewDigest))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.reg.Tag(ctx, r.(name.Tag), desc); err != nil {
		t.Fatal(err)
	}
}

// A promote killed between two tags, then a new run image: the old plan
// is refused (its candidate is not on the run image now), and a staging
// of the split set (latest on the candidate, stable on the digest before)
// gives a plan whose promote moves both tags to one new candidate.
func TestPromoteFinishesASetSplitByAKilledPromoteAfterTheRunImageMoved(t *testing.T) {
	w := newPromoteWorld(t)
	ctx := context.Background()
	w.tagCandidate(t, w.latest)
	w.put(t, w.host()+"/team/run:latest", runImage(t, 2))
	if out, _ := Promote(ctx, w.reg, Report{Images: []Outcome{w.plan}}, nil); len(out) != 1 || out[0].Reason != ReasonNotARebase {
		t.Fatalf("the old plan after the run image moved: %+v", out)
	}
	fleet := []Target{{Image: w.latest, Tags: []string{w.stable}}}
	staged := Sweep(ctx, fleet, Options{Stage: true}, Deps{Registry: w.reg, Log: io.Discard})
	if staged[0].Error != "" || !staged[0].Staged || staged[0].Seen[w.stable] != w.current || staged[0].Seen[w.latest] != w.plan.NewDigest {
		t.Fatalf("stage the split set: %+v", staged[0])
	}
	out, err := Promote(ctx, w.reg, Report{Images: staged}, fleet)
	if err != nil || len(out) != 1 || out[0].Error != "" || !out[0].Applied {
		t.Fatalf("promote the split set: %+v %v", out, err)
	}
	for _, ref := range []string{w.latest, w.stable} {
		if got := w.head(t, ref); got != staged[0].NewDigest {
			t.Fatalf("%s is at %s, want the new candidate %s", ref, got, staged[0].NewDigest)
		}
	}
}

// A split set whose other digest is not the same build is not staged
// (the promote would move that tag to a build it never held), and a plan
// that says so is refused by the promote: nothing moves.
func TestASetSplitWithAnotherBuildIsNeitherStagedNorPromoted(t *testing.T) {
	w := newPromoteWorld(t)
	ctx := context.Background()
	other, _ := random.Image(64, 1)
	w.put(t, w.stable, other)
	foreign := mustDigest(t, other)
	fleet := []Target{{Image: w.latest, Tags: []string{w.stable}}}
	staged := Sweep(ctx, fleet, Options{Stage: true}, Deps{Registry: w.reg, Log: io.Discard})
	if staged[0].Staged || staged[0].Reason != ReasonTagsDiverged || !strings.Contains(staged[0].Error, w.stable) {
		t.Fatalf("stage a set split with another build: %+v", staged[0])
	}
	forged := w.plan
	forged.Seen = map[string]string{w.latest: w.current, w.stable: foreign}
	out, _ := Promote(ctx, w.reg, Report{Images: []Outcome{forged}}, fleet)
	if len(out) != 1 || out[0].Reason != ReasonNotARebase || out[0].Applied {
		t.Fatalf("promote onto a set split with another build: %+v", out)
	}
	if w.head(t, w.latest) != w.current || w.head(t, w.stable) != foreign {
		t.Fatal("a refused promote moved a tag")
	}
}

// With the fleet (--config), a plan names only the fleet's images and
// tags, compared canonically: naming the image under its other tag, a
// respelled host, a tag the entry does not list or leaving one out would
// escape the entry's runImage or split the set. Nothing moves.
func TestPromoteWithTheFleetRefusesPlanTagsOutsideIt(t *testing.T) {
	w := newPromoteWorld(t)
	ctx := context.Background()
	fleet := []Target{{Image: w.latest, Tags: []string{w.stable}}}
	swapped := w.plan
	swapped.Image, swapped.Tags = w.stable, []string{w.latest}
	respelled := w.plan
	respelled.Image = strings.Replace(w.latest, "127.0.0.1", "localhost", 1)
	extra := w.plan
	extra.Tags = append([]string{w.host() + "/team/app:prod"}, w.plan.Tags...)
	extra.Seen = map[string]string{w.latest: w.current, w.stable: w.current, w.host() + "/team/app:prod": ""}
	short := w.plan
	short.Tags = nil
	for name, p := range map[string]Outcome{"swapped": swapped, "respelled": respelled, "extra": extra, "short": short} {
		out, _ := Promote(ctx, w.reg, Report{Images: []Outcome{p}}, fleet)
		if len(out) != 1 || out[0].Reason != ReasonNotARebase || !strings.Contains(out[0].Error, "fleet") {
			t.Errorf("%s: %+v, want refused naming the fleet", name, out)
		}
	}
	if w.head(t, w.latest) != w.current || w.head(t, w.stable) != w.current {
		t.Fatal("a refused promote moved a tag")
	}
	if out, _ := Promote(ctx, w.reg, Report{Images: []Outcome{w.plan}}, fleet); len(out) != 1 || !out[0].Applied {
		t.Fatalf("the genuine plan with its fleet: %+v", out)
	}
}

// racingRegistry lets another promote of the same plan win the race:
// just before this one's tag moves, the other's have all landed.
type racingRegistry struct {
	Registry
	other func()
}

func (r *racingRegistry) MoveTags(ctx context.Context, targets []name.Reference, t remote.Taggable, seen map[string]string) ([]string, error) {
	if r.other != nil {
		r.other()
		r.other = nil
	}
	return r.Registry.MoveTags(ctx, targets, t, seen)
}

// Two promotes of one plan at once: the one that loses the race finds
// the tags moved since it read them, reads again, and counts the move as
// done, since every tag is on its candidate (not MOVED_SINCE_STAGED).
func TestPromoteThatLosesARaceToTheSamePlanCountsTheMoveDone(t *testing.T) {
	w := newPromoteWorld(t)
	ctx := context.Background()
	race := &racingRegistry{Registry: w.reg}
	race.other = func() {
		if out, _ := Promote(ctx, w.reg, Report{Images: []Outcome{w.plan}}, nil); len(out) != 1 || !out[0].Applied {
			t.Errorf("the winner: %+v", out)
		}
	}
	out, err := Promote(ctx, race, Report{Images: []Outcome{w.plan}}, nil)
	if err != nil || len(out) != 1 || out[0].Error != "" || !out[0].Applied {
		t.Fatalf("the loser: %+v %v", out, err)
	}
	if w.head(t, w.latest) != w.plan.NewDigest || w.head(t, w.stable) != w.plan.NewDigest {
		t.Fatal("the tags are not on the candidate")
	}
}
