package cnb

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/buildpacks/lifecycle/platform"
	"github.com/buildpacks/lifecycle/platform/files"
)

// Labels of an app image: the lifecycle's own names.
const (
	LifecycleMetadataLabel = platform.LifecycleMetadataLabel
	BuildMetadataLabel     = platform.BuildMetadataLabel
	ProjectMetadataLabel   = platform.ProjectMetadataLabel
	RebasableLabel         = platform.RebasableLabel
)

// Labels pack writes on builders and buildpackages. The lifecycle defines
// no constant or type for them, and pack keeps its types in internal
// packages (pack/internal/builder, pkg/buildpack's unexported ones), so
// the names and the few fields cipack reads are spelled here, once.
const (
	BuilderMetadataLabel      = "io.buildpacks.builder.metadata"
	BuildpackLayersLabel      = "io.buildpacks.buildpack.layers"
	BuildpackageMetadataLabel = "io.buildpacks.buildpackage.metadata"
)

// BuilderMetadata is what cipack reads of a builder's metadata label.
type BuilderMetadata struct {
	Buildpacks []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
	} `json:"buildpacks"`
	Lifecycle struct {
		APIs struct {
			Platform  supported `json:"platform"`
			Buildpack supported `json:"buildpack"`
		} `json:"apis"`
	} `json:"lifecycle"`
}

type supported struct {
	Supported []string `json:"supported"`
}

// BuildpackageMetadata names a buildpackage's main buildpack.
type BuildpackageMetadata struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// decode unmarshals labels[key] into v; false when the label is absent.
// A label is untrusted input: the error names it, never echoes it.
func decode(labels map[string]string, key string, v any) (bool, error) {
	raw, ok := labels[key]
	if !ok || raw == "" {
		return false, nil
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return true, fmt.Errorf("label %s is not valid JSON: %w", key, err)
	}
	return true, nil
}

// LifecycleMetadata decodes io.buildpacks.lifecycle.metadata, in the
// lifecycle's Compat type (an app layer list's shape has changed across
// lifecycle versions); nil when the image has none.
func LifecycleMetadata(labels map[string]string) (*files.LayersMetadataCompat, error) {
	var md files.LayersMetadataCompat
	if ok, err := decode(labels, LifecycleMetadataLabel, &md); !ok || err != nil {
		return nil, err
	}
	return &md, nil
}

// BuildMetadata decodes io.buildpacks.build.metadata; nil when absent.
func BuildMetadata(labels map[string]string) (*files.BuildMetadata, error) {
	var md files.BuildMetadata
	if ok, err := decode(labels, BuildMetadataLabel, &md); !ok || err != nil {
		return nil, err
	}
	return &md, nil
}

// ProjectMetadata decodes io.buildpacks.project.metadata; nil when absent.
func ProjectMetadata(labels map[string]string) (*files.ProjectMetadata, error) {
	var md files.ProjectMetadata
	if ok, err := decode(labels, ProjectMetadataLabel, &md); !ok || err != nil {
		return nil, err
	}
	return &md, nil
}

// Builder decodes a builder's io.buildpacks.builder.metadata; nil when
// absent.
func Builder(labels map[string]string) (*BuilderMetadata, error) {
	var md BuilderMetadata
	if ok, err := decode(labels, BuilderMetadataLabel, &md); !ok || err != nil {
		return nil, err
	}
	return &md, nil
}

// Buildpackage decodes a buildpackage's io.buildpacks.buildpackage.metadata;
// nil when absent.
func Buildpackage(labels map[string]string) (*BuildpackageMetadata, error) {
	var md BuildpackageMetadata
	if ok, err := decode(labels, BuildpackageMetadataLabel, &md); !ok || err != nil {
		return nil, err
	}
	return &md, nil
}

// BuildpackLayers lists the buildpacks io.buildpacks.buildpack.layers
// names, id → versions (sorted); nil when the label is absent.
func BuildpackLayers(labels map[string]string) (map[string][]string, error) {
	var listed map[string]map[string]json.RawMessage
	if ok, err := decode(labels, BuildpackLayersLabel, &listed); !ok || err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(listed))
	for id, versions := range listed {
		for v := range versions {
			out[id] = append(out[id], v)
		}
		sort.Strings(out[id])
	}
	return out, nil
}

// Source renders the project metadata (repository@commit) for reports;
// "" when there is none.
func Source(labels map[string]string) string {
	pm, err := ProjectMetadata(labels)
	if err != nil || pm == nil || pm.Source == nil {
		return ""
	}
	repo, _ := pm.Source.Metadata["repository"].(string)
	commit, _ := pm.Source.Version["commit"].(string)
	switch {
	case repo != "" && commit != "":
		return repo + "@" + commit
	case commit != "":
		return commit
	}
	return repo
}
