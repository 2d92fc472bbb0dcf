package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
	"github.com/cipack/cipack/internal/safefs"
)

// SBOM copies are bounded: the files come from build code.
const (
	maxSBOMFile  = 64 << 20
	maxSBOMTotal = 512 << 20
)

// collected is what execute hands to collect.
type collected struct {
	api     string
	timings []creator.PhaseTiming
	start   time.Time
}

// collect reads what the lifecycle wrote, once every build process is
// gone (each ran in a PID namespace, or as a child that was waited for):
// the report, checked against the registry, the SBOM and the group.
func collect(ctx context.Context, p *buildPlan, w *workdirs, opts Options, d Deps, c collected) (*Result, error) {
	report, err := creator.ReadReport(filepath.Join(w.layers, "report.toml"))
	if err != nil {
		reportWritten(ctx, d.Registry, p.refs.written(), p.refs.before, d.Log)
		return nil, exit.New(exit.Export, "export phase", err, "the lifecycle finished but left no readable report: check the builder's lifecycle version")
	}
	digest, err := verifyPushed(ctx, d.Registry, p.refs.written(), report.Image.Digest)
	if err != nil {
		return nil, err
	}
	res := &Result{
		Image:       p.refs.image.String(),
		Name:        p.refs.image.Context().Name(),
		Digest:      digest,
		ImageRef:    p.refs.image.Context().Digest(digest).String(),
		PlatformAPI: c.api,
		RunImage:    p.refs.runImage.String(),
		Platform:    registry.PlatformString(registry.HostPlatform()),
		Phases:      c.timings,
		Duration:    time.Since(c.start),
	}
	for _, r := range p.refs.written() {
		res.Tags = append(res.Tags, r.String())
	}
	if opts.SBOMDir != "" {
		n, err := safefs.CopyOut(filepath.Join(w.layers, "sbom"), opts.SBOMDir, maxSBOMFile, maxSBOMTotal)
		if err != nil {
			return nil, exit.New(exit.Export, "--sbom-dir", err, "the image was pushed; make the SBOM directory writable and rerun to get the files")
		}
		res.SBOMDir = opts.SBOMDir
		fmt.Fprintf(d.Log, "cipack: %d SBOM files copied to %s\n", n, opts.SBOMDir)
	}
	if group, err := creator.ReadGroup(filepath.Join(w.layers, "group.toml")); err == nil {
		for _, bp := range group.Group {
			res.Buildpacks = append(res.Buildpacks, Buildpack{ID: bp.ID, Version: bp.Version})
		}
	}
	return res, nil
}

// checkSBOMBounds checks, before export, the SBOM files buildpacks wrote
// (<layers>/<buildpack>/*.sbom.*, what the exporter gathers) against the
// bounds the copy to --sbom-dir has, so an SBOM too large to copy stops
// the build before anything is pushed. Links are not followed: they are
// not copied either.
func checkSBOMBounds(layers string) error {
	files, err := filepath.Glob(filepath.Join(layers, "*", "*.sbom.*"))
	if err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		fi, err := os.Lstat(f)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		rel, _ := filepath.Rel(layers, f)
		if fi.Size() > maxSBOMFile {
			return exit.New(exit.Build, "--sbom-dir", fmt.Errorf("the SBOM %s a buildpack wrote is %d MB, over the %d MB cipack copies", rel, fi.Size()>>20, maxSBOMFile>>20),
				"nothing was pushed: fix the buildpack's SBOM, or build without --sbom-dir")
		}
		if total += fi.Size(); total > maxSBOMTotal {
			return exit.New(exit.Build, "--sbom-dir", fmt.Errorf("the buildpacks' SBOMs add up to over %d MB", maxSBOMTotal>>20),
				"nothing was pushed: fix the buildpacks' SBOMs, or build without --sbom-dir")
		}
	}
	return nil
}
