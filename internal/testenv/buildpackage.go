package testenv

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Labels of a buildpackage image, as pack writes them (pack's
// pkg/buildpack.MetadataLabel and pkg/dist.BuildpackLayersLabel).
const (
	BuildpackageMetadataLabel = "io.buildpacks.buildpackage.metadata"
	BuildpackLayersLabel      = "io.buildpacks.buildpack.layers"
)

// bpDescriptor is what BuildpackageImage reads of a buildpack.toml.
type bpDescriptor struct {
	API       string `toml:"api"`
	Buildpack struct {
		ID       string `toml:"id"`
		Version  string `toml:"version"`
		Name     string `toml:"name"`
		Homepage string `toml:"homepage"`
	} `toml:"buildpack"`
	Stacks []struct {
		ID     string   `toml:"id" json:"id"`
		Mixins []string `toml:"mixins" json:"mixins,omitempty"`
	} `toml:"stacks"`
	Targets []struct {
		OS      string `toml:"os" json:"os"`
		Arch    string `toml:"arch" json:"arch"`
		Variant string `toml:"variant" json:"variant,omitempty"`
		Distros []struct {
			Name    string `toml:"name" json:"name"`
			Version string `toml:"version" json:"version,omitempty"`
		} `toml:"distros" json:"distros,omitempty"`
	} `toml:"targets"`
	Order []struct {
		Group []struct {
			ID       string `toml:"id" json:"id"`
			Version  string `toml:"version" json:"version,omitempty"`
			Optional bool   `toml:"optional" json:"optional,omitempty"`
		} `toml:"group" json:"group"`
	} `toml:"order"`
}

// stackEntry is one stacks entry of the labels.
type stackEntry struct {
	ID     string   `json:"id"`
	Mixins []string `json:"mixins,omitempty"`
}

// moduleLayerInfo is one buildpack's entry in io.buildpacks.buildpack.layers
// (pack's dist.ModuleLayerInfo).
type moduleLayerInfo struct {
	API         string       `json:"api"`
	Stacks      []stackEntry `json:"stacks,omitempty"`
	Targets     any          `json:"targets,omitempty"`
	Order       any          `json:"order,omitempty"`
	LayerDiffID string       `json:"layerDiffID"`
	Homepage    string       `json:"homepage,omitempty"`
	Name        string       `json:"name,omitempty"`
}

// readDescriptor reads bp's buildpack.toml, with bp's ID and Version
// winning when set.
func readDescriptor(bp Buildpack) (bpDescriptor, error) {
	var d bpDescriptor
	if _, err := toml.DecodeFile(filepath.Join(bp.Dir, "buildpack.toml"), &d); err != nil {
		return d, fmt.Errorf("buildpack.toml of %s: %w", bp.Dir, err)
	}
	if bp.ID != "" {
		d.Buildpack.ID = bp.ID
	}
	if bp.Version != "" {
		d.Buildpack.Version = bp.Version
	}
	if d.Buildpack.ID == "" || d.Buildpack.Version == "" {
		return d, fmt.Errorf("%s: buildpack.toml names no id or version", bp.Dir)
	}
	return d, nil
}

// stacksOf is a descriptor's stacks; a buildpack (not a composite) naming
// none supports any ("*"), as pack assumes.
func stacksOf(d bpDescriptor) []stackEntry {
	var out []stackEntry
	for _, s := range d.Stacks {
		out = append(out, stackEntry{ID: s.ID, Mixins: s.Mixins})
	}
	if len(out) == 0 && len(d.Order) == 0 {
		out = []stackEntry{{ID: "*"}}
	}
	return out
}

// mergeStacks keeps the stacks both lists support ("*" is any), as pack's
// stack.MergeCompatible does (mixins are not merged: the tests' buildpacks
// name none).
func mergeStacks(a, b []stackEntry) []stackEntry {
	var out []stackEntry
	for _, x := range a {
		for _, y := range b {
			if x.ID == y.ID || y.ID == "*" {
				out = append(out, x)
				break
			}
			if x.ID == "*" {
				out = append(out, y)
			}
		}
	}
	return out
}

// BuildpackageImage assembles a buildpackage image the way `pack buildpack
// package` lays one out: an empty linux/amd64 OCI image with one layer per
// buildpack (the dependencies in the order given, then main) holding
// cnb/buildpacks/<id, / as _>/<version>/… with its parent directories,
// owned 0:0, and the labels io.buildpacks.buildpackage.metadata (main's id,
// name, version, homepage and the stacks all its buildpacks support) and
// io.buildpacks.buildpack.layers (id → version → api, stacks, targets,
// order for a composite, layerDiffID, homepage, name). A Buildpack's ID
// and Version are read from its buildpack.toml when empty.
func BuildpackageImage(main Buildpack, deps ...Buildpack) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	layersMD := map[string]map[string]moduleLayerInfo{}
	mainDesc, err := readDescriptor(main)
	if err != nil {
		return nil, err
	}
	stacks := stacksOf(mainDesc)
	for i, bp := range append(append([]Buildpack{}, deps...), main) {
		d, err := readDescriptor(bp)
		if err != nil {
			return nil, err
		}
		if i < len(deps) {
			if s := stacksOf(d); len(stacks) == 0 {
				stacks = s
			} else if len(s) > 0 {
				stacks = mergeStacks(stacks, s)
			}
		}
		escaped := strings.ReplaceAll(d.Buildpack.ID, "/", "_")
		files := []TarFile{{Name: "cnb/", Dir: true, Mode: 0o755}, {Name: "cnb/buildpacks/", Dir: true, Mode: 0o755},
			{Name: "cnb/buildpacks/" + escaped + "/", Dir: true, Mode: 0o755}}
		if err := treeFiles(bp.Dir, "cnb/buildpacks/"+escaped+"/"+d.Buildpack.Version, &files); err != nil {
			return nil, err
		}
		layer, err := LayerFromFiles(files)
		if err != nil {
			return nil, err
		}
		diffID, err := layer.DiffID()
		if err != nil {
			return nil, err
		}
		if img, err = mutate.Append(img, mutate.Addendum{Layer: layer,
			History: v1.History{CreatedBy: "cipack testenv buildpackage " + d.Buildpack.ID + "@" + d.Buildpack.Version}}); err != nil {
			return nil, err
		}
		info := moduleLayerInfo{API: d.API, Stacks: stacksOf(d), LayerDiffID: diffID.String(), Homepage: d.Buildpack.Homepage, Name: d.Buildpack.Name}
		if len(d.Targets) > 0 {
			info.Targets = d.Targets
		}
		if len(d.Order) > 0 {
			info.Order = d.Order
		}
		if layersMD[d.Buildpack.ID] == nil {
			layersMD[d.Buildpack.ID] = map[string]moduleLayerInfo{}
		}
		layersMD[d.Buildpack.ID][d.Buildpack.Version] = info
	}
	if stacks == nil {
		stacks = []stackEntry{}
	}
	md := struct {
		ID       string       `json:"id"`
		Name     string       `json:"name,omitempty"`
		Version  string       `json:"version"`
		Homepage string       `json:"homepage,omitempty"`
		Stacks   []stackEntry `json:"stacks"`
	}{mainDesc.Buildpack.ID, mainDesc.Buildpack.Name, mainDesc.Buildpack.Version, mainDesc.Buildpack.Homepage, stacks}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Labels = map[string]string{}
	for k, v := range map[string]any{BuildpackageMetadataLabel: md, BuildpackLayersLabel: layersMD} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		cf.Config.Labels[k] = string(b)
	}
	return mutate.ConfigFile(img, cf)
}

// BuildpackTgz writes the buildpack directory dir as a gzipped tar at out,
// as pack accepts a buildpack archive: buildpack.toml and bin/ at the
// archive's root, entries owned 0:0 with a fixed mtime, sorted.
func BuildpackTgz(dir, out string) error {
	var paths []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	mtime := time.Date(1980, 1, 1, 0, 0, 1, 0, time.UTC)
	werr := func() error {
		for _, p := range paths {
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
			switch {
			case fi.IsDir():
				h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			case fi.Mode().IsRegular():
				h.Typeflag, h.Size, h.Mode = tar.TypeReg, fi.Size(), int64(fi.Mode().Perm()|0o444)
			default:
				return fmt.Errorf("%s: only directories and regular files go in a buildpack archive", p)
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if h.Typeflag == tar.TypeReg {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if _, err := tw.Write(b); err != nil {
					return err
				}
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return gz.Close()
	}()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}
