package rebase

import (
	"strings"
	"testing"

	"github.com/buildpacks/lifecycle/platform/files"
)

func TestDecide(t *testing.T) {
	app := AppImage{
		Ref: "r.example/app:latest", HasCNBMetadata: true, Rebasable: true,
		RunImageTop: "sha256:old", RunImageName: "r.example/run:jammy", BaseID: "io.example.jammy",
		Target:     files.TargetMetadata{OS: "linux", Arch: "amd64", Distro: &files.OSDistro{Name: "ubuntu", Version: "22.04"}},
		Buildpacks: []BuildpackRef{{"bp/node", "1.0.0"}, {"bp/npm", "2.0.0"}},
	}
	sameRun := RunImage{Ref: "r.example/run:jammy", TopLayer: "sha256:old", BaseID: "io.example.jammy",
		Target: files.TargetMetadata{OS: "linux", Arch: "amd64", Distro: &files.OSDistro{Name: "ubuntu", Version: "22.04"}}}
	newRun := sameRun
	newRun.TopLayer = "sha256:new"
	builder := &Builder{Ref: "r.example/builder", Buildpacks: map[string][]string{"bp/node": {"1.0.0"}, "bp/npm": {"2.0.0"}}}
	bumped := &Builder{Ref: "r.example/builder", Buildpacks: map[string][]string{"bp/node": {"1.1.0"}, "bp/npm": {"2.0.0"}}}
	removed := &Builder{Ref: "r.example/builder", Buildpacks: map[string][]string{"bp/node": {"1.0.0"}}}
	both := &Builder{Ref: "r.example/builder", Buildpacks: map[string][]string{"bp/node": {"1.0.0", "1.1.0"}, "bp/npm": {"2.0.0"}}}

	with := func(f func(*AppImage)) AppImage { a := app; f(&a); return a }
	runWith := func(f func(*RunImage)) RunImage { r := newRun; f(&r); return r }

	cases := []struct {
		name    string
		app     AppImage
		run     RunImage
		builder *Builder
		verdict Verdict
		reason  string
		detail  string
	}{
		{"nothing moved", app, sameRun, builder, UpToDate, ReasonNone, "unchanged"},
		{"nothing moved, no builder known", app, sameRun, nil, UpToDate, ReasonNone, ""},
		{"run image moved", app, newRun, builder, Rebase, ReasonStack, "sha256:old → sha256:new"},
		{"run image moved, no builder known", app, newRun, nil, Rebase, ReasonStack, ""},
		{"buildpack bumped", app, sameRun, bumped, Rebuild, ReasonBuildpack, "bp/node 1.0.0 → 1.1.0"},
		{"buildpack bumped and run image moved: rebuild wins", app, newRun, bumped, Rebuild, ReasonBuildpack, ""},
		{"buildpack removed from builder", app, sameRun, removed, Rebuild, ReasonBuildpack, "bp/npm 2.0.0 → removed"},
		{"builder still ships the old version too", app, sameRun, both, UpToDate, ReasonNone, ""},
		{"not rebasable", with(func(a *AppImage) { a.Rebasable = false }), newRun, builder, Skipped, ReasonNotRebasable, "rebasable=false"},
		{"not rebasable but nothing moved", with(func(a *AppImage) { a.Rebasable = false }), sameRun, builder, UpToDate, ReasonNone, ""},
		{"not a CNB image", AppImage{Ref: "r.example/nginx"}, newRun, builder, Skipped, ReasonNotCNB, "not built with buildpacks"},
		{"other base id", app, runWith(func(r *RunImage) { r.BaseID = "io.example.noble" }), builder, Rebuild, ReasonIncompatible, "io.example.noble"},
		{"other architecture", app, runWith(func(r *RunImage) { r.Target.Arch = "arm64" }), builder, Rebuild, ReasonIncompatible, "linux/arm64"},
		{"other os", app, runWith(func(r *RunImage) { r.Target.OS = "windows" }), builder, Rebuild, ReasonIncompatible, "windows/amd64"},
		// The rebaser's own rule also checks the variant and the distro:
		// a dry run must not plan what the real rebase refuses.
		{"other variant", with(func(a *AppImage) { a.Target.ArchVariant = "v8" }), runWith(func(r *RunImage) { r.Target.ArchVariant = "v7" }), builder, Rebuild, ReasonIncompatible, "linux/amd64/v7"},
		{"other distro version", app, runWith(func(r *RunImage) { r.Target.Distro = &files.OSDistro{Name: "ubuntu", Version: "24.04"} }), builder, Rebuild, ReasonIncompatible, "ubuntu 24.04"},
		{"distro unknown on the run image is a wildcard", app, runWith(func(r *RunImage) { r.Target.Distro = nil }), builder, Rebase, ReasonStack, ""},
		{"base id unknown on one side is not a conflict", with(func(a *AppImage) { a.BaseID = "" }), newRun, builder, Rebase, ReasonStack, ""},
		{"run index lacks the platform", app, RunImage{Ref: "r.example/run:jammy", Missing: true, Platform: "linux/arm64"}, builder, Rebuild, ReasonIncompatible, "no linux/arm64 image"},
		// The record cross-checked against the layers (SitsOn), once the
		// run image's layers are read.
		{"sits on the run image", onLayers(app, "sha256:b1", "sha256:old", "sha256:a1"), layered(sameRun, "sha256:b1", "sha256:old"), builder, UpToDate, ReasonNone, ""},
		{"recorded top is not one of its layers", onLayers(app, "sha256:x1", "sha256:x2", "sha256:a1"), layered(sameRun, "sha256:b1", "sha256:old"), builder, Failed, ReasonRunImageMismatch, "not one of its layers"},
		{"recorded top missing, even when the run image moved", onLayers(app, "sha256:x1", "sha256:a1"), layered(newRun, "sha256:b1", "sha256:new"), builder, Failed, ReasonRunImageMismatch, "not one of its layers"},
		{"claims exactly this run image digest, but other layers below", with(func(a *AppImage) {
			*a = onLayers(*a, "sha256:x1", "sha256:old", "sha256:a1")
			a.RunImageDigest = "sha256:run"
		}), layered(sameRun, "sha256:b1", "sha256:old"), builder, Failed, ReasonRunImageMismatch, "does not sit on"},
		{"the run image moved below an unchanged top layer", with(func(a *AppImage) {
			*a = onLayers(*a, "sha256:x1", "sha256:old", "sha256:a1")
			a.RunImageDigest = "sha256:older"
		}), layered(sameRun, "sha256:b1", "sha256:old"), builder, Rebase, ReasonStack, "below its unchanged top layer"},
		{"a mismatch wins over a buildpack update", onLayers(app, "sha256:x1", "sha256:a1"), layered(sameRun, "sha256:b1", "sha256:old"), bumped, Failed, ReasonRunImageMismatch, ""},
		{"the run image moved, on its layers", onLayers(app, "sha256:b1", "sha256:old", "sha256:a1"), layered(newRun, "sha256:b2", "sha256:new"), builder, Rebase, ReasonStack, "sha256:old → sha256:new"},
		// Where the run image moved, the image must sit on the run image
		// it records (read by digest): a top layer that is only a lower
		// layer of its base would keep the base's upper layers.
		{"the run image moved, on the base it records", recorded(onLayers(app, "sha256:b1", "sha256:old", "sha256:a1"), "sha256:b1", "sha256:old"), layered(newRun, "sha256:b2", "sha256:new"), builder, Rebase, ReasonStack, ""},
		{"the recorded top is a lower layer of its base", recorded(onLayers(with(func(a *AppImage) { a.RunImageTop = "sha256:b1" }), "sha256:b1", "sha256:old", "sha256:a1"), "sha256:b1", "sha256:old"), layered(newRun, "sha256:b2", "sha256:new"), builder, Failed, ReasonRunImageMismatch, "does not sit on the run image it records"},
		{"no recorded digest to check against", recorded(onLayers(app, "sha256:b1", "sha256:old", "sha256:a1")), layered(newRun, "sha256:b2", "sha256:new"), builder, Failed, ReasonRunImageMismatch, "records no run image digest"},
		// A run image name pinned by digest never moves: never up to date.
		{"a pinned run image", app, runWith(func(r *RunImage) { r.TopLayer, r.Pinned = "sha256:old", true }), builder, Failed, ReasonRunImagePinned, "fleet"},
		{"a pinned run image and a buildpack moved: rebuild", app, runWith(func(r *RunImage) { r.TopLayer, r.Pinned = "sha256:old", true }), bumped, Rebuild, ReasonBuildpack, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.app, c.run, c.builder)
			if d.Verdict != c.verdict || d.Reason != c.reason || !strings.Contains(d.Detail, c.detail) {
				t.Fatalf("got %+v, want %s %q containing %q", d, c.verdict, c.reason, c.detail)
			}
		})
	}
}

