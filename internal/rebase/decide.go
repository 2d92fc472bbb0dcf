// Package rebase is `cipack rebase`, the scheduled companion: it inspects
// app images (manifest and config only), resolves each unique run image and
// builder once, decides per image with a pure function, then rebases in
// place with the lifecycle's own phase.Rebaser, triggers rebuilds, or does
// nothing — and reports what it did.
package rebase

import (
	"fmt"
	"slices"
	"strings"

	"github.com/buildpacks/lifecycle/platform"
	"github.com/buildpacks/lifecycle/platform/files"
)

// Verdict is what should happen to one image.
type Verdict string

const (
	UpToDate Verdict = "up-to-date"
	Rebase   Verdict = "rebase"
	Rebuild  Verdict = "rebuild"
	Skipped  Verdict = "skipped"
	Failed   Verdict = "error"
)

// Reasons, in kpack's words where they fit.
const (
	ReasonStack        = "STACK"     // the run image moved
	ReasonBuildpack    = "BUILDPACK" // a buildpack moved in the builder
	ReasonIncompatible = "STACK_INCOMPATIBLE"
	ReasonNotRebasable = "NOT_REBASABLE"
	ReasonNotCNB       = "NOT_CNB"
	ReasonTagsDiverged = "TAGS_DIVERGED" // a fleet tag is not on the image's digest
	// ReasonRunImageMismatch is an image whose lifecycle metadata claims a
	// run image its layers do not sit on: the label was not the
	// lifecycle's (a buildpack's launch.toml labels are applied last and
	// can set it), so no verdict drawn from it can be trusted.
	ReasonRunImageMismatch = "RUN_IMAGE_MISMATCH"
	// ReasonRunImagePinned is an image whose recorded run image name is a
	// digest (and the fleet sets no runImage for it): that name never
	// moves, so it would be "up-to-date" forever, however its base is
	// patched; a buildpack's launch.toml labels can record it too.
	ReasonRunImagePinned = "RUN_IMAGE_PINNED"
	ReasonNone           = ""
)

// AppImage is what decide needs to know of an app image: its CNB metadata.
type AppImage struct {
	Ref             string
	Digest          string
	HasCNBMetadata  bool
	Rebasable       bool   // io.buildpacks.rebasable != "false"
	RunImageTop     string // runImage.topLayer (diffID)
	RunImageName    string // runImage.image
	RunImageMirrors []string
	BaseID          string // io.buildpacks.base.id or stack id
	// RunImageDigest is the digest runImage.reference names, if any.
	RunImageDigest string
	// Layers are the image's diffIDs, bottom first.
	Layers []string
	// RecordedBase are the layers of the run image runImage.reference
	// names (RunImageDigest), read when the run image's top layer moved
	// (a rebase keeps every layer above the recorded top, so a top that
	// is only a lower layer of the real base would keep its upper ones);
	// empty when the image records no digest to read; nil: not read.
	RecordedBase []string
	// Target is the image's os/arch/variant/distro, as the lifecycle's
	// rebaser reads it.
	Target     files.TargetMetadata
	Buildpacks []BuildpackRef
}

// BuildpackRef is a buildpack id and version.
type BuildpackRef struct{ ID, Version string }

func (b BuildpackRef) String() string { return b.ID + "@" + b.Version }

// RunImage is the current state of a run image.
type RunImage struct {
	Ref      string // the name checked
	Digest   string
	TopLayer string // diffID of its top layer
	// Layers are its diffIDs, bottom first; nil when not read (then the
	// image's layers are not cross-checked).
	Layers []string
	BaseID string
	Target files.TargetMetadata
	// Missing says the run image is an index without an image for the
	// app's Platform.
	Missing  bool
	Platform string
	// Pinned says Ref is a digest the image records as its run image's
	// name (not the fleet's runImage): it never moves.
	Pinned bool
}

// Builder is the current state of a builder: its buildpacks by id.
type Builder struct {
	Ref        string
	Buildpacks map[string][]string // id → versions the builder ships
}

// Decision is decide's answer.
type Decision struct {
	Verdict Verdict
	Reason  string
	Detail  string
}

// Decide is the heart of cipack rebase: a pure function of the image's
// metadata, the current run image and (when known) the current builder.
// Like kpack, any buildpack or builder change means a rebuild; only a run
// image change on a compatible base is a rebase.
func Decide(app AppImage, run RunImage, builder *Builder) Decision {
	if !app.HasCNBMetadata {
		return Decision{Skipped, ReasonNotCNB, "the image has no io.buildpacks.lifecycle.metadata label: it was not built with buildpacks"}
	}
	if d, forged := runImageMismatch(app, run); forged {
		return d
	}
	if builder != nil {
		if moved := movedBuildpacks(app.Buildpacks, builder); len(moved) > 0 {
			return Decision{Rebuild, ReasonBuildpack, strings.Join(moved, ", ")}
		}
	}
	if run.Pinned {
		return Decision{Failed, ReasonRunImagePinned, fmt.Sprintf("it records its run image by digest, %s: that name never moves, so no rebase would ever be due however its base is patched; set runImage for it in the fleet (the run image's tag) to keep it patched", run.Ref)}
	}
	if run.Missing {
		return Decision{Rebuild, ReasonIncompatible, fmt.Sprintf("run image %s has no %s image: rebuild on a run image that has one", run.Ref, run.Platform)}
	}
	if run.TopLayer == "" || run.TopLayer == app.RunImageTop {
		return Decision{UpToDate, ReasonNone, "run image unchanged"}
	}
	if !app.Rebasable {
		return Decision{Skipped, ReasonNotRebasable, "io.buildpacks.rebasable=false: the image's buildpacks forbid rebasing; rebuild it instead"}
	}
	if why := incompatible(app, run); why != "" {
		return Decision{Rebuild, ReasonIncompatible, why}
	}
	return Decision{Rebase, ReasonStack, fmt.Sprintf("run image %s moved: top layer %s → %s", run.Ref, short(app.RunImageTop), short(run.TopLayer))}
}

