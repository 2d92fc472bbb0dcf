package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// fingerprint is what a build is made of. cipack records it in the
// image's project metadata (io.buildpacks.project.metadata, source
// metadata "cipack"), which the lifecycle exports as it is, so that a
// later build with --skip-unchanged can tell that nothing changed —
// kpack's rule: no new build when source, builder and run image are the
// same.
type fingerprint struct {
	// App hashes the app as the lifecycle sees it (after include and
	// exclude): paths, modes, contents, link targets.
	App string `json:"app"`
	// Builder is the pulled builder's digest; in the builder, a hash of
	// its order, lifecycle descriptor and buildpack descriptors.
	Builder string `json:"builder"`
	// RunImage is the run image's digest.
	RunImage string `json:"runImage"`
	// Inputs hashes the build env and the build's arguments.
	Inputs string `json:"inputs"`
}

const fingerprintKey = "cipack"

// makeFingerprint computes the build's fingerprint once prepare has made
// the app copy, the platform dir and the order.
func makeFingerprint(p *buildPlan, w *workdirs, opts Options, env []string) (fingerprint, error) {
	var f fingerprint
	var err error
	if f.App, err = hashTree(w.app); err != nil {
		return f, fmt.Errorf("fingerprint the app: %w", err)
	}
	if f.Builder, err = hashBuilder(p); err != nil {
		return f, fmt.Errorf("fingerprint the builder: %w", err)
	}
	f.RunImage = p.refs.runDigest
	run := ""
	if p.refs.runImage != nil {
		run = p.refs.runImage.String()
	}
	h := sha256.New()
	env = slices.Clone(env)
	slices.Sort(env)
	for _, part := range [][]string{env, {"process=" + opts.ProcessType, "run=" + run, "exec=" + opts.ExecEnv,
		"api=" + opts.PlatformAPI, "uid=" + fmt.Sprint(p.uid), "gid=" + fmt.Sprint(p.gid),
		// The same inputs on another architecture are another build.
		"platform=" + registry.PlatformString(registry.HostPlatform())}, opts.Buildpacks, opts.PreBuildpacks, opts.PostBuildpacks} {
		for _, s := range part {
			fmt.Fprintf(h, "%d:%s\n", len(s), s)
		}
	}
	if w.order != "" {
		if err := hashFile(h, w.order); err != nil {
			return f, err
		}
	}
	for _, dir := range w.extra {
		sum, err := hashTree(dir)
		if err != nil {
			return f, err
		}
		fmt.Fprintf(h, "buildpack %s=%s\n", filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir), sum)
	}
	f.Inputs = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return f, nil
}

// hashTree hashes a tree without following links: each entry's path,
// type and mode, a file's content, a link's target, in path order.
func hashTree(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := e.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%o\x00", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00", target)
		case fi.Mode().IsRegular():
			return hashFile(h, p)
		}
		return nil
	})
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), err
}

func hashFile(h io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	return err
}

// hashBuilder is the builder's part of the fingerprint, the same in
// both modes (so a build's image does not depend on the mode): its
// order, lifecycle descriptor and every buildpack's descriptor (a
// buildpack changes its version when it changes), read as the build
// reads them — the local files in the builder, the pulled layers in pull
// mode.
func hashBuilder(p *buildPlan) (string, error) {
	h := sha256.New()
	for _, f := range []string{p.builder.Path("order.toml"), p.builder.Path("lifecycle", "lifecycle.toml")} {
		if raw, err := p.files.ReadFile(f); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%s", filepath.Base(f), len(raw), raw)
		}
	}
	b, err := builderBuildpacks(p)
	if err != nil {
		return "", err
	}
	ids := make([]string, 0, len(b.Versions))
	for id := range b.Versions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		for _, v := range b.Versions[id] {
			raw, err := p.files.ReadFile(p.builder.Path("buildpacks", strings.ReplaceAll(id, "/", "_"), v, "buildpack.toml"))
			if err == nil {
				fmt.Fprintf(h, "%s@%s\x00%d\x00%s", id, v, len(raw), raw)
			}
		}
	}
	fmt.Fprintf(h, "version=%s", p.builder.Version)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// recordedImage is the image the --image tag held at the preflight, with
// its config; why says why it cannot be compared (then cipack builds).
type recordedImage struct {
	desc *remote.Descriptor
	cf   *v1.ConfigFile
	why  string
}

// readRecorded reads the image ref holds. An index, an image that cannot
// be read or one that does not exist is built, not an error.
func readRecorded(ctx context.Context, reg *registry.Client, ref name.Reference) recordedImage {
	// Get, not an image read: an index is never resolved to a platform.
	desc, err := reg.Get(ctx, ref)
	switch {
	case exit.Code(err) == exit.ImageNotFound:
		return recordedImage{why: "the image does not exist yet"}
	case err != nil:
		return recordedImage{why: fmt.Sprintf("the image could not be read (%v)", err)}
	case desc.MediaType.IsIndex():
		return recordedImage{why: "the tag holds a multi-arch index"}
	}
	img, err := desc.Image()
	var cf *v1.ConfigFile
	if err == nil {
		cf, err = img.ConfigFile()
	}
	if err != nil {
		return recordedImage{why: fmt.Sprintf("the image could not be read (%v)", err)}
	}
	return recordedImage{desc: desc, cf: cf}
}