func onLayers(a AppImage, layers ...string) AppImage { a.Layers = layers; return a }

func recorded(a AppImage, base ...string) AppImage {
	a.RecordedBase, a.RunImageDigest = append([]string{}, base...), "sha256:recorded"
	return a
}

func layered(r RunImage, layers ...string) RunImage {
	r.Layers, r.Digest = layers, "sha256:run"
	return r
}

func TestNamePolicy(t *testing.T) {
	app := AppImage{RunImageName: "r.example/run:jammy", RunImageMirrors: []string{"mirror.example/run:jammy"}}
	cases := []struct {
		name     string
		run      string
		allow    bool
		force    bool
		errorHas string
	}{
		{"recorded name", "r.example/run:jammy", false, false, ""},
		{"recorded name by digest", "r.example/run:jammy@sha256:" + strings.Repeat("a", 64), false, false, ""},
		{"a recorded mirror", "mirror.example/run:jammy", false, false, ""},
		{"docker hub spelling", "run", false, false, "allowRunImageRename"},
		{"another name refused", "r.example/other:1", false, false, "neither"},
		{"another name allowed by the fleet", "r.example/other:1", true, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			force, err := NamePolicy(app, c.run, c.allow)
			if force != c.force || (c.errorHas == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.errorHas)) {
				t.Fatalf("force %v err %v; want force %v, error containing %q", force, err, c.force, c.errorHas)
			}
		})
	}
	hub := AppImage{RunImageName: "index.docker.io/library/run:latest"}
	if f, err := NamePolicy(hub, "run", false); f || err != nil {
		t.Fatalf("names are compared normalized: %v %v", f, err)
	}
}