// runImageMismatch cross-checks what the image's lifecycle metadata
// says of its run image against its layers (when the run image's layers
// are known): its recorded top layer must be one of its layers, and when
// that top layer is the run image's own as it is now, the image must sit
// on that run image (SitsOn). A run image that changed below an
// unchanged top layer is a rebase, unless the image claims to have been
// built on exactly this run image digest: then the label lies.
func runImageMismatch(app AppImage, run RunImage) (Decision, bool) {
	if run.Layers == nil || run.Missing {
		return Decision{}, false
	}
	mismatch := func(why string) (Decision, bool) {
		return Decision{Failed, ReasonRunImageMismatch, fmt.Sprintf("%s: its io.buildpacks.lifecycle.metadata was not written by the lifecycle (a buildpack's launch.toml labels can set it); rebuild it and check its buildpacks", why)}, true
	}
	if !slices.Contains(app.Layers, app.RunImageTop) {
		return mismatch(fmt.Sprintf("it records run image top layer %s, which is not one of its layers", short(app.RunImageTop)))
	}
	if run.TopLayer != app.RunImageTop {
		return baseMismatch(app, mismatch)
	}
	if SitsOn(app.Layers, app.RunImageTop, run.Layers) {
		return Decision{}, false
	}
	if app.RunImageDigest != "" && app.RunImageDigest == run.Digest {
		return mismatch(fmt.Sprintf("it records run image %s@%s, whose layers it does not sit on", run.Ref, short(run.Digest)))
	}
	return Decision{Rebase, ReasonStack, fmt.Sprintf("run image %s moved below its unchanged top layer %s", run.Ref, short(run.TopLayer))}, true
}

// baseMismatch checks, where the run image moved (a rebase is due), that
// the image sits on the run image it records (RecordedBase, when read):
// a recorded top layer that is only a lower layer of its real base would
// have the rebase keep that base's upper layers over the new one.
func baseMismatch(app AppImage, mismatch func(string) (Decision, bool)) (Decision, bool) {
	switch {
	case app.RecordedBase == nil:
		return Decision{}, false
	case len(app.RecordedBase) == 0:
		return mismatch("it records no run image digest (runImage.reference) whose layers its base could be checked against")
	case !SitsOn(app.Layers, app.RunImageTop, app.RecordedBase):
		return mismatch(fmt.Sprintf("it does not sit on the run image it records (%s, top layer %s)", short(app.RunImageDigest), short(app.RunImageTop)))
	}
	return Decision{}, false
}

// SitsOn is the one "sits on the run image" rule: an image's layers
// (diffIDs, bottom first) begin with exactly the run image's layers, the
// run image's top is the top layer the image records, and the image has
// layers of its own above it. Nothing hides below the app under a base
// the image declares itself.
func SitsOn(layers []string, top string, base []string) bool {
	return len(base) > 0 && len(layers) > len(base) && slices.Equal(layers[:len(base)], base) && base[len(base)-1] == top
}

// movedBuildpacks lists the image's buildpacks whose version the builder no
// longer ships, as "id a → b" (or "id a → removed").
func movedBuildpacks(used []BuildpackRef, b *Builder) []string {
	var out []string
	for _, bp := range used {
		versions, ok := b.Buildpacks[bp.ID]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s %s → removed from %s", bp.ID, bp.Version, b.Ref))
		case !slices.Contains(versions, bp.Version):
			out = append(out, fmt.Sprintf("%s %s → %s", bp.ID, bp.Version, strings.Join(versions, "/")))
		}
	}
	return out
}

// incompatible says why the run image cannot take the app, with the
// lifecycle rebaser's own target rule (platform.TargetSatisfiedForRebase:
// os, architecture, variant and distro), so a dry run never plans a rebase
// the rebaser refuses. The base id check is cipack's on top, as kpack
// does: a different base is a different stack even on the same distro.
func incompatible(app AppImage, run RunImage) string {
	switch {
	case app.BaseID != "" && run.BaseID != "" && app.BaseID != run.BaseID:
		return fmt.Sprintf("new run image base %q differs from the image's %q", run.BaseID, app.BaseID)
	case (app.Target.OS != "" || app.Target.Arch != "") && !platform.TargetSatisfiedForRebase(run.Target, app.Target):
		return fmt.Sprintf("new run image target %s does not satisfy the image's %s (the lifecycle's rebase rule)", target(run.Target), target(app.Target))
	}
	return ""
}

