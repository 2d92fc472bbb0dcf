package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/buildpack"
	"github.com/buildpacks/lifecycle/launch"
	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/safefs"
)

// The split's phase names (creator.PlanPhases).
const (
	phaseRestore = "restoring"
	phaseExport  = "exporting"
)

// maxLayerEntries bounds the walks of the layers dir: before restore it
// holds what detection wrote (a few files); the checks before export
// look two levels down (buildpacks' dirs, their layers and .toml files)
// and into the SBOM and config trees.
const maxLayerEntries = 100000

// buildpackNames maps a buildpack's directory name in the layers dir
// (launch.EscapeID of its id) to its id, for messages.
type buildpackNames map[string]string

// of names the buildpack whose directory rel (a path in the layers dir)
// is under; sbom/<type>/<buildpack>/… counts too.
func (n buildpackNames) of(rel string) string {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	dir := parts[0]
	if dir == "sbom" && len(parts) > 2 {
		dir = parts[2]
	}
	if id, ok := n[dir]; ok {
		return "buildpack " + id
	}
	if len(parts) > 1 || dir == "sbom" || dir == "config" {
		return "buildpack " + dir
	}
	return "the build"
}

// beforeTrusted is pull mode's Runner.Before: no build process runs
// between phases, so what build code left in the layers dir is checked
// before a credential phase reads or writes through it. The restorer
// writes layer files and analyzed.toml; a link planted by detection
// (/layers/<buildpack> → /analyzed) would take its writes elsewhere.
func (h *pulledHost) beforeTrusted(inv creator.Invocation) error {
	switch inv.Phase {
	case phaseRestore:
		// Detection writes group.toml and plan.toml: nothing in the
		// layers dir may be a link yet.
		return refuseUnsafe(h.layers, 0, h.names)
	case phaseExport:
		if err := refuseUnsafeForExport(h.layers, h.names); err != nil {
			return err
		}
		if err := refuseBuildpackLabels(h.layers, h.names); err != nil {
			return err
		}
		if err := lockAnalyzed(h.analyzed, h.expect); err != nil {
			return err
		}
		if h.sbomOut {
			return checkSBOMBounds(h.layers)
		}
	}
	return nil
}

// refuseUnsafeForExport checks what the exporter reads and writes: the
// layers dir's entries, each buildpack's (its layer dirs and .toml
// files), and the whole SBOM and launcher config trees (the exporter
// writes the lifecycle's own SBOM files into sbom/). A layer's own
// content may hold links: the exporter archives them as links.
func refuseUnsafeForExport(layers string, names buildpackNames) error {
	if err := refuseUnsafe(layers, 2, names); err != nil {
		return err
	}
	for _, sub := range []string{"sbom", "config"} {
		found, err := safefs.FindUnsafe(filepath.Join(layers, sub), 0, maxLayerEntries)
		if err != nil {
			return exit.New(exit.Build, "layers dir", err, "nothing was pushed")
		}
		if len(found) > 0 {
			return unsafeError(underDir(sub, found[0]), names)
		}
	}
	return nil
}

// underDir makes a found entry's path relative to the layers dir.
func underDir(sub string, u safefs.Unsafe) safefs.Unsafe {
	return safefs.Unsafe{Rel: filepath.Join(sub, u.Rel), Kind: u.Kind}
}

// refuseUnsafe refuses a link or a special file in the layers dir, at
// most depth levels down (0: anywhere).
func refuseUnsafe(layers string, depth int, names buildpackNames) error {
	found, err := safefs.FindUnsafe(layers, depth, maxLayerEntries)
	if err != nil {
		return exit.New(exit.Build, "layers dir", err, "nothing was pushed")
	}
	if len(found) > 0 {
		return unsafeError(found[0], names)
	}
	return nil
}

func unsafeError(u safefs.Unsafe, names buildpackNames) error {
	return exit.New(exit.Build, names.of(u.Rel),
		fmt.Errorf("left %s at %s in the layers dir: the credential phases would read or write through it", u.Kind, filepath.Join("<layers>", u.Rel)),
		"nothing was tagged: a buildpack must leave layer directories and .toml files, not links or special files, in the layers dir")
}