// An index's verdict combines its platforms' (the tag moves as one).
func TestCombine(t *testing.T) {
	up := ChildDecision{Decision: Decision{UpToDate, ReasonNone, "run image unchanged"}, Platform: "linux/arm64"}
	rebase := ChildDecision{Decision: Decision{Rebase, ReasonStack, "top layer a → b"}, Platform: "linux/amd64"}
	rebuild := ChildDecision{Decision: Decision{Rebuild, ReasonIncompatible, "no linux/arm64 image"}, Platform: "linux/arm64"}
	skipped := ChildDecision{Decision: Decision{Skipped, ReasonNotRebasable, "rebasable=false"}, Platform: "linux/arm64"}
	for _, c := range []struct {
		name     string
		children []ChildDecision
		verdict  Verdict
		reason   string
		detail   string
	}{
		{"single image passes through", []ChildDecision{rebase}, Rebase, ReasonStack, "top layer a → b"},
		{"nothing moved", []ChildDecision{up, up}, UpToDate, ReasonNone, "2 platforms"},
		{"one platform moved", []ChildDecision{rebase, up}, Rebase, ReasonStack, "linux/amd64: top layer"},
		{"any rebuild wins", []ChildDecision{rebase, rebuild}, Rebuild, ReasonIncompatible, "linux/arm64: no linux/arm64 image"},
		{"a platform not rebasable holds the tag", []ChildDecision{rebase, skipped}, Skipped, ReasonNotRebasable, "linux/arm64"},
		{"a platform whose record is forged fails the tag", []ChildDecision{rebase, rebuild, {Decision: Decision{Failed, ReasonRunImageMismatch, "not one of its layers"}, Platform: "linux/arm64"}}, Failed, ReasonRunImageMismatch, "linux/arm64: not one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Combine(c.children)
			if d.Verdict != c.verdict || d.Reason != c.reason || !strings.Contains(d.Detail, c.detail) {
				t.Fatalf("got %+v, want %s %s containing %q", d, c.verdict, c.reason, c.detail)
			}
			if c.verdict == Rebase && strings.Contains(d.Detail, "unchanged") {
				t.Errorf("the detail should name only the platforms that move: %q", d.Detail)
			}
		})
	}
}