func target(t files.TargetMetadata) string {
	s := t.OS + "/" + t.Arch
	if t.ArchVariant != "" {
		s += "/" + t.ArchVariant
	}
	if t.Distro != nil {
		s += " " + t.Distro.Name + " " + t.Distro.Version
	}
	return strings.TrimSpace(s)
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// NamePolicy decides whether the rebase may record runImage under a name
// the image does not list. Since platform API 0.12 the lifecycle refuses
// that unless forced; cipack forces only when this policy allows it. The
// match is the lifecycle's own (files.RunImageForExport.Contains: names
// normalized, tags and digests ignored). Force is a name policy only: the
// target check in Decide has already passed whatever it says.
func NamePolicy(app AppImage, runImage string, allowRename bool) (force bool, err error) {
	md := files.RunImageForExport{Image: app.RunImageName, Mirrors: app.RunImageMirrors}
	if md.Contains(runImage) {
		return false, nil
	}
	if allowRename {
		return true, nil
	}
	return false, fmt.Errorf("run image %s is neither the image's recorded run image %q nor one of its mirrors %v: set allowRunImageRename: true in the fleet entry to allow it",
		runImage, app.RunImageName, app.RunImageMirrors)
}

// Diverged lists the fleet tags that do not point at digest, as
// "tag (at X)"; seen maps each tag to its digest ("" for absent).
func Diverged(digest string, tags []string, seen map[string]string) []string {
	var out []string
	for _, t := range tags {
		if d := seen[t]; d != digest {
			at := d
			if at == "" {
				at = "absent"
			} else {
				at = short(at)
			}
			out = append(out, fmt.Sprintf("%s (at %s)", t, at))
		}
	}
	return out
}

// WithTags folds diverged fleet tags into a decision: when nothing else is
// to be done they are the work (the tags move back onto the image), and a
// rebase moves them anyway.
func WithTags(d Decision, diverged []string) Decision {
	if len(diverged) == 0 {
		return d
	}
	note := "tags not on the image's digest: " + strings.Join(diverged, ", ")
	if d.Verdict == UpToDate {
		return Decision{Rebase, ReasonTagsDiverged, note + "; they will be moved back onto it"}
	}
	d.Detail += "; " + note
	return d
}

// ChildDecision is the decision for one platform's image of a tag.
type ChildDecision struct {
	Decision
	Platform string // os/arch[/variant]
	Digest   string
	RunImage string
}

// Combine makes one decision of an image's platforms, the way a tag moves
// as a whole: any rebuild makes the image a rebuild; otherwise any rebase
// a rebase (the other platforms are kept as they are); otherwise up to
// date. A skipped platform (not rebasable) makes the image skipped, and a
// failed one (RUN_IMAGE_MISMATCH) fails it. Read errors never get here:
// any error fails the whole image before it is decided. A single image
// passes through unchanged.
func Combine(children []ChildDecision) Decision {
	if len(children) == 1 {
		return children[0].Decision
	}
	pick := func(v Verdict) []ChildDecision {
		var out []ChildDecision
		for _, c := range children {
			if c.Verdict == v {
				out = append(out, c)
			}
		}
		return out
	}
	detail := func(cs []ChildDecision) string {
		var parts []string
		for _, c := range cs {
			parts = append(parts, c.Platform+": "+c.Detail)
		}
		return strings.Join(parts, "; ")
	}
	// A platform whose records cannot be trusted fails the whole tag.
	if f := pick(Failed); len(f) > 0 {
		return Decision{Failed, f[0].Reason, detail(f)}
	}
	if r := pick(Rebuild); len(r) > 0 {
		return Decision{Rebuild, r[0].Reason, detail(r)}
	}
	// A platform whose buildpacks forbid rebasing holds the whole tag
	// back: it moves as one.
	if s := pick(Skipped); len(s) > 0 {
		return Decision{Skipped, s[0].Reason, detail(s)}
	}
	if r := pick(Rebase); len(r) > 0 {
		return Decision{Rebase, r[0].Reason, detail(r)}
	}
	return Decision{UpToDate, ReasonNone, "run image unchanged for " + fmt.Sprint(len(children)) + " platforms"}
}

// PlatformOutcome is what happened to one platform's image of an index.
type PlatformOutcome struct {
	Platform  string  `json:"platform"`
	Verdict   Verdict `json:"verdict"`
	Reason    string  `json:"reason,omitempty"`
	Detail    string  `json:"detail,omitempty"`
	OldDigest string  `json:"oldDigest"`
	NewDigest string  `json:"newDigest,omitempty"`
}

func platformOutcomes(cs []ChildDecision) []PlatformOutcome {
	out := make([]PlatformOutcome, len(cs))
	for i, c := range cs {
		out[i] = PlatformOutcome{Platform: c.Platform, Verdict: c.Verdict, Reason: c.Reason, Detail: c.Detail, OldDigest: c.Digest}
	}
	return out
}