// runConfig is the run image's config on this platform, read from the
// manifest whose digest the preflight recorded; why: it could not be.
type runConfig struct {
	cf  *v1.ConfigFile
	why string
}

func readRunConfig(desc *remote.Descriptor, ref name.Reference) runConfig {
	img, err := registry.ImageOf(desc, ref, registry.HostPlatform())
	var cf *v1.ConfigFile
	if err == nil {
		cf, err = img.ConfigFile()
	}
	if err != nil {
		return runConfig{why: fmt.Sprintf("the run image could not be read (%v)", err)}
	}
	return runConfig{cf: cf}
}

// unchanged reports the recorded image when its recorded fingerprint is
// want's (nothing to build), else why it builds.
func unchanged(p *buildPlan, want fingerprint) (*recordedImage, string) {
	rec := p.refs.recorded
	switch digest := p.refs.before[p.refs.image.String()]; {
	case digest == "":
		return nil, "the image does not exist yet"
	case rec.why != "":
		return nil, rec.why
	case rec.desc.Digest.String() != digest:
		return nil, "the tag moved while cipack read it"
	}
	cf := rec.cf
	if host := registry.HostPlatform(); cf.OS != host.OS || cf.Architecture != host.Architecture {
		return nil, fmt.Sprintf("the tag holds a %s/%s image, this build is for %s", cf.OS, cf.Architecture, registry.PlatformString(host))
	}
	md, err := cnb.ProjectMetadata(cf.Config.Labels)
	if err != nil || md == nil || md.Source == nil {
		return nil, "the image records no inputs"
	}
	raw, _ := json.Marshal(md.Source.Metadata[fingerprintKey])
	var got fingerprint
	if err := json.Unmarshal(raw, &got); err != nil || got == (fingerprint{}) {
		return nil, "the image records no inputs"
	}
	if got != want {
		return nil, "changed: " + strings.Join(diffFingerprint(got, want), ", ")
	}
	// The record is a label anyone who can push could write: at least the
	// base it claims must be the image's own layers.
	if why := onRunImage(p.refs.runConfig, cf); why != "" {
		return nil, why
	}
	return &rec, ""
}

func diffFingerprint(a, b fingerprint) []string {
	var out []string
	for _, f := range []struct{ name, x, y string }{{"the app", a.App, b.App}, {"the builder", a.Builder, b.Builder},
		{"the run image", a.RunImage, b.RunImage}, {"the build env or arguments", a.Inputs, b.Inputs}} {
		if f.x != f.y {
			out = append(out, f.name)
		}
	}
	return out
}

// skipIfUnchanged returns the result of a build that need not run: the
// image the tag holds was made of the same inputs. Every tag is read again
// (a push since the preflight stops it: rerun) and those not on the image
// are made to converge on it (compare before move); its digest is the
// result, as a build's would be. nil: build.
func skipIfUnchanged(ctx context.Context, p *buildPlan, w *workdirs, d Deps, start time.Time) (*Result, error) {
	rec, why := unchanged(p, w.fp)
	if rec == nil {
		fmt.Fprintf(d.Log, "cipack: --skip-unchanged: building: %s\n", why)
		return nil, nil
	}
	digest := rec.desc.Digest.String()
	fmt.Fprintf(d.Log, "cipack: --skip-unchanged: %s@%s was built from the same app, builder, run image and inputs: the lifecycle does not run\n", p.refs.image, digest)
	if _, err := d.Registry.MoveTags(ctx, p.refs.written(), rec.desc, p.refs.before); err != nil {
		if errors.Is(err, registry.ErrMovedSinceInspection) {
			return nil, exit.New(exit.Export, "--tag", err, "a tag moved while the build looked: rerun")
		}
		return nil, fmt.Errorf("--skip-unchanged: make the tags converge: %w", err)
	}
	res := &Result{
		Image: p.refs.image.String(), Name: p.refs.image.Context().Name(), Digest: digest,
		ImageRef: p.refs.image.Context().Digest(digest).String(), RunImage: p.refs.runImage.String(),
		Platform: registry.PlatformString(registry.HostPlatform()), Buildpacks: recordedBuildpacks(rec.cf), Skipped: true, Duration: time.Since(start),
	}
	for _, r := range p.refs.written() {
		res.Tags = append(res.Tags, r.String())
	}
	return res, nil
}

func recordedBuildpacks(cf *v1.ConfigFile) []Buildpack {
	var bps []Buildpack
	if bm, err := cnb.BuildMetadata(cf.Config.Labels); err == nil && bm != nil {
		for _, bp := range bm.Buildpacks {
			bps = append(bps, Buildpack{ID: bp.ID, Version: bp.Version})
		}
	}
	return bps
}

// onRunImage checks that the image's first layers are the run image's
// (at the digest the fingerprint names, on this platform): a record that
// claims the current run image on an image built on another is not
// trusted. "" when they match.
func onRunImage(run runConfig, cf *v1.ConfigFile) string {
	if run.why != "" {
		return run.why
	}
	base := run.cf.RootFS.DiffIDs
	if len(base) == 0 || len(cf.RootFS.DiffIDs) < len(base) || !slices.Equal(cf.RootFS.DiffIDs[:len(base)], base) {
		return "the image's record names the run image, but its layers are not on it"
	}
	return ""
}
