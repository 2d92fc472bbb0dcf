package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/api"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// BuilderImage assembles a builder image the way `pack builder create`
// lays one out: the build base (here the run image, busybox as /bin/sh),
// one layer for the lifecycle, one per buildpack, one for order.toml and
// run.toml, and the labels platforms read (io.buildpacks.builder.metadata,
// io.buildpacks.buildpack.order, io.buildpacks.buildpack.layers).
// cnbDir is a directory made by MakeBuilder.
func BuilderImage(base v1.Image, cnbDir string, uid, gid int) (v1.Image, error) {
	owner := Ownership{uid, gid}
	lcFiles := []TarFile{{Name: "cnb/", Dir: true, Mode: 0o755}, {Name: "cnb/lifecycle/", Dir: true, Mode: 0o755}}
	for _, bin := range []string{"lifecycle", "launcher"} {
		b, err := os.ReadFile(filepath.Join(cnbDir, "lifecycle", bin))
		if err != nil {
			return nil, err
		}
		lcFiles = append(lcFiles, TarFile{Name: "cnb/lifecycle/" + bin, Mode: 0o755, Body: b})
	}
	for _, p := range LifecyclePhases {
		lcFiles = append(lcFiles, TarFile{Name: "cnb/lifecycle/" + p, Linkname: "lifecycle"})
	}
	layers := []TarFile{}
	img := base
	lcLayer, err := LayerFromFiles(lcFiles)
	if err != nil {
		return nil, err
	}
	if img, err = mutate.AppendLayers(img, lcLayer); err != nil {
		return nil, err
	}

	type bpInfo struct {
		API         string `json:"api"`
		LayerDiffID string `json:"layerDiffID"`
		Homepage    string `json:"homepage,omitempty"`
	}
	bpLayers := map[string]map[string]bpInfo{}
	var bpList []map[string]string
	escaped, err := os.ReadDir(filepath.Join(cnbDir, "buildpacks"))
	if err != nil {
		return nil, err
	}
	for _, e := range escaped {
		versions, err := os.ReadDir(filepath.Join(cnbDir, "buildpacks", e.Name()))
		if err != nil {
			return nil, err
		}
		for _, v := range versions {
			dir := filepath.Join(cnbDir, "buildpacks", e.Name(), v.Name())
			var desc struct {
				API       string `toml:"api"`
				Buildpack struct {
					ID, Version, Homepage string
				} `toml:"buildpack"`
			}
			if _, err := toml.DecodeFile(filepath.Join(dir, "buildpack.toml"), &desc); err != nil {
				return nil, err
			}
			prefix := "cnb/buildpacks/" + e.Name() + "/" + v.Name()
			files := []TarFile{{Name: "cnb/", Dir: true, Mode: 0o755}, {Name: "cnb/buildpacks/", Dir: true, Mode: 0o755},
				{Name: "cnb/buildpacks/" + e.Name() + "/", Dir: true, Mode: 0o755}}
			if err := treeFiles(dir, prefix, &files); err != nil {
				return nil, err
			}
			l, err := LayerFromFiles(files)
			if err != nil {
				return nil, err
			}
			diffID, err := l.DiffID()
			if err != nil {
				return nil, err
			}
			if img, err = mutate.AppendLayers(img, l); err != nil {
				return nil, err
			}
			if bpLayers[desc.Buildpack.ID] == nil {
				bpLayers[desc.Buildpack.ID] = map[string]bpInfo{}
			}
			bpLayers[desc.Buildpack.ID][desc.Buildpack.Version] = bpInfo{API: desc.API, LayerDiffID: diffID.String(), Homepage: desc.Buildpack.Homepage}
			bpList = append(bpList, map[string]string{"id": desc.Buildpack.ID, "version": desc.Buildpack.Version, "homepage": desc.Buildpack.Homepage})
		}
	}
	sort.Slice(bpList, func(i, j int) bool { return bpList[i]["id"] < bpList[j]["id"] })

	var order struct {
		Order []struct {
			Group []map[string]any `toml:"group" json:"group"`
		} `toml:"order" json:"order"`
	}
	if _, err := toml.DecodeFile(filepath.Join(cnbDir, "order.toml"), &order); err != nil {
		return nil, err
	}
	var run struct {
		Images []struct {
			Image   string   `toml:"image" json:"image"`
			Mirrors []string `toml:"mirrors" json:"mirrors,omitempty"`
		} `toml:"images" json:"images"`
	}
	if _, err := toml.DecodeFile(filepath.Join(cnbDir, "run.toml"), &run); err != nil {
		return nil, err
	}
	cfgFiles := []TarFile{{Name: "cnb/", Dir: true, Mode: 0o755}}
	for _, f := range []string{"order.toml", "run.toml"} {
		b, err := os.ReadFile(filepath.Join(cnbDir, f))
		if err != nil {
			return nil, err
		}
		cfgFiles = append(cfgFiles, TarFile{Name: "cnb/" + f, Mode: 0o644, Body: b})
	}
	for _, d := range []string{"layers/", "workspace/", "platform/", "platform/env/"} {
		cfgFiles = append(cfgFiles, TarFile{Name: d, Dir: true, Mode: 0o755, Owner: owner})
	}
	layers = append(layers, cfgFiles...)
	cfgLayer, err := LayerFromFiles(layers)
	if err != nil {
		return nil, err
	}
	if img, err = mutate.AppendLayers(img, cfgLayer); err != nil {
		return nil, err
	}

	apis := []string{"0.7", "0.8", "0.9", "0.10", "0.11", "0.12", "0.13", "0.14", "0.15"}
	runImage := map[string]any{}
	if len(run.Images) > 0 {
		runImage = map[string]any{"image": run.Images[0].Image, "mirrors": run.Images[0].Mirrors}
	}
	md := map[string]any{
		"description": "cipack test builder",
		"buildpacks":  bpList,
		"stack":       map[string]any{"runImage": runImage},
		"images":      run.Images,
		"lifecycle": map[string]any{
			"version": strings.TrimPrefix(LifecycleVersion(), "v"),
			"apis": map[string]any{
				"buildpack": map[string]any{"deprecated": []string{}, "supported": buildpackAPIs()},
				"platform":  map[string]any{"deprecated": []string{}, "supported": apis},
			},
		},
		"createdBy": map[string]string{"name": "cipack testenv", "version": ""},
	}
	labels := map[string]any{
		"io.buildpacks.builder.metadata": md,
		"io.buildpacks.buildpack.order":  order.Order,
		"io.buildpacks.buildpack.layers": bpLayers,
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	for k, v := range labels {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		cf.Config.Labels[k] = string(b)
	}
	cf.Config.User = fmt.Sprintf("%d:%d", uid, gid)
	cf.Config.WorkingDir = "/layers"
	cf.Config.Env = []string{"PATH=/cnb/process:/cnb/lifecycle:/usr/local/bin:/usr/bin:/bin", "CNB_USER_ID=" + strconv.Itoa(uid), "CNB_GROUP_ID=" + strconv.Itoa(gid)}
	return mutate.ConfigFile(img, cf)
}

func treeFiles(dir, prefix string, out *[]TarFile) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := prefix
		if rel != "." {
			name += "/" + filepath.ToSlash(rel)
		}
		if fi.IsDir() {
			*out = append(*out, TarFile{Name: name + "/", Dir: true, Mode: 0o755})
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		*out = append(*out, TarFile{Name: name, Mode: int64(fi.Mode().Perm() | 0o444), Body: b})
		return nil
	})
}

// buildpackAPIs are the Buildpack APIs of the lifecycle the test builders
// ship, as pack records them in the builder's label.
func buildpackAPIs() []string {
	var out []string
	for _, v := range api.Buildpack.Supported {
		out = append(out, v.String())
	}
	return out
}
