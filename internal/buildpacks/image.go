package buildpacks

import (
	"path/filepath"
	"slices"
	"sort"

	"github.com/buildpacks/lifecycle/buildpack"
	"github.com/buildpacks/lifecycle/launch"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/safefs"
)

// fromImage fetches a buildpackage and takes every buildpack its layers
// label lists (a composite's children included); the main one is the
// one its metadata label names.
func (f *fetcher) fromImage(l Located) (buildpack.GroupElement, error) {
	f.see(l.Ref)
	pkg, err := f.pull.Fetch(f.ctx, l.Ref, l.Root != "")
	if err != nil {
		return buildpack.GroupElement{}, err
	}
	hint := "name a buildpackage image (made by `pack buildpack package`)"
	md, err := cnb.Buildpackage(pkg.Labels)
	if err != nil || md == nil || md.ID == "" {
		return buildpack.GroupElement{}, l.errorf(hint, "%s has no valid %s label", pkg.Ref, cnb.BuildpackageMetadataLabel)
	}
	listed, err := cnb.BuildpackLayers(pkg.Labels)
	if err != nil || listed == nil {
		return buildpack.GroupElement{}, l.errorf(hint, "%s has no valid %s label", pkg.Ref, cnb.BuildpackLayersLabel)
	}
	if !slices.Contains(listed[md.ID], md.Version) {
		return buildpack.GroupElement{}, l.errorf(hint, "%s: its main buildpack %s@%s is not in its layers label", pkg.Ref, md.ID, md.Version)
	}
	ids := make([]string, 0, len(listed))
	for id := range listed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, version := range listed[id] {
			if err := f.fromLayers(l, pkg, id, version); err != nil {
				return buildpack.GroupElement{}, err
			}
		}
	}
	return buildpack.GroupElement{ID: md.ID, Version: md.Version}, nil
}

// fromLayers copies buildpack id@version out of the package's layers
// (the topmost that has it), through no link.
func (f *fetcher) fromLayers(l Located, pkg *Package, id, version string) error {
	if err := ValidID(id); err != nil {
		return l.errorf("rebuild the buildpackage", "%s: %v", pkg.Ref, err)
	}
	if err := ValidVersion(version); err != nil {
		return l.errorf("rebuild the buildpackage", "%s: %s: %v", pkg.Ref, id, err)
	}
	for i := len(pkg.Layers) - 1; i >= 0; i-- {
		src := filepath.Join(pkg.Layers[i], "cnb", "buildpacks", launch.EscapeID(id), version)
		if noLinks(pkg.Layers[i], src) != nil {
			continue
		}
		dst := f.staging()
		if _, err := safefs.CopyTree(src, dst, safefs.CopyOptions{MaxBytes: maxBuildpack}); err != nil {
			return l.errorf("rebuild the buildpackage", "%s: %s@%s: %v", pkg.Ref, id, version, err)
		}
		got, err := f.adopt(l.Source, dst)
		if err != nil {
			return err
		}
		if got.ID != id || got.Version != version {
			return l.errorf("rebuild the buildpackage", "%s: the layer of %s@%s holds %s@%s", pkg.Ref, id, version, got.ID, got.Version)
		}
		return nil
	}
	return l.errorf("rebuild the buildpackage", "%s: no layer holds %s@%s, which its labels name", pkg.Ref, id, version)
}
