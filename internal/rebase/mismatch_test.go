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
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A buildpack can set io.buildpacks.lifecycle.metadata through its
// launch.toml labels (the lifecycle applies them last). An image whose
// record claims a run image its layers do not sit on is a mismatch in the
// sweep, never "up-to-date", and nothing of it moves.
func TestSweepReportsAForgedRunImageRecordAsAMismatch(t *testing.T) {
	host, reg := inProcessRegistry(t)
	ctx := context.Background()
	put := func(ref string, img v1.Image) string {
		r, _ := name.ParseReference(ref, name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		return mustDigest(t, img)
	}
	top := func(img v1.Image) string {
		cf, _ := img.ConfigFile()
		return cf.RootFS.DiffIDs[len(cf.RootFS.DiffIDs)-1].String()
	}
	run, frozen := host+"/team/run:latest", host+"/team/frozen:1"
	current := runImage(t, 2)
	runDigest := put(run, current)
	// app builds an image on base with the record given.
	app := func(tag string, base v1.Image, appLayers []v1.Layer, image, reference, topLayer string) string {
		img, err := mutate.AppendLayers(base, appLayers...)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.Config.Labels = map[string]string{platform.LifecycleMetadataLabel: fmt.Sprintf(`{"runImage":{"topLayer":%q,"reference":%q,"image":%q}}`, topLayer, reference, image)}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		ref := host + "/team/" + tag + ":latest"
		put(ref, img)
		return ref
	}
	genuine := app("genuine", current, layers(t, 1), run, host+"/team/run@"+runDigest, top(current))
	// Built on an old, unpatched base; the record claims the current one.
	old := runImage(t, 2)
	claimsCurrent := app("claims-current", old, layers(t, 1), run, host+"/team/run@"+runDigest, top(current))
	// A frozen "run image" the attacker pushed, whose top layer is not
	// among the image's layers.
	frozenImg := runImage(t, 1)
	frozenDigest := put(frozen, frozenImg)
	claimsFrozen := app("claims-frozen", old, layers(t, 1), frozen, host+"/team/frozen@"+frozenDigest, top(frozenImg))
	// A frozen "run image" made of one of the app's own layers: its top
	// is among the image's layers, but the image does not sit on it.
	own := layers(t, 1)
	ownFrozen, _ := mutate.AppendLayers(empty.Image, own...)
	ownDigest := put(host+"/team/own:1", ownFrozen)
	claimsOwnLayer := app("claims-own-layer", old, own, host+"/team/own:1", host+"/team/own@"+ownDigest, top(ownFrozen))

	targets := []Target{{Image: genuine}, {Image: claimsCurrent}, {Image: claimsFrozen}, {Image: claimsOwnLayer}}
	before := map[string]string{}
	for _, tg := range targets {
		r, _ := name.ParseReference(tg.Image, name.Insecure)
		d, _ := reg.Head(ctx, r)
		before[tg.Image] = d.Digest.String()
	}
	for _, dry := range []bool{true, false} {
		out := Sweep(ctx, targets, Options{DryRun: dry}, Deps{Registry: reg, Log: io.Discard})
		if out[0].Verdict != UpToDate || out[0].Error != "" {
			t.Fatalf("the genuine image: %+v, want up-to-date", out[0])
		}
		for _, o := range out[1:] {
			if o.Verdict != Failed || o.Reason != ReasonRunImageMismatch || !o.Failed() || !strings.Contains(o.Error, "lifecycle") || o.Applied {
				t.Errorf("dry run %v: %s: %s %s %q, want a %s failure", dry, o.Image, o.Verdict, o.Reason, o.Error, ReasonRunImageMismatch)
			}
		}
	}
	for _, tg := range targets {
		r, _ := name.ParseReference(tg.Image, name.Insecure)
		if d, _ := reg.Head(ctx, r); d.Digest.String() != before[tg.Image] {
			t.Errorf("%s moved", tg.Image)
		}
	}
}
