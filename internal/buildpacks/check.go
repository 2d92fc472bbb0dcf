package buildpacks

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/buildpacks/lifecycle/api"
	"github.com/buildpacks/lifecycle/buildpack"
	"github.com/buildpacks/lifecycle/platform"
	"github.com/buildpacks/lifecycle/platform/files"
)

// The spec's buildpack id: numbers, letters, '.', '/' and '-'. The
// lifecycle joins id and version into paths (buildpacks/ID/VERSION), so a
// '..' part or a '/' in a version would point it at another buildpack's
// directory — the app's own, under a trusted id.
var (
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9./-]*$`)
	versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_-]*$`)
)

// ValidID checks a buildpack id as the buildpack spec defines it.
func ValidID(id string) error {
	switch {
	case id == "":
		return errors.New("no id")
	case id == "app" || id == "config" || id == "sbom":
		return fmt.Errorf("the id %q is reserved", id)
	case !idPattern.MatchString(id):
		return fmt.Errorf("the id %q may hold only letters, digits, '.', '/' and '-'", id)
	}
	for _, part := range strings.Split(id, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("the id %q has an empty, '.' or '..' part", id)
		}
	}
	return nil
}

// ValidVersion checks a buildpack version: one path component, of the
// characters semantic versions and pack's test buildpacks use.
func ValidVersion(v string) error {
	if !versionPattern.MatchString(v) || strings.Contains(v, "..") {
		return fmt.Errorf("the version %q may hold only letters, digits, '.', '+', '_' and '-' (no '..')", v)
	}
	return nil
}

// checkModule checks what the lifecycle will hold against it before the
// build: its id and version, its Buildpack API, and its targets.
func checkModule(m Module, apis []string, target files.TargetMetadata) error {
	if err := ValidID(m.ID); err != nil {
		return err
	}
	if err := ValidVersion(m.Version); err != nil {
		return err
	}
	if err := supportedAPI(m.API, apis); err != nil {
		return err
	}
	return targetsAllow(m.Desc, target)
}

// supportedAPI checks the buildpack's API against the lifecycle's list
// (the builder's lifecycle.toml when it declares one, else the lifecycle
// cipack pins).
func supportedAPI(v string, apis []string) error {
	if v == "" {
		return errors.New("buildpack.toml declares no api")
	}
	want, err := api.NewVersion(v)
	if err != nil {
		return fmt.Errorf("the api %q is not a version", v)
	}
	list := apis
	if len(list) == 0 {
		for _, s := range api.Buildpack.Supported {
			list = append(list, s.String())
		}
	}
	for _, s := range list {
		if have, err := api.NewVersion(s); err == nil && have.Equal(want) {
			return nil
		}
	}
	return fmt.Errorf("its Buildpack API %s is not supported by the lifecycle (it supports %s)", v, strings.Join(list, ", "))
}

// targetsAllow checks the buildpack's [[targets]] against the build's
// OS and architecture, with the lifecycle's own rule. The run image's
// distribution is left to the lifecycle's detect phase, which reads it
// from the run image: a buildpack that names distributions is not
// refused here for want of them.
func targetsAllow(d *buildpack.BpDescriptor, target files.TargetMetadata) error {
	if d == nil || len(d.Targets) == 0 || len(d.Order) > 0 {
		return nil
	}
	base := target
	base.Distro = &files.OSDistro{}
	for _, t := range d.Targets {
		if platform.TargetSatisfiedForBuild(nil, &base, t, nil) {
			return nil
		}
	}
	var names []string
	for _, t := range d.Targets {
		names = append(names, strings.Trim(t.OS+"/"+t.Arch+"/"+t.ArchVariant, "/"))
	}
	slices.Sort(names)
	return fmt.Errorf("its targets (%s) exclude the run image (%s)", strings.Join(slices.Compact(names), ", "),
		strings.Trim(target.OS+"/"+target.Arch+"/"+target.ArchVariant, "/"))
}
