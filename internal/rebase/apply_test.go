package rebase

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/buildpacks/lifecycle/platform"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/registry"
)

// runImage is a linux/amd64 run image of n random layers.
func runImage(t *testing.T, n int) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers(t, n)...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// The apply step without root, on go-containerregistry's in-process
// registry: Stage pushes the lifecycle rebaser's result by digest and moves
// nothing; Apply moves the image's tag and its other tags to that same
// digest and records the previous one; a tag moved since the sweep looked
// stops the move with nothing moved.
func TestApplyStageAndMove(t *testing.T) {
	host, reg := inProcessRegistry(t)
	ctx := context.Background()
	put := func(ref string, img v1.Image) string {
		r, _ := name.ParseReference(ref, name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	old, newRun := runImage(t, 2), runImage(t, 2)
	put(host+"/team/run:v1", old)
	put(host+"/team/run:v2", newRun)
	app, err := mutate.AppendLayers(old, layers(t, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	ocf, _ := old.ConfigFile()
	top := ocf.RootFS.DiffIDs[len(ocf.RootFS.DiffIDs)-1]
	acf, _ := app.ConfigFile()
	acf = acf.DeepCopy()
	acf.Config.Env = append(acf.Config.Env, "CNB_PLATFORM_API=0.15") // the target rules, not the stack ones
	acf.Config.Labels = map[string]string{platform.LifecycleMetadataLabel: fmt.Sprintf(`{"runImage":{"topLayer":%q,"reference":%q,"image":%q}}`, top, host+"/team/run@sha256:x", host+"/team/run")}
	if app, err = mutate.ConfigFile(app, acf); err != nil {
		t.Fatal(err)
	}
	latest, stable := host+"/team/app:latest", host+"/team/app:stable"
	was := put(latest, app)
	put(stable, app)

	plan := func() Plan {
		ref, _ := name.ParseReference(latest, name.Insecure)
		in, err := Inspect(ctx, reg, ref)
		if err != nil {
			t.Fatal(err)
		}
		runRef, _ := name.ParseReference(host+"/team/run:v2", name.Insecure)
		return Plan{App: in, Rebase: []ChildPlan{{Child: in.Children[0], RunImageRef: runRef, RunImage: newRun, Force: true /* the sweep's name policy decides; tested in decide_test */}},
			Tags: []string{stable}, Seen: map[string]string{latest: was, stable: was}}
	}
	head := func(ref string) string {
		r, _ := name.ParseReference(ref, name.Insecure)
		d, err := reg.Head(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return d.Digest.String()
	}

	staged, err := Stage(ctx, reg, plan(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if head(latest) != was || head(stable) != was || staged.Digest == was {
		t.Fatalf("Stage moved a tag or rebased nothing: latest %s stable %s staged %s", head(latest), head(stable), staged.Digest)
	}
	repo, _ := name.NewRepository(host+"/team/app", name.Insecure)
	if err := VerifySameBuild(ctx, reg, repo, was, staged.Digest); err != nil {
		t.Fatalf("the staged image is not a rebase of the app: %v", err)
	}
	cand, _ := remote.Image(repo.Digest(staged.Digest))
	ccf, _ := cand.ConfigFile()
	ncf, _ := newRun.ConfigFile()
	if ccf.RootFS.DiffIDs[0] != ncf.RootFS.DiffIDs[0] || ccf.RootFS.DiffIDs[1] != ncf.RootFS.DiffIDs[1] {
		t.Fatal("the staged image is not on the new run image")
	}

	applied, err := Apply(ctx, reg, plan(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if applied.Digest != staged.Digest || head(latest) != applied.Digest || head(stable) != applied.Digest {
		t.Fatalf("Apply: %s, latest %s, stable %s; want all at the staged (deterministic) %s", applied.Digest, head(latest), head(stable), staged.Digest)
	}
	if prev, err := Records(ctx, reg, repo, applied.Digest); err != nil || prev[0].Digest != was {
		t.Fatalf("no record of the previous digest: %+v %v", prev, err)
	}

	// A tampered plan: promote the original build (on the old run image)
	// over the rebased one — a downgrade — or another repository's tag.
	downgrade := Outcome{Image: latest, Staged: true, NewDigest: was, RunImage: host + "/team/run:v2", Tags: []string{stable},
		Seen: map[string]string{latest: applied.Digest, stable: applied.Digest}}
	elsewhere := downgrade
	elsewhere.NewDigest, elsewhere.Tags = applied.Digest, []string{host + "/prod/app:stable"}
	elsewhere.Seen = map[string]string{latest: applied.Digest, host + "/prod/app:stable": ""}
	for _, o := range []Outcome{downgrade, elsewhere} {
		out, err := Promote(ctx, reg, Report{Images: []Outcome{o}}, nil)
		if err != nil || len(out) != 1 || out[0].Reason != ReasonNotARebase {
			t.Fatalf("a tampered plan was promoted: %+v %v", out, err)
		}
	}
	if head(latest) != applied.Digest || head(stable) != applied.Digest {
		t.Fatal("a refused promote moved a tag")
	}

	// Someone pushes stable after the sweep looked: nothing moves.
	p := plan()
	p.Seen = map[string]string{latest: applied.Digest, stable: applied.Digest}
	other, _ := random.Image(64, 1)
	pushed := put(stable, other)
	p.Rebase[0].RunImage = old
	if _, err := Apply(ctx, reg, p, io.Discard); !errors.Is(err, registry.ErrMovedSinceInspection) {
		t.Fatalf("a tag moved since inspection: %v", err)
	}
	if head(latest) != applied.Digest || head(stable) != pushed {
		t.Fatal("a refused move moved a tag")
	}
}
