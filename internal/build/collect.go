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
	drop    func(pushed bool) string // drops the staging tag, once
}

// collect reads what the lifecycle wrote, once every build process is
// gone (each ran in a PID namespace, or as a child that was waited for):
// the report, checked against the image under the staging tag; that
// image's records and the SBOM are checked; only then do the user's tags
// move to it.
func collect(ctx context.Context, p *buildPlan, w *workdirs, opts Options, d Deps, c collected) (*Result, error) {
	// The run image the records are checked against is read meanwhile.
	run := make(chan runRead, 1)
	go func() { b, err := readRunBase(ctx, d.Registry, p.refs); run <- runRead{b, err} }()
	report, err := creator.ReadReport(w.reportPath())
	if err != nil {
		return nil, exit.New(exit.Export, "export phase", err, "the lifecycle finished but left no readable report; nothing was tagged")
	}
	pushed, err := readStaged(ctx, d.Registry, p.staging, report.Image.Digest)
	if err != nil {
		return nil, err
	}
	if err := checkRecords(p, w, pushed.cf, <-run); err != nil {
		return nil, err
	}
	res := &Result{
		Image:       p.refs.image.String(),
		Name:        p.refs.image.Context().Name(),
		PlatformAPI: c.api,
		RunImage:    p.refs.runImage.String(),
		Platform:    registry.PlatformString(registry.HostPlatform()),
		Phases:      c.timings,
		// From the pushed image's record, which cipack just checked, not
		// from group.toml (build code can rewrite it).
		Buildpacks: recordedBuildpacks(pushed.cf),
	}
	if opts.SBOMDir != "" {
		n, err := safefs.CopyOut(filepath.Join(w.layers, "sbom"), opts.SBOMDir, maxSBOMFile, maxSBOMTotal)
		if err != nil {
			return nil, exit.New(exit.Export, "--sbom-dir", err, "nothing was tagged; make the SBOM directory writable and rerun")
		}
		res.SBOMDir = opts.SBOMDir
		fmt.Fprintf(d.Log, "cipack: %d SBOM files copied to %s\n", n, opts.SBOMDir)
	}
	if res.Digest, err = moveTags(ctx, p, d.Registry, pushed, c.drop); err != nil {
		return nil, err
	}
	res.ImageRef = p.refs.image.Context().Digest(res.Digest).String()
	for _, r := range p.refs.written() {
		res.Tags = append(res.Tags, r.String())
	}
	res.Duration = time.Since(c.start)
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
