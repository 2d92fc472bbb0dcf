package rebase

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/buildpacks/lifecycle/platform"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/registry"
)

// promoteWorld is an app with a history on an in-process registry: its
// oldest build on run image v1, rebased (latest and stable) onto v2, and
// a staged sweep's genuine plan for v3, the run image as it is now.
type promoteWorld struct {
	reg            *registry.Client
	latest, stable string
	oldest         string // the first build, on v1
	current        string // where latest and stable are: on v2
	runV1          string // run@digest of v1
	plan           Outcome
}

func newPromoteWorld(t *testing.T) *promoteWorld {
	t.Helper()
	host, reg := inProcessRegistry(t)
	ctx := context.Background()
	w := &promoteWorld{reg: reg, latest: host + "/team/app:latest", stable: host + "/team/app:stable"}
	put := func(ref string, img v1.Image) string {
		r, _ := name.ParseReference(ref, name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		return mustDigest(t, img)
	}
	run := host + "/team/run:latest"
	v1img := runImage(t, 2)
	w.runV1 = host + "/team/run@" + put(run, v1img)
	app, err := mutate.AppendLayers(v1img, layers(t, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	ocf, _ := v1img.ConfigFile()
	acf, _ := app.ConfigFile()
	acf = acf.DeepCopy()
	acf.Config.Env = append(acf.Config.Env, "CNB_PLATFORM_API=0.15")
	acf.Config.Labels = map[string]string{platform.LifecycleMetadataLabel: fmt.Sprintf(`{"runImage":{"topLayer":%q,"reference":%q,"image":%q}}`,
		ocf.RootFS.DiffIDs[1], w.runV1, run)}
	if app, err = mutate.ConfigFile(app, acf); err != nil {
		t.Fatal(err)
	}
	w.oldest = put(w.latest, app)
	put(w.stable, app)
	fleet := []Target{{Image: w.latest, Tags: []string{w.stable}}}
	put(run, runImage(t, 2))
	if out := Sweep(ctx, fleet, Options{}, Deps{Registry: reg, Log: io.Discard}); out[0].Error != "" || !out[0].Applied {
		t.Fatalf("rebase onto v2: %+v", out[0])
	} else {
		w.current = out[0].NewDigest
	}
	put(run, runImage(t, 2))
	out := Sweep(ctx, fleet, Options{Stage: true}, Deps{Registry: reg, Log: io.Discard})
	if out[0].Error != "" || !out[0].Staged {
		t.Fatalf("stage onto v3: %+v", out[0])
	}
	w.plan = out[0]
	return w
}

func (w *promoteWorld) head(t *testing.T, ref string) string {
	t.Helper()
	r, _ := name.ParseReference(ref, name.Insecure)
	d, err := w.reg.Head(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}

// The forged plan: runImage pinned to the old base by digest,
// newDigest the app's oldest build (on that base). The run image comes
// from the staged image's record, read now, so nothing moves.
func TestPromoteRefusesAForgedPlanThatPinsTheOldBase(t *testing.T) {
	w := newPromoteWorld(t)
	forged := w.plan
	forged.NewDigest, forged.RunImage = w.oldest, w.runV1
	out, err := Promote(context.Background(), w.reg, Report{Images: []Outcome{forged}}, nil)
	if err != nil || len(out) != 1 {
		t.Fatalf("Promote: %+v %v", out, err)
	}
	if out[0].Verdict != Failed || out[0].Reason != ReasonNotARebase || !strings.Contains(out[0].Error, "nothing was moved") || out[0].Applied {
		t.Fatalf("a forged plan: %+v, want refused as %s", out[0], ReasonNotARebase)
	}
	for _, ref := range []string{w.latest, w.stable} {
		if got := w.head(t, ref); got != w.current {
			t.Fatalf("%s moved to %s (the oldest build is %s)", ref, got, w.oldest)
		}
	}
	// The genuine plan still promotes.
	out, _ = Promote(context.Background(), w.reg, Report{Images: []Outcome{w.plan}}, nil)
	if len(out) != 1 || !out[0].Applied || w.head(t, w.latest) != w.plan.NewDigest || w.head(t, w.stable) != w.plan.NewDigest {
		t.Fatalf("the genuine plan: %+v", out)
	}
}

// A promote stopped between two tags (here: latest already on the
// candidate, stable not), run again with the same plan, finishes the set.
func TestPromoteRunAgainFinishesAKilledPromote(t *testing.T) {
	w := newPromoteWorld(t)
	ctx := context.Background()
	cand, _ := name.ParseReference(w.latest, name.Insecure)
	desc, err := w.reg.Get(ctx, cand.Context().Digest(w.plan.NewDigest))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.reg.Tag(ctx, cand.(name.Tag), desc); err != nil {
		t.Fatal(err)
	}
	out, err := Promote(ctx, w.reg, Report{Images: []Outcome{w.plan}}, nil)
	if err != nil || len(out) != 1 || out[0].Error != "" || !out[0].Applied {
		t.Fatalf("promote again: %+v %v", out, err)
	}
	for _, ref := range []string{w.latest, w.stable} {
		if got := w.head(t, ref); got != w.plan.NewDigest {
			t.Fatalf("%s is at %s, want the candidate %s", ref, got, w.plan.NewDigest)
		}
	}
	// And a third time: everything is on the candidate, nothing to do.
	if out, _ := Promote(ctx, w.reg, Report{Images: []Outcome{w.plan}}, nil); len(out) != 1 || out[0].Error != "" {
		t.Fatalf("promote a finished plan: %+v", out)
	}
}

// Staged with a fleet whose runImage names another run image, a
// candidate sits on that one: promote checks it against the fleet's
// runImage when given the fleet, and refuses it without (the staged
// image's own record names another run image).
func TestPromoteChecksTheFleetsRunImage(t *testing.T) {
	w := newPromoteWorld(t)
	ctx := context.Background()
	host := strings.SplitN(w.latest, "/", 2)[0]
	other := host + "/team/other-run:latest"
	r, _ := name.ParseReference(other, name.Insecure)
	if err := remote.Write(r, runImage(t, 2)); err != nil {
		t.Fatal(err)
	}
	fleet := []Target{{Image: w.latest, Tags: []string{w.stable}, RunImage: other, AllowRunImageRename: true}}
	out := Sweep(ctx, fleet, Options{Stage: true}, Deps{Registry: w.reg, Log: io.Discard})
	if out[0].Error != "" || !out[0].Staged {
		t.Fatalf("stage onto %s: %+v", other, out[0])
	}
	plan := Report{Images: out}
	if res, _ := Promote(ctx, w.reg, plan, nil); len(res) != 1 || res[0].Reason != ReasonNotARebase || !strings.Contains(res[0].Error, "--config") {
		t.Fatalf("promote without the fleet: %+v, want refused with a hint at --config", res)
	}
	if w.head(t, w.latest) != w.current {
		t.Fatal("a refused promote moved latest")
	}
	if res, _ := Promote(ctx, w.reg, plan, fleet); len(res) != 1 || !res[0].Applied || res[0].RunImage != other {
		t.Fatalf("promote with the fleet: %+v", res)
	}
	if w.head(t, w.latest) != out[0].NewDigest || w.head(t, w.stable) != out[0].NewDigest {
		t.Fatal("the tags are not on the candidate")
	}
}
