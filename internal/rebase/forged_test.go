package rebase

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/buildpacks/lifecycle/platform"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/registry"
)

// record is the run image part of a lifecycle metadata label.
type record struct {
	TopLayer  string   `json:"topLayer"`
	Reference string   `json:"reference"`
	Image     string   `json:"image"`
	Mirrors   []string `json:"mirrors,omitempty"`
}

// forgedWorld pushes images to an in-process registry reachable as two
// registries (127.0.0.1:PORT and localhost:PORT), so that one name can be
// "in the app's registry" and another not.
type forgedWorld struct {
	t          *testing.T
	reg        *registry.Client
	ip, lh     string // the two hosts
	runV1      v1.Image
	runV1Layer []string
}

func newForgedWorld(t *testing.T) *forgedWorld {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ip := strings.TrimPrefix(srv.URL, "http://")
	lh := strings.Replace(ip, "127.0.0.1", "localhost", 1)
	reg, err := registry.New(registry.Options{Insecure: []string{ip, lh}})
	if err != nil {
		t.Fatal(err)
	}
	w := &forgedWorld{t: t, reg: reg, ip: ip, lh: lh, runV1: runImage(t, 2)}
	cf, _ := w.runV1.ConfigFile()
	w.runV1Layer = diffIDs(cf)
	return w
}

func (w *forgedWorld) put(ref string, img v1.Image) string {
	w.t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		w.t.Fatal(err)
	}
	return mustDigest(w.t, img)
}

// app pushes an app on base with the run image record given, to tag.
func (w *forgedWorld) app(tag string, base v1.Image, rec record) string {
	w.t.Helper()
	img, err := mutate.AppendLayers(base, layers(w.t, 1)...)
	if err != nil {
		w.t.Fatal(err)
	}
	label, _ := json.Marshal(map[string]record{"runImage": rec})
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Env = append(cf.Config.Env, "CNB_PLATFORM_API=0.15")
	cf.Config.Labels = map[string]string{platform.LifecycleMetadataLabel: string(label)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		w.t.Fatal(err)
	}
	w.put(tag, img)
	return tag
}

func (w *forgedWorld) sweep(targets ...Target) []Outcome {
	return Sweep(context.Background(), targets, Options{DryRun: true}, Deps{Registry: w.reg, Log: io.Discard})
}

// A record whose top layer is a lower layer of the run image it records
// (R1 of R1,R2): once the run image moves, a rebase would keep the old R2
// above the new base. The image is read against the run image it records
// by digest: a mismatch, and nothing moves; the genuine image rebases.
func TestSweepRefusesATopLayerBelowTheRecordedRunImagesTop(t *testing.T) {
	w := newForgedWorld(t)
	run := w.ip + "/team/run:latest"
	v1Ref := w.ip + "/team/run@" + w.put(run, w.runV1)
	genuine := w.app(w.ip+"/team/genuine:latest", w.runV1, record{TopLayer: w.runV1Layer[1], Reference: v1Ref, Image: run})
	forged := w.app(w.ip+"/team/forged:latest", w.runV1, record{TopLayer: w.runV1Layer[0], Reference: v1Ref, Image: run})
	gone := w.app(w.ip+"/team/gone:latest", w.runV1, record{TopLayer: w.runV1Layer[1], Reference: w.ip + "/team/run@sha256:" + strings.Repeat("0", 64), Image: run})
	w.put(run, runImage(t, 2))
	before := w.head(forged)
	out := w.sweep(Target{Image: genuine}, Target{Image: forged}, Target{Image: gone})
	if out[2].Verdict != Failed || !strings.Contains(out[2].Error, "cannot be read") {
		t.Fatalf("a recorded run image that cannot be read: %+v, want an error naming it", out[2])
	}
	if out[0].Verdict != Rebase || out[0].Error != "" {
		t.Fatalf("the genuine image: %+v, want a rebase", out[0])
	}
	if out[1].Verdict != Failed || out[1].Reason != ReasonRunImageMismatch || !strings.Contains(out[1].Error, "does not sit on the run image it records") {
		t.Fatalf("a top layer below the recorded run image's top: %+v, want %s", out[1], ReasonRunImageMismatch)
	}
	real := Sweep(context.Background(), []Target{{Image: forged}}, Options{}, Deps{Registry: w.reg, Log: io.Discard})
	if real[0].Reason != ReasonRunImageMismatch || real[0].Applied || w.head(forged) != before {
		t.Fatalf("a real sweep: %+v", real[0])
	}
}

func (w *forgedWorld) head(ref string) string {
	w.t.Helper()
	r, _ := name.ParseReference(ref, name.Insecure)
	d, err := w.reg.Head(context.Background(), r)
	if err != nil {
		w.t.Fatal(err)
	}
	return d.Digest.String()
}

// A recorded run image name pinned by digest never moves: after the run
// image's tag moved, the image is RUN_IMAGE_PINNED (naming the name and
// the fleet's runImage), not up-to-date; with the fleet's runImage set,
// that run image is checked and the image rebases.
func TestSweepReportsAPinnedRunImageName(t *testing.T) {
	w := newForgedWorld(t)
	run := w.ip + "/team/run:latest"
	pinned := w.ip + "/team/run@" + w.put(run, w.runV1)
	app := w.app(w.ip+"/team/app:latest", w.runV1, record{TopLayer: w.runV1Layer[1], Reference: pinned, Image: pinned})
	w.put(run, runImage(t, 2))
	out := w.sweep(Target{Image: app})
	if out[0].Verdict != Failed || out[0].Reason != ReasonRunImagePinned || !strings.Contains(out[0].Error, pinned) || !strings.Contains(out[0].Error, "runImage") {
		t.Fatalf("a pinned run image name: %+v, want %s naming it", out[0], ReasonRunImagePinned)
	}
	if out := w.sweep(Target{Image: app, RunImage: run}); out[0].Verdict != Rebase || out[0].Error != "" {
		t.Fatalf("with the fleet's runImage: %+v, want a rebase", out[0])
	}
}

// A mirror the image records in the app's own registry (the lifecycle's
// choice prefers it) that is a frozen copy of the old base: followed, it
// would keep the image up-to-date forever. Only a mirror the fleet lists
// is followed; otherwise the recorded run image is checked.
func TestSweepFollowsOnlyMirrorsTheFleetLists(t *testing.T) {
	w := newForgedWorld(t)
	primary := w.lh + "/team/run:latest"
	v1Ref := w.lh + "/team/run@" + w.put(primary, w.runV1)
	frozen := w.ip + "/team/frozen:latest"
	w.put(frozen, w.runV1)
	app := w.app(w.ip+"/team/app:latest", w.runV1, record{TopLayer: w.runV1Layer[1], Reference: v1Ref, Image: primary, Mirrors: []string{frozen}})
	w.put(primary, runImage(t, 2))
	if out := w.sweep(Target{Image: app}); out[0].Verdict != Rebase || out[0].RunImage != primary {
		t.Fatalf("a recorded mirror the fleet does not list: %+v, want a rebase on %s", out[0], primary)
	}
	if out := w.sweep(Target{Image: app, RunImageMirrors: []string{frozen}}); out[0].Verdict != UpToDate || out[0].RunImage != frozen {
		t.Fatalf("a mirror the fleet lists: %+v, want it followed", out[0])
	}
}
