package cnb

import (
	"github.com/buildpacks/lifecycle/platform"
	"github.com/buildpacks/lifecycle/platform/files"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BaseID is the base (formerly stack) an image was built on or is.
func BaseID(labels map[string]string) string {
	if id := labels[platform.TargetLabel]; id != "" {
		return id
	}
	return labels[platform.StackIDLabel]
}

// Target reads an image's target as the lifecycle's GetTargetMetadata
// does (os, architecture, variant, distro labels), from a config file:
// GetTargetMetadata needs an imgutil.Image, and cipack has only read the
// config.
func Target(cf *v1.ConfigFile) files.TargetMetadata {
	t := files.TargetMetadata{OS: cf.OS, Arch: cf.Architecture, ArchVariant: cf.Variant}
	name, hasName := cf.Config.Labels[platform.OSDistroNameLabel]
	version, hasVersion := cf.Config.Labels[platform.OSDistroVersionLabel]
	if hasName || hasVersion {
		t.Distro = &files.OSDistro{Name: name, Version: version}
	}
	t.ID = cf.Config.Labels[platform.TargetLabel]
	return t
}