// refuseBuildpackLabels reads every buildpack's launch.toml (in the
// lifecycle's own type) and refuses a label in the io.buildpacks.
// namespace: the lifecycle applies buildpack labels last, so such a label
// would replace the records it and cipack write (the run image a rebase
// trusts, the source, the fingerprint).
func refuseBuildpackLabels(layers string, names buildpackNames) error {
	entries, err := os.ReadDir(layers)
	if err != nil {
		return exit.New(exit.Build, "layers dir", err, "nothing was tagged")
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		rel := filepath.Join(e.Name(), "launch.toml")
		raw, err := safefs.ReadFile(layers, rel, maxLaunchToml)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		who := names.of(rel)
		if err != nil {
			return exit.New(exit.Build, who, fmt.Errorf("its launch.toml: %w", err), "nothing was tagged")
		}
		var lt buildpack.LaunchTOML
		if _, err := toml.Decode(string(raw), &lt); err != nil {
			return exit.New(exit.Build, who, fmt.Errorf("its launch.toml is malformed: %w", err), "nothing was tagged: fix the buildpack")
		}
		for _, l := range lt.Labels {
			if strings.HasPrefix(l.Key, "io.buildpacks.") {
				return exit.New(exit.Build, who, fmt.Errorf("its launch.toml sets the label %s: the io.buildpacks. namespace holds the lifecycle's and cipack's records", l.Key),
					"nothing was tagged: a buildpack may set labels outside io.buildpacks. only")
			}
		}
	}
	return nil
}

// maxLaunchToml bounds a launch.toml read (build code writes it).
const maxLaunchToml = 4 << 20

// lockAnalyzed makes analyzed.toml the analyzer and restorer wrote
// root's and read-only before export (the exporter, running as the
// build user, only reads it), and checks it names a run image (the
// exporter dereferences it without a check) in the repositories cipack
// chose (checkAnalyzedRepos).
func lockAnalyzed(dir string, expect analyzedRepos) error {
	if dir == "" {
		return nil
	}
	p := filepath.Join(dir, "analyzed.toml")
	raw, err := safefs.ReadRegular(p, 1<<20)
	bad := func(err error) error {
		return exit.New(exit.Lifecycle, "analyzed.toml", err, "the analyzer's record was changed before export; nothing was pushed")
	}
	if err != nil {
		return bad(err)
	}
	var a files.Analyzed
	if _, err := toml.Decode(string(raw), &a); err != nil {
		return bad(fmt.Errorf("malformed: %w", err))
	}
	if a.RunImage == nil || a.RunImage.Reference == "" {
		return bad(fmt.Errorf("it names no run image"))
	}
	if err := expect.check(a); err != nil {
		return bad(err)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{p, 0o644}, {dir, 0o755}} {
		if err := os.Lchown(f.path, 0, 0); err != nil {
			return bad(err)
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			return bad(err)
		}
	}
	return nil
}

// analyzedRepos are the repositories the images analyzed.toml names
// must be in: the run image's and the previous image's cipack passed.
// The restorer extracts cache layers at the paths they name while
// analyzed.toml's dir is writable: a poisoned --cache-dir (a restored
// actions/cache) rewrote it to name an image of another repository as
// the run image, and the credentialed exporter copied that image's
// layers into the user's repository. The digests are the record check's
// (after export): a repository is what decides what gets copied.
type analyzedRepos struct{ run, previous string }

func expectAnalyzed(run name.Reference, previous string) (analyzedRepos, error) {
	e := analyzedRepos{run: run.Context().Name()}
	if previous != "" {
		r, err := name.ParseReference(previous, name.WeakValidation)
		if err != nil {
			return e, exit.Usagef("--previous-image", "", "invalid image reference %q: %v", previous, err)
		}
		e.previous = r.Context().Name()
	}
	return e, nil
}

func (e analyzedRepos) check(a files.Analyzed) error {
	if !inRepo(a.RunImage.Reference, e.run) {
		return fmt.Errorf("it names the run image %q, not one of %s, the run image cipack chose", a.RunImage.Reference, e.run)
	}
	if a.PreviousImage != nil && a.PreviousImage.Reference != "" && !inRepo(a.PreviousImage.Reference, e.previous) {
		return fmt.Errorf("it names the previous image %q, not one of %s", a.PreviousImage.Reference, e.previous)
	}
	return nil
}

// inRepo reports whether ref names an image of repository repo.
func inRepo(ref, repo string) bool {
	r, err := name.ParseReference(ref, name.WeakValidation)
	return err == nil && repo != "" && r.Context().Name() == repo
}

// escapeID is the lifecycle's name for a buildpack's directory.
func escapeID(id string) string { return launch.EscapeID(id) }
