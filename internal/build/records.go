package build

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/platform"
	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// checkRecords checks, after export and before any tag moves, what the
// pushed image records against what cipack and the lifecycle wrote. A
// buildpack's launch.toml labels are applied last by the lifecycle: one
// in the io.buildpacks. namespace could claim a frozen run image (rebase
// would then call the image up-to-date forever), another source or
// fingerprint, other buildpacks. The split refused such labels before
// export; here both modes see the layers dir after the fact (the
// creator is one process) and the image itself.
func checkRecords(p *buildPlan, w *workdirs, cf *v1.ConfigFile, read runRead) error {
	names := p.names(w)
	if err := refuseUnsafeForExport(w.layers, names); err != nil {
		return err
	}
	if err := refuseBuildpackLabels(w.layers, names); err != nil {
		return err
	}
	labels := cf.Config.Labels
	run := read.base
	if read.err != nil {
		return read.err
	}
	for _, check := range []func() error{
		func() error { return checkLifecycleRecord(labels, run, cf, p.refs.runImage, p.builder.RunImage) },
		func() error { return checkProjectRecord(labels, w.project) },
		func() error { return checkBuildRecord(labels, p, w) },
		func() error { return checkOwnLabels(labels, run.cf.Config.Labels) },
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// forged is the refusal of a record the image holds.
func forged(label string, err error) error {
	return exit.New(exit.Build, label, fmt.Errorf("the pushed image's record is not what the lifecycle and cipack wrote: %w", err),
		"nothing was tagged: a buildpack (its launch.toml labels) rewrote the record; remove the buildpack or the label")
}

// runBase is the run image cipack chose, on this platform, at the digest
// the preflight read: its config and the digests it may be recorded by.
type runBase struct {
	cf      *v1.ConfigFile
	digests []string
}

// runRead is readRunBase's answer.
type runRead struct {
	base runBase
	err  error
}

func readRunBase(ctx context.Context, reg *registry.Client, refs preflightRefs) (runBase, error) {
	ref := refs.runImage.Context().Digest(refs.runDigest)
	fail := func(err error) (runBase, error) {
		return runBase{}, exit.New(exit.Export, "--run-image", fmt.Errorf("read the run image to check the pushed image: %w", err), "nothing was tagged: rerun the build")
	}
	desc, err := reg.Get(ctx, ref)
	if err != nil {
		return fail(err)
	}
	img, err := registry.ImageOf(desc, ref, registry.HostPlatform())
	if err != nil {
		return fail(err)
	}
	child, err := img.Digest()
	if err != nil {
		return fail(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fail(err)
	}
	return runBase{cf: cf, digests: []string{refs.runDigest, child.String()}}, nil
}

// checkLifecycleRecord: io.buildpacks.lifecycle.metadata must name the
// run image cipack chose (its name, a digest of it, its top layer), and
// the image's layers must sit on that run image's. builder is the
// builder's run image: its mirrors are the only ones a record of that
// image may list.
func checkLifecycleRecord(labels map[string]string, run runBase, cf *v1.ConfigFile, chosen name.Reference, builder files.RunImageForExport) error {
	md, err := cnb.LifecycleMetadata(labels)
	if err == nil && md == nil {
		err = fmt.Errorf("it is missing")
	}
	if err != nil {
		return forged(cnb.LifecycleMetadataLabel, err)
	}
	diffs := run.cf.RootFS.DiffIDs
	if len(diffs) == 0 || md.RunImage.TopLayer != diffs[len(diffs)-1].String() {
		return forged(cnb.LifecycleMetadataLabel, fmt.Errorf("runImage.topLayer %q is not the run image's top layer", md.RunImage.TopLayer))
	}
	if why := onRunImage(runConfig{cf: run.cf}, cf); why != "" {
		return forged(cnb.LifecycleMetadataLabel, fmt.Errorf("%s", why))
	}
	ref, err := name.NewDigest(md.RunImage.Reference, name.WeakValidation)
	if err != nil || !slices.Contains(run.digests, ref.DigestStr()) {
		return forged(cnb.LifecycleMetadataLabel, fmt.Errorf("runImage.reference %q is not the run image cipack chose", md.RunImage.Reference))
	}
	return checkRecordedName(md, chosen, builder)
}

// checkRecordedName: the name and mirrors a rebase later watches. The
// exporter takes them from run.toml, which it reads again at export (in
// the builder, from a platform dir the build user owns): a name of the
// run image pinned by digest, another tag of its repository or a mirror
// of build code's choosing would be watched instead of the run image
// cipack chose, and never move.
func checkRecordedName(md *files.LayersMetadataCompat, chosen name.Reference, builder files.RunImageForExport) error {
	rec := md.RunImage.RunImageForExport
	if !sameName(rec.Image, chosen.Name()) {
		return forged(cnb.LifecycleMetadataLabel, fmt.Errorf("runImage.image %q is not the run image cipack chose, %s", rec.Image, chosen))
	}
	var allowed []string
	if sameName(builder.Image, chosen.Name()) {
		allowed = builder.Mirrors
	}
	for _, m := range rec.Mirrors {
		if !slices.ContainsFunc(allowed, func(a string) bool { return sameName(m, a) }) {
			return forged(cnb.LifecycleMetadataLabel, fmt.Errorf("runImage.mirrors lists %q, which the builder does not name as a mirror of %s", m, chosen))
		}
	}
	// The lifecycle copies the same record into the old stack field,
	// which readers fall back to.
	if st := md.Stack; st != nil && (st.RunImage.Image != rec.Image || !slices.Equal(st.RunImage.Mirrors, rec.Mirrors)) {
		return forged(cnb.LifecycleMetadataLabel, fmt.Errorf("stack.runImage %q is not runImage %q", st.RunImage.Image, rec.Image))
	}
	return nil
}

// sameName reports whether image names want (a normalized Name()), tag
// or digest included.
func sameName(image, want string) bool {
	r, err := name.ParseReference(image, name.WeakValidation)
	if err != nil || want == "" {
		return false
	}
	w, err := name.ParseReference(want, name.WeakValidation)
	return err == nil && r.Name() == w.Name()
}

// checkProjectRecord: io.buildpacks.project.metadata must be the
// project-metadata.toml cipack wrote, as the lifecycle turns it into a
// label (its own type, TOML in, JSON out).
func checkProjectRecord(labels map[string]string, written []byte) error {
	var md files.ProjectMetadata
	if _, err := toml.Decode(string(written), &md); err != nil {
		return fmt.Errorf("read back the project metadata: %w", err)
	}
	want, err := json.Marshal(md)
	if err != nil {
		return err
	}
	if !sameJSON(want, []byte(labels[cnb.ProjectMetadataLabel])) {
		return forged(cnb.ProjectMetadataLabel, fmt.Errorf("it is not the source and fingerprint cipack recorded"))
	}
	return nil
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// checkBuildRecord: every buildpack io.buildpacks.build.metadata lists
// must be one the build had (the builder's, or one the user added), and
// the list one the detector could choose (checkDetected).
func checkBuildRecord(labels map[string]string, p *buildPlan, w *workdirs) error {
	md, err := cnb.BuildMetadata(labels)
	if err == nil && md == nil {
		err = fmt.Errorf("it is missing")
	}
	if err != nil {
		return forged(cnb.BuildMetadataLabel, err)
	}
	known, err := knownVersions(p, w)
	if err != nil {
		return err
	}
	for _, bp := range md.Buildpacks {
		if !slices.Contains(known[bp.ID], bp.Version) {
			return forged(cnb.BuildMetadataLabel, fmt.Errorf("it lists %s@%s, which this build did not have", bp.ID, bp.Version))
		}
	}
	return checkDetected(md.Buildpacks, p, w, known)
}

// knownVersions is every version of each buildpack id the build could
// run.
func knownVersions(p *buildPlan, w *workdirs) (map[string][]string, error) {
	b, err := builderBuildpacks(p)
	if err != nil {
		return nil, err
	}
	known := map[string][]string{}
	for id, versions := range b.Versions {
		known[id] = append(known[id], versions...)
	}
	for _, idv := range w.extraIDs {
		id, v, _ := strings.Cut(idv, "@")
		if !slices.Contains(known[id], v) {
			known[id] = append(known[id], v)
		}
	}
	return known, nil
}

// checkOwnLabels: the io.buildpacks. labels the image may carry are the
// lifecycle's own and those it inherits from the run image, unchanged.
func checkOwnLabels(labels, runLabels map[string]string) error {
	own := []string{platform.LifecycleMetadataLabel, platform.BuildMetadataLabel, platform.ProjectMetadataLabel,
		platform.RebasableLabel, platform.ExecEnvLabel}
	for k, v := range labels {
		if !strings.HasPrefix(k, "io.buildpacks.") || slices.Contains(own, k) {
			continue
		}
		if rv, ok := runLabels[k]; ok && rv == v {
			continue
		}
		return forged(k, fmt.Errorf("the label %s is neither the lifecycle's nor the run image's", k))
	}
	return nil
}

// names maps the buildpacks' directories in the layers dir to their ids.
func (p *buildPlan) names(w *workdirs) buildpackNames {
	n := buildpackNames{}
	if b, err := builderBuildpacks(p); err == nil {
		for id := range b.Versions {
			n[escapeID(id)] = id
		}
	}
	for _, idv := range w.extraIDs {
		id, _, _ := strings.Cut(idv, "@")
		n[escapeID(id)] = id
	}
	return n
}
